//! Thresholds for a ladder of more than two tiers, one boundary at a time.
//!
//! A ladder `tier0 → tier1 → tier2` has two boundaries. Each is calibrated as
//! the two-sided case is ([`policy::choose`]): the items both tiers answered,
//! the lower tier as the "edge", the upper as the "cloud", the cheapest
//! thresholds that keep the target share of the upper tier's quality. Then,
//! per domain, the thresholds are made non-decreasing up the ladder, since the
//! router starts a request at the highest tier whose threshold its score
//! reaches. Boundaries are chosen one by one, not jointly: a joint search over
//! every combination of thresholds needs every item answered by every tier,
//! and one boundary's items are what an operator adding a tier has.

use std::collections::BTreeMap;

use crate::pairs::Pair;
use crate::policy::{self, RoutingPolicy, Search};

/// The items of one boundary: both tiers' answers and the scores the router gives them.
#[derive(Debug, Clone)]
pub struct BoundaryItems {
    /// The upper tier: a score at or above the boundary's threshold starts there.
    pub tier: u32,
    /// Both tiers' graded answers, the lower tier as `edge`, the upper as `cloud`.
    pub pairs: Vec<Pair>,
    /// The router's score of each pair's question.
    pub scores: Vec<f32>,
}

/// The thresholds chosen for one boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Boundary {
    /// The upper tier.
    pub tier: u32,
    /// Its thresholds per domain (and the confidence escalation found for it).
    pub policy: RoutingPolicy,
    /// The items it was chosen on.
    pub items: usize,
}

/// Chooses every boundary's thresholds (lowest boundary first) and makes
/// them non-decreasing up the ladder, per domain.
pub fn choose_boundaries(boundaries: &[BoundaryItems], search: Search) -> Vec<Boundary> {
    let mut chosen: Vec<Boundary> = boundaries
        .iter()
        .map(|b| Boundary { tier: b.tier, policy: policy::choose(&b.pairs, &b.scores, search), items: b.pairs.len() })
        .collect();
    chosen.sort_by_key(|b| b.tier);
    let mut floor_default = f32::MIN;
    let mut floors: BTreeMap<String, f32> = BTreeMap::new();
    for boundary in &mut chosen {
        let policy = &mut boundary.policy;
        for (domain, threshold) in &mut policy.domain_thresholds {
            let floor = floors.get(domain).copied().unwrap_or(floor_default);
            *threshold = threshold.max(floor);
        }
        // A domain the lower boundary set but this one did not keeps its floor.
        for (domain, floor) in &floors {
            if *floor > policy.default_threshold.max(floor_default) {
                policy.domain_thresholds.entry(domain.clone()).or_insert(*floor);
            }
        }
        policy.default_threshold = policy.default_threshold.max(floor_default);
        floor_default = policy.default_threshold;
        floors = policy.domain_thresholds.clone();
    }
    chosen
}

/// The tier number of an `edgeway eval` route label: `tier2` is 2. `None` for
/// anything else (`edge`, `tier`, `tier02`, `tier-1`): eval logs tiers as `tier{N}`.
pub fn tier_of_label(label: &str) -> Option<u32> {
    let tier: u32 = label.strip_prefix("tier")?.parse().ok()?;
    (format!("tier{tier}") == label).then_some(tier)
}

/// Chosen boundaries' thresholds arranged as the config holds them: per tier,
/// and per domain per tier.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LadderThresholds {
    /// Each upper tier's threshold for domains without their own.
    pub default: BTreeMap<u32, f32>,
    /// Per domain, its own threshold of each tier that has one.
    pub per_domain: BTreeMap<String, BTreeMap<u32, f32>>,
}

impl LadderThresholds {
    /// Collects the thresholds of `boundaries` (as [`choose_boundaries`] returns them).
    pub fn of(boundaries: &[Boundary]) -> Self {
        let mut thresholds = Self::default();
        for boundary in boundaries {
            thresholds.default.insert(boundary.tier, boundary.policy.default_threshold);
            for (domain, threshold) in &boundary.policy.domain_thresholds {
                thresholds.per_domain.entry(domain.clone()).or_default().insert(boundary.tier, *threshold);
            }
        }
        thresholds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::tests::{pair, separable};

    #[test]
    fn each_boundary_gets_its_threshold_and_they_rise_up_the_ladder() {
        let (pairs, scores) = separable();
        let search = Search { target: 1.0, min_domain_items: 100, escalation: false };
        let alone = policy::choose(&pairs, &scores, search).default_threshold;
        // The upper boundary, on its own, would start everything at the top tier (the middle tier is never right).
        let upper: Vec<Pair> = (0..pairs.len()).map(|i| pair(i, 0.0, 1.0)).collect();
        let boundaries =
            [BoundaryItems { tier: 2, pairs: upper, scores: scores.clone() }, BoundaryItems { tier: 1, pairs, scores }];
        let chosen = choose_boundaries(&boundaries, search);
        assert_eq!(chosen.iter().map(|b| b.tier).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(chosen[0].policy.default_threshold, alone);
        // Not below the tier under it: a score that reaches tier 2 reaches tier 1 first.
        assert!(chosen[1].policy.default_threshold >= chosen[0].policy.default_threshold, "{chosen:?}");
    }

    #[test]
    fn a_domain_threshold_is_a_floor_for_the_boundary_above() {
        // Code: tier 0 is always right (stay low), tier 1 never (go to tier 2 at once).
        let code = |edge: f64, cloud: f64| -> Vec<Pair> {
            (0..10)
                .map(|i| {
                    let mut p = pair(i, edge, cloud);
                    p.domain = "code".into();
                    p
                })
                .collect()
        };
        let search = Search { target: 0.95, min_domain_items: 5, escalation: false };
        let items = [
            BoundaryItems { tier: 1, pairs: code(1.0, 1.0), scores: vec![0.5; 10] },
            BoundaryItems { tier: 2, pairs: code(0.0, 1.0), scores: vec![0.5; 10] },
        ];
        let chosen = choose_boundaries(&items, search);
        let (low, high) = (chosen[0].policy.threshold("code"), chosen[1].policy.threshold("code"));
        assert!(low > 0.5, "{chosen:?}");
        assert!(high >= low, "{chosen:?}");
    }

    #[test]
    fn route_labels_name_tiers() {
        assert_eq!(tier_of_label("tier0"), Some(0));
        assert_eq!(tier_of_label("tier12"), Some(12));
        for label in ["edge", "cloud", "tier", "tier02", "tier-1", "tier+1", "Tier1", "tier1 ", "mytier1"] {
            assert_eq!(tier_of_label(label), None, "{label}");
        }
    }

    #[test]
    fn ladder_thresholds_gather_each_tier_and_domain() {
        let policy = |default: f32, domains: &[(&str, f32)]| RoutingPolicy {
            default_threshold: default,
            domain_thresholds: domains.iter().map(|(d, t)| ((*d).to_owned(), *t)).collect(),
            escalate_below: None,
        };
        let boundaries = [
            Boundary { tier: 1, policy: policy(0.3, &[("code", 0.2)]), items: 40 },
            Boundary { tier: 2, policy: policy(0.6, &[("code", 0.5), ("math", 0.7)]), items: 40 },
        ];
        let thresholds = LadderThresholds::of(&boundaries);
        assert_eq!(thresholds.default, [(1, 0.3), (2, 0.6)].into_iter().collect());
        assert_eq!(thresholds.per_domain["code"], [(1, 0.2), (2, 0.5)].into_iter().collect());
        assert_eq!(thresholds.per_domain["math"], [(2, 0.7)].into_iter().collect());
        assert_eq!(thresholds.per_domain.len(), 2);
    }
}
