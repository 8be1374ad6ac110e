//! `/v1/completions` (legacy text completion) request and response shapes.

use std::collections::BTreeMap;

use edgeway_core::{Completion, GenerateRequest, Prompt, RouteHints, TokenLogprob};
use edgeway_structured::FormatCheck;
use serde::{Deserialize, Serialize};

use super::common::{
    keep_alive_of, validate_max_tokens, validate_top_logprobs, SamplingFields, StreamOptions, TimingsBody, UsageBody,
};
use crate::error::{invalid, ApiError};

/// OpenAI's default `max_tokens` for this endpoint.
const DEFAULT_MAX_TOKENS: u32 = 16;

/// A text completion request as sent.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub model: Option<String>,
    pub prompt: PromptField,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<i64>,
    /// Here an integer: how many alternatives to return per token.
    pub logprobs: Option<i64>,
    #[serde(default)]
    pub echo: bool,
    pub suffix: Option<String>,
    /// edgeway's extension, Ollama's field: how long a local model stays loaded after this
    /// request (`"5m"`, seconds, `0` unloads it after the answer, negative keeps it).
    pub keep_alive: Option<serde_json::Value>,
    #[serde(flatten)]
    pub sampling: SamplingFields,
}

/// `prompt`: a string, or a list holding one string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptField {
    One(String),
    Many(Vec<String>),
}

/// What the completion handler needs besides the core request.
#[derive(Debug)]
pub struct CompletionOptions {
    pub stream: bool,
    pub include_usage: bool,
    /// Text to put before the answer (`echo`).
    pub echo_prefix: Option<String>,
    /// The check the answer gets when a format is asked for (compiled once, at validation).
    pub format_check: Option<FormatCheck>,
}

impl CompletionRequest {
    /// Validates every field and builds the core request.
    pub fn validate(self) -> Result<(GenerateRequest, CompletionOptions), ApiError> {
        let prompt = match self.prompt {
            PromptField::One(text) => text,
            PromptField::Many(mut list) if list.len() == 1 => list.remove(0),
            PromptField::Many(list) => {
                return Err(invalid("prompt", format!("one prompt per request is supported, got {}", list.len())))
            }
        };
        if prompt.is_empty() {
            return Err(invalid("prompt", "prompt must not be empty"));
        }
        if self.suffix.is_some() {
            return Err(invalid("suffix", "suffix (fill-in-the-middle) is not supported"));
        }
        let (mut sampling, format_check) = self.sampling.validate()?;
        sampling.max_tokens = Some(validate_max_tokens("max_tokens", self.max_tokens)?.unwrap_or(DEFAULT_MAX_TOKENS));
        sampling.logprobs = self.logprobs.map(|n| validate_top_logprobs("logprobs", n)).transpose()?;
        let options = CompletionOptions {
            stream: self.stream,
            include_usage: self.stream_options.is_some_and(|o| o.include_usage),
            echo_prefix: self.echo.then(|| prompt.clone()),
            format_check,
        };
        let keep_alive = keep_alive_of(self.keep_alive.as_ref())?;
        let route = RouteHints { model: self.model, stream: self.stream, keep_alive, ..RouteHints::default() };
        Ok((
            GenerateRequest { prompt: Prompt::Text(prompt), sampling, route, tools: None, query_embedding: None },
            options,
        ))
    }
}

/// A text completion (non-streamed, or one streamed chunk: the shapes are the same).
#[derive(Debug, Serialize)]
pub struct TextCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<TextChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<TimingsBody>,
    /// edgeway's extension: the structured-output check, when a format was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_edgeway: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct TextChoice {
    pub text: String,
    pub index: u32,
    pub logprobs: Option<TextLogprobs>,
    pub finish_reason: Option<&'static str>,
}

/// The legacy logprobs shape: parallel arrays.
#[derive(Debug, Default, Serialize)]
pub struct TextLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f32>,
    pub top_logprobs: Vec<BTreeMap<String, f32>>,
    pub text_offset: Vec<usize>,
}

impl TextLogprobs {
    /// `None` when not asked for; offsets count from `offset` bytes into the output.
    pub fn from_entries(requested: bool, entries: &[TokenLogprob], mut offset: usize) -> Option<Self> {
        if !requested {
            return None;
        }
        let mut out = Self::default();
        for entry in entries {
            out.tokens.push(entry.chosen.token.clone());
            out.token_logprobs.push(entry.chosen.logprob);
            out.top_logprobs.push(entry.top.iter().map(|t| (t.token.clone(), t.logprob)).collect());
            out.text_offset.push(offset);
            offset += entry.chosen.token.len();
        }
        Some(out)
    }
}

impl TextCompletion {
    /// One choice with the given text; `completion` adds the finish reason, usage and timings.
    pub fn new(
        id: String,
        created: u64,
        model: String,
        text: String,
        logprobs: Option<TextLogprobs>,
        completion: Option<&Completion>,
    ) -> Self {
        Self {
            id,
            object: "text_completion",
            created,
            model,
            choices: vec![TextChoice {
                text,
                index: 0,
                logprobs,
                finish_reason: completion.map(|c| c.finish_reason.as_str()),
            }],
            usage: completion.map(UsageBody::from),
            timings: completion.map(TimingsBody::from),
            x_edgeway: None,
        }
    }
}
