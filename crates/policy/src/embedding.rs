//! The embedding scorer: a router that sees what a query means, not only its words.
//!
//! Its features are the query's sentence embedding (all-MiniLM-L6-v2's 384
//! numbers, computed once per request by whoever holds the embedding model)
//! and the transparent scorer's features; it is trained, like the hashed
//! scorer ([`crate::learned`]), from graded answers to predict "the cloud gets
//! this right and the edge does not".
//!
//! Two classifiers, behind [`Classifier`], because RouteLLM's and RouterBench's
//! strongest simple routers are of these two kinds and neither wins everywhere:
//! - **logistic regression** over the standardized features: one dot product
//!   of ~400 numbers per request (well under a microsecond), a file of a few
//!   kilobytes, and a smooth score that generalizes from few examples;
//! - **k nearest neighbours** among the logged training queries by cosine
//!   similarity of their embeddings: it follows clusters of hard queries a
//!   line cannot separate, at the price of one dot product per logged query
//!   (tens of microseconds for a thousand) and a file that holds their vectors.
//!   The transparent features are left out of its distance: on unit vectors
//!   cosine is the natural measure, and mixing in other scales would need a
//!   weight nobody calibrated.
//!
//! `edgeway calibrate` fits both and keeps the one with the better
//! cross-validated APGR. The file records the embedding model and its
//! dimensions, so a scorer trained on one model's vectors is refused, with a
//! clear message, by a server that embeds with another.

use std::path::Path;

use edgeway_core::{Prompt, QueryEmbedding, ScoreFallback};
use serde::{Deserialize, Serialize};

use crate::learned::LearnedError;
use crate::scorer::{scored_text, ComplexityScorer, EmbeddingSpec, Score, TransparentScorer};

/// The file format's version; bumped when old files can no longer be read.
pub const EMBEDDING_FORMAT_VERSION: u32 = 1;

/// What the scorer was trained on and how it was chosen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingTraining {
    /// The evaluation run the labels came from.
    pub run: String,
    /// Items trained on.
    pub items: usize,
    /// Share of them where the cloud was needed.
    pub positive_share: f64,
    /// Cross-validated APGR of the chosen classifier.
    pub cv_apgr: f64,
}

/// Logistic regression over the standardized features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    /// Each feature's mean over the training items (embedding first, then transparent features).
    pub mean: Vec<f32>,
    /// Each feature's standard deviation over the training items (1 where it did not vary).
    pub scale: Vec<f32>,
    /// One weight per standardized feature.
    pub weights: Vec<f32>,
    /// The intercept.
    pub bias: f32,
    /// The L2 penalty chosen by cross-validation.
    pub l2: f64,
}

/// k nearest neighbours by cosine similarity of the embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbours {
    /// Neighbours consulted, chosen by cross-validation.
    pub k: usize,
    /// The training queries' unit vectors, one after another (`labels.len() × dims` numbers).
    pub vectors: Vec<f32>,
    /// Whether each training query needed the cloud.
    pub labels: Vec<bool>,
    /// The share of training queries that needed the cloud: the score with no similar neighbour.
    pub base_rate: f32,
}

/// The classifier over the features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Classifier {
    /// Logistic regression.
    Logistic(Logistic),
    /// k nearest neighbours.
    Neighbours(Neighbours),
}

/// A trained embedding scorer, as stored on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingModel {
    /// [`EMBEDDING_FORMAT_VERSION`] when written.
    pub version: u32,
    /// The embedding model the vectors came from; a server must embed with the same one.
    pub embedding: EmbeddingSpec,
    /// The classifier.
    pub classifier: Classifier,
    /// Provenance.
    pub training: EmbeddingTraining,
}

/// A query's features: its embedding and the transparent scorer's features of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingFeatures {
    /// The unit vector.
    pub vector: Vec<f32>,
    /// The transparent features, each in `[0, 1]`.
    pub transparent: Vec<f32>,
}

impl EmbeddingFeatures {
    /// The features of a query: its embedding and its text (already lowercase, as the scorer sees it).
    pub fn new(vector: &[f32], text: &str) -> Self {
        let transparent = TransparentScorer.score(&Prompt::Text(text.to_owned()));
        Self { vector: vector.to_vec(), transparent: transparent.features.iter().map(|(_, v)| *v).collect() }
    }

    /// Embedding then transparent features, as the logistic regression reads them.
    fn dense(&self) -> impl Iterator<Item = f32> + '_ {
        self.vector.iter().chain(&self.transparent).copied()
    }
}

/// How many transparent features there are.
fn transparent_len() -> usize {
    TransparentScorer.score(&Prompt::Text(String::new())).features.len()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The share of positive labels.
fn positive_share(examples: &[(EmbeddingFeatures, bool)]) -> f64 {
    examples.iter().filter(|(_, y)| *y).count() as f64 / examples.len().max(1) as f64
}

impl Classifier {
    /// Fits a logistic regression with L2 penalty `l2` (full-batch AdaGrad, fixed epochs: deterministic).
    pub fn fit_logistic(examples: &[(EmbeddingFeatures, bool)], l2: f64) -> Self {
        let dims = examples.first().map_or(0, |(f, _)| f.vector.len() + f.transparent.len());
        let n = examples.len().max(1) as f64;
        let mut mean = vec![0f64; dims];
        for (features, _) in examples {
            for (m, x) in mean.iter_mut().zip(features.dense()) {
                *m += f64::from(x) / n;
            }
        }
        let mut scale = vec![0f64; dims];
        for (features, _) in examples {
            for ((s, m), x) in scale.iter_mut().zip(&mean).zip(features.dense()) {
                *s += (f64::from(x) - m).powi(2) / n;
            }
        }
        for s in &mut scale {
            *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
        }
        let rows: Vec<(Vec<f64>, bool)> = examples
            .iter()
            .map(|(features, label)| {
                let row = features.dense().zip(&mean).zip(&scale).map(|((x, m), s)| (f64::from(x) - m) / s).collect();
                (row, *label)
            })
            .collect();
        let (weights, bias) = crate::logistic::fit(&rows, dims, l2, positive_share(examples) * n);
        let narrow = |values: Vec<f64>| values.into_iter().map(|v| v as f32).collect();
        Self::Logistic(Logistic {
            mean: narrow(mean),
            scale: narrow(scale),
            weights: narrow(weights),
            bias: bias as f32,
            l2,
        })
    }

    /// Keeps the training queries for `k` nearest neighbours.
    pub fn fit_neighbours(examples: &[(EmbeddingFeatures, bool)], k: usize) -> Self {
        Self::Neighbours(Neighbours {
            k: k.max(1),
            vectors: examples.iter().flat_map(|(f, _)| f.vector.iter().copied()).collect(),
            labels: examples.iter().map(|(_, y)| *y).collect(),
            base_rate: positive_share(examples) as f32,
        })
    }

    /// The probability that a query with these features needs the cloud.
    pub fn predict(&self, features: &EmbeddingFeatures) -> f32 {
        match self {
            Self::Logistic(model) => {
                let z: f32 = model.bias
                    + features
                        .dense()
                        .zip(&model.mean)
                        .zip(&model.scale)
                        .zip(&model.weights)
                        .map(|(((x, m), s), w)| (x - m) / s * w)
                        .sum::<f32>();
                sigmoid(f64::from(z)) as f32
            }
            Self::Neighbours(model) => model.predict(&features.vector),
        }
    }

    /// A short description for reports: `logistic (l2 0.01)`, `neighbours (k 10)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Logistic(model) => format!("logistic regression (l2 {})", model.l2),
            Self::Neighbours(model) => format!("{} nearest neighbours", model.k),
        }
    }
}

/// Weight of the base rate against the neighbours' similarities, so that a query unlike every
/// training query scores near the base rate and scores rarely tie.
const NEIGHBOUR_PRIOR: f32 = 0.5;

impl Neighbours {
    fn predict(&self, query: &[f32]) -> f32 {
        let dims = query.len().max(1);
        let mut similar: Vec<(f32, bool)> = self
            .vectors
            .chunks_exact(dims)
            .zip(&self.labels)
            .map(|(vector, label)| (dot(vector, query), *label))
            .collect();
        let k = self.k.min(similar.len());
        if k == 0 {
            return self.base_rate;
        }
        if k < similar.len() {
            similar.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        }
        // Each neighbour counts by its similarity (a dissimilar one not at all).
        let (mut weighted, mut total) = (NEIGHBOUR_PRIOR * self.base_rate, NEIGHBOUR_PRIOR);
        for &(similarity, label) in &similar[..k] {
            let weight = similarity.max(0.0);
            weighted += weight * f32::from(u8::from(label));
            total += weight;
        }
        weighted / total
    }
}

/// The dot product of two vectors of equal length, summed in eight independent lanes: one
/// running sum is a chain of dependent additions the compiler may not reorder, which made
/// scanning a thousand stored queries several times slower.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    let mut lanes = [0f32; 8];
    for (x, y) in a_chunks.zip(b_chunks) {
        for (lane, (x, y)) in lanes.iter_mut().zip(x.iter().zip(y)) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

impl EmbeddingModel {
    /// A model over `embedding` vectors.
    pub fn new(embedding: EmbeddingSpec, classifier: Classifier, training: EmbeddingTraining) -> Self {
        Self { version: EMBEDDING_FORMAT_VERSION, embedding, classifier, training }
    }

    /// The model's probability that these features need the cloud.
    pub fn predict(&self, features: &EmbeddingFeatures) -> f32 {
        self.classifier.predict(features)
    }

    /// Reads and checks a scorer file.
    pub fn load(path: &Path) -> Result<Self, LearnedError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LearnedError::Io { path: shown.clone(), source })?;
        Self::from_json(&text, &shown)
    }

    /// Reads and checks a scorer from its JSON text; `shown` names where it came from in errors.
    pub fn from_json(text: &str, shown: &str) -> Result<Self, LearnedError> {
        let invalid = |reason: String| LearnedError::Invalid { path: shown.to_owned(), reason };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|error| invalid(error.to_string()))?;
        if value.get("hash_buckets").is_some() {
            return Err(invalid(
                "it is the hashed-word scorer's file (`scorer = \"learned\"`), not an embedding scorer".into(),
            ));
        }
        let version = value.get("version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(EMBEDDING_FORMAT_VERSION)) {
            let found = version.map_or("no format version".to_owned(), |v| format!("format version {v}"));
            return Err(invalid(format!("{found} (this edgeway reads {EMBEDDING_FORMAT_VERSION})")));
        }
        let model: Self = serde_json::from_value(value).map_err(|error| invalid(error.to_string()))?;
        model.check().map_err(invalid)?;
        Ok(model)
    }

    /// Whether the numbers fit together: lengths, finite values.
    fn check(&self) -> Result<(), String> {
        let dims = self.embedding.dims;
        if dims == 0 {
            return Err("the embedding has 0 dimensions".into());
        }
        match &self.classifier {
            Classifier::Logistic(model) => {
                let expected = dims + transparent_len();
                for (name, values) in [("means", &model.mean), ("scales", &model.scale), ("weights", &model.weights)] {
                    if values.len() != expected {
                        return Err(format!(
                            "{} {name} for {expected} features ({dims} embedding dimensions and {} transparent ones)",
                            values.len(),
                            transparent_len()
                        ));
                    }
                }
                let numbers = model.mean.iter().chain(&model.scale).chain(&model.weights).chain([&model.bias]);
                if numbers.clone().any(|v| !v.is_finite()) || model.scale.iter().any(|s| *s <= 0.0) {
                    return Err("a weight is not a finite number (or a scale is not positive)".into());
                }
            }
            Classifier::Neighbours(model) => {
                if model.k == 0 || model.labels.is_empty() {
                    return Err("the neighbours scorer needs k ≥ 1 and at least one training query".into());
                }
                if model.vectors.len() != model.labels.len() * dims {
                    return Err(format!(
                        "{} numbers for {} vectors of {dims} dimensions",
                        model.vectors.len(),
                        model.labels.len()
                    ));
                }
                if model.vectors.iter().chain([&model.base_rate]).any(|v| !v.is_finite()) {
                    return Err("a vector holds a number that is not finite".into());
                }
            }
        }
        Ok(())
    }

    /// Writes the file (atomically: a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::json_file::save(path, self)
    }
}

/// Refuses to pair a scorer trained on `trained` vectors with a server that embeds with `serving`:
/// the numbers would mean nothing to it.
pub fn check_embedding(path: &Path, trained: &EmbeddingSpec, serving: &EmbeddingSpec) -> Result<(), LearnedError> {
    if trained == serving {
        return Ok(());
    }
    Err(LearnedError::EmbeddingMismatch {
        path: path.display().to_string(),
        trained: format!("{} ({} dims)", trained.model, trained.dims),
        serving: format!("{} ({} dims)", serving.model, serving.dims),
    })
}

/// A [`ComplexityScorer`] backed by a trained [`EmbeddingModel`].
#[derive(Debug, Clone)]
pub struct EmbeddingScorer {
    model: EmbeddingModel,
}

impl EmbeddingScorer {
    /// Wraps a trained model.
    pub fn new(model: EmbeddingModel) -> Self {
        Self { model }
    }

    /// Loads a scorer file.
    pub fn load(path: &Path) -> Result<Self, LearnedError> {
        EmbeddingModel::load(path).map(Self::new)
    }

    /// The model behind it.
    pub fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    /// The transparent score, marked as a fallback.
    fn fallback(prompt: &Prompt, why: ScoreFallback) -> Score {
        Score { fallback: Some(why), ..TransparentScorer.score(prompt) }
    }
}

impl ComplexityScorer for EmbeddingScorer {
    /// Without the query's embedding: the transparent score, marked as a fallback.
    fn score(&self, prompt: &Prompt) -> Score {
        Self::fallback(prompt, ScoreFallback::NoEmbedding)
    }

    fn embedding(&self) -> Option<&EmbeddingSpec> {
        Some(&self.model.embedding)
    }

    fn score_with(&self, prompt: &Prompt, embedding: Option<&QueryEmbedding>) -> Score {
        match embedding {
            None => Self::fallback(prompt, ScoreFallback::NoEmbedding),
            Some(embedding) if !self.model.embedding.accepts(embedding) => {
                Self::fallback(prompt, ScoreFallback::EmbeddingMismatch)
            }
            Some(embedding) => {
                let features = EmbeddingFeatures::new(&embedding.vector, &scored_text(prompt));
                let value = self.model.predict(&features);
                Score { value, features: vec![("p_cloud_needed", value)], fallback: None }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeway_core::ChatMessage;

    const DIMS: usize = 8;

    /// A unit vector near axis `axis`, nudged by `i` so no two are equal.
    fn vector(axis: usize, i: usize) -> Vec<f32> {
        let mut v = [0.05f32; DIMS];
        v[axis] = 1.0;
        v[(axis + 1 + i % (DIMS - 1)) % DIMS] += 0.1 * (i % 3) as f32;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    /// The cloud is needed exactly for queries whose meaning lies near axes 0 and 1; the words
    /// are the same for every query, so only the embedding can tell them apart.
    fn examples() -> Vec<(EmbeddingFeatures, bool)> {
        (0..40)
            .map(|i| {
                let axis = i % 4;
                (EmbeddingFeatures::new(&vector(axis, i), "tell me about this"), axis < 2)
            })
            .collect()
    }

    fn spec() -> EmbeddingSpec {
        EmbeddingSpec { model: "toy-embedder".into(), dims: DIMS }
    }

    fn prompt() -> Prompt {
        Prompt::Chat(vec![ChatMessage::new("user", "Tell me about this")])
    }

    fn embedded(axis: usize, i: usize) -> QueryEmbedding {
        QueryEmbedding::new("toy-embedder", vector(axis, i))
    }

    #[test]
    fn both_classifiers_learn_a_problem_only_the_embedding_separates() {
        for classifier in [Classifier::fit_logistic(&examples(), 1e-3), Classifier::fit_neighbours(&examples(), 5)] {
            let scorer = EmbeddingScorer::new(EmbeddingModel::new(spec(), classifier, EmbeddingTraining::default()));
            for axis in 0..4 {
                let score = scorer.score_with(&prompt(), Some(&embedded(axis, 101)));
                assert_eq!(score.fallback, None);
                assert_eq!(
                    score.value > 0.5,
                    axis < 2,
                    "{}: axis {axis} scored {}",
                    scorer.model.classifier.describe(),
                    score.value
                );
            }
        }
    }

    #[test]
    fn without_a_usable_embedding_it_falls_back_to_the_transparent_score() {
        let model =
            EmbeddingModel::new(spec(), Classifier::fit_logistic(&examples(), 1e-3), EmbeddingTraining::default());
        let scorer = EmbeddingScorer::new(model);
        assert_eq!(scorer.embedding(), Some(&spec()));
        let transparent = TransparentScorer.score(&prompt()).value;
        let none = scorer.score_with(&prompt(), None);
        assert_eq!((none.value, none.fallback), (transparent, Some(ScoreFallback::NoEmbedding)));
        assert_eq!(scorer.score(&prompt()).fallback, Some(ScoreFallback::NoEmbedding));
        let other_model = QueryEmbedding::new("another-embedder", vector(0, 1));
        let short = QueryEmbedding::new("toy-embedder", vec![1.0; DIMS - 1]);
        for wrong in [other_model, short] {
            let score = scorer.score_with(&prompt(), Some(&wrong));
            assert_eq!((score.value, score.fallback), (transparent, Some(ScoreFallback::EmbeddingMismatch)));
        }
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("edgeway-embedding-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn files_round_trip_and_damaged_or_foreign_ones_are_refused() {
        let dir = scratch("files");
        let path = dir.join("embedding-scorer.json");
        let training = EmbeddingTraining { run: "r".into(), items: 40, positive_share: 0.5, cv_apgr: 0.9 };
        for classifier in [Classifier::fit_logistic(&examples(), 1e-2), Classifier::fit_neighbours(&examples(), 3)] {
            let model = EmbeddingModel::new(spec(), classifier, training.clone());
            model.save(&path).unwrap();
            assert_eq!(EmbeddingModel::load(&path).unwrap(), model);
        }
        let model = EmbeddingModel::load(&path).unwrap();
        let refused = |model: &EmbeddingModel| {
            model.save(&path).unwrap();
            EmbeddingModel::load(&path).unwrap_err().to_string()
        };
        // Vectors of other dimensions than the file says.
        let wrong_dims = EmbeddingModel { embedding: EmbeddingSpec { dims: DIMS + 1, ..spec() }, ..model.clone() };
        let error = refused(&wrong_dims);
        assert!(error.contains("vectors of 9 dimensions") && error.contains("edgeway calibrate"), "{error}");
        let logistic = EmbeddingModel::new(
            EmbeddingSpec { dims: DIMS + 1, ..spec() },
            Classifier::fit_logistic(&examples(), 1e-2),
            training.clone(),
        );
        assert!(refused(&logistic).contains("features (9 embedding dimensions"), "{}", refused(&logistic));
        let future = EmbeddingModel { version: EMBEDDING_FORMAT_VERSION + 1, ..model.clone() };
        assert!(refused(&future).contains("format version 2 (this edgeway reads 1)"), "{}", refused(&future));
        // The hashed scorer's file is named for what it is.
        let hashed = crate::learned::LearnedModel::train(&[], 16, 1e-3, Default::default());
        hashed.save(&path).unwrap();
        let error = EmbeddingModel::load(&path).unwrap_err().to_string();
        assert!(error.contains("hashed-word scorer's file"), "{error}");
        std::fs::write(&path, "{not json").unwrap();
        assert!(EmbeddingModel::load(&path).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_lane_wise_dot_product_is_the_dot_product() {
        for len in [0, 3, 8, 13, 384] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-4, "{len}");
        }
    }

    #[test]
    fn a_server_embedding_with_another_model_is_refused() {
        let path = Path::new("/data/embedding-scorer.json");
        assert!(check_embedding(path, &spec(), &spec()).is_ok());
        for serving in [
            EmbeddingSpec { model: "bge-small".into(), dims: DIMS },
            EmbeddingSpec { model: "toy-embedder".into(), dims: 768 },
        ] {
            let error = check_embedding(path, &spec(), &serving).unwrap_err().to_string();
            assert!(
                error.contains("toy-embedder (8 dims)")
                    && error.contains(&format!("{} ({} dims)", serving.model, serving.dims)),
                "{error}"
            );
            assert!(error.contains("edgeway calibrate --scorer embedding"), "{error}");
        }
    }
}
