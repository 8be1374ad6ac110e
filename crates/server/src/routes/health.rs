//! `GET /health`: whether the model is loaded and how busy the server is.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// 200 with slot and queue counts when the model is loaded; 503 while it loads.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match state.backend() {
        Some(backend) => {
            let load = backend.load();
            let info = backend.model_info();
            let body = json!({
                "status": "ok",
                "model": info.id,
                "model_loaded": true,
                "slots_total": info.parallel,
                "slots_busy": load.busy_slots,
                "queued": load.queued,
                "power_watts": load.power_watts,
                "cloud_up": load.cloud_up,
            });
            (StatusCode::OK, Json(body))
        }
        None => {
            let body = json!({ "status": "loading", "model": state.model_id(), "model_loaded": false });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body))
        }
    }
}
