//! `edgeway bench retrieval`: retrieval quality on SQuAD (question → its
//! context) and BoolQ (question → its passage): recall@1/5/10 and MRR of the
//! gold passage, then end-to-end answers from the edge model with and
//! without retrieval, through a real `edgeway serve` and its chat path.

use std::collections::HashMap;

use anyhow::Context;
use edgeway_core::EmbeddingBackend;
use edgeway_eval::dataset::{EvalItem, Reference};
use edgeway_rag::chunk::ChunkOptions;
use edgeway_rag::index::CollectionIndex;
use edgeway_rag::ingest::{ingest_text, TextDocument};
use edgeway_store::KnowledgeBase;
use indicatif::ProgressBar;
use serde_json::{json, Value};

use super::lower_own_priority;
use crate::app::child::start_server;
use crate::app::engine::load_embedder;
use crate::app::DataDir;
use crate::cli::RetrievalBenchArgs;

pub fn run(data_dir: &DataDir, args: &RetrievalBenchArgs) -> anyhow::Result<()> {
    let root = data_dir.eval_package(false)?;
    let squad = edgeway_eval::run::sample(edgeway_eval::dataset::load("squad", &root)?, None);
    let boolq = edgeway_eval::run::sample(edgeway_eval::dataset::load("boolq", &root)?, Some(args.boolq_questions));
    let work = data_dir.scratch("bench-retrieval");
    let _ = std::fs::remove_dir_all(&work);
    // The scratch folder is laid out as a data directory of its own.
    let scratch = DataDir::new(&work);
    let (kb_path, index_dir) = scratch.knowledge(None);

    // Every SQuAD context and every BoolQ passage is a document; the question's own is the gold one.
    let cache = data_dir.cache();
    let embedder = load_embedder(edgeway_models::DEFAULT_EMBEDDING_MODEL, &cache, true, Some(2))?;
    let info = embedder.embedding_info().clone();
    let mut kb = KnowledgeBase::open(&kb_path)?;
    let collection = kb.create_collection("bench", &info.id, info.dims)?;
    let mut index = CollectionIndex::open(&kb, &collection, &index_dir)?;
    let mut gold: HashMap<String, String> = HashMap::new(); // passage text → its source name
    let all_boolq = edgeway_eval::dataset::load("boolq", &root)?;
    let passages: Vec<(String, String)> = squad
        .iter()
        .map(|i| ("squad", i))
        .chain(all_boolq.iter().map(|i| ("boolq", i)))
        .filter_map(|(set, item)| Some((set, item.context.clone()?)))
        .filter_map(|(set, text)| {
            let next = format!("{set}/{}", gold.len());
            (!gold.contains_key(&text)).then(|| {
                gold.insert(text.clone(), next.clone());
                (next, text)
            })
        })
        .collect();
    let options = ChunkOptions::default();
    let bar = ProgressBar::new(passages.len() as u64);
    let started = std::time::Instant::now();
    for (source, text) in &passages {
        let document = TextDocument {
            source: source.clone(),
            hash: source.clone(),
            title: None,
            kind: "text".into(),
            paragraphs: vec![text.clone()],
        };
        ingest_text(&mut kb, &mut index, embedder.as_ref(), &options, document, false)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    index.save()?;
    eprintln!(
        "indexed {} passages as {} chunks in {:.0} s",
        passages.len(),
        index.len(),
        started.elapsed().as_secs_f64()
    );

    println!("retrieval: the gold passage among the top k (a passage counts once however many of its chunks match)");
    println!(
        "{:<8} {:>9} {:>10} {:>10} {:>10} {:>8}",
        "set", "questions", "recall@1", "recall@5", "recall@10", "MRR@10"
    );
    let mut report = json!({ "passages": passages.len(), "chunks": index.len() });
    for (name, items) in [("squad", &squad), ("boolq", &boolq)] {
        let questions: Vec<String> = items.iter().map(|i| i.question.clone()).collect();
        let vectors = embedder.embed(&questions)?.vectors;
        let (mut at1, mut at5, mut at10, mut rr) = (0.0, 0.0, 0.0, 0.0);
        for (item, vector) in items.iter().zip(&vectors) {
            let want = item.context.as_ref().and_then(|c| gold.get(c)).context("a question without its passage")?;
            let hits = index.search(&kb, vector, 30)?;
            let mut ranked: Vec<&str> = Vec::new();
            for hit in &hits {
                if !ranked.contains(&hit.chunk.source.as_str()) {
                    ranked.push(&hit.chunk.source);
                }
            }
            if let Some(rank) = ranked.iter().take(10).position(|s| s == want) {
                at1 += f64::from(u8::from(rank < 1));
                at5 += f64::from(u8::from(rank < 5));
                at10 += 1.0;
                rr += 1.0 / (rank + 1) as f64;
            }
        }
        let n = items.len().max(1) as f64;
        println!("{name:<8} {:>9} {:>10.3} {:>10.3} {:>10.3} {:>8.3}", items.len(), at1 / n, at5 / n, at10 / n, rr / n);
        report[name] = json!({"questions": items.len(), "recall_at_1": at1 / n, "recall_at_5": at5 / n,
                              "recall_at_10": at10 / n, "mrr_at_10": rr / n});
    }
    drop(index);
    drop(kb);
    drop(embedder);

    // End to end: the edge model answers each question alone, then with retrieval.
    let model = edgeway_models::resolve_model(&args.model, &cache, true, &mut |_| {})?.path;
    let server = start_server(
        &model,
        2,
        &[
            "--knowledge-path".into(),
            kb_path.display().to_string(),
            "--log-path".into(),
            scratch.query_log(None).display().to_string(),
        ],
    )?;
    lower_own_priority();
    let client = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(300)).build()?;
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", server.port);
    println!("\nanswers from {} (greedy), without and with retrieval (top {} passages)", args.model, 4);
    println!("{:<8} {:>9} {:>16} {:>16} {:>14}", "set", "questions", "closed-book", "with RAG", "metric");
    for (name, items) in [("squad", &squad), ("boolq", &boolq)] {
        let items: Vec<&EvalItem> = items.iter().take(args.answer_questions).collect();
        let mut scores = [0.0f64; 2];
        for item in &items {
            let (prompt, max_tokens) = match item.reference {
                Reference::YesNo(_) => (format!("{}?\nAnswer yes or no.", item.question.trim()), 4),
                _ => (format!("Question: {}\nAnswer with a short phrase.", item.question.trim()), 24),
            };
            for (slot, collection) in ["none", "bench"].iter().enumerate() {
                let body = json!({"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                                  "temperature": 0, "collection": collection});
                let response: Value = client.post(&url).json(&body).send()?.json()?;
                let answer = response["choices"][0]["message"]["content"].as_str().unwrap_or_default();
                scores[slot] += edgeway_eval::task::grade(item, answer).score;
            }
        }
        let n = items.len().max(1) as f64;
        let metric = if name == "squad" { "token F1" } else { "accuracy" };
        println!("{name:<8} {:>9} {:>16.3} {:>16.3} {:>14}", items.len(), scores[0] / n, scores[1] / n, metric);
        report[name]["answers"] = json!({"questions": items.len(), "closed_book": scores[0] / n, "with_rag": scores[1] / n, "metric": metric});
    }
    drop(server);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
