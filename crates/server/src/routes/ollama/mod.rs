//! Ollama's API (`/`, `/api/*`), so Ollama's own clients, and tools that speak only Ollama's API
//! (Open WebUI), work against edgeway unchanged.
//!
//! Everything under the wire is shared with `/v1/*`: `routes::begin` (guard, screening, routing,
//! the query log), the stream loop ([`crate::stream::ndjson_response`]), the embedding path, and
//! the one error table, rendered here as Ollama's `{"error": "..."}` by [`error_shape`].

pub mod embed;
pub mod generate;
pub mod models;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::state::AppState;

/// The Ollama routes, to merge into the application router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(models::root))
        .route("/api/version", get(models::version))
        .route("/api/tags", get(models::tags))
        .route("/api/ps", get(models::ps))
        .route("/api/show", post(models::show))
        .route("/api/chat", post(generate::chat))
        .route("/api/generate", post(generate::generate))
        .route("/api/embed", post(embed::embed))
        .route("/api/embeddings", post(embed::embeddings))
}

/// Whether `path` is on Ollama's API, whose errors take Ollama's shape.
pub fn is_ollama_path(path: &str) -> bool {
    path.starts_with("/api/")
}

/// Gives every error on Ollama's paths Ollama's body, `{"error": "message"}`, keeping the status
/// and headers the one table gave it; KServe v2's paths (`/v2/*`) take the same shape. A layer over the whole router, so the guard's 401s, bad JSON
/// and panics are covered too, not only the handlers' own errors.
pub async fn error_shape(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let short = is_ollama_path(path) || super::kserve::is_kserve_path(path);
    let mut response = next.run(request).await;
    if short {
        if let Some(error) = response.extensions_mut().remove::<ApiError>() {
            response.headers_mut().remove(header::CONTENT_LENGTH);
            *response.body_mut() = Body::from(error.ollama_body().to_string());
        }
    }
    response
}

/// A JSON body whose errors name the field that is wrong (`options.temperature`), since Ollama's
/// error body is only a message. Otherwise as lenient as [`ApiJson`].
pub struct OllamaJson<T>(pub T);

impl<S, T> FromRequest<S> for OllamaJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiJson(value) = ApiJson::<Value>::from_request(request, state).await?;
        serde_path_to_error::deserialize(value).map(Self).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if path == "." {
                ApiError::BadJson(format!("the JSON does not match this endpoint: {inner}"))
            } else {
                ApiError::BadJson(format!("invalid {path}: {inner}"))
            }
        })
    }
}
