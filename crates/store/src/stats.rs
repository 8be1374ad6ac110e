//! Aggregates for `edgeway stats`.

use std::path::Path;

use rusqlite::params;

use crate::writer::open_connection;
use crate::StoreError;

/// Totals for one route.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RouteStats {
    /// `edge`, `cloud` or `none`.
    pub route: String,
    /// Requests.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Requests answered by a fallback.
    pub fallbacks: u64,
    /// Tokens in and out.
    pub prompt_tokens: u64,
    /// Tokens out.
    pub completion_tokens: u64,
    /// Money spent.
    pub cost: f64,
    /// Energy, in joules, over the requests that measured it.
    pub energy_j: f64,
    /// Mean latency.
    pub mean_latency_ms: f64,
    /// Mean time to first token.
    pub mean_ttft_ms: f64,
}

/// The whole log, summarised.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    /// One entry per route, most requests first.
    pub routes: Vec<RouteStats>,
}

impl Stats {
    /// Summarises the log at `path`, from `since_ms` (Unix milliseconds) on.
    pub fn load(path: &Path, since_ms: i64) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let sqlite = |source| StoreError::Sqlite { path: shown.clone(), source };
        let conn = open_connection(path)?;
        let mut statement = conn
            .prepare(
                "SELECT route, COUNT(*), SUM(status NOT IN ('ok', 'cancelled')), SUM(fallback_from IS NOT NULL),
                        SUM(prompt_tokens), SUM(completion_tokens), SUM(cost), COALESCE(SUM(energy_j), 0),
                        AVG(latency_ms), COALESCE(AVG(ttft_ms), 0)
                 FROM queries WHERE ts_ms >= ?1 GROUP BY route ORDER BY COUNT(*) DESC",
            )
            .map_err(sqlite)?;
        let routes = statement
            .query_map(params![since_ms], |row| {
                Ok(RouteStats {
                    route: row.get(0)?,
                    requests: row.get::<_, i64>(1)? as u64,
                    errors: row.get::<_, i64>(2)? as u64,
                    fallbacks: row.get::<_, i64>(3)? as u64,
                    prompt_tokens: row.get::<_, i64>(4)? as u64,
                    completion_tokens: row.get::<_, i64>(5)? as u64,
                    cost: row.get(6)?,
                    energy_j: row.get(7)?,
                    mean_latency_ms: row.get(8)?,
                    mean_ttft_ms: row.get(9)?,
                })
            })
            .map_err(sqlite)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sqlite)?;
        Ok(Self { routes })
    }

    /// All requests.
    pub fn total_requests(&self) -> u64 {
        self.routes.iter().map(|r| r.requests).sum()
    }

    /// All money spent.
    pub fn total_cost(&self) -> f64 {
        self.routes.iter().map(|r| r.cost).sum()
    }

    /// What the same traffic would have cost all in the cloud at these prices.
    pub fn all_cloud_cost(&self, price_input_per_mtok: f64, price_output_per_mtok: f64) -> f64 {
        self.routes
            .iter()
            .map(|r| {
                edgeway_core::token_cost(
                    r.prompt_tokens,
                    r.completion_tokens,
                    price_input_per_mtok,
                    price_output_per_mtok,
                )
            })
            .sum()
    }
}

/// One box of a fleet as the center sees it (`edgeway fleet status`, the fleet dashboard).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BoxStatus {
    /// Its id.
    pub box_id: String,
    /// Its site label.
    pub site: Option<String>,
    /// Seconds since its last report.
    pub seen_secs_ago: f64,
    /// Rows it had not shipped then.
    pub backlog: i64,
    /// The config version it applied.
    pub config_version: Option<i64>,
    /// Requests it logged in the window asked about.
    pub requests: i64,
    /// Of which answered at the edge.
    pub edge_share: Option<f64>,
    /// Money per request.
    pub cost_per_query: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{QueryLog, QueryRecord};

    #[test]
    fn splits_costs_and_savings_are_computed_from_the_log() {
        let dir = std::env::temp_dir().join(format!("edgeway-stats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("queries.db");
        {
            let log = QueryLog::open(&path).unwrap();
            let base = QueryRecord {
                ts_ms: 1000,
                endpoint: "chat".into(),
                latency_ms: 100.0,
                status: "ok".into(),
                ..Default::default()
            };
            for _ in 0..3 {
                log.record(QueryRecord {
                    route: "edge".into(),
                    prompt_tokens: 1000,
                    completion_tokens: 100,
                    energy_j: Some(2.0),
                    ..base.clone()
                });
            }
            log.record(QueryRecord {
                route: "cloud".into(),
                prompt_tokens: 1000,
                completion_tokens: 100,
                cost: 0.002,
                ..base.clone()
            });
            log.record(QueryRecord {
                route: "edge".into(),
                status: "internal_error".into(),
                fallback_from: Some("cloud down".into()),
                ..base.clone()
            });
            log.record(QueryRecord { ts_ms: 10, route: "cloud".into(), ..base });
        }
        let stats = Stats::load(&path, 500).unwrap();
        assert_eq!(stats.total_requests(), 5, "the old record is filtered out");
        let edge = &stats.routes[0];
        assert_eq!((edge.route.as_str(), edge.requests, edge.errors, edge.fallbacks), ("edge", 4, 1, 1));
        assert!((edge.energy_j - 6.0).abs() < 1e-9);
        assert!((stats.total_cost() - 0.002).abs() < 1e-12);
        // 4000 tokens in and 400 out at 1 and 10 per million: 0.004 + 0.004.
        assert!((stats.all_cloud_cost(1.0, 10.0) - 0.008).abs() < 1e-12);
    }
}
