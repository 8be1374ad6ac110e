//! The integration suite: a real `edgeway serve` process, the real SmolLM2-135M
//! model, real HTTP over loopback.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{chat, chat_stream_text, read_until, Server};
use serde_json::{json, Value};

#[test]
fn chat_answer_arrives_with_usage() {
    let server = Server::start(&[]);
    let (status, body) = server.post(
        "/v1/chat/completions",
        &chat("What is the capital of France?", json!({"temperature": 0, "max_tokens": 32})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "smollm2");
    let answer = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(answer.contains("Paris"), "unexpected answer: {answer}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 5);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

#[test]
fn streamed_chunks_concatenate_to_the_whole_answer() {
    let server = Server::start(&[]);
    let request = chat("Write two sentences about the sea.", json!({"temperature": 0, "seed": 42, "max_tokens": 60}));
    let (_, whole) = server.post("/v1/chat/completions", &request);
    let whole_text = whole["choices"][0]["message"]["content"].as_str().unwrap().to_owned();

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let events = server.stream("/v1/chat/completions", &streamed);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chat_stream_text(&events), whole_text);
    assert!(events.len() > 5, "expected token-by-token chunks, got {}", events.len());

    let finish = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find_map(|v| v["choices"][0]["finish_reason"].as_str().map(str::to_owned));
    assert_eq!(finish.as_deref(), whole["choices"][0]["finish_reason"].as_str());
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], whole["usage"]["completion_tokens"]);
}

#[test]
fn max_tokens_and_stop_sequences_hold() {
    let server = Server::start(&[]);
    let (_, body) = server.post(
        "/v1/chat/completions",
        &chat("Count from one to twenty in words.", json!({"temperature": 0, "max_tokens": 5})),
    );
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["choices"][0]["finish_reason"], "length");

    // Find a word the model says, then stop on it: the answer must end right before it.
    let (_, free) = server.post(
        "/v1/chat/completions",
        &chat("Count from one to ten in words.", json!({"temperature": 0, "max_tokens": 40})),
    );
    let text = free["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    let stop_word = text.split_whitespace().nth(3).expect("answer too short").to_owned();
    let (_, stopped) = server.post(
        "/v1/chat/completions",
        &chat(
            "Count from one to ten in words.",
            json!({"temperature": 0, "max_tokens": 40, "stop": [stop_word.clone()]}),
        ),
    );
    let stopped_text = stopped["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop");
    assert!(!stopped_text.contains(&stop_word), "{stopped_text:?} contains stop {stop_word:?}");
    assert_eq!(stopped_text, &text[..text.find(&stop_word).unwrap()]);

    // The same through a stream.
    let events = server.stream(
        "/v1/chat/completions",
        &chat(
            "Count from one to ten in words.",
            json!({"temperature": 0, "max_tokens": 40, "stop": stop_word, "stream": true}),
        ),
    );
    assert_eq!(chat_stream_text(&events), stopped_text);
}

#[test]
fn logprobs_are_returned_when_asked() {
    let server = Server::start(&[]);
    let (status, body) = server.post(
        "/v1/chat/completions",
        &chat("Say yes.", json!({"temperature": 0, "max_tokens": 4, "logprobs": true, "top_logprobs": 3})),
    );
    assert_eq!(status, 200);
    let content = body["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert!(!content.is_empty());
    for entry in content {
        let logprob = entry["logprob"].as_f64().unwrap();
        assert!(logprob <= 0.0);
        let top = entry["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        // Greedy decoding picks the most likely token.
        assert!((top[0]["logprob"].as_f64().unwrap() - logprob).abs() < 1e-4);
    }
}

#[test]
fn text_completions_models_and_health() {
    let server = Server::start(&[]);
    let (status, body) = server
        .post("/v1/completions", &json!({"prompt": "The capital of France is", "temperature": 0, "max_tokens": 8}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "text_completion");
    assert!(body["choices"][0]["text"].as_str().unwrap().contains("Paris"));
    assert_eq!(body["usage"]["completion_tokens"].as_u64().unwrap(), 8);

    let (status, models) = server.get("/v1/models");
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "smollm2");
    assert_eq!(models["data"][0]["meta"]["n_ctx_slot"], 2048);

    let (status, health) = server.get("/health");
    assert_eq!(status, 200);
    assert_eq!(health["model_loaded"], true);
}

#[test]
fn bad_requests_get_openai_shaped_errors() {
    let server = Server::start(&[]);
    let malformed = common::client().post(server.url("/v1/chat/completions")).body("{\"messages\": [").send().unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("not valid JSON"));

    let (status, body) = server.post("/v1/chat/completions", &chat("hi", json!({"model": "gpt-4o"})));
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "model_not_found");

    let (status, body) = server.post("/v1/chat/completions", &chat("hi", json!({"temperature": 7})));
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "temperature");

    let (status, body) = server.post("/v1/chat/completions", &json!({"messages": []}));
    assert_eq!(status, 400, "{body}");

    let long_prompt = "the quick brown fox jumps over the lazy dog ".repeat(400);
    let (status, body) = server.post("/v1/chat/completions", &chat(&long_prompt, json!({})));
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("2048") && message.contains("tokens"), "{message}");

    let (status, body) = server.get("/v1/nothing");
    assert_eq!(status, 404);
    assert!(body["error"]["message"].is_string());
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let server = Server::start(&["--parallel", "1", "--queue-size", "1", "--ctx-size", "2048"]);
    let long =
        chat("Write a long story about a dragon.", json!({"max_tokens": 1500, "stream": true, "temperature": 1.0}));
    let client = common::client();
    // First request takes the only slot; wait until it streams.
    let mut first = client.post(server.url("/v1/chat/completions")).json(&long).send().unwrap();
    read_until(&mut first, "data:");
    // Second waits in the queue. Its answer starts only when it gets the slot, so
    // send it from a raw socket and do not wait for it.
    let body = long.to_string();
    let mut second = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        second,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    )
    .unwrap();
    let queued_by = Instant::now() + Duration::from_secs(10);
    while server.get("/health").1["queued"] != 1 {
        assert!(Instant::now() < queued_by, "the second request never queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Third finds the queue full.
    let third = client.post(server.url("/v1/chat/completions")).json(&long).send().unwrap();
    assert_eq!(third.status(), 503);
    assert_eq!(third.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: Value = third.json().unwrap();
    assert_eq!(body["error"]["code"], "queue_full");
}

#[test]
fn a_client_disconnect_frees_its_slot_at_once() {
    let server = Server::start(&["--parallel", "1"]);
    let body = chat(
        "Write a very long essay about the history of Rome.",
        json!({"max_tokens": 3500, "ignore_eos": true, "stream": true, "temperature": 1.0}),
    )
    .to_string();
    let mut socket = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(socket, "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}", body.len(), body).unwrap();
    read_until(&mut socket, "\"content\":\"");
    assert_eq!(server.busy_slots(), 1);
    drop(socket);
    let started = Instant::now();
    while server.busy_slots() != 0 {
        // The answer would take 20 s or more; a loaded CI machine may take a few seconds to notice.
        assert!(started.elapsed() < Duration::from_secs(8), "slot still busy 8 s after the client left");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The slot serves the next request.
    let (status, _) = server.post("/v1/chat/completions", &chat("hi", json!({"max_tokens": 4})));
    assert_eq!(status, 200);
}

#[test]
fn a_shared_prefix_is_reused_from_the_cache() {
    let server = Server::start(&["--parallel", "1"]);
    let system = "You are a helpful assistant for a factory. ".repeat(20);
    let request = |question: &str| json!({"messages": [{"role": "system", "content": system}, {"role": "user", "content": question}], "max_tokens": 4, "temperature": 0});
    let (_, cold) = server.post("/v1/chat/completions", &request("What is a conveyor?"));
    assert_eq!(cold["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let (_, warm) = server.post("/v1/chat/completions", &request("What is a robot arm?"));
    let cached = warm["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
    assert!(cached > 150, "expected the system prompt to be reused, cached {cached}");
    assert!(warm["timings"]["prompt_n"].as_u64().unwrap() < 30);
}

#[test]
fn a_corrupt_model_file_is_a_clear_startup_error() {
    let path = std::env::temp_dir().join(format!("edgeway-corrupt-{}.gguf", std::process::id()));
    std::fs::write(&path, b"this is not a model, just some text that was saved by mistake").unwrap();
    let args: Vec<String> = vec!["serve".into(), "--model".into(), path.display().to_string()];
    let error = Server::start_with(&args).err().expect("server must refuse a corrupt model");
    assert!(error.contains("not a GGUF model"), "{error}");
    assert!(!error.contains("panicked"), "{error}");

    // A real header followed by garbage: llama.cpp itself refuses it.
    let mut truncated = std::fs::read(common::test_model()).unwrap();
    truncated.truncate(4096);
    std::fs::write(&path, &truncated).unwrap();
    let error = Server::start_with(&args).err().expect("server must refuse a truncated model");
    assert!(error.contains("cannot load the model"), "{error}");
    assert!(!error.contains("panicked"), "{error}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn parallel_requests_generate_together() {
    // One chunk per token, so each stream's progress is visible token by token.
    let server = Server::start(&["--parallel", "2", "--stream-interval-ms", "0"]);
    let request = chat(
        "Write a short poem about rivers.",
        json!({"max_tokens": 48, "stream": true, "temperature": 0, "ignore_eos": true}),
    );
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let url = server.url("/v1/chat/completions");
            let request = request.clone();
            std::thread::spawn(move || {
                let response = common::client().post(url).json(&request).send().unwrap();
                let mut stamps = Vec::new();
                for line in std::io::BufRead::lines(std::io::BufReader::new(response)).map_while(Result::ok) {
                    if line.contains("\"content\":\"") {
                        stamps.push(Instant::now());
                    }
                }
                stamps
            })
        })
        .collect();
    let runs: Vec<Vec<Instant>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for stamps in &runs {
        assert!(stamps.len() >= 48, "each stream must deliver its tokens, got {}", stamps.len());
    }
    // Both streams were producing tokens at the same time: each started before the other ended.
    let (a, b) = (&runs[0], &runs[1]);
    assert!(a[1] < *b.last().unwrap() && b[1] < *a.last().unwrap(), "the two requests ran one after the other");
}

/// The embedding model behind `/v1/embeddings` is the converted all-MiniLM-L6-v2:
/// over HTTP its vectors match sentence-transformers' reference ones.
#[test]
fn embeddings_over_http_match_the_reference_model() {
    let fixture: Value =
        serde_json::from_str(include_str!("../../engine/tests/fixtures/minilm-reference.json")).unwrap();
    let items = fixture["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let server = Server::start(&[]);
    // Listed from the start, loaded by the first request that needs it.
    let embedding_loaded = || {
        let (_, models) = server.get("/v1/models");
        let entry = models["data"].as_array().unwrap().iter().find(|m| m["id"] == "all-minilm-l6-v2").cloned();
        entry.expect("the embedding model is listed")["meta"]["loaded"].as_bool()
    };
    assert_eq!(embedding_loaded(), Some(false), "loaded before any request");
    let (status, body) = server.post("/v1/embeddings", &json!({ "input": texts, "model": "all-minilm-l6-v2" }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(embedding_loaded(), Some(true));
    assert!(server.stderr().contains("embedding model loaded on first use"));
    for (item, got) in items.iter().zip(body["data"].as_array().unwrap()) {
        let reference: Vec<f64> = item["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let got: Vec<f64> = got["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let cosine: f64 = reference.iter().zip(&got).map(|(a, b)| a * b).sum();
        assert!(cosine >= 0.999, "cosine {cosine} for {}", item["text"]);
    }
    let off = Server::start(&["--no-embeddings"]);
    let (status, body) = off.post("/v1/embeddings", &json!({ "input": "x" }));
    assert_eq!(status, 501, "{body}");
}

/// A generative model given as the embedding model is refused at start, not at the first request.
#[test]
fn a_chat_model_as_embedding_model_is_refused_at_start() {
    let model = common::test_model().display().to_string();
    let error =
        Server::start_with(&["serve".into(), "--model".into(), model.clone(), "--embedding-model".into(), model])
            .err()
            .expect("serve must refuse a chat model as its embedding model");
    assert!(error.contains("is not an embedding model") && error.contains("llama"), "{error}");
}

/// Offline on a first run, the default embedding model cannot be fetched: the server still
/// serves chats, and embeddings answer 501 with what to do.
#[test]
fn serve_starts_without_the_default_embedding_model() {
    let empty = std::env::temp_dir().join(format!("edgeway-no-embedder-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let model = common::test_model().display().to_string();
    let server = Server::start_with(&[
        "serve".into(),
        "--model".into(),
        model,
        "--no-pull".into(),
        "--data-dir".into(),
        empty.display().to_string(),
    ])
    .expect("serve must start without an embedding model");
    let (status, _) = server.post("/v1/chat/completions", &chat("Hi", json!({"max_tokens": 2})));
    assert_eq!(status, 200);
    let (status, body) = server.post("/v1/embeddings", &json!({ "input": "x" }));
    assert_eq!(status, 501, "{body}");
    let _ = std::fs::remove_dir_all(empty);
}

#[test]
fn mapped_and_huge_page_weights_give_the_same_answer() {
    let ask = |server: &Server| {
        let (status, body) = server
            .post("/v1/chat/completions", &chat("Name three colours.", json!({"temperature": 0, "max_tokens": 24})));
        assert_eq!(status, 200, "{body}");
        body["choices"][0]["message"]["content"].as_str().unwrap().to_owned()
    };
    let read_in = Server::start(&["--mmap", "false", "--no-embeddings"]);
    let mapped = Server::start(&["--mmap", "true", "--no-embeddings"]);
    assert_eq!(ask(&read_in), ask(&mapped));
    if edgeway_engine::hugepages::available() {
        assert!(read_in.stderr().contains("model weights on 2 MiB pages"), "{}", read_in.stderr());
    }
    assert!(!mapped.stderr().contains("2 MiB pages"), "{}", mapped.stderr());
}

/// Streamed text leaves the engine at most once per `--stream-interval-ms`; the first
/// token never waits, and the chunks carry every token and its logprobs whatever the pacing.
#[test]
fn streamed_tokens_are_paced_into_chunks() {
    let request = chat(
        "Name three colours.",
        json!({"temperature": 0, "max_tokens": 24, "ignore_eos": true, "logprobs": true, "stream": true,
               "stream_options": {"include_usage": true}}),
    );
    // (chunks with content, logprob entries, text, completion tokens) of one stream.
    let stream = |server: &Server| {
        let events = server.stream("/v1/chat/completions", &request);
        let chunks: Vec<Value> =
            events.iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str(e).unwrap()).collect();
        let with_content =
            chunks.iter().filter(|c| c["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()));
        let entries: usize =
            chunks.iter().filter_map(|c| c["choices"][0]["logprobs"]["content"].as_array()).map(Vec::len).sum();
        let completion_tokens = chunks.iter().find_map(|c| c["usage"]["completion_tokens"].as_u64()).unwrap();
        (with_content.count(), entries, chat_stream_text(&events), completion_tokens as usize)
    };
    let every_token = Server::start(&["--stream-interval-ms", "0", "--no-embeddings"]);
    let (chunks, entries, per_token_text, tokens) = stream(&every_token);
    assert_eq!(tokens, 24);
    assert_eq!((chunks, entries), (24, 24), "one chunk per token");
    drop(every_token);

    // An interval longer than the answer: the first token goes at once, the rest at the end.
    let held = Server::start(&["--stream-interval-ms", "600000", "--no-embeddings"]);
    let (chunks, entries, held_text, tokens) = stream(&held);
    assert_eq!((chunks, entries, tokens), (2, 24, 24), "first token, then the rest");
    assert_eq!(held_text, per_token_text);

    // Held text goes out before a step that reads another request's prompt, which may take long.
    let long = chat("Tell a long story.", json!({"max_tokens": 400, "ignore_eos": true, "stream": true}));
    let response = common::client().post(held.url("/v1/chat/completions")).json(&long).send().unwrap();
    let has_text = |line: &String| {
        let chunk: Value =
            line.strip_prefix("data: ").and_then(|data| serde_json::from_str(data).ok()).unwrap_or_default();
        chunk["choices"][0]["delta"]["content"].as_str().is_some_and(|text| !text.is_empty())
    };
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(response)).map_while(Result::ok);
    let mut content_chunks = usize::from(lines.by_ref().any(|line| has_text(&line)));
    // Twice: the first may come before the long answer has held anything (its first token
    // just went out); by the second, the tokens made while the first ran are held.
    for _ in 0..2 {
        let (status, _) = held.post("/v1/completions", &json!({"prompt": "Another question", "max_tokens": 2}));
        assert_eq!(status, 200);
    }
    content_chunks += lines.filter(has_text).count();
    assert!(content_chunks >= 3, "first token, the text held when the second prompt came, the rest: {content_chunks}");
}
