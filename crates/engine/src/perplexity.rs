//! Perplexity of a model on a fixed text, the way llama.cpp's `llama-perplexity` measures it.
//!
//! The text is cut into windows of `window` tokens (the first replaced by BOS
//! for models that want one); each window is decoded from an empty cache and
//! only its second half is scored, so every scored token sees at least half a
//! window of context. Perplexity is `exp(mean negative log-likelihood)` over
//! the scored tokens. The same text, window and scoring on two quantizations
//! of one model make their perplexities comparable; across models with
//! different tokenizers they are not.

use std::num::NonZeroU32;
use std::path::Path;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;

use crate::gguf_check::check_gguf_header;
use crate::{llama_backend, EngineError};

/// The result of one perplexity run.
#[derive(Debug, Clone, PartialEq)]
pub struct Perplexity {
    /// `exp(mean_nll)`.
    pub perplexity: f64,
    /// Mean negative log-likelihood per scored token, in nats.
    pub mean_nll: f64,
    /// Tokens scored (half of each window).
    pub scored_tokens: u64,
    /// Windows decoded.
    pub windows: u64,
    /// Wall time of the decoding, in seconds.
    pub seconds: f64,
}

/// Measures the perplexity of the model at `path` on `text`, at most `max_tokens` of it, in windows of `window` tokens.
pub fn perplexity(
    path: &Path,
    text: &str,
    window: u32,
    max_tokens: usize,
    threads: u32,
) -> Result<Perplexity, EngineError> {
    if window < 16 {
        return Err(EngineError::Config(format!("a perplexity window of {window} tokens is too small (16 at least)")));
    }
    check_gguf_header(path)?;
    let backend = llama_backend()?;
    let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
        .map_err(|error| EngineError::Load { path: path.display().to_string(), reason: error.to_string() })?;
    let vocab = model.vocab();
    let mut tokens = vocab.tokenize(text.as_bytes(), false, false);
    tokens.truncate(max_tokens);
    let window_len = window as usize;
    let windows = tokens.len() / window_len;
    if windows == 0 {
        return Err(EngineError::Config(format!(
            "the text is {} tokens, shorter than one {window}-token window",
            tokens.len()
        )));
    }
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(window))
        .with_n_batch(window)
        .with_n_ubatch(window.min(512))
        .with_n_seq_max(1)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32);
    let mut ctx = model
        .new_context(backend, params)
        .map_err(|error| EngineError::Context { n_ctx: window, reason: error.to_string() })?;
    let bos = vocab.should_add_bos().then(|| vocab.bos());
    let first_scored = window_len / 2;
    let mut batch = LlamaBatch::new(window_len, 1);
    let (mut nll, mut scored) = (0.0f64, 0u64);
    let started = std::time::Instant::now();
    for chunk in tokens.chunks_exact(window_len) {
        let mut chunk = chunk.to_vec();
        if let Some(bos) = bos {
            chunk[0] = bos;
        }
        batch.clear();
        for (position, &token) in chunk.iter().enumerate() {
            // Logits are needed where they predict a scored token: positions first_scored-1 .. len-2.
            let wanted = position + 1 >= first_scored && position + 1 < window_len;
            batch
                .add(token, position as i32, &[0], wanted)
                .map_err(|error| EngineError::Config(format!("cannot build the batch: {error}")))?;
        }
        ctx.clear_kv_cache();
        ctx.decode(&mut batch)
            .map_err(|error| EngineError::Context { n_ctx: window, reason: format!("decode failed: {error}") })?;
        for position in first_scored - 1..window_len - 1 {
            let logits = ctx.get_logits_ith(position as i32);
            nll += negative_log_likelihood(logits, chunk[position + 1].0 as usize);
            scored += 1;
        }
    }
    let mean_nll = nll / scored.max(1) as f64;
    Ok(Perplexity {
        perplexity: mean_nll.exp(),
        mean_nll,
        scored_tokens: scored,
        windows: windows as u64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `-log softmax(logits)[target]`, computed stably in f64.
pub fn negative_log_likelihood(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let log_sum = max + sum.ln();
    log_sum - logits.get(target).copied().map_or(f64::NEG_INFINITY, f64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_of_uniform_logits_is_log_of_the_vocabulary() {
        let logits = vec![0.5f32; 100];
        assert!((negative_log_likelihood(&logits, 7) - (100f64).ln()).abs() < 1e-9);
    }

    #[test]
    fn nll_is_small_for_a_confident_right_token_and_stable_for_large_logits() {
        let mut logits = vec![0.0f32; 10];
        logits[3] = 1000.0;
        assert!(negative_log_likelihood(&logits, 3) < 1e-9);
        assert!((negative_log_likelihood(&logits, 4) - 1000.0).abs() < 1e-6);
    }
}
