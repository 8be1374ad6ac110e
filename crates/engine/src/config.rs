//! What an engine is built from.

use std::path::PathBuf;
use std::time::Duration;

use crate::EngineError;

/// Watts one busy core draws, for energy accounting when RAPL counters are not readable.
pub const DEFAULT_WATTS_PER_CORE: f64 = 10.0;

/// Settings of one local model, named after llama-server's flags where one exists.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// The GGUF file.
    pub model_path: PathBuf,
    /// The name clients use for it.
    pub model_id: String,
    /// Threads for generation (`--threads`).
    pub threads: u32,
    /// Threads for prompt processing (`--threads-batch`).
    pub threads_batch: u32,
    /// Total KV cache size in tokens, shared evenly by the slots (`--ctx-size`).
    pub ctx_size: u32,
    /// Requests generating at once (`--parallel`).
    pub parallel: u32,
    /// Most tokens decoded in one step (`--batch-size`); long prompts are processed in chunks of this size.
    pub batch_size: u32,
    /// Physical micro-batch size (`--ubatch-size`): tokens computed in one graph. 256, not
    /// llama.cpp's 512: the compute buffer's pages a micro-batch touches stay resident, and 256
    /// saved 7 MiB (SmolLM2) to 17 MiB (Gemma 3) of peak RSS with no measurable change in
    /// long-prompt speed on 2 cores (bench/README.md).
    pub ubatch_size: u32,
    /// Most prompt tokens one step reads while other requests are generating
    /// (`--prefill-chunk`). A long prompt is then read a chunk per step, each step also
    /// giving every generating request its next token, so a new arrival's prompt delays
    /// the others' streams by a chunk's time rather than the whole prompt's. A prompt
    /// read with no other request generating uses the whole batch. 128 tokens take
    /// about 0.7 s with a 0.5B model on 2 cores and lose about 5 % of prompt speed to
    /// the smaller matrix products (bench/README.md, `bench/concurrency.sh`).
    pub prefill_chunk: u32,
    /// Requests that may wait for a slot before new ones get 503 (`--queue-size`).
    pub queue_size: u32,
    /// Keep the full KV cache for sliding-window layers (`--swa-full`). Off (as in
    /// llama-server), an SWA model such as Gemma 3 keeps only the window, which
    /// saves memory (37 MiB on Gemma 3 270M at 4096 tokens) but lets a cached
    /// prefix be reused only while the previous answer stayed within the window.
    pub swa_full: bool,
    /// Map the model file (`--mmap`) instead of reading the weights into memory on
    /// 2 MiB pages. Reading is the default where the kernel offers huge pages:
    /// generation is 2.5 % faster (see [`crate::hugepages`]); mapping shares
    /// the file's page cache with other processes.
    pub mmap: bool,
    /// Least time between two chunks of a streamed answer (`--stream-interval-ms`); see
    /// [`crate::pacing`]. Zero sends every token on its own.
    pub stream_interval: Duration,
    /// Power of one busy core, for the CPU-time energy model when RAPL is not readable (`--watts-per-core`).
    pub watts_per_core: f64,
}

impl EngineConfig {
    /// Defaults for a 2-core edge box serving `model_path`.
    pub fn new(model_path: impl Into<PathBuf>, model_id: impl Into<String>) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        Self {
            model_path: model_path.into(),
            model_id: model_id.into(),
            threads,
            threads_batch: threads,
            ctx_size: 4096,
            parallel: 2,
            batch_size: 512,
            ubatch_size: 256,
            prefill_chunk: 128,
            queue_size: 32,
            swa_full: false,
            mmap: !crate::hugepages::available(),
            stream_interval: Duration::from_millis(16),
            watts_per_core: DEFAULT_WATTS_PER_CORE,
        }
    }

    /// Rejects settings llama.cpp would fail on in less readable ways.
    pub fn validate(&self) -> Result<(), EngineError> {
        let positive = [
            ("threads", self.threads),
            ("threads-batch", self.threads_batch),
            ("parallel", self.parallel),
            ("batch-size", self.batch_size),
            ("ubatch-size", self.ubatch_size),
            ("prefill-chunk", self.prefill_chunk),
            ("queue-size", self.queue_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(EngineError::Config(format!("--{name} must be at least 1")));
        }
        if self.parallel > 64 {
            return Err(EngineError::Config(format!(
                "--parallel {} is more than the 64 slots supported",
                self.parallel
            )));
        }
        if self.ctx_size / self.parallel < 16 {
            return Err(EngineError::Config(format!(
                "--ctx-size {} split over --parallel {} leaves fewer than 16 tokens per slot",
                self.ctx_size, self.parallel
            )));
        }
        if self.ubatch_size > self.batch_size {
            return Err(EngineError::Config(format!(
                "--ubatch-size {} must not exceed --batch-size {}",
                self.ubatch_size, self.batch_size
            )));
        }
        Ok(())
    }
}
