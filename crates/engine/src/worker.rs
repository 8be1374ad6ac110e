//! The scheduling loop: the one thread that owns the llama.cpp context.
//!
//! Each step it (1) moves queued jobs into free slots, reusing the longest
//! cached prefix, (2) drops slots whose client went away, (3) builds one batch
//! with a new token for every generating slot plus prompt chunks for slots
//! still reading their prompt, (4) decodes it, and (5) samples the next token
//! for every slot that produced logits.
//!
//! Prompts are read oldest request first. While any request is generating, a
//! step reads at most `prefill_chunk` prompt tokens, so a long new prompt
//! delays the streams already running by one chunk per token instead of by the
//! whole prompt (chunked prefill, as vLLM and TGI schedule it).
//!
//! A slot keeps its tokens' KV entries after its request ends. That cache is
//! what the next request with the same prefix (a system prompt, a RAG
//! context, a conversation so far) reuses instead of recomputing.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgeway_core::event::{
    Completion, EnergyUse, FinishReason, GenerationEvent, Timings, TokenLogprob, TopLogprob, Usage,
};
use edgeway_core::text::TextAssembler;
use edgeway_core::{BackendError, SamplingParams, ToolCallDelta};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use crate::choices::ChoiceTrace;
use crate::config::EngineConfig;
use crate::energy::{EnergyMeter, PowerWindow};
use crate::grammar::Constraint;
use crate::logprobs::token_logprobs;
use crate::model::LoadedModel;
use crate::pacing::Pacer;
use crate::sampling::Sampler;
use crate::tool_calls::ToolCallSplitter;
use crate::EngineError;

/// Where a job's events go.
pub type EventSender = mpsc::UnboundedSender<Result<GenerationEvent, BackendError>>;

/// A request admitted by `submit`, waiting for a slot.
pub struct Job {
    pub tokens: Vec<LlamaToken>,
    pub sampling: SamplingParams,
    pub events: EventSender,
    pub enqueued_at: Instant,
    /// The client reads tokens as they come; when it does not, the answer is sent in one
    /// piece at the end (see [`crate::pacing`]).
    pub stream: bool,
    /// The grammar the answer must follow (structured output, tool calls), compiled at admission.
    pub constraint: Option<Constraint>,
    /// Reads tool calls out of the text, when the request lets the model call tools.
    pub tool_calls: Option<ToolCallSplitter>,
    /// Follows the probability of each token, when the answer's schema has choices to report.
    pub choices: Option<ChoiceTrace>,
}

/// A request occupying a slot.
struct Task {
    job: Job,
    sampler: Sampler,
    assembler: TextAssembler,
    /// Prompt tokens whose KV is in the cache.
    n_prompt_done: usize,
    /// Prompt tokens reused from the slot's earlier cache.
    n_reused: usize,
    /// A sampled token still to be decoded in the next batch.
    next_token: Option<LlamaToken>,
    n_generated: u32,
    max_tokens: u32,
    /// Index of this task's logits in the batch being decoded.
    logits_index: Option<i32>,
    /// Tokens this task put in the batch being decoded, for sharing the step's energy.
    step_tokens: usize,
    /// Energy attributed to this request so far.
    energy_j: f64,
    admitted_at: Instant,
    first_token_at: Option<Instant>,
    /// Text and logprobs not sent yet, and when they go.
    unsent_text: String,
    unsent_logprobs: Vec<TokenLogprob>,
    unsent_calls: Vec<ToolCallDelta>,
    pacer: Pacer,
}

impl Task {
    /// Adds generated text to what goes out next, through the tool-call splitter when the
    /// request offers tools.
    fn take_output(&mut self, text: &str, logprobs: Vec<TokenLogprob>) {
        self.unsent_logprobs.extend(logprobs);
        let Some(splitter) = self.job.tool_calls.as_mut() else {
            self.unsent_text.push_str(text);
            return;
        };
        let events = splitter.push(text);
        self.hold(events);
    }

    /// What the tool-call splitter still held, once the answer has ended.
    fn take_final_output(&mut self) {
        if let Some(events) = self.job.tool_calls.as_mut().map(ToolCallSplitter::finish) {
            self.hold(events);
        }
    }

    fn hold(&mut self, events: Vec<GenerationEvent>) {
        for event in events {
            match event {
                GenerationEvent::Delta { text, .. } => self.unsent_text.push_str(&text),
                GenerationEvent::ToolCall(call) => self.unsent_calls.push(call),
                GenerationEvent::Routed(_) | GenerationEvent::Finished(_) => {}
            }
        }
    }

    /// Sends the held text and calls, if any. False when the client has gone.
    fn send_unsent(&mut self, now: Instant) -> bool {
        if self.unsent_text.is_empty() && self.unsent_logprobs.is_empty() && self.unsent_calls.is_empty() {
            return true;
        }
        self.pacer.sent(now);
        let text = std::mem::take(&mut self.unsent_text);
        let logprobs = std::mem::take(&mut self.unsent_logprobs);
        if (!text.is_empty() || !logprobs.is_empty())
            && self.job.events.send(Ok(GenerationEvent::Delta { text, logprobs })).is_err()
        {
            return false;
        }
        std::mem::take(&mut self.unsent_calls)
            .into_iter()
            .all(|call| self.job.events.send(Ok(GenerationEvent::ToolCall(call))).is_ok())
    }
}

/// One llama.cpp sequence and what its KV cache holds.
struct Slot {
    seq_id: i32,
    /// Tokens in this sequence's KV cache, in position order.
    cached: Vec<LlamaToken>,
    task: Option<Task>,
    /// Step counter at last use, for least-recently-used choice.
    last_used: u64,
}

/// The worker thread's body. Sends the per-slot context size (or the error) on `ready`.
pub fn run(
    backend: &LlamaBackend,
    model: &LoadedModel,
    config: &EngineConfig,
    mut queue: mpsc::Receiver<Job>,
    busy_slots: Arc<AtomicU32>,
    power: Arc<PowerWindow>,
    ready: SyncSender<Result<u32, EngineError>>,
) {
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.ctx_size))
        .with_n_batch(config.batch_size)
        .with_n_ubatch(config.ubatch_size)
        .with_n_seq_max(config.parallel)
        .with_n_threads(config.threads as i32)
        .with_n_threads_batch(config.threads_batch as i32)
        .with_swa_full(config.swa_full)
        .with_kv_unified(false);
    let mut ctx = match model.model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(error) => {
            let _ = ready.send(Err(EngineError::Context { n_ctx: config.ctx_size, reason: error.to_string() }));
            return;
        }
    };
    let n_ctx_slot = ctx.n_ctx() / config.parallel;
    let _ = ready.send(Ok(n_ctx_slot));

    let mut scheduler = Scheduler {
        model,
        slots: (0..config.parallel as i32)
            .map(|seq_id| Slot { seq_id, cached: Vec::new(), task: None, last_used: 0 })
            .collect(),
        batch: LlamaBatch::new(config.batch_size as usize, 1),
        batch_size: config.batch_size as usize,
        prefill_chunk: config.prefill_chunk as usize,
        n_ctx_slot: n_ctx_slot as usize,
        step: 0,
        busy_slots,
        meter: EnergyMeter::system(config.watts_per_core),
        power,
        stream_interval: config.stream_interval,
    };
    tracing::info!(source = scheduler.meter.kind().as_str(), "energy accounting");
    let mut queue_open = true;
    loop {
        if queue_open {
            queue_open = scheduler.admit_queued(&mut ctx, &mut queue);
        }
        scheduler.drop_cancelled();
        if scheduler.n_busy() == 0 {
            if queue_open {
                continue; // admit_queued blocks while idle
            }
            break;
        }
        // A panic in a step (a bug, or an unexpected answer from llama.cpp) must not
        // take the engine down: the requests in flight fail, the caches are dropped,
        // and the next request is served as usual.
        let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scheduler.step(&mut ctx)));
        if stepped.is_err() {
            tracing::error!("the engine step panicked; failing the requests in flight and clearing the cache");
            scheduler.fail_all(&mut ctx, "internal error in the engine; the request was dropped");
        }
    }
    tracing::debug!("engine worker stopped");
}

struct Scheduler<'m> {
    model: &'m LoadedModel,
    slots: Vec<Slot>,
    batch: LlamaBatch<'static>,
    batch_size: usize,
    /// Most prompt tokens per step while some request is generating.
    prefill_chunk: usize,
    n_ctx_slot: usize,
    step: u64,
    busy_slots: Arc<AtomicU32>,
    meter: EnergyMeter,
    power: Arc<PowerWindow>,
    /// Least time between two sends of a streaming request's text.
    stream_interval: Duration,
}

impl Scheduler<'_> {
    fn n_busy(&self) -> usize {
        self.slots.iter().filter(|slot| slot.task.is_some()).count()
    }

    fn publish_load(&self) {
        self.busy_slots.store(self.n_busy() as u32, Ordering::Relaxed);
    }

    /// Moves jobs into free slots. Blocks for the first job when idle.
    /// Returns false once the queue is closed and drained.
    fn admit_queued(&mut self, ctx: &mut LlamaContext, queue: &mut mpsc::Receiver<Job>) -> bool {
        let mut open = true;
        while self.n_busy() < self.slots.len() {
            let job = if self.n_busy() == 0 {
                match queue.blocking_recv() {
                    Some(job) => job,
                    None => {
                        open = false;
                        break;
                    }
                }
            } else {
                match queue.try_recv() {
                    Ok(job) => job,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            };
            if job.events.is_closed() {
                continue; // the client left while queued
            }
            self.admit(ctx, job);
        }
        self.publish_load();
        open
    }

    /// Puts a job in the free slot whose cache shares the longest prefix with it.
    fn admit(&mut self, ctx: &mut LlamaContext, job: Job) {
        let slot_index = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.task.is_none())
            // Longest shared prefix first; among equals, the least recently used
            // slot, so the caches most likely to be reused survive longest.
            .max_by_key(|(_, slot)| (common_prefix_len(&slot.cached, &job.tokens), std::cmp::Reverse(slot.last_used)))
            .map(|(index, _)| index)
            .expect("admit is only called with a free slot");
        let n_swa = self.model.n_swa as usize;
        let slot = &mut self.slots[slot_index];
        // At least the last prompt token is decoded again: its logits give the first token.
        let mut n_reused = common_prefix_len(&slot.cached, &job.tokens).min(job.tokens.len() - 1);
        // A sliding-window cache may have dropped entries the reused prefix still needs.
        let pos_min = ctx.kv_cache_seq_pos_min(slot.seq_id);
        if n_swa > 0 && pos_min > 0 && pos_min as usize > n_reused.saturating_sub(n_swa) {
            n_reused = 0;
        }
        if ctx.kv_cache_seq_rm(slot.seq_id, Some(n_reused as u32), None).is_err() {
            n_reused = 0;
            let _ = ctx.kv_cache_seq_rm(slot.seq_id, None, None);
        }
        slot.cached.truncate(n_reused);

        let n_prompt = job.tokens.len();
        let room = self.n_ctx_slot - n_prompt;
        // A full context ends generation with `length`, as a reached max_tokens does.
        let max_tokens = job.sampling.max_tokens.map_or(u32::MAX, |n| n.max(1)).min(room as u32);
        let task = Task {
            sampler: Sampler::new(&job.sampling, self.model.banned_tokens(&job.sampling)),
            assembler: TextAssembler::new(&job.sampling.stop),
            n_prompt_done: n_reused,
            n_reused,
            next_token: None,
            n_generated: 0,
            max_tokens,
            logits_index: None,
            step_tokens: 0,
            energy_j: 0.0,
            admitted_at: Instant::now(),
            first_token_at: None,
            unsent_text: String::new(),
            unsent_logprobs: Vec::new(),
            unsent_calls: Vec::new(),
            pacer: if job.stream { Pacer::streaming(self.stream_interval) } else { Pacer::whole() },
            job,
        };
        tracing::debug!(seq = slot.seq_id, n_prompt, n_reused, "request admitted");
        slot.task = Some(task);
    }

    /// Frees slots whose client has gone: their stream receiver was dropped.
    fn drop_cancelled(&mut self) {
        for slot in &mut self.slots {
            if slot.task.as_ref().is_some_and(|task| task.job.events.is_closed()) {
                tracing::debug!(seq = slot.seq_id, "client went away; slot freed");
                slot.task = None;
                slot.last_used = self.step;
            }
        }
        self.publish_load();
    }

    /// Decodes one batch and samples every slot that produced logits.
    fn step(&mut self, ctx: &mut LlamaContext) {
        self.step += 1;
        self.batch.clear();
        let mut budget = self.batch_size;
        let mut prompt_tokens = 0;

        // Generating slots first: one token each keeps every stream moving.
        for slot in &mut self.slots {
            let Some(task) = slot.task.as_mut() else {
                continue;
            };
            task.logits_index = None;
            task.step_tokens = 0;
            if let Some(token) = task.next_token.take() {
                let index = self.batch.n_tokens();
                if self.batch.add(token, slot.cached.len() as i32, &[slot.seq_id], true).is_err() {
                    task.next_token = Some(token);
                    continue;
                }
                slot.cached.push(token);
                task.logits_index = Some(index);
                task.step_tokens = 1;
                budget -= 1;
            }
        }
        // Then prompt chunks, oldest request first, with what is left of the batch, or
        // one chunk's worth when others are waiting for their next token.
        if self.batch.n_tokens() > 0 {
            budget = budget.min(self.prefill_chunk);
        }
        let mut reading: Vec<usize> = (0..self.slots.len())
            .filter(|&index| self.slots[index].task.as_ref().is_some_and(|task| task.logits_index.is_none()))
            .collect();
        reading.sort_by_key(|&index| self.slots[index].task.as_ref().map(|task| task.admitted_at));
        for index in reading {
            let slot = &mut self.slots[index];
            let Some(task) = slot.task.as_mut() else {
                continue;
            };
            let remaining = task.job.tokens.len() - task.n_prompt_done;
            if remaining == 0 || budget == 0 || task.logits_index.is_some() {
                continue;
            }
            let take = remaining.min(budget);
            let chunk_end = task.n_prompt_done + take;
            for position in task.n_prompt_done..chunk_end {
                let is_last = position + 1 == task.job.tokens.len();
                let index = self.batch.n_tokens();
                if self.batch.add(task.job.tokens[position], position as i32, &[slot.seq_id], is_last).is_err() {
                    break;
                }
                if is_last {
                    task.logits_index = Some(index);
                }
            }
            slot.cached.extend_from_slice(&task.job.tokens[task.n_prompt_done..chunk_end]);
            task.n_prompt_done = chunk_end;
            task.step_tokens = take;
            budget -= take;
            prompt_tokens += take;
        }
        if self.batch.n_tokens() == 0 {
            return;
        }
        if prompt_tokens > 0 {
            // Reading a prompt may take long: held text goes out first. A client that
            // has gone is noticed by `drop_cancelled` before the next step.
            let now = Instant::now();
            for task in self.slots.iter_mut().filter_map(|slot| slot.task.as_mut()) {
                if task.pacer.flushes_early() {
                    task.send_unsent(now);
                }
            }
        }

        let energy_mark = self.meter.mark();
        if let Err(error) = ctx.decode(&mut self.batch) {
            tracing::error!(%error, "llama_decode failed; failing the requests in this batch");
            self.fail_all(ctx, &format!("llama.cpp could not decode: {error}"));
            return;
        }

        // The step's energy is shared by the tokens each request put in the batch.
        let joules = self.meter.joules_since(&energy_mark);
        self.power.add(joules);
        let batch_tokens = self.batch.n_tokens().max(1) as f64;
        for task in self.slots.iter_mut().filter_map(|slot| slot.task.as_mut()) {
            task.energy_j += joules * task.step_tokens as f64 / batch_tokens;
        }
        for slot_index in 0..self.slots.len() {
            let Some(index) = self.slots[slot_index].task.as_ref().and_then(|task| task.logits_index) else {
                continue;
            };
            self.sample_into(ctx, slot_index, index);
        }
        self.publish_load();
    }

    /// Samples the next token of one slot and sends what it adds to the answer.
    fn sample_into(&mut self, ctx: &LlamaContext, slot_index: usize, logits_index: i32) {
        let model = self.model;
        let step = self.step;
        let energy_source = self.meter.kind().as_str();
        let slot = &mut self.slots[slot_index];
        let Some(task) = slot.task.as_mut() else {
            return;
        };
        let logits = ctx.get_logits_ith(logits_index);
        let token = match task.job.constraint.as_mut() {
            None => task.sampler.sample(logits),
            Some(constraint) => {
                let is_end = |token: usize| model.is_end_of_generation(LlamaToken(token as i32));
                match constraint.sample(&mut task.sampler, logits, is_end) {
                    Ok(token) => token,
                    Err(reason) => {
                        let _ =
                            task.job.events.send(Err(BackendError::Internal(format!("structured output: {reason}"))));
                        slot.task = None;
                        slot.last_used = step;
                        return;
                    }
                }
            }
        };
        let token = LlamaToken(token as i32);
        let now = Instant::now();
        task.first_token_at.get_or_insert(now);
        task.n_generated += 1;

        if model.is_end_of_generation(token) {
            finish(slot, FinishReason::Stop, step, energy_source);
            return;
        }
        let bytes = model.token_bytes(token);
        if let (Some(trace), Some(p)) =
            (task.job.choices.as_mut(), task.job.constraint.as_ref().and_then(Constraint::last_probability))
        {
            trace.record(&bytes, p);
        }
        let logprobs = match task.job.sampling.logprobs {
            Some(top_n) => vec![logprob_entry(model, logits, token, &bytes, top_n)],
            None => Vec::new(),
        };
        let pushed = task.assembler.push(&bytes);
        task.take_output(&pushed.text, logprobs);
        // A small model may repeat a call forever; the first repeat ends the answer.
        let repeated = task.job.tool_calls.as_ref().is_some_and(ToolCallSplitter::repeated);
        if task.pacer.due(now) && !task.send_unsent(now) {
            slot.task = None;
            slot.last_used = step;
            return;
        }
        if pushed.stopped || repeated {
            finish(slot, FinishReason::Stop, step, energy_source);
        } else if task.n_generated >= task.max_tokens {
            finish(slot, FinishReason::Length, step, energy_source);
        } else {
            task.next_token = Some(token);
        }
    }

    /// Ends every active request with an error and forgets the caches that may be inconsistent.
    fn fail_all(&mut self, ctx: &mut LlamaContext, message: &str) {
        for slot in &mut self.slots {
            if let Some(task) = slot.task.take() {
                let _ = task.job.events.send(Err(BackendError::Internal(message.to_owned())));
            }
            slot.cached.clear();
            let _ = ctx.kv_cache_seq_rm(slot.seq_id, None, None);
        }
        self.publish_load();
    }
}

/// Sends the tail of the answer and the summary, and frees the slot.
fn finish(slot: &mut Slot, reason: FinishReason, step: u64, energy_source: &'static str) {
    let Some(mut task) = slot.task.take() else {
        return;
    };
    slot.last_used = step;
    let finished_at = Instant::now();
    let tail = task.assembler.finish();
    task.take_output(&tail, Vec::new());
    task.take_final_output();
    let _ = task.send_unsent(finished_at);
    let called = task.job.tool_calls.as_ref().is_some_and(ToolCallSplitter::called);
    let reason = if called && reason == FinishReason::Stop { FinishReason::ToolCalls } else { reason };
    let first_token_at = task.first_token_at.unwrap_or(finished_at);
    let completion = Completion {
        energy: Some(EnergyUse { joules: task.energy_j, source: energy_source }),
        choices: task.job.choices.as_ref().map(ChoiceTrace::finish).unwrap_or_default(),
        finish_reason: reason,
        usage: Usage {
            prompt_tokens: task.job.tokens.len() as u32,
            completion_tokens: task.n_generated,
            cached_tokens: task.n_reused as u32,
        },
        timings: Timings {
            queued_ms: millis(task.admitted_at - task.job.enqueued_at),
            prompt_n: (task.job.tokens.len() - task.n_reused) as u32,
            prompt_ms: millis(first_token_at - task.admitted_at),
            predicted_n: task.n_generated,
            predicted_ms: millis(finished_at - first_token_at),
        },
    };
    let _ = task.job.events.send(Ok(GenerationEvent::Finished(completion)));
}

fn millis(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The logprob entry for a generated token.
fn logprob_entry(model: &LoadedModel, logits: &[f32], token: LlamaToken, bytes: &[u8], top_n: u8) -> TokenLogprob {
    let (logprob, top) = token_logprobs(logits, token.0 as usize, usize::from(top_n));
    let describe = |bytes: Vec<u8>, logprob: f32| TopLogprob {
        token: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
        logprob,
    };
    TokenLogprob {
        chosen: describe(bytes.to_vec(), logprob),
        top: top.into_iter().map(|(id, logprob)| describe(model.token_bytes(LlamaToken(id as i32)), logprob)).collect(),
    }
}

/// Length of the common prefix of two token sequences.
fn common_prefix_len(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
