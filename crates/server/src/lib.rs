//! The HTTP layer: OpenAI-compatible endpoints over any [`edgeway_core::Backend`].
//!
//! This crate knows HTTP and JSON and nothing about llama.cpp: it receives its
//! backend as `Arc<dyn Backend>` (see [`AppState`]), which keeps it quick to
//! build and lets its tests run against `edgeway_core::fake::FakeBackend`.
//!
//! # Layout
//! - [`app`]: the router; [`run`]: serving it until a shutdown signal, each connection under the
//!   [`listen::ConnectionLimits`] ([`listen`]).
//! - [`routes`]: one module per endpoint; Ollama's API (`/api/*`) in [`routes::ollama`], image
//!   inspection in [`routes::inspect`] (`/v1/inspect`) and [`routes::kserve`] (KServe v2, `/v2/*`).
//! - [`wire`]: OpenAI's and Ollama's JSON shapes and their validation into core types.
//! - [`stream`]: collecting a generation, or streaming it as SSE (NDJSON for Ollama).
//! - [`rag`]: retrieval from a local collection in the chat path.
//! - [`query_embedding`]: the user text embedded once per request, for the router's scorer and retrieval.
//! - [`auth`]: the guard in front of every endpoint but `/health` and `/` (API keys → [`edgeway_guard::Caller`]).
//! - [`error`]: the one error type and its status table.

pub mod auth;
pub mod error;
pub mod injection_judge;
pub mod json;
pub mod listen;
pub mod metrics;
pub mod query_embedding;
pub mod rag;
pub mod record;
pub mod routes;
pub mod state;
pub mod stream;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

pub use error::ApiError;
pub use listen::ConnectionLimits;
pub use routes::dashboard::fleet;
pub use routes::dashboard::{Calibration, CalibrationPlot, DashboardFacts, FleetFacts, Routing};
pub use state::AppState;

/// Largest request body accepted: room for a long RAG prompt, not for abuse.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The application router, without a socket, so tests can drive it directly; request bodies
/// that pause for longer than the default body timeout fail.
pub fn app(state: AppState) -> Router {
    app_with(state, ConnectionLimits::default().body_timeout)
}

/// [`app`] with this body timeout: a request body that pauses longer fails its request.
pub fn app_with(state: AppState, body_timeout: Duration) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(routes::chat::chat_completions))
        .route("/chat/completions", post(routes::chat::chat_completions))
        .route("/v1/completions", post(routes::completions::completions))
        .route("/completions", post(routes::completions::completions))
        .route("/v1/responses", post(routes::responses::responses))
        .route("/responses", post(routes::responses::responses))
        .route("/v1/embeddings", post(routes::embeddings::embeddings))
        .route("/embeddings", post(routes::embeddings::embeddings))
        .route("/v1/models", get(routes::models::list_models))
        .route("/models", get(routes::models::list_models))
        .route("/tokenize", post(routes::tokenize::tokenize))
        .route("/v1/inspect", post(routes::inspect::inspect))
        .route("/metrics", get(routes::metrics::metrics))
        .route("/dashboard", get(routes::dashboard::page))
        .route("/dashboard/style.css", get(routes::dashboard::style))
        .route("/dashboard/login", get(routes::dashboard::login_form).post(routes::dashboard::login))
        .route("/dashboard/logout", get(routes::dashboard::logout))
        .route("/dashboard/api/overview", get(routes::dashboard::overview))
        .route("/dashboard/calibration.svg", get(routes::dashboard::calibration_plot))
        .route("/health", get(routes::health::health))
        .route("/v1/health", get(routes::health::health))
        .merge(routes::ollama::router())
        .merge(routes::kserve::router())
        .fallback(|uri: Uri| async move { ApiError::NotFound(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(body_timeout))
        // A panicking handler answers 500 in the API's error shape instead of dropping the connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(error::panic_response))
        // Errors on Ollama's and KServe's paths (panics included) in their shape, `{"error": "..."}`.
        .layer(axum::middleware::from_fn(routes::ollama::error_shape))
        // Failures are logged once, with their cause, by ApiError; the trace
        // layer's own failure events would repeat them at ERROR level.
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(axum::middleware::from_fn_with_state(state.metrics().clone(), metrics::count_responses))
        .with_state(state)
}

/// Serves the fleet's dashboard ([`fleet`]) over `source` on `listener` until `shutdown`
/// completes, with the box's default connection limits.
pub async fn run_fleet_dashboard(
    listener: TcpListener,
    source: Arc<dyn fleet::FleetSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = fleet::router(source);
    listen::serve(listener, router, ConnectionLimits::default(), Arc::new(metrics::Metrics::new()), shutdown).await
}

/// Serves [`app`] on `listener` under `limits` until `shutdown` completes, then lets
/// in-flight requests finish.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = state.metrics().clone();
    let router = app_with(state, limits.body_timeout);
    listen::serve(listener, router, limits, metrics, shutdown).await
}
