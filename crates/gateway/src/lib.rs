//! The routing [`Backend`]: every request is scored and sent to the edge or
//! the cloud, and each side covers for the other when it fails.
//!
//! ```text
//! submit ─ score + domain ─ decide ─┬─ edge ── queue full? ── cloud (if configured)
//!                                   └─ cloud ─ fails before any text? ── edge (and the cloud cools down)
//! ```
//!
//! The decision itself is `edgeway-policy`'s pure function; this crate adds
//! what needs time and state: waiting for the cloud's first output before
//! committing to it, falling back, and the cooldown that keeps a failing
//! upstream from costing every request a timeout. The first event of every
//! stream is `Routed`, which says where the answer comes from and why.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgeway_core::{
    Backend, BackendError, BackendLoad, GenerateRequest, Generation, GenerationEvent, ModelInfo, OutputFormat, Prompt,
    RouteInfo, RouteTarget,
};
use edgeway_policy::{
    decide, ComplexityScorer, DomainRules, InvalidCloudAnswer, RouteReason, StructuredRoute, Thresholds,
};
use tokio::sync::mpsc;

mod shape;
use shape::{hold_answer, shape_check};

/// The name that lets the router choose.
pub const AUTO: &str = "auto";

/// How the gateway routes.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Score thresholds per domain.
    pub thresholds: Thresholds,
    /// How domains are recognised.
    pub domains: DomainRules,
    /// How long a cloud that failed is left alone before it is tried again.
    pub cooldown: Duration,
    /// Confidence escalation: answer at the edge first and check, if set.
    pub cascade: Option<CascadeConfig>,
    /// A ceiling on the edge's power draw, if set.
    pub power_budget: Option<PowerBudget>,
    /// Extra attempts at a cloud that fails before any output, before the edge steps in.
    pub cloud_retries: u32,
    /// Wait before the first retry; it doubles for each one after.
    pub retry_backoff: Duration,
    /// Where requests for structured output go (a raw grammar always goes to the edge).
    pub structured: StructuredRoute,
    /// Where requests that offer callable tools go.
    pub tools: StructuredRoute,
    /// What happens when the cloud answers a structured request in the wrong shape.
    pub invalid_cloud_answer: InvalidCloudAnswer,
}

/// A ceiling on the edge's rolling power draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerBudget {
    /// Watts the edge may draw, averaged over the last seconds.
    pub watts: f64,
    /// What happens to auto-routed edge work while the draw is at or over the budget.
    pub action: PowerAction,
}

/// What to do with edge work while over the power budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Send it to the cloud (or wait, when there is no cloud).
    Cloud,
    /// Hold it until the draw falls below the budget.
    Queue,
}

/// Longest a request waits for the power draw to fall before it runs anyway.
const POWER_WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Confidence escalation: requests routed to the edge by score are answered
/// there first, and escalated to the cloud when the edge's own confidence in
/// its first tokens is low, before any of them reaches the client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CascadeConfig {
    /// Escalate when the mean log-probability of the probed tokens is below this (e.g. -1.0).
    pub min_mean_logprob: f32,
    /// Tokens to look at before deciding, for streams (whole answers shorter than this
    /// count whole). A non-streamed answer is judged whole: the client waits for all of it anyway.
    pub probe_tokens: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            thresholds: Thresholds::defaults(),
            domains: DomainRules::defaults(),
            cooldown: Duration::from_secs(5),
            cascade: None,
            power_budget: None,
            cloud_retries: 1,
            retry_backoff: Duration::from_millis(100),
            structured: StructuredRoute::Auto,
            tools: StructuredRoute::Auto,
            invalid_cloud_answer: InvalidCloudAnswer::Fallback,
        }
    }
}

/// Edge and (optionally) cloud behind one [`Backend`].
pub struct Gateway {
    edge: Arc<dyn Backend>,
    cloud: Option<Arc<dyn Backend>>,
    scorer: Arc<dyn ComplexityScorer>,
    config: GatewayConfig,
    /// Until when the cloud is skipped after a failure.
    cloud_down_until: Arc<Mutex<Option<Instant>>>,
}

/// What the decision was, for the `Routed` event.
#[derive(Clone)]
struct RouteContext {
    score: f32,
    domain: String,
}

impl Gateway {
    /// A gateway over `edge` and an optional `cloud`.
    pub fn new(
        edge: Arc<dyn Backend>,
        cloud: Option<Arc<dyn Backend>>,
        scorer: Arc<dyn ComplexityScorer>,
        config: GatewayConfig,
    ) -> Self {
        Self { edge, cloud, scorer, config, cloud_down_until: Arc::new(Mutex::new(None)) }
    }

    fn cloud_available(&self) -> bool {
        self.cloud.is_some() && !cooling_down(&self.cloud_down_until)
    }

    /// What the client asked for, if anything.
    fn forced(&self, request: &GenerateRequest) -> Option<(RouteTarget, RouteReason)> {
        if let Some(model) = request.route.model.as_deref().filter(|m| !m.eq_ignore_ascii_case(AUTO)) {
            if self.cloud.as_ref().is_some_and(|cloud| cloud.serves(model)) {
                return Some((RouteTarget::Cloud, RouteReason::ForcedByModel));
            }
            if self.edge.serves(model) {
                return Some((RouteTarget::Edge, RouteReason::ForcedByModel));
            }
        }
        if let Some(target) = request.route.target {
            return Some((target, RouteReason::ForcedByHeader));
        }
        let callable = request.tools.as_ref().is_some_and(|tools| tools.callable().next().is_some());
        if let (true, Some(target)) = (callable, self.config.tools.target()) {
            return Some((target, RouteReason::ToolUse));
        }
        match &request.sampling.format {
            Some(OutputFormat::Grammar(_)) => Some((RouteTarget::Edge, RouteReason::GrammarNeedsEdge)),
            Some(_) => self.config.structured.target().map(|target| (target, RouteReason::StructuredOutput)),
            None => None,
        }
    }
}

impl Gateway {
    /// The side serving `model` (the cloud only when it serves the name and the edge does
    /// not), and the name to pass on (`None` for the side's default).
    fn side_of<'a>(&'a self, model: Option<&'a str>) -> (&'a dyn Backend, Option<&'a str>) {
        let model = model.filter(|name| !name.eq_ignore_ascii_case(AUTO));
        match (model, &self.cloud) {
            (Some(name), Some(cloud)) if !self.edge.serves(name) && cloud.serves(name) => (cloud.as_ref(), Some(name)),
            (Some(name), _) if self.edge.serves(name) => (self.edge.as_ref(), Some(name)),
            _ => (self.edge.as_ref(), None),
        }
    }
}

fn cooling_down(until: &Mutex<Option<Instant>>) -> bool {
    until.lock().map(|guard| guard.is_some_and(|t| Instant::now() < t)).unwrap_or(false)
}

fn route_info(
    backend: &dyn Backend,
    target: RouteTarget,
    reason: &str,
    context: &RouteContext,
    fallback_from: Option<String>,
) -> RouteInfo {
    let info = backend.model_info();
    RouteInfo {
        target,
        model: info.id.clone(),
        reason: reason.to_owned(),
        score: Some(context.score),
        domain: Some(context.domain.clone()),
        fallback_from,
        price_input_per_mtok: info.price_input_per_mtok,
        price_output_per_mtok: info.price_output_per_mtok,
    }
}

impl Backend for Gateway {
    fn model_info(&self) -> &ModelInfo {
        self.edge.model_info()
    }

    fn model_ids(&self) -> Vec<String> {
        let mut ids = vec![AUTO.to_owned()];
        ids.extend(self.edge.model_ids());
        if let Some(cloud) = &self.cloud {
            ids.extend(cloud.model_ids());
        }
        ids
    }

    fn load(&self) -> BackendLoad {
        BackendLoad { cloud_up: self.cloud.as_ref().map(|_| self.cloud_available()), ..self.edge.load() }
    }

    /// The edge's models (each model of a pool, loaded or not), then the cloud's.
    fn models(&self) -> Vec<edgeway_core::ModelStatus> {
        let mut models = self.edge.models();
        if let Some(cloud) = &self.cloud {
            models.extend(cloud.models());
        }
        models
    }

    /// Loads the model on the side that serves it (the edge's default for `None` or `auto`).
    fn preload<'a>(
        &'a self,
        model: Option<&'a str>,
        keep_alive: Option<edgeway_core::KeepAlive>,
    ) -> edgeway_core::BoxFuture<'a, Result<(), BackendError>> {
        let (side, model) = self.side_of(model);
        side.preload(model, keep_alive)
    }

    /// Unloads the model on the side that serves it (the edge's default for `None` or `auto`).
    fn unload(&self, model: Option<&str>) -> Result<(), BackendError> {
        let (side, model) = self.side_of(model);
        side.unload(model)
    }

    fn tokenize(&self, prompt: &Prompt) -> Result<Vec<u32>, BackendError> {
        self.edge.tokenize(prompt)
    }

    fn submit(&self, request: GenerateRequest) -> Result<Generation, BackendError> {
        let score = self.scorer.score(&request.prompt).value;
        let domain =
            request.route.domain.clone().unwrap_or_else(|| self.config.domains.classify(&request.prompt).to_owned());
        let forced = self.forced(&request);
        let decision = decide(score, &domain, &self.config.thresholds, forced, self.cloud_available());
        let context = RouteContext { score, domain };
        tracing::debug!(score, domain = %context.domain, target = decision.target.as_str(), reason = decision.reason.as_str(), "routed");

        let auto_edge = decision.target == RouteTarget::Edge && forced.is_none();
        if let Some(budget) = self.config.power_budget.filter(|_| auto_edge) {
            if self.edge.load().power_watts.is_some_and(|watts| watts >= budget.watts) {
                return Ok(self.over_power_budget(budget, request, context));
            }
        }
        let cascade = self
            .config
            .cascade
            .filter(|_| decision.reason == RouteReason::ScoreBelowThreshold && self.cloud_available());
        match (decision.target, &self.cloud, cascade) {
            (RouteTarget::Cloud, Some(cloud), _) => {
                Ok(self.via_cloud(cloud.clone(), request, context, decision.reason.as_str()))
            }
            (RouteTarget::Edge, Some(cloud), Some(cascade)) => {
                self.via_cascade(cloud.clone(), request, context, cascade)
            }
            _ => match self.edge.submit(request.clone()) {
                Ok(generation) => {
                    let info =
                        route_info(self.edge.as_ref(), RouteTarget::Edge, decision.reason.as_str(), &context, None);
                    Ok(generation.prepend(GenerationEvent::Routed(info)))
                }
                // A full edge sends auto-routed work to the cloud rather than refusing it.
                Err(error @ BackendError::QueueFull { .. }) if forced.is_none() && self.cloud_available() => {
                    match &self.cloud {
                        Some(cloud) => Ok(self.via_cloud(cloud.clone(), request, context, "edge_overloaded")),
                        None => Err(error),
                    }
                }
                Err(error) => Err(error),
            },
        }
    }
}

/// What the background routing tasks need from the gateway.
#[derive(Clone)]
struct Sides {
    edge: Arc<dyn Backend>,
    cloud: Arc<dyn Backend>,
    down_until: Arc<Mutex<Option<Instant>>>,
    cooldown: Duration,
    retries: u32,
    backoff: Duration,
    invalid_cloud_answer: InvalidCloudAnswer,
}

type EventSender = mpsc::UnboundedSender<Result<GenerationEvent, BackendError>>;

impl Gateway {
    fn sides(&self, cloud: Arc<dyn Backend>) -> Sides {
        Sides {
            edge: self.edge.clone(),
            cloud,
            down_until: self.cloud_down_until.clone(),
            cooldown: self.config.cooldown,
            retries: self.config.cloud_retries,
            backoff: self.config.retry_backoff,
            invalid_cloud_answer: self.config.invalid_cloud_answer,
        }
    }

    /// Tries the cloud; if it fails before any output, the edge answers instead.
    fn via_cloud(
        &self,
        cloud: Arc<dyn Backend>,
        request: GenerateRequest,
        context: RouteContext,
        reason: &str,
    ) -> Generation {
        let sides = self.sides(cloud);
        let reason = reason.to_owned();
        spawn_routed(move |events| async move { cloud_then_edge(&sides, request, &context, &reason, &events).await })
    }

    /// Edge work while the edge draws more than its budget: to the cloud, or held until the draw falls.
    fn over_power_budget(&self, budget: PowerBudget, request: GenerateRequest, context: RouteContext) -> Generation {
        if let (PowerAction::Cloud, true, Some(cloud)) = (budget.action, self.cloud_available(), &self.cloud) {
            return self.via_cloud(cloud.clone(), request, context, "power_budget");
        }
        let edge = self.edge.clone();
        spawn_routed(move |events| async move {
            let started = Instant::now();
            while edge.load().power_watts.is_some_and(|watts| watts >= budget.watts)
                && started.elapsed() < POWER_WAIT_LIMIT
            {
                if events.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match edge.submit(request) {
                Ok(generation) => {
                    let info = route_info(edge.as_ref(), RouteTarget::Edge, "power_budget_waited", &context, None);
                    let _ = events.send(Ok(GenerationEvent::Routed(info)));
                    forward_all(generation, &events, false).await;
                }
                Err(error) => {
                    let _ = events.send(Err(error));
                }
            }
        })
    }

    /// Answers at the edge, but checks the first tokens' confidence before
    /// anything reaches the client, and asks the cloud instead when it is low.
    fn via_cascade(
        &self,
        cloud: Arc<dyn Backend>,
        request: GenerateRequest,
        context: RouteContext,
        cascade: CascadeConfig,
    ) -> Result<Generation, BackendError> {
        let wants_logprobs = request.sampling.logprobs.is_some();
        let probe_tokens = if request.route.stream { cascade.probe_tokens as usize } else { usize::MAX };
        let mut probing = request.clone();
        probing.sampling.logprobs.get_or_insert(0);
        let mut generation = self.edge.submit(probing)?;
        let sides = self.sides(cloud);
        Ok(spawn_routed(move |events| async move {
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
                    Some(Err(_)) | None => break,
                }
            }
            // An answer constrained to choices (enums) is judged by its least sure choice, the
            // probability among exactly the allowed values; anything else by its mean token logprob.
            let least_sure_choice = held.iter().find_map(|event| match event {
                GenerationEvent::Finished(completion) => completion.least_sure_choice().map(|c| c.probability.ln()),
                _ => None,
            });
            let confidence = match least_sure_choice {
                Some(logprob) => logprob,
                None if logprobs.is_empty() => f32::NEG_INFINITY,
                None => logprobs.iter().sum::<f32>() / logprobs.len() as f32,
            };
            if confidence >= cascade.min_mean_logprob && !held.is_empty() {
                let info = route_info(sides.edge.as_ref(), RouteTarget::Edge, "confident_at_edge", &context, None);
                let _ = events.send(Ok(GenerationEvent::Routed(info)));
                for event in held {
                    let _ = events.send(Ok(event));
                }
                if !finished {
                    forward_all(generation, &events, !wants_logprobs).await;
                }
                return;
            }
            // Low confidence: the edge answer is dropped (which cancels it) before the client sees any of it.
            drop(generation);
            tracing::debug!(
                confidence,
                threshold = cascade.min_mean_logprob,
                "low edge confidence; escalating to the cloud"
            );
            cloud_then_edge(&sides, request, &context, "low_edge_confidence", &events).await;
        }))
    }
}

/// Runs a routing task and returns the generation it feeds.
fn spawn_routed<F, Fut>(task: F) -> Generation
where
    F: FnOnce(EventSender) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (events, receiver) = mpsc::unbounded_channel();
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(task(events));
        }
        Err(_) => {
            let _ = events.send(Err(BackendError::Unavailable("the gateway needs an async runtime".into())));
        }
    }
    Generation::new(0, receiver)
}

/// The cloud, and the edge if the cloud fails before any output.
async fn cloud_then_edge(
    sides: &Sides,
    request: GenerateRequest,
    context: &RouteContext,
    reason: &str,
    events: &EventSender,
) {
    let mut attempt = 0;
    let failure = loop {
        let failure = match sides.cloud.submit(request.clone()) {
            Ok(mut generation) => match first_output(&mut generation).await {
                Ok(first) => {
                    if let Ok(mut guard) = sides.down_until.lock() {
                        *guard = None;
                    }
                    let info = route_info(sides.cloud.as_ref(), RouteTarget::Cloud, reason, context, None);
                    let Some(check) = shape_check(&request, sides.invalid_cloud_answer) else {
                        let _ = events.send(Ok(GenerationEvent::Routed(info)));
                        let _ = events.send(Ok(first));
                        forward_all(generation, events, false).await;
                        return;
                    };
                    // A structured answer is held until its shape is checked, so a bad one never reaches the client.
                    let held = match hold_answer(first, &mut generation).await {
                        Ok(held) => held,
                        Err(error) => {
                            let _ = events.send(Err(error));
                            return;
                        }
                    };
                    match check.judge(&held) {
                        None => {
                            let _ = events.send(Ok(GenerationEvent::Routed(info)));
                            held.into_iter().for_each(|event| drop(events.send(Ok(event))));
                        }
                        Some(problem) => {
                            let problem = format!("cloud '{}' answered in the wrong shape: {problem}", info.model);
                            tracing::warn!(%problem, action = ?sides.invalid_cloud_answer, "invalid cloud answer");
                            match sides.invalid_cloud_answer {
                                // (`pass` has no check, so it never gets here.)
                                InvalidCloudAnswer::Error | InvalidCloudAnswer::Pass => {
                                    let _ = events.send(Err(BackendError::BadUpstreamAnswer(problem)));
                                }
                                InvalidCloudAnswer::Fallback => {
                                    edge_instead(sides, request, context, "fallback_cloud_invalid", problem, events)
                                        .await;
                                }
                            }
                        }
                    }
                    return;
                }
                Err(error) => error,
            },
            Err(error) => error,
        };
        // Only an unavailable cloud is worth another try, and only while the client waits.
        if !matches!(failure, BackendError::Unavailable(_)) || attempt >= sides.retries || events.is_closed() {
            break failure;
        }
        tokio::time::sleep(sides.backoff * 2u32.saturating_pow(attempt)).await;
        attempt += 1;
        tracing::debug!(attempt, error = %failure, "retrying the cloud");
    };
    // The client's own mistakes are not the cloud's failure: no fallback.
    if matches!(failure, BackendError::InvalidRequest(_) | BackendError::PromptTooLong { .. }) {
        let _ = events.send(Err(failure));
        return;
    }
    tracing::warn!(error = %failure, cooldown_s = sides.cooldown.as_secs_f32(), "cloud failed; the edge answers");
    if let Ok(mut guard) = sides.down_until.lock() {
        *guard = Some(Instant::now() + sides.cooldown);
    }
    edge_instead(sides, request, context, "fallback_cloud_failed", failure.to_string(), events).await;
}

/// The edge answers in the cloud's place; `failure` says what went wrong with the cloud.
async fn edge_instead(
    sides: &Sides,
    request: GenerateRequest,
    context: &RouteContext,
    reason: &str,
    failure: String,
    events: &EventSender,
) {
    match sides.edge.submit(request) {
        Ok(generation) => {
            let info = route_info(sides.edge.as_ref(), RouteTarget::Edge, reason, context, Some(failure));
            let _ = events.send(Ok(GenerationEvent::Routed(info)));
            forward_all(generation, events, false).await;
        }
        Err(edge_error) => {
            let _ = events.send(Err(edge_error));
        }
    }
}

/// The first event that is output (text or the end), skipping inner `Routed` events.
async fn first_output(generation: &mut Generation) -> Result<GenerationEvent, BackendError> {
    loop {
        match generation.next_event().await {
            Some(Ok(GenerationEvent::Routed(_))) => continue,
            Some(Ok(event)) => return Ok(event),
            Some(Err(error)) => return Err(error),
            None => return Err(BackendError::Unavailable("the cloud ended the stream before any output".into())),
        }
    }
}

/// Passes events on until the end, or until the client goes away (which drops
/// `generation` and cancels it). `strip_logprobs` removes logprobs the client did not ask for.
async fn forward_all(mut generation: Generation, events: &EventSender, strip_logprobs: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use edgeway_core::fake::FakeBackend;
    use edgeway_core::{ChatMessage, RouteHints, SamplingParams};
    use edgeway_policy::TransparentScorer;

    /// A cloud that is down.
    struct DownBackend(ModelInfo);

    impl Backend for DownBackend {
        fn model_info(&self) -> &ModelInfo {
            &self.0
        }
        fn load(&self) -> BackendLoad {
            BackendLoad::default()
        }
        fn submit(&self, _: GenerateRequest) -> Result<Generation, BackendError> {
            Err(BackendError::Unavailable("connection refused".into()))
        }
    }

    /// An edge that records the load and unload calls it gets.
    struct Recording {
        info: ModelInfo,
        calls: Mutex<Vec<String>>,
    }

    impl Backend for Recording {
        fn model_info(&self) -> &ModelInfo {
            &self.info
        }
        fn load(&self) -> BackendLoad {
            BackendLoad::default()
        }
        fn submit(&self, _: GenerateRequest) -> Result<Generation, BackendError> {
            Err(BackendError::Unavailable("not in this test".into()))
        }
        fn preload<'a>(
            &'a self,
            model: Option<&'a str>,
            _keep_alive: Option<edgeway_core::KeepAlive>,
        ) -> edgeway_core::BoxFuture<'a, Result<(), BackendError>> {
            self.calls.lock().unwrap().push(format!("preload {}", model.unwrap_or("default")));
            Box::pin(std::future::ready(Ok(())))
        }
        fn unload(&self, model: Option<&str>) -> Result<(), BackendError> {
            self.calls.lock().unwrap().push(format!("unload {}", model.unwrap_or("default")));
            Ok(())
        }
    }

    #[tokio::test]
    async fn models_and_load_calls_go_to_the_side_that_serves_the_model() {
        let info = FakeBackend::new("edge-model", "").model_info().clone();
        let edge = Arc::new(Recording { info, calls: Mutex::new(Vec::new()) });
        let cloud: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud-model", ""));
        let gateway = Gateway::new(edge.clone(), Some(cloud), Arc::new(TransparentScorer), GatewayConfig::default());
        let ids: Vec<String> = gateway.models().into_iter().map(|status| status.id).collect();
        assert_eq!(ids, vec!["edge-model", "cloud-model"]);
        gateway.preload(Some("EDGE-MODEL"), None).await.unwrap();
        gateway.preload(Some(AUTO), None).await.unwrap();
        gateway.unload(None).unwrap();
        gateway.unload(Some("cloud-model")).unwrap();
        assert_eq!(*edge.calls.lock().unwrap(), vec!["preload EDGE-MODEL", "preload default", "unload default"]);
    }

    fn gateway(cloud: Option<Arc<dyn Backend>>) -> Gateway {
        let edge: Arc<dyn Backend> = Arc::new(FakeBackend::new("edge-model", "edge says hi"));
        Gateway::new(edge, cloud, Arc::new(TransparentScorer), GatewayConfig::default())
    }

    fn request(text: &str, route: RouteHints) -> GenerateRequest {
        GenerateRequest {
            prompt: Prompt::Chat(vec![ChatMessage::new("user", text)]),
            sampling: SamplingParams::default(),
            route,
            tools: None,
        }
    }

    const HARD: &str =
        "Explain step by step why this Rust function is slow, then calculate its complexity and compare two fixes.";

    async fn route_of(gateway: &Gateway, request: GenerateRequest) -> (RouteInfo, String) {
        let mut generation = gateway.submit(request).unwrap();
        let mut route = None;
        let mut text = String::new();
        while let Some(event) = generation.next_event().await {
            match event.unwrap() {
                GenerationEvent::Routed(info) => route = Some(info),
                GenerationEvent::Delta { text: piece, .. } => text.push_str(&piece),
                GenerationEvent::ToolCall(_) => {}
                GenerationEvent::Finished(_) => break,
            }
        }
        (route.expect("a Routed event"), text)
    }

    #[tokio::test]
    async fn easy_goes_to_the_edge_and_hard_to_the_cloud() {
        let cloud: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud", "cloud says hi"));
        let gateway = gateway(Some(cloud));
        let (route, text) = route_of(&gateway, request("Hi there", RouteHints::default())).await;
        assert_eq!(
            (route.target, route.reason.as_str(), text.as_str()),
            (RouteTarget::Edge, "score_below_threshold", "edge says hi")
        );
        let (route, text) = route_of(&gateway, request(HARD, RouteHints::default())).await;
        assert_eq!((route.target, route.model.as_str(), text.as_str()), (RouteTarget::Cloud, "cloud", "cloud says hi"));
        assert!(route.score.unwrap() >= 0.35);
        assert_eq!(gateway.model_ids(), ["auto", "edge-model", "cloud"]);
    }

    #[tokio::test]
    async fn structured_requests_follow_their_policy_and_grammars_stay_at_the_edge() {
        let cloud: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud", "{\"cloud\": \"hi\"}"));
        let edge: Arc<dyn Backend> = Arc::new(FakeBackend::new("edge-model", "edge says hi"));
        let config = GatewayConfig { structured: StructuredRoute::Cloud, ..GatewayConfig::default() };
        let gateway = Gateway::new(edge, Some(cloud), Arc::new(TransparentScorer), config);
        let mut easy_json = request("Hi there", RouteHints::default());
        easy_json.sampling.format = Some(OutputFormat::JsonObject);
        let (route, _) = route_of(&gateway, easy_json).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Cloud, "structured_output"));
        let mut hard_grammar = request(HARD, RouteHints::default());
        hard_grammar.sampling.format = Some(OutputFormat::Grammar("root ::= \"a\"".into()));
        let (route, _) = route_of(&gateway, hard_grammar).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Edge, "grammar_needs_edge"));
        // A header still wins over the policy.
        let mut forced = request("Hi there", RouteHints { target: Some(RouteTarget::Edge), ..RouteHints::default() });
        forced.sampling.format = Some(OutputFormat::JsonObject);
        let (route, _) = route_of(&gateway, forced).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Edge, "forced_by_header"));
    }

    #[tokio::test]
    async fn a_cloud_answer_in_the_wrong_shape_falls_back_fails_or_passes_as_configured() {
        let gateway = |action| {
            let cloud: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud", "Sure! Here it is"));
            let edge: Arc<dyn Backend> = Arc::new(FakeBackend::new("edge-model", "{\"ok\": true}"));
            let config = GatewayConfig {
                structured: StructuredRoute::Cloud,
                invalid_cloud_answer: action,
                ..GatewayConfig::default()
            };
            Gateway::new(edge, Some(cloud), Arc::new(TransparentScorer), config)
        };
        let json_request = || {
            let mut asked = request("Hi there", RouteHints::default());
            asked.sampling.format = Some(OutputFormat::JsonObject);
            asked
        };
        let (route, text) = route_of(&gateway(InvalidCloudAnswer::Fallback), json_request()).await;
        assert_eq!(
            (route.target, route.reason.as_str(), text.as_str()),
            (RouteTarget::Edge, "fallback_cloud_invalid", "{\"ok\": true}")
        );
        assert!(route.fallback_from.is_some_and(|why| why.contains("not JSON")));

        let mut generation = gateway(InvalidCloudAnswer::Error).submit(json_request()).unwrap();
        let mut failed = None;
        while let Some(event) = generation.next_event().await {
            if let Err(error) = event {
                failed = Some(error);
            }
        }
        assert!(
            matches!(failed, Some(BackendError::BadUpstreamAnswer(ref m)) if m.contains("wrong shape")),
            "{failed:?}"
        );

        let (route, text) = route_of(&gateway(InvalidCloudAnswer::Pass), json_request()).await;
        assert_eq!((route.target, text.as_str()), (RouteTarget::Cloud, "Sure! Here it is"));
        // A valid cloud answer goes out whatever the setting.
        let (route, _) =
            route_of(&gateway(InvalidCloudAnswer::Fallback), request("Hi there", RouteHints::default())).await;
        assert_eq!(route.target, RouteTarget::Edge, "free text is scored, not forced");
    }

    #[tokio::test]
    async fn tool_requests_follow_their_policy() {
        let cloud: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud", "cloud says hi"));
        let edge: Arc<dyn Backend> = Arc::new(FakeBackend::new("edge-model", "edge says hi"));
        let config = GatewayConfig { tools: StructuredRoute::Cloud, ..GatewayConfig::default() };
        let gateway = Gateway::new(edge, Some(cloud), Arc::new(TransparentScorer), config);
        let tools = |choice| edgeway_core::ToolUse {
            tools: vec![edgeway_core::ToolSpec {
                name: "f".into(),
                description: None,
                parameters: "{}".into(),
                strict: false,
            }],
            choice,
            parallel: true,
        };
        let mut with_tools = request("Hi there", RouteHints::default());
        with_tools.tools = Some(tools(edgeway_core::ToolChoice::Auto));
        let (route, _) = route_of(&gateway, with_tools).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Cloud, "tool_use"));
        // Tools the model may not call do not count.
        let mut tools_off = request("Hi there", RouteHints::default());
        tools_off.tools = Some(tools(edgeway_core::ToolChoice::None));
        let (route, _) = route_of(&gateway, tools_off).await;
        assert_eq!(route.target, RouteTarget::Edge);
    }

    #[tokio::test]
    async fn model_names_and_headers_force_a_side() {
        let cloud: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud", "cloud says hi"));
        let gateway = gateway(Some(cloud));
        let by_model = RouteHints { model: Some("cloud".into()), ..RouteHints::default() };
        let (route, _) = route_of(&gateway, request("Hi", by_model)).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Cloud, "forced_by_model"));
        let by_header = RouteHints { target: Some(RouteTarget::Edge), ..RouteHints::default() };
        let (route, _) = route_of(&gateway, request(HARD, by_header)).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Edge, "forced_by_header"));
    }

    #[tokio::test]
    async fn a_down_cloud_falls_back_to_the_edge_then_cools_down() {
        let info = FakeBackend::new("cloud", "").model_info().clone();
        let gateway = gateway(Some(Arc::new(DownBackend(info))));
        let (route, text) = route_of(&gateway, request(HARD, RouteHints::default())).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Edge, "fallback_cloud_failed"));
        assert!(route.fallback_from.unwrap().contains("connection refused"));
        assert_eq!(text, "edge says hi");
        // Within the cooldown the cloud is not tried at all.
        let (route, _) = route_of(&gateway, request(HARD, RouteHints::default())).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Edge, "cloud_unavailable"));
    }

    #[tokio::test]
    async fn without_a_cloud_everything_is_served_at_the_edge() {
        let gateway = gateway(None);
        let (route, _) = route_of(&gateway, request(HARD, RouteHints::default())).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Edge, "cloud_unavailable"));
    }

    fn cascading(min_mean_logprob: f32) -> Gateway {
        let edge: Arc<dyn Backend> = Arc::new(FakeBackend::new("edge-model", "edge says hi"));
        let cloud: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud", "cloud says hi"));
        let config = GatewayConfig {
            cascade: Some(CascadeConfig { min_mean_logprob, probe_tokens: 2 }),
            ..GatewayConfig::default()
        };
        Gateway::new(edge, Some(cloud), Arc::new(TransparentScorer), config)
    }

    #[tokio::test]
    async fn a_confident_edge_answer_is_kept_without_leaking_logprobs() {
        // The fake gives every token a log-probability of -0.5.
        let gateway = cascading(-1.0);
        let mut generation = gateway.submit(request("Hi there", RouteHints::default())).unwrap();
        let mut text = String::new();
        while let Some(event) = generation.next_event().await {
            match event.unwrap() {
                GenerationEvent::Routed(info) => assert_eq!(info.reason, "confident_at_edge"),
                GenerationEvent::Delta { text: piece, logprobs } => {
                    assert!(logprobs.is_empty(), "the client did not ask for logprobs");
                    text.push_str(&piece);
                }
                GenerationEvent::ToolCall(_) => {}
                GenerationEvent::Finished(_) => break,
            }
        }
        assert_eq!(text, "edge says hi");
    }

    #[tokio::test]
    async fn a_doubtful_edge_answer_is_escalated_before_the_client_sees_it() {
        let gateway = cascading(-0.1);
        let (route, text) = route_of(&gateway, request("Hi there", RouteHints::default())).await;
        assert_eq!(
            (route.target, route.reason.as_str(), text.as_str()),
            (RouteTarget::Cloud, "low_edge_confidence", "cloud says hi")
        );
    }

    #[tokio::test]
    async fn an_answer_with_choices_is_judged_by_its_least_sure_choice() {
        // Token logprobs are -0.5 (confident under -1.0); the choice itself is a coin toss.
        let edge: Arc<dyn Backend> = Arc::new(FakeBackend::new("edge-model", "\"B\"").with_choice("\"B\"", 0.3));
        let cloud: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud", "cloud says hi"));
        let config = GatewayConfig {
            cascade: Some(CascadeConfig { min_mean_logprob: -1.0, probe_tokens: 2 }),
            ..GatewayConfig::default()
        };
        let gateway = Gateway::new(edge, Some(cloud), Arc::new(TransparentScorer), config);
        let (route, _) = route_of(&gateway, request("Which letter?", RouteHints::default())).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Cloud, "low_edge_confidence"));
    }

    #[tokio::test]
    async fn over_the_power_budget_edge_work_goes_to_the_cloud_or_waits() {
        let hot: Arc<dyn Backend> = Arc::new(FakeBackend::new("edge-model", "edge").with_power_watts(12.0));
        let cloud: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud", "cloud says hi"));
        let budget = |action| GatewayConfig {
            power_budget: Some(PowerBudget { watts: 10.0, action }),
            ..GatewayConfig::default()
        };
        let gateway =
            Gateway::new(hot.clone(), Some(cloud.clone()), Arc::new(TransparentScorer), budget(PowerAction::Cloud));
        let (route, _) = route_of(&gateway, request("Hi", RouteHints::default())).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Cloud, "power_budget"));
        // Forcing the edge still works: the budget governs only the router's own choices.
        let forced = RouteHints { target: Some(RouteTarget::Edge), ..RouteHints::default() };
        let (route, _) = route_of(&gateway, request("Hi", forced)).await;
        assert_eq!(route.target, RouteTarget::Edge);

        // Queueing: a cool edge answers at once.
        let cool: Arc<dyn Backend> = Arc::new(FakeBackend::new("edge-model", "edge").with_power_watts(3.0));
        let gateway = Gateway::new(cool, Some(cloud), Arc::new(TransparentScorer), budget(PowerAction::Queue));
        let (route, _) = route_of(&gateway, request("Hi", RouteHints::default())).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Edge, "score_below_threshold"));
    }

    /// A cloud that fails its first `failures` requests, then answers.
    struct FlakyBackend {
        inner: FakeBackend,
        failures: std::sync::atomic::AtomicU32,
    }

    impl Backend for FlakyBackend {
        fn model_info(&self) -> &ModelInfo {
            self.inner.model_info()
        }
        fn load(&self) -> BackendLoad {
            BackendLoad::default()
        }
        fn submit(&self, request: GenerateRequest) -> Result<Generation, BackendError> {
            use std::sync::atomic::Ordering;
            if self.failures.load(Ordering::SeqCst) > 0 {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                return Err(BackendError::Unavailable("503 from the cloud".into()));
            }
            self.inner.submit(request)
        }
    }

    #[tokio::test]
    async fn a_cloud_that_fails_once_is_retried_before_falling_back() {
        let flaky = |failures: u32| -> Arc<dyn Backend> {
            Arc::new(FlakyBackend { inner: FakeBackend::new("cloud", "cloud says hi"), failures: failures.into() })
        };
        let (route, _) = route_of(&gateway(Some(flaky(1))), request(HARD, RouteHints::default())).await;
        assert_eq!(route.target, RouteTarget::Cloud, "one failure is absorbed by the retry");
        let (route, _) = route_of(&gateway(Some(flaky(2))), request(HARD, RouteHints::default())).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Edge, "fallback_cloud_failed"));
    }

    #[tokio::test]
    async fn a_full_edge_sends_auto_traffic_to_the_cloud() {
        let edge: Arc<dyn Backend> = Arc::new(FakeBackend::new("edge-model", "edge").with_capacity(0));
        let cloud: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud", "cloud says hi"));
        let gateway = Gateway::new(edge, Some(cloud), Arc::new(TransparentScorer), GatewayConfig::default());
        let (route, _) = route_of(&gateway, request("Hi", RouteHints::default())).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Cloud, "edge_overloaded"));
    }
}
