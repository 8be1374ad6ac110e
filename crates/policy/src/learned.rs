//! The learned scorer: logistic regression over hashed words and word pairs
//! of the query plus the transparent scorer's features, trained from graded
//! answers in the query log to predict "the cloud gets this right and the
//! edge does not".
//!
//! Scoring a request is a few hundred hash lookups: microseconds, no model
//! call, the same budget as the transparent scorer. The weights live in a
//! JSON file that `edgeway calibrate` writes and `edgeway serve` loads.

use std::path::Path;

use edgeway_core::hash::fnv1a;
use edgeway_core::Prompt;
use serde::{Deserialize, Serialize};

use crate::scorer::{scored_text, ComplexityScorer, Score, TransparentScorer};

/// The file format's version; bumped when old files can no longer be read.
pub const FORMAT_VERSION: u32 = 1;

/// What the scorer was trained on, for `edgeway calibrate`'s report and for humans reading the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// The evaluation run the labels came from.
    pub run: String,
    /// Items trained on.
    pub items: usize,
    /// Share of them where the cloud was needed.
    pub positive_share: f64,
    /// The L2 penalty chosen by cross-validation.
    pub l2: f64,
}

/// A trained logistic regression, as stored on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedModel {
    /// [`FORMAT_VERSION`] when written.
    pub version: u32,
    /// Buckets for hashed words and word pairs.
    pub hash_buckets: u32,
    /// One weight per bucket, then one per transparent feature.
    pub weights: Vec<f32>,
    /// The intercept.
    pub bias: f32,
    /// Provenance.
    pub training: TrainingInfo,
}

/// Why a scorer file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LearnedError {
    /// The file could not be read.
    #[error("cannot read the learned scorer {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not a scorer this build understands.
    #[error("the learned scorer {path} is unusable: {reason}; run `edgeway calibrate` again to rewrite it")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An embedding scorer trained on another embedding model's vectors than the server's.
    #[error(
        "the embedding scorer {path} was trained on {trained} vectors, but this server embeds with {serving}; \
         run `edgeway calibrate --scorer embedding` again with this embedding model, or serve with the one it \
         was trained on ([embeddings] model)"
    )]
    EmbeddingMismatch {
        /// The file.
        path: String,
        /// The model and dimensions it was trained on.
        trained: String,
        /// The model and dimensions the server embeds with.
        serving: String,
    },
}

/// The transparent features appended after the hashed ones.
fn transparent_len() -> usize {
    TransparentScorer.score(&Prompt::Text(String::new())).features.len()
}

/// A sparse feature vector: (index, value) pairs.
pub type Features = Vec<(usize, f32)>;

/// The features of a query text (already lowercase) for a model with `buckets` hash buckets.
pub fn featurize(text: &str, buckets: u32) -> Features {
    let words: Vec<&str> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty() && w.len() <= 30).collect();
    let mut features: Features = Vec::with_capacity(words.len() * 2 + 8);
    let buckets = buckets.max(1) as usize;
    for word in &words {
        features.push(((fnv1a(word.as_bytes()) % buckets as u64) as usize, 1.0));
    }
    for pair in words.windows(2) {
        let hash = fnv1a(pair[0].as_bytes()) ^ fnv1a(pair[1].as_bytes()).rotate_left(17);
        features.push(((hash % buckets as u64) as usize, 1.0));
    }
    // Scale so long and short queries weigh alike (L2 norm 1 over the hashed part).
    let norm = (features.len() as f32).sqrt().max(1.0);
    for (_, value) in &mut features {
        *value /= norm;
    }
    let transparent = TransparentScorer.score(&Prompt::Text(text.to_owned()));
    features.extend(transparent.features.iter().enumerate().map(|(i, (_, value))| (buckets + i, *value)));
    features
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl LearnedModel {
    /// The model's probability that `features` need the cloud.
    pub fn predict(&self, features: &Features) -> f32 {
        let z: f32 =
            self.bias + features.iter().map(|&(i, v)| self.weights.get(i).copied().unwrap_or(0.0) * v).sum::<f32>();
        sigmoid(z)
    }

    /// Trains on `(features, label)` pairs with L2 penalty `l2` (full-batch AdaGrad, fixed epochs: deterministic).
    pub fn train(examples: &[(Features, bool)], buckets: u32, l2: f64, training: TrainingInfo) -> Self {
        let dims = buckets as usize + transparent_len();
        let positives = examples.iter().filter(|(_, y)| *y).count() as f64;
        let (weights, bias) = crate::logistic::fit(examples, dims, l2, positives);
        Self {
            version: FORMAT_VERSION,
            hash_buckets: buckets,
            weights: weights.into_iter().map(|w| w as f32).collect(),
            bias: bias as f32,
            training,
        }
    }

    /// Reads and checks a scorer file.
    pub fn load(path: &Path) -> Result<Self, LearnedError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LearnedError::Io { path: shown.clone(), source })?;
        Self::from_json(&text, &shown)
    }

    /// Reads and checks a scorer from its JSON text; `shown` names where it came from in errors.
    pub fn from_json(text: &str, shown: &str) -> Result<Self, LearnedError> {
        let shown = shown.to_owned();
        let model: Self = serde_json::from_str(text)
            .map_err(|error| LearnedError::Invalid { path: shown.clone(), reason: error.to_string() })?;
        let invalid = |reason: String| Err(LearnedError::Invalid { path: shown.clone(), reason });
        if model.version != FORMAT_VERSION {
            return invalid(format!("format version {} (this edgeway reads {FORMAT_VERSION})", model.version));
        }
        let expected = model.hash_buckets as usize + transparent_len();
        if model.weights.len() != expected {
            return invalid(format!("{} weights for {expected} features", model.weights.len()));
        }
        if !model.bias.is_finite() || model.weights.iter().any(|w| !w.is_finite()) {
            return invalid("a weight is not a finite number".into());
        }
        Ok(model)
    }

    /// Writes the file (atomically: a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::json_file::save(path, self)
    }
}

/// A [`ComplexityScorer`] backed by a trained [`LearnedModel`].
#[derive(Debug, Clone)]
pub struct LearnedScorer {
    model: LearnedModel,
}

impl LearnedScorer {
    /// Wraps a trained model.
    pub fn new(model: LearnedModel) -> Self {
        Self { model }
    }

    /// Loads a scorer file.
    pub fn load(path: &Path) -> Result<Self, LearnedError> {
        LearnedModel::load(path).map(Self::new)
    }

    /// The model behind it.
    pub fn model(&self) -> &LearnedModel {
        &self.model
    }
}

impl ComplexityScorer for LearnedScorer {
    fn score(&self, prompt: &Prompt) -> Score {
        let text = scored_text(prompt);
        let features = featurize(&text, self.model.hash_buckets);
        let value = self.model.predict(&features);
        Score { value, features: vec![("p_cloud_needed", value)], fallback: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> Vec<(Features, bool)> {
        // The cloud is needed exactly for questions about "quantum".
        let texts = [
            ("what is quantum entanglement", true),
            ("explain quantum tunnelling", true),
            ("quantum field theory basics", true),
            ("what colour is the sky", false),
            ("how many legs does a cat have", false),
            ("name a fruit", false),
        ];
        texts.iter().map(|(t, y)| (featurize(t, 256), *y)).collect()
    }

    #[test]
    fn learns_a_separable_word() {
        let model = LearnedModel::train(&examples(), 256, 1e-4, TrainingInfo::default());
        let scorer = LearnedScorer::new(model);
        let hard = scorer.score(&Prompt::Text("Tell me about quantum computers".into())).value;
        let easy = scorer.score(&Prompt::Text("What colour is grass".into())).value;
        // Only the order matters: calibration picks the threshold.
        assert!(hard > easy + 0.2, "hard {hard} easy {easy}");
        let model = scorer.model();
        for (features, label) in examples() {
            assert_eq!(model.predict(&features) > 0.5, label);
        }
    }

    #[test]
    fn a_file_round_trips_and_a_damaged_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("edgeway-learned-{}", std::process::id()));
        let path = dir.join("scorer.json");
        let model = LearnedModel::train(&examples(), 256, 1e-3, TrainingInfo { run: "r".into(), ..Default::default() });
        model.save(&path).unwrap();
        let loaded = LearnedModel::load(&path).unwrap();
        assert_eq!(loaded, model);
        let mut short = model.clone();
        short.weights.pop();
        short.save(&path).unwrap();
        let error = LearnedModel::load(&path).unwrap_err().to_string();
        assert!(error.contains("weights for") && error.contains("edgeway calibrate"), "{error}");
        std::fs::write(&path, "{not json").unwrap();
        assert!(LearnedModel::load(&path).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
