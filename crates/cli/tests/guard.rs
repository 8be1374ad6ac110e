//! The guard on the real server: keys created and revoked with the CLI while
//! `edgeway serve` runs, quotas, allow-lists, and the refusal to listen on a
//! public address without keys.

mod common;

use common::{chat, create_key, edgeway, output_text, Server};
use serde_json::{json, Value};

fn post(server: &Server, key: Option<&str>, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = common::client().post(server.url("/v1/chat/completions")).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.json().unwrap_or(Value::Null))
}

#[test]
fn keys_created_and_revoked_on_a_running_server_take_effect_at_once() {
    let server = Server::start(&[]);
    let body = chat("Say hi.", json!({"max_tokens": 4}));
    assert_eq!(post(&server, None, &body).0, 200, "no keys yet: open, as llama-server without --api-key");

    let alice = create_key(&server, "alice", &["--rpm", "3"]);
    assert!(alice.starts_with("ew-"), "{alice}");
    // An open server looks for new keys once a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.get("/v1/models").0 != 401 {
        assert!(std::time::Instant::now() < deadline, "the new key was not noticed within 10 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (status, _, error) = post(&server, None, &body);
    assert_eq!(status, 401, "{error}");
    assert_eq!(error["error"]["code"], "invalid_api_key");
    assert_eq!(post(&server, Some("ew-not-a-key"), &body).0, 401);

    // Exactly three requests in the minute, then 429 with Retry-After.
    for n in 1..=3 {
        let (status, _, reply) = post(&server, Some(&alice), &body);
        assert_eq!(status, 200, "request {n}: {reply}");
    }
    let (status, headers, error) = post(&server, Some(&alice), &body);
    assert_eq!(status, 429, "{error}");
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");

    let edge_only = create_key(&server, "kiosk", &["--routes", "edge", "--no-logprobs", "--models", "smollm2"]);
    let (status, _, error) = post(&server, Some(&edge_only), &chat("Hi", json!({"logprobs": true, "max_tokens": 2})));
    assert_eq!((status, error["error"]["code"].as_str()), (403, Some("logprobs_not_allowed")), "{error}");
    let (status, _, reply) = post(&server, Some(&edge_only), &chat("Hi", json!({"max_tokens": 2})));
    assert_eq!(status, 200, "{reply}");
    let cloud = common::client()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&edge_only)
        .header("x-edgeway-route", "cloud")
        .json(&chat("Hi", json!({"max_tokens": 2})))
        .send()
        .unwrap();
    assert_eq!(cloud.status().as_u16(), 403);

    let log = server.query_log.display().to_string();
    let listed = edgeway(&["keys", "list", "--log-path", &log]);
    let text = output_text(&listed);
    assert!(text.contains("alice") && text.contains("kiosk") && text.contains("3 req/min"), "{text}");

    let revoked = edgeway(&["keys", "revoke", "alice", "--log-path", &log]);
    assert!(revoked.status.success(), "{}", output_text(&revoked));
    let (status, _, error) = post(&server, Some(&alice), &body);
    assert_eq!(status, 401);
    assert!(error["error"]["message"].as_str().unwrap().contains("revoked"), "{error}");
    assert_eq!(post(&server, Some(&edge_only), &chat("Hi", json!({"max_tokens": 2}))).0, 200);
    assert_eq!(common::client().get(server.url("/health")).send().unwrap().status().as_u16(), 200);
}

#[test]
fn a_public_address_without_keys_is_refused_unless_insecure() {
    let model = common::test_model().display().to_string();
    let args: Vec<String> = ["serve", "--model", &model, "--host", "0.0.0.0"].map(String::from).to_vec();
    let error = Server::start_with(&args).err().expect("serve must refuse to start");
    assert!(error.contains("without API keys") && error.contains("--insecure"), "{error}");
    let mut insecure = args.clone();
    insecure.push("--insecure".into());
    let server = Server::start_with(&insecure).expect("--insecure starts");
    assert!(server.stderr().contains("--insecure"));
    let mut keyed = args;
    keyed.extend(["--api-key".into(), "ew-fixed-test-key".into()]);
    let server = Server::start_with(&keyed).expect("a fixed key is enough");
    assert_eq!(post(&server, None, &chat("Hi", json!({"max_tokens": 2}))).0, 401);
    assert_eq!(post(&server, Some("ew-fixed-test-key"), &chat("Hi", json!({"max_tokens": 2}))).0, 200);
}
