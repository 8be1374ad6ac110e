//! Shipping a box's query log to the center, off the request path.
//!
//! Every `every` (or at once while a full batch is waiting), the shipper reads the next rows
//! after the outbox's watermark, opens a short-lived connection, and in one transaction makes
//! sure their days' partitions exist, `COPY`s them into a temporary staging table, inserts
//! them into `fleet_queries` with `ON CONFLICT DO NOTHING`, and reports the box's status.
//! Only after the center committed does the watermark move. So a crash anywhere re-ships at
//! most one batch, which the center ignores: nothing lost, nothing twice.
//!
//! With the center down or slow the box serves as before: requests only ever write the local
//! log; the backlog grows on disk (shipped rows beyond `keep_local_rows` are pruned, oldest
//! first, never unshipped ones), shows on `/metrics`, and drains when the center is back.
//! Failures back off exponentially up to a minute.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgeway_store::{Outbox, OutboxEval, OutboxGuardEvent, OutboxRow, ShipStats};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::FleetError;

/// Where and how a box ships (`[fleet]` in the config).
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// The center's PostgreSQL URL (`postgres://edgeway_box:…@center:5432/fleet`).
    pub url: String,
    /// This box's id, unique in the fleet.
    pub box_id: String,
    /// A site label (a store, a plant, a vehicle).
    pub site: Option<String>,
    /// How often to ship.
    pub every: Duration,
    /// Most rows in one batch.
    pub batch_rows: usize,
    /// Ship the prompt and answer text (only when the box logs it at all).
    pub ship_text: bool,
    /// Shipped rows kept in the local log; older shipped rows are pruned (`None`: keep all).
    pub keep_local_rows: Option<u64>,
    /// How long to wait for the center to accept a connection or answer a statement.
    pub timeout: Duration,
    /// A PEM file of the certificate authority that signed the center's certificate, when it
    /// is a private one (public authorities are trusted without it).
    pub ca_file: Option<PathBuf>,
}

impl ShipConfig {
    /// Shipping to `url` as `box_id` with the defaults: every 5 s, 500 rows a batch, no text,
    /// 1 million shipped rows kept locally, 10 s timeouts.
    pub fn new(url: impl Into<String>, box_id: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            box_id: box_id.into(),
            site: None,
            every: Duration::from_secs(5),
            batch_rows: 500,
            ship_text: false,
            keep_local_rows: Some(1_000_000),
            timeout: Duration::from_secs(10),
            ca_file: None,
        }
    }
}

/// The longest pause between attempts while the center is failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Ships the log at `log_path` until the task is dropped; `stats` says how it goes.
pub async fn run(config: ShipConfig, log_path: PathBuf, stats: Arc<ShipStats>) {
    let outbox = match tokio::task::spawn_blocking(move || Outbox::open(log_path)).await {
        Ok(Ok(outbox)) => Arc::new(Mutex::new(outbox)),
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot open the query log to ship it; fleet shipping is off");
            return;
        }
        Err(error) => {
            tracing::error!(%error, "the outbox opener panicked; fleet shipping is off");
            return;
        }
    };
    let mut pause = config.every;
    let mut failing = false;
    loop {
        match ship_once(&config, &outbox, &stats).await {
            Ok(shipped) => {
                if failing {
                    tracing::info!(box_id = %config.box_id, "the fleet center is reachable again; shipping the backlog");
                }
                failing = false;
                pause = config.every;
                stats.center_up.store(true, Ordering::Relaxed);
                if shipped >= config.batch_rows {
                    continue; // more is waiting
                }
            }
            Err(error) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                stats.center_up.store(false, Ordering::Relaxed);
                if !failing {
                    tracing::warn!(%error, box_id = %config.box_id, "cannot ship the query log to the fleet center; serving goes on, rows wait on disk");
                }
                failing = true;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// Ships everything the log at `log_path` holds and returns how many rows went (a benchmark,
/// or a box's last upload before it is retired).
pub async fn drain(config: &ShipConfig, log_path: PathBuf) -> Result<u64, FleetError> {
    let outbox = tokio::task::spawn_blocking(move || Outbox::open(log_path))
        .await
        .map_err(|error| FleetError::Local(format!("the outbox opener panicked: {error}")))?
        .map_err(|error| FleetError::Local(error.to_string()))?;
    let (outbox, stats) = (Arc::new(Mutex::new(outbox)), ShipStats::default());
    let mut total = 0;
    loop {
        let shipped = ship_once(config, &outbox, &stats).await?;
        if shipped == 0 {
            return Ok(total);
        }
        total += shipped as u64;
    }
}

/// Runs `job` on the outbox on a blocking thread.
async fn with_outbox<T: Send + 'static>(
    outbox: &Arc<Mutex<Outbox>>,
    job: impl FnOnce(&Outbox) -> Result<T, edgeway_store::StoreError> + Send + 'static,
) -> Result<T, FleetError> {
    let outbox = Arc::clone(outbox);
    tokio::task::spawn_blocking(move || job(&outbox.lock().unwrap_or_else(|e| e.into_inner())))
        .await
        .map_err(|error| FleetError::Local(format!("the outbox reader panicked: {error}")))?
        .map_err(|error| FleetError::Local(error.to_string()))
}

/// Ships one batch (or only reports, when nothing waits); returns the rows shipped.
async fn ship_once(config: &ShipConfig, outbox: &Arc<Mutex<Outbox>>, stats: &ShipStats) -> Result<usize, FleetError> {
    let batch = config.batch_rows;
    let (rows, backlog, watermark) =
        with_outbox(outbox, move |o| Ok((o.pending(batch)?, o.backlog()?, o.watermark()?))).await?;
    let (evals, guards) = with_outbox(outbox, move |o| Ok((o.pending_eval(batch)?, o.pending_guard(batch)?))).await?;
    stats.backlog.store(backlog, Ordering::Relaxed);
    let mut client = connect(&config.url, config.timeout, config.ca_file.as_deref()).await?;
    let last = rows.last().map_or(watermark, |row| row.seq);
    let tx = client.transaction().await?;
    if !rows.is_empty() {
        for day_ms in distinct_days(&rows) {
            tx.execute(
                "SELECT fleet_ensure_day((to_timestamp($1::float8 / 1000) AT TIME ZONE 'UTC')::date)",
                &[&(day_ms as f64)],
            )
            .await?;
        }
        tx.batch_execute(&format!("CREATE TEMP TABLE fleet_staging ({STAGING_COLUMNS}) ON COMMIT DROP")).await?;
        let sink = tx.copy_in(&format!("COPY fleet_staging ({COPY_COLUMNS}) FROM STDIN BINARY")).await?;
        let writer = BinaryCopyInWriter::new(sink, &COPY_TYPES);
        futures::pin_mut!(writer);
        for row in &rows {
            let values = Values::of(row, config, config.ship_text);
            writer.as_mut().write(&values.as_params()).await?;
        }
        writer.finish().await?;
        tx.execute(
            &format!(
                "INSERT INTO fleet_queries ({INSERT_COLUMNS})
                 SELECT {SELECT_COLUMNS} FROM fleet_staging ON CONFLICT DO NOTHING"
            ),
            &[],
        )
        .await?;
    }
    ship_evals(&tx, config, &evals).await?;
    ship_guard_events(&tx, config, &guards).await?;
    let remaining = backlog.saturating_sub(rows.len() as u64) as i64;
    let applied = Some(stats.config_version.load(Ordering::Relaxed)).filter(|&version| version > 0);
    tx.execute(
        "SELECT fleet_report_status($1, $2, $3, $4, $5)",
        &[&config.box_id, &config.site, &remaining, &last, &applied],
    )
    .await?;
    tx.commit().await?;
    // The center has them: now, and only now, the watermarks move.
    if !evals.is_empty() || !guards.is_empty() {
        let eval = evals.last().map_or(0, |e| e.seq);
        let guard = guards.last().map_or(0, |g| g.seq);
        with_outbox(outbox, move |o| o.mark_side_shipped(eval, guard)).await?;
    }
    if !rows.is_empty() {
        let keep = config.keep_local_rows;
        with_outbox(outbox, move |o| {
            o.mark_shipped(last)?;
            if let Some(keep) = keep {
                o.prune_shipped(keep)?;
            }
            Ok(())
        })
        .await?;
    }
    stats.shipped.fetch_add(rows.len() as u64, Ordering::Relaxed);
    stats.backlog.store(remaining as u64, Ordering::Relaxed);
    stats.last_ok_ms.store(edgeway_store::record::now_ms(), Ordering::Relaxed);
    // A full batch of any kind means more may be waiting.
    Ok(rows.len().max(evals.len()).max(guards.len()))
}

/// Inserts graded answers (their texts only with `ship_text`): one statement per answer, as
/// they come a few hundred per evaluation run, not thousands a minute.
async fn ship_evals(
    tx: &tokio_postgres::Transaction<'_>,
    config: &ShipConfig,
    evals: &[OutboxEval],
) -> Result<(), FleetError> {
    if evals.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare(
            "INSERT INTO fleet_eval_results (box_id, seq, site, query_seq, run, dataset, item_id, subject, route, model,
                domain, score, question, reference, answer, extracted, grade, correct, mean_logprob, prompt_tokens,
                completion_tokens, latency_ms, cost, energy_j)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
                $22, $23, $24)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    fn text(ship: bool, value: &str) -> Option<&str> {
        ship.then_some(value)
    }
    let ship = config.ship_text;
    for eval in evals {
        let r = &eval.record;
        let tokens = [r.prompt_tokens, r.completion_tokens].map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        tx.execute(
            &statement,
            &[
                &config.box_id,
                &eval.seq,
                &config.site,
                &eval.query_seq,
                &r.run,
                &r.dataset,
                &r.item_id,
                &r.subject,
                &r.route,
                &r.model,
                &r.domain,
                &r.score,
                &text(ship, &r.question),
                &text(ship, &r.reference),
                &text(ship, &r.answer),
                &r.extracted.as_deref().and_then(|e| text(ship, e)),
                &r.grade,
                &r.correct,
                &r.mean_logprob,
                &tokens[0],
                &tokens[1],
                &r.latency_ms,
                &r.cost,
                &r.energy_j,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Inserts guard decisions (their evidence only with `ship_text`: it may quote a prompt).
async fn ship_guard_events(
    tx: &tokio_postgres::Transaction<'_>,
    config: &ShipConfig,
    guards: &[OutboxGuardEvent],
) -> Result<(), FleetError> {
    if guards.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare(
            "INSERT INTO fleet_guard_events (box_id, seq, site, ts, key_id, detector, action, score, evidence)
             VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000), $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .await?;
    for guard in guards {
        let e = &guard.event;
        let evidence = config.ship_text.then_some(e.evidence.as_str());
        tx.execute(
            &statement,
            &[
                &config.box_id,
                &guard.seq,
                &config.site,
                &(e.ts_ms as f64),
                &e.key_id,
                &e.detector,
                &e.action,
                &e.score,
                &evidence,
            ],
        )
        .await?;
    }
    Ok(())
}

/// A connection to `url`, given up on after `timeout`; statements time out after it too.
///
/// TLS as the URL's `sslmode` says (`prefer`, the default: when the center offers it;
/// `require`: always; `disable`: never), with the center's certificate checked against the
/// public authorities and `ca_file`'s.
pub async fn connect(url: &str, timeout: Duration, ca_file: Option<&Path>) -> Result<Client, FleetError> {
    let tls = tls(ca_file)?;
    let (client, connection) = tokio::time::timeout(timeout, tokio_postgres::connect(url, tls))
        .await
        .map_err(|_| FleetError::Timeout(timeout))??;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "fleet center connection ended");
        }
    });
    client.batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis())).await?;
    Ok(client)
}

/// The TLS connector: rustls (on `ring`), trusting the public authorities and `ca_file`'s.
fn tls(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, FleetError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let bad = |error: &dyn std::fmt::Display| FleetError::Tls(format!("{}: {error}", path.display()));
        let certificates = CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))?;
        for certificate in certificates {
            roots.add(certificate.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| FleetError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// One timestamp per UTC day the rows fall on.
fn distinct_days(rows: &[OutboxRow]) -> Vec<i64> {
    const DAY_MS: i64 = 86_400_000;
    let mut days: Vec<i64> = rows.iter().map(|row| row.record.ts_ms.div_euclid(DAY_MS) * DAY_MS).collect();
    days.sort_unstable();
    days.dedup();
    days
}

/// The staging table: `fleet_queries`' columns with the time as Unix milliseconds.
const STAGING_COLUMNS: &str = "box_id text, seq bigint, site text, ts_ms bigint, key_id text, endpoint text,
    domain text, score real, route text, reason text, model text, fallback_from text, tier integer,
    prompt_tokens integer, completion_tokens integer, cached_tokens integer, ttft_ms double precision,
    latency_ms double precision, cost double precision, energy_j double precision, status text, error text,
    format text, format_verdict text, label text, prompt_text text, answer_text text";

const COPY_COLUMNS: &str = "box_id, seq, site, ts_ms, key_id, endpoint, domain, score, route, reason, model,
    fallback_from, tier, prompt_tokens, completion_tokens, cached_tokens, ttft_ms, latency_ms, cost, energy_j,
    status, error, format, format_verdict, label, prompt_text, answer_text";

const INSERT_COLUMNS: &str = "box_id, seq, site, ts, key_id, endpoint, domain, score, route, reason, model,
    fallback_from, tier, prompt_tokens, completion_tokens, cached_tokens, ttft_ms, latency_ms, cost, energy_j,
    status, error, format, format_verdict, label, prompt_text, answer_text";

const SELECT_COLUMNS: &str = "box_id, seq, site, to_timestamp(ts_ms / 1000.0), key_id, endpoint, domain, score,
    route, reason, model, fallback_from, tier, prompt_tokens, completion_tokens, cached_tokens, ttft_ms,
    latency_ms, cost, energy_j, status, error, format, format_verdict, label, prompt_text, answer_text";

const COPY_TYPES: [Type; 27] = [
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::FLOAT4,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
];

/// One row's values in [`COPY_COLUMNS`] order, owned so they can be borrowed as parameters.
struct Values<'a> {
    row: &'a OutboxRow,
    box_id: &'a str,
    site: Option<&'a str>,
    tier: Option<i32>,
    tokens: [i32; 3],
    text: [Option<&'a str>; 2],
}

impl<'a> Values<'a> {
    fn of(row: &'a OutboxRow, config: &'a ShipConfig, ship_text: bool) -> Self {
        let r = &row.record;
        let clamp = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            row,
            box_id: &config.box_id,
            site: config.site.as_deref(),
            tier: r.tier.map(clamp),
            tokens: [clamp(r.prompt_tokens), clamp(r.completion_tokens), clamp(r.cached_tokens)],
            text: if ship_text { [r.prompt_text.as_deref(), r.answer_text.as_deref()] } else { [None, None] },
        }
    }

    fn as_params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let r = &self.row.record;
        vec![
            &self.box_id,
            &self.row.seq,
            &self.site,
            &r.ts_ms,
            &r.key_id,
            &r.endpoint,
            &r.domain,
            &r.score,
            &r.route,
            &r.reason,
            &r.model,
            &r.fallback_from,
            &self.tier,
            &self.tokens[0],
            &self.tokens[1],
            &self.tokens[2],
            &r.ttft_ms,
            &r.latency_ms,
            &r.cost,
            &r.energy_j,
            &r.status,
            &r.error,
            &r.format,
            &r.format_verdict,
            &r.label,
            &self.text[0],
            &self.text[1],
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeway_store::QueryRecord;

    #[test]
    fn a_batch_names_each_utc_day_once_and_text_ships_only_when_asked() {
        let row = |seq, ts_ms| OutboxRow {
            seq,
            record: QueryRecord { ts_ms, prompt_text: Some("secret".into()), ..Default::default() },
        };
        let rows = [row(1, 86_400_000 - 1), row(2, 86_400_000), row(3, 86_400_000 + 5), row(4, 10)];
        assert_eq!(distinct_days(&rows), [0, 86_400_000]);
        let config = ShipConfig::new("postgres://center/fleet", "box-1");
        assert_eq!(Values::of(&rows[0], &config, false).text, [None, None]);
        assert_eq!(Values::of(&rows[0], &config, true).text[0], Some("secret"));
        assert_eq!(Values::of(&rows[0], &config, true).as_params().len(), COPY_TYPES.len());
    }
}
