//! Several local models in one server, loaded and unloaded as Ollama does.
//!
//! A model loads on its first request (or at start when pinned), stays loaded
//! for a keep-alive after its last request ends (the model's default, or the
//! request's `keep_alive`), and is unloaded when that runs out or when another
//! model needs its room under `max_loaded` or the memory budget: the least
//! recently used idle model goes first, never one that is generating. A request
//! for a model that is loading waits for that one load; a request that cannot be
//! served within `load_wait` gets a `BackendError::Unavailable` that says why.
//!
//! The two cores are shared, so by default only one model generates at a time:
//! the requests of the generating model batch together in its slots, and a
//! request for another model waits its turn, first come first served between
//! models ([`gate`]). A loaded model whose turn it is takes the fast path: one
//! uncontended lock, then straight to its engine, with no task in between.
//!
//! # Layout
//! - [`spec`]: [`ModelSpec`] (what is known before loading) and the memory estimate.
//! - [`residency`]: pure decisions: what to evict for a load, what has expired.
//! - [`gate`]: pure bookkeeping of which model may generate now.
//! - `pool`: [`ModelPool`] and [`PooledModel`], the async plumbing (loads on blocking
//!   threads, waiting requests, the reaper task).
//!
//! This crate knows models only through [`edgeway_core::Backend`] and a [`Loader`];
//! it does not link llama.cpp.

pub mod gate;
mod pool;
pub mod residency;
pub mod spec;

pub use pool::{Loader, ModelPool, PoolConfig, PoolError, PooledModel};
pub use spec::{estimate_from_info, estimate_memory, MemoryEstimate, ModelSpec};

#[cfg(test)]
mod tests;
