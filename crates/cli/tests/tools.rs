//! Tool calling on the real model: calls constrained by their functions'
//! schemas, streamed with distinct indices, a whole tool conversation, the
//! 400s, and the query log's record.

mod common;

use common::{chat, Server};
use serde_json::{json, Value};

/// Two functions with enums and required fields.
fn tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city", "unit"],
                "additionalProperties": false
            }
        }},
        {"type": "function", "function": {
            "name": "get_time",
            "description": "Local time in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": false
            }
        }}
    ])
}

/// Checks one call by hand against the two functions' schemas.
fn assert_valid_call(call: &Value, context: &str) {
    assert_eq!(call["type"], "function", "{context}: {call}");
    assert!(call["id"].as_str().is_some_and(|id| id.starts_with("call_")), "{context}: {call}");
    let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{context}: arguments are not JSON ({e}): {call}"));
    assert!(arguments["city"].is_string(), "{context}: {call}");
    match call["function"]["name"].as_str() {
        Some("get_weather") => {
            assert!(["c", "f"].contains(&arguments["unit"].as_str().unwrap_or_default()), "{context}: {call}");
            assert_eq!(arguments.as_object().map(|o| o.len()), Some(2), "{context}: {call}");
        }
        Some("get_time") => assert_eq!(arguments.as_object().map(|o| o.len()), Some(1), "{context}: {call}"),
        other => panic!("{context}: unknown function {other:?}"),
    }
}

/// The `delta.tool_calls` entries of a streamed answer, in order.
fn streamed_calls(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["tool_calls"].as_array().cloned())
        .flatten()
        .collect()
}

fn finish_reason(events: &[String]) -> Value {
    let last: Value = serde_json::from_str(&events[events.len() - 2]).expect("a JSON chunk before [DONE]");
    last["choices"][0]["finish_reason"].clone()
}

const CITIES: [&str; 8] = ["Paris", "Oslo", "Lima", "Cairo", "Tokyo", "Quito", "Perth", "Dakar"];

#[test]
fn required_calls_follow_their_schemas_streamed_and_not() {
    let server = Server::start(&[]);
    for (i, city) in CITIES.iter().enumerate() {
        let question =
            if i % 2 == 0 { format!("What is the weather in {city}?") } else { format!("What time is it in {city}?") };
        let body =
            chat(&question, json!({"tools": tools(), "tool_choice": "required", "temperature": 0, "max_tokens": 80}));
        if i % 2 == 0 {
            let (status, answer) = server.post("/v1/chat/completions", &body);
            assert_eq!(status, 200, "{answer}");
            let choice = &answer["choices"][0];
            assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
            assert!(choice["message"]["content"].is_null(), "{answer}");
            let calls = choice["message"]["tool_calls"].as_array().expect("tool_calls");
            assert!(!calls.is_empty(), "{answer}");
            calls.iter().for_each(|call| assert_valid_call(call, &question));
            assert_eq!(answer["x_edgeway"]["format"]["type"], "tools", "{answer}");
            assert_eq!(answer["x_edgeway"]["format"]["verdict"], "valid", "{answer}");
        } else {
            let mut body = body;
            body["stream"] = json!(true);
            let events = server.stream("/v1/chat/completions", &body);
            let calls = streamed_calls(&events);
            assert!(!calls.is_empty(), "{events:?}");
            calls.iter().for_each(|call| assert_valid_call(call, &question));
            assert_eq!(finish_reason(&events), "tool_calls");
        }
    }
}

#[test]
fn a_named_function_is_the_one_called_and_none_means_text() {
    let server = Server::start(&[]);
    let choice = json!({"type": "function", "function": {"name": "get_time"}});
    let body = chat("What is the weather in Oslo?", json!({"tools": tools(), "tool_choice": choice, "temperature": 0}));
    let (status, answer) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{answer}");
    let calls = answer["choices"][0]["message"]["tool_calls"].as_array().expect("tool_calls");
    assert!(calls.iter().all(|call| call["function"]["name"] == "get_time"), "{answer}");

    let body = chat("Say hello.", json!({"tools": tools(), "tool_choice": "none", "temperature": 0, "max_tokens": 20}));
    let (status, answer) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{answer}");
    assert!(answer["choices"][0]["message"].get("tool_calls").is_none(), "{answer}");
    assert!(answer["choices"][0]["message"]["content"].is_string(), "{answer}");
    assert_ne!(answer["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn parallel_calls_stream_with_distinct_indices_and_one_call_without_parallel() {
    let server = Server::start(&[]);
    let question = "Get the weather for Paris, Rome and Oslo.";
    let body = chat(
        question,
        json!({"tools": tools(), "tool_choice": "required", "temperature": 0, "max_tokens": 120, "stream": true}),
    );
    let events = server.stream("/v1/chat/completions", &body);
    let calls = streamed_calls(&events);
    assert!(calls.len() >= 2, "the model made {} calls: {events:?}", calls.len());
    let indices: Vec<u64> = calls.iter().filter_map(|c| c["index"].as_u64()).collect();
    assert_eq!(indices, (0..calls.len() as u64).collect::<Vec<_>>(), "{events:?}");
    let ids: std::collections::HashSet<&str> = calls.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids.len(), calls.len(), "ids must be distinct: {events:?}");
    calls.iter().for_each(|call| assert_valid_call(call, question));

    let mut one = body.clone();
    one["parallel_tool_calls"] = json!(false);
    one["stream"] = json!(false);
    let (status, answer) = server.post("/v1/chat/completions", &one);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["tool_calls"].as_array().map(Vec::len), Some(1), "{answer}");
}

#[test]
fn a_tool_conversation_round_trips() {
    let server = Server::start(&[]);
    let first =
        chat("What is the weather in Paris?", json!({"tools": tools(), "tool_choice": "required", "temperature": 0}));
    let (status, answer) = server.post("/v1/chat/completions", &first);
    assert_eq!(status, 200, "{answer}");
    let message = answer["choices"][0]["message"].clone();
    let call = message["tool_calls"][0].clone();
    let mut messages = first["messages"].as_array().cloned().unwrap_or_default();
    messages.push(message);
    messages.push(
        json!({"role": "tool", "tool_call_id": call["id"], "content": "{\"temperature\": 21, \"sky\": \"sunny\"}"}),
    );
    let second = json!({"messages": messages, "tools": tools(), "temperature": 0, "max_tokens": 40});
    let (status, answer) = server.post("/v1/chat/completions", &second);
    assert_eq!(status, 200, "{answer}");
    let choice = &answer["choices"][0];
    assert!(
        choice["message"]["content"].is_string() || choice["message"]["tool_calls"].is_array(),
        "an answer after the tool result: {answer}"
    );
}

#[test]
fn bad_tools_are_400s_that_name_the_problem() {
    let server = Server::start(&[]);
    let cases = [
        (json!({"tools": []}), "at least one tool"),
        (json!({"tools": [{"type": "retrieval"}]}), "type 'retrieval'"),
        (json!({"tools": [{"type": "function", "function": {"name": "has space"}}]}), "tool name"),
        (json!({"tool_choice": "required"}), "tool_choice needs tools"),
        (json!({"tools": tools(), "tool_choice": {"type": "function", "function": {"name": "nope"}}}), "'nope'"),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 12}}}]}),
            "parameters of tool 'f'",
        ),
    ];
    for (extra, needle) in cases {
        let (status, answer) = server.post("/v1/chat/completions", &chat("Hi", extra.clone()));
        assert_eq!(status, 400, "{extra}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{extra}: {message}");
    }
    let history = json!({"messages": [{"role": "user", "content": "Hi"}, {"role": "tool", "content": "x"}]});
    let (status, answer) = server.post("/v1/chat/completions", &history);
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("tool_call_id"), "{answer}");
}

#[test]
fn the_query_log_records_tool_answers() {
    let server = Server::start(&[]);
    let body =
        chat("What is the weather in Lima?", json!({"tools": tools(), "tool_choice": "required", "temperature": 0}));
    let (status, answer) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{answer}");
    let rows: Vec<(Option<String>, Option<String>)> =
        common::logged_rows(&server, "SELECT format, format_verdict FROM queries ORDER BY id", 1, |row| {
            Ok((row.get(0)?, row.get(1)?))
        });
    assert_eq!(rows, vec![(Some("tools".to_owned()), Some("valid".to_owned()))]);
}
