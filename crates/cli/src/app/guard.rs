//! The query log and the guard in front of the API (keys, model-extraction detection, the
//! prompt-injection screen).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use edgeway_guard::injection::{InjectionModel, InjectionScreen};
use edgeway_guard::Guard;
use edgeway_store::QueryLog;

use super::DataDir;
use crate::config::ServeSettings;

/// Opens (creating if needed) the query log at `path`.
pub fn open_query_log(path: &Path) -> anyhow::Result<QueryLog> {
    QueryLog::open(path).with_context(|| format!("cannot open the query log {}", path.display()))
}

/// The guard over the key table beside the query log at `log_path`; refuses a public address
/// without keys unless `--insecure`.
pub fn open_guard(log_path: &Path, settings: &ServeSettings, data_dir: &DataDir) -> anyhow::Result<Arc<Guard>> {
    let store = edgeway_store::KeyStore::open(log_path)
        .with_context(|| format!("cannot open the key table in {}", log_path.display()))?;
    let guard = Guard::new(Some(Arc::new(store)), settings.api_key.as_deref())
        .with_extraction(settings.extraction.clone())
        .with_injection(injection_screen(data_dir)?, settings.injection_action);
    let guard = match &settings.injection_judge {
        Some(judge) => {
            tracing::info!(model = %judge.model, thresholds = ?judge.thresholds, "prompt-injection judge on");
            guard.with_injection_judge(judge.clone())
        }
        None => guard,
    };
    let keys_required = guard.required()?;
    if !is_loopback(&settings.host) && !keys_required {
        anyhow::ensure!(
            settings.insecure,
            "refusing to listen on {} without API keys: anyone who can reach this address could use the model. \
             Create a key (`edgeway keys create NAME`), pass --api-key, listen on 127.0.0.1, \
             or pass --insecure if this network is trusted",
            settings.host
        );
        tracing::warn!(host = %settings.host, "listening on a public address with no API keys (--insecure)");
    }
    if keys_required {
        tracing::info!("API keys required (Authorization: Bearer KEY)");
    }
    Ok(Arc::new(guard))
}

/// The injection screen: rules, plus the classifier `edgeway bench injection` saved in the data
/// directory, or else the one shipped with edgeway.
fn injection_screen(data_dir: &DataDir) -> anyhow::Result<InjectionScreen> {
    let path = data_dir.injection_classifier();
    if path.is_file() {
        match InjectionModel::load(&path) {
            Ok(model) => {
                tracing::info!(path = %path.display(), "prompt-injection classifier loaded");
                return Ok(InjectionScreen::with_classifier(model));
            }
            Err(error) => tracing::warn!(%error, "using the prompt-injection classifier shipped with edgeway instead"),
        }
    }
    let model = crate::shipped::injection_classifier()?;
    tracing::info!(
        "prompt-injection classifier: the one shipped with edgeway (`edgeway bench injection` trains your own)"
    );
    Ok(InjectionScreen::with_classifier(model))
}

/// Whether `host` is a loopback address (or `localhost`).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_addresses() {
        for host in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["0.0.0.0", "::", "192.168.1.10", "example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
