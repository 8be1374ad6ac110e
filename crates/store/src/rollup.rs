//! Rollups of the query log for the dashboard: per time slice, route, model, domain and
//! status, the requests and their sums, with latency and time-to-first-token histograms
//! ([`LogHistogram`]) from which percentiles are read. Each slice length the dashboard draws
//! (a minute, a quarter hour, an hour) has its own rows, so a week of a busy box is a few
//! thousand rows instead of a million.
//!
//! The rollups are a cache of the `queries` table: `rollup_mark` holds the last query row
//! they include, and [`catch_up`] folds in the rows after it in the transaction that moves
//! the mark, so no row is counted twice or missed. The log writer calls it after each batch;
//! the dashboard calls it before reading, which also counts rows that arrived another way
//! (an evaluation run, an import).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use crate::histogram::LogHistogram;

/// The slice lengths kept, in milliseconds: a minute, a quarter hour, an hour.
pub const SLICES_MS: [i64; 3] = [60_000, 900_000, 3_600_000];

/// One rollup row's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    /// The slice's length.
    pub slice_len_ms: i64,
    /// Its start (Unix milliseconds, a multiple of its length).
    pub slice_ms: i64,
    /// `edge`, `cloud` or `none`.
    pub route: String,
    /// The answering model; empty when none answered.
    pub model: String,
    /// The domain; empty when the request had none.
    pub domain: String,
    /// `ok`, `cancelled`, an error or a refusal.
    pub status: String,
}

/// The sums of one rollup row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sums {
    /// Requests.
    pub requests: u64,
    /// Of which answered by a fallback.
    pub fallbacks: u64,
    /// Of which escalated from the edge for low confidence.
    pub escalations: u64,
    /// Tokens in.
    pub prompt_tokens: u64,
    /// Tokens out.
    pub completion_tokens: u64,
    /// Money spent.
    pub cost: f64,
    /// Energy of the requests that measured it, in joules.
    pub energy_j: f64,
    /// Requests that measured energy.
    pub energy_requests: u64,
    /// Tokens generated after the first, by requests that streamed one.
    pub generated_tokens: u64,
    /// Milliseconds spent generating them.
    pub generating_ms: f64,
    /// Total latencies.
    pub latency: LogHistogram,
    /// Times to first token.
    pub ttft: LogHistogram,
}

impl Sums {
    /// Adds `other` in.
    pub fn merge(&mut self, other: &Sums) {
        self.requests += other.requests;
        self.fallbacks += other.fallbacks;
        self.escalations += other.escalations;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cost += other.cost;
        self.energy_j += other.energy_j;
        self.energy_requests += other.energy_requests;
        self.generated_tokens += other.generated_tokens;
        self.generating_ms += other.generating_ms;
        self.latency.merge(&other.latency);
        self.ttft.merge(&other.ttft);
    }
}

/// Folds at most `limit` query rows after the mark into the rollups and moves the mark past
/// them; returns how many it folded. Call it inside a transaction (the writer's, or an
/// immediate one), so the mark and the sums move together.
pub fn catch_up(conn: &Connection, limit: usize) -> rusqlite::Result<usize> {
    let mark: i64 = conn.query_row("SELECT last_query_id FROM rollup_mark", [], |row| row.get(0))?;
    let mut statement = conn.prepare_cached(
        "SELECT id, ts_ms, route, COALESCE(model, ''), COALESCE(domain, ''), status, fallback_from IS NOT NULL,
                prompt_tokens, completion_tokens, cost, energy_j, ttft_ms, latency_ms,
                reason = 'low_edge_confidence'
         FROM queries WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let mut rows = statement.query(params![mark, limit as i64])?;
    let mut pending: HashMap<RollupKey, Sums> = HashMap::new();
    let (mut folded, mut last) = (0, mark);
    while let Some(row) = rows.next()? {
        last = row.get(0)?;
        folded += 1;
        let ts_ms: i64 = row.get(1)?;
        let mut one = Sums {
            requests: 1,
            fallbacks: u64::from(row.get::<_, bool>(6)?),
            prompt_tokens: row.get::<_, i64>(7)?.max(0) as u64,
            completion_tokens: row.get::<_, i64>(8)?.max(0) as u64,
            cost: row.get(9)?,
            escalations: u64::from(row.get::<_, Option<bool>>(13)?.unwrap_or(false)),
            ..Sums::default()
        };
        if let Some(energy) = row.get::<_, Option<f64>>(10)? {
            (one.energy_j, one.energy_requests) = (energy, 1);
        }
        let latency: f64 = row.get(12)?;
        one.latency.record(latency);
        if let Some(ttft) = row.get::<_, Option<f64>>(11)? {
            one.ttft.record(ttft);
            if latency > ttft {
                (one.generated_tokens, one.generating_ms) = (one.completion_tokens, latency - ttft);
            }
        }
        let (route, model, domain, status): (String, String, String, String) =
            (row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?);
        for slice_len_ms in SLICES_MS {
            let key = RollupKey {
                slice_len_ms,
                slice_ms: ts_ms.div_euclid(slice_len_ms) * slice_len_ms,
                route: route.clone(),
                model: model.clone(),
                domain: domain.clone(),
                status: status.clone(),
            };
            pending.entry(key).or_default().merge(&one);
        }
    }
    drop(rows);
    for (key, sums) in &pending {
        let mut total = read(conn, key)?.unwrap_or_default();
        total.merge(sums);
        write(conn, key, &total)?;
    }
    if folded > 0 {
        conn.execute("UPDATE rollup_mark SET last_query_id = ?1", params![last])?;
    }
    Ok(folded)
}

const COLUMNS: &str = "requests, fallbacks, prompt_tokens, completion_tokens, cost, energy_j, energy_requests,
    generated_tokens, generating_ms, latency_hist, ttft_hist, escalations";

fn read(conn: &Connection, key: &RollupKey) -> rusqlite::Result<Option<Sums>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM query_rollups
         WHERE slice_len_ms = ?1 AND slice_ms = ?2 AND route = ?3 AND model = ?4 AND domain = ?5 AND status = ?6"
    ))?;
    statement
        .query_row(params![key.slice_len_ms, key.slice_ms, key.route, key.model, key.domain, key.status], |row| {
            sums_from(row, 0)
        })
        .optional()
}

fn write(conn: &Connection, key: &RollupKey, sums: &Sums) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO query_rollups (slice_len_ms, slice_ms, route, model, domain, status, {COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
    ))?;
    statement.execute(params![
        key.slice_len_ms,
        key.slice_ms,
        key.route,
        key.model,
        key.domain,
        key.status,
        sums.requests as i64,
        sums.fallbacks as i64,
        sums.prompt_tokens as i64,
        sums.completion_tokens as i64,
        sums.cost,
        sums.energy_j,
        sums.energy_requests as i64,
        sums.generated_tokens as i64,
        sums.generating_ms,
        sums.latency.to_bytes(),
        sums.ttft.to_bytes(),
        sums.escalations as i64,
    ])?;
    Ok(())
}

/// Reads [`COLUMNS`] starting at column `at`; a damaged histogram reads as empty.
fn sums_from(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Sums> {
    let histogram = |i: usize| -> rusqlite::Result<LogHistogram> {
        Ok(LogHistogram::from_bytes(&row.get::<_, Vec<u8>>(at + i)?).unwrap_or_default())
    };
    Ok(Sums {
        requests: row.get::<_, i64>(at)? as u64,
        fallbacks: row.get::<_, i64>(at + 1)? as u64,
        prompt_tokens: row.get::<_, i64>(at + 2)? as u64,
        completion_tokens: row.get::<_, i64>(at + 3)? as u64,
        cost: row.get(at + 4)?,
        energy_j: row.get(at + 5)?,
        energy_requests: row.get::<_, i64>(at + 6)? as u64,
        generated_tokens: row.get::<_, i64>(at + 7)? as u64,
        generating_ms: row.get(at + 8)?,
        latency: histogram(9)?,
        ttft: histogram(10)?,
        escalations: row.get::<_, i64>(at + 11)? as u64,
    })
}

/// Every rollup row of slice length `slice_len_ms` from `since_ms` on.
pub fn read_since(conn: &Connection, slice_len_ms: i64, since_ms: i64) -> rusqlite::Result<Vec<(RollupKey, Sums)>> {
    let mut statement = conn.prepare(&format!(
        "SELECT slice_len_ms, slice_ms, route, model, domain, status, {COLUMNS} FROM query_rollups
         WHERE slice_len_ms = ?1 AND slice_ms >= ?2"
    ))?;
    let rows = statement
        .query_map(params![slice_len_ms, since_ms], |row| {
            let key = RollupKey {
                slice_len_ms: row.get(0)?,
                slice_ms: row.get(1)?,
                route: row.get(2)?,
                model: row.get(3)?,
                domain: row.get(4)?,
                status: row.get(5)?,
            };
            Ok((key, sums_from(row, 6)?))
        })?
        .collect();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{QueryLog, QueryRecord};

    #[test]
    fn every_row_is_folded_in_once_whichever_way_it_arrived() {
        let dir = std::env::temp_dir().join(format!("edgeway-rollup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("queries.db");
        let record = |ts_ms, latency_ms| QueryRecord {
            ts_ms,
            endpoint: "chat".into(),
            route: "edge".into(),
            model: Some("m".into()),
            latency_ms,
            ttft_ms: Some(10.0),
            completion_tokens: 5,
            energy_j: Some(2.0),
            status: "ok".into(),
            ..Default::default()
        };
        {
            let log = QueryLog::open(&path).unwrap();
            for i in 0..10 {
                log.record(record(120_000 + i, 110.0));
            }
            log.flush();
        }
        let mut conn = crate::writer::open_connection(&path).unwrap();
        // A row written behind the writer's back (an import), then two catch-ups.
        crate::writer::insert_query(&conn, &record(180_000, 1_010.0)).unwrap();
        for _ in 0..2 {
            let tx = conn.transaction().unwrap();
            catch_up(&tx, 3).unwrap();
            tx.commit().unwrap();
        }
        let tx = conn.transaction().unwrap();
        assert_eq!(catch_up(&tx, 100).unwrap(), 0, "nothing is left, so nothing is counted twice");
        drop(tx);
        let minutes = read_since(&conn, 60_000, 0).unwrap();
        assert_eq!(minutes.len(), 2);
        let (first, sums) = minutes.iter().find(|(key, _)| key.slice_ms == 120_000).unwrap();
        assert_eq!((first.model.as_str(), first.domain.as_str()), ("m", ""));
        assert_eq!((sums.requests, sums.completion_tokens, sums.generated_tokens), (10, 50, 50));
        assert_eq!((sums.energy_j, sums.energy_requests, sums.generating_ms), (20.0, 10, 1_000.0));
        let hours = read_since(&conn, 3_600_000, 0).unwrap();
        assert_eq!(hours.len(), 1);
        assert_eq!(hours[0].1.requests, 11);
        assert_eq!(hours[0].1.latency.len(), 11);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
