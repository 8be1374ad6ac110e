//! `edgeway vision`: the real EfficientNet-Lite0 checkpoint converted to ONNX
//! in Rust, then scikit-image's sample photos classified through ONNX Runtime
//! (chelsea.png → 285 Egyptian cat, coffee.png → 967 espresso), and the
//! errors a user meets: a truncated checkpoint, a file that is not an image,
//! a missing ONNX Runtime library; and the inspection model fitted on a small
//! synthetic defect set (scripts/vision-data.sh) and evaluated on it.
//!
//! Needs the backbone's package in the cache (`edgeway vision convert`, which
//! scripts/test.sh runs), ONNX Runtime (`ORT_DYLIB_PATH`, or the repository's
//! `.venv`, where scripts/setup.sh installs it) and the photos
//! (`EDGEWAY_TEST_SKIMAGE_DATA`, or scikit-image in `.venv`: scripts/test.sh);
//! the inspection test also needs defect-synthesis in `.venv` (scripts/test.sh
//! runs `scripts/vision-data.sh --install`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{output_text, temp_dir};
use edgeway_models::vision::EFFICIENTNET_LITE0;
use edgeway_models::ModelCache;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `edgeway` from the repository root, so its `.venv` is where the binary looks for ONNX Runtime.
fn edgeway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeway"))
        .args(args)
        .current_dir(repo_root())
        .env("EDGEWAY_LOG", "warn")
        .output()
        .expect("cannot run edgeway")
}

fn sample(name: &str) -> String {
    let dir = std::env::var_os("EDGEWAY_TEST_SKIMAGE_DATA").map(PathBuf::from).or_else(|| {
        let lib = std::fs::read_dir(repo_root().join(".venv/lib")).ok()?;
        lib.filter_map(|e| e.ok()).map(|e| e.path().join("site-packages/skimage/data")).find(|d| d.is_dir())
    });
    let path = dir.map(|d| d.join(name)).unwrap_or_default();
    assert!(path.is_file(), "{name} not found; set EDGEWAY_TEST_SKIMAGE_DATA or run scripts/test.sh");
    path.display().to_string()
}

/// The checkpoint as `edgeway vision convert` fetched it into the cache.
fn cached_checkpoint() -> PathBuf {
    let data_dir = std::env::var_os("EDGEWAY_DATA_DIR").map(PathBuf::from).unwrap_or_else(ModelCache::default_data_dir);
    let path = edgeway_models::package::package_dir(&ModelCache::new(data_dir), &EFFICIENTNET_LITE0.package)
        .join(EFFICIENTNET_LITE0.checkpoint_in_package);
    assert!(path.is_file(), "{} is missing; run `edgeway vision convert` (scripts/test.sh does)", path.display());
    path
}

/// The top class printed for each image: `IMAGE: CLASS (P%), …`.
fn top_classes(stdout: &str) -> Vec<(String, usize)> {
    stdout
        .lines()
        .filter_map(|line| {
            let (image, classes) = line.rsplit_once(": ")?;
            let first = classes.split_whitespace().next()?.parse().ok()?;
            Some((Path::new(image).file_name()?.to_string_lossy().into_owned(), first))
        })
        .collect()
}

#[test]
fn converted_backbone_classifies_the_sample_photos() {
    let dir = temp_dir("vision", "classify");
    let model = dir.join("lite0.onnx");
    let model = model.to_str().unwrap();
    let checkpoint = cached_checkpoint();
    let output = edgeway(&["vision", "convert", "--checkpoint", checkpoint.to_str().unwrap(), "--out", model]);
    assert!(output.status.success(), "{}", output_text(&output));
    let text = output_text(&output);
    assert!(text.contains("16 MBConv blocks") && text.contains("features_stride8"), "{text}");

    let output = edgeway(&["vision", "classify", "--model", model, &sample("chelsea.png"), &sample("coffee.png")]);
    assert!(output.status.success(), "{}", output_text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}");
    assert_eq!(top_classes(&stdout), [("chelsea.png".to_owned(), 285), ("coffee.png".to_owned(), 967)], "{stdout}");
    assert_eq!(stdout.lines().next().unwrap().matches('%').count(), 5, "top-5 by default: {stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_checkpoint_is_a_clear_error_and_writes_nothing() {
    let dir = temp_dir("vision", "truncated");
    let bytes = std::fs::read(cached_checkpoint()).unwrap();
    let truncated = dir.join("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = dir.join("out.onnx");
    let output =
        edgeway(&["vision", "convert", "--checkpoint", truncated.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!output.status.success());
    let text = output_text(&output);
    assert!(text.contains("truncated.pth") && text.contains("the checkpoint is truncated"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(!out.exists() && std::fs::read_dir(&dir).unwrap().count() == 1, "nothing but the input is left");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_is_not_an_image_or_a_missing_runtime_is_a_clear_error() {
    let dir = temp_dir("vision", "not-an-image");
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "inspection notes, not a photo\n").unwrap();
    // The image is read before the model, so no model is needed to see this error.
    let output = edgeway(&["vision", "classify", "--model", "unused.onnx", notes.to_str().unwrap()]);
    assert!(!output.status.success());
    let text = output_text(&output);
    assert!(text.contains("notes.txt is not a PNG or JPEG image"), "{text}");

    let output = edgeway(&[
        "vision",
        "classify",
        "--model",
        "unused.onnx",
        "--ort-lib",
        "/nonexistent/libonnxruntime.so",
        &sample("coffee.png"),
    ]);
    assert!(!output.status.success());
    let text = output_text(&output);
    assert!(text.contains("/nonexistent/libonnxruntime.so") && text.contains("onnxruntime==1.31.1"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `CATEGORY/NAME: score S VERDICT` lines of `edgeway vision eval`.
fn eval_lines(stdout: &str) -> Vec<(String, f32, bool)> {
    stdout
        .lines()
        .filter_map(|line| {
            let (image, rest) = line.split_once(": score ")?;
            let (score, verdict) = rest.split_once(' ')?;
            let category = image.split('/').next()?.to_owned();
            Some((category, score.parse().ok()?, verdict == "anomalous"))
        })
        .collect()
}

#[test]
fn inspection_model_fitted_on_good_parts_flags_the_defective_ones() {
    let dir = temp_dir("vision", "inspection");
    let data = dir.join("plates");
    // A small set: 15 good parts (12 fitted, every 5th held out for the threshold), 3 good and 3 defective to test.
    // With so few held-out images the threshold gets a wider margin than the default.
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/vision-data.sh"))
        .arg(&data)
        .args(["--train", "15", "--test-good", "3", "--test-defective", "3", "--kinds", "burn,stain,crack"])
        .output()
        .expect("cannot run scripts/vision-data.sh");
    assert!(output.status.success(), "{}", output_text(&output));
    for kind in ["burn", "stain", "crack"] {
        assert!(data.join(format!("ground_truth/{kind}/000_mask.png")).is_file(), "{kind}: {}", output_text(&output));
    }

    let model = dir.join("lite0.onnx");
    let output = edgeway(&[
        "vision",
        "convert",
        "--checkpoint",
        cached_checkpoint().to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", output_text(&output));
    let model = model.to_str().unwrap();
    let detector = dir.join("plates.patchcore");
    let detector = detector.to_str().unwrap();
    let good = data.join("train/good");
    let output = edgeway(&[
        "vision",
        "fit",
        "--good",
        good.to_str().unwrap(),
        "--model",
        model,
        "--out",
        detector,
        "--margin",
        "0.3",
    ]);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("15 good images (12 fitted, 3 held out)") && text.contains("28×28 grid, 152 dims"), "{text}");

    let pictures = dir.join("pictures");
    let output = edgeway(&[
        "vision",
        "eval",
        data.to_str().unwrap(),
        "--model",
        model,
        "--detector",
        detector,
        "--pictures",
        pictures.to_str().unwrap(),
    ]);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    eprintln!("{text}");
    let lines = eval_lines(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(lines.len(), 6, "{text}");
    let best_good = lines.iter().filter(|(c, ..)| c == "good").map(|l| l.1).fold(f32::MIN, f32::max);
    for (category, score, anomalous) in &lines {
        if category == "good" {
            assert!(!anomalous, "a good part is flagged: {text}");
        } else {
            assert!(
                *score > best_good && *anomalous,
                "{category} scores {score}, the best good part {best_good}: {text}"
            );
        }
    }
    assert!(text.contains("image AUROC 1.0000"), "{text}");
    assert!(text.contains("3 of 3 defective flagged, 0 of 3 good flagged"), "{text}");
    let pixel_auroc: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("pixel AUROC "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no pixel AUROC: {text}"));
    assert!(pixel_auroc > 0.8, "{text}");
    // A PNG's IHDR holds the width and height at bytes 16..24.
    let png = std::fs::read(pictures.join("burn/000.png")).expect("the burn's heat-map picture");
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (448, 224), "the image and its heat map side by side");

    // Too few good images, another backbone, a file that is not a model: clear errors.
    let few = data.join("test/good");
    let output = edgeway(&["vision", "fit", "--good", few.to_str().unwrap(), "--model", model, "--out", detector]);
    let text = output_text(&output);
    assert!(!output.status.success() && text.contains("3 good images: at least 5 are needed"), "{text}");
    let other = dir.join("other.onnx");
    // The same network plus an unknown protobuf field (number 100, varint 1): another file, another hash.
    let mut bytes = std::fs::read(model).unwrap();
    bytes.extend_from_slice(&[0xA0, 0x06, 0x01]);
    std::fs::write(&other, bytes).unwrap();
    let output = edgeway(&[
        "vision",
        "eval",
        data.to_str().unwrap(),
        "--model",
        other.to_str().unwrap(),
        "--detector",
        detector,
        "--no-pictures",
    ]);
    let text = output_text(&output);
    assert!(!output.status.success() && text.contains("the model was fitted with backbone"), "{text}");
    let output = edgeway(&["vision", "eval", data.to_str().unwrap(), "--model", model, "--detector", model]);
    let text = output_text(&output);
    assert!(!output.status.success() && text.contains("is not an edgeway PatchCore model"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
