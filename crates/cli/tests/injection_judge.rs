//! The prompt-injection judge on the real server (`--injection-judge`): the served model is
//! asked about each text the rules and the classifier let through, and its answer can refuse a
//! user message, withhold a tool result, and is logged as the guard's decision. The test model
//! is far too small to judge well, so the threshold is set to 0 (every answered text flagged):
//! what is tested is that the judge runs in the request path and its decisions take effect;
//! how well a real judge separates attacks from benign text is measured in
//! `bench/injection-judge.sh`.

mod common;

use common::{chat, Server};
use serde_json::json;

/// The name the test model is served under.
const JUDGE: &str = "smollm2";

#[test]
fn the_judge_refuses_a_user_message_and_withholds_a_tool_result_it_flags() {
    let blocking = Server::start(&[
        "--injection-action",
        "block",
        "--injection-judge",
        JUDGE,
        "--injection-judge-threshold",
        "0",
        "--no-embeddings",
    ]);
    // Nothing in it for the rules or the classifier: only the judge can refuse it.
    let (status, body) =
        blocking.post("/v1/chat/completions", &chat("What is the capital of France?", json!({"max_tokens": 2})));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "prompt_injection", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("the injection judge"), "{body}");

    // A tool result the judge flags is withheld; the agent's request still gets an answer.
    let conversation = json!({
        "max_tokens": 2,
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 21}"},
        ],
    });
    let flagging = Server::start(&["--injection-judge", JUDGE, "--injection-judge-threshold", "0", "--no-embeddings"]);
    let (status, body) = flagging.post("/v1/chat/completions", &conversation);
    assert_eq!(status, 200, "under flag the request goes on: {body}");
    // Logged: the user's "Hi" and the tool's result, each with the judge's probability.
    let events = common::logged_rows(
        &flagging,
        "SELECT action, score, evidence FROM guard_events WHERE detector = 'injection' ORDER BY id",
        2,
        |row| Ok((row.get::<_, String>(0)?, row.get::<_, f64>(1)?, row.get::<_, String>(2)?)),
    );
    assert_eq!(events.len(), 2, "{events:?}");
    for ((action, score, evidence), channel) in events.iter().zip(["user", "tool"]) {
        let evidence: serde_json::Value = serde_json::from_str(evidence).unwrap();
        assert_eq!(action, "flag");
        assert!((0.0..=1.0).contains(score), "{score}");
        assert_eq!(evidence["channel"], channel, "{evidence}");
        assert_eq!(evidence["model"], JUDGE, "{evidence}");
        assert_eq!(evidence["judge"].as_f64().map(|p| (p - score).abs() < 1e-6), Some(true), "{evidence}");
    }
}

#[test]
fn a_judge_the_server_does_not_run_is_refused_at_start() {
    let model = common::test_model().display().to_string();
    let args: Vec<String> = ["serve", "--model", &model, "--no-embeddings", "--injection-judge", "no-such-model"]
        .map(String::from)
        .to_vec();
    let error = Server::start_with(&args).err().expect("serve must refuse an unknown judge");
    assert!(error.contains("--injection-judge no-such-model") && error.contains("does not run that model"), "{error}");
}
