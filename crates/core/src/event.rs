//! What a backend streams back while it generates.

/// Why generation ended, as OpenAI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model emitted an end-of-generation token or a stop sequence matched.
    Stop,
    /// `max_tokens` was reached or the context filled up.
    Length,
    /// The answer ended with function calls for the client to run.
    ToolCalls,
}

impl FinishReason {
    /// The string OpenAI's API uses for this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

/// Token counts for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the prompt after templating.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Prompt tokens whose KV cache was reused from an earlier request instead of recomputed.
    pub cached_tokens: u32,
}

/// Where the time of one request went, measured inside the backend.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Time spent waiting for a free slot.
    pub queued_ms: f64,
    /// Prompt tokens actually computed (prompt minus reused prefix).
    pub prompt_n: u32,
    /// Time from entering a slot to the first generated token.
    pub prompt_ms: f64,
    /// Tokens generated.
    pub predicted_n: u32,
    /// Time from the first generated token to the last.
    pub predicted_ms: f64,
}

/// One of the most likely tokens at a position.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogprob {
    /// The token's text (lossy UTF-8 when the token is a partial character).
    pub token: String,
    /// The token's raw bytes.
    pub bytes: Vec<u8>,
    /// Natural log of its probability under the model.
    pub logprob: f32,
}

/// The log-probability of one generated token and its strongest alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token that was generated.
    pub chosen: TopLogprob,
    /// The most likely tokens at this position, most likely first.
    pub top: Vec<TopLogprob>,
}

/// Energy one request used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyUse {
    /// Joules.
    pub joules: f64,
    /// How it was measured: `rapl` or `cpu-time-model`.
    pub source: &'static str,
}

/// Summary sent once when a generation ends normally.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// Where the time went.
    pub timings: Timings,
    /// Energy used on this device, when known (not for cloud answers).
    pub energy: Option<EnergyUse>,
    /// For an answer constrained to choices (enums in its schema): how sure the model was of
    /// each value it chose. Empty otherwise, and for cloud answers.
    pub choices: Vec<ChoiceProbability>,
}

/// The probability the model gave one constrained choice it made.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceProbability {
    /// Where the value is in the answer, as a JSON Pointer (`/kind`, `/tags/0`; empty for the whole answer).
    pub path: String,
    /// The chosen value, as JSON text (`"scratch"`).
    pub value: String,
    /// Its probability among the values the schema allowed there, given what came before.
    pub probability: f32,
}

impl Completion {
    /// The least sure of the choices the answer made, if it made any.
    pub fn least_sure_choice(&self) -> Option<&ChoiceProbability> {
        self.choices.iter().min_by(|a, b| a.probability.total_cmp(&b.probability))
    }
}

/// Where a request ended up and why, sent before any text by routing backends.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteInfo {
    /// The side that answers.
    pub target: crate::request::RouteTarget,
    /// The model that answers, as clients name it.
    pub model: String,
    /// The answering model's tier (0 = the first tried), when the router has tiers.
    pub tier: Option<u32>,
    /// Why it went there.
    pub reason: crate::route::RouteReason,
    /// The models tried before this one, in order, and why each was left.
    pub tried: Vec<crate::route::RouteStep>,
    /// The complexity score, when one was computed.
    pub score: Option<f32>,
    /// Set when the score is the transparent scorer's because the configured one could not
    /// score this request (an embedding scorer without the query's embedding).
    pub score_fallback: Option<crate::route::ScoreFallback>,
    /// The request's domain.
    pub domain: Option<String>,
    /// Another model failed and this one stepped in; says what failed.
    pub fallback_from: Option<String>,
    /// What the answering side charges per million prompt tokens.
    pub price_input_per_mtok: f64,
    /// What it charges per million generated tokens.
    pub price_output_per_mtok: f64,
}

impl RouteInfo {
    /// The cost of a request with these token counts on this route.
    pub fn cost(&self, prompt_tokens: u32, completion_tokens: u32) -> f64 {
        token_cost(
            prompt_tokens.into(),
            completion_tokens.into(),
            self.price_input_per_mtok,
            self.price_output_per_mtok,
        )
    }
}

/// What tokens cost at prices per million prompt and generated tokens.
pub fn token_cost(
    prompt_tokens: u64,
    completion_tokens: u64,
    price_input_per_mtok: f64,
    price_output_per_mtok: f64,
) -> f64 {
    (prompt_tokens as f64 * price_input_per_mtok + completion_tokens as f64 * price_output_per_mtok) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_cost_uses_both_prices() {
        assert!((super::token_cost(1_000_000, 100_000, 2.0, 10.0) - 3.0).abs() < 1e-9);
    }
}

/// An item of a generation stream.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// Where the request is answered; at most once, before any text.
    Routed(RouteInfo),
    /// New output text, with the log-probabilities of the tokens it came from
    /// when they were asked for. Text may be empty while a possible stop
    /// sequence is held back.
    Delta {
        /// Text to append to the answer.
        text: String,
        /// One entry per token behind this delta (empty unless logprobs were requested).
        logprobs: Vec<TokenLogprob>,
    },
    /// A function call, or a piece of one (a cloud streams arguments in pieces).
    ToolCall(ToolCallDelta),
    /// The last event of a successful generation.
    Finished(Completion),
}

/// A function call as it streams: the first piece of a call carries its id
/// and name, later pieces with the same `index` append to its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallDelta {
    /// Which call of the answer this belongs to (0, 1, … in order).
    pub index: u32,
    /// The call's id (first piece only).
    pub id: Option<String>,
    /// The function's name (first piece only).
    pub name: Option<String>,
    /// More of the arguments' JSON text.
    pub arguments: String,
}
