//! The center: the PostgreSQL schema every box ships into, created and migrated by
//! `edgeway fleet init`, its retention (`edgeway fleet prune`), and the fleet's status.
//!
//! - `fleet_queries`: every box's query log, keyed by `(box_id, seq, ts)` (a partitioned
//!   table's key must hold its partition column; a row's `ts` never changes, so `(box_id,
//!   seq)` alone decides), range-partitioned by UTC day, so retention drops whole partitions
//!   instead of deleting rows. A box creates the day it needs through `fleet_ensure_day`.
//! - `fleet_eval_results`, `fleet_guard_events`: graded evaluation answers and guard
//!   decisions, keyed by `(box_id, seq)` the same way.
//! - `box_status`: each box's last report (`fleet_report_status`).
//! - `fleet_config`: versioned routing settings for the boxes to apply, with the trained
//!   scorer they were calibrated for when it is not one every box has.
//!
//! Boxes connect as a role that may only insert into the log, call those two functions and
//! read the config (`edgeway fleet init --box-role`).

pub use edgeway_store::BoxStatus;
use edgeway_store::{EvalRecord, RouteStats, Stats};
use tokio_postgres::Client;

use crate::follow::PushedConfig;
use crate::FleetError;

/// Migrations of the center's schema, in order; `fleet_meta.schema_version` counts the applied.
const MIGRATIONS: &[&str] = &[
    // 1: the log, its days, the boxes' reports and the config.
    r#"
    CREATE TABLE fleet_queries (
        box_id text NOT NULL,
        seq bigint NOT NULL,
        site text,
        ts timestamptz NOT NULL,
        key_id text,
        endpoint text NOT NULL,
        domain text,
        score real,
        route text NOT NULL,
        reason text,
        model text,
        fallback_from text,
        tier integer,
        prompt_tokens integer NOT NULL,
        completion_tokens integer NOT NULL,
        cached_tokens integer NOT NULL,
        ttft_ms double precision,
        latency_ms double precision NOT NULL,
        cost double precision NOT NULL,
        energy_j double precision,
        status text NOT NULL,
        error text,
        format text,
        format_verdict text,
        label text,
        prompt_text text,
        answer_text text,
        PRIMARY KEY (box_id, seq, ts)
    ) PARTITION BY RANGE (ts);

    CREATE FUNCTION fleet_ensure_day(day date) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public SET timezone = 'UTC' AS $$
    DECLARE
        name text := 'fleet_queries_' || to_char(day, 'YYYYMMDD');
    BEGIN
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF fleet_queries FOR VALUES FROM (%L) TO (%L)',
                               name, day::timestamptz, (day + 1)::timestamptz);
            EXCEPTION WHEN duplicate_table OR unique_violation THEN
                NULL; -- another box made it first
            END;
        END IF;
    END $$;

    CREATE TABLE box_status (
        box_id text PRIMARY KEY,
        site text,
        last_seen timestamptz NOT NULL,
        backlog bigint NOT NULL,
        shipped_seq bigint NOT NULL,
        config_version bigint
    );

    CREATE FUNCTION fleet_report_status(p_box text, p_site text, p_backlog bigint, p_shipped bigint, p_config bigint)
    RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
        INSERT INTO box_status (box_id, site, last_seen, backlog, shipped_seq, config_version)
        VALUES (p_box, p_site, now(), p_backlog, p_shipped, p_config)
        ON CONFLICT (box_id) DO UPDATE SET site = excluded.site, last_seen = excluded.last_seen,
            backlog = excluded.backlog, shipped_seq = GREATEST(box_status.shipped_seq, excluded.shipped_seq),
            config_version = COALESCE(excluded.config_version, box_status.config_version);
    $$;

    CREATE TABLE fleet_config (
        version bigserial PRIMARY KEY,
        created timestamptz NOT NULL DEFAULT now(),
        site text,
        routing text NOT NULL,
        note text
    );
    "#,
    // 2: graded evaluation answers and guard decisions, for central calibration and review.
    r#"
    CREATE TABLE fleet_eval_results (
        box_id text NOT NULL,
        seq bigint NOT NULL,
        site text,
        query_seq bigint,
        run text NOT NULL,
        dataset text NOT NULL,
        item_id text NOT NULL,
        subject text,
        route text NOT NULL,
        model text,
        domain text,
        score real,
        question text,
        reference text,
        answer text,
        extracted text,
        grade double precision NOT NULL,
        correct boolean NOT NULL,
        mean_logprob double precision,
        prompt_tokens integer NOT NULL,
        completion_tokens integer NOT NULL,
        latency_ms double precision NOT NULL,
        cost double precision NOT NULL,
        energy_j double precision,
        PRIMARY KEY (box_id, seq)
    );
    CREATE INDEX fleet_eval_results_run ON fleet_eval_results (run);

    CREATE TABLE fleet_guard_events (
        box_id text NOT NULL,
        seq bigint NOT NULL,
        site text,
        ts timestamptz NOT NULL,
        key_id text,
        detector text NOT NULL,
        action text NOT NULL,
        score double precision,
        evidence text,
        PRIMARY KEY (box_id, seq)
    );
    "#,
    // 3: a config version may carry the scorer its thresholds were calibrated for.
    r#"
    ALTER TABLE fleet_config ADD COLUMN scorer text;
    "#,
];

/// Creates or migrates the center's schema over `client` (an owner's connection), and when
/// `box_role` is given, creates that role (with `password`, if any) and grants it what a box
/// needs and nothing more. Returns the schema version now in place.
pub async fn init(client: &mut Client, box_role: Option<(&str, Option<&str>)>) -> Result<usize, FleetError> {
    let tx = client.transaction().await?;
    // One initialiser at a time.
    tx.execute("SELECT pg_advisory_xact_lock(74620001)", &[]).await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS fleet_meta (key text PRIMARY KEY, value text NOT NULL)").await?;
    let applied: usize = match tx.query_opt("SELECT value FROM fleet_meta WHERE key = 'schema_version'", &[]).await? {
        Some(row) => row
            .get::<_, String>(0)
            .parse()
            .map_err(|_| FleetError::Schema("fleet_meta.schema_version is not a number".into()))?,
        None => 0,
    };
    if applied > MIGRATIONS.len() {
        return Err(FleetError::Schema(format!(
            "the center's schema is version {applied}, newer than this edgeway knows ({}); upgrade edgeway",
            MIGRATIONS.len()
        )));
    }
    for migration in &MIGRATIONS[applied..] {
        tx.batch_execute(migration).await?;
    }
    tx.execute(
        "INSERT INTO fleet_meta (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&MIGRATIONS.len().to_string()],
    )
    .await?;
    if let Some((name, password)) = box_role {
        let role = quote_ident(name)?;
        let exists = tx.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name]).await?;
        if exists.is_none() {
            tx.batch_execute(&format!("CREATE ROLE {role} LOGIN")).await?;
        }
        if let Some(password) = password {
            tx.batch_execute(&format!("ALTER ROLE {role} PASSWORD {}", quote_literal(password))).await?;
        }
        tx.batch_execute(&format!(
            "REVOKE ALL ON fleet_queries, fleet_eval_results, fleet_guard_events, box_status, fleet_config, fleet_meta
                 FROM {role};
             GRANT INSERT ON fleet_queries, fleet_eval_results, fleet_guard_events TO {role};
             GRANT SELECT ON fleet_config TO {role};
             GRANT EXECUTE ON FUNCTION fleet_ensure_day(date) TO {role};
             GRANT EXECUTE ON FUNCTION fleet_report_status(text, text, bigint, bigint, bigint) TO {role};"
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(MIGRATIONS.len())
}

/// Drops every day partition of `fleet_queries` wholly older than `keep_days` days; returns
/// their names.
pub async fn prune(client: &Client, keep_days: u32) -> Result<Vec<String>, FleetError> {
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
             WHERE p.relname = 'fleet_queries' AND c.relname ~ '^fleet_queries_[0-9]{8}$'
               AND to_date(substr(c.relname, 15), 'YYYYMMDD') < (now() AT TIME ZONE 'UTC')::date - $1::int
             ORDER BY 1",
            &[&(keep_days as i32)],
        )
        .await?;
    let mut dropped = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        client.batch_execute(&format!("DROP TABLE {}", quote_ident(&name)?)).await?;
        dropped.push(name);
    }
    Ok(dropped)
}

/// Publishes `config` as the newest version for `site`'s boxes (every box when `None`);
/// returns its version number.
pub async fn push_config(
    client: &Client,
    config: &PushedConfig,
    site: Option<&str>,
    note: Option<&str>,
) -> Result<i64, FleetError> {
    let row = client
        .query_one(
            "INSERT INTO fleet_config (site, routing, scorer, note) VALUES ($1, $2, $3, $4) RETURNING version",
            &[&site, &config.routing, &config.scorer, &note],
        )
        .await?;
    Ok(row.get(0))
}

/// The newest config version for a box of `site`: its own site's or the fleet-wide one.
pub async fn latest_config(client: &Client, site: Option<&str>) -> Result<Option<PushedConfig>, FleetError> {
    let row = client
        .query_opt(
            "SELECT version, routing, scorer FROM fleet_config WHERE site IS NULL OR site = $1
             ORDER BY version DESC LIMIT 1",
            &[&site],
        )
        .await?;
    Ok(row.map(|row| PushedConfig { version: row.get(0), routing: row.get(1), scorer: row.get(2) }))
}

/// Every box that reported or shipped, with its traffic over the last `hours`.
pub async fn status(client: &Client, hours: u32) -> Result<Vec<BoxStatus>, FleetError> {
    let rows = client
        .query(
            "WITH traffic AS (
                SELECT box_id, COUNT(*) AS requests, AVG((route = 'edge')::int)::float8 AS edge_share,
                       AVG(cost) AS cost_per_query
                FROM fleet_queries WHERE ts >= now() - make_interval(hours => $1::int) GROUP BY box_id)
             SELECT s.box_id, s.site, EXTRACT(EPOCH FROM now() - s.last_seen)::float8, s.backlog, s.config_version,
                    COALESCE(t.requests, 0), t.edge_share, t.cost_per_query
             FROM box_status s LEFT JOIN traffic t USING (box_id) ORDER BY s.box_id",
            &[&(hours as i32)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| BoxStatus {
            box_id: row.get(0),
            site: row.get(1),
            seen_secs_ago: row.get(2),
            backlog: row.get(3),
            config_version: row.get(4),
            requests: row.get(5),
            edge_share: row.get(6),
            cost_per_query: row.get(7),
        })
        .collect())
}

/// The same aggregates as `edgeway stats`, over every box's rows from `since_ms` on: for the
/// whole fleet (`None`) and per site (unlabelled boxes under `""`), sites in name order.
pub async fn stats(client: &Client, since_ms: i64) -> Result<Vec<(Option<String>, Stats)>, FleetError> {
    let rows = client
        .query(
            "SELECT GROUPING(site) = 1, COALESCE(site, ''), route, COUNT(*),
                    COUNT(*) FILTER (WHERE status NOT IN ('ok', 'cancelled')), COUNT(fallback_from),
                    COALESCE(SUM(prompt_tokens), 0)::bigint, COALESCE(SUM(completion_tokens), 0)::bigint,
                    COALESCE(SUM(cost), 0), COALESCE(SUM(energy_j), 0), AVG(latency_ms), COALESCE(AVG(ttft_ms), 0)
             FROM fleet_queries WHERE ts >= to_timestamp($1::float8 / 1000)
             GROUP BY GROUPING SETS ((route), (site, route))
             ORDER BY 1 DESC, 2, 4 DESC",
            &[&(since_ms as f64)],
        )
        .await?;
    let mut groups: Vec<(Option<String>, Stats)> = Vec::new();
    for row in rows {
        let site = if row.get::<_, bool>(0) { None } else { Some(row.get::<_, String>(1)) };
        let route = RouteStats {
            route: row.get(2),
            requests: row.get::<_, i64>(3) as u64,
            errors: row.get::<_, i64>(4) as u64,
            fallbacks: row.get::<_, i64>(5) as u64,
            prompt_tokens: row.get::<_, i64>(6) as u64,
            completion_tokens: row.get::<_, i64>(7) as u64,
            cost: row.get(8),
            energy_j: row.get(9),
            mean_latency_ms: row.get(10),
            mean_ttft_ms: row.get(11),
        };
        match groups.last_mut() {
            Some((last, stats)) if *last == site => stats.routes.push(route),
            _ => groups.push((site, Stats { routes: vec![route] })),
        }
    }
    Ok(groups)
}

/// Which graded answers to read from the center.
#[derive(Debug, Clone, Default)]
pub struct EvalFilter {
    /// The evaluation run.
    pub run: String,
    /// Only the boxes of this site.
    pub site: Option<String>,
    /// Only this box.
    pub box_id: Option<String>,
    /// Only answers whose request came in the last this many hours.
    pub since_hours: Option<f64>,
    /// Only edge answers this model gave (boxes that run another edge model are left out);
    /// the cloud's answers are all kept.
    pub edge_model: Option<String>,
}

/// The graded answers of a run, across boxes, with their text; returns them and how many rows
/// were left out for having none (boxes that do not ship text).
pub async fn eval_results(client: &Client, filter: &EvalFilter) -> Result<(Vec<EvalRecord>, i64), FleetError> {
    let rows = client
        .query(
            "SELECT run, dataset, item_id, subject, route, model, domain, score, question, reference, answer,
                    extracted, grade, correct, mean_logprob, prompt_tokens, completion_tokens, latency_ms, cost,
                    energy_j
             FROM fleet_eval_results e
             WHERE run = $1 AND ($2::text IS NULL OR site = $2) AND ($3::text IS NULL OR box_id = $3)
               AND ($4::float8 IS NULL OR EXISTS (
                   SELECT 1 FROM fleet_queries q WHERE q.box_id = e.box_id AND q.seq = e.query_seq
                     AND q.ts >= now() - make_interval(secs => $4 * 3600)))
               AND ($5::text IS NULL OR route = 'cloud' OR model = $5)
             ORDER BY box_id, seq",
            &[&filter.run, &filter.site, &filter.box_id, &filter.since_hours, &filter.edge_model],
        )
        .await?;
    let (mut records, mut textless) = (Vec::with_capacity(rows.len()), 0);
    for row in rows {
        let (Some(question), Some(reference), Some(answer)) =
            (row.get::<_, Option<String>>(8), row.get::<_, Option<String>>(9), row.get::<_, Option<String>>(10))
        else {
            textless += 1;
            continue;
        };
        records.push(EvalRecord {
            run: row.get(0),
            dataset: row.get(1),
            item_id: row.get(2),
            subject: row.get(3),
            route: row.get(4),
            model: row.get(5),
            domain: row.get(6),
            score: row.get(7),
            question,
            reference,
            answer,
            extracted: row.get(11),
            grade: row.get(12),
            correct: row.get(13),
            mean_logprob: row.get(14),
            prompt_tokens: row.get::<_, i32>(15).max(0) as u32,
            completion_tokens: row.get::<_, i32>(16).max(0) as u32,
            latency_ms: row.get(17),
            cost: row.get(18),
            energy_j: row.get(19),
        });
    }
    Ok((records, textless))
}

/// The runs of graded answers at the center, with their sizes, largest first.
pub async fn eval_runs(client: &Client) -> Result<Vec<(String, i64)>, FleetError> {
    let rows = client
        .query("SELECT run, COUNT(*) FROM fleet_eval_results GROUP BY run ORDER BY COUNT(*) DESC, run", &[])
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// `name` as a quoted SQL identifier; refused when it holds a NUL.
fn quote_ident(name: &str) -> Result<String, FleetError> {
    if name.is_empty() || name.contains('\0') {
        return Err(FleetError::Schema(format!("'{name}' is not a usable role or table name")));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// `text` as a quoted SQL string literal (standard-conforming strings, the default since 9.1).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted_so_nothing_escapes_them() {
        assert_eq!(quote_ident("edgeway_box").unwrap(), "\"edgeway_box\"");
        assert_eq!(quote_ident("a\"; DROP TABLE x; --").unwrap(), "\"a\"\"; DROP TABLE x; --\"");
        assert!(quote_ident("").is_err());
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
