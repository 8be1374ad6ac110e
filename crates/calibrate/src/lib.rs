//! Calibration: turning graded answers from `edgeway eval` into routing settings.
//!
//! Everything here is arithmetic over [`pairs::Pair`]s (one item, both
//! sides' graded answers): no I/O besides drawing the plot, so every number
//! can be checked on constructed logs whose right answer is known.
//!
//! # Layout
//! - [`pairs`]: pairing edge and cloud answers, and the calibration/held-out split.
//! - [`curve`]: quality against cloud share for a scorer, random routing and the oracle; APGR and CPT.
//! - [`boundaries`]: ladders of more than two tiers, one boundary at a time.
//! - [`policy`]: the per-domain thresholds (and escalation threshold) that meet a quality target at the lowest cost.
//! - [`train`]: fitting the learned scorer, with the penalty chosen by cross-validation.
//! - [`train_embedding`]: fitting the embedding scorer (logistic regression or nearest neighbours) the same way.
//! - [`plot`]: the curves as an SVG.

pub mod boundaries;
pub mod curve;
pub mod pairs;
pub mod plot;
pub mod policy;
pub mod train;
pub mod train_embedding;

pub use curve::{Baselines, Point};
pub use pairs::{pair_routes, pair_up, split, Pair};
