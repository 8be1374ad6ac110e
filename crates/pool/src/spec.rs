//! [`ModelSpec`]: what the pool knows of a model before loading it, and the
//! estimate of the memory it will hold once loaded.

use std::path::Path;

use edgeway_core::{KeepAlive, ModelInfo};
use edgeway_models::gguf_info::{GgufInfo, GgufInfoError};

/// One model the pool may load.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The name clients use in `model` (normally `info.id`).
    pub name: String,
    /// What is known before loading (from the GGUF's metadata; the caller builds it).
    pub info: ModelInfo,
    /// Memory the model holds once loaded (weights, KV cache, compute buffers), in bytes;
    /// see [`estimate_memory`]. This is what counts against the memory budget.
    pub estimated_bytes: u64,
    /// How long it stays loaded after its last request, unless the request says otherwise.
    pub keep_alive: KeepAlive,
    /// Loaded at start ([`crate::ModelPool::load_pinned`]) and never unloaded, neither for
    /// being idle nor to make room.
    pub pinned: bool,
}

impl ModelSpec {
    /// A spec named after `info.id`, with Ollama's default keep-alive (five minutes), not pinned.
    pub fn new(info: ModelInfo, estimated_bytes: u64) -> Self {
        Self { name: info.id.clone(), info, estimated_bytes, keep_alive: KeepAlive::OLLAMA_DEFAULT, pinned: false }
    }

    /// The same spec with this default keep-alive.
    pub fn with_keep_alive(mut self, keep_alive: KeepAlive) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// The same spec, pinned.
    pub fn pinned(mut self) -> Self {
        self.pinned = true;
        self
    }
}

/// The parts of a loaded model's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The weights: the tensor data, read whole into memory (the file's size, less nothing
    /// worth counting: the metadata is a few hundred KiB).
    pub weights: u64,
    /// The KV cache: `ctx_size` tokens (shared by the slots) × layers × (key + value
    /// width) × 2 bytes (f16, llama.cpp's default cache type).
    pub kv_cache: u64,
    /// The logits buffer (vocabulary × 4 bytes per slot) and the compute buffer's pages a
    /// step touches (a fixed allowance, see [`COMPUTE_ALLOWANCE`]).
    pub compute: u64,
}

impl MemoryEstimate {
    /// Everything the model holds.
    pub fn total(&self) -> u64 {
        self.weights.saturating_add(self.kv_cache).saturating_add(self.compute)
    }
}

/// The compute buffer's resident pages and llama.cpp's per-model bookkeeping: the
/// micro-batch of 256 tokens touches part of a buffer reserved for the worst case.
pub const COMPUTE_ALLOWANCE: u64 = 16 << 20;

/// Estimates the memory the GGUF at `path` will hold loaded with a KV cache of
/// `ctx_size` tokens shared by `parallel` slots (the engine's `--ctx-size` and `--parallel`).
pub fn estimate_memory(path: &Path, ctx_size: u32, parallel: u32) -> Result<MemoryEstimate, GgufInfoError> {
    let info = GgufInfo::read(path)?;
    let file_bytes =
        std::fs::metadata(path).map_err(|source| GgufInfoError::Io { path: path.display().to_string(), source })?.len();
    Ok(estimate_from_info(&info, file_bytes, ctx_size, parallel))
}

/// [`estimate_memory`] from metadata already read. Missing attention facts fall back to
/// full multi-head attention over the hidden size (which overestimates a grouped-query
/// model's cache, never underestimates it).
pub fn estimate_from_info(info: &GgufInfo, file_bytes: u64, ctx_size: u32, parallel: u32) -> MemoryEstimate {
    let layers = u64::from(info.block_count.unwrap_or(0));
    let hidden = u64::from(info.embedding_length.unwrap_or(0));
    let heads = u64::from(info.head_count.unwrap_or(1).max(1));
    let kv_heads = u64::from(info.head_count_kv.unwrap_or(info.head_count.unwrap_or(1)).max(1));
    let key = info.key_length.map_or(hidden / heads, u64::from);
    let value = info.value_length.map_or(hidden / heads, u64::from);
    let per_token = layers * kv_heads * (key + value) * 2;
    let kv_cache = per_token.saturating_mul(u64::from(ctx_size));
    let logits = info.vocab_size.unwrap_or(0).saturating_mul(4).saturating_mul(u64::from(parallel.max(1)));
    MemoryEstimate { weights: file_bytes, kv_cache, compute: logits.saturating_add(COMPUTE_ALLOWANCE) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2() -> GgufInfo {
        // SmolLM2-135M's facts: 30 layers, hidden 576, 9 heads of 64, 3 KV heads, 49152 tokens.
        GgufInfo {
            block_count: Some(30),
            embedding_length: Some(576),
            head_count: Some(9),
            head_count_kv: Some(3),
            vocab_size: Some(49152),
            ..GgufInfo::default()
        }
    }

    #[test]
    fn kv_cache_counts_only_the_kv_heads() {
        let estimate = estimate_from_info(&smollm2(), 100, 4096, 2);
        // 30 layers × 3 heads × (64 + 64) × 2 bytes = 23,040 bytes a token.
        assert_eq!(estimate.kv_cache, 23_040 * 4096);
        assert_eq!(estimate.weights, 100);
        assert_eq!(estimate.compute, 49152 * 4 * 2 + COMPUTE_ALLOWANCE);
        assert_eq!(estimate.total(), 100 + 23_040 * 4096 + 49152 * 8 + COMPUTE_ALLOWANCE);
    }

    #[test]
    fn explicit_head_sizes_win_and_missing_kv_heads_mean_full_attention() {
        let info = GgufInfo { key_length: Some(256), value_length: Some(128), ..smollm2() };
        assert_eq!(estimate_from_info(&info, 0, 1, 1).kv_cache, 30 * 3 * (256 + 128) * 2);
        let info = GgufInfo { head_count_kv: None, ..smollm2() };
        assert_eq!(estimate_from_info(&info, 0, 1, 1).kv_cache, 30 * 9 * 128 * 2);
    }
}
