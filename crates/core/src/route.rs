//! Why a request was answered where it was: the typed reason and the steps
//! the router tried before the answer.

use std::fmt;

/// Why a request went where it went: the last routing step, the one that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteReason {
    /// The client named a concrete model.
    ForcedByModel,
    /// The client sent `x-edgeway-route`.
    ForcedByHeader,
    /// The caller asked for a tier (`edgeway eval --route tier1`).
    ForcedByTier,
    /// The score was below the domain's threshold for any higher tier.
    ScoreBelowThreshold,
    /// The score reached the domain's threshold for this tier.
    ScoreAtOrAboveThreshold,
    /// The tier the score picked (a cloud) is not configured or is cooling down after failures.
    CloudUnavailable,
    /// The request asks for structured output and the configuration sends such requests to one side.
    StructuredOutput,
    /// The request carries a raw grammar, which only a local engine can enforce.
    GrammarNeedsEdge,
    /// The request offers tools and the configuration sends such requests to one side.
    ToolUse,
    /// A local model's confidence in its answer was high enough to keep it.
    ConfidentAtEdge,
    /// The tier below was not confident enough in its answer; this tier answers instead.
    LowEdgeConfidence,
    /// The local model that should have answered was full; auto-routed work moved on.
    EdgeOverloaded,
    /// The local models draw more than the power budget; the work went to the cloud.
    PowerBudget,
    /// The local models drew more than the power budget; the work waited for the draw to fall.
    PowerBudgetWaited,
    /// A cloud failed before any output; the next available tier answers.
    FallbackCloudFailed,
    /// A cloud answered a structured request in the wrong shape; a local model answers instead.
    FallbackCloudInvalid,
    /// A local model failed before any output (it could not be loaded, for example); the next tier answers.
    FallbackEdgeFailed,
}

impl RouteReason {
    /// A short stable name for logs and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteReason::ForcedByModel => "forced_by_model",
            RouteReason::ForcedByHeader => "forced_by_header",
            RouteReason::ForcedByTier => "forced_by_tier",
            RouteReason::ScoreBelowThreshold => "score_below_threshold",
            RouteReason::ScoreAtOrAboveThreshold => "score_at_or_above_threshold",
            RouteReason::CloudUnavailable => "cloud_unavailable",
            RouteReason::StructuredOutput => "structured_output",
            RouteReason::GrammarNeedsEdge => "grammar_needs_edge",
            RouteReason::ToolUse => "tool_use",
            RouteReason::ConfidentAtEdge => "confident_at_edge",
            RouteReason::LowEdgeConfidence => "low_edge_confidence",
            RouteReason::EdgeOverloaded => "edge_overloaded",
            RouteReason::PowerBudget => "power_budget",
            RouteReason::PowerBudgetWaited => "power_budget_waited",
            RouteReason::FallbackCloudFailed => "fallback_cloud_failed",
            RouteReason::FallbackCloudInvalid => "fallback_cloud_invalid",
            RouteReason::FallbackEdgeFailed => "fallback_edge_failed",
        }
    }

    /// Whether the client chose the route (by model, header or tier) rather than the router.
    pub fn is_forced(self) -> bool {
        matches!(self, RouteReason::ForcedByModel | RouteReason::ForcedByHeader | RouteReason::ForcedByTier)
    }
}

impl fmt::Display for RouteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request's score is the transparent scorer's rather than the configured scorer's:
/// the router never fails a request over its scorer, it routes on the score it can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScoreFallback {
    /// The scorer reads the query's embedding and the request carried none (no embedding
    /// model loaded, embedding failed, or the route was forced, so none was computed).
    NoEmbedding,
    /// The request's embedding came from another embedding model, or has other dimensions,
    /// than the one the scorer was trained on.
    EmbeddingMismatch,
}

impl ScoreFallback {
    /// A short stable name for logs and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreFallback::NoEmbedding => "no_embedding",
            ScoreFallback::EmbeddingMismatch => "embedding_mismatch",
        }
    }
}

impl fmt::Display for ScoreFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model the router tried before the one that answered, and why it moved on.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteStep {
    /// The model, as clients name it.
    pub model: String,
    /// Its tier.
    pub tier: u32,
    /// Why the router moved on from it.
    pub outcome: StepOutcome,
}

/// Why the router moved on from a model it tried.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// It answered, but its confidence (mean token log-probability, or the
    /// log-probability of its least sure choice) was below the threshold.
    LowConfidence {
        /// The confidence measured.
        confidence: f32,
    },
    /// It failed before any output.
    Failed(String),
    /// It was full.
    Overloaded,
    /// It answered a structured request in the wrong shape.
    WrongShape(String),
}

impl StepOutcome {
    /// A short stable name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            StepOutcome::LowConfidence { .. } => "low_confidence",
            StepOutcome::Failed(_) => "failed",
            StepOutcome::Overloaded => "overloaded",
            StepOutcome::WrongShape(_) => "wrong_shape",
        }
    }
}

impl fmt::Display for RouteStep {
    /// `model@tier: outcome (detail)`, as the query log keeps it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}: {}", self.model, self.tier, self.outcome.as_str())?;
        match &self.outcome {
            StepOutcome::LowConfidence { confidence } => write!(f, " ({confidence:.2})"),
            StepOutcome::Failed(why) | StepOutcome::WrongShape(why) => write!(f, " ({why})"),
            StepOutcome::Overloaded => Ok(()),
        }
    }
}

/// The steps as one line for the query log: `a@0: low_confidence (-1.80) → b@1: failed (…)`.
pub fn steps_line(steps: &[RouteStep]) -> Option<String> {
    (!steps.is_empty()).then(|| steps.iter().map(ToString::to_string).collect::<Vec<_>>().join(" → "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_as_one_line() {
        let steps = [
            RouteStep { model: "small".into(), tier: 0, outcome: StepOutcome::LowConfidence { confidence: -1.8 } },
            RouteStep { model: "cloud-a".into(), tier: 2, outcome: StepOutcome::Failed("connection refused".into()) },
        ];
        assert_eq!(
            steps_line(&steps).unwrap(),
            "small@0: low_confidence (-1.80) → cloud-a@2: failed (connection refused)"
        );
        assert_eq!(steps_line(&[]), None);
        assert_eq!(RouteReason::FallbackEdgeFailed.to_string(), "fallback_edge_failed");
        assert!(RouteReason::ForcedByHeader.is_forced() && !RouteReason::ToolUse.is_forced());
    }
}
