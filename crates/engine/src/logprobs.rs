//! Log-probabilities from raw logits, for `logprobs`/`top_logprobs`.
//!
//! These are the model's own probabilities (a log-softmax of the logits), not
//! the sampler's reshaped distribution, which is what OpenAI's API reports.

/// The log-probability of `chosen` and the `top_n` most likely tokens (most likely first).
///
/// Returns `(logprob_of_chosen, [(token_index, logprob)])`.
pub fn token_logprobs(logits: &[f32], chosen: usize, top_n: usize) -> (f32, Vec<(usize, f32)>) {
    let (max, log_sum) = max_and_log_sum_exp(logits);
    // (l - max) - ln Σ exp(x - max) keeps f32 precision even for large logits.
    let logprob = |l: f32| (l - max) - log_sum;
    let chosen_logprob = logits.get(chosen).map_or(f32::NEG_INFINITY, |&l| logprob(l));
    let top_n = top_n.min(logits.len());
    if top_n == 0 {
        return (chosen_logprob, Vec::new());
    }
    let mut indices: Vec<usize> = (0..logits.len()).collect();
    let by_logit_desc = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]);
    indices.select_nth_unstable_by(top_n - 1, by_logit_desc);
    indices.truncate(top_n);
    indices.sort_unstable_by(by_logit_desc);
    let top = indices.into_iter().map(|i| (i, logprob(logits[i]))).collect();
    (chosen_logprob, top)
}

/// The largest value and `ln(sum(exp(x - max)))`, computed stably.
fn max_and_log_sum_exp(values: &[f32]) -> (f32, f32) {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return (max, 0.0);
    }
    let sum: f32 = values.iter().map(|v| (v - max).exp()).sum();
    (max, sum.ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_sum_to_one_and_top_is_sorted() {
        let logits = [1.0, 3.0, 2.0, -1.0];
        let (chosen, top) = token_logprobs(&logits, 2, 4);
        let total: f32 = top.iter().map(|(_, lp)| lp.exp()).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert_eq!(top.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1, 2, 0, 3]);
        assert!((chosen - top[1].1).abs() < 1e-6);
    }

    #[test]
    fn top_n_larger_than_vocab_is_clamped() {
        let (_, top) = token_logprobs(&[0.0, 0.0], 0, 5);
        assert_eq!(top.len(), 2);
        assert!((top[0].1 - 0.5f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn large_logits_do_not_overflow() {
        let (chosen, _) = token_logprobs(&[1000.0, 1000.0], 0, 0);
        assert!((chosen - 0.5f32.ln()).abs() < 1e-5);
    }
}
