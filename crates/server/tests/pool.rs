//! The HTTP layer over a model pool (`edgeway-pool`, with fake models): what `/v1/models`
//! and Ollama's `/api/ps` say about loaded and unloaded models, `keep_alive` on every
//! generating endpoint, and Ollama's load and unload calls (a request without a prompt).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use edgeway_core::fake::FakeBackend;
use edgeway_core::{Backend, BackendError, BackendLoad, GenerateRequest, Generation, KeepAlive, ModelInfo, Residency};
use edgeway_pool::{ModelPool, ModelSpec, PoolConfig};
use edgeway_server::{app, AppState};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Estimated memory of each fake model: distinct from the file size, so tests can tell them apart.
const SMALL_BYTES: u64 = 150_000_000;
const BIG_BYTES: u64 = 900_000_000;

fn info(name: &str, file_bytes: u64) -> ModelInfo {
    ModelInfo {
        id: name.to_owned(),
        path: Some(format!("/models/{name}.Q4_1.gguf")),
        n_ctx_slot: 2048,
        n_ctx_train: 8192,
        n_params: 135_000_000,
        size_bytes: file_bytes,
        parallel: 2,
        price_input_per_mtok: 0.0,
        price_output_per_mtok: 0.0,
    }
}

/// A loaded fake model that reports the facts of its file, as the engine does.
struct Loaded {
    info: ModelInfo,
    inner: FakeBackend,
}

impl Backend for Loaded {
    fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    fn load(&self) -> BackendLoad {
        self.inner.load()
    }

    fn submit(&self, request: GenerateRequest) -> Result<Generation, BackendError> {
        self.inner.submit(request)
    }
}

/// A server over a pool of `small` and `big`, whose models answer with their own name.
fn pooled(config: PoolConfig) -> (AppState, Arc<ModelPool>) {
    let specs = vec![
        ModelSpec::new(info("small", 100_000_000), SMALL_BYTES),
        ModelSpec::new(info("big", 800_000_000), BIG_BYTES),
    ];
    let loader = |spec: &ModelSpec| -> Result<Arc<dyn Backend>, String> {
        let inner = FakeBackend::new(&spec.name, &format!("answered by {}", spec.name));
        Ok(Arc::new(Loaded { info: spec.info.clone(), inner }))
    };
    let pool = Arc::new(ModelPool::new(specs, config, loader).expect("a valid pool"));
    (AppState::ready(pool.clone()), pool)
}

async fn send(state: &AppState, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON object ({e}): {text}")))
}

async fn get(state: &AppState, path: &str) -> Value {
    let (status, body) = send(state, "GET", path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn post(state: &AppState, path: &str, body: Value) -> (StatusCode, Value) {
    send(state, "POST", path, Some(body)).await
}

fn listed<'a>(models: &'a Value, id: &str) -> &'a Value {
    models["data"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("{id} in {models}"))
}

/// The names `/api/ps` lists.
async fn running(state: &AppState) -> Vec<String> {
    let ps = get(state, "/api/ps").await;
    ps["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect()
}

fn residency(pool: &ModelPool, name: &str) -> Residency {
    pool.statuses().into_iter().find(|s| s.id == name).unwrap().residency
}

#[tokio::test]
async fn v1_models_lists_every_model_with_what_it_holds_in_memory() {
    let (state, _pool) = pooled(PoolConfig::default());
    let models = get(&state, "/v1/models").await;
    assert_eq!(models["data"].as_array().unwrap().len(), 2, "{models}");
    for id in ["small", "big"] {
        let model = listed(&models, id);
        assert_eq!(model["object"], "model");
        assert_eq!(model["owned_by"], "edgeway");
        assert_eq!((model["residency"].as_str(), model["loaded"].as_bool()), (Some("unloaded"), Some(false)));
        assert_eq!((&model["memory_bytes"], &model["expires_at"]), (&Value::Null, &Value::Null));
        assert_eq!(model["local"], true);
        assert_eq!(model["meta"]["n_ctx_slot"], 2048, "facts known before loading: {model}");
    }

    let (status, body) =
        post(&state, "/v1/chat/completions", json!({"model": "big", "messages": [{"role": "user", "content": "hi"}]}))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "answered by big");

    let models = get(&state, "/v1/models").await;
    let big = listed(&models, "big");
    assert_eq!((big["residency"].as_str(), big["loaded"].as_bool()), (Some("loaded"), Some(true)));
    assert_eq!(big["memory_bytes"], BIG_BYTES);
    let expires = big["expires_at"].as_u64().expect("an idle model expires");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((now + 290..=now + 301).contains(&expires), "five minutes from now: {expires} vs {now}");
    assert_eq!(listed(&models, "small")["residency"], "unloaded");
}

#[tokio::test]
async fn api_ps_lists_the_loaded_models_in_ollamas_shape() {
    let (state, _pool) = pooled(PoolConfig::default());
    assert_eq!(get(&state, "/api/ps").await, json!({"models": []}), "nothing is loaded before it is asked for");
    let tags = get(&state, "/api/tags").await;
    assert_eq!(tags["models"].as_array().unwrap().len(), 2, "tags lists every model, loaded or not: {tags}");

    let (status, body) = post(
        &state,
        "/api/chat",
        json!({"model": "small", "messages": [{"role": "user", "content": "hi"}], "stream": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["content"], "answered by small");

    let ps = get(&state, "/api/ps").await;
    let models = ps["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{ps}");
    let small = &models[0];
    assert_eq!((small["name"].as_str(), small["model"].as_str()), (Some("small:latest"), Some("small:latest")));
    assert_eq!(small["size"], SMALL_BYTES, "the memory it holds, not the file's size");
    assert_eq!(small["size_vram"], 0);
    assert_eq!(small["context_length"], 2048);
    assert_eq!(small["details"]["format"], "gguf");
    assert_eq!(small["details"]["quantization_level"], "Q4_1");
    assert_eq!(small["details"]["parameter_size"], "135M");
    let expires = small["expires_at"].as_str().unwrap();
    assert!(expires.ends_with('Z') && !expires.starts_with("9999"), "a real expiry: {expires}");
    assert_eq!(small["digest"].as_str().unwrap().len(), 64);
}

#[tokio::test]
async fn an_empty_prompt_loads_and_keep_alive_zero_unloads() {
    let (state, pool) = pooled(PoolConfig::default());
    let (status, body) = post(&state, "/api/generate", json!({"model": "big:latest"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["done"].as_bool(), body["done_reason"].as_str()), (Some(true), Some("load")));
    assert_eq!(body["model"], "big:latest");
    assert_eq!(residency(&pool, "big"), Residency::Loaded, "loaded before the answer");
    assert_eq!(running(&state).await, vec!["big:latest"]);

    let (status, body) = post(&state, "/api/generate", json!({"model": "big", "keep_alive": 0})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["done"].as_bool(), body["done_reason"].as_str()), (Some(true), Some("unload")));
    assert_eq!(residency(&pool, "big"), Residency::Unloaded);
    assert!(running(&state).await.is_empty());

    // The chat form: no messages. A negative keep_alive keeps the model loaded for good.
    let (status, body) = post(&state, "/api/chat", json!({"model": "small", "keep_alive": -1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["done_reason"], "load");
    assert_eq!(body["message"], json!({"role": "assistant", "content": ""}));
    let ps = get(&state, "/api/ps").await;
    assert!(ps["models"][0]["expires_at"].as_str().unwrap().starts_with("9999"), "stays loaded: {ps}");
    assert_eq!(listed(&get(&state, "/v1/models").await, "small")["expires_at"], Value::Null);
    let (status, body) = post(&state, "/api/chat", json!({"model": "small", "messages": [], "keep_alive": "0s"})).await;
    assert_eq!((status, body["done_reason"].as_str()), (StatusCode::OK, Some("unload")));
    assert_eq!(residency(&pool, "small"), Residency::Unloaded);

    // An unknown model is still a 404, and a bad keep_alive a 400 that names the forms.
    let (status, _) = post(&state, "/api/generate", json!({"model": "nope", "keep_alive": 0})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = post(&state, "/api/generate", json!({"model": "small", "keep_alive": "soon"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("keep_alive") && message.contains("5m"), "{message}");
}

#[tokio::test]
async fn keep_alive_zero_on_a_request_unloads_after_the_answer() {
    let (state, pool) = pooled(PoolConfig::default());
    let body = json!({"model": "small", "prompt": "hi", "stream": false, "keep_alive": 0});
    let (status, reply) = post(&state, "/api/generate", body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["response"], "answered by small");
    assert_eq!(residency(&pool, "small"), Residency::Unloaded);

    // The same through OpenAI's endpoints, where keep_alive is an extension field.
    let body = json!({"model": "big", "messages": [{"role": "user", "content": "hi"}], "keep_alive": "0"});
    let (status, reply) = post(&state, "/v1/chat/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(residency(&pool, "big"), Residency::Unloaded);
    let body = json!({"model": "big", "prompt": "hi", "keep_alive": "1h"});
    let (status, reply) = post(&state, "/v1/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let expires = pool.statuses()[1].expires_at.expect("expires");
    let left = expires.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(3500), "an hour: {left:?}");
}

#[tokio::test]
async fn a_model_that_cannot_load_answers_503_with_the_reason() {
    let specs = vec![ModelSpec::new(info("broken", 1), 1)];
    let loader = |_: &ModelSpec| -> Result<Arc<dyn Backend>, String> { Err("the file is not a GGUF model".into()) };
    let pool = Arc::new(ModelPool::new(specs, PoolConfig::default(), loader).unwrap());
    let state = AppState::ready(pool);
    let body = json!({"model": "broken", "messages": [{"role": "user", "content": "hi"}]});
    let (status, reply) = post(&state, "/v1/chat/completions", body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("model broken could not be loaded: the file is not a GGUF model"), "{message}");
    let (status, reply) = post(&state, "/api/generate", json!({"model": "broken"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("could not be loaded"), "{reply}");

    let config = PoolConfig { memory_budget_bytes: Some(500_000_000), ..PoolConfig::default() };
    let (state, _pool) = pooled(config);
    let (status, reply) = post(&state, "/api/generate", json!({"model": "big", "prompt": "hi", "stream": false})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("more than the whole memory budget of 500 MB"), "{reply}");
}

#[tokio::test]
async fn keep_alive_reaches_the_backend_from_every_generating_endpoint() {
    let backend = Arc::new(FakeBackend::new("fake", "hello there"));
    let state = AppState::ready(backend.clone());
    let chat = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        ("/api/chat", json!({"model": "fake", "messages": chat, "stream": false, "keep_alive": "10m"}), Some(600)),
        ("/api/generate", json!({"model": "fake", "prompt": "hi", "stream": false, "keep_alive": 30}), Some(30)),
        ("/api/generate", json!({"model": "fake", "prompt": "hi", "stream": false}), None),
        ("/v1/chat/completions", json!({"messages": chat, "keep_alive": "2m"}), Some(120)),
        ("/v1/completions", json!({"prompt": "hi", "keep_alive": 45}), Some(45)),
        ("/v1/responses", json!({"input": "hi", "keep_alive": "90s"}), Some(90)),
    ];
    for (path, body, seconds) in cases {
        let (status, reply) = post(&state, path, body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {reply}");
        let keep_alive = backend.last_request().unwrap().route.keep_alive;
        assert_eq!(keep_alive, seconds.map(|s| KeepAlive::For(Duration::from_secs(s))), "{path}");
    }
    let (status, reply) =
        post(&state, "/api/chat", json!({"model": "fake", "messages": chat, "stream": false, "keep_alive": -1})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(backend.last_request().unwrap().route.keep_alive, Some(KeepAlive::Forever));

    let (status, reply) = post(&state, "/v1/chat/completions", json!({"messages": chat, "keep_alive": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["error"]["param"], "keep_alive", "{reply}");

    // A single model stays loaded: the load and unload calls answer, and it is still listed running.
    let (status, reply) = post(&state, "/api/generate", json!({"model": "fake", "keep_alive": 0})).await;
    assert_eq!((status, reply["done_reason"].as_str()), (StatusCode::OK, Some("unload")));
    assert_eq!(running(&state).await, vec!["fake:latest"]);
}
