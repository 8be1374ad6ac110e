//! What every handler shares: the backend and the name it serves.

use std::sync::{Arc, OnceLock, RwLock};

use edgeway_core::inspect::Inspector;
use edgeway_core::{Backend, EmbeddingBackend, Retriever};
use edgeway_guard::Guard;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::rag::RagSettings;
use crate::record::LogSettings;
use crate::routes::dashboard::{DashboardFacts, Routing};

/// Shared handler state. Cheap to clone.
///
/// The backend is set once, after the model has loaded, so the server can
/// listen (and answer `/health` with "loading") while a model is pulled or loaded.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    model_id: String,
    backend: OnceLock<Arc<dyn Backend>>,
    embedder: OnceLock<Arc<dyn EmbeddingBackend>>,
    retriever: OnceLock<Arc<dyn Retriever>>,
    rag: OnceLock<RagSettings>,
    log: Option<LogSettings>,
    metrics: Arc<Metrics>,
    guard: OnceLock<Arc<Guard>>,
    inspectors: OnceLock<Vec<Arc<dyn Inspector>>>,
    dashboard: RwLock<DashboardFacts>,
}

impl AppState {
    /// State for a server whose model `model_id` is still loading.
    pub fn loading(model_id: impl Into<String>) -> Self {
        Self::build(model_id.into(), None)
    }

    fn build(model_id: String, log: Option<LogSettings>) -> Self {
        Self {
            inner: Arc::new(Inner {
                model_id,
                backend: OnceLock::new(),
                embedder: OnceLock::new(),
                retriever: OnceLock::new(),
                rag: OnceLock::new(),
                log,
                metrics: Arc::new(Metrics::new()),
                guard: OnceLock::new(),
                inspectors: OnceLock::new(),
                dashboard: RwLock::default(),
            }),
        }
    }

    /// What the dashboard shows of the box's configuration (prices, power budget, thresholds,
    /// knowledge base), and the power budget's gauge on `/metrics`.
    pub fn set_dashboard_facts(&self, facts: DashboardFacts) {
        self.inner.metrics.set_power_budget(facts.power_budget_watts);
        *self.inner.dashboard.write().unwrap_or_else(|e| e.into_inner()) = facts;
    }

    /// Replaces what the dashboard shows of the routing (a fleet version applied while serving);
    /// the calibration curve of the routing it replaces goes with it (a version carries none).
    pub fn set_dashboard_routing(&self, routing: Routing) {
        let mut facts = self.inner.dashboard.write().unwrap_or_else(|e| e.into_inner());
        facts.routing = routing;
        facts.calibration_plot = None;
    }

    /// The dashboard's facts (empty until set).
    pub fn dashboard_facts(&self) -> DashboardFacts {
        self.inner.dashboard.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `guard` (keys, allow-lists, quotas) in front of every endpoint but `/health`; later calls are ignored.
    pub fn set_guard(&self, guard: Arc<Guard>) {
        let _ = self.inner.guard.set(guard);
    }

    /// The guard; an open one (no keys) unless one was set.
    pub fn guard(&self) -> &Arc<Guard> {
        self.inner.guard.get_or_init(|| Arc::new(Guard::new(None, None)))
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// State for a server that logs every request.
    pub fn loading_with_log(model_id: impl Into<String>, log: LogSettings) -> Self {
        Self::build(model_id.into(), Some(log))
    }

    /// Where requests are logged, if anywhere.
    pub fn log(&self) -> Option<&LogSettings> {
        self.inner.log.as_ref()
    }

    /// State for a server whose backend is ready.
    pub fn ready(backend: Arc<dyn Backend>) -> Self {
        let state = Self::loading(backend.model_info().id.clone());
        state.set_backend(backend);
        state
    }

    /// Makes the loaded backend available; later calls are ignored.
    pub fn set_backend(&self, backend: Arc<dyn Backend>) {
        let _ = self.inner.backend.set(backend);
    }

    /// Makes the loaded embedding model available; later calls are ignored.
    pub fn set_embedder(&self, embedder: Arc<dyn EmbeddingBackend>) {
        let _ = self.inner.embedder.set(embedder);
    }

    /// Makes the inspection models available (`/v1/inspect`, `/v2/models/…`); later calls are ignored.
    pub fn set_inspectors(&self, inspectors: Vec<Arc<dyn Inspector>>) {
        let _ = self.inner.inspectors.set(inspectors);
    }

    /// The loaded inspection models (none until they are set).
    pub fn inspectors(&self) -> &[Arc<dyn Inspector>] {
        self.inner.inspectors.get().map_or(&[], Vec::as_slice)
    }

    /// The inspection model called `name`, or the only one when `name` is `None`.
    pub fn inspector(&self, name: Option<&str>) -> Result<Arc<dyn Inspector>, ApiError> {
        let inspectors = self.inspectors();
        let available = || inspectors.iter().map(|i| i.info().id.clone()).collect::<Vec<_>>().join(", ");
        match (inspectors, name) {
            ([], _) => Err(ApiError::NotSupported(
                "this server has no inspection model loaded; fit one with `edgeway vision fit --good DIR` and start \
                 the server with --inspect MODEL"
                    .into(),
            )),
            ([only], None) => Ok(only.clone()),
            (_, None) => Err(crate::error::invalid(
                "model",
                format!("this server has several inspection models; name one with ?model= ({})", available()),
            )),
            (_, Some(name)) => inspectors
                .iter()
                .find(|i| i.info().id == name)
                .cloned()
                .ok_or_else(|| ApiError::UnknownModel { requested: name.to_owned(), available: available() }),
        }
    }

    /// The embedding model, if one is loaded.
    pub fn embedder(&self) -> Option<&Arc<dyn EmbeddingBackend>> {
        self.inner.embedder.get()
    }

    /// Makes retrieval available with these settings; later calls are ignored.
    pub fn set_retriever(&self, retriever: Arc<dyn Retriever>, settings: RagSettings) {
        let _ = self.inner.rag.set(settings);
        let _ = self.inner.retriever.set(retriever);
    }

    /// The retriever, if the knowledge base is loaded.
    pub fn retriever(&self) -> Option<&Arc<dyn Retriever>> {
        self.inner.retriever.get()
    }

    /// How requests retrieve.
    pub fn rag(&self) -> &RagSettings {
        static DEFAULT: OnceLock<RagSettings> = OnceLock::new();
        self.inner.rag.get().unwrap_or_else(|| DEFAULT.get_or_init(RagSettings::default))
    }

    /// The id clients use for the served model.
    pub fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    /// The backend, if loaded.
    pub fn backend(&self) -> Option<&Arc<dyn Backend>> {
        self.inner.backend.get()
    }

    /// The backend that serves `requested`: any when `None` or `auto`, else one whose `serves` says so.
    pub fn backend_for(&self, requested: Option<&str>) -> Result<Arc<dyn Backend>, ApiError> {
        let requested =
            requested.filter(|r| !r.eq_ignore_ascii_case("auto") && !r.eq_ignore_ascii_case(&self.inner.model_id));
        match (self.backend(), requested) {
            (Some(backend), None) => Ok(backend.clone()),
            (Some(backend), Some(r)) if backend.serves(r) => Ok(backend.clone()),
            (Some(backend), Some(r)) => {
                Err(ApiError::UnknownModel { requested: r.to_owned(), available: backend.model_ids().join(", ") })
            }
            (None, Some(r)) => {
                Err(ApiError::UnknownModel { requested: r.to_owned(), available: self.inner.model_id.clone() })
            }
            (None, None) => Err(ApiError::Loading),
        }
    }
}
