//! `POST /v1/embeddings`: OpenAI's embeddings endpoint over the local embedding model.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::Extension;
use axum::Json;
use base64::Engine as _;
use edgeway_core::{EmbeddingBackend, EmbeddingOutput};
use edgeway_guard::{Ask, Caller};
use edgeway_store::QueryRecord;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{invalid, ApiError};
use crate::json::ApiJson;
use crate::state::AppState;

/// Most inputs in one request (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// An embeddings request, as OpenAI defines it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsRequest {
    /// A string or an array of strings (token arrays are refused).
    pub input: Value,
    /// The embedding model's name.
    pub model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32).
    pub encoding_format: Option<String>,
    /// Fewer dimensions than the model's are not supported; the model's own count is accepted.
    pub dimensions: Option<usize>,
    /// OpenAI's end-user id; accepted and ignored.
    pub user: Option<String>,
}

/// The texts of `input`.
pub(crate) fn inputs(input: &Value) -> Result<Vec<String>, ApiError> {
    let texts = match input {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
        }
        Value::Array(items) if items.iter().all(|v| v.is_number() || v.is_array()) => {
            return Err(invalid("input", "token arrays are not supported here; send the text instead"));
        }
        _ => return Err(invalid("input", "input must be a string or an array of strings")),
    };
    if texts.is_empty() {
        return Err(invalid("input", "input must not be empty"));
    }
    if texts.len() > MAX_INPUTS {
        return Err(invalid("input", format!("at most {MAX_INPUTS} inputs per request, got {}", texts.len())));
    }
    if texts.iter().any(|t| t.trim().is_empty()) {
        return Err(invalid("input", "an input is empty; every input needs some text"));
    }
    Ok(texts)
}

/// The embedding model, or the 501 that says how to start the server with one.
pub(crate) fn embedder(state: &AppState) -> Result<Arc<dyn EmbeddingBackend>, ApiError> {
    state.embedder().cloned().ok_or_else(|| {
        ApiError::NotSupported(
            "this server has no embedding model loaded; start it with --embedding-model all-minilm-l6-v2 \
             (and without --no-embeddings)"
                .into(),
        )
    })
}

/// Embeds `texts` for `caller`: the guard's checks (`model` as the request named it), the model
/// on a blocking thread, and one query-log row under `endpoint`.
pub(crate) async fn embed_texts(
    state: &AppState,
    caller: &Caller,
    endpoint: &str,
    model: Option<&str>,
    embedder: Arc<dyn EmbeddingBackend>,
    texts: Vec<String>,
) -> Result<EmbeddingOutput, ApiError> {
    let started = Instant::now();
    let id = embedder.embedding_info().id.clone();
    let count = texts.len();
    super::admit(state.guard(), caller, &Ask { model, ..Ask::default() })?;
    let result = tokio::task::spawn_blocking(move || embedder.embed(&texts))
        .await
        .map_err(|_| ApiError::Backend(edgeway_core::BackendError::Internal("the embedding task failed".into())))?;
    log(state, caller, endpoint, &id, count, started, &result);
    result.map_err(ApiError::from)
}

/// Answers with one embedding per input.
pub async fn embeddings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<EmbeddingsRequest>,
) -> Result<Json<Value>, ApiError> {
    let embedder = embedder(&state)?;
    let info = embedder.embedding_info().clone();
    if let Some(model) = body.model.as_deref().filter(|m| !m.eq_ignore_ascii_case(&info.id)) {
        return Err(ApiError::UnknownModel { requested: model.to_owned(), available: info.id.clone() });
    }
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(
                "encoding_format",
                format!("encoding_format must be 'float' or 'base64', got '{other}'"),
            ))
        }
    };
    if let Some(dimensions) = body.dimensions.filter(|&d| d != info.dims) {
        return Err(invalid(
            "dimensions",
            format!("{} has {} dimensions and cannot shorten them to {dimensions}", info.id, info.dims),
        ));
    }
    let texts = inputs(&body.input)?;
    let EmbeddingOutput { vectors, prompt_tokens } =
        embed_texts(&state, &caller, "embeddings", body.model.as_deref(), embedder, texts).await?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": info.id,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    })))
}

/// One query-log row per embeddings request.
fn log(
    state: &AppState,
    caller: &Caller,
    endpoint: &str,
    model: &str,
    inputs: usize,
    started: Instant,
    result: &Result<EmbeddingOutput, edgeway_core::BackendError>,
) {
    let (status, error, tokens) = match result {
        Ok(output) => ("ok".to_owned(), None, output.prompt_tokens),
        Err(error) => {
            let error = ApiError::from(error.clone());
            (error.code().to_owned(), Some(error.to_string()), 0)
        }
    };
    if let Some(key_id) = &caller.key_id {
        state.guard().spend(key_id, u64::from(tokens));
    }
    let Some(settings) = state.log() else { return };
    settings.log.record(QueryRecord {
        ts_ms: edgeway_store::record::now_ms(),
        endpoint: endpoint.into(),
        key_id: caller.key_id.clone(),
        route: "edge".into(),
        reason: Some(format!("{inputs} inputs")),
        model: Some(model.to_owned()),
        prompt_tokens: tokens,
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        status,
        error,
        ..QueryRecord::default()
    });
}
