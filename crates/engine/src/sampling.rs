//! Picking the next token from raw logits.
//!
//! Sampling lives here, in Rust, rather than in llama.cpp's sampler chain for
//! three reasons: it is a pure function of the logits and so unit-testable;
//! greedy decoding becomes one pass over the logits instead of building a
//! candidate array the size of the vocabulary every token (262k entries on
//! Gemma 3); and a seed gives the same tokens on every edgeway version,
//! whatever llama.cpp's RNG does.
//!
//! Order of operations: bans and penalties, then temperature, top-k, top-p.

use std::collections::HashMap;

use edgeway_core::SamplingParams;

/// llama-server's default `top_k`; OpenAI's API has no such field.
pub const DEFAULT_TOP_K: usize = 40;

/// The sampler of one request.
#[derive(Debug)]
pub struct Sampler {
    temperature: f32,
    top_p: f32,
    top_k: usize,
    frequency_penalty: f32,
    presence_penalty: f32,
    /// Tokens that may never be chosen (end-of-generation under `ignore_eos`).
    banned: Vec<usize>,
    /// How often each token has been generated, for the penalties.
    counts: HashMap<usize, u32>,
    rng: SplitMix64,
    /// Reused buffers, so sampling allocates nothing per token.
    adjusted: Vec<f32>,
    candidates: Vec<(usize, f32)>,
}

impl Sampler {
    /// A sampler for `params`; `banned` tokens are never picked.
    pub fn new(params: &SamplingParams, banned: Vec<usize>) -> Self {
        let seed = params.seed.map_or_else(random_seed, u64::from);
        Self {
            temperature: params.temperature,
            top_p: params.top_p,
            top_k: DEFAULT_TOP_K,
            frequency_penalty: params.frequency_penalty,
            presence_penalty: params.presence_penalty,
            banned,
            counts: HashMap::new(),
            rng: SplitMix64(seed),
            adjusted: Vec::new(),
            candidates: Vec::with_capacity(DEFAULT_TOP_K + 1),
        }
    }

    /// Chooses the next token and remembers it for the penalties.
    pub fn sample(&mut self, logits: &[f32]) -> usize {
        let token = self.pick(logits);
        self.record(token);
        token
    }

    /// Remembers a generated token for the penalties (what [`Sampler::sample`] does after picking).
    pub fn record(&mut self, token: usize) {
        *self.counts.entry(token).or_insert(0) += 1;
    }

    /// Chooses the next token without remembering it: a constrained sampler may refuse it and
    /// pick again from masked logits.
    pub fn pick(&mut self, raw: &[f32]) -> usize {
        // Penalties change logits, so they need a copy of the vocabulary's logits (bans are
        // applied to it too). Bans alone (`ignore_eos`) are a handful of tokens: they are
        // skipped when choosing instead, so that greedy decoding stays one pass with no copy.
        let penalized = !self.counts.is_empty() && (self.frequency_penalty != 0.0 || self.presence_penalty != 0.0);
        let logits = if penalized {
            self.adjusted.clear();
            self.adjusted.extend_from_slice(raw);
            for (&token, &count) in &self.counts {
                if let Some(logit) = self.adjusted.get_mut(token) {
                    *logit -= self.frequency_penalty * count as f32 + self.presence_penalty;
                }
            }
            for &token in &self.banned {
                if let Some(logit) = self.adjusted.get_mut(token) {
                    *logit = f32::NEG_INFINITY;
                }
            }
            &self.adjusted[..]
        } else {
            raw
        };
        if self.temperature <= 0.0 {
            let best = argmax(logits);
            if penalized || !self.banned.contains(&best) {
                return best; // (a penalized copy has its bans masked already)
            }
            // The model's favourite is banned (rare): mask the bans in a copy.
            self.adjusted.clear();
            self.adjusted.extend_from_slice(raw);
            for &token in &self.banned {
                if let Some(logit) = self.adjusted.get_mut(token) {
                    *logit = f32::NEG_INFINITY;
                }
            }
            return argmax(&self.adjusted);
        }
        // Room for the banned tokens among the best, then drop them: still exactly top-k.
        top_k_into(logits, self.top_k + self.banned.len(), &mut self.candidates);
        let banned = &self.banned;
        self.candidates.retain(|c| !banned.contains(&c.0));
        self.candidates.truncate(self.top_k);
        // Softmax over the survivors at this temperature (candidates are sorted, best first).
        let best = self.candidates.first().map_or(0.0, |c| c.1);
        let mut total = 0.0;
        for candidate in &mut self.candidates {
            candidate.1 = ((candidate.1 - best) / self.temperature).exp();
            total += candidate.1;
        }
        // Nucleus: keep the smallest prefix whose mass reaches top_p (at least one token).
        let mut kept = 0;
        let mut mass = 0.0;
        for candidate in &self.candidates {
            kept += 1;
            mass += candidate.1 / total;
            if mass >= self.top_p {
                break;
            }
        }
        self.candidates.truncate(kept.max(1));
        let kept_total: f32 = self.candidates.iter().map(|c| c.1).sum();
        let mut point = self.rng.next_f32() * kept_total;
        for candidate in &self.candidates {
            point -= candidate.1;
            if point <= 0.0 {
                return candidate.0;
            }
        }
        self.candidates.last().map_or(0, |c| c.0)
    }
}

/// Index of the largest logit (the first one on ties).
///
/// This runs once per generated token over the whole vocabulary (49k to 262k
/// logits), so it is written to vectorize: a lane-wise maximum the compiler
/// turns into SIMD, then one scan for the first position holding it.
pub fn argmax(logits: &[f32]) -> usize {
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = logits.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane = if value > *lane { value } else { *lane };
        }
    }
    let max = lanes.iter().chain(tail).copied().fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
    logits.iter().position(|&value| value == max).unwrap_or(0)
}

/// The `k` largest logits as `(index, logit)`, best first, in one pass.
fn top_k_into(logits: &[f32], k: usize, out: &mut Vec<(usize, f32)>) {
    out.clear();
    let k = k.max(1);
    for (index, &value) in logits.iter().enumerate() {
        if value == f32::NEG_INFINITY || (out.len() == k && value <= out[k - 1].1) {
            continue;
        }
        // Insert in descending order; k is small, so a linear shift is cheapest.
        let at = out.partition_point(|c| c.1 >= value);
        if out.len() == k {
            out.pop();
        }
        out.insert(at, (index, value));
    }
}

/// A seed from the clock and a counter, for requests that give none.
fn random_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
}

/// SplitMix64: tiny, fast, and stable across versions, so a seed always gives the same tokens.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(temperature: f32, top_p: f32, seed: u32) -> SamplingParams {
        SamplingParams { temperature, top_p, seed: Some(seed), ..SamplingParams::default() }
    }

    #[test]
    fn argmax_finds_the_first_maximum_anywhere() {
        for len in [1, 15, 16, 17, 100, 1000] {
            for at in [0, len / 2, len - 1] {
                let mut logits = vec![0.5f32; len];
                logits[at] = 3.0;
                assert_eq!(argmax(&logits), at, "len {len} at {at}");
            }
        }
        assert_eq!(argmax(&[1.0, 2.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), 0);
    }

    #[test]
    fn greedy_picks_the_largest_and_respects_bans() {
        let logits = [0.1, 2.0, 1.5, 2.0];
        assert_eq!(Sampler::new(&params(0.0, 1.0, 1), vec![]).sample(&logits), 1);
        assert_eq!(Sampler::new(&params(0.0, 1.0, 1), vec![1, 3]).sample(&logits), 2);
    }

    #[test]
    fn frequency_penalty_moves_greedy_off_a_repeated_token() {
        let logits = [1.0, 1.2];
        let mut sampler = Sampler::new(
            &SamplingParams { temperature: 0.0, frequency_penalty: 0.5, ..SamplingParams::default() },
            vec![],
        );
        assert_eq!(sampler.sample(&logits), 1);
        assert_eq!(sampler.sample(&logits), 0, "after one use, 1.2 - 0.5 < 1.0");
    }

    #[test]
    fn a_seed_reproduces_the_same_tokens() {
        let logits: Vec<f32> = (0..500).map(|i| ((i * 37) % 101) as f32 / 20.0).collect();
        let run = |seed| {
            let mut sampler = Sampler::new(&params(1.0, 0.95, seed), vec![]);
            (0..50).map(|_| sampler.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn sampling_follows_the_distribution() {
        // Two tokens with probabilities 0.75 and 0.25 at temperature 1.
        let logits = [3f32.ln(), 0.0];
        let mut sampler = Sampler::new(&params(1.0, 1.0, 3), vec![]);
        let firsts = (0..20_000).filter(|_| sampler.sample(&logits) == 0).count();
        let share = firsts as f64 / 20_000.0;
        assert!((share - 0.75).abs() < 0.02, "share {share}");
    }

    #[test]
    fn tiny_top_p_is_greedy() {
        let logits = [0.0, 5.0, 4.9, 1.0];
        let mut sampler = Sampler::new(&params(1.0, 0.01, 9), vec![]);
        assert!((0..100).all(|_| sampler.sample(&logits) == 1));
    }

    proptest! {
        /// Whatever the logits and settings, the token is in range, not banned, and among the top k.
        #[test]
        fn token_is_valid(
            logits in proptest::collection::vec(-20f32..20.0, 2..300),
            temperature in 0f32..2.0,
            top_p in 0.01f32..=1.0,
            seed in any::<u32>(),
        ) {
            let banned = vec![0];
            let mut sampler = Sampler::new(&params(temperature, top_p, seed), banned);
            let token = sampler.sample(&logits);
            prop_assert!(token > 0 && token < logits.len());
            let better = logits.iter().enumerate().skip(1).filter(|(_, &l)| l > logits[token]).count();
            prop_assert!(better < DEFAULT_TOP_K);
        }

        /// Skipping banned tokens while choosing picks what choosing from masked logits picks.
        #[test]
        fn skipping_bans_equals_masking_them(
            logits in proptest::collection::vec(-8f32..8.0, 2..300),
            banned in proptest::collection::vec(0usize..300, 1..4),
            temperature in 0f32..2.0,
            seed in any::<u32>(),
        ) {
            let banned: Vec<usize> = banned.into_iter().filter(|&t| t < logits.len()).collect();
            let mut masked = logits.clone();
            for &token in &banned {
                masked[token] = f32::NEG_INFINITY;
            }
            prop_assume!(masked.iter().any(|l| l.is_finite()));
            let mut skipping = Sampler::new(&params(temperature, 0.9, seed), banned);
            let mut reference = Sampler::new(&params(temperature, 0.9, seed), vec![]);
            for _ in 0..5 {
                prop_assert_eq!(skipping.sample(&logits), reference.sample(&masked));
            }
        }

        #[test]
        fn top_k_matches_a_full_sort(logits in proptest::collection::vec(-5f32..5.0, 1..200), k in 1usize..50) {
            let mut fast = Vec::new();
            top_k_into(&logits, k, &mut fast);
            let mut sorted: Vec<f32> = logits.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            sorted.truncate(k);
            prop_assert_eq!(fast.iter().map(|c| c.1).collect::<Vec<_>>(), sorted);
        }
    }
}
