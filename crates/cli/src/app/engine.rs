//! Models from their names: the generative engine and the embedding model, resolved in the
//! cache (pulled or converted on first use when allowed) and loaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use edgeway_engine::LlamaEngine;
use edgeway_models::{resolve_model, ModelCache};

use crate::config::ServeSettings;
use crate::progress::PullBar;

/// Resolves (pulling if needed) and loads the configured generative model. Blocks: run it on a
/// blocking thread inside a runtime.
pub fn load_engine(
    settings: &ServeSettings,
    cache: &ModelCache,
    allow_pull: bool,
    model_id: String,
) -> anyhow::Result<Arc<LlamaEngine>> {
    let bar = edgeway_models::catalog::find(&settings.model).map(|m| PullBar::new(m.name, m.size_bytes));
    let resolved = resolve_model(&settings.model, cache, allow_pull, &mut |p| {
        if let Some(bar) = &bar {
            bar.update(p);
        }
    });
    if let Some(bar) = &bar {
        bar.finish();
    }
    let resolved = resolved?;
    let config = settings.engine_config(resolved.path, model_id);
    let engine = LlamaEngine::load(config).context("cannot load the model")?;
    Ok(Arc::new(engine))
}

/// A catalog name (generative or embedding) or a GGUF path, as a file, pulling or converting
/// it when allowed; a progress bar shows a download.
pub fn model_file(spec: &str, cache: &ModelCache, allow_pull: bool) -> anyhow::Result<PathBuf> {
    if let Some(model) = edgeway_models::find_embedding(spec) {
        return embedding_file(model, cache, allow_pull);
    }
    let bar = std::cell::RefCell::new(None::<PullBar>);
    let resolved = resolve_model(spec, cache, allow_pull, &mut |progress| {
        bar.borrow_mut().get_or_insert_with(|| PullBar::new(spec, 0)).update(progress);
    })?;
    if let Some(bar) = bar.borrow().as_ref() {
        bar.finish();
    }
    anyhow::ensure!(resolved.path.is_file(), "{} does not exist", resolved.path.display());
    Ok(resolved.path)
}

/// Resolves (converting on first use) and loads an embedding model: a catalog name or a .gguf path.
pub fn load_embedder(
    spec: &str,
    cache: &ModelCache,
    allow_pull: bool,
    threads: Option<u32>,
) -> anyhow::Result<Arc<edgeway_engine::Embedder>> {
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get() as u32));
    let (path, id, max_tokens) = resolve_embedding(spec, cache, allow_pull)?;
    Ok(Arc::new(edgeway_engine::Embedder::load(&path, &id, threads, max_tokens)?))
}

/// Resolves an embedding model as [`load_embedder`] does and checks it is an encoder, but loads
/// it on its first use (`serve`: a server that only chats never holds its weights).
pub fn lazy_embedder(
    spec: &str,
    cache: &ModelCache,
    allow_pull: bool,
    threads: u32,
) -> anyhow::Result<Arc<edgeway_engine::LazyEmbedder>> {
    let (path, id, max_tokens) = resolve_embedding(spec, cache, allow_pull)?;
    let gguf = edgeway_models::gguf_info::GgufInfo::read(&path)?;
    if !gguf.is_encoder() {
        anyhow::bail!(
            "{} is not an embedding model (its architecture is {}); give a sentence-embedding encoder such as {}",
            path.display(),
            gguf.architecture.as_deref().unwrap_or("unknown"),
            edgeway_models::DEFAULT_EMBEDDING_MODEL
        );
    }
    let dims = gguf.embedding_length.context("the embedding model's metadata has no embedding_length")?;
    let info = edgeway_core::EmbeddingInfo {
        id,
        dims: dims as usize,
        max_tokens: edgeway_engine::embed::input_limit(max_tokens, gguf.context_length.unwrap_or(u32::MAX)),
        size_bytes: std::fs::metadata(&path).map_or(0, |meta| meta.len()),
    };
    Ok(Arc::new(edgeway_engine::LazyEmbedder::new(&path, info, threads)?))
}

/// An embedding model's file, served name and input limit: a catalog name (converted on first
/// use when pulling is allowed) or a .gguf path.
fn resolve_embedding(spec: &str, cache: &ModelCache, allow_pull: bool) -> anyhow::Result<(PathBuf, String, usize)> {
    Ok(match edgeway_models::find_embedding(spec) {
        Some(model) => (embedding_file(model, cache, allow_pull)?, model.name.to_owned(), model.max_tokens),
        None if spec.ends_with(".gguf") || Path::new(spec).is_file() => {
            (PathBuf::from(spec), edgeway_models::resolve::served_id(spec), 512)
        }
        None => anyhow::bail!(
            "unknown embedding model '{spec}'; known: {}, or a .gguf path",
            edgeway_models::EMBEDDING_MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// The converted GGUF of a catalog embedding model, converted now if it is not yet and pulling is allowed.
fn embedding_file(
    model: &edgeway_models::EmbeddingModel,
    cache: &ModelCache,
    allow_pull: bool,
) -> anyhow::Result<PathBuf> {
    match edgeway_models::embedding::cached_embedding(cache, model) {
        Some(path) => Ok(path),
        None if allow_pull => {
            tracing::info!(model = model.name, "fetching and converting the embedding model");
            Ok(edgeway_models::pull_embedding(cache, model)?)
        }
        None => anyhow::bail!(
            "embedding model '{}' is not converted yet; run `edgeway model pull {}`",
            model.name,
            model.name
        ),
    }
}
