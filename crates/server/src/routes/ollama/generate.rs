//! `POST /api/chat` and `POST /api/generate`: Ollama's generating endpoints, streamed as
//! newline-delimited JSON unless `"stream": false`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use edgeway_core::{Backend, Completion, KeepAlive, TokenLogprob, ToolCall, ToolCallDelta};
use edgeway_guard::{Ask, Caller};
use serde_json::Value;

use super::OllamaJson;
use crate::error::ApiError;
use crate::rag::{requested_collection, COLLECTION_HEADER};
use crate::state::AppState;
use crate::stream::{
    accounting_headers, collect, ndjson_response, route_headers, whole_answer_extension, ChunkShape, Started,
};
use crate::wire::ollama::base_name;
use crate::wire::ollama::reply::{Reply, ReplyKind};
use crate::wire::ollama::request::{required_model, ChatBody, GenerateBody, Intent, Job};

/// Answers a chat. Retrieval applies as on `/v1/chat/completions` (the `x-edgeway-collection`
/// header, or the server's default collection).
pub async fn chat(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    OllamaJson(body): OllamaJson<ChatBody>,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let model = required_model(body.model.as_deref())?.to_owned();
    let backend = state.backend_for(Some(base_name(&model)))?;
    let Job { request, format_check, tools_check, stream } = match body.validate()? {
        Intent::Load { keep_alive } => {
            return load_call(&state, &caller, backend, ReplyKind::Chat, &model, keep_alive).await
        }
        Intent::Generate(job) => *job,
    };
    let header = headers.get(COLLECTION_HEADER).and_then(|v| v.to_str().ok());
    let collection = requested_collection(None, header, state.rag());
    let wants_logprobs = request.sampling.logprobs.is_some();
    let asker = super::super::Asker { caller: &caller, model: Some(base_name(&model)), collection };
    let (started, _) = super::super::begin(
        &state,
        backend,
        &headers,
        "ollama_chat",
        asker,
        request,
        super::super::Checks { format: format_check, tools: tools_check },
    )
    .await?;
    let shape = OllamaShape { kind: ReplyKind::Chat, model, arrived, wants_logprobs, calls: 0 };
    respond(started, shape, stream).await
}

/// Continues a prompt: as a user message in the model's chat template, or as it is with `raw`.
pub async fn generate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    OllamaJson(body): OllamaJson<GenerateBody>,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let model = required_model(body.model.as_deref())?.to_owned();
    let backend = state.backend_for(Some(base_name(&model)))?;
    let Job { request, format_check, stream, .. } = match body.validate()? {
        Intent::Load { keep_alive } => {
            return load_call(&state, &caller, backend, ReplyKind::Generate, &model, keep_alive).await
        }
        Intent::Generate(job) => *job,
    };
    let wants_logprobs = request.sampling.logprobs.is_some();
    let asker = super::super::Asker { caller: &caller, model: Some(base_name(&model)), collection: None };
    let (started, _) = super::super::begin(
        &state,
        backend,
        &headers,
        "ollama_generate",
        asker,
        request,
        super::super::Checks { format: format_check, tools: None },
    )
    .await?;
    let shape = OllamaShape { kind: ReplyKind::Generate, model, arrived, wants_logprobs, calls: 0 };
    respond(started, shape, stream).await
}

/// Ollama's load and unload calls, a request without a prompt: it loads `model` and keeps it
/// for `keep_alive` (its default when absent), answering once it is in memory; with
/// `keep_alive` 0 it unloads the model as soon as its running requests end.
async fn load_call(
    state: &AppState,
    caller: &Caller,
    backend: Arc<dyn Backend>,
    kind: ReplyKind,
    model: &str,
    keep_alive: Option<KeepAlive>,
) -> Result<Response, ApiError> {
    let name = base_name(model);
    // A key kept to some models may not load or unload the others either.
    state.guard().authorize(caller, &Ask { model: Some(name), route: None, logprobs: false })?;
    let target = backend.serves(name).then_some(name);
    if keep_alive.is_some_and(KeepAlive::is_zero) {
        backend.unload(target)?;
        return Ok(Json(Reply::unloaded(kind, model)).into_response());
    }
    backend.preload(target, keep_alive).await?;
    Ok(Json(Reply::loaded(kind, model)).into_response())
}

/// Streams the generation as NDJSON, or waits for it and answers with one object.
async fn respond(mut started: Started, shape: OllamaShape, stream: bool) -> Result<Response, ApiError> {
    if stream {
        return Ok(ndjson_response(started, shape));
    }
    let mut headers = route_headers(started.route.as_ref());
    let route = started.route.clone();
    let sources = std::mem::take(&mut started.sources);
    let collected = collect(started).await?;
    headers.extend(accounting_headers(route.as_ref(), &collected.completion));
    let (extra_headers, extension) = whole_answer_extension(&sources, &collected);
    headers.extend(extra_headers);
    let mut reply =
        Reply::finished(shape.kind, &shape.model, collected.text, &collected.completion, shape.arrived.elapsed())
            .with_logprobs(shape.wants_logprobs, &collected.logprobs)
            .with_tool_calls(collected.tool_calls);
    reply.x_edgeway = extension;
    Ok((headers, Json(reply)).into_response())
}

/// The lines of a streamed Ollama reply: text pieces, then a `done` line with the counters.
struct OllamaShape {
    kind: ReplyKind,
    /// The model's name as the request gave it (Ollama echoes it).
    model: String,
    /// When the request arrived, for `total_duration`.
    arrived: Instant,
    wants_logprobs: bool,
    /// Calls streamed so far.
    calls: u32,
}

impl ChunkShape for OllamaShape {
    fn opening(&mut self) -> Vec<Value> {
        Vec::new()
    }

    fn delta(&mut self, text: String, logprobs: &[TokenLogprob]) -> Value {
        let reply = Reply::text(self.kind, &self.model, text).with_logprobs(self.wants_logprobs, logprobs);
        serde_json::to_value(reply).unwrap_or_default()
    }

    fn tool_call(&mut self, call: ToolCallDelta) -> Option<Value> {
        // The edge sends each call whole; a cloud's pieces go out as they come.
        let call = ToolCall {
            id: call.id.unwrap_or_default(),
            name: call.name.unwrap_or_default(),
            arguments: call.arguments,
        };
        let index = self.calls;
        self.calls += 1;
        let mut reply = Reply::text(self.kind, &self.model, String::new()).with_tool_calls(vec![call]);
        if let Some(first) = reply.message.as_mut().and_then(|m| m.tool_calls.first_mut()) {
            first.function.index = Some(index);
        }
        serde_json::to_value(reply).ok()
    }

    fn closing(&mut self, completion: &Completion) -> Vec<Value> {
        let reply = Reply::finished(self.kind, &self.model, String::new(), completion, self.arrived.elapsed());
        vec![serde_json::to_value(reply).unwrap_or_default()]
    }
}
