//! `GET /v1/models`.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::state::AppState;
use crate::wire::common::unix_seconds;

#[derive(Serialize)]
struct ModelList {
    object: &'static str,
    data: Vec<ModelEntry>,
}

#[derive(Serialize)]
struct ModelEntry {
    id: String,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
    /// llama-server's extension: facts about the loaded model, `null` while loading.
    meta: Option<Meta>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Meta {
    Chat(ModelMeta),
    Embedding(EmbeddingMeta),
}

/// What `/v1/models` says of the embedding model (`/v1/embeddings`, retrieval).
#[derive(Serialize)]
struct EmbeddingMeta {
    /// Always "embedding", so clients can tell it from the chat model.
    kind: &'static str,
    dims: usize,
    max_tokens: usize,
    size: u64,
    /// Whether its weights are in memory yet (`serve` loads it on first use).
    loaded: bool,
}

#[derive(Serialize)]
struct ModelMeta {
    n_ctx_slot: u32,
    n_ctx_train: u32,
    n_params: u64,
    size: u64,
    parallel: u32,
}

/// Lists the served model, the names a router answers to, and the embedding model.
pub async fn list_models(State(state): State<AppState>) -> Json<serde_json::Value> {
    let meta = state.backend().map(|backend| {
        let info = backend.model_info();
        Meta::Chat(ModelMeta {
            n_ctx_slot: info.n_ctx_slot,
            n_ctx_train: info.n_ctx_train,
            n_params: info.n_params,
            size: info.size_bytes,
            parallel: info.parallel,
        })
    });
    let mut data = vec![ModelEntry {
        id: state.model_id().to_owned(),
        object: "model",
        created: unix_seconds(),
        owned_by: "edgeway",
        meta,
    }];
    // A router also answers to its tiers' names.
    for id in state.backend().map(|backend| backend.model_ids()).unwrap_or_default() {
        if data.iter().all(|entry| !entry.id.eq_ignore_ascii_case(&id)) {
            data.push(ModelEntry { id, object: "model", created: unix_seconds(), owned_by: "edgeway", meta: None });
        }
    }
    if let Some(embedder) = state.embedder() {
        let info = embedder.embedding_info();
        data.push(ModelEntry {
            id: info.id.clone(),
            object: "model",
            created: unix_seconds(),
            owned_by: "edgeway",
            meta: Some(Meta::Embedding(EmbeddingMeta {
                kind: "embedding",
                dims: info.dims,
                max_tokens: info.max_tokens,
                size: info.size_bytes,
                loaded: embedder.is_loaded(),
            })),
        });
    }
    Json(serde_json::to_value(ModelList { object: "list", data }).unwrap_or_default())
}
