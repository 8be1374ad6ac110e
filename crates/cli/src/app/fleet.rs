//! A box of a fleet: the center's routing thresholds applied while serving, and kept for
//! starts without the center.

use std::sync::Arc;

use edgeway_fleet::follow::{FollowConfig, PushedConfig};
use edgeway_gateway::ThresholdsHandle;
use edgeway_store::ShipStats;

use crate::app::DataDir;
use crate::config::{routing_thresholds, FileConfig, FleetSettings, ScorerSetting};

/// Applies the last fleet config saved in the data directory (the center may be unreachable
/// at start), then follows the center's newer versions in the background.
/// A version calibrated for another scorer than the box runs is refused: its thresholds would
/// cut another scale.
pub fn follow(
    fleet: &FleetSettings,
    data_dir: &DataDir,
    scorer: &ScorerSetting,
    thresholds: ThresholdsHandle,
    stats: Arc<ShipStats>,
) {
    let saved = data_dir.fleet_config();
    let running = scorer.name();
    let apply = move |config: &PushedConfig| -> Result<(), String> {
        let pushed = toml::from_str::<FileConfig>(&config.routing).ok().and_then(|file| file.routing.scorer);
        if let Some(pushed) = pushed.filter(|pushed| pushed != running) {
            return Err(format!(
                "version {} was calibrated for the {pushed} scorer, and this box routes with the {running} one",
                config.version
            ));
        }
        let (domain, tier) = routing_thresholds(&config.routing).map_err(|error| format!("{error:#}"))?;
        thresholds.set(domain, tier);
        Ok(())
    };
    let mut applied = 0;
    if let Some(config) = PushedConfig::load(&saved) {
        match apply(&config) {
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
    tokio::spawn(edgeway_fleet::follow::run(config, applied, apply, stats));
}
