//! The user text is embedded once per request, only when something reads it (a router whose
//! scorer embeds, retrieval), and a missing or failing embedding model fails no request.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use edgeway_core::fake::{FakeBackend, FakeEmbedder};
use edgeway_core::{
    BackendError, EmbeddingBackend, EmbeddingInfo, EmbeddingOutput, Passage, QueryEmbedding, Retriever,
};
use edgeway_server::rag::RagSettings;
use edgeway_server::{app, AppState};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn chat(state: &AppState, extra: Value) -> (StatusCode, Value) {
    let mut body = json!({"messages": [{"role": "user", "content": "Why does the press on line three stall?"}]});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let request = Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A retriever that records the embedding it was handed and embeds nothing itself.
#[derive(Default)]
struct RecordingRetriever {
    handed: Mutex<Vec<Option<QueryEmbedding>>>,
}

impl Retriever for RecordingRetriever {
    fn retrieve(
        &self,
        _collection: &str,
        _query: &str,
        embedding: Option<&QueryEmbedding>,
        _k: usize,
    ) -> Result<Vec<Passage>, BackendError> {
        self.handed.lock().unwrap().push(embedding.cloned());
        Ok(vec![Passage { source: "manual.md".into(), title: None, position: 0, text: "Oil it.".into(), score: 0.9 }])
    }

    fn collections(&self) -> Vec<String> {
        vec!["manuals".into()]
    }
}

#[tokio::test]
async fn a_router_that_reads_embeddings_gets_one_computed_once() {
    let backend = FakeBackend::new("router", "ok").wanting_query_embedding();
    let state = AppState::ready(Arc::new(backend.clone()));
    let embedder = FakeEmbedder::new("minilm", 8);
    state.set_embedder(Arc::new(embedder.clone()));
    let (status, body) = chat(&state, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let embedding = backend.last_request().unwrap().query_embedding.expect("the request carries its embedding");
    assert_eq!((embedding.model.as_str(), embedding.vector.len()), ("minilm", 8));
    let expected = embedder.embed(&["Why does the press on line three stall?".into()]).unwrap().vectors.remove(0);
    assert_eq!(&*embedding.vector, expected.as_slice(), "the vector of the last user message");
    assert_eq!(embedder.embedded(), 2, "once for the request, once just now in the test");
}

#[tokio::test]
async fn nothing_is_embedded_when_nothing_reads_it() {
    let backend = FakeBackend::new("plain", "ok");
    let state = AppState::ready(Arc::new(backend.clone()));
    let embedder = FakeEmbedder::new("minilm", 8);
    state.set_embedder(Arc::new(embedder.clone()));
    let (status, _) = chat(&state, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(embedder.embedded(), 0);
    assert!(backend.last_request().unwrap().query_embedding.is_none());
}

#[tokio::test]
async fn retrieval_and_the_router_share_one_embedding() {
    let backend = FakeBackend::new("router", "ok").wanting_query_embedding();
    let state = AppState::ready(Arc::new(backend.clone()));
    let embedder = FakeEmbedder::new("minilm", 8);
    state.set_embedder(Arc::new(embedder.clone()));
    let retriever = Arc::new(RecordingRetriever::default());
    state.set_retriever(retriever.clone(), RagSettings::default());
    let (status, body) = chat(&state, json!({"collection": "manuals"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(embedder.embedded(), 1, "embedded once for retrieval and routing together");
    let handed = retriever.handed.lock().unwrap().clone();
    let routed = backend.last_request().unwrap().query_embedding;
    assert_eq!(handed.len(), 1);
    assert!(handed[0].is_some() && handed[0] == routed, "retrieval got the vector the router read");
}

/// An embedding model that always fails.
struct BrokenEmbedder(EmbeddingInfo);

impl EmbeddingBackend for BrokenEmbedder {
    fn embedding_info(&self) -> &EmbeddingInfo {
        &self.0
    }

    fn embed(&self, _inputs: &[String]) -> Result<EmbeddingOutput, BackendError> {
        Err(BackendError::Internal("the embedding model crashed".into()))
    }
}

#[tokio::test]
async fn without_a_working_embedding_model_the_request_still_goes_through() {
    // No embedding model at all.
    let backend = FakeBackend::new("router", "ok").wanting_query_embedding();
    let state = AppState::ready(Arc::new(backend.clone()));
    let (status, body) = chat(&state, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(backend.last_request().unwrap().query_embedding.is_none());
    // One that fails.
    let info = EmbeddingInfo { id: "minilm".into(), dims: 8, max_tokens: 256, size_bytes: 0 };
    state.set_embedder(Arc::new(BrokenEmbedder(info)));
    let (status, body) = chat(&state, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(backend.last_request().unwrap().query_embedding.is_none());
}
