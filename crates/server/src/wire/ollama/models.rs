//! What Ollama's model routes (`/api/tags`, `/api/ps`, `/api/show`) say about the served models.

use std::time::SystemTime;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{tagged_name, time};

/// The `general.architecture` reported in `model_info`: the server does not read the GGUF's own.
pub const ARCHITECTURE: &str = "edgeway";
/// Ollama API version `/api/version` reports: recent enough for the clients that check it.
pub const OLLAMA_API_VERSION: &str = "0.12.0";

/// What a served name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// The chat model loaded here.
    Chat,
    /// The embedding model (`/api/embed`).
    Embedding,
    /// A name the router answers to (a cloud tier, say) with no model file here.
    Routed,
}

impl ModelKind {
    /// Ollama's `capabilities` of the kind.
    pub fn capabilities(self) -> Vec<&'static str> {
        match self {
            ModelKind::Chat | ModelKind::Routed => vec!["completion"],
            ModelKind::Embedding => vec!["embedding"],
        }
    }
}

/// Facts about one served model, gathered by the routes.
#[derive(Debug, Clone)]
pub struct ModelFacts {
    /// edgeway's name for it (without a tag).
    pub name: String,
    /// What it is.
    pub kind: ModelKind,
    /// Its file, when it has one here.
    pub path: Option<String>,
    /// The file's size in bytes.
    pub size: u64,
    /// When the file last changed (now, without a file).
    pub modified: SystemTime,
    /// Parameters (0 when unknown).
    pub parameters: u64,
    /// The context the model was trained with, in tokens (0 when unknown).
    pub trained_context: u64,
    /// The context each request gets here, in tokens (0 when unknown).
    pub served_context: u64,
    /// Vector length, for the embedding model.
    pub dims: Option<usize>,
    /// Whether its weights are in memory.
    pub loaded: bool,
    /// Memory it holds while loaded, in bytes, when known (else the file's size is reported).
    pub memory: Option<u64>,
    /// When it will be unloaded for being idle; `None` while it stays loaded.
    pub expires_at: Option<SystemTime>,
}

/// `details` of a model.
#[derive(Debug, Serialize)]
pub struct ModelDetails {
    /// Always empty: no served model derives from another here.
    pub parent_model: String,
    /// `gguf` for a model file here, empty for a routed name.
    pub format: &'static str,
    /// Unknown to the server: empty.
    pub family: String,
    /// Unknown to the server: none.
    pub families: Vec<String>,
    /// Parameters in Ollama's style (`135M`, `7.6B`), empty when unknown.
    pub parameter_size: String,
    /// Read from the file name (`Q4_1`, `F16`), empty when it does not say.
    pub quantization_level: String,
}

/// One model in `/api/tags`.
#[derive(Debug, Serialize)]
pub struct ModelEntry {
    /// `name:tag`.
    pub name: String,
    /// The same.
    pub model: String,
    /// When the file last changed.
    pub modified_at: String,
    /// The file's size in bytes.
    pub size: u64,
    /// A stable identifier of the served file (not Ollama's sha256 of a blob).
    pub digest: String,
    /// What it is.
    pub details: ModelDetails,
}

/// `/api/tags`' answer.
#[derive(Debug, Serialize)]
pub struct TagList {
    /// Every served name.
    pub models: Vec<ModelEntry>,
}

/// One model in `/api/ps`.
#[derive(Debug, Serialize)]
pub struct RunningModel {
    /// `name:tag`.
    pub name: String,
    /// The same.
    pub model: String,
    /// Bytes in memory (weights and KV cache, as estimated; the file's size when not known).
    pub size: u64,
    /// As in `/api/tags`.
    pub digest: String,
    /// As in `/api/tags`.
    pub details: ModelDetails,
    /// When the model will be unloaded for being idle; far in the future when it stays loaded.
    pub expires_at: String,
    /// Not measured: 0.
    pub size_vram: u64,
    /// The context each request gets, in tokens.
    pub context_length: u64,
}

/// `/api/ps`' answer.
#[derive(Debug, Serialize)]
pub struct RunningList {
    /// The models whose weights are in memory.
    pub models: Vec<RunningModel>,
}

/// `/api/show`'s answer.
#[derive(Debug, Serialize)]
pub struct ShowReply {
    /// A Modelfile that says where the model comes from.
    pub modelfile: String,
    /// Parameters set by a Modelfile: none here.
    pub parameters: String,
    /// The model's chat template is applied by the engine from the GGUF file, not shown here.
    pub template: String,
    /// As in `/api/tags`.
    pub details: ModelDetails,
    /// GGUF-style facts: architecture, parameter count, context length.
    pub model_info: Map<String, Value>,
    /// What it can do: `completion` or `embedding`.
    pub capabilities: Vec<&'static str>,
    /// When the file last changed.
    pub modified_at: String,
}

/// `/api/version`'s answer.
#[derive(Debug, Serialize)]
pub struct VersionReply {
    /// The Ollama API version served ([`OLLAMA_API_VERSION`]).
    pub version: &'static str,
    /// edgeway's own version.
    pub edgeway: &'static str,
}

/// A far-off `expires_at`, for a model that stays loaded.
const NEVER: &str = "9999-12-31T23:59:59.000000Z";

impl ModelFacts {
    /// A name with no model file here (a tier the router answers to), seen at `now`.
    pub fn routed(name: String, now: SystemTime) -> Self {
        Self {
            name,
            kind: ModelKind::Routed,
            path: None,
            size: 0,
            modified: now,
            parameters: 0,
            trained_context: 0,
            served_context: 0,
            dims: None,
            loaded: false,
            memory: None,
            expires_at: None,
        }
    }

    /// `details`.
    pub fn details(&self) -> ModelDetails {
        ModelDetails {
            parent_model: String::new(),
            format: if self.kind == ModelKind::Routed { "" } else { "gguf" },
            family: String::new(),
            families: Vec::new(),
            parameter_size: parameter_size(self.parameters),
            quantization_level: self.path.as_deref().map(quantization_of).unwrap_or_default(),
        }
    }

    /// A stable 64-hex-digit identifier of the served file: its name, path and size hashed
    /// (hashing gigabytes of weights for a listing would take seconds).
    pub fn digest(&self) -> String {
        let identity = format!("{}\0{}\0{}", self.name, self.path.as_deref().unwrap_or_default(), self.size);
        (0u8..4)
            .map(|round| {
                let mut bytes = vec![round];
                bytes.extend_from_slice(identity.as_bytes());
                format!("{:016x}", edgeway_core::hash::fnv1a(&bytes))
            })
            .collect()
    }

    /// Its `/api/tags` entry.
    pub fn entry(&self) -> ModelEntry {
        ModelEntry {
            name: tagged_name(&self.name),
            model: tagged_name(&self.name),
            modified_at: time::rfc3339(self.modified),
            size: self.size,
            digest: self.digest(),
            details: self.details(),
        }
    }

    /// Its `/api/ps` entry.
    pub fn running(&self) -> RunningModel {
        RunningModel {
            name: tagged_name(&self.name),
            model: tagged_name(&self.name),
            size: self.memory.unwrap_or(self.size),
            digest: self.digest(),
            details: self.details(),
            expires_at: self.expires_at.map_or_else(|| NEVER.to_owned(), time::rfc3339),
            size_vram: 0,
            context_length: self.served_context,
        }
    }

    /// Its `/api/show` answer.
    pub fn show(&self) -> ShowReply {
        let mut info = Map::new();
        info.insert("general.architecture".into(), json!(ARCHITECTURE));
        info.insert("general.basename".into(), json!(self.name));
        if self.parameters > 0 {
            info.insert("general.parameter_count".into(), json!(self.parameters));
        }
        if self.trained_context > 0 {
            info.insert(format!("{ARCHITECTURE}.context_length"), json!(self.trained_context));
        }
        if let Some(dims) = self.dims {
            info.insert(format!("{ARCHITECTURE}.embedding_length"), json!(dims));
        }
        let from = self.path.clone().unwrap_or_else(|| self.name.clone());
        ShowReply {
            modelfile: format!("# Served by edgeway {}\nFROM {from}\n", env!("CARGO_PKG_VERSION")),
            parameters: String::new(),
            template: String::new(),
            details: self.details(),
            model_info: info,
            capabilities: self.kind.capabilities(),
            modified_at: time::rfc3339(self.modified),
        }
    }
}

/// A parameter count as Ollama writes it: `135M`, `134.52M`, `8B`, `7.6B`; empty when unknown.
pub fn parameter_size(count: u64) -> String {
    const THOUSAND: u64 = 1_000;
    const MILLION: u64 = 1_000_000;
    const BILLION: u64 = 1_000_000_000;
    let scaled = |unit: u64, decimals: usize, suffix: &str| {
        if count.is_multiple_of(unit) {
            format!("{}{suffix}", count / unit)
        } else {
            format!("{:.decimals$}{suffix}", count as f64 / unit as f64)
        }
    };
    match count {
        0 => String::new(),
        c if c >= BILLION => scaled(BILLION, 1, "B"),
        c if c >= MILLION => scaled(MILLION, 2, "M"),
        c if c >= THOUSAND => format!("{}K", (c as f64 / THOUSAND as f64).round()),
        c => c.to_string(),
    }
}

/// The quantization a GGUF file name states (`SmolLM2-135M-Instruct.Q4_1.gguf` → `Q4_1`), else empty.
pub fn quantization_of(path: &str) -> String {
    let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let stem = file.strip_suffix(".gguf").unwrap_or(file);
    stem.split(['.', '-'])
        .rev()
        .find(|part| {
            let upper = part.to_ascii_uppercase();
            let quantized = (upper.starts_with('Q') || upper.starts_with("IQ"))
                && upper.trim_start_matches('I').chars().nth(1).is_some_and(|c| c.is_ascii_digit());
            quantized || ["F16", "F32", "BF16"].contains(&upper.as_str())
        })
        .map(str::to_ascii_uppercase)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sizes_read_as_ollamas() {
        assert_eq!(parameter_size(0), "");
        assert_eq!(parameter_size(134_515_008), "134.52M");
        assert_eq!(parameter_size(135_000_000), "135M");
        assert_eq!(parameter_size(8_030_261_248), "8.0B");
        assert_eq!(parameter_size(7_000_000_000), "7B");
        assert_eq!(parameter_size(22_700), "23K");
    }

    #[test]
    fn quantization_comes_from_the_file_name() {
        assert_eq!(quantization_of("/m/SmolLM2-135M-Instruct.Q4_1.gguf"), "Q4_1");
        assert_eq!(quantization_of("qwen2.5-0.5b-instruct-q4_k_m.gguf"), "Q4_K_M");
        assert_eq!(quantization_of("all-MiniLM-L6-v2.F16.gguf"), "F16");
        assert_eq!(quantization_of("model-IQ3_XS.gguf"), "IQ3_XS");
        assert_eq!(quantization_of("plain.gguf"), "");
    }

    #[test]
    fn digests_are_stable_and_64_hex_digits() {
        let facts = ModelFacts {
            name: "m".into(),
            kind: ModelKind::Chat,
            path: Some("/m.gguf".into()),
            size: 10,
            modified: SystemTime::UNIX_EPOCH,
            parameters: 0,
            trained_context: 0,
            served_context: 0,
            dims: None,
            loaded: true,
            memory: None,
            expires_at: None,
        };
        let digest = facts.digest();
        assert_eq!(digest.len(), 64);
        assert!(digest.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(digest, facts.clone().digest());
        assert_ne!(digest, ModelFacts { size: 11, ..facts }.digest());
    }
}
