//! Aggregates for the dashboard over one window of the query log: requests over time by
//! route and model, errors and fallbacks over time, latency and time-to-first-token
//! percentiles, cost and energy per route, the split per domain, refusals by reason, the
//! guard's decisions (injection screen, extraction detector) and the keys they concern, and
//! the most recent requests.
//!
//! Percentiles are exact: the window's latencies are read and sorted here (SQLite has no
//! percentile function).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection};
use serde::Serialize;

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
}

/// Recent requests listed.
const RECENT: usize = 50;

/// What failed: not answered and not cancelled by the client.
const FAILED: &str = "status NOT IN ('ok', 'cancelled')";

impl Overview {
    /// Reads the window ending at `now_ms` from the log at `path`; `with_text` includes the
    /// recent prompts' text (when it was logged).
    pub fn load(path: &Path, window: Window, now_ms: i64, with_text: bool) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let sqlite = |source| StoreError::Sqlite { path: shown.clone(), source };
        let conn = open_connection(path)?;
        let bucket_ms = window.bucket_ms();
        // Slices aligned to whole multiples, the last one holding `now_ms`.
        let last = now_ms.div_euclid(bucket_ms) * bucket_ms;
        let n = (window.span_ms() / bucket_ms) as usize;
        let first = last - (n as i64 - 1) * bucket_ms;
        let buckets: Vec<i64> = (0..n as i64).map(|i| first + i * bucket_ms).collect();
        let slice = |ts: i64| ((ts - first) / bucket_ms) as usize;

        let mut requests: BTreeMap<(String, Option<String>), Vec<u64>> = BTreeMap::new();
        let (mut errors, mut fallbacks) = (vec![0u64; n], vec![0u64; n]);
        let mut statement = conn
            .prepare(&format!(
                "SELECT ts_ms / ?2 * ?2, route, model, COUNT(*), SUM({FAILED}), SUM(fallback_from IS NOT NULL)
                 FROM queries WHERE ts_ms >= ?1 GROUP BY 1, 2, 3"
            ))
            .map_err(sqlite)?;
        let mut rows = statement.query(params![first, bucket_ms]).map_err(sqlite)?;
        while let Some(row) = rows.next().map_err(sqlite)? {
            let i = slice(row.get(0).map_err(sqlite)?);
            if i >= n {
                continue; // a clock that went back: rows from the future
            }
            let key = (row.get(1).map_err(sqlite)?, row.get(2).map_err(sqlite)?);
            requests.entry(key).or_insert_with(|| vec![0; n])[i] += row.get::<_, i64>(3).map_err(sqlite)? as u64;
            errors[i] += row.get::<_, i64>(4).map_err(sqlite)? as u64;
            fallbacks[i] += row.get::<_, i64>(5).map_err(sqlite)? as u64;
        }
        drop(rows);
        let requests = requests.into_iter().map(|((route, model), counts)| Series { route, model, counts }).collect();

        Ok(Self {
            window,
            since_ms: first,
            bucket_ms,
            buckets,
            requests,
            errors,
            fallbacks,
            routes: routes(&conn, first).map_err(sqlite)?,
            domains: domains(&conn, first).map_err(sqlite)?,
            statuses: statuses(&conn, first).map_err(sqlite)?,
            guard: guard(&conn, first).map_err(sqlite)?,
            flagged_keys: flagged_keys(&conn, first).map_err(sqlite)?,
            recent: recent(&conn, first, with_text).map_err(sqlite)?,
        })
    }
}

fn routes(conn: &Connection, since: i64) -> rusqlite::Result<Vec<RouteSummary>> {
    let mut statement = conn.prepare(&format!(
        "SELECT route, COUNT(*), SUM({FAILED}), SUM(fallback_from IS NOT NULL), SUM(completion_tokens), SUM(cost),
                AVG(energy_j),
                SUM(CASE WHEN ttft_ms IS NOT NULL AND latency_ms > ttft_ms THEN completion_tokens ELSE 0 END),
                SUM(CASE WHEN ttft_ms IS NOT NULL AND latency_ms > ttft_ms THEN latency_ms - ttft_ms ELSE 0 END)
         FROM queries WHERE ts_ms >= ?1 GROUP BY route ORDER BY COUNT(*) DESC"
    ))?;
    let mut routes = statement
        .query_map(params![since], |row| {
            let generated: i64 = row.get(7)?;
            let generating_ms: f64 = row.get(8)?;
            Ok(RouteSummary {
                route: row.get(0)?,
                requests: row.get::<_, i64>(1)? as u64,
                errors: row.get::<_, i64>(2)? as u64,
                fallbacks: row.get::<_, i64>(3)? as u64,
                completion_tokens: row.get::<_, i64>(4)? as u64,
                cost: row.get(5)?,
                energy_j_per_request: row.get(6)?,
                tokens_per_s: (generating_ms > 0.0).then(|| generated as f64 / (generating_ms / 1000.0)),
                ..RouteSummary::default()
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for route in &mut routes {
        let latencies = column(conn, "latency_ms", since, &route.route)?;
        (route.latency_p50_ms, route.latency_p95_ms) = (percentile(&latencies, 0.5), percentile(&latencies, 0.95));
        let ttfts = column(conn, "ttft_ms", since, &route.route)?;
        (route.ttft_p50_ms, route.ttft_p95_ms) = (percentile(&ttfts, 0.5), percentile(&ttfts, 0.95));
    }
    Ok(routes)
}

/// One column's non-null values for a route in the window, sorted.
fn column(conn: &Connection, name: &str, since: i64, route: &str) -> rusqlite::Result<Vec<f64>> {
    let sql = format!("SELECT {name} FROM queries WHERE ts_ms >= ?1 AND route = ?2 AND {name} IS NOT NULL ORDER BY 1");
    let mut statement = conn.prepare(&sql)?;
    let values = statement.query_map(params![since, route], |row| row.get(0))?.collect();
    values
}

/// The `q` quantile of sorted `values` (nearest rank); `None` for none.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

fn domains(conn: &Connection, since: i64) -> rusqlite::Result<Vec<DomainSummary>> {
    let mut statement = conn.prepare(
        "SELECT COALESCE(domain, 'none'), COUNT(*), SUM(route = 'edge'), SUM(prompt_tokens), SUM(completion_tokens),
                SUM(cost)
         FROM queries WHERE ts_ms >= ?1 GROUP BY 1 ORDER BY COUNT(*) DESC",
    )?;
    let domains = statement
        .query_map(params![since], |row| {
            Ok(DomainSummary {
                domain: row.get(0)?,
                requests: row.get::<_, i64>(1)? as u64,
                edge_requests: row.get::<_, i64>(2)? as u64,
                prompt_tokens: row.get::<_, i64>(3)? as u64,
                completion_tokens: row.get::<_, i64>(4)? as u64,
                cost: row.get(5)?,
            })
        })?
        .collect();
    domains
}

fn statuses(conn: &Connection, since: i64) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut statement = conn.prepare(&format!(
        "SELECT status, COUNT(*) FROM queries WHERE ts_ms >= ?1 AND {FAILED} GROUP BY status ORDER BY COUNT(*) DESC"
    ))?;
    let statuses =
        statement.query_map(params![since], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?.collect();
    statuses
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
    fn a_window_is_sliced_counted_and_summarised_exactly() {
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
        assert_eq!(edge.counts.iter().sum::<u64>(), 100, "the row before the window is left out");
        assert_eq!(overview.errors[59], 1);
        let summary = overview.routes.iter().find(|r| r.route == "edge").unwrap();
        assert_eq!((summary.latency_p50_ms, summary.latency_p95_ms), (Some(50.0), Some(95.0)));
        assert_eq!(summary.ttft_p95_ms, Some(95.0 / 4.0));
        assert_eq!(overview.statuses, vec![("rate_limited".to_owned(), 1)]);
        let guard = &overview.guard[0];
        assert_eq!(
            (guard.detector.as_str(), guard.action.as_str(), guard.events, guard.keys),
            ("extraction", "block", 2, 1)
        );
        assert_eq!(overview.flagged_keys.len(), 1);
        assert_eq!((overview.flagged_keys[0].ts_ms, overview.flagged_keys[0].score), (now - 60_000, Some(0.9)));
        let code = &overview.domains[0];
        assert_eq!((code.domain.as_str(), code.requests, code.edge_requests), ("code", 102, 100));
        assert_eq!(overview.recent.len(), RECENT);
        assert!(overview.recent.iter().all(|r| r.prompt_text.is_none()), "text only when asked for");
        let with_text = Overview::load(&path, Window::Hour, now, true).unwrap();
        assert!(with_text.recent[0].prompt_text.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn windows_read_their_names_and_percentiles_use_the_nearest_rank() {
        assert_eq!(Window::parse("24h"), Some(Window::Day));
        assert_eq!(Window::parse("month"), None);
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[3.0], 0.95), Some(3.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.0));
    }
}
