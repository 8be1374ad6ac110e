//! `POST /v1/completions`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use edgeway_core::{Completion, TokenLogprob};
use edgeway_guard::Caller;
use serde_json::Value;

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::state::AppState;
use crate::stream::{accounting_headers, collect, route_headers, sse_response, whole_answer_extension, ChunkShape};
use crate::wire::common::{response_id, unix_seconds};
use crate::wire::completion::{CompletionRequest, TextCompletion, TextLogprobs};

/// Continues a text prompt, streamed or whole.
pub async fn completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let backend = state.backend_for(body.model.as_deref())?;
    let model_field = body.model.clone();
    let (request, options) = body.validate()?;
    let wants_logprobs = request.sampling.logprobs.is_some();
    let asker = super::Asker { caller: &caller, model: model_field.as_deref(), collection: None };
    let (started, model) = super::begin(
        &state,
        backend,
        &headers,
        "completions",
        asker,
        request,
        super::Checks { format: options.format_check, tools: None },
    )
    .await?;
    let id = response_id("cmpl");
    let created = unix_seconds();
    let prefix = options.echo_prefix.unwrap_or_default();
    if options.stream {
        let shape =
            TextShape { id, created, model, wants_logprobs, include_usage: options.include_usage, prefix, offset: 0 };
        return Ok(sse_response(started, shape));
    }
    let mut route = route_headers(started.route.as_ref());
    let route_info = started.route.clone();
    let collected = collect(started).await?;
    route.extend(accounting_headers(route_info.as_ref(), &collected.completion));
    let logprobs = TextLogprobs::from_entries(wants_logprobs, &collected.logprobs, prefix.len());
    let text = prefix + &collected.text;
    let mut body = TextCompletion::new(id, created, model, text, logprobs, Some(&collected.completion));
    let (headers, extension) = whole_answer_extension(&[], &collected);
    route.extend(headers);
    body.x_edgeway = extension;
    Ok((route, axum::Json(body)).into_response())
}

/// The chunks of a streamed text completion.
struct TextShape {
    id: String,
    created: u64,
    model: String,
    wants_logprobs: bool,
    include_usage: bool,
    /// Echoed prompt, sent as the first chunk.
    prefix: String,
    /// Bytes of text sent so far, for `text_offset`.
    offset: usize,
}

impl TextShape {
    fn chunk(&self, text: String, logprobs: Option<TextLogprobs>, completion: Option<&Completion>) -> Value {
        let chunk = TextCompletion::new(self.id.clone(), self.created, self.model.clone(), text, logprobs, completion);
        serde_json::to_value(chunk).unwrap_or_default()
    }
}

impl ChunkShape for TextShape {
    fn opening(&mut self) -> Vec<Value> {
        if self.prefix.is_empty() {
            return Vec::new();
        }
        let prefix = std::mem::take(&mut self.prefix);
        self.offset = prefix.len();
        vec![self.chunk(prefix, None, None)]
    }

    fn delta(&mut self, text: String, logprobs: &[TokenLogprob]) -> Value {
        let logprobs = TextLogprobs::from_entries(self.wants_logprobs, logprobs, self.offset);
        self.offset += text.len();
        self.chunk(text, logprobs, None)
    }

    fn closing(&mut self, completion: &Completion) -> Vec<Value> {
        let mut last = self.chunk(String::new(), None, Some(completion));
        if !self.include_usage {
            if let Value::Object(map) = &mut last {
                map.remove("usage");
            }
        }
        vec![last]
    }
}
