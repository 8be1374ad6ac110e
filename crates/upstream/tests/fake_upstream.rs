//! The cloud backend against small in-process HTTP servers that misbehave in
//! chosen ways. The integration suite (`crates/cli/tests`) runs it against a
//! real second `edgeway serve` process.

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use edgeway_core::{
    Backend, BackendError, ChatMessage, FinishReason, GenerateRequest, GenerationEvent, OutputFormat, Prompt,
    SamplingParams, ToolCall, ToolChoice, ToolSpec, ToolUse,
};
use edgeway_upstream::{CloudBackend, UpstreamConfig};

/// Serves `app` on a loopback port and returns the base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/v1")
}

fn sse(body: &'static str) -> Response {
    Response::builder().header("content-type", "text/event-stream").body(Body::from(body)).unwrap()
}

fn request() -> GenerateRequest {
    GenerateRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new("user", "hi")]),
        sampling: SamplingParams::default(),
        route: Default::default(),
        tools: None,
        query_embedding: None,
    }
}

async fn run(base_url: String, timeout: Duration) -> (String, Result<edgeway_core::Completion, BackendError>) {
    let mut config = UpstreamConfig::new("cloud", base_url, "big-model");
    config.timeout = timeout;
    config.price_input_per_mtok = 1.0;
    let backend = CloudBackend::new(config).unwrap();
    let mut generation = backend.submit(request()).unwrap();
    let mut text = String::new();
    while let Some(event) = generation.next_event().await {
        match event {
            Ok(GenerationEvent::Delta { text: piece, .. }) => text.push_str(&piece),
            Ok(GenerationEvent::Finished(completion)) => return (text, Ok(completion)),
            Ok(GenerationEvent::Routed(_) | GenerationEvent::ToolCall(_)) => {}
            Err(error) => return (text, Err(error)),
        }
    }
    (text, Err(BackendError::Internal("no end".into())))
}

const GOOD_STREAM: &str = concat!(
    "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
    "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n",
    "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n",
    "data: [DONE]\n\n",
);

#[tokio::test]
async fn a_good_stream_passes_through_with_usage() {
    let base = serve(Router::new().route("/v1/chat/completions", post(|| async { sse(GOOD_STREAM) }))).await;
    let (text, completion) = run(base, Duration::from_secs(5)).await;
    assert_eq!(text, "Hello");
    let completion = completion.unwrap();
    assert_eq!((completion.usage.prompt_tokens, completion.usage.completion_tokens), (7, 2));
}

#[tokio::test]
async fn a_500_or_a_dead_port_is_unavailable() {
    let base = serve(
        Router::new().route("/v1/chat/completions", post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") })),
    )
    .await;
    let (_, result) = run(base, Duration::from_secs(5)).await;
    let error = result.unwrap_err();
    assert!(matches!(&error, BackendError::Unavailable(m) if m.contains("500") && m.contains("boom")), "{error}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_, result) = run(format!("http://127.0.0.1:{port}/v1"), Duration::from_secs(5)).await;
    assert!(matches!(result, Err(BackendError::Unavailable(m)) if m.contains("unreachable")));
}

#[tokio::test]
async fn a_stall_before_the_first_token_times_out_as_unavailable() {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            sse(GOOD_STREAM)
        }),
    );
    let started = std::time::Instant::now();
    let (_, result) = run(serve(app).await, Duration::from_millis(300)).await;
    assert!(matches!(result, Err(BackendError::Unavailable(m)) if m.contains("did not answer")));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_stream_cut_after_some_text_is_an_internal_error() {
    let cut = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n";
    let base = serve(Router::new().route("/v1/chat/completions", post(move || async move { sse(cut) }))).await;
    let (text, result) = run(base, Duration::from_secs(5)).await;
    assert_eq!(text, "Hel");
    assert!(matches!(result, Err(BackendError::Internal(m)) if m.contains("before the answer ended")));
}

#[tokio::test]
async fn a_requested_format_reaches_the_upstream_as_response_format() {
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let seen = seen_tx.clone();
            async move {
                let _ = seen.send(body);
                sse(GOOD_STREAM)
            }
        }),
    );
    let backend = CloudBackend::new(UpstreamConfig::new("cloud", serve(app).await, "big-model")).unwrap();
    let schema = r#"{"type":"object","properties":{"ok":{"type":"boolean"}}}"#;
    let mut asked = request();
    asked.sampling.format =
        Some(OutputFormat::JsonSchema { name: Some("check".into()), schema: schema.into(), strict: true });
    let mut generation = backend.submit(asked).unwrap();
    while generation.next_event().await.is_some() {}
    let body = seen_rx.recv().await.unwrap();
    assert_eq!(
        body["response_format"],
        serde_json::json!({"type": "json_schema", "json_schema": {
            "name": "check", "strict": true, "schema": serde_json::from_str::<serde_json::Value>(schema).unwrap()
        }})
    );
}

/// A cloud that streams two parallel calls, their arguments in pieces, as OpenAI does.
const TOOL_STREAM: &str = concat!(
    "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n",
    "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\": \"}}]}}]}\n\n",
    "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Oslo\\\"}\"}}]}}]}\n\n",
    "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"{}\"}}]}}]}\n\n",
    "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: [DONE]\n\n",
);

#[tokio::test]
async fn tools_pass_through_and_streamed_calls_come_back_by_index() {
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let seen = seen_tx.clone();
            async move {
                let _ = seen.send(body);
                sse(TOOL_STREAM)
            }
        }),
    );
    let backend = CloudBackend::new(UpstreamConfig::new("cloud", serve(app).await, "big-model")).unwrap();
    let mut asked = request();
    asked.tools = Some(ToolUse {
        tools: vec![ToolSpec {
            name: "get_weather".into(),
            description: Some("Weather".into()),
            parameters: r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.into(),
            strict: false,
        }],
        choice: ToolChoice::Function("get_weather".into()),
        parallel: false,
    });
    if let Prompt::Chat(messages) = &mut asked.prompt {
        messages.push(ChatMessage {
            role: "assistant".into(),
            tool_calls: vec![ToolCall { id: "call_0".into(), name: "get_weather".into(), arguments: "{}".into() }],
            ..ChatMessage::default()
        });
        messages.push(ChatMessage {
            role: "tool".into(),
            content: "sunny".into(),
            tool_call_id: Some("call_0".into()),
            ..ChatMessage::default()
        });
    }
    let mut generation = backend.submit(asked).unwrap();
    let mut deltas = Vec::new();
    let mut finish = None;
    while let Some(event) = generation.next_event().await {
        match event.unwrap() {
            GenerationEvent::ToolCall(delta) => deltas.push(delta),
            GenerationEvent::Finished(completion) => finish = Some(completion.finish_reason),
            _ => {}
        }
    }
    assert_eq!(finish, Some(FinishReason::ToolCalls));
    assert_eq!(deltas.iter().map(|d| d.index).collect::<Vec<_>>(), vec![0, 0, 0, 1]);
    assert_eq!(deltas[0].id.as_deref(), Some("call_a"));
    let arguments: String = deltas.iter().filter(|d| d.index == 0).map(|d| d.arguments.as_str()).collect();
    assert_eq!(arguments, r#"{"city": "Oslo"}"#);
    let body = seen_rx.recv().await.unwrap();
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(body["tool_choice"], serde_json::json!({"type": "function", "function": {"name": "get_weather"}}));
    assert_eq!(body["parallel_tool_calls"], false);
    let history = body["messages"].as_array().unwrap();
    assert_eq!(history[1]["tool_calls"][0]["id"], "call_0");
    assert_eq!(history[1]["content"], serde_json::Value::Null);
    assert_eq!(history[2]["tool_call_id"], "call_0");
}

#[test]
fn base_urls_lose_their_trailing_slash() {
    assert_eq!(UpstreamConfig::new("c", "http://x/v1/", "m").base_url, "http://x/v1");
}
