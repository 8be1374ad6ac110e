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
    // Refusals before the request is parsed count among the HTTP responses.
    assert!(text.contains("edgeway_http_responses_total{code=\"400\"} 1"), "{text}");

    // Every metric the shipped Grafana dashboard queries is one the server registers (a family
    // without series yet is left out of the exposition, so the registrations are the list).
    let source = include_str!("../../server/src/metrics.rs");
    let registered: Vec<String> = source
        .split("registry.register(")
        .skip(1)
        .filter_map(|call| call.split('"').nth(1).map(|name| format!("edgeway_{name}")))
        .collect();
    let grafana = include_str!("../../../docs/grafana-dashboard.json");
    let mut queried: Vec<&str> = grafana
        .match_indices("edgeway_")
        .map(|(at, _)| {
            let name = &grafana[at..];
            &name[..name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(name.len())]
        })
        .collect();
    queried.sort_unstable();
    queried.dedup();
    for name in queried {
        let family = name.trim_end_matches("_bucket").trim_end_matches("_total");
        assert!(registered.iter().any(|r| r == family), "the Grafana dashboard queries {name}, which edgeway lacks");
    }

    let response =
        client.get(server.url("/metrics")).header("accept", "application/openmetrics-text; version=1.0.0").send();
    let response = response.unwrap();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = response.text().unwrap();
    assert!(text.contains("# TYPE edgeway_requests counter") && text.trim_end().ends_with("# EOF"), "{text}");
}
