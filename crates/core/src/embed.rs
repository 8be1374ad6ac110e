//! The [`EmbeddingBackend`] trait: anything that turns texts into vectors, and
//! [`QueryEmbedding`], a request's user text embedded once and shared on the request path.

use std::sync::Arc;

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

/// The embedding of a request's user text ([`crate::Prompt::user_text`]), computed once per
/// request by whoever holds the embedding model (the server, on a blocking thread) and carried
/// on the request, so the router's scorer and retrieval read the same vector instead of
/// embedding the text again.
#[derive(Clone, PartialEq)]
pub struct QueryEmbedding {
    /// The embedding model's id: vectors of different models are not comparable.
    pub model: String,
    /// The unit-length vector.
    pub vector: Arc<[f32]>,
}

impl QueryEmbedding {
    /// A vector from `model`.
    pub fn new(model: impl Into<String>, vector: impl Into<Arc<[f32]>>) -> Self {
        Self { model: model.into(), vector: vector.into() }
    }
}

impl std::fmt::Debug for QueryEmbedding {
    /// The model and the length, not hundreds of numbers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueryEmbedding({}, {} dims)", self.model, self.vector.len())
    }
}
