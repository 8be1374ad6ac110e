//! The router and what it routes between: the model set (the local models), the tiers (the
//! remote backends), and the complexity scorer that picks between them.
//!
//! One local model is the engine itself, loaded at start (nothing between the router and
//! it); several are a [`ModelPool`] that loads each on first use within the memory budget.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use edgeway_core::{Backend, ModelInfo};
use edgeway_engine::{EngineConfig, LlamaEngine};
use edgeway_gateway::{Gateway, GatewayConfig, Member, Tiers};
use edgeway_models::gguf_info::GgufInfo;
use edgeway_models::ModelCache;
use edgeway_policy::{ComplexityScorer, EmbeddingSpec};
use edgeway_pool::{ModelPool, ModelSpec};
use edgeway_upstream::CloudBackend;

use super::DataDir;
use crate::config::{CloudTier, ScorerSetting, ServeSettings};

/// The models served on this machine, each with its tier and the domains it specialises in.
pub struct ModelSet {
    /// Every local model as the router sees it: backend, tier, domains.
    pub members: Vec<(Arc<dyn Backend>, u32, Vec<String>)>,
    /// The pool behind them, when there are several (none for one model, loaded and held).
    pub pool: Option<Arc<ModelPool>>,
}

impl ModelSet {
    /// Loads the pinned models of a pool (one model is loaded already). Waits for each.
    pub async fn load_pinned(&self) -> anyhow::Result<()> {
        if let Some(pool) = &self.pool {
            pool.load_pinned().await.context("cannot load a pinned model")?;
        }
        Ok(())
    }
}

/// The remote tiers requests may be routed to: each cloud on its tier, in the order tried.
pub struct Clouds {
    /// The OpenAI-compatible upstreams and their tiers.
    pub clouds: Vec<(Arc<dyn Backend>, u32)>,
}

/// Resolves (pulling if needed) the local models and loads the one, or builds the pool of
/// several (loading nothing yet: see [`ModelSet::load_pinned`]). Blocks: run it on a blocking
/// thread inside a runtime.
pub fn load_models(
    settings: &ServeSettings,
    cache: &ModelCache,
    allow_pull: bool,
    model_id: String,
) -> anyhow::Result<ModelSet> {
    if let [model] = settings.models.as_slice() {
        let engine: Arc<dyn Backend> = super::engine::load_engine(settings, cache, allow_pull, model_id)?;
        return Ok(ModelSet { members: vec![(engine, model.tier, model.domains.clone())], pool: None });
    }
    let mut specs = Vec::new();
    let mut configs = HashMap::new();
    for model in &settings.models {
        let path = super::engine::model_file(&model.model, cache, allow_pull)
            .with_context(|| format!("model \"{}\"", model.model))?;
        let name = model.name.clone().unwrap_or_else(|| edgeway_models::resolve::served_id(&model.model));
        let config = model.engine.engine_config(path, name.clone());
        let spec = model_spec(&config).with_context(|| format!("cannot read {}", config.model_path.display()))?;
        let keep_alive = match &model.keep_alive {
            Some(value) => crate::config::keep_alive(value).with_context(|| format!("model \"{name}\""))?,
            None => settings.pool.keep_alive,
        };
        let spec = spec.with_keep_alive(keep_alive);
        specs.push(if model.pinned { spec.pinned() } else { spec });
        configs.insert(name, config);
    }
    let loader = move |spec: &ModelSpec| -> Result<Arc<dyn Backend>, String> {
        let config = configs.get(&spec.name).ok_or_else(|| format!("no engine settings for {}", spec.name))?;
        let engine = LlamaEngine::load(config.clone()).map_err(|error| format!("{error:#}"))?;
        Ok(Arc::new(engine))
    };
    let pool = Arc::new(ModelPool::new(specs, settings.pool.config, loader)?);
    for spec in pool.specs() {
        tracing::info!(model = %spec.name, estimated_mb = spec.estimated_bytes / 1_000_000, "model configured; it loads on first use");
    }
    let members = settings
        .models
        .iter()
        .zip(pool.models_in_order())
        .map(|(model, pooled)| (pooled.clone() as Arc<dyn Backend>, model.tier, model.domains.clone()))
        .collect();
    Ok(ModelSet { members, pool: Some(pool) })
}

/// What the pool knows of a model before loading it: its facts from the GGUF's metadata and
/// the memory it will hold with this engine configuration.
fn model_spec(config: &EngineConfig) -> anyhow::Result<ModelSpec> {
    let gguf = GgufInfo::read(&config.model_path)?;
    let size_bytes = std::fs::metadata(&config.model_path)?.len();
    let estimate = edgeway_pool::estimate_from_info(&gguf, size_bytes, config.ctx_size, config.parallel);
    let info = ModelInfo {
        id: config.model_id.clone(),
        path: Some(config.model_path.display().to_string()),
        n_ctx_slot: config.ctx_size / config.parallel.max(1),
        n_ctx_train: gguf.context_length.unwrap_or(0),
        n_params: gguf.n_params,
        size_bytes,
        parallel: config.parallel,
        price_input_per_mtok: 0.0,
        price_output_per_mtok: 0.0,
    };
    Ok(ModelSpec::new(info, estimate.total()))
}

/// The configured clouds, each on its tier.
pub fn build_tiers(clouds: &[CloudTier]) -> anyhow::Result<Clouds> {
    let mut built = Vec::new();
    for cloud in clouds {
        let config = &cloud.config;
        tracing::info!(name = %config.name, url = %config.base_url, model = %config.model, tier = cloud.tier, "cloud tier configured");
        let backend: Arc<dyn Backend> = Arc::new(CloudBackend::new(config.clone())?);
        built.push((backend, cloud.tier));
    }
    if built.is_empty() {
        tracing::info!("no cloud tier: every request is answered at the edge");
    }
    Ok(Clouds { clouds: built })
}

/// The complexity scorer, loading the learned or embedding one's file (by default in the data directory).
pub fn build_scorer(setting: &ScorerSetting, data_dir: &DataDir) -> anyhow::Result<Arc<dyn ComplexityScorer>> {
    Ok(match setting {
        ScorerSetting::Shipped => {
            let scorer = crate::shipped::scorer()?;
            tracing::info!(
                trained_on = %scorer.model().training.run,
                "shipped scorer loaded (calibrated on the default traffic mix; `edgeway calibrate` replaces it)"
            );
            Arc::new(scorer)
        }
        ScorerSetting::Transparent => Arc::new(edgeway_policy::TransparentScorer),
        ScorerSetting::Learned(path) => {
            let path = path.clone().unwrap_or_else(|| data_dir.learned_scorer());
            let scorer = edgeway_policy::LearnedScorer::load(&path)?;
            tracing::info!(path = %path.display(), trained_on = %scorer.model().training.run, "learned scorer loaded");
            Arc::new(scorer)
        }
        ScorerSetting::Embedding(path) => {
            let path = embedding_scorer_path(path.as_deref(), data_dir);
            let scorer = edgeway_policy::EmbeddingScorer::load(&path)?;
            let model = scorer.model();
            tracing::info!(
                path = %path.display(),
                trained_on = %model.training.run,
                classifier = %model.classifier.describe(),
                embedding = %model.embedding.model,
                "embedding scorer loaded"
            );
            Arc::new(scorer)
        }
    })
}

/// The embedding scorer's file: the configured one, else the data directory's.
fn embedding_scorer_path(configured: Option<&Path>, data_dir: &DataDir) -> PathBuf {
    configured.map_or_else(|| data_dir.embedding_scorer(), Path::to_path_buf)
}

/// Checks that a scorer reading embeddings gets the ones it was trained on: the same
/// embedding model as `serving` (the server's, `None` when it has none). A different model is
/// an error; none at all is a warning (every request is then routed on the transparent score).
pub fn check_scorer_embedding(
    scorer: &dyn ComplexityScorer,
    setting: &ScorerSetting,
    data_dir: &DataDir,
    serving: Option<&edgeway_core::EmbeddingInfo>,
) -> anyhow::Result<()> {
    let (Some(trained), ScorerSetting::Embedding(path)) = (scorer.embedding(), setting) else {
        return Ok(());
    };
    match serving {
        Some(info) => {
            let serving = EmbeddingSpec { model: info.id.clone(), dims: info.dims };
            edgeway_policy::embedding::check_embedding(
                &embedding_scorer_path(path.as_deref(), data_dir),
                trained,
                &serving,
            )?;
        }
        None => tracing::warn!(
            embedding = %trained.model,
            "the embedding scorer has no embedding model to read (embeddings are off or it failed to load): \
             every request is routed on the transparent score"
        ),
    }
    Ok(())
}

/// The router over the model set and the clouds.
pub fn build_gateway(
    models: ModelSet,
    clouds: Clouds,
    config: GatewayConfig,
    scorer: Arc<dyn ComplexityScorer>,
) -> anyhow::Result<Gateway> {
    let mut members: Vec<Member> = models
        .members
        .into_iter()
        .map(|(backend, tier, domains)| Member::local(backend, tier).for_domains(domains))
        .collect();
    members.extend(clouds.clouds.into_iter().map(|(backend, tier)| Member::cloud(backend, tier)));
    Ok(Gateway::with_tiers(Tiers::new(members)?, scorer, config))
}
