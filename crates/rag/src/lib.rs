//! Local retrieval-augmented generation: documents on the device, answers grounded in them.
//!
//! ```text
//! ingest:   file ─ extract ─ chunk ─ embed ─ knowledge base (SQLite, one transaction per file) ─ vector index
//! retrieve: question ─ embed ─ vector index (HNSW) ─ chunk ids ─ knowledge base ─ passages
//! ```
//!
//! # Layout
//! - [`extract`](mod@extract): text out of text, Markdown, HTML and PDF files, paragraph by paragraph.
//! - [`chunk`](mod@chunk): paragraphs into chunks under a token budget, with overlap; content hashes.
//! - [`index`]: a collection's vector index, loaded from its saved file and brought up to date.
//! - [`ingest`]: files into a collection, one transaction each; re-ingest replaces, remove deletes.
//! - [`retrieve`]: the [`edgeway_core::Retriever`] the server uses.

pub mod chunk;
pub mod extract;
pub mod index;
pub mod ingest;
pub mod retrieve;

use std::path::PathBuf;

pub use chunk::{chunk, content_hash, content_hash_bytes, Chunk, ChunkOptions};
pub use extract::{extract, extract_bytes, is_supported, kind_of, Document, DocumentKind, ExtractError};

/// Why ingesting or retrieving failed.
#[derive(Debug, thiserror::Error)]
pub enum RagError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not a file type edgeway can read.
    #[error("{}: unsupported file type; supported are .txt, .md, .html and .pdf", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
    },
    /// The file's text could not be extracted.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// The knowledge base failed.
    #[error(transparent)]
    Store(#[from] edgeway_store::StoreError),
    /// The vector index failed.
    #[error(transparent)]
    Vector(#[from] edgeway_vector::VectorError),
    /// The embedding model failed.
    #[error("embedding failed: {0}")]
    Embed(#[from] edgeway_core::BackendError),
    /// No collection by that name.
    #[error("there is no collection '{name}'; collections: {}", if known.is_empty() { "none yet (add documents with `edgeway ingest`)".to_owned() } else { known.join(", ") })]
    NoCollection {
        /// The name asked for.
        name: String,
        /// The collections there are.
        known: Vec<String>,
    },
    /// The collection was embedded with another model than the one loaded.
    #[error("collection '{collection}' was embedded with {stored}, but this server embeds with {serving}")]
    ModelMismatch {
        /// The collection.
        collection: String,
        /// Its model.
        stored: String,
        /// The loaded model.
        serving: String,
    },
    /// A lock was poisoned by a panic in another request.
    #[error("the knowledge base is unavailable after an internal error; restart the server")]
    Poisoned,
}
