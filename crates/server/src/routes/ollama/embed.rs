//! `POST /api/embed` and the older `POST /api/embeddings`, over the embedding path of
//! `/v1/embeddings` (the same model, guard checks and query log).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::{Extension, Json};
use edgeway_core::{BackendError, EmbeddingBackend};
use edgeway_guard::Caller;
use serde_json::Value;

use super::OllamaJson;
use crate::error::{invalid, ApiError};
use crate::routes::embeddings::{embed_texts, embedder, inputs};
use crate::state::AppState;
use crate::wire::ollama::base_name;
use crate::wire::ollama::reply::{EmbedReply, LegacyEmbedding};
use crate::wire::ollama::request::{required_model, EmbedBody, LegacyEmbedBody};

/// One vector per input.
pub async fn embed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    OllamaJson(body): OllamaJson<EmbedBody>,
) -> Result<Json<EmbedReply>, ApiError> {
    let arrived = Instant::now();
    let model = required_model(body.model.as_deref())?.to_owned();
    let embedder = embedding_model(&state, &model)?;
    let info = embedder.embedding_info().clone();
    if let Some(dimensions) = body.dimensions.filter(|&d| d != info.dims) {
        return Err(invalid(
            "dimensions",
            format!("{} has {} dimensions and cannot shorten them to {dimensions}", info.id, info.dims),
        ));
    }
    let texts = match body.input {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if text.is_empty() => Vec::new(),
        Some(Value::Array(items)) if items.is_empty() => Vec::new(),
        Some(input) => inputs(&input)?,
    };
    let reply = |embeddings, prompt_eval_count| EmbedReply {
        model: model.clone(),
        embeddings,
        total_duration: u64::try_from(arrived.elapsed().as_nanos()).unwrap_or(u64::MAX),
        load_duration: 0,
        prompt_eval_count,
    };
    // Nothing to embed: Ollama answers with no vectors.
    if texts.is_empty() {
        return Ok(Json(reply(Vec::new(), 0)));
    }
    if body.truncate == Some(false) {
        refuse_long_inputs(embedder.clone(), texts.clone()).await?;
    }
    let output = embed_texts(&state, &caller, "ollama_embed", Some(base_name(&model)), embedder, texts).await?;
    Ok(Json(reply(output.vectors, output.prompt_tokens)))
}

/// Ollama's older route: one prompt, one vector.
pub async fn embeddings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    OllamaJson(body): OllamaJson<LegacyEmbedBody>,
) -> Result<Json<LegacyEmbedding>, ApiError> {
    let model = required_model(body.model.as_deref())?.to_owned();
    let embedder = embedding_model(&state, &model)?;
    let prompt = body.prompt.unwrap_or_default();
    // An empty prompt is Ollama's load call: an empty vector.
    if prompt.trim().is_empty() {
        return Ok(Json(LegacyEmbedding { embedding: Vec::new() }));
    }
    let output =
        embed_texts(&state, &caller, "ollama_embeddings", Some(base_name(&model)), embedder, vec![prompt]).await?;
    Ok(Json(LegacyEmbedding { embedding: output.vectors.into_iter().next().unwrap_or_default() }))
}

/// The embedding model, when `name` names it (`X` or `X:latest`); the chat model cannot embed.
fn embedding_model(state: &AppState, name: &str) -> Result<Arc<dyn EmbeddingBackend>, ApiError> {
    let embedder = embedder(state)?;
    let id = embedder.embedding_info().id.clone();
    let base = base_name(name);
    if base.eq_ignore_ascii_case(&id) {
        return Ok(embedder);
    }
    let chat_model =
        base.eq_ignore_ascii_case(state.model_id()) || state.backend().is_some_and(|backend| backend.serves(base));
    if chat_model {
        return Err(invalid("model", format!("\"{name}\" does not support embeddings; embed with '{id}'")));
    }
    Err(ApiError::UnknownModel { requested: name.to_owned(), available: id })
}

/// `truncate: false`: refuses an input longer than the model reads, instead of cutting it.
async fn refuse_long_inputs(embedder: Arc<dyn EmbeddingBackend>, texts: Vec<String>) -> Result<(), ApiError> {
    let limit = embedder.embedding_info().max_tokens;
    let too_long = tokio::task::spawn_blocking(move || texts.iter().position(|t| embedder.count_tokens(t) > limit))
        .await
        .map_err(|_| ApiError::Backend(BackendError::Internal("the embedding task failed".into())))?;
    match too_long {
        Some(index) => Err(invalid(
            "input",
            format!("input {index} exceeds the context length of {limit} tokens (truncate is false)"),
        )),
        None => Ok(()),
    }
}
