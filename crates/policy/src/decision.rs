//! Which tier a request starts at, and why.

use std::collections::{BTreeMap, HashMap};

/// Where a request is answered (core's type, so routers and backends share it).
pub use edgeway_core::RouteTarget as Target;

/// Why a request went where it went (core's type: routers, the server and the log share it).
pub use edgeway_core::RouteReason;

/// Where requests that ask for structured output (a JSON object or schema), or that offer tools, go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StructuredRoute {
    /// Scored like any other request.
    #[default]
    Auto,
    /// Always the edge: its grammar guarantees the shape, whatever the model's skill.
    Edge,
    /// Always the cloud (falling back to the edge when it is down), for models that fill schemas badly.
    Cloud,
}

impl StructuredRoute {
    /// Parses `auto`, `edge` or `cloud`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(StructuredRoute::Auto),
            "edge" | "local" => Some(StructuredRoute::Edge),
            "cloud" | "remote" => Some(StructuredRoute::Cloud),
            _ => None,
        }
    }

    /// The side this policy sends a structured request to, if it overrides scoring.
    pub fn target(self) -> Option<Target> {
        match self {
            StructuredRoute::Auto => None,
            StructuredRoute::Edge => Some(Target::Edge),
            StructuredRoute::Cloud => Some(Target::Cloud),
        }
    }
}

/// What happens when the cloud's answer to a structured request does not have the requested shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InvalidCloudAnswer {
    /// The edge answers instead (its grammar guarantees the shape); the client never sees the bad answer.
    #[default]
    Fallback,
    /// The request fails with 502, naming what was wrong.
    Error,
    /// The answer goes out as it is, marked invalid in `x_edgeway.format`.
    Pass,
}

impl InvalidCloudAnswer {
    /// Parses `fallback`, `error` or `pass`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "fallback" | "edge" => Some(InvalidCloudAnswer::Fallback),
            "error" => Some(InvalidCloudAnswer::Error),
            "pass" => Some(InvalidCloudAnswer::Pass),
            _ => None,
        }
    }
}

/// Thresholds per domain: a score at or above the threshold goes to the cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    default: f32,
    per_domain: HashMap<String, f32>,
}

impl Thresholds {
    /// One threshold for every domain.
    pub fn uniform(threshold: f32) -> Self {
        Self { default: threshold, per_domain: HashMap::new() }
    }

    /// The shipped defaults, before calibration has measured better ones:
    /// customer-service stays at the edge more, code and finance go to the cloud sooner.
    pub fn defaults() -> Self {
        Self::uniform(0.5).with("customer-service", 0.6).with("code", 0.35).with("finance", 0.4)
    }

    /// Sets one domain's threshold.
    pub fn with(mut self, domain: &str, threshold: f32) -> Self {
        self.per_domain.insert(domain.to_owned(), threshold);
        self
    }

    /// The threshold of domains without their own.
    pub fn default_threshold(&self) -> f32 {
        self.default
    }

    /// The threshold of a domain.
    pub fn of(&self, domain: &str) -> f32 {
        self.per_domain.get(domain).copied().unwrap_or(self.default)
    }

    /// The domains that have a threshold of their own.
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.per_domain.keys().map(String::as_str)
    }
}

/// Per-domain score thresholds for tiers above the first: a score at or above
/// a tier's threshold starts the request at that tier (or a higher one whose
/// threshold it also reaches). Tiers without one are never started at by
/// score, only escalated or fallen back to, except the first cloud tier, which
/// takes the domain's edge-or-cloud [`Thresholds`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TierThresholds {
    default: BTreeMap<u32, f32>,
    per_domain: HashMap<String, BTreeMap<u32, f32>>,
}

impl TierThresholds {
    /// Sets the threshold of `tier` for every domain that has none of its own.
    pub fn with_default(mut self, tier: u32, threshold: f32) -> Self {
        self.default.insert(tier, threshold);
        self
    }

    /// Sets the threshold of `tier` for one domain.
    pub fn with(mut self, domain: &str, tier: u32, threshold: f32) -> Self {
        self.per_domain.entry(domain.to_owned()).or_default().insert(tier, threshold);
        self
    }

    /// The threshold of `tier` in `domain`, if one is set.
    pub fn of(&self, domain: &str, tier: u32) -> Option<f32> {
        self.per_domain.get(domain).and_then(|tiers| tiers.get(&tier)).or_else(|| self.default.get(&tier)).copied()
    }

    /// Whether any threshold is set.
    pub fn is_empty(&self) -> bool {
        self.default.is_empty() && self.per_domain.is_empty()
    }

    /// The domains that have thresholds of their own.
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.per_domain.keys().map(String::as_str)
    }

    /// Every threshold set: `(None, tier, t)` for the default ones, then each domain's own,
    /// domains in name order.
    pub fn entries(&self) -> Vec<(Option<&str>, u32, f32)> {
        let mut domains: Vec<&String> = self.per_domain.keys().collect();
        domains.sort();
        let defaults = self.default.iter().map(|(&tier, &t)| (None, tier, t));
        let own = domains
            .into_iter()
            .flat_map(|domain| self.per_domain[domain].iter().map(move |(&tier, &t)| (Some(domain.as_str()), tier, t)));
        defaults.chain(own).collect()
    }
}

/// One step of a domain's ladder of tiers, as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    /// The tier's number.
    pub tier: u32,
    /// Local model or cloud.
    pub target: Target,
    /// False for a cloud that is cooling down after failures.
    pub available: bool,
}

/// A routing decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The rung of the ladder to try first.
    pub rung: usize,
    /// Why.
    pub reason: RouteReason,
    /// The threshold the score reached to start there, if one did.
    pub threshold: Option<f32>,
}

/// The threshold to start at `rungs[index]`: its tier's own, else the
/// domain's cloud threshold for the first cloud rung, else none.
fn start_threshold(
    rungs: &[Rung],
    index: usize,
    domain: &str,
    thresholds: &Thresholds,
    tiers: &TierThresholds,
) -> Option<f32> {
    let rung = rungs[index];
    tiers.of(domain, rung.tier).or_else(|| {
        let first_cloud = rungs.iter().position(|r| r.target == Target::Cloud);
        (first_cloud == Some(index)).then(|| thresholds.of(domain))
    })
}

/// Decides which rung of a domain's ladder (`rungs`, lowest tier first, never
/// empty) a request with `score` starts at.
///
/// `forced` is the rung the client asked for (by model name or header) or the
/// structured-output policy picked, if any. A start at an unavailable cloud
/// moves to the nearest available rung, upwards first, with the reason
/// [`RouteReason::CloudUnavailable`].
pub fn decide(
    score: f32,
    domain: &str,
    thresholds: &Thresholds,
    tiers: &TierThresholds,
    rungs: &[Rung],
    forced: Option<(usize, RouteReason)>,
) -> Decision {
    let (rung, reason, threshold) = match forced {
        Some((rung, reason)) => (rung.min(rungs.len().saturating_sub(1)), reason, None),
        None => {
            let reached = (1..rungs.len())
                .rev()
                .filter_map(|i| start_threshold(rungs, i, domain, thresholds, tiers).map(|t| (i, t)))
                .find(|&(_, t)| score >= t);
            let no_cloud = rungs.iter().all(|r| r.target != Target::Cloud);
            match reached {
                Some((rung, threshold)) => (rung, RouteReason::ScoreAtOrAboveThreshold, Some(threshold)),
                // The score says cloud, but there is none: offline, the edge answers.
                None if no_cloud && score >= thresholds.of(domain) => {
                    (0, RouteReason::CloudUnavailable, Some(thresholds.of(domain)))
                }
                None => (0, RouteReason::ScoreBelowThreshold, None),
            }
        }
    };
    if rungs.get(rung).is_none_or(|r| r.available) {
        return Decision { rung, reason, threshold };
    }
    let above = (rung + 1..rungs.len()).find(|&i| rungs[i].available);
    let below = (0..rung).rev().find(|&i| rungs[i].available);
    Decision { rung: above.or(below).unwrap_or(rung), reason: RouteReason::CloudUnavailable, threshold }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EDGE: Rung = Rung { tier: 0, target: Target::Edge, available: true };

    fn edge_and_cloud(cloud_available: bool) -> [Rung; 2] {
        [EDGE, Rung { tier: 1, target: Target::Cloud, available: cloud_available }]
    }

    fn tiered() -> [Rung; 4] {
        [
            EDGE,
            Rung { tier: 1, target: Target::Edge, available: true },
            Rung { tier: 2, target: Target::Cloud, available: true },
            Rung { tier: 3, target: Target::Cloud, available: true },
        ]
    }

    #[test]
    fn score_against_the_domain_threshold() {
        let (t, none) = (Thresholds::defaults(), TierThresholds::default());
        let rungs = edge_and_cloud(true);
        assert_eq!(decide(0.45, "general", &t, &none, &rungs, None).rung, 0);
        assert_eq!(decide(0.5, "general", &t, &none, &rungs, None).rung, 1);
        assert_eq!(decide(0.45, "code", &t, &none, &rungs, None).reason, RouteReason::ScoreAtOrAboveThreshold);
        assert_eq!(decide(0.55, "customer-service", &t, &none, &rungs, None).rung, 0);
        assert_eq!(decide(0.5, "unknown-domain", &t, &none, &rungs, None).threshold, Some(0.5));
        let offline = decide(0.5, "general", &t, &none, &[EDGE], None);
        assert_eq!((offline.rung, offline.reason), (0, RouteReason::CloudUnavailable), "hard, but no cloud");
        assert_eq!(decide(0.4, "general", &t, &none, &[EDGE], None).reason, RouteReason::ScoreBelowThreshold);
    }

    #[test]
    fn tier_thresholds_pick_the_highest_tier_the_score_reaches() {
        let t = Thresholds::uniform(0.5);
        let rungs = tiered();
        // Without tier thresholds the larger local model is only escalated to; the first cloud takes 0.5;
        // the second cloud is only a fallback.
        let none = TierThresholds::default();
        assert_eq!(decide(0.49, "general", &t, &none, &rungs, None).rung, 0);
        assert_eq!(decide(0.5, "general", &t, &none, &rungs, None).rung, 2);
        assert_eq!(decide(0.99, "general", &t, &none, &rungs, None).rung, 2);
        let tiers = TierThresholds::default().with_default(1, 0.3).with("code", 1, 0.1).with("code", 2, 0.7);
        assert_eq!(decide(0.29, "general", &t, &tiers, &rungs, None).rung, 0);
        let at = decide(0.3, "general", &t, &tiers, &rungs, None);
        assert_eq!((at.rung, at.reason, at.threshold), (1, RouteReason::ScoreAtOrAboveThreshold, Some(0.3)));
        assert_eq!(decide(0.5, "general", &t, &tiers, &rungs, None).rung, 2);
        assert_eq!(decide(0.1, "code", &t, &tiers, &rungs, None).rung, 1);
        assert_eq!(decide(0.69, "code", &t, &tiers, &rungs, None).rung, 1, "code's own cloud threshold wins");
        assert_eq!(decide(0.7, "code", &t, &tiers, &rungs, None).rung, 2);
        assert_eq!(tiers.entries(), vec![(None, 1, 0.3), (Some("code"), 1, 0.1), (Some("code"), 2, 0.7)]);
    }

    #[test]
    fn an_unavailable_cloud_moves_up_then_down() {
        let (t, none) = (Thresholds::uniform(0.5), TierThresholds::default());
        let mut rungs = tiered();
        rungs[2].available = false;
        let moved = decide(0.9, "general", &t, &none, &rungs, None);
        assert_eq!((moved.rung, moved.reason), (3, RouteReason::CloudUnavailable));
        rungs[3].available = false;
        assert_eq!(decide(0.9, "general", &t, &none, &rungs, None).rung, 1, "the highest local tier");
    }

    #[test]
    fn structured_route_parses_and_overrides_only_when_set() {
        assert_eq!(StructuredRoute::parse(" Cloud "), Some(StructuredRoute::Cloud));
        assert_eq!(StructuredRoute::parse("edge"), Some(StructuredRoute::Edge));
        assert_eq!(StructuredRoute::parse("auto").and_then(StructuredRoute::target), None);
        assert_eq!(StructuredRoute::parse("sometimes"), None);
        let (t, none) = (Thresholds::uniform(0.5), TierThresholds::default());
        let to_cloud = Some((1, RouteReason::StructuredOutput));
        assert_eq!(decide(0.1, "general", &t, &none, &edge_and_cloud(true), to_cloud).rung, 1);
        assert_eq!(
            decide(0.1, "general", &t, &none, &edge_and_cloud(false), to_cloud).reason,
            RouteReason::CloudUnavailable
        );
    }

    #[test]
    fn forcing_wins_but_a_missing_cloud_means_edge() {
        let (t, none) = (Thresholds::uniform(0.5), TierThresholds::default());
        let forced_edge = Some((0, RouteReason::ForcedByHeader));
        assert_eq!(decide(0.99, "general", &t, &none, &edge_and_cloud(true), forced_edge).rung, 0);
        let forced_cloud = Some((1, RouteReason::ForcedByModel));
        let forced = decide(0.0, "general", &t, &none, &edge_and_cloud(true), forced_cloud);
        assert_eq!((forced.rung, forced.reason), (1, RouteReason::ForcedByModel));
        let offline = decide(0.99, "general", &t, &none, &edge_and_cloud(false), None);
        assert_eq!((offline.rung, offline.reason), (0, RouteReason::CloudUnavailable));
    }
}
