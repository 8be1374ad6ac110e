//! `edgeway bench structured`: what a JSON schema costs at the edge, and what it buys.
//!
//! The same inspection prompts (each spells out the JSON it wants) go to one
//! `edgeway serve`, once as free text and once with the schema as
//! `response_format`, alternately, greedy, one request at a time. Speed is the
//! engine's own generation rate (`timings`), so HTTP and prompt reading are
//! left out; each round gives one ratio (constrained over free tokens per
//! second, all prompts pooled) and the table shows the median ratio with its
//! 95 % interval. Validity is the share of answers that parse and match the
//! schema, checked by the same code that checks them in `serve`.

use anyhow::Context;
use edgeway_core::{FinishReason, OutputFormat};
use edgeway_eval::stats::{median, median_interval};
use edgeway_models::resolve_model;
use edgeway_structured::{FormatCheck, Verdict};
use serde_json::{json, Value};

use super::lower_own_priority;
use crate::app::child::start_server;
use crate::app::DataDir;
use crate::cli::StructuredBenchArgs;

/// Confidence of the intervals in the table.
const CONFIDENCE: f64 = 0.95;

/// The answer every prompt asks for.
fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "defect": {"type": "boolean"},
            "kind": {"enum": ["scratch", "crack", "stain", "dent", "none"]},
            "location": {
                "type": "object",
                "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                "required": ["x", "y"]
            },
            "severity": {"type": "integer", "minimum": 0, "maximum": 5}
        },
        "required": ["defect", "kind", "location", "severity"]
    })
}

const PARTS: [&str; 5] = ["bracket", "gear", "housing", "panel", "hinge"];
const FINDINGS: [&str; 4] =
    ["a long scratch near the left edge", "no visible damage", "a hairline crack in the middle", "an oil stain"];

fn prompts(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            format!(
                "The camera shows {} on {} {}. Answer only with a JSON object with the fields \"defect\" \
                 (true or false), \"kind\" (one of scratch, crack, stain, dent, none), \"location\" (an object \
                 with integer \"x\" and \"y\") and \"severity\" (an integer from 0 to 5).",
                FINDINGS[i % FINDINGS.len()],
                PARTS[(i / FINDINGS.len()) % PARTS.len()],
                100 + i
            )
        })
        .collect()
}

/// One answer's generation rate and verdict.
struct Answer {
    tokens: f64,
    ms: f64,
    valid: bool,
}

pub(super) fn run(data_dir: &DataDir, args: &StructuredBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.prompts > 0 && args.rounds > 0, "--prompts and --rounds must be at least 1");
    let model = resolve_model(&args.model, &data_dir.cache(), true, &mut |_| {})?;
    let log = std::env::temp_dir().join(format!("edgeway-bench-structured-{}.db", std::process::id()));
    let serve_args = vec!["--log-path".to_owned(), log.display().to_string()];
    let server = start_server(&model.path, args.threads, &serve_args)?;
    lower_own_priority();
    let client = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(600)).build()?;
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", server.port);
    let format = json!({"type": "json_schema", "json_schema": {"name": "inspection", "schema": schema()}});
    let check =
        FormatCheck::new(&OutputFormat::JsonSchema { name: None, schema: schema().to_string(), strict: false })?;
    let ask = |prompt: &str, constrained: bool| -> anyhow::Result<Answer> {
        let mut body = json!({
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": args.max_tokens,
        });
        if constrained {
            body["response_format"] = format.clone();
        }
        let answer: Value = client.post(&url).json(&body).send()?.error_for_status()?.json()?;
        let text = answer["choices"][0]["message"]["content"].as_str().context("an answer without text")?;
        let finish = match answer["choices"][0]["finish_reason"].as_str() {
            Some("length") => FinishReason::Length,
            _ => FinishReason::Stop,
        };
        Ok(Answer {
            tokens: answer["timings"]["predicted_n"].as_f64().unwrap_or(0.0),
            ms: answer["timings"]["predicted_ms"].as_f64().unwrap_or(0.0),
            valid: check.check(text, finish) == Verdict::Valid,
        })
    };
    let prompts = prompts(args.prompts);
    ask(&prompts[0], false)?; // warm-up
    let (mut free_rates, mut constrained_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut free_valid, mut constrained_valid, mut answers) = (0, 0, 0);
    for round in 0..args.rounds {
        eprintln!("bench: round {}/{}", round + 1, args.rounds);
        let (mut free, mut constrained) = ((0.0, 0.0), (0.0, 0.0));
        for (i, prompt) in prompts.iter().enumerate() {
            // Alternate which goes first, so neither always finds the cache warm.
            let (f, c) = if (round + i) % 2 == 0 {
                let f = ask(prompt, false)?;
                (f, ask(prompt, true)?)
            } else {
                let c = ask(prompt, true)?;
                (ask(prompt, false)?, c)
            };
            free = (free.0 + f.tokens, free.1 + f.ms);
            constrained = (constrained.0 + c.tokens, constrained.1 + c.ms);
            if round == 0 {
                answers += 1;
                free_valid += usize::from(f.valid);
                constrained_valid += usize::from(c.valid);
            }
        }
        let free_rate = free.0 / (free.1 / 1000.0);
        let constrained_rate = constrained.0 / (constrained.1 / 1000.0);
        free_rates.push(free_rate);
        constrained_rates.push(constrained_rate);
        ratios.push(constrained_rate / free_rate);
    }
    drop(server);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", log.display()));
    }

    println!(
        "### structured output on {}, {} prompts × {} rounds, greedy, {} threads\n",
        model.id, args.prompts, args.rounds, args.threads
    );
    println!("| measure | free text | JSON schema | ratio (schema / free) [{:.0} % CI] |", CONFIDENCE * 100.0);
    println!("|---|---|---|---|");
    let (low, high, coverage) = median_interval(ratios.clone(), CONFIDENCE).unwrap_or_default();
    println!(
        "| generation tok/s (median of rounds) | {:.1} | {:.1} | {:.2}× [{low:.2}–{high:.2}, {:.1} % coverage] |",
        median(free_rates),
        median(constrained_rates),
        median(ratios),
        coverage * 100.0
    );
    let share = |n: usize| 100.0 * n as f64 / answers as f64;
    println!(
        "| valid answers (parse and match the schema) | {free_valid}/{answers} ({:.0} %) | {constrained_valid}/{answers} ({:.0} %) | |",
        share(free_valid),
        share(constrained_valid)
    );
    println!("\ntarget: generation with a schema ≥ 0.85× free text");
    Ok(())
}
