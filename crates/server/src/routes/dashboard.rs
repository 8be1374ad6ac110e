//! `GET /dashboard/api/overview?window=hour|day|week`: what the dashboard shows, as JSON, from
//! the query log (`edgeway_store::dashboard`), so other tools can read the same aggregates.
//! Behind the same key check as every API route; query text is never included here.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use edgeway_store::dashboard::{Overview, Window};
use serde::Deserialize;

use crate::error::{invalid, ApiError};
use crate::state::AppState;

/// The query string.
#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    /// `hour` (the default), `day` or `week`.
    window: Option<String>,
}

/// The aggregates of one window.
pub async fn overview(
    State(state): State<AppState>,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Json<Overview>, ApiError> {
    let Query(query) = query.map_err(|e| invalid("query", format!("the query string is not valid here: {e}")))?;
    let window = match query.window.as_deref() {
        None => Window::Hour,
        Some(text) => Window::parse(text)
            .ok_or_else(|| invalid("window", format!("window must be hour, day or week, got '{text}'")))?,
    };
    let Some(settings) = state.log() else {
        return Err(ApiError::NotSupported(
            "this server keeps no query log (--log-path none), so there is nothing to show".into(),
        ));
    };
    let path = settings.log.path().to_owned();
    let now = edgeway_store::record::now_ms();
    // SQLite reads are blocking; with a week of traffic they take a while.
    let overview = edgeway_core::off_runtime_if(true, move || Overview::load(&path, window, now, false))
        .await?
        .map_err(|error| ApiError::Backend(edgeway_core::BackendError::Internal(error.to_string())))?;
    Ok(Json(overview))
}
