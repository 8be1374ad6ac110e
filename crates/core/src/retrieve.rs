//! The [`Retriever`] trait: finding the passages of a local collection that a request is about.

use crate::backend::BackendError;
use crate::embed::QueryEmbedding;

/// A passage retrieved for a request, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// The document it came from (a path).
    pub source: String,
    /// The document's title, if any.
    pub title: Option<String>,
    /// Its place in the document (chunk number).
    pub position: usize,
    /// The text.
    pub text: String,
    /// Similarity to the query, in `[-1, 1]`.
    pub score: f32,
}

/// Anything that can search a named collection.
///
/// `retrieve` blocks (it embeds the query and reads the knowledge base): call it from a blocking thread.
pub trait Retriever: Send + Sync + 'static {
    /// The `k` passages of `collection` closest to `query`, best first. `embedding` is the
    /// query's vector when the caller already has it (computed once per request); a retriever
    /// uses it when it comes from its own embedding model and embeds `query` itself otherwise.
    fn retrieve(
        &self,
        collection: &str,
        query: &str,
        embedding: Option<&QueryEmbedding>,
        k: usize,
    ) -> Result<Vec<Passage>, BackendError>;

    /// The collections there are, for error messages.
    fn collections(&self) -> Vec<String>;
}
