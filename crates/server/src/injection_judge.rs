//! The prompt-injection judge in the request path ([`edgeway_guard::injection::judge`]): when
//! the guard has one configured, a text the rules and the classifier let through is shown to a
//! model this server runs locally, and the judge's probability can flag it too.
//!
//! A judge that cannot answer (its model busy past the queue, unloaded, failing) flags nothing:
//! the text was still screened by the rules and the classifier, and the request goes on.

use std::sync::Arc;

use edgeway_core::{Backend, BackendError, GenerateRequest, GenerationEvent, Prompt, RouteHints, SamplingParams};
use edgeway_guard::injection::{judge, Channel};
use edgeway_guard::Caller;

use crate::state::AppState;

/// Whether the judge flags `text`, arriving on `channel` from `source` (false without a judge).
pub async fn flags(state: &AppState, caller: &Caller, text: &str, channel: Channel, source: &str) -> bool {
    let guard = state.guard();
    let (Some(settings), Some(backend)) = (guard.injection_judge(), state.backend()) else {
        return false;
    };
    match probability(backend.clone(), &settings.model, text).await {
        Ok(probability) => guard.judged(caller, text, channel, source, probability),
        Err(error) => {
            tracing::warn!(%error, model = %settings.model, channel = channel.as_str(), "the injection judge did not answer; the text was screened by the rules and the classifier only");
            false
        }
    }
}

/// The judge's probability that `text` holds an injection: one greedy token from `model`, read
/// from its log-probabilities.
async fn probability(backend: Arc<dyn Backend>, model: &str, text: &str) -> Result<f32, BackendError> {
    let request = GenerateRequest {
        prompt: Prompt::Chat(judge::conversation(text)),
        sampling: SamplingParams {
            temperature: 0.0,
            max_tokens: Some(1),
            logprobs: Some(judge::TOP_LOGPROBS),
            ..SamplingParams::default()
        },
        route: RouteHints { model: Some(model.to_owned()), ..RouteHints::default() },
        tools: None,
        query_embedding: None,
    };
    let mut generation = edgeway_core::submit_off_runtime(backend, request).await?;
    while let Some(event) = generation.next_event().await {
        if let GenerationEvent::Delta { logprobs, .. } = event? {
            if let Some(first) = logprobs.first() {
                return judge::probability(&first.top)
                    .ok_or_else(|| BackendError::Internal(format!("the judge '{model}' answered neither Yes nor No")));
            }
        }
    }
    Err(BackendError::Internal(format!("the judge '{model}' gave no answer")))
}
