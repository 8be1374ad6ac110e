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
}

/// `[server]`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// `[engine]`.
#[derive(Debug, Default, Deserialize, PartialEq)]
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
    pub queue_size: Option<u32>,
    pub swa_full: Option<bool>,
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
#[derive(Debug, Clone, PartialEq)]
pub struct ServeSettings {
    pub host: String,
    pub port: u16,
    pub model: String,
    pub alias: Option<String>,
    pub threads: Option<u32>,
    pub threads_batch: Option<u32>,
    pub ctx_size: Option<u32>,
    pub parallel: Option<u32>,
    pub batch_size: Option<u32>,
    pub ubatch_size: Option<u32>,
    pub queue_size: Option<u32>,
    pub swa_full: Option<bool>,
}

impl ServeSettings {
    /// Flags (which already include environment variables) win over the file.
    pub fn merge(args: &ServeArgs, file: FileConfig) -> Self {
        let engine = file.engine;
        Self {
            host: args.host.clone().or(file.server.host).unwrap_or_else(|| "127.0.0.1".into()),
            port: args.port.or(file.server.port).unwrap_or(8080),
            model: args.model.clone().or(engine.model).unwrap_or_else(|| edgeway_models::DEFAULT_MODEL.into()),
            alias: args.alias.clone().or(engine.alias),
            threads: args.threads.or(engine.threads),
            threads_batch: args.threads_batch.or(engine.threads_batch),
            ctx_size: args.ctx_size.or(engine.ctx_size),
            parallel: args.parallel.or(engine.parallel),
            batch_size: args.batch_size.or(engine.batch_size),
            ubatch_size: args.ubatch_size.or(engine.ubatch_size),
            queue_size: args.queue_size.or(engine.queue_size),
            swa_full: args.swa_full.or(engine.swa_full),
        }
    }

    /// The engine configuration for a resolved model file.
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
            (self.queue_size, &mut config.queue_size),
        ];
        for (value, field) in overrides {
            if let Some(value) = value {
                *field = value;
            }
        }
        if let Some(swa_full) = self.swa_full {
            config.swa_full = swa_full;
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let file: FileConfig =
            toml::from_str("[server]\nport = 9000\nhost = \"0.0.0.0\"\n[engine]\nparallel = 3\nctx_size = 2048\n")
                .unwrap();
        let args = ServeArgs { port: Some(9100), ..ServeArgs::default() };
        let settings = ServeSettings::merge(&args, file);
        assert_eq!(settings.port, 9100);
        assert_eq!(settings.host, "0.0.0.0");
        assert_eq!(settings.model, "smollm2-135m");
        let engine = settings.engine_config("m.gguf".into(), "m".into());
        assert_eq!((engine.parallel, engine.ctx_size, engine.batch_size), (3, 2048, 512));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = toml::from_str::<FileConfig>("[engine]\nctx = 10\n").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }
}
