//! Asking a backend one item and turning the answer into log rows.
//!
//! The backend is the same router `serve` uses, with the side forced, so an
//! evaluation measures exactly what production would answer (template,
//! sampling, fallbacks and all) and scores it as production would.

use std::time::Instant;

use edgeway_core::{
    Backend, BackendError, ChatMessage, GenerateRequest, GenerationEvent, Prompt, RouteHints, RouteTarget,
    SamplingParams,
};
use edgeway_store::{EvalRecord, QueryRecord};

use crate::dataset::EvalItem;
use crate::task;

/// Why an item got no gradable answer.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The backend refused or failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The other side answered (a fallback), so the answer says nothing about this one.
    #[error("asked the {asked} side but the {answered} side answered ({why}); not graded")]
    WrongSide {
        /// The side asked for.
        asked: &'static str,
        /// The side that answered.
        answered: &'static str,
        /// What failed.
        why: String,
    },
    /// The stream ended without its final event.
    #[error("the backend hung up before finishing")]
    Incomplete,
}

/// The rows one answered item adds to the log.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The request, as the query log keeps every request.
    pub query: QueryRecord,
    /// The graded answer.
    pub result: EvalRecord,
}

/// The request that asks `item`: greedy, short, with log-probabilities for the confidence signal.
pub fn request(item: &EvalItem, target: RouteTarget) -> GenerateRequest {
    GenerateRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new("user", task::prompt(item))]),
        sampling: SamplingParams {
            temperature: 0.0,
            max_tokens: Some(task::max_tokens(item)),
            logprobs: Some(0),
            seed: Some(0),
            ..SamplingParams::default()
        },
        route: RouteHints {
            model: None,
            target: Some(target),
            domain: item.domain.clone(),
            stream: false,
            keep_alive: None,
        },
        tools: None,
    }
}

/// Asks `backend` (a router) to answer `item` on `target`, grades the answer, and builds its log rows.
pub async fn answer(
    backend: &dyn Backend,
    run: &str,
    item: &EvalItem,
    target: RouteTarget,
) -> Result<Answered, RunError> {
    let started = Instant::now();
    let ts_ms = edgeway_store::record::now_ms();
    let request = request(item, target);
    let question = match &request.prompt {
        Prompt::Chat(messages) => messages[0].content.clone(),
        Prompt::Text(text) => text.clone(),
    };
    let mut generation = backend.submit(request)?;
    let mut route = None;
    let mut text = String::new();
    let mut logprobs = Vec::new();
    let mut ttft_ms = None;
    let completion = loop {
        match generation.next_event().await {
            Some(Ok(GenerationEvent::Routed(info))) => route = Some(info),
            Some(Ok(GenerationEvent::Delta { text: delta, logprobs: entries })) => {
                if ttft_ms.is_none() && !delta.is_empty() {
                    ttft_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                }
                text.push_str(&delta);
                logprobs.extend(entries.iter().map(|entry| f64::from(entry.chosen.logprob)));
            }
            // Eval requests offer no tools.
            Some(Ok(GenerationEvent::ToolCall(_))) => {}
            Some(Ok(GenerationEvent::Finished(completion))) => break completion,
            Some(Err(error)) => return Err(error.into()),
            None => return Err(RunError::Incomplete),
        }
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Some(info) = route.as_ref().filter(|info| info.target != target) {
        return Err(RunError::WrongSide {
            asked: target.as_str(),
            answered: info.target.as_str(),
            why: info.fallback_from.clone().unwrap_or_else(|| info.reason.clone()),
        });
    }
    let usage = completion.usage;
    let cost = route.as_ref().map_or(0.0, |r| r.cost(usage.prompt_tokens, usage.completion_tokens));
    let grade = task::grade(item, &text);
    let mean_logprob = (!logprobs.is_empty()).then(|| logprobs.iter().sum::<f64>() / logprobs.len() as f64);
    let query = QueryRecord {
        ts_ms,
        key_id: None,
        endpoint: "eval".into(),
        domain: route.as_ref().and_then(|r| r.domain.clone()),
        score: route.as_ref().and_then(|r| r.score),
        route: target.as_str().into(),
        reason: route.as_ref().map(|r| r.reason.clone()),
        model: route.as_ref().map(|r| r.model.clone()),
        fallback_from: None,
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        cached_tokens: usage.cached_tokens,
        ttft_ms,
        latency_ms,
        cost,
        energy_j: completion.energy.map(|e| e.joules),
        energy_source: completion.energy.map(|e| e.source.to_owned()),
        status: "ok".into(),
        error: None,
        prompt_text: Some(question.clone()),
        answer_text: Some(text.clone()),
        format: None,
        format_verdict: None,
    };
    let result = EvalRecord {
        run: run.to_owned(),
        dataset: item.dataset.clone(),
        item_id: item.id.clone(),
        subject: item.subject.clone(),
        route: target.as_str().into(),
        model: query.model.clone(),
        domain: query.domain.clone(),
        score: query.score,
        question,
        reference: item.reference.display(&item.choices),
        answer: text,
        extracted: grade.extracted,
        grade: grade.score,
        correct: grade.correct,
        mean_logprob,
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        latency_ms,
        cost,
        energy_j: query.energy_j,
    };
    Ok(Answered { query, result })
}

/// A deterministic sample of at most `limit` items, spread across the set
/// (MMLU's subjects, say) rather than its first rows: items are ordered by a
/// hash of their id, so the sample is the same on every machine and run.
pub fn sample(mut items: Vec<EvalItem>, limit: Option<usize>) -> Vec<EvalItem> {
    if let Some(limit) = limit.filter(|&limit| limit < items.len()) {
        items.sort_by_key(|item| edgeway_core::hash::fnv1a(format!("{}/{}", item.dataset, item.id).as_bytes()));
        items.truncate(limit);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Reference;
    use edgeway_core::fake::FakeBackend;

    fn item(id: &str) -> EvalItem {
        EvalItem {
            dataset: "t".into(),
            id: id.into(),
            subject: None,
            domain: None,
            question: "Which is blue?".into(),
            context: None,
            choices: vec!["grass".into(), "sky".into()],
            reference: Reference::Choice(1),
        }
    }

    #[tokio::test]
    async fn answers_are_graded_and_logged() {
        let backend = FakeBackend::new("fake", "The answer is B");
        let answered = answer(&backend, "r", &item("1"), RouteTarget::Edge).await.unwrap();
        assert!(answered.result.correct);
        assert_eq!(answered.result.extracted.as_deref(), Some("B"));
        assert_eq!(answered.result.reference, "B: sky");
        assert!(answered.result.mean_logprob.is_some());
        assert_eq!(answered.query.endpoint, "eval");
        assert_eq!(answered.query.answer_text.as_deref(), Some("The answer is B"));
        assert!(answered.result.question.contains("B. sky"));
    }

    #[test]
    fn samples_are_stable_and_bounded() {
        let items: Vec<EvalItem> = (0..100).map(|i| item(&i.to_string())).collect();
        let a = sample(items.clone(), Some(10));
        let b = sample(items.clone().into_iter().rev().collect(), Some(10));
        assert_eq!(a.len(), 10);
        assert_eq!(a, b);
        assert_eq!(sample(items, None).len(), 100);
    }
}
