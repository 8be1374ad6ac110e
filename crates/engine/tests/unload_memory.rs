//! Dropping a [`LlamaEngine`] gives its memory back: the model pool unloads a
//! model by dropping it, so whatever the weights (read into anonymous memory,
//! see `hugepages.rs`), the KV cache and the compute buffers held must leave
//! the process's resident set, every time, not only the first.
//!
//! Needs the cached SmolLM2-135M (`edgeway model pull smollm2-135m`, which
//! scripts/test.sh does), or its path in `EDGEWAY_TEST_MODEL`.

use std::path::PathBuf;

use edgeway_core::{Backend, GenerateRequest, GenerationEvent, Prompt, RouteHints, SamplingParams};
use edgeway_engine::{EngineConfig, LlamaEngine};

fn model_path() -> PathBuf {
    if let Some(path) = std::env::var_os("EDGEWAY_TEST_MODEL") {
        return PathBuf::from(path);
    }
    let data_dir = std::env::var_os("EDGEWAY_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache").join("edgeway"));
    let path = data_dir.join("models").join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.is_file(), "missing {}; run `edgeway model pull smollm2-135m`", path.display());
    path
}

/// The process's resident set (`VmRSS`), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB");
    kib * 1024
}

const MIB: f64 = 1024.0 * 1024.0;

/// Loads the model, answers one short prompt (so the compute buffers and some KV cache are
/// touched), and returns the RSS while loaded.
fn load_answer(runtime: &tokio::runtime::Runtime) -> (LlamaEngine, u64) {
    let mut config = EngineConfig::new(model_path(), "smollm2");
    config.threads = 1;
    config.threads_batch = 1;
    let engine = LlamaEngine::load(config).expect("load");
    let request = GenerateRequest {
        prompt: Prompt::Text("The capital of France is".into()),
        sampling: SamplingParams { temperature: 0.0, max_tokens: Some(4), ..SamplingParams::default() },
        route: RouteHints::default(),
        tools: None,
        query_embedding: None,
    };
    let mut generation = engine.submit(request).expect("admitted");
    runtime.block_on(async {
        while let Some(event) = generation.next_event().await {
            if let GenerationEvent::Finished(_) = event.expect("generates") {
                break;
            }
        }
    });
    let loaded = rss_bytes();
    (engine, loaded)
}

#[cfg(target_os = "linux")]
#[test]
fn dropping_the_engine_returns_its_memory_every_time() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let before = rss_bytes();
    let mut after_drops = Vec::new();
    let mut held = Vec::new();
    for _ in 0..3 {
        let (engine, loaded) = load_answer(&runtime);
        drop(engine);
        held.push(loaded.saturating_sub(before));
        after_drops.push(rss_bytes());
    }
    let report: Vec<String> = held
        .iter()
        .zip(&after_drops)
        .map(|(held, after)| {
            format!(
                "loaded +{:.1} MiB, after drop +{:.1} MiB",
                *held as f64 / MIB,
                after.saturating_sub(before) as f64 / MIB
            )
        })
        .collect();
    eprintln!("RSS before {:.1} MiB; {}", before as f64 / MIB, report.join("; "));
    let model_bytes = std::fs::metadata(model_path()).expect("model file").len();
    assert!(held[0] >= model_bytes / 2, "a load holds at least half the file: {report:?}");
    // What stays after a drop (llama.cpp's backend registry, libgomp's threads, allocator
    // caches) is small against what a load holds, and does not grow with each load.
    let kept = after_drops[0].saturating_sub(before);
    assert!(kept < held[0] / 4, "a dropped engine keeps most of its memory: {report:?}");
    let growth = after_drops[2].saturating_sub(after_drops[0]);
    assert!(growth < held[0] / 10, "each load and drop leaks: {report:?}");
}
