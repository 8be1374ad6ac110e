//! `GET /v1/models`.

use std::time::SystemTime;

use axum::extract::State;
use axum::Json;
use edgeway_core::{ModelInfo, ModelStatus, Residency};
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
    /// llama-server's extension: facts about the model, `null` while the server loads it
    /// and for names a router answers to without a model of their own.
    meta: Option<Meta>,
    /// edgeway's extension beside OpenAI's fields: whether the model is in memory and
    /// what it holds there. Absent for names without a model of their own (`auto`).
    #[serde(flatten)]
    residency: Option<ResidencyFields>,
}

/// Whether a model is in memory (a model pool loads and unloads them), beside OpenAI's fields.
#[derive(Serialize)]
struct ResidencyFields {
    /// `loaded`, `loading` or `unloaded`.
    residency: &'static str,
    /// Whether its weights are in memory now.
    loaded: bool,
    /// Whether it runs on this machine (not a cloud upstream).
    local: bool,
    /// Memory it holds while loaded (weights, KV cache, compute buffers), in bytes; `null`
    /// when not loaded or not local.
    memory_bytes: Option<u64>,
    /// When it will be unloaded for being idle, in Unix seconds; `null` when it is not
    /// loaded, is in use, or stays loaded.
    expires_at: Option<u64>,
    /// The router's tier that holds it (lower tiers are tried first), when a router lists it.
    #[serde(skip_serializing_if = "Option::is_none")]
    tier: Option<u32>,
    /// The domains the router sends to it first (empty: a generalist).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    domains: Vec<String>,
}

impl ResidencyFields {
    fn of(status: &ModelStatus) -> Self {
        Self {
            residency: status.residency.as_str(),
            loaded: status.residency == Residency::Loaded,
            local: status.local,
            memory_bytes: status.memory_bytes,
            tier: status.tier,
            domains: status.domains.clone(),
            expires_at: status
                .expires_at
                .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|since| since.as_secs()),
        }
    }
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

impl ModelMeta {
    fn of(info: &ModelInfo) -> Self {
        Self {
            n_ctx_slot: info.n_ctx_slot,
            n_ctx_train: info.n_ctx_train,
            n_params: info.n_params,
            size: info.size_bytes,
            parallel: info.parallel,
        }
    }
}

fn entry(id: String, meta: Option<Meta>, residency: Option<ResidencyFields>) -> ModelEntry {
    ModelEntry { id, object: "model", created: unix_seconds(), owned_by: "edgeway", meta, residency }
}

/// Lists every model the backend serves (each model of a pool, loaded or not, with what it
/// holds in memory), the other names a router answers to, and the embedding model.
pub async fn list_models(State(state): State<AppState>) -> Json<serde_json::Value> {
    let mut data = Vec::new();
    match state.backend() {
        Some(backend) => {
            for status in backend.models() {
                let residency = ResidencyFields::of(&status);
                data.push(entry(status.id, Some(Meta::Chat(ModelMeta::of(&status.info))), Some(residency)));
            }
            // The name the server was started with, when the backend calls its model otherwise.
            if data.iter().all(|entry| !entry.id.eq_ignore_ascii_case(state.model_id())) {
                let meta = Meta::Chat(ModelMeta::of(backend.model_info()));
                data.insert(0, entry(state.model_id().to_owned(), Some(meta), None));
            }
            // A router also answers to its tiers' names and `auto`.
            for id in backend.model_ids() {
                if data.iter().all(|entry| !entry.id.eq_ignore_ascii_case(&id)) {
                    data.push(entry(id, None, None));
                }
            }
        }
        None => {
            let loading = ResidencyFields {
                residency: Residency::Loading.as_str(),
                loaded: false,
                local: true,
                memory_bytes: None,
                expires_at: None,
                tier: None,
                domains: Vec::new(),
            };
            data.push(entry(state.model_id().to_owned(), None, Some(loading)));
        }
    }
    if let Some(embedder) = state.embedder() {
        let info = embedder.embedding_info();
        let loaded = embedder.is_loaded();
        let residency = ResidencyFields {
            residency: if loaded { Residency::Loaded } else { Residency::Unloaded }.as_str(),
            loaded,
            local: true,
            memory_bytes: loaded.then_some(info.size_bytes),
            expires_at: None,
            tier: None,
            domains: Vec::new(),
        };
        let meta = Meta::Embedding(EmbeddingMeta {
            kind: "embedding",
            dims: info.dims,
            max_tokens: info.max_tokens,
            size: info.size_bytes,
            loaded,
        });
        data.push(entry(info.id.clone(), Some(meta), Some(residency)));
    }
    Json(serde_json::to_value(ModelList { object: "list", data }).unwrap_or_default())
}
