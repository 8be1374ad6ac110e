//! Ingesting files into a collection: extract, chunk, embed, store, index.
//!
//! Each file is one transaction in the knowledge base: it is either wholly
//! there (and acknowledged) or not at all. Unchanged files (same content
//! hash) are skipped; a changed file replaces its chunks.

use std::path::{Path, PathBuf};

use edgeway_core::EmbeddingBackend;
use edgeway_store::knowledge::{KnowledgeBase, NewChunk, NewDocument};

use crate::chunk::{chunk, content_hash_bytes, ChunkOptions};
use crate::extract::{extract_bytes, is_supported, kind_of};
use crate::index::CollectionIndex;
use crate::RagError;

/// Inputs embedded per call.
const EMBED_BATCH: usize = 32;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq)]
pub enum FileOutcome {
    /// Stored with this many chunks.
    Ingested {
        /// Chunks stored.
        chunks: usize,
        /// Whether it replaced an earlier version.
        replaced: bool,
    },
    /// The same content is already stored.
    Unchanged,
    /// Nothing to index (no text).
    Empty,
}

/// Progress reports for a progress bar.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// About to process `file` (`done` of `total` finished).
    Starting {
        /// The file.
        file: PathBuf,
        /// Files finished.
        done: usize,
        /// Files in all.
        total: usize,
    },
}

/// The files under `paths` that can be ingested: files as given (any extension is checked
/// later), directories walked recursively for supported ones, in a stable order.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RagError> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|source| RagError::Io { path: path.clone(), source })?;
        if metadata.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), RagError> {
    let entries = std::fs::read_dir(dir).map_err(|source| RagError::Io { path: dir.to_owned(), source })?;
    for entry in entries {
        let path = entry.map_err(|source| RagError::Io { path: dir.to_owned(), source })?.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, files)?;
        } else if is_supported(&path) {
            files.push(path);
        }
    }
    Ok(())
}

/// The name a file is stored under: its absolute path, so the same file is recognised from any
/// directory, and still after it was deleted (for `--remove`).
pub fn source_name(path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| match (path.parent(), path.file_name()) {
        // A deleted file: resolve its folder (which usually still exists), then add the name.
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
            std::fs::canonicalize(parent).map_or_else(|_| path.to_path_buf(), |dir| dir.join(name))
        }
        _ => path.to_path_buf(),
    });
    absolute.display().to_string()
}

/// Ingests one file into the collection behind `index`.
pub fn ingest_file(
    kb: &mut KnowledgeBase,
    index: &mut CollectionIndex,
    embedder: &dyn EmbeddingBackend,
    options: &ChunkOptions,
    path: &Path,
) -> Result<FileOutcome, RagError> {
    let kind = kind_of(path).ok_or_else(|| RagError::Unsupported { path: path.to_owned() })?;
    let bytes = std::fs::read(path).map_err(|source| RagError::Io { path: path.to_owned(), source })?;
    let hash = content_hash_bytes(&bytes);
    let source = source_name(path);
    let collection = index.collection().clone();
    let previous = kb.document_hash(&collection, &source)?;
    if previous.as_deref() == Some(hash.as_str()) {
        return Ok(FileOutcome::Unchanged);
    }
    let document = extract_bytes(&bytes, kind).map_err(|error| error.with_path(path))?;
    let text = TextDocument {
        source,
        hash,
        title: document.title.clone(),
        kind: format!("{kind:?}").to_lowercase(),
        paragraphs: document.paragraphs,
    };
    ingest_text(kb, index, embedder, options, text, previous.is_some())
}

/// A document's text, already extracted (benchmarks ingest passages this way).
#[derive(Debug, Clone, PartialEq)]
pub struct TextDocument {
    /// Where it came from.
    pub source: String,
    /// Content hash.
    pub hash: String,
    /// Title.
    pub title: Option<String>,
    /// `text`, `markdown`, `html` or `pdf`.
    pub kind: String,
    /// Its paragraphs.
    pub paragraphs: Vec<String>,
}

/// Chunks, embeds and stores an extracted document; `replacing` says whether an earlier version exists.
pub fn ingest_text(
    kb: &mut KnowledgeBase,
    index: &mut CollectionIndex,
    embedder: &dyn EmbeddingBackend,
    options: &ChunkOptions,
    document: TextDocument,
    replacing: bool,
) -> Result<FileOutcome, RagError> {
    let pieces = chunk(&document.paragraphs, options, &|text: &str| embedder.count_tokens(text));
    if pieces.is_empty() {
        if replacing {
            remove_source(kb, index, &document.source)?;
        }
        return Ok(FileOutcome::Empty);
    }
    let mut chunks = Vec::with_capacity(pieces.len());
    for batch in pieces.chunks(EMBED_BATCH) {
        let texts: Vec<String> = batch.iter().map(|piece| piece.text.clone()).collect();
        let output = embedder.embed(&texts)?;
        for (piece, embedding) in batch.iter().zip(output.vectors) {
            chunks.push(NewChunk {
                position: piece.position,
                tokens: piece.tokens,
                text: piece.text.clone(),
                embedding,
            });
        }
    }
    let stored = NewDocument {
        source: document.source,
        hash: document.hash,
        title: document.title,
        kind: document.kind,
        chunks,
    };
    let collection = index.collection().clone();
    let change = kb.replace_document(&collection, &stored)?;
    for id in &change.removed {
        index.remove(*id)?;
    }
    for (id, chunk) in change.added.iter().zip(&stored.chunks) {
        index.add(*id, &chunk.embedding)?;
    }
    index.mark(change.generation);
    Ok(FileOutcome::Ingested { chunks: change.added.len(), replaced: replacing })
}

/// Removes a stored document; returns whether there was one.
pub fn remove_source(kb: &mut KnowledgeBase, index: &mut CollectionIndex, source: &str) -> Result<bool, RagError> {
    let collection = index.collection().clone();
    match kb.remove_document(&collection, source)? {
        Some(change) => {
            for id in &change.removed {
                index.remove(*id)?;
            }
            index.mark(change.generation);
            Ok(true)
        }
        None => Ok(false),
    }
}
