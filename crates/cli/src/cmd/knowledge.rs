//! `edgeway ingest`, `edgeway query` and `edgeway collections`: the knowledge base from the command line.

use std::sync::Arc;

use anyhow::Context;
use edgeway_core::EmbeddingBackend;
use edgeway_rag::chunk::ChunkOptions;
use edgeway_rag::index::CollectionIndex;
use edgeway_rag::ingest::{collect_files, ingest_file, remove_source, source_name, FileOutcome};
use edgeway_store::KnowledgeBase;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::app::engine::load_embedder;
use crate::app::DataDir;
use crate::cli::{CollectionsArgs, IngestArgs, KnowledgeArgs, QueryArgs};

/// Save the index after this many ingested files, so a crash costs little catching up.
const SAVE_EVERY: usize = 50;

fn open_embedder(
    data_dir: &DataDir,
    args: &KnowledgeArgs,
    collection_model: Option<&str>,
) -> anyhow::Result<Arc<edgeway_engine::Embedder>> {
    let spec = match (args.embedding_model.as_deref(), collection_model) {
        (Some(asked), Some(stored)) if asked != stored => anyhow::bail!(
            "the collection was embedded with '{stored}'; searching or adding with '{asked}' would mix vectors \
             from two models (use another collection, or leave out --embedding-model)"
        ),
        (Some(asked), _) => asked.to_owned(),
        (None, Some(stored)) => stored.to_owned(),
        (None, None) => edgeway_models::DEFAULT_EMBEDDING_MODEL.to_owned(),
    };
    load_embedder(&spec, &data_dir.cache(), !args.no_pull, args.threads)
}

pub fn ingest(data_dir: &DataDir, args: &IngestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.overlap_tokens < args.chunk_tokens,
        "--overlap-tokens ({}) must be smaller than --chunk-tokens ({})",
        args.overlap_tokens,
        args.chunk_tokens
    );
    let (db, dir) = data_dir.knowledge(args.knowledge.knowledge_path.as_deref());
    let mut kb =
        KnowledgeBase::open(&db).with_context(|| format!("cannot open the knowledge base {}", db.display()))?;
    let existing = kb.collection(&args.collection)?;
    if args.remove {
        let Some(collection) = existing else { anyhow::bail!("there is no collection '{}'", args.collection) };
        let mut index = CollectionIndex::open(&kb, &collection, &dir)?;
        for path in &args.paths {
            let source = source_name(path);
            if remove_source(&mut kb, &mut index, &source)? {
                println!("removed {source}");
            } else {
                println!("not in '{}': {source}", args.collection);
            }
        }
        index.save()?;
        return Ok(());
    }
    let embedder = open_embedder(data_dir, &args.knowledge, existing.as_ref().map(|c| c.embedding_model.as_str()))?;
    let info = embedder.embedding_info().clone();
    let max = info.max_tokens.saturating_sub(2).max(8);
    anyhow::ensure!(
        args.chunk_tokens <= max,
        "--chunk-tokens {} is more than {} reads ({max} besides its start and end markers)",
        args.chunk_tokens,
        info.id
    );
    let collection = kb.create_collection(&args.collection, &info.id, info.dims)?;
    let mut index = CollectionIndex::open(&kb, &collection, &dir)?;
    let files = collect_files(&args.paths)?;
    anyhow::ensure!(!files.is_empty(), "no text, Markdown, HTML or PDF files under the given paths");
    let options = ChunkOptions { max_tokens: args.chunk_tokens, overlap_tokens: args.overlap_tokens };
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("ingesting into '{}'", args.collection));
    let (mut added, mut replaced, mut unchanged, mut failed, mut chunks) = (0, 0, 0, 0, 0);
    let started = std::time::Instant::now();
    for (done, file) in files.iter().enumerate() {
        bar.set_message(file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned());
        match ingest_file(&mut kb, &mut index, embedder.as_ref(), &options, file) {
            Ok(FileOutcome::Ingested { chunks: n, replaced: was_there }) => {
                chunks += n;
                if was_there {
                    replaced += 1;
                } else {
                    added += 1;
                }
            }
            Ok(FileOutcome::Unchanged) => unchanged += 1,
            Ok(FileOutcome::Empty) => bar.suspend(|| eprintln!("{}: no text to index", file.display())),
            Err(error) => {
                failed += 1;
                bar.suspend(|| eprintln!("skipped {}: {error}", file.display()));
            }
        }
        if (done + 1) % SAVE_EVERY == 0 {
            index.save()?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    index.save()?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "'{}': {added} added, {replaced} replaced, {unchanged} unchanged, {failed} failed; {chunks} chunks in {seconds:.1} s \
         ({:.0} chunks/s); {} chunks in the collection",
        args.collection,
        chunks as f64 / seconds.max(1e-9),
        index.len()
    );
    anyhow::ensure!(failed == 0 || added + replaced + unchanged > 0, "no file could be ingested");
    Ok(())
}

pub fn query(data_dir: &DataDir, args: &QueryArgs) -> anyhow::Result<()> {
    let (db, dir) = data_dir.knowledge(args.knowledge.knowledge_path.as_deref());
    anyhow::ensure!(db.is_file(), "no knowledge base at {}; add documents with `edgeway ingest`", db.display());
    let kb = KnowledgeBase::open(&db)?;
    let collection = kb.collection(&args.collection)?.with_context(|| {
        format!("there is no collection '{}'; collections: {}", args.collection, kb.collection_names().join(", "))
    })?;
    let embedder = open_embedder(data_dir, &args.knowledge, Some(&collection.embedding_model))?;
    let index = CollectionIndex::open(&kb, &collection, &dir)?;
    let vector = embedder.embed(std::slice::from_ref(&args.text))?.vectors.remove(0);
    let results = index.search(&kb, &vector, args.k)?;
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|r| {
                json!({"score": r.score, "source": r.chunk.source, "title": r.chunk.title,
                       "position": r.chunk.position, "chunk_id": r.chunk.id, "text": r.chunk.text})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if results.is_empty() {
        println!("'{}' is empty", args.collection);
    }
    for (rank, r) in results.iter().enumerate() {
        let preview: String = r.chunk.text.chars().take(240).collect::<String>().replace('\n', " ");
        println!("{}. {:.3}  {} #{}\n   {preview}\n", rank + 1, r.score, r.chunk.source, r.chunk.position);
    }
    Ok(())
}

pub fn collections(data_dir: &DataDir, args: &CollectionsArgs) -> anyhow::Result<()> {
    let (db, _) = data_dir.knowledge(args.knowledge_path.as_deref());
    anyhow::ensure!(db.is_file(), "no knowledge base at {}; add documents with `edgeway ingest`", db.display());
    let kb = KnowledgeBase::open(&db)?;
    match &args.name {
        None => {
            println!("{:<20} {:>9} {:>9}  EMBEDDING MODEL", "COLLECTION", "DOCUMENTS", "CHUNKS");
            for (collection, documents, chunks) in kb.collections()? {
                println!("{:<20} {documents:>9} {chunks:>9}  {}", collection.name, collection.embedding_model);
            }
        }
        Some(name) => {
            let collection = kb.collection(name)?.with_context(|| format!("there is no collection '{name}'"))?;
            for document in kb.documents(&collection)? {
                println!("{:>5} chunks  {}  {}", document.chunks, document.source, document.title.unwrap_or_default());
            }
        }
    }
    Ok(())
}
