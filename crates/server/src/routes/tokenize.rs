//! `POST /tokenize` (llama-server's endpoint): the token ids of a text prompt,
//! as `/v1/completions` would feed them to the model.

use axum::extract::State;
use axum::Json;
use edgeway_core::Prompt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::state::AppState;

/// A tokenize request.
#[derive(Debug, Deserialize)]
pub struct TokenizeRequest {
    pub model: Option<String>,
    pub content: String,
}

/// Answers `{"tokens": [ids…]}`.
pub async fn tokenize(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TokenizeRequest>,
) -> Result<Json<Value>, ApiError> {
    let backend = state.backend_for(body.model.as_deref())?;
    let prompt = Prompt::Text(body.content);
    let heavy = prompt.text_len() >= edgeway_core::LARGE_PROMPT_BYTES;
    let tokens = edgeway_core::off_runtime_if(heavy, move || backend.tokenize(&prompt)).await??;
    Ok(Json(json!({ "tokens": tokens })))
}
