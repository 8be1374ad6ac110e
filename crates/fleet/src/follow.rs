//! Following the center's configuration: every `every`, a box asks the center for the newest
//! `fleet_config` version for its site; a newer one than it runs is handed to `apply` (which
//! swaps the routing thresholds at once, between requests) and, once applied, saved locally so
//! the box starts with it even when the center is unreachable. A version `apply` refuses is
//! logged and skipped; the box keeps what it runs. The applied version goes to the center with
//! the shipper's next status report.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use edgeway_store::ShipStats;

use crate::{center, ship, FleetError};

/// How a box follows the center's configuration.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The center's PostgreSQL URL.
    pub url: String,
    /// The box's site: it takes its site's versions and the fleet-wide ones.
    pub site: Option<String>,
    /// How often to ask.
    pub every: Duration,
    /// How long to wait for the center.
    pub timeout: Duration,
    /// Where the last applied version is kept.
    pub saved: PathBuf,
    /// The center's private certificate authority, if any (see [`crate::ShipConfig::ca_file`]).
    pub ca_file: Option<PathBuf>,
}

/// A version of the fleet's configuration.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PushedConfig {
    /// Its version number at the center (0 before it is published).
    pub version: i64,
    /// Its `[routing]` table, as TOML.
    pub routing: String,
    /// The trained scorer's file (JSON) its thresholds were calibrated for, when the version
    /// brings one; `None` keeps the scorer the box runs.
    #[serde(default)]
    pub scorer: Option<String>,
}

impl PushedConfig {
    /// The copy saved at `path`, if there is a readable one.
    pub fn load(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Saves it at `path` through a temporary file, so a crash leaves the old copy whole.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let partial = path.with_extension("partial");
        let written = serde_json::to_vec(self)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&partial, json))
            .and_then(|()| std::fs::rename(&partial, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    }
}

/// Follows the center until the task is dropped, starting above `applied` (the version the box
/// started with: its saved copy's, or 0).
pub async fn run(
    config: FollowConfig,
    applied: i64,
    apply: impl Fn(&PushedConfig) -> Result<(), String> + Send + 'static,
    stats: Arc<ShipStats>,
) {
    let mut applied = applied;
    let mut refused = 0;
    loop {
        tokio::time::sleep(config.every).await;
        let newest = match newest(&config).await {
            Ok(Some(newest)) if newest.version > applied && newest.version != refused => newest,
            Ok(_) => continue,
            Err(error) => {
                tracing::debug!(%error, "cannot read the fleet config; keeping the one in force");
                continue;
            }
        };
        match apply(&newest) {
            Ok(()) => {
                applied = newest.version;
                stats.config_version.store(applied, Ordering::Relaxed);
                tracing::info!(version = applied, "applied the fleet config");
                if let Err(error) = newest.save(&config.saved) {
                    tracing::warn!(%error, path = %config.saved.display(), "cannot save the fleet config for offline starts");
                }
            }
            Err(error) => {
                refused = newest.version;
                tracing::error!(version = newest.version, %error, "refused the fleet config; keeping the one in force");
            }
        }
    }
}

async fn newest(config: &FollowConfig) -> Result<Option<PushedConfig>, FleetError> {
    let client = ship::connect(&config.url, config.timeout, config.ca_file.as_deref()).await?;
    center::latest_config(&client, config.site.as_deref()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_config_reads_back_and_a_damaged_one_is_none() {
        let dir = std::env::temp_dir().join(format!("edgeway-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fleet-config.json");
        let config = PushedConfig {
            version: 7,
            routing: "[routing]\nthreshold = 0.4\n".into(),
            scorer: Some("{\"weights\": [0.5]}".into()),
        };
        config.save(&path).unwrap();
        assert_eq!(PushedConfig::load(&path), Some(config));
        std::fs::write(&path, "[routing]\n").unwrap();
        assert_eq!(PushedConfig::load(&path), None);
        std::fs::write(&path, "{\"version\": 3, \"routing\": \"\"}").unwrap();
        assert_eq!(PushedConfig::load(&path).map(|config| config.scorer), Some(None));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
