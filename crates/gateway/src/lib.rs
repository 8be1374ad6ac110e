//! The routing [`Backend`]: every request is scored, given a domain, and sent
//! up a ladder of tiers (small local model → larger local model → cloud A →
//! cloud B), each tier covering for the others when it fails.
//!
//! ```text
//! submit ─ score + domain ─ ladder of the domain ─ decide the first rung ─┐
//!   ┌─────────────────────────────────────────────────────────────────────┘
//!   └─ rung ─┬─ answers ────────────────────────────── Routed + the answer
//!            ├─ low confidence (local, auto-routed) ── the rung above
//!            ├─ fails or is full before any output ─── the next available rung, up then down
//!            └─ cloud answers in the wrong shape ───── the local rung below
//! ```
//!
//! The decision itself is `edgeway-policy`'s pure function and the ladder is
//! [`tiers`]'; this crate adds what needs time and state ([`walk`]): waiting
//! for a rung's first output before committing to it, probing confidence,
//! falling back, and the cooldown that keeps a failing cloud from costing
//! every request a timeout. The first event of every stream is `Routed`,
//! which says which model and tier answer, why, and what was tried first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use edgeway_core::{
    Backend, BackendError, BackendLoad, BoxFuture, GenerateRequest, Generation, GenerationEvent, KeepAlive, ModelInfo,
    ModelStatus, OutputFormat, Prompt, RouteReason, RouteTarget, ScoreFallback,
};
use edgeway_policy::{
    decide, ComplexityScorer, DomainRules, InvalidCloudAnswer, StructuredRoute, Thresholds, TierThresholds,
};
use tokio::sync::mpsc;

mod shape;
pub mod tiers;
mod walk;

pub use tiers::{Member, Tiers, TiersError};
use walk::{forward_all, route_info, EventSender, RouteContext, Walk, WalkSettings};

/// The name that lets the router choose.
pub const AUTO: &str = "auto";

/// How the gateway routes.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Score thresholds per domain for the first cloud tier.
    pub thresholds: Thresholds,
    /// Score thresholds per domain for other tiers (none: they are escalated or fallen back to only).
    pub tier_thresholds: TierThresholds,
    /// How domains are recognised.
    pub domains: DomainRules,
    /// How long a cloud that failed is left alone before it is tried again.
    pub cooldown: Duration,
    /// Confidence escalation: answer on a local tier first and check, if set.
    pub cascade: Option<CascadeConfig>,
    /// A ceiling on the local models' power draw, if set.
    pub power_budget: Option<PowerBudget>,
    /// Extra attempts at a cloud that fails before any output, before the next tier steps in.
    pub cloud_retries: u32,
    /// Wait before the first retry; it doubles for each one after.
    pub retry_backoff: Duration,
    /// Where requests for structured output go (a raw grammar always goes to a local model).
    pub structured: StructuredRoute,
    /// Where requests that offer callable tools go.
    pub tools: StructuredRoute,
    /// What happens when a cloud answers a structured request in the wrong shape.
    pub invalid_cloud_answer: InvalidCloudAnswer,
}

/// A ceiling on the local models' rolling power draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerBudget {
    /// Watts the local models may draw, averaged over the last seconds.
    pub watts: f64,
    /// What happens to auto-routed local work while the draw is at or over the budget.
    pub action: PowerAction,
}

/// What to do with local work while over the power budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Send it to a cloud (or wait, when there is none).
    Cloud,
    /// Hold it until the draw falls below the budget.
    Queue,
}

/// Longest a request waits for the power draw to fall before it runs anyway.
const POWER_WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Confidence escalation: requests the router starts on a local tier are
/// answered there first, and moved up one tier when the model's own
/// confidence in its first tokens is low, before any of them reaches the client.
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
            tier_thresholds: TierThresholds::default(),
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

/// How a gateway routes now: the scorer and the thresholds that cut its scores, which belong
/// together (thresholds calibrated for one scorer mean nothing on another's scale).
pub struct Routing {
    /// Scores each request's complexity.
    pub scorer: Arc<dyn ComplexityScorer>,
    /// Edge or cloud, per domain.
    pub thresholds: Thresholds,
    /// Where each tier starts, per domain.
    pub tier_thresholds: TierThresholds,
}

/// A gateway's [`Routing`], replaceable while it serves (a fleet center's pushed configuration):
/// requests already routed keep theirs, the next ones take the new one whole.
#[derive(Clone)]
pub struct RoutingHandle(Arc<RwLock<Arc<Routing>>>);

impl RoutingHandle {
    /// A handle on `routing`, for a gateway to route by.
    pub fn new(routing: Routing) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(routing))))
    }

    /// Routes every request from now on by `routing`.
    pub fn set(&self, routing: Routing) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(routing);
    }

    /// Routes every request from now on by these thresholds, with the scorer in force.
    pub fn set_thresholds(&self, thresholds: Thresholds, tier_thresholds: TierThresholds) {
        let mut current = self.0.write().unwrap_or_else(|e| e.into_inner());
        *current = Arc::new(Routing { scorer: Arc::clone(&current.scorer), thresholds, tier_thresholds });
    }

    /// The routing in force.
    pub fn current(&self) -> Arc<Routing> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Local models and clouds, on tiers, behind one [`Backend`].
pub struct Gateway {
    tiers: Tiers,
    config: GatewayConfig,
    /// The scorer and `config`'s thresholds, as they are now.
    routing: RoutingHandle,
    /// Every domain a rule, threshold or model names: what a client may name (others become `other`).
    known_domains: Vec<String>,
    /// Whether routing on a fallback score has been reported in the log.
    fallback_warned: AtomicBool,
}

/// Where a request starts and how it may move.
struct Plan {
    ladder: Vec<Arc<Member>>,
    rung: usize,
    reason: RouteReason,
    /// A local rung chosen by the client or a policy: never left for another.
    pinned: bool,
    /// The router chose the rung: confidence escalation and the power budget apply.
    auto: bool,
}

impl Gateway {
    /// A gateway over one local model and an optional cloud (tiers 0 and 1).
    pub fn new(
        edge: Arc<dyn Backend>,
        cloud: Option<Arc<dyn Backend>>,
        scorer: Arc<dyn ComplexityScorer>,
        config: GatewayConfig,
    ) -> Result<Self, TiersError> {
        let mut members = vec![Member::local(edge, 0)];
        members.extend(cloud.map(|cloud| Member::cloud(cloud, 1)));
        Ok(Self::with_tiers(Tiers::new(members)?, scorer, config))
    }

    /// A gateway over any number of local models and clouds on tiers.
    pub fn with_tiers(tiers: Tiers, scorer: Arc<dyn ComplexityScorer>, config: GatewayConfig) -> Self {
        let mut known_domains: Vec<String> = config
            .domains
            .names()
            .chain(config.thresholds.domains())
            .chain(config.tier_thresholds.domains())
            .map(str::to_owned)
            .chain(tiers.members().iter().flat_map(|member| member.domains.iter().cloned()))
            .collect();
        known_domains.sort();
        known_domains.dedup();
        let routing = RoutingHandle::new(Routing {
            scorer,
            thresholds: config.thresholds.clone(),
            tier_thresholds: config.tier_thresholds.clone(),
        });
        Self { tiers, config, routing, known_domains, fallback_warned: AtomicBool::new(false) }
    }

    /// The handle that replaces its scorer and thresholds while it serves.
    pub fn routing(&self) -> RoutingHandle {
        self.routing.clone()
    }

    /// The models it routes over, lowest tier first.
    pub fn tiers(&self) -> &Tiers {
        &self.tiers
    }

    fn walk_settings(&self) -> WalkSettings {
        WalkSettings {
            cooldown: self.config.cooldown,
            retries: self.config.cloud_retries,
            backoff: self.config.retry_backoff,
            invalid_cloud_answer: self.config.invalid_cloud_answer,
            cascade: self.config.cascade,
        }
    }

    /// The rung the client or a policy asks for, if any, and why.
    fn forced(&self, request: &GenerateRequest, ladder: &mut Vec<Arc<Member>>) -> Option<(usize, RouteReason)> {
        if let Some(model) = request.route.model.as_deref().filter(|m| !m.eq_ignore_ascii_case(AUTO)) {
            if let Some(member) = self.tiers.named(model) {
                return Some((place(ladder, member.clone()), RouteReason::ForcedByModel));
            }
        }
        if let Some(tier) = request.route.tier {
            if let Some(rung) = self.tier_rung(ladder, tier) {
                return Some((rung, RouteReason::ForcedByTier));
            }
        }
        let first_of = |ladder: &[Arc<Member>], target| ladder.iter().position(|m| m.target == target);
        let side = |target: RouteTarget, reason| match first_of(ladder, target) {
            Some(rung) => Some((rung, reason)),
            // Asked for a cloud where there is none: the first rung, marked as such.
            None => Some((0, RouteReason::CloudUnavailable)),
        };
        if let Some(target) = request.route.target {
            return side(target, RouteReason::ForcedByHeader);
        }
        let callable = request.tools.as_ref().is_some_and(|tools| tools.callable().next().is_some());
        if let (true, Some(target)) = (callable, self.config.tools.target()) {
            return side(target, RouteReason::ToolUse);
        }
        match &request.sampling.format {
            Some(OutputFormat::Grammar(_)) => side(RouteTarget::Edge, RouteReason::GrammarNeedsEdge),
            Some(_) => self.config.structured.target().and_then(|target| side(target, RouteReason::StructuredOutput)),
            None => None,
        }
    }

    /// The rung of `tier` for the request's domain, placing the tier's generalist (or first
    /// member) on the ladder when the domain's ladder skips that tier.
    fn tier_rung(&self, ladder: &mut Vec<Arc<Member>>, tier: u32) -> Option<usize> {
        if let Some(rung) = ladder.iter().position(|m| m.tier == tier) {
            return Some(rung);
        }
        let members = self.tiers.members().iter().filter(|m| m.tier == tier);
        let member = members.clone().find(|m| m.is_generalist()).or_else(|| members.clone().next())?;
        Some(place(ladder, member.clone()))
    }

    fn plan(&self, request: &GenerateRequest, context: &RouteContext, routing: &Routing) -> Plan {
        let mut ladder = self.tiers.ladder(&context.domain);
        let forced = self.forced(request, &mut ladder);
        let rungs: Vec<_> = ladder.iter().map(|member| member.rung()).collect();
        let (thresholds, tier_thresholds) = (&routing.thresholds, &routing.tier_thresholds);
        let decision = decide(context.score, &context.domain, thresholds, tier_thresholds, &rungs, forced);
        let local = ladder[decision.rung].target == RouteTarget::Edge;
        Plan {
            rung: decision.rung,
            reason: decision.reason,
            pinned: local && forced.is_some_and(|(_, reason)| reason != RouteReason::CloudUnavailable),
            auto: forced.is_none(),
            ladder,
        }
    }
}

/// Puts `member` on `ladder` at its tier (in place of that tier's rung) and returns its index.
fn place(ladder: &mut Vec<Arc<Member>>, member: Arc<Member>) -> usize {
    if let Some(index) = ladder.iter().position(|m| Arc::ptr_eq(m, &member)) {
        return index;
    }
    match ladder.iter().position(|m| m.tier >= member.tier) {
        Some(index) if ladder[index].tier == member.tier => {
            ladder[index] = member;
            index
        }
        Some(index) => {
            ladder.insert(index, member);
            index
        }
        None => {
            ladder.push(member);
            ladder.len() - 1
        }
    }
}

impl Backend for Gateway {
    fn model_info(&self) -> &ModelInfo {
        self.tiers.primary().backend.model_info()
    }

    fn model_ids(&self) -> Vec<String> {
        let mut ids = vec![AUTO.to_owned()];
        ids.extend(self.tiers.members().iter().flat_map(|member| member.backend.model_ids()));
        ids
    }

    fn load(&self) -> BackendLoad {
        let mut load = BackendLoad::default();
        let mut clouds = None;
        for member in self.tiers.members() {
            if member.target == RouteTarget::Cloud {
                clouds = Some(clouds.unwrap_or(false) || member.available());
                continue;
            }
            let local = member.backend.load();
            load.busy_slots += local.busy_slots;
            load.queued += local.queued;
            if let Some(watts) = local.power_watts {
                load.power_watts = Some(load.power_watts.unwrap_or(0.0) + watts);
            }
        }
        load.cloud_up = clouds;
        load
    }

    /// Every member's models (each model of a pool, loaded or not), lowest tier first,
    /// with the tier and domains the router gives them.
    fn models(&self) -> Vec<ModelStatus> {
        let mut models = Vec::new();
        for member in self.tiers.members() {
            for mut status in member.backend.models() {
                status.tier = Some(member.tier);
                status.domains = member.domains.clone();
                models.push(status);
            }
        }
        models
    }

    /// Loads the named model (the primary local model for `None` or `auto`) on its member.
    fn preload<'a>(
        &'a self,
        model: Option<&'a str>,
        keep_alive: Option<KeepAlive>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        match self.member_for(model) {
            Ok(member) => member.backend.preload(model.filter(|m| !m.eq_ignore_ascii_case(AUTO)), keep_alive),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    /// Unloads the named model (the primary local model for `None` or `auto`) on its member.
    fn unload(&self, model: Option<&str>) -> Result<(), BackendError> {
        self.member_for(model)?.backend.unload(model.filter(|m| !m.eq_ignore_ascii_case(AUTO)))
    }

    fn tokenize(&self, prompt: &Prompt) -> Result<Vec<u32>, BackendError> {
        self.tiers.primary().backend.tokenize(prompt)
    }

    /// Yes when the scorer reads embeddings and this request is routed by its score: a ladder
    /// of more than one rung and nothing (model, header, tier, format or tools policy) forcing one.
    fn wants_query_embedding(&self, request: &GenerateRequest) -> bool {
        if self.routing.current().scorer.embedding().is_none() {
            return false;
        }
        let mut ladder = self.tiers.ladder(&self.domain(request));
        ladder.len() > 1 && self.forced(request, &mut ladder).is_none()
    }

    fn submit(&self, request: GenerateRequest) -> Result<Generation, BackendError> {
        // The embedding, if any, was computed once before submit; the gateway never embeds.
        let routing = self.routing.current();
        let scored = routing.scorer.score_with(&request.prompt, request.query_embedding.as_ref());
        let context =
            RouteContext { score: scored.value, score_fallback: scored.fallback, domain: self.domain(&request) };
        let plan = self.plan(&request, &context, &routing);
        let member = plan.ladder[plan.rung].clone();
        let score = context.score;
        tracing::debug!(score, fallback = ?context.score_fallback, domain = %context.domain, model = member.id(), tier = member.tier, reason = %plan.reason, "routed");
        if let Some(fallback) = context.score_fallback.filter(|_| plan.auto && plan.ladder.len() > 1) {
            self.warn_fallback(fallback);
        }

        let local = member.target == RouteTarget::Edge;
        if let Some(budget) = self.config.power_budget.filter(|_| plan.auto && local) {
            if self.load().power_watts.is_some_and(|watts| watts >= budget.watts) {
                return Ok(self.over_power_budget(budget, request, context, plan));
            }
        }
        // One local model and nowhere else to go: straight to it, no routing task in between.
        if local && (plan.pinned || plan.ladder.len() == 1) {
            let generation = member.backend.submit(request)?;
            let info = route_info(&member, plan.reason, &context);
            return Ok(generation.prepend(GenerationEvent::Routed(info)));
        }
        let walk = Walk {
            ladder: plan.ladder,
            context,
            settings: self.walk_settings(),
            pinned: plan.pinned,
            probing: plan.auto && self.config.cascade.is_some(),
        };
        Ok(spawn_routed(move |events| walk.run(request, plan.rung, plan.reason, events)))
    }
}

impl Gateway {
    /// The request's domain: the client's when it is one this gateway knows (any other is
    /// `other`: a client cannot mint new domains), else the rules'.
    fn domain(&self, request: &GenerateRequest) -> String {
        match &request.route.domain {
            Some(named) => self
                .known_domains
                .iter()
                .find(|known| known.eq_ignore_ascii_case(named))
                .map_or(edgeway_policy::domain::OTHER, String::as_str)
                .to_owned(),
            None => self.config.domains.classify(&request.prompt).to_owned(),
        }
    }

    /// Says once, at warn level, that the router routes on the transparent score (every
    /// response says so in `x-edgeway-score-fallback`; the debug log has each one).
    fn warn_fallback(&self, fallback: ScoreFallback) {
        if !self.fallback_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                %fallback,
                "the embedding scorer could not score a request (no query embedding from the embedding model it \
                 was trained on); routing on the transparent score instead"
            );
        }
    }

    /// The member serving `model`: the primary for `None` or `auto`, an error for a name none serves.
    fn member_for(&self, model: Option<&str>) -> Result<&Arc<Member>, BackendError> {
        match model.filter(|m| !m.eq_ignore_ascii_case(AUTO)) {
            None => Ok(self.tiers.primary()),
            Some(name) => self
                .tiers
                .named(name)
                .ok_or_else(|| BackendError::InvalidRequest(format!("no model named \"{name}\" is configured"))),
        }
    }
}

impl Gateway {
    /// Local work while the local models draw more than the budget: to a cloud, or held until the draw falls.
    fn over_power_budget(
        &self,
        budget: PowerBudget,
        request: GenerateRequest,
        context: RouteContext,
        plan: Plan,
    ) -> Generation {
        let walk = Walk { ladder: plan.ladder, context, settings: self.walk_settings(), pinned: false, probing: false };
        let cloud = walk.ladder.iter().position(|m| m.target == RouteTarget::Cloud && m.available());
        if let (PowerAction::Cloud, Some(rung)) = (budget.action, cloud) {
            return spawn_routed(move |events| walk.run(request, rung, RouteReason::PowerBudget, events));
        }
        let local = walk.ladder[plan.rung].clone();
        spawn_routed(move |events| async move {
            let started = Instant::now();
            while local.backend.load().power_watts.is_some_and(|watts| watts >= budget.watts)
                && started.elapsed() < POWER_WAIT_LIMIT
            {
                if events.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match local.backend.submit(request) {
                Ok(generation) => {
                    let info = route_info(&local, RouteReason::PowerBudgetWaited, &walk.context);
                    let _ = events.send(Ok(GenerationEvent::Routed(info)));
                    forward_all(generation, &events, false).await;
                }
                Err(error) => {
                    let _ = events.send(Err(error));
                }
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use edgeway_core::fake::FakeBackend;
    use edgeway_core::RouteInfo;
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

    fn gateway(cloud: Option<Arc<dyn Backend>>) -> Gateway {
        let edge: Arc<dyn Backend> = Arc::new(FakeBackend::new("edge-model", "edge says hi"));
        Gateway::new(edge, cloud, Arc::new(TransparentScorer), GatewayConfig::default()).unwrap()
    }

    fn request(text: &str, route: RouteHints) -> GenerateRequest {
        GenerateRequest {
            prompt: Prompt::Chat(vec![ChatMessage::new("user", text)]),
            sampling: SamplingParams::default(),
            route,
            tools: None,
            query_embedding: None,
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
        let gateway = Gateway::new(edge, Some(cloud), Arc::new(TransparentScorer), config).unwrap();
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
            Gateway::new(edge, Some(cloud), Arc::new(TransparentScorer), config).unwrap()
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
        let gateway = Gateway::new(edge, Some(cloud), Arc::new(TransparentScorer), config).unwrap();
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

    /// An embedding scorer over 2-dimensional toy vectors: the cloud is needed when the first
    /// number outweighs the second. It counts the embeddings it is given.
    struct ToyEmbeddingScorer {
        inner: edgeway_policy::EmbeddingScorer,
        embeddings_seen: std::sync::atomic::AtomicU32,
    }

    impl ToyEmbeddingScorer {
        fn new() -> Self {
            use edgeway_policy::embedding::{Classifier, EmbeddingTraining, Logistic};
            let features = 2 + TransparentScorer.score(&Prompt::Text(String::new())).features.len();
            let mut weights = vec![0.0; features];
            weights[..2].copy_from_slice(&[8.0, -8.0]);
            let classifier = Classifier::Logistic(Logistic {
                mean: vec![0.0; features],
                scale: vec![1.0; features],
                weights,
                bias: 0.0,
                l2: 0.0,
            });
            let spec = edgeway_policy::EmbeddingSpec { model: "toy".into(), dims: 2 };
            let model = edgeway_policy::EmbeddingModel::new(spec, classifier, EmbeddingTraining::default());
            Self { inner: edgeway_policy::EmbeddingScorer::new(model), embeddings_seen: Default::default() }
        }
    }

    impl ComplexityScorer for ToyEmbeddingScorer {
        fn score(&self, prompt: &Prompt) -> edgeway_policy::Score {
            self.inner.score(prompt)
        }
        fn embedding(&self) -> Option<&edgeway_policy::EmbeddingSpec> {
            self.inner.embedding()
        }
        fn score_with(
            &self,
            prompt: &Prompt,
            embedding: Option<&edgeway_core::QueryEmbedding>,
        ) -> edgeway_policy::Score {
            if embedding.is_some() {
                self.embeddings_seen.fetch_add(1, Ordering::SeqCst);
            }
            self.inner.score_with(prompt, embedding)
        }
    }

    #[tokio::test]
    async fn an_embedding_scorer_reads_the_precomputed_embedding_once_and_falls_back_without_one() {
        let scorer = Arc::new(ToyEmbeddingScorer::new());
        let edge: Arc<dyn Backend> = Arc::new(FakeBackend::new("edge-model", "edge says hi"));
        let cloud: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud", "cloud says hi"));
        let gateway = Gateway::new(edge.clone(), Some(cloud), scorer.clone(), GatewayConfig::default()).unwrap();
        let embedded = |text: &str, vector: [f32; 2]| GenerateRequest {
            query_embedding: Some(edgeway_core::QueryEmbedding::new("toy", vector.to_vec())),
            ..request(text, RouteHints::default())
        };

        // Only requests routed by score ask for an embedding.
        assert!(gateway.wants_query_embedding(&request("Hi", RouteHints::default())));
        let forced = RouteHints { target: Some(RouteTarget::Edge), ..RouteHints::default() };
        assert!(!gateway.wants_query_embedding(&request("Hi", forced)));
        let named = RouteHints { model: Some("cloud".into()), ..RouteHints::default() };
        assert!(!gateway.wants_query_embedding(&request("Hi", named)));
        let alone = Gateway::new(edge.clone(), None, scorer.clone(), GatewayConfig::default()).unwrap();
        assert!(!alone.wants_query_embedding(&request("Hi", RouteHints::default())), "one rung: nothing to decide");
        let transparent = gateway_with_scorer(edge, Arc::new(TransparentScorer));
        assert!(!transparent.wants_query_embedding(&request("Hi", RouteHints::default())));

        // The embedding decides, not the words: the same easy text goes either way, scored once each.
        let (route, _) = route_of(&gateway, embedded("Hi there", [0.9, 0.1])).await;
        assert_eq!((route.target, route.score_fallback), (RouteTarget::Cloud, None));
        assert!(route.score.unwrap() > 0.9, "{:?}", route.score);
        let (route, _) = route_of(&gateway, embedded("Hi there", [0.1, 0.9])).await;
        assert_eq!((route.target, route.score_fallback), (RouteTarget::Edge, None));
        assert_eq!(scorer.embeddings_seen.load(Ordering::SeqCst), 2);

        // No embedding (no model, or it failed) or another model's: the transparent score routes, and says so.
        let (route, _) = route_of(&gateway, request(HARD, RouteHints::default())).await;
        assert_eq!((route.target, route.score_fallback), (RouteTarget::Cloud, Some(ScoreFallback::NoEmbedding)));
        assert_eq!(route.score, Some(TransparentScorer.score(&request(HARD, RouteHints::default()).prompt).value));
        let mut foreign = embedded("Hi there", [0.9, 0.1]);
        foreign.query_embedding = Some(edgeway_core::QueryEmbedding::new("other-model", vec![0.9, 0.1]));
        let (route, _) = route_of(&gateway, foreign).await;
        assert_eq!((route.target, route.score_fallback), (RouteTarget::Edge, Some(ScoreFallback::EmbeddingMismatch)));
    }

    fn gateway_with_scorer(edge: Arc<dyn Backend>, scorer: Arc<dyn ComplexityScorer>) -> Gateway {
        let cloud: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud", "cloud says hi"));
        Gateway::new(edge, Some(cloud), scorer, GatewayConfig::default()).unwrap()
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
        Gateway::new(edge, Some(cloud), Arc::new(TransparentScorer), config).unwrap()
    }

    #[tokio::test]
    async fn a_confident_edge_answer_is_kept_without_leaking_logprobs() {
        // The fake gives every token a log-probability of -0.5.
        let gateway = cascading(-1.0);
        let mut generation = gateway.submit(request("Hi there", RouteHints::default())).unwrap();
        let mut text = String::new();
        while let Some(event) = generation.next_event().await {
            match event.unwrap() {
                GenerationEvent::Routed(info) => assert_eq!(info.reason, RouteReason::ConfidentAtEdge),
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
        let gateway = Gateway::new(edge, Some(cloud), Arc::new(TransparentScorer), config).unwrap();
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
            Gateway::new(hot.clone(), Some(cloud.clone()), Arc::new(TransparentScorer), budget(PowerAction::Cloud))
                .unwrap();
        let (route, _) = route_of(&gateway, request("Hi", RouteHints::default())).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Cloud, "power_budget"));
        // Forcing the edge still works: the budget governs only the router's own choices.
        let forced = RouteHints { target: Some(RouteTarget::Edge), ..RouteHints::default() };
        let (route, _) = route_of(&gateway, request("Hi", forced)).await;
        assert_eq!(route.target, RouteTarget::Edge);

        // Queueing: a cool edge answers at once.
        let cool: Arc<dyn Backend> = Arc::new(FakeBackend::new("edge-model", "edge").with_power_watts(3.0));
        let gateway = Gateway::new(cool, Some(cloud), Arc::new(TransparentScorer), budget(PowerAction::Queue)).unwrap();
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
        let gateway = Gateway::new(edge, Some(cloud), Arc::new(TransparentScorer), GatewayConfig::default()).unwrap();
        let (route, _) = route_of(&gateway, request("Hi", RouteHints::default())).await;
        assert_eq!((route.target, route.reason.as_str()), (RouteTarget::Cloud, "edge_overloaded"));
    }

    /// small (tier 0) → medium (tier 1) → coder (tier 1, code) → cloud A (tier 2) → cloud B (tier 3).
    fn tiered(cloud_a: Arc<dyn Backend>, config: GatewayConfig) -> Gateway {
        let local = |name: &str| -> Arc<dyn Backend> { Arc::new(FakeBackend::new(name, &format!("{name} says hi"))) };
        let cloud_b: Arc<dyn Backend> = Arc::new(FakeBackend::new("cloud-b", "cloud-b says hi"));
        let tiers = Tiers::new(vec![
            Member::local(local("small"), 0),
            Member::local(local("medium"), 1),
            Member::local(local("coder"), 1).for_domains(vec!["code".into()]),
            Member::cloud(cloud_a, 2),
            Member::cloud(cloud_b, 3),
        ])
        .unwrap();
        Gateway::with_tiers(tiers, Arc::new(TransparentScorer), config)
    }

    fn cloud_a() -> Arc<dyn Backend> {
        Arc::new(FakeBackend::new("cloud-a", "cloud-a says hi"))
    }

    #[tokio::test]
    async fn a_cascade_climbs_every_local_tier_before_the_cloud_and_says_so() {
        let config = GatewayConfig {
            cascade: Some(CascadeConfig { min_mean_logprob: -0.1, probe_tokens: 2 }),
            ..GatewayConfig::default()
        };
        let gateway = tiered(cloud_a(), config);
        let (route, text) = route_of(&gateway, request("Hi there", RouteHints::default())).await;
        assert_eq!(
            (route.model.as_str(), route.tier, route.reason, text.as_str()),
            ("cloud-a", Some(2), RouteReason::LowEdgeConfidence, "cloud-a says hi")
        );
        let steps: Vec<String> = route.tried.iter().map(ToString::to_string).collect();
        assert_eq!(steps, ["small@0: low_confidence (-0.50)", "medium@1: low_confidence (-0.50)"]);
        // Confident enough: the small model keeps it.
        let config = GatewayConfig {
            cascade: Some(CascadeConfig { min_mean_logprob: -1.0, probe_tokens: 2 }),
            ..GatewayConfig::default()
        };
        let (route, _) = route_of(&tiered(cloud_a(), config), request("Hi there", RouteHints::default())).await;
        assert_eq!((route.model.as_str(), route.reason, route.tried.len()), ("small", RouteReason::ConfidentAtEdge, 0));
    }

    #[tokio::test]
    async fn the_domain_picks_the_specialist_and_a_name_picks_any_tier() {
        let gateway = tiered(cloud_a(), GatewayConfig::default());
        let code = RouteHints { domain: Some("code".into()), ..RouteHints::default() };
        let (route, text) = route_of(&gateway, request("Fix this loop", code)).await;
        assert_eq!((route.model.as_str(), route.tier, text.as_str()), ("coder", Some(1), "coder says hi"));
        let (route, _) = route_of(&gateway, request("Hi there", RouteHints::default())).await;
        assert_eq!((route.model.as_str(), route.reason), ("small", RouteReason::ScoreBelowThreshold));
        let by_name = RouteHints { model: Some("medium".into()), ..RouteHints::default() };
        let (route, _) = route_of(&gateway, request("Hi there", by_name)).await;
        assert_eq!((route.model.as_str(), route.reason), ("medium", RouteReason::ForcedByModel));
        let ids = gateway.model_ids();
        assert_eq!(ids, ["auto", "small", "medium", "coder", "cloud-a", "cloud-b"]);
        let listed: Vec<_> =
            gateway.models().into_iter().map(|status| (status.id, status.tier, status.domains)).collect();
        assert_eq!(listed[2], ("coder".to_owned(), Some(1), vec!["code".to_owned()]));
        assert_eq!(listed[4], ("cloud-b".to_owned(), Some(3), vec![]));
        gateway.preload(Some("coder"), None).await.unwrap();
        gateway.unload(Some(AUTO)).unwrap();
        let error = gateway.unload(Some("nope")).unwrap_err();
        assert!(error.to_string().contains("no model named \"nope\""), "{error}");
    }

    #[tokio::test]
    async fn a_domain_the_gateway_does_not_know_becomes_other() {
        let gateway = tiered(cloud_a(), GatewayConfig::default());
        let named = |domain: &str| RouteHints { domain: Some(domain.into()), ..RouteHints::default() };
        for (sent, kept) in [("CODE", "code"), ("finance", "finance"), ("x-7f3a9c", "other"), ("", "other")] {
            let (route, _) = route_of(&gateway, request("Hi there", named(sent))).await;
            assert_eq!(route.domain.as_deref(), Some(kept), "{sent}");
        }
    }

    #[tokio::test]
    async fn a_dead_first_cloud_hands_over_to_the_second() {
        let info = FakeBackend::new("cloud-a", "").model_info().clone();
        let gateway = tiered(Arc::new(DownBackend(info)), GatewayConfig::default());
        let (route, text) = route_of(&gateway, request(HARD, RouteHints::default())).await;
        assert_eq!(
            (route.model.as_str(), route.reason, text.as_str()),
            ("cloud-b", RouteReason::FallbackCloudFailed, "cloud-b says hi")
        );
        assert_eq!(route.tried.len(), 1);
        assert!(route.tried[0].to_string().starts_with("cloud-a@2: failed"), "{:?}", route.tried);
        // While cloud A cools down the score's pick moves straight to cloud B.
        let (route, _) = route_of(&gateway, request(HARD, RouteHints::default())).await;
        assert_eq!((route.model.as_str(), route.reason), ("cloud-b", RouteReason::CloudUnavailable));
    }

    #[tokio::test]
    async fn a_local_model_that_fails_hands_over_to_the_next_tier() {
        let broken = DownBackend(FakeBackend::new("small", "").model_info().clone());
        let tiers = Tiers::new(vec![
            Member::local(Arc::new(broken), 0),
            Member::local(Arc::new(FakeBackend::new("medium", "medium says hi")), 1),
        ])
        .unwrap();
        let gateway = Gateway::with_tiers(tiers, Arc::new(TransparentScorer), GatewayConfig::default());
        let (route, text) = route_of(&gateway, request("Hi there", RouteHints::default())).await;
        assert_eq!(
            (route.model.as_str(), route.reason, text.as_str()),
            ("medium", RouteReason::FallbackEdgeFailed, "medium says hi")
        );
        // Asked for by name, it is not swapped for another.
        let by_name = RouteHints { model: Some("small".into()), ..RouteHints::default() };
        assert!(gateway.submit(request("Hi there", by_name)).is_err());
    }
}
