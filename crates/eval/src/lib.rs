//! Graded evaluation, for calibration and the quantization workbench.
//!
//! Small models rarely answer in the format a benchmark asks for: "The answer
//! is (B) Paris.", "b", "Paris", "**B**", "#### 42", "$1,234.50". The graders
//! here accept what a careful human grader would, and nothing more.
//!
//! # Layout
//! - [`grade`]: multiple-choice letters, numbers, and SQuAD-style exact match and F1.

pub mod grade;

pub use grade::{exact_match, extract_choice, extract_number, f1_score, normalize_answer};
