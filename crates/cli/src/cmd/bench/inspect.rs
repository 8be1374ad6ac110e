//! `edgeway bench inspect`: a running server's `/v1/inspect` under concurrent load: images per
//! second end to end through HTTP, and the latency of each image, p50 and p99.
//!
//! The client is cheap on purpose (threads, one connection per request, raw HTTP, lowered
//! priority) because it shares the 2-core box with the server; bench/vision.sh starts the server,
//! runs this, and puts the figures beside ONNX Runtime called directly from Python.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use edgeway_eval::stats::percentile;
use edgeway_vision::inspection::list_images;

use super::{lower_own_priority, raw_http};
use crate::cli::InspectBenchArgs;

/// What one run measured.
struct Run {
    images_per_second: f64,
    latencies_ms: Vec<f64>,
    errors: Vec<String>,
    seconds: f64,
}

pub(super) fn run(args: &InspectBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0 && args.requests > 0, "--concurrency and --requests must be at least 1");
    let images = read_images(&args.images)?;
    lower_own_priority();
    let path = match &args.model {
        Some(model) => format!("/v1/inspect?model={model}"),
        None => "/v1/inspect".to_owned(),
    };
    // Warm-up: every image once, one at a time (first runs allocate the runtime's buffers).
    for image in images.iter().take(args.warmup) {
        send(args.port, &path, image)?;
    }
    let run = load(args.port, &path, &images, args.requests, args.concurrency);
    let mut latencies = run.latencies_ms.clone();
    let (p50, p99) = (percentile(&mut latencies, 0.5), percentile(&mut latencies, 0.99));
    println!("| concurrency | images | images/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} | {p50:.1} | {p99:.1} | {} |",
        args.concurrency,
        run.latencies_ms.len(),
        run.images_per_second,
        run.errors.len()
    );
    if let Some(first) = run.errors.first() {
        eprintln!("first error: {first}");
    }
    if let Some(out) = &args.json {
        let report = serde_json::json!({
            "concurrency": args.concurrency,
            "images": run.latencies_ms.len(),
            "seconds": run.seconds,
            "images_per_second": run.images_per_second,
            "p50_ms": p50,
            "p99_ms": p99,
            "errors": run.errors.len(),
        });
        std::fs::write(out, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    anyhow::ensure!(run.errors.is_empty(), "{} of {} requests failed", run.errors.len(), args.requests);
    Ok(())
}

/// The PNG and JPEG files in `dir` and its subfolders (one level, as an MVTec-AD `test/` folder has them).
fn read_images(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut paths: Vec<PathBuf> = list_images(dir)?;
    let mut subfolders: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subfolders.sort();
    for folder in subfolders {
        paths.extend(list_images(&folder)?);
    }
    anyhow::ensure!(!paths.is_empty(), "no PNG or JPEG images in {} or its subfolders", dir.display());
    paths.iter().map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))).collect()
}

fn send(port: u16, path: &str, image: &[u8]) -> anyhow::Result<()> {
    let mut reader = raw_http::post(port, path, "application/octet-stream", image)?;
    let mut body = String::new();
    reader.read_to_string(&mut body)?;
    anyhow::ensure!(body.contains("\"score\""), "no score in the answer: {body}");
    Ok(())
}

/// `requests` images (cycling through `images`) from `concurrency` threads at once.
fn load(port: u16, path: &str, images: &[Vec<u8>], requests: usize, concurrency: usize) -> Run {
    let next = AtomicUsize::new(0);
    let (latencies, errors) = (Mutex::new(Vec::with_capacity(requests)), Mutex::new(Vec::new()));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let sent = Instant::now();
                match send(port, path, &images[i % images.len()]) {
                    Ok(()) => {
                        latencies.lock().unwrap_or_else(|p| p.into_inner()).push(sent.elapsed().as_secs_f64() * 1000.0)
                    }
                    Err(error) => errors.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{error:#}")),
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let latencies_ms = latencies.into_inner().unwrap_or_else(|p| p.into_inner());
    Run {
        images_per_second: latencies_ms.len() as f64 / seconds,
        latencies_ms,
        errors: errors.into_inner().unwrap_or_else(|p| p.into_inner()),
        seconds,
    }
}
