//! From a backend's [`Generation`] to a response body: collected whole, or as
//! server-sent events (newline-delimited JSON on the Ollama routes: [`ndjson_response`]).
//!
//! Both endpoints share this code through [`ChunkShape`], which says how
//! their chunks look; the order of events and the `[DONE]` marker live here
//! once.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use edgeway_core::{
    BackendError, Completion, Generation, GenerationEvent, RouteInfo, TokenLogprob, ToolCall, ToolCallDelta,
};
use edgeway_structured::tools::ToolsCheck;
use edgeway_structured::{FormatCheck, Verdict};
use futures::Stream;
use serde_json::Value;

use crate::error::ApiError;
use crate::record::Recorder;
use crate::wire::tools::CallAssembler;

/// A generation run to its end.
pub struct Collected {
    /// The whole answer's text.
    pub text: String,
    /// The function calls it made.
    pub tool_calls: Vec<ToolCall>,
    /// One entry per generated token, when asked for.
    pub logprobs: Vec<TokenLogprob>,
    /// How it ended.
    pub completion: Completion,
    /// The structured-output check's result (`x_edgeway.format`), when a format was asked for.
    pub format: Option<Value>,
}

/// A generation whose route is settled and whose first output is known.
///
/// Waiting for the first output before answering means every failure that
/// happens before any text (a cloud that is down and an edge that is full, a
/// prompt too long for the side that was chosen) reaches the client as an
/// HTTP status, and the route can go into the response headers.
pub struct Started {
    generation: Generation,
    /// Where the request is answered, if a router said so.
    pub route: Option<RouteInfo>,
    /// Passages retrieval added to the prompt, listed as sources in the response.
    pub sources: Vec<edgeway_core::Passage>,
    first: Option<GenerationEvent>,
    recorder: Recorder,
    /// The structured-output check, when the request asked for a format.
    format: Option<FormatWatch>,
}

/// Follows the answer of a structured request (a format, tools or both) and checks it when it ends.
#[derive(Default)]
struct FormatWatch {
    format: Option<FormatCheck>,
    tools: Option<ToolsCheck>,
    answer: String,
    calls: CallAssembler,
    /// What was checked (`json_schema`, `tools`…) and the verdict, once the answer has ended.
    verdict: Option<(&'static str, Verdict)>,
}

impl FormatWatch {
    /// An answer with calls is checked against the tools; one in text against the format, if any.
    fn judge(&self, completion: &Completion) -> Option<(&'static str, Verdict)> {
        let calls = self.calls.calls();
        if let Some(tools) = self.tools.as_ref().filter(|_| !calls.is_empty() || self.format.is_none()) {
            return Some(("tools", tools.check(calls, completion.finish_reason)));
        }
        let format = self.format.as_ref()?;
        Some((format.kind(), format.check(&self.answer, completion.finish_reason)))
    }
}

impl Started {
    /// Checks the answer when it ends, the text with `format` and any calls with `tools`:
    /// the verdict goes into the response's `x_edgeway.format` and the query log.
    pub fn watch_format(&mut self, format: Option<FormatCheck>, tools: Option<ToolsCheck>) {
        if format.is_some() || tools.is_some() {
            self.format = Some(FormatWatch { format, tools, ..FormatWatch::default() });
        }
    }

    /// The format check's result, for `x_edgeway.format`, once the answer has ended.
    pub fn format_json(&self) -> Option<Value> {
        let watch = self.format.as_ref()?;
        let (kind, verdict) = watch.verdict.as_ref()?;
        let mut json = serde_json::json!({ "type": kind, "valid": verdict.is_ok(), "verdict": verdict.as_str() });
        if let Verdict::Invalid(reason) = verdict {
            json["error"] = Value::String(reason.clone());
        }
        Some(json)
    }

    /// The next event, the held first one included; the recorder sees each.
    async fn next_event(&mut self) -> Option<Result<GenerationEvent, BackendError>> {
        let event = match self.first.take() {
            Some(event) => Some(Ok(event)),
            None => self.generation.next_event().await,
        };
        if let (Some(watch), Some(Ok(event))) = (self.format.as_mut(), event.as_ref()) {
            match event {
                GenerationEvent::Delta { text, .. } => watch.answer.push_str(text),
                GenerationEvent::ToolCall(delta) => watch.calls.push(delta),
                GenerationEvent::Finished(completion) => {
                    if let Some((kind, verdict)) = watch.judge(completion) {
                        self.recorder.observe_format(kind, &verdict);
                        watch.verdict = Some((kind, verdict));
                    }
                }
                GenerationEvent::Routed(_) => {}
            }
        }
        if let Some(event) = event.as_ref() {
            self.recorder.observe(event);
        }
        event
    }
}

fn ended_early() -> ApiError {
    ApiError::Backend(BackendError::Internal("the generation ended without finishing".into()))
}

/// Waits for the route and the first output (or the error that prevents any).
/// The recorder sees the route and writes the request's log row and metrics when it ends.
pub async fn start(mut generation: Generation, mut recorder: Recorder) -> Result<Started, ApiError> {
    let mut route = None;
    loop {
        match generation.next_event().await {
            Some(Ok(GenerationEvent::Routed(info))) => {
                recorder.observe_route(&info);
                route = Some(info);
            }
            Some(Ok(event)) => {
                return Ok(Started {
                    generation,
                    route,
                    sources: Vec::new(),
                    first: Some(event),
                    recorder,
                    format: None,
                })
            }
            Some(Err(error)) => {
                let error = ApiError::from(error);
                recorder.refused(&error);
                return Err(error);
            }
            None => {
                let error = ended_early();
                recorder.refused(&error);
                return Err(error);
            }
        }
    }
}

/// Waits for the whole answer.
pub async fn collect(mut started: Started) -> Result<Collected, ApiError> {
    let mut text = String::new();
    let mut logprobs = Vec::new();
    let mut calls = CallAssembler::default();
    while let Some(event) = started.next_event().await {
        match event? {
            GenerationEvent::Delta { text: piece, logprobs: entries } => {
                text.push_str(&piece);
                logprobs.extend(entries);
            }
            GenerationEvent::ToolCall(delta) => calls.push(&delta),
            GenerationEvent::Finished(completion) => {
                let format = started.format_json();
                return Ok(Collected { text, tool_calls: calls.into_calls(), logprobs, completion, format });
            }
            GenerationEvent::Routed(_) => {}
        }
    }
    Err(ended_early())
}

/// What a finished request cost, for the last chunk of a stream.
fn accounting_json(route: Option<&RouteInfo>, completion: &Completion) -> Value {
    let usage = completion.usage;
    serde_json::json!({
        "route": route.map(|r| r.target.as_str()),
        "cost": route.map_or(0.0, |r| r.cost(usage.prompt_tokens, usage.completion_tokens)),
        "energy_j": completion.energy.map(|e| e.joules),
        "energy_source": completion.energy.map(|e| e.source),
    })
}

/// Response headers with what a finished request cost: money on its route, energy on this device.
pub fn accounting_headers(route: Option<&RouteInfo>, completion: &Completion) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let usage = completion.usage;
    let cost = route.map_or(0.0, |r| r.cost(usage.prompt_tokens, usage.completion_tokens));
    if let Ok(value) = HeaderValue::from_str(&format!("{cost:.8}")) {
        headers.insert("x-edgeway-cost", value);
    }
    if let Some(energy) = completion.energy {
        if let Ok(value) = HeaderValue::from_str(&format!("{:.4}", energy.joules)) {
            headers.insert("x-edgeway-energy-j", value);
        }
        headers.insert("x-edgeway-energy-source", HeaderValue::from_static(energy.source));
    }
    headers
}

/// The `x-edgeway-format` header: `valid`, `invalid`, `truncated` or `unchecked`.
fn format_header(format: &Value) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(value) = format.get("verdict").and_then(Value::as_str).and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert("x-edgeway-format", value);
    }
    headers
}

/// `x_edgeway.choices`: each constrained choice the answer made and the probability the model gave it.
fn choices_json(completion: &Completion) -> Option<Value> {
    (!completion.choices.is_empty()).then(|| {
        completion
            .choices
            .iter()
            .map(|choice| {
                let value = serde_json::from_str(&choice.value).unwrap_or(Value::Null);
                serde_json::json!({ "path": choice.path, "value": value, "probability": choice.probability })
            })
            .collect()
    })
}

/// What edgeway adds to a whole (not streamed) answer: headers for the sources, the format
/// verdict and the least sure choice, and the `x_edgeway` object (`None` when it would be empty).
pub fn whole_answer_extension(sources: &[edgeway_core::Passage], collected: &Collected) -> (HeaderMap, Option<Value>) {
    let mut headers = HeaderMap::new();
    let mut extension = serde_json::Map::new();
    if !sources.is_empty() {
        headers.insert("x-edgeway-sources", HeaderValue::from(sources.len()));
        extension.insert("sources".into(), crate::rag::sources_json(sources));
    }
    if let Some(format) = &collected.format {
        headers.extend(format_header(format));
        extension.insert("format".into(), format.clone());
    }
    if let Some(choices) = choices_json(&collected.completion) {
        if let Some(least) = collected.completion.least_sure_choice() {
            if let Ok(value) = HeaderValue::from_str(&format!("{:.4}", least.probability)) {
                headers.insert("x-edgeway-choice-confidence", value);
            }
        }
        extension.insert("choices".into(), choices);
    }
    (headers, (!extension.is_empty()).then_some(Value::Object(extension)))
}

/// Response headers that say where a request was answered and why.
pub fn route_headers(route: Option<&RouteInfo>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let Some(route) = route else { return headers };
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put("x-edgeway-route", route.target.as_str());
    put("x-edgeway-route-reason", route.reason.as_str());
    put("x-edgeway-model", &route.model);
    if let Some(tier) = route.tier {
        put("x-edgeway-tier", &tier.to_string());
    }
    if let Some(tried) = edgeway_core::route::steps_line(&route.tried) {
        put("x-edgeway-tried", &tried);
    }
    if let Some(score) = route.score {
        put("x-edgeway-score", &format!("{score:.3}"));
    }
    if let Some(fallback) = route.score_fallback {
        put("x-edgeway-score-fallback", fallback.as_str());
    }
    if let Some(domain) = &route.domain {
        put("x-edgeway-domain", domain);
    }
    if let Some(failed) = &route.fallback_from {
        put("x-edgeway-fallback", failed);
    }
    headers
}

/// How one endpoint's streamed chunks look.
pub trait ChunkShape: Send + 'static {
    /// Chunks to send before any text (chat sends the assistant role).
    fn opening(&mut self) -> Vec<Value>;
    /// A chunk for new text.
    fn delta(&mut self, text: String, logprobs: &[TokenLogprob]) -> Value;
    /// A chunk for a function call or a piece of one; `None` where the endpoint has no tools.
    fn tool_call(&mut self, call: ToolCallDelta) -> Option<Value> {
        let _ = call;
        None
    }
    /// Chunks that close the stream: the finish reason, then usage if asked for.
    fn closing(&mut self, completion: &Completion) -> Vec<Value>;

    // What a shape whose events are not one chunk each overrides (the Responses API's
    // named events); the defaults are the chat and completions streams.

    /// All chunks for new text: by default the one [`ChunkShape::delta`] chunk.
    fn delta_chunks(&mut self, text: String, logprobs: &[TokenLogprob]) -> Vec<Value> {
        vec![self.delta(text, logprobs)]
    }
    /// All chunks for a call or a piece of one: by default the [`ChunkShape::tool_call`] chunk, if any.
    fn tool_call_chunks(&mut self, call: ToolCallDelta) -> Vec<Value> {
        self.tool_call(call).into_iter().collect()
    }
    /// Chunks that report an error after the stream began: by default the error body.
    fn failure(&mut self, error: &ApiError) -> Vec<Value> {
        vec![error.body()]
    }
    /// The SSE event name (`event:` line) of a chunk; `None`, the default, sends `data:` alone.
    fn event_name<'a>(&self, chunk: &'a Value) -> Option<&'a str> {
        let _ = chunk;
        None
    }
    /// Whether the stream ends with `data: [DONE]` (the default) after the closing chunks.
    fn sends_done(&self) -> bool {
        true
    }
}

/// Streams a generation as server-sent events, ending with `data: [DONE]` unless the shape
/// says otherwise.
///
/// Dropping the response body (the client went away) drops the
/// [`Generation`], which frees the backend's slot.
pub fn sse_response(started: Started, shape: impl ChunkShape) -> Response {
    let headers = route_headers(started.route.as_ref());
    let mut state = SseState { generation: started, shape, pending: VecDeque::new(), done: false };
    let opening = state.shape.opening();
    state.push(opening);
    (headers, Sse::new(sse_events(state))).into_response()
}

struct SseState<S> {
    generation: Started,
    shape: S,
    pending: VecDeque<Event>,
    done: bool,
}

impl<S: ChunkShape> SseState<S> {
    /// Queues chunks as events, named as the shape names them.
    fn push(&mut self, chunks: Vec<Value>) {
        for chunk in chunks {
            let event = match self.shape.event_name(&chunk) {
                Some(name) => Event::default().event(name),
                None => Event::default(),
            };
            self.pending.push_back(event.data(chunk.to_string()));
        }
    }
}

fn sse_events<S: ChunkShape>(state: SseState<S>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            if state.done {
                return None;
            }
            match state.generation.next_event().await {
                Some(Ok(GenerationEvent::Delta { text, logprobs })) => {
                    if !text.is_empty() || !logprobs.is_empty() {
                        let chunks = state.shape.delta_chunks(text, &logprobs);
                        state.push(chunks);
                    }
                }
                Some(Ok(GenerationEvent::ToolCall(call))) => {
                    let chunks = state.shape.tool_call_chunks(call);
                    state.push(chunks);
                }
                Some(Ok(GenerationEvent::Finished(completion))) => {
                    let mut closing = state.shape.closing(&completion);
                    // Headers are long gone by now: a stream's cost and energy ride on its last chunk.
                    if let Some(Value::Object(last)) = closing.last_mut() {
                        last.insert("x_edgeway".into(), extension_json(&state.generation, &completion));
                    }
                    state.push(closing);
                    if state.shape.sends_done() {
                        state.pending.push_back(Event::default().data("[DONE]"));
                    }
                    state.done = true;
                }
                Some(Ok(GenerationEvent::Routed(_))) => {}
                Some(Err(error)) => {
                    let chunks = state.shape.failure(&ApiError::from(error));
                    state.push(chunks);
                    state.done = true;
                }
                None => {
                    let chunks = state.shape.failure(&ended_early());
                    state.push(chunks);
                    state.done = true;
                }
            }
        }
    })
}

/// Streams a generation as newline-delimited JSON (`application/x-ndjson`), Ollama's framing:
/// one object a line, the shape's closing objects last (edgeway's `x_edgeway` accounting on the
/// very last), and an error after the start as a last line `{"error": "..."}`.
///
/// Dropping the response body (the client went away) drops the [`Generation`], as with SSE.
pub fn ndjson_response(started: Started, mut shape: impl ChunkShape) -> Response {
    let mut headers = route_headers(started.route.as_ref());
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    let pending = shape.opening().into();
    let state = NdjsonState { generation: started, shape, pending, done: false };
    (headers, Body::from_stream(ndjson_lines(state))).into_response()
}

struct NdjsonState<S> {
    generation: Started,
    shape: S,
    pending: VecDeque<Value>,
    done: bool,
}

fn ndjson_lines<S: ChunkShape>(state: NdjsonState<S>) -> impl Stream<Item = Result<String, Infallible>> {
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(value) = state.pending.pop_front() {
                return Some((Ok(format!("{value}\n")), state));
            }
            if state.done {
                return None;
            }
            match state.generation.next_event().await {
                Some(Ok(GenerationEvent::Delta { text, logprobs })) => {
                    if !text.is_empty() || !logprobs.is_empty() {
                        let line = state.shape.delta(text, &logprobs);
                        state.pending.push_back(line);
                    }
                }
                Some(Ok(GenerationEvent::ToolCall(call))) => state.pending.extend(state.shape.tool_call(call)),
                Some(Ok(GenerationEvent::Finished(completion))) => {
                    let mut closing = state.shape.closing(&completion);
                    if let Some(Value::Object(last)) = closing.last_mut() {
                        last.insert("x_edgeway".into(), extension_json(&state.generation, &completion));
                    }
                    state.pending.extend(closing);
                    state.done = true;
                }
                Some(Ok(GenerationEvent::Routed(_))) => {}
                Some(Err(error)) => {
                    state.pending.push_back(ApiError::from(error).ollama_body());
                    state.done = true;
                }
                None => {
                    state.pending.push_back(ended_early().ollama_body());
                    state.done = true;
                }
            }
        }
    })
}

/// What edgeway adds to a stream's last object: cost and energy, sources, the format check.
fn extension_json(started: &Started, completion: &Completion) -> Value {
    let mut extra = accounting_json(started.route.as_ref(), completion);
    if !started.sources.is_empty() {
        extra["sources"] = crate::rag::sources_json(&started.sources);
    }
    if let Some(format) = started.format_json() {
        extra["format"] = format;
    }
    if let Some(choices) = choices_json(completion) {
        extra["choices"] = choices;
    }
    extra
}
