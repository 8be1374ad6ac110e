//! The [`EmbeddingBackend`] trait: anything that turns texts into vectors.

use crate::backend::BackendError;

/// Static facts about an embedding model.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingInfo {
    /// The name clients use in `model`.
    pub id: String,
    /// Vector length.
    pub dims: usize,
    /// Longest input in tokens; longer inputs are truncated.
    pub max_tokens: usize,
    /// Size of the model file in bytes (`/v1/models` reports it).
    pub size_bytes: u64,
}

/// Vectors for a batch of inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingOutput {
    /// One unit-length vector per input, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read over all inputs (after truncation).
    pub prompt_tokens: u32,
}

/// A source of sentence embeddings.
///
/// `embed` blocks while the model runs: call it from a blocking thread.
pub trait EmbeddingBackend: Send + Sync + 'static {
    /// What this model is.
    fn embedding_info(&self) -> &EmbeddingInfo;

    /// Embeds `inputs`, one unit-length vector each.
    fn embed(&self, inputs: &[String]) -> Result<EmbeddingOutput, BackendError>;

    /// Whether the weights are in memory (a lazily loaded model says false until its first use).
    fn is_loaded(&self) -> bool {
        true
    }

    /// Tokens `text` takes in this model (special tokens included), for chunk budgets.
    /// The default guesses from words; real models count exactly.
    fn count_tokens(&self, text: &str) -> usize {
        2 + text.split_whitespace().map(|word| 1 + word.len() / 6).sum::<usize>()
    }
}
