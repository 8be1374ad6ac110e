//! `GET /health`: whether the model is loaded and how busy the server is.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// 200 with slot and queue counts when the model is loaded; 503 while it loads. The status is
/// `degraded` (still 200: requests are served) while the query log cannot be written.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let log = state.log().map(|settings| settings.log.status());
    let log_json = log.as_ref().map(|status| {
        json!({
            "writable": status.error.is_none(),
            "held": status.held,
            "dropped": status.dropped,
            "error": status.error,
        })
    });
    match state.backend() {
        Some(backend) => {
            let load = backend.load();
            let info = backend.model_info();
            let degraded = log.as_ref().is_some_and(|status| status.error.is_some());
            let body = json!({
                "status": if degraded { "degraded" } else { "ok" },
                "model": info.id,
                "model_loaded": true,
                "slots_total": info.parallel,
                "slots_busy": load.busy_slots,
                "queued": load.queued,
                "power_watts": load.power_watts,
                "cloud_up": load.cloud_up,
                "query_log": log_json,
            });
            (StatusCode::OK, Json(body))
        }
        None => {
            let body = json!({ "status": "loading", "model": state.model_id(), "model_loaded": false });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body))
        }
    }
}
