//! Retrieval end to end on real files, the real embedding model and a real
//! SQLite knowledge base: ingest, re-ingest, removal, a kill during ingest,
//! and chats that retrieve and cite their sources.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{chat, edgeway, output_text, temp_dir, Server};
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rag/tests/fixtures");

/// The handbook in every format (the encrypted PDFs left out).
fn copy_handbook(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["conveyor_guide.txt", "conveyor_guide.md", "conveyor_guide.html", "conveyor_guide.pdf"] {
        std::fs::copy(Path::new(FIXTURES).join(name), to.join(name)).unwrap();
    }
}

/// A scratch folder with the handbook ingested into the collection `manuals`:
/// (scratch folder, docs folder, knowledge base path, the ingest's output).
fn handbook_in_manuals(test: &str) -> (PathBuf, PathBuf, String, std::process::Output) {
    let dir = temp_dir("rag", test);
    let docs = dir.join("docs");
    copy_handbook(&docs);
    let kb = dir.join("knowledge.db").display().to_string();
    let output = edgeway(&["ingest", docs.to_str().unwrap(), "--collection", "manuals", "--knowledge-path", &kb]);
    assert!(output.status.success(), "{}", output_text(&output));
    (dir, docs, kb, output)
}

fn query(kb: &str, collection: &str, question: &str, k: usize) -> Vec<Value> {
    let output = edgeway(&["query", collection, question, "-k", &k.to_string(), "--json", "--knowledge-path", kb]);
    assert!(output.status.success(), "{}", output_text(&output));
    serde_json::from_slice::<Value>(&output.stdout).unwrap().as_array().unwrap().clone()
}

#[test]
fn ingest_query_reingest_and_remove() {
    let (dir, docs, kb, output) = handbook_in_manuals("flow");
    let kb = kb.as_str();
    assert!(output_text(&output).contains("4 added, 0 replaced, 0 unchanged, 0 failed"), "{}", output_text(&output));

    let listing = output_text(&edgeway(&["collections", "--knowledge-path", kb]));
    assert!(listing.contains("manuals") && listing.contains("all-minilm-l6-v2"), "{listing}");
    let hits = query(kb, "manuals", "What should I do when the belt drifts to one side?", 3);
    assert_eq!(hits.len(), 3);
    assert!(hits[0]["text"].as_str().unwrap().contains("tracking screw"), "{hits:?}");
    assert!(hits[0]["score"].as_f64().unwrap() > 0.4);

    // Unchanged files are skipped; a changed one replaces its chunks.
    let txt = docs.join("conveyor_guide.txt");
    let mut changed = std::fs::read_to_string(&txt).unwrap();
    changed.push_str("\n\nSpare parts: order belt splice kits with part number SK-7731 from the parts desk.\n");
    std::fs::write(&txt, changed).unwrap();
    let output = edgeway(&["ingest", docs.to_str().unwrap(), "--collection", "manuals", "--knowledge-path", kb]);
    assert!(output_text(&output).contains("0 added, 1 replaced, 3 unchanged"), "{}", output_text(&output));
    let hits = query(kb, "manuals", "which part number is the belt splice kit?", 1);
    assert!(hits[0]["text"].as_str().unwrap().contains("SK-7731"), "{hits:?}");

    // Removing a file takes its chunks out of search, even once it is gone from disk.
    std::fs::remove_file(&txt).unwrap();
    let output =
        edgeway(&["ingest", "--remove", txt.to_str().unwrap(), "--collection", "manuals", "--knowledge-path", kb]);
    assert!(output_text(&output).contains("removed"), "{}", output_text(&output));
    let hits = query(kb, "manuals", "which part number is the belt splice kit?", 10);
    assert!(hits.iter().all(|h| !h["source"].as_str().unwrap().ends_with(".txt")), "{hits:?}");
    assert!(hits.iter().all(|h| !h["text"].as_str().unwrap().contains("SK-7731")));

    // Clear errors.
    let output = edgeway(&["query", "nope", "x", "--knowledge-path", kb]);
    assert!(
        !output.status.success() && output_text(&output).contains("there is no collection 'nope'"),
        "{}",
        output_text(&output)
    );
    let bad = dir.join("notes.exe");
    std::fs::write(&bad, "x").unwrap();
    let output = edgeway(&["ingest", bad.to_str().unwrap(), "--collection", "manuals", "--knowledge-path", kb]);
    assert!(output_text(&output).contains("unsupported file type"), "{}", output_text(&output));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_killed_ingest_keeps_every_acknowledged_chunk_and_a_usable_index() {
    let dir = temp_dir("rag", "kill");
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let base = std::fs::read_to_string(Path::new(FIXTURES).join("conveyor_guide.txt")).unwrap();
    for i in 0..120 {
        std::fs::write(docs.join(format!("note-{i:03}.txt")), format!("Note {i}: station {i} reports.\n\n{base}"))
            .unwrap();
    }
    let kb = dir.join("knowledge.db");
    let kb_arg = kb.to_str().unwrap().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgeway"))
        .args(["ingest", docs.to_str().unwrap(), "--collection", "notes", "--knowledge-path", &kb_arg])
        .env("EDGEWAY_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some documents are committed, search meanwhile, then kill it mid-ingest.
    let deadline = Instant::now() + Duration::from_secs(120);
    let documents = |kb: &Path| -> i64 {
        rusqlite::Connection::open(kb)
            .and_then(|db| db.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get(0)))
            .unwrap_or(0)
    };
    while documents(&kb) < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let during = query(&kb_arg, "notes", "belt tracking", 3);
    assert!(!during.is_empty(), "searching while ingesting must work");
    child.kill().unwrap();
    let _ = child.wait();

    // Every committed document has all its chunks, and the index (saved earlier, or never) catches up.
    let db = rusqlite::Connection::open(&kb).unwrap();
    let stored: i64 = db.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get(0)).unwrap();
    assert!((10..120).contains(&stored), "killed too late or too early: {stored}");
    let orphans: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks k WHERE k.document_id = d.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0, "a document without its chunks");
    let chunks: i64 = db.query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0)).unwrap();
    let all = query(&kb_arg, "notes", "station reports", chunks as usize + 5);
    assert_eq!(all.len() as i64, chunks, "the index must hold exactly the committed chunks");

    // Running it again finishes the job without duplicating anything.
    let output = edgeway(&["ingest", docs.to_str().unwrap(), "--collection", "notes", "--knowledge-path", &kb_arg]);
    assert!(output.status.success(), "{}", output_text(&output));
    assert!(output_text(&output).contains(&format!("{} unchanged", stored)), "{}", output_text(&output));
    let total: i64 = db.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get(0)).unwrap();
    assert_eq!(total, 120);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn chats_retrieve_from_a_collection_and_cite_their_sources() {
    let (dir, _, kb, _) = handbook_in_manuals("chat");
    let kb = kb.as_str();

    let server = Server::start(&["--knowledge-path", kb, "--collection", "manuals"]);
    let question = "What should I do when the belt drifts to one side?";
    let (status, headers, body) = server.post_with_headers(
        "/v1/chat/completions",
        &chat(question, json!({"max_tokens": 40, "temperature": 0})),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let sources = body["x_edgeway"]["sources"].as_array().expect("sources listed");
    assert!(!sources.is_empty() && sources[0]["source"].as_str().unwrap().contains("conveyor_guide"), "{body}");
    assert_eq!(headers.get("x-edgeway-sources").unwrap().to_str().unwrap(), sources.len().to_string());
    // The retrieved passage went into the prompt: far more prompt tokens than the question alone.
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 100, "{body}");

    // Streams carry the sources on their last chunk.
    let events = server.stream("/v1/chat/completions", &chat(question, json!({"max_tokens": 8, "stream": true})));
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert!(last["x_edgeway"]["sources"].as_array().is_some_and(|s| !s.is_empty()), "{last}");

    // `none` turns the default off; an unknown collection is a clear 400.
    let (_, _, plain) = server.post_with_headers(
        "/v1/chat/completions",
        &chat(question, json!({"max_tokens": 4})),
        &[("x-edgeway-collection", "none")],
    );
    assert!(plain.get("x_edgeway").is_none(), "{plain}");
    assert!(plain["usage"]["prompt_tokens"].as_u64().unwrap() < 60);
    let (status, body) = server.post("/v1/chat/completions", &chat(question, json!({"collection": "nope"})));
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("no collection 'nope'") && message.contains("manuals"), "{message}");
    let _ = std::fs::remove_dir_all(dir);
}
