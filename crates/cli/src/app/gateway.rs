//! The router and what it routes between: the model set (the local models), the tiers (the
//! remote backends), and the complexity scorer that picks between them.
//!
//! Today the model set is one engine and the tiers are at most one cloud; each has its own
//! builder so that either can grow on its own.

use std::sync::Arc;

use edgeway_core::Backend;
use edgeway_engine::LlamaEngine;
use edgeway_gateway::{Gateway, GatewayConfig};
use edgeway_models::ModelCache;
use edgeway_policy::ComplexityScorer;
use edgeway_upstream::{CloudBackend, UpstreamConfig};

use super::DataDir;
use crate::config::{ScorerSetting, ServeSettings};

/// The models served on this machine.
pub struct ModelSet {
    /// The generative engine.
    pub engine: Arc<LlamaEngine>,
}

/// The remote tiers requests may be routed to.
pub struct Tiers {
    /// The OpenAI-compatible cloud tier, if one is configured.
    pub cloud: Option<Arc<dyn Backend>>,
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

/// The configured remote tiers.
pub fn build_tiers(cloud: Option<UpstreamConfig>) -> anyhow::Result<Tiers> {
    let cloud: Option<Arc<dyn Backend>> = match cloud {
        Some(config) => {
            tracing::info!(name = %config.name, url = %config.base_url, model = %config.model, "cloud tier configured");
            Some(Arc::new(CloudBackend::new(config)?))
        }
        None => {
            tracing::info!("no cloud tier: every request is answered at the edge");
            None
        }
    };
    Ok(Tiers { cloud })
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

/// The router over the model set and the tiers.
pub fn build_gateway(
    models: ModelSet,
    tiers: Tiers,
    config: GatewayConfig,
    scorer: Arc<dyn ComplexityScorer>,
) -> Gateway {
    Gateway::new(models.engine, tiers.cloud, scorer, config)
}
