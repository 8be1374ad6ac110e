//! `GET /metrics`: Prometheus text exposition.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;

use crate::state::AppState;

/// The metrics as Prometheus scrapes them: OpenMetrics when the client asks for it (Prometheus
/// does), the classic text format otherwise (`curl`, `promtool check metrics`).
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let load = state.backend().map(|backend| backend.load());
    if let Some(settings) = state.log() {
        state.metrics().set_log_status(&settings.log.status());
    }
    let body = state.metrics().render(load);
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    if wants_openmetrics {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], crate::metrics::classic_text(&body))
    }
}
