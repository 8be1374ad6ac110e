//! Graded answers paired by item: what the edge said and what the cloud said.

use std::collections::HashMap;

use edgeway_core::hash::fnv1a;
use edgeway_store::EvalRecord;

/// One side's answer to an item.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Side {
    /// In `[0, 1]`.
    pub grade: f64,
    /// Money spent.
    pub cost: f64,
    /// Joules, when measured.
    pub energy_j: f64,
    /// Time for the answer.
    pub latency_ms: f64,
    /// Mean token log-probability, when known (the confidence signal).
    pub mean_logprob: Option<f64>,
}

impl From<&EvalRecord> for Side {
    fn from(record: &EvalRecord) -> Self {
        Self {
            grade: record.grade,
            cost: record.cost,
            energy_j: record.energy_j.unwrap_or(0.0),
            latency_ms: record.latency_ms,
            mean_logprob: record.mean_logprob,
        }
    }
}

/// An item answered by both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// The evaluation set.
    pub dataset: String,
    /// The item within it.
    pub item_id: String,
    /// The routing domain the router assigned.
    pub domain: String,
    /// The question as the scorer sees it.
    pub question: String,
    /// The score the configured scorer gave when the answers were logged.
    pub logged_score: f32,
    /// The edge's answer.
    pub edge: Side,
    /// The cloud's answer.
    pub cloud: Side,
}

/// Pairs each edge answer with the cloud answer to the same item; items only
/// one side answered are left out. `cloud` may come from another run (an
/// earlier run with the same cloud and sets), so a new edge model can be
/// calibrated without asking the cloud again.
pub fn pair_up(edge: &[EvalRecord], cloud: &[EvalRecord]) -> Vec<Pair> {
    pair_routes((edge, "edge"), (cloud, "cloud"))
}

/// Pairs the answers `lower` logged under the eval route `lower.1` (`tier0`, say) with
/// those `upper` logged under `upper.1` (`tier1`): one boundary of a ladder of tiers,
/// the lower route in [`Pair::edge`] and the upper one in [`Pair::cloud`].
pub fn pair_routes(lower: (&[EvalRecord], &str), upper: (&[EvalRecord], &str)) -> Vec<Pair> {
    let clouds: HashMap<(&str, &str), &EvalRecord> =
        upper.0.iter().filter(|r| r.route == upper.1).map(|r| ((r.dataset.as_str(), r.item_id.as_str()), r)).collect();
    lower
        .0
        .iter()
        .filter(|r| r.route == lower.1)
        .filter_map(|e| {
            let c = clouds.get(&(e.dataset.as_str(), e.item_id.as_str()))?;
            Some(Pair {
                dataset: e.dataset.clone(),
                item_id: e.item_id.clone(),
                domain: e.domain.clone().unwrap_or_else(|| "general".into()),
                question: e.question.clone(),
                logged_score: e.score.unwrap_or(0.0),
                edge: Side::from(e),
                cloud: Side::from(*c),
            })
        })
        .collect()
}

/// Splits pairs into a calibration part (about `calibration_share` of them)
/// and a held-out part, by a hash of the item: the same item always lands on
/// the same side, on every machine.
pub fn split(pairs: Vec<Pair>, calibration_share: f64) -> (Vec<Pair>, Vec<Pair>) {
    let cut = (calibration_share.clamp(0.0, 1.0) * 10_000.0) as u64;
    pairs.into_iter().partition(|pair| fnv1a(format!("{}/{}", pair.dataset, pair.item_id).as_bytes()) % 10_000 < cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(route: &str, item: &str, grade: f64) -> EvalRecord {
        EvalRecord {
            run: "r".into(),
            dataset: "d".into(),
            item_id: item.into(),
            route: route.into(),
            grade,
            correct: grade == 1.0,
            ..Default::default()
        }
    }

    #[test]
    fn pairs_need_both_sides() {
        let edge = vec![record("edge", "1", 0.0), record("edge", "2", 1.0)];
        let cloud = vec![record("cloud", "1", 1.0), record("cloud", "3", 1.0)];
        let pairs = pair_up(&edge, &cloud);
        assert_eq!(pairs.len(), 1);
        assert_eq!((pairs[0].edge.grade, pairs[0].cloud.grade), (0.0, 1.0));
        assert_eq!(pairs[0].domain, "general");
    }

    #[test]
    fn any_two_routes_pair_up() {
        let records = vec![record("tier0", "1", 0.0), record("tier1", "1", 1.0), record("tier2", "1", 1.0)];
        let pairs = pair_routes((&records, "tier1"), (&records, "tier2"));
        assert_eq!(pairs.len(), 1);
        assert_eq!((pairs[0].edge.grade, pairs[0].cloud.grade), (1.0, 1.0));
        assert!(pair_routes((&records, "tier1"), (&records, "tier3")).is_empty());
    }

    #[test]
    fn splits_are_stable_and_near_the_share() {
        let edge: Vec<EvalRecord> = (0..1000).map(|i| record("edge", &i.to_string(), 1.0)).collect();
        let cloud: Vec<EvalRecord> = (0..1000).map(|i| record("cloud", &i.to_string(), 1.0)).collect();
        let (a, b) = split(pair_up(&edge, &cloud), 0.5);
        assert!((450..=550).contains(&a.len()), "{}", a.len());
        assert_eq!(a.len() + b.len(), 1000);
        let (again, _) = split(pair_up(&edge, &cloud), 0.5);
        assert_eq!(a, again);
    }
}
