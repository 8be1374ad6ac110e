//! A box of a fleet: the center's routing (thresholds, and the scorer they were calibrated
//! for when the version brings one) applied while serving, shown on the dashboard, and kept
//! for starts without the center.

use std::sync::{Arc, Mutex};

use edgeway_fleet::follow::{FollowConfig, PushedConfig};
use edgeway_gateway::{Routing, RoutingHandle};
use edgeway_policy::{
    ComplexityScorer, EmbeddingModel, EmbeddingScorer, EmbeddingSpec, LearnedModel, LearnedScorer, Thresholds,
    TierThresholds,
};
use edgeway_server::fleet::{FleetGroup, FleetSource, FleetView};
use edgeway_server::AppState;
use edgeway_store::dashboard::Window;
use edgeway_store::ShipStats;
use futures::future::BoxFuture;

use crate::app::dashboard::routing as routing_facts;
use crate::app::DataDir;
use crate::config::{routing_thresholds, FileConfig, FleetSettings, RoutingSection, ScorerSetting};

/// Applies the last fleet config saved in the data directory (the center may be unreachable
/// at start), then follows the center's newer versions in the background. See [`Applier`] for
/// what a box accepts.
pub fn follow(fleet: &FleetSettings, data_dir: &DataDir, applier: Applier, stats: Arc<ShipStats>) {
    let saved = data_dir.fleet_config();
    let mut applied = 0;
    if let Some(config) = PushedConfig::load(&saved) {
        match applier.apply(&config) {
            Ok(()) => {
                applied = config.version;
                stats.config_version.store(applied, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(version = applied, path = %saved.display(), "applied the saved fleet config");
            }
            Err(error) => tracing::warn!(%error, path = %saved.display(), "cannot apply the saved fleet config"),
        }
    }
    let config = FollowConfig {
        url: fleet.ship.url.clone(),
        site: fleet.ship.site.clone(),
        every: fleet.config_every,
        timeout: fleet.ship.timeout,
        saved,
        ca_file: fleet.ship.ca_file.clone(),
    };
    tokio::spawn(edgeway_fleet::follow::run(config, applied, move |config| applier.apply(config), stats));
}

/// Applies pushed versions to a running gateway, and shows them on the dashboard.
///
/// - A version that brings its scorer (a learned or embedding scorer trained at the center)
///   replaces the box's scorer and thresholds together; an embedding scorer needs the box to
///   serve the embedding model it was trained on.
/// - A version without one only sets thresholds, and only for the scorer the box runs: they
///   would cut another scorer's scale.
pub struct Applier {
    /// The scorer in force: its config name (`shipped`, `learned`, …) and the dashboard's label.
    running: Mutex<(String, String)>,
    /// The box's embedding model, if it serves one.
    serving_embedding: Option<EmbeddingSpec>,
    routing: RoutingHandle,
    dashboard: Option<Dashboard>,
}

/// Where an applied version is shown.
pub struct Dashboard {
    /// The server's state.
    pub state: AppState,
    /// Whether the box has a cloud (without one, thresholds route nothing and are not shown).
    pub has_cloud: bool,
}

impl Applier {
    /// Applies versions to `routing`, for a box started with `scorer` that serves the
    /// `serving_embedding` model.
    pub fn new(
        scorer: &ScorerSetting,
        serving_embedding: Option<EmbeddingSpec>,
        routing: RoutingHandle,
        dashboard: Option<Dashboard>,
    ) -> Self {
        let running = (scorer.name().to_owned(), crate::app::dashboard::scorer_name(scorer));
        Self { running: Mutex::new(running), serving_embedding, routing, dashboard }
    }

    fn apply(&self, config: &PushedConfig) -> Result<(), String> {
        let routing = toml::from_str::<FileConfig>(&config.routing).map(|file| file.routing).unwrap_or_default();
        let (thresholds, tier_thresholds) =
            routing_thresholds(&config.routing).map_err(|error| format!("{error:#}"))?;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match &config.scorer {
            Some(json) => {
                let name = routing.scorer.clone().unwrap_or_default();
                let scorer = self.pushed_scorer(&name, json, config.version)?;
                let label = format!("{name} (trained at the center, fleet config version {})", config.version);
                self.show(&label, &thresholds, &tier_thresholds, &routing);
                self.routing.set(Routing { scorer, thresholds, tier_thresholds });
                *running = (name, label);
            }
            None => {
                let (name, label) = &*running;
                if let Some(named) = routing.scorer.as_ref().filter(|named| *named != name) {
                    return Err(format!(
                        "version {} was calibrated for the {named} scorer, and this box routes with the {name} one",
                        config.version
                    ));
                }
                self.show(label, &thresholds, &tier_thresholds, &routing);
                self.routing.set_thresholds(thresholds, tier_thresholds);
            }
        }
        Ok(())
    }

    /// Shows the applied routing on the dashboard (a version carries no calibration curve).
    fn show(&self, label: &str, thresholds: &Thresholds, tiers: &TierThresholds, section: &RoutingSection) {
        if let Some(dashboard) = &self.dashboard {
            let calibration = section.calibration.as_ref();
            let shown = routing_facts(label.to_owned(), dashboard.has_cloud, thresholds, tiers, calibration);
            dashboard.state.set_dashboard_routing(shown);
        }
    }

    /// The scorer a version brings, as its `scorer` setting names it.
    fn pushed_scorer(&self, name: &str, json: &str, version: i64) -> Result<Arc<dyn ComplexityScorer>, String> {
        let shown = format!("fleet config version {version}'s scorer");
        match name {
            "learned" => {
                let model = LearnedModel::from_json(json, &shown).map_err(|error| error.to_string())?;
                Ok(Arc::new(LearnedScorer::new(model)))
            }
            "embedding" => {
                let model = EmbeddingModel::from_json(json, &shown).map_err(|error| error.to_string())?;
                match &self.serving_embedding {
                    Some(serving) if *serving == model.embedding => Ok(Arc::new(EmbeddingScorer::new(model))),
                    Some(serving) => Err(format!(
                        "{shown} reads {} embeddings and this box serves {}",
                        model.embedding.model, serving.model
                    )),
                    None => Err(format!(
                        "{shown} reads {} embeddings and this box serves no embedding model",
                        model.embedding.model
                    )),
                }
            }
            other => Err(format!(
                "version {version} brings a scorer file but sets scorer = \"{other}\"; only learned and embedding \
                 scorers travel in a version"
            )),
        }
    }
}

/// The center, as the fleet dashboard reads it: a short-lived connection per page.
pub struct Center {
    url: String,
    ca_file: Option<std::path::PathBuf>,
}

impl Center {
    /// The center at `url`, trusting `ca_file`'s authority too.
    pub fn new(url: &str, ca_file: Option<std::path::PathBuf>) -> Self {
        Self { url: url.to_owned(), ca_file }
    }

    async fn view(&self, window: Window) -> Result<FleetView, edgeway_fleet::FleetError> {
        let client = edgeway_fleet::ship::connect(&self.url, CENTER_TIMEOUT, self.ca_file.as_deref()).await?;
        let now = edgeway_store::record::now_ms();
        let groups = edgeway_fleet::center::stats(&client, now - window.span_ms()).await?;
        let hours = u32::try_from(window.span_ms() / 3_600_000).unwrap_or(u32::MAX);
        let boxes = edgeway_fleet::center::status(&client, hours).await?;
        Ok(FleetView {
            window,
            groups: groups.into_iter().map(|(site, stats)| FleetGroup { site, stats }).collect(),
            boxes,
        })
    }
}

/// How long a dashboard page waits for the center.
const CENTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl FleetSource for Center {
    fn load(&self, window: Window) -> BoxFuture<'_, Result<FleetView, String>> {
        Box::pin(async move { self.view(window).await.map_err(|error| error.to_string()) })
    }
}

#[cfg(test)]
mod tests {
    use edgeway_policy::TransparentScorer;

    use super::*;

    fn applier(running: &str, serving_embedding: Option<EmbeddingSpec>) -> Applier {
        let routing = RoutingHandle::new(Routing {
            scorer: Arc::new(TransparentScorer),
            thresholds: Thresholds::uniform(0.7),
            tier_thresholds: Default::default(),
        });
        let running = Mutex::new((running.to_owned(), running.to_owned()));
        Applier { running, serving_embedding, routing, dashboard: None }
    }

    fn version(version: i64, routing: &str, scorer: Option<&str>) -> PushedConfig {
        PushedConfig { version, routing: routing.into(), scorer: scorer.map(str::to_owned) }
    }

    #[test]
    fn a_version_with_its_scorer_replaces_the_scorer_and_later_thresholds_must_be_for_it() {
        let box_ = applier("transparent", None);
        let learned = "[routing]\nscorer = \"learned\"\nthreshold = 0.25\n";
        box_.apply(&version(1, learned, Some(crate::shipped::SCORER_JSON))).unwrap();
        let routing = box_.routing.current();
        assert_eq!(routing.thresholds.default_threshold(), 0.25);
        assert!(routing.scorer.embedding().is_none());
        // Thresholds alone, for the scorer now in force.
        box_.apply(&version(2, "[routing]\nscorer = \"learned\"\nthreshold = 0.5\n", None)).unwrap();
        assert_eq!(box_.routing.current().thresholds.default_threshold(), 0.5);
        let refused = box_.apply(&version(3, "[routing]\nscorer = \"transparent\"\nthreshold = 0.1\n", None));
        assert!(refused.unwrap_err().contains("this box routes with the learned one"));
        assert_eq!(box_.routing.current().thresholds.default_threshold(), 0.5);
    }

    #[test]
    fn a_scorer_the_box_cannot_run_is_refused_and_changes_nothing() {
        let box_ = applier("shipped", None);
        let broken = box_.apply(&version(1, "[routing]\nscorer = \"learned\"\n", Some("{\"weights\": 1}")));
        assert!(broken.unwrap_err().contains("version 1's scorer"));
        let unnamed = box_.apply(&version(2, "[routing]\nthreshold = 0.3\n", Some(crate::shipped::SCORER_JSON)));
        assert!(unnamed.unwrap_err().contains("only learned and embedding scorers travel"));
        let embedding = box_.apply(&version(3, "[routing]\nscorer = \"embedding\"\n", Some("{}")));
        assert!(embedding.is_err());
        assert_eq!(box_.running.lock().unwrap().0, "shipped");
        assert_eq!(box_.routing.current().thresholds.default_threshold(), 0.7);
    }
}
