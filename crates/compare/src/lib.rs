//! Quantizations of one model side by side: what `edgeway compare` measures and reports.
//!
//! The CLI runs one process per variant, so load time and peak memory belong to that variant
//! alone; each calls [`measure::measure`] on the [`texts::Texts`] every variant shares and sends
//! back the [`Measured`] figures. [`report::Comparison`] then sets them against the baseline (by
//! default the variant with the most bits per weight) as a table, Markdown or JSON, and
//! [`plot`] draws quality against size and energy.
//!
//! # Layout
//! - [`texts`]: the fixed inputs from the evaluation package (prose, graded items, retrieval sets).
//! - [`measure`]: one variant: load, speed and energy, graded sets and perplexity, or embedding
//!   speed, vectors and recall@5.
//! - [`report`]: the comparison with the baseline and its three renderings.
//! - [`plot`]: the SVG.
//! - [`memory`]: a process's peak resident memory.

pub mod measure;
pub mod memory;
pub mod plot;
pub mod report;
pub mod texts;

use std::path::PathBuf;

pub use measure::{measure, Measured, Progress};
pub use memory::peak_rss;
pub use report::Comparison;
pub use texts::Texts;

/// How every variant is measured: the same for all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Threads for every measurement.
    pub threads: u32,
    /// Graded sets for generative models (arc-easy, mmlu, gsm8k, …).
    pub sets: Vec<String>,
    /// Items per graded set (a fixed sample).
    pub limit: usize,
    /// Tokens of the fixed text scored for perplexity.
    pub ppl_tokens: usize,
    /// Perplexity window in tokens.
    pub ppl_window: u32,
    /// Prompt length for the prompt-speed measurement, in tokens.
    pub prompt_tokens: u32,
    /// Tokens generated for the generation-speed measurement.
    pub gen_tokens: u32,
    /// Speed measurements per variant (the median is reported).
    pub repetitions: u32,
    /// Questions per retrieval set for embedding models.
    pub questions: usize,
    /// Power of one busy core, for the CPU-time energy model when RAPL is not readable.
    pub watts_per_core: f64,
}

/// Why a variant could not be measured or compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A set of the evaluation package could not be loaded.
    #[error("cannot load {what}")]
    Dataset {
        /// Which set, for the message.
        what: String,
        /// Why.
        #[source]
        source: edgeway_eval::dataset::DatasetError,
    },
    /// The model could not be loaded or measured.
    #[error(transparent)]
    Engine(#[from] edgeway_engine::EngineError),
    /// The model refused or failed a request.
    #[error(transparent)]
    Backend(#[from] edgeway_core::BackendError),
    /// The engine's stream ended without its final event.
    #[error("the engine hung up")]
    HungUp,
    /// The runtime that drives the engine could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The variants mix embedding and generative models, whose measures have nothing in common.
    #[error("compare variants of one model: these mix embedding and generative models: {0}")]
    MixedKinds(String),
}

/// Refuses a mix of embedding and generative models: each variant is `(name, architecture,
/// whether it is an embedding model)`.
pub fn check_one_kind(variants: &[(String, String, bool)]) -> Result<(), CompareError> {
    if variants.iter().any(|v| v.2) && variants.iter().any(|v| !v.2) {
        let listed: Vec<String> = variants
            .iter()
            .map(|(name, arch, encoder)| {
                format!("{name} ({arch}, {})", if *encoder { "embedding" } else { "generative" })
            })
            .collect();
        return Err(CompareError::MixedKinds(listed.join(", ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_kind_passes_and_a_mix_is_refused_naming_each_variant() {
        let variant = |name: &str, arch: &str, embedding| (name.to_owned(), arch.to_owned(), embedding);
        assert!(check_one_kind(&[variant("a", "llama", false), variant("b", "llama", false)]).is_ok());
        assert!(check_one_kind(&[variant("e", "bert", true)]).is_ok());
        let error = check_one_kind(&[variant("a.gguf", "llama", false), variant("minilm", "bert", true)]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "compare variants of one model: these mix embedding and generative models: \
             a.gguf (llama, generative), minilm (bert, embedding)"
        );
    }
}
