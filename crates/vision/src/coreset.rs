//! Greedy k-center coreset selection, with an optional random projection.
//!
//! PatchCore keeps a subset of the training patches such that every patch has
//! a kept one nearby: greedy k-center picks, again and again, the point
//! farthest from everything picked so far (a 2-approximation of the optimal
//! covering radius). Distances are only compared, so they can be computed in
//! a randomly projected, lower-dimensional space (Johnson–Lindenstrauss) to
//! save time; the selected rows are then taken from the full features.

use ndarray::{Array2, ArrayView2, Axis};

/// SplitMix64: a small deterministic generator, so a seed gives the same coreset everywhere.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `features` (rows are points) times a random ±1/√k matrix of `dims`
/// columns (Achlioptas' projection), or the features themselves when they
/// already have no more than `dims` columns or `dims` is 0.
pub fn random_projection(features: ArrayView2<f32>, dims: usize, seed: u64) -> Array2<f32> {
    let d = features.ncols();
    if dims == 0 || dims >= d {
        return features.to_owned();
    }
    let mut rng = SplitMix64::new(seed);
    let scale = 1.0 / (dims as f32).sqrt();
    let projection = Array2::from_shape_fn((d, dims), |_| if rng.next_u64() & 1 == 0 { scale } else { -scale });
    features.dot(&projection)
}

/// The indices of `k` rows of `features` chosen by greedy k-center (the first
/// at random from `seed`), in the order chosen; every row when `k` is at least
/// the number of rows. Distances are measured in a random projection to
/// `projection_dims` columns (0: none).
pub fn greedy_coreset(features: ArrayView2<f32>, k: usize, projection_dims: usize, seed: u64) -> Vec<usize> {
    let n = features.nrows();
    if k >= n {
        return (0..n).collect();
    }
    if k == 0 {
        return Vec::new();
    }
    let points = random_projection(features, projection_dims, seed ^ 0x5EED);
    let norms: Vec<f32> = points.axis_iter(Axis(0)).map(|row| row.dot(&row)).collect();
    let mut rng = SplitMix64::new(seed);
    let mut chosen = Vec::with_capacity(k);
    let mut next = (rng.next_u64() % n as u64) as usize;
    let mut nearest = vec![f32::INFINITY; n];
    for _ in 0..k {
        chosen.push(next);
        let center = points.row(next);
        let center_norm = norms[next];
        // Squared distances to the new center, through one matrix-vector product.
        let dots = points.dot(&center);
        let mut farthest = (0, f32::NEG_INFINITY);
        for (i, (dot, best)) in dots.iter().zip(nearest.iter_mut()).enumerate() {
            let distance = (norms[i] + center_norm - 2.0 * dot).max(0.0);
            if distance < *best {
                *best = distance;
            }
            if *best > farthest.1 {
                farthest = (i, *best);
            }
        }
        next = farthest.0;
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points in tight clusters around `centers`, `per` each.
    fn clusters(centers: &[[f32; 3]], per: usize) -> Array2<f32> {
        let mut rng = SplitMix64::new(7);
        Array2::from_shape_fn((centers.len() * per, 3), |(i, j)| {
            centers[i / per][j] + (rng.next_u64() % 1000) as f32 / 1000.0 * 0.01
        })
    }

    #[test]
    fn the_coreset_covers_every_cluster() {
        let centers = [[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0], [7.0, 7.0, 7.0]];
        let points = clusters(&centers, 40);
        for projection in [0, 2] {
            let chosen = greedy_coreset(points.view(), 5, projection, 1);
            let mut hit: Vec<usize> = chosen.iter().map(|&i| i / 40).collect();
            hit.sort_unstable();
            assert_eq!(hit, vec![0, 1, 2, 3, 4], "one point per cluster (projection {projection})");
        }
    }

    #[test]
    fn the_covering_radius_shrinks_as_k_grows() {
        let mut rng = SplitMix64::new(3);
        let points = Array2::from_shape_fn((300, 8), |_| (rng.next_u64() % 10_000) as f32 / 10_000.0);
        let radius = |k| {
            let chosen = greedy_coreset(points.view(), k, 0, 9);
            points
                .axis_iter(Axis(0))
                .map(|p| chosen.iter().map(|&c| (&p - &points.row(c)).mapv(|v| v * v).sum()).fold(f32::MAX, f32::min))
                .fold(0.0f32, f32::max)
        };
        let (r10, r100) = (radius(10), radius(100));
        assert!(r100 < r10, "{r100} < {r10}");
        assert_eq!(greedy_coreset(points.view(), 500, 0, 9).len(), 300);
        assert!(greedy_coreset(points.view(), 0, 0, 9).is_empty());
    }

    #[test]
    fn projection_keeps_distances_roughly() {
        let mut rng = SplitMix64::new(5);
        let points = Array2::from_shape_fn((20, 256), |_| (rng.next_u64() % 1000) as f32 / 1000.0);
        let projected = random_projection(points.view(), 128, 11);
        assert_eq!(projected.dim(), (20, 128));
        let d = |m: &Array2<f32>, a: usize, b: usize| (&m.row(a) - &m.row(b)).mapv(|v| v * v).sum().sqrt();
        for (a, b) in [(0, 1), (2, 7), (5, 19)] {
            let ratio = d(&projected, a, b) / d(&points, a, b);
            assert!((0.7..1.3).contains(&ratio), "{ratio}");
        }
    }
}
