//! The pool's async behaviour, with a fake loader and fake models: what loads
//! when, what waits, what is unloaded, and what a client is told when it cannot
//! be served. Keep-alive tests run on tokio's paused clock; tests that hold a
//! load open run on the real clock (a load runs on a blocking thread, which
//! keeps the paused clock from advancing).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use edgeway_core::{
    Backend, BackendError, Completion, FinishReason, GenerateRequest, Generation, GenerationEvent, KeepAlive,
    ModelInfo, Prompt, Residency, RouteHints, SamplingParams, Timings, Usage,
};
use tokio::sync::mpsc;

use crate::{Loader, ModelPool, ModelSpec, PoolConfig, PoolError};

type Sender = mpsc::UnboundedSender<Result<GenerationEvent, BackendError>>;

/// What the fake loader and its models did, and the switches the tests turn.
#[derive(Default)]
struct World {
    /// Loads started, per model.
    loads: Mutex<HashMap<String, u32>>,
    /// Models whose fake backend is alive (loaded and not yet dropped).
    alive: Mutex<HashSet<String>>,
    /// Generations started, in order, by model.
    started: Mutex<Vec<String>>,
    /// Models whose generations stay open until [`World::finish`].
    held: Mutex<HashSet<String>>,
    /// Open generations of held models, oldest first.
    open: Mutex<Vec<(String, Sender)>>,
    /// Models whose next loads fail with this message.
    failing: Mutex<HashMap<String, String>>,
    /// Models whose loads block until [`World::release`].
    blocked: Mutex<HashSet<String>>,
    released: Condvar,
    /// Loads running now.
    loading: AtomicU32,
}

impl World {
    fn loads(&self, name: &str) -> u32 {
        self.loads.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    fn alive(&self) -> Vec<String> {
        let mut names: Vec<String> = self.alive.lock().unwrap().iter().cloned().collect();
        names.sort();
        names
    }

    fn is_alive(&self, name: &str) -> bool {
        self.alive.lock().unwrap().contains(name)
    }

    fn started(&self) -> Vec<String> {
        self.started.lock().unwrap().clone()
    }

    fn hold(&self, name: &str) {
        self.held.lock().unwrap().insert(name.to_owned());
    }

    fn block(&self, name: &str) {
        self.blocked.lock().unwrap().insert(name.to_owned());
    }

    fn release(&self, name: &str) {
        self.blocked.lock().unwrap().remove(name);
        self.released.notify_all();
    }

    fn fail(&self, name: &str, error: &str) {
        self.failing.lock().unwrap().insert(name.to_owned(), error.to_owned());
    }

    fn heal(&self, name: &str) {
        self.failing.lock().unwrap().remove(name);
    }

    /// Ends the oldest open generation of `name`.
    fn finish(&self, name: &str) {
        let mut open = self.open.lock().unwrap();
        let position = open.iter().position(|(model, _)| model == name).expect("an open generation");
        let (_, tx) = open.remove(position);
        let _ = tx.send(Ok(finished()));
    }

    fn open(&self, name: &str) -> usize {
        self.open.lock().unwrap().iter().filter(|(model, _)| model == name).count()
    }
}

fn finished() -> GenerationEvent {
    GenerationEvent::Finished(Completion {
        finish_reason: FinishReason::Stop,
        usage: Usage::default(),
        timings: Timings::default(),
        energy: None,
        choices: Vec::new(),
    })
}

/// A loaded fake model: answers with its name, marks itself gone when dropped.
struct FakeModel {
    info: ModelInfo,
    world: Arc<World>,
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.world.alive.lock().unwrap().remove(&self.info.id);
    }
}

impl Backend for FakeModel {
    fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    fn load(&self) -> edgeway_core::BackendLoad {
        edgeway_core::BackendLoad::default()
    }

    fn submit(&self, _request: GenerateRequest) -> Result<Generation, BackendError> {
        let name = self.info.id.clone();
        self.world.started.lock().unwrap().push(name.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Ok(GenerationEvent::Delta { text: name.clone(), logprobs: Vec::new() }));
        if self.world.held.lock().unwrap().contains(&name) {
            self.world.open.lock().unwrap().push((name, tx));
        } else {
            let _ = tx.send(Ok(finished()));
        }
        Ok(Generation::new(1, rx))
    }
}

struct FakeLoader(Arc<World>);

impl Loader for FakeLoader {
    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn Backend>, String> {
        let world = &self.0;
        *world.loads.lock().unwrap().entry(spec.name.clone()).or_default() += 1;
        world.loading.fetch_add(1, Ordering::SeqCst);
        {
            let blocked = world.blocked.lock().unwrap();
            let _unblocked = world
                .released
                .wait_timeout_while(blocked, Duration::from_secs(10), |blocked| blocked.contains(&spec.name))
                .unwrap();
        }
        world.loading.fetch_sub(1, Ordering::SeqCst);
        if let Some(error) = world.failing.lock().unwrap().get(&spec.name) {
            return Err(error.clone());
        }
        assert!(world.alive.lock().unwrap().insert(spec.name.clone()), "{} loaded twice at once", spec.name);
        Ok(Arc::new(FakeModel { info: spec.info.clone(), world: world.clone() }))
    }
}

fn info(name: &str, bytes: u64) -> ModelInfo {
    ModelInfo {
        id: name.to_owned(),
        path: Some(format!("/models/{name}.gguf")),
        n_ctx_slot: 512,
        n_ctx_train: 2048,
        n_params: 1,
        size_bytes: bytes,
        parallel: 2,
        price_input_per_mtok: 0.0,
        price_output_per_mtok: 0.0,
    }
}

/// Specs for models of these sizes (bytes), named `a`, `b`, `c`...
fn specs(sizes: &[u64]) -> Vec<ModelSpec> {
    sizes
        .iter()
        .enumerate()
        .map(|(index, &bytes)| {
            let name = ((b'a' + index as u8) as char).to_string();
            ModelSpec::new(info(&name, bytes), bytes)
        })
        .collect()
}

fn pool(specs: Vec<ModelSpec>, config: PoolConfig) -> (ModelPool, Arc<World>) {
    let world = Arc::new(World::default());
    let pool = ModelPool::new(specs, config, FakeLoader(world.clone())).expect("a valid pool");
    (pool, world)
}

fn request(model: &str, keep_alive: Option<KeepAlive>) -> GenerateRequest {
    GenerateRequest {
        prompt: Prompt::Text("hello".into()),
        sampling: SamplingParams::default(),
        route: RouteHints { model: Some(model.to_owned()), keep_alive, ..RouteHints::default() },
        tools: None,
        query_embedding: None,
    }
}

/// Reads a generation to its end: the text, or the error.
async fn read(mut generation: Generation) -> Result<String, BackendError> {
    let mut text = String::new();
    while let Some(event) = generation.next_event().await {
        match event? {
            GenerationEvent::Delta { text: piece, .. } => text.push_str(&piece),
            GenerationEvent::Finished(_) => return Ok(text),
            _ => {}
        }
    }
    Err(BackendError::Internal("the stream ended without Finished".into()))
}

/// Asks the pool (as a backend) for `model` and reads the answer.
async fn ask(pool: &ModelPool, model: &str, keep_alive: Option<KeepAlive>) -> Result<String, BackendError> {
    read(pool.submit(request(model, keep_alive))?).await
}

/// Waits (on the real clock, without letting a paused clock advance) until `check` holds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..5000 {
        if check() {
            return;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("timed out waiting until {what}");
}

fn residency(pool: &ModelPool, name: &str) -> Residency {
    pool.statuses().into_iter().find(|status| status.id == name).expect("listed").residency
}

fn unavailable(error: BackendError) -> String {
    match error {
        BackendError::Unavailable(message) => message,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_model_loads_on_its_first_request_and_stays() {
    let (pool, world) = pool(specs(&[100, 200]), PoolConfig::default());
    let statuses = pool.statuses();
    assert_eq!(statuses.len(), 2);
    assert!(statuses.iter().all(|s| s.residency == Residency::Unloaded && s.memory_bytes.is_none()));
    assert_eq!(world.loads("a"), 0, "nothing loads before it is asked for");

    assert_eq!(ask(&pool, "b", None).await.unwrap(), "b");
    assert_eq!(ask(&pool, "b", None).await.unwrap(), "b");
    assert_eq!((world.loads("a"), world.loads("b")), (0, 1));
    let b = pool.statuses().into_iter().find(|s| s.id == "b").unwrap();
    assert_eq!((b.residency, b.memory_bytes, b.local), (Residency::Loaded, Some(200), true));
    assert!(b.expires_at.is_some(), "idle with the default keep-alive: it expires");
    assert_eq!(residency(&pool, "a"), Residency::Unloaded);

    // Each model is also a backend of its own, and unknown names go to the first model.
    let a = pool.model("A").expect("names match in any case");
    assert_eq!(read(a.submit(request("a", None)).unwrap()).await.unwrap(), "a");
    assert_eq!(a.models()[0].residency, Residency::Loaded);
    assert_eq!(ask(&pool, "zzz", None).await.unwrap(), "a");
    assert_eq!(pool.model_ids(), vec!["a", "b"]);
}

#[tokio::test]
async fn requests_during_a_load_wait_for_that_one_load() {
    let (pool, world) = pool(specs(&[100]), PoolConfig::default());
    world.block("a");
    let pool = Arc::new(pool);
    let waiting: Vec<_> = (0..5)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { ask(&pool, "a", None).await })
        })
        .collect();
    eventually("the load starts", || world.loading.load(Ordering::SeqCst) == 1).await;
    assert_eq!(residency(&pool, "a"), Residency::Loading);
    world.release("a");
    for answer in waiting {
        assert_eq!(answer.await.unwrap().unwrap(), "a");
    }
    assert_eq!(world.loads("a"), 1);
}

#[tokio::test]
async fn the_least_recently_used_model_goes_when_max_loaded_is_reached() {
    let config = PoolConfig { max_loaded: Some(2), ..PoolConfig::default() };
    let (pool, world) = pool(specs(&[1, 1, 1]), config);
    ask(&pool, "a", None).await.unwrap();
    ask(&pool, "b", None).await.unwrap();
    ask(&pool, "a", None).await.unwrap();
    ask(&pool, "c", None).await.unwrap();
    eventually("b is unloaded", || !world.is_alive("b")).await;
    assert_eq!(world.alive(), vec!["a", "c"]);
    assert_eq!(residency(&pool, "b"), Residency::Unloaded);
    // Back again: b reloads and a, now the least recently used, goes.
    ask(&pool, "b", None).await.unwrap();
    eventually("a is unloaded", || !world.is_alive("a")).await;
    assert_eq!(world.alive(), vec!["b", "c"]);
    assert_eq!(world.loads("b"), 2);
}

#[tokio::test]
async fn the_memory_budget_evicts_as_many_as_needed_least_recent_first() {
    let config = PoolConfig { memory_budget_bytes: Some(300), ..PoolConfig::default() };
    let (pool, world) = pool(specs(&[100, 100, 100, 250]), config);
    for name in ["a", "b", "c"] {
        ask(&pool, name, None).await.unwrap();
    }
    assert_eq!(world.alive(), vec!["a", "b", "c"], "exactly the budget fits");
    ask(&pool, "a", None).await.unwrap();
    ask(&pool, "d", None).await.unwrap();
    eventually("b and c are unloaded", || world.alive() == vec!["d"]).await;
    let held: u64 = pool.statuses().iter().filter_map(|s| s.memory_bytes).sum();
    assert_eq!(held, 250);
}

#[tokio::test]
async fn a_generating_model_is_never_evicted_the_load_waits_for_it() {
    let config = PoolConfig { max_loaded: Some(1), ..PoolConfig::default() };
    let (pool, world) = pool(specs(&[1, 1]), config);
    world.hold("a");
    let a = pool.submit(request("a", None)).unwrap();
    eventually("a generates", || world.open("a") == 1).await;
    let b = tokio::spawn({
        let b = pool.model("b").unwrap();
        async move { read(b.submit(request("b", None)).unwrap()).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!((world.loads("b"), world.alive()), (0, vec!["a".to_owned()]), "b waits for room");
    world.finish("a");
    assert_eq!(read(a).await.unwrap(), "a");
    assert_eq!(b.await.unwrap().unwrap(), "b");
    assert_eq!(world.alive(), vec!["b"]);
}

#[tokio::test]
async fn the_idle_model_goes_though_the_generating_one_was_used_longer_ago() {
    let config = PoolConfig { max_loaded: Some(2), concurrent_models: 2, ..PoolConfig::default() };
    let (pool, world) = pool(specs(&[1, 1, 1]), config);
    world.hold("a");
    let a = pool.submit(request("a", None)).unwrap();
    eventually("a generates", || world.open("a") == 1).await;
    ask(&pool, "b", None).await.unwrap();
    ask(&pool, "c", None).await.unwrap();
    eventually("b is unloaded", || !world.is_alive("b")).await;
    assert_eq!(world.alive(), vec!["a", "c"]);
    world.finish("a");
    read(a).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_idle_model_is_unloaded_when_its_keep_alive_runs_out() {
    let specs = vec![ModelSpec::new(info("a", 1), 1).with_keep_alive(KeepAlive::For(Duration::from_secs(10)))];
    let (pool, world) = pool(specs, PoolConfig::default());
    ask(&pool, "a", None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(world.is_alive("a"));
    // A request restarts the keep-alive from its end.
    ask(&pool, "a", None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(world.is_alive("a"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    eventually("a is unloaded", || !world.is_alive("a")).await;
    assert_eq!(residency(&pool, "a"), Residency::Unloaded);
    assert_eq!(pool.statuses()[0].expires_at, None);
}

#[tokio::test(start_paused = true)]
async fn a_requests_keep_alive_overrides_the_models() {
    let (pool, world) = pool(specs(&[1]), PoolConfig::default());
    ask(&pool, "a", Some(KeepAlive::For(Duration::from_secs(3600)))).await.unwrap();
    let expires = pool.statuses()[0].expires_at.expect("expires");
    let from_now = expires.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(from_now > Duration::from_secs(3500), "expires_at is the request's hour away: {from_now:?}");
    tokio::time::sleep(Duration::from_secs(301)).await;
    assert!(world.is_alive("a"), "past the model's five minutes, within the request's hour");
    tokio::time::sleep(Duration::from_secs(3300)).await;
    eventually("a is unloaded", || !world.is_alive("a")).await;

    // The next request without keep_alive gets the model's default back.
    ask(&pool, "a", None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(301)).await;
    eventually("a is unloaded after the default five minutes", || !world.is_alive("a")).await;
}

#[tokio::test(start_paused = true)]
async fn keep_alive_zero_unloads_right_after_the_answer_and_negative_keeps_it() {
    let (pool, world) = pool(specs(&[1, 1]), PoolConfig::default());
    ask(&pool, "a", Some(KeepAlive::ZERO)).await.unwrap();
    eventually("a is unloaded", || !world.is_alive("a")).await;
    assert_eq!(residency(&pool, "a"), Residency::Unloaded);

    let forever = KeepAlive::parse("-1").unwrap();
    ask(&pool, "b", Some(forever)).await.unwrap();
    assert_eq!(pool.statuses()[1].expires_at, None, "never expires");
    tokio::time::sleep(Duration::from_secs(30 * 86_400)).await;
    assert!(world.is_alive("b"));
}

#[tokio::test]
async fn keep_alive_zero_waits_for_the_models_other_requests() {
    let (pool, world) = pool(specs(&[1]), PoolConfig::default());
    world.hold("a");
    let first = pool.submit(request("a", None)).unwrap();
    let second = pool.submit(request("a", Some(KeepAlive::ZERO))).unwrap();
    eventually("both generate", || world.open("a") == 2).await;
    world.finish("a");
    read(first).await.unwrap();
    assert!(world.is_alive("a"), "the second request still generates");
    world.finish("a");
    read(second).await.unwrap();
    eventually("a is unloaded", || !world.is_alive("a")).await;
}

#[tokio::test]
async fn a_load_that_takes_longer_than_load_wait_fails_with_a_clear_message() {
    let config = PoolConfig { load_wait: Duration::from_millis(100), ..PoolConfig::default() };
    let (pool, world) = pool(specs(&[1]), config);
    world.block("a");
    let message = unavailable(ask(&pool, "a", None).await.unwrap_err());
    assert_eq!(message, "model a did not finish loading within 0.1 s");
    world.release("a");
    eventually("the load finishes", || world.is_alive("a")).await;
    assert_eq!(ask(&pool, "a", None).await.unwrap(), "a", "the load was not wasted");
    assert_eq!(world.loads("a"), 1);
}

#[tokio::test]
async fn waiting_for_the_turn_to_generate_is_bounded_too() {
    let config = PoolConfig { load_wait: Duration::from_millis(100), ..PoolConfig::default() };
    let (pool, world) = pool(specs(&[1, 1]), config);
    world.hold("a");
    let a = pool.submit(request("a", None)).unwrap();
    eventually("a generates", || world.open("a") == 1).await;
    let message = unavailable(ask(&pool, "b", None).await.unwrap_err());
    assert_eq!(message, "model b waited 0.1 s for its turn: a is generating and only 1 model may generate at a time");
    world.finish("a");
    read(a).await.unwrap();
    assert_eq!(ask(&pool, "b", None).await.unwrap(), "b");

    // Waiting for room names the limits and who holds the room.
    let config = PoolConfig { load_wait: Duration::from_millis(100), max_loaded: Some(1), ..PoolConfig::default() };
    let (pool, world) = self::pool(specs(&[1, 1]), config);
    world.hold("a");
    let a = pool.submit(request("a", None)).unwrap();
    eventually("a generates", || world.open("a") == 1).await;
    let message = unavailable(ask(&pool, "b", None).await.unwrap_err());
    assert_eq!(
        message,
        "model b waited 0.1 s for room to load: a is in use and the limits (at most 1 loaded model) leave no room beside it"
    );
    world.finish("a");
    read(a).await.unwrap();
}

#[tokio::test]
async fn a_failed_load_fails_its_waiters_once_and_the_next_request_retries() {
    let (pool, world) = pool(specs(&[1, 1]), PoolConfig::default());
    world.fail("a", "the file is not a GGUF model");
    world.block("a");
    let pool = Arc::new(pool);
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { ask(&pool, "a", None).await })
        })
        .collect();
    eventually("the load starts", || world.loading.load(Ordering::SeqCst) == 1).await;
    world.release("a");
    for answer in waiting {
        let message = unavailable(answer.await.unwrap().unwrap_err());
        assert_eq!(message, "model a could not be loaded: the file is not a GGUF model");
    }
    assert_eq!(world.loads("a"), 1, "one load for all three");
    assert_eq!(residency(&pool, "a"), Residency::Unloaded);
    assert_eq!(ask(&pool, "b", None).await.unwrap(), "b", "other models are unaffected");
    world.heal("a");
    assert_eq!(ask(&pool, "a", None).await.unwrap(), "a");
    assert_eq!(world.loads("a"), 2);
}

#[tokio::test]
async fn a_panicking_loader_is_a_failed_load() {
    let loader = |spec: &ModelSpec| -> Result<Arc<dyn Backend>, String> { panic!("no {}", spec.name) };
    let pool = ModelPool::new(specs(&[1]), PoolConfig::default(), loader).unwrap();
    let message = unavailable(ask(&pool, "a", None).await.unwrap_err());
    assert_eq!(message, "model a could not be loaded: the loader panicked");
}

#[tokio::test]
async fn one_model_generates_at_a_time_first_come_first_served() {
    let (pool, world) = pool(specs(&[1, 1]), PoolConfig::default());
    ask(&pool, "b", None).await.unwrap();
    world.hold("a");
    world.hold("b");
    let a1 = pool.submit(request("a", None)).unwrap();
    eventually("a generates", || world.open("a") == 1).await;
    let a2 = pool.submit(request("a", None)).unwrap();
    eventually("a second request of a joins the first", || world.open("a") == 2).await;
    let b = pool.submit(request("b", None)).unwrap();
    let a3 = pool.submit(request("a", None)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(world.started(), vec!["b", "a", "a"], "b waits for a; a's third request waits behind b");
    world.finish("a");
    world.finish("a");
    // A model's turn ends when its clients have read their answers' ends.
    read(a1).await.unwrap();
    read(a2).await.unwrap();
    eventually("b generates", || world.open("b") == 1).await;
    assert_eq!(world.open("a"), 0, "a's third request still waits for b");
    world.finish("b");
    eventually("a's third request generates", || world.open("a") == 1).await;
    world.finish("a");
    read(b).await.unwrap();
    read(a3).await.unwrap();
    assert_eq!(world.started(), vec!["b", "a", "a", "b", "a"]);
}

#[tokio::test]
async fn with_two_concurrent_models_both_generate() {
    let config = PoolConfig { concurrent_models: 2, ..PoolConfig::default() };
    let (pool, world) = pool(specs(&[1, 1]), config);
    world.hold("a");
    world.hold("b");
    let a = pool.submit(request("a", None)).unwrap();
    let b = pool.submit(request("b", None)).unwrap();
    eventually("both generate", || world.open("a") == 1 && world.open("b") == 1).await;
    world.finish("a");
    world.finish("b");
    read(a).await.unwrap();
    read(b).await.unwrap();
}

#[tokio::test]
async fn a_client_that_leaves_while_waiting_gives_up_its_place() {
    let (pool, world) = pool(specs(&[1, 1]), PoolConfig::default());
    world.hold("a");
    let a1 = pool.submit(request("a", None)).unwrap();
    eventually("a generates", || world.open("a") == 1).await;
    let b = pool.submit(request("b", None)).unwrap();
    drop(b);
    // With b gone, a's next request joins the running one instead of queueing behind b.
    let a2 = pool.submit(request("a", None)).unwrap();
    eventually("a's second request generates", || world.open("a") == 2).await;
    world.finish("a");
    world.finish("a");
    read(a1).await.unwrap();
    read(a2).await.unwrap();
    assert!(!world.started().contains(&"b".to_owned()));
}

#[tokio::test]
async fn a_model_larger_than_the_budget_is_refused_at_once() {
    let config = PoolConfig { memory_budget_bytes: Some(5_000_000), ..PoolConfig::default() };
    let (pool, world) = pool(specs(&[1_000_000, 6_000_000]), config);
    let message = unavailable(pool.submit(request("b", None)).unwrap_err());
    assert_eq!(
        message,
        "model b needs 6 MB of memory, more than the whole memory budget of 5 MB; raise --memory-budget-mb or use a smaller model"
    );
    assert_eq!(world.loads("b"), 0);
}

#[tokio::test]
async fn pinned_models_load_at_start_and_stay() {
    let mut specs = specs(&[1, 1, 1]);
    specs[0] = specs[0].clone().pinned().with_keep_alive(KeepAlive::ZERO);
    let config = PoolConfig { max_loaded: Some(2), ..PoolConfig::default() };
    let (pool, world) = pool(specs, config);
    pool.load_pinned().await.unwrap();
    assert_eq!(world.alive(), vec!["a"]);
    ask(&pool, "a", Some(KeepAlive::ZERO)).await.unwrap();
    ask(&pool, "b", None).await.unwrap();
    ask(&pool, "c", None).await.unwrap();
    eventually("b makes room for c", || !world.is_alive("b")).await;
    assert_eq!(world.alive(), vec!["a", "c"]);
    pool.unload("a").unwrap();
    assert!(world.is_alive("a"), "a pinned model is not unloaded on request");
    assert_eq!(pool.statuses()[0].expires_at, None);
}

#[tokio::test]
async fn preload_and_unload_as_ollamas_empty_prompt() {
    let (pool, world) = pool(specs(&[1, 1]), PoolConfig::default());
    pool.preload("b", Some(KeepAlive::Forever)).await.unwrap();
    assert_eq!(world.alive(), vec!["b"]);
    assert_eq!(pool.statuses()[1].expires_at, None);
    pool.unload("b").unwrap();
    eventually("b is unloaded", || world.alive().is_empty()).await;
    pool.unload("a").unwrap();
    assert!(matches!(pool.unload("zzz"), Err(BackendError::InvalidRequest(_))));
    assert!(matches!(pool.preload("zzz", None).await, Err(BackendError::InvalidRequest(_))));
}

#[tokio::test]
async fn invalid_pools_are_refused_with_the_reason() {
    let loader = FakeLoader(Arc::new(World::default()));
    assert_eq!(ModelPool::new(Vec::new(), PoolConfig::default(), loader).unwrap_err(), PoolError::NoModels);
    let mut twice = specs(&[1, 1]);
    twice[1].name = "A".into();
    let loader = FakeLoader(Arc::new(World::default()));
    assert_eq!(ModelPool::new(twice, PoolConfig::default(), loader).unwrap_err(), PoolError::DuplicateName("A".into()));
    let config = PoolConfig { max_loaded: Some(0), ..PoolConfig::default() };
    let loader = FakeLoader(Arc::new(World::default()));
    assert_eq!(ModelPool::new(specs(&[1]), config, loader).unwrap_err(), PoolError::MaxLoadedZero);
    let pinned: Vec<ModelSpec> = specs(&[6, 6]).into_iter().map(ModelSpec::pinned).collect();
    let config = PoolConfig { memory_budget_bytes: Some(10), ..PoolConfig::default() };
    let loader = FakeLoader(Arc::new(World::default()));
    let error = ModelPool::new(pinned, config, loader).unwrap_err();
    assert!(error.to_string().starts_with("the pinned models (a, b) need 12 bytes"), "{error}");
}

#[tokio::test]
async fn the_load_calls_through_the_backend_trait() {
    let (pool, world) = pool(specs(&[1, 1]), PoolConfig::default());
    let backend: &dyn Backend = &pool;
    backend.preload(Some("B"), None).await.unwrap();
    backend.preload(None, None).await.unwrap();
    assert_eq!(world.alive(), vec!["a", "b"], "None is the first model");
    assert!(matches!(backend.preload(Some("zzz"), None).await, Err(BackendError::InvalidRequest(_))));
    assert!(matches!(backend.unload(Some("zzz")), Err(BackendError::InvalidRequest(_))));
    backend.unload(None).unwrap();
    eventually("a is unloaded", || world.alive() == vec!["b"]).await;
    let b: Arc<dyn Backend> = pool.model("b").unwrap();
    b.unload(None).unwrap();
    eventually("b is unloaded", || world.alive().is_empty()).await;
    b.preload(None, Some(KeepAlive::Forever)).await.unwrap();
    assert_eq!(b.models()[0].residency, Residency::Loaded);
    assert_eq!(b.models()[0].expires_at, None);
}
