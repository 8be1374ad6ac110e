//! Watching each key for the traffic of query-based model extraction.
//!
//! Stealing a model through its API (distillation, label or logit
//! harvesting) takes many queries that differ from what people send:
//! - **volume**: hundreds to thousands of queries, at machine pace;
//! - **novelty**: almost every prompt is new, nothing is asked twice;
//! - **log-probabilities**: top-k distributions carry far more of the model
//!   per query than text, so harvesters ask for them;
//! - **templates**: prompts generated from one pattern (`Q: {x} A:`);
//! - **systematic probing**: near-duplicates that change one word or number
//!   at a time, to map how the output moves;
//! - **short answers**: one or two tokens (a label) per query.
//!
//! For every key the detector keeps its last [`WINDOW`] requests and scores
//! each feature as a share of that window; the score is their weighted sum
//! (weights in [`Weights`]). Once a key has sent [`MIN_EVIDENCE`] requests at
//! more than [`MIN_RATE_PER_HOUR`] and its score reaches the threshold, it is
//! suspected, and the configured [`ExtractionAction`] applies to its requests
//! until the score falls back below the threshold. Each verdict carries its
//! evidence (every feature's value) for the log.
//!
//! What it cannot see: a patient attacker spread over many keys, or one who
//! mimics chat traffic. It raises the price of extraction; it does not make
//! it impossible. Known false positives: a classification service behind one
//! key that sends templated prompts for one-token labels looks like label
//! harvesting (use `flag` as the action for such keys' servers).

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;

use serde::Serialize;

/// Requests remembered per key.
pub const WINDOW: usize = 200;
/// Requests a key must have sent before it can be suspected.
pub const MIN_EVIDENCE: usize = 50;
/// Slower keys are never suspected: nobody extracts a model at this pace (and people chat slower).
pub const MIN_RATE_PER_HOUR: f64 = 60.0;
/// A prompt counts as a near-duplicate of the previous one above this word overlap (Jaccard).
const NEAR_DUPLICATE: f64 = 0.7;
/// A template covers at least this share of the window.
const TEMPLATE_SHARE: f64 = 0.2;

/// The score at which a key is suspected by default: above every benign profile measured
/// (≤ 0.35), below every extraction campaign (≥ 0.5); see `crates/guard/tests/extraction.rs`.
pub const DEFAULT_THRESHOLD: f64 = 0.45;

/// What happens to a suspected key's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtractionAction {
    /// Detection is off.
    Off,
    /// Log the verdict, change nothing.
    Flag,
    /// Delay every request (makes harvesting slow and expensive).
    Slow,
    /// Answer without log-probabilities.
    StripLogprobs,
    /// Refuse with 403.
    Block,
}

impl ExtractionAction {
    /// The name in config files and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ExtractionAction::Off => "off",
            ExtractionAction::Flag => "flag",
            ExtractionAction::Slow => "slow",
            ExtractionAction::StripLogprobs => "strip_logprobs",
            ExtractionAction::Block => "block",
        }
    }
}

impl FromStr for ExtractionAction {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "off" => ExtractionAction::Off,
            "flag" => ExtractionAction::Flag,
            "slow" => ExtractionAction::Slow,
            "strip_logprobs" => ExtractionAction::StripLogprobs,
            "block" => ExtractionAction::Block,
            other => {
                return Err(format!(
                    "unknown extraction action '{other}'; use off, flag, slow, strip_logprobs or block"
                ))
            }
        })
    }
}

/// The detector's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractionConfig {
    /// What to do with a suspected key.
    pub action: ExtractionAction,
    /// Score at which a key is suspected, in [0, 1].
    pub threshold: f64,
    /// Delay for `slow`, in milliseconds.
    pub slow_ms: u64,
}

impl Default for ExtractionConfig {
    fn default() -> Self {
        Self { action: ExtractionAction::Flag, threshold: DEFAULT_THRESHOLD, slow_ms: 2000 }
    }
}

/// How much each feature counts; they sum to 1.
#[derive(Debug, Clone, Copy)]
pub struct Weights {
    /// Log-probability use (weighted by how many alternatives were asked for).
    pub logprobs: f64,
    /// Prompts from a shared template.
    pub template: f64,
    /// Near-duplicates of the previous prompt.
    pub probing: f64,
    /// Answers of at most a few tokens.
    pub short_answers: f64,
    /// Prompts never seen before from this key.
    pub novelty: f64,
}

/// The weights in use.
pub const WEIGHTS: Weights =
    Weights { logprobs: 0.35, template: 0.2, probing: 0.15, short_answers: 0.15, novelty: 0.15 };

/// What the detector needs to know of one request.
#[derive(Debug, Clone, Default)]
pub struct RequestShape<'a> {
    /// When it arrived (ms since the epoch).
    pub ts_ms: i64,
    /// The user's text (the last user message of a chat, or the prompt).
    pub text: &'a str,
    /// `logprobs` asked for, with how many alternatives (0 for just the chosen token's).
    pub top_logprobs: Option<u8>,
    /// `max_tokens` asked for.
    pub max_tokens: Option<u32>,
}

/// The features of a key's window, each in [0, 1], and the score they make.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// Requests in the window.
    pub requests: usize,
    /// Their pace, per hour.
    pub rate_per_hour: f64,
    /// Share asking for log-probabilities, weighted by alternatives asked (5 or more count fully).
    pub logprobs: f64,
    /// Share whose first or last three words match a pattern covering ≥ 20 % of the window.
    pub template: f64,
    /// Share that are near-duplicates of the request before.
    pub probing: f64,
    /// Share asking for at most 4 tokens.
    pub short_answers: f64,
    /// Share of prompts not seen before from this key.
    pub novelty: f64,
    /// The weighted sum.
    pub score: f64,
}

/// A key's state changed, or an action applies: what to do and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Whether the key is suspected now.
    pub suspected: bool,
    /// Whether this request changed that (the moment worth logging).
    pub changed: bool,
    /// The action for this request (`Flag` when not suspected: nothing to do).
    pub action: ExtractionAction,
    /// Requests of this key since it became suspected, this one included (0 when not suspected).
    pub suspected_requests: u64,
    /// What the decision rests on.
    pub evidence: Evidence,
}

#[derive(Debug, Clone)]
struct Seen {
    ts_ms: i64,
    hash: u64,
    skeletons: [String; 2],
    logprob_weight: f64,
    short: bool,
    /// A near-duplicate of the request before it (decided when it arrived).
    probe: bool,
}

/// One key's last [`WINDOW`] requests and running sums over them, so each
/// request costs O(1) plus a pass over the distinct templates.
#[derive(Debug, Default)]
struct KeyWindow {
    recent: VecDeque<Seen>,
    /// The words of the latest prompt, to compare the next one with.
    last_words: Vec<String>,
    /// How often each prompt hash occurs in the window.
    counts: HashMap<u64, u32>,
    /// How often each skeleton occurs in the window.
    skeletons: HashMap<String, u32>,
    logprob_sum: f64,
    short_count: usize,
    probe_count: usize,
    suspected: bool,
    /// Requests since the key was last suspected (0 while it is not).
    suspected_requests: u64,
}

impl KeyWindow {
    fn push(&mut self, seen: Seen) {
        if self.recent.len() == WINDOW {
            if let Some(old) = self.recent.pop_front() {
                self.forget(&old);
            }
        }
        *self.counts.entry(seen.hash).or_default() += 1;
        for skeleton in &seen.skeletons {
            *self.skeletons.entry(skeleton.clone()).or_default() += 1;
        }
        self.logprob_sum += seen.logprob_weight;
        self.short_count += usize::from(seen.short);
        self.probe_count += usize::from(seen.probe);
        self.recent.push_back(seen);
    }

    fn forget(&mut self, old: &Seen) {
        decrement(&mut self.counts, &old.hash);
        for skeleton in &old.skeletons {
            decrement(&mut self.skeletons, skeleton);
        }
        self.logprob_sum -= old.logprob_weight;
        self.short_count -= usize::from(old.short);
        self.probe_count -= usize::from(old.probe);
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: &K) {
    if let Some(count) = map.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            map.remove(key);
        }
    }
}

/// The per-key windows. Not thread-safe by itself: the guard holds it behind a lock.
#[derive(Debug, Default)]
pub struct ExtractionDetector {
    keys: HashMap<String, KeyWindow>,
}

/// Lowercased words of a text (letters and digits).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The patterns a prompt would share with its siblings from one template: its
/// first three words (a fixed lead-in) and its last three (a fixed instruction
/// after the slot), marked so the two never collide.
fn skeletons(words: &[String]) -> [String; 2] {
    let tail = words.len().saturating_sub(3);
    [format!("^ {}", words[..words.len().min(3)].join(" ")), format!("$ {}", words[tail..].join(" "))]
}

/// Shared words over all words of the two (Jaccard).
fn jaccard(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let a: std::collections::HashSet<&String> = a.iter().collect();
    let b: std::collections::HashSet<&String> = b.iter().collect();
    a.intersection(&b).count() as f64 / a.union(&b).count() as f64
}

impl ExtractionDetector {
    /// A detector with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one request of `key` and returns the key's verdict under `config`.
    pub fn observe(&mut self, key: &str, request: &RequestShape, config: &ExtractionConfig) -> Verdict {
        let window = self.keys.entry(key.to_owned()).or_default();
        let words = words(request.text);
        let hash = edgeway_core::hash::fnv1a(words.join(" ").as_bytes());
        let previous = window.recent.back().map(|s| s.hash);
        let probe = previous.is_some_and(|p| p != hash) && jaccard(&window.last_words, &words) >= NEAR_DUPLICATE;
        window.push(Seen {
            ts_ms: request.ts_ms,
            hash,
            skeletons: skeletons(&words),
            logprob_weight: request.top_logprobs.map_or(0.0, |k| (1.0 + f64::from(k)) / 6.0).min(1.0),
            short: request.max_tokens.is_some_and(|n| n <= 4),
            probe,
        });
        window.last_words = words;
        let evidence = evidence(window);
        let suspected = config.action != ExtractionAction::Off
            && evidence.requests >= MIN_EVIDENCE
            && evidence.rate_per_hour >= MIN_RATE_PER_HOUR
            && evidence.score >= config.threshold;
        let changed = suspected != window.suspected;
        window.suspected = suspected;
        window.suspected_requests = if suspected { window.suspected_requests + 1 } else { 0 };
        Verdict {
            suspected,
            changed,
            action: if suspected { config.action } else { ExtractionAction::Flag },
            suspected_requests: window.suspected_requests,
            evidence,
        }
    }

    /// Keys suspected now.
    pub fn suspected(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.keys.iter().filter(|(_, w)| w.suspected).map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys
    }
}

fn evidence(window: &KeyWindow) -> Evidence {
    let n = window.recent.len();
    if n == 0 {
        return Evidence::default();
    }
    let share = |count: f64| count / n as f64;
    let first = window.recent.front().map_or(0, |s| s.ts_ms);
    let last = window.recent.back().map_or(0, |s| s.ts_ms);
    // The pace over the window; a minute at least, so a handful of quick requests is not a "rate".
    let span_hours = ((last - first) as f64 / 3_600_000.0).max(1.0 / 60.0);
    let rate_per_hour = n as f64 / span_hours;
    let logprobs = share(window.logprob_sum.max(0.0));
    let short_answers = share(window.short_count as f64);
    let probing = share(window.probe_count as f64);
    // Prompts that occur once in the window.
    let novelty = share(window.counts.values().filter(|&&c| c == 1).count() as f64);
    // The larger of the shares covered by common lead-ins and by common endings.
    let covered = |mark: &str| -> f64 {
        window
            .skeletons
            .iter()
            .filter(|(s, &c)| s.starts_with(mark) && s.len() > 2 && f64::from(c) >= TEMPLATE_SHARE * n as f64)
            .map(|(_, &c)| f64::from(c))
            .sum()
    };
    let template = share(covered("^").max(covered("$")));
    let w = WEIGHTS;
    let score = w.logprobs * logprobs
        + w.template * template
        + w.probing * probing
        + w.short_answers * short_answers
        + w.novelty * novelty;
    Evidence { requests: n, rate_per_hour, logprobs, template, probing, short_answers, novelty, score }
}
