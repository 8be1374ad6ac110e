//! Scripted traffic against the extraction detector: benign keys (chat users,
//! RAG applications, batch bursts) and extraction campaigns (logit
//! distillation, label harvesting, systematic probing). Measures how many
//! queries each campaign gets through before its key is suspected, and how
//! many benign keys are ever suspected. Run with `--nocapture` for the table.
//!
//! Targets (issue 7): every campaign detected within 500 queries, at most 1 %
//! of benign keys flagged.

use edgeway_guard::extraction::{ExtractionConfig, ExtractionDetector, RequestShape};

/// A small deterministic generator (xorshift64*), so the traffic is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 10_000) as f64 / 10_000.0 < p
    }
}

const NOUNS: &[&str] = &[
    "conveyor",
    "camera",
    "invoice",
    "battery",
    "pallet",
    "sensor",
    "shift",
    "report",
    "valve",
    "motor",
    "label",
    "printer",
    "order",
    "customer",
    "scanner",
    "engine",
    "filter",
    "router",
    "schedule",
    "warehouse",
    "recipe",
    "thermostat",
    "contract",
    "budget",
    "network",
    "drone",
    "kiosk",
    "ticket",
    "password",
    "display",
    "cable",
    "river",
    "mountain",
    "planet",
    "language",
    "history",
    "poem",
    "garden",
    "museum",
    "election",
    "vaccine",
];
const VERBS: &[&str] = &[
    "fix",
    "explain",
    "compare",
    "summarize",
    "check",
    "replace",
    "calibrate",
    "describe",
    "translate",
    "reset",
    "install",
    "measure",
    "improve",
    "plan",
    "choose",
    "clean",
    "design",
    "test",
    "debug",
    "write",
];
const OPENERS: &[&str] = &[
    "How do I",
    "Can you",
    "Please",
    "Why does the",
    "What is the best way to",
    "I need to",
    "Quick question:",
    "Help me",
    "Is it possible to",
    "Could you",
    "hey,",
    "When should I",
    "Where can I",
    "Who should",
    "Tell me how to",
    "My boss wants me to",
    "What happens if I",
    "Any tips to",
];
const QUESTION_WORDS: &[&str] = &[
    "What is the",
    "How does the",
    "Why is the",
    "When was the",
    "Who maintains the",
    "Which",
    "Where is the",
    "Does the",
    "Can the",
    "Is the",
    "How many",
    "What causes the",
    "How long does the",
    "What should",
];

fn sentence(rng: &mut Rng, opener: &str) -> String {
    let mut text = format!("{opener} {} the {}", rng.pick(VERBS), rng.pick(NOUNS));
    for _ in 0..rng.below(6) {
        text.push_str(&format!(" {} {}", rng.pick(&["and", "with", "near", "for", "after", "of"]), rng.pick(NOUNS)));
    }
    text
}

struct Request {
    ts_ms: i64,
    text: String,
    top_logprobs: Option<u8>,
    max_tokens: Option<u32>,
}

/// One key's traffic: its requests in time order.
struct Traffic {
    kind: &'static str,
    requests: Vec<Request>,
}

fn chat_user(rng: &mut Rng) -> Traffic {
    let mut ts = 0i64;
    let mut sent: Vec<String> = Vec::new();
    let n = 30 + rng.below(120) as usize;
    let uses_logprobs = rng.chance(0.1);
    let requests = (0..n)
        .map(|_| {
            ts += 15_000 + rng.below(105_000) as i64;
            let text = if !sent.is_empty() && rng.chance(0.1) {
                sent[rng.below(sent.len() as u64) as usize].clone()
            } else {
                let opener = rng.pick(OPENERS);
                sentence(rng, opener)
            };
            sent.push(text.clone());
            Request { ts_ms: ts, text, top_logprobs: uses_logprobs.then_some(0), max_tokens: Some(256) }
        })
        .collect();
    Traffic { kind: "chat user", requests }
}

fn rag_app(rng: &mut Rng) -> Traffic {
    let mut ts = 0i64;
    let popular: Vec<String> = (0..20).map(|_| sentence(rng, "What is the policy to")).collect();
    let requests = (0..600)
        .map(|_| {
            ts += 2_000 + rng.below(8_000) as i64;
            let text = if rng.chance(0.2) {
                popular[rng.below(popular.len() as u64) as usize].clone()
            } else {
                let opener = rng.pick(QUESTION_WORDS);
                format!("{}?", sentence(rng, opener))
            };
            Request { ts_ms: ts, text, top_logprobs: None, max_tokens: Some(256) }
        })
        .collect();
    Traffic { kind: "RAG application (many users, one key)", requests }
}

fn batch_burst(rng: &mut Rng) -> Traffic {
    let mut ts = 0i64;
    let requests = (0..300)
        .map(|_| {
            ts += 200 + rng.below(400) as i64;
            let doc = sentence(rng, "The report says we");
            Request {
                ts_ms: ts,
                text: format!("Summarize the following text in two sentences: {doc}"),
                top_logprobs: None,
                max_tokens: Some(128),
            }
        })
        .collect();
    Traffic { kind: "batch burst (templated summaries)", requests }
}

fn distillation(rng: &mut Rng) -> Traffic {
    let mut ts = 0i64;
    let requests = (0..1000)
        .map(|_| {
            ts += 1_000 + rng.below(2_000) as i64;
            let opener = rng.pick(OPENERS);
            Request {
                ts_ms: ts,
                text: sentence(rng, opener),
                top_logprobs: Some(5 + rng.below(16) as u8),
                max_tokens: Some(32 + rng.below(96) as u32),
            }
        })
        .collect();
    Traffic { kind: "logit distillation (diverse prompts, top-k logprobs)", requests }
}

fn mimicry(rng: &mut Rng) -> Traffic {
    let mut ts = 0i64;
    let requests = (0..1000)
        .map(|_| {
            ts += 2_000 + rng.below(4_000) as i64;
            let opener = rng.pick(OPENERS);
            Request { ts_ms: ts, text: sentence(rng, opener), top_logprobs: None, max_tokens: Some(256) }
        })
        .collect();
    Traffic { kind: "text-only distillation that mimics chat (not caught)", requests }
}

fn label_harvest(rng: &mut Rng) -> Traffic {
    let mut ts = 0i64;
    let requests = (0..1000)
        .map(|_| {
            ts += 500 + rng.below(1_500) as i64;
            let opener = rng.pick(QUESTION_WORDS);
            Request {
                ts_ms: ts,
                text: format!("Q: {}? Answer with one word. A:", sentence(rng, opener)),
                top_logprobs: None,
                max_tokens: Some(1 + rng.below(2) as u32),
            }
        })
        .collect();
    Traffic { kind: "label harvesting (templated, 1-2 tokens, no logprobs)", requests }
}

fn probing(rng: &mut Rng) -> Traffic {
    let mut ts = 0i64;
    let mut words: Vec<String> = sentence(rng, "Describe how the").split(' ').map(str::to_owned).collect();
    let requests = (0..1000)
        .map(|_| {
            ts += 1_000 + rng.below(3_000) as i64;
            // Change one word at a time.
            let at = 3 + rng.below((words.len() - 3) as u64) as usize;
            words[at] = rng.pick(NOUNS).to_owned();
            Request {
                ts_ms: ts,
                text: words.join(" "),
                top_logprobs: rng.chance(0.5).then_some(1),
                max_tokens: Some(16),
            }
        })
        .collect();
    Traffic { kind: "systematic probing (one word changed at a time)", requests }
}

/// Feeds the traffic of one key; returns the 1-based index of the request at which it was first suspected.
fn first_suspected(traffic: &Traffic, config: &ExtractionConfig) -> (Option<usize>, f64) {
    let mut detector = ExtractionDetector::new();
    let mut max_score = 0.0f64;
    let mut first = None;
    for (index, request) in traffic.requests.iter().enumerate() {
        let verdict = detector.observe(
            "key",
            &RequestShape {
                ts_ms: request.ts_ms,
                text: &request.text,
                top_logprobs: request.top_logprobs,
                max_tokens: request.max_tokens,
            },
            config,
        );
        if verdict.evidence.requests >= edgeway_guard::extraction::MIN_EVIDENCE {
            max_score = max_score.max(verdict.evidence.score);
        }
        if verdict.suspected && first.is_none() {
            first = Some(index + 1);
        }
    }
    (first, max_score)
}

#[test]
fn campaigns_are_caught_within_500_queries_and_benign_keys_are_left_alone() {
    let config = ExtractionConfig::default();
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let mut benign: Vec<Traffic> = Vec::new();
    benign.extend((0..300).map(|_| chat_user(&mut rng)));
    benign.extend((0..100).map(|_| rag_app(&mut rng)));
    benign.extend((0..100).map(|_| batch_burst(&mut rng)));
    let mut campaigns: Vec<Traffic> = Vec::new();
    for _ in 0..20 {
        campaigns.push(distillation(&mut rng));
        campaigns.push(label_harvest(&mut rng));
        campaigns.push(probing(&mut rng));
        campaigns.push(mimicry(&mut rng));
    }

    println!("\nbenign keys (threshold {:.2})", config.threshold);
    println!("{:<50} {:>6} {:>9} {:>13}", "profile", "keys", "flagged", "max score");
    let mut flagged_total = 0;
    for kind in ["chat user", "RAG application (many users, one key)", "batch burst (templated summaries)"] {
        let keys: Vec<&Traffic> = benign.iter().filter(|t| t.kind == kind).collect();
        let results: Vec<(Option<usize>, f64)> = keys.iter().map(|t| first_suspected(t, &config)).collect();
        let flagged = results.iter().filter(|r| r.0.is_some()).count();
        flagged_total += flagged;
        let max = results.iter().map(|r| r.1).fold(0.0, f64::max);
        println!("{kind:<50} {:>6} {flagged:>9} {max:>13.3}", keys.len());
    }
    let flagged_share = flagged_total as f64 / benign.len() as f64;
    println!("benign keys flagged: {flagged_total}/{} = {:.2} %", benign.len(), 100.0 * flagged_share);

    println!("\nextraction campaigns");
    println!("{:<56} {:>5} {:>9} {:>12} {:>12}", "campaign", "keys", "detected", "median at", "worst at");
    let mut worst_overall = 0;
    for kind in [
        "logit distillation (diverse prompts, top-k logprobs)",
        "label harvesting (templated, 1-2 tokens, no logprobs)",
        "systematic probing (one word changed at a time)",
        "text-only distillation that mimics chat (not caught)",
    ] {
        let keys: Vec<&Traffic> = campaigns.iter().filter(|t| t.kind == kind).collect();
        let mut at: Vec<usize> = keys.iter().filter_map(|t| first_suspected(t, &config).0).collect();
        at.sort_unstable();
        let detected = at.len();
        let median = at.get(at.len() / 2).copied().unwrap_or(0);
        let worst = at.last().copied().unwrap_or(usize::MAX);
        // The mimicking campaign is shown, not required: its traffic is chat traffic, only faster.
        if !kind.contains("not caught") {
            worst_overall = worst_overall.max(if detected == keys.len() { worst } else { usize::MAX });
        }
        let shown = |n: usize| if detected == 0 { "–".to_owned() } else { n.to_string() };
        println!("{kind:<56} {:>5} {detected:>9} {:>12} {:>12}", keys.len(), shown(median), shown(worst));
    }
    assert!(flagged_share <= 0.01, "{:.2} % of benign keys flagged", 100.0 * flagged_share);
    assert!(worst_overall <= 500, "a campaign went undetected for {worst_overall} queries");
}

#[test]
fn a_suspected_key_is_released_when_its_traffic_turns_benign() {
    let config = ExtractionConfig::default();
    let mut rng = Rng(42);
    let mut detector = ExtractionDetector::new();
    let mut feed = |traffic: &Traffic, offset: i64| {
        traffic
            .requests
            .iter()
            .map(|r| {
                detector.observe(
                    "k",
                    &RequestShape {
                        ts_ms: r.ts_ms + offset,
                        text: &r.text,
                        top_logprobs: r.top_logprobs,
                        max_tokens: r.max_tokens,
                    },
                    &config,
                )
            })
            .collect::<Vec<_>>()
    };
    let attack = feed(&distillation(&mut rng), 0);
    assert!(attack.last().unwrap().suspected);
    assert_eq!(attack.iter().filter(|v| v.changed).count(), 1, "one transition is logged, not every request");
    let calm = feed(&rag_app(&mut rng), 10_000_000);
    assert!(!calm.last().unwrap().suspected);
}
