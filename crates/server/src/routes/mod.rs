//! One module per endpoint. Handlers are thin: validate, submit, shape.

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod health;
pub mod metrics;
pub mod models;
pub mod tokenize;

use std::sync::Arc;

use axum::http::HeaderMap;
use edgeway_core::{Backend, GenerateRequest, RouteTarget};

use crate::error::{invalid, ApiError};
use crate::record::Recorder;
use crate::state::AppState;
use crate::stream::{start, Started};

/// Header that forces a side: `edge` or `cloud`.
pub const ROUTE_HEADER: &str = "x-edgeway-route";
/// Header that names the request's domain for per-domain thresholds.
pub const DOMAIN_HEADER: &str = "x-edgeway-domain";

/// What the generating endpoints share: pick the backend, read the routing
/// headers, submit, and wait until the route and first output are known.
/// Returns the started generation and the model name to report.
async fn begin(
    state: &AppState,
    backend: Arc<dyn Backend>,
    headers: &HeaderMap,
    endpoint: &str,
    mut request: GenerateRequest,
) -> Result<(Started, String), ApiError> {
    if let Some(value) = headers.get(ROUTE_HEADER) {
        let text = value.to_str().unwrap_or_default();
        let target = RouteTarget::parse(text).ok_or_else(|| {
            invalid("x-edgeway-route", format!("x-edgeway-route must be 'edge' or 'cloud', got '{text}'"))
        })?;
        request.route.target = Some(target);
    }
    if let Some(value) = headers.get(DOMAIN_HEADER).and_then(|v| v.to_str().ok()) {
        request.route.domain = Some(value.trim().to_owned());
    }
    let recorder = Recorder::new(state.log(), state.metrics().clone(), endpoint, &request.prompt);
    let generation = match backend.submit(request) {
        Ok(generation) => generation,
        Err(error) => {
            let error = ApiError::from(error);
            recorder.refused(&error);
            return Err(error);
        }
    };
    let started = start(generation, recorder).await?;
    let model = started.route.as_ref().map_or_else(|| state.model_id().to_owned(), |route| route.model.clone());
    Ok((started, model))
}
