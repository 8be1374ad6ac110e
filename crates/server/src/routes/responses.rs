//! `POST /v1/responses`: OpenAI's Responses API, stateless (every request carries
//! the whole conversation), with text, function tools, structured output and
//! streamed events.

mod events;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use edgeway_guard::Caller;

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::rag::{requested_collection, COLLECTION_HEADER};
use crate::state::AppState;
use crate::stream::{accounting_headers, collect, route_headers, sse_response, whole_answer_extension};
use crate::wire::common::unix_seconds;
use crate::wire::responses::object::{item_id, output_items, ResponseObject};
use crate::wire::responses::request::ResponsesRequest;

/// Answers a Responses API request, streamed or whole.
pub async fn responses(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ResponsesRequest>,
) -> Result<Response, ApiError> {
    let backend = state.backend_for(body.model.as_deref())?;
    let model_field = body.model.clone();
    let (request, options) = body.validate()?;
    let header = headers.get(COLLECTION_HEADER).and_then(|v| v.to_str().ok());
    let collection = requested_collection(options.collection.as_deref(), header, state.rag());
    let asker = super::Asker { caller: &caller, model: model_field.as_deref(), collection };
    let checks = super::Checks { format: options.format_check, tools: options.tools_check };
    let (mut started, model) = super::begin(&state, backend, &headers, "responses", asker, request, checks).await?;
    let response = ResponseObject::begun(item_id("resp"), unix_seconds(), model, options.settings);
    if options.stream {
        return Ok(sse_response(started, events::ResponseEvents::new(response)));
    }
    let mut headers = route_headers(started.route.as_ref());
    let route_info = started.route.clone();
    let sources = std::mem::take(&mut started.sources);
    let collected = collect(started).await?;
    headers.extend(accounting_headers(route_info.as_ref(), &collected.completion));
    let (extension_headers, extension) = whole_answer_extension(&sources, &collected);
    headers.extend(extension_headers);
    let output = output_items(collected.text, collected.tool_calls, collected.completion.finish_reason);
    let mut body = response.finished(output, &collected.completion);
    body.x_edgeway = extension;
    Ok((headers, axum::Json(body)).into_response())
}
