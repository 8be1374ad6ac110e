//! The knowledge base: collections of documents, their chunks and the chunks'
//! embeddings, in one SQLite file (`DATA_DIR/knowledge.db`).
//!
//! SQLite is the truth; the vector index is a cache rebuilt from it. Every
//! change to a collection is one transaction that also bumps the
//! collection's *generation* and records removed chunk ids as *tombstones*,
//! so an index saved at generation `g` is brought up to date exactly by
//! adding the chunks with ids above its highest and removing the tombstones
//! after `g`. Chunk ids are never reused (AUTOINCREMENT). A kill during
//! ingest loses only the document whose transaction had not committed.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::record::now_ms;
use crate::writer::open_with;
use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: collections, documents, chunks with embeddings, tombstones.
    "CREATE TABLE collections (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        embedding_model TEXT NOT NULL,
        dims INTEGER NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        source TEXT NOT NULL,
        hash TEXT NOT NULL,
        title TEXT,
        kind TEXT NOT NULL,
        ingested_ms INTEGER NOT NULL,
        UNIQUE (collection_id, source)
    );
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        collection_id INTEGER NOT NULL,
        position INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        text TEXT NOT NULL,
        embedding BLOB NOT NULL
    );
    CREATE INDEX chunks_document ON chunks(document_id);
    CREATE INDEX chunks_collection ON chunks(collection_id, id);
    CREATE TABLE tombstones (
        collection_id INTEGER NOT NULL,
        chunk_id INTEGER NOT NULL,
        generation INTEGER NOT NULL
    );
    CREATE INDEX tombstones_generation ON tombstones(collection_id, generation);",
];

/// A collection: documents embedded with one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    /// Row id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The embedding model its vectors come from (queries must use the same).
    pub embedding_model: String,
    /// Vector length.
    pub dims: usize,
    /// Bumped by every change.
    pub generation: i64,
}

/// A chunk to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    /// Its order in the document.
    pub position: usize,
    /// Tokens, as the embedding model counts them.
    pub tokens: usize,
    /// The text.
    pub text: String,
    /// Its unit-length embedding.
    pub embedding: Vec<f32>,
}

/// A document to store (replacing any earlier version from the same source).
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    /// Where it came from (a path, as given).
    pub source: String,
    /// Content hash, to skip unchanged files.
    pub hash: String,
    /// Its title, if it has one.
    pub title: Option<String>,
    /// `text`, `markdown`, `html` or `pdf`.
    pub kind: String,
    /// Its chunks.
    pub chunks: Vec<NewChunk>,
}

/// A stored document, for listings.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDocument {
    /// Where it came from.
    pub source: String,
    /// Content hash.
    pub hash: String,
    /// Title.
    pub title: Option<String>,
    /// Chunks it has.
    pub chunks: usize,
}

/// A chunk with where it came from, for prompts and citations.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRecord {
    /// Chunk id (the vector index key).
    pub id: i64,
    /// The document's source.
    pub source: String,
    /// The document's title.
    pub title: Option<String>,
    /// Its order in the document.
    pub position: usize,
    /// The text.
    pub text: String,
}

/// What a replace or remove changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// Ids of the chunks added.
    pub added: Vec<i64>,
    /// Ids of the chunks removed.
    pub removed: Vec<i64>,
    /// The collection's generation after the change.
    pub generation: i64,
}

/// A handle on the knowledge base.
pub struct KnowledgeBase {
    conn: Connection,
    path: PathBuf,
}

/// Vectors are stored as little-endian `f32`s.
fn to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The vector a blob holds.
pub fn from_blob(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

impl KnowledgeBase {
    /// Opens (creating and migrating if needed) the knowledge base at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = open_with(&path, MIGRATIONS)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|source| StoreError::Sqlite { path: path.display().to_string(), source })?;
        Ok(Self { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite { path: self.path.display().to_string(), source }
    }

    /// The collection called `name`, if it exists.
    pub fn collection(&self, name: &str) -> Result<Option<Collection>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, name, embedding_model, dims, generation FROM collections WHERE name = ?1",
                [name],
                |row| {
                    Ok(Collection {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        embedding_model: row.get(2)?,
                        dims: row.get::<_, i64>(3)? as usize,
                        generation: row.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(self.error())
    }

    /// Every collection with its document and chunk counts.
    pub fn collections(&self) -> Result<Vec<(Collection, usize, usize)>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT c.id, c.name, c.embedding_model, c.dims, c.generation,
                    (SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id),
                    (SELECT COUNT(*) FROM chunks k WHERE k.collection_id = c.id)
                 FROM collections c ORDER BY c.name",
            )
            .map_err(self.error())?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    Collection {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        embedding_model: row.get(2)?,
                        dims: row.get::<_, i64>(3)? as usize,
                        generation: row.get(4)?,
                    },
                    row.get::<_, i64>(5)? as usize,
                    row.get::<_, i64>(6)? as usize,
                ))
            })
            .map_err(self.error())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error())?;
        Ok(rows)
    }

    /// The names of every collection (empty if they cannot be read), for error messages.
    pub fn collection_names(&self) -> Vec<String> {
        self.collections().unwrap_or_default().into_iter().map(|(collection, _, _)| collection.name).collect()
    }

    /// The collection called `name`, created for `embedding_model` if missing.
    pub fn create_collection(&self, name: &str, embedding_model: &str, dims: usize) -> Result<Collection, StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO collections (name, embedding_model, dims, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![name, embedding_model, dims as i64, now_ms()],
            )
            .map_err(self.error())?;
        self.collection(name)?.ok_or_else(|| StoreError::Sqlite {
            path: self.path.display().to_string(),
            source: rusqlite::Error::QueryReturnedNoRows,
        })
    }

    /// The stored hash of `source`, to skip files that did not change.
    pub fn document_hash(&self, collection: &Collection, source: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT hash FROM documents WHERE collection_id = ?1 AND source = ?2",
                params![collection.id, source],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.error())
    }

    /// The documents of a collection.
    pub fn documents(&self, collection: &Collection) -> Result<Vec<StoredDocument>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT d.source, d.hash, d.title, (SELECT COUNT(*) FROM chunks k WHERE k.document_id = d.id)
                 FROM documents d WHERE d.collection_id = ?1 ORDER BY d.source",
            )
            .map_err(self.error())?;
        let rows = statement
            .query_map([collection.id], |row| {
                Ok(StoredDocument {
                    source: row.get(0)?,
                    hash: row.get(1)?,
                    title: row.get(2)?,
                    chunks: row.get::<_, i64>(3)? as usize,
                })
            })
            .map_err(self.error())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error())?;
        Ok(rows)
    }

    /// Stores `document`, replacing an earlier version from the same source, in one transaction.
    pub fn replace_document(&mut self, collection: &Collection, document: &NewDocument) -> Result<Change, StoreError> {
        let path = self.path.display().to_string();
        let sqlite = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(sqlite)?;
        let generation = bump(&tx, collection.id).map_err(sqlite)?;
        let removed = remove_in(&tx, collection.id, &document.source, generation).map_err(sqlite)?;
        tx.execute(
            "INSERT INTO documents (collection_id, source, hash, title, kind, ingested_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![collection.id, document.source, document.hash, document.title, document.kind, now_ms()],
        )
        .map_err(sqlite)?;
        let document_id = tx.last_insert_rowid();
        let mut added = Vec::with_capacity(document.chunks.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO chunks (document_id, collection_id, position, tokens, text, embedding)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sqlite)?;
            for chunk in &document.chunks {
                insert
                    .execute(params![
                        document_id,
                        collection.id,
                        chunk.position as i64,
                        chunk.tokens as i64,
                        chunk.text,
                        to_blob(&chunk.embedding)
                    ])
                    .map_err(sqlite)?;
                added.push(tx.last_insert_rowid());
            }
        }
        tx.commit().map_err(sqlite)?;
        Ok(Change { added, removed, generation })
    }

    /// Removes the document from `source`; `None` when there is none.
    pub fn remove_document(&mut self, collection: &Collection, source: &str) -> Result<Option<Change>, StoreError> {
        let path = self.path.display().to_string();
        let sqlite = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(sqlite)?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM documents WHERE collection_id = ?1 AND source = ?2",
                params![collection.id, source],
                |_| Ok(true),
            )
            .optional()
            .map_err(sqlite)?
            .unwrap_or(false);
        if !exists {
            return Ok(None);
        }
        let generation = bump(&tx, collection.id).map_err(sqlite)?;
        let removed = remove_in(&tx, collection.id, source, generation).map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        Ok(Some(Change { added: Vec::new(), removed, generation }))
    }

    /// The collection's current generation (cheap: for readers deciding whether to refresh).
    pub fn generation(&self, collection_id: i64) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT generation FROM collections WHERE id = ?1", [collection_id], |row| row.get(0))
            .map_err(self.error())
    }

    /// Chunks with ids above `after`, as (id, embedding), in id order.
    pub fn embeddings_after(&self, collection_id: i64, after: i64) -> Result<Vec<(i64, Vec<f32>)>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT id, embedding FROM chunks WHERE collection_id = ?1 AND id > ?2 ORDER BY id")
            .map_err(self.error())?;
        let rows = statement
            .query_map(params![collection_id, after], |row| Ok((row.get(0)?, from_blob(&row.get::<_, Vec<u8>>(1)?))))
            .map_err(self.error())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error())?;
        Ok(rows)
    }

    /// Chunk ids removed after generation `after`.
    pub fn tombstones_after(&self, collection_id: i64, after: i64) -> Result<Vec<i64>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT chunk_id FROM tombstones WHERE collection_id = ?1 AND generation > ?2")
            .map_err(self.error())?;
        let rows = statement
            .query_map(params![collection_id, after], |row| row.get(0))
            .map_err(self.error())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error())?;
        Ok(rows)
    }

    /// The chunks with these ids, in the order given (missing ids are skipped).
    pub fn chunks(&self, ids: &[i64]) -> Result<Vec<ChunkRecord>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT k.id, d.source, d.title, k.position, k.text FROM chunks k JOIN documents d ON d.id = k.document_id
                 WHERE k.id = ?1",
            )
            .map_err(self.error())?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let row = statement
                .query_row([id], |row| {
                    Ok(ChunkRecord {
                        id: row.get(0)?,
                        source: row.get(1)?,
                        title: row.get(2)?,
                        position: row.get::<_, i64>(3)? as usize,
                        text: row.get(4)?,
                    })
                })
                .optional()
                .map_err(self.error())?;
            found.extend(row);
        }
        Ok(found)
    }
}

/// Bumps and returns the collection's generation.
fn bump(tx: &rusqlite::Transaction, collection_id: i64) -> rusqlite::Result<i64> {
    tx.execute("UPDATE collections SET generation = generation + 1 WHERE id = ?1", [collection_id])?;
    tx.query_row("SELECT generation FROM collections WHERE id = ?1", [collection_id], |row| row.get(0))
}

/// Deletes the document from `source` and its chunks, leaving tombstones; returns the removed chunk ids.
fn remove_in(
    tx: &rusqlite::Transaction,
    collection_id: i64,
    source: &str,
    generation: i64,
) -> rusqlite::Result<Vec<i64>> {
    let removed: Vec<i64> = {
        let mut statement = tx.prepare(
            "SELECT k.id FROM chunks k JOIN documents d ON d.id = k.document_id
             WHERE d.collection_id = ?1 AND d.source = ?2",
        )?;
        let rows = statement.query_map(params![collection_id, source], |row| row.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for id in &removed {
        tx.execute(
            "INSERT INTO tombstones (collection_id, chunk_id, generation) VALUES (?1, ?2, ?3)",
            params![collection_id, id, generation],
        )?;
    }
    tx.execute("DELETE FROM documents WHERE collection_id = ?1 AND source = ?2", params![collection_id, source])?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(source: &str, texts: &[&str]) -> NewDocument {
        NewDocument {
            source: source.into(),
            hash: format!("h-{}", texts.len()),
            title: None,
            kind: "text".into(),
            chunks: texts
                .iter()
                .enumerate()
                .map(|(i, t)| NewChunk { position: i, tokens: 3, text: (*t).into(), embedding: vec![i as f32, 1.0] })
                .collect(),
        }
    }

    #[test]
    fn replacing_a_document_tombstones_its_old_chunks() {
        let dir = std::env::temp_dir().join(format!("edgeway-knowledge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut kb = KnowledgeBase::open(dir.join("k.db")).unwrap();
        let docs = kb.create_collection("docs", "minilm", 2).unwrap();
        assert_eq!(kb.create_collection("docs", "minilm", 2).unwrap().id, docs.id);
        let first = kb.replace_document(&docs, &document("a.txt", &["one", "two"])).unwrap();
        assert_eq!((first.added.len(), first.removed.len(), first.generation), (2, 0, 1));
        let second = kb.replace_document(&docs, &document("a.txt", &["uno"])).unwrap();
        assert_eq!(second.removed, first.added);
        assert!(second.added[0] > first.added[1], "ids are never reused");
        assert_eq!(kb.tombstones_after(docs.id, 1).unwrap(), first.added);
        assert!(kb.tombstones_after(docs.id, 2).unwrap().is_empty());
        assert_eq!(kb.embeddings_after(docs.id, 0).unwrap(), vec![(second.added[0], vec![0.0, 1.0])]);
        let chunks = kb.chunks(&[second.added[0], 999]).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!((chunks[0].source.as_str(), chunks[0].text.as_str()), ("a.txt", "uno"));
        assert_eq!(kb.documents(&docs).unwrap()[0].chunks, 1);
        let removed = kb.remove_document(&docs, "a.txt").unwrap().unwrap();
        assert_eq!(removed.removed, second.added);
        assert!(kb.remove_document(&docs, "a.txt").unwrap().is_none());
        assert_eq!(kb.generation(docs.id).unwrap(), 3);
        assert_eq!(kb.collections().unwrap()[0].2, 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
