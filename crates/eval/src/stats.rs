//! Order statistics for measurements: the median, a distribution-free confidence interval for it,
//! and nearest-rank percentiles.

/// The median of `values` (the mean of the middle two for an even count; 0 for none).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// The `q` quantile of `values` by nearest rank (0 for none); sorts `values` in place.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// A distribution-free confidence interval for the median of `values`, from order
/// statistics: the widest-inward pair `[x(k), x(n+1-k)]` whose coverage is still at least
/// `confidence` (the chance that the true median lies outside it is the chance that
/// fewer than k of n fair coin flips come up heads, on each side). With too few
/// values for that coverage it is the whole range. Returns (low, high, coverage).
pub fn median_interval(mut values: Vec<f64>, confidence: f64) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    // The coverage of [x(k), x(n+1-k)] is 1 − 2·P(Binomial(n, ½) ≤ k − 1), summed up as k
    // grows, each term in log space (2⁻ⁿ and C(n, i) leave f64's range past n ≈ 1,000).
    let ln_2n = n as f64 * std::f64::consts::LN_2;
    let (mut ln_choose, mut below) = (0.0_f64, 0.0_f64);
    let (mut k, mut coverage) = (1, 0.0);
    for candidate in 1..=n.div_ceil(2) {
        below += (ln_choose - ln_2n).exp();
        let covers = 1.0 - 2.0 * below;
        if candidate > 1 && covers < confidence {
            break;
        }
        (k, coverage) = (candidate, covers);
        if covers < confidence {
            break;
        }
        ln_choose += ((n - (candidate - 1)) as f64 / candidate as f64).ln();
    }
    Some((values[k - 1], values[n - k], coverage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_interval_uses_the_order_statistics_of_its_coverage() {
        let values: Vec<f64> = (1..=15).map(f64::from).collect();
        // n = 15: [x(4), x(12)] covers 96.5 %; [x(5), x(11)] would cover only 88.2 %.
        let (low, high, coverage) = median_interval(values, 0.95).unwrap();
        assert_eq!((low, high), (4.0, 12.0));
        assert!((coverage - 0.9648).abs() < 1e-3, "{coverage}");
        // n = 7: only the whole range covers 95 % (98.4 %).
        let (low, high, coverage) = median_interval((1..=7).rev().map(f64::from).collect(), 0.95).unwrap();
        assert_eq!((low, high), (1.0, 7.0));
        assert!((coverage - 0.984).abs() < 1e-3, "{coverage}");
        // n = 3: the whole range, which covers 75 %.
        let (_, _, coverage) = median_interval(vec![2.0, 1.0, 3.0], 0.95).unwrap();
        assert!((coverage - 0.75).abs() < 1e-9);
        assert!(median_interval(Vec::new(), 0.95).is_none());
        // n = 20,001: about the median ± 1.96·√n/2 (≈ 139) order statistics, not the whole range.
        let (low, high, coverage) = median_interval((0..20_001).map(f64::from).collect(), 0.95).unwrap();
        assert!((9_855.0..=9_870.0).contains(&low) && (10_130.0..=10_145.0).contains(&high), "{low} {high}");
        assert!((0.95..0.96).contains(&coverage), "{coverage}");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut values, 0.5), 50.0);
        assert_eq!(percentile(&mut values, 0.99), 99.0);
        assert_eq!(percentile(&mut values, 1.0), 100.0);
        assert_eq!(percentile(&mut [3.0], 0.99), 3.0);
        assert_eq!(percentile(&mut [], 0.5), 0.0);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
