//! Ollama's answers to `/api/chat`, `/api/generate` and the embedding routes.

use std::time::Duration;

use edgeway_core::{Completion, FinishReason, TokenLogprob, ToolCall};
use serde::Serialize;

use super::request::OllamaToolCall;
use super::time;

/// Which endpoint a reply answers: they differ only in where the text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// `/api/chat`: the text in `message.content`.
    Chat,
    /// `/api/generate`: the text in `response`.
    Generate,
}

/// The assistant's message in a chat reply.
#[derive(Debug, Serialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// The text (a piece of it, when streamed).
    pub content: String,
    /// The calls the model made (each whole, in the line it completed on, when streamed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<OllamaToolCall>,
}

/// One reply object: a streamed line, the last line, or a whole answer.
#[derive(Debug, Serialize)]
pub struct Reply {
    /// The model's name, as the request gave it.
    pub model: String,
    /// When this object was made (RFC 3339).
    pub created_at: String,
    /// The chat reply's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<AssistantMessage>,
    /// The generate reply's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Whether this is the last object.
    pub done: bool,
    /// Why it ended: `stop`, `length`, or `load` for the load call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<&'static str>,
    /// Counters and durations, on the last object.
    #[serde(flatten)]
    pub stats: Option<Stats>,
    /// Per-token log-probabilities, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<Logprob>>,
    /// edgeway's extension on a whole answer: retrieval's sources, the format check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_edgeway: Option<serde_json::Value>,
}

impl Reply {
    /// A reply that is not the last: text (a piece of it when streamed).
    pub fn text(kind: ReplyKind, model: &str, text: String) -> Self {
        let (message, response) = match kind {
            ReplyKind::Chat => {
                (Some(AssistantMessage { role: "assistant", content: text, tool_calls: Vec::new() }), None)
            }
            ReplyKind::Generate => (None, Some(text)),
        };
        Self {
            model: model.to_owned(),
            created_at: time::now(),
            message,
            response,
            done: false,
            done_reason: None,
            stats: None,
            logprobs: None,
            x_edgeway: None,
        }
    }

    /// The last reply of a generation, with its counters; `text` is empty when streamed.
    pub fn finished(kind: ReplyKind, model: &str, text: String, completion: &Completion, elapsed: Duration) -> Self {
        Self {
            done: true,
            // Ollama ends an answer with calls as `stop`.
            done_reason: Some(match completion.finish_reason {
                FinishReason::ToolCalls => "stop",
                reason => reason.as_str(),
            }),
            stats: Some(Stats::new(completion, elapsed)),
            ..Self::text(kind, model, text)
        }
    }

    /// The answer to Ollama's "load the model" call, once the model is in memory.
    pub fn loaded(kind: ReplyKind, model: &str) -> Self {
        Self { done: true, done_reason: Some("load"), ..Self::text(kind, model, String::new()) }
    }

    /// The answer to Ollama's "unload the model" call (no prompt, `keep_alive` 0).
    pub fn unloaded(kind: ReplyKind, model: &str) -> Self {
        Self { done: true, done_reason: Some("unload"), ..Self::text(kind, model, String::new()) }
    }

    /// Adds the calls the model made (chat replies only).
    pub fn with_tool_calls(mut self, calls: Vec<ToolCall>) -> Self {
        if let Some(message) = self.message.as_mut() {
            message.tool_calls = calls
                .into_iter()
                .enumerate()
                .map(|(i, call)| {
                    let mut call = OllamaToolCall::from(call);
                    call.function.index = Some(i as u32);
                    call
                })
                .collect();
        }
        self
    }

    /// Adds log-probabilities for these tokens.
    pub fn with_logprobs(mut self, wanted: bool, entries: &[TokenLogprob]) -> Self {
        if wanted {
            self.logprobs = Some(entries.iter().map(Logprob::from).collect());
        }
        self
    }
}

/// The counters of a finished generation; durations in nanoseconds, as Ollama gives them.
#[derive(Debug, Serialize)]
pub struct Stats {
    /// From the request's arrival to its end.
    pub total_duration: u64,
    /// Waiting for a free slot (the model itself is loaded before the server answers).
    pub load_duration: u64,
    /// Tokens in the prompt, after the chat template.
    pub prompt_eval_count: u32,
    /// Reading the prompt.
    pub prompt_eval_duration: u64,
    /// Tokens generated.
    pub eval_count: u32,
    /// Generating them.
    pub eval_duration: u64,
}

impl Stats {
    /// The counters of `completion`, whose request has taken `elapsed` so far.
    pub fn new(completion: &Completion, elapsed: Duration) -> Self {
        let timings = completion.timings;
        Self {
            total_duration: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            load_duration: nanos(timings.queued_ms),
            prompt_eval_count: completion.usage.prompt_tokens,
            prompt_eval_duration: nanos(timings.prompt_ms),
            eval_count: completion.usage.completion_tokens,
            eval_duration: nanos(timings.predicted_ms),
        }
    }
}

/// Milliseconds as whole nanoseconds.
fn nanos(ms: f64) -> u64 {
    Duration::try_from_secs_f64(ms / 1000.0).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A generated token and its log-probability, with the likeliest alternatives.
#[derive(Debug, Serialize)]
pub struct Logprob {
    /// The token's text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// Its bytes (a token may end mid-character).
    pub bytes: Vec<u8>,
    /// The alternatives asked for with `top_logprobs`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_logprobs: Vec<TopLogprob>,
}

/// An alternative token at a position.
#[derive(Debug, Serialize)]
pub struct TopLogprob {
    /// The token's text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl From<&TokenLogprob> for Logprob {
    fn from(entry: &TokenLogprob) -> Self {
        let top = |t: &edgeway_core::TopLogprob| TopLogprob {
            token: t.token.clone(),
            logprob: t.logprob,
            bytes: t.bytes.clone(),
        };
        Self {
            token: entry.chosen.token.clone(),
            logprob: entry.chosen.logprob,
            bytes: entry.chosen.bytes.clone(),
            top_logprobs: entry.top.iter().map(top).collect(),
        }
    }
}

/// `POST /api/embed`'s answer.
#[derive(Debug, Serialize)]
pub struct EmbedReply {
    /// The model's name, as the request gave it.
    pub model: String,
    /// One unit-length vector per input, in order.
    pub embeddings: Vec<Vec<f32>>,
    /// From the request's arrival to its end, in nanoseconds.
    pub total_duration: u64,
    /// Not measured apart from the rest (the model loads with its first request): 0.
    pub load_duration: u64,
    /// Tokens read over all inputs.
    pub prompt_eval_count: u32,
}

/// `POST /api/embeddings`' (legacy) answer.
#[derive(Debug, Serialize)]
pub struct LegacyEmbedding {
    /// The prompt's vector (empty for an empty prompt, Ollama's load call).
    pub embedding: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeway_core::{FinishReason, Timings, Usage};

    #[test]
    fn the_last_line_carries_nanoseconds_and_the_reason() {
        let completion = Completion {
            finish_reason: FinishReason::Length,
            usage: Usage { prompt_tokens: 9, completion_tokens: 4, cached_tokens: 0 },
            timings: Timings { queued_ms: 1.5, prompt_n: 9, prompt_ms: 20.0, predicted_n: 4, predicted_ms: 30.25 },
            energy: None,
            choices: Vec::new(),
        };
        let reply = Reply::finished(ReplyKind::Chat, "m", String::new(), &completion, Duration::from_millis(60));
        let json = serde_json::to_value(reply).unwrap();
        assert_eq!(json["done"], true);
        assert_eq!(json["done_reason"], "length");
        assert_eq!(json["message"]["content"], "");
        assert!(json.get("response").is_none());
        assert_eq!(json["total_duration"], 60_000_000);
        assert_eq!(json["load_duration"], 1_500_000);
        assert_eq!(json["prompt_eval_duration"], 20_000_000);
        assert_eq!(json["eval_duration"], 30_250_000);
        assert_eq!((json["prompt_eval_count"].as_u64(), json["eval_count"].as_u64()), (Some(9), Some(4)));
        let line = serde_json::to_value(Reply::text(ReplyKind::Generate, "m", "hi".into())).unwrap();
        assert_eq!((line["response"].as_str(), line["done"].as_bool()), (Some("hi"), Some(false)));
        assert!(line.get("total_duration").is_none() && line.get("message").is_none());
    }
}
