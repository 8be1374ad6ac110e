//! Detection metrics: the area under the ROC curve and the confusion at a threshold.

/// The area under the ROC curve of `scores` against `positive` labels (higher
/// score = more likely positive): the probability that a random positive
/// scores above a random negative, ties counting one half (the Mann–Whitney
/// statistic). `None` when either class is empty or the lengths differ.
pub fn auroc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    if scores.len() != positive.len() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut positives) = (0f64, 0u64);
    let mut start = 0;
    while start < order.len() {
        // A run of tied scores shares the mean of its ranks (1-based).
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            if positive[i] {
                rank_sum += mean_rank;
                positives += 1;
            }
        }
        start = end;
    }
    let negatives = scores.len() as u64 - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Counts of a binary decision against the truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Defective, flagged.
    pub true_positives: usize,
    /// Good, flagged (a false reject).
    pub false_positives: usize,
    /// Good, passed.
    pub true_negatives: usize,
    /// Defective, passed (a miss).
    pub false_negatives: usize,
}

impl Confusion {
    /// The confusion of `score > threshold` (flagged) against `positive`.
    pub fn at_threshold(scores: &[f32], positive: &[bool], threshold: f32) -> Self {
        let mut confusion = Self::default();
        for (&score, &is_positive) in scores.iter().zip(positive) {
            match (score > threshold, is_positive) {
                (true, true) => confusion.true_positives += 1,
                (true, false) => confusion.false_positives += 1,
                (false, false) => confusion.true_negatives += 1,
                (false, true) => confusion.false_negatives += 1,
            }
        }
        confusion
    }

    /// Flagged defective among all defective (recall); `None` without defective ones.
    pub fn recall(&self) -> Option<f64> {
        let all = self.true_positives + self.false_negatives;
        (all > 0).then(|| self.true_positives as f64 / all as f64)
    }

    /// Flagged good among all good (the false-reject rate); `None` without good ones.
    pub fn false_reject_rate(&self) -> Option<f64> {
        let all = self.false_positives + self.true_negatives;
        (all > 0).then(|| self.false_positives as f64 / all as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_of_known_orderings() {
        assert_eq!(auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]), Some(1.0));
        assert_eq!(auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]), Some(0.0));
        // One positive below one of two negatives: 3 of 4 pairs ordered.
        assert_eq!(auroc(&[0.1, 0.5, 0.4, 0.9], &[false, false, true, true]), Some(0.75));
        // All tied: one half.
        assert_eq!(auroc(&[1.0; 4], &[false, true, false, true]), Some(0.5));
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auroc(&[0.1], &[true, false]), None);
    }

    #[test]
    fn confusion_counts_and_rates() {
        let c = Confusion::at_threshold(&[0.1, 0.6, 0.7, 0.2], &[false, false, true, true], 0.5);
        assert_eq!(c, Confusion { true_positives: 1, false_positives: 1, true_negatives: 1, false_negatives: 1 });
        assert_eq!(c.recall(), Some(0.5));
        assert_eq!(c.false_reject_rate(), Some(0.5));
        assert_eq!(Confusion::default().recall(), None);
    }
}
