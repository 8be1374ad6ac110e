//! Interoperability: clients this project did not write, against a live server.
//!
//! The official `openai` Python package (installed by `scripts/test.sh`; its
//! interpreter is `EDGEWAY_TEST_PYTHON`), langchain-openai, llama-index's
//! OpenAI-like LLM and litellm (their interpreter is `EDGEWAY_TEST_CLIENTS_PYTHON`),
//! and `curl`.

mod common;

use std::process::Command;

use common::Server;

#[test]
fn the_openai_python_client_works_unchanged() {
    let server = Server::start(&[]);
    let url = server.url("/v1");
    let stdout =
        common::run_python_script(&server, "EDGEWAY_TEST_PYTHON", "openai_client.py", &[&url, "smollm2"], "`openai`");
    assert!(stdout.contains("all checks passed"));
}

#[test]
fn langchain_llama_index_and_litellm_work_unchanged() {
    let server = Server::start(&[]);
    let url = server.url("/v1");
    let needs = "langchain-openai, llama-index-llms-openai-like, litellm";
    let stdout = common::run_python_script(
        &server,
        "EDGEWAY_TEST_CLIENTS_PYTHON",
        "framework_clients.py",
        &[&url, "smollm2"],
        needs,
    );
    for client in ["langchain-openai: ok", "llama-index-llms-openai-like: ok", "litellm: ok"] {
        assert!(stdout.contains(client), "{stdout}");
    }
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
fn curl_works_as_the_readme_shows() {
    let server = Server::start(&[]);
    let url = server.url("/v1/chat/completions");
    let body = r#"{"messages":[{"role":"user","content":"Name a color."}],"max_tokens":8,"temperature":0}"#;

    // Plain `curl -d` sends a form content type; the server takes it as JSON anyway.
    let whole: serde_json::Value = serde_json::from_str(&curl(&[&url, "-d", body])).expect("JSON answer");
    assert_eq!(whole["object"], "chat.completion");

    let streamed_body = body.replace("\"temperature\":0", "\"temperature\":0,\"stream\":true");
    let stream = curl(&["-N", &url, "-H", "Content-Type: application/json", "-d", &streamed_body]);
    let events = common::sse_data(stream.as_bytes());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(common::chat_stream_text(&events), whole["choices"][0]["message"]["content"].as_str().unwrap());

    let health = curl(&["-f", &server.url("/health")]);
    assert!(health.contains("\"status\":\"ok\""), "{health}");
}
