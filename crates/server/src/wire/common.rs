//! Pieces shared by the chat and text completion shapes.

use edgeway_core::{Completion, KeepAlive, SamplingParams, TokenLogprob, TopLogprob};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use edgeway_structured::FormatCheck;

use super::format::FormatFields;
use crate::error::{invalid, ApiError};

/// Most stop sequences one request may carry.
pub const MAX_STOP_SEQUENCES: usize = 16;
/// Most alternatives `top_logprobs` may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: u8 = 20;

/// `stop` may be one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    /// One stop sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `keep_alive` in the forms Ollama takes: a duration string (`"5m"`, `"1h30m"`, `"0"`), a
/// number of seconds, negative for "keep loaded"; `null` or absent keeps the model's default.
/// OpenAI's endpoints take the same field as an extension.
pub fn keep_alive_of(value: Option<&Value>) -> Result<Option<KeepAlive>, ApiError> {
    let parsed = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => KeepAlive::parse(text),
        Some(Value::Number(number)) => match number.as_f64() {
            Some(seconds) => KeepAlive::from_seconds(seconds),
            None => Err(format!("keep_alive {number} is not a number of seconds")),
        },
        Some(other) => Err(format!(
            "keep_alive must be a duration such as \"5m\" or a number of seconds (negative keeps the model loaded), got {other}"
        )),
    };
    parsed.map(Some).map_err(|message| invalid("keep_alive", message))
}

/// `stream_options` of a streamed request.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with token usage before `[DONE]`.
    #[serde(default)]
    pub include_usage: bool,
}

/// The sampling fields both endpoints share, as sent.
#[derive(Debug, Default, Deserialize)]
pub struct SamplingFields {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    pub stop: Option<StopField>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub n: Option<u32>,
    /// llama-server's extension: keep generating past end-of-generation tokens.
    pub ignore_eos: Option<bool>,
    /// OpenAI's structured output: `{"type": "json_object" | "json_schema" | "text", ...}`.
    pub response_format: Option<Value>,
    /// llama-server's extension: a JSON Schema the answer must follow.
    pub json_schema: Option<Value>,
    /// llama-server's extension: a GBNF grammar the answer must follow.
    pub grammar: Option<String>,
}

impl SamplingFields {
    /// Checks ranges and builds core sampling parameters (without token limits or logprobs),
    /// and the compiled check of the answer when a format is asked for.
    pub fn validate(self) -> Result<(SamplingParams, Option<FormatCheck>), ApiError> {
        let defaults = SamplingParams::default();
        let temperature = self.temperature.unwrap_or(defaults.temperature);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(invalid("temperature", format!("temperature must be between 0 and 2, got {temperature}")));
        }
        let top_p = self.top_p.unwrap_or(defaults.top_p);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(invalid("top_p", format!("top_p must be greater than 0 and at most 1, got {top_p}")));
        }
        let penalty = |param: &'static str, value: Option<f32>| match value.unwrap_or(0.0) {
            v if (-2.0..=2.0).contains(&v) => Ok(v),
            v => Err(invalid(param, format!("{param} must be between -2 and 2, got {v}"))),
        };
        if let Some(n) = self.n.filter(|&n| n != 1) {
            return Err(invalid("n", format!("only n = 1 is supported, got {n}")));
        }
        let stop = match self.stop {
            None => Vec::new(),
            Some(StopField::One(s)) => vec![s],
            Some(StopField::Many(list)) => list,
        };
        if stop.len() > MAX_STOP_SEQUENCES {
            return Err(invalid(
                "stop",
                format!("at most {MAX_STOP_SEQUENCES} stop sequences are allowed, got {}", stop.len()),
            ));
        }
        // Seeds are 32-bit in llama.cpp; larger values are folded rather than refused,
        // since clients often send 64-bit random seeds.
        let seed = self.seed.map(|s| (s as u64 ^ ((s as u64) >> 32)) as u32);
        let (format, check) = FormatFields {
            response_format: self.response_format,
            json_schema: self.json_schema,
            grammar: self.grammar,
        }
        .validate()?
        .unzip();
        let ignore_eos = self.ignore_eos.unwrap_or(false);
        if ignore_eos && format.is_some() {
            return Err(invalid(
                "ignore_eos",
                "ignore_eos cannot be combined with a response format: a finished JSON answer must end",
            ));
        }
        let params = SamplingParams {
            temperature,
            top_p,
            seed,
            stop,
            frequency_penalty: penalty("frequency_penalty", self.frequency_penalty)?,
            presence_penalty: penalty("presence_penalty", self.presence_penalty)?,
            ignore_eos,
            format,
            ..defaults
        };
        Ok((params, check))
    }
}

/// Checks a `max_tokens`-style field.
pub fn validate_max_tokens(param: &'static str, value: Option<i64>) -> Result<Option<u32>, ApiError> {
    match value {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(Some(u32::try_from(n).unwrap_or(u32::MAX))),
        Some(n) => Err(invalid(param, format!("{param} must be at least 1, got {n}"))),
    }
}

/// Checks a `top_logprobs` count.
pub fn validate_top_logprobs(param: &'static str, value: i64) -> Result<u8, ApiError> {
    u8::try_from(value)
        .ok()
        .filter(|n| *n <= MAX_TOP_LOGPROBS)
        .ok_or_else(|| invalid(param, format!("{param} must be between 0 and {MAX_TOP_LOGPROBS}, got {value}")))
}

/// `usage` in responses.
#[derive(Debug, Serialize)]
pub struct UsageBody {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    pub prompt_tokens_details: PromptTokensDetails,
}

/// How many prompt tokens came from the cache.
#[derive(Debug, Serialize)]
pub struct PromptTokensDetails {
    pub cached_tokens: u32,
}

impl From<&Completion> for UsageBody {
    fn from(completion: &Completion) -> Self {
        let usage = completion.usage;
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
            prompt_tokens_details: PromptTokensDetails { cached_tokens: usage.cached_tokens },
        }
    }
}

/// llama-server's `timings` extension: where the time of a request went.
#[derive(Debug, Serialize)]
pub struct TimingsBody {
    pub queued_ms: f64,
    pub prompt_n: u32,
    pub prompt_ms: f64,
    pub prompt_per_second: f64,
    pub predicted_n: u32,
    pub predicted_ms: f64,
    pub predicted_per_second: f64,
}

impl From<&Completion> for TimingsBody {
    fn from(completion: &Completion) -> Self {
        let t = completion.timings;
        let rate = |n: u32, ms: f64| {
            if ms > 0.0 {
                f64::from(n) * 1000.0 / ms
            } else {
                0.0
            }
        };
        Self {
            queued_ms: t.queued_ms,
            prompt_n: t.prompt_n,
            prompt_ms: t.prompt_ms,
            prompt_per_second: rate(t.prompt_n, t.prompt_ms),
            predicted_n: t.predicted_n,
            predicted_ms: t.predicted_ms,
            // The first token is counted in prompt time, so the rate is over the rest.
            predicted_per_second: rate(t.predicted_n.saturating_sub(1), t.predicted_ms),
        }
    }
}

/// One token and its log-probability, as chat `logprobs.content` lists them.
#[derive(Debug, Serialize)]
pub struct ChatTokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<ChatTopLogprob>,
}

/// An alternative token at a position.
#[derive(Debug, Serialize)]
pub struct ChatTopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

fn top_entry(top: &TopLogprob) -> ChatTopLogprob {
    ChatTopLogprob { token: top.token.clone(), logprob: top.logprob, bytes: top.bytes.clone() }
}

impl From<&TokenLogprob> for ChatTokenLogprob {
    fn from(entry: &TokenLogprob) -> Self {
        Self {
            token: entry.chosen.token.clone(),
            logprob: entry.chosen.logprob,
            bytes: entry.chosen.bytes.clone(),
            top_logprobs: entry.top.iter().map(top_entry).collect(),
        }
    }
}

/// Seconds since the Unix epoch, for `created`.
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A response id with the given prefix, unique within this process and unlikely to repeat across runs.
pub fn response_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{:x}{:08x}{:04x}", unix_seconds(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn keep_alive_takes_ollamas_strings_numbers_and_null() {
        let five_minutes = Some(KeepAlive::For(Duration::from_secs(300)));
        assert_eq!(keep_alive_of(Some(&json!("5m"))).unwrap(), five_minutes);
        assert_eq!(keep_alive_of(Some(&json!(300))).unwrap(), five_minutes);
        assert_eq!(keep_alive_of(Some(&json!(300.9))).unwrap(), five_minutes);
        assert_eq!(keep_alive_of(Some(&json!(0))).unwrap(), Some(KeepAlive::ZERO));
        assert_eq!(keep_alive_of(Some(&json!("0"))).unwrap(), Some(KeepAlive::ZERO));
        assert_eq!(keep_alive_of(Some(&json!(-1))).unwrap(), Some(KeepAlive::Forever));
        assert_eq!(keep_alive_of(Some(&json!("-1m"))).unwrap(), Some(KeepAlive::Forever));
        assert_eq!(keep_alive_of(Some(&Value::Null)).unwrap(), None);
        assert_eq!(keep_alive_of(None).unwrap(), None);
    }

    #[test]
    fn keep_alive_nonsense_names_the_field_and_the_forms() {
        for bad in [json!("soon"), json!(true), json!({"minutes": 5})] {
            let error = keep_alive_of(Some(&bad)).unwrap_err();
            let ApiError::InvalidField { param, message } = error else { panic!("{bad}: not a field error") };
            assert_eq!(param, "keep_alive");
            assert!(message.contains("5m") || message.contains("30s"), "{bad}: {message}");
        }
    }
}
