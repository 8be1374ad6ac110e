//! Complexity scores.
//!
//! [`ComplexityScorer`] is the seam calibration plugs into: a learned scorer
//! trained from the query log implements the same trait. The first scorer,
//! [`TransparentScorer`], is a weighted sum of features anyone can read and
//! check: it explains every score it gives.
//!
//! A scorer may also read the query's sentence embedding (the embedding
//! scorer does). Embedding costs milliseconds and blocks, so a scorer does not
//! embed: it says which embedding it reads ([`ComplexityScorer::embedding`]),
//! whoever holds the embedding model computes it once per request, and the
//! scorer gets it in [`ComplexityScorer::score_with`].

use edgeway_core::{Prompt, QueryEmbedding, ScoreFallback};
use serde::{Deserialize, Serialize};

/// A complexity score and the features behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// In `[0, 1]`: 0 is trivial, 1 is as hard as the scorer can tell.
    pub value: f32,
    /// Each feature's name and its value in `[0, 1]`, for logs and explanations.
    pub features: Vec<(&'static str, f32)>,
    /// Set when the scorer could not read what it needs and this is the transparent score instead.
    pub fallback: Option<ScoreFallback>,
}

/// The sentence embedding a scorer reads: which model, how many dimensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingSpec {
    /// The embedding model's id, as the embedder reports it (`all-minilm-l6-v2`).
    pub model: String,
    /// The vector length.
    pub dims: usize,
}

impl EmbeddingSpec {
    /// Whether `embedding` is a vector of this model and length.
    pub fn accepts(&self, embedding: &QueryEmbedding) -> bool {
        embedding.model == self.model && embedding.vector.len() == self.dims
    }
}

/// Anything that rates how hard a request is.
pub trait ComplexityScorer: Send + Sync {
    /// Scores a prompt. A scorer that reads an embedding gives its fallback score here.
    fn score(&self, prompt: &Prompt) -> Score;

    /// The embedding of the user text this scorer reads, if it reads one. The default is none.
    fn embedding(&self) -> Option<&EmbeddingSpec> {
        None
    }

    /// Scores a prompt whose user text's embedding may be at hand (computed once per request by
    /// whoever holds the embedding model). Scorers that read no embedding ignore it.
    fn score_with(&self, prompt: &Prompt, embedding: Option<&QueryEmbedding>) -> Score {
        let _ = embedding;
        self.score(prompt)
    }
}

/// A feature: a name, a weight, and how to measure it on lowercase text.
struct Feature {
    name: &'static str,
    weight: f32,
    measure: fn(&str) -> f32,
}

/// Words and phrases that ask for reasoning rather than recall.
const REASONING: &[&str] = &[
    "why",
    "explain",
    "prove",
    "derive",
    "analy",
    "compare",
    "contrast",
    "evaluate",
    "reason",
    "step by step",
    "justify",
    "trade-off",
    "tradeoff",
    "implication",
    "pros and cons",
    "critique",
    "assess",
    "infer",
];
/// Markers of arithmetic and mathematics.
const MATH: &[&str] = &[
    "calculate",
    "compute",
    "solve",
    "equation",
    "integral",
    "derivative",
    "probability",
    "percent",
    "%",
    "sum of",
    "how many",
    "how much",
    "average",
    "ratio",
    "=",
    "+",
    "*",
    "^",
    "√",
];
/// Markers of programming.
const CODE: &[&str] = &[
    "```",
    "function",
    "class ",
    "def ",
    "fn ",
    "code",
    "implement",
    "algorithm",
    "regex",
    "sql",
    "bug",
    "compile",
    "python",
    "rust",
    "javascript",
    "api",
    "refactor",
    "stack trace",
    "exception",
];
/// Markers of multi-step instructions.
const STEPS: &[&str] = &["first", "then", "next", "finally", "after that", "step", "1.", "2.", "3.", "1)", "2)", "- "];
/// Markers of constraints on the answer.
const CONSTRAINTS: &[&str] =
    &["must", "at least", "at most", "exactly", "without", "format", "json", "table", "no more than", "only use"];

/// Hits of any marker, scaled so that `saturation` hits give 1.
fn marker_density(text: &str, markers: &[&str], saturation: f32) -> f32 {
    let hits: usize = markers.iter().map(|m| text.matches(m).count()).sum();
    (hits as f32 / saturation).min(1.0)
}

const FEATURES: &[Feature] = &[
    Feature {
        name: "length",
        weight: 0.20,
        // Logarithmic: 10 words are short, 400 and more are long.
        measure: |text| ((1.0 + text.split_whitespace().count() as f32).ln() / 401f32.ln()).min(1.0),
    },
    Feature { name: "questions", weight: 0.10, measure: |text| (text.matches('?').count() as f32 / 3.0).min(1.0) },
    Feature { name: "reasoning", weight: 0.20, measure: |text| marker_density(text, REASONING, 2.0) },
    Feature { name: "math", weight: 0.15, measure: |text| marker_density(text, MATH, 3.0) },
    Feature { name: "code", weight: 0.15, measure: |text| marker_density(text, CODE, 2.0) },
    Feature { name: "multi_step", weight: 0.12, measure: |text| marker_density(text, STEPS, 3.0) },
    Feature { name: "constraints", weight: 0.08, measure: |text| marker_density(text, CONSTRAINTS, 2.0) },
];

/// The feature-weighted scorer; weights sum to 1, so the score is in `[0, 1]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransparentScorer;

/// The text a scorer looks at: the last user message of a chat (earlier turns
/// are context, not the question), or the whole text prompt.
pub fn scored_text(prompt: &Prompt) -> String {
    let last_message = || match prompt {
        Prompt::Chat(messages) => messages.last().map(|m| m.content.as_str()),
        Prompt::Text(_) => None,
    };
    prompt.user_text().or_else(last_message).map(str::to_lowercase).unwrap_or_default()
}

impl ComplexityScorer for TransparentScorer {
    fn score(&self, prompt: &Prompt) -> Score {
        let text = scored_text(prompt);
        let features: Vec<(&'static str, f32)> = FEATURES.iter().map(|f| (f.name, (f.measure)(&text))).collect();
        let value = FEATURES.iter().zip(&features).map(|(f, (_, v))| f.weight * v).sum::<f32>().clamp(0.0, 1.0);
        Score { value, features, fallback: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeway_core::ChatMessage;
    use proptest::prelude::*;

    fn score(text: &str) -> f32 {
        TransparentScorer.score(&Prompt::Text(text.into())).value
    }

    #[test]
    fn weights_sum_to_one() {
        let total: f32 = FEATURES.iter().map(|f| f.weight).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn simple_questions_score_low_and_hard_ones_high() {
        let simple = score("What is the capital of France?");
        let hard = score(
            "Explain step by step why the integral of x^2 from 0 to 3 equals 9, then compare it with a numerical \
             estimate. First derive the antiderivative, then calculate the sum of the rectangles. Why do they differ? \
             Format the answer as a table and justify each step.",
        );
        let code = score("Implement a Rust function that parses this regex and explain why your algorithm is correct.");
        assert!(simple < 0.25, "simple {simple}");
        assert!(hard > 0.6, "hard {hard}");
        assert!(code > simple + 0.2, "code {code} vs simple {simple}");
    }

    #[test]
    fn chats_are_scored_on_the_last_user_turn() {
        let prompt = Prompt::Chat(vec![
            ChatMessage::new("system", "Explain why, derive, prove, analyze, compare, evaluate everything."),
            ChatMessage::new("user", "Hi!"),
        ]);
        assert!(TransparentScorer.score(&prompt).value < 0.1);
    }

    proptest! {
        #[test]
        fn scores_stay_in_range(text in "\\PC{0,400}") {
            let s = TransparentScorer.score(&Prompt::Text(text));
            prop_assert!((0.0..=1.0).contains(&s.value));
            prop_assert!(s.features.iter().all(|(_, v)| (0.0..=1.0).contains(v)));
        }
    }
}
