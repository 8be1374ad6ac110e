//! Talking to an OpenAI-compatible upstream: the [`Backend`] impl.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use edgeway_core::event::{Completion, FinishReason, GenerationEvent, Timings, TokenLogprob, TopLogprob, Usage};
use edgeway_core::{
    Backend, BackendError, BackendLoad, ChatMessage, GenerateRequest, Generation, ModelInfo, OutputFormat, Prompt,
    ToolCallDelta, ToolChoice, ToolUse,
};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use edgeway_structured::tools::tool_json;

use crate::config::UpstreamConfig;
use crate::sse::SseParser;

/// Most bytes of an upstream error body quoted in our error message.
const ERROR_BODY_QUOTE: usize = 300;

type EventSender = mpsc::UnboundedSender<Result<GenerationEvent, BackendError>>;

/// A cloud tier as a [`Backend`].
pub struct CloudBackend {
    config: Arc<UpstreamConfig>,
    http: reqwest::Client,
    info: ModelInfo,
    in_flight: Arc<AtomicU32>,
}

impl CloudBackend {
    /// A backend for `config`. Nothing is sent until the first request, so
    /// startup never waits on the network.
    pub fn new(config: UpstreamConfig) -> Result<Self, BackendError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .build()
            .map_err(|error| BackendError::Unavailable(format!("cannot build an HTTP client: {error}")))?;
        let info = ModelInfo {
            id: config.name.clone(),
            path: Some(config.base_url.clone()),
            n_ctx_slot: config.n_ctx,
            n_ctx_train: config.n_ctx,
            n_params: 0,
            size_bytes: 0,
            parallel: u32::MAX,
            price_input_per_mtok: config.price_input_per_mtok,
            price_output_per_mtok: config.price_output_per_mtok,
        };
        Ok(Self { config: Arc::new(config), http, info, in_flight: Arc::new(AtomicU32::new(0)) })
    }

    /// The tier's settings.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }
}

impl Backend for CloudBackend {
    fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    fn load(&self) -> BackendLoad {
        BackendLoad { busy_slots: self.in_flight.load(Ordering::Relaxed), queued: 0, power_watts: None, cloud_up: None }
    }

    fn submit(&self, request: GenerateRequest) -> Result<Generation, BackendError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| BackendError::Unavailable("the cloud backend needs an async runtime".into()))?;
        let (events, receiver) = mpsc::unbounded_channel();
        let call = UpstreamCall { config: self.config.clone(), http: self.http.clone(), request, events };
        let in_flight = self.in_flight.clone();
        in_flight.fetch_add(1, Ordering::Relaxed);
        runtime.spawn(async move {
            let events = call.events.clone();
            if let Err(error) = call.run().await {
                let _ = events.send(Err(error));
            }
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
        Ok(Generation::new(0, receiver))
    }
}

/// One request in flight upstream.
struct UpstreamCall {
    config: Arc<UpstreamConfig>,
    http: reqwest::Client,
    request: GenerateRequest,
    events: EventSender,
}

/// What the stream told us so far.
#[derive(Default)]
struct StreamState {
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    content_chunks: u32,
    first_token_at: Option<Instant>,
}

impl UpstreamCall {
    async fn run(self) -> Result<(), BackendError> {
        let (path, body) = self.request_body();
        let url = format!("{}{}", self.config.base_url, path);
        let started = Instant::now();
        let timeout = self.config.timeout;
        let name = &self.config.name;

        let mut builder = self.http.post(&url).json(&body);
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key);
        }
        let response = tokio::time::timeout(timeout, builder.send())
            .await
            .map_err(|_| BackendError::Unavailable(format!("cloud '{name}' did not answer within {timeout:?}")))?
            .map_err(|error| {
                BackendError::Unavailable(format!("cloud '{name}' is unreachable: {}", root_cause(&error)))
            })?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let quoted: String = text.chars().take(ERROR_BODY_QUOTE).collect();
            let message = format!("cloud '{name}' answered {status}: {quoted}");
            // A 4xx about the request itself is the client's to fix; anything else
            // (5xx, 429, a rejected key) is the cloud's problem, and the edge may step in.
            return Err(match status.as_u16() {
                400 | 404 | 413 | 422 => BackendError::InvalidRequest(message),
                _ => BackendError::Unavailable(message),
            });
        }

        let mut bytes = response.bytes_stream();
        let mut parser = SseParser::default();
        let mut state = StreamState::default();
        loop {
            let next = tokio::time::timeout(timeout, bytes.next()).await.map_err(|_| {
                self.mid_stream_error(&state, format!("cloud '{name}' stalled for more than {timeout:?}"))
            })?;
            let chunk = match next {
                None => break,
                Some(Ok(chunk)) => chunk,
                Some(Err(error)) => {
                    return Err(self
                        .mid_stream_error(&state, format!("cloud '{name}' broke the stream: {}", root_cause(&error))))
                }
            };
            for data in parser.push(&chunk) {
                if data == "[DONE]" {
                    return self.finish(&state, started);
                }
                if !self.handle_chunk(&data, &mut state)? {
                    return Ok(()); // the client went away
                }
            }
        }
        if state.finish_reason.is_some() {
            return self.finish(&state, started);
        }
        Err(self.mid_stream_error(&state, format!("cloud '{name}' closed the stream before the answer ended")))
    }

    /// An error after some output is internal (the answer is cut); before any, the cloud is unavailable.
    fn mid_stream_error(&self, state: &StreamState, message: String) -> BackendError {
        if state.content_chunks == 0 {
            BackendError::Unavailable(message)
        } else {
            BackendError::Internal(message)
        }
    }

    /// Applies one JSON chunk. Returns false when the client has gone.
    fn handle_chunk(&self, data: &str, state: &mut StreamState) -> Result<bool, BackendError> {
        let chunk: Value = serde_json::from_str(data).map_err(|error| {
            self.mid_stream_error(state, format!("cloud '{}' sent a chunk that is not JSON: {error}", self.config.name))
        })?;
        if let Some(error) = chunk.get("error") {
            let message = error["message"].as_str().unwrap_or("unknown error");
            return Err(
                self.mid_stream_error(state, format!("cloud '{}' failed mid-stream: {message}", self.config.name))
            );
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            state.usage = Some(Usage {
                prompt_tokens: as_u32(&usage["prompt_tokens"]),
                completion_tokens: as_u32(&usage["completion_tokens"]),
                cached_tokens: as_u32(&usage["prompt_tokens_details"]["cached_tokens"]),
            });
        }
        let Some(choice) = chunk["choices"].get(0) else { return Ok(true) };
        match choice["finish_reason"].as_str() {
            Some("length") => state.finish_reason = Some(FinishReason::Length),
            Some("tool_calls") => state.finish_reason = Some(FinishReason::ToolCalls),
            Some(_) => state.finish_reason = Some(FinishReason::Stop),
            None => {}
        }
        for delta in tool_call_deltas(&choice["delta"]["tool_calls"]) {
            state.content_chunks += 1;
            state.first_token_at.get_or_insert_with(Instant::now);
            if self.events.send(Ok(GenerationEvent::ToolCall(delta))).is_err() {
                return Ok(false);
            }
        }
        let text = choice["delta"]["content"].as_str().or_else(|| choice["text"].as_str()).unwrap_or_default();
        let logprobs = parse_logprobs(&choice["logprobs"]);
        if text.is_empty() && logprobs.is_empty() {
            return Ok(true);
        }
        state.content_chunks += 1;
        state.first_token_at.get_or_insert_with(Instant::now);
        Ok(self.events.send(Ok(GenerationEvent::Delta { text: text.to_owned(), logprobs })).is_ok())
    }

    fn finish(&self, state: &StreamState, started: Instant) -> Result<(), BackendError> {
        let finished_at = Instant::now();
        let first = state.first_token_at.unwrap_or(finished_at);
        // Upstreams that send no usage get the count of content chunks, about one per token.
        let usage = state.usage.unwrap_or(Usage {
            prompt_tokens: 0,
            completion_tokens: state.content_chunks,
            cached_tokens: 0,
        });
        let completion = Completion {
            finish_reason: state.finish_reason.unwrap_or(FinishReason::Stop),
            usage,
            energy: None,
            choices: Vec::new(),
            timings: Timings {
                queued_ms: 0.0,
                prompt_n: usage.prompt_tokens,
                prompt_ms: (first - started).as_secs_f64() * 1000.0,
                predicted_n: usage.completion_tokens,
                predicted_ms: (finished_at - first).as_secs_f64() * 1000.0,
            },
        };
        let _ = self.events.send(Ok(GenerationEvent::Finished(completion)));
        Ok(())
    }

    /// The upstream path and JSON body for this request.
    fn request_body(&self) -> (&'static str, Value) {
        let sampling = &self.request.sampling;
        let mut body = json!({
            "model": self.config.model,
            "stream": true,
            "stream_options": { "include_usage": true },
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        });
        let fields = body.as_object_mut().expect("a JSON object literal");
        if let Some(max_tokens) = sampling.max_tokens {
            fields.insert("max_tokens".into(), json!(max_tokens));
        }
        if let Some(seed) = sampling.seed {
            fields.insert("seed".into(), json!(seed));
        }
        if !sampling.stop.is_empty() {
            fields.insert("stop".into(), json!(sampling.stop));
        }
        if sampling.frequency_penalty != 0.0 {
            fields.insert("frequency_penalty".into(), json!(sampling.frequency_penalty));
        }
        if sampling.presence_penalty != 0.0 {
            fields.insert("presence_penalty".into(), json!(sampling.presence_penalty));
        }
        if let Some(format) = &sampling.format {
            let (name, value) = format_field(format);
            fields.insert(name.into(), value);
        }
        match &self.request.prompt {
            Prompt::Chat(messages) => {
                let messages: Vec<Value> = messages.iter().map(message_json).collect();
                fields.insert("messages".into(), Value::Array(messages));
                if let Some(tools) = &self.request.tools {
                    insert_tools(fields, tools);
                }
                if let Some(top) = sampling.logprobs {
                    fields.insert("logprobs".into(), json!(true));
                    fields.insert("top_logprobs".into(), json!(top));
                }
                ("/chat/completions", body)
            }
            Prompt::Text(text) => {
                fields.insert("prompt".into(), json!(text));
                if let Some(top) = sampling.logprobs {
                    fields.insert("logprobs".into(), json!(top));
                }
                ("/completions", body)
            }
        }
    }
}

/// The structured-output field for the upstream: OpenAI's `response_format` for JSON,
/// llama-server's `grammar` for a raw grammar (an upstream that does not know it may
/// ignore it; the answer is checked either way).
fn format_field(format: &OutputFormat) -> (&'static str, Value) {
    match format {
        OutputFormat::JsonObject => ("response_format", json!({"type": "json_object"})),
        OutputFormat::JsonSchema { name, schema, strict } => {
            let schema: Value = serde_json::from_str(schema).unwrap_or(Value::Null);
            let name = name.as_deref().unwrap_or("response");
            (
                "response_format",
                json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}),
            )
        }
        OutputFormat::Grammar(grammar) => ("grammar", json!(grammar)),
    }
}

/// A message as OpenAI's API takes it, with the calls and call ids of a tool conversation.
fn message_json(message: &ChatMessage) -> Value {
    let mut value = json!({"role": message.role, "content": message.content});
    if !message.tool_calls.is_empty() {
        let calls: Vec<Value> = message
            .tool_calls
            .iter()
            .map(|call| json!({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}))
            .collect();
        value["tool_calls"] = Value::Array(calls);
        if message.content.is_empty() {
            value["content"] = Value::Null;
        }
    }
    if let Some(id) = &message.tool_call_id {
        value["tool_call_id"] = json!(id);
    }
    value
}

/// `tools`, `tool_choice` and `parallel_tool_calls`, passed through as the client sent them.
fn insert_tools(fields: &mut serde_json::Map<String, Value>, tools: &ToolUse) {
    let specs: Vec<Value> = tools
        .tools
        .iter()
        .map(|tool| {
            let mut spec = tool_json(tool);
            if tool.strict {
                spec["function"]["strict"] = json!(true);
            }
            spec
        })
        .collect();
    fields.insert("tools".into(), Value::Array(specs));
    let choice = match &tools.choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
    };
    fields.insert("tool_choice".into(), choice);
    if !tools.parallel {
        fields.insert("parallel_tool_calls".into(), json!(false));
    }
}

/// The pieces of `delta.tool_calls` (a call's first piece has its id and name).
fn tool_call_deltas(value: &Value) -> Vec<ToolCallDelta> {
    let Some(items) = value.as_array() else { return Vec::new() };
    items
        .iter()
        .enumerate()
        .map(|(position, item)| ToolCallDelta {
            index: item["index"].as_u64().map_or(position as u32, |i| i as u32),
            id: item["id"].as_str().map(str::to_owned),
            name: item["function"]["name"].as_str().map(str::to_owned),
            arguments: item["function"]["arguments"].as_str().unwrap_or_default().to_owned(),
        })
        .filter(|delta| delta.id.is_some() || delta.name.is_some() || !delta.arguments.is_empty())
        .collect()
}

/// Chat-style `logprobs.content` entries (the legacy shape is not passed through).
fn parse_logprobs(value: &Value) -> Vec<TokenLogprob> {
    let entry = |v: &Value| TopLogprob {
        token: v["token"].as_str().unwrap_or_default().to_owned(),
        bytes: v["bytes"]
            .as_array()
            .map(|b| b.iter().filter_map(|x| x.as_u64().map(|x| x as u8)).collect())
            .unwrap_or_default(),
        logprob: v["logprob"].as_f64().unwrap_or(f64::NEG_INFINITY) as f32,
    };
    value["content"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| TokenLogprob {
                    chosen: entry(item),
                    top: item["top_logprobs"].as_array().map(|t| t.iter().map(entry).collect()).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn as_u32(value: &Value) -> u32 {
    value.as_u64().map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// The innermost cause of a reqwest error, which says what actually happened ("connection refused").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
