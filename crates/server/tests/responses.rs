//! The Responses API (`/v1/responses`) on a fake backend: request validation, the
//! response object, the mapping of input items to the conversation, and the exact
//! sequence of streamed events. `crates/cli/tests/responses.rs` runs the official
//! `openai` client and the Agents SDK against the real model.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use edgeway_core::fake::FakeBackend;
use edgeway_core::{ChatMessage, OutputFormat, Prompt, ToolCall, ToolChoice};
use edgeway_server::{app, AppState};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const REPLY: &str = "Paris is the capital of France.";

fn weather_call() -> ToolCall {
    ToolCall { id: "call_w1".into(), name: "get_weather".into(), arguments: r#"{"city":"Paris"}"#.into() }
}

fn weather_tool() -> Value {
    json!({
        "type": "function", "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                       "additionalProperties": false},
        "strict": true
    })
}

async fn send(state: &AppState, path: &str, body: Value) -> (StatusCode, axum::http::HeaderMap, String) {
    let request = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn post(state: &AppState, body: Value) -> (StatusCode, Value) {
    let (status, _, text) = send(state, "/v1/responses", body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A fake's state, and the fake itself to look at the requests it got.
fn serve(backend: FakeBackend) -> (AppState, FakeBackend) {
    (AppState::ready(Arc::new(backend.clone())), backend)
}

/// The conversation the backend was given.
fn messages(backend: &FakeBackend) -> Vec<ChatMessage> {
    match backend.last_request().expect("a request").prompt {
        Prompt::Chat(messages) => messages,
        Prompt::Text(text) => panic!("expected a chat, got text {text:?}"),
    }
}

/// Parses an SSE body into (event name, data) pairs, checking each name matches its data's `type`.
fn sse(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in {block:?}"))
            };
            let data: Value = serde_json::from_str(field("data: ")).expect("JSON data");
            assert_eq!(data["type"], field("event: "), "the event is named by its type: {block}");
            data
        })
        .collect()
}

/// The events' types, after checking their sequence numbers count 0, 1, 2…
fn types(events: &[Value]) -> Vec<&str> {
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], n, "sequence_number of {event}");
    }
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_string_input_gets_a_response_object_with_every_field_the_client_needs() {
    let (state, backend) = serve(FakeBackend::new("fake", REPLY));
    let (status, body) =
        post(&state, json!({"model": "fake", "input": "Capital of France?", "metadata": {"k": "v"}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("resp_"), "{body}");
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "fake");
    assert!(body["created_at"].is_u64());
    for null in ["error", "incomplete_details", "instructions", "previous_response_id", "max_output_tokens", "user"] {
        assert_eq!(body[null], Value::Null, "{null}");
    }
    assert_eq!(body["tools"], json!([]));
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(body["parallel_tool_calls"], true);
    assert_eq!((body["temperature"].as_f64(), body["top_p"].as_f64()), (Some(1.0), Some(1.0)));
    assert_eq!(body["text"], json!({"format": {"type": "text"}}));
    assert_eq!(body["store"], false);
    assert_eq!(body["metadata"], json!({"k": "v"}));
    let output = body["output"].as_array().unwrap();
    assert_eq!(output.len(), 1);
    assert_eq!(output[0]["type"], "message");
    assert!(output[0]["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!((output[0]["status"].as_str(), output[0]["role"].as_str()), (Some("completed"), Some("assistant")));
    assert_eq!(
        output[0]["content"],
        json!([{"type": "output_text", "text": REPLY, "annotations": [], "logprobs": []}])
    );
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 4, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
               "output_tokens": 6, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 10})
    );
    assert_eq!(messages(&backend), vec![ChatMessage::new("user", "Capital of France?")]);

    let (status, _, _) = send(&state, "/responses", json!({"input": "Hi"})).await;
    assert_eq!(status, StatusCode::OK, "the path without /v1 answers too");
}

#[tokio::test]
async fn instructions_come_first_and_developer_messages_are_system_messages() {
    let (state, backend) = serve(FakeBackend::new("fake", REPLY));
    let input = json!([
        {"role": "developer", "content": "Answer in French."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Capital?"}]}
    ]);
    let (status, body) = post(&state, json!({"input": input, "instructions": "Be brief."})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["instructions"], "Be brief.");
    assert_eq!(
        messages(&backend),
        vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("system", "Answer in French."),
            ChatMessage::new("user", "Capital?"),
        ]
    );
}

#[tokio::test]
async fn a_function_call_round_trip() {
    let (state, backend) = serve(FakeBackend::new("fake", "").with_tool_calls(vec![weather_call()]));
    let question = json!({"role": "user", "content": "Weather in Paris?"});
    let (status, body) = post(
        &state,
        json!({"input": [question], "tools": [weather_tool()], "tool_choice": "required", "parallel_tool_calls": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tools = backend.last_request().unwrap().tools.expect("tools reach the backend");
    assert_eq!((tools.choice, tools.parallel, tools.tools[0].strict), (ToolChoice::Required, false, true));
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["tools"], json!([weather_tool()]));
    assert_eq!(body["parallel_tool_calls"], false);
    assert_eq!(body["status"], "completed");
    let output = body["output"].as_array().unwrap();
    assert_eq!(output.len(), 1, "a calls-only answer has no message: {body}");
    let call = &output[0];
    assert_eq!(call["type"], "function_call");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));
    assert_eq!(call["call_id"], "call_w1");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(call["status"], "completed");

    // The client runs the function and sends everything back, as the Agents SDK does.
    let (status, body) = post(
        &state,
        json!({"input": [question, call, {"type": "function_call_output", "call_id": "call_w1", "output": "Sunny, 21 C"}],
               "tools": [weather_tool()]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = messages(&backend);
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[1].role, "assistant");
    assert_eq!(sent[1].tool_calls, vec![weather_call()]);
    assert_eq!(sent[2].role, "tool");
    assert_eq!(sent[2].tool_call_id.as_deref(), Some("call_w1"));
    assert_eq!(sent[2].content, "Sunny, 21 C");
}

#[tokio::test]
async fn text_before_calls_is_a_message_then_the_calls() {
    let (state, _) = serve(FakeBackend::new("fake", "Let me check.").with_tool_calls(vec![weather_call()]));
    let (_, body) = post(&state, json!({"input": "Weather?", "tools": [weather_tool()]})).await;
    let kinds: Vec<&str> = body["output"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["message", "function_call"]);
    let (_, body) = post(&state, json!({"input": "Weather?", "tools": [weather_tool()], "tool_choice": "none"})).await;
    assert_eq!(body["output"][0]["content"][0]["text"], "Let me check.", "tool_choice none: no calls");
    assert_eq!(body["output"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn what_cannot_be_served_is_a_400_that_says_why() {
    let (state, _) = serve(FakeBackend::new("fake", REPLY));
    let cases = [
        (json!({"input": "x", "tools": [{"type": "web_search"}]}), "tools", "'web_search'"),
        (
            json!({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["vs"]}]}),
            "tools",
            "'file_search'",
        ),
        (
            json!({"input": "x", "tools": [weather_tool()], "tool_choice": {"type": "function", "name": "get_time"}}),
            "tool_choice",
            "'get_time'",
        ),
        (
            json!({"input": "x", "tools": [weather_tool()], "tool_choice": {"type": "function"}}),
            "tool_choice",
            "{\"type\": \"function\", \"name\": ...}",
        ),
        (json!({"input": "x", "tools": [weather_tool(), weather_tool()]}), "tools", "defined twice"),
        (json!({"input": "x", "previous_response_id": "resp_123"}), "previous_response_id", "stateless"),
        (json!({"input": "x", "conversation": {"id": "conv_1"}}), "conversation", "stateless"),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]}),
            "input",
            "'input_image'",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}]}),
            "input",
            "'input_file'",
        ),
        (json!({"input": "x", "text": {"format": {"type": "json_schema", "name": "x"}}}), "text.format", "schema"),
        (json!({"input": "x", "temperature": 3}), "temperature", "between 0 and 2"),
        (json!({"instructions": "x"}), "input", "required"),
    ];
    for (body, param, needle) in cases {
        let (status, reply) = post(&state, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {reply}");
        assert_eq!(reply["error"]["param"], param, "{body} -> {reply}");
        assert_eq!(reply["error"]["type"], "invalid_request_error");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message:?} should name {needle:?}");
    }
}

#[tokio::test]
async fn harmless_fields_are_accepted() {
    let (state, _) = serve(FakeBackend::new("fake", REPLY));
    let (status, body) = post(
        &state,
        json!({"input": "x", "store": true, "user": "u1", "reasoning": {"effort": "low"}, "truncation": "auto",
               "include": ["reasoning.encrypted_content", "message.output_text.logprobs"],
               "prompt_cache_key": "k", "service_tier": "auto", "stream_options": {"include_obfuscation": false}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["store"].as_bool(), body["user"].as_str()), (Some(false), Some("u1")));
    assert_eq!(body["truncation"], "auto");
}

#[tokio::test]
async fn a_json_schema_format_reaches_the_backend_and_the_answer_is_checked() {
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                        "additionalProperties": false});
    let format = json!({"type": "json_schema", "name": "verdict", "schema": schema, "strict": true});
    let (state, backend) = serve(FakeBackend::new("fake", r#"{"ok": true}"#));
    let (status, headers, text) =
        send(&state, "/v1/responses", json!({"input": "ok?", "text": {"format": format}})).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["text"]["format"], format, "the format is repeated as given");
    assert_eq!(body["output"][0]["content"][0]["text"], r#"{"ok": true}"#);
    assert_eq!(body["x_edgeway"]["format"]["valid"], true, "{body}");
    assert_eq!(headers["x-edgeway-format"], "valid");
    let sampling = backend.last_request().unwrap().sampling;
    let Some(OutputFormat::JsonSchema { name, strict, .. }) = sampling.format else {
        panic!("no schema: {sampling:?}")
    };
    assert_eq!((name.as_deref(), strict), (Some("verdict"), true));

    let (state, _) = serve(FakeBackend::new("fake", REPLY));
    let (_, body) = post(&state, json!({"input": "ok?", "text": {"format": format}})).await;
    assert_eq!(body["x_edgeway"]["format"]["valid"], false, "{body}");
}

#[tokio::test]
async fn max_output_tokens_makes_the_response_incomplete() {
    let (state, _) = serve(FakeBackend::new("fake", REPLY));
    let (status, body) = post(&state, json!({"input": "x", "max_output_tokens": 2})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "incomplete");
    assert_eq!(body["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(body["max_output_tokens"], 2);
    assert_eq!(body["output"][0]["status"], "incomplete");
    assert_eq!(body["output"][0]["content"][0]["text"], "Paris is ");
    assert_eq!(body["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn a_streamed_text_answer_is_the_exact_event_sequence() {
    let (state, _) = serve(FakeBackend::new("fake", REPLY));
    let (status, headers, text) = send(&state, "/v1/responses", json!({"input": "x", "stream": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert!(!text.contains("[DONE]"), "the Responses API stream has no [DONE]");
    let events = sse(&text);
    let mut expected =
        vec!["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"];
    expected.extend(["response.output_text.delta"; 6]);
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(types(&events), expected);

    let id = events[0]["response"]["id"].as_str().unwrap();
    assert_eq!(events[0]["response"]["status"], "in_progress");
    assert_eq!(events[0]["response"]["output"], json!([]));
    assert_eq!(events[1]["response"]["id"], id);
    let added = &events[2];
    assert_eq!(added["output_index"], 0);
    assert_eq!(added["item"]["status"], "in_progress");
    assert_eq!(added["item"]["content"], json!([]));
    let item_id = added["item"]["id"].as_str().unwrap();
    assert_eq!(events[3]["part"], json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []}));
    for event in &events[3..12] {
        assert_eq!(event["item_id"], item_id, "{event}");
        assert_eq!(event["output_index"], 0, "{event}");
    }
    assert_eq!((events[12]["item"]["id"].as_str(), events[12]["output_index"].as_u64()), (Some(item_id), Some(0)));
    let joined: String = events[4..10].iter().map(|e| e["delta"].as_str().unwrap()).collect();
    assert_eq!(joined, REPLY);
    assert!(events[4..10].iter().all(|e| e["content_index"] == 0));
    assert_eq!(events[10]["text"], REPLY);
    assert_eq!(events[11]["part"]["text"], REPLY);
    assert_eq!(events[12]["item"]["status"], "completed");
    let completed = &events[13]["response"];
    assert_eq!((completed["id"].as_str(), completed["status"].as_str()), (Some(id), Some("completed")));
    assert_eq!(completed["output"], json!([events[12]["item"]]), "the final output is the items as done");
    assert_eq!(completed["usage"]["output_tokens"], 6);
    assert!(events[13]["x_edgeway"].is_object(), "cost and route ride on the last event");
}

#[tokio::test]
async fn a_streamed_call_is_the_exact_event_sequence() {
    let (state, _) = serve(FakeBackend::new("fake", "").with_tool_calls(vec![weather_call()]));
    let body = json!({"input": "Weather?", "tools": [weather_tool()], "tool_choice": "required", "stream": true});
    let (status, _, text) = send(&state, "/v1/responses", body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let events = sse(&text);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let item = &events[2]["item"];
    assert_eq!((item["type"].as_str(), item["status"].as_str()), (Some("function_call"), Some("in_progress")));
    assert_eq!((item["call_id"].as_str(), item["name"].as_str()), (Some("call_w1"), Some("get_weather")));
    assert_eq!(item["arguments"], "");
    let item_id = item["id"].as_str().unwrap();
    let arguments: String = events[3..5].iter().map(|e| e["delta"].as_str().unwrap()).collect();
    assert_eq!(arguments, r#"{"city":"Paris"}"#);
    assert!(events[3..6].iter().all(|e| e["item_id"] == item_id && e["output_index"] == 0));
    assert_eq!((events[6]["item"]["id"].as_str(), events[6]["output_index"].as_u64()), (Some(item_id), Some(0)));
    assert_eq!(events[5]["arguments"], arguments);
    assert_eq!(events[6]["item"]["arguments"], arguments);
    assert_eq!(events[6]["item"]["status"], "completed");
    assert_eq!(events[7]["response"]["output"], json!([events[6]["item"]]));
}

#[tokio::test]
async fn streamed_text_then_a_call_closes_the_message_first() {
    let (state, _) = serve(FakeBackend::new("fake", "Checking.").with_tool_calls(vec![weather_call()]));
    let body = json!({"input": "Weather?", "tools": [weather_tool()], "stream": true});
    let (_, _, text) = send(&state, "/v1/responses", body).await;
    let events = sse(&text);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[8]["output_index"], 1);
    let output = events[13]["response"]["output"].as_array().unwrap();
    assert_eq!(output.len(), 2);
    assert_eq!((output[0]["type"].as_str(), output[1]["type"].as_str()), (Some("message"), Some("function_call")));
}

#[tokio::test]
async fn a_streamed_answer_cut_short_ends_incomplete() {
    let (state, _) = serve(FakeBackend::new("fake", REPLY));
    let (_, _, text) =
        send(&state, "/v1/responses", json!({"input": "x", "stream": true, "max_output_tokens": 2})).await;
    let events = sse(&text);
    let names = types(&events);
    assert_eq!(names.last(), Some(&"response.incomplete"));
    assert_eq!(names.iter().filter(|n| **n == "response.output_text.delta").count(), 2);
    let last = &events.last().unwrap()["response"];
    assert_eq!(last["status"], "incomplete");
    assert_eq!(last["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(last["output"][0]["status"], "incomplete");
}

/// A backend that says one word and then fails.
struct FailingBackend(edgeway_core::ModelInfo);

impl edgeway_core::Backend for FailingBackend {
    fn model_info(&self) -> &edgeway_core::ModelInfo {
        &self.0
    }
    fn load(&self) -> edgeway_core::BackendLoad {
        edgeway_core::BackendLoad::default()
    }
    fn submit(&self, _: edgeway_core::GenerateRequest) -> Result<edgeway_core::Generation, edgeway_core::BackendError> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = tx.send(Ok(edgeway_core::GenerationEvent::Delta { text: "Par".into(), logprobs: Vec::new() }));
        let _ = tx.send(Err(edgeway_core::BackendError::Unavailable("the cloud hung up".into())));
        Ok(edgeway_core::Generation::new(1, rx))
    }
}

#[tokio::test]
async fn an_error_mid_stream_is_an_error_event_then_response_failed() {
    let info = edgeway_core::Backend::model_info(&FakeBackend::new("fake", REPLY)).clone();
    let state = AppState::ready(Arc::new(FailingBackend(info)));
    let (status, _, text) = send(&state, "/v1/responses", json!({"input": "x", "stream": true})).await;
    assert_eq!(status, StatusCode::OK, "the stream had begun");
    let events = sse(&text);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "error",
            "response.failed",
        ]
    );
    assert!(events[5]["message"].as_str().unwrap().contains("the cloud hung up"), "{}", events[5]);
    assert!(events[5]["code"].is_string());
    let failed = &events[6]["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "server_error");
    assert_eq!(failed["output"][0]["content"][0]["text"], "Par");
}

#[tokio::test]
async fn errors_before_any_output_use_the_error_table() {
    let (state, _) = serve(FakeBackend::new("fake", REPLY).with_capacity(0));
    let (status, body) = post(&state, json!({"input": "x", "stream": true})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "queue_full");
    let (status, body) = post(&state, json!({"model": "gpt-9", "input": "x"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found");
}
