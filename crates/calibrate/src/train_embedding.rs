//! Fitting the embedding scorer on the calibration split.
//!
//! The same labels, split and folds as the hashed-word scorer ([`crate::train`]), so the two
//! compare on equal terms: each candidate (logistic regression at each L2 penalty, k nearest
//! neighbours at each k) is cross-validated on APGR, the best one is refitted on every
//! calibration item, and its out-of-fold scores are what thresholds are calibrated on.
//! The embeddings come from the caller (the CLI embeds the questions with the local model):
//! this crate does no I/O.

use edgeway_policy::embedding::{Classifier, EmbeddingFeatures, EmbeddingModel, EmbeddingTraining};
use edgeway_policy::EmbeddingSpec;

use crate::curve::{apgr, threshold_curve, Baselines};
use crate::pairs::Pair;
use crate::train::label;

/// Penalties tried for the logistic regression (its features are standardized).
const L2_GRID: &[f64] = &[1e-3, 1e-2, 1e-1, 1.0];
/// Neighbour counts tried.
const K_GRID: &[usize] = &[5, 10, 20];
/// Folds for cross-validation (the hashed scorer's, with the same assignment of items).
const FOLDS: usize = 5;

/// A candidate classifier.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Candidate {
    Logistic(f64),
    Neighbours(usize),
}

impl Candidate {
    fn fit(self, examples: &[(EmbeddingFeatures, bool)]) -> Classifier {
        match self {
            Self::Logistic(l2) => Classifier::fit_logistic(examples, l2),
            Self::Neighbours(k) => Classifier::fit_neighbours(examples, k),
        }
    }
}

/// A trained embedding scorer and how it was chosen.
#[derive(Debug, Clone)]
pub struct TrainedEmbedding {
    /// The model fitted on every calibration item.
    pub model: EmbeddingModel,
    /// Each calibration item's score from the fold model that did not see it.
    pub out_of_fold: Vec<f32>,
    /// Cross-validated APGR of the chosen classifier.
    pub cv_apgr: f64,
}

/// The scorer's features for a logged question and its embedding (lowercased text, as the router scores it).
pub fn features(pair: &Pair, vector: &[f32]) -> EmbeddingFeatures {
    EmbeddingFeatures::new(vector, &pair.question.to_lowercase())
}

/// Trains on `pairs` (the calibration split of `run`), `vectors[i]` being the embedding of
/// `pairs[i].question` by the model `embedding` describes.
pub fn train_embedding(pairs: &[Pair], vectors: &[Vec<f32>], embedding: EmbeddingSpec, run: &str) -> TrainedEmbedding {
    assert_eq!(pairs.len(), vectors.len(), "one embedding per pair");
    let examples: Vec<(EmbeddingFeatures, bool)> =
        pairs.iter().zip(vectors).map(|(p, v)| (features(p, v), label(p))).collect();
    let baselines = Baselines::of(pairs);
    let fold_of = |i: usize| i % FOLDS;
    let largest_fold_out = pairs.len() - pairs.len() / FOLDS;
    let candidates = L2_GRID
        .iter()
        .map(|&l2| Candidate::Logistic(l2))
        .chain(K_GRID.iter().filter(|&&k| k < largest_fold_out).map(|&k| Candidate::Neighbours(k)));
    let mut best: Option<(f64, Candidate, Vec<f32>)> = None;
    for candidate in candidates {
        let mut out_of_fold = vec![0f32; pairs.len()];
        for fold in 0..FOLDS {
            let training: Vec<(EmbeddingFeatures, bool)> =
                examples.iter().enumerate().filter(|(i, _)| fold_of(*i) != fold).map(|(_, e)| e.clone()).collect();
            let classifier = candidate.fit(&training);
            for (i, (features, _)) in examples.iter().enumerate().filter(|(i, _)| fold_of(*i) == fold) {
                out_of_fold[i] = classifier.predict(features);
            }
        }
        let score = apgr(&threshold_curve(pairs, &out_of_fold, None), &baselines).unwrap_or(0.0);
        if best.as_ref().is_none_or(|(best_score, _, _)| score > *best_score) {
            best = Some((score, candidate, out_of_fold));
        }
    }
    let (cv_apgr, chosen, out_of_fold) = best.unwrap_or((0.0, Candidate::Logistic(L2_GRID[0]), vec![0.0; pairs.len()]));
    let positives = examples.iter().filter(|(_, y)| *y).count();
    let training = EmbeddingTraining {
        run: run.to_owned(),
        items: pairs.len(),
        positive_share: positives as f64 / pairs.len().max(1) as f64,
        cv_apgr,
    };
    TrainedEmbedding { model: EmbeddingModel::new(embedding, chosen.fit(&examples), training), out_of_fold, cv_apgr }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::tests::pair;
    use crate::curve::{share_to_reach, Baselines};

    const DIMS: usize = 16;

    /// A unit vector for `topic` (its own direction) with item-specific noise.
    fn embed(topic: usize, i: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIMS).map(|d| ((i * 31 + d * 17) % 11) as f32 / 100.0).collect();
        v[topic * 3] += 1.0;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    /// The cloud is needed for the "chemistry" meaning only, and every question has the same words:
    /// the hashed scorer cannot see it, the embedding scorer must.
    fn data() -> (Vec<Pair>, Vec<Vec<f32>>) {
        (0..80)
            .map(|i| {
                let topic = i % 4;
                let mut p = if topic == 0 { pair(i, 0.0, 1.0) } else { pair(i, 1.0, 1.0) };
                p.question = format!("A question, number {}", i % 3);
                (p, embed(topic, i))
            })
            .unzip()
    }

    fn spec() -> EmbeddingSpec {
        EmbeddingSpec { model: "toy".into(), dims: DIMS }
    }

    #[test]
    fn learns_meanings_the_words_do_not_show() {
        let (pairs, vectors) = data();
        let trained = train_embedding(&pairs, &vectors, spec(), "r");
        assert!(trained.cv_apgr > 0.8, "cv apgr {}", trained.cv_apgr);
        let curve = threshold_curve(&pairs, &trained.out_of_fold, None);
        let reach = share_to_reach(&curve, Baselines::of(&pairs).cloud_quality).unwrap();
        assert!(reach <= 0.3, "needs {reach} of the calls");
        assert_eq!(trained.model.training.items, 80);
        assert!((trained.model.training.positive_share - 0.25).abs() < 1e-9);
        assert_eq!(trained.model.embedding, spec());
        // The hashed scorer, on the same split, has nothing to go on.
        let hashed = crate::train::train(&pairs, "r");
        assert!(hashed.cv_apgr < trained.cv_apgr - 0.2, "hashed {} vs embedding {}", hashed.cv_apgr, trained.cv_apgr);
    }

    #[test]
    fn the_trained_model_round_trips_through_its_file() {
        let (pairs, vectors) = data();
        let trained = train_embedding(&pairs, &vectors, spec(), "run-7");
        let dir = std::env::temp_dir().join(format!("edgeway-train-embedding-{}", std::process::id()));
        let path = dir.join("embedding-scorer.json");
        trained.model.save(&path).unwrap();
        let loaded = EmbeddingModel::load(&path).unwrap();
        assert_eq!(loaded, trained.model);
        assert_eq!(loaded.training.run, "run-7");
        for (p, v) in pairs.iter().zip(&vectors).take(10) {
            assert_eq!(loaded.predict(&features(p, v)), trained.model.predict(&features(p, v)));
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
