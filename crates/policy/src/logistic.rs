//! The one logistic-regression fit both trained scorers use: full-batch AdaGrad on the log
//! loss with an L2 penalty, a fixed number of epochs from the base rate (deterministic, no
//! dependency). The hashed scorer's rows are sparse, the embedding scorer's dense; the caller
//! says how to read a row.

/// Epochs of full-batch AdaGrad.
const EPOCHS: usize = 300;

/// AdaGrad's step size.
const STEP: f64 = 0.5;

/// How a training row is read: its dot product with the weights, and how it adds `scale` times
/// itself to a gradient.
pub trait Row {
    /// `weights · row`.
    fn dot(&self, weights: &[f64]) -> f64;
    /// `gradient += scale · row`.
    fn add_to(&self, scale: f64, gradient: &mut [f64]);
}

/// Fits weights over `dims` features and an intercept to `(row, label)` pairs; `positives` is
/// the number (or share × count) of positive labels, which starts the intercept at the base rate
/// so an uninformative model predicts it.
pub fn fit<R: Row>(examples: &[(R, bool)], dims: usize, l2: f64, positives: f64) -> (Vec<f64>, f64) {
    let n = examples.len().max(1) as f64;
    let rate = ((positives + 0.5) / (n + 1.0)).clamp(1e-3, 1.0 - 1e-3);
    let mut bias = (rate / (1.0 - rate)).ln();
    let mut weights = vec![0f64; dims];
    let mut history = vec![1e-8f64; dims + 1];
    for _ in 0..EPOCHS {
        let mut gradient = vec![0f64; dims];
        let mut bias_gradient = 0f64;
        for (row, label) in examples {
            let z = bias + row.dot(&weights);
            let error = 1.0 / (1.0 + (-z).exp()) - f64::from(u8::from(*label));
            row.add_to(error, &mut gradient);
            bias_gradient += error;
        }
        for (i, g) in gradient.iter_mut().enumerate() {
            *g = *g / n + l2 * weights[i];
            history[i] += *g * *g;
            weights[i] -= STEP * *g / history[i].sqrt();
        }
        let g = bias_gradient / n;
        history[dims] += g * g;
        bias -= STEP * g / history[dims].sqrt();
    }
    (weights, bias)
}

/// A hashed scorer's sparse row: `(index, value)` pairs.
impl Row for Vec<(usize, f32)> {
    fn dot(&self, weights: &[f64]) -> f64 {
        self.iter().map(|&(i, v)| weights[i] * f64::from(v)).sum()
    }

    fn add_to(&self, scale: f64, gradient: &mut [f64]) {
        for &(i, v) in self {
            gradient[i] += scale * f64::from(v);
        }
    }
}

/// An embedding scorer's dense, standardised row.
impl Row for Vec<f64> {
    fn dot(&self, weights: &[f64]) -> f64 {
        self.iter().zip(weights).map(|(x, w)| x * w).sum()
    }

    fn add_to(&self, scale: f64, gradient: &mut [f64]) {
        for (g, x) in gradient.iter_mut().zip(self) {
            *g += scale * x;
        }
    }
}
