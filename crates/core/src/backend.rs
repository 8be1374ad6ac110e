//! The [`Backend`] trait: anything that can answer a [`GenerateRequest`].
//!
//! The local llama.cpp engine implements it, and so will the cloud upstream.
//! The HTTP layer only ever sees `Arc<dyn Backend>`, which keeps it free of
//! FFI and fast to build and test.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::event::GenerationEvent;
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
    /// Tokens in the prompt after templating, known at admission.
    pub prompt_tokens: u32,
    /// An event to deliver before the channel's, set by [`Generation::prepend`].
    first: Option<GenerationEvent>,
    events: mpsc::UnboundedReceiver<Result<GenerationEvent, BackendError>>,
}

impl Generation {
    /// Wraps the receiving end of a backend's event channel.
    pub fn new(prompt_tokens: u32, events: mpsc::UnboundedReceiver<Result<GenerationEvent, BackendError>>) -> Self {
        Self { prompt_tokens, first: None, events }
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
        self.events.recv().await
    }
}

impl Stream for Generation {
    type Item = Result<GenerationEvent, BackendError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(event) = self.first.take() {
            return Poll::Ready(Some(Ok(event)));
        }
        self.events.poll_recv(cx)
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

    /// Admits a request and returns its event stream, or says why not.
    fn submit(&self, request: GenerateRequest) -> Result<Generation, BackendError>;

    /// The token ids `prompt` becomes, exactly as `submit` would feed it to the model.
    fn tokenize(&self, prompt: &Prompt) -> Result<Vec<u32>, BackendError> {
        let _ = prompt;
        Err(BackendError::InvalidRequest("this model's backend does not expose its tokenizer".into()))
    }
}
