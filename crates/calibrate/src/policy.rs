//! Choosing thresholds: per domain, the cheapest routing whose quality reaches
//! a target fraction of cloud-only quality, optionally with a confidence
//! escalation threshold shared by all domains (the router has one).

use std::collections::BTreeMap;

use crate::curve::{edge_outcome, threshold_curve, Baselines, Point};
use crate::pairs::Pair;

/// Routing settings, as the config holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingPolicy {
    /// The threshold for domains without their own.
    pub default_threshold: f32,
    /// Thresholds of domains with enough calibration items.
    pub domain_thresholds: BTreeMap<String, f32>,
    /// Escalate edge answers whose mean log-probability is below this.
    pub escalate_below: Option<f64>,
}

impl RoutingPolicy {
    /// A policy with no domain thresholds and no escalation, threshold 0.
    fn empty() -> Self {
        Self { default_threshold: 0.0, domain_thresholds: BTreeMap::new(), escalate_below: None }
    }

    /// The threshold that applies to `domain`.
    pub fn threshold(&self, domain: &str) -> f32 {
        self.domain_thresholds.get(domain).copied().unwrap_or(self.default_threshold)
    }
}

/// What a policy does to a set of items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Mean grade.
    pub quality: f64,
    /// Quality as a fraction of all-cloud quality.
    pub relative_quality: f64,
    /// Fraction of queries that call the cloud.
    pub cloud_share: f64,
    /// Fraction escalated after an edge answer.
    pub escalated_share: f64,
    /// Money per query.
    pub cost: f64,
    /// Edge energy per query, in joules.
    pub edge_energy_j: f64,
}

/// Routes each item as the gateway would under `policy` and measures the result.
pub fn apply(policy: &RoutingPolicy, pairs: &[Pair], scores: &[f32]) -> Outcome {
    let n = pairs.len().max(1) as f64;
    let (mut quality, mut cost, mut calls, mut escalated, mut energy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (pair, &score) in pairs.iter().zip(scores) {
        if score >= policy.threshold(&pair.domain) {
            quality += pair.cloud.grade;
            cost += pair.cloud.cost;
            calls += 1.0;
        } else {
            let (grade, spent, was_escalated) = edge_outcome(pair, policy.escalate_below);
            quality += grade;
            cost += spent;
            energy += pair.edge.energy_j;
            if was_escalated {
                calls += 1.0;
                escalated += 1.0;
            }
        }
    }
    let cloud_quality = Baselines::of(pairs).cloud_quality;
    Outcome {
        quality: quality / n,
        relative_quality: if cloud_quality > 0.0 { quality / n / cloud_quality } else { 1.0 },
        cloud_share: calls / n,
        escalated_share: escalated / n,
        cost: cost / n,
        edge_energy_j: energy / n,
    }
}

/// What a policy does within one group of items (a domain, or an evaluation set), beside what
/// all-cloud and all-edge would do there.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSplit {
    /// The routing domain or the set.
    pub group: String,
    /// Items of the group.
    pub items: usize,
    /// The policy's result on them.
    pub routed: Outcome,
    /// Sending all of them to the cloud.
    pub all_cloud: Outcome,
    /// Answering all of them at the edge (no escalation).
    pub all_edge: Outcome,
}

/// [`apply`] per domain, in the order of the domain names: the seed's table of edge and cloud
/// shares, quality against cloud-only, and cost per query, one row per domain.
pub fn apply_by_domain(policy: &RoutingPolicy, pairs: &[Pair], scores: &[f32]) -> Vec<GroupSplit> {
    apply_grouped(policy, pairs, scores, |pair| &pair.domain)
}

/// [`apply`] per evaluation set, in the order of the set names: no mix can hide a set the
/// router does badly on.
pub fn apply_by_set(policy: &RoutingPolicy, pairs: &[Pair], scores: &[f32]) -> Vec<GroupSplit> {
    apply_grouped(policy, pairs, scores, |pair| &pair.dataset)
}

fn apply_grouped(
    policy: &RoutingPolicy,
    pairs: &[Pair],
    scores: &[f32],
    group_of: impl Fn(&Pair) -> &str,
) -> Vec<GroupSplit> {
    let mut groups: BTreeMap<&str, (Vec<Pair>, Vec<f32>)> = BTreeMap::new();
    for (pair, &score) in pairs.iter().zip(scores) {
        let entry = groups.entry(group_of(pair)).or_default();
        entry.0.push(pair.clone());
        entry.1.push(score);
    }
    let all_cloud = RoutingPolicy { default_threshold: f32::NEG_INFINITY, ..RoutingPolicy::empty() };
    let all_edge = RoutingPolicy { default_threshold: f32::INFINITY, ..RoutingPolicy::empty() };
    groups
        .into_iter()
        .map(|(group, (pairs, scores))| GroupSplit {
            group: group.to_owned(),
            items: pairs.len(),
            routed: apply(policy, &pairs, &scores),
            all_cloud: apply(&all_cloud, &pairs, &scores),
            all_edge: apply(&all_edge, &pairs, &scores),
        })
        .collect()
}

/// The cheapest point of `curve` whose quality reaches `quality` (fewest cloud calls on a tie).
pub fn cheapest_reaching(curve: &[Point], quality: f64) -> Option<Point> {
    curve
        .iter()
        .filter(|p| p.quality >= quality - 1e-9)
        .min_by(|a, b| a.cost.total_cmp(&b.cost).then(a.share.total_cmp(&b.share)))
        .copied()
}

/// How a policy is searched for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    /// Quality to reach, as a fraction of cloud-only quality (0.95).
    pub target: f64,
    /// Domains with fewer calibration items share the default threshold.
    pub min_domain_items: usize,
    /// Whether to look for an escalation threshold too.
    pub escalation: bool,
}

/// The cheapest policy that reaches the target in every domain (on the items given).
pub fn choose(pairs: &[Pair], scores: &[f32], search: Search) -> RoutingPolicy {
    let mut candidates: Vec<Option<f64>> = vec![None];
    if search.escalation {
        let mut logprobs: Vec<f64> = pairs.iter().filter_map(|p| p.edge.mean_logprob).collect();
        logprobs.sort_by(f64::total_cmp);
        for k in 1..20 {
            if let Some(&value) = logprobs.get(k * logprobs.len() / 20) {
                candidates.push(Some(value));
            }
        }
        candidates.dedup();
    }
    let mut by_domain: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, pair) in pairs.iter().enumerate() {
        by_domain.entry(pair.domain.as_str()).or_default().push(i);
    }
    let mut best: Option<(f64, f64, RoutingPolicy)> = None;
    for escalate_below in candidates {
        let threshold_for = |indexes: &[usize]| -> f32 {
            let subset: Vec<Pair> = indexes.iter().map(|&i| pairs[i].clone()).collect();
            let subset_scores: Vec<f32> = indexes.iter().map(|&i| scores[i]).collect();
            let goal = search.target * Baselines::of(&subset).cloud_quality;
            let curve = threshold_curve(&subset, &subset_scores, escalate_below);
            // The last point (everything to the cloud) always reaches any target up to 1.
            cheapest_reaching(&curve, goal).and_then(|p| p.threshold).unwrap_or(0.0)
        };
        let all: Vec<usize> = (0..pairs.len()).collect();
        let policy = RoutingPolicy {
            default_threshold: threshold_for(&all),
            domain_thresholds: by_domain
                .iter()
                .filter(|(_, indexes)| indexes.len() >= search.min_domain_items)
                .map(|(domain, indexes)| ((*domain).to_owned(), threshold_for(indexes)))
                .collect(),
            escalate_below,
        };
        let outcome = apply(&policy, pairs, scores);
        let better = best.as_ref().is_none_or(|(cost, share, _)| {
            outcome.cost < cost - 1e-12 || (outcome.cost <= cost + 1e-12 && outcome.cloud_share < *share)
        });
        if better {
            best = Some((outcome.cost, outcome.cloud_share, policy));
        }
    }
    best.map(|(_, _, policy)| policy).unwrap_or(RoutingPolicy {
        default_threshold: 0.0,
        domain_thresholds: BTreeMap::new(),
        escalate_below: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::tests::{pair, separable};

    #[test]
    fn finds_the_known_threshold_of_a_separable_set() {
        let (pairs, scores) = separable();
        let search = Search { target: 1.0, min_domain_items: 100, escalation: false };
        let policy = choose(&pairs, &scores, search);
        assert!((policy.default_threshold - 0.55).abs() < 1e-6, "{policy:?}");
        let outcome = apply(&policy, &pairs, &scores);
        assert!((outcome.quality - 1.0).abs() < 1e-12);
        assert!((outcome.cloud_share - 0.4).abs() < 1e-12);
        assert!((outcome.cost - 0.4).abs() < 1e-12);
        // A looser target needs fewer calls: 90 % of cloud quality is 0.9, three of the four.
        let loose = choose(&pairs, &scores, Search { target: 0.9, ..search });
        assert!((apply(&loose, &pairs, &scores).cloud_share - 0.3).abs() < 1e-12, "{loose:?}");
    }

    #[test]
    fn the_split_is_reported_per_domain_beside_all_cloud_and_all_edge() {
        // "easy": the edge is always right, cost 0 there; "hard": never, and the policy sends it up.
        let mut pairs = Vec::new();
        let mut scores = Vec::new();
        for i in 0..10 {
            let mut p = if i < 6 { pair(i, 1.0, 1.0) } else { pair(i, 0.0, 1.0) };
            p.domain = if i < 6 { "easy".into() } else { "hard".into() };
            scores.push(if i < 6 { 0.1 } else { 0.9 });
            pairs.push(p);
        }
        let policy = RoutingPolicy { default_threshold: 0.5, ..RoutingPolicy::empty() };
        let split = apply_by_domain(&policy, &pairs, &scores);
        assert_eq!(split.iter().map(|d| (d.group.as_str(), d.items)).collect::<Vec<_>>(), [("easy", 6), ("hard", 4)]);
        assert_eq!((split[0].routed.cloud_share, split[0].routed.relative_quality), (0.0, 1.0));
        assert_eq!((split[1].routed.cloud_share, split[1].routed.relative_quality), (1.0, 1.0));
        assert_eq!(split[1].all_edge.quality, 0.0);
        assert_eq!(split[0].all_cloud.cloud_share, 1.0);
        assert!(split[0].routed.cost < split[0].all_cloud.cost);
        // The same items by set: each pair's dataset is its own group here.
        for p in &mut pairs {
            p.dataset = if p.item_id.parse::<usize>().unwrap() % 2 == 0 { "even".into() } else { "odd".into() };
        }
        let by_set = apply_by_set(&policy, &pairs, &scores);
        assert_eq!(by_set.iter().map(|d| (d.group.as_str(), d.items)).collect::<Vec<_>>(), [("even", 5), ("odd", 5)]);
    }

    #[test]
    fn domains_get_their_own_thresholds() {
        // Domain "easy": the edge is always right; domain "hard": never.
        let mut pairs = Vec::new();
        let mut scores = Vec::new();
        for i in 0..20 {
            let mut p = if i < 10 { pair(i, 1.0, 1.0) } else { pair(i, 0.0, 1.0) };
            p.domain = if i < 10 { "easy".into() } else { "hard".into() };
            pairs.push(p);
            scores.push(0.5);
        }
        let policy = choose(&pairs, &scores, Search { target: 0.95, min_domain_items: 5, escalation: false });
        assert!(policy.threshold("easy") > 0.5, "{policy:?}");
        assert!(policy.threshold("hard") <= 0.5, "{policy:?}");
        let outcome = apply(&policy, &pairs, &scores);
        assert_eq!(outcome.cloud_share, 0.5);
        assert_eq!(outcome.quality, 1.0);
    }

    #[test]
    fn escalation_is_chosen_when_confidence_separates_better_than_the_score() {
        let (mut pairs, _) = separable();
        for p in pairs.iter_mut().skip(6) {
            p.edge.mean_logprob = Some(-3.0);
        }
        let useless_scores = vec![0.5; pairs.len()];
        let policy = choose(&pairs, &useless_scores, Search { target: 1.0, min_domain_items: 100, escalation: true });
        let outcome = apply(&policy, &pairs, &useless_scores);
        assert!(policy.escalate_below.is_some(), "{policy:?}");
        assert!((outcome.quality - 1.0).abs() < 1e-12);
        assert!((outcome.cloud_share - 0.4).abs() < 1e-12, "{outcome:?}");
    }
}
