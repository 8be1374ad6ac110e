//! The query log: one row per request in an embedded SQLite database.
//!
//! Writing never blocks a request: records go over a channel to one writer
//! thread, which commits them in small transactions. The database runs in
//! WAL mode, so `edgeway stats` (or calibration) can read while the server
//! writes, and a crash loses at most the records not yet committed.
//!
//! # Layout
//! - [`schema`]: migrations, applied in order on open (`PRAGMA user_version`).
//! - [`record`]: the row type.
//! - [`writer`]: the background writer the server feeds.
//! - [`stats`]: the aggregate queries behind `edgeway stats`.
//! - [`keys`]: API keys (hashed) and the guard's decisions with their evidence.
//! - [`knowledge`]: the knowledge base for retrieval: collections, documents, chunks and their vectors.
//! - [`eval`]: graded evaluation answers, for `edgeway eval` and `edgeway calibrate`.

pub mod dashboard;
pub mod eval;
pub mod export;
pub mod histogram;
pub mod keys;
pub mod knowledge;
pub mod outbox;
pub mod record;
pub mod rollup;
pub mod schema;
pub mod stats;
pub mod writer;

pub use eval::{EvalLog, EvalRecord};
pub use export::{logged_prompts, LoggedPrompt};
pub use keys::{ApiKeyRecord, GuardEvent, KeyLimits, KeyStore};
pub use knowledge::KnowledgeBase;
pub use outbox::{Outbox, OutboxEval, OutboxGuardEvent, OutboxRow, ShipStats};
pub use record::QueryRecord;
pub use stats::{BoxStatus, RouteStats, Stats};
pub use writer::{LogStatus, QueryLog};

/// Why the log could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no (a corrupt file, a full disk, permissions…).
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The database was written by a newer edgeway.
    #[error("database {path} has schema version {found}, newer than this edgeway knows ({known}); upgrade edgeway")]
    TooNew {
        /// The database file.
        path: String,
        /// Its version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
}
