//! The guard: what stands between a request and the router.
//!
//! It answers three questions for every request, in order:
//! 1. *Who is calling?* ([`Guard::authenticate`]): the API key, looked up by
//!    its hash in the key table. Keys are required as soon as one has been
//!    created (revoking the last one locks the server rather than opening it)
//!    or `--api-key` is set; until then the server is open, as llama-server
//!    is without `--api-key`.
//! 2. *May they ask this?* ([`Guard::authorize`]): the key's model and route
//!    allow-lists and whether it may see log-probabilities.
//! 3. *Are they within their quota?* ([`Guard::admit`]): requests and tokens
//!    per minute, tokens per UTC day ([`quota`]).
//!
//! Token use is counted when a request ends ([`Guard::spend`]). The daily
//! count is read back from the query log when a key is first seen, so a
//! restart does not reset it.
//!
//! # Layout
//! - [`key`]: making keys and hashing presented ones.
//! - [`quota`]: the rolling windows.
//! - [`extraction`]: per-key detection of model-extraction traffic.
//! - [`injection`]: screening user text and retrieved passages for prompt injection.

pub mod extraction;
pub mod injection;
pub mod key;
pub mod quota;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use edgeway_store::{KeyLimits, KeyStore};

pub use quota::{Limit, OverLimit};

/// The id logged for requests made with `--api-key`.
pub const STATIC_KEY_ID: &str = "static";

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's id, `None` when keys are not required.
    pub key_id: Option<String>,
    /// The key's name.
    pub name: String,
    /// What the key may do.
    pub limits: KeyLimits,
}

impl Caller {
    /// A caller on a server that requires no key: no limits.
    pub fn anonymous() -> Self {
        Self { key_id: None, name: "anonymous".into(), limits: unlimited() }
    }

    /// Whether the caller may open the dashboard: anyone on a server without keys, else an
    /// administrator's key.
    pub fn may_view_dashboard(&self) -> bool {
        self.key_id.is_none() || self.limits.admin
    }

    /// Whether the dashboard shows this caller the logged query text: only to an administrator's
    /// key (on a server without keys, nobody has proven who they are).
    pub fn sees_query_text(&self) -> bool {
        self.key_id.is_some() && self.limits.admin
    }
}

fn unlimited() -> KeyLimits {
    KeyLimits { allow_logprobs: true, ..KeyLimits::default() }
}

/// What a request asks for, as far as the allow-lists care.
#[derive(Debug, Clone, Default)]
pub struct Ask<'a> {
    /// The model it names (`None` or `auto`: the server's choice).
    pub model: Option<&'a str>,
    /// The side it forces (`edge` or `cloud`), if any.
    pub route: Option<&'a str>,
    /// Whether it asks for log-probabilities.
    pub logprobs: bool,
}

/// Why the guard turned a request away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No key was sent.
    #[error("this server requires an API key: send `Authorization: Bearer KEY` (an administrator creates keys with `edgeway keys create NAME`)")]
    MissingKey,
    /// The key is not one this server issued.
    #[error("invalid API key {prefix}")]
    InvalidKey {
        /// The first characters of what was sent.
        prefix: String,
    },
    /// The key was revoked.
    #[error("the API key {prefix} was revoked")]
    RevokedKey {
        /// Its first characters.
        prefix: String,
    },
    /// The key may not do this.
    #[error("{message}")]
    Forbidden {
        /// A stable name (`model_not_allowed`, `route_not_allowed`, `logprobs_not_allowed`).
        code: &'static str,
        /// What is not allowed and what is.
        message: String,
    },
    /// A screen refused the request's content (a prompt-injection block). Answered 400, as hosted
    /// content filters answer: this one request failed, the key still works (clients such as
    /// garak treat 401/403 as a dead key and stop).
    #[error("{message}")]
    Refused {
        /// A stable name (`prompt_injection`).
        code: &'static str,
        /// What was refused and why.
        message: String,
    },
    /// The key is over a limit.
    #[error("rate limit reached for key '{name}': {} {} (retry in {} s)", over.value, over.limit.as_str(), retry_after_secs(over))]
    OverLimit {
        /// The key's name.
        name: String,
        /// Which limit, and when to retry.
        over: OverLimit,
    },
    /// The key table could not be read.
    #[error("cannot check the API key: {0}")]
    Store(String),
}

/// Whole seconds to wait, at least one (what `Retry-After` carries).
pub fn retry_after_secs(over: &OverLimit) -> u64 {
    (over.retry_after_ms.max(1) as u64).div_ceil(1000)
}

/// What the guard decided for an admitted request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permit {
    /// The side the request must be answered on (a key allowed only one).
    pub force_route: Option<String>,
}

/// Keys, allow-lists and quotas. Shared by every request (`Arc<Guard>`).
pub struct Guard {
    store: Option<Arc<KeyStore>>,
    static_hash: Option<String>,
    usage: Mutex<HashMap<String, quota::Usage>>,
    clock: fn() -> i64,
    extraction: Mutex<extraction::ExtractionDetector>,
    extraction_config: extraction::ExtractionConfig,
    injection: injection::InjectionScreen,
    injection_action: injection::InjectionAction,
    injection_judge: Option<injection::judge::JudgeSettings>,
    /// Set once a key has been seen in the table: keys are revoked, never deleted, so it stays set.
    keys_exist: AtomicBool,
    /// When the table was last found empty (ms), so an open server checks at most once a second.
    checked_empty_at: AtomicI64,
    /// Decisions on their way to the table, written by a background thread off the request path.
    events: Mutex<Option<std::sync::mpsc::Sender<edgeway_store::GuardEvent>>>,
}

impl Guard {
    /// A guard over the key table in `store` (none: no keys), plus an optional fixed key (`--api-key`).
    pub fn new(store: Option<Arc<KeyStore>>, static_key: Option<&str>) -> Self {
        Self {
            store,
            static_hash: static_key.map(key::hash),
            usage: Mutex::new(HashMap::new()),
            clock: edgeway_store::record::now_ms,
            extraction: Mutex::new(extraction::ExtractionDetector::new()),
            extraction_config: extraction::ExtractionConfig::default(),
            injection: injection::InjectionScreen::rules_only(),
            injection_action: injection::InjectionAction::Flag,
            injection_judge: None,
            keys_exist: AtomicBool::new(false),
            checked_empty_at: AtomicI64::new(i64::MIN),
            events: Mutex::new(None),
        }
    }

    /// Queues a decision of `detector` about `caller` for the table (when there is one); a background
    /// thread writes it, so no request waits on the disk.
    fn log_event(&self, caller: &Caller, detector: &str, action: &str, score: Option<f64>, evidence: String) {
        let Some(store) = &self.store else { return };
        let event = edgeway_store::GuardEvent {
            ts_ms: (self.clock)(),
            key_id: caller.key_id.clone(),
            detector: detector.into(),
            action: action.into(),
            score,
            evidence,
        };
        let mut sender = self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if sender.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<edgeway_store::GuardEvent>();
            let store = store.clone();
            let spawned = std::thread::Builder::new().name("edgeway-guard-log".into()).spawn(move || {
                for event in rx {
                    if let Err(error) = store.record_event(&event) {
                        tracing::warn!(%error, "cannot log the guard's decision");
                    }
                }
            });
            if spawned.is_err() {
                tracing::warn!("cannot start the guard's log thread; decisions are only in the log output");
                return;
            }
            *sender = Some(tx);
        }
        if let Some(tx) = sender.as_ref() {
            let _ = tx.send(event);
        }
    }

    /// The same guard with this prompt-injection screen and action.
    pub fn with_injection(mut self, screen: injection::InjectionScreen, action: injection::InjectionAction) -> Self {
        self.injection = screen;
        self.injection_action = action;
        self
    }

    /// What happens to text the injection screen flags.
    pub fn injection_action(&self) -> injection::InjectionAction {
        self.injection_action
    }

    /// The same guard with a local model judging the texts the rules and the classifier let
    /// through ([`injection::judge`]; the server runs it).
    pub fn with_injection_judge(mut self, judge: injection::judge::JudgeSettings) -> Self {
        self.injection_judge = Some(judge);
        self
    }

    /// The injection judge, when one is configured and screening is on.
    pub fn injection_judge(&self) -> Option<&injection::judge::JudgeSettings> {
        self.injection_judge.as_ref().filter(|_| self.injection_action != injection::InjectionAction::Off)
    }

    /// Takes the judge's `probability` that `text` (arriving on `channel` from `source`) is an
    /// injection; returns whether that flags it, and logs it when it does.
    pub fn judged(
        &self,
        caller: &Caller,
        text: &str,
        channel: injection::Channel,
        source: &str,
        probability: f32,
    ) -> bool {
        let Some(judge) = self.injection_judge() else { return false };
        if probability < judge.thresholds.of(channel) {
            return false;
        }
        let action = self.injection_action.as_str();
        let channel = channel.as_str();
        tracing::warn!(key = ?caller.key_id, channel, source, judge = probability, model = %judge.model, action, "prompt injection suspected by the judge");
        let found = serde_json::json!({ "judge": probability, "model": judge.model });
        self.log_injection(caller, text, channel, source, found, Some(probability));
        true
    }

    /// Queues an `injection` decision for the table: what flagged the text (`found`, JSON fields),
    /// its channel and source, an excerpt, and the flagging probability as the score.
    fn log_injection(
        &self,
        caller: &Caller,
        text: &str,
        channel: &str,
        source: &str,
        found: serde_json::Value,
        score: Option<f32>,
    ) {
        let excerpt: String = text.chars().take(200).collect();
        let mut evidence = serde_json::Map::new();
        evidence.insert("channel".into(), channel.into());
        evidence.insert("source".into(), source.into());
        if let serde_json::Value::Object(found) = found {
            evidence.extend(found);
        }
        evidence.insert("excerpt".into(), excerpt.into());
        let evidence = serde_json::Value::Object(evidence);
        let action = self.injection_action.as_str();
        self.log_event(caller, "injection", action, score.map(f64::from), evidence.to_string());
    }

    /// Screens `text`, arriving on `channel` (`source`: `user`, the passage's document or the
    /// tool's name), for prompt injection; a flagged text is logged with what matched. `None`
    /// when screening is off.
    pub fn screen(
        &self,
        caller: &Caller,
        text: &str,
        channel: injection::Channel,
        source: &str,
    ) -> Option<injection::Screening> {
        if self.injection_action == injection::InjectionAction::Off {
            return None;
        }
        let screening = self.injection.screen(text, channel);
        if screening.flagged {
            let action = self.injection_action.as_str();
            let channel = channel.as_str();
            tracing::warn!(key = ?caller.key_id, channel, source, rules = ?screening.rules, classifier = ?screening.classifier, action, "prompt injection suspected");
            let found = serde_json::json!({ "rules": screening.rules, "classifier": screening.classifier });
            self.log_injection(caller, text, channel, source, found, screening.classifier);
        }
        Some(screening)
    }

    /// The same guard with these extraction-detection settings.
    pub fn with_extraction(mut self, config: extraction::ExtractionConfig) -> Self {
        self.extraction_config = config;
        self
    }

    /// The extraction-detection settings.
    pub fn extraction_config(&self) -> &extraction::ExtractionConfig {
        &self.extraction_config
    }

    /// Feeds one request to the extraction detector and returns the caller's verdict;
    /// logs the verdict with its evidence when the caller's state changes, and every
    /// 100th request acted on while it stays suspected.
    pub fn inspect(
        &self,
        caller: &Caller,
        text: &str,
        top_logprobs: Option<u8>,
        max_tokens: Option<u32>,
    ) -> extraction::Verdict {
        let key = caller.key_id.as_deref().unwrap_or("anonymous");
        let shape = extraction::RequestShape { ts_ms: (self.clock)(), text, top_logprobs, max_tokens };
        let verdict = self.extraction.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).observe(
            key,
            &shape,
            &self.extraction_config,
        );
        let periodic = verdict.suspected && verdict.suspected_requests.is_multiple_of(100);
        if verdict.changed || periodic {
            let action = if verdict.suspected { verdict.action.as_str() } else { "release" };
            tracing::warn!(key = %key, name = %caller.name, action, score = verdict.evidence.score, "model-extraction detector");
            let evidence = serde_json::to_string(&verdict.evidence).unwrap_or_default();
            self.log_event(caller, "extraction", action, Some(verdict.evidence.score), evidence);
        }
        verdict
    }

    /// The same guard with another clock (milliseconds since the epoch), for tests.
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// Whether requests need a key: `--api-key` is set, or a key was ever created.
    pub fn required(&self) -> Result<bool, Denied> {
        if self.static_hash.is_some() || self.keys_exist.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let Some(store) = &self.store else { return Ok(false) };
        // An open server looks for a newly created key at most once a second (the CLI may add one any time).
        let now = (self.clock)();
        if now.saturating_sub(self.checked_empty_at.load(Ordering::Relaxed)) < 1000 {
            return Ok(false);
        }
        let exist = store.any_keys().map_err(|error| Denied::Store(error.to_string()))?;
        if exist {
            self.keys_exist.store(true, Ordering::Relaxed);
        } else {
            self.checked_empty_at.store(now, Ordering::Relaxed);
        }
        Ok(exist)
    }

    /// Who is calling, from the key they sent (`None`: no key sent).
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Caller, Denied> {
        if !self.required()? {
            return Ok(Caller::anonymous());
        }
        let presented = presented.map(str::trim).filter(|k| !k.is_empty()).ok_or(Denied::MissingKey)?;
        let hash = key::hash(presented);
        if self.static_hash.as_deref() == Some(hash.as_str()) {
            return Ok(Caller { key_id: Some(STATIC_KEY_ID.into()), name: "--api-key".into(), limits: unlimited() });
        }
        let prefix = key::display_prefix(presented);
        let record = match &self.store {
            Some(store) => store.find_by_hash(&hash).map_err(|error| Denied::Store(error.to_string()))?,
            None => None,
        };
        match record {
            None => Err(Denied::InvalidKey { prefix }),
            Some(record) if record.revoked_ms.is_some() => Err(Denied::RevokedKey { prefix }),
            Some(record) => Ok(Caller { key_id: Some(record.id), name: record.name, limits: record.limits }),
        }
    }

    /// Checks the caller's allow-lists; says which route to force when the key allows only one.
    pub fn authorize(&self, caller: &Caller, ask: &Ask) -> Result<Permit, Denied> {
        let limits = &caller.limits;
        if let Some(model) = ask.model.filter(|m| !m.eq_ignore_ascii_case("auto")) {
            if !limits.models.is_empty() && !limits.models.iter().any(|allowed| allowed.eq_ignore_ascii_case(model)) {
                return Err(Denied::Forbidden {
                    code: "model_not_allowed",
                    message: format!(
                        "key '{}' may not use the model '{model}'; it may use: {}",
                        caller.name,
                        limits.models.join(", ")
                    ),
                });
            }
        }
        if ask.logprobs && !limits.allow_logprobs {
            return Err(Denied::Forbidden {
                code: "logprobs_not_allowed",
                message: format!(
                    "key '{}' may not receive log-probabilities; remove logprobs from the request",
                    caller.name
                ),
            });
        }
        let mut permit = Permit::default();
        if !limits.routes.is_empty() {
            match ask.route {
                Some(route) if !limits.routes.iter().any(|r| r.eq_ignore_ascii_case(route)) => {
                    return Err(Denied::Forbidden {
                        code: "route_not_allowed",
                        message: format!(
                            "key '{}' may not be answered on the {route} side; it may use: {}",
                            caller.name,
                            limits.routes.join(", ")
                        ),
                    });
                }
                Some(_) => {}
                None if limits.routes.len() == 1 => permit.force_route = Some(limits.routes[0].to_lowercase()),
                None => {}
            }
        }
        Ok(permit)
    }

    /// Counts a request against the caller's quotas, or refuses it with the time to retry.
    pub fn admit(&self, caller: &Caller) -> Result<(), Denied> {
        let Some(key_id) = caller.key_id.as_deref() else { return Ok(()) };
        let limits = &caller.limits;
        if limits.requests_per_min.is_none() && limits.tokens_per_min.is_none() && limits.tokens_per_day.is_none() {
            return Ok(());
        }
        let now = (self.clock)();
        let mut usage = self.usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !usage.contains_key(key_id) {
            let day_start = now - now.rem_euclid(quota::DAY_MS);
            let today = match &self.store {
                Some(store) => {
                    store.tokens_since(key_id, day_start).map_err(|error| Denied::Store(error.to_string()))?
                }
                None => 0,
            };
            usage.insert(key_id.to_owned(), quota::Usage::resumed(now, today));
        }
        let entry = usage.get_mut(key_id).expect("inserted above");
        entry.admit(limits, now).map_err(|over| Denied::OverLimit { name: caller.name.clone(), over })
    }

    /// Counts the tokens of a finished request.
    pub fn spend(&self, key_id: &str, tokens: u64) {
        let now = (self.clock)();
        let mut usage = self.usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = usage.get_mut(key_id) {
            entry.spend(tokens, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeway_store::ApiKeyRecord;
    use std::sync::atomic::{AtomicI64, Ordering};

    static NOW: AtomicI64 = AtomicI64::new(1_000 * quota::DAY_MS);

    fn clock() -> i64 {
        NOW.load(Ordering::SeqCst)
    }

    fn store_with(name: &str, limits: KeyLimits) -> (Arc<KeyStore>, String, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("edgeway-guard-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(KeyStore::open(dir.join("q.db")).unwrap());
        let new = key::generate().unwrap();
        store
            .insert(&ApiKeyRecord {
                id: new.id.clone(),
                name: name.into(),
                prefix: new.prefix.clone(),
                hash: new.hash.clone(),
                created_ms: 0,
                revoked_ms: None,
                limits,
            })
            .unwrap();
        (store, new.secret, dir)
    }

    #[test]
    fn an_empty_key_table_leaves_the_server_open() {
        let guard = Guard::new(None, None);
        assert_eq!(guard.authenticate(None), Ok(Caller::anonymous()));
    }

    #[test]
    fn keys_are_required_once_one_exists_and_revocation_takes_effect_at_once() {
        let (store, secret, dir) = store_with("alice", KeyLimits::default());
        let guard = Guard::new(Some(store.clone()), None);
        assert_eq!(guard.authenticate(None), Err(Denied::MissingKey));
        assert!(matches!(guard.authenticate(Some("ew-wrong")), Err(Denied::InvalidKey { .. })));
        let caller = guard.authenticate(Some(&secret)).unwrap();
        assert_eq!(caller.name, "alice");
        assert!(caller.key_id.unwrap().starts_with("key_"));
        store.revoke("alice", 1).unwrap();
        assert!(matches!(guard.authenticate(Some(&secret)), Err(Denied::RevokedKey { .. })));
        assert_eq!(guard.authenticate(None), Err(Denied::MissingKey), "revoking the last key does not open the server");
        let guard = Guard::new(Some(store), Some("ew-admin"));
        assert_eq!(guard.authenticate(Some("ew-admin")).unwrap().key_id.as_deref(), Some(STATIC_KEY_ID));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn allow_lists_refuse_models_routes_and_logprobs_and_force_a_single_route() {
        let limits = KeyLimits {
            models: vec!["smollm2-135m".into()],
            routes: vec!["edge".into()],
            allow_logprobs: false,
            ..KeyLimits::default()
        };
        let caller = Caller { key_id: Some("key_x".into()), name: "x".into(), limits };
        let guard = Guard::new(None, None);
        let ok = guard.authorize(&caller, &Ask { model: Some("smollm2-135m"), ..Ask::default() }).unwrap();
        assert_eq!(ok.force_route.as_deref(), Some("edge"));
        assert!(guard.authorize(&caller, &Ask { model: Some("auto"), ..Ask::default() }).is_ok());
        let denied = |ask: Ask| match guard.authorize(&caller, &ask) {
            Err(Denied::Forbidden { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(denied(Ask { model: Some("qwen2.5-1.5b"), ..Ask::default() }), "model_not_allowed");
        assert_eq!(denied(Ask { route: Some("cloud"), ..Ask::default() }), "route_not_allowed");
        assert_eq!(denied(Ask { logprobs: true, ..Ask::default() }), "logprobs_not_allowed");
    }

    #[test]
    fn quotas_count_per_key_and_daily_use_survives_a_restart() {
        let limits = KeyLimits { requests_per_min: Some(2), tokens_per_day: Some(100), ..KeyLimits::default() };
        let (store, secret, dir) = store_with("bob", limits);
        let guard = Guard::new(Some(store.clone()), None).with_clock(clock);
        let caller = guard.authenticate(Some(&secret)).unwrap();
        assert_eq!(guard.admit(&caller), Ok(()));
        assert_eq!(guard.admit(&caller), Ok(()));
        match guard.admit(&caller) {
            Err(Denied::OverLimit { over, .. }) => {
                assert_eq!(over.limit, Limit::RequestsPerMinute);
                assert_eq!(retry_after_secs(&over), 60);
            }
            other => panic!("{other:?}"),
        }
        // A new process: the query log already holds 100 tokens for this key today.
        let writer = edgeway_store::QueryLog::open(dir.join("q.db")).unwrap();
        writer.record(edgeway_store::QueryRecord {
            ts_ms: clock(),
            key_id: caller.key_id.clone(),
            endpoint: "chat".into(),
            route: "edge".into(),
            status: "ok".into(),
            prompt_tokens: 60,
            completion_tokens: 40,
            ..Default::default()
        });
        writer.flush();
        let restarted = Guard::new(Some(store), None).with_clock(clock);
        match restarted.admit(&caller) {
            Err(Denied::OverLimit { over, .. }) => assert_eq!(over.limit, Limit::TokensPerDay),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
