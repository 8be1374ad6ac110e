//! The router and what it routes between: the model set (the local models), the tiers (the
//! remote backends), and the complexity scorer that picks between them.
//!
//! Today the model set is one engine and the tiers are at most one cloud; each has its own
//! builder so that either can grow on its own.

use std::sync::Arc;

use edgeway_core::Backend;
use edgeway_engine::LlamaEngine;
use edgeway_gateway::{Gateway, GatewayConfig, Member, Tiers};
use edgeway_models::ModelCache;
use edgeway_policy::ComplexityScorer;
use edgeway_upstream::CloudBackend;

use super::DataDir;
use crate::config::{CloudTier, ScorerSetting, ServeSettings};

/// The models served on this machine.
pub struct ModelSet {
    /// The generative engine.
    pub engine: Arc<LlamaEngine>,
}

/// The remote tiers requests may be routed to: each cloud on its tier, in the order tried.
pub struct Clouds {
    /// The OpenAI-compatible upstreams and their tiers.
    pub clouds: Vec<(Arc<dyn Backend>, u32)>,
}

/// Resolves (pulling if needed) and loads the local models. Blocks: run it on a blocking thread
/// inside a runtime.
pub fn load_models(
    settings: &ServeSettings,
    cache: &ModelCache,
    allow_pull: bool,
    model_id: String,
) -> anyhow::Result<ModelSet> {
    Ok(ModelSet { engine: super::engine::load_engine(settings, cache, allow_pull, model_id)? })
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

/// The complexity scorer, loading the learned one's file (by default in the data directory).
pub fn build_scorer(setting: &ScorerSetting, data_dir: &DataDir) -> anyhow::Result<Arc<dyn ComplexityScorer>> {
    Ok(match setting {
        ScorerSetting::Transparent => Arc::new(edgeway_policy::TransparentScorer),
        ScorerSetting::Learned(path) => {
            let path = path.clone().unwrap_or_else(|| data_dir.learned_scorer());
            let scorer = edgeway_policy::LearnedScorer::load(&path)?;
            tracing::info!(path = %path.display(), trained_on = %scorer.model().training.run, "learned scorer loaded");
            Arc::new(scorer)
        }
    })
}

/// The router over the model set and the clouds.
pub fn build_gateway(
    models: ModelSet,
    clouds: Clouds,
    config: GatewayConfig,
    scorer: Arc<dyn ComplexityScorer>,
) -> anyhow::Result<Gateway> {
    let mut members = vec![Member::local(models.engine, 0)];
    members.extend(clouds.clouds.into_iter().map(|(backend, tier)| Member::cloud(backend, tier)));
    Ok(Gateway::with_tiers(Tiers::new(members)?, scorer, config))
}
