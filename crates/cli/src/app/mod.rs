//! The composition root: the one place that turns a resolved configuration into running parts.
//!
//! Every `cmd/*` module parses its arguments, calls in here, and prints; no `cmd` module imports
//! another. [`DataDir`] owns every file name under the data directory; [`engine`] resolves and
//! loads models (the generative engine and the embedder); [`gateway`] builds the model set, the
//! tiers, the scorer and the router over them; [`guard`] opens the query log and the guard;
//! [`vision`] converts the vision backbone and starts the inspection models;
//! [`dashboard`] tells the dashboard what the box is configured with;
//! [`fleet`] applies the fleet center's thresholds while serving;
//! [`child`] starts `edgeway serve` as a child process for the benchmarks and the red team.

pub mod child;
pub mod dashboard;
pub mod data_dir;
pub mod engine;
pub mod fleet;
pub mod gateway;
pub mod guard;
pub mod vision;

pub use data_dir::DataDir;

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
