//! `edgeway bench gateway`: what routing through edgeway adds to a cloud call.
//!
//! An upstream that answers at once (a fixed SSE stream from an in-process
//! server, so its own time is near zero and steady) is called directly and
//! through `edgeway serve` (forced to the cloud), alternately, one request at
//! a time. The difference per pair is edgeway's added latency: HTTP in and
//! out, validation, scoring, routing, the upstream hop, re-streaming, logging
//! and metrics.

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::Context;
use edgeway_eval::stats::percentile;
use edgeway_models::resolve_model;
use serde_json::json;

use super::{lower_own_priority, raw_http};
use crate::app::child::start_server;
use crate::app::DataDir;
use crate::cli::GatewayBenchArgs;

pub(super) fn run(data_dir: &DataDir, args: &GatewayBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.requests > 0, "--requests must be at least 1");
    let upstream_port = start_mock_upstream(args.chunks)?;
    let model = resolve_model(&args.model, &data_dir.cache(), true, &mut |_| {})?;
    let log = std::env::temp_dir().join(format!("edgeway-bench-gateway-{}.db", std::process::id()));
    let serve_args: Vec<String> = [
        "--cloud-url",
        &format!("http://127.0.0.1:{upstream_port}/v1"),
        "--cloud-model",
        "mock",
        "--log-path",
        &log.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = start_server(&model.path, 2, &serve_args)?;
    lower_own_priority();

    let body = json!({
        "model": "cloud",
        "stream": true,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    })
    .to_string();
    let time = |port: u16| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut response = raw_http::post_json(port, "/v1/chat/completions", &body)?;
        let mut sink = Vec::new();
        response.read_to_end(&mut sink)?;
        anyhow::ensure!(sink.windows(6).any(|w| w == b"[DONE]"), "a stream did not end with [DONE]");
        Ok(started.elapsed())
    };
    for _ in 0..50 {
        time(upstream_port)?;
        time(server.port)?;
    }
    eprintln!("bench: {} request pairs", args.requests);
    let (mut direct, mut routed, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..args.requests {
        // Alternate which goes first, so neither always finds the caches warm.
        let (d, r) = if i % 2 == 0 {
            let d = time(upstream_port)?;
            (d, time(server.port)?)
        } else {
            let r = time(server.port)?;
            (time(upstream_port)?, r)
        };
        direct.push(ms(d));
        routed.push(ms(r));
        added.push(ms(r) - ms(d));
    }
    drop(server);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", log.display()));
    }

    println!("### gateway added latency, {} request pairs, {}-chunk streams\n", args.requests, args.chunks);
    println!("| measure | p50 | p99 |\n|---|---|---|");
    println!(
        "| upstream called directly | {:.3} ms | {:.3} ms |",
        percentile(&mut direct, 0.5),
        percentile(&mut direct, 0.99)
    );
    println!(
        "| through edgeway (forced cloud) | {:.3} ms | {:.3} ms |",
        percentile(&mut routed, 0.5),
        percentile(&mut routed, 0.99)
    );
    println!(
        "| **added by edgeway** | **{:.3} ms** | **{:.3} ms** |",
        percentile(&mut added, 0.5),
        percentile(&mut added, 0.99)
    );
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Starts an OpenAI-compatible upstream that streams a fixed answer at once; returns its port.
fn start_mock_upstream(chunks: usize) -> anyhow::Result<u16> {
    let mut stream = String::from("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n");
    for i in 0..chunks {
        stream.push_str(&format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"w{i} \"}}}}]}}\n\n"));
    }
    stream.push_str("data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    stream.push_str(&format!(
        "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":9,\"completion_tokens\":{chunks}}}}}\n\ndata: [DONE]\n\n"
    ));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("mock-upstream".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(_) => return,
            };
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                let app = axum::Router::new().route(
                    "/v1/chat/completions",
                    axum::routing::post(move || {
                        let stream = stream.clone();
                        async move { ([(axum::http::header::CONTENT_TYPE, "text/event-stream")], stream) }
                    }),
                );
                let _ = axum::serve(listener, app).await;
            });
        })
        .context("cannot start the mock upstream")?;
    Ok(port)
}
