//! The config file (`edgeway.toml`) and how it merges with flags.
//!
//! ```toml
//! [server]
//! host = "127.0.0.1"
//! port = 8080
//!
//! [engine]
//! model = "smollm2-135m"   # or a path to a .gguf file
//! threads = 2
//! ctx_size = 4096
//! parallel = 2
//! queue_size = 32
//! ```
//!
//! Several local models and clouds, on tiers (lower tiers are tried first):
//!
//! ```toml
//! [[models]]
//! name = "smollm2-135m"      # what clients put in `model` [default: from the file name]
//! model = "smollm2-135m"     # a catalog name or a .gguf path
//! tier = 0
//! [[models]]
//! name = "qwen2.5-0.5b"
//! model = "qwen2.5-0.5b"
//! tier = 1
//! domains = ["code"]         # the specialist for these domains
//! keep_alive = "10m"         # Ollama's forms: "5m", seconds, 0, -1 (forever)
//!
//! [[cloud]]                  # tried in order, on the tiers after the local ones
//! base_url = "https://api.example.com/v1"
//! model = "big"
//! ```
//!
//! Unknown keys are an error, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::cli::ServeArgs;

/// The file looked for when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "edgeway.toml";

/// `edgeway.toml` as written.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where models and state are kept.
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub engine: EngineSection,
    /// `[[models]]`: several local models (else the one of `[engine]`).
    #[serde(default)]
    pub models: Vec<ModelSection>,
    /// `[pool]`: how several `[[models]]` share memory.
    #[serde(default)]
    pub pool: PoolSection,
    /// `[cloud]` (one) or `[[cloud]]` (several, tried in order): the cloud tiers.
    #[serde(default, deserialize_with = "one_or_many")]
    pub cloud: Vec<CloudSection>,
    #[serde(default)]
    pub routing: RoutingSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub embeddings: EmbeddingsSection,
    #[serde(default)]
    pub rag: RagSection,
    /// `[fleet]`: ship the query log to a central PostgreSQL.
    pub fleet: Option<FleetSection>,
}

/// `[fleet]`: where the box ships its query log, and as whom.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// The center's PostgreSQL URL (`postgres://edgeway_box@center:5432/fleet`).
    pub url: Option<String>,
    /// The environment variable holding the URL instead (it carries a password).
    pub url_env: Option<String>,
    /// This box's id, unique in the fleet [default: the host name].
    pub box_id: Option<String>,
    /// A site label: a store, a plant, a vehicle.
    pub site: Option<String>,
    /// Seconds between shipments [default: 5].
    pub ship_every_secs: Option<f64>,
    /// Most rows in one shipment [default: 500].
    pub batch_rows: Option<usize>,
    /// Ship prompt and answer text too, when the box logs it [default: false].
    pub ship_text: Option<bool>,
    /// Shipped rows kept in the local log; older ones are pruned [default: 1000000].
    pub keep_local_rows: Option<u64>,
    /// Seconds between looks for a newer fleet config at the center [default: 30].
    pub config_every_secs: Option<f64>,
    /// A PEM file of the private certificate authority that signed the center's certificate
    /// (public ones are trusted without it). TLS follows the URL's `sslmode`.
    pub ca_file: Option<PathBuf>,
}

/// A box of a fleet: how it ships its log and follows the center's config.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// Shipping the query log.
    pub ship: edgeway_fleet::ShipConfig,
    /// How often to look for a newer config.
    pub config_every: std::time::Duration,
}

impl FleetSection {
    /// The box's fleet settings.
    pub fn settings(&self) -> anyhow::Result<FleetSettings> {
        let config_every = match self.config_every_secs {
            Some(secs) => {
                anyhow::ensure!(secs > 0.0 && secs.is_finite(), "[fleet] config_every_secs must be a positive number");
                std::time::Duration::from_secs_f64(secs)
            }
            None => std::time::Duration::from_secs(30),
        };
        Ok(FleetSettings { ship: self.ship_config()?, config_every })
    }

    /// The shipper's configuration.
    fn ship_config(&self) -> anyhow::Result<edgeway_fleet::ShipConfig> {
        let url = match (&self.url, &self.url_env) {
            (Some(url), None) => url.clone(),
            (None, Some(var)) => {
                std::env::var(var).with_context(|| format!("[fleet] url_env names ${var}, which is not set"))?
            }
            (Some(_), Some(_)) => anyhow::bail!("[fleet] takes url or url_env, not both"),
            (None, None) => anyhow::bail!("[fleet] needs url (or url_env): the center's PostgreSQL URL"),
        };
        let box_id = match &self.box_id {
            Some(id) => id.clone(),
            None => std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .context("[fleet] box_id is not set and the host name cannot be read")?,
        };
        anyhow::ensure!(!box_id.trim().is_empty(), "[fleet] box_id must not be empty");
        let mut config = edgeway_fleet::ShipConfig::new(url, box_id);
        config.site = self.site.clone();
        if let Some(secs) = self.ship_every_secs {
            anyhow::ensure!(secs > 0.0 && secs.is_finite(), "[fleet] ship_every_secs must be a positive number");
            config.every = std::time::Duration::from_secs_f64(secs);
        }
        if let Some(rows) = self.batch_rows {
            anyhow::ensure!((1..=100_000).contains(&rows), "[fleet] batch_rows must be between 1 and 100000");
            config.batch_rows = rows;
        }
        config.ship_text = self.ship_text.unwrap_or(false);
        config.ca_file = self.ca_file.clone();
        if let Some(keep) = self.keep_local_rows {
            config.keep_local_rows = Some(keep);
        }
        Ok(config)
    }
}

/// `[rag]`: retrieval in the chat path.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RagSection {
    /// The collection chats retrieve from when they name none [default: none, no retrieval].
    pub collection: Option<String>,
    /// Passages to retrieve [default: 4].
    pub top_k: Option<usize>,
    /// Passages less similar than this to the question are left out [default: 0.25].
    pub min_score: Option<f32>,
    /// The knowledge base file [default: DATA_DIR/knowledge.db].
    pub knowledge_path: Option<PathBuf>,
}

/// `[embeddings]`: the embedding model behind `/v1/embeddings` and retrieval.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsSection {
    /// A catalog name (converted on first use) or a .gguf path [default: all-minilm-l6-v2].
    pub model: Option<String>,
    /// Load an embedding model at all [default: true].
    pub enabled: Option<bool>,
}

/// `[log]`: the query log.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// The SQLite file [default: DATA_DIR/queries.db].
    pub path: Option<PathBuf>,
    /// Keep prompt and answer text for calibration [default: true]. It never leaves the device.
    pub store_text: Option<bool>,
}

/// `[[models]]`: one local model of several, with its tier and, optionally, its own engine settings
/// (each laid over `[engine]`'s and the flags').
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// What clients put in `model` [default: the catalog name, or the file's stem].
    pub name: Option<String>,
    /// A catalog name or a .gguf path.
    pub model: String,
    /// Lower tiers are tried first [default: 0].
    pub tier: Option<u32>,
    /// The domains this model is the specialist for (empty: a generalist).
    #[serde(default)]
    pub domains: Vec<String>,
    /// How long it stays loaded after its last request: Ollama's forms ("5m", seconds, 0, -1).
    pub keep_alive: Option<KeepAliveValue>,
    /// Loaded at start and never unloaded [default: false].
    pub pinned: Option<bool>,
    pub threads: Option<u32>,
    pub threads_batch: Option<u32>,
    pub ctx_size: Option<u32>,
    pub parallel: Option<u32>,
    pub batch_size: Option<u32>,
    pub ubatch_size: Option<u32>,
    pub prefill_chunk: Option<u32>,
    pub queue_size: Option<u32>,
    pub swa_full: Option<bool>,
    pub mmap: Option<bool>,
}

/// `[pool]`: how several `[[models]]` share memory and cores (flags win).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    /// Most models in memory at once (`--max-loaded-models`).
    pub max_loaded_models: Option<usize>,
    /// Most memory the loaded models may hold together, in MB (`--memory-budget-mb`).
    pub memory_budget_mb: Option<u64>,
    /// The default keep-alive (`--keep-alive`) [default: 5m].
    pub keep_alive: Option<KeepAliveValue>,
    /// Longest a request waits for its model to load and its turn, in seconds [default: 120].
    pub load_wait_secs: Option<f64>,
    /// Models that may generate at the same time [default: 1: the cores are shared].
    pub concurrent_models: Option<usize>,
}

/// How several local models share the machine, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// The pool's limits and waits.
    pub config: edgeway_pool::PoolConfig,
    /// How long a model stays loaded after a request unless it or the request says otherwise.
    pub keep_alive: edgeway_core::KeepAlive,
}

/// Parses a keep-alive in Ollama's forms.
pub fn keep_alive(value: &KeepAliveValue) -> anyhow::Result<edgeway_core::KeepAlive> {
    match value {
        KeepAliveValue::Seconds(seconds) => edgeway_core::KeepAlive::from_seconds(*seconds),
        KeepAliveValue::Text(text) => edgeway_core::KeepAlive::parse(text),
    }
    .map_err(|error| anyhow::anyhow!("invalid keep_alive: {error}"))
}

fn merge_pool(args: &ServeArgs, file: PoolSection) -> anyhow::Result<PoolSettings> {
    let mut config = edgeway_pool::PoolConfig {
        max_loaded: args.max_loaded_models.or(file.max_loaded_models),
        memory_budget_bytes: args.memory_budget_mb.or(file.memory_budget_mb).map(|mb| mb.saturating_mul(1_000_000)),
        ..edgeway_pool::PoolConfig::default()
    };
    anyhow::ensure!(config.max_loaded != Some(0), "--max-loaded-models must be at least 1");
    anyhow::ensure!(config.memory_budget_bytes != Some(0), "--memory-budget-mb must be more than 0");
    if let Some(seconds) = file.load_wait_secs {
        anyhow::ensure!(seconds > 0.0 && seconds.is_finite(), "load_wait_secs must be a positive number of seconds");
        config.load_wait = std::time::Duration::from_secs_f64(seconds);
    }
    if let Some(models) = file.concurrent_models {
        anyhow::ensure!(models >= 1, "concurrent_models must be at least 1");
        config.concurrent_models = models;
    }
    let keep_alive = match (&args.keep_alive, &file.keep_alive) {
        (Some(text), _) => keep_alive(&KeepAliveValue::Text(text.clone())).context("--keep-alive")?,
        (None, Some(value)) => keep_alive(value).context("[pool] keep_alive")?,
        (None, None) => edgeway_core::KeepAlive::OLLAMA_DEFAULT,
    };
    Ok(PoolSettings { config, keep_alive })
}

/// A `keep_alive` as written: a duration string ("5m", "1h30m", "-1") or a number of seconds.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum KeepAliveValue {
    /// Seconds; negative is forever, 0 unloads right after the answer.
    Seconds(f64),
    /// A duration string.
    Text(String),
}

/// `[cloud]` as one table or `[[cloud]]` as a list, read through `toml::Value` so that a
/// mistake in either form gets the field-level error rather than "no variant matched".
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<CloudSection>, D::Error> {
    use serde::de::Error;
    match toml::Value::deserialize(deserializer)? {
        toml::Value::Array(items) => {
            items.into_iter().map(|item| CloudSection::deserialize(item).map_err(D::Error::custom)).collect()
        }
        table => Ok(vec![CloudSection::deserialize(table).map_err(D::Error::custom)?]),
    }
}

/// `[cloud]`: an OpenAI-compatible upstream.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CloudSection {
    pub name: Option<String>,
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// The environment variable holding the API key (the key itself never goes in the file).
    pub api_key_env: Option<String>,
    pub price_input_per_mtok: Option<f64>,
    pub price_output_per_mtok: Option<f64>,
    pub timeout_secs: Option<f64>,
    /// Its tier [default: the next after the local models and the clouds before it].
    pub tier: Option<u32>,
}

/// `[routing]`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoutingSection {
    /// Threshold for domains without their own.
    pub threshold: Option<f32>,
    /// Per-domain thresholds, e.g. `code = 0.35`.
    #[serde(default)]
    pub thresholds: std::collections::BTreeMap<String, f32>,
    /// Score thresholds that start a request at a tier above the first, e.g. `1 = 0.3`
    /// (the first cloud's is `threshold` unless set here).
    #[serde(default)]
    pub tier_thresholds: std::collections::BTreeMap<String, f32>,
    /// Seconds a failing cloud is left alone.
    pub cooldown_secs: Option<f64>,
    /// Confidence escalation: escalate edge answers whose first tokens' mean log-probability is below this.
    pub escalate_below_logprob: Option<f32>,
    /// Tokens probed before deciding [default: 16].
    pub escalate_probe_tokens: Option<u32>,
    /// Watts the edge may draw (averaged over 10 s) before auto-routed work is moved.
    pub power_budget_watts: Option<f64>,
    /// `cloud` (default) or `queue`: what happens to edge work over the budget.
    pub power_budget_action: Option<String>,
    /// Extra attempts at a failing cloud before the edge steps in [default: 1].
    pub cloud_retries: Option<u32>,
    /// Where structured-output requests go: `auto` (scored, default), `edge` or `cloud`.
    pub structured: Option<String>,
    /// Where requests that offer tools go: `auto` (scored, default), `edge` or `cloud`.
    pub tools: Option<String>,
    /// A cloud answer to a structured request in the wrong shape: `fallback` (default), `error` or `pass`.
    pub invalid_cloud_answer: Option<String>,
    /// Domain rules, checked in order, replacing the shipped ones when given.
    #[serde(default)]
    pub domains: Vec<DomainSection>,
    /// `shipped` (default, unless a threshold is set: then `transparent`), `transparent`, `learned`
    /// (hashed words) or `embedding` (the query's sentence embedding): which complexity scorer routes.
    pub scorer: Option<String>,
    /// The learned or embedding scorer's file [default: DATA_DIR/scorer.json, DATA_DIR/embedding-scorer.json].
    pub scorer_path: Option<PathBuf>,
    /// Where the thresholds came from, written by `edgeway calibrate` (the dashboard shows it).
    pub calibration: Option<CalibrationSection>,
}

/// `[routing.calibration]`: the calibration that chose the thresholds.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CalibrationSection {
    /// When (RFC 3339, UTC).
    pub at: Option<String>,
    /// The evaluation run whose graded answers it used.
    pub run: Option<String>,
    /// Graded items it used.
    pub items: Option<u64>,
    /// The share of cloud-only quality it aimed for.
    pub target: Option<f64>,
    /// The curve it drew.
    pub plot: Option<PathBuf>,
}

/// Which complexity scorer routes requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ScorerSetting {
    /// The learned scorer shipped inside edgeway, with its thresholds ([`crate::shipped`]): the
    /// default until the config names a scorer or a threshold.
    #[default]
    Shipped,
    /// The feature-weighted scorer: no training, explainable features.
    Transparent,
    /// The scorer `edgeway calibrate` trained, from this file (`None`: DATA_DIR/scorer.json).
    Learned(Option<PathBuf>),
    /// The scorer over the query's sentence embedding that `edgeway calibrate --scorer embedding`
    /// trained, from this file (`None`: DATA_DIR/embedding-scorer.json). It needs the embedding model.
    Embedding(Option<PathBuf>),
}

impl ScorerSetting {
    /// The config's name for it (`scorer = "…"`).
    pub fn name(&self) -> &'static str {
        match self {
            ScorerSetting::Shipped => "shipped",
            ScorerSetting::Transparent => "transparent",
            ScorerSetting::Learned(_) => "learned",
            ScorerSetting::Embedding(_) => "embedding",
        }
    }
}

/// `[[routing.domains]]`: one domain and how to recognise it.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DomainSection {
    pub name: String,
    /// Words or phrases (case-insensitive); any one matches.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// A regex over the lowercase text; a match also names the domain.
    pub pattern: Option<String>,
    /// This domain's threshold.
    pub threshold: Option<f32>,
    /// This domain's thresholds per tier, e.g. `{ 1 = 0.2 }`.
    #[serde(default)]
    pub tier_thresholds: std::collections::BTreeMap<String, f32>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Open connections in all (nginx's `limit_conn` for the server).
    pub max_connections: Option<usize>,
    /// Open connections from one client address.
    pub max_connections_per_client: Option<usize>,
    /// Seconds for a request header to arrive (nginx's `client_header_timeout`).
    pub header_timeout_secs: Option<f64>,
    /// Seconds an idle connection waits for its next request (nginx's `keepalive_timeout`).
    pub keepalive_timeout_secs: Option<f64>,
    /// Longest pause, in seconds, while a request body arrives (nginx's `client_body_timeout`).
    pub body_timeout_secs: Option<f64>,
    /// Seconds a write may wait on a client that stopped reading (nginx's `send_timeout`).
    pub send_timeout_secs: Option<f64>,
    /// The kernel's send buffer per connection, in bytes (nginx's `listen … sndbuf=`).
    pub send_buffer_bytes: Option<usize>,
}

/// `[server]`'s connection limits over the defaults.
fn merge_connections(file: &ServerSection) -> anyhow::Result<edgeway_server::ConnectionLimits> {
    let defaults = edgeway_server::ConnectionLimits::default();
    let seconds = |value: Option<f64>, name: &str, default: std::time::Duration| match value {
        None => Ok(default),
        Some(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => {
            Ok(std::time::Duration::from_secs_f64(secs))
        }
        Some(secs) => anyhow::bail!("[server] {name} must be between 0 and 86400 seconds, got {secs}"),
    };
    let count = |value: Option<usize>, name: &str, default: usize| match value {
        None => Ok(default),
        Some(0) => anyhow::bail!("[server] {name} must be at least 1"),
        Some(n) => Ok(n),
    };
    Ok(edgeway_server::ConnectionLimits {
        max_connections: count(file.max_connections, "max_connections", defaults.max_connections)?,
        max_per_client: count(file.max_connections_per_client, "max_connections_per_client", defaults.max_per_client)?,
        header_timeout: seconds(file.header_timeout_secs, "header_timeout_secs", defaults.header_timeout)?,
        keepalive_timeout: seconds(file.keepalive_timeout_secs, "keepalive_timeout_secs", defaults.keepalive_timeout)?,
        body_timeout: seconds(file.body_timeout_secs, "body_timeout_secs", defaults.body_timeout)?,
        send_timeout: seconds(file.send_timeout_secs, "send_timeout_secs", defaults.send_timeout)?,
        send_buffer: match file.send_buffer_bytes {
            Some(bytes) if bytes < 4096 => anyhow::bail!("[server] send_buffer_bytes must be at least 4096"),
            other => other,
        },
    })
}

/// `[engine]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    pub model: Option<String>,
    pub alias: Option<String>,
    pub threads: Option<u32>,
    pub threads_batch: Option<u32>,
    pub ctx_size: Option<u32>,
    pub parallel: Option<u32>,
    pub batch_size: Option<u32>,
    pub ubatch_size: Option<u32>,
    pub prefill_chunk: Option<u32>,
    pub queue_size: Option<u32>,
    pub swa_full: Option<bool>,
    pub mmap: Option<bool>,
    pub stream_interval_ms: Option<u64>,
    pub watts_per_core: Option<f64>,
}

impl FileConfig {
    /// Reads `path`, or `./edgeway.toml` if it exists, or nothing.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let path = match path {
            Some(path) => path.to_path_buf(),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => PathBuf::from(DEFAULT_CONFIG_FILE),
            None => return Ok(Self::default()),
        };
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// Everything `serve` needs, after merging flags, environment and file.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub host: String,
    pub port: u16,
    /// How many connections, and how long each may stall (`[server]`).
    pub connections: edgeway_server::ConnectionLimits,
    pub model: String,
    pub alias: Option<String>,
    /// Engine settings, flags already laid over the file's `[engine]`.
    pub engine: EngineSection,
    /// The local models: `[[models]]`, else the one of `--model` / `[engine]`, on tier 0 and pinned.
    pub models: Vec<LocalModel>,
    /// The clouds, in the order they are tried, each on its tier.
    pub clouds: Vec<CloudTier>,
    /// How several local models share memory and cores.
    pub pool: PoolSettings,
    /// The first cloud, when a base URL is configured (what one-cloud commands such as `eval` use).
    pub cloud: Option<edgeway_upstream::UpstreamConfig>,
    /// How requests are routed.
    pub gateway: edgeway_gateway::GatewayConfig,
    /// The query log file, if not the default.
    pub log_path: Option<PathBuf>,
    /// Whether the log keeps prompt and answer text.
    pub log_text: bool,
    /// The complexity scorer.
    pub scorer: ScorerSetting,
    /// The embedding model (a catalog name or a path), unless embeddings are off.
    pub embedding_model: Option<String>,
    /// Whether the embedding model was asked for (flag or file) rather than the default: a
    /// default that cannot be loaded (offline, first run) is skipped with a warning instead.
    pub embedding_required: bool,
    /// Retrieval settings.
    pub rag: edgeway_server::rag::RagSettings,
    /// The knowledge base file, if not the default.
    pub knowledge_path: Option<PathBuf>,
    /// A fixed API key (`--api-key`).
    pub api_key: Option<String>,
    /// Listen on a public address without keys (`--insecure`).
    pub insecure: bool,
    /// The model-extraction detector's settings.
    pub extraction: edgeway_guard::extraction::ExtractionConfig,
    /// What happens to text the injection screen flags.
    pub injection_action: edgeway_guard::injection::InjectionAction,
    /// The local model that judges what the injection screen lets through, and its thresholds.
    pub injection_judge: Option<edgeway_guard::injection::judge::JudgeSettings>,
    /// `[routing.calibration]`, for the dashboard (the shipped routing's when it is in force).
    pub calibration: Option<CalibrationSection>,
    /// Whether the thresholds are the ones edgeway ships with.
    pub shipped_routing: bool,
    /// Shipping the query log to the fleet's center and following its config, when `[fleet]` is set.
    pub fleet: Option<FleetSettings>,
}

/// One local model, resolved: where it sits and how its engine runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalModel {
    /// What clients put in `model`, if not derived from the model's name.
    pub name: Option<String>,
    /// A catalog name or a .gguf path.
    pub model: String,
    /// Its tier.
    pub tier: u32,
    /// The domains it is the specialist for (empty: a generalist).
    pub domains: Vec<String>,
    /// How long it stays loaded after a request, if not the default.
    pub keep_alive: Option<KeepAliveValue>,
    /// Loaded at start and never unloaded.
    pub pinned: bool,
    /// Its engine settings: its own over `[engine]`'s and the flags'.
    pub engine: EngineSection,
}

/// One cloud and its tier.
#[derive(Debug, Clone)]
pub struct CloudTier {
    /// The upstream.
    pub config: edgeway_upstream::UpstreamConfig,
    /// Its tier.
    pub tier: u32,
}

/// `[[models]]` entries over the shared engine settings, or the single model of `[engine]`.
fn merge_models(models: Vec<ModelSection>, engine: &EngineSection, single: &str) -> anyhow::Result<Vec<LocalModel>> {
    if models.is_empty() {
        return Ok(vec![LocalModel {
            name: engine.alias.clone(),
            model: single.to_owned(),
            tier: 0,
            domains: Vec::new(),
            keep_alive: None,
            pinned: true,
            engine: engine.clone(),
        }]);
    }
    anyhow::ensure!(
        engine.model.is_none() && engine.alias.is_none(),
        "the config lists its models in [[models]]: drop --model/--alias and `model`/`alias` in [engine] \
         (a [[models]] entry takes `name` and `model`)"
    );
    let mut names = std::collections::HashSet::new();
    let mut resolved = Vec::new();
    // Models that take turns in memory are mapped by default: a reload then comes from the page
    // cache (measured: read in for huge pages, a cached switch took 2.6× as long as
    // llama-cpp-python's, which maps the file; mapping costs about 2.5 % of generation speed).
    // A pinned model loads once and keeps the engine's default.
    let pooled = models.len() > 1;
    for section in models {
        let mapped_by_default = (pooled && !section.pinned.unwrap_or(false)).then_some(true);
        anyhow::ensure!(!section.model.trim().is_empty(), "a [[models]] entry has an empty `model`");
        let name = section.name.clone().unwrap_or_else(|| edgeway_models::resolve::served_id(&section.model));
        anyhow::ensure!(
            names.insert(name.to_ascii_lowercase()),
            "two [[models]] are named \"{name}\"; give each its own `name`"
        );
        let own = EngineSection {
            model: None,
            alias: None,
            threads: section.threads.or(engine.threads),
            threads_batch: section.threads_batch.or(engine.threads_batch),
            ctx_size: section.ctx_size.or(engine.ctx_size),
            parallel: section.parallel.or(engine.parallel),
            batch_size: section.batch_size.or(engine.batch_size),
            ubatch_size: section.ubatch_size.or(engine.ubatch_size),
            prefill_chunk: section.prefill_chunk.or(engine.prefill_chunk),
            queue_size: section.queue_size.or(engine.queue_size),
            swa_full: section.swa_full.or(engine.swa_full),
            mmap: section.mmap.or(engine.mmap).or(mapped_by_default),
            stream_interval_ms: engine.stream_interval_ms,
            watts_per_core: engine.watts_per_core,
        };
        resolved.push(LocalModel {
            name: Some(name),
            model: section.model,
            tier: section.tier.unwrap_or(0),
            domains: section.domains,
            keep_alive: section.keep_alive,
            pinned: section.pinned.unwrap_or(false),
            engine: own,
        });
    }
    Ok(resolved)
}

/// The clouds from `[cloud]`/`[[cloud]]` (flags apply to the first), on the tiers after `above`.
fn merge_clouds(args: &ServeArgs, sections: Vec<CloudSection>, above: u32) -> anyhow::Result<Vec<CloudTier>> {
    let mut sections = sections.into_iter();
    let first = sections.next().unwrap_or_default();
    let mut clouds = Vec::new();
    let mut next_tier = above + 1;
    let mut push = |config: Option<edgeway_upstream::UpstreamConfig>, tier: Option<u32>| {
        if let Some(config) = config {
            let tier = tier.unwrap_or(next_tier);
            next_tier = tier + 1;
            clouds.push(CloudTier { config, tier });
        }
    };
    let tier = first.tier;
    push(merge_cloud(args, first)?, tier);
    for (index, section) in sections.enumerate() {
        let tier = section.tier;
        anyhow::ensure!(section.base_url.is_some(), "[[cloud]] entry {} has no base_url", index + 2);
        push(merge_cloud(&ServeArgs::default(), section)?, tier);
    }
    Ok(clouds)
}

impl ServeSettings {
    /// Flags (which already include environment variables) win over the file.
    pub fn merge(args: &ServeArgs, file: FileConfig) -> anyhow::Result<Self> {
        let fleet = file.fleet;
        let file_engine = file.engine;
        let engine = EngineSection {
            model: args.edge.model.clone().or(file_engine.model),
            alias: args.alias.clone().or(file_engine.alias),
            threads: args.edge.threads.or(file_engine.threads),
            threads_batch: args.threads_batch.or(file_engine.threads_batch),
            ctx_size: args.edge.ctx_size.or(file_engine.ctx_size),
            parallel: args.parallel.or(file_engine.parallel),
            batch_size: args.batch_size.or(file_engine.batch_size),
            ubatch_size: args.ubatch_size.or(file_engine.ubatch_size),
            prefill_chunk: args.prefill_chunk.or(file_engine.prefill_chunk),
            queue_size: args.queue_size.or(file_engine.queue_size),
            swa_full: args.swa_full.or(file_engine.swa_full),
            mmap: args.mmap.or(file_engine.mmap),
            stream_interval_ms: args.stream_interval_ms.or(file_engine.stream_interval_ms),
            watts_per_core: args.watts_per_core.or(file_engine.watts_per_core),
        };
        let scorer = merge_scorer(args, &file.routing)?;
        let single = engine.model.clone().unwrap_or_else(|| edgeway_models::DEFAULT_MODEL.into());
        let models = merge_models(file.models, &engine, &single)?;
        let top_local = models.iter().map(|m| m.tier).max().unwrap_or(0);
        let clouds = merge_clouds(args, file.cloud, top_local)?;
        let shipped_routing = scorer == ScorerSetting::Shipped && !has_thresholds(args, &file.routing);
        let mut routing = with_shipped_thresholds(args, file.routing, &scorer, !clouds.is_empty())?;
        let calibration = routing.calibration.take();
        Ok(Self {
            connections: merge_connections(&file.server)?,
            host: args.host.clone().or(file.server.host).unwrap_or_else(|| "127.0.0.1".into()),
            port: args.port.or(file.server.port).unwrap_or(8080),
            model: models[0].model.clone(),
            alias: models[0].name.clone(),
            engine,
            cloud: clouds.first().map(|cloud| cloud.config.clone()),
            models,
            clouds,
            pool: merge_pool(args, file.pool)?,
            scorer,
            embedding_required: args.embedding_model.is_some() || file.embeddings.model.is_some(),
            rag: {
                let defaults = edgeway_server::rag::RagSettings::default();
                let settings = edgeway_server::rag::RagSettings {
                    default_collection: args.collection.clone().or(file.rag.collection.clone()),
                    top_k: file.rag.top_k.unwrap_or(defaults.top_k),
                    min_score: file.rag.min_score.unwrap_or(defaults.min_score),
                    answer_reserve: defaults.answer_reserve,
                };
                anyhow::ensure!((1..=32).contains(&settings.top_k), "[rag] top_k must be between 1 and 32");
                settings
            },
            knowledge_path: args.knowledge_path.clone().or(file.rag.knowledge_path.clone()),
            embedding_model: (!args.no_embeddings && file.embeddings.enabled.unwrap_or(true)).then(|| {
                args.embedding_model
                    .clone()
                    .or(file.embeddings.model.clone())
                    .unwrap_or_else(|| edgeway_models::DEFAULT_EMBEDDING_MODEL.to_owned())
            }),
            gateway: merge_routing(args, routing)?,
            log_path: args.log.path.clone().or(file.log.path),
            log_text: !args.no_log_text && file.log.store_text.unwrap_or(true),
            api_key: args.api_key.clone().filter(|key| !key.trim().is_empty()),
            insecure: args.insecure,
            extraction: extraction_config(args)?,
            injection_action: match &args.injection_action {
                Some(action) => {
                    action.parse().map_err(|error: String| anyhow::anyhow!("--injection-action: {error}"))?
                }
                None => edgeway_guard::injection::InjectionAction::Flag,
            },
            injection_judge: injection_judge(args)?,
            calibration,
            shipped_routing,
            fleet: fleet.as_ref().map(FleetSection::settings).transpose()?,
        })
    }

    /// The engine configuration for a resolved model file, with the shared engine settings.
    pub fn engine_config(&self, model_path: PathBuf, model_id: String) -> edgeway_engine::EngineConfig {
        self.engine.engine_config(model_path, model_id)
    }
}

impl EngineSection {
    /// The engine configuration for a resolved model file: these settings over the engine's defaults.
    pub fn engine_config(&self, model_path: PathBuf, model_id: String) -> edgeway_engine::EngineConfig {
        let mut config = edgeway_engine::EngineConfig::new(model_path, model_id);
        if let Some(threads) = self.threads {
            config.threads = threads;
            config.threads_batch = threads;
        }
        let overrides = [
            (self.threads_batch, &mut config.threads_batch),
            (self.ctx_size, &mut config.ctx_size),
            (self.parallel, &mut config.parallel),
            (self.batch_size, &mut config.batch_size),
            (self.ubatch_size, &mut config.ubatch_size),
            (self.prefill_chunk, &mut config.prefill_chunk),
            (self.queue_size, &mut config.queue_size),
        ];
        for (value, field) in overrides {
            if let Some(value) = value {
                *field = value;
            }
        }
        if self.ubatch_size.is_none() {
            // The default micro-batch never exceeds a smaller --batch-size (as in llama.cpp).
            config.ubatch_size = config.ubatch_size.min(config.batch_size);
        }
        if let Some(watts) = self.watts_per_core {
            config.watts_per_core = watts;
        }
        if let Some(swa_full) = self.swa_full {
            config.swa_full = swa_full;
        }
        if let Some(mmap) = self.mmap {
            config.mmap = mmap;
        }
        if let Some(ms) = self.stream_interval_ms {
            config.stream_interval = std::time::Duration::from_millis(ms);
        }
        config
    }
}

/// The cloud tier from flags and `[cloud]`; none without a base URL.
fn merge_cloud(args: &ServeArgs, file: CloudSection) -> anyhow::Result<Option<edgeway_upstream::UpstreamConfig>> {
    let Some(base_url) = args.cloud.cloud_url.clone().or(file.base_url) else { return Ok(None) };
    let model =
        args.cloud.cloud_model.clone().or(file.model).ok_or_else(|| {
            anyhow::anyhow!("a cloud tier needs a model name: set --cloud-model or `model` in [cloud]")
        })?;
    let name = args.cloud_name.clone().or(file.name).unwrap_or_else(|| "cloud".into());
    let mut config = edgeway_upstream::UpstreamConfig::new(name, base_url, model);
    if let Some(var) = args.cloud.cloud_api_key_env.clone().or(file.api_key_env) {
        config.api_key =
            Some(std::env::var(&var).with_context(|| format!("the cloud API key variable {var} is not set"))?);
    }
    config.price_input_per_mtok = file.price_input_per_mtok.unwrap_or(0.0);
    config.price_output_per_mtok = file.price_output_per_mtok.unwrap_or(0.0);
    if let Some(seconds) = args.cloud_timeout.or(file.timeout_secs) {
        anyhow::ensure!(seconds > 0.0 && seconds.is_finite(), "the cloud timeout must be a positive number of seconds");
        config.timeout = std::time::Duration::from_secs_f64(seconds);
    }
    Ok(Some(config))
}

/// The scorer from flags and `[routing]`.
fn merge_scorer(args: &ServeArgs, file: &RoutingSection) -> anyhow::Result<ScorerSetting> {
    let path = args.scorer_path.clone().or(file.scorer_path.clone());
    match args.scorer.clone().or(file.scorer.clone()).as_deref() {
        None if path.is_some() => Ok(ScorerSetting::Learned(path)),
        // Thresholds of the user's own are for a scorer of the user's choosing: without one named,
        // that is the transparent scorer, as before edgeway shipped a calibrated one.
        None if has_thresholds(args, file) => Ok(ScorerSetting::Transparent),
        None | Some("shipped") => Ok(ScorerSetting::Shipped),
        Some("transparent") => Ok(ScorerSetting::Transparent),
        Some("learned") => Ok(ScorerSetting::Learned(path)),
        Some("embedding") => Ok(ScorerSetting::Embedding(path)),
        Some(other) => {
            anyhow::bail!("the scorer must be 'shipped', 'transparent', 'learned' or 'embedding', got '{other}'")
        }
    }
}

/// Whether the flags or `[routing]` set a threshold or an escalation limit of their own.
fn has_thresholds(args: &ServeArgs, file: &RoutingSection) -> bool {
    args.route_threshold.is_some()
        || args.escalate_below.is_some()
        || file.threshold.is_some()
        || !file.thresholds.is_empty()
        || file.escalate_below_logprob.is_some()
        || file.domains.iter().any(|domain| domain.threshold.is_some())
}

/// `[routing]` with the shipped thresholds and escalation limit filled in, for the shipped scorer
/// (they were chosen for it) when the flags and the file set none of their own; otherwise the
/// file as it is. The escalation limit was chosen for an edge with a cloud above it: without a
/// cloud it is left out, so local tiers never cascade unless configured to.
fn with_shipped_thresholds(
    args: &ServeArgs,
    mut file: RoutingSection,
    scorer: &ScorerSetting,
    has_cloud: bool,
) -> anyhow::Result<RoutingSection> {
    if *scorer == ScorerSetting::Shipped && !has_thresholds(args, &file) {
        let shipped = crate::shipped::routing()?;
        file.threshold = shipped.threshold;
        file.thresholds = shipped.thresholds;
        file.escalate_below_logprob = shipped.escalate_below_logprob.filter(|_| has_cloud);
        file.calibration = shipped.calibration;
    }
    Ok(file)
}

/// The thresholds in a `[routing]` table alone (a fleet config version), as `serve` would
/// read them from its config file.
pub fn routing_thresholds(text: &str) -> anyhow::Result<(edgeway_policy::Thresholds, edgeway_policy::TierThresholds)> {
    let file: FileConfig = toml::from_str(text).context("not a valid [routing] table")?;
    let config = merge_routing(&ServeArgs::default(), file.routing)?;
    Ok((config.thresholds, config.tier_thresholds))
}

/// What `edgeway fleet push` publishes from the config file at `path`: its `[routing]` table
/// alone, as TOML, once checked to be thresholds `serve` accepts, and the trained scorer file
/// its `scorer_path` names, which travels inside the version (the path itself is dropped: the
/// boxes cannot read this machine's files).
pub fn fleet_version(path: &Path) -> anyhow::Result<edgeway_fleet::follow::PushedConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let document: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let mut routing = document
        .get("routing")
        .and_then(toml::Value::as_table)
        .with_context(|| format!("{} has no [routing] table to publish", path.display()))?
        .clone();
    let scorer_path = routing.remove("scorer_path");
    let named = routing.get("scorer").and_then(toml::Value::as_str);
    let scorer = match (named, scorer_path) {
        (None | Some("learned" | "embedding"), Some(scorer_path)) => {
            let scorer_path = scorer_path.as_str().context("scorer_path must be a file path")?;
            let json = std::fs::read_to_string(scorer_path).with_context(|| format!("cannot read {scorer_path}"))?;
            if named == Some("embedding") {
                edgeway_policy::EmbeddingModel::from_json(&json, scorer_path)?;
            } else {
                edgeway_policy::LearnedModel::from_json(&json, scorer_path)?;
                routing.insert("scorer".into(), "learned".into());
            }
            Some(json)
        }
        (Some(named @ ("learned" | "embedding")), None) => anyhow::bail!(
            "{} sets scorer = \"{named}\" without scorer_path: name the trained scorer's file, so that it \
             travels with the version",
            path.display()
        ),
        _ => None,
    };
    let mut alone = toml::Table::new();
    alone.insert("routing".into(), toml::Value::Table(routing));
    let routing = toml::to_string(&alone)?;
    routing_thresholds(&routing).with_context(|| format!("the [routing] table of {}", path.display()))?;
    Ok(edgeway_fleet::follow::PushedConfig { version: 0, routing, scorer })
}

/// Thresholds and cooldown from flags and `[routing]`.
fn merge_routing(args: &ServeArgs, file: RoutingSection) -> anyhow::Result<edgeway_gateway::GatewayConfig> {
    let mut config = edgeway_gateway::GatewayConfig::default();
    let in_range = |name: &str, t: f32| {
        anyhow::ensure!((0.0..=1.0).contains(&t), "the routing threshold {name} must be between 0 and 1, got {t}");
        Ok(())
    };
    if !file.domains.is_empty() {
        let mut rules = Vec::new();
        for domain in &file.domains {
            let keywords: Vec<&str> = domain.keywords.iter().map(String::as_str).collect();
            let rule = edgeway_policy::DomainRule::new(&domain.name, &keywords, domain.pattern.as_deref())
                .with_context(|| format!("invalid pattern for domain '{}'", domain.name))?;
            rules.push(rule);
        }
        config.domains = edgeway_policy::DomainRules::new(rules);
    }
    if let Some(threshold) = args.route_threshold.or(file.threshold) {
        in_range("threshold", threshold)?;
        let mut thresholds = edgeway_policy::Thresholds::uniform(threshold);
        for domain in config.domains.names() {
            if domain != edgeway_policy::domain::GENERAL {
                thresholds = thresholds.with(domain, threshold);
            }
        }
        config.thresholds = thresholds;
    }
    let domain_thresholds = file.domains.iter().filter_map(|d| d.threshold.map(|t| (d.name.clone(), t)));
    for (domain, threshold) in file.thresholds.into_iter().chain(domain_thresholds) {
        in_range(&domain, threshold)?;
        config.thresholds = config.thresholds.with(&domain, threshold);
    }
    let tier_of = |text: &str| -> anyhow::Result<u32> {
        text.trim()
            .trim_start_matches("tier")
            .parse()
            .map_err(|_| anyhow::anyhow!("a tier threshold's key must be a tier number (`1 = 0.3`), got '{text}'"))
    };
    for (tier, threshold) in &file.tier_thresholds {
        in_range(&format!("of tier {tier}"), *threshold)?;
        config.tier_thresholds = std::mem::take(&mut config.tier_thresholds).with_default(tier_of(tier)?, *threshold);
    }
    for domain in &file.domains {
        for (tier, threshold) in &domain.tier_thresholds {
            in_range(&format!("of tier {tier} in {}", domain.name), *threshold)?;
            config.tier_thresholds =
                std::mem::take(&mut config.tier_thresholds).with(&domain.name, tier_of(tier)?, *threshold);
        }
    }
    if let Some(min_mean_logprob) = args.escalate_below.or(file.escalate_below_logprob) {
        anyhow::ensure!(
            min_mean_logprob <= 0.0,
            "a log-probability threshold must be zero or negative, got {min_mean_logprob}"
        );
        let probe_tokens = file.escalate_probe_tokens.unwrap_or(16).max(1);
        config.cascade = Some(edgeway_gateway::CascadeConfig { min_mean_logprob, probe_tokens });
    }
    if let Some(watts) = args.power_budget.or(file.power_budget_watts) {
        anyhow::ensure!(watts > 0.0 && watts.is_finite(), "the power budget must be a positive number of watts");
        let action = match args.power_budget_action.clone().or(file.power_budget_action).as_deref() {
            None | Some("cloud") => edgeway_gateway::PowerAction::Cloud,
            Some("queue") => edgeway_gateway::PowerAction::Queue,
            Some(other) => anyhow::bail!("power_budget_action must be 'cloud' or 'queue', got '{other}'"),
        };
        config.power_budget = Some(edgeway_gateway::PowerBudget { watts, action });
    }
    if let Some(retries) = file.cloud_retries {
        config.cloud_retries = retries;
    }
    if let Some(text) = args.structured_route.clone().or(file.structured) {
        config.structured = edgeway_policy::StructuredRoute::parse(&text)
            .with_context(|| format!("the structured-output route must be 'auto', 'edge' or 'cloud', got '{text}'"))?;
    }
    if let Some(text) = args.tools_route.clone().or(file.tools) {
        config.tools = edgeway_policy::StructuredRoute::parse(&text)
            .with_context(|| format!("the tools route must be 'auto', 'edge' or 'cloud', got '{text}'"))?;
    }
    if let Some(text) = args.invalid_cloud_answer.clone().or(file.invalid_cloud_answer) {
        config.invalid_cloud_answer = edgeway_policy::InvalidCloudAnswer::parse(&text)
            .with_context(|| format!("invalid_cloud_answer must be 'fallback', 'error' or 'pass', got '{text}'"))?;
    }
    if let Some(seconds) = file.cooldown_secs {
        anyhow::ensure!(seconds >= 0.0 && seconds.is_finite(), "cooldown_secs must be zero or more");
        config.cooldown = std::time::Duration::from_secs_f64(seconds);
    }
    Ok(config)
}

/// `--injection-judge` and its threshold: one for every channel when given, else the per-channel
/// thresholds measured for the judge edgeway documents.
fn injection_judge(args: &ServeArgs) -> anyhow::Result<Option<edgeway_guard::injection::judge::JudgeSettings>> {
    use edgeway_guard::injection::judge::JudgeSettings;
    use edgeway_guard::injection::model::Thresholds;
    let Some(model) = args.injection_judge.as_deref().map(str::trim).filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    let thresholds = match args.injection_judge_threshold {
        Some(p) => {
            anyhow::ensure!((0.0..=1.0).contains(&p), "--injection-judge-threshold must be between 0 and 1, not {p}");
            Thresholds { user: p, passage: p, tool: p }
        }
        None => JudgeSettings::QWEN_1_5B_THRESHOLDS,
    };
    Ok(Some(JudgeSettings { model: model.to_owned(), thresholds }))
}

/// The extraction detector's settings from the flags.
fn extraction_config(args: &ServeArgs) -> anyhow::Result<edgeway_guard::extraction::ExtractionConfig> {
    let mut config = edgeway_guard::extraction::ExtractionConfig::default();
    if let Some(action) = &args.extraction_action {
        config.action = action.parse().map_err(|error: String| anyhow::anyhow!("--extraction-action: {error}"))?;
    }
    if let Some(threshold) = args.extraction_threshold {
        anyhow::ensure!((0.0..=1.0).contains(&threshold), "--extraction-threshold must be between 0 and 1");
        config.threshold = threshold;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pushed_version_carries_the_scorer_file_and_not_its_path() {
        let dir = std::env::temp_dir().join(format!("edgeway-fleet-version-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let scorer = dir.join("scorer.json");
        std::fs::write(&scorer, crate::shipped::SCORER_JSON).unwrap();
        let config = dir.join("edgeway.toml");
        let write =
            |routing: &str| std::fs::write(&config, format!("[server]\nport = 1\n\n[routing]\n{routing}")).unwrap();

        write(&format!("threshold = 0.4\nscorer_path = \"{}\"\n", scorer.display()));
        let pushed = fleet_version(&config).unwrap();
        assert_eq!(pushed.scorer.as_deref(), Some(crate::shipped::SCORER_JSON));
        let routing: toml::Table = toml::from_str(&pushed.routing).unwrap();
        assert_eq!(routing["routing"].get("scorer").and_then(toml::Value::as_str), Some("learned"));
        assert!(routing["routing"].get("scorer_path").is_none() && routing.get("server").is_none());

        write("scorer = \"learned\"\nthreshold = 0.4\n");
        assert!(format!("{:#}", fleet_version(&config).unwrap_err()).contains("without scorer_path"));
        write(&format!("scorer = \"embedding\"\nscorer_path = \"{}\"\n", scorer.display()));
        assert!(fleet_version(&config).is_err(), "a hashed-word scorer's file is not an embedding scorer");
        write("scorer = \"shipped\"\nthreshold = 0.4\n");
        assert_eq!(fleet_version(&config).unwrap().scorer, None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let file: FileConfig =
            toml::from_str("[server]\nport = 9000\nhost = \"0.0.0.0\"\n[engine]\nparallel = 3\nctx_size = 2048\n")
                .unwrap();
        let args = ServeArgs { port: Some(9100), ..ServeArgs::default() };
        let settings = ServeSettings::merge(&args, file).unwrap();
        assert_eq!(settings.port, 9100);
        assert_eq!(settings.host, "0.0.0.0");
        assert_eq!(settings.model, "smollm2-135m");
        let engine = settings.engine_config("m.gguf".into(), "m".into());
        assert_eq!((engine.parallel, engine.ctx_size, engine.batch_size), (3, 2048, 512));
    }

    #[test]
    fn mmap_comes_from_the_flag_or_the_file_else_from_the_kernel() {
        let default = ServeSettings::merge(&ServeArgs::default(), FileConfig::default()).unwrap();
        let engine = default.engine_config("m.gguf".into(), "m".into());
        assert_eq!(engine.mmap, !edgeway_engine::hugepages::available());
        let file: FileConfig = toml::from_str("[engine]\nmmap = true\n").unwrap();
        let from_file = ServeSettings::merge(&ServeArgs::default(), file).unwrap();
        assert!(from_file.engine_config("m.gguf".into(), "m".into()).mmap);
        let file: FileConfig = toml::from_str("[engine]\nmmap = true\n").unwrap();
        let args = ServeArgs { mmap: Some(false), ..ServeArgs::default() };
        let from_flag = ServeSettings::merge(&args, file).unwrap();
        assert!(!from_flag.engine_config("m.gguf".into(), "m".into()).mmap);
    }

    #[test]
    fn stream_interval_comes_from_the_flag_or_the_file_else_is_one_frame() {
        let default = ServeSettings::merge(&ServeArgs::default(), FileConfig::default()).unwrap();
        let interval = |settings: &ServeSettings| settings.engine_config("m.gguf".into(), "m".into()).stream_interval;
        assert_eq!(interval(&default), std::time::Duration::from_millis(16));
        let file: FileConfig = toml::from_str("[engine]\nstream_interval_ms = 0\n").unwrap();
        assert_eq!(interval(&ServeSettings::merge(&ServeArgs::default(), file).unwrap()), std::time::Duration::ZERO);
        let file: FileConfig = toml::from_str("[engine]\nstream_interval_ms = 0\n").unwrap();
        let args = ServeArgs { stream_interval_ms: Some(40), ..ServeArgs::default() };
        assert_eq!(interval(&ServeSettings::merge(&args, file).unwrap()), std::time::Duration::from_millis(40));
    }

    #[test]
    fn cloud_and_routing_sections() {
        let file: FileConfig = toml::from_str(
            "[cloud]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"big\"\nprice_input_per_mtok = 0.5\n\
             [routing]\nthreshold = 0.4\ncooldown_secs = 2\n[routing.thresholds]\ncode = 0.2\n",
        )
        .unwrap();
        let settings = ServeSettings::merge(&ServeArgs::default(), file).unwrap();
        let cloud = settings.cloud.unwrap();
        assert_eq!((cloud.name.as_str(), cloud.model.as_str(), cloud.price_input_per_mtok), ("cloud", "big", 0.5));
        assert_eq!(settings.gateway.thresholds.of("general"), 0.4);
        assert_eq!(settings.gateway.thresholds.of("finance"), 0.4);
        assert_eq!(settings.gateway.thresholds.of("code"), 0.2);
        assert_eq!(settings.gateway.cooldown, std::time::Duration::from_secs(2));

        let no_model: FileConfig = toml::from_str("[cloud]\nbase_url = \"http://x/v1\"\n").unwrap();
        assert!(ServeSettings::merge(&ServeArgs::default(), no_model).is_err());
        let bad: FileConfig = toml::from_str("[routing]\nthreshold = 3.0\n").unwrap();
        assert!(ServeSettings::merge(&ServeArgs::default(), bad).is_err());
    }

    #[test]
    fn the_shipped_scorer_and_its_thresholds_are_the_default_until_the_config_sets_its_own() {
        let shipped = crate::shipped::routing().unwrap();
        let with_cloud: FileConfig =
            toml::from_str("[cloud]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"big\"\n").unwrap();
        let settings = ServeSettings::merge(&ServeArgs::default(), with_cloud).unwrap();
        assert_eq!(settings.scorer, ScorerSetting::Shipped);
        assert_eq!(settings.gateway.thresholds.of("a-domain-of-its-own"), shipped.threshold.unwrap());
        for (domain, threshold) in &shipped.thresholds {
            assert_eq!(settings.gateway.thresholds.of(domain), *threshold, "{domain}");
        }
        assert_eq!(settings.gateway.cascade.map(|c| c.min_mean_logprob), shipped.escalate_below_logprob);
        // The dashboard says where the shipped thresholds came from.
        assert!(settings.shipped_routing);
        assert_eq!(settings.calibration.as_ref().and_then(|c| c.items), Some(556));
        // Without a cloud nothing escalates: local tiers cascade only when configured to.
        let settings = ServeSettings::merge(&ServeArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(settings.scorer, ScorerSetting::Shipped);
        assert!(settings.gateway.cascade.is_none());

        // A threshold of the user's own is for the transparent scorer, and no shipped value stays.
        let file: FileConfig = toml::from_str("[routing]\nthreshold = 0.4\n").unwrap();
        let settings = ServeSettings::merge(&ServeArgs::default(), file).unwrap();
        assert_eq!(settings.scorer, ScorerSetting::Transparent);
        for domain in ["general", "code", "finance", "customer-service"] {
            assert_eq!(settings.gateway.thresholds.of(domain), 0.4, "{domain}");
        }
        assert!(settings.gateway.cascade.is_none());
        assert!(!settings.shipped_routing && settings.calibration.is_none());

        // Naming the transparent scorer brings its own defaults.
        let args = ServeArgs { scorer: Some("transparent".into()), ..ServeArgs::default() };
        let settings = ServeSettings::merge(&args, FileConfig::default()).unwrap();
        assert_eq!(settings.gateway.thresholds, edgeway_policy::Thresholds::defaults());
        assert!(settings.gateway.cascade.is_none());

        // The shipped scorer with a threshold of the user's: theirs wins.
        let args = ServeArgs { scorer: Some("shipped".into()), route_threshold: Some(0.7), ..ServeArgs::default() };
        let settings = ServeSettings::merge(&args, FileConfig::default()).unwrap();
        assert_eq!((settings.scorer, settings.gateway.thresholds.of("code")), (ScorerSetting::Shipped, 0.7));
        assert!(settings.gateway.cascade.is_none());
    }

    #[test]
    fn the_structured_route_comes_from_the_flag_or_the_file() {
        let route = |args: &ServeArgs, toml_text: &str| {
            let file: FileConfig = toml::from_str(toml_text).unwrap();
            ServeSettings::merge(args, file).map(|settings| settings.gateway.structured)
        };
        let none = ServeArgs::default();
        assert_eq!(route(&none, "").unwrap(), edgeway_policy::StructuredRoute::Auto);
        assert_eq!(
            route(&none, "[routing]\nstructured = \"cloud\"\n").unwrap(),
            edgeway_policy::StructuredRoute::Cloud
        );
        let flag = ServeArgs { structured_route: Some("edge".into()), ..ServeArgs::default() };
        assert_eq!(route(&flag, "[routing]\nstructured = \"cloud\"\n").unwrap(), edgeway_policy::StructuredRoute::Edge);
        let error = route(&none, "[routing]\nstructured = \"sometimes\"\n").err().unwrap();
        assert!(format!("{error:#}").contains("'auto', 'edge' or 'cloud'"), "{error:#}");
        let tools = |args: &ServeArgs, toml_text: &str| {
            let file: FileConfig = toml::from_str(toml_text).unwrap();
            ServeSettings::merge(args, file).map(|settings| settings.gateway.tools)
        };
        assert_eq!(tools(&none, "[routing]\ntools = \"cloud\"\n").unwrap(), edgeway_policy::StructuredRoute::Cloud);
        let flag = ServeArgs { tools_route: Some("edge".into()), ..ServeArgs::default() };
        assert_eq!(tools(&flag, "[routing]\ntools = \"cloud\"\n").unwrap(), edgeway_policy::StructuredRoute::Edge);
    }

    #[test]
    fn domain_rules_come_from_the_config() {
        let file: FileConfig = toml::from_str(
            "[[routing.domains]]\nname = \"inspection\"\nkeywords = [\"crack\", \"scratch\"]\nthreshold = 0.7\n\
             [[routing.domains]]\nname = \"parts\"\npattern = \"part #?\\\\d+\"\n",
        )
        .unwrap();
        let settings = ServeSettings::merge(&ServeArgs::default(), file).unwrap();
        let rules = &settings.gateway.domains;
        let classify = |text: &str| rules.classify(&edgeway_core::Prompt::Text(text.into())).to_owned();
        assert_eq!(classify("Is this a Crack?"), "inspection");
        assert_eq!(classify("where is part #123"), "parts");
        assert_eq!(classify("refund my order"), "general", "configured rules replace the shipped ones");
        assert_eq!(settings.gateway.thresholds.of("inspection"), 0.7);

        let bad: FileConfig = toml::from_str("[[routing.domains]]\nname = \"x\"\npattern = \"(\"\n").unwrap();
        let error = ServeSettings::merge(&ServeArgs::default(), bad).err().unwrap();
        assert!(format!("{error:#}").contains("invalid pattern for domain 'x'"), "{error:#}");
    }

    #[test]
    fn several_models_and_clouds_sit_on_tiers() {
        let file: FileConfig = toml::from_str(
            "[engine]\nthreads = 2\nctx_size = 2048\n\
             [[models]]\nmodel = \"smollm2-135m\"\n\
             [[models]]\nname = \"coder\"\nmodel = \"qwen2.5-0.5b\"\ntier = 1\ndomains = [\"code\"]\nctx_size = 4096\nkeep_alive = \"10m\"\n\
             [[cloud]]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"a\"\n\
             [[cloud]]\nname = \"backup\"\nbase_url = \"http://127.0.0.1:10/v1\"\nmodel = \"b\"\n\
             [routing.tier_thresholds]\n1 = 0.3\n",
        )
        .unwrap();
        let settings = ServeSettings::merge(&ServeArgs::default(), file).unwrap();
        let models: Vec<_> = settings.models.iter().map(|m| (m.name.as_deref().unwrap(), m.tier, m.pinned)).collect();
        assert_eq!(models, [("smollm2-135m", 0, false), ("coder", 1, false)]);
        assert_eq!(settings.models[1].domains, ["code"]);
        assert_eq!(settings.models[1].keep_alive, Some(KeepAliveValue::Text("10m".into())));
        assert_eq!((settings.models[0].engine.ctx_size, settings.models[1].engine.ctx_size), (Some(2048), Some(4096)));
        assert_eq!(settings.models[1].engine.threads, Some(2), "shared settings apply to every model");
        assert_eq!(
            (settings.models[0].engine.mmap, settings.models[1].engine.mmap),
            (Some(true), Some(true)),
            "models that take turns in memory are mapped"
        );
        let clouds: Vec<_> = settings.clouds.iter().map(|c| (c.config.name.as_str(), c.tier)).collect();
        assert_eq!(clouds, [("cloud", 2), ("backup", 3)]);
        assert_eq!(settings.gateway.tier_thresholds.of("general", 1), Some(0.3));
    }

    #[test]
    fn one_model_is_the_engine_section_pinned_on_tier_zero() {
        let file: FileConfig = toml::from_str(
            "[engine]\nmodel = \"x.gguf\"\nalias = \"x\"\n[cloud]\nbase_url = \"http://h/v1\"\nmodel = \"c\"\n",
        )
        .unwrap();
        let settings = ServeSettings::merge(&ServeArgs::default(), file).unwrap();
        assert_eq!(settings.models.len(), 1);
        assert_eq!(
            (settings.models[0].model.as_str(), settings.models[0].tier, settings.models[0].pinned),
            ("x.gguf", 0, true)
        );
        assert_eq!(settings.clouds[0].tier, 1);

        let both: FileConfig =
            toml::from_str("[engine]\nmodel = \"x.gguf\"\n[[models]]\nmodel = \"y.gguf\"\n").unwrap();
        let error = ServeSettings::merge(&ServeArgs::default(), both).err().unwrap();
        assert!(format!("{error:#}").contains("[[models]]"), "{error:#}");
        let twice: FileConfig =
            toml::from_str("[[models]]\nmodel = \"y.gguf\"\n[[models]]\nmodel = \"y.gguf\"\n").unwrap();
        let error = ServeSettings::merge(&ServeArgs::default(), twice).err().unwrap();
        assert!(format!("{error:#}").contains("two [[models]] are named"), "{error:#}");
        let bad_tier: FileConfig = toml::from_str("[routing.tier_thresholds]\nfirst = 0.3\n").unwrap();
        assert!(ServeSettings::merge(&ServeArgs::default(), bad_tier).is_err());
        let typo = toml::from_str::<FileConfig>("[[cloud]]\nbase_url = \"http://h/v1\"\nmodle = \"c\"\n").unwrap_err();
        assert!(typo.to_string().contains("unknown field `modle`"), "{typo}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = toml::from_str::<FileConfig>("[engine]\nctx = 10\n").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }
}
