//! Writing each request to the query log.
//!
//! A [`Recorder`] rides along with a request: it watches the events as they
//! are sent (route, first token, text, usage) and writes one row when the
//! request ends: finished, failed, or dropped by a client that went away.

use std::sync::Arc;
use std::time::Instant;

use edgeway_core::{BackendError, GenerationEvent, Prompt};
use edgeway_guard::{Caller, Guard};
use edgeway_store::{QueryLog, QueryRecord};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// Where requests are logged, and whether their text is kept.
#[derive(Clone)]
pub struct LogSettings {
    /// The log.
    pub log: Arc<QueryLog>,
    /// Keep prompt and answer text (for calibration; it never leaves the device).
    pub store_text: bool,
}

/// Watches one request and logs it when it ends.
pub struct Recorder {
    log: Option<LogSettings>,
    metrics: Arc<Metrics>,
    record: QueryRecord,
    started: Instant,
    route: Option<edgeway_core::RouteInfo>,
    answer: String,
    written: bool,
    /// The guard that counts the caller's tokens, and the caller's key.
    spend: Option<(Arc<Guard>, String)>,
}

impl Recorder {
    /// Starts watching a request to `endpoint` with this prompt.
    pub fn new(log: Option<&LogSettings>, metrics: Arc<Metrics>, endpoint: &str, prompt: &Prompt) -> Self {
        let store_text = log.is_some_and(|l| l.store_text);
        let ts_ms = edgeway_store::record::now_ms();
        let prompt_text = store_text.then(|| match prompt {
            Prompt::Text(text) => text.clone(),
            Prompt::Chat(messages) => {
                messages.iter().map(|m| format!("{}: {}", m.role, m.content)).collect::<Vec<_>>().join("\n")
            }
        });
        let record = QueryRecord {
            ts_ms,
            endpoint: endpoint.to_owned(),
            route: "none".into(),
            prompt_text,
            ..QueryRecord::default()
        };
        Self {
            log: log.cloned(),
            metrics,
            record,
            started: Instant::now(),
            route: None,
            answer: String::new(),
            written: false,
            spend: None,
        }
    }

    /// Tags the row with the caller's key and counts the request's tokens against its quota when it ends.
    pub fn for_caller(mut self, guard: &Arc<Guard>, caller: &Caller) -> Self {
        if let Some(key_id) = &caller.key_id {
            self.record.key_id = Some(key_id.clone());
            self.spend = Some((guard.clone(), key_id.clone()));
        }
        self
    }

    /// Notes where the request is answered.
    pub fn observe_route(&mut self, route: &edgeway_core::RouteInfo) {
        self.record.route = route.target.as_str().to_owned();
        self.record.reason = Some(route.reason.as_str().to_owned());
        self.record.tier = route.tier;
        self.record.tried = edgeway_core::route::steps_line(&route.tried);
        self.record.model = Some(route.model.clone());
        self.record.score = route.score;
        self.record.domain = route.domain.clone();
        self.record.fallback_from = route.fallback_from.clone();
        self.route = Some(route.clone());
    }

    /// Notes the structured-output format asked for and whether the answer had it.
    pub fn observe_format(&mut self, kind: &str, verdict: &edgeway_structured::Verdict) {
        self.record.format = Some(kind.to_owned());
        self.record.format_verdict = Some(verdict.as_str().to_owned());
    }

    /// Notes an event on its way to the client.
    pub fn observe(&mut self, event: &Result<GenerationEvent, BackendError>) {
        match event {
            Ok(GenerationEvent::Routed(route)) => self.observe_route(route),
            Ok(GenerationEvent::Delta { text, .. }) => {
                if self.record.ttft_ms.is_none() && !text.is_empty() {
                    self.record.ttft_ms = Some(self.started.elapsed().as_secs_f64() * 1000.0);
                }
                if self.store_text() {
                    self.answer.push_str(text);
                }
            }
            Ok(GenerationEvent::ToolCall(call)) => {
                if self.record.ttft_ms.is_none() {
                    self.record.ttft_ms = Some(self.started.elapsed().as_secs_f64() * 1000.0);
                }
                if self.store_text() {
                    // Calls are logged as the model's Hermes-style text would show them.
                    if let Some(name) = &call.name {
                        self.answer.push_str(&format!("<tool_call>{name} "));
                    }
                    self.answer.push_str(&call.arguments);
                }
            }
            Ok(GenerationEvent::Finished(completion)) => {
                // An answer that arrived in one piece (not streamed) reached this point all at
                // once; its first token came when the engine's generating time began.
                let generating_ms = completion.timings.predicted_ms;
                if generating_ms > 0.0 {
                    let engine_ttft = (self.started.elapsed().as_secs_f64() * 1000.0 - generating_ms).max(0.0);
                    self.record.ttft_ms = Some(self.record.ttft_ms.map_or(engine_ttft, |seen| seen.min(engine_ttft)));
                }
                let usage = completion.usage;
                self.record.prompt_tokens = usage.prompt_tokens;
                self.record.completion_tokens = usage.completion_tokens;
                self.record.cached_tokens = usage.cached_tokens;
                self.record.cost =
                    self.route.as_ref().map_or(0.0, |r| r.cost(usage.prompt_tokens, usage.completion_tokens));
                if let Some(energy) = completion.energy {
                    self.record.energy_j = Some(energy.joules);
                    self.record.energy_source = Some(energy.source.to_owned());
                }
                self.write("ok", None);
            }
            Err(error) => {
                let error = ApiError::from(error.clone());
                self.write(error.code(), Some(error.to_string()));
            }
        }
    }

    /// Logs a request refused before it produced anything.
    pub fn refused(mut self, error: &ApiError) {
        self.write(error.code(), Some(error.to_string()));
    }

    fn write(&mut self, status: &str, error: Option<String>) {
        if self.written {
            return;
        }
        self.written = true;
        let mut record = std::mem::take(&mut self.record);
        record.status = status.to_owned();
        record.error = error;
        record.latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        if self.store_text() {
            record.answer_text = Some(std::mem::take(&mut self.answer));
        }
        if let Some((guard, key_id)) = &self.spend {
            guard.spend(key_id, u64::from(record.prompt_tokens) + u64::from(record.completion_tokens));
        }
        self.metrics.observe(&record);
        if let Some(log) = &self.log {
            log.log.record(record);
        }
    }

    fn store_text(&self) -> bool {
        self.log.as_ref().is_some_and(|l| l.store_text)
    }
}

impl Drop for Recorder {
    /// A request that ends without finishing or failing was dropped by its client.
    fn drop(&mut self) {
        self.write("cancelled", None);
    }
}
