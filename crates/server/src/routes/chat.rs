//! `POST /v1/chat/completions`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use edgeway_core::{Completion, TokenLogprob, ToolCallDelta};
use edgeway_guard::Caller;
use serde_json::Value;

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::rag::{requested_collection, COLLECTION_HEADER};
use crate::state::AppState;
use crate::stream::{accounting_headers, collect, route_headers, sse_response, whole_answer_extension, ChunkShape};
use crate::wire::chat::{ChatChunk, ChatCompletion, ChatLogprobs, ChatRequest, ChunkChoice, Delta};
use crate::wire::common::{response_id, unix_seconds, TimingsBody, UsageBody};

/// Answers a chat, streamed or whole.
pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let backend = state.backend_for(body.model.as_deref())?;
    let model_field = body.model.clone();
    let (request, options) = body.validate()?;
    let wants_logprobs = request.sampling.logprobs.is_some();
    let header = headers.get(COLLECTION_HEADER).and_then(|v| v.to_str().ok());
    let collection = requested_collection(options.collection.as_deref(), header, state.rag());
    let asker = super::Asker { caller: &caller, model: model_field.as_deref(), collection };
    let checks = super::Checks { format: options.format_check, tools: options.tools_check };
    let (mut started, model) = super::begin(&state, backend, &headers, "chat", asker, request, checks).await?;
    let id = response_id("chatcmpl");
    let created = unix_seconds();
    if options.stream {
        let shape = ChatShape { id, created, model, wants_logprobs, include_usage: options.include_usage };
        return Ok(sse_response(started, shape));
    }
    let mut route = route_headers(started.route.as_ref());
    let route_info = started.route.clone();
    let sources = std::mem::take(&mut started.sources);
    let collected = collect(started).await?;
    route.extend(accounting_headers(route_info.as_ref(), &collected.completion));
    let (headers, extension) = whole_answer_extension(&sources, &collected);
    route.extend(headers);
    let logprobs = ChatLogprobs::from_entries(wants_logprobs, &collected.logprobs);
    let mut body =
        ChatCompletion::new(id, created, model, collected.text, collected.tool_calls, logprobs, &collected.completion);
    body.x_edgeway = extension;
    Ok((route, axum::Json(body)).into_response())
}

/// The chunks of a streamed chat completion.
struct ChatShape {
    id: String,
    created: u64,
    model: String,
    wants_logprobs: bool,
    include_usage: bool,
}

impl ChatShape {
    fn chunk(&self, choice: Option<ChunkChoice>, completion: Option<&Completion>) -> Value {
        let chunk = ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices: choice.into_iter().collect(),
            usage: completion.map(UsageBody::from),
            timings: completion.map(TimingsBody::from),
        };
        serde_json::to_value(chunk).unwrap_or_default()
    }
}

impl ChunkShape for ChatShape {
    fn opening(&mut self) -> Vec<Value> {
        let delta = Delta { role: Some("assistant"), content: Some(String::new()), tool_calls: None };
        vec![self.chunk(Some(ChunkChoice { index: 0, delta, logprobs: None, finish_reason: None }), None)]
    }

    fn delta(&mut self, text: String, logprobs: &[TokenLogprob]) -> Value {
        let choice = ChunkChoice {
            index: 0,
            delta: Delta { role: None, content: Some(text), tool_calls: None },
            logprobs: ChatLogprobs::from_entries(self.wants_logprobs, logprobs),
            finish_reason: None,
        };
        self.chunk(Some(choice), None)
    }

    fn tool_call(&mut self, call: ToolCallDelta) -> Option<Value> {
        let choice = ChunkChoice {
            index: 0,
            delta: Delta { role: None, content: None, tool_calls: Some(vec![call.into()]) },
            logprobs: None,
            finish_reason: None,
        };
        Some(self.chunk(Some(choice), None))
    }

    fn closing(&mut self, completion: &Completion) -> Vec<Value> {
        let last = ChunkChoice {
            index: 0,
            delta: Delta::default(),
            logprobs: None,
            finish_reason: Some(completion.finish_reason.as_str()),
        };
        let mut chunks = vec![self.chunk(Some(last), None)];
        if self.include_usage {
            // As OpenAI does: a final chunk with no choices that carries usage.
            chunks.push(self.chunk(None, Some(completion)));
        } else if let Some(Value::Object(map)) = chunks.first_mut() {
            // Timings ride on the last chunk (llama-server's extension) even without usage.
            map.insert("timings".into(), serde_json::to_value(TimingsBody::from(completion)).unwrap_or_default());
        }
        chunks
    }
}
