//! Routing decisions, as pure functions: no I/O, no clocks, no backends.
//!
//! A request is scored for complexity in `[0, 1]` ([`scorer`]), assigned a
//! domain ([`domain`]), and the score is compared with that domain's
//! thresholds to pick the tier to start at (a local model or a cloud), with
//! the reason recorded ([`decision`]). What happens when the chosen side then fails (fallbacks,
//! cooldowns) is the router's business, not this crate's.
//!
//! # Layout
//! - [`scorer`]: the [`scorer::ComplexityScorer`] trait and the transparent, feature-weighted scorer.
//! - [`domain`]: keyword and regex rules that name a request's domain.
//! - [`learned`]: the learned scorer that `edgeway calibrate` trains from graded answers.
//! - [`embedding`]: the learned scorer over the query's sentence embedding (computed once per request elsewhere).
//! - [`decision`]: thresholds and the starting tier with its reason.
//! - [`json_file`]: how the trained models' files are written (whole or not at all).

pub mod decision;
pub mod domain;
pub mod embedding;
pub mod json_file;
pub mod learned;
pub mod logistic;
pub mod scorer;

pub use decision::{
    decide, Decision, InvalidCloudAnswer, RouteReason, Rung, StructuredRoute, Target, Thresholds, TierThresholds,
};
pub use domain::{DomainRule, DomainRules};
pub use embedding::{EmbeddingModel, EmbeddingScorer};
pub use learned::{LearnedModel, LearnedScorer};
pub use scorer::{ComplexityScorer, EmbeddingSpec, Score, TransparentScorer};
