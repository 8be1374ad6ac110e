//! `edgeway bench vectors`: the knowledge base at scale. Ingests N chunks of
//! real text (windows over the SQuAD and BoolQ passages), embedded with the
//! real model through the real store, then measures the HNSW index against
//! exact search: recall@10, search latency p50/p99, index size and RSS.

use std::time::Instant;

use anyhow::Context;
use edgeway_core::EmbeddingBackend;
use edgeway_rag::index::CollectionIndex;
use edgeway_store::knowledge::{NewChunk, NewDocument};
use edgeway_store::KnowledgeBase;
use edgeway_vector::{exact_search, DEFAULT_EXPANSION_SEARCH};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::app::DataDir;
use crate::cli::VectorsBenchArgs;

/// Words per chunk window.
const WINDOW_WORDS: usize = 40;
/// Chunks per stored document (one transaction each).
const CHUNKS_PER_DOCUMENT: usize = 64;

pub fn run(data_dir: &DataDir, args: &VectorsBenchArgs) -> anyhow::Result<()> {
    let root = data_dir.eval_package(false)?;
    let mut passages: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for set in ["squad", "boolq"] {
        for item in edgeway_eval::dataset::load(set, &root)? {
            if let Some(context) = item.context.filter(|c| seen.insert(c.clone())) {
                passages.push(context);
            }
        }
    }
    let chunks = windows(&passages, args.chunks);
    anyhow::ensure!(chunks.len() == args.chunks, "only {} distinct windows in the passages", chunks.len());
    let questions: Vec<String> =
        edgeway_eval::dataset::load("squad", &root)?.into_iter().map(|item| item.question).take(args.queries).collect();

    let work = tempdir(data_dir)?;
    let embedder = crate::app::engine::load_embedder(
        edgeway_models::DEFAULT_EMBEDDING_MODEL,
        &data_dir.cache(),
        true,
        Some(args.threads),
    )?;
    let info = embedder.embedding_info().clone();
    // The scratch folder is laid out as a data directory of its own.
    let (kb_path, index_dir) = DataDir::new(&work).knowledge(None);
    let mut kb = KnowledgeBase::open(&kb_path)?;
    let collection = kb.create_collection("bench", &info.id, info.dims)?;
    let mut index = CollectionIndex::open(&kb, &collection, &index_dir)?;

    let bar = ProgressBar::new(chunks.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("ingesting [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut vectors: Vec<(u64, Vec<f32>)> = Vec::with_capacity(chunks.len());
    let started = Instant::now();
    let mut embed_seconds = 0.0;
    for (number, group) in chunks.chunks(CHUNKS_PER_DOCUMENT).enumerate() {
        let texts: Vec<String> = group.to_vec();
        let embed_started = Instant::now();
        let output = embedder.embed(&texts)?;
        embed_seconds += embed_started.elapsed().as_secs_f64();
        let document = NewDocument {
            source: format!("bench/{number}"),
            hash: number.to_string(),
            title: None,
            kind: "text".into(),
            chunks: texts
                .into_iter()
                .zip(output.vectors)
                .enumerate()
                .map(|(position, (text, embedding))| NewChunk { position, tokens: 0, text, embedding })
                .collect(),
        };
        let change = kb.replace_document(&collection, &document)?;
        for (id, chunk) in change.added.iter().zip(document.chunks) {
            index.add(*id, &chunk.embedding)?;
            vectors.push((*id as u64, chunk.embedding));
        }
        index.mark(change.generation);
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    let ingest_seconds = started.elapsed().as_secs_f64();
    index.save()?;
    let index_bytes = std::fs::metadata(index_dir.join("bench.usearch")).map_or(0, |m| m.len());
    let db_bytes = std::fs::metadata(&kb_path).map_or(0, |m| m.len());

    let queries = embedder.embed(&questions)?.vectors;
    let exact: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| {
            exact_search(vectors.iter().map(|(k, v)| (*k, v.as_slice())), q, 10).into_iter().map(|h| h.key).collect()
        })
        .collect();
    let mut rows = Vec::new();
    println!(
        "{} chunks of {} words ({} dims); {} queries (SQuAD questions); 1 search thread",
        chunks.len(),
        WINDOW_WORDS,
        info.dims,
        queries.len()
    );
    println!("{:>10} {:>11} {:>10} {:>10} {:>10}", "expansion", "recall@10", "p50 ms", "p99 ms", "mean ms");
    for expansion in [16, 32, DEFAULT_EXPANSION_SEARCH, 128] {
        index.vectors().set_expansion_search(expansion);
        let mut latencies = Vec::with_capacity(queries.len());
        let mut found = 0usize;
        for (query, truth) in queries.iter().zip(&exact) {
            let t = Instant::now();
            let hits = index.vectors().search(query, 10)?;
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            found += hits.iter().filter(|h| truth.contains(&h.key)).count();
        }
        latencies.sort_by(f64::total_cmp);
        let recall = found as f64 / (10 * queries.len()).max(1) as f64;
        let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
        let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
        let marker = if expansion == DEFAULT_EXPANSION_SEARCH { " (default)" } else { "" };
        println!("{expansion:>10} {recall:>11.4} {:>10.3} {:>10.3} {mean:>10.3}{marker}", p(0.5), p(0.99));
        rows.push(json!({"expansion_search": expansion, "recall_at_10": recall, "p50_ms": p(0.5), "p99_ms": p(0.99), "mean_ms": mean}));
    }
    index.vectors().set_expansion_search(DEFAULT_EXPANSION_SEARCH);
    let rss = edgeway_compare::peak_rss(std::process::id()).map_or(0.0, |bytes| bytes as f64 / 1048576.0);
    println!(
        "ingest: {:.0} chunks/s end to end ({:.0} chunks/s embedding alone, {} threads); index file {:.1} MiB, \
         knowledge base {:.1} MiB, index in memory {:.1} MiB, peak RSS {rss:.0} MiB",
        chunks.len() as f64 / ingest_seconds,
        chunks.len() as f64 / embed_seconds,
        args.threads,
        index_bytes as f64 / 1048576.0,
        db_bytes as f64 / 1048576.0,
        index.vectors().memory_bytes() as f64 / 1048576.0,
    );
    if let Some(path) = &args.json {
        let report = json!({
            "chunks": chunks.len(), "queries": queries.len(), "dims": info.dims, "threads": args.threads,
            "ingest_chunks_per_s": chunks.len() as f64 / ingest_seconds,
            "embed_chunks_per_s": chunks.len() as f64 / embed_seconds,
            "index_file_bytes": index_bytes, "knowledge_db_bytes": db_bytes,
            "index_memory_bytes": index.vectors().memory_bytes(), "peak_rss_mib": rss,
            "search": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// `count` distinct windows of words over the passages: first at stride `WINDOW_WORDS`, then at
/// shifted offsets, so there are enough real, distinct chunks for any count the text allows.
fn windows(passages: &[String], count: usize) -> Vec<String> {
    let words: Vec<Vec<&str>> = passages.iter().map(|p| p.split_whitespace().collect()).collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count);
    // Start offsets spread over the window, so early ones overlap least.
    const OFFSETS: [usize; 40] = [
        0, 20, 10, 30, 5, 25, 15, 35, 2, 22, 12, 32, 7, 27, 17, 37, 1, 21, 11, 31, 6, 26, 16, 36, 3, 23, 13, 33, 8, 28,
        18, 38, 4, 24, 14, 34, 9, 29, 19, 39,
    ];
    for offset in OFFSETS {
        for passage in &words {
            let mut start = offset;
            while start + WINDOW_WORDS / 2 <= passage.len() && out.len() < count {
                let window = passage[start..(start + WINDOW_WORDS).min(passage.len())].join(" ");
                if seen.insert(window.clone()) {
                    out.push(window);
                }
                start += WINDOW_WORDS;
            }
        }
        if out.len() >= count {
            break;
        }
    }
    out
}

fn tempdir(data_dir: &DataDir) -> anyhow::Result<std::path::PathBuf> {
    let dir = data_dir.scratch("bench-vectors");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
