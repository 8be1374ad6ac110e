//! API keys and the guard's decisions, in the same database as the query log.
//!
//! Only a key's SHA-256 is stored; the key itself is shown once, when it is
//! created. Keys are random (192 bits), so a plain hash is as safe as a slow
//! one: there is nothing to guess. A key's token use is read back from the
//! query log, so daily quotas survive a restart.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::writer::open_connection;
use crate::StoreError;

/// What a key may do. `None` and empty lists mean "no limit".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLimits {
    /// Requests per rolling minute.
    pub requests_per_min: Option<u32>,
    /// Tokens (prompt + completion) per rolling minute.
    pub tokens_per_min: Option<u64>,
    /// Tokens per UTC day.
    pub tokens_per_day: Option<u64>,
    /// Models it may ask for by name; empty: any.
    pub models: Vec<String>,
    /// Routes it may be answered on (`edge`, `cloud`); empty: any.
    pub routes: Vec<String>,
    /// Whether responses may carry log-probabilities.
    pub allow_logprobs: bool,
    /// An administrator's key: it opens the dashboard, which shows the logged query text.
    pub admin: bool,
}

/// One key, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public id (`key_…`), safe to log.
    pub id: String,
    /// A name for people (unique).
    pub name: String,
    /// The key's first characters, to recognise it (`ew-1a2b3c…`).
    pub prefix: String,
    /// SHA-256 of the key, hex.
    pub hash: String,
    /// When it was created (ms since the epoch).
    pub created_ms: i64,
    /// When it was revoked, if it was.
    pub revoked_ms: Option<i64>,
    /// What it may do.
    pub limits: KeyLimits,
}

/// One decision of the guard, with what it was based on.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardEvent {
    /// When (ms since the epoch).
    pub ts_ms: i64,
    /// The key it concerns.
    pub key_id: Option<String>,
    /// Which detector decided (`extraction`, `injection`, `quota`…).
    pub detector: String,
    /// What was done (`flag`, `slow`, `strip_logprobs`, `block`).
    pub action: String,
    /// The detector's score, if it has one.
    pub score: Option<f64>,
    /// The evidence, as JSON.
    pub evidence: String,
}

/// The key table and the guard's event log.
pub struct KeyStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

const COLUMNS: &str = "id, name, prefix, hash, created_ms, revoked_ms, requests_per_min, tokens_per_min, \
                       tokens_per_day, models, routes, allow_logprobs, admin";

fn split_list(text: String) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn from_row(row: &Row) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        prefix: row.get(2)?,
        hash: row.get(3)?,
        created_ms: row.get(4)?,
        revoked_ms: row.get(5)?,
        limits: KeyLimits {
            requests_per_min: row.get(6)?,
            tokens_per_min: row.get::<_, Option<i64>>(7)?.map(|v| v.max(0) as u64),
            tokens_per_day: row.get::<_, Option<i64>>(8)?.map(|v| v.max(0) as u64),
            models: split_list(row.get(9)?),
            routes: split_list(row.get(10)?),
            allow_logprobs: row.get(11)?,
            admin: row.get(12)?,
        },
    })
}

impl KeyStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        Ok(Self { conn: Mutex::new(open_connection(&path)?), path })
    }

    fn sqlite(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite { path: self.path.display().to_string(), source }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores a new key. Fails if the name is taken.
    pub fn insert(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let l = &key.limits;
        self.conn()
            .execute(
                &format!(
                    "INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ),
                params![
                    key.id,
                    key.name,
                    key.prefix,
                    key.hash,
                    key.created_ms,
                    key.revoked_ms,
                    l.requests_per_min,
                    l.tokens_per_min.map(|v| v as i64),
                    l.tokens_per_day.map(|v| v as i64),
                    l.models.join(","),
                    l.routes.join(","),
                    l.allow_logprobs,
                    l.admin,
                ],
            )
            .map_err(self.sqlite())?;
        Ok(())
    }

    /// Whether a key called `name` exists (revoked or not).
    pub fn name_taken(&self, name: &str) -> Result<bool, StoreError> {
        self.conn()
            .query_row("SELECT 1 FROM api_keys WHERE name = ?1", [name], |_| Ok(()))
            .optional()
            .map(|found| found.is_some())
            .map_err(self.sqlite())
    }

    /// Every key, oldest first.
    pub fn list(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let conn = self.conn();
        let mut statement =
            conn.prepare(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_ms, id")).map_err(self.sqlite())?;
        let rows = statement.query_map([], from_row).map_err(self.sqlite())?;
        rows.collect::<Result<_, _>>().map_err(self.sqlite())
    }

    /// The key with this hash, revoked or not.
    pub fn find_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.conn()
            .query_row(&format!("SELECT {COLUMNS} FROM api_keys WHERE hash = ?1"), [hash], from_row)
            .optional()
            .map_err(self.sqlite())
    }

    /// Whether any key was ever created. Then every request needs one, even
    /// after the last is revoked: revoking must never open a server up.
    pub fn any_keys(&self) -> Result<bool, StoreError> {
        self.conn().query_row("SELECT EXISTS (SELECT 1 FROM api_keys)", [], |row| row.get(0)).map_err(self.sqlite())
    }

    /// Revokes the key with this id or name; returns it, or `None` if there is none.
    pub fn revoke(&self, id_or_name: &str, now_ms: i64) -> Result<Option<ApiKeyRecord>, StoreError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE api_keys SET revoked_ms = ?2 WHERE (id = ?1 OR name = ?1) AND revoked_ms IS NULL",
                params![id_or_name, now_ms],
            )
            .map_err(self.sqlite())?;
        if changed == 0 {
            return Ok(None);
        }
        self.conn()
            .query_row(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1 OR name = ?1"), [id_or_name], from_row)
            .optional()
            .map_err(self.sqlite())
    }

    /// Tokens (prompt + completion) the query log holds for `key_id` since `since_ms`.
    pub fn tokens_since(&self, key_id: &str, since_ms: i64) -> Result<u64, StoreError> {
        self.sum_since("COALESCE(SUM(prompt_tokens + completion_tokens), 0)", key_id, since_ms)
    }

    /// Requests the query log holds for `key_id` since `since_ms`.
    pub fn requests_since(&self, key_id: &str, since_ms: i64) -> Result<u64, StoreError> {
        self.sum_since("COUNT(*)", key_id, since_ms)
    }

    /// An aggregate (`aggregate`, a fixed SQL expression) over the key's query-log rows since `since_ms`.
    fn sum_since(&self, aggregate: &str, key_id: &str, since_ms: i64) -> Result<u64, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {aggregate} FROM queries WHERE key_id = ?1 AND ts_ms >= ?2"),
                params![key_id, since_ms],
                |row| row.get::<_, i64>(0),
            )
            .map(|v| v.max(0) as u64)
            .map_err(self.sqlite())
    }

    /// Records one decision of the guard.
    pub fn record_event(&self, event: &GuardEvent) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO guard_events (ts_ms, key_id, detector, action, score, evidence) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![event.ts_ms, event.key_id, event.detector, event.action, event.score, event.evidence],
            )
            .map_err(self.sqlite())?;
        Ok(())
    }

    /// The guard's decisions, newest first, at most `limit`, optionally for one key.
    pub fn events(&self, key_id: Option<&str>, limit: u32) -> Result<Vec<GuardEvent>, StoreError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(
                "SELECT ts_ms, key_id, detector, action, score, evidence FROM guard_events
                 WHERE ?1 IS NULL OR key_id = ?1 ORDER BY ts_ms DESC, id DESC LIMIT ?2",
            )
            .map_err(self.sqlite())?;
        let rows = statement
            .query_map(params![key_id, limit], |row| {
                Ok(GuardEvent {
                    ts_ms: row.get(0)?,
                    key_id: row.get(1)?,
                    detector: row.get(2)?,
                    action: row.get(3)?,
                    score: row.get(4)?,
                    evidence: row.get(5)?,
                })
            })
            .map_err(self.sqlite())?;
        rows.collect::<Result<_, _>>().map_err(self.sqlite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, hash: &str) -> ApiKeyRecord {
        ApiKeyRecord {
            id: format!("key_{name}"),
            name: name.into(),
            prefix: "ew-1234".into(),
            hash: hash.into(),
            created_ms: 1,
            revoked_ms: None,
            limits: KeyLimits {
                requests_per_min: Some(3),
                tokens_per_min: None,
                tokens_per_day: Some(1000),
                models: vec!["a".into(), "b".into()],
                routes: vec![],
                allow_logprobs: false,
                admin: false,
            },
        }
    }

    #[test]
    fn keys_round_trip_and_revoke() {
        let dir = std::env::temp_dir().join(format!("edgeway-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = KeyStore::open(dir.join("q.db")).unwrap();
        assert!(!store.any_keys().unwrap());
        store.insert(&key("alice", "h1")).unwrap();
        assert!(store.insert(&key("alice", "h2")).is_err(), "names are unique");
        assert!(store.name_taken("alice").unwrap());
        assert!(store.any_keys().unwrap());
        assert_eq!(store.find_by_hash("h1").unwrap(), Some(key("alice", "h1")));
        assert_eq!(store.find_by_hash("nope").unwrap(), None);
        let revoked = store.revoke("alice", 5).unwrap().unwrap();
        assert_eq!(revoked.revoked_ms, Some(5));
        assert_eq!(store.revoke("alice", 6).unwrap(), None, "already revoked");
        assert!(store.any_keys().unwrap(), "a revoked key still means keys are in use");
        assert_eq!(store.list().unwrap().len(), 1);
        store
            .record_event(&GuardEvent {
                ts_ms: 9,
                key_id: Some("key_alice".into()),
                detector: "extraction".into(),
                action: "flag".into(),
                score: Some(0.9),
                evidence: "{}".into(),
            })
            .unwrap();
        assert_eq!(store.events(Some("key_alice"), 10).unwrap().len(), 1);
        assert_eq!(store.events(Some("key_bob"), 10).unwrap().len(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
