//! The local [`Backend`]: a GGUF model run by llama.cpp.
//!
//! This is the only crate that links llama.cpp. Everything above it sees the
//! [`Backend`] trait from `edgeway-core`.
//!
//! # How a request flows
//! [`LlamaEngine::submit`] runs on the caller's thread: it renders the chat
//! template, tokenizes, checks the context limit and takes a place in a
//! bounded queue, so that every admission error is known before a response
//! starts. One dedicated worker thread ([`worker`]) owns the llama.cpp
//! context. It moves queued requests into *slots* (llama.cpp sequences), picks
//! for each the slot whose cached tokens share the longest prefix with the
//! prompt, and advances all active slots together in one batch per step:
//! prompt chunks and one new token per generating slot. That is continuous
//! batching, as llama-server does it.
//!
//! # Layout
//! - [`config`]: what an engine is built from.
//! - [`embed`]: sentence embeddings from an encoder model (all-MiniLM-L6-v2).
//! - [`model`]: loading the model file and turning requests into tokens.
//! - [`worker`]: the scheduling loop that owns the context.
//! - [`sampling`]: choosing the next token from raw logits.
//! - [`logprobs`]: log-probabilities from raw logits.
//! - [`energy`]: joules per step, from RAPL or the CPU-time model.
//! - [`perplexity`]: perplexity on a fixed text, as `llama-perplexity` measures it.
//! - [`quantize`]: llama.cpp's quantizer, writing atomically.
//! - [`gguf_check`]: a readable error for files that are not GGUF models.
//! - [`hugepages`]: the weights on 2 MiB pages, for faster generation.

mod choices;
pub mod config;
pub mod embed;
pub mod energy;
pub mod gguf_check;
pub mod grammar;
pub mod hugepages;
pub mod logprobs;
mod model;
mod pacing;
pub mod perplexity;
pub mod quantize;
pub mod sampling;
mod template;
mod tool_calls;
mod worker;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use edgeway_core::{Backend, BackendError, BackendLoad, GenerateRequest, Generation, ModelInfo, Prompt};
use llama_cpp_2::llama_backend::LlamaBackend;
use tokio::sync::mpsc;

use choices::ChoiceTrace;
pub use config::{EngineConfig, DEFAULT_WATTS_PER_CORE};
pub use embed::{Embedder, LazyEmbedder};
pub use gguf_check::GgufCheckError;
use grammar::Constraint;
use model::LoadedModel;
use tool_calls::ToolCallSplitter;
use worker::Job;

/// Why an engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The file is not a GGUF model.
    #[error(transparent)]
    BadModelFile(#[from] GgufCheckError),
    /// llama.cpp refused the model.
    #[error("llama.cpp could not load {path}: {reason}")]
    Load {
        /// The file.
        path: String,
        /// What llama.cpp said, as far as we know.
        reason: String,
    },
    /// llama.cpp could not create an inference context.
    #[error("llama.cpp could not create a context of {n_ctx} tokens: {reason}")]
    Context {
        /// Requested context size.
        n_ctx: u32,
        /// What llama.cpp said.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid engine setting: {0}")]
    Config(String),
}

/// llama.cpp's global state may be initialized once per process.
static LLAMA_BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// The process-wide llama.cpp backend, initialized on first use.
fn llama_backend() -> Result<&'static LlamaBackend, EngineError> {
    LLAMA_BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|reason| EngineError::Load { path: String::new(), reason: reason.clone() })
}

/// A GGUF model served by llama.cpp, with slots and a bounded queue.
pub struct LlamaEngine {
    info: ModelInfo,
    model: Arc<LoadedModel>,
    queue: mpsc::Sender<Job>,
    busy_slots: Arc<AtomicU32>,
    /// The engine's rolling power draw.
    power: Arc<energy::PowerWindow>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl LlamaEngine {
    /// Loads the model and starts the worker thread. Blocks until the context exists.
    pub fn load(config: EngineConfig) -> Result<Self, EngineError> {
        config.validate()?;
        let backend = llama_backend()?;
        let model = Arc::new(LoadedModel::load(backend, &config)?);
        let (queue, queued_jobs) = mpsc::channel(config.queue_size as usize);
        let busy_slots = Arc::new(AtomicU32::new(0));
        // Ten seconds smooths out single steps but follows a burst of traffic.
        let power = Arc::new(energy::PowerWindow::new(std::time::Duration::from_secs(10)));
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let worker = {
            let model = model.clone();
            let busy_slots = busy_slots.clone();
            let power = power.clone();
            let config = config.clone();
            std::thread::Builder::new()
                .name("edgeway-engine".into())
                .spawn(move || worker::run(backend, &model, &config, queued_jobs, busy_slots, power, ready_tx))
                .map_err(|error| EngineError::Config(format!("cannot start the engine thread: {error}")))?
        };
        let n_ctx_slot = ready_rx
            .recv()
            .map_err(|_| EngineError::Context { n_ctx: config.ctx_size, reason: "the engine thread died".into() })??;
        let info = ModelInfo {
            id: config.model_id.clone(),
            path: Some(config.model_path.display().to_string()),
            n_ctx_slot,
            n_ctx_train: model.n_ctx_train(),
            n_params: model.n_params(),
            size_bytes: model.size_bytes(),
            parallel: config.parallel,
            price_input_per_mtok: 0.0,
            price_output_per_mtok: 0.0,
        };
        tracing::info!(model = %info.id, n_ctx_slot, parallel = config.parallel, "model loaded");
        Ok(Self { info, model, queue, busy_slots, power, worker: Some(worker) })
    }
}

impl Backend for LlamaEngine {
    fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    fn load(&self) -> BackendLoad {
        let queued = self.queue.max_capacity() - self.queue.capacity();
        BackendLoad {
            busy_slots: self.busy_slots.load(Ordering::Relaxed),
            queued: queued as u32,
            power_watts: Some(self.power.watts()),
            cloud_up: None,
        }
    }

    fn tokenize(&self, prompt: &Prompt) -> Result<Vec<u32>, BackendError> {
        Ok(self.model.prompt_tokens(prompt, None)?.into_iter().map(|token| token.0 as u32).collect())
    }

    fn submit(&self, request: GenerateRequest) -> Result<Generation, BackendError> {
        let tools = request.tools.as_ref();
        let tokens = self.model.prompt_tokens(&request.prompt, tools)?;
        let n_prompt = tokens.len() as u32;
        if n_prompt == 0 {
            return Err(BackendError::InvalidRequest("the prompt is empty after tokenization".into()));
        }
        if n_prompt >= self.info.n_ctx_slot {
            return Err(BackendError::PromptTooLong { n_prompt, n_ctx: self.info.n_ctx_slot });
        }
        // A format or tool schema that cannot be enforced is refused here, before the request queues.
        // Callable tools take the grammar; a format asked for beside them is checked afterwards.
        let tool_constraint = tools.map(|tools| Constraint::for_tools(&self.model.model, tools)).transpose()?.flatten();
        let constraint = match tool_constraint {
            Some(constraint) => Some(constraint),
            None => {
                request.sampling.format.as_ref().map(|format| Constraint::new(&self.model.model, format)).transpose()?
            }
        };
        let tool_calls = tools.and_then(ToolCallSplitter::new);
        // An answer limited to choices (enums) reports how sure the model was of each.
        let choices = match (&constraint, tool_calls.is_some()) {
            (Some(_), false) => request.sampling.format.as_ref().and_then(ChoiceTrace::for_format),
            _ => None,
        };
        let constraint = if choices.is_some() { constraint.map(Constraint::with_probe) } else { constraint };
        let (events, receiver) = mpsc::unbounded_channel();
        let stream = request.route.stream;
        let job = Job {
            tokens,
            sampling: request.sampling,
            events,
            enqueued_at: Instant::now(),
            stream,
            constraint,
            tool_calls,
            choices,
        };
        self.queue.try_send(job).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => {
                BackendError::QueueFull { slots: self.info.parallel, queued: self.queue.max_capacity() as u32 }
            }
            mpsc::error::TrySendError::Closed(_) => BackendError::Unavailable("the engine has stopped".into()),
        })?;
        Ok(Generation::new(n_prompt, receiver))
    }
}

impl Drop for LlamaEngine {
    /// Closes the queue and waits for the worker to finish the requests it holds.
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.queue, closed));
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
