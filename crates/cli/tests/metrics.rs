//! `/metrics` as monitoring tools read it: a real `edgeway serve` after real requests, its
//! exposition linted by Prometheus' own `promtool check metrics` (Debian's `prometheus`
//! package; `scripts/setup.sh --test` installs it), and OpenMetrics for a scraper that asks.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{chat, Server};
use serde_json::json;

#[test]
fn promtool_finds_nothing_to_complain_about_and_openmetrics_is_there_for_who_asks() {
    let server = Server::start(&[]);
    let client = common::client();
    let answer =
        client.post(server.url("/v1/chat/completions")).json(&chat("Say hi.", json!({"max_tokens": 4}))).send();
    assert_eq!(answer.unwrap().status(), 200);
    let bad = client.post(server.url("/v1/chat/completions")).body("{").header("content-type", "application/json");
    assert_eq!(bad.send().unwrap().status(), 400);

    let response = client.get(server.url("/metrics")).send().unwrap();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().unwrap();
    assert!(text.contains("# HELP edgeway_requests_total "), "{text}");

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is not installed: run scripts/setup.sh --test (Debian's prometheus package)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let linted = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&linted.stdout), String::from_utf8_lossy(&linted.stderr));
    assert!(linted.status.success() && said.trim().is_empty(), "promtool: {said}\n{text}");

    let response =
        client.get(server.url("/metrics")).header("accept", "application/openmetrics-text; version=1.0.0").send();
    let response = response.unwrap();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = response.text().unwrap();
    assert!(text.contains("# TYPE edgeway_requests counter") && text.trim_end().ends_with("# EOF"), "{text}");
}
