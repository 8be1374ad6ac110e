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
    meta: Option<ModelMeta>,
}

#[derive(Serialize)]
struct ModelMeta {
    n_ctx_slot: u32,
    n_ctx_train: u32,
    n_params: u64,
    size: u64,
    parallel: u32,
}

/// Lists the served model.
pub async fn list_models(State(state): State<AppState>) -> Json<serde_json::Value> {
    let meta = state.backend().map(|backend| {
        let info = backend.model_info();
        ModelMeta {
            n_ctx_slot: info.n_ctx_slot,
            n_ctx_train: info.n_ctx_train,
            n_params: info.n_params,
            size: info.size_bytes,
            parallel: info.parallel,
        }
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
    Json(serde_json::to_value(ModelList { object: "list", data }).unwrap_or_default())
}
