//! The [`Backend`] trait: anything that can answer a [`GenerateRequest`].
//!
//! The local llama.cpp engine implements it, and so will the cloud upstream.
//! The HTTP layer only ever sees `Arc<dyn Backend>`, which keeps it free of
//! FFI and fast to build and test.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures::future::BoxFuture;
use futures::Stream;
use tokio::sync::mpsc;

use crate::event::GenerationEvent;
use crate::keep_alive::KeepAlive;
use crate::request::{GenerateRequest, Prompt};

/// Why a backend could not answer.
///
/// Every variant maps to one HTTP status in the server's error table; the
/// messages are written for the client and name the limit that was hit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// All slots are busy and the wait queue is full.
    #[error("the server is busy: all {slots} slots are in use and {queued} requests are waiting; retry shortly")]
    QueueFull {
        /// Parallel slots configured.
        slots: u32,
        /// Requests waiting, which is the queue's capacity.
        queued: u32,
    },
    /// The prompt does not fit the context of one slot.
    #[error("the prompt is {n_prompt} tokens but the context of a slot holds {n_ctx} tokens (at least one must be left to generate); shorten the prompt or raise --ctx-size")]
    PromptTooLong {
        /// Tokens in the templated prompt.
        n_prompt: u32,
        /// Tokens one slot can hold.
        n_ctx: u32,
    },
    /// The request is well-formed JSON but cannot be served (for example, an empty prompt).
    #[error("{0}")]
    InvalidRequest(String),
    /// The backend is shutting down or its worker died.
    #[error("the model is not available: {0}")]
    Unavailable(String),
    /// An internal failure while generating.
    #[error("generation failed: {0}")]
    Internal(String),
    /// The upstream answered, but not in the shape the request asked for (and no fallback was configured).
    #[error("{0}")]
    BadUpstreamAnswer(String),
}

/// Static facts about the model a backend serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// The name clients use in the `model` field.
    pub id: String,
    /// The model file, for local models.
    pub path: Option<String>,
    /// Tokens of context available to one request.
    pub n_ctx_slot: u32,
    /// Context length the model was trained with.
    pub n_ctx_train: u32,
    /// Parameter count.
    pub n_params: u64,
    /// Size of the weights in bytes.
    pub size_bytes: u64,
    /// Requests that can generate at the same time.
    pub parallel: u32,
    /// Price per million prompt tokens (0 for local models).
    pub price_input_per_mtok: f64,
    /// Price per million generated tokens (0 for local models).
    pub price_output_per_mtok: f64,
}

/// Whether a model's weights are in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Residency {
    /// In memory: a request starts generating at once (a cloud model is always this).
    Loaded,
    /// Being read into memory: a request waits for it.
    Loading,
    /// On disk only: the first request loads it.
    Unloaded,
}

impl Residency {
    /// `loaded`, `loading` or `unloaded`, as listings spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Residency::Loaded => "loaded",
            Residency::Loading => "loading",
            Residency::Unloaded => "unloaded",
        }
    }
}

/// What a listing (`/v1/models`, Ollama's `/api/ps`) says about one model a backend serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelStatus {
    /// The name clients use in the `model` field.
    pub id: String,
    /// Whether it runs here (a model file) rather than in a cloud.
    pub local: bool,
    /// Whether its weights are in memory.
    pub residency: Residency,
    /// Memory it holds while loaded (weights and KV cache), in bytes; `None` when not loaded
    /// or not a local model.
    pub memory_bytes: Option<u64>,
    /// When it will be unloaded for being idle, if nothing uses it before; `None` when it
    /// is not loaded, is busy, or stays loaded.
    pub expires_at: Option<SystemTime>,
    /// Size of the model file on disk, in bytes (0 for a cloud model).
    pub size_bytes: u64,
    /// The router's tier that holds it, when a router lists it (filled by the gateway).
    pub tier: Option<u32>,
    /// The domains the router sends to it (filled by the gateway).
    pub domains: Vec<String>,
    /// The facts about the model known without loading it (context, parameters).
    pub info: ModelInfo,
}

impl ModelStatus {
    /// A model that is always ready: a loaded local model holding its file's size, or a
    /// cloud model (no path) holding nothing here.
    pub fn loaded(info: &ModelInfo) -> Self {
        let local = info.path.is_some();
        Self {
            id: info.id.clone(),
            local,
            residency: Residency::Loaded,
            memory_bytes: local.then_some(info.size_bytes),
            expires_at: None,
            size_bytes: if local { info.size_bytes } else { 0 },
            tier: None,
            domains: Vec::new(),
            info: info.clone(),
        }
    }
}

/// Load counters a backend exposes for `/health`, metrics and the power budget.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BackendLoad {
    /// Requests currently generating.
    pub busy_slots: u32,
    /// Requests waiting for a slot.
    pub queued: u32,
    /// Average power drawn over the last few seconds, in watts, when measured.
    pub power_watts: Option<f64>,
    /// For a router: whether its cloud tier is in service (`None` without one).
    pub cloud_up: Option<bool>,
}

/// The stream of events of one accepted request.
///
/// Dropping it cancels the request: the backend notices at its next step and
/// frees the slot, which is how a client disconnect stops generation.
#[derive(Debug)]
pub struct Generation {
    /// Tokens in the prompt after templating, known at admission (0 when the backend
    /// admits the request later, as a model pool does while the model loads).
    pub prompt_tokens: u32,
    /// An event to deliver before the channel's, set by [`Generation::prepend`].
    first: Option<GenerationEvent>,
    events: mpsc::UnboundedReceiver<Result<GenerationEvent, BackendError>>,
    /// Dropped when the generation ends, set by [`Generation::on_end`].
    end: Option<EndGuard>,
}

/// A value dropped when a generation ends (see [`Generation::on_end`]).
struct EndGuard(#[allow(dead_code)] Box<dyn Send + Sync>);

impl std::fmt::Debug for EndGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndGuard")
    }
}

impl Generation {
    /// Wraps the receiving end of a backend's event channel.
    pub fn new(prompt_tokens: u32, events: mpsc::UnboundedReceiver<Result<GenerationEvent, BackendError>>) -> Self {
        Self { prompt_tokens, first: None, events, end: None }
    }

    /// Drops `guard` when the generation ends: at its `Finished` event, an error, the end
    /// of the stream, or when it is dropped, whichever comes first. A model pool uses it
    /// to know when a model is idle without a task between the engine and the client.
    pub fn on_end(mut self, guard: impl Send + Sync + 'static) -> Self {
        self.end = Some(EndGuard(Box::new(guard)));
        self
    }

    /// Releases the end guard once `item` shows the generation is over.
    fn observe(&mut self, item: &Option<Result<GenerationEvent, BackendError>>) {
        if self.end.is_some() && matches!(item, None | Some(Err(_)) | Some(Ok(GenerationEvent::Finished(_)))) {
            self.end = None;
        }
    }

    /// Delivers `event` before everything else (a router's `Routed`, say).
    pub fn prepend(mut self, event: GenerationEvent) -> Self {
        self.first = Some(event);
        self
    }

    /// The next event, or `None` once the backend has hung up.
    pub async fn next_event(&mut self) -> Option<Result<GenerationEvent, BackendError>> {
        if let Some(event) = self.first.take() {
            return Some(Ok(event));
        }
        let item = self.events.recv().await;
        self.observe(&item);
        item
    }
}

impl Stream for Generation {
    type Item = Result<GenerationEvent, BackendError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(event) = self.first.take() {
            return Poll::Ready(Some(Ok(event)));
        }
        let polled = self.events.poll_recv(cx);
        if let Poll::Ready(item) = &polled {
            self.observe(item);
        }
        polled
    }
}

/// A source of generated text.
///
/// `submit` is synchronous on purpose: admission (tokenizing, checking the
/// context limit, taking a queue place) is quick and its errors must reach
/// the client as an HTTP status before any streaming starts.
pub trait Backend: Send + Sync + 'static {
    /// What this backend serves.
    fn model_info(&self) -> &ModelInfo;

    /// The names clients may put in `model` for this backend.
    fn model_ids(&self) -> Vec<String> {
        vec![self.model_info().id.clone()]
    }

    /// Whether `model` names this backend (or one it routes to).
    fn serves(&self, model: &str) -> bool {
        self.model_ids().iter().any(|id| id.eq_ignore_ascii_case(model))
    }

    /// Current load.
    fn load(&self) -> BackendLoad;

    /// Every model this backend serves and whether each is in memory. The default is
    /// this backend's [`Backend::model_info`], loaded; a model pool lists each of its
    /// models, loaded or not, and a router its tiers'.
    fn models(&self) -> Vec<ModelStatus> {
        vec![ModelStatus::loaded(self.model_info())]
    }

    /// Loads `model` (one this backend serves; `None` is its default) now, ahead of any
    /// request, and keeps it loaded for `keep_alive` (the model's default when `None`):
    /// Ollama's "load a model" call, a request without a prompt. Resolves once the model is
    /// loaded. The default does nothing: this backend's model is always in memory.
    fn preload<'a>(
        &'a self,
        model: Option<&'a str>,
        keep_alive: Option<KeepAlive>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        let _ = (model, keep_alive);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Unloads `model` (`None` is the default model) as soon as its running requests end:
    /// Ollama's load call with `keep_alive: 0`. The default does nothing: this backend's
    /// model stays in memory while the server runs.
    fn unload(&self, model: Option<&str>) -> Result<(), BackendError> {
        let _ = model;
        Ok(())
    }

    /// Whether this backend would read the embedding of `request`'s user text
    /// ([`GenerateRequest::query_embedding`]): a router whose scorer reads embeddings says
    /// yes for the requests it routes by score. The server then embeds the text once, off the
    /// async threads, before [`Backend::submit`]. The default is no.
    fn wants_query_embedding(&self, request: &GenerateRequest) -> bool {
        let _ = request;
        false
    }

    /// Admits a request and returns its event stream, or says why not.
    fn submit(&self, request: GenerateRequest) -> Result<Generation, BackendError>;

    /// The token ids `prompt` becomes, exactly as `submit` would feed it to the model.
    fn tokenize(&self, prompt: &Prompt) -> Result<Vec<u32>, BackendError> {
        let _ = prompt;
        Err(BackendError::InvalidRequest("this model's backend does not expose its tokenizer".into()))
    }
}

/// Prompts with at least this many bytes of text are submitted from a blocking thread: a local
/// backend tokenizes (and compiles any grammar) inside [`Backend::submit`], which for a prompt of
/// megabytes takes long enough to stall every other request on the async threads.
pub const LARGE_PROMPT_BYTES: usize = 16 * 1024;

/// Runs `work` on a blocking thread when it is `heavy`, inline otherwise (a thread hand-off costs
/// more than light work); a panic in it is an internal error.
pub async fn off_runtime_if<T: Send + 'static>(
    heavy: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackendError> {
    if !heavy {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work).await.map_err(|_| BackendError::Internal("a blocking task panicked".into()))
}

/// [`Backend::submit`], from a blocking thread when the prompt is large ([`LARGE_PROMPT_BYTES`]).
pub async fn submit_off_runtime(
    backend: std::sync::Arc<dyn Backend>,
    request: GenerateRequest,
) -> Result<Generation, BackendError> {
    let heavy = request.prompt.text_len() >= LARGE_PROMPT_BYTES;
    off_runtime_if(heavy, move || backend.submit(request)).await?
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::event::Completion;

    struct SetOnDrop(Arc<AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn finished() -> GenerationEvent {
        GenerationEvent::Finished(Completion {
            finish_reason: crate::event::FinishReason::Stop,
            usage: crate::event::Usage::default(),
            timings: crate::event::Timings::default(),
            energy: None,
            choices: Vec::new(),
        })
    }

    #[tokio::test]
    async fn the_end_guard_goes_at_finished_not_before() {
        let (tx, rx) = mpsc::unbounded_channel();
        let ended = Arc::new(AtomicBool::new(false));
        let mut generation = Generation::new(1, rx).on_end(SetOnDrop(ended.clone()));
        tx.send(Ok(GenerationEvent::Delta { text: "a".into(), logprobs: Vec::new() })).unwrap();
        tx.send(Ok(finished())).unwrap();
        generation.next_event().await.unwrap().unwrap();
        assert!(!ended.load(Ordering::SeqCst));
        generation.next_event().await.unwrap().unwrap();
        assert!(ended.load(Ordering::SeqCst), "released at Finished, before the generation is dropped");
    }

    #[test]
    fn the_end_guard_goes_when_the_generation_is_dropped() {
        let (_tx, rx) = mpsc::unbounded_channel();
        let ended = Arc::new(AtomicBool::new(false));
        let generation = Generation::new(1, rx).on_end(SetOnDrop(ended.clone()));
        drop(generation);
        assert!(ended.load(Ordering::SeqCst));
    }

    #[test]
    fn a_local_model_is_listed_loaded_with_its_size_a_cloud_one_without_memory() {
        let mut info = ModelInfo {
            id: "m".into(),
            path: Some("/m.gguf".into()),
            n_ctx_slot: 1,
            n_ctx_train: 1,
            n_params: 1,
            size_bytes: 100,
            parallel: 1,
            price_input_per_mtok: 0.0,
            price_output_per_mtok: 0.0,
        };
        let local = ModelStatus::loaded(&info);
        assert_eq!(
            (local.local, local.residency, local.memory_bytes, local.size_bytes),
            (true, Residency::Loaded, Some(100), 100)
        );
        info.path = None;
        let cloud = ModelStatus::loaded(&info);
        assert_eq!((cloud.local, cloud.memory_bytes, cloud.size_bytes), (false, None, 0));
    }
}
