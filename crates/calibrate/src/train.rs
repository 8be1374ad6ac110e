//! Fitting the learned scorer on the calibration split.
//!
//! The label is "the cloud's answer is better than the edge's", the only
//! case where a cloud call buys quality. The L2 penalty is chosen by k-fold
//! cross-validation on APGR, and the out-of-fold scores (each item scored by
//! a model that never saw it) are what thresholds are calibrated on, so the
//! thresholds fit how the scorer behaves on new queries, not on its training set.

use edgeway_policy::learned::{featurize, Features, LearnedModel, TrainingInfo};

use crate::curve::{apgr, threshold_curve, Baselines};
use crate::pairs::Pair;

/// Hash buckets for words and word pairs.
pub const HASH_BUCKETS: u32 = 4096;
/// Penalties tried.
const L2_GRID: &[f64] = &[1e-4, 1e-3, 1e-2, 3e-2, 1e-1];
/// Folds for cross-validation.
const FOLDS: usize = 5;

/// A trained scorer and how it was chosen.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The model fitted on every calibration item.
    pub model: LearnedModel,
    /// Each calibration item's score from the fold model that did not see it.
    pub out_of_fold: Vec<f32>,
    /// Cross-validated APGR of the chosen penalty.
    pub cv_apgr: f64,
}

/// The scorer's features for a logged question (lowercased, as the router scores it).
pub fn features(pair: &Pair) -> Features {
    featurize(&pair.question.to_lowercase(), HASH_BUCKETS)
}

/// Whether the cloud was worth calling for this item.
pub fn label(pair: &Pair) -> bool {
    pair.cloud.grade > pair.edge.grade
}

/// Trains on `pairs` (the calibration split of `run`).
pub fn train(pairs: &[Pair], run: &str) -> Trained {
    let examples: Vec<(Features, bool)> = pairs.iter().map(|p| (features(p), label(p))).collect();
    let baselines = Baselines::of(pairs);
    let fold_of = |i: usize| i % FOLDS;
    let mut best: Option<(f64, f64, Vec<f32>)> = None;
    for &l2 in L2_GRID {
        let mut out_of_fold = vec![0f32; pairs.len()];
        for fold in 0..FOLDS {
            let training: Vec<(Features, bool)> =
                examples.iter().enumerate().filter(|(i, _)| fold_of(*i) != fold).map(|(_, e)| e.clone()).collect();
            let model = LearnedModel::train(&training, HASH_BUCKETS, l2, TrainingInfo::default());
            for (i, (features, _)) in examples.iter().enumerate().filter(|(i, _)| fold_of(*i) == fold) {
                out_of_fold[i] = model.predict(features);
            }
        }
        let score = apgr(&threshold_curve(pairs, &out_of_fold, None), &baselines).unwrap_or(0.0);
        if best.as_ref().is_none_or(|(best_score, _, _)| score > *best_score) {
            best = Some((score, l2, out_of_fold));
        }
    }
    let (cv_apgr, l2, out_of_fold) = best.unwrap_or((0.0, L2_GRID[0], vec![0.0; pairs.len()]));
    let positives = examples.iter().filter(|(_, y)| *y).count();
    let info = TrainingInfo {
        run: run.to_owned(),
        items: pairs.len(),
        positive_share: positives as f64 / pairs.len().max(1) as f64,
        l2,
    };
    Trained { model: LearnedModel::train(&examples, HASH_BUCKETS, l2, info), out_of_fold, cv_apgr }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::tests::pair;

    #[test]
    fn learns_which_topics_need_the_cloud() {
        // The cloud is needed for chemistry questions only; the scorer must find the word.
        let topics = ["chemistry", "history", "geography", "music"];
        let pairs: Vec<Pair> = (0..80)
            .map(|i| {
                let topic = topics[i % 4];
                let mut p = if topic == "chemistry" { pair(i, 0.0, 1.0) } else { pair(i, 1.0, 1.0) };
                p.question = format!("A {topic} question number {i} about thing {}", i * 7 % 13);
                p
            })
            .collect();
        let trained = train(&pairs, "r");
        assert!(trained.cv_apgr > 0.8, "cv apgr {}", trained.cv_apgr);
        let curve = threshold_curve(&pairs, &trained.out_of_fold, None);
        let reach = crate::curve::share_to_reach(&curve, 1.0).unwrap();
        assert!(reach <= 0.3, "needs {reach} of the calls");
        assert_eq!(trained.model.training.items, 80);
        assert!((trained.model.training.positive_share - 0.25).abs() < 1e-9);
    }
}
