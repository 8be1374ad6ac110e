//! `edgeway bench gateway`: what routing through edgeway adds to a cloud call.
//!
//! An upstream that answers at once (a fixed SSE stream from an in-process
//! server, so its own time is near zero and steady) is called directly and
//! through `edgeway serve` (forced to the cloud), alternately, one request at
//! a time. The difference per pair is edgeway's added latency: HTTP in and
//! out, validation, scoring, routing, the upstream hop, re-streaming, logging
//! and metrics.
//!
//! Before that, in-process, the costs the embedding router adds: its scoring
//! (features and model, on the request path inside the gateway) and, reported
//! apart, the query embedding it reads (a 50-token prompt on one thread, as
//! `serve` runs the embedding model), computed once per request before routing.

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
    // First, at normal priority and with no server running: nothing else competes for the cores.
    embedding_router(data_dir, args)?;
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

    let time = time_cloud_stream;
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

/// The time one streamed chat forced to the cloud takes through the server at `port`, to its
/// `[DONE]`.
pub(super) fn time_cloud_stream(port: u16) -> anyhow::Result<Duration> {
    let body = json!({
        "model": "cloud",
        "stream": true,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    })
    .to_string();
    let started = Instant::now();
    let mut response = raw_http::post_json(port, "/v1/chat/completions", &body)?;
    let mut sink = Vec::new();
    response.read_to_end(&mut sink)?;
    anyhow::ensure!(sink.windows(6).any(|w| w == b"[DONE]"), "a stream did not end with [DONE]");
    Ok(started.elapsed())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Logged queries a nearest-neighbours scorer holds in this measurement (a large calibration set).
const NEIGHBOUR_QUERIES: usize = 1000;

/// The embedding router's costs, in-process: scoring with each classifier (and the transparent
/// scorer for reference), then embedding a 50-token prompt on one thread.
fn embedding_router(data_dir: &DataDir, args: &GatewayBenchArgs) -> anyhow::Result<()> {
    use edgeway_core::{ChatMessage, EmbeddingBackend, Prompt, QueryEmbedding};
    use edgeway_policy::embedding::{Classifier, EmbeddingTraining, Logistic, Neighbours};
    use edgeway_policy::{ComplexityScorer, EmbeddingModel, EmbeddingScorer, EmbeddingSpec, TransparentScorer};

    let embedder = if args.embedding_samples > 0 {
        Some(crate::app::engine::load_embedder(&args.embedding_model, &data_dir.cache(), true, Some(1))?)
    } else {
        None
    };
    let dims = embedder.as_ref().map_or(384, |e| e.embedding_info().dims);
    let model_id = embedder.as_ref().map_or("all-minilm-l6-v2".to_owned(), |e| e.embedding_info().id.clone());
    let text = fifty_token_prompt(embedder.as_deref());
    let prompt = Prompt::Chat(vec![ChatMessage::new("user", text.clone())]);
    // Weights and stored queries need not mean anything to cost what real ones cost.
    let mut random = SplitMix(7);
    let mut unit = || {
        let v: Vec<f32> = (0..dims).map(|_| random.next_f32() - 0.5).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let query = QueryEmbedding::new(model_id.clone(), unit());
    let features = dims + TransparentScorer.score(&Prompt::Text(String::new())).features.len();
    let logistic = Classifier::Logistic(Logistic {
        mean: vec![0.0; features],
        scale: vec![1.0; features],
        weights: unit().into_iter().chain(std::iter::repeat(0.1)).take(features).collect(),
        bias: 0.0,
        l2: 0.01,
    });
    let neighbours = Classifier::Neighbours(Neighbours {
        k: 10,
        vectors: (0..NEIGHBOUR_QUERIES).flat_map(|_| unit()).collect(),
        labels: (0..NEIGHBOUR_QUERIES).map(|i| i % 3 == 0).collect(),
        base_rate: 1.0 / 3.0,
    });
    let scorer = |classifier| {
        let spec = EmbeddingSpec { model: model_id.clone(), dims };
        EmbeddingScorer::new(EmbeddingModel::new(spec, classifier, EmbeddingTraining::default()))
    };
    let (logistic, neighbours) = (scorer(logistic), scorer(neighbours));
    let time_scoring = |scorer: &dyn ComplexityScorer| {
        let mut samples = Vec::with_capacity(args.scoring_samples);
        for i in 0..args.scoring_samples + 200 {
            let started = Instant::now();
            let score = scorer.score_with(&prompt, Some(&query));
            let elapsed = started.elapsed();
            std::hint::black_box(score);
            if i >= 200 {
                samples.push(elapsed.as_secs_f64() * 1e6);
            }
        }
        (percentile(&mut samples, 0.5), percentile(&mut samples, 0.99))
    };
    println!("### embedding router: scoring and query embedding, in-process\n");
    println!("| measure | p50 | p99 |\n|---|---|---|");
    for (name, scorer) in [
        ("embedding scorer, logistic regression (features + model)".to_owned(), &logistic as &dyn ComplexityScorer),
        (format!("embedding scorer, 10 nearest of {NEIGHBOUR_QUERIES} logged queries (features + model)"), &neighbours),
        ("transparent scorer (reference)".to_owned(), &TransparentScorer),
    ] {
        let (p50, p99) = time_scoring(scorer);
        println!("| {name} | {p50:.1} µs | {p99:.1} µs |");
    }
    if let Some(embedder) = &embedder {
        let tokens = embedder.count_tokens(&text);
        let inputs = [text.clone()];
        let mut samples = Vec::with_capacity(args.embedding_samples);
        for i in 0..args.embedding_samples + 10 {
            let started = Instant::now();
            embedder.embed(&inputs)?;
            if i >= 10 {
                samples.push(ms(started.elapsed()));
            }
        }
        println!(
            "| query embedding, {model_id}, {tokens}-token prompt, 1 thread (once per request, before routing) | {:.2} ms | {:.2} ms |",
            percentile(&mut samples, 0.5),
            percentile(&mut samples, 0.99)
        );
    }
    println!();
    Ok(())
}

/// A user question of about 50 tokens in the embedding model's tokenizer (special tokens included).
fn fifty_token_prompt(embedder: Option<&edgeway_engine::Embedder>) -> String {
    use edgeway_core::EmbeddingBackend;
    let words = "Explain step by step why the quarterly maintenance schedule for the hydraulic press on line \
                 three keeps slipping, compare it with the schedule of line four, and suggest two changes that \
                 would keep both presses running without adding another technician to the night shift this winter \
                 please";
    let mut text = String::new();
    for word in words.split_whitespace() {
        let longer = if text.is_empty() { word.to_owned() } else { format!("{text} {word}") };
        if embedder.map_or(longer.split_whitespace().count() + 2, |e| e.count_tokens(&longer)) > 50 {
            break;
        }
        text = longer;
    }
    text
}

/// A small deterministic random source (SplitMix64) for the benchmark's stand-in weights.
struct SplitMix(u64);

impl SplitMix {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Starts an OpenAI-compatible upstream that streams a fixed answer at once; returns its port.
pub(super) fn start_mock_upstream(chunks: usize) -> anyhow::Result<u16> {
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
