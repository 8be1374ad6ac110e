//! The dashboard's view of the configuration: prices, power budget, thresholds and where they
//! came from, the calibration curve and the knowledge base.

use std::path::PathBuf;

use edgeway_server::{Calibration, CalibrationPlot, DashboardFacts, Routing};

use edgeway_policy::{Thresholds, TierThresholds};

use crate::config::{CalibrationSection, ScorerSetting, ServeSettings};

/// What `serve` tells the dashboard about itself; `knowledge_db` when retrieval is on.
pub fn facts(settings: &ServeSettings, knowledge_db: Option<PathBuf>) -> DashboardFacts {
    let has_cloud = !settings.clouds.is_empty();
    let gateway = &settings.gateway;
    let calibration = settings.calibration.as_ref();
    DashboardFacts {
        cloud_price_per_mtok: settings
            .clouds
            .first()
            .map(|cloud| (cloud.config.price_input_per_mtok, cloud.config.price_output_per_mtok))
            .filter(|(input, output)| *input > 0.0 || *output > 0.0),
        power_budget_watts: gateway.power_budget.as_ref().map(|budget| budget.watts),
        routing: routing(
            scorer_name(&settings.scorer),
            has_cloud,
            &gateway.thresholds,
            &gateway.tier_thresholds,
            calibration,
        ),
        calibration_plot: if settings.shipped_routing {
            Some(CalibrationPlot::Shipped(crate::shipped::CALIBRATION_SVG))
        } else {
            calibration.and_then(|c| c.plot.clone()).map(CalibrationPlot::File)
        },
        knowledge_db,
        fleet: None,
    }
}

/// The routing as the dashboard shows it: `scorer` (as [`scorer_name`] names it) and its
/// thresholds (none without a cloud to route to), with where they came from.
pub fn routing(
    scorer: String,
    has_cloud: bool,
    thresholds: &Thresholds,
    tier_thresholds: &TierThresholds,
    calibration: Option<&CalibrationSection>,
) -> Routing {
    let mut per_domain: Vec<(String, f32)> =
        thresholds.domains().map(|domain| (domain.to_owned(), thresholds.of(domain))).collect();
    per_domain.sort_by(|a, b| a.0.cmp(&b.0));
    Routing {
        scorer,
        default_threshold: has_cloud.then(|| thresholds.default_threshold()),
        thresholds: if has_cloud { per_domain } else { Vec::new() },
        tier_thresholds: tier_thresholds
            .entries()
            .into_iter()
            .map(|(domain, tier, threshold)| (domain.map(str::to_owned), tier, threshold))
            .collect(),
        calibration: calibration.map(|c| Calibration {
            at: c.at.clone(),
            run: c.run.clone(),
            items: c.items,
            target: c.target,
        }),
    }
}

/// The scorer as the dashboard names it.
pub fn scorer_name(scorer: &ScorerSetting) -> String {
    match scorer {
        ScorerSetting::Shipped => "shipped (learned on the default traffic mix)".into(),
        ScorerSetting::Transparent => "transparent (weighted features)".into(),
        ScorerSetting::Learned(path) => {
            format!(
                "learned ({})",
                path.as_ref().map_or_else(|| "DATA_DIR/scorer.json".into(), |p| p.display().to_string())
            )
        }
        ScorerSetting::Embedding(path) => format!(
            "embedding ({})",
            path.as_ref().map_or_else(|| "DATA_DIR/embedding-scorer.json".into(), |p| p.display().to_string())
        ),
    }
}
