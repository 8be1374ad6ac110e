//! The cloud [`Backend`]: any OpenAI-compatible server (a hosted API, another
//! edgeway, llama-server, vLLM…), streamed token by token.
//!
//! Every request is sent upstream with `stream: true`, whatever the client
//! asked: that lets tokens be passed through as they arrive and lets a stalled
//! upstream be detected between tokens. A failure before the first token is
//! reported as [`BackendError::Unavailable`], which the router treats as a
//! reason to fall back to the edge.
//!
//! # Layout
//! - [`config`]: one upstream tier.
//! - [`sse`]: splitting a byte stream into server-sent events.
//! - [`client`]: the request, the stream, and the [`Backend`] impl.

pub mod client;
pub mod config;
pub mod sse;

pub use client::CloudBackend;
pub use config::UpstreamConfig;

#[doc(no_inline)]
pub use edgeway_core::{Backend, BackendError};
