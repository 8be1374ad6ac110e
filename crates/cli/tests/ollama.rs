//! Ollama's API on the real model: the official `ollama` Python client (its interpreter is
//! `EDGEWAY_TEST_PYTHON`, set up by `scripts/test.sh`) and `curl`, against a live server.

mod common;

use std::process::Command;

use common::Server;
use serde_json::{json, Value};

#[test]
fn the_ollama_python_client_works_unchanged() {
    let server = Server::start(&["--embedding-model", "all-minilm-l6-v2"]);
    let url = server.url("");
    let args = [url.as_str(), "smollm2", "all-minilm-l6-v2"];
    let stdout = common::run_python_script(&server, "EDGEWAY_TEST_PYTHON", "ollama_client.py", &args, "`ollama`");
    assert!(stdout.contains("all checks passed"));
    // Each generating call is in the query log under its Ollama endpoint.
    let endpoints: Vec<String> =
        common::logged_rows(&server, "SELECT DISTINCT endpoint FROM queries ORDER BY endpoint", 4, |row| row.get(0));
    assert_eq!(endpoints, ["ollama_chat", "ollama_embed", "ollama_embeddings", "ollama_generate"]);
}

fn curl(args: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl is needed for this test");
    assert!(output.status.success(), "curl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn curl_gets_ndjson_as_the_readme_shows() {
    let server = Server::start(&["--no-embeddings"]);
    let url = server.url("/api/chat");
    let body = json!({
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Name a color."}],
        "options": {"num_predict": 8, "temperature": 0},
    });

    // Streamed by default: one JSON object a line, the last one `done`.
    let stream = curl(&["-N", &url, "-d", &body.to_string()]);
    let lines: Vec<Value> =
        stream.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect();
    let (last, pieces) = lines.split_last().expect("lines");
    assert!(pieces.iter().all(|l| l["done"] == false), "{stream}");
    assert_eq!(last["done"], true, "{stream}");
    assert!(last["eval_count"].as_u64().is_some_and(|n| (1..=8).contains(&n)), "{last}");
    assert!(last["total_duration"].as_u64().is_some_and(|n| n > 0) && last["eval_duration"].is_u64(), "{last}");
    let text: String = pieces.iter().filter_map(|l| l["message"]["content"].as_str()).collect();

    let mut whole = body.clone();
    whole["stream"] = json!(false);
    let answer: Value = serde_json::from_str(&curl(&[&url, "-d", &whole.to_string()])).expect("one JSON object");
    assert_eq!(answer["message"]["content"].as_str(), Some(text.as_str()));
    assert_eq!(answer["done_reason"], last["done_reason"]);

    assert_eq!(curl(&[&server.url("/")]), "Ollama is running");
    let missing = curl(&[&server.url("/api/chat"), "-d", r#"{"model":"nope","messages":[]}"#]);
    assert_eq!(serde_json::from_str::<Value>(&missing).unwrap(), json!({"error": "model 'nope' not found"}));
}
