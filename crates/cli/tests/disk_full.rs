//! A full disk under the query log and the knowledge base: a real `edgeway serve` whose log
//! and knowledge base sit on an 8 MiB tmpfs that the test fills up and then empties.
//!
//! Mounting a tmpfs needs root (CI runs as root); elsewhere the test says so and passes.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{chat, edgeway, logged_rows, output_text, Server};
use serde_json::{json, Value};

/// A size-limited tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts one of `kib` KiB, or `None` (with a note) where this user may not mount.
    fn mount(name: &str, kib: u32) -> Option<Self> {
        let dir = common::temp_dir("disk-full", name);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("cannot run mount");
        if !status.success() {
            eprintln!("SKIPPED: cannot mount a tmpfs at {} (the disk-full test needs root)", dir.display());
            return None;
        }
        Some(Self(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the disk refuses (ENOSPC); returns how many bytes fit.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    let mut written = 0;
    while let Ok(n) = file.write(&chunk) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    let _ = file.sync_all();
    written
}

fn health(server: &Server) -> Value {
    server.get("/health").1
}

/// Waits up to 20 s for `done` on `/health`'s body; the last body seen.
fn health_until(server: &Server, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = health(server);
        if done(&body) || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_full_disk_holds_log_rows_keeps_serving_and_catches_up_when_space_returns() {
    let Some(disk) = Tmpfs::mount("fs", 8 * 1024) else { return };
    // The knowledge base on the small disk, one handbook in it.
    let docs = common::temp_dir("disk-full", "docs");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rag/tests/fixtures");
    std::fs::copy(fixtures.join("conveyor_guide.txt"), docs.join("conveyor_guide.txt")).unwrap();
    let kb = disk.0.join("knowledge.db");
    let kb_arg = kb.to_str().unwrap();
    let ingested = edgeway(&["ingest", docs.to_str().unwrap(), "--collection", "manuals", "--knowledge-path", kb_arg]);
    assert!(ingested.status.success(), "{}", output_text(&ingested));

    let log = disk.0.join("queries.db");
    let args: Vec<String> = [
        "serve",
        "--model",
        common::test_model().to_str().unwrap(),
        "--alias",
        "smollm2",
        "--log-path",
        log.to_str().unwrap(),
        "--knowledge-path",
        kb_arg,
    ]
    .map(String::from)
    .to_vec();
    let server = Server::start_with(&args).expect("the server did not start");
    let ask = |n: usize| {
        // Long prompts make rows that do not fit in the pages the log already has.
        let prompt = format!("Request {n}. {}", "Tell me about conveyor belts. ".repeat(60));
        let (status, body) = server.post("/v1/chat/completions", &chat(&prompt, json!({"max_tokens": 2})));
        assert_eq!(status, 200, "request {n}: {body}");
    };
    for n in 0..3 {
        ask(n);
    }
    let count = |at_least| logged_rows(&server, "SELECT id FROM queries", at_least, |row| row.get::<_, i64>(0)).len();
    assert_eq!(count(3), 3);

    // The disk fills up: every request is still answered, the rows wait in memory, and both
    // /health and /metrics say so.
    let filler = disk.0.join("filler");
    assert!(fill(&filler) > 0, "the tmpfs had no room left to fill");
    for n in 3..40 {
        ask(n);
    }
    let (status, rag) = server.post(
        "/v1/chat/completions",
        &chat("What should I do when the belt drifts?", json!({"max_tokens": 2, "collection": "manuals"})),
    );
    assert_eq!(status, 200, "retrieval on a full disk: {rag}");
    assert!(rag["x_edgeway"]["sources"].as_array().is_some_and(|sources| !sources.is_empty()), "{rag}");
    let degraded = health_until(&server, |body| body["query_log"]["held"].as_u64() == Some(38));
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    assert_eq!(degraded["query_log"]["writable"], false, "{degraded}");
    assert_eq!(degraded["query_log"]["held"], 38, "{degraded}");
    let error = degraded["query_log"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("full"), "{degraded}");
    let metrics = common::client().get(server.url("/metrics")).send().unwrap().text().unwrap();
    assert!(metrics.contains("edgeway_query_log_writable 0"), "{metrics}");
    assert!(metrics.contains("edgeway_query_log_held 38"), "{metrics}");

    // Ingesting more into the full knowledge base fails for that file, says why, and leaves the
    // knowledge base as it was.
    std::fs::write(docs.join("more.txt"), "Spare belts are stored in aisle 7. ".repeat(400)).unwrap();
    let refused = output_text(&edgeway(&[
        "ingest",
        docs.to_str().unwrap(),
        "--collection",
        "manuals",
        "--knowledge-path",
        kb_arg,
    ]));
    assert!(refused.contains("1 failed") && refused.contains("disk is full"), "{refused}");
    let hits = edgeway(&["query", "manuals", "belt drifts", "--json", "--knowledge-path", kb_arg]);
    assert!(hits.status.success(), "{}", output_text(&hits));
    assert!(String::from_utf8_lossy(&hits.stdout).contains("conveyor_guide"), "{}", output_text(&hits));

    // Space returns: the held rows are written without any new request, nothing is lost.
    std::fs::remove_file(&filler).unwrap();
    let recovered = health_until(&server, |body| body["query_log"]["held"].as_u64() == Some(0));
    assert_eq!(recovered["status"], "ok", "{recovered}");
    assert_eq!(recovered["query_log"]["writable"], true, "{recovered}");
    assert_eq!(recovered["query_log"]["dropped"], 0, "{recovered}");
    assert_eq!(count(41), 41, "every answered request has its row");
    let conn = rusqlite::Connection::open(&log).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(check, "ok");
}
