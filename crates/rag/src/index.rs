//! A collection's vector index, kept in step with the knowledge base.
//!
//! The index file (`NAME.usearch`) and its sidecar (`NAME.json`: the
//! generation and highest chunk id it holds) are a cache. Opening loads
//! them if they fit, then [`CollectionIndex::refresh`] applies what changed
//! since (tombstoned chunks out, newer chunks in), so a reader always sees
//! every committed chunk, even while another process is ingesting, and a
//! crash at any point costs at most a rebuild from SQLite.

use std::path::{Path, PathBuf};

use edgeway_store::knowledge::{ChunkRecord, Collection, KnowledgeBase};
use edgeway_vector::VectorIndex;
use serde::{Deserialize, Serialize};

use crate::RagError;

/// What the saved index holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Sidecar {
    generation: i64,
    max_chunk_id: i64,
    dims: usize,
}

/// A retrieved chunk and its similarity to the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieved {
    /// The chunk and where it came from.
    pub chunk: ChunkRecord,
    /// Cosine similarity to the query.
    pub score: f32,
}

/// A collection's index, loaded and up to date.
pub struct CollectionIndex {
    collection: Collection,
    index: VectorIndex,
    generation: i64,
    max_chunk_id: i64,
    dir: PathBuf,
}

impl CollectionIndex {
    /// Loads the saved index for `collection` from `dir` (or starts empty) and brings it up to date.
    pub fn open(kb: &KnowledgeBase, collection: &Collection, dir: &Path) -> Result<Self, RagError> {
        let (index_path, sidecar_path) = paths(dir, &collection.name);
        let saved = std::fs::read(&sidecar_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Sidecar>(&bytes).ok())
            .filter(|sidecar| sidecar.dims == collection.dims && sidecar.generation <= collection.generation);
        let loaded = saved.and_then(|sidecar| match VectorIndex::load(&index_path, collection.dims) {
            Ok(index) => Some((index, sidecar)),
            Err(error) => {
                tracing::warn!(%error, "the saved vector index is unusable; rebuilding it from the knowledge base");
                None
            }
        });
        let (index, generation, max_chunk_id) = match loaded {
            Some((index, sidecar)) => (index, sidecar.generation, sidecar.max_chunk_id),
            None => (VectorIndex::new(collection.dims)?, 0, 0),
        };
        let mut opened =
            Self { collection: collection.clone(), index, generation, max_chunk_id, dir: dir.to_path_buf() };
        opened.refresh(kb)?;
        Ok(opened)
    }

    /// Applies changes committed since the index was last brought up to date; returns whether there were any.
    pub fn refresh(&mut self, kb: &KnowledgeBase) -> Result<bool, RagError> {
        let generation = kb.generation(self.collection.id)?;
        if generation == self.generation {
            return Ok(false);
        }
        for id in kb.tombstones_after(self.collection.id, self.generation)? {
            self.index.remove(id as u64)?;
        }
        let fresh = kb.embeddings_after(self.collection.id, self.max_chunk_id)?;
        self.index.reserve(fresh.len())?;
        for (id, vector) in fresh {
            self.index.add(id as u64, &vector)?;
            self.max_chunk_id = self.max_chunk_id.max(id);
        }
        self.generation = generation;
        Ok(true)
    }

    /// Adds chunks just stored (ingest's fast path; `refresh` would find them too).
    pub fn add(&mut self, id: i64, vector: &[f32]) -> Result<(), RagError> {
        self.index.add(id as u64, vector)?;
        self.max_chunk_id = self.max_chunk_id.max(id);
        Ok(())
    }

    /// Removes chunks just deleted.
    pub fn remove(&mut self, id: i64) -> Result<(), RagError> {
        Ok(self.index.remove(id as u64)?)
    }

    /// Records that the index now reflects `generation`, after applying that change by hand.
    /// Only the very next generation counts: if another writer committed in between, the
    /// next [`CollectionIndex::refresh`] applies both (adds and removes are idempotent).
    pub fn mark(&mut self, generation: i64) {
        if generation == self.generation + 1 {
            self.generation = generation;
        }
    }

    /// Saves the index and its sidecar (the index first: a sidecar never describes a newer file than exists).
    pub fn save(&self) -> Result<(), RagError> {
        let (index_path, sidecar_path) = paths(&self.dir, &self.collection.name);
        self.index.save(&index_path)?;
        let sidecar =
            Sidecar { generation: self.generation, max_chunk_id: self.max_chunk_id, dims: self.collection.dims };
        let partial = sidecar_path.with_extension("json.partial");
        let io = |e: std::io::Error| RagError::Io { path: sidecar_path.clone(), source: e };
        let written = std::fs::write(&partial, serde_json::to_vec(&sidecar).unwrap_or_default())
            .and_then(|()| std::fs::rename(&partial, &sidecar_path));
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written.map_err(io)
    }

    /// The collection.
    pub fn collection(&self) -> &Collection {
        &self.collection
    }

    /// Chunks in the index.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The underlying index (for benchmarks and tuning).
    pub fn vectors(&self) -> &VectorIndex {
        &self.index
    }

    /// The `k` chunks closest to `query` (a unit vector from the collection's embedding model).
    pub fn search(&self, kb: &KnowledgeBase, query: &[f32], k: usize) -> Result<Vec<Retrieved>, RagError> {
        let hits = self.index.search(query, k)?;
        let ids: Vec<i64> = hits.iter().map(|h| h.key as i64).collect();
        let chunks = kb.chunks(&ids)?;
        Ok(hits
            .iter()
            .filter_map(|hit| {
                let chunk = chunks.iter().find(|c| c.id == hit.key as i64)?.clone();
                Some(Retrieved { chunk, score: hit.score })
            })
            .collect())
    }
}

/// The index file and its sidecar for a collection.
fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let safe: String =
        name.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    (dir.join(format!("{safe}.usearch")), dir.join(format!("{safe}.json")))
}
