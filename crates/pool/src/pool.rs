//! [`ModelPool`] and [`PooledModel`]: the async plumbing around the pure
//! decisions of [`crate::residency`] and [`crate::gate`].
//!
//! All state sits behind one `std::sync::Mutex`, held only for bookkeeping
//! (never across an await, a load or an unload), so the fast path (a loaded
//! model whose turn it is) costs one uncontended lock. Waiting requests sleep
//! on a `Notify` that every change wakes, and re-check the state: simpler than
//! per-event channels and, with a handful of waiters, as cheap.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use edgeway_core::{
    Backend, BackendError, BackendLoad, BoxFuture, GenerateRequest, Generation, GenerationEvent, KeepAlive, ModelInfo,
    ModelStatus, Prompt, Residency,
};
use tokio::sync::{mpsc, Notify};

use crate::gate::{Gate, Ticket};
use crate::residency::{self, Entry, Limits, Plan, Refusal, State as EntryState};
use crate::spec::ModelSpec;

/// Loads a model: the CLI passes one that calls the llama.cpp engine, tests a fake.
///
/// Blocking: the pool calls it on a blocking thread (`spawn_blocking`).
pub trait Loader: Send + Sync + 'static {
    /// Reads `spec`'s model into memory and returns it ready to generate, or says why not.
    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn Backend>, String>;
}

impl<F> Loader for F
where
    F: Fn(&ModelSpec) -> Result<Arc<dyn Backend>, String> + Send + Sync + 'static,
{
    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn Backend>, String> {
        self(spec)
    }
}

/// How the pool shares memory and cores among its models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most models in memory at once (`--max-loaded-models`); `None` is no limit.
    pub max_loaded: Option<usize>,
    /// Most bytes the loaded models may hold together (`--memory-budget-mb`); `None` is no limit.
    pub memory_budget_bytes: Option<u64>,
    /// How long a request waits for its model to load, for memory to free and for its
    /// turn to generate, before it fails with [`BackendError::Unavailable`].
    pub load_wait: Duration,
    /// Models that may generate at the same time. 1 (the default): the cores are shared,
    /// and two models decoding at once would each run at half speed or worse.
    pub concurrent_models: usize,
}

impl Default for PoolConfig {
    /// No limits on memory, two minutes of waiting, one model generating at a time.
    fn default() -> Self {
        Self { max_loaded: None, memory_budget_bytes: None, load_wait: Duration::from_secs(120), concurrent_models: 1 }
    }
}

impl PoolConfig {
    fn limits(&self) -> Limits {
        Limits { max_loaded: self.max_loaded, memory_budget_bytes: self.memory_budget_bytes }
    }
}

/// Why a pool could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The pool was given no model.
    #[error("the model pool needs at least one model")]
    NoModels,
    /// Two specs share a name.
    #[error("two models are named \"{0}\"; each model needs its own name")]
    DuplicateName(String),
    /// `max_loaded` is zero.
    #[error("max_loaded is 0: at least one model must fit in memory")]
    MaxLoadedZero,
    /// The pinned models alone exceed a limit.
    #[error("the pinned models ({names}) need {bytes} bytes and {count} places, more than the limits allow (max_loaded {max_loaded:?}, memory budget {budget:?} bytes)")]
    PinnedOverLimits {
        /// Their names.
        names: String,
        /// Their memory together.
        bytes: u64,
        /// How many there are.
        count: usize,
        /// The configured count limit.
        max_loaded: Option<usize>,
        /// The configured memory budget.
        budget: Option<u64>,
    },
}

/// Why a model was unloaded, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnloadReason {
    Idle,
    Budget,
    KeepAliveZero,
    Requested,
}

impl UnloadReason {
    fn as_str(self) -> &'static str {
        match self {
            UnloadReason::Idle => "idle",
            UnloadReason::Budget => "budget",
            UnloadReason::KeepAliveZero => "keep_alive 0",
            UnloadReason::Requested => "requested",
        }
    }
}

/// One model's live state.
struct Slot {
    backend: Option<Arc<dyn Backend>>,
    loading: bool,
    /// Loads started so far; a waiter remembers the one it waits for.
    attempts: u64,
    /// The last failed load: its attempt number and why.
    failure: Option<(u64, String)>,
    /// Callers of [`ModelPool::preload`] waiting for it (they keep it from eviction).
    holds: u32,
    last_used: Instant,
    /// The keep-alive of the latest request (or preload), which applies once it is idle.
    keep_alive: KeepAlive,
    /// When it last became idle (monotonic and wall clock), if loaded and idle.
    idle_since: Option<(Instant, SystemTime)>,
}

struct PoolState {
    slots: Vec<Slot>,
    gate: Gate,
}

struct Shared {
    specs: Vec<ModelSpec>,
    config: PoolConfig,
    loader: Arc<dyn Loader>,
    state: Mutex<PoolState>,
    /// Woken (all waiters) at every change a waiting request may care about.
    changed: Notify,
    /// Wakes the reaper to recompute its next expiry (a stored permit, never missed).
    reaper: Arc<Notify>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The reaper holds only a weak reference: wake it so it sees the pool is gone.
        self.reaper.notify_one();
    }
}

/// Several local models, loaded on first use and unloaded when idle or for room.
///
/// Each model is a [`PooledModel`] (`pool.model(name)`), a [`Backend`] the gateway can
/// treat as any other; the pool itself is also a [`Backend`] that answers for every
/// model, picking one by the request's `model` (the first model when none is named).
pub struct ModelPool {
    shared: Arc<Shared>,
    models: Vec<Arc<PooledModel>>,
}

/// One model of a [`ModelPool`], as a [`Backend`].
pub struct PooledModel {
    shared: Arc<Shared>,
    index: usize,
}

impl std::fmt::Debug for PooledModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledModel").field("name", &self.shared.specs[self.index].name).finish()
    }
}

impl std::fmt::Debug for ModelPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.shared.specs.iter().map(|spec| spec.name.as_str()).collect();
        f.debug_struct("ModelPool").field("models", &names).field("config", &self.shared.config).finish()
    }
}

impl ModelPool {
    /// A pool of `specs`, none loaded yet. Starts the reaper task, so it must be called
    /// inside a tokio runtime. Call [`ModelPool::load_pinned`] to load the pinned ones.
    pub fn new(specs: Vec<ModelSpec>, config: PoolConfig, loader: impl Loader) -> Result<Self, PoolError> {
        validate(&specs, &config)?;
        let now = now();
        let slots = specs
            .iter()
            .map(|spec| Slot {
                backend: None,
                loading: false,
                attempts: 0,
                failure: None,
                holds: 0,
                last_used: now,
                keep_alive: spec.keep_alive,
                idle_since: None,
            })
            .collect();
        let shared = Arc::new(Shared {
            specs,
            config,
            loader: Arc::new(loader),
            state: Mutex::new(PoolState { slots, gate: Gate::new(config.concurrent_models) }),
            changed: Notify::new(),
            reaper: Arc::new(Notify::new()),
        });
        tokio::spawn(reap(Arc::downgrade(&shared), shared.reaper.clone()));
        let models =
            (0..shared.specs.len()).map(|index| Arc::new(PooledModel { shared: shared.clone(), index })).collect();
        Ok(Self { shared, models })
    }

    /// The model named `name` (any case), if the pool has it.
    pub fn model(&self, name: &str) -> Option<Arc<PooledModel>> {
        self.shared.index_of(name).map(|index| self.models[index].clone())
    }

    /// Every model, in the order of the specs.
    pub fn models_in_order(&self) -> &[Arc<PooledModel>] {
        &self.models
    }

    /// The specs the pool was built with.
    pub fn specs(&self) -> &[ModelSpec] {
        &self.shared.specs
    }

    /// Loads every pinned model, one after the other; the first failure is returned.
    pub async fn load_pinned(&self) -> Result<(), BackendError> {
        for spec in self.shared.specs.iter().filter(|spec| spec.pinned) {
            self.preload(&spec.name, None).await?;
        }
        Ok(())
    }

    /// Loads `name` now (Ollama's "load a model" call) and waits for it, bounded by
    /// `load_wait`; `keep_alive` (if given) then applies from now.
    pub async fn preload(&self, name: &str, keep_alive: Option<KeepAlive>) -> Result<(), BackendError> {
        let index = self.shared.index_of(name).ok_or_else(|| unknown(name))?;
        self.shared.preload(index, keep_alive).await
    }

    /// Unloads `name` as soon as it is idle (Ollama's `keep_alive: 0` without a prompt):
    /// at once when nothing uses it, after its running requests otherwise. A pinned model
    /// stays loaded (pinning outranks a client's request).
    pub fn unload(&self, name: &str) -> Result<(), BackendError> {
        let index = self.shared.index_of(name).ok_or_else(|| unknown(name))?;
        self.shared.unload_when_idle(index);
        Ok(())
    }

    /// Every model's status: loaded or not, memory held, when it expires.
    pub fn statuses(&self) -> Vec<ModelStatus> {
        let state = self.shared.lock();
        (0..self.shared.specs.len()).map(|index| self.shared.status(&state, index)).collect()
    }
}

/// The pool's monotonic clock: tokio's, so that tests with paused time see keep-alives
/// run out; outside tests it is `Instant::now()`.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A wait as messages write it: `120 s`, `0.25 s`.
fn seconds_text(wait: Duration) -> String {
    if wait.subsec_nanos() == 0 {
        format!("{} s", wait.as_secs())
    } else {
        format!("{} s", wait.as_secs_f64())
    }
}

fn unknown(name: &str) -> BackendError {
    BackendError::InvalidRequest(format!("the model pool has no model named \"{name}\""))
}

/// Checks names and that the pinned models fit the limits.
fn validate(specs: &[ModelSpec], config: &PoolConfig) -> Result<(), PoolError> {
    if specs.is_empty() {
        return Err(PoolError::NoModels);
    }
    if config.max_loaded == Some(0) {
        return Err(PoolError::MaxLoadedZero);
    }
    for (index, spec) in specs.iter().enumerate() {
        if specs[..index].iter().any(|other| other.name.eq_ignore_ascii_case(&spec.name)) {
            return Err(PoolError::DuplicateName(spec.name.clone()));
        }
    }
    let pinned: Vec<&ModelSpec> = specs.iter().filter(|spec| spec.pinned).collect();
    let bytes: u64 = pinned.iter().map(|spec| spec.estimated_bytes).sum();
    let over_count = config.max_loaded.is_some_and(|max| pinned.len() > max);
    let over_bytes = config.memory_budget_bytes.is_some_and(|budget| bytes > budget);
    if over_count || over_bytes {
        return Err(PoolError::PinnedOverLimits {
            names: pinned.iter().map(|spec| spec.name.as_str()).collect::<Vec<_>>().join(", "),
            bytes,
            count: pinned.len(),
            max_loaded: config.max_loaded,
            budget: config.memory_budget_bytes,
        });
    }
    Ok(())
}

/// What a waiting request is waiting for, which names its error if time runs out.
#[derive(Debug, Clone)]
enum Waiting {
    Load,
    Memory(Vec<usize>),
    Turn,
    Queue,
}

/// One look at the state by a waiting request.
enum Step {
    /// Its turn: submit to this backend.
    Start(Arc<dyn Backend>),
    /// Wait for a change.
    Wait(Waiting),
    /// Give up with this error.
    Fail(BackendError),
}

/// Ends a generation's turn when dropped: the gate's count, the model's idle time.
struct Running {
    shared: Arc<Shared>,
    index: usize,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.finish(self.index);
    }
}

/// Takes a waiting request's ticket out of the queue if it stops waiting early.
struct Queued {
    shared: Arc<Shared>,
    index: usize,
    ticket: Option<Ticket>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let unloaded = {
                let mut state = self.shared.lock();
                state.gate.leave(ticket);
                self.shared.settle(&mut state, self.index)
            };
            self.shared.after_change(self.index, unloaded);
        }
    }
}

/// Keeps a preloading model from eviction while its caller waits.
struct Hold {
    shared: Arc<Shared>,
    index: usize,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let unloaded = {
            let mut state = self.shared.lock();
            state.slots[self.index].holds -= 1;
            self.shared.settle(&mut state, self.index)
        };
        self.shared.after_change(self.index, unloaded);
    }
}

fn is_idle(state: &PoolState, index: usize) -> bool {
    state.gate.running(index) == 0 && state.gate.queued(index) == 0 && state.slots[index].holds == 0
}

impl Shared {
    /// [`ModelPool::unload`] of `index`.
    fn unload_when_idle(&self, index: usize) {
        if self.specs[index].pinned {
            tracing::info!(model = self.name(index), "not unloading a pinned model");
            return;
        }
        let unloaded = {
            let mut state = self.lock();
            let busy = !is_idle(&state, index);
            let slot = &mut state.slots[index];
            slot.keep_alive = KeepAlive::ZERO;
            if busy {
                None
            } else {
                slot.idle_since = None;
                slot.backend.take()
            }
        };
        if let Some(backend) = unloaded {
            self.unload(index, backend, UnloadReason::Requested);
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding the lock leaves bookkeeping only; keep serving.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.specs.iter().position(|spec| spec.name.eq_ignore_ascii_case(name))
    }

    fn name(&self, index: usize) -> &str {
        &self.specs[index].name
    }

    fn names(&self, indices: &[usize]) -> String {
        let names: Vec<&str> = indices.iter().map(|&index| self.name(index)).collect();
        match names.as_slice() {
            [] => "other models".to_owned(),
            [one] => (*one).to_owned(),
            [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        }
    }

    /// The planner's view, with busy meaning "generating, held, or wanted by a request
    /// ahead of `ticket`" (all waiting requests when `ticket` is `None`).
    fn entries(&self, state: &PoolState, ticket: Option<Ticket>) -> Vec<Entry> {
        state
            .slots
            .iter()
            .enumerate()
            .map(|(index, slot)| Entry {
                bytes: self.specs[index].estimated_bytes,
                state: match (&slot.backend, slot.loading) {
                    (Some(_), _) => EntryState::Loaded,
                    (None, true) => EntryState::Loading,
                    (None, false) => EntryState::Unloaded,
                },
                busy: state.gate.running(index) > 0 || slot.holds > 0 || state.gate.wanted_before(index, ticket),
                pinned: self.specs[index].pinned,
                last_used: slot.last_used,
                expires_at: slot.idle_since.and_then(|(since, _)| slot.keep_alive.deadline(since)),
            })
            .collect()
    }

    fn status(&self, state: &PoolState, index: usize) -> ModelStatus {
        let spec = &self.specs[index];
        let slot = &state.slots[index];
        let residency = match (&slot.backend, slot.loading) {
            (Some(_), _) => Residency::Loaded,
            (None, true) => Residency::Loading,
            (None, false) => Residency::Unloaded,
        };
        let loaded = residency == Residency::Loaded;
        let expires_at = match slot.idle_since {
            Some((_, wall)) if loaded && !spec.pinned && is_idle(state, index) => slot.keep_alive.wall_deadline(wall),
            _ => None,
        };
        let info = slot.backend.as_ref().map_or_else(|| spec.info.clone(), |backend| backend.model_info().clone());
        ModelStatus {
            id: spec.name.clone(),
            local: true,
            residency,
            memory_bytes: loaded.then_some(spec.estimated_bytes),
            expires_at,
            size_bytes: spec.info.size_bytes,
            tier: None,
            domains: Vec::new(),
            info,
        }
    }

    /// A generation of `index` ended: count it, and if the model is now idle, start its
    /// keep-alive (or unload it at once for a keep-alive of zero).
    fn finish(&self, index: usize) {
        let unloaded = {
            let mut state = self.lock();
            state.gate.finish(index);
            self.settle(&mut state, index)
        };
        self.after_change(index, unloaded);
    }

    /// After a request stops using `index`: if the model is loaded and now idle, its
    /// keep-alive starts; a keep-alive of zero takes the backend out, to be unloaded
    /// (by [`Shared::after_change`], outside the lock).
    fn settle(&self, state: &mut PoolState, index: usize) -> Option<Arc<dyn Backend>> {
        if state.slots[index].backend.is_none() || !is_idle(state, index) {
            return None;
        }
        let slot = &mut state.slots[index];
        if slot.keep_alive.is_zero() && !self.specs[index].pinned {
            slot.idle_since = None;
            return slot.backend.take();
        }
        if slot.idle_since.is_none() {
            slot.idle_since = Some((now(), SystemTime::now()));
        }
        None
    }

    /// Unloads what [`Shared::settle`] took out and wakes whoever waits for a change.
    fn after_change(&self, index: usize, unloaded: Option<Arc<dyn Backend>>) {
        if let Some(backend) = unloaded {
            self.unload(index, backend, UnloadReason::KeepAliveZero);
        }
        self.changed.notify_waiters();
        self.reaper.notify_one();
    }

    /// Drops an unloaded model's backend off the async threads (the engine's drop joins its
    /// worker thread) and logs why.
    fn unload(&self, index: usize, backend: Arc<dyn Backend>, reason: UnloadReason) {
        tracing::info!(
            model = self.name(index),
            reason = reason.as_str(),
            memory_mb = self.specs[index].estimated_bytes as f64 / 1e6,
            "unloading model"
        );
        drop_off_thread(backend);
        self.changed.notify_waiters();
    }

    /// Starts loading `index` on a blocking thread, after dropping `evicted` there.
    fn start_load(self: &Arc<Self>, index: usize, evicted: Vec<(usize, Arc<dyn Backend>)>) {
        for (victim, _) in &evicted {
            tracing::info!(
                model = self.name(*victim),
                reason = UnloadReason::Budget.as_str(),
                memory_mb = self.specs[*victim].estimated_bytes as f64 / 1e6,
                for_model = self.name(index),
                "unloading model"
            );
        }
        let shared = self.clone();
        tokio::task::spawn_blocking(move || {
            drop(evicted);
            let spec = &shared.specs[index];
            let started = Instant::now();
            let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shared.loader.load(spec)))
                .unwrap_or_else(|_| Err("the loader panicked".to_owned()));
            let seconds = started.elapsed().as_secs_f64();
            {
                let mut state = shared.lock();
                let attempt = state.slots[index].attempts;
                let idle = is_idle(&state, index);
                let slot = &mut state.slots[index];
                slot.loading = false;
                match loaded {
                    Ok(backend) => {
                        tracing::info!(
                            model = spec.name.as_str(),
                            seconds,
                            memory_mb = spec.estimated_bytes as f64 / 1e6,
                            "loaded model"
                        );
                        slot.backend = Some(backend);
                        slot.failure = None;
                        let now = now();
                        slot.last_used = now;
                        slot.idle_since = idle.then(|| (now, SystemTime::now()));
                    }
                    Err(error) => {
                        tracing::warn!(model = spec.name.as_str(), seconds, %error, "loading the model failed");
                        slot.failure = Some((attempt, error));
                    }
                }
            }
            shared.changed.notify_waiters();
            shared.reaper.notify_one();
        });
    }

    /// Plans the load of `index` for the request holding `ticket` and starts it if it fits.
    /// Returns the step to take when it does not (or cannot) start.
    fn try_load(self: &Arc<Self>, state: &mut PoolState, index: usize, ticket: Option<Ticket>) -> Option<Step> {
        match residency::plan_load(&self.entries(state, ticket), index, self.config.limits()) {
            Plan::Resident => None,
            Plan::Load { evict } => {
                let evicted = evict
                    .into_iter()
                    .filter_map(|victim| {
                        let slot = &mut state.slots[victim];
                        slot.idle_since = None;
                        slot.backend.take().map(|backend| (victim, backend))
                    })
                    .collect();
                let slot = &mut state.slots[index];
                slot.loading = true;
                slot.attempts += 1;
                self.start_load(index, evicted);
                None
            }
            Plan::Wait { blocking } => Some(Step::Wait(Waiting::Memory(blocking))),
            Plan::Refuse(refusal) => Some(Step::Fail(self.refusal(index, refusal))),
        }
    }

    /// The configured limits, as messages name them.
    fn limits_text(&self) -> String {
        let mut limits = Vec::new();
        if let Some(max) = self.config.max_loaded {
            limits.push(format!("at most {max} loaded model{}", if max == 1 { "" } else { "s" }));
        }
        if let Some(budget) = self.config.memory_budget_bytes {
            limits.push(format!("a memory budget of {} MB", budget / 1_000_000));
        }
        limits.join(", ")
    }

    fn refusal(&self, index: usize, refusal: Refusal) -> BackendError {
        let name = self.name(index);
        BackendError::Unavailable(match refusal {
            Refusal::LargerThanBudget { bytes, budget } => format!(
                "model {name} needs {} MB of memory, more than the whole memory budget of {} MB; raise --memory-budget-mb or use a smaller model",
                bytes.div_ceil(1_000_000),
                budget / 1_000_000
            ),
            Refusal::PinnedFill(pinned) => format!(
                "model {name} cannot be loaded within the limits: the pinned models {} stay loaded and leave no room",
                self.names(&pinned)
            ),
        })
    }

    /// One look at the state for the request holding `ticket`; `awaited` is the load
    /// attempt it waits for, so a failed load fails its waiters once, not a retry each.
    fn step(self: &Arc<Self>, index: usize, ticket: Ticket, awaited: &mut Option<u64>) -> Step {
        let mut state = self.lock();
        if let Some(backend) = state.slots[index].backend.clone() {
            if state.gate.try_start(ticket, true) {
                let slot = &mut state.slots[index];
                slot.last_used = now();
                slot.idle_since = None;
                return Step::Start(backend);
            }
            return Step::Wait(Waiting::Turn);
        }
        let slot = &state.slots[index];
        if let (Some(attempt), Some((failed, error))) = (*awaited, &slot.failure) {
            if attempt == *failed && !slot.loading {
                let name = self.name(index);
                return Step::Fail(BackendError::Unavailable(format!("model {name} could not be loaded: {error}")));
            }
        }
        if slot.loading {
            *awaited = Some(slot.attempts);
            return Step::Wait(Waiting::Load);
        }
        // Loads start in arrival order: one waiting for memory keeps later ones from
        // taking the room it waits for.
        let earlier_unloaded = state
            .gate
            .models_ahead(ticket)
            .any(|model| model != index && state.slots[model].backend.is_none() && !state.slots[model].loading);
        if earlier_unloaded {
            return Step::Wait(Waiting::Queue);
        }
        match self.try_load(&mut state, index, Some(ticket)) {
            Some(step) => step,
            None => {
                *awaited = Some(state.slots[index].attempts);
                Step::Wait(Waiting::Load)
            }
        }
    }

    fn timeout_error(&self, index: usize, waiting: &Waiting, state: &PoolState) -> BackendError {
        let name = self.name(index);
        let seconds = seconds_text(self.config.load_wait);
        BackendError::Unavailable(match waiting {
            Waiting::Load => format!("model {name} did not finish loading within {seconds}"),
            Waiting::Memory(blocking) => format!(
                "model {name} waited {seconds} for room to load: {} {} in use and the limits ({}) leave no room beside {}",
                self.names(blocking),
                if blocking.len() == 1 { "is" } else { "are" },
                self.limits_text(),
                if blocking.len() == 1 { "it" } else { "them" }
            ),
            Waiting::Turn => {
                let running: Vec<usize> = state.gate.running_models().filter(|&m| m != index).collect();
                format!(
                    "model {name} waited {seconds} for its turn: {} {} generating and only {} model{} may generate at a time",
                    self.names(&running),
                    if running.len() == 1 { "is" } else { "are" },
                    self.config.concurrent_models,
                    if self.config.concurrent_models == 1 { "" } else { "s" }
                )
            }
            Waiting::Queue => {
                format!("model {name} waited {seconds} behind requests for other models that wait for memory")
            }
        })
    }

    /// The slow path: waits for the load and the turn, then submits and forwards events.
    async fn wait_then_submit(
        self: Arc<Self>,
        index: usize,
        queued: Queued,
        request: GenerateRequest,
        tx: mpsc::UnboundedSender<Result<GenerationEvent, BackendError>>,
    ) {
        let mut queued = queued;
        let Some(ticket) = queued.ticket else { return };
        let deadline = tokio::time::Instant::now() + self.config.load_wait;
        let mut awaited = None;
        let backend = loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let waiting = match self.step(index, ticket, &mut awaited) {
                Step::Start(backend) => break backend,
                Step::Fail(error) => {
                    let _ = tx.send(Err(error));
                    return;
                }
                Step::Wait(waiting) => waiting,
            };
            tokio::select! {
                () = &mut notified => {}
                () = tx.closed() => return,
                () = tokio::time::sleep_until(deadline) => {
                    let error = self.timeout_error(index, &waiting, &self.lock());
                    let _ = tx.send(Err(error));
                    return;
                }
            }
        };
        // Started: the ticket left the queue and the gate counts this generation.
        queued.ticket = None;
        let running = Running { shared: self.clone(), index };
        let mut generation = match backend.submit(request) {
            Ok(generation) => generation,
            Err(error) => {
                let _ = tx.send(Err(error));
                return;
            }
        };
        loop {
            tokio::select! {
                event = generation.next_event() => match event {
                    Some(event) => {
                        let end = matches!(event, Ok(GenerationEvent::Finished(_)) | Err(_));
                        if end {
                            // The model is idle as soon as its answer is complete.
                            drop(generation);
                            drop(running);
                            let _ = tx.send(event);
                            return;
                        }
                        if tx.send(event).is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                () = tx.closed() => return,
            }
        }
    }

    async fn preload(self: &Arc<Self>, index: usize, keep_alive: Option<KeepAlive>) -> Result<(), BackendError> {
        {
            let mut state = self.lock();
            state.slots[index].holds += 1;
            if let Some(keep_alive) = keep_alive {
                state.slots[index].keep_alive = keep_alive;
            }
        }
        let _hold = Hold { shared: self.clone(), index };
        let deadline = tokio::time::Instant::now() + self.config.load_wait;
        let mut awaited = None;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let waiting = {
                let mut state = self.lock();
                let slot = &state.slots[index];
                if slot.backend.is_some() {
                    state.slots[index].last_used = now();
                    return Ok(());
                }
                if let (Some(attempt), Some((failed, error))) = (awaited, &slot.failure) {
                    if attempt == *failed && !slot.loading {
                        let name = self.name(index);
                        return Err(BackendError::Unavailable(format!("model {name} could not be loaded: {error}")));
                    }
                }
                if slot.loading {
                    awaited = Some(slot.attempts);
                    Waiting::Load
                } else {
                    match self.try_load(&mut state, index, None) {
                        Some(Step::Fail(error)) => return Err(error),
                        Some(Step::Wait(waiting)) => waiting,
                        Some(Step::Start(_)) | None => {
                            awaited = Some(state.slots[index].attempts);
                            Waiting::Load
                        }
                    }
                }
            };
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => return Err(self.timeout_error(index, &waiting, &self.lock())),
            }
        }
    }
}

/// Drops `backend` on a blocking thread when a runtime is at hand (an engine's drop waits
/// for its worker thread), else here.
fn drop_off_thread(backend: Arc<dyn Backend>) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn_blocking(move || drop(backend));
        }
        Err(_) => drop(backend),
    }
}

/// The reaper: unloads idle models whose keep-alive has run out, sleeping until the next
/// expiry or a change. Ends when the pool is gone.
async fn reap(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(shared) = shared.upgrade() else { return };
            let now = now();
            let (victims, next) = {
                let mut state = shared.lock();
                let entries = shared.entries(&state, None);
                let victims: Vec<(usize, Arc<dyn Backend>)> = residency::expired(&entries, now)
                    .into_iter()
                    .filter_map(|index| {
                        let slot = &mut state.slots[index];
                        slot.idle_since = None;
                        slot.backend.take().map(|backend| (index, backend))
                    })
                    .collect();
                let entries = shared.entries(&state, None);
                (victims, residency::next_expiry(&entries))
            };
            for (index, backend) in victims {
                shared.unload(index, backend, UnloadReason::Idle);
            }
            next
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

impl Backend for PooledModel {
    fn model_info(&self) -> &ModelInfo {
        &self.shared.specs[self.index].info
    }

    fn model_ids(&self) -> Vec<String> {
        vec![self.shared.specs[self.index].name.clone()]
    }

    fn load(&self) -> BackendLoad {
        let (backend, running, queued) = {
            let state = self.shared.lock();
            (state.slots[self.index].backend.clone(), state.gate.running(self.index), state.gate.queued(self.index))
        };
        match backend {
            Some(backend) => {
                let load = backend.load();
                BackendLoad { queued: load.queued + queued, ..load }
            }
            None => BackendLoad { busy_slots: running, queued, power_watts: None, cloud_up: None },
        }
    }

    fn models(&self) -> Vec<ModelStatus> {
        let state = self.shared.lock();
        vec![self.shared.status(&state, self.index)]
    }

    /// Loads this model (the name is not checked: this backend serves one model).
    fn preload<'a>(
        &'a self,
        _model: Option<&'a str>,
        keep_alive: Option<KeepAlive>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.shared.preload(self.index, keep_alive))
    }

    fn unload(&self, _model: Option<&str>) -> Result<(), BackendError> {
        self.shared.unload_when_idle(self.index);
        Ok(())
    }

    fn submit(&self, request: GenerateRequest) -> Result<Generation, BackendError> {
        let shared = &self.shared;
        let index = self.index;
        let keep_alive = request.route.keep_alive.unwrap_or(shared.specs[index].keep_alive);
        let queued = {
            let mut state = shared.lock();
            let slot = &mut state.slots[index];
            slot.keep_alive = keep_alive;
            // The fast path: loaded and its turn. One lock, then straight to the engine.
            if let Some(backend) = slot.backend.clone() {
                if state.gate.try_start_now(index) {
                    let slot = &mut state.slots[index];
                    slot.last_used = now();
                    slot.idle_since = None;
                    drop(state);
                    let running = Running { shared: shared.clone(), index };
                    return backend.submit(request).map(|generation| generation.on_end(running));
                }
            } else if let Some(budget) = shared.config.memory_budget_bytes {
                // Known at once, so a plain error rather than a stream that fails.
                let bytes = shared.specs[index].estimated_bytes;
                if bytes > budget {
                    return Err(shared.refusal(index, Refusal::LargerThanBudget { bytes, budget }));
                }
            }
            Queued { shared: shared.clone(), index, ticket: Some(state.gate.enqueue(index)) }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(shared.clone().wait_then_submit(index, queued, request, tx));
        Ok(Generation::new(0, rx))
    }

    fn tokenize(&self, prompt: &Prompt) -> Result<Vec<u32>, BackendError> {
        let backend = self.shared.lock().slots[self.index].backend.clone();
        match backend {
            Some(backend) => backend.tokenize(prompt),
            None => Err(BackendError::InvalidRequest(format!(
                "model {} is not loaded; its tokenizer is available once a request has loaded it",
                self.shared.name(self.index)
            ))),
        }
    }
}

impl Backend for ModelPool {
    /// The first model's facts: the pool's default model.
    fn model_info(&self) -> &ModelInfo {
        &self.shared.specs[0].info
    }

    fn model_ids(&self) -> Vec<String> {
        self.shared.specs.iter().map(|spec| spec.name.clone()).collect()
    }

    fn load(&self) -> BackendLoad {
        self.models.iter().map(|model| model.load()).fold(BackendLoad::default(), |total, load| BackendLoad {
            busy_slots: total.busy_slots + load.busy_slots,
            queued: total.queued + load.queued,
            power_watts: match (total.power_watts, load.power_watts) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            },
            cloud_up: None,
        })
    }

    fn models(&self) -> Vec<ModelStatus> {
        self.statuses()
    }

    /// Loads the model named (the first model for `None`); an unknown name is an error.
    fn preload<'a>(
        &'a self,
        model: Option<&'a str>,
        keep_alive: Option<KeepAlive>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        match model {
            Some(name) => Box::pin(ModelPool::preload(self, name, keep_alive)),
            None => Box::pin(self.shared.preload(0, keep_alive)),
        }
    }

    /// Unloads the model named (the first model for `None`); an unknown name is an error.
    fn unload(&self, model: Option<&str>) -> Result<(), BackendError> {
        match model {
            Some(name) => ModelPool::unload(self, name),
            None => {
                self.shared.unload_when_idle(0);
                Ok(())
            }
        }
    }

    /// Answers with the model the request names (the first model when it names none or
    /// one the pool does not have).
    fn submit(&self, request: GenerateRequest) -> Result<Generation, BackendError> {
        self.pick(request.route.model.as_deref()).submit(request)
    }

    fn tokenize(&self, prompt: &Prompt) -> Result<Vec<u32>, BackendError> {
        self.models[0].tokenize(prompt)
    }
}

impl ModelPool {
    fn pick(&self, model: Option<&str>) -> &Arc<PooledModel> {
        let index = model.and_then(|name| self.shared.index_of(name)).unwrap_or(0);
        &self.models[index]
    }
}
