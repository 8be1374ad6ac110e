//! One cloud tier.

use std::time::Duration;

/// An OpenAI-compatible upstream and what it costs.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// The name clients use to force this tier in the `model` field.
    pub name: String,
    /// Base URL up to and including the API version, e.g. `https://api.example.com/v1`.
    pub base_url: String,
    /// The model name sent upstream.
    pub model: String,
    /// The API key, read from the environment variable the config names.
    pub api_key: Option<String>,
    /// Price in currency units per million prompt tokens.
    pub price_input_per_mtok: f64,
    /// Price per million generated tokens.
    pub price_output_per_mtok: f64,
    /// Longest wait for the connection, for the first token, and between tokens.
    pub timeout: Duration,
    /// Context size to report for the upstream model.
    pub n_ctx: u32,
}

impl UpstreamConfig {
    /// A tier with no key, free, a 30 s timeout and a 32k context.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            model: model.into(),
            api_key: None,
            price_input_per_mtok: 0.0,
            price_output_per_mtok: 0.0,
            timeout: Duration::from_secs(30),
            n_ctx: 32_768,
        }
    }
}
