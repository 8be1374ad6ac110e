//! The background writer: the request path hands records over and moves on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection};

use crate::record::QueryRecord;
use crate::schema::{prepare_with, MIGRATIONS};
use crate::StoreError;

/// Most records committed in one transaction.
const BATCH: usize = 256;
/// Most records held for retry while the disk refuses writes.
const RETRY_LIMIT: usize = 10_000;
/// How often held records are retried when no new ones arrive.
const RETRY_EVERY: Duration = Duration::from_secs(1);

enum Message {
    Record(Box<QueryRecord>),
    Flush(mpsc::Sender<()>),
}

/// A handle to the query log; cheap to share behind an `Arc`.
pub struct QueryLog {
    path: PathBuf,
    sender: Option<mpsc::Sender<Message>>,
    writer: Option<JoinHandle<()>>,
    health: Arc<WriterHealth>,
}

/// How the writer is doing, as `/health` and `/metrics` report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStatus {
    /// Records waiting to be written because the last write failed (a full disk, a locked file).
    pub held: usize,
    /// Records given up on since start (more than the writer holds failed for too long).
    pub dropped: u64,
    /// Why the last write failed, while writes fail; `None` once one succeeds.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
struct WriterHealth {
    held: AtomicUsize,
    dropped: AtomicU64,
    error: Mutex<Option<String>>,
}

impl WriterHealth {
    fn set_error(&self, error: Option<String>) {
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
}

/// Opens (creating if needed) the query log at `path` and brings its schema up to date.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    open_with(path, MIGRATIONS)
}

/// Opens (creating the file and its folder if needed) a database and applies `migrations`.
pub(crate) fn open_with(path: &Path, migrations: &[&str]) -> Result<Connection, StoreError> {
    let shown = path.display().to_string();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| StoreError::Sqlite {
            path: shown.clone(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(error)),
        })?;
    }
    let mut conn = Connection::open(path).map_err(|source| StoreError::Sqlite { path: shown.clone(), source })?;
    prepare_with(&mut conn, &shown, migrations)?;
    Ok(conn)
}

impl QueryLog {
    /// Opens the log at `path` and starts its writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = open_connection(&path)?;
        let (sender, receiver) = mpsc::channel();
        let shown = path.display().to_string();
        let health = Arc::new(WriterHealth::default());
        let writer_health = Arc::clone(&health);
        let writer = std::thread::Builder::new()
            .name("edgeway-query-log".into())
            .spawn(move || write_loop(conn, &shown, receiver, &writer_health))
            .map_err(|error| StoreError::Sqlite {
                path: path.display().to_string(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(error)),
            })?;
        Ok(Self { path, sender: Some(sender), writer: Some(writer), health })
    }

    /// Whether writes succeed, and what is held or was dropped when they do not.
    pub fn status(&self) -> LogStatus {
        LogStatus {
            held: self.health.held.load(Ordering::Relaxed),
            dropped: self.health.dropped.load(Ordering::Relaxed),
            error: self.health.error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a record; returns at once.
    pub fn record(&self, record: QueryRecord) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(Message::Record(Box::new(record)));
        }
    }

    /// Waits until every record queued so far is committed (or given up on).
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if let Some(sender) = &self.sender {
            if sender.send(Message::Flush(done)).is_ok() {
                let _ = wait.recv_timeout(Duration::from_secs(30));
            }
        }
    }
}

impl Drop for QueryLog {
    /// Commits what is queued before the process goes.
    fn drop(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_loop(mut conn: Connection, path: &str, receiver: mpsc::Receiver<Message>, health: &WriterHealth) {
    // A log from before the rollups (or rows added another way) is folded in first; records
    // queue meanwhile.
    while let Ok(ROLLUP_CHUNK) = roll_up(&mut conn, path) {}
    let mut pending: Vec<QueryRecord> = Vec::new();
    loop {
        // Held records are retried every second even when nothing new arrives, so the log
        // catches up as soon as the disk has room again.
        let first = if pending.is_empty() {
            receiver.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        } else {
            receiver.recv_timeout(RETRY_EVERY)
        };
        let mut flushes = Vec::new();
        match first {
            Ok(first) => {
                let mut next = Some(first);
                let mut taken = 0;
                while let Some(message) = next.take() {
                    match message {
                        Message::Record(record) => pending.push(*record),
                        Message::Flush(done) => flushes.push(done),
                    }
                    taken += 1;
                    if taken < BATCH {
                        next = receiver.try_recv().ok();
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        match insert(&mut conn, &pending) {
            Ok(()) => {
                if health.held.load(Ordering::Relaxed) > 0 {
                    tracing::info!(
                        path,
                        written = pending.len(),
                        "the query log is writable again; held records written"
                    );
                }
                pending.clear();
                health.set_error(None);
                let _ = roll_up(&mut conn, path);
            }
            Err(error) => {
                // A full disk or a locked file: keep the records (the transaction rolled back, so
                // nothing is half-written) and try again.
                if health.held.load(Ordering::Relaxed) == 0 {
                    tracing::error!(%error, path, held = pending.len(), "cannot write the query log; holding records and retrying");
                }
                health.set_error(Some(error.to_string()));
                if pending.len() > RETRY_LIMIT {
                    let lost = pending.len() - RETRY_LIMIT;
                    pending.drain(..lost);
                    health.dropped.fetch_add(lost as u64, Ordering::Relaxed);
                    tracing::error!(lost, "query log records dropped after repeated write failures");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        health.held.store(pending.len(), Ordering::Relaxed);
        for done in flushes {
            let _ = done.send(());
        }
    }
    if !pending.is_empty() {
        if let Err(error) = insert(&mut conn, &pending) {
            tracing::error!(%error, lost = pending.len(), "query log records lost at shutdown");
        }
    }
}

/// Most query rows folded into the rollups in one transaction.
const ROLLUP_CHUNK: usize = 50_000;

/// Folds new query rows into the dashboard's rollups, in their own transaction: a failure
/// here never holds back the log itself (the rows are folded in on a later try).
fn roll_up(conn: &mut Connection, path: &str) -> rusqlite::Result<usize> {
    let result = conn.transaction().and_then(|tx| {
        let folded = crate::rollup::catch_up(&tx, ROLLUP_CHUNK)?;
        tx.commit().map(|()| folded)
    });
    if let Err(error) = &result {
        tracing::warn!(%error, path, "cannot update the dashboard's rollups; will retry");
    }
    result
}

fn insert(conn: &mut Connection, records: &[QueryRecord]) -> rusqlite::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for record in records {
        insert_query(&tx, record)?;
    }
    tx.commit()
}

/// The `queries` columns a [`QueryRecord`] fills, in its fields' order: the writer inserts them
/// and the fleet's outbox reads them back ([`query_record`]).
macro_rules! query_columns {
    () => {
        "ts_ms, key_id, endpoint, domain, score, route, reason, model, fallback_from, prompt_tokens, \
         completion_tokens, cached_tokens, ttft_ms, latency_ms, cost, energy_j, energy_source, status, error, \
         prompt_text, answer_text, format, format_verdict, tier, tried, label, precision"
    };
}
pub(crate) use query_columns;

/// A [`QueryRecord`] from [`query_columns`] starting at column `at`.
pub(crate) fn query_record(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<QueryRecord> {
    Ok(QueryRecord {
        ts_ms: row.get(at)?,
        key_id: row.get(at + 1)?,
        endpoint: row.get(at + 2)?,
        domain: row.get(at + 3)?,
        score: row.get(at + 4)?,
        route: row.get(at + 5)?,
        reason: row.get(at + 6)?,
        model: row.get(at + 7)?,
        fallback_from: row.get(at + 8)?,
        prompt_tokens: row.get(at + 9)?,
        completion_tokens: row.get(at + 10)?,
        cached_tokens: row.get(at + 11)?,
        ttft_ms: row.get(at + 12)?,
        latency_ms: row.get(at + 13)?,
        cost: row.get(at + 14)?,
        energy_j: row.get(at + 15)?,
        energy_source: row.get(at + 16)?,
        status: row.get(at + 17)?,
        error: row.get(at + 18)?,
        prompt_text: row.get(at + 19)?,
        answer_text: row.get(at + 20)?,
        format: row.get(at + 21)?,
        format_verdict: row.get(at + 22)?,
        tier: row.get(at + 23)?,
        tried: row.get(at + 24)?,
        label: row.get(at + 25)?,
        precision: row.get(at + 26)?,
    })
}

/// Inserts one query row and returns its id.
pub(crate) fn insert_query(conn: &Connection, r: &QueryRecord) -> rusqlite::Result<i64> {
    let mut statement = conn.prepare_cached(concat!(
        "INSERT INTO queries (",
        query_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, \
         ?22, ?23, ?24, ?25, ?26, ?27)"
    ))?;
    statement.execute(params![
        r.ts_ms,
        r.key_id,
        r.endpoint,
        r.domain,
        r.score,
        r.route,
        r.reason,
        r.model,
        r.fallback_from,
        r.prompt_tokens,
        r.completion_tokens,
        r.cached_tokens,
        r.ttft_ms,
        r.latency_ms,
        r.cost,
        r.energy_j,
        r.energy_source,
        r.status,
        r.error,
        r.prompt_text,
        r.answer_text,
        r.format,
        r.format_verdict,
        r.tier,
        r.tried,
        r.label,
        r.precision,
    ])?;
    Ok(conn.last_insert_rowid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("edgeway-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("nested").join("queries.db")
    }

    fn record(route: &str, cost: f64) -> QueryRecord {
        QueryRecord {
            ts_ms: 1,
            endpoint: "chat".into(),
            route: route.into(),
            latency_ms: 10.0,
            cost,
            status: "ok".into(),
            ..QueryRecord::default()
        }
    }

    #[test]
    fn records_are_committed_and_survive_reopening() {
        let path = temp_db("reopen");
        {
            let log = QueryLog::open(&path).unwrap();
            for i in 0..600 {
                log.record(record(if i % 3 == 0 { "cloud" } else { "edge" }, 0.01));
            }
            log.flush();
            let conn = Connection::open(&path).unwrap();
            let count: i64 = conn.query_row("SELECT COUNT(*) FROM queries", [], |row| row.get(0)).unwrap();
            assert_eq!(count, 600, "flush commits everything queued");
            log.record(record("edge", 0.0));
        } // drop commits the rest
        let conn = open_connection(&path).unwrap();
        let count: i64 = conn.query_row("SELECT COUNT(*) FROM queries", [], |row| row.get(0)).unwrap();
        assert_eq!(count, 601);
        let mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_error() {
        let path = temp_db("newer");
        drop(open_connection(&path).unwrap());
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        let error = QueryLog::open(&path).err().expect("must refuse");
        assert!(error.to_string().contains("newer than this edgeway"), "{error}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_error() {
        let path = temp_db("garbage");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"this is not sqlite at all, just some bytes of text.....").unwrap();
        assert!(QueryLog::open(&path).is_err());
    }
}
