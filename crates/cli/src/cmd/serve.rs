//! `edgeway serve`: resolve the model, start the HTTP server, load the model, serve until a signal.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use edgeway_core::{Backend, EmbeddingBackend};
use edgeway_engine::LlamaEngine;
use edgeway_gateway::{Gateway, Member, Tiers};
use edgeway_models::{resolve_model, ModelCache};
use edgeway_server::AppState;
use edgeway_upstream::CloudBackend;
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use edgeway_server::record::LogSettings;
use edgeway_store::QueryLog;

/// The query log's file name in the data directory.
pub const QUERY_LOG_FILE: &str = "queries.db";
use crate::config::{FileConfig, ServeSettings};
use crate::progress::PullBar;

pub fn run(data_dir_flag: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let file = FileConfig::load(args.config.as_deref())?;
    let data_dir = super::data_dir(data_dir_flag, file.data_dir.clone());
    let settings = ServeSettings::merge(&args, file)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(serve(settings, ModelCache::new(data_dir), !args.no_pull))
}

/// The guard over the key table beside the query log; refuses a public address without keys unless `--insecure`.
fn open_guard(
    log_path: &std::path::Path,
    settings: &ServeSettings,
    data_dir: &std::path::Path,
) -> anyhow::Result<Arc<edgeway_guard::Guard>> {
    let store = edgeway_store::KeyStore::open(log_path)
        .with_context(|| format!("cannot open the key table in {}", log_path.display()))?;
    let guard = edgeway_guard::Guard::new(Some(Arc::new(store)), settings.api_key.as_deref())
        .with_extraction(settings.extraction.clone())
        .with_injection(injection_screen(data_dir)?, settings.injection_action);
    let keys_required = guard.required()?;
    if !is_loopback(&settings.host) && !keys_required {
        anyhow::ensure!(
            settings.insecure,
            "refusing to listen on {} without API keys: anyone who can reach this address could use the model. \
             Create a key (`edgeway keys create NAME`), pass --api-key, listen on 127.0.0.1, \
             or pass --insecure if this network is trusted",
            settings.host
        );
        tracing::warn!(host = %settings.host, "listening on a public address with no API keys (--insecure)");
    }
    if keys_required {
        tracing::info!("API keys required (Authorization: Bearer KEY)");
    }
    Ok(Arc::new(guard))
}

/// The injection screen: rules, plus the classifier `edgeway bench injection` saved, if it did.
fn injection_screen(data_dir: &std::path::Path) -> anyhow::Result<edgeway_guard::injection::InjectionScreen> {
    use edgeway_guard::injection::{InjectionScreen, DEFAULT_CLASSIFIER_THRESHOLD};
    let path = data_dir.join(super::bench::INJECTION_CLASSIFIER_FILE);
    if !path.is_file() {
        return Ok(InjectionScreen::rules_only());
    }
    let model = edgeway_policy::learned::LearnedModel::load(&path)?;
    tracing::info!(path = %path.display(), "prompt-injection classifier loaded");
    Ok(InjectionScreen::with_classifier(model, DEFAULT_CLASSIFIER_THRESHOLD))
}

/// Whether `host` is a loopback address (or `localhost`).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn serve(settings: ServeSettings, cache: ModelCache, allow_pull: bool) -> anyhow::Result<()> {
    anyhow::ensure!(settings.models.len() == 1, "serving several [[models]] is not wired in yet: list one");
    let address = format!("{}:{}", settings.host, settings.port);
    // Bind before loading: a taken port fails at once, and /health can say "loading".
    let listener = TcpListener::bind(&address).await.with_context(|| format!("cannot listen on {address}"))?;
    let model_id = settings.alias.clone().unwrap_or_else(|| edgeway_models::resolve::served_id(&settings.model));
    let clouds = settings.clouds.clone();
    let scorer = settings.scorer.build(cache.data_dir())?;
    let gateway_config = settings.gateway.clone();
    let log_path = settings.log_path.clone().unwrap_or_else(|| cache.data_dir().join(QUERY_LOG_FILE));
    let log = QueryLog::open(&log_path).with_context(|| format!("cannot open the query log {}", log_path.display()))?;
    tracing::info!(path = %log_path.display(), text = settings.log_text, "logging every request");
    let guard = open_guard(&log_path, &settings, cache.data_dir())?;
    let state =
        AppState::loading_with_log(model_id.clone(), LogSettings { log: Arc::new(log), store_text: settings.log_text });
    state.set_guard(guard);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = stop_rx => {}
        }
    };
    let server = tokio::spawn(edgeway_server::run(listener, state.clone(), shutdown));
    tracing::info!("listening on http://{address}, loading {}", settings.model);

    let embedding_model = settings.embedding_model.clone();
    let embedding_required = settings.embedding_required;
    let rag_settings = settings.rag.clone();
    let (knowledge_db, index_dir) =
        super::knowledge::knowledge_paths(cache.data_dir(), settings.knowledge_path.as_deref());
    // One thread: a second OpenMP team in the process makes libgomp throttle every team's
    // spin-waiting (more managed threads than cores), which halved generation speed when measured.
    // Query embeddings are short; bulk embedding (`edgeway ingest`) runs in its own process.
    let embed_threads = 1;
    let embed_cache = cache.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&settings, &cache, allow_pull, model_id)).await;
    let engine = match loaded.context("the model loader panicked").and_then(|result| result) {
        Ok(engine) => engine,
        Err(error) => {
            let _ = stop_tx.send(());
            let _ = server.await;
            return Err(error);
        }
    };
    if let Some(spec) = embedding_model {
        let loaded = tokio::task::spawn_blocking(move || lazy_embedder(&spec, &embed_cache, allow_pull, embed_threads));
        match loaded.await.context("the embedding loader panicked").and_then(|result| result) {
            Ok(embedder) => {
                let info = embedder.embedding_info();
                tracing::info!(model = %info.id, dims = info.dims, "embedding model ready; its weights load with the first request that needs them");
                let retriever =
                    edgeway_rag::retrieve::KnowledgeRetriever::open(&knowledge_db, index_dir, embedder.clone())
                        .with_context(|| format!("cannot open the knowledge base {}", knowledge_db.display()))?;
                if let Some(collection) = &rag_settings.default_collection {
                    tracing::info!(%collection, "chats retrieve from this collection unless they name another");
                }
                state.set_retriever(Arc::new(retriever), rag_settings);
                state.set_embedder(embedder);
            }
            Err(error) if !embedding_required => {
                tracing::warn!(
                    error = %format!("{error:#}"),
                    "no embedding model: /v1/embeddings and retrieval are off (run `edgeway model pull all-minilm-l6-v2`)"
                );
            }
            Err(error) => {
                let _ = stop_tx.send(());
                let _ = server.await;
                return Err(error.context("cannot load the embedding model (or start with --no-embeddings)"));
            }
        }
    }
    let gateway = build_gateway(engine, &clouds, gateway_config, scorer)?;
    state.set_backend(Arc::new(gateway));
    tracing::info!("ready: POST http://{address}/v1/chat/completions");
    server.await.context("the server task failed")?.context("the server stopped with an error")?;
    tracing::info!("shut down");
    Ok(())
}

/// The router over the loaded edge engine (tier 0) and the configured clouds on their tiers.
pub(crate) fn build_gateway(
    engine: Arc<LlamaEngine>,
    clouds: &[crate::config::CloudTier],
    config: edgeway_gateway::GatewayConfig,
    scorer: Arc<dyn edgeway_policy::ComplexityScorer>,
) -> anyhow::Result<Gateway> {
    let mut members = vec![Member::local(engine, 0)];
    for cloud in clouds {
        let upstream = &cloud.config;
        tracing::info!(name = %upstream.name, url = %upstream.base_url, model = %upstream.model, tier = cloud.tier, "cloud tier configured");
        let backend: Arc<dyn Backend> = Arc::new(CloudBackend::new(upstream.clone())?);
        members.push(Member::cloud(backend, cloud.tier));
    }
    if clouds.is_empty() {
        tracing::info!("no cloud tier: every request is answered at the edge");
    }
    Ok(Gateway::with_tiers(Tiers::new(members)?, scorer, config))
}

/// Resolves (pulling if needed) and loads the model. Runs on a blocking thread.
pub(crate) fn load(
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

/// Resolves (converting on first use) and loads an embedding model: a catalog name or a .gguf path.
pub(crate) fn load_embedder(
    spec: &str,
    cache: &ModelCache,
    allow_pull: bool,
    threads: Option<u32>,
) -> anyhow::Result<Arc<edgeway_engine::Embedder>> {
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get() as u32));
    let (path, id, max_tokens) = resolve_embedding(spec, cache, allow_pull)?;
    Ok(Arc::new(edgeway_engine::Embedder::load(&path, &id, threads, max_tokens)?))
}

/// Resolves an embedding model as `load_embedder` does and checks it is an encoder, but loads it
/// on its first use (`serve`: a server that only chats never holds its weights).
fn lazy_embedder(
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
        None if spec.ends_with(".gguf") || std::path::Path::new(spec).is_file() => {
            (PathBuf::from(spec), edgeway_models::resolve::served_id(spec), 512)
        }
        None => anyhow::bail!(
            "unknown embedding model '{spec}'; known: {}, or a .gguf path",
            edgeway_models::EMBEDDING_MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// The converted GGUF of a catalog embedding model, converted now if it is not yet and pulling is allowed.
pub(crate) fn embedding_file(
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

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_addresses() {
        for host in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["0.0.0.0", "::", "192.168.1.10", "example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
