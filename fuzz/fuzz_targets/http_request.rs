//! Any body posted to any endpoint gets an answer that is not a 500: the
//! whole HTTP layer (routing, JSON parsing, validation, handlers) over the
//! fake backend. A panic in a handler would show as a 500 (the server catches
//! it); the fuzzer treats that as a crash.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use edgeway_core::fake::FakeBackend;
use edgeway_server::{app, AppState};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const PATHS: &[&str] = &["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/tokenize", "/v1/models"];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let path = PATHS[selector as usize % PATHS.len()];
    let state = AppState::ready(Arc::new(FakeBackend::new("fake", "a fuzzed answer")));
    let request = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    let status = runtime().block_on(async { app(state).oneshot(request).await.unwrap().status() });
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path} answered 500");
});
