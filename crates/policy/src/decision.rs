//! The edge-or-cloud decision and its reason.

use std::collections::HashMap;

/// Where a request is answered (core's type, so routers and backends share it).
pub use edgeway_core::RouteTarget as Target;

/// Why a request went where it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteReason {
    /// The client named a concrete model.
    ForcedByModel,
    /// The client sent `x-edgeway-route`.
    ForcedByHeader,
    /// The score was below the domain's threshold.
    ScoreBelowThreshold,
    /// The score reached the domain's threshold.
    ScoreAtOrAboveThreshold,
    /// No cloud is configured or it is cooling down after failures: the edge answers.
    CloudUnavailable,
    /// The request asks for structured output and the configuration sends such requests to one side.
    StructuredOutput,
    /// The request carries a raw grammar, which only the local engine can enforce.
    GrammarNeedsEdge,
    /// The request offers tools and the configuration sends such requests to one side.
    ToolUse,
}

impl RouteReason {
    /// A short stable name for logs and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteReason::ForcedByModel => "forced_by_model",
            RouteReason::ForcedByHeader => "forced_by_header",
            RouteReason::ScoreBelowThreshold => "score_below_threshold",
            RouteReason::ScoreAtOrAboveThreshold => "score_at_or_above_threshold",
            RouteReason::CloudUnavailable => "cloud_unavailable",
            RouteReason::StructuredOutput => "structured_output",
            RouteReason::GrammarNeedsEdge => "grammar_needs_edge",
            RouteReason::ToolUse => "tool_use",
        }
    }
}

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

    /// The threshold of a domain.
    pub fn of(&self, domain: &str) -> f32 {
        self.per_domain.get(domain).copied().unwrap_or(self.default)
    }
}

/// A routing decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Where to send the request.
    pub target: Target,
    /// Why.
    pub reason: RouteReason,
    /// The threshold that applied.
    pub threshold: f32,
}

/// Decides where a request with `score` in `domain` goes.
///
/// `forced` is what the client asked for (by model name or header), if
/// anything; `cloud_available` is false when no cloud is configured or it is
/// cooling down.
pub fn decide(
    score: f32,
    domain: &str,
    thresholds: &Thresholds,
    forced: Option<(Target, RouteReason)>,
    cloud_available: bool,
) -> Decision {
    let threshold = thresholds.of(domain);
    let (target, reason) = match forced {
        Some((target, reason)) => (target, reason),
        None if score >= threshold => (Target::Cloud, RouteReason::ScoreAtOrAboveThreshold),
        None => (Target::Edge, RouteReason::ScoreBelowThreshold),
    };
    if target == Target::Cloud && !cloud_available {
        return Decision { target: Target::Edge, reason: RouteReason::CloudUnavailable, threshold };
    }
    Decision { target, reason, threshold }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_against_the_domain_threshold() {
        let t = Thresholds::defaults();
        assert_eq!(decide(0.45, "general", &t, None, true).target, Target::Edge);
        assert_eq!(decide(0.5, "general", &t, None, true).target, Target::Cloud);
        assert_eq!(decide(0.45, "code", &t, None, true).reason, RouteReason::ScoreAtOrAboveThreshold);
        assert_eq!(decide(0.55, "customer-service", &t, None, true).target, Target::Edge);
        assert_eq!(decide(0.5, "unknown-domain", &t, None, true).threshold, 0.5);
    }

    #[test]
    fn structured_route_parses_and_overrides_only_when_set() {
        assert_eq!(StructuredRoute::parse(" Cloud "), Some(StructuredRoute::Cloud));
        assert_eq!(StructuredRoute::parse("edge"), Some(StructuredRoute::Edge));
        assert_eq!(StructuredRoute::parse("auto").and_then(StructuredRoute::target), None);
        assert_eq!(StructuredRoute::parse("sometimes"), None);
        let t = Thresholds::uniform(0.5);
        let to_cloud = StructuredRoute::Cloud.target().map(|target| (target, RouteReason::StructuredOutput));
        assert_eq!(decide(0.1, "general", &t, to_cloud, true).target, Target::Cloud);
        assert_eq!(decide(0.1, "general", &t, to_cloud, false).reason, RouteReason::CloudUnavailable);
    }

    #[test]
    fn forcing_wins_but_a_missing_cloud_means_edge() {
        let t = Thresholds::uniform(0.5);
        let forced_edge = Some((Target::Edge, RouteReason::ForcedByHeader));
        assert_eq!(decide(0.99, "general", &t, forced_edge, true).target, Target::Edge);
        let forced_cloud = Some((Target::Cloud, RouteReason::ForcedByModel));
        assert_eq!(decide(0.0, "general", &t, forced_cloud, true).target, Target::Cloud);
        let offline = decide(0.99, "general", &t, None, false);
        assert_eq!((offline.target, offline.reason), (Target::Edge, RouteReason::CloudUnavailable));
    }
}
