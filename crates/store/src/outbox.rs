//! The query log as the fleet's outbox: the rows not yet shipped to the center, in order, and
//! the watermark that says which were. The shipper (`crates/fleet`) moves the watermark only
//! after the center committed the rows, so a crash between the two re-ships rows the center
//! then ignores (it keys them by box and sequence number): nothing is lost or duplicated.
//!
//! Each row's sequence number is its `queries.id`, which only grows (rows are never deleted
//! from the end of the log). Graded evaluation answers and guard decisions ship the same way,
//! each with its own watermark.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};

use rusqlite::{params, Connection, OptionalExtension};

use crate::eval::{eval_record, EvalRecord, EVAL_COLUMNS};
use crate::keys::GuardEvent;
use crate::record::QueryRecord;
use crate::writer::{open_connection, query_columns, query_record};
use crate::StoreError;

/// How shipping goes, for `/metrics` and the dashboard: updated by the shipper, read by anyone.
#[derive(Debug, Default)]
pub struct ShipStats {
    /// Rows logged and not yet shipped, as of the last look.
    pub backlog: AtomicU64,
    /// Rows the center committed since start.
    pub shipped: AtomicU64,
    /// Shipping attempts that failed since start.
    pub failures: AtomicU64,
    /// When the center last committed a batch or took a report (Unix milliseconds; 0: never).
    pub last_ok_ms: AtomicI64,
    /// Whether the last attempt reached the center.
    pub center_up: AtomicBool,
    /// The fleet config version applied (0: none).
    pub config_version: AtomicI64,
}

/// A graded evaluation answer waiting to be shipped.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEval {
    /// Its sequence number on this box (`eval_results.id`).
    pub seq: i64,
    /// The sequence number of its request (`queries.id`), when it has one.
    pub query_seq: Option<i64>,
    /// The answer.
    pub record: EvalRecord,
}

/// A guard decision waiting to be shipped.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxGuardEvent {
    /// Its sequence number on this box (`guard_events.id`).
    pub seq: i64,
    /// The decision.
    pub event: GuardEvent,
}

/// A logged request waiting to be shipped.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Its sequence number on this box (`queries.id`).
    pub seq: i64,
    /// The row.
    pub record: QueryRecord,
}

/// The unshipped end of a query log.
pub struct Outbox {
    conn: Connection,
    path: PathBuf,
}

impl Outbox {
    /// Opens the query log at `path` (creating and migrating it if needed).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        Ok(Self { conn: open_connection(&path)?, path })
    }

    fn error(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite { path: self.path.display().to_string(), source }
    }

    /// The last sequence number the center has.
    pub fn watermark(&self) -> Result<i64, StoreError> {
        self.conn.query_row("SELECT last_shipped_id FROM fleet_mark", [], |row| row.get(0)).map_err(self.error())
    }

    /// Rows logged and not yet shipped: the newest id less the watermark, read from the index's
    /// end instead of counting a backlog that may be millions of rows after a long outage. Ids
    /// above the watermark have no gaps: rows are only ever deleted once shipped.
    pub fn backlog(&self) -> Result<u64, StoreError> {
        let watermark = self.watermark()?;
        let newest: i64 = self
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM queries", [], |row| row.get(0))
            .map_err(self.error())?;
        Ok(newest.saturating_sub(watermark).max(0) as u64)
    }

    /// Up to `limit` rows after the watermark, oldest first.
    pub fn pending(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let watermark = self.watermark()?;
        let mut statement = self
            .conn
            .prepare_cached(concat!(
                "SELECT id, ",
                query_columns!(),
                " FROM queries WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))
            .map_err(self.error())?;
        let rows = statement
            .query_map(params![watermark, limit as i64], |row| {
                Ok(OutboxRow { seq: row.get(0)?, record: query_record(row, 1)? })
            })
            .map_err(self.error())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.error())?;
        Ok(rows)
    }

    /// Up to `limit` graded answers not yet shipped, oldest first, with the last shipped one's
    /// sequence number.
    pub fn pending_eval(&self, limit: usize) -> Result<Vec<OutboxEval>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, query_id, {EVAL_COLUMNS} FROM eval_results
                 WHERE id > (SELECT last_eval_id FROM fleet_mark) ORDER BY id LIMIT ?1"
            ))
            .map_err(self.error())?;
        let rows = statement
            .query_map(params![limit as i64], |row| {
                Ok(OutboxEval { seq: row.get(0)?, query_seq: row.get(1)?, record: eval_record(row, 2)? })
            })
            .map_err(self.error())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.error())?;
        Ok(rows)
    }

    /// Up to `limit` guard decisions not yet shipped, oldest first.
    pub fn pending_guard(&self, limit: usize) -> Result<Vec<OutboxGuardEvent>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT id, ts_ms, key_id, detector, action, score, evidence FROM guard_events
                 WHERE id > (SELECT last_guard_id FROM fleet_mark) ORDER BY id LIMIT ?1",
            )
            .map_err(self.error())?;
        let rows = statement
            .query_map(params![limit as i64], |row| {
                Ok(OutboxGuardEvent {
                    seq: row.get(0)?,
                    event: GuardEvent {
                        ts_ms: row.get(1)?,
                        key_id: row.get(2)?,
                        detector: row.get(3)?,
                        action: row.get(4)?,
                        score: row.get(5)?,
                        evidence: row.get(6)?,
                    },
                })
            })
            .map_err(self.error())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.error())?;
        Ok(rows)
    }

    /// Records that the center committed every graded answer up to `seq` and every guard
    /// decision up to `guard_seq` (neither moves backwards).
    pub fn mark_side_shipped(&self, eval_seq: i64, guard_seq: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE fleet_mark SET last_eval_id = MAX(last_eval_id, ?1), last_guard_id = MAX(last_guard_id, ?2)",
                params![eval_seq, guard_seq],
            )
            .map_err(self.error())?;
        Ok(())
    }

    /// Records that the center committed every row up to `seq` (never moves backwards).
    pub fn mark_shipped(&self, seq: i64) -> Result<(), StoreError> {
        self.conn
            .execute("UPDATE fleet_mark SET last_shipped_id = MAX(last_shipped_id, ?1)", params![seq])
            .map_err(self.error())?;
        Ok(())
    }

    /// Deletes shipped rows beyond the newest `keep` of them (the local log's budget), oldest
    /// first; never an unshipped row, never the newest row. Returns how many went.
    pub fn prune_shipped(&self, keep: u64) -> Result<u64, StoreError> {
        let watermark = self.watermark()?;
        let newest: Option<i64> = self
            .conn
            .query_row("SELECT MAX(id) FROM queries", [], |row| row.get(0))
            .optional()
            .map_err(self.error())?
            .flatten();
        let rolled_up: i64 =
            self.conn.query_row("SELECT last_query_id FROM rollup_mark", [], |row| row.get(0)).map_err(self.error())?;
        // The newest row stays so ids keep growing after a restart; rows the dashboard's
        // rollups have not counted yet stay too.
        let limit = watermark.min(rolled_up).min(newest.unwrap_or(0) - 1);
        let cut: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM queries WHERE id <= ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2",
                params![limit, keep as i64],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.error())?;
        let Some(cut) = cut else { return Ok(0) };
        let deleted = self
            .conn
            .execute(
                "DELETE FROM queries WHERE id <= ?1 AND id NOT IN (SELECT query_id FROM eval_results WHERE query_id IS NOT NULL)",
                params![cut],
            )
            .map_err(self.error())?;
        Ok(deleted as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QueryLog;

    #[test]
    fn rows_come_out_in_order_once_shipped_stay_shipped_and_pruning_keeps_the_unshipped() {
        let dir = std::env::temp_dir().join(format!("edgeway-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("queries.db");
        {
            let log = QueryLog::open(&path).unwrap();
            for i in 0..10 {
                log.record(QueryRecord {
                    ts_ms: 1_000 + i,
                    endpoint: "chat".into(),
                    route: "edge".into(),
                    status: "ok".into(),
                    prompt_text: Some(format!("q{i}")),
                    ..Default::default()
                });
            }
            log.flush();
        }
        let outbox = Outbox::open(&path).unwrap();
        assert_eq!((outbox.watermark().unwrap(), outbox.backlog().unwrap()), (0, 10));
        let first = outbox.pending(4).unwrap();
        assert_eq!(first.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(first[3].record.prompt_text.as_deref(), Some("q3"));
        outbox.mark_shipped(4).unwrap();
        outbox.mark_shipped(2).unwrap(); // a late, older acknowledgement does not move it back
        assert_eq!((outbox.watermark().unwrap(), outbox.backlog().unwrap()), (4, 6));
        assert_eq!(outbox.pending(100).unwrap()[0].seq, 5);
        // Keep one shipped row: rows 1-3 go, 4 and everything unshipped stay.
        assert_eq!(outbox.prune_shipped(1).unwrap(), 3);
        assert_eq!(outbox.backlog().unwrap(), 6);
        assert_eq!(outbox.prune_shipped(1).unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
