//! Climbing a ladder: try a rung, and on low confidence, failure, overload or
//! a wrong-shaped answer move to the next one, until one answers.
//!
//! Nothing reaches the client before a rung is kept: a probed answer is held
//! until its confidence is judged, a cloud's until its first output (and, for
//! a structured request, until its shape is checked). Every move is recorded
//! as a [`RouteStep`], so the `Routed` event says what was tried and why.

use std::sync::Arc;
use std::time::Duration;

use edgeway_core::{
    BackendError, GenerateRequest, Generation, GenerationEvent, RouteInfo, RouteReason, RouteStep, RouteTarget,
    ScoreFallback, StepOutcome,
};
use edgeway_policy::InvalidCloudAnswer;
use tokio::sync::mpsc;

use crate::shape::{hold_answer, shape_check};
use crate::tiers::Member;
use crate::CascadeConfig;

/// Where the events of a routed request go.
pub(crate) type EventSender = mpsc::UnboundedSender<Result<GenerationEvent, BackendError>>;

/// How failures are handled on the way up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalkSettings {
    /// How long a failed cloud is left alone.
    pub cooldown: Duration,
    /// Extra attempts at a cloud that fails before any output.
    pub retries: u32,
    /// Wait before the first retry; doubles after.
    pub backoff: Duration,
    /// What a wrong-shaped cloud answer leads to.
    pub invalid_cloud_answer: InvalidCloudAnswer,
    /// Confidence escalation for auto-routed local rungs with a rung above.
    pub cascade: Option<CascadeConfig>,
}

/// What the router knows about the request, for the `Routed` event.
#[derive(Debug, Clone)]
pub(crate) struct RouteContext {
    pub score: f32,
    /// Set when the score is the transparent one because the scorer could not read what it needs.
    pub score_fallback: Option<ScoreFallback>,
    pub domain: String,
}

/// Where to look for the next rung after one is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Only higher tiers (low confidence: a lower or equal tier would not do better).
    Up,
    /// Higher tiers, then lower ones (a failure: anything that works).
    UpThenDown,
    /// The nearest local rung below (a wrong-shaped cloud answer: a local grammar guarantees the shape).
    LocalBelow,
}

/// How trying one rung ended.
enum Attempt {
    /// It answered; the events are on their way to the client.
    Answered,
    /// The request fails with this error; no other rung would do better.
    Stop(BackendError),
    /// Move on: the step to record, the reason the next rung answers for, where to look, and the error
    /// to report if no rung is left.
    MoveOn { outcome: StepOutcome, reason: RouteReason, direction: Direction, error: BackendError },
}

/// A request climbing `ladder` from one rung.
pub(crate) struct Walk {
    pub ladder: Vec<Arc<Member>>,
    pub context: RouteContext,
    pub settings: WalkSettings,
    /// The client (or a policy) chose a local rung: it is not left for another.
    pub pinned: bool,
    /// Probe local rungs' confidence (auto-routed requests only).
    pub probing: bool,
}

impl Walk {
    /// Climbs from `start`, answering for `reason`, and sends the winner's events.
    pub(crate) async fn run(self, request: GenerateRequest, start: usize, reason: RouteReason, events: EventSender) {
        let mut tried: Vec<RouteStep> = Vec::new();
        let mut fallback_from = None;
        let (mut rung, mut reason) = (start, reason);
        loop {
            let member = self.ladder[rung].clone();
            let attempt = match member.target {
                RouteTarget::Cloud => self.try_cloud(&member, &request, reason, &tried, &fallback_from, &events).await,
                RouteTarget::Edge => {
                    let probe = self.probing && self.has_available_above(rung, &tried);
                    self.try_local(&member, &request, reason, probe, &tried, &fallback_from, &events).await
                }
            };
            match attempt {
                Attempt::Answered => return,
                Attempt::Stop(error) => {
                    let _ = events.send(Err(error));
                    return;
                }
                Attempt::MoveOn { outcome, reason: next_reason, direction, error } => {
                    if let StepOutcome::Failed(why) | StepOutcome::WrongShape(why) = &outcome {
                        fallback_from = Some(why.clone());
                    }
                    tracing::debug!(model = member.id(), tier = member.tier, outcome = outcome.as_str(), "moving on");
                    tried.push(RouteStep { model: member.id().to_owned(), tier: member.tier, outcome });
                    match self.next_rung(rung, direction, &tried) {
                        Some(next) if !events.is_closed() => (rung, reason) = (next, next_reason),
                        _ => {
                            let _ = events.send(Err(error));
                            return;
                        }
                    }
                }
            }
        }
    }

    fn was_tried(&self, index: usize, tried: &[RouteStep]) -> bool {
        let id = self.ladder[index].id();
        tried.iter().any(|step| step.model == id)
    }

    /// Whether a rung above `rung` could still answer.
    fn has_available_above(&self, rung: usize, tried: &[RouteStep]) -> bool {
        (rung + 1..self.ladder.len()).any(|i| self.ladder[i].available() && !self.was_tried(i, tried))
    }

    /// The next rung to try from `rung`, skipping tried and cooling ones.
    fn next_rung(&self, rung: usize, direction: Direction, tried: &[RouteStep]) -> Option<usize> {
        let usable = |i: &usize| self.ladder[*i].available() && !self.was_tried(*i, tried);
        let mut above = rung + 1..self.ladder.len();
        let mut below = (0..rung).rev();
        match direction {
            Direction::Up => above.find(usable),
            Direction::UpThenDown => above.find(usable).or_else(|| below.find(usable)),
            Direction::LocalBelow => below.filter(|&i| self.ladder[i].target == RouteTarget::Edge).find(usable),
        }
    }

    fn route_info(
        &self,
        member: &Member,
        reason: RouteReason,
        tried: &[RouteStep],
        fallback_from: &Option<String>,
    ) -> RouteInfo {
        RouteInfo {
            tried: tried.to_vec(),
            fallback_from: fallback_from.clone(),
            ..route_info(member, reason, &self.context)
        }
    }

    /// A local rung: answered straight, or probed first when a rung above could do better.
    #[allow(clippy::too_many_arguments)]
    async fn try_local(
        &self,
        member: &Member,
        request: &GenerateRequest,
        reason: RouteReason,
        probe: bool,
        tried: &[RouteStep],
        fallback_from: &Option<String>,
        events: &EventSender,
    ) -> Attempt {
        let cascade = self.settings.cascade.filter(|_| probe);
        let wants_logprobs = request.sampling.logprobs.is_some();
        let mut asked = request.clone();
        if cascade.is_some() {
            asked.sampling.logprobs.get_or_insert(0);
        }
        // A local model tokenizes in `submit`: a long prompt does it off the async threads.
        let mut generation = match edgeway_core::submit_off_runtime(Arc::clone(&member.backend), asked).await {
            Ok(generation) => generation,
            Err(error) => return self.local_failed(error),
        };
        let Some(cascade) = cascade else {
            // Wait for the first output: a model that cannot be loaded fails here, and the next rung answers.
            return match first_output(&mut generation).await {
                Ok(first) => {
                    let _ =
                        events.send(Ok(GenerationEvent::Routed(self.route_info(member, reason, tried, fallback_from))));
                    let _ = events.send(Ok(first));
                    forward_all(generation, events, false).await;
                    Attempt::Answered
                }
                Err(error) => self.local_failed(error),
            };
        };
        let probe_tokens = if request.route.stream { cascade.probe_tokens as usize } else { usize::MAX };
        let mut held = Vec::new();
        let mut logprobs = Vec::new();
        let mut finished = false;
        while logprobs.len() < probe_tokens && !finished {
            match generation.next_event().await {
                Some(Ok(GenerationEvent::Routed(_))) => {}
                Some(Ok(GenerationEvent::Delta { text, logprobs: entries })) => {
                    logprobs.extend(entries.iter().map(|entry| entry.chosen.logprob));
                    held.push(GenerationEvent::Delta {
                        text,
                        logprobs: if wants_logprobs { entries } else { Vec::new() },
                    });
                }
                Some(Ok(event @ GenerationEvent::ToolCall(_))) => held.push(event),
                Some(Ok(event @ GenerationEvent::Finished(_))) => {
                    held.push(event);
                    finished = true;
                }
                Some(Err(error)) if held.is_empty() => return self.local_failed(error),
                Some(Err(_)) | None => break,
            }
        }
        let confidence = confidence(&held, &logprobs);
        if confidence >= cascade.min_mean_logprob && !held.is_empty() {
            let kept = if reason == RouteReason::LowEdgeConfidence { reason } else { RouteReason::ConfidentAtEdge };
            let _ = events.send(Ok(GenerationEvent::Routed(self.route_info(member, kept, tried, fallback_from))));
            for event in held {
                let _ = events.send(Ok(event));
            }
            if !finished {
                forward_all(generation, events, !wants_logprobs).await;
            }
            return Attempt::Answered;
        }
        // Low confidence: the answer is dropped (which cancels it) before the client sees any of it.
        drop(generation);
        tracing::debug!(
            confidence,
            threshold = cascade.min_mean_logprob,
            model = member.id(),
            "low confidence; escalating"
        );
        Attempt::MoveOn {
            outcome: StepOutcome::LowConfidence { confidence },
            reason: RouteReason::LowEdgeConfidence,
            direction: Direction::Up,
            error: BackendError::Internal("no tier above could answer".into()),
        }
    }

    /// A local rung that could not start: the client's own mistakes stop the request,
    /// anything else moves on unless the rung is pinned.
    fn local_failed(&self, error: BackendError) -> Attempt {
        if self.pinned || is_clients_fault(&error) {
            return Attempt::Stop(error);
        }
        match error {
            BackendError::QueueFull { .. } => Attempt::MoveOn {
                outcome: StepOutcome::Overloaded,
                reason: RouteReason::EdgeOverloaded,
                direction: Direction::UpThenDown,
                error,
            },
            error => Attempt::MoveOn {
                outcome: StepOutcome::Failed(error.to_string()),
                reason: RouteReason::FallbackEdgeFailed,
                direction: Direction::UpThenDown,
                error,
            },
        }
    }

    /// A cloud rung, retried while it is unavailable and the client waits; a structured answer is
    /// held until its shape is checked.
    async fn try_cloud(
        &self,
        member: &Member,
        request: &GenerateRequest,
        reason: RouteReason,
        tried: &[RouteStep],
        fallback_from: &Option<String>,
        events: &EventSender,
    ) -> Attempt {
        let mut attempt = 0;
        let failure = loop {
            let failure = match member.backend.submit(request.clone()) {
                Ok(mut generation) => match first_output(&mut generation).await {
                    Ok(first) => {
                        member.mark_up();
                        return self
                            .release_cloud_answer(
                                member,
                                request,
                                reason,
                                tried,
                                fallback_from,
                                first,
                                generation,
                                events,
                            )
                            .await;
                    }
                    Err(error) => error,
                },
                Err(error) => error,
            };
            // Only an unavailable cloud is worth another try, and only while the client waits.
            if !matches!(failure, BackendError::Unavailable(_))
                || attempt >= self.settings.retries
                || events.is_closed()
            {
                break failure;
            }
            tokio::time::sleep(self.settings.backoff * 2u32.saturating_pow(attempt)).await;
            attempt += 1;
            tracing::debug!(attempt, error = %failure, "retrying the cloud");
        };
        if is_clients_fault(&failure) {
            return Attempt::Stop(failure);
        }
        tracing::warn!(model = member.id(), error = %failure, cooldown_s = self.settings.cooldown.as_secs_f32(), "cloud failed; moving on");
        member.cool_down(self.settings.cooldown);
        Attempt::MoveOn {
            outcome: StepOutcome::Failed(failure.to_string()),
            reason: RouteReason::FallbackCloudFailed,
            direction: Direction::UpThenDown,
            error: failure,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn release_cloud_answer(
        &self,
        member: &Member,
        request: &GenerateRequest,
        reason: RouteReason,
        tried: &[RouteStep],
        fallback_from: &Option<String>,
        first: GenerationEvent,
        mut generation: Generation,
        events: &EventSender,
    ) -> Attempt {
        let info = self.route_info(member, reason, tried, fallback_from);
        let Some(check) = shape_check(request, self.settings.invalid_cloud_answer) else {
            let _ = events.send(Ok(GenerationEvent::Routed(info)));
            let _ = events.send(Ok(first));
            forward_all(generation, events, false).await;
            return Attempt::Answered;
        };
        let held = match hold_answer(first, &mut generation).await {
            Ok(held) => held,
            Err(error) => return Attempt::Stop(error),
        };
        let Some(problem) = check.judge(&held) else {
            let _ = events.send(Ok(GenerationEvent::Routed(info)));
            held.into_iter().for_each(|event| drop(events.send(Ok(event))));
            return Attempt::Answered;
        };
        let problem = format!("cloud '{}' answered in the wrong shape: {problem}", info.model);
        tracing::warn!(%problem, action = ?self.settings.invalid_cloud_answer, "invalid cloud answer");
        match self.settings.invalid_cloud_answer {
            // (`pass` has no check, so it never gets here.)
            InvalidCloudAnswer::Error | InvalidCloudAnswer::Pass => {
                Attempt::Stop(BackendError::BadUpstreamAnswer(problem))
            }
            InvalidCloudAnswer::Fallback => Attempt::MoveOn {
                outcome: StepOutcome::WrongShape(problem.clone()),
                reason: RouteReason::FallbackCloudInvalid,
                direction: Direction::LocalBelow,
                error: BackendError::BadUpstreamAnswer(problem),
            },
        }
    }
}

/// The client's own mistakes are no model's failure: no other rung is tried.
fn is_clients_fault(error: &BackendError) -> bool {
    matches!(error, BackendError::InvalidRequest(_) | BackendError::PromptTooLong { .. })
}

/// How sure a held answer is: an answer constrained to choices (enums) is judged by its least sure
/// choice, the probability among exactly the allowed values; anything else by its mean token logprob.
fn confidence(held: &[GenerationEvent], logprobs: &[f32]) -> f32 {
    let least_sure_choice = held.iter().find_map(|event| match event {
        GenerationEvent::Finished(completion) => completion.least_sure_choice().map(|c| c.probability.ln()),
        _ => None,
    });
    match least_sure_choice {
        Some(logprob) => logprob,
        None if logprobs.is_empty() => f32::NEG_INFINITY,
        None => logprobs.iter().sum::<f32>() / logprobs.len() as f32,
    }
}

/// The first event that is output (text or the end), skipping inner `Routed` events.
pub(crate) async fn first_output(generation: &mut Generation) -> Result<GenerationEvent, BackendError> {
    loop {
        match generation.next_event().await {
            Some(Ok(GenerationEvent::Routed(_))) => continue,
            Some(Ok(event)) => return Ok(event),
            Some(Err(error)) => return Err(error),
            None => return Err(BackendError::Unavailable("the model ended the stream before any output".into())),
        }
    }
}

/// Passes events on until the end, or until the client goes away (which drops
/// `generation` and cancels it). `strip_logprobs` removes logprobs the client did not ask for.
pub(crate) async fn forward_all(mut generation: Generation, events: &EventSender, strip_logprobs: bool) {
    loop {
        tokio::select! {
            event = generation.next_event() => match event {
                Some(mut event) => {
                    if let (true, Ok(GenerationEvent::Delta { logprobs, .. })) = (strip_logprobs, event.as_mut()) {
                        logprobs.clear();
                    }
                    if events.send(event).is_err() {
                        return;
                    }
                }
                None => return,
            },
            _ = events.closed() => return,
        }
    }
}

/// The `Routed` event of a request `member` answers for `reason`, with nothing tried before it.
pub(crate) fn route_info(member: &Member, reason: RouteReason, context: &RouteContext) -> RouteInfo {
    let info = member.backend.model_info();
    RouteInfo {
        target: member.target,
        model: info.id.clone(),
        tier: Some(member.tier),
        reason,
        tried: Vec::new(),
        score: Some(context.score),
        score_fallback: context.score_fallback,
        domain: Some(context.domain.clone()),
        fallback_from: None,
        price_input_per_mtok: info.price_input_per_mtok,
        price_output_per_mtok: info.price_output_per_mtok,
    }
}
