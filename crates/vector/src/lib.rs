//! The approximate nearest-neighbour index behind retrieval: HNSW from
//! [usearch](https://github.com/unum-cloud/usearch), over unit vectors with
//! inner-product similarity (= cosine).
//!
//! The index is a *cache* of the vectors in the knowledge base (SQLite holds
//! the truth): it is saved whole with [`VectorIndex::save`] (a temporary file,
//! then a rename, so a crash never leaves half a file) and brought up to date
//! after loading by adding and removing keys. Keys are chunk ids.
//!
//! Adds and searches may run concurrently from several threads.

use std::path::{Path, PathBuf};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

/// Graph degree: 16 links per node is usearch's default and enough for 384-dim text vectors.
const CONNECTIVITY: usize = 16;
/// Candidates kept while inserting: higher builds a better graph, more slowly.
const EXPANSION_ADD: usize = 128;
/// Candidates kept while searching: the recall/latency knob (see `bench/rag.sh`).
pub const DEFAULT_EXPANSION_SEARCH: usize = 64;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// usearch refused an operation.
    #[error("vector index: {0}")]
    Index(String),
    /// A vector has the wrong length.
    #[error("a vector has {got} dimensions, the index holds {expected}")]
    Dimensions {
        /// The index's.
        expected: usize,
        /// The vector's.
        got: usize,
    },
    /// The index file could not be read or written.
    #[error("vector index file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// A search result: the key and its similarity to the query (higher is closer; 1 is identical).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The chunk id.
    pub key: u64,
    /// Inner product with the query, in `[-1, 1]` for unit vectors.
    pub score: f32,
}

/// An HNSW index of unit vectors.
pub struct VectorIndex {
    index: Index,
    dims: usize,
}

impl VectorIndex {
    /// An empty index for vectors of `dims`.
    pub fn new(dims: usize) -> Result<Self, VectorError> {
        let options = IndexOptions {
            dimensions: dims,
            metric: MetricKind::IP,
            quantization: ScalarKind::F32,
            connectivity: CONNECTIVITY,
            expansion_add: EXPANSION_ADD,
            expansion_search: DEFAULT_EXPANSION_SEARCH,
            multi: false,
        };
        let index = Index::new(&options).map_err(|e| VectorError::Index(e.to_string()))?;
        index.reserve(1024).map_err(|e| VectorError::Index(e.to_string()))?;
        Ok(Self { index, dims })
    }

    /// Loads an index saved by [`VectorIndex::save`].
    pub fn load(path: &Path, dims: usize) -> Result<Self, VectorError> {
        let file_error = |reason: String| VectorError::File { path: path.to_owned(), reason };
        let shown = path.to_str().ok_or_else(|| file_error("the path is not UTF-8".into()))?;
        let metadata = Index::metadata(shown).map_err(|e| file_error(e.to_string()))?;
        if metadata.dimensions as usize != dims {
            return Err(file_error(format!("holds {}-dimensional vectors, not {dims}", metadata.dimensions)));
        }
        let index = Self::new(dims)?;
        index.index.load(shown).map_err(|e| file_error(e.to_string()))?;
        index.index.change_expansion_search(DEFAULT_EXPANSION_SEARCH);
        Ok(index)
    }

    /// Writes the index to `path` atomically (a temporary file, synced, then renamed).
    pub fn save(&self, path: &Path) -> Result<(), VectorError> {
        let file_error = |reason: String| VectorError::File { path: path.to_owned(), reason };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| file_error(e.to_string()))?;
        }
        let partial = path.with_extension("partial");
        let shown = partial.to_str().ok_or_else(|| file_error("the path is not UTF-8".into()))?;
        let written = self
            .index
            .save(shown)
            .map_err(|e| file_error(e.to_string()))
            .and_then(|()| {
                std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(|e| file_error(e.to_string()))
            })
            .and_then(|()| std::fs::rename(&partial, path).map_err(|e| file_error(e.to_string())));
        if written.is_err() {
            // A full disk: the old index stays as it was, and the half-written copy gives its space back.
            let _ = std::fs::remove_file(&partial);
        }
        written
    }

    /// Vector length.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Vectors in the index.
    pub fn len(&self) -> usize {
        self.index.size()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key` is in the index.
    pub fn contains(&self, key: u64) -> bool {
        self.index.contains(key)
    }

    /// Makes room for `additional` more vectors (adds beyond capacity fail otherwise).
    pub fn reserve(&self, additional: usize) -> Result<(), VectorError> {
        let needed = self.index.size() + additional;
        if needed > self.index.capacity() {
            let target = needed.max(self.index.capacity() * 2);
            self.index.reserve(target).map_err(|e| VectorError::Index(e.to_string()))?;
        }
        Ok(())
    }

    /// Adds (or replaces) the vector under `key`.
    pub fn add(&self, key: u64, vector: &[f32]) -> Result<(), VectorError> {
        if vector.len() != self.dims {
            return Err(VectorError::Dimensions { expected: self.dims, got: vector.len() });
        }
        if self.index.contains(key) {
            self.index.remove(key).map_err(|e| VectorError::Index(e.to_string()))?;
        }
        self.reserve(1)?;
        self.index.add(key, vector).map_err(|e| VectorError::Index(e.to_string()))
    }

    /// Removes `key` if present.
    pub fn remove(&self, key: u64) -> Result<(), VectorError> {
        self.index.remove(key).map(|_| ()).map_err(|e| VectorError::Index(e.to_string()))
    }

    /// Sets how many candidates a search explores (recall against speed).
    pub fn set_expansion_search(&self, expansion: usize) {
        self.index.change_expansion_search(expansion.max(1));
    }

    /// The `k` closest vectors to `query`, closest first.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, VectorError> {
        if query.len() != self.dims {
            return Err(VectorError::Dimensions { expected: self.dims, got: query.len() });
        }
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let matches = self.index.search(query, k).map_err(|e| VectorError::Index(e.to_string()))?;
        // usearch reports inner-product *distance* (1 - dot).
        Ok(matches.keys.iter().zip(&matches.distances).map(|(&key, &d)| Hit { key, score: 1.0 - d }).collect())
    }

    /// Bytes of memory the index uses.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_usage()
    }
}

/// Exact search by brute force over `(key, vector)` pairs: the reference the index's recall is measured against.
pub fn exact_search<'a>(vectors: impl IntoIterator<Item = (u64, &'a [f32])>, query: &[f32], k: usize) -> Vec<Hit> {
    let mut hits: Vec<Hit> = vectors
        .into_iter()
        .map(|(key, vector)| Hit { key, score: vector.iter().zip(query).map(|(a, b)| a * b).sum() })
        .collect();
    let order = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key));
    if k < hits.len() {
        hits.select_nth_unstable_by(k, order);
        hits.truncate(k);
    }
    hits.sort_by(order);
    // A fresh allocation: the scored list can be far larger than k, and callers keep the result.
    hits.into_iter().collect::<Vec<_>>().into_boxed_slice().into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random unit vectors.
    fn vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dims)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                    })
                    .collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect()
    }

    #[test]
    fn finds_what_exact_search_finds() {
        let data = vectors(2000, 32, 7);
        let index = VectorIndex::new(32).unwrap();
        for (key, vector) in data.iter().enumerate() {
            index.add(key as u64, vector).unwrap();
        }
        assert_eq!(index.len(), 2000);
        let mut found = 0;
        for query in vectors(50, 32, 99) {
            let exact = exact_search(data.iter().enumerate().map(|(k, v)| (k as u64, v.as_slice())), &query, 10);
            let approx = index.search(&query, 10).unwrap();
            found += approx.iter().filter(|h| exact.iter().any(|e| e.key == h.key)).count();
            assert!((approx[0].score - exact[0].score).abs() < 1e-4 || approx[0].score <= exact[0].score);
        }
        assert!(found as f64 / 500.0 >= 0.95, "recall@10 {}", found as f64 / 500.0);
    }

    #[test]
    fn saves_loads_removes_and_checks_dimensions() {
        let dir = std::env::temp_dir().join(format!("edgeway-vector-{}", std::process::id()));
        let path = dir.join("index.usearch");
        let data = vectors(100, 8, 1);
        let index = VectorIndex::new(8).unwrap();
        for (key, vector) in data.iter().enumerate() {
            index.add(key as u64 + 1, vector).unwrap();
        }
        index.remove(5).unwrap();
        index.save(&path).unwrap();
        let loaded = VectorIndex::load(&path, 8).unwrap();
        assert_eq!(loaded.len(), 99);
        assert!(!loaded.contains(5) && loaded.contains(6));
        assert_eq!(loaded.search(&data[9], 1).unwrap()[0].key, 10);
        assert!(matches!(VectorIndex::load(&path, 16), Err(VectorError::File { .. })));
        assert!(matches!(loaded.add(1, &[0.0; 3]), Err(VectorError::Dimensions { .. })));
        std::fs::write(&path, b"not an index").unwrap();
        assert!(VectorIndex::load(&path, 8).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
