//! Asking a backend one item and turning the answer into log rows.
//!
//! The backend is the same router `serve` uses, with the side forced, so an
//! evaluation measures exactly what production would answer (template,
//! sampling, fallbacks and all) and scores it as production would.

use std::time::Instant;

use edgeway_core::{
    Backend, BackendError, ChatMessage, GenerateRequest, GenerationEvent, Prompt, RouteHints, RouteInfo, RouteTarget,
    SamplingParams,
};
use edgeway_store::{EvalRecord, QueryRecord};

use crate::dataset::EvalItem;
use crate::judge::Judge;
use crate::task::{self, AnswerFormat};

/// Why an item got no gradable answer.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The backend refused or failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Another model answered (a fallback), so the answer says nothing about the one asked.
    #[error("asked {asked} but {answered} answered ({why}); not graded")]
    WrongRoute {
        /// The route asked for.
        asked: String,
        /// The model (and tier) that answered.
        answered: String,
        /// What failed.
        why: String,
    },
    /// The stream ended without its final event.
    #[error("the backend hung up before finishing")]
    Incomplete,
    /// The answer's code could not be run (no Python), so it was not graded.
    #[error("not graded: {0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
    /// An open answer, and no judge to grade it.
    #[error("not asked: an open answer needs a judge model to grade it")]
    NoJudge,
    /// The judge gave no rating, so the answer was not graded.
    #[error("not graded: {0}")]
    Judge(#[from] crate::judge::JudgeError),
}

impl From<task::GradeError> for RunError {
    fn from(error: task::GradeError) -> Self {
        match error {
            task::GradeError::Sandbox(error) => RunError::Sandbox(error),
            task::GradeError::NeedsJudge => RunError::NoJudge,
        }
    }
}

/// Where an evaluation asks its items: a side, a tier, or one model by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EvalRoute {
    /// The first local rung (`edge`) or the first cloud (`cloud`) of the item's domain.
    Side(RouteTarget),
    /// The item's domain's model on a tier (`tier1`, or `tier:1`).
    Tier(u32),
    /// One model, as clients name it.
    Model(String),
}

impl EvalRoute {
    /// Parses `edge`, `cloud`, `tierN` / `tier:N`, or else takes the text as a model name.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "edge" | "local" => EvalRoute::Side(RouteTarget::Edge),
            "cloud" | "remote" => EvalRoute::Side(RouteTarget::Cloud),
            lower => match lower.strip_prefix("tier").map(|n| n.trim_start_matches(':').parse::<u32>()) {
                Some(Ok(tier)) => EvalRoute::Tier(tier),
                _ => EvalRoute::Model(text.to_owned()),
            },
        }
    }

    /// The name the eval log files answers under: `edge`, `cloud`, `tier1` or the model's name.
    pub fn label(&self) -> String {
        match self {
            EvalRoute::Side(target) => target.as_str().to_owned(),
            EvalRoute::Tier(tier) => format!("tier{tier}"),
            EvalRoute::Model(model) => model.clone(),
        }
    }

    pub(crate) fn hints(&self, domain: Option<String>) -> RouteHints {
        let mut hints = RouteHints { domain, ..RouteHints::default() };
        match self {
            EvalRoute::Side(target) => hints.target = Some(*target),
            EvalRoute::Tier(tier) => hints.tier = Some(*tier),
            EvalRoute::Model(model) => hints.model = Some(model.clone()),
        }
        hints
    }

    /// Whether the answer came from where it was asked (not a fallback).
    pub(crate) fn answered_by(&self, info: &RouteInfo) -> bool {
        match self {
            EvalRoute::Side(target) => info.target == *target,
            EvalRoute::Tier(tier) => info.tier == Some(*tier),
            EvalRoute::Model(model) => info.model.eq_ignore_ascii_case(model),
        }
    }
}

/// The rows one answered item adds to the log.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The request, as the query log keeps every request.
    pub query: QueryRecord,
    /// The graded answer.
    pub result: EvalRecord,
}

/// The request that asks `item`: greedy, short, with log-probabilities for the confidence signal,
/// and a closed answer held to its schema when `format` says so.
pub fn request(item: &EvalItem, route: &EvalRoute, format: AnswerFormat) -> GenerateRequest {
    let ask = task::ask(item, format);
    GenerateRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new("user", ask.prompt)]),
        sampling: SamplingParams {
            temperature: 0.0,
            max_tokens: Some(ask.max_tokens),
            logprobs: Some(0),
            seed: Some(0),
            format: ask.format,
            ..SamplingParams::default()
        },
        route: route.hints(item.domain.clone()),
        tools: None,
        query_embedding: None,
    }
}

/// Asks `backend` (a router) to answer `item` on `route`, grades the answer, and builds its log rows.
/// An open answer needs a judge: see [`answer_with_judge`].
pub async fn answer(
    backend: &dyn Backend,
    run: &str,
    item: &EvalItem,
    asked: &EvalRoute,
    format: AnswerFormat,
) -> Result<Answered, RunError> {
    answer_with_judge(backend, run, item, asked, format, None).await
}

/// [`answer`], with `judge` to grade open answers ([`task::needs_judge`]) once they are
/// written; without one such an item is not asked ([`RunError::NoJudge`]).
pub async fn answer_with_judge(
    backend: &dyn Backend,
    run: &str,
    item: &EvalItem,
    asked: &EvalRoute,
    format: AnswerFormat,
    judge: Option<&Judge<'_>>,
) -> Result<Answered, RunError> {
    let judge = match (task::needs_judge(item), judge) {
        (true, None) => return Err(RunError::NoJudge),
        (true, Some(judge)) => Some(judge),
        (false, _) => None,
    };
    let started = Instant::now();
    let ts_ms = edgeway_store::record::now_ms();
    let request = request(item, asked, format);
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
    if let Some(info) = route.as_ref().filter(|info| !asked.answered_by(info)) {
        let tier = info.tier.map(|tier| format!(" on tier {tier}")).unwrap_or_default();
        return Err(RunError::WrongRoute {
            asked: asked.label(),
            answered: format!("{} ({}{tier})", info.model, info.target.as_str()),
            why: info.fallback_from.clone().unwrap_or_else(|| info.reason.as_str().to_owned()),
        });
    }
    let usage = completion.usage;
    let cost = route.as_ref().map_or(0.0, |r| r.cost(usage.prompt_tokens, usage.completion_tokens));
    let grade = if let Some(judge) = judge {
        judge.grade(item, &text).await?
    } else if task::runs_code(item) {
        // Running the tests takes up to the sandbox's time limit: off the runtime's threads.
        let (owned, answer) = (item.clone(), text.clone());
        tokio::task::spawn_blocking(move || task::try_grade(&owned, &answer))
            .await
            .map_err(|error| crate::sandbox::SandboxError::Io { what: "finish grading", reason: error.to_string() })??
    } else {
        task::try_grade(item, &text)?
    };
    // The confidence escalation would read: a constrained choice's own probability among the
    // allowed values, else the mean token logprob.
    let mean_logprob = match completion.least_sure_choice() {
        Some(choice) => Some(f64::from(choice.probability).ln()),
        None => (!logprobs.is_empty()).then(|| logprobs.iter().sum::<f64>() / logprobs.len() as f64),
    };
    let query = QueryRecord {
        ts_ms,
        key_id: None,
        endpoint: "eval".into(),
        domain: route.as_ref().and_then(|r| r.domain.clone()),
        score: route.as_ref().and_then(|r| r.score),
        route: route.as_ref().map_or(asked.label(), |r| r.target.as_str().to_owned()),
        reason: route.as_ref().map(|r| r.reason.as_str().to_owned()),
        model: route.as_ref().map(|r| r.model.clone()),
        fallback_from: None,
        tier: route.as_ref().and_then(|r| r.tier),
        tried: route.as_ref().and_then(|r| edgeway_core::route::steps_line(&r.tried)),
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
        label: None,
        precision: None,
    };
    let result = EvalRecord {
        run: run.to_owned(),
        dataset: item.dataset.clone(),
        item_id: item.id.clone(),
        subject: item.subject.clone(),
        route: asked.label(),
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
        let answered =
            answer(&backend, "r", &item("1"), &EvalRoute::Side(RouteTarget::Edge), AnswerFormat::Free).await.unwrap();
        assert!(answered.result.correct);
        assert_eq!(answered.result.extracted.as_deref(), Some("B"));
        assert_eq!(answered.result.reference, "B: sky");
        assert!(answered.result.mean_logprob.is_some());
        assert_eq!(answered.query.endpoint, "eval");
        assert_eq!(answered.query.answer_text.as_deref(), Some("The answer is B"));
        assert!(answered.result.question.contains("B. sky"));
    }

    #[tokio::test]
    async fn code_answers_are_graded_by_running_their_tests() {
        let mut code = item("c1");
        code.question = "Write a function to add two numbers.".into();
        code.choices.clear();
        code.reference = Reference::Code(crate::code::CodeCheck {
            tests: "assert add(1, 2) == 3".into(),
            entry_point: "add".into(),
            stub: None,
            setup: String::new(),
        });
        let edge = EvalRoute::Side(RouteTarget::Edge);
        let right = FakeBackend::new("fake", "```python\ndef add(a, b):\n    return a + b\n```");
        let answered = answer(&right, "r", &code, &edge, AnswerFormat::Free).await.unwrap();
        assert!(answered.result.correct, "{:?}", answered.result.extracted);
        assert_eq!(answered.result.extracted.as_deref(), Some("passed"));
        assert_eq!(answered.result.reference, "the tests of add");
        let wrong = FakeBackend::new("fake", "```python\ndef add(a, b):\n    return a * b\n```");
        let answered = answer(&wrong, "r", &code, &edge, AnswerFormat::Free).await.unwrap();
        assert_eq!(
            (answered.result.grade, answered.result.extracted.as_deref()),
            (0.0, Some("failed: AssertionError"))
        );
    }

    #[tokio::test]
    async fn open_answers_are_graded_by_the_judge_or_not_at_all() {
        let mut open = item("81");
        open.question = "Write a haiku about the sea.".into();
        open.choices.clear();
        open.reference = Reference::Judged(None);
        let edge = EvalRoute::Side(RouteTarget::Edge);
        let backend = FakeBackend::new("fake", "Waves fold into foam");
        assert!(matches!(answer(&backend, "r", &open, &edge, AnswerFormat::Free).await, Err(RunError::NoJudge)));
        assert!(backend.last_request().is_none(), "asked without a judge");

        let judge_model = FakeBackend::new("judge", r#"{"reason": "vivid", "rating": 7}"#).with_context(4096);
        let judge = Judge::new(&judge_model, EvalRoute::Side(RouteTarget::Cloud));
        let answered =
            answer_with_judge(&backend, "r", &open, &edge, AnswerFormat::Constrained, Some(&judge)).await.unwrap();
        assert_eq!(answered.result.answer, "Waves fold into foam");
        assert_eq!((answered.result.correct, answered.result.extracted.as_deref()), (true, Some("7/10 by cloud")));
        assert!((answered.result.grade - 6.0 / 9.0).abs() < 1e-12);
        assert_eq!(answered.result.reference, "(judged without a reference)");
        // The question goes out as written, unconstrained.
        let asked = backend.last_request().unwrap();
        assert_eq!(asked.sampling.format, None);
        assert_eq!(asked.sampling.max_tokens, Some(512));

        let silent = FakeBackend::new("judge", "No comment.").with_context(4096);
        let judge = Judge::new(&silent, EvalRoute::Side(RouteTarget::Cloud));
        let failed = answer_with_judge(&backend, "r", &open, &edge, AnswerFormat::Free, Some(&judge)).await;
        assert!(matches!(failed, Err(RunError::Judge(_))), "{failed:?}");
    }

    #[test]
    fn routes_parse_sides_tiers_and_model_names() {
        assert_eq!(EvalRoute::parse("edge"), EvalRoute::Side(RouteTarget::Edge));
        assert_eq!(EvalRoute::parse("Cloud"), EvalRoute::Side(RouteTarget::Cloud));
        assert_eq!(EvalRoute::parse("tier1"), EvalRoute::Tier(1));
        assert_eq!(EvalRoute::parse("tier:2"), EvalRoute::Tier(2));
        assert_eq!(EvalRoute::parse("qwen2.5-0.5b"), EvalRoute::Model("qwen2.5-0.5b".into()));
        assert_eq!(EvalRoute::parse("tierless"), EvalRoute::Model("tierless".into()));
        assert_eq!(EvalRoute::Tier(1).label(), "tier1");
        assert_eq!(EvalRoute::parse("edge").hints(None).target, Some(RouteTarget::Edge));
        assert_eq!(EvalRoute::Tier(3).hints(Some("code".into())).tier, Some(3));
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
