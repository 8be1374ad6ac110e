//! Which models to unload, as pure functions of the pool's state and the time.
//!
//! The pool's async plumbing gathers one [`Entry`] per model under its lock and
//! asks these functions what to do; nothing here reads a clock or touches a
//! backend, so every boundary (a budget met to the byte, an expiry at the very
//! instant) is tested with constructed values, as `guard`'s quotas are.

use std::time::Instant;

/// The limits a load must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Most models in memory at once (loaded or loading); `None` is no limit.
    pub max_loaded: Option<usize>,
    /// Most bytes the models in memory may hold together; `None` is no limit.
    pub memory_budget_bytes: Option<u64>,
}

/// Where a model's weights are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// On disk only.
    Unloaded,
    /// Being read; its memory already counts.
    Loading,
    /// In memory.
    Loaded,
}

/// What the planner knows of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Memory it holds once loaded (weights and KV cache).
    pub bytes: u64,
    /// Where its weights are.
    pub state: State,
    /// Generating, or wanted by a request that comes before the one asking: never unloaded.
    pub busy: bool,
    /// Loaded at start and never unloaded for being idle or for room.
    pub pinned: bool,
    /// When a request last started on it: the least recently used goes first.
    pub last_used: Instant,
    /// When it is to be unloaded for being idle; `None` is never (or not applicable).
    pub expires_at: Option<Instant>,
}

impl Entry {
    /// Whether its memory counts against the limits.
    fn resident(&self) -> bool {
        self.state != State::Unloaded
    }

    /// Whether it may be unloaded to make room.
    fn evictable(&self) -> bool {
        self.state == State::Loaded && !self.busy && !self.pinned
    }
}

/// Why a model can never be loaded under the limits, whatever becomes idle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The model alone needs more than the whole budget.
    LargerThanBudget {
        /// What it needs.
        bytes: u64,
        /// The budget.
        budget: u64,
    },
    /// Pinned models (indices) leave no room for it, by count or by bytes.
    PinnedFill(Vec<usize>),
}

/// What to do to load one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// It is already loaded or loading: nothing to do.
    Resident,
    /// Load it after unloading these (indices, least recently used first; often none).
    Load {
        /// The models to unload first.
        evict: Vec<usize>,
    },
    /// It does not fit until one of these busy models (indices) becomes idle.
    Wait {
        /// The busy models holding the room it needs.
        blocking: Vec<usize>,
    },
    /// It can never fit.
    Refuse(Refusal),
}

/// What it takes to load `entries[target]` under `limits`: unload the least recently
/// used idle models until it fits, never a busy or pinned one.
pub fn plan_load(entries: &[Entry], target: usize, limits: Limits) -> Plan {
    let wanted = &entries[target];
    if wanted.resident() {
        return Plan::Resident;
    }
    if let Some(budget) = limits.memory_budget_bytes {
        if wanted.bytes > budget {
            return Plan::Refuse(Refusal::LargerThanBudget { bytes: wanted.bytes, budget });
        }
    }
    let others = || entries.iter().enumerate().filter(move |(index, entry)| *index != target && entry.resident());
    let fits = |count: usize, bytes: u64| {
        limits.max_loaded.is_none_or(|max| count <= max) && limits.memory_budget_bytes.is_none_or(|max| bytes <= max)
    };
    let pinned: Vec<usize> = others().filter(|(_, entry)| entry.pinned).map(|(index, _)| index).collect();
    let pinned_bytes: u64 = pinned.iter().map(|&index| entries[index].bytes).sum();
    if !fits(pinned.len() + 1, pinned_bytes.saturating_add(wanted.bytes)) {
        return Plan::Refuse(Refusal::PinnedFill(pinned));
    }
    let mut count = others().count() + 1;
    let mut bytes = others().map(|(_, entry)| entry.bytes).fold(wanted.bytes, u64::saturating_add);
    let mut candidates: Vec<usize> = others().filter(|(_, entry)| entry.evictable()).map(|(index, _)| index).collect();
    candidates.sort_by_key(|&index| (entries[index].last_used, index));
    let mut evict = Vec::new();
    for index in candidates {
        if fits(count, bytes) {
            break;
        }
        evict.push(index);
        count -= 1;
        bytes -= entries[index].bytes;
    }
    if fits(count, bytes) {
        Plan::Load { evict }
    } else {
        let blocking = others().filter(|(_, entry)| !entry.pinned && !entry.evictable()).map(|(index, _)| index);
        Plan::Wait { blocking: blocking.collect() }
    }
}

/// Whether `entry` is to be unloaded for being idle at `now`.
fn is_expired(entry: &Entry, now: Instant) -> bool {
    entry.evictable() && entry.expires_at.is_some_and(|at| at <= now)
}

/// The idle models whose keep-alive has run out at `now` (an expiry at `now` counts).
pub fn expired(entries: &[Entry], now: Instant) -> Vec<usize> {
    entries.iter().enumerate().filter(|(_, entry)| is_expired(entry, now)).map(|(index, _)| index).collect()
}

/// The next moment an idle model expires, for the reaper's sleep; `None` when none will.
pub fn next_expiry(entries: &[Entry]) -> Option<Instant> {
    entries.iter().filter(|entry| entry.evictable()).filter_map(|entry| entry.expires_at).min()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MB: u64 = 1_000_000;

    fn at(base: Instant, seconds: u64) -> Instant {
        base + Duration::from_secs(seconds)
    }

    fn loaded(bytes: u64, last_used: Instant) -> Entry {
        Entry { bytes, state: State::Loaded, busy: false, pinned: false, last_used, expires_at: None }
    }

    fn unloaded(bytes: u64, base: Instant) -> Entry {
        Entry { state: State::Unloaded, ..loaded(bytes, base) }
    }

    fn count(max: usize) -> Limits {
        Limits { max_loaded: Some(max), memory_budget_bytes: None }
    }

    fn budget(bytes: u64) -> Limits {
        Limits { max_loaded: None, memory_budget_bytes: Some(bytes) }
    }

    #[test]
    fn without_limits_nothing_is_evicted() {
        let t = Instant::now();
        let entries = [loaded(100 * MB, t), loaded(100 * MB, t), unloaded(100 * MB, t)];
        assert_eq!(plan_load(&entries, 2, Limits::default()), Plan::Load { evict: vec![] });
        assert_eq!(plan_load(&entries, 0, Limits::default()), Plan::Resident);
    }

    #[test]
    fn by_count_the_least_recently_used_goes_first() {
        let t = Instant::now();
        let entries = [loaded(MB, at(t, 5)), loaded(MB, at(t, 1)), loaded(MB, at(t, 3)), unloaded(MB, t)];
        assert_eq!(plan_load(&entries, 3, count(4)), Plan::Load { evict: vec![] }, "exactly at the limit fits");
        assert_eq!(plan_load(&entries, 3, count(3)), Plan::Load { evict: vec![1] });
        assert_eq!(plan_load(&entries, 3, count(2)), Plan::Load { evict: vec![1, 2] });
        assert_eq!(plan_load(&entries, 3, count(1)), Plan::Load { evict: vec![1, 2, 0] });
    }

    #[test]
    fn by_bytes_exactly_the_budget_fits_one_byte_more_evicts() {
        let t = Instant::now();
        let entries = [loaded(300 * MB, at(t, 2)), loaded(200 * MB, at(t, 1)), unloaded(500 * MB, t)];
        assert_eq!(plan_load(&entries, 2, budget(1000 * MB)), Plan::Load { evict: vec![] });
        assert_eq!(plan_load(&entries, 2, budget(1000 * MB - 1)), Plan::Load { evict: vec![1] });
        assert_eq!(plan_load(&entries, 2, budget(800 * MB)), Plan::Load { evict: vec![1] });
        assert_eq!(plan_load(&entries, 2, budget(800 * MB - 1)), Plan::Load { evict: vec![1, 0] });
        assert_eq!(plan_load(&entries, 2, budget(500 * MB)), Plan::Load { evict: vec![1, 0] });
    }

    #[test]
    fn a_busy_model_is_never_evicted_the_load_waits_for_it() {
        let t = Instant::now();
        let mut entries = [loaded(MB, at(t, 1)), loaded(MB, at(t, 2)), unloaded(MB, t)];
        entries[0].busy = true;
        assert_eq!(plan_load(&entries, 2, count(2)), Plan::Load { evict: vec![1] }, "the idle one, though newer");
        entries[1].busy = true;
        assert_eq!(plan_load(&entries, 2, count(2)), Plan::Wait { blocking: vec![0, 1] });
        // A loading model counts and cannot be evicted either.
        entries[1] = Entry { state: State::Loading, busy: false, ..entries[1] };
        assert_eq!(plan_load(&entries, 2, count(2)), Plan::Wait { blocking: vec![0, 1] });
    }

    #[test]
    fn a_model_over_the_whole_budget_is_refused_not_waited_for() {
        let t = Instant::now();
        let mut entries = [loaded(MB, t), unloaded(10 * MB + 1, t)];
        entries[0].busy = true;
        assert_eq!(
            plan_load(&entries, 1, budget(10 * MB)),
            Plan::Refuse(Refusal::LargerThanBudget { bytes: 10 * MB + 1, budget: 10 * MB })
        );
        entries[1].bytes = 10 * MB;
        assert_eq!(plan_load(&entries, 1, budget(10 * MB)), Plan::Wait { blocking: vec![0] });
    }

    #[test]
    fn pinned_models_stay_and_leave_no_room_is_a_refusal() {
        let t = Instant::now();
        let mut entries = [loaded(6 * MB, t), loaded(2 * MB, at(t, 1)), unloaded(4 * MB, t)];
        entries[0].pinned = true;
        assert_eq!(plan_load(&entries, 2, budget(10 * MB)), Plan::Load { evict: vec![1] });
        assert_eq!(plan_load(&entries, 2, budget(10 * MB - 1)), Plan::Refuse(Refusal::PinnedFill(vec![0])));
        assert_eq!(plan_load(&entries, 2, count(1)), Plan::Refuse(Refusal::PinnedFill(vec![0])));
    }

    #[test]
    fn expiry_at_the_exact_instant_counts_busy_and_pinned_never_expire() {
        let t = Instant::now();
        let mut entries = [loaded(MB, t), loaded(MB, t), loaded(MB, t), loaded(MB, t), unloaded(MB, t)];
        entries[0].expires_at = Some(at(t, 10));
        entries[1].expires_at = Some(at(t, 5));
        entries[2] = Entry { busy: true, expires_at: Some(at(t, 1)), ..entries[2] };
        entries[3] = Entry { pinned: true, expires_at: Some(at(t, 1)), ..entries[3] };
        entries[4].expires_at = Some(at(t, 1));
        assert_eq!(expired(&entries, at(t, 5) - Duration::from_nanos(1)), Vec::<usize>::new());
        assert_eq!(expired(&entries, at(t, 5)), vec![1]);
        assert_eq!(expired(&entries, at(t, 10)), vec![0, 1]);
        assert_eq!(next_expiry(&entries), Some(at(t, 5)));
        entries[0].expires_at = None;
        entries[1].expires_at = None;
        assert_eq!(next_expiry(&entries), None, "forever, busy, pinned and unloaded models never expire");
    }
}
