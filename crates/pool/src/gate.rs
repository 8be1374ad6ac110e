//! Which model's requests may generate now: the cores are shared, so only
//! `limit` models generate at a time (one by default); the requests of a model
//! that is generating join it (its slots batch them), and requests for other
//! models wait in arrival order.
//!
//! Fairness is first come, first served between models: once a request for a
//! model that is not generating waits, later requests for the generating model
//! queue behind it instead of keeping the cores forever. Pure bookkeeping, no
//! clock and no I/O; the pool holds it under its lock.

use std::collections::{BTreeMap, VecDeque};

/// A waiting request's place in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

/// The generation gate.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Models that may generate at the same time (at least 1).
    limit: usize,
    /// Generations running, per model index (models with none are absent).
    running: BTreeMap<usize, u32>,
    /// Waiting requests, oldest first: their ticket and model index.
    queue: VecDeque<(Ticket, usize)>,
    next: u64,
}

impl Gate {
    /// A gate letting `limit` models generate at once (0 is taken as 1).
    pub fn new(limit: usize) -> Self {
        Self { limit: limit.max(1), running: BTreeMap::new(), queue: VecDeque::new(), next: 0 }
    }

    /// Whether a generation of `model` would fit the model limit now (ignoring the queue).
    fn has_room(&self, model: usize) -> bool {
        self.running.contains_key(&model) || self.running.len() < self.limit
    }

    /// The fast path: starts a generation of `model` at once if nobody waits and it fits.
    pub fn try_start_now(&mut self, model: usize) -> bool {
        if self.queue.is_empty() && self.has_room(model) {
            *self.running.entry(model).or_default() += 1;
            return true;
        }
        false
    }

    /// Puts a request for `model` at the back of the queue.
    pub fn enqueue(&mut self, model: usize) -> Ticket {
        let ticket = Ticket(self.next);
        self.next += 1;
        self.queue.push_back((ticket, model));
        ticket
    }

    /// Starts the waiting `ticket` if its model is `ready` (loaded), fits the model limit,
    /// and every request ahead of it is for the same model or one already generating.
    pub fn try_start(&mut self, ticket: Ticket, ready: bool) -> bool {
        let Some(position) = self.queue.iter().position(|(t, _)| *t == ticket) else {
            return false;
        };
        let model = self.queue[position].1;
        if !ready || !self.has_room(model) {
            return false;
        }
        let overtakes = self.queue.iter().take(position).any(|(_, m)| *m != model && !self.running.contains_key(m));
        if overtakes {
            return false;
        }
        self.queue.remove(position);
        *self.running.entry(model).or_default() += 1;
        true
    }

    /// Removes a ticket that stops waiting (timed out, failed, or its client left).
    pub fn leave(&mut self, ticket: Ticket) {
        self.queue.retain(|(t, _)| *t != ticket);
    }

    /// A generation of `model` ended; returns whether the model has none running now.
    pub fn finish(&mut self, model: usize) -> bool {
        match self.running.get_mut(&model) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            _ => {
                self.running.remove(&model);
                true
            }
        }
    }

    /// Generations of `model` running.
    pub fn running(&self, model: usize) -> u32 {
        self.running.get(&model).copied().unwrap_or(0)
    }

    /// The models generating now.
    pub fn running_models(&self) -> impl Iterator<Item = usize> + '_ {
        self.running.keys().copied()
    }

    /// Requests waiting for `model`.
    pub fn queued(&self, model: usize) -> u32 {
        self.queue.iter().filter(|(_, m)| *m == model).count() as u32
    }

    /// Whether a request ahead of `ticket` (or any request, for `None`) waits for `model`.
    pub fn wanted_before(&self, model: usize, ticket: Option<Ticket>) -> bool {
        self.queue.iter().any(|(t, m)| *m == model && ticket.is_none_or(|mine| *t < mine))
    }

    /// The models wanted by requests ahead of `ticket`, oldest first (with repeats).
    pub fn models_ahead(&self, ticket: Ticket) -> impl Iterator<Item = usize> + '_ {
        self.queue.iter().take_while(move |(t, _)| *t != ticket).map(|(_, m)| *m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: usize = 0;
    const B: usize = 1;
    const C: usize = 2;

    #[test]
    fn requests_of_the_generating_model_join_it_others_wait() {
        let mut gate = Gate::new(1);
        assert!(gate.try_start_now(A));
        assert!(gate.try_start_now(A), "a second request batches with the first");
        assert!(!gate.try_start_now(B));
        let b = gate.enqueue(B);
        assert!(!gate.try_start(b, true));
        assert!(!gate.finish(A));
        assert!(!gate.try_start(b, true), "one of A's is still generating");
        assert!(gate.finish(A));
        assert!(gate.try_start(b, true));
        assert_eq!((gate.running(A), gate.running(B)), (0, 1));
    }

    #[test]
    fn once_another_model_waits_the_generating_one_queues_behind_it() {
        let mut gate = Gate::new(1);
        assert!(gate.try_start_now(A));
        let b = gate.enqueue(B);
        assert!(!gate.try_start_now(A), "B waits: A's new request does not jump the queue");
        let a2 = gate.enqueue(A);
        assert!(!gate.try_start(a2, true), "A is generating, but B came first");
        gate.finish(A);
        assert!(!gate.try_start(a2, true), "still B's turn first");
        assert!(gate.try_start(b, true));
        assert!(!gate.try_start(a2, true));
        gate.finish(B);
        assert!(gate.try_start(a2, true));
    }

    #[test]
    fn a_model_that_is_not_loaded_yet_keeps_its_place() {
        let mut gate = Gate::new(1);
        let b = gate.enqueue(B);
        let a = gate.enqueue(A);
        assert!(!gate.try_start(b, false), "loading");
        assert!(!gate.try_start(a, true), "B is first, though it is not ready");
        assert!(gate.try_start(b, true));
        let b2 = gate.enqueue(B);
        assert!(!gate.try_start(b2, true), "A came first and waits for B to finish");
        assert!(gate.finish(B));
        assert!(gate.try_start(a, true));
    }

    #[test]
    fn a_request_leaving_the_queue_unblocks_the_next() {
        let mut gate = Gate::new(1);
        assert!(gate.try_start_now(A));
        let b = gate.enqueue(B);
        let a2 = gate.enqueue(A);
        assert!(gate.wanted_before(B, Some(a2)) && !gate.wanted_before(A, Some(b)));
        assert_eq!(gate.models_ahead(a2).collect::<Vec<_>>(), vec![B]);
        gate.leave(b);
        assert!(gate.try_start(a2, true));
        assert_eq!(gate.queued(B), 0);
    }

    #[test]
    fn with_two_models_allowed_a_third_waits() {
        let mut gate = Gate::new(2);
        assert!(gate.try_start_now(A));
        assert!(gate.try_start_now(B));
        assert!(!gate.try_start_now(C));
        let c = gate.enqueue(C);
        gate.finish(A);
        assert!(gate.try_start(c, true));
        assert_eq!(gate.running_models().collect::<Vec<_>>(), vec![B, C]);
    }
}
