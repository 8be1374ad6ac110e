//! Sentence embeddings from an encoder model (a BERT GGUF with mean pooling).
//!
//! Tokenizing runs on the caller's thread; one worker thread owns the
//! llama.cpp context and encodes batches of sequences, each sequence whole in
//! one micro-batch (encoders attend both ways, so a sequence cannot be split).
//! Vectors come back L2-normalized, as sentence-transformers returns them with
//! `normalize_embeddings=True`, so a dot product is the cosine.

use std::num::NonZeroU32;
use std::sync::{mpsc, Arc};

use edgeway_core::{BackendError, EmbeddingBackend, EmbeddingInfo, EmbeddingOutput};
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::gguf_check::check_gguf_header;
use crate::{llama_backend, EngineError};

/// Tokens encoded in one call. An encoder attends over the whole micro-batch (masked per
/// sequence), so its cost and memory grow with the square of this: 4096 took ~1.6 GB of
/// attention scratch and wasted most of its work; 512 still holds the longest input (256).
const BATCH_TOKENS: u32 = 512;
/// Sequences encoded in one call.
const MAX_SEQUENCES: u32 = 16;
/// llama.cpp's context size: 256 per sequence (it pads each to 256); an encoder keeps no KV cache.
const CONTEXT_TOKENS: u32 = 256 * MAX_SEQUENCES;

struct Job {
    sequences: Vec<Vec<LlamaToken>>,
    reply: mpsc::Sender<Result<Vec<Vec<f32>>, String>>,
}

/// The longest input served: what was asked, within the model's training context and one batch.
pub fn input_limit(requested: usize, n_ctx_train: u32) -> usize {
    requested.min(n_ctx_train as usize).min(BATCH_TOKENS as usize).max(2)
}

/// An embedding model loaded on its first use (`serve`): a server that only chats never holds
/// its weights and context (44 MiB for all-MiniLM-L6-v2 at F16). The file's header is checked
/// up front, so a missing or foreign file still fails at start; a load that fails later answers
/// every embedding request with the reason.
pub struct LazyEmbedder {
    path: std::path::PathBuf,
    threads: u32,
    info: EmbeddingInfo,
    loaded: std::sync::OnceLock<Result<Embedder, String>>,
}

impl LazyEmbedder {
    /// Checks the file and describes it with `info` (from its metadata); loads nothing yet.
    pub fn new(path: &std::path::Path, info: EmbeddingInfo, threads: u32) -> Result<Self, EngineError> {
        check_gguf_header(path)?;
        Ok(Self { path: path.to_owned(), threads, info, loaded: std::sync::OnceLock::new() })
    }

    fn embedder(&self) -> Result<&Embedder, BackendError> {
        let loaded = self.loaded.get_or_init(|| {
            let started = std::time::Instant::now();
            let loaded = Embedder::load(&self.path, &self.info.id, self.threads, self.info.max_tokens)
                .map_err(|error| error.to_string());
            match &loaded {
                Ok(_) => tracing::info!(model = %self.info.id, ms = started.elapsed().as_millis() as u64, "embedding model loaded on first use"),
                Err(error) => tracing::error!(model = %self.info.id, %error, "the embedding model failed to load"),
            }
            loaded
        });
        loaded
            .as_ref()
            .map_err(|error| BackendError::Unavailable(format!("the embedding model could not be loaded: {error}")))
    }
}

impl EmbeddingBackend for LazyEmbedder {
    fn embedding_info(&self) -> &EmbeddingInfo {
        &self.info
    }

    fn is_loaded(&self) -> bool {
        self.loaded.get().is_some_and(Result::is_ok)
    }

    fn embed(&self, inputs: &[String]) -> Result<EmbeddingOutput, BackendError> {
        self.embedder()?.embed(inputs)
    }

    fn count_tokens(&self, text: &str) -> usize {
        // Unloadable: a byte count never undercounts tokens, so chunk budgets stay safe.
        self.embedder().map_or(text.len(), |embedder| EmbeddingBackend::count_tokens(embedder, text))
    }
}

/// A loaded embedding model and its worker thread.
pub struct Embedder {
    info: EmbeddingInfo,
    model: Arc<LlamaModel>,
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Embedder {
    /// Loads an embedding GGUF; `max_tokens` caps inputs (256 for all-MiniLM-L6-v2: longer
    /// inputs are truncated, as sentence-transformers truncates them).
    pub fn load(path: &std::path::Path, id: &str, threads: u32, max_tokens: usize) -> Result<Self, EngineError> {
        check_gguf_header(path)?;
        let backend = llama_backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).map_err(|error| {
            EngineError::Load {
                path: path.display().to_string(),
                reason: format!("{error}; is it an embedding model?"),
            }
        })?;
        let model = Arc::new(model);
        let dims = usize::try_from(model.n_embd()).unwrap_or(0);
        let max_tokens = input_limit(max_tokens, model.n_ctx_train());
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let worker = {
            let model = model.clone();
            std::thread::Builder::new()
                .name("edgeway-embed".into())
                .spawn(move || run(backend, &model, threads, queue, ready_tx))
                .map_err(|error| EngineError::Config(format!("cannot start the embedding thread: {error}")))?
        };
        ready_rx
            .recv()
            .map_err(|_| EngineError::Config("the embedding thread stopped while starting".into()))?
            .map_err(|reason| EngineError::Context { n_ctx: CONTEXT_TOKENS, reason })?;
        let size_bytes = std::fs::metadata(path).map_or(0, |meta| meta.len());
        let info = EmbeddingInfo { id: id.to_owned(), dims, max_tokens, size_bytes };
        Ok(Self { info, model, jobs: Some(jobs), worker: Some(worker) })
    }

    /// What this model is.
    pub fn info(&self) -> &EmbeddingInfo {
        &self.info
    }

    /// The tokens `text` becomes, truncated to the model's limit (keeping the final separator).
    pub fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        let mut tokens = self.model.vocab().tokenize(text.as_bytes(), true, false);
        if tokens.len() > self.info.max_tokens {
            let last = tokens[tokens.len() - 1];
            tokens.truncate(self.info.max_tokens - 1);
            tokens.push(last);
        }
        tokens
    }

    /// Token ids of `text` as numbers, for tests and `/tokenize`.
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        self.tokenize(text).into_iter().map(|t| t.0 as u32).collect()
    }

    /// Embeds `texts`; blocks until done (call from a blocking thread in async code).
    pub fn embed(&self, texts: &[String]) -> Result<EmbeddingOutput, BackendError> {
        let sequences: Vec<Vec<LlamaToken>> = texts.iter().map(|text| self.tokenize(text)).collect();
        let prompt_tokens = sequences.iter().map(|s| s.len() as u32).sum();
        let (reply, answer) = mpsc::channel();
        let jobs =
            self.jobs.as_ref().ok_or_else(|| BackendError::Unavailable("the embedder is shutting down".into()))?;
        jobs.send(Job { sequences, reply })
            .map_err(|_| BackendError::Unavailable("the embedding thread has stopped".into()))?;
        let vectors = answer
            .recv()
            .map_err(|_| BackendError::Unavailable("the embedding thread has stopped".into()))?
            .map_err(BackendError::Internal)?;
        Ok(EmbeddingOutput { vectors, prompt_tokens })
    }
}

impl EmbeddingBackend for Embedder {
    fn embedding_info(&self) -> &EmbeddingInfo {
        &self.info
    }

    fn embed(&self, inputs: &[String]) -> Result<EmbeddingOutput, BackendError> {
        Embedder::embed(self, inputs)
    }

    fn count_tokens(&self, text: &str) -> usize {
        // Untruncated: a chunker needs to know when text is over the limit.
        self.model.vocab().tokenize(text.as_bytes(), true, false).len()
    }
}

impl Drop for Embedder {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn run(
    backend: &'static llama_cpp_2::llama_backend::LlamaBackend,
    model: &LlamaModel,
    threads: u32,
    queue: mpsc::Receiver<Job>,
    ready: mpsc::SyncSender<Result<(), String>>,
) {
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(CONTEXT_TOKENS))
        .with_n_batch(BATCH_TOKENS)
        .with_n_ubatch(BATCH_TOKENS)
        .with_n_seq_max(MAX_SEQUENCES)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32)
        .with_embeddings(true)
        .with_pooling_type(LlamaPoolingType::Mean);
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(error) => {
            let _ = ready.send(Err(error.to_string()));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut batch = LlamaBatch::new(BATCH_TOKENS as usize, MAX_SEQUENCES as i32);
    while let Ok(job) = queue.recv() {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut vectors = Vec::with_capacity(job.sequences.len());
            let mut start = 0;
            while start < job.sequences.len() {
                // Pack whole sequences until the micro-batch or the sequence limit is full.
                batch.clear();
                let mut end = start;
                let mut tokens = 0usize;
                while end < job.sequences.len()
                    && end - start < MAX_SEQUENCES as usize
                    && tokens + job.sequences[end].len() <= BATCH_TOKENS as usize
                {
                    let seq = (end - start) as i32;
                    batch.add_sequence(&job.sequences[end], seq, true).map_err(|e| e.to_string())?;
                    tokens += job.sequences[end].len();
                    end += 1;
                }
                if end == start {
                    return Err(format!("an input of {} tokens does not fit one batch", job.sequences[start].len()));
                }
                ctx.clear_kv_cache();
                ctx.decode(&mut batch).map_err(|e| format!("llama.cpp could not encode the batch: {e}"))?;
                for seq in 0..(end - start) as i32 {
                    let vector = ctx.embeddings_seq_ith(seq).map_err(|e| e.to_string())?;
                    vectors.push(normalized(vector));
                }
                start = end;
            }
            Ok(vectors)
        }));
        let result = result.unwrap_or_else(|_| Err("the embedding step panicked".into()));
        let _ = job.reply.send(result);
    }
}

/// `vector / |vector|` (zero stays zero).
pub fn normalized(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter().map(|v| v / norm).collect()
    } else {
        vector.to_vec()
    }
}
