//! Domain types shared by every edgeway crate.
//!
//! This crate is the vocabulary of the request path and does no I/O. The HTTP
//! layer turns wire JSON into a [`GenerateRequest`] (validated once, here typed),
//! hands it to a [`Backend`], and turns the [`GenerationEvent`]s it gets back
//! into OpenAI-shaped responses. Nothing in here knows about HTTP, JSON or
//! llama.cpp.
//!
//! # Layout
//! - [`request`]: what a client asks for (prompt, sampling parameters).
//! - [`event`]: what a backend streams back (text deltas, logprobs, usage).
//! - [`route`]: why a request was answered where it was, and what was tried first.
//! - [`backend`]: the [`Backend`] trait every answer source implements, and its error type.
//! - [`embed`]: the [`EmbeddingBackend`] trait and a request's [`QueryEmbedding`], computed once and shared.
//! - [`inspect`]: the [`inspect::Inspector`] trait: an image of a part to a good/defective verdict.
//! - [`keep_alive`]: how long a local model stays loaded after a request (Ollama's `keep_alive`).
//! - [`text`]: turning a stream of token bytes into text, honouring stop sequences.
//! - `fake` (feature `fake`): a deterministic [`Backend`] for fast tests of the layers above.

pub mod backend;
pub mod embed;
pub mod event;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod hash;
pub mod inspect;
pub mod keep_alive;
pub mod request;
pub mod retrieve;
pub mod route;
pub mod text;

pub use backend::{
    off_runtime_if, submit_off_runtime, Backend, BackendError, BackendLoad, Generation, ModelInfo, ModelStatus,
    Residency, LARGE_PROMPT_BYTES,
};
pub use embed::{EmbeddingBackend, EmbeddingInfo, EmbeddingOutput, QueryEmbedding};
pub use event::{
    token_cost, ChoiceProbability, Completion, EnergyUse, FinishReason, GenerationEvent, RouteInfo, Timings,
    TokenLogprob, ToolCallDelta, TopLogprob, Usage,
};
/// The future [`Backend::preload`] returns (re-exported so implementors need not depend on `futures`).
pub use futures::future::BoxFuture;
pub use keep_alive::KeepAlive;
pub use request::{
    ChatMessage, GenerateRequest, OutputFormat, Prompt, RouteHints, RouteTarget, SamplingParams, ToolCall, ToolChoice,
    ToolSpec, ToolUse,
};
pub use retrieve::{Passage, Retriever};
pub use route::{RouteReason, RouteStep, ScoreFallback, StepOutcome};
