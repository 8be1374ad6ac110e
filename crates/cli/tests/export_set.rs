//! The user's own traffic as an evaluation set: what `edgeway serve` logged comes back out of
//! `edgeway export-set` as questions, each once, and `edgeway eval` grades them with a judge.

mod common;

use std::time::{Duration, Instant};

use common::{chat, Server};
use serde_json::json;

#[test]
fn logged_requests_export_as_a_set_that_eval_grades() {
    let server = Server::start(&[]);
    let ask = |text: &str| {
        let (status, body) = server.post("/v1/chat/completions", &chat(text, json!({"max_tokens": 8})));
        assert_eq!(status, 200, "{body}");
    };
    ask("Name a colour of the sky.");
    ask("Name a colour of the sky.");
    ask("Write a haiku about rust.");
    let deadline = Instant::now() + Duration::from_secs(10);
    while edgeway_store::Stats::load(&server.query_log, 0).unwrap().total_requests() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }

    let dir = common::temp_dir("export-set", "own");
    let set = dir.join("own.jsonl");
    let output =
        common::edgeway(&["export-set", set.to_str().unwrap(), "--log-path", server.query_log.to_str().unwrap()]);
    assert!(output.status.success(), "{}", common::output_text(&output));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&set).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let questions: Vec<&str> = lines.iter().map(|line| line["question"].as_str().unwrap()).collect();
    assert_eq!(questions, ["Name a colour of the sky.", "Write a haiku about rust."], "each prompt once, as asked");
    assert!(lines.iter().all(|line| line.get("reference").is_none() && line["id"].is_string()));

    // Graded by the judge (here the same small model: no cloud is configured).
    let log = dir.join("queries.db");
    let model = common::test_model().display().to_string();
    let output = common::edgeway(&[
        "eval",
        "--model",
        &model,
        "--set",
        set.to_str().unwrap(),
        "--route",
        "edge",
        "--threads",
        "1",
        "--log-path",
        log.to_str().unwrap(),
        "--run",
        "own",
    ]);
    assert!(output.status.success(), "{}", common::output_text(&output));
    let conn = rusqlite::Connection::open(&log).unwrap();
    let graded: Vec<f64> = conn
        .prepare("SELECT grade FROM eval_results WHERE run = 'own'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(graded.len(), 2);
    assert!(graded.iter().all(|grade| (0.0..=1.0).contains(grade)), "{graded:?}");

    // An empty log says what is missing.
    let empty = dir.join("empty.db");
    edgeway_store::QueryLog::open(&empty).unwrap();
    let output = common::edgeway(&[
        "export-set",
        dir.join("none.jsonl").to_str().unwrap(),
        "--log-path",
        empty.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(common::output_text(&output).contains("no logged prompts"), "{}", common::output_text(&output));
}
