//! Everything the dashboard shows for one window: the query log's aggregates
//! ([`Overview`]) and what only the running box knows: money saved against all-cloud per
//! domain (at the first cloud's prices), the edge's power draw against the budget, the
//! routing thresholds and the calibration they came from, the RAG collections, and the fleet
//! shipper's backlog. This is
//! also the JSON of `/dashboard/api/overview`.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use edgeway_store::dashboard::Overview;
use edgeway_store::{KnowledgeBase, ShipStats};
use serde::Serialize;

/// What the box is configured with, set once by `edgeway serve` ([`crate::AppState::set_dashboard_facts`]).
#[derive(Debug, Clone, Default)]
pub struct DashboardFacts {
    /// The first cloud's prices per million tokens in and out: what "all-cloud" would cost.
    pub cloud_price_per_mtok: Option<(f64, f64)>,
    /// Watts the edge may draw, when a power budget is set.
    pub power_budget_watts: Option<f64>,
    /// The routing thresholds in force.
    pub routing: Routing,
    /// The calibration curve of the thresholds in force, when there is one.
    pub calibration_plot: Option<CalibrationPlot>,
    /// The knowledge base retrieval reads, when retrieval is on.
    pub knowledge_db: Option<PathBuf>,
    /// The box's place in a fleet, when it ships to a center.
    pub fleet: Option<FleetFacts>,
}

/// A box of a fleet: who it is and how its shipping goes.
#[derive(Debug, Clone)]
pub struct FleetFacts {
    /// Its id at the center.
    pub box_id: String,
    /// Its site.
    pub site: Option<String>,
    /// The shipper's figures, live.
    pub stats: Arc<ShipStats>,
}

/// The fleet shipper as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FleetState {
    /// The box's id.
    pub box_id: String,
    /// Its site.
    pub site: Option<String>,
    /// Rows not yet at the center.
    pub backlog: u64,
    /// Rows shipped since start.
    pub shipped: u64,
    /// Whether the last attempt reached the center.
    pub center_up: bool,
    /// When the center last took a shipment or report (Unix milliseconds).
    pub last_shipped_ms: Option<i64>,
    /// The fleet config version applied.
    pub config_version: Option<i64>,
}

/// A calibration curve (SVG).
#[derive(Debug, Clone)]
pub enum CalibrationPlot {
    /// The file `edgeway calibrate` wrote.
    File(PathBuf),
    /// The curve of the routing edgeway ships with, inside the binary.
    Shipped(&'static str),
}

impl CalibrationPlot {
    /// Whether there is a curve to show.
    fn exists(&self) -> bool {
        match self {
            CalibrationPlot::File(path) => path.is_file(),
            CalibrationPlot::Shipped(_) => true,
        }
    }
}

/// The routing thresholds in force and where they came from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Routing {
    /// Which complexity scorer routes requests.
    pub scorer: String,
    /// The threshold of domains without their own: a score at or above it goes to the cloud.
    pub default_threshold: Option<f32>,
    /// Domains with a threshold of their own.
    pub thresholds: Vec<(String, f32)>,
    /// Thresholds that start a request at a tier above the first: (domain, or `None` for the
    /// default; tier; threshold).
    pub tier_thresholds: Vec<(Option<String>, u32, f32)>,
    /// The calibration that chose them; `None` for the shipped defaults or hand-set values.
    pub calibration: Option<Calibration>,
}

/// Where calibrated thresholds came from (`[routing.calibration]`, written by `edgeway calibrate`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Calibration {
    /// When (RFC 3339, UTC).
    pub at: Option<String>,
    /// The evaluation run whose graded answers it used.
    pub run: Option<String>,
    /// Graded items it used.
    pub items: Option<u64>,
    /// The share of cloud-only quality it aimed for.
    pub target: Option<f64>,
}

/// Money spent in a domain against the same tokens all in the cloud.
#[derive(Debug, Clone, Serialize)]
pub struct DomainSavings {
    /// The domain.
    pub domain: String,
    /// Money spent.
    pub spent: f64,
    /// What all-cloud would have cost.
    pub all_cloud: f64,
    /// The difference.
    pub saved: f64,
}

/// The edge's power draw over the window against the budget.
#[derive(Debug, Clone, Serialize)]
pub struct Power {
    /// The budget, when set.
    pub budget_watts: Option<f64>,
    /// Mean watts per slice (the edge's measured energy over the slice's length).
    pub draw_watts: Vec<f64>,
    /// The highest slice.
    pub peak_watts: f64,
}

/// A RAG collection and its size.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionSize {
    /// Its name.
    pub name: String,
    /// The embedding model of its vectors.
    pub embedding_model: String,
    /// Documents.
    pub documents: usize,
    /// Chunks.
    pub chunks: usize,
}

/// The dashboard's content for one window.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// The query log's aggregates.
    #[serde(flatten)]
    pub overview: Overview,
    /// Per domain, most requests first; empty without cloud prices.
    pub savings: Vec<DomainSavings>,
    /// The edge's power draw.
    pub power: Power,
    /// Thresholds and calibration.
    pub routing: Routing,
    /// Whether `/dashboard/calibration.svg` has a curve to show.
    pub calibration_plot: bool,
    /// RAG collections (empty when retrieval is off).
    pub collections: Vec<CollectionSize>,
    /// The fleet shipper, when the box ships.
    pub fleet: Option<FleetState>,
}

impl View {
    /// Puts `overview` together with `facts`; reads the knowledge base's sizes (blocking).
    pub fn build(overview: Overview, facts: &DashboardFacts) -> Self {
        let savings = match facts.cloud_price_per_mtok {
            Some((input, output)) => overview
                .domains
                .iter()
                .map(|d| {
                    let all_cloud = edgeway_core::token_cost(d.prompt_tokens, d.completion_tokens, input, output);
                    DomainSavings { domain: d.domain.clone(), spent: d.cost, all_cloud, saved: all_cloud - d.cost }
                })
                .collect(),
            None => Vec::new(),
        };
        let seconds = overview.bucket_ms as f64 / 1000.0;
        let draw_watts: Vec<f64> = overview.edge_energy_j.iter().map(|j| j / seconds).collect();
        let peak_watts = draw_watts.iter().copied().fold(0.0, f64::max);
        let power = Power { budget_watts: facts.power_budget_watts, draw_watts, peak_watts };
        let collections = facts.knowledge_db.as_deref().map(collection_sizes).unwrap_or_default();
        let calibration_plot = facts.calibration_plot.as_ref().is_some_and(CalibrationPlot::exists);
        let fleet = facts.fleet.as_ref().map(|fleet| {
            let stats = &fleet.stats;
            FleetState {
                box_id: fleet.box_id.clone(),
                site: fleet.site.clone(),
                backlog: stats.backlog.load(Relaxed),
                shipped: stats.shipped.load(Relaxed),
                center_up: stats.center_up.load(Relaxed),
                last_shipped_ms: Some(stats.last_ok_ms.load(Relaxed)).filter(|&ms| ms > 0),
                config_version: Some(stats.config_version.load(Relaxed)).filter(|&v| v > 0),
            }
        });
        Self { overview, savings, power, routing: facts.routing.clone(), calibration_plot, collections, fleet }
    }
}

/// The collections of the knowledge base at `path` (none when it cannot be read: the
/// dashboard shows the rest).
fn collection_sizes(path: &Path) -> Vec<CollectionSize> {
    if !path.is_file() {
        return Vec::new();
    }
    let collections = KnowledgeBase::open(path).and_then(|kb| kb.collections());
    match collections {
        Ok(collections) => collections
            .into_iter()
            .map(|(collection, documents, chunks)| CollectionSize {
                name: collection.name,
                embedding_model: collection.embedding_model,
                documents,
                chunks,
            })
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the knowledge base for the dashboard");
            Vec::new()
        }
    }
}
