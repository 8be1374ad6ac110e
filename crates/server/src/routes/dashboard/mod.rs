//! The dashboard: `GET /dashboard?window=hour|day|week` (an HTML page, charts drawn on the
//! server, no script), `GET /dashboard/style.css`, and `GET /dashboard/api/overview` (the same
//! aggregates as JSON, so other tools can read them), all from the query log
//! (`edgeway_store::dashboard`).
//!
//! Access: on a server without keys, anyone who reaches it; with keys, an administrator's key
//! (`edgeway keys create NAME --admin`), sent as `Authorization: Bearer` or through the login
//! form (`/dashboard/login`), which keeps it in an HttpOnly, SameSite=Strict cookie read on
//! `/dashboard` paths only. Everything here only reads, so a forged request changes nothing.
//! The logged query text is shown to an administrator's key only.

mod chart;
pub mod fleet;
mod login;
mod page;
mod view;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use edgeway_guard::{Caller, Denied};
use edgeway_store::dashboard::{Overview, Window};
use serde::Deserialize;
use view::View;

use crate::error::{invalid, ApiError};
use crate::state::AppState;

pub use login::{login, login_form, logout};
pub use view::{Calibration, CalibrationPlot, DashboardFacts, FleetFacts, Routing};

/// The query string.
#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    /// `hour` (the default), `day` or `week`.
    window: Option<String>,
}

/// The page's style.
const STYLE: &str = include_str!("style.css");

/// What the browser may do with the page: load its own style sheet, nothing else (no script,
/// no frames around it, no other origin).
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The dashboard's content for one window, as JSON.
pub async fn overview(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Json<View>, ApiError> {
    Ok(Json(load(&state, &caller, query).await?))
}

/// The dashboard page.
pub async fn page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let view = load(&state, &caller, query).await?;
    let html = page::render(&view, state.model_id());
    Ok(html_response(html))
}

/// A page with the dashboard's headers: no script, no frames, no caching, no sniffing.
fn html_response(html: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// The page's style sheet.
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")], STYLE)
}

/// The calibration curve of the thresholds in force (the SVG `edgeway calibrate` wrote, or the
/// shipped routing's), shown as an image.
pub async fn calibration_plot(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    admit(&caller)?;
    let svg = match state.dashboard_facts().calibration_plot {
        None => return Err(ApiError::NotFound("no calibration curve: run `edgeway calibrate`".into())),
        Some(CalibrationPlot::Shipped(svg)) => svg.as_bytes().to_vec(),
        Some(CalibrationPlot::File(path)) => tokio::fs::read(&path)
            .await
            .map_err(|error| ApiError::NotFound(format!("no calibration curve at {}: {error}", path.display())))?,
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            // Opened on its own, an SVG is a document: no script in it may run.
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

/// Refuses a caller who may not see the dashboard.
fn admit(caller: &Caller) -> Result<(), ApiError> {
    if caller.may_view_dashboard() {
        return Ok(());
    }
    Err(ApiError::Guard(Denied::Forbidden {
        code: "admin_required",
        message: format!(
            "the dashboard needs an administrator's key; '{}' is not one (edgeway keys create NAME --admin)",
            caller.name
        ),
    }))
}

/// Reads the window the query names from the query log, on a blocking thread, with the box's facts.
async fn load(
    state: &AppState,
    caller: &Caller,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<View, ApiError> {
    admit(caller)?;
    let window = window(query)?;
    let Some(settings) = state.log() else {
        return Err(ApiError::NotSupported(
            "this server keeps no query log (--log-path none), so there is nothing to show".into(),
        ));
    };
    let path = settings.log.path().to_owned();
    let with_text = settings.store_text && caller.sees_query_text();
    let now = edgeway_store::record::now_ms();
    let facts = state.dashboard_facts();
    // SQLite reads are blocking.
    edgeway_core::off_runtime_if(true, move || {
        Overview::load(&path, window, now, with_text).map(|overview| View::build(overview, &facts))
    })
    .await?
    .map_err(|error| ApiError::Backend(edgeway_core::BackendError::Internal(error.to_string())))
}

/// The window the query string names (`hour` without one).
fn window(query: Result<Query<OverviewQuery>, QueryRejection>) -> Result<Window, ApiError> {
    let Query(query) = query.map_err(|e| invalid("query", format!("the query string is not valid here: {e}")))?;
    match query.window.as_deref() {
        None => Ok(Window::Hour),
        Some(text) => Window::parse(text)
            .ok_or_else(|| invalid("window", format!("window must be hour, day or week, got '{text}'"))),
    }
}
