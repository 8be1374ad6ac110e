//! `edgeway bench fleet`: the fleet's center under load, and what shipping costs a box.
//!
//! Ingest: `--boxes` simulated boxes, each a query log of `--rows` requests written
//! beforehand, ship at once into the center through the real shipper (`COPY` into staging,
//! `ON CONFLICT DO NOTHING`, `--batch` rows a transaction) until every log is drained; rows
//! per second into PostgreSQL.
//!
//! Overhead: two `edgeway serve` processes over the same instant upstream, every request
//! forced to the cloud so the edge model is never the bottleneck: one ships its log to the
//! center every second, the other does not. Requests alternate between them, one at a time;
//! the ratio of each pair's latencies (shipping over not) is reported as a median with its
//! 95 % interval, with each side's p50 and p99.

use std::time::{Duration, Instant};

use anyhow::Context;
use edgeway_eval::stats::{median, median_interval, percentile};
use edgeway_models::resolve_model;
use edgeway_store::{QueryLog, QueryRecord};

use super::gateway::{start_mock_upstream, time_cloud_stream};
use super::lower_own_priority;
use crate::app::child::start_server;
use crate::app::DataDir;
use crate::cli::FleetBenchArgs;

pub(super) fn run(data_dir: &DataDir, args: &FleetBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.boxes > 0 && args.rows > 0 && args.requests > 0,
        "--boxes, --rows and --requests must be at least 1"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut client = edgeway_fleet::ship::connect(&args.url, Duration::from_secs(30), None).await?;
        edgeway_fleet::center::init(&mut client, None).await.context("cannot create the fleet schema")
    })?;
    let scratch = data_dir.scratch(&format!("bench-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let result = measure(data_dir, args, &scratch, &runtime);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn measure(
    data_dir: &DataDir,
    args: &FleetBenchArgs,
    scratch: &std::path::Path,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    // Ingest.
    eprintln!("bench: writing {} logs of {} rows", args.boxes, args.rows);
    let run_id = std::process::id();
    let logs: Vec<_> = (0..args.boxes).map(|i| scratch.join(format!("box-{i}.db"))).collect();
    for log in &logs {
        fill(log, args.rows)?;
    }
    eprintln!("bench: shipping them at once");
    let started = Instant::now();
    let shipped: u64 = runtime.block_on(async {
        let mut tasks = Vec::new();
        for (i, log) in logs.iter().enumerate() {
            let mut config = edgeway_fleet::ShipConfig::new(&args.url, format!("bench-{run_id}-{i}"));
            config.batch_rows = args.batch;
            config.keep_local_rows = None;
            let log = log.clone();
            tasks.push(tokio::spawn(async move { edgeway_fleet::ship::drain(&config, log).await }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.context("a shipper panicked")??;
        }
        anyhow::Ok(total)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(shipped == (args.boxes * args.rows) as u64, "shipped {shipped} rows of {}", args.boxes * args.rows);

    // Overhead.
    let upstream = start_mock_upstream(16)?;
    let model = resolve_model(&args.model, &data_dir.cache(), true, &mut |_| {})?;
    let config = scratch.join("shipping.toml");
    std::fs::write(
        &config,
        format!(
            "[fleet]\nurl = \"{}\"\nbox_id = \"bench-{run_id}-live\"\nship_every_secs = 1\n",
            args.url.replace('\\', "\\\\").replace('"', "\\\"")
        ),
    )?;
    let serve_args = |name: &str, with_config: bool| -> Vec<String> {
        let mut list = vec![
            "--cloud-url".to_owned(),
            format!("http://127.0.0.1:{upstream}/v1"),
            "--cloud-model".to_owned(),
            "mock".to_owned(),
            "--no-embeddings".to_owned(),
            "--log-path".to_owned(),
            scratch.join(format!("{name}.db")).display().to_string(),
        ];
        if with_config {
            list.extend(["--config".to_owned(), config.display().to_string()]);
        }
        list
    };
    let plain = start_server(&model.path, 1, &serve_args("plain", false))?;
    let shipping = start_server(&model.path, 1, &serve_args("shipping", true))?;
    lower_own_priority();
    let time = |port: u16| time_cloud_stream(port).map(|elapsed| elapsed.as_secs_f64() * 1000.0);
    for _ in 0..50 {
        time(plain.port)?;
        time(shipping.port)?;
    }
    eprintln!("bench: {} request pairs", args.requests);
    let (mut off, mut on, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..args.requests {
        let (a, b) = if i % 2 == 0 {
            let a = time(plain.port)?;
            (a, time(shipping.port)?)
        } else {
            let b = time(shipping.port)?;
            (time(plain.port)?, b)
        };
        off.push(a);
        on.push(b);
        ratios.push(b / a);
    }
    drop((plain, shipping));

    println!("### fleet ingest: {} boxes × {} rows, {} rows a shipment\n", args.boxes, args.rows, args.batch);
    println!("| rows | seconds | rows/s into PostgreSQL |\n|---|---|---|");
    println!("| {shipped} | {seconds:.2} | **{:.0}** |\n", shipped as f64 / seconds);
    println!(
        "### latency with shipping on and off, {} request pairs (forced cloud, instant upstream)\n",
        args.requests
    );
    println!("| box | p50 | p99 |\n|---|---|---|");
    println!("| not shipping | {:.3} ms | {:.3} ms |", percentile(&mut off, 0.5), percentile(&mut off, 0.99));
    println!("| shipping every second | {:.3} ms | {:.3} ms |", percentile(&mut on, 0.5), percentile(&mut on, 0.99));
    let middle = median(ratios.clone());
    if let Some((low, high, coverage)) = median_interval(ratios, 0.95) {
        println!(
            "\nlatency ratio, shipping ÷ not (median of pairs): **{middle:.3}×**, {:.1} % interval [{low:.3}, {high:.3}]",
            coverage * 100.0
        );
    }
    Ok(())
}

/// A query log of `rows` requests spread over the last hour.
fn fill(path: &std::path::Path, rows: usize) -> anyhow::Result<()> {
    let log = QueryLog::open(path)?;
    let now = edgeway_store::record::now_ms();
    for i in 0..rows {
        log.record(QueryRecord {
            ts_ms: now - 3_600_000 + (i as i64 * 3_600_000 / rows as i64),
            endpoint: "chat".into(),
            route: if i % 4 == 0 { "cloud" } else { "edge" }.into(),
            model: Some("qwen2.5-0.5b".into()),
            domain: Some(["code", "general", "finance"][i % 3].into()),
            prompt_tokens: 120,
            completion_tokens: 40,
            ttft_ms: Some(180.0),
            latency_ms: 1_400.0,
            cost: if i % 4 == 0 { 0.00004 } else { 0.0 },
            energy_j: Some(12.0),
            status: "ok".into(),
            ..Default::default()
        });
    }
    log.flush();
    Ok(())
}
