//! The scorers calibration trains and compares: which one `--scorer` names, where it is written,
//! and each one's scores of the paired questions (the questions embedded once for the embedding scorer).

use super::*;

/// The scorer `--scorer` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScorerKind {
    /// The hashed-word logistic regression.
    Learned,
    /// The scorer over the questions' sentence embeddings.
    Embedding,
    /// The shipped feature-weighted scorer (nothing to train).
    Transparent,
    /// The learned scorer edgeway ships (nothing to train, nothing to distribute: every box
    /// has it), so only its thresholds are calibrated.
    Shipped,
}

impl ScorerKind {
    pub(super) fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "learned" => Ok(Self::Learned),
            "embedding" => Ok(Self::Embedding),
            "transparent" => Ok(Self::Transparent),
            "shipped" => Ok(Self::Shipped),
            other => anyhow::bail!("--scorer is `learned`, `embedding`, `transparent` or `shipped`, not `{other}`"),
        }
    }

    /// The config's name for it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Learned => "learned",
            Self::Embedding => "embedding",
            Self::Transparent => "transparent",
            Self::Shipped => "shipped",
        }
    }

    /// What the config records: the scorer and its file (none for the shipped one), or nothing
    /// for the transparent one.
    pub(super) fn written(self, path: &Path) -> Option<WrittenScorer<'_>> {
        match self {
            Self::Transparent => None,
            Self::Shipped => Some(WrittenScorer { kind: self.name(), path: None }),
            Self::Learned | Self::Embedding => Some(WrittenScorer { kind: self.name(), path: Some(path) }),
        }
    }
}

/// A trained scorer as the config names it: `scorer` and `scorer_path`.
#[derive(Debug, Clone, Copy)]
pub(super) struct WrittenScorer<'a> {
    pub(super) kind: &'static str,
    pub(super) path: Option<&'a Path>,
}

/// Where the trained scorer goes: the flag, else the config's `scorer_path` when the config names
/// the same scorer (a file of one kind is never overwritten with the other), else the data directory's.
pub(super) fn scorer_path(args: &CalibrateArgs, kind: ScorerKind, file: &FileConfig, data_dir: &DataDir) -> PathBuf {
    if let Some(path) = &args.scorer_path {
        return path.clone();
    }
    // A scorer_path without a scorer has always meant the learned scorer.
    let configured = file.routing.scorer.as_deref().unwrap_or("learned");
    match (&file.routing.scorer_path, kind) {
        (Some(path), kind) if configured == kind.name() => path.clone(),
        (_, ScorerKind::Embedding) => data_dir.embedding_scorer(),
        _ => data_dir.learned_scorer(),
    }
}

/// The embedding model `serve` embeds with, to embed the questions: required for
/// `--scorer embedding` (converted on first use if need be), else used for the comparison when
/// it is already in the cache. `None` when it is off or missing (the comparison says so).
pub(super) fn question_embedder(
    kind: ScorerKind,
    file: &FileConfig,
    data_dir: &DataDir,
) -> anyhow::Result<Option<Arc<edgeway_engine::Embedder>>> {
    let needed = kind == ScorerKind::Embedding;
    if !file.embeddings.enabled.unwrap_or(true) {
        anyhow::ensure!(
            !needed,
            "the embedding scorer reads the embedding model, and the config turns embeddings off \
             ([embeddings] enabled = false), so `serve` could not use it"
        );
        println!("note: embeddings are off in the config; no embedding scorer in the comparison");
        return Ok(None);
    }
    let spec = file.embeddings.model.clone().unwrap_or_else(|| edgeway_models::DEFAULT_EMBEDDING_MODEL.to_owned());
    match crate::app::engine::load_embedder(&spec, &data_dir.cache(), needed, None) {
        Ok(embedder) => Ok(Some(embedder)),
        Err(error) if !needed => {
            println!("note: no embedding scorer in the comparison ({error:#})");
            Ok(None)
        }
        Err(error) => Err(error.context("the embedding scorer needs the embedding model `serve` embeds with")),
    }
}

/// Each item's question embedded once, by the model `serve` embeds with.
pub(super) struct EmbeddedQuestions {
    pub(super) spec: EmbeddingSpec,
    pub(super) vectors: HashMap<(String, String), Vec<f32>>,
}

impl EmbeddedQuestions {
    /// Embeds the questions of `pairs` (each item once).
    pub(super) fn embed<'a>(
        embedder: &edgeway_engine::Embedder,
        pairs: impl Iterator<Item = &'a Pair>,
    ) -> anyhow::Result<Self> {
        let mut items: Vec<((String, String), String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for pair in pairs {
            if seen.insert((pair.dataset.clone(), pair.item_id.clone())) {
                items.push(((pair.dataset.clone(), pair.item_id.clone()), pair.question.clone()));
            }
        }
        let info = embedder.embedding_info();
        let started = Instant::now();
        let mut vectors = HashMap::with_capacity(items.len());
        for batch in items.chunks(32) {
            let texts: Vec<String> = batch.iter().map(|(_, question)| question.clone()).collect();
            let output = embedder.embed(&texts).context("cannot embed the questions")?;
            for ((key, _), vector) in batch.iter().zip(output.vectors) {
                vectors.insert(key.clone(), vector);
            }
        }
        println!(
            "embedded {} questions with {} ({} dims) in {:.1} s",
            items.len(),
            info.id,
            info.dims,
            started.elapsed().as_secs_f64()
        );
        Ok(Self { spec: EmbeddingSpec { model: info.id.clone(), dims: info.dims }, vectors })
    }

    /// The vectors of `pairs`' questions, in order.
    pub(super) fn of(&self, pairs: &[Pair]) -> anyhow::Result<Vec<Vec<f32>>> {
        pairs
            .iter()
            .map(|p| {
                self.vectors
                    .get(&(p.dataset.clone(), p.item_id.clone()))
                    .cloned()
                    .with_context(|| format!("no embedding of {}/{}", p.dataset, p.item_id))
            })
            .collect()
    }
}

/// An embedding model's score of each pair's question, given its embedding.
pub(super) fn embedding_scores(trained: &TrainedEmbedding, pairs: &[Pair], vectors: &[Vec<f32>]) -> Vec<f32> {
    pairs
        .iter()
        .zip(vectors)
        .map(|(p, v)| trained.model.predict(&edgeway_calibrate::train_embedding::features(p, v)))
        .collect()
}

/// The embedding scorer's part of the JSON report.
pub(super) fn embedding_json(trained: &TrainedEmbedding) -> serde_json::Value {
    json!({
        "cv_apgr": trained.cv_apgr,
        "classifier": trained.model.classifier.describe(),
        "embedding_model": trained.model.embedding.model,
        "dims": trained.model.embedding.dims,
    })
}

/// The transparent scorer's score of each pair's question, as the router computes it.
pub(super) fn transparent_scores(pairs: &[Pair]) -> Vec<f32> {
    pairs
        .iter()
        .map(|p| TransparentScorer.score(&Prompt::Chat(vec![ChatMessage::new("user", p.question.clone())])).value)
        .collect()
}

/// A learned model's score of each pair's question.
pub(super) fn learned_scores(model: &LearnedModel, pairs: &[Pair]) -> Vec<f32> {
    pairs.iter().map(|p| model.predict(&featurize(&p.question.to_lowercase(), model.hash_buckets))).collect()
}

/// What `serve` routes with before any calibration: the shipped scorer and its settings.
pub(super) fn shipped_defaults() -> anyhow::Result<(RoutingPolicy, LearnedScorer)> {
    let routing = crate::shipped::routing()?;
    let policy = RoutingPolicy {
        default_threshold: routing.threshold.unwrap_or(edgeway_policy::Thresholds::defaults().of("general")),
        domain_thresholds: routing.thresholds.into_iter().collect(),
        escalate_below: routing.escalate_below_logprob.map(f64::from),
    };
    Ok((policy, crate::shipped::scorer()?))
}
