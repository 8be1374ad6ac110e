//! Anomaly maps: bilinear resizing, Gaussian smoothing and heat-map overlays.

use image::{Rgb, RgbImage};
use ndarray::{Array2, ArrayView2};

/// `plane` resized to `height × width` by bilinear interpolation with
/// half-pixel centres (as `align_corners = false` in PyTorch). An empty plane
/// or size gives zeros.
pub fn resize_bilinear(plane: ArrayView2<f32>, height: usize, width: usize) -> Array2<f32> {
    let (h, w) = plane.dim();
    let mut out = Array2::<f32>::zeros((height, width));
    if h == 0 || w == 0 {
        return out;
    }
    // For each output coordinate: the two source indices and the weight of the second.
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        (0..n_out)
            .map(|o| {
                let x = ((o as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).clamp(0.0, (n_in - 1) as f32);
                let lo = x.floor() as usize;
                let hi = (lo + 1).min(n_in - 1);
                (lo, hi, x - lo as f32)
            })
            .collect()
    };
    let (rows, cols) = (taps(h, height), taps(w, width));
    for (y, &(y0, y1, fy)) in rows.iter().enumerate() {
        for (x, &(x0, x1, fx)) in cols.iter().enumerate() {
            let top = plane[[y0, x0]] * (1.0 - fx) + plane[[y0, x1]] * fx;
            let bottom = plane[[y1, x0]] * (1.0 - fx) + plane[[y1, x1]] * fx;
            out[[y, x]] = top * (1.0 - fy) + bottom * fy;
        }
    }
    out
}

/// `plane` smoothed by a Gaussian of standard deviation `sigma` pixels
/// (separable, truncated at 4σ, edges repeated). `sigma <= 0` returns a copy.
pub fn gaussian_blur(plane: ArrayView2<f32>, sigma: f32) -> Array2<f32> {
    if sigma <= 0.0 || !sigma.is_finite() {
        return plane.to_owned();
    }
    let radius = (4.0 * sigma).ceil() as isize;
    let mut kernel: Vec<f32> = (-radius..=radius).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    let (h, w) = plane.dim();
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut across = Array2::<f32>::zeros((h, w));
    for y in 0..h {
        for x in 0..w {
            across[[y, x]] = kernel
                .iter()
                .enumerate()
                .map(|(k, weight)| weight * plane[[y, clamp(x as isize + k as isize - radius, w)]])
                .sum();
        }
    }
    let mut out = Array2::<f32>::zeros((h, w));
    for y in 0..h {
        for x in 0..w {
            out[[y, x]] = kernel
                .iter()
                .enumerate()
                .map(|(k, weight)| weight * across[[clamp(y as isize + k as isize - radius, h), x]])
                .sum();
        }
    }
    out
}

/// A blue → cyan → yellow → red colour for `t` in 0..=1 (clamped).
fn heat_colour(t: f32) -> [f32; 3] {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let stops = [[0.0, 0.0, 255.0], [0.0, 255.0, 255.0], [255.0, 255.0, 0.0], [255.0, 0.0, 0.0]];
    let x = t * 3.0;
    let i = (x.floor() as usize).min(2);
    let f = x - i as f32;
    std::array::from_fn(|c| stops[i][c] * (1.0 - f) + stops[i + 1][c] * f)
}

/// A picture for a person: the image on the left and, on the right, the image
/// with the map laid over it in heat colours: red at `scale` (usually the
/// model's threshold) and above, blue at half of it and below, so the usual
/// scores of good patches stay cool and only what nears the threshold warms.
/// The map must have the image's size; a mismatch is resized to it.
pub fn overlay(image: &RgbImage, map: ArrayView2<f32>, scale: f32) -> RgbImage {
    let (w, h) = image.dimensions();
    let map = if map.dim() == (h as usize, w as usize) {
        map.to_owned()
    } else {
        resize_bilinear(map, h as usize, w as usize)
    };
    let scale = if scale > 0.0 && scale.is_finite() { scale } else { 1.0 };
    let mut out = RgbImage::new(2 * w, h);
    for (x, y, pixel) in image.enumerate_pixels() {
        out.put_pixel(x, y, *pixel);
        let t = (map[[y as usize, x as usize]] / scale - 0.5) * 2.0;
        let colour = heat_colour(t);
        let alpha = 0.25 + 0.5 * t.clamp(0.0, 1.0);
        let blended: [u8; 3] =
            std::array::from_fn(|c| (f32::from(pixel[c]) * (1.0 - alpha) + colour[c] * alpha).round() as u8);
        out.put_pixel(w + x, y, Rgb(blended));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn bilinear_resizing_keeps_constants_and_sizes() {
        let plane = Array2::from_elem((7, 5), 3.0f32);
        let out = resize_bilinear(plane.view(), 56, 40);
        assert_eq!(out.dim(), (56, 40));
        assert!(out.iter().all(|&v| (v - 3.0).abs() < 1e-6));
        let ramp = array![[0.0f32, 1.0]];
        let out = resize_bilinear(ramp.view(), 1, 4);
        assert_eq!(out.row(0).to_vec(), vec![0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn gaussian_blur_keeps_the_mass_and_spreads_a_peak() {
        let mut plane = Array2::<f32>::zeros((64, 64));
        plane[[32, 32]] = 1.0;
        let out = gaussian_blur(plane.view(), 4.0);
        assert!((out.sum() - 1.0).abs() < 1e-4, "{}", out.sum());
        assert!(out[[32, 32]] < 0.02 && out[[32, 36]] > 0.0 && out[[32, 32]] > out[[32, 36]]);
    }

    #[test]
    fn overlay_is_side_by_side() {
        let image = RgbImage::from_pixel(8, 6, Rgb([100, 100, 100]));
        let map = Array2::from_elem((3, 4), 2.0f32);
        let out = overlay(&image, map.view(), 1.0);
        assert_eq!(out.dimensions(), (16, 6));
        assert_eq!(out.get_pixel(0, 0), &Rgb([100, 100, 100]));
        assert!(out.get_pixel(8, 0)[0] > 150, "a high value is red: {:?}", out.get_pixel(8, 0));
    }
}
