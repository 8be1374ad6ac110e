//! `edgeway serve`: bind, start the HTTP server, load the models through the app, serve until a signal.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use edgeway_core::EmbeddingBackend;
use edgeway_server::record::LogSettings;
use edgeway_server::AppState;
use tokio::net::TcpListener;

use crate::app::{self, DataDir};
use crate::cli::{ServeArgs, ServeInspectArgs};
use crate::config::{FileConfig, ServeSettings};

/// Runs `edgeway serve`.
pub fn run(data_dir_flag: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let file = FileConfig::load(args.config.path.as_deref())?;
    let data_dir = DataDir::resolve(data_dir_flag, file.data_dir.clone());
    let settings = ServeSettings::merge(&args, file)?;
    let inspect = args.inspect.clone();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(serve(settings, data_dir, !args.no_pull, inspect))
}

async fn serve(
    settings: ServeSettings,
    data_dir: DataDir,
    allow_pull: bool,
    inspect: ServeInspectArgs,
) -> anyhow::Result<()> {
    let address = format!("{}:{}", settings.host, settings.port);
    raise_fd_limit(settings.connections.max_connections);
    // Bind before loading: a taken port fails at once, and /health can say "loading".
    let listener = bind(&address).await.with_context(|| format!("cannot listen on {address}"))?;
    let model_id = settings.alias.clone().unwrap_or_else(|| edgeway_models::resolve::served_id(&settings.model));
    let clouds = settings.clouds.clone();
    let scorer = app::gateway::build_scorer(&settings.scorer, &data_dir)?;
    let scorer_setting = settings.scorer.clone();
    let gateway_config = settings.gateway.clone();
    let injection_judge = settings.injection_judge.as_ref().map(|judge| judge.model.clone());
    let log_path = data_dir.query_log(settings.log_path.as_deref());
    let log = app::guard::open_query_log(&log_path)?;
    tracing::info!(path = %log_path.display(), text = settings.log_text, "logging every request");
    let guard = app::guard::open_guard(&log_path, &settings, &data_dir)?;
    let state =
        AppState::loading_with_log(model_id.clone(), LogSettings { log: Arc::new(log), store_text: settings.log_text });
    state.set_guard(guard);
    let fleet = settings.fleet.clone();
    let ship_stats = Arc::new(edgeway_store::ShipStats::default());
    if let Some(fleet) = &fleet {
        let ship = fleet.ship.clone();
        state.metrics().watch_shipping(&ship.box_id, Arc::clone(&ship_stats));
        tracing::info!(box_id = %ship.box_id, site = ?ship.site, every = ?ship.every, "shipping the query log to the fleet center");
        tokio::spawn(edgeway_fleet::ship::run(ship, log_path.clone(), Arc::clone(&ship_stats)));
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            _ = app::shutdown_signal() => {}
            _ = stop_rx => {}
        }
    };
    let server = tokio::spawn(edgeway_server::run(listener, state.clone(), settings.connections.clone(), shutdown));
    tracing::info!("listening on http://{address}, loading {}", settings.model);

    // Inspection models first: they load in a second or two, and a bad file should fail before
    // minutes of LLM download.
    if !inspect.inspect_models.is_empty() {
        let watts_per_core = settings.engine.watts_per_core.unwrap_or(edgeway_engine::DEFAULT_WATTS_PER_CORE);
        let vision_dir = data_dir.clone();
        let loaded =
            tokio::task::spawn_blocking(move || app::vision::load_inspectors(&vision_dir, &inspect, watts_per_core))
                .await;
        match loaded.context("the inspection loader panicked").and_then(|result| result) {
            Ok(inspectors) => state.set_inspectors(inspectors),
            Err(error) => {
                let _ = stop_tx.send(());
                let _ = server.await;
                return Err(error);
            }
        }
    }
    let (knowledge_db, index_dir) = data_dir.knowledge(settings.knowledge_path.as_deref());
    let retrieval_on = settings.embedding_model.is_some();
    let mut facts = app::dashboard::facts(&settings, retrieval_on.then(|| knowledge_db.clone()));
    facts.fleet = fleet.as_ref().map(|fleet| edgeway_server::FleetFacts {
        box_id: fleet.ship.box_id.clone(),
        site: fleet.ship.site.clone(),
        stats: Arc::clone(&ship_stats),
    });
    state.set_dashboard_facts(facts);
    let embedding_model = settings.embedding_model.clone();
    let embedding_required = settings.embedding_required;
    let rag_settings = settings.rag.clone();

    // One thread: a second OpenMP team in the process makes libgomp throttle every team's
    // spin-waiting (more managed threads than cores), which halved generation speed when measured.
    // Query embeddings are short; bulk embedding (`edgeway ingest`) runs in its own process.
    let embed_threads = 1;
    let cache = data_dir.cache();
    let embed_cache = cache.clone();
    let loaded =
        tokio::task::spawn_blocking(move || app::gateway::load_models(&settings, &cache, allow_pull, model_id)).await;
    let models = match loaded.context("the model loader panicked").and_then(|result| result) {
        Ok(models) => match models.load_pinned().await {
            Ok(()) => Ok(models),
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    let models = match models {
        Ok(models) => models,
        Err(error) => {
            let _ = stop_tx.send(());
            let _ = server.await;
            return Err(error);
        }
    };
    if let Some(spec) = embedding_model {
        let loaded = tokio::task::spawn_blocking(move || {
            app::engine::lazy_embedder(&spec, &embed_cache, allow_pull, embed_threads)
        });
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
    let serving = state.embedder().map(|embedder| embedder.embedding_info().clone());
    if let Err(error) =
        app::gateway::check_scorer_embedding(scorer.as_ref(), &scorer_setting, &data_dir, serving.as_ref())
    {
        let _ = stop_tx.send(());
        let _ = server.await;
        return Err(error);
    }
    if let (Some(_), Some(embedder)) = (scorer.embedding(), state.embedder().cloned()) {
        // Every request the router scores needs the embedding model: load its weights now, not
        // on the first request.
        tokio::task::spawn_blocking(move || {
            if let Err(error) = embedder.embed(&["warm up".to_owned()]) {
                tracing::warn!(%error, "the embedding model failed to load; routing falls back to the transparent score");
            }
        });
    }
    let tiers = app::gateway::build_tiers(&clouds)?;
    let gateway = app::gateway::build_gateway(models, tiers, gateway_config, scorer)?;
    if let Some(judge) = injection_judge.filter(|judge| !edgeway_core::Backend::serves(&gateway, judge)) {
        let _ = stop_tx.send(());
        let _ = server.await;
        anyhow::bail!(
            "--injection-judge {judge}: this server does not run that model; serve it too (add it with -m or in [[models]]), \
             or name one it serves: {}",
            edgeway_core::Backend::model_ids(&gateway).join(", ")
        );
    }
    if let Some(fleet) = &fleet {
        let serving_embedding =
            serving.map(|info| edgeway_policy::EmbeddingSpec { model: info.id.clone(), dims: info.dims });
        let dashboard = app::fleet::Dashboard { state: state.clone(), has_cloud: !clouds.is_empty() };
        let applier = app::fleet::Applier::new(&scorer_setting, serving_embedding, gateway.routing(), Some(dashboard));
        app::fleet::follow(fleet, &data_dir, applier, ship_stats);
    }
    state.set_backend(Arc::new(gateway));
    tracing::info!("ready: POST http://{address}/v1/chat/completions");
    server.await.context("the server task failed")?.context("the server stopped with an error")?;
    tracing::info!("shut down");
    Ok(())
}

/// Connections the kernel may hold for the server before it accepts them. tokio's `bind` asks for
/// 1,024; a burst of connections beyond the queue has its SYNs dropped, and each dropped one costs
/// its client a second. The kernel caps it at `net.core.somaxconn` (4,096 by default).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `address` (a host name or IP, and a port) with [`LISTEN_BACKLOG`].
async fn bind(address: &str) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for resolved in tokio::net::lookup_host(address).await? {
        let socket =
            if resolved.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(resolved).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error
        .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "the address resolves to nothing")))
}

/// Raises the soft limit on open files to the hard limit, as servers do: every connection is a
/// descriptor, and the common soft default (1024) is below the connection cap.
fn raise_fd_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::info!(open_files = limit, "raised the open-file limit");
            // Model files, the log, sockets to the cloud: room beside the client connections.
            if (limit as usize) < max_connections + 64 {
                tracing::warn!(
                    open_files = limit,
                    max_connections,
                    "the open-file limit is below [server] max_connections plus room for the server's own files; \
                     raise it (ulimit -n) or lower max_connections"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}
