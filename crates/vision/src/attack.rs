//! Black-box evasion: can a defective part be made to pass inspection by an
//! attacker who sees only the score the API returns?
//!
//! [`square_attack`] is the L∞ Square Attack (Andriushchenko et al., 2020):
//! a random search that starts from vertical stripes of ±ε and then, one
//! query at a time, redraws the perturbation inside a random square (a fresh
//! ±ε per channel), keeping the change when the score drops. The square's
//! area shrinks on the paper's schedule as the budget is spent. Every image
//! stays within ε of the original in every pixel and channel, and in 0–255.
//! An image has evaded once its score is at or below the threshold.
//!
//! With [`Direction::TowardGood`] it is the stronger attacker who also holds
//! photographs of good parts (they are easy to come by): each defective image
//! starts pulled towards the good part most like it, as far as ε allows, and
//! half of the squares redraw towards that part instead of at random. It
//! erases a defect where a blind random search only adds new, unfamiliar
//! patches.
//!
//! The attack runs all images in lockstep so each query round is one batch
//! through the model ([`ScoreOracle`]). [`Defence`]s are transforms applied
//! to an image before it is scored: JPEG re-encoding and Gaussian smoothing.

use std::borrow::Cow;
use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;

use crate::coreset::SplitMix64;

/// Anything that scores images (higher = more anomalous), a batch at a time.
pub trait ScoreOracle {
    /// One score per image, in order.
    fn scores(&mut self, images: &[RgbImage]) -> Result<Vec<f32>, String>;
}

/// The attack's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SquareAttack {
    /// The L∞ budget in 0–255 pixel units (8 is the common 8/255).
    pub epsilon: u8,
    /// Queries per image, the initial one included.
    pub queries: usize,
    /// The square's starting share of the image's area (the paper's `p_init`).
    pub p_init: f64,
    /// Seeds the random search.
    pub seed: u64,
}

impl Default for SquareAttack {
    fn default() -> Self {
        Self { epsilon: 8, queries: 200, p_init: 0.05, seed: 0 }
    }
}

/// Where the attacker's changes point.
#[derive(Debug, Clone, Copy)]
pub enum Direction<'a> {
    /// Random ±ε signs: the Square Attack as published.
    Random,
    /// Towards these good parts (any size; each is resized to the attacked image's).
    TowardGood(&'a [RgbImage]),
}

/// One image's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackOutcome {
    /// The perturbed image (the original when the attack changed nothing).
    pub adversarial: RgbImage,
    /// The original's score.
    pub clean_score: f32,
    /// The perturbed image's score.
    pub score: f32,
    /// Whether it scores at or below the threshold.
    pub evaded: bool,
    /// Queries spent on it.
    pub queries: usize,
}

/// The square's share of the area at query `it` of `total`: `p_init` halved at
/// the paper's milestones (given for 10,000 queries, scaled to `total`).
pub fn square_share(p_init: f64, it: usize, total: usize) -> f64 {
    const MILESTONES: [usize; 9] = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
    let scaled = it * 10_000 / total.max(1);
    let halvings = MILESTONES.iter().filter(|&&m| scaled > m).count() as i32;
    p_init / 2f64.powi(halvings)
}

/// Runs the attack on every image against `threshold`, drawing in `direction`;
/// images already at or below it are left as they are.
pub fn square_attack(
    oracle: &mut dyn ScoreOracle,
    images: &[RgbImage],
    threshold: f32,
    settings: &SquareAttack,
    direction: Direction<'_>,
) -> Result<Vec<AttackOutcome>, String> {
    let mut rng = SplitMix64::new(settings.seed);
    let eps = i16::from(settings.epsilon);
    let clean = oracle.scores(images)?;
    let mut outcomes: Vec<AttackOutcome> = images
        .iter()
        .zip(&clean)
        .map(|(image, &score)| AttackOutcome {
            adversarial: image.clone(),
            clean_score: score,
            score,
            evaded: score <= threshold,
            queries: 1,
        })
        .collect();
    if settings.epsilon == 0 || settings.queries < 2 {
        return Ok(outcomes);
    }
    let guides: Vec<Option<RgbImage>> = images
        .iter()
        .map(|image| match direction {
            Direction::Random => None,
            Direction::TowardGood(good) => nearest(image, good),
        })
        .collect();
    // The start: stripes of one ±ε per column and channel, or the whole image pulled towards its guide.
    let starts: Vec<usize> = (0..outcomes.len()).filter(|&i| !outcomes[i].evaded).collect();
    let started: Vec<RgbImage> = starts
        .iter()
        .map(|&i| {
            let original = &images[i];
            match &guides[i] {
                Some(guide) => perturbed(original, |x, y, c| toward(original, guide, x, y, c, eps)),
                None => {
                    let signs: Vec<[i16; 3]> =
                        (0..original.width()).map(|_| [0, 1, 2].map(|_| sign(&mut rng) * eps)).collect();
                    perturbed(original, |x, _, c| signs[x as usize][c])
                }
            }
        })
        .collect();
    let scores = oracle.scores(&started)?;
    keep_better(&mut outcomes, &starts, started, scores, threshold);
    for it in 2..settings.queries {
        let active: Vec<usize> = (0..outcomes.len()).filter(|&i| !outcomes[i].evaded).collect();
        if active.is_empty() {
            break;
        }
        let share = square_share(settings.p_init, it, settings.queries);
        let candidates: Vec<RgbImage> = active
            .iter()
            .map(|&i| {
                let (original, current) = (&images[i], &outcomes[i].adversarial);
                let (w, h) = original.dimensions();
                let side = ((share * f64::from(w) * f64::from(h)).sqrt().round() as u32).clamp(1, w.min(h) - 1);
                let (x0, y0) = (below(&mut rng, w - side + 1), below(&mut rng, h - side + 1));
                let signs = [0, 1, 2].map(|_| sign(&mut rng) * eps);
                // Guided, half the squares go towards the good part, half explore.
                let guide = guides[i].as_ref().filter(|_| rng.next_u64() & 1 == 0);
                let mut candidate = current.clone();
                for y in y0..y0 + side {
                    for x in x0..x0 + side {
                        let delta = |c: usize| match guide {
                            Some(guide) => toward(original, guide, x, y, c, eps),
                            None => signs[c],
                        };
                        let deltas = [0, 1, 2].map(delta);
                        let (o, p) = (original.get_pixel(x, y), candidate.get_pixel_mut(x, y));
                        for c in 0..3 {
                            p[c] = (i16::from(o[c]) + deltas[c]).clamp(0, 255) as u8;
                        }
                    }
                }
                candidate
            })
            .collect();
        let scores = oracle.scores(&candidates)?;
        keep_better(&mut outcomes, &active, candidates, scores, threshold);
    }
    Ok(outcomes)
}

/// Counts one query for each image in `indices` and keeps its candidate where it scores lower.
fn keep_better(
    outcomes: &mut [AttackOutcome],
    indices: &[usize],
    candidates: Vec<RgbImage>,
    scores: Vec<f32>,
    threshold: f32,
) {
    for ((&i, candidate), score) in indices.iter().zip(candidates).zip(scores) {
        let outcome = &mut outcomes[i];
        outcome.queries += 1;
        if score < outcome.score {
            (outcome.adversarial, outcome.score) = (candidate, score);
            outcome.evaded = score <= threshold;
        }
    }
}

/// `image` with `delta(x, y, channel)` added to every pixel, clamped to 0–255.
fn perturbed(image: &RgbImage, delta: impl Fn(u32, u32, usize) -> i16) -> RgbImage {
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let p = image.get_pixel(x, y);
        image::Rgb([0, 1, 2].map(|c| (i16::from(p[c]) + delta(x, y, c)).clamp(0, 255) as u8))
    })
}

/// The step from `original` towards `guide` at one pixel and channel, at most ε.
fn toward(original: &RgbImage, guide: &RgbImage, x: u32, y: u32, c: usize, eps: i16) -> i16 {
    (i16::from(guide.get_pixel(x, y)[c]) - i16::from(original.get_pixel(x, y)[c])).clamp(-eps, eps)
}

/// The good part most like `image` (least mean absolute difference), at `image`'s size. Only
/// parts of another size are resized, and only the one chosen is copied.
fn nearest(image: &RgbImage, good: &[RgbImage]) -> Option<RgbImage> {
    let (w, h) = image.dimensions();
    good.iter()
        .map(|part| match part.dimensions() == (w, h) {
            true => Cow::Borrowed(part),
            false => Cow::Owned(image::imageops::resize(part, w, h, image::imageops::FilterType::Triangle)),
        })
        .min_by_key(|part| {
            part.as_raw().iter().zip(image.as_raw()).map(|(&a, &b)| u64::from(a.abs_diff(b))).sum::<u64>()
        })
        .map(Cow::into_owned)
}

fn sign(rng: &mut SplitMix64) -> i16 {
    if rng.next_u64() & 1 == 0 {
        -1
    } else {
        1
    }
}

fn below(rng: &mut SplitMix64, n: u32) -> u32 {
    (rng.next_u64() % u64::from(n.max(1))) as u32
}

/// The largest per-pixel, per-channel difference between two images of the same size.
pub fn linf_distance(a: &RgbImage, b: &RgbImage) -> u8 {
    a.as_raw().iter().zip(b.as_raw()).map(|(&x, &y)| x.abs_diff(y)).max().unwrap_or(0)
}

/// A transform applied to an image before it is scored, to blunt small perturbations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Defence {
    /// Nothing.
    None,
    /// Re-encode as JPEG at this quality (1–100) and decode again.
    Jpeg(u8),
    /// Gaussian smoothing with this sigma in pixels.
    Blur(f32),
}

impl Defence {
    /// Parses `none`, `jpeg:75` or `blur:1.0`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.split_once(':') {
            None if text == "none" => Some(Defence::None),
            Some(("jpeg", q)) => q.parse().ok().filter(|q| (1..=100).contains(q)).map(Defence::Jpeg),
            Some(("blur", s)) => s.parse().ok().filter(|s: &f32| *s > 0.0 && *s <= 16.0).map(Defence::Blur),
            _ => None,
        }
    }

    /// Its name as [`Defence::parse`] reads it.
    pub fn label(&self) -> String {
        match self {
            Defence::None => "none".into(),
            Defence::Jpeg(q) => format!("jpeg:{q}"),
            Defence::Blur(s) => format!("blur:{s}"),
        }
    }

    /// The transformed image.
    pub fn apply(&self, image: &RgbImage) -> RgbImage {
        match *self {
            Defence::None => image.clone(),
            Defence::Jpeg(quality) => {
                let mut bytes = Cursor::new(Vec::new());
                let encoded = JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(image);
                encoded
                    .ok()
                    .and_then(|()| image::load_from_memory(bytes.get_ref()).ok())
                    .map_or_else(|| image.clone(), |decoded| decoded.to_rgb8())
            }
            Defence::Blur(sigma) => image::imageops::blur(image, sigma),
        }
    }
}

/// An oracle that applies a defence to every image before the inner oracle scores it.
pub struct Defended<'a> {
    /// The model behind the defence.
    pub inner: &'a mut dyn ScoreOracle,
    /// The transform.
    pub defence: Defence,
}

impl ScoreOracle for Defended<'_> {
    fn scores(&mut self, images: &[RgbImage]) -> Result<Vec<f32>, String> {
        if self.defence == Defence::None {
            return self.inner.scores(images);
        }
        let transformed: Vec<RgbImage> = images.iter().map(|i| self.defence.apply(i)).collect();
        self.inner.scores(&transformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores an image by the mean brightness of its top-left 8×8 corner: the attack must find it.
    struct Corner {
        calls: usize,
    }

    impl ScoreOracle for Corner {
        fn scores(&mut self, images: &[RgbImage]) -> Result<Vec<f32>, String> {
            self.calls += 1;
            Ok(images
                .iter()
                .map(|image| {
                    let sum: u32 = (0..8)
                        .flat_map(|y| (0..8).map(move |x| (x, y)))
                        .map(|(x, y)| u32::from(image.get_pixel(x, y)[0]))
                        .sum();
                    sum as f32 / 64.0
                })
                .collect())
        }
    }

    fn grey(level: u8) -> RgbImage {
        RgbImage::from_pixel(32, 32, image::Rgb([level; 3]))
    }

    #[test]
    fn the_attack_lowers_the_score_within_its_budget() {
        let images = [grey(100), grey(120), grey(60)];
        let mut oracle = Corner { calls: 0 };
        let settings = SquareAttack { epsilon: 16, queries: 300, p_init: 0.1, seed: 7 };
        let outcomes = square_attack(&mut oracle, &images, 95.0, &settings, Direction::Random).unwrap();
        // 100 − 16 = 84 ≤ 95: reachable; 120 − 16 = 104: not; 60 is already below.
        assert!(outcomes[0].evaded && outcomes[0].score <= 95.0, "{:?}", outcomes[0].score);
        assert!(!outcomes[1].evaded && outcomes[1].score < 120.0 && outcomes[1].score >= 104.0);
        assert!(outcomes[2].evaded && outcomes[2].queries == 1, "nothing to do for a passing image");
        for (outcome, image) in outcomes.iter().zip(&images) {
            assert!(linf_distance(&outcome.adversarial, image) <= 16);
            assert!(outcome.queries <= settings.queries);
        }
        assert!(outcomes[0].queries < settings.queries, "an evaded image stops spending queries");
        assert!(oracle.calls <= settings.queries, "one batch per round");
    }

    #[test]
    fn the_guided_attack_pulls_towards_the_nearest_good_part_within_its_budget() {
        // The good parts: black, and white at another size. The nearest to each image is black.
        let good = [grey(0), RgbImage::from_pixel(16, 16, image::Rgb([255; 3]))];
        let images = [grey(100), grey(120)];
        let mut oracle = Corner { calls: 0 };
        let settings = SquareAttack { epsilon: 16, queries: 50, p_init: 0.1, seed: 7 };
        let outcomes = square_attack(&mut oracle, &images, 95.0, &settings, Direction::TowardGood(&good)).unwrap();
        // The first pull takes 100 to 84 at once; 120 gets to 104 and no further.
        assert!(outcomes[0].evaded && outcomes[0].queries == 2, "{:?}", outcomes[0].queries);
        assert_eq!(outcomes[1].score, 104.0);
        for (outcome, image) in outcomes.iter().zip(&images) {
            assert!(linf_distance(&outcome.adversarial, image) <= 16);
        }
    }

    #[test]
    fn the_square_shrinks_on_schedule() {
        assert_eq!(square_share(0.05, 0, 10_000), 0.05);
        assert_eq!(square_share(0.05, 11, 10_000), 0.025);
        assert_eq!(square_share(0.05, 9_000, 10_000), 0.05 / 512.0);
        // Scaled to a 100-query budget, query 2 stands for query 200: two halvings behind it.
        assert_eq!(square_share(0.05, 2, 100), 0.0125);
    }

    #[test]
    fn defences_parse_and_change_the_image_a_little() {
        assert_eq!(Defence::parse("jpeg:75"), Some(Defence::Jpeg(75)));
        assert_eq!(Defence::parse("blur:1.5"), Some(Defence::Blur(1.5)));
        assert_eq!(Defence::parse("none"), Some(Defence::None));
        assert_eq!(Defence::parse("jpeg:0"), None);
        assert_eq!(Defence::parse("median:3"), None);
        let image = RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, 100]));
        for defence in [Defence::Jpeg(75), Defence::Blur(1.0)] {
            let out = defence.apply(&image);
            assert_eq!(out.dimensions(), image.dimensions());
            assert!(linf_distance(&out, &image) < 64, "{}", defence.label());
        }
    }
}
