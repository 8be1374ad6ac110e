//! Aggregates for the dashboard over one window of the query log: requests over time by
//! route and model, errors and fallbacks over time, latency and time-to-first-token
//! percentiles, cost and energy per route, the split per domain, refusals by reason, the
//! guard's decisions (injection screen, extraction detector) and the keys they concern, the
//! edge's energy over time, the inspections by label, and the most recent requests.
//!
//! Counts, sums and percentiles come from the rollups (`rollup.rs`), one row per slice and
//! kind of request, so a week of a busy box reads a few thousand rows; percentiles are read
//! from their histograms, within 4.5 % of the exact ones.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::rollup::{self, Sums};
use crate::writer::open_connection;
use crate::StoreError;

/// How far back the dashboard looks, and how finely it slices time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// The last hour, by minute.
    Hour,
    /// The last day, by quarter hour.
    Day,
    /// The last week, by hour.
    Week,
}

impl Window {
    /// Reads `hour`, `day` or `week` (also `1h`, `24h`, `7d`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "hour" | "1h" => Some(Window::Hour),
            "day" | "24h" | "1d" => Some(Window::Day),
            "week" | "7d" => Some(Window::Week),
            _ => None,
        }
    }

    /// The window's length in milliseconds.
    pub fn span_ms(self) -> i64 {
        match self {
            Window::Hour => 3_600_000,
            Window::Day => 86_400_000,
            Window::Week => 7 * 86_400_000,
        }
    }

    /// One time slice in milliseconds.
    pub fn bucket_ms(self) -> i64 {
        match self {
            Window::Hour => 60_000,
            Window::Day => 900_000,
            Window::Week => 3_600_000,
        }
    }
}

/// Requests per time slice for one route and model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// `edge`, `cloud` or `none` (refused before routing).
    pub route: String,
    /// The model that answered, when one did.
    pub model: Option<String>,
    /// One count per slice, aligned with [`Overview::buckets`].
    pub counts: Vec<u64>,
}

/// One route over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouteSummary {
    /// `edge`, `cloud` or `none`.
    pub route: String,
    /// Requests.
    pub requests: u64,
    /// Requests that failed (not `ok`, not `cancelled`).
    pub errors: u64,
    /// Requests answered by a fallback.
    pub fallbacks: u64,
    /// Total latency, median and 95th percentile.
    pub latency_p50_ms: Option<f64>,
    /// See `latency_p50_ms`.
    pub latency_p95_ms: Option<f64>,
    /// Time to first token, median and 95th percentile (requests that streamed a token).
    pub ttft_p50_ms: Option<f64>,
    /// See `ttft_p50_ms`.
    pub ttft_p95_ms: Option<f64>,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Tokens generated per second of generation (after the first token), over the window.
    pub tokens_per_s: Option<f64>,
    /// Money spent.
    pub cost: f64,
    /// Mean energy per request that measured it, in joules.
    pub energy_j_per_request: Option<f64>,
}

/// One domain over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DomainSummary {
    /// The domain (`none` when the request named none and no rule matched).
    pub domain: String,
    /// Requests.
    pub requests: u64,
    /// Of which answered at the edge.
    pub edge_requests: u64,
    /// Tokens in, for pricing the same traffic all-cloud.
    pub prompt_tokens: u64,
    /// Tokens out.
    pub completion_tokens: u64,
    /// Money spent.
    pub cost: f64,
}

/// A recent request, for the table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecentRequest {
    /// When it arrived (Unix milliseconds).
    pub ts_ms: i64,
    /// The key's id, when keys are in use.
    pub key_id: Option<String>,
    /// Its domain.
    pub domain: Option<String>,
    /// Where it went.
    pub route: String,
    /// Who answered.
    pub model: Option<String>,
    /// Tokens in.
    pub prompt_tokens: u64,
    /// Tokens out.
    pub completion_tokens: u64,
    /// Total latency.
    pub latency_ms: f64,
    /// Money spent.
    pub cost: f64,
    /// `ok`, an error or a refusal.
    pub status: String,
    /// The prompt, only when asked for (an admin viewer) and text logging is on.
    pub prompt_text: Option<String>,
}

/// The guard's decisions of one kind over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GuardCount {
    /// `injection` or `extraction`.
    pub detector: String,
    /// `flag`, `slow`, `strip_logprobs`, `block`, …
    pub action: String,
    /// Decisions.
    pub events: u64,
    /// Distinct keys they concern (0 on a server without keys).
    pub keys: u64,
}

/// A key the extraction detector acted on in the window, with its latest decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlaggedKey {
    /// The key's id.
    pub key_id: String,
    /// The latest action taken on it.
    pub action: String,
    /// The detector's score then.
    pub score: Option<f64>,
    /// When (Unix milliseconds).
    pub ts_ms: i64,
}

/// Everything the dashboard shows for one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    /// The window.
    pub window: Window,
    /// Its start (Unix milliseconds).
    pub since_ms: i64,
    /// Length of a time slice.
    pub bucket_ms: i64,
    /// Start of each time slice.
    pub buckets: Vec<i64>,
    /// Requests per slice by route and model.
    pub requests: Vec<Series>,
    /// Failed requests per slice.
    pub errors: Vec<u64>,
    /// Fallbacks per slice.
    pub fallbacks: Vec<u64>,
    /// Escalations from the edge for low confidence, per slice.
    pub escalations: Vec<u64>,
    /// Energy measured at the edge per slice, in joules (divided by the slice's seconds, the
    /// mean power drawn).
    pub edge_energy_j: Vec<f64>,
    /// Per route, most requests first.
    pub routes: Vec<RouteSummary>,
    /// Per domain, most requests first.
    pub domains: Vec<DomainSummary>,
    /// Requests that did not succeed, by status, most first.
    pub statuses: Vec<(String, u64)>,
    /// The guard's decisions by detector and action.
    pub guard: Vec<GuardCount>,
    /// Keys the extraction detector acted on, latest first.
    pub flagged_keys: Vec<FlaggedKey>,
    /// The latest requests, newest first.
    pub recent: Vec<RecentRequest>,
    /// Images inspected, by the label they got, most first.
    pub inspections: Vec<(String, u64)>,
}

/// Recent requests listed.
const RECENT: usize = 50;

impl Overview {
    /// Reads the window ending at `now_ms` from the log at `path`; `with_text` includes the
    /// recent prompts' text (when it was logged).
    pub fn load(path: &Path, window: Window, now_ms: i64, with_text: bool) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let sqlite = |source| StoreError::Sqlite { path: shown.clone(), source };
        let mut conn = open_connection(path)?;
        // Rows the writer has not folded in yet (or that arrived another way); when that
        // fails (a full disk, a read-only file) the rollups are read as they stand.
        if let Err(error) = catch_up_all(&mut conn) {
            tracing::warn!(%error, path = %shown, "cannot update the dashboard's rollups; showing them as they stand");
        }
        let bucket_ms = window.bucket_ms();
        // Slices aligned to whole multiples, the last one holding `now_ms`.
        let last = now_ms.div_euclid(bucket_ms) * bucket_ms;
        let n = (window.span_ms() / bucket_ms) as usize;
        let first = last - (n as i64 - 1) * bucket_ms;
        let buckets: Vec<i64> = (0..n as i64).map(|i| first + i * bucket_ms).collect();

        let mut requests: BTreeMap<(String, Option<String>), Vec<u64>> = BTreeMap::new();
        let (mut errors, mut fallbacks, mut edge_energy_j) = (vec![0u64; n], vec![0u64; n], vec![0.0; n]);
        let mut escalations = vec![0u64; n];
        let mut routes: BTreeMap<String, Sums> = BTreeMap::new();
        let mut route_errors: BTreeMap<String, u64> = BTreeMap::new();
        let mut domains: BTreeMap<String, DomainSummary> = BTreeMap::new();
        let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
        for (key, sums) in rollup::read_since(&conn, bucket_ms, first).map_err(sqlite)? {
            let i = ((key.slice_ms - first) / bucket_ms) as usize;
            if i >= n {
                continue; // a clock that went back: rows from the future
            }
            let model = (!key.model.is_empty()).then(|| key.model.clone());
            requests.entry((key.route.clone(), model)).or_insert_with(|| vec![0; n])[i] += sums.requests;
            let failed = failed(&key.status);
            if failed {
                errors[i] += sums.requests;
                *route_errors.entry(key.route.clone()).or_default() += sums.requests;
                *statuses.entry(key.status.clone()).or_default() += sums.requests;
            }
            fallbacks[i] += sums.fallbacks;
            escalations[i] += sums.escalations;
            let domain_name = if key.domain.is_empty() { "none".to_owned() } else { key.domain.clone() };
            let domain = domains
                .entry(domain_name.clone())
                .or_insert_with(|| DomainSummary { domain: domain_name, ..DomainSummary::default() });
            domain.requests += sums.requests;
            if key.route == "edge" {
                domain.edge_requests += sums.requests;
                edge_energy_j[i] += sums.energy_j;
            }
            domain.prompt_tokens += sums.prompt_tokens;
            domain.completion_tokens += sums.completion_tokens;
            domain.cost += sums.cost;
            routes.entry(key.route).or_default().merge(&sums);
        }
        let requests = requests.into_iter().map(|((route, model), counts)| Series { route, model, counts }).collect();
        let mut routes: Vec<RouteSummary> = routes
            .into_iter()
            .map(|(route, sums)| RouteSummary {
                errors: route_errors.get(&route).copied().unwrap_or(0),
                route,
                requests: sums.requests,
                fallbacks: sums.fallbacks,
                latency_p50_ms: sums.latency.quantile(0.5),
                latency_p95_ms: sums.latency.quantile(0.95),
                ttft_p50_ms: sums.ttft.quantile(0.5),
                ttft_p95_ms: sums.ttft.quantile(0.95),
                completion_tokens: sums.completion_tokens,
                tokens_per_s: (sums.generating_ms > 0.0)
                    .then(|| sums.generated_tokens as f64 / (sums.generating_ms / 1000.0)),
                cost: sums.cost,
                energy_j_per_request: (sums.energy_requests > 0).then(|| sums.energy_j / sums.energy_requests as f64),
            })
            .collect();
        routes.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.route.cmp(&b.route)));
        let mut domains: Vec<DomainSummary> = domains.into_values().collect();
        domains.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.domain.cmp(&b.domain)));
        let mut statuses: Vec<(String, u64)> = statuses.into_iter().collect();
        statuses.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

        Ok(Self {
            window,
            since_ms: first,
            bucket_ms,
            buckets,
            requests,
            errors,
            fallbacks,
            escalations,
            edge_energy_j,
            routes,
            domains,
            statuses,
            guard: guard(&conn, first).map_err(sqlite)?,
            flagged_keys: flagged_keys(&conn, first).map_err(sqlite)?,
            recent: recent(&conn, first, with_text).map_err(sqlite)?,
            inspections: inspections(&conn, first).map_err(sqlite)?,
        })
    }
}

/// Whether a request with this status failed: not answered and not cancelled by the client.
fn failed(status: &str) -> bool {
    !matches!(status, "ok" | "cancelled")
}

/// Folds every query row not yet in the rollups, a chunk per transaction.
fn catch_up_all(conn: &mut Connection) -> rusqlite::Result<()> {
    const CHUNK: usize = 50_000;
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let folded = rollup::catch_up(&tx, CHUNK)?;
        tx.commit()?;
        if folded < CHUNK {
            return Ok(());
        }
    }
}

fn guard(conn: &Connection, since: i64) -> rusqlite::Result<Vec<GuardCount>> {
    let mut statement = conn.prepare(
        "SELECT detector, action, COUNT(*), COUNT(DISTINCT key_id) FROM guard_events WHERE ts_ms >= ?1
         GROUP BY detector, action ORDER BY COUNT(*) DESC",
    )?;
    let counts = statement
        .query_map(params![since], |row| {
            Ok(GuardCount {
                detector: row.get(0)?,
                action: row.get(1)?,
                events: row.get::<_, i64>(2)? as u64,
                keys: row.get::<_, i64>(3)? as u64,
            })
        })?
        .collect();
    counts
}

fn flagged_keys(conn: &Connection, since: i64) -> rusqlite::Result<Vec<FlaggedKey>> {
    // The latest extraction decision of each key (SQLite takes the bare columns from the MAX row).
    let mut statement = conn.prepare(
        "SELECT key_id, action, score, MAX(ts_ms) FROM guard_events
         WHERE ts_ms >= ?1 AND detector = 'extraction' AND key_id IS NOT NULL
         GROUP BY key_id ORDER BY MAX(ts_ms) DESC LIMIT 50",
    )?;
    let keys = statement
        .query_map(params![since], |row| {
            Ok(FlaggedKey { key_id: row.get(0)?, action: row.get(1)?, score: row.get(2)?, ts_ms: row.get(3)? })
        })?
        .collect();
    keys
}

fn inspections(conn: &Connection, since: i64) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut statement = conn.prepare(
        "SELECT label, COUNT(*) FROM queries WHERE label IS NOT NULL AND ts_ms >= ?1
         GROUP BY label ORDER BY COUNT(*) DESC, label",
    )?;
    let labels = statement.query_map(params![since], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?.collect();
    labels
}

fn recent(conn: &Connection, since: i64, with_text: bool) -> rusqlite::Result<Vec<RecentRequest>> {
    let mut statement = conn.prepare(
        "SELECT ts_ms, key_id, domain, route, model, prompt_tokens, completion_tokens, latency_ms, cost, status,
                prompt_text
         FROM queries WHERE ts_ms >= ?1 ORDER BY ts_ms DESC, id DESC LIMIT ?2",
    )?;
    let recent = statement
        .query_map(params![since, RECENT as i64], |row| {
            Ok(RecentRequest {
                ts_ms: row.get(0)?,
                key_id: row.get(1)?,
                domain: row.get(2)?,
                route: row.get(3)?,
                model: row.get(4)?,
                prompt_tokens: row.get::<_, i64>(5)? as u64,
                completion_tokens: row.get::<_, i64>(6)? as u64,
                latency_ms: row.get(7)?,
                cost: row.get(8)?,
                status: row.get(9)?,
                prompt_text: if with_text { row.get(10)? } else { None },
            })
        })?
        .collect();
    recent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{QueryLog, QueryRecord};

    fn record(ts_ms: i64, route: &str, latency_ms: f64, status: &str) -> QueryRecord {
        QueryRecord {
            ts_ms,
            endpoint: "chat".into(),
            route: route.into(),
            model: Some(format!("{route}-model")),
            domain: Some("code".into()),
            latency_ms,
            ttft_ms: Some(latency_ms / 4.0),
            completion_tokens: 10,
            prompt_tokens: 20,
            cost: if route == "cloud" { 0.001 } else { 0.0 },
            status: status.into(),
            prompt_text: Some(format!("question at {ts_ms}")),
            ..Default::default()
        }
    }

    #[test]
    fn a_window_is_sliced_counted_and_summarised() {
        let dir = std::env::temp_dir().join(format!("edgeway-dashboard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("queries.db");
        let now = 10 * 3_600_000 + 30 * 60_000; // 10:30
        {
            let log = QueryLog::open(&path).unwrap();
            // Outside the hour, on its first and last minute, and in between.
            log.record(record(now - 3_600_000 - 1, "edge", 1.0, "ok"));
            for i in 1..=100 {
                log.record(record(now - 59 * 60_000 + i, "edge", i as f64, "ok"));
            }
            log.record(record(now, "cloud", 500.0, "ok"));
            log.record(record(now, "none", 2.0, "rate_limited"));
            log.record(QueryRecord { reason: Some("low_edge_confidence".into()), ..record(now, "cloud", 700.0, "ok") });
            log.record(QueryRecord {
                label: Some("defect".into()),
                energy_j: Some(3.0),
                ..record(now, "edge", 5.0, "ok")
            });
            log.flush();
        }
        let keys = crate::KeyStore::open(&path).unwrap();
        for (ts_ms, score) in [(now - 7_200_000, 0.5), (now - 120_000, 0.8), (now - 60_000, 0.9)] {
            let evidence = "{}".to_owned();
            let event = crate::GuardEvent {
                ts_ms,
                key_id: Some("key_x".into()),
                detector: "extraction".into(),
                action: "block".into(),
                score: Some(score),
                evidence,
            };
            keys.record_event(&event).unwrap();
        }
        let overview = Overview::load(&path, Window::Hour, now, false).unwrap();
        assert_eq!(overview.buckets.len(), 60);
        assert_eq!(*overview.buckets.last().unwrap(), now);
        let edge = overview.requests.iter().find(|s| s.route == "edge").unwrap();
        // The hour is the 60 minutes ending with the current one: 9:31 to 10:31.
        assert_eq!(overview.since_ms, now - 59 * 60_000);
        assert_eq!(edge.counts[0], 100);
        assert_eq!(edge.counts.iter().sum::<u64>(), 101, "the row before the window is left out");
        assert_eq!((overview.edge_energy_j[59], overview.edge_energy_j[0]), (3.0, 0.0));
        assert_eq!(overview.inspections, vec![("defect".to_owned(), 1)]);
        assert_eq!(overview.errors[59], 1);
        assert_eq!((overview.escalations[59], overview.escalations.iter().sum::<u64>()), (1, 1));
        let summary = overview.routes.iter().find(|r| r.route == "edge").unwrap();
        let near = |read: Option<f64>, exact: f64| (read.unwrap() / exact - 1.0).abs() <= 0.045;
        assert!(near(summary.latency_p50_ms, 50.0) && near(summary.latency_p95_ms, 95.0), "{summary:?}");
        assert!(near(summary.ttft_p95_ms, 95.0 / 4.0), "{summary:?}");
        assert_eq!(overview.statuses, vec![("rate_limited".to_owned(), 1)]);
        let guard = &overview.guard[0];
        assert_eq!(
            (guard.detector.as_str(), guard.action.as_str(), guard.events, guard.keys),
            ("extraction", "block", 2, 1)
        );
        assert_eq!(overview.flagged_keys.len(), 1);
        assert_eq!((overview.flagged_keys[0].ts_ms, overview.flagged_keys[0].score), (now - 60_000, Some(0.9)));
        let code = &overview.domains[0];
        assert_eq!((code.domain.as_str(), code.requests, code.edge_requests), ("code", 104, 101));
        assert_eq!(overview.recent.len(), RECENT);
        assert!(overview.recent.iter().all(|r| r.prompt_text.is_none()), "text only when asked for");
        let with_text = Overview::load(&path, Window::Hour, now, true).unwrap();
        assert!(with_text.recent[0].prompt_text.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn windows_read_their_names_and_each_slice_length_has_rollups() {
        assert_eq!(Window::parse("24h"), Some(Window::Day));
        assert_eq!(Window::parse("month"), None);
        for window in [Window::Hour, Window::Day, Window::Week] {
            assert!(rollup::SLICES_MS.contains(&window.bucket_ms()), "{window:?}");
        }
    }
}
