//! Image files to the network's input: decode, resize, centre-crop, normalise, NCHW.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::RgbImage;
use ndarray::Array4;

/// Why an image could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The bytes are not an image in a supported format (PNG, JPEG).
    #[error("{what} is not a PNG or JPEG image this build can decode: {error}")]
    Decode {
        /// The file, or "the image" for bytes.
        what: String,
        /// What the decoder said.
        error: image::ImageError,
    },
    /// An image with no pixels.
    #[error("{0} has no pixels")]
    Empty(String),
}

/// How images become input tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocessing {
    /// The shorter side is resized to this first (aspect ratio kept)…
    pub resize_shorter_to: u32,
    /// …then the centre `crop × crop` square is taken.
    pub crop: u32,
    /// Subtracted from each channel's 0–255 value (R, G, B)…
    pub mean: [f32; 3],
    /// …and the difference divided by this.
    pub std: [f32; 3],
}

/// EfficientNet-Lite0's preprocessing, as the checkpoint's companion code
/// (`efficientnet_lite_pytorch` on PyPI) documents it: the shorter side resized
/// to 224 (bilinear), ImageNet's per-channel mean and standard deviation. The
/// centre 224×224 square is then taken so that images of any shape batch
/// together. TensorFlow's Lite recipe, `(x − 127) / 128`, ranks scikit-image's
/// `chelsea.png` as a tiger cat (282) rather than an Egyptian cat (285), so it
/// is not the one these weights expect.
pub const LITE0: Preprocessing = Preprocessing {
    resize_shorter_to: 224,
    crop: 224,
    mean: [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0],
    std: [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0],
};

/// Reads and decodes an image file (PNG or JPEG) to 8-bit RGB.
pub fn load(path: &Path) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|error| ImageError::Io { path: path.to_owned(), error })?;
    decode_named(&bytes, &path.display().to_string())
}

/// Decodes image bytes (PNG or JPEG) to 8-bit RGB.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    decode_named(bytes, "the image")
}

fn decode_named(bytes: &[u8], what: &str) -> Result<RgbImage, ImageError> {
    let image = image::load_from_memory(bytes).map_err(|error| ImageError::Decode { what: what.into(), error })?;
    if image.width() == 0 || image.height() == 0 {
        return Err(ImageError::Empty(what.into()));
    }
    Ok(image.to_rgb8())
}

impl Preprocessing {
    /// One image resized and cropped to `crop × crop`.
    pub fn fit(&self, image: &RgbImage) -> RgbImage {
        let (w, h) = image.dimensions();
        if w == self.crop && h == self.crop && w == self.resize_shorter_to {
            return image.clone();
        }
        let scale = self.resize_shorter_to as f64 / w.min(h).max(1) as f64;
        let (rw, rh) =
            (((w as f64 * scale).round() as u32).max(self.crop), ((h as f64 * scale).round() as u32).max(self.crop));
        let resized = image::imageops::resize(image, rw, rh, FilterType::Triangle);
        let (x, y) = ((rw - self.crop) / 2, (rh - self.crop) / 2);
        image::imageops::crop_imm(&resized, x, y, self.crop, self.crop).to_image()
    }

    /// A batch `[N, 3, crop, crop]` of normalised images.
    pub fn batch(&self, images: &[RgbImage]) -> Array4<f32> {
        let size = self.crop as usize;
        let mut batch = Array4::<f32>::zeros((images.len(), 3, size, size));
        for (n, image) in images.iter().enumerate() {
            let fitted = self.fit(image);
            for (x, y, pixel) in fitted.enumerate_pixels() {
                for c in 0..3 {
                    batch[[n, c, y as usize, x as usize]] = (f32::from(pixel[c]) - self.mean[c]) / self.std[c];
                }
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_the_centre_and_normalises() {
        // A 448×224 image, left half black, right half white: the centre crop
        // keeps 112 columns of each.
        let image =
            RgbImage::from_fn(448, 224, |x, _| if x < 224 { image::Rgb([0, 0, 0]) } else { image::Rgb([255; 3]) });
        let batch = LITE0.batch(&[image]);
        assert_eq!(batch.shape(), &[1, 3, 224, 224]);
        assert!((batch[[0, 0, 100, 0]] - (-0.485 / 0.229)).abs() < 1e-5);
        assert!((batch[[0, 2, 100, 223]] - (1.0 - 0.406) / 0.225).abs() < 1e-5);
    }

    #[test]
    fn small_images_are_scaled_up() {
        let image = RgbImage::from_pixel(10, 30, image::Rgb([124, 116, 104]));
        let batch = LITE0.batch(&[image]);
        assert_eq!(batch.shape(), &[1, 3, 224, 224]);
        assert!(batch.iter().all(|&v| v.abs() < 0.01), "a mean-coloured image normalises to about 0");
    }

    #[test]
    fn non_images_are_a_clear_error() {
        let error = decode(b"%PDF-1.4 not an image").unwrap_err();
        assert!(error.to_string().contains("not a PNG or JPEG"), "{error}");
        let error = load(Path::new("/nonexistent/cat.png")).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/cat.png"), "{error}");
    }
}
