//! From a backend's [`Generation`] to a response body: collected whole, or as
//! server-sent events.
//!
//! Both endpoints share this code through [`ChunkShape`], which says how
//! their chunks look; the order of events and the `[DONE]` marker live here
//! once.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use edgeway_core::{Completion, Generation, GenerationEvent, TokenLogprob};
use futures::Stream;
use serde_json::Value;

use crate::error::ApiError;

/// A generation run to its end.
pub struct Collected {
    /// The whole answer.
    pub text: String,
    /// One entry per generated token, when asked for.
    pub logprobs: Vec<TokenLogprob>,
    /// How it ended.
    pub completion: Completion,
}

/// Waits for the whole answer.
pub async fn collect(mut generation: Generation) -> Result<Collected, ApiError> {
    let mut text = String::new();
    let mut logprobs = Vec::new();
    while let Some(event) = generation.next_event().await {
        match event? {
            GenerationEvent::Delta { text: piece, logprobs: entries } => {
                text.push_str(&piece);
                logprobs.extend(entries);
            }
            GenerationEvent::Finished(completion) => return Ok(Collected { text, logprobs, completion }),
        }
    }
    Err(ApiError::Backend(edgeway_core::BackendError::Internal("the generation ended without finishing".into())))
}

/// How one endpoint's streamed chunks look.
pub trait ChunkShape: Send + 'static {
    /// Chunks to send before any text (chat sends the assistant role).
    fn opening(&mut self) -> Vec<Value>;
    /// A chunk for new text.
    fn delta(&mut self, text: String, logprobs: &[TokenLogprob]) -> Value;
    /// Chunks that close the stream: the finish reason, then usage if asked for.
    fn closing(&mut self, completion: &Completion) -> Vec<Value>;
}

/// Streams a generation as server-sent events, ending with `data: [DONE]`.
///
/// Dropping the response body (the client went away) drops the
/// [`Generation`], which frees the backend's slot.
pub fn sse_response(generation: Generation, shape: impl ChunkShape) -> Response {
    let mut state = SseState { generation, shape, pending: VecDeque::new(), done: false };
    state.pending.extend(state.shape.opening().into_iter().map(json_event));
    Sse::new(sse_events(state)).into_response()
}

struct SseState<S> {
    generation: Generation,
    shape: S,
    pending: VecDeque<Event>,
    done: bool,
}

fn json_event(value: Value) -> Event {
    Event::default().data(value.to_string())
}

fn sse_events<S: ChunkShape>(state: SseState<S>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            if state.done {
                return None;
            }
            match state.generation.next_event().await {
                Some(Ok(GenerationEvent::Delta { text, logprobs })) => {
                    if !text.is_empty() || !logprobs.is_empty() {
                        let chunk = state.shape.delta(text, &logprobs);
                        state.pending.push_back(json_event(chunk));
                    }
                }
                Some(Ok(GenerationEvent::Finished(completion))) => {
                    state.pending.extend(state.shape.closing(&completion).into_iter().map(json_event));
                    state.pending.push_back(Event::default().data("[DONE]"));
                    state.done = true;
                }
                Some(Err(error)) => {
                    state.pending.push_back(json_event(ApiError::from(error).body()));
                    state.done = true;
                }
                None => {
                    let error = edgeway_core::BackendError::Internal("the generation ended without finishing".into());
                    state.pending.push_back(json_event(ApiError::from(error).body()));
                    state.done = true;
                }
            }
        }
    })
}
