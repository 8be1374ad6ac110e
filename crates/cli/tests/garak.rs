//! garak, the LLM vulnerability scanner, against a live `edgeway serve`
//! through garak's own OpenAI-compatible generator: the external red-team
//! client works unchanged, API key included.
//!
//! garak's interpreter is `EDGEWAY_TEST_GARAK` (`scripts/test.sh` installs it
//! with `scripts/garak-venv.sh`). `bench/garak.sh` runs more probes, longer.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;
use serde_json::Value;

/// Prompts garak sends per probe (its `soft_probe_prompt_cap`).
const PROMPTS: usize = 6;

/// Runs garak with one probe against the server; returns its report's JSON lines.
fn run_garak(server: &Server, key: &str, probe: &str, dir: &Path) -> Vec<Value> {
    let python = std::env::var("EDGEWAY_TEST_GARAK").unwrap_or_else(|_| {
        panic!("set EDGEWAY_TEST_GARAK to a Python with garak installed (scripts/test.sh does, with scripts/garak-venv.sh)")
    });
    let config = dir.join("garak.yaml");
    std::fs::write(
        &config,
        format!(
            "run:\n  generations: 1\n  soft_probe_prompt_cap: {PROMPTS}\n  seed: 1\n\
             reporting:\n  report_dir: {reports}\n  confidence_interval_method: none\n\
             plugins:\n  target_type: openai.OpenAICompatible\n  target_name: smollm2\n\
             \x20 generators:\n    openai:\n      OpenAICompatible:\n        uri: {uri}\n        max_tokens: 24\n",
            reports = dir.join("reports").display(),
            uri = server.url("/v1/"),
        ),
    )
    .expect("write garak's config");
    let output = Command::new(&python)
        .args(["-m", "garak", "--config"])
        .arg(&config)
        .args(["--spec", probe, "--report_prefix", "edgeway", "--narrow_output"])
        // garak's own log, cache and data stay in the scratch directory.
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("OPENAICOMPATIBLE_API_KEY", key)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    let text = common::output_text(&output);
    assert!(output.status.success() && text.contains("garak run complete"), "garak failed:\n{text}");
    let report = std::fs::read_to_string(dir.join("reports").join("edgeway.report.jsonl"))
        .unwrap_or_else(|error| panic!("no garak report ({error}):\n{text}"));
    report.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
}

/// The report's entries of one type.
fn entries<'a>(report: &'a [Value], entry_type: &str) -> Vec<&'a Value> {
    report.iter().filter(|entry| entry["entry_type"] == entry_type).collect()
}

#[test]
fn garak_scans_edgeway_through_its_openai_compatible_generator() {
    let key = "ew-garak-test-key";
    let server = Server::start(&["--api-key", key]);
    let dir = common::temp_dir("garak", "scan");
    let report = run_garak(&server, key, "probes.encoding.InjectBase64", &dir);

    // Every prompt got a real answer from the model (status 2: generated and judged).
    let judged: Vec<_> = entries(&report, "attempt").into_iter().filter(|a| a["status"] == 2).collect();
    assert_eq!(judged.len(), PROMPTS, "one judged attempt per prompt");
    for attempt in &judged {
        let answer = attempt["outputs"][0]["text"].as_str().unwrap_or_default();
        assert!(!answer.trim().is_empty(), "an empty answer reached garak: {attempt}");
    }
    // garak's detectors scored every answer.
    let evals = entries(&report, "eval");
    assert!(!evals.is_empty(), "no detector results");
    for eval in evals {
        assert_eq!(eval["probe"], "encoding.InjectBase64");
        assert_eq!(eval["total_evaluated"], PROMPTS as u64, "{eval}");
    }
    let log = server.stderr();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn garak_keeps_scanning_when_the_injection_screen_blocks() {
    // A block is a 400, as a hosted content filter answers: garak records no answer for that
    // prompt and goes on (a 403 would make it stop the whole scan as if the key were dead).
    let key = "ew-garak-test-key";
    let server = Server::start(&["--api-key", key, "--injection-action", "block"]);
    let dir = common::temp_dir("garak", "blocked");
    let report = run_garak(&server, key, "probes.promptinject.HijackHateHumans", &dir);

    let judged: Vec<_> = entries(&report, "attempt").into_iter().filter(|a| a["status"] == 2).collect();
    assert_eq!(judged.len(), PROMPTS, "one judged attempt per prompt");
    let blocked = judged.iter().filter(|a| a["outputs"][0].is_null()).count();
    assert!(blocked > 0, "the screen blocked none of garak's injections");
    let evals = entries(&report, "eval");
    assert!(!evals.is_empty(), "no detector results");
    for eval in evals {
        // Blocked prompts are garak's "nones": not evaluated, not hits.
        assert_eq!(eval["nones"], blocked as u64, "{eval}");
        assert_eq!(eval["fails"], 0, "an injection the screen let through succeeded: {eval}");
    }
}
