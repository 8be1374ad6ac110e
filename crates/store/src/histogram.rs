//! A log-bucketed histogram of milliseconds that merges exactly and reads back percentiles
//! within 4.5 %: what the rollups keep per time slice so a week's percentiles are read from a
//! few thousand rows instead of a million latencies.
//!
//! Hand-written rather than `hdrhistogram`: the rollups need a small, stable byte format in
//! SQLite and nothing else (no value ranges to configure, no compression), and this one is
//! eight buckets per doubling of a fixed scale, some fifty lines.

use std::collections::BTreeMap;

/// Buckets per doubling: a bucket spans a factor of 2^(1/8) ≈ 1.09, so its geometric middle
/// is within 2^(1/16) − 1 ≈ 4.4 % of any value in it.
const PER_DOUBLING: f64 = 8.0;

/// Counts of values per bucket; bucket 0 holds everything under 1 ms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogHistogram {
    counts: BTreeMap<u8, u64>,
}

impl LogHistogram {
    /// Counts one value (negative and NaN values count as 0 ms).
    pub fn record(&mut self, ms: f64) {
        *self.counts.entry(bucket(ms)).or_default() += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &LogHistogram) {
        for (&index, &count) in &other.counts {
            *self.counts.entry(index).or_default() += count;
        }
    }

    /// Values counted.
    pub fn len(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The `q` quantile by nearest rank, as its bucket's middle; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.len();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (&index, &count) in &self.counts {
            seen += count;
            if seen >= rank {
                return Some(middle(index));
            }
        }
        self.counts.keys().last().map(|&index| middle(index))
    }

    /// The stored form: (bucket, count as little-endian u64) pairs, nine bytes each.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.counts.len() * 9);
        for (&index, &count) in &self.counts {
            bytes.push(index);
            bytes.extend_from_slice(&count.to_le_bytes());
        }
        bytes
    }

    /// Reads [`to_bytes`](Self::to_bytes)'s form; `None` when it is not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(9) {
            return None;
        }
        let mut counts = BTreeMap::new();
        for pair in bytes.chunks_exact(9) {
            let count = u64::from_le_bytes(pair[1..].try_into().ok()?);
            *counts.entry(pair[0]).or_default() += count;
        }
        Some(Self { counts })
    }
}

/// The bucket of `ms`: 0 under 1 ms, then eight per doubling up to 255 (about 41 days).
fn bucket(ms: f64) -> u8 {
    if ms.is_nan() || ms < 1.0 {
        return 0;
    }
    (1.0 + (ms.log2() * PER_DOUBLING).floor()).min(255.0) as u8
}

/// The geometric middle of a bucket (0.5 ms for bucket 0).
fn middle(index: u8) -> f64 {
    if index == 0 {
        return 0.5;
    }
    2f64.powf((f64::from(index) - 0.5) / PER_DOUBLING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_stated_error_of_the_exact_ones() {
        let mut histogram = LogHistogram::default();
        for ms in 1..=1000 {
            histogram.record(f64::from(ms));
        }
        for (q, exact) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0), (0.0, 1.0), (1.0, 1000.0)] {
            let read = histogram.quantile(q).unwrap();
            assert!((read / exact - 1.0).abs() <= 0.045, "q {q}: {read} against {exact}");
        }
        assert_eq!(LogHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn merging_equals_counting_together_and_bytes_round_trip() {
        let (mut a, mut b, mut both) = (LogHistogram::default(), LogHistogram::default(), LogHistogram::default());
        for ms in [0.2, 3.0, 45.0, 45.5, 9_000.0, f64::NAN, -1.0, 1e12] {
            a.record(ms);
            both.record(ms);
        }
        for ms in [3.0, 700.0] {
            b.record(ms);
            both.record(ms);
        }
        a.merge(&b);
        assert_eq!(a, both);
        assert_eq!(a.len(), 10);
        assert_eq!(LogHistogram::from_bytes(&a.to_bytes()), Some(a));
        assert_eq!(LogHistogram::from_bytes(&[1, 2, 3]), None, "a torn blob is refused");
        assert_eq!(bucket(0.99), 0);
        assert_eq!(bucket(1.0), 1);
        assert_eq!(bucket(2.0), 9);
    }
}
