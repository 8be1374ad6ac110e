//! `edgeway bench`: edgeway's HTTP API against llama.cpp's own `llama-bench`,
//! on the same model and thread count, in one run.
//!
//! What is measured, each `--repetitions` times (medians reported):
//! - prompt processing: a fresh `--prompt-tokens` prompt through
//!   `/v1/completions` with `max_tokens: 1`; tokens/s = prompt tokens ÷ time to
//!   first token, measured by the client, HTTP included;
//! - generation: `--gen-tokens` tokens (`ignore_eos`) streamed; tokens/s over
//!   the time between the first and the last token, as seen by the client. The
//!   server sends tokens in chunks at most every 16 ms (its default
//!   `--stream-interval-ms`); a second server started with `--stream-interval-ms 0`
//!   gives the rate with one chunk per token, as llama-server streams;
//! - prefix reuse: time to first token of a request sharing a
//!   `--prefix-tokens` prefix with the previous one, against a cold one;
//! - peak RSS of the serving process (VmHWM), against the size of the model files it
//!   loaded (the chat model, and the embedding model if anything loaded it).
//!
//! llama-bench runs `-p`/`-n` with the same sizes and threads; the ratio is
//! edgeway ÷ llama-bench. The two are interleaved (one llama-bench run per
//! round) because a shared machine drifts in speed over minutes.
//!
//! edgeway reads the weights into memory on 2 MiB pages where the kernel
//! offers them (`edgeway_engine::hugepages`); llama-bench maps the file by
//! default. So that the gain is not mistaken for anything else, each round
//! also runs llama-bench with its weights in memory on huge pages too
//! (`-lm none` with glibc's `malloc.hugetlb` tunable), a second anchor.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use edgeway_compare::peak_rss;
use edgeway_eval::stats::{median, median_interval};
use edgeway_models::resolve_model;
use serde_json::{json, Value};

use super::{lower_own_priority, raw_http};
use crate::app::child::start_server;
use crate::app::DataDir;
use crate::cli::EngineBenchArgs as BenchArgs;

/// Confidence asked of the interval around each median ratio.
const CONFIDENCE: f64 = 0.95;

/// Words to start prompts with, so no two prompts share a first token and no cache is reused.
const OPENERS: &[&str] = &[
    "Apples",
    "Bridges",
    "Copper",
    "Deserts",
    "Engines",
    "Forests",
    "Glaciers",
    "Harbors",
    "Islands",
    "Jungles",
    "Kettles",
    "Lanterns",
    "Meadows",
    "Nebulas",
    "Oceans",
    "Pyramids",
    "Quarries",
    "Rivers",
    "Satellites",
    "Tunnels",
];

/// Filler prose for building prompts of a given length.
const FILLER: &str = "The inspection line checks every part for cracks, scratches and stains before it is packed. \
Operators review the flagged parts, and the camera model learns from their decisions over time. ";

pub(super) fn run(data_dir: &DataDir, args: &BenchArgs) -> anyhow::Result<()> {
    if args.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    let cache = data_dir.cache();
    let model = resolve_model(&args.model, &cache, true, &mut |_| {})?;
    let model_bytes =
        std::fs::metadata(&model.path).with_context(|| format!("cannot read {}", model.path.display()))?.len();
    eprintln!(
        "bench: {} ({} MiB), {} threads, {} repetitions",
        model.id,
        model_bytes >> 20,
        args.threads,
        args.repetitions
    );

    let server = start_server(&model.path, args.threads, &args.serve_args)?;
    let per_token_server = if args.serve_args.iter().any(|arg| arg.starts_with("--stream-interval-ms")) {
        None
    } else {
        let mut serve_args = args.serve_args.clone();
        serve_args.extend(["--stream-interval-ms".to_owned(), "0".to_owned(), "--no-embeddings".to_owned()]);
        Some(start_server(&model.path, args.threads, &serve_args)?)
    };
    lower_own_priority();
    let mut prompts = PromptMaker::new(server.port);
    // The machine's speed drifts; one llama-bench run next to each edgeway run,
    // and the median of the per-pair ratios, keeps the comparison fair.
    let mut rounds = Vec::new();
    for round in 0..args.repetitions {
        eprintln!("bench: round {}/{}", round + 1, args.repetitions);
        let run_anchor = |huge_pages| {
            args.llama_bench.as_deref().map(|binary| run_llama_bench(binary, &model.path, args, huge_pages)).transpose()
        };
        let anchor = run_anchor(false)?;
        let anchor_huge_pages = if edgeway_engine::hugepages::available() { run_anchor(true)? } else { None };
        let mut ours = measure_round(server.port, &mut prompts, args)?;
        if let Some(per_token) = &per_token_server {
            let generation = stream_completion(per_token.port, &prompts.make(16)?, args.gen_tokens)?;
            ours.gen_tps_per_token = Some(generation.tokens_per_second());
        }
        rounds.push(Measured { anchor, anchor_huge_pages, ours });
    }
    let peak_rss_bytes = peak_rss(server.child.id()).unwrap_or(0);
    let embedding_bytes = loaded_embedding_model_bytes(server.port)?;
    drop(server);
    drop(per_token_server);

    let report =
        Report { model: model.id.clone(), model_bytes, embedding_bytes, threads: args.threads, rounds, peak_rss_bytes };
    println!("{}", report.markdown(args));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Size of the embedding model in the server's memory next to the chat model (0 if none, or
/// if nothing needed it yet: `serve` loads it on first use), from `/v1/models`.
fn loaded_embedding_model_bytes(port: u16) -> anyhow::Result<u64> {
    let models: Value = reqwest::blocking::get(format!("http://127.0.0.1:{port}/v1/models"))?.json()?;
    Ok(models["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["meta"]["kind"] == "embedding" && m["meta"]["loaded"] == true)
        .filter_map(|m| m["meta"]["size"].as_u64())
        .sum())
}

/// One llama-bench run, in tokens/s.
struct Anchor {
    prompt_tps: f64,
    gen_tps: f64,
}

/// One round: llama-bench as it comes, llama-bench with its weights on huge pages, edgeway.
struct Measured {
    anchor: Option<Anchor>,
    anchor_huge_pages: Option<Anchor>,
    ours: Round,
}

/// One round of edgeway measurements.
struct Round {
    prompt_tps: f64,
    /// The prompt rate from the server's own `timings` (tokens it processed ÷ time to the first token).
    server_prompt_tps: f64,
    prompt_tokens: u64,
    gen_tps: f64,
    server_gen_tps: f64,
    /// Generation with one chunk per token (`--stream-interval-ms 0`), when measured.
    gen_tps_per_token: Option<f64>,
    ttft_cold_ms: f64,
    ttft_warm_ms: f64,
    prefix_tokens: u64,
}

/// One llama-bench run; `huge_pages`: weights read into memory on 2 MiB pages, as edgeway does.
fn run_llama_bench(binary: &Path, model: &Path, args: &BenchArgs, huge_pages: bool) -> anyhow::Result<Anchor> {
    let mut command = Command::new(binary);
    if huge_pages {
        // glibc then advises huge pages for its large allocations, the weights among them.
        command.args(["-lm", "none"]).env("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1");
    }
    let output = command
        .arg("-m")
        .arg(model)
        .args(["-t", &args.threads.to_string()])
        .args(["-p", &args.prompt_tokens.to_string(), "-n", &args.gen_tokens.to_string()])
        .args(["-r", "1", "-o", "json"])
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !output.status.success() {
        bail!("llama-bench failed with {}", output.status);
    }
    let runs: Vec<Value> = serde_json::from_slice(&output.stdout).context("llama-bench did not print JSON")?;
    let median_of = |is_prompt: bool| -> anyhow::Result<f64> {
        let run = runs
            .iter()
            .find(|r| {
                (r["n_prompt"].as_u64().unwrap_or(0) > 0) == is_prompt
                    && (r["n_gen"].as_u64().unwrap_or(0) > 0) != is_prompt
            })
            .context("llama-bench output lacks a run")?;
        let samples: Vec<f64> =
            run["samples_ts"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
        Ok(if samples.is_empty() { run["avg_ts"].as_f64().unwrap_or(0.0) } else { median(samples) })
    };
    Ok(Anchor { prompt_tps: median_of(true)?, gen_tps: median_of(false)? })
}

/// What the client saw of one streamed completion.
struct StreamTiming {
    ttft: Duration,
    /// From the first to the last token event.
    generation: Duration,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// Generation rate the server itself measured (its `timings`), without HTTP.
    server_gen_tps: f64,
    /// Prompt rate the server itself measured (its `timings`), without HTTP.
    server_prompt_tps: f64,
}

impl StreamTiming {
    /// Generation rate: the tokens after the first over the time from the first to the last.
    fn tokens_per_second(&self) -> f64 {
        self.completion_tokens.saturating_sub(1) as f64 / self.generation.as_secs_f64()
    }
}

fn stream_completion(port: u16, prompt: &str, max_tokens: u32) -> anyhow::Result<StreamTiming> {
    let body = json!({
        "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": true,
        "stream": true, "stream_options": {"include_usage": true},
    });
    let started = Instant::now();
    let response = raw_http::post_json(port, "/v1/completions", &body.to_string())?;
    let mut first = None;
    let mut last = started;
    let mut usage = Value::Null;
    let mut timings = Value::Null;
    for line in response.lines() {
        let line = line?;
        let Some(data) = line.strip_prefix("data: ") else { continue };
        if data == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(data)?;
        if chunk["choices"][0]["text"].as_str().is_some_and(|t| !t.is_empty()) {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
        }
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
        if !chunk["timings"].is_null() {
            timings = chunk["timings"].clone();
        }
    }
    let first = first.context("the stream carried no text")?;
    Ok(StreamTiming {
        ttft: first - started,
        generation: last - first,
        prompt_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
        server_gen_tps: timings["predicted_per_second"].as_f64().unwrap_or(0.0),
        server_prompt_tps: timings["prompt_per_second"].as_f64().unwrap_or(0.0),
    })
}

/// Builds prompts of an exact token length for the served model, with its `/tokenize`.
///
/// Exactness matters: llama.cpp's matrix kernels are tuned for tile-sized
/// batches, and llama-bench itself runs ~10 % slower on 131 tokens than on 128.
struct PromptMaker {
    port: u16,
    openers: std::iter::Cycle<std::slice::Iter<'static, &'static str>>,
}

impl PromptMaker {
    fn new(port: u16) -> Self {
        Self { port, openers: OPENERS.iter().cycle() }
    }

    fn count_tokens(&self, text: &str) -> anyhow::Result<usize> {
        let body = json!({ "content": text }).to_string();
        let reply: Value = serde_json::from_reader(raw_http::post_json(self.port, "/tokenize", &body)?)?;
        reply["tokens"].as_array().map(Vec::len).context("/tokenize gave no tokens")
    }

    /// A prompt of exactly `tokens` tokens (BOS included) whose first word differs from the previous prompts'.
    fn make(&mut self, tokens: u32) -> anyhow::Result<String> {
        let want = tokens as usize;
        let opener = self.openers.next().copied().unwrap_or("A");
        let words: Vec<String> = text_of(opener, want * 8).split(' ').map(str::to_owned).collect();
        // The most whole words that stay within the budget (token count grows with words).
        let (mut low, mut high) = (1, words.len());
        while low < high {
            let mid = (low + high).div_ceil(2);
            if self.count_tokens(&words[..mid].join(" "))? <= want {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        let mut text = words[..low].join(" ");
        // Then top up one short word (one token) at a time.
        for _ in 0..want {
            match self.count_tokens(&text)? {
                n if n == want => return Ok(text),
                n if n > want => bail!("cannot build a prompt of exactly {want} tokens (got {n})"),
                _ => text.push_str(" a"),
            }
        }
        bail!("cannot build a prompt of exactly {want} tokens")
    }
}

/// `chars` characters of filler prose starting with `opener`.
fn text_of(opener: &str, chars: usize) -> String {
    let mut text = format!("{opener}. ");
    while text.len() < chars {
        text.push_str(FILLER);
    }
    text.truncate(chars);
    text
}

fn measure_round(port: u16, prompts: &mut PromptMaker, args: &BenchArgs) -> anyhow::Result<Round> {
    let prompt = stream_completion(port, &prompts.make(args.prompt_tokens)?, 1)?;
    let generation = stream_completion(port, &prompts.make(16)?, args.gen_tokens)?;
    let prefix = prompts.make(args.prefix_tokens)?;
    let cold = stream_completion(port, &format!("{prefix}\nQuestion: what is checked?"), 1)?;
    let warm = stream_completion(port, &format!("{prefix}\nQuestion: who reviews the parts?"), 1)?;
    Ok(Round {
        prompt_tps: prompt.prompt_tokens as f64 / prompt.ttft.as_secs_f64(),
        server_prompt_tps: prompt.server_prompt_tps,
        prompt_tokens: prompt.prompt_tokens,
        gen_tps: generation.tokens_per_second(),
        server_gen_tps: generation.server_gen_tps,
        gen_tps_per_token: None,
        ttft_cold_ms: cold.ttft.as_secs_f64() * 1000.0,
        ttft_warm_ms: warm.ttft.as_secs_f64() * 1000.0,
        prefix_tokens: cold.prompt_tokens,
    })
}

struct Report {
    model: String,
    model_bytes: u64,
    /// The embedding model, when something loaded it (its weights are resident too).
    embedding_bytes: u64,
    threads: u32,
    rounds: Vec<Measured>,
    peak_rss_bytes: u64,
}

/// Which llama-bench run a ratio is against.
type AnchorOf = fn(&Measured) -> Option<&Anchor>;

fn default_anchor(m: &Measured) -> Option<&Anchor> {
    m.anchor.as_ref()
}

fn huge_pages_anchor(m: &Measured) -> Option<&Anchor> {
    m.anchor_huge_pages.as_ref()
}

impl Report {
    fn ours(&self, field: fn(&Round) -> f64) -> f64 {
        median(self.rounds.iter().map(|m| field(&m.ours)).collect())
    }

    fn anchor(&self, which: AnchorOf, field: fn(&Anchor) -> f64) -> Option<f64> {
        let values: Vec<f64> = self.rounds.iter().filter_map(|m| which(m).map(field)).collect();
        (!values.is_empty()).then(|| median(values))
    }

    /// edgeway ÷ llama-bench within each round.
    fn round_ratios(&self, ours: fn(&Round) -> f64, which: AnchorOf, anchor: fn(&Anchor) -> f64) -> Vec<f64> {
        self.rounds.iter().filter_map(|m| which(m).map(|a| ours(&m.ours) / anchor(a))).collect()
    }

    /// Median over rounds of edgeway ÷ llama-bench within the round.
    fn ratio(&self, ours: fn(&Round) -> f64, which: AnchorOf, anchor: fn(&Anchor) -> f64) -> Option<f64> {
        let values = self.round_ratios(ours, which, anchor);
        (!values.is_empty()).then(|| median(values))
    }

    /// The median ratio, the interval that holds it with 95 % confidence and, since this
    /// machine's speed drifts, the lowest and highest round's.
    fn ratio_cell(&self, ours: fn(&Round) -> f64, which: AnchorOf, anchor: fn(&Anchor) -> f64) -> String {
        let values = self.round_ratios(ours, which, anchor);
        let Some((ci_low, ci_high, _)) = median_interval(values.clone(), CONFIDENCE) else {
            return "–".to_owned();
        };
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{:.2}× [{ci_low:.2}–{ci_high:.2}] ({low:.2}–{high:.2})", median(values))
    }

    /// The confidence interval of a median ratio, for the JSON report.
    fn ratio_interval(&self, ours: fn(&Round) -> f64, which: AnchorOf, anchor: fn(&Anchor) -> f64) -> Value {
        median_interval(self.round_ratios(ours, which, anchor), CONFIDENCE)
            .map_or(Value::Null, |(low, high, coverage)| json!({"low": low, "high": high, "coverage": coverage}))
    }

    /// One table row: edgeway's median, the anchor's, and their ratio.
    fn ratio_row(&self, label: &str, ours: fn(&Round) -> f64, which: AnchorOf, anchor: fn(&Anchor) -> f64) -> String {
        let anchor_median = self.anchor(which, anchor).map_or("–".to_owned(), |v| format!("{v:.2}"));
        format!("| {label} | {:.1} | {anchor_median} | {} |\n", self.ours(ours), self.ratio_cell(ours, which, anchor))
    }

    /// Whether every round also measured generation with one chunk per token.
    fn measured_per_token(&self) -> bool {
        self.rounds.iter().all(|m| m.ours.gen_tps_per_token.is_some())
    }

    fn markdown(&self, args: &BenchArgs) -> String {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let prompt_tokens = self.rounds.first().map_or(0, |m| m.ours.prompt_tokens);
        let prefix_tokens = args.prefix_tokens;
        let prefix_prompt_tokens = self.rounds.first().map_or(0, |m| m.ours.prefix_tokens);
        let (cold, warm) = (self.ours(|r| r.ttft_cold_ms), self.ours(|r| r.ttft_warm_ms));
        let mut out = format!(
            "### {} ({:.1} MiB), {} threads, median of {} interleaved rounds\n\n",
            self.model,
            mib(self.model_bytes),
            self.threads,
            self.rounds.len()
        );
        out += "| measure | edgeway (HTTP) | llama-bench | ratio [95 % interval of the median] (lowest–highest round) |\n|---|---|---|---|\n";
        out += &self.ratio_row(
            &format!("prompt tok/s (pp{}; edgeway {prompt_tokens} tokens)", args.prompt_tokens),
            |r| r.prompt_tps,
            default_anchor,
            |a| a.prompt_tps,
        );
        out += &self.ratio_row(
            "prompt tok/s measured inside the server (no HTTP)",
            |r| r.server_prompt_tps,
            default_anchor,
            |a| a.prompt_tps,
        );
        out += &self.ratio_row(
            &format!("generation tok/s (tg{})", args.gen_tokens),
            |r| r.gen_tps,
            default_anchor,
            |a| a.gen_tps,
        );
        if self.anchor(huge_pages_anchor, |a| a.gen_tps).is_some() {
            out += &self.ratio_row(
                "generation tok/s vs llama-bench with its weights on 2 MiB pages too",
                |r| r.gen_tps,
                huge_pages_anchor,
                |a| a.gen_tps,
            );
        }
        if self.measured_per_token() {
            out += &self.ratio_row(
                "generation tok/s, one chunk per token (`--stream-interval-ms 0`)",
                |r| r.gen_tps_per_token.unwrap_or(0.0),
                default_anchor,
                |a| a.gen_tps,
            );
        }
        out += &self.ratio_row(
            "generation tok/s measured inside the server (no HTTP)",
            |r| r.server_gen_tps,
            default_anchor,
            |a| a.gen_tps,
        );
        out += &format!(
            "| TTFT, {prefix_tokens}-token prefix shared with the previous request ({prefix_prompt_tokens}-token prompts): warm / cold | {warm:.1} ms / {cold:.1} ms | | {:.3}× |\n",
            warm / cold
        );
        let files = self.model_bytes + self.embedding_bytes;
        let which = if self.embedding_bytes > 0 {
            format!(
                "model files ({:.0} MiB + embedding model {:.0} MiB)",
                mib(self.model_bytes),
                mib(self.embedding_bytes)
            )
        } else {
            "model file".to_owned()
        };
        out += &format!(
            "| peak RSS while serving / {which} | {:.0} MiB / {:.0} MiB | | +{:.0} MiB |\n",
            mib(self.peak_rss_bytes),
            mib(files),
            mib(self.peak_rss_bytes.saturating_sub(files))
        );
        let coverage = median_interval(vec![0.0; self.rounds.len()], CONFIDENCE).map_or(0.0, |(_, _, c)| c);
        out += &format!(
            "\n[…]: holds the median ratio with {:.1} % confidence over {} rounds (distribution-free, from order statistics).\n",
            coverage * 100.0,
            self.rounds.len()
        );
        out
    }

    fn json(&self) -> Value {
        let rounds: Vec<Value> = self
            .rounds
            .iter()
            .map(|m| {
                let r = &m.ours;
                let anchor_json = |a: &Anchor| json!({"prompt_tps": a.prompt_tps, "gen_tps": a.gen_tps});
                json!({
                    "llama_bench": m.anchor.as_ref().map(anchor_json),
                    "llama_bench_huge_pages": m.anchor_huge_pages.as_ref().map(anchor_json),
                    "edgeway": {
                        "prompt_tps": r.prompt_tps, "server_prompt_tps": r.server_prompt_tps, "prompt_tokens": r.prompt_tokens, "gen_tps": r.gen_tps, "server_gen_tps": r.server_gen_tps, "gen_tps_per_token": r.gen_tps_per_token,
                        "ttft_cold_ms": r.ttft_cold_ms, "ttft_warm_ms": r.ttft_warm_ms, "prefix_tokens": r.prefix_tokens,
                    },
                })
            })
            .collect();
        json!({
            "model": self.model,
            "model_bytes": self.model_bytes,
            "embedding_bytes": self.embedding_bytes,
            "threads": self.threads,
            "peak_rss_bytes": self.peak_rss_bytes,
            "prompt_ratio": self.ratio(|r| r.prompt_tps, default_anchor, |a| a.prompt_tps),
            "gen_ratio": self.ratio(|r| r.gen_tps, default_anchor, |a| a.gen_tps),
            "gen_ratio_interval": self.ratio_interval(|r| r.gen_tps, default_anchor, |a| a.gen_tps),
            "prompt_ratio_interval": self.ratio_interval(|r| r.prompt_tps, default_anchor, |a| a.prompt_tps),
            "gen_ratio_vs_huge_pages": self.ratio(|r| r.gen_tps, huge_pages_anchor, |a| a.gen_tps),
            "gen_ratio_per_token_chunks": self
                .measured_per_token()
                .then(|| self.ratio(|r| r.gen_tps_per_token.unwrap_or(0.0), default_anchor, |a| a.gen_tps)),
            "rounds": rounds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_text_has_the_asked_length_and_opener() {
        let text = text_of("Rivers", 400);
        assert_eq!(text.len(), 400);
        assert!(text.starts_with("Rivers. "));
    }
}
