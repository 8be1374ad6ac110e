//! The APIs' JSON shapes (OpenAI's, and Ollama's in [`ollama`]), and their conversion to and from core types.
//!
//! These types are the serialization boundary: nothing outside this module
//! derives `Serialize`/`Deserialize` for the API, and core types never do.

pub mod chat;
pub mod common;
pub mod completion;
pub mod format;
pub mod ollama;
pub mod responses;
pub mod tools;
