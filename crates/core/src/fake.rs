//! A deterministic [`Backend`] for testing the layers above the engine.
//!
//! It "generates" a fixed reply one word per token, honouring `max_tokens`,
//! stop sequences and logprobs, so the HTTP layer's shaping can be tested in
//! milliseconds. It can also be scripted to call functions
//! ([`FakeBackend::with_tool_calls`]), and it keeps the last request it was
//! given ([`FakeBackend::last_request`]) so tests can see what the HTTP layer built. It is never a substitute for the integration suite, which
//! runs the real model.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::backend::{Backend, BackendError, BackendLoad, Generation, ModelInfo};
use crate::event::{
    Completion, FinishReason, GenerationEvent, Timings, TokenLogprob, ToolCallDelta, TopLogprob, Usage,
};
use crate::request::{GenerateRequest, Prompt, ToolCall};
use crate::text::TextAssembler;

/// A backend that replies with a canned text.
#[derive(Debug, Clone)]
pub struct FakeBackend {
    info: ModelInfo,
    reply: String,
    /// Pause between tokens, so tests can disconnect mid-stream.
    token_delay: Duration,
    /// Requests allowed in flight before `QueueFull`.
    capacity: u32,
    in_flight: Arc<AtomicU32>,
    /// Power draw to report, for tests of the power budget.
    power_watts: Option<f64>,
    /// A constrained choice to report on `Finished`, for tests of choice confidence.
    choice: Option<crate::event::ChoiceProbability>,
    /// Calls to make after the reply's text, when the request offers tools it may call.
    tool_calls: Vec<ToolCall>,
    /// The last request submitted.
    last_request: Arc<Mutex<Option<GenerateRequest>>>,
    /// Says it wants the query's embedding, as a router with an embedding scorer does.
    wants_embedding: bool,
}

impl FakeBackend {
    /// A fake serving `model_id` that answers every prompt with `reply`.
    pub fn new(model_id: &str, reply: &str) -> Self {
        Self {
            info: ModelInfo {
                id: model_id.to_owned(),
                path: None,
                n_ctx_slot: 64,
                n_ctx_train: 64,
                n_params: 0,
                size_bytes: 0,
                parallel: 1,
                price_input_per_mtok: 0.0,
                price_output_per_mtok: 0.0,
            },
            reply: reply.to_owned(),
            token_delay: Duration::ZERO,
            capacity: u32::MAX,
            in_flight: Arc::new(AtomicU32::new(0)),
            power_watts: None,
            choice: None,
            tool_calls: Vec::new(),
            last_request: Arc::new(Mutex::new(None)),
            wants_embedding: false,
        }
    }

    /// Asks for the query's embedding on every request ([`Backend::wants_query_embedding`]).
    pub fn wanting_query_embedding(mut self) -> Self {
        self.wants_embedding = true;
        self
    }

    /// Reports that the answer chose `value` with this probability (as an enum answer would).
    pub fn with_choice(mut self, value: &str, probability: f32) -> Self {
        self.choice =
            Some(crate::event::ChoiceProbability { path: String::new(), value: value.to_owned(), probability });
        self
    }

    /// Scripts function calls: after the reply's text (which may be empty), each call is
    /// streamed as two [`GenerationEvent::ToolCall`] pieces (its id, name and the first half
    /// of its arguments, then the rest, as a cloud streams them) and the answer finishes
    /// with [`FinishReason::ToolCalls`]. Only requests that offer a tool they may call get
    /// the calls; the others get the text alone, as from a real model.
    pub fn with_tool_calls(mut self, calls: Vec<ToolCall>) -> Self {
        self.tool_calls = calls;
        self
    }

    /// The last request submitted, as the HTTP layer built it.
    pub fn last_request(&self) -> Option<GenerateRequest> {
        self.last_request.lock().ok().and_then(|last| last.clone())
    }

    /// Accepts prompts of up to `n_ctx_slot` words (64 by default), for prompts longer than a test question.
    pub fn with_context(mut self, n_ctx_slot: u32) -> Self {
        self.info.n_ctx_slot = n_ctx_slot;
        self.info.n_ctx_train = n_ctx_slot;
        self
    }

    /// Reports this power draw in `load()`.
    pub fn with_power_watts(mut self, watts: f64) -> Self {
        self.power_watts = Some(watts);
        self
    }

    /// Waits this long before each token.
    pub fn with_token_delay(mut self, delay: Duration) -> Self {
        self.token_delay = delay;
        self
    }

    /// Refuses requests beyond `capacity` in flight.
    pub fn with_capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// Requests currently generating; falls to zero when streams are dropped.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// Decrements the in-flight counter when a fake generation ends for any reason.
struct InFlightGuard(Arc<AtomicU32>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts "tokens" the way the fake generates them: one per whitespace-separated word.
fn count_words(prompt: &Prompt) -> u32 {
    let words = match prompt {
        Prompt::Text(text) => text.split_whitespace().count(),
        Prompt::Chat(messages) => messages.iter().map(|m| m.content.split_whitespace().count() + 1).sum(),
    };
    u32::try_from(words).unwrap_or(u32::MAX)
}

impl Backend for FakeBackend {
    fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    fn load(&self) -> BackendLoad {
        BackendLoad { busy_slots: self.in_flight(), queued: 0, power_watts: self.power_watts, cloud_up: None }
    }

    fn tokenize(&self, prompt: &Prompt) -> Result<Vec<u32>, BackendError> {
        Ok((0..count_words(prompt)).collect())
    }

    fn wants_query_embedding(&self, _request: &GenerateRequest) -> bool {
        self.wants_embedding
    }

    fn submit(&self, request: GenerateRequest) -> Result<Generation, BackendError> {
        let prompt_tokens = count_words(&request.prompt);
        if prompt_tokens >= self.info.n_ctx_slot {
            return Err(BackendError::PromptTooLong { n_prompt: prompt_tokens, n_ctx: self.info.n_ctx_slot });
        }
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(BackendError::QueueFull { slots: self.capacity, queued: 0 });
        }
        let guard = InFlightGuard(self.in_flight.clone());
        if let Ok(mut last) = self.last_request.lock() {
            *last = Some(request.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let words: Vec<String> = self.reply.split_inclusive(' ').map(str::to_owned).collect();
        let callable = request.tools.as_ref().is_some_and(|tools| tools.callable().next().is_some());
        let calls = if callable { call_pieces(&self.tool_calls) } else { Vec::new() };
        let delay = self.token_delay;
        let choice = self.choice.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let sampling = request.sampling;
            let mut assembler = TextAssembler::new(&sampling.stop);
            let max = sampling.max_tokens.unwrap_or(u32::MAX);
            let mut generated = 0;
            let mut finish_reason = FinishReason::Stop;
            for word in &words {
                if generated == max {
                    finish_reason = FinishReason::Length;
                    break;
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                generated += 1;
                let pushed = assembler.push(word.as_bytes());
                let logprobs = match sampling.logprobs {
                    Some(n) => vec![TokenLogprob {
                        chosen: TopLogprob { token: word.clone(), bytes: word.as_bytes().to_vec(), logprob: -0.5 },
                        top: (0..n)
                            .map(|i| TopLogprob {
                                token: word.clone(),
                                bytes: word.as_bytes().to_vec(),
                                logprob: -0.5 - f32::from(i),
                            })
                            .collect(),
                    }],
                    None => Vec::new(),
                };
                if tx.send(Ok(GenerationEvent::Delta { text: pushed.text, logprobs })).is_err() {
                    return;
                }
                if pushed.stopped {
                    break;
                }
            }
            let rest = assembler.finish();
            if !rest.is_empty() && tx.send(Ok(GenerationEvent::Delta { text: rest, logprobs: Vec::new() })).is_err() {
                return;
            }
            if finish_reason == FinishReason::Stop && !calls.is_empty() {
                finish_reason = FinishReason::ToolCalls;
                for piece in calls {
                    if tx.send(Ok(GenerationEvent::ToolCall(piece))).is_err() {
                        return;
                    }
                }
            }
            let usage = Usage { prompt_tokens, completion_tokens: generated, cached_tokens: 0 };
            let timings = Timings { predicted_n: generated, ..Timings::default() };
            let _ = tx.send(Ok(GenerationEvent::Finished(Completion {
                finish_reason,
                usage,
                timings,
                energy: None,
                choices: choice.into_iter().collect(),
            })));
        });
        Ok(Generation::new(prompt_tokens, rx))
    }
}

/// The scripted calls as streamed pieces: two per call, split in the middle of the arguments.
fn call_pieces(calls: &[ToolCall]) -> Vec<ToolCallDelta> {
    let mut pieces = Vec::with_capacity(calls.len() * 2);
    for (index, call) in (0u32..).zip(calls) {
        let mut middle = call.arguments.len() / 2;
        while !call.arguments.is_char_boundary(middle) {
            middle -= 1;
        }
        let (head, tail) = call.arguments.split_at(middle);
        pieces.push(ToolCallDelta {
            index,
            id: Some(call.id.clone()),
            name: Some(call.name.clone()),
            arguments: head.to_owned(),
        });
        pieces.push(ToolCallDelta { index, id: None, name: None, arguments: tail.to_owned() });
    }
    pieces
}

/// An embedder whose vectors depend only on the words of the input (bag of
/// hashed words, normalized): similar texts get similar vectors, in microseconds.
#[derive(Debug, Clone)]
pub struct FakeEmbedder {
    info: crate::embed::EmbeddingInfo,
    /// Texts embedded so far, shared by clones.
    embedded: Arc<AtomicU32>,
}

impl FakeEmbedder {
    /// A fake serving `model_id` with vectors of `dims`.
    pub fn new(model_id: &str, dims: usize) -> Self {
        Self {
            info: crate::embed::EmbeddingInfo { id: model_id.to_owned(), dims, max_tokens: 256, size_bytes: 0 },
            embedded: Arc::new(AtomicU32::new(0)),
        }
    }

    /// How many texts it has embedded (by this fake and its clones), so tests can check that
    /// a request's text is embedded once.
    pub fn embedded(&self) -> u32 {
        self.embedded.load(Ordering::SeqCst)
    }
}

impl crate::embed::EmbeddingBackend for FakeEmbedder {
    fn embedding_info(&self) -> &crate::embed::EmbeddingInfo {
        &self.info
    }

    fn embed(&self, inputs: &[String]) -> Result<crate::embed::EmbeddingOutput, BackendError> {
        self.embedded.fetch_add(u32::try_from(inputs.len()).unwrap_or(u32::MAX), Ordering::SeqCst);
        let mut tokens = 0;
        let vectors = inputs
            .iter()
            .map(|text| {
                let mut vector = vec![0f32; self.info.dims];
                for word in text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
                    tokens += 1;
                    let hash = crate::hash::fnv1a(word.as_bytes());
                    vector[(hash % self.info.dims as u64) as usize] += 1.0;
                }
                let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                vector.iter().map(|v| v / norm).collect()
            })
            .collect();
        Ok(crate::embed::EmbeddingOutput { vectors, prompt_tokens: tokens + 2 * inputs.len() as u32 })
    }
}
