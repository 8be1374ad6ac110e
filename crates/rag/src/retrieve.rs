//! The [`Retriever`] the server uses: collections opened on first use and
//! refreshed when another process (an `edgeway ingest`) has changed them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use edgeway_core::{BackendError, EmbeddingBackend, Passage, QueryEmbedding, Retriever};
use edgeway_store::KnowledgeBase;

use crate::index::CollectionIndex;
use crate::RagError;

/// Searches the collections of one knowledge base with one embedding model.
pub struct KnowledgeRetriever {
    kb: Mutex<KnowledgeBase>,
    index_dir: PathBuf,
    embedder: Arc<dyn EmbeddingBackend>,
    open: Mutex<HashMap<String, Arc<Mutex<CollectionIndex>>>>,
}

impl KnowledgeRetriever {
    /// A retriever over the knowledge base at `db` (indexes in `index_dir`).
    pub fn open(
        db: &std::path::Path,
        index_dir: PathBuf,
        embedder: Arc<dyn EmbeddingBackend>,
    ) -> Result<Self, RagError> {
        Ok(Self { kb: Mutex::new(KnowledgeBase::open(db)?), index_dir, embedder, open: Mutex::new(HashMap::new()) })
    }

    fn search(
        &self,
        name: &str,
        query: &str,
        embedding: Option<&QueryEmbedding>,
        k: usize,
    ) -> Result<Vec<Passage>, RagError> {
        // The request's own embedding when it comes from this model (computed once per request);
        // else embed here, before taking any lock: it is the slow part.
        let info = self.embedder.embedding_info();
        let embedded_here;
        let vector: &[f32] = match embedding.filter(|e| e.model == info.id && e.vector.len() == info.dims) {
            Some(embedding) => &embedding.vector,
            None => {
                embedded_here =
                    self.embedder.embed(&[query.to_owned()])?.vectors.into_iter().next().unwrap_or_default();
                &embedded_here
            }
        };
        let kb = self.kb.lock().map_err(|_| RagError::Poisoned)?;
        let collection = kb
            .collection(name)?
            .ok_or_else(|| RagError::NoCollection { name: name.to_owned(), known: kb.collection_names() })?;
        let model = &self.embedder.embedding_info().id;
        if &collection.embedding_model != model {
            return Err(RagError::ModelMismatch {
                collection: name.to_owned(),
                stored: collection.embedding_model,
                serving: model.clone(),
            });
        }
        let index = {
            let mut open = self.open.lock().map_err(|_| RagError::Poisoned)?;
            match open.get(name) {
                Some(index) => index.clone(),
                None => {
                    let index = Arc::new(Mutex::new(CollectionIndex::open(&kb, &collection, &self.index_dir)?));
                    open.insert(name.to_owned(), index.clone());
                    index
                }
            }
        };
        let mut index = index.lock().map_err(|_| RagError::Poisoned)?;
        index.refresh(&kb)?;
        Ok(index
            .search(&kb, vector, k)?
            .into_iter()
            .map(|r| Passage {
                source: r.chunk.source,
                title: r.chunk.title,
                position: r.chunk.position,
                text: r.chunk.text,
                score: r.score,
            })
            .collect())
    }
}

impl Retriever for KnowledgeRetriever {
    fn retrieve(
        &self,
        collection: &str,
        query: &str,
        embedding: Option<&QueryEmbedding>,
        k: usize,
    ) -> Result<Vec<Passage>, BackendError> {
        self.search(collection, query, embedding, k).map_err(|error| match error {
            RagError::NoCollection { .. } | RagError::ModelMismatch { .. } => {
                BackendError::InvalidRequest(error.to_string())
            }
            RagError::Embed(error) => error,
            other => BackendError::Internal(other.to_string()),
        })
    }

    fn collections(&self) -> Vec<String> {
        self.kb.lock().map(|kb| kb.collection_names()).unwrap_or_default()
    }
}
