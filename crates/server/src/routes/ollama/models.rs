//! `GET /`, `GET /api/version`, `GET /api/tags`, `GET /api/ps` and `POST /api/show`: what
//! Ollama's clients ask before they generate.

use std::time::SystemTime;

use axum::extract::State;
use axum::Json;
use edgeway_core::{ModelStatus, Residency};

use super::OllamaJson;
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::ollama::base_name;
use crate::wire::ollama::models::{
    ModelFacts, ModelKind, RunningList, ShowReply, TagList, VersionReply, OLLAMA_API_VERSION,
};
use crate::wire::ollama::request::ShowBody;

/// What Ollama answers on `/`, which its clients probe.
pub const RUNNING: &str = "Ollama is running";

/// `GET /` (and `HEAD /`): the liveness probe Ollama's clients send, which read "Ollama is
/// running"; a browser (it asks for HTML) is sent to the dashboard instead.
pub async fn root(headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    if crate::auth::accepts_html(&headers) {
        return axum::response::Redirect::to("/dashboard").into_response();
    }
    RUNNING.into_response()
}

/// `GET /api/version`: the Ollama API version served, and edgeway's.
pub async fn version() -> Json<VersionReply> {
    Json(VersionReply { version: OLLAMA_API_VERSION, edgeway: env!("CARGO_PKG_VERSION") })
}

/// `GET /api/tags`: every name the server answers to, the embedding model included.
pub async fn tags(State(state): State<AppState>) -> Json<TagList> {
    Json(TagList { models: served(&state).iter().map(ModelFacts::entry).collect() })
}

/// `GET /api/ps`: the models whose weights are in memory.
pub async fn ps(State(state): State<AppState>) -> Json<RunningList> {
    let running = served(&state).into_iter().filter(|m| m.loaded && m.kind != ModelKind::Routed);
    Json(RunningList { models: running.map(|m| m.running()).collect() })
}

/// `POST /api/show`: details, context length and capabilities of one model.
pub async fn show(
    State(state): State<AppState>,
    OllamaJson(body): OllamaJson<ShowBody>,
) -> Result<Json<ShowReply>, ApiError> {
    let name = body.model()?;
    let models = served(&state);
    let found = models.iter().find(|m| m.name.eq_ignore_ascii_case(base_name(name)));
    match found {
        Some(model) => Ok(Json(model.show())),
        None => Err(ApiError::UnknownModel {
            requested: name.to_owned(),
            available: models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Facts about every served name: the backend's models (each local model of a pool, loaded
/// or not), the other names a router answers to, and the embedding model.
fn served(state: &AppState) -> Vec<ModelFacts> {
    let now = SystemTime::now();
    let mut models = Vec::new();
    match state.backend() {
        Some(backend) => {
            let own = backend.model_info().id.clone();
            for status in backend.models() {
                // The backend's own model is the chat model even without a file (a fake, a test).
                let chat = status.local || status.id.eq_ignore_ascii_case(&own);
                models.push(facts_of(status, if chat { ModelKind::Chat } else { ModelKind::Routed }, now));
            }
            // The name the server was started with, when the backend calls its model otherwise.
            if models.iter().all(|m| !m.name.eq_ignore_ascii_case(state.model_id())) {
                let status =
                    ModelStatus { id: state.model_id().to_owned(), ..ModelStatus::loaded(backend.model_info()) };
                models.insert(0, facts_of(status, ModelKind::Chat, now));
            }
            for id in backend.model_ids() {
                if models.iter().all(|m| !m.name.eq_ignore_ascii_case(&id)) {
                    models.push(ModelFacts::routed(id, now));
                }
            }
        }
        // Still loading: listed, not running.
        None => models.push(ModelFacts { kind: ModelKind::Chat, ..ModelFacts::routed(state.model_id().into(), now) }),
    }
    if let Some(embedder) = state.embedder() {
        let info = embedder.embedding_info();
        models.push(ModelFacts {
            name: info.id.clone(),
            kind: ModelKind::Embedding,
            path: None,
            size: info.size_bytes,
            modified: now,
            parameters: 0,
            trained_context: info.max_tokens as u64,
            served_context: info.max_tokens as u64,
            dims: Some(info.dims),
            loaded: embedder.is_loaded(),
            memory: None,
            expires_at: None,
        });
    }
    models
}

/// What a backend says of one model, as Ollama's routes list it.
fn facts_of(status: ModelStatus, kind: ModelKind, now: SystemTime) -> ModelFacts {
    let info = status.info;
    let modified =
        info.path.as_deref().and_then(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok()).unwrap_or(now);
    ModelFacts {
        name: status.id,
        kind,
        path: info.path,
        size: info.size_bytes,
        modified,
        parameters: info.n_params,
        trained_context: u64::from(info.n_ctx_train),
        served_context: u64::from(info.n_ctx_slot),
        dims: None,
        loaded: status.residency == Residency::Loaded,
        memory: status.memory_bytes,
        expires_at: status.expires_at,
    }
}
