//! Structured output on the real model: grammar-constrained JSON at the edge,
//! fail-closed errors, truncation that says so, and the query log's record.

mod common;

use common::{chat, chat_stream_text, Server};
use serde_json::{json, Value};

/// A nested inspection report: objects, arrays, enums, numbers and required fields.
fn report_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "defect": {"type": "boolean"},
            "kind": {"enum": ["scratch", "crack", "stain", "dent", "none"]},
            "location": {
                "type": "object",
                "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                "required": ["x", "y"],
                "additionalProperties": false
            },
            "tags": {"type": "array", "items": {"enum": ["edge", "center", "surface", "deep"]}, "maxItems": 2},
            "severity": {"type": "integer", "minimum": 0, "maximum": 5}
        },
        "required": ["defect", "kind", "location", "tags", "severity"],
        "additionalProperties": false
    })
}

fn response_format(schema: Value) -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "inspection", "strict": true, "schema": schema}})
}

/// Checks an answer against the report schema by hand, independently of the server's own check.
fn assert_is_report(answer: &str, context: &str) {
    let value: Value = serde_json::from_str(answer).unwrap_or_else(|e| panic!("{context}: not JSON ({e}): {answer}"));
    let object = value.as_object().unwrap_or_else(|| panic!("{context}: not an object: {answer}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["defect", "kind", "location", "severity", "tags"], "{context}: {answer}");
    assert!(object["defect"].is_boolean(), "{context}: {answer}");
    let kinds = ["scratch", "crack", "stain", "dent", "none"];
    assert!(object["kind"].as_str().is_some_and(|k| kinds.contains(&k)), "{context}: {answer}");
    assert!(object["location"]["x"].is_i64() && object["location"]["y"].is_i64(), "{context}: {answer}");
    assert_eq!(object["location"].as_object().map(|o| o.len()), Some(2), "{context}: {answer}");
    let tags = object["tags"].as_array().unwrap_or_else(|| panic!("{context}: tags: {answer}"));
    let places = ["edge", "center", "surface", "deep"];
    assert!(
        tags.len() <= 2 && tags.iter().all(|t| t.as_str().is_some_and(|t| places.contains(&t))),
        "{context}: {answer}"
    );
    assert!(object["severity"].as_i64().is_some_and(|s| (0..=5).contains(&s)), "{context}: {answer}");
}

const PARTS: [&str; 10] = ["bracket", "gear", "housing", "panel", "bolt", "hinge", "valve", "lens", "shaft", "cover"];
const FINDINGS: [&str; 5] = [
    "a long scratch near the left edge",
    "no visible damage at all",
    "a hairline crack across the middle",
    "an oil stain in the corner",
    "a small dent close to the top",
];

#[test]
fn a_nested_schema_gives_valid_json_on_50_prompts_streamed_and_not() {
    let server = Server::start(&["--parallel", "4"]);
    let format = response_format(report_schema());
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Four clients share the 50 prompts, so the four slots decode together.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= 50 {
                    break;
                }
                let part = PARTS[i % PARTS.len()];
                let finding = FINDINGS[(i / PARTS.len()) % FINDINGS.len()];
                let prompt = format!("The camera over the line shows {finding} on {part} {}. Report it.", 100 + i);
                // Greedy and sampled decoding, alternately.
                let sampling = if i.is_multiple_of(2) {
                    json!({"temperature": 0})
                } else {
                    json!({"temperature": 0.8, "seed": i})
                };
                let mut body = chat(&prompt, json!({"response_format": format, "max_tokens": 300}));
                body.as_object_mut().unwrap().extend(sampling.as_object().unwrap().clone());

                let (status, whole) = server.post("/v1/chat/completions", &body);
                assert_eq!(status, 200, "{whole}");
                assert_eq!(whole["choices"][0]["finish_reason"], "stop", "prompt {i}: {whole}");
                assert_eq!(whole["x_edgeway"]["format"]["verdict"], "valid", "prompt {i}: {whole}");
                assert_is_report(whole["choices"][0]["message"]["content"].as_str().unwrap(), &format!("prompt {i}"));

                body["stream"] = json!(true);
                let events = server.stream("/v1/chat/completions", &body);
                assert_is_report(&chat_stream_text(&events), &format!("prompt {i}, streamed"));
                let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
                assert_eq!(last["x_edgeway"]["format"]["verdict"], "valid", "prompt {i}, streamed: {last}");
            });
        }
    });
}

#[test]
fn json_object_and_raw_grammars_hold_on_both_endpoints() {
    let server = Server::start(&[]);
    let body = chat(
        "List three fruits with their colours.",
        json!({"response_format": {"type": "json_object"}, "temperature": 0, "max_tokens": 200}),
    );
    let (status, headers, answer) = server.post_with_headers("/v1/chat/completions", &body, &[]);
    assert_eq!(status, 200, "{answer}");
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(serde_json::from_str::<Value>(text).unwrap().is_object(), "{text}");
    assert_eq!(headers["x-edgeway-format"], "valid");

    // llama-server's raw GBNF grammar, on the text endpoint.
    let grammar = r#"root ::= "The answer is " ("yes" | "no") ".""#;
    let (status, answer) = server.post(
        "/v1/completions",
        &json!({"prompt": "Is the sky blue? ", "grammar": grammar, "temperature": 0.9, "seed": 3, "max_tokens": 20}),
    );
    assert_eq!(status, 200, "{answer}");
    let text = answer["choices"][0]["text"].as_str().unwrap();
    assert!(text == "The answer is yes." || text == "The answer is no.", "{text}");
    assert_eq!(answer["x_edgeway"]["format"]["verdict"], "unchecked");

    // llama-server's bare `json_schema` field, on the text endpoint.
    let schema = json!({"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"]});
    let (status, answer) = server.post(
        "/v1/completions",
        &json!({"prompt": "Q: Is fire hot?\nA (JSON): ", "json_schema": schema, "temperature": 0, "max_tokens": 40}),
    );
    assert_eq!(status, 200, "{answer}");
    let value: Value = serde_json::from_str(answer["choices"][0]["text"].as_str().unwrap()).unwrap();
    assert!(value["answer"] == "yes" || value["answer"] == "no", "{value}");
}

#[test]
fn bad_schemas_and_grammars_fail_closed_with_400() {
    let server = Server::start(&[]);
    let cases = [
        (json!({"response_format": response_format(json!({"type": "objekt"}))}), "not a valid JSON Schema"),
        (json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}), "schema is missing"),
        (json!({"response_format": {"type": "yaml"}}), "'yaml' is not supported"),
        (json!({"grammar": "root ::= (\"unclosed\""}), "grammar does not parse"),
        (json!({"grammar": "start ::= \"a\""}), "grammar does not parse"),
        (json!({"response_format": {"type": "json_object"}, "ignore_eos": true}), "ignore_eos"),
    ];
    for (extra, expected) in cases {
        let (status, body) = server.post("/v1/chat/completions", &chat("Hello", extra.clone()));
        assert_eq!(status, 400, "{extra} gave {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{extra}: expected '{expected}' in '{message}'");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
    // Streamed requests are refused the same way, before any event.
    let mut body = chat("Hello", json!({"grammar": "root ::= (", "stream": true}));
    let (status, answer) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 400, "{answer}");
    body["grammar"] = json!("root ::= \"ok\"");
    let events = server.stream("/v1/chat/completions", &body);
    assert_eq!(chat_stream_text(&events), "ok");
}

#[test]
fn a_cut_answer_says_length_and_truncated_and_is_logged() {
    let server = Server::start(&[]);
    let body = chat(
        "Write the inspection report for gear 7 with a crack.",
        json!({"response_format": response_format(report_schema()), "temperature": 0, "max_tokens": 6}),
    );
    let (status, headers, answer) = server.post_with_headers("/v1/chat/completions", &body, &[]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(answer["x_edgeway"]["format"]["verdict"], "truncated", "{answer}");
    assert_eq!(answer["x_edgeway"]["format"]["valid"], false);
    assert_eq!(headers["x-edgeway-format"], "truncated");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let events = server.stream("/v1/chat/completions", &streamed);
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["x_edgeway"]["format"]["verdict"], "truncated", "{last}");

    let (status, _) = server.post("/v1/chat/completions", &chat("Hi", json!({"max_tokens": 4})));
    assert_eq!(status, 200);
    // The query log says which requests were structured and how their answers fared.
    let rows: Vec<(Option<String>, Option<String>)> =
        common::logged_rows(&server, "SELECT format, format_verdict FROM queries ORDER BY id", 3, |row| {
            Ok((row.get(0)?, row.get(1)?))
        });
    let truncated = (Some("json_schema".to_owned()), Some("truncated".to_owned()));
    assert_eq!(rows, vec![truncated.clone(), truncated, (None, None)]);
}

#[test]
fn an_answer_limited_to_choices_reports_how_sure_the_model_was() {
    let server = Server::start(&[]);
    let schema = json!({
        "type": "object",
        "properties": {"answer": {"enum": ["A", "B", "C", "D"]}},
        "required": ["answer"],
        "additionalProperties": false
    });
    let question =
        "Which planet is known as the red planet? A) Venus B) Mars C) Jupiter D) Saturn. Answer with the letter.";
    let body = chat(question, json!({"response_format": response_format(schema), "temperature": 0, "max_tokens": 20}));
    let (status, headers, answer) = server.post_with_headers("/v1/chat/completions", &body, &[]);
    assert_eq!(status, 200, "{answer}");
    let content: Value =
        serde_json::from_str(answer["choices"][0]["message"]["content"].as_str().unwrap_or_default()).unwrap();
    let choices = answer["x_edgeway"]["choices"].as_array().unwrap_or_else(|| panic!("no choices: {answer}"));
    assert_eq!(choices.len(), 1, "{answer}");
    assert_eq!(choices[0]["path"], "/answer");
    assert_eq!(choices[0]["value"], content["answer"], "{answer}");
    let probability = choices[0]["probability"].as_f64().unwrap_or(-1.0);
    assert!(probability > 0.0 && probability <= 1.0 + 1e-6, "{answer}");
    let header: f64 = headers["x-edgeway-choice-confidence"].to_str().unwrap().parse().unwrap();
    assert!((header - probability).abs() < 1e-3, "{header} vs {probability}");

    // Streamed, the choices ride on the last chunk; a schema without enums reports none.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let events = server.stream("/v1/chat/completions", &streamed);
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["x_edgeway"]["choices"][0]["path"], "/answer", "{last}");
    let plain = chat("Say hi as JSON.", json!({"response_format": {"type": "json_object"}, "max_tokens": 20}));
    let (_, answer) = server.post("/v1/chat/completions", &plain);
    assert!(answer["x_edgeway"].get("choices").is_none(), "{answer}");
}
