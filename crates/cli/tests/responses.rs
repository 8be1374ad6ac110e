//! The Responses API (`/v1/responses`) on the real model: a grammar-constrained
//! call and a streamed answer over plain HTTP, then the official `openai` client
//! and the OpenAI Agents SDK's one-tool agent loop, unchanged (both installed by
//! `scripts/test.sh`; their interpreter is `EDGEWAY_TEST_PYTHON`).

mod common;

use common::Server;
use serde_json::{json, Value};

#[test]
fn a_required_call_and_a_streamed_answer_over_http() {
    let server = Server::start(&[]);
    let tool = json!({
        "type": "function", "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                       "additionalProperties": false},
        "strict": true
    });
    let (status, body) = server.post(
        "/v1/responses",
        &json!({"input": "What is the weather in Paris?", "tools": [tool], "tool_choice": "required",
                "temperature": 0, "max_output_tokens": 60}),
    );
    assert_eq!(status, 200, "{body}");
    let call = body["output"].as_array().and_then(|o| o.iter().find(|i| i["type"] == "function_call")).cloned();
    let call = call.unwrap_or_else(|| panic!("no call in {body}"));
    assert_eq!(call["name"], "get_weather");
    assert!(call["call_id"].as_str().is_some_and(|id| !id.is_empty()), "{call}");
    let arguments: Value =
        serde_json::from_str(call["arguments"].as_str().unwrap_or_default()).expect("JSON arguments");
    assert!(arguments["city"].is_string(), "{arguments}");

    let request = json!({"input": "Name a color.", "temperature": 0, "max_output_tokens": 8});
    let (_, whole) = server.post("/v1/responses", &request);
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let events: Vec<Value> = server
        .stream("/v1/responses", &streamed)
        .iter()
        .map(|e| serde_json::from_str(e).expect("JSON event"))
        .collect();
    let numbers: Vec<u64> = events.iter().filter_map(|e| e["sequence_number"].as_u64()).collect();
    assert_eq!(numbers, (0..events.len() as u64).collect::<Vec<_>>());
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(text, whole["output"][0]["content"][0]["text"].as_str().unwrap_or_default(), "{whole}");
    let last = events.last().expect("events");
    assert!(["response.completed", "response.incomplete"].contains(&last["type"].as_str().unwrap_or_default()));
    assert_eq!(last["response"]["status"], whole["status"]);
}

#[test]
fn the_openai_client_and_the_agents_sdk_work_unchanged() {
    let server = Server::start(&[]);
    let url = server.url("/v1");
    let needs = "`openai` and `openai-agents`";
    let stdout =
        common::run_python_script(&server, "EDGEWAY_TEST_PYTHON", "responses_client.py", &[&url, "smollm2"], needs);
    assert!(stdout.contains("responses: all checks passed"), "{stdout}");
}
