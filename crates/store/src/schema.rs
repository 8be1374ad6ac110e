//! The schema, as an append-only list of migrations.
//!
//! Each entry moves the database from version `i` to `i + 1`; the version
//! lives in `PRAGMA user_version`. Never edit a shipped migration: add one.

use rusqlite::Connection;

use crate::StoreError;

/// Migrations in order; index `i` upgrades version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the query log.
    "CREATE TABLE queries (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        key_id TEXT,
        endpoint TEXT NOT NULL,
        domain TEXT,
        score REAL,
        route TEXT NOT NULL,
        reason TEXT,
        model TEXT,
        fallback_from TEXT,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        cached_tokens INTEGER NOT NULL DEFAULT 0,
        ttft_ms REAL,
        latency_ms REAL NOT NULL,
        cost REAL NOT NULL DEFAULT 0,
        energy_j REAL,
        energy_source TEXT,
        status TEXT NOT NULL,
        error TEXT,
        prompt_text TEXT,
        answer_text TEXT
    );
    CREATE INDEX queries_ts ON queries(ts_ms);
    CREATE INDEX queries_route ON queries(route, domain);",
    // 2: graded evaluation answers, one per (run, set, item, route), each tied to its query row.
    "CREATE TABLE eval_results (
        id INTEGER PRIMARY KEY,
        query_id INTEGER REFERENCES queries(id),
        run TEXT NOT NULL,
        dataset TEXT NOT NULL,
        item_id TEXT NOT NULL,
        subject TEXT,
        route TEXT NOT NULL,
        model TEXT,
        domain TEXT,
        score REAL,
        question TEXT NOT NULL,
        reference TEXT NOT NULL,
        answer TEXT NOT NULL,
        extracted TEXT,
        grade REAL NOT NULL,
        correct INTEGER NOT NULL,
        mean_logprob REAL,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        latency_ms REAL NOT NULL,
        cost REAL NOT NULL DEFAULT 0,
        energy_j REAL,
        UNIQUE (run, dataset, item_id, route)
    );",
    // 3: API keys (only their SHA-256 is kept) and the guard's decisions with their evidence.
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER,
        requests_per_min INTEGER,
        tokens_per_min INTEGER,
        tokens_per_day INTEGER,
        models TEXT NOT NULL DEFAULT '',
        routes TEXT NOT NULL DEFAULT '',
        allow_logprobs INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE guard_events (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        key_id TEXT,
        detector TEXT NOT NULL,
        action TEXT NOT NULL,
        score REAL,
        evidence TEXT NOT NULL
    );
    CREATE INDEX guard_events_key ON guard_events(key_id, ts_ms);
    CREATE INDEX queries_key ON queries(key_id, ts_ms);",
    // 4: structured output: the format asked for and whether the answer had it.
    "ALTER TABLE queries ADD COLUMN format TEXT;
    ALTER TABLE queries ADD COLUMN format_verdict TEXT;",
    // 5: tiers: the answering model's tier and the models tried before it.
    "ALTER TABLE queries ADD COLUMN tier INTEGER;
    ALTER TABLE queries ADD COLUMN tried TEXT;",
    // 6: inspection: an image's verdict and the precision of the model that gave it.
    "ALTER TABLE queries ADD COLUMN label TEXT;
    ALTER TABLE queries ADD COLUMN precision TEXT;",
    // 7: administrators' keys (the dashboard), and the dashboard's reads by time and route.
    "ALTER TABLE api_keys ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX queries_ts_route ON queries(ts_ms, route, model);",
    // 8: the dashboard's rollups (`rollup.rs`): sums and histograms per time slice, route, model,
    // domain and status, up to the query row in `rollup_mark`; guard events and inspections by time.
    "CREATE TABLE query_rollups (
        slice_len_ms INTEGER NOT NULL,
        slice_ms INTEGER NOT NULL,
        route TEXT NOT NULL,
        model TEXT NOT NULL,
        domain TEXT NOT NULL,
        status TEXT NOT NULL,
        requests INTEGER NOT NULL,
        fallbacks INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost REAL NOT NULL,
        energy_j REAL NOT NULL,
        energy_requests INTEGER NOT NULL,
        generated_tokens INTEGER NOT NULL,
        generating_ms REAL NOT NULL,
        latency_hist BLOB NOT NULL,
        ttft_hist BLOB NOT NULL,
        PRIMARY KEY (slice_len_ms, slice_ms, route, model, domain, status)
    ) WITHOUT ROWID;
    CREATE TABLE rollup_mark (last_query_id INTEGER NOT NULL);
    INSERT INTO rollup_mark VALUES (0);
    CREATE INDEX guard_events_ts ON guard_events(ts_ms);
    CREATE INDEX queries_label ON queries(ts_ms, label) WHERE label IS NOT NULL;",
    // 9: the fleet's outbox (`outbox.rs`): the last query row the center has committed.
    "CREATE TABLE fleet_mark (last_shipped_id INTEGER NOT NULL);
    INSERT INTO fleet_mark VALUES (0);",
    // 10: the fleet's outbox for graded answers and guard decisions.
    "ALTER TABLE fleet_mark ADD COLUMN last_eval_id INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE fleet_mark ADD COLUMN last_guard_id INTEGER NOT NULL DEFAULT 0;",
    // 11: escalations in the rollups; the rollups are rebuilt from the log to count them.
    "ALTER TABLE query_rollups ADD COLUMN escalations INTEGER NOT NULL DEFAULT 0;
    DELETE FROM query_rollups;
    UPDATE rollup_mark SET last_query_id = 0;",
];

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Sets the pragmas and applies `migrations` (index `i` upgrades version `i` to `i + 1`).
pub fn prepare_with(conn: &mut Connection, path: &str, migrations: &[&str]) -> Result<(), StoreError> {
    let current_version = migrations.len() as i64;
    let sqlite = |source| StoreError::Sqlite { path: path.to_owned(), source };
    // WAL: readers do not block the writer; NORMAL sync is durable across
    // process crashes, which is what a log needs.
    conn.pragma_update(None, "journal_mode", "WAL").map_err(sqlite)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(sqlite)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sqlite)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(sqlite)?;
    if version > current_version {
        return Err(StoreError::TooNew { path: path.to_owned(), found: version, known: current_version });
    }
    for (index, migration) in migrations.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(sqlite)?;
        tx.execute_batch(migration).map_err(sqlite)?;
        tx.pragma_update(None, "user_version", index as i64 + 1).map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        tracing::info!(version = index + 1, "query log schema migrated");
    }
    Ok(())
}
