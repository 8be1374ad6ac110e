//! Measuring one variant. Meant to run in a process of its own (`edgeway compare` starts one
//! per variant), so its load time and peak memory are its own.

use std::path::Path;
use std::time::Instant;

use edgeway_core::{Backend, GenerateRequest, GenerationEvent, Prompt, RouteHints, RouteTarget, SamplingParams};
use edgeway_engine::energy::EnergyMeter;
use edgeway_engine::{EngineConfig, LlamaEngine};
use edgeway_eval::dataset::EvalItem;
use edgeway_eval::run::RunError;
use edgeway_eval::stats::median;
use edgeway_models::GgufInfo;
use serde::{Deserialize, Serialize};

use crate::memory::peak_rss;
use crate::texts::Texts;
use crate::{CompareError, Settings};

/// What a measurement reports while it runs; the CLI prints it. Every method does nothing by
/// default, and `()` reports nothing.
pub trait Progress {
    /// A stage of measuring `measured` begins (`loading`, `speed`, `perplexity`, …).
    fn stage(&mut self, measured: &Measured, what: &str) {
        let _ = (measured, what);
    }

    /// Grading begins, `items` of them.
    fn grading(&mut self, items: usize) {
        let _ = items;
    }

    /// One item is done: graded, or not with `error`.
    fn graded(&mut self, item: &EvalItem, error: Option<&RunError>) {
        let _ = (item, error);
    }

    /// Every item is done.
    fn graded_all(&mut self) {}
}

impl Progress for () {}

/// Everything measured about one variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    /// The file.
    pub path: String,
    /// Its precision (`Q8_0`, `F16`…).
    pub precision: String,
    /// `general.architecture`.
    pub architecture: String,
    /// Whether it is an embedding model (else generative).
    pub embedding: bool,
    /// File size.
    pub file_bytes: u64,
    /// Parameters.
    pub n_params: u64,
    /// File bits per parameter.
    pub bits_per_weight: f64,
    /// Parameters per tensor type (`Q8_0`, `Q4_K`…): small models keep their embedding table at 8 bits.
    #[serde(default)]
    pub params_by_type: std::collections::BTreeMap<String, u64>,
    /// Time to load the model and create its context.
    pub load_s: f64,
    /// Peak resident memory of the measuring process after the speed and accuracy runs.
    pub peak_rss_bytes: u64,
    /// Prompt (or embedding) tokens per second, median.
    pub prompt_tps: f64,
    /// Generated tokens per second, median (generative models).
    pub gen_tps: Option<f64>,
    /// Joules per prompt (or embedded) token.
    pub prompt_j_per_token: f64,
    /// Joules per generated token.
    pub gen_j_per_token: Option<f64>,
    /// `rapl` or `cpu-time-model`.
    pub energy_source: String,
    /// Perplexity on the fixed text (generative models).
    pub perplexity: Option<f64>,
    /// Tokens scored for perplexity.
    pub perplexity_tokens: u64,
    /// Graded answers (generative models).
    pub answers: Vec<ItemAnswer>,
    /// Vectors of the fixed sentences (embedding models).
    pub sentence_vectors: Vec<Vec<f32>>,
    /// Retrieval recall@5 per set (embedding models).
    pub recall: Vec<Recall>,
}

/// One graded answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemAnswer {
    /// The set.
    pub set: String,
    /// The item.
    pub id: String,
    /// What the grader read (`B`, `42`).
    pub extracted: Option<String>,
    /// The grade in [0, 1].
    pub score: f64,
}

/// Retrieval quality on one set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recall {
    /// The set.
    pub set: String,
    /// Questions asked.
    pub questions: usize,
    /// Share whose gold passage is among the top 5.
    pub recall_at_5: f64,
}

/// Measures the variant at `path` (whose metadata is `info`) on `texts`.
pub fn measure(
    path: &Path,
    info: &GgufInfo,
    texts: &Texts,
    settings: &Settings,
    progress: &mut dyn Progress,
) -> Result<Measured, CompareError> {
    let file_bytes =
        std::fs::metadata(path).map_err(|source| CompareError::Read { path: path.to_path_buf(), source })?.len();
    let mut measured = Measured {
        path: path.display().to_string(),
        precision: info.precision(),
        architecture: info.architecture.clone().unwrap_or_else(|| "unknown".into()),
        embedding: info.is_encoder(),
        file_bytes,
        n_params: info.n_params,
        bits_per_weight: info.bits_per_weight(file_bytes),
        params_by_type: info
            .params_by_type
            .iter()
            .map(|(&kind, &n)| (edgeway_models::gguf_info::tensor_type_name(kind).to_owned(), n))
            .collect(),
        load_s: 0.0,
        peak_rss_bytes: 0,
        prompt_tps: 0.0,
        gen_tps: None,
        prompt_j_per_token: 0.0,
        gen_j_per_token: None,
        energy_source: String::new(),
        perplexity: None,
        perplexity_tokens: 0,
        answers: Vec::new(),
        sentence_vectors: Vec::new(),
        recall: Vec::new(),
    };
    let meter = EnergyMeter::system(settings.watts_per_core);
    measured.energy_source = meter.kind().as_str().to_owned();
    if measured.embedding {
        embedding(path, texts, settings, &meter, &mut measured, progress)?;
    } else {
        generative(path, texts, settings, &meter, &mut measured, progress)?;
    }
    Ok(measured)
}

fn generative(
    path: &Path,
    texts: &Texts,
    settings: &Settings,
    meter: &EnergyMeter,
    measured: &mut Measured,
    progress: &mut dyn Progress,
) -> Result<(), CompareError> {
    progress.stage(measured, "loading");
    let started = Instant::now();
    let mut config = EngineConfig::new(path, "compare");
    config.threads = settings.threads;
    config.threads_batch = settings.threads;
    config.parallel = 1;
    config.ctx_size = 2048.max(settings.prompt_tokens + settings.gen_tokens + 64);
    config.watts_per_core = settings.watts_per_core;
    let engine = LlamaEngine::load(config)?;
    measured.load_s = started.elapsed().as_secs_f64();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(CompareError::Runtime)?;

    progress.stage(measured, "speed");
    // The first decode pays for page faults and kernel setup; llama-bench warms up too.
    let warmup = texts.prompt_of(&engine, 999, 32)?;
    runtime.block_on(complete(&engine, warmup, 4))?;
    let (mut prompt_tps, mut gen_tps, mut prompt_j, mut gen_j) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..settings.repetitions.max(1) as usize {
        let prompt = texts.prompt_of(&engine, round, settings.prompt_tokens)?;
        let mark = meter.mark();
        let timing = runtime.block_on(complete(&engine, prompt, 1))?;
        prompt_j.push(meter.joules_since(&mark) / f64::from(timing.prompt_n.max(1)));
        prompt_tps.push(f64::from(timing.prompt_n) / (timing.prompt_ms / 1000.0));

        let opener = texts.prompt_of(&engine, round + 100, 8)?;
        let mark = meter.mark();
        let timing = runtime.block_on(complete(&engine, opener, settings.gen_tokens))?;
        gen_j.push(meter.joules_since(&mark) / f64::from(timing.predicted_n.max(1)));
        gen_tps.push(f64::from(timing.predicted_n.saturating_sub(1)) / (timing.predicted_ms / 1000.0));
    }
    measured.prompt_tps = median(prompt_tps);
    measured.gen_tps = Some(median(gen_tps));
    measured.prompt_j_per_token = median(prompt_j);
    measured.gen_j_per_token = Some(median(gen_j));

    progress.grading(texts.eval_items.len());
    for item in &texts.eval_items {
        let answered = runtime.block_on(edgeway_eval::run::answer(
            &engine,
            "compare",
            item,
            &edgeway_eval::run::EvalRoute::Side(RouteTarget::Edge),
            // Free text, as the published quantization figures were measured.
            edgeway_eval::task::AnswerFormat::Free,
        ));
        match answered {
            Ok(answered) => {
                measured.answers.push(ItemAnswer {
                    set: item.dataset.clone(),
                    id: item.id.clone(),
                    extracted: answered.result.extracted,
                    score: answered.result.grade,
                });
                progress.graded(item, None);
            }
            Err(error) => progress.graded(item, Some(&error)),
        }
    }
    progress.graded_all();
    measured.peak_rss_bytes = peak_rss(std::process::id()).unwrap_or(0);
    drop(engine);

    progress.stage(measured, "perplexity");
    let result = edgeway_engine::perplexity::perplexity(
        path,
        &texts.perplexity_text,
        settings.ppl_window,
        settings.ppl_tokens,
        settings.threads,
    )?;
    measured.perplexity = Some(result.perplexity);
    measured.perplexity_tokens = result.scored_tokens;
    Ok(())
}

/// What the engine reported for one completion.
struct Timing {
    prompt_n: u32,
    prompt_ms: f64,
    predicted_n: u32,
    predicted_ms: f64,
}

async fn complete(engine: &LlamaEngine, prompt: String, max_tokens: u32) -> Result<Timing, CompareError> {
    let request = GenerateRequest {
        prompt: Prompt::Text(prompt),
        sampling: SamplingParams {
            temperature: 0.0,
            max_tokens: Some(max_tokens),
            ignore_eos: true,
            ..SamplingParams::default()
        },
        route: RouteHints::default(),
        tools: None,
        query_embedding: None,
    };
    let mut generation = engine.submit(request)?;
    loop {
        match generation.next_event().await {
            Some(Ok(GenerationEvent::Finished(done))) => {
                return Ok(Timing {
                    prompt_n: done.timings.prompt_n,
                    prompt_ms: done.timings.prompt_ms.max(1e-3),
                    predicted_n: done.timings.predicted_n,
                    predicted_ms: done.timings.predicted_ms.max(1e-3),
                })
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.into()),
            None => return Err(CompareError::HungUp),
        }
    }
}

fn embedding(
    path: &Path,
    texts: &Texts,
    settings: &Settings,
    meter: &EnergyMeter,
    measured: &mut Measured,
    progress: &mut dyn Progress,
) -> Result<(), CompareError> {
    progress.stage(measured, "loading");
    let started = Instant::now();
    let embedder = edgeway_engine::Embedder::load(path, "compare", settings.threads, 256)?;
    measured.load_s = started.elapsed().as_secs_f64();

    progress.stage(measured, "speed and cosine");
    embedder.embed(&texts.sentences[..texts.sentences.len().min(8)])?;
    let (mut tps, mut joules) = (Vec::new(), Vec::new());
    for _ in 0..settings.repetitions.max(1) {
        let mark = meter.mark();
        let started = Instant::now();
        let output = embedder.embed(&texts.sentences)?;
        let seconds = started.elapsed().as_secs_f64();
        joules.push(meter.joules_since(&mark) / f64::from(output.prompt_tokens.max(1)));
        tps.push(f64::from(output.prompt_tokens) / seconds);
        measured.sentence_vectors = output.vectors;
    }
    measured.prompt_tps = median(tps);
    measured.prompt_j_per_token = median(joules);

    progress.stage(measured, "retrieval");
    for set in &texts.retrieval {
        let passages = embedder.embed(&set.passages)?.vectors;
        let questions = embedder.embed(&set.questions)?.vectors;
        let hits = questions
            .iter()
            .zip(&set.gold)
            .filter(|(question, &gold)| top_k(question, &passages, 5).contains(&gold))
            .count();
        measured.recall.push(Recall {
            set: set.name.clone(),
            questions: questions.len(),
            recall_at_5: hits as f64 / questions.len().max(1) as f64,
        });
    }
    measured.peak_rss_bytes = peak_rss(std::process::id()).unwrap_or(0);
    Ok(())
}

/// Indices of the `k` passages most similar to `query` (vectors are normalized: dot product = cosine).
fn top_k(query: &[f32], passages: &[Vec<f32>], k: usize) -> Vec<usize> {
    let mut scored: Vec<(usize, f32)> =
        passages.iter().enumerate().map(|(i, p)| (i, p.iter().zip(query).map(|(a, b)| a * b).sum())).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.into_iter().take(k).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_similarity() {
        let passages = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.7, 0.7]];
        assert_eq!(top_k(&[0.0, 1.0], &passages, 2), vec![1, 2]);
        assert_eq!(top_k(&[1.0, 0.0], &passages, 1), vec![0]);
        assert_eq!(top_k(&[1.0, 0.0], &passages, 5).len(), 3, "at most every passage");
    }

    #[test]
    fn measurements_survive_the_trip_through_json() {
        // The worker process sends its figures to the parent as JSON.
        let mut measured = crate::report::tests::variant("Q4_0", 500, &[("1", Some("A"), 1.0)]);
        measured.recall = vec![Recall { set: "squad".into(), questions: 3, recall_at_5: 2.0 / 3.0 }];
        let back: Measured = serde_json::from_slice(&serde_json::to_vec(&measured).unwrap()).unwrap();
        assert_eq!(back.answers[0].extracted.as_deref(), Some("A"));
        assert_eq!(back.recall[0].recall_at_5, 2.0 / 3.0);
        assert_eq!((back.file_bytes, back.gen_tps), (500, Some(10.0)));
    }
}
