//! `GET /metrics`: Prometheus text exposition.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

/// The metrics as Prometheus scrapes them.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let load = state.backend().map(|backend| backend.load());
    if let Some(settings) = state.log() {
        state.metrics().set_log_status(&settings.log.status());
    }
    let body = state.metrics().render(load);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
}
