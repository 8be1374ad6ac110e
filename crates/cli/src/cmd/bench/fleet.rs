//! `edgeway bench fleet`: the fleet's center under load, and what shipping costs a box.
//!
//! Ingest: `--boxes` simulated boxes, each a query log of `--rows` requests written
//! beforehand, ship at once into the center through the real shipper (`COPY` into staging,
//! `ON CONFLICT DO NOTHING`, `--batch` rows a transaction) until every log is drained; rows
//! per second into PostgreSQL.
//!
//! Overhead: three `edgeway serve` processes over the same instant upstream, every request
//! forced to the cloud so the edge model is never the bottleneck: one ships its log to the
//! center every second, one ships to a center that accepts connections and never answers (a
//! center that is down or hung, the worst case: every attempt waits for its timeout), and one
//! does not ship. Requests rotate between them, one at a time; the ratio of each shipping box's
//! latency to the plain one's in the same round is reported as a median with its 95 %
//! interval, with each box's p50 and p99.

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
    // A center that takes connections and never says a word.
    let hung = std::net::TcpListener::bind("127.0.0.1:0")?;
    let hung_url = format!("postgres://edgeway_box@127.0.0.1:{}/fleet", hung.local_addr()?.port());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hung.incoming().flatten() {
            held.push(stream);
        }
    });
    let fleet_config = |name: &str, url: &str| -> anyhow::Result<std::path::PathBuf> {
        let path = scratch.join(format!("{name}.toml"));
        let url = url.replace('\\', "\\\\").replace('"', "\\\"");
        std::fs::write(
            &path,
            format!("[fleet]\nurl = \"{url}\"\nbox_id = \"bench-{run_id}-{name}\"\nship_every_secs = 1\n"),
        )?;
        Ok(path)
    };
    let boxes = [
        ("not shipping", None),
        ("shipping every second", Some(fleet_config("live", &args.url)?)),
        ("center not answering", Some(fleet_config("hung", &hung_url)?)),
    ];
    let servers = boxes
        .iter()
        .enumerate()
        .map(|(i, (_, config))| {
            let mut list = vec![
                "--cloud-url".to_owned(),
                format!("http://127.0.0.1:{upstream}/v1"),
                "--cloud-model".to_owned(),
                "mock".to_owned(),
                "--no-embeddings".to_owned(),
                "--log-path".to_owned(),
                scratch.join(format!("box-{i}.db")).display().to_string(),
            ];
            if let Some(config) = config {
                list.extend(["--config".to_owned(), config.display().to_string()]);
            }
            start_server(&model.path, 1, &list)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    lower_own_priority();
    let time = |port: u16| time_cloud_stream(port).map(|elapsed| elapsed.as_secs_f64() * 1000.0);
    for _ in 0..50 {
        for server in &servers {
            time(server.port)?;
        }
    }
    eprintln!("bench: {} rounds of one request per box", args.requests);
    let mut latencies = vec![Vec::new(); servers.len()];
    for round in 0..args.requests {
        // Each box goes first as often as the others.
        for k in 0..servers.len() {
            let at = (round + k) % servers.len();
            latencies[at].push(time(servers[at].port)?);
        }
    }
    drop(servers);

    println!("### fleet ingest: {} boxes × {} rows, {} rows a shipment\n", args.boxes, args.rows, args.batch);
    println!("| rows | seconds | rows/s into PostgreSQL |\n|---|---|---|");
    println!("| {shipped} | {seconds:.2} | **{:.0}** |\n", shipped as f64 / seconds);
    println!(
        "### a box's latency shipping, not shipping, and with its center hung; {} rounds (forced cloud, \
         instant upstream)\n",
        args.requests
    );
    println!("| box | p50 | p99 | latency ÷ not shipping (median of rounds) | 95 % interval |\n|---|---|---|---|---|");
    for (i, (name, _)) in boxes.iter().enumerate() {
        let (ratio, interval) = if i == 0 {
            ("1×".to_owned(), String::new())
        } else {
            let ratios: Vec<f64> = latencies[i].iter().zip(&latencies[0]).map(|(b, a)| b / a).collect();
            let interval = median_interval(ratios.clone(), 0.95).map_or_else(String::new, |(low, high, coverage)| {
                format!("[{low:.3}, {high:.3}] ({:.1} %)", coverage * 100.0)
            });
            (format!("**{:.3}×**", median(ratios)), interval)
        };
        let (p50, p99) = (percentile(&mut latencies[i], 0.5), percentile(&mut latencies[i], 0.99));
        println!("| {name} | {p50:.3} ms | {p99:.3} ms | {ratio} | {interval} |");
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
