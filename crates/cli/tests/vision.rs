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

/// A small synthetic plate set, the converted backbone and a model fitted on it: built once for
/// the tests that need them (the first to ask builds, the others wait).
struct Plates {
    dir: PathBuf,
    data: PathBuf,
    backbone: String,
    detector: String,
}

fn plates() -> &'static Plates {
    static PLATES: std::sync::OnceLock<Plates> = std::sync::OnceLock::new();
    PLATES.get_or_init(|| {
        let dir = temp_dir("vision", "plates");
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
            assert!(
                data.join(format!("ground_truth/{kind}/000_mask.png")).is_file(),
                "{kind}: {}",
                output_text(&output)
            );
        }
        let backbone = dir.join("lite0.onnx").display().to_string();
        let output =
            edgeway(&["vision", "convert", "--checkpoint", cached_checkpoint().to_str().unwrap(), "--out", &backbone]);
        assert!(output.status.success(), "{}", output_text(&output));
        let detector = dir.join("plates.patchcore").display().to_string();
        let good = data.join("train/good");
        let output = edgeway(&[
            "vision",
            "fit",
            "--good",
            good.to_str().unwrap(),
            "--model",
            &backbone,
            "--out",
            &detector,
            "--margin",
            "0.3",
        ]);
        let text = output_text(&output);
        assert!(output.status.success(), "{text}");
        assert!(
            text.contains("15 good images (12 fitted, 3 held out)") && text.contains("28×28 grid, 152 dims"),
            "{text}"
        );
        Plates { dir, data, backbone, detector }
    })
}

#[test]
fn inspection_model_fitted_on_good_parts_flags_the_defective_ones() {
    let Plates { dir, data, backbone: model, detector } = plates();
    let (model, detector) = (model.as_str(), detector.as_str());
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
}

/// The test images of the plate set: (category, path), good ones first.
fn test_images(data: &Path) -> Vec<(String, PathBuf)> {
    let mut images = Vec::new();
    for category in ["good", "burn", "stain", "crack"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(data.join("test").join(category))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .collect();
        paths.sort();
        images.extend(paths.into_iter().map(|p| (category.to_owned(), p)));
    }
    images
}

/// A PNG signature, an IHDR chunk that announces a `width × height` RGB image and an empty IDAT,
/// with correct CRCs: what a decompression bomb looks like before its data.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let crc32 = |bytes: &[u8]| {
        let mut crc = 0xffff_ffffu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    };
    let mut chunk = b"IHDR".to_vec();
    chunk.extend(width.to_be_bytes());
    chunk.extend(height.to_be_bytes());
    chunk.extend([8, 2, 0, 0, 0]);
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend(13u32.to_be_bytes());
    bytes.extend(&chunk);
    bytes.extend(crc32(&chunk).to_be_bytes());
    bytes.extend(0u32.to_be_bytes());
    bytes.extend(b"IDAT");
    bytes.extend(crc32(b"IDAT").to_be_bytes());
    bytes
}

#[test]
fn served_inspection_answers_plain_http_and_tritonclient() {
    use base64::Engine as _;
    use common::{client, Server};
    use serde_json::Value;

    let plates = plates();
    let args: Vec<String> = [
        "serve",
        "--model",
        common::test_model().to_str().unwrap(),
        "--no-embeddings",
        "--inspect",
        &format!("plates={}", plates.detector),
        "--inspect-backbone",
        &plates.backbone,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = Server::start_with(&args).expect("the server did not start");
    let http = client();
    let post_image = |query: &str, content_type: &str, body: Vec<u8>| -> (u16, Value) {
        let response = http
            .post(server.url(&format!("/v1/inspect{query}")))
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap();
        (response.status().as_u16(), response.json().unwrap_or(Value::Null))
    };

    // Every test image as a raw body: the right label, and the model's facts.
    let images = test_images(&plates.data);
    assert_eq!(images.len(), 6);
    let mut scores = Vec::new();
    for (category, path) in &images {
        let (status, body) = post_image("", "image/png", std::fs::read(path).unwrap());
        assert_eq!(status, 200, "{body}");
        let expected = if category == "good" { "good" } else { "defective" };
        assert_eq!(body["label"], expected, "{category} {}: {body}", path.display());
        assert_eq!(body["model"], "plates");
        assert_eq!(body["precision"], "fp32");
        assert!(body["latency_ms"].as_f64().unwrap() > 0.0 && body["threshold"].as_f64().unwrap() > 0.0, "{body}");
        scores.push(body["score"].as_f64().unwrap());
    }

    // A multipart form with the heat map; base64 JSON; the same image gives the same score.
    let (burn, burn_path) = images.iter().find(|(c, _)| c == "burn").unwrap();
    let burn_index = images.iter().position(|(c, _)| c == burn).unwrap();
    let mut form = b"--XYZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.png\"\r\nContent-Type: image/png\r\n\r\n".to_vec();
    form.extend(std::fs::read(burn_path).unwrap());
    form.extend(b"\r\n--XYZ\r\nContent-Disposition: form-data; name=\"heatmap\"\r\n\r\ntrue\r\n--XYZ--\r\n");
    let (status, body) = post_image("", "multipart/form-data; boundary=XYZ", form);
    assert_eq!(status, 200, "{body}");
    assert!((body["score"].as_f64().unwrap() - scores[burn_index]).abs() < 1e-3, "{body}");
    let png = base64::engine::general_purpose::STANDARD.decode(body["heatmap_png"].as_str().unwrap()).unwrap();
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (448, 224), "the image and its heat map side by side");
    let encoded = base64::engine::general_purpose::STANDARD.encode(std::fs::read(burn_path).unwrap());
    let json = serde_json::json!({ "image": encoded, "model": "plates" }).to_string().into_bytes();
    let (status, body) = post_image("", "application/json", json);
    assert_eq!((status, body["label"].as_str()), (200, Some("defective")), "{body}");

    // Bad images: clear 400s, and the server keeps serving.
    let good = std::fs::read(&images[0].1).unwrap();
    let bad: [(&str, Vec<u8>, &str); 5] = [
        ("text", b"inspection notes, not a photo".to_vec(), "not a PNG or JPEG"),
        ("truncated", good[..good.len() / 2].to_vec(), "cannot be decoded"),
        ("bomb", png_header(10_000, 10_000), "100.0 megapixels"),
        ("tiny", png_header(8, 8), "at least 16 pixels"),
        ("empty", Vec::new(), "empty"),
    ];
    for (what, bytes, expected) in bad {
        let (status, body) = post_image("", "image/png", bytes);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{what}: {body}");
        assert!(message.contains(expected), "{what}: {body}");
    }
    let (status, body) = post_image("?model=nope", "image/png", good.clone());
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("plates"), "{body}");
    let (status, _) = post_image("", "image/png", good.clone());
    assert_eq!(status, 200, "still serving after the bad images");

    // KServe v2 with Triton's own client: metadata, one batched request with binary tensors, JSON
    // outputs, and a bad image's error.
    let mut script_args = vec![format!("127.0.0.1:{}", server.port), "plates".to_owned()];
    let notes = plates.dir.join("notes.txt");
    std::fs::write(&notes, "not an image").unwrap();
    script_args.push(notes.display().to_string());
    script_args.extend(images.iter().map(|(_, p)| p.display().to_string()));
    let script_args: Vec<&str> = script_args.iter().map(String::as_str).collect();
    let stdout = common::run_python_script(
        &server,
        "EDGEWAY_TEST_PYTHON",
        "kserve_client.py",
        &script_args,
        "tritonclient[http]",
    );
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    eprintln!("{result}");
    assert_eq!(result["server"], "edgeway");
    assert_eq!(result["outputs"], serde_json::json!(["pred_score", "pred_label", "anomaly_map"]));
    assert_eq!(result["map_shape"], serde_json::json!([6, 224, 224]));
    for ((category, _), (verdict, score)) in
        images.iter().zip(result["verdicts"].as_array().unwrap().iter().zip(&scores))
    {
        assert_eq!(verdict["defective"], category != "good", "{category}: {verdict}");
        assert!((verdict["score"].as_f64().unwrap() - score).abs() < 1e-3, "batched like alone: {verdict} vs {score}");
        assert!(verdict["map_max"].as_f64().unwrap() > 0.0, "{verdict}");
    }
    assert!((result["json_score"].as_f64().unwrap() - scores[0]).abs() < 1e-3, "{result}");
    assert!(result["bad_image"]["message"].as_str().unwrap_or_default().contains("not a PNG or JPEG"), "{result}");

    // KServe's error shape and paths.
    let response = http.get(server.url("/v2/models/nope")).send().unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().unwrap();
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");
    let (status, body) = server.get("/v2/models/plates/versions/1");
    assert_eq!((status, body["name"].as_str()), (200, Some("plates")), "{body}");

    // One query-log row per image, with its verdict and precision.
    let rows = common::logged_rows(
        &server,
        "SELECT endpoint, label, precision, score FROM queries WHERE endpoint IN ('inspect', 'kserve') AND status = 'ok'",
        6 + 3 + 6 + 1,
        |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?, row.get::<_, Option<String>>(2)?, row.get::<_, Option<f64>>(3)?)),
    );
    assert_eq!(rows.iter().filter(|r| r.0 == "kserve").count(), 7, "{rows:?}");
    assert!(rows.iter().all(|r| r.1.is_some() && r.2.as_deref() == Some("fp32") && r.3.is_some()), "{rows:?}");
    let refused = common::logged_rows(
        &server,
        "SELECT status FROM queries WHERE endpoint = 'inspect' AND status != 'ok'",
        5,
        |row| row.get::<_, String>(0),
    );
    assert!(refused.len() >= 5, "bad images are logged too: {refused:?}");
}

/// The plates' backbone quantized to INT8 (`edgeway vision quantize`) and what the command printed:
/// made once for the tests that need it.
fn int8() -> &'static (String, String) {
    static INT8: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    INT8.get_or_init(|| {
        let plates = plates();
        let int8 = plates.dir.join("lite0.int8.onnx").display().to_string();
        let good = plates.data.join("train/good");
        let output = edgeway(&[
            "vision",
            "quantize",
            "--images",
            good.to_str().unwrap(),
            "--limit",
            "12",
            "--model",
            &plates.backbone,
            "--out",
            &int8,
        ]);
        let text = output_text(&output);
        assert!(output.status.success(), "{text}");
        (int8, text)
    })
}

#[test]
fn int8_backbone_is_smaller_follows_fp32_and_serves_the_same_model() {
    let plates = plates();
    let (int8, text) = int8();
    let good = plates.data.join("train/good");
    eprintln!("{text}");
    let smaller: f64 = text
        .split_once("MiB (")
        .and_then(|(_, rest)| rest.split_once("× smaller"))
        .and_then(|(ratio, _)| ratio.parse().ok())
        .unwrap_or_else(|| panic!("no size ratio: {text}"));
    assert!(smaller > 3.0, "{text}");
    let cosine = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: cosine to FP32 mean ")))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no cosine for {name}: {text}"))
    };
    assert!(cosine("features_stride8") > 0.9 && cosine("features_stride16") > 0.9, "{text}");

    // The model fitted on the FP32 backbone's features runs on the INT8 one and gives the same verdicts.
    let output = edgeway(&[
        "vision",
        "eval",
        plates.data.to_str().unwrap(),
        "--model",
        int8,
        "--detector",
        &plates.detector,
        "--no-pictures",
    ]);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    eprintln!("{text}");
    assert!(text.contains("3 of 3 defective flagged, 0 of 3 good flagged"), "{text}");

    // Served on the INT8 backbone: the precision is read from the graph and the verdicts hold.
    let args: Vec<String> = [
        "serve",
        "--model",
        common::test_model().to_str().unwrap(),
        "--no-embeddings",
        "--inspect",
        &plates.detector,
        "--inspect-backbone",
        int8,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = common::Server::start_with(&args).expect("the server did not start");
    for (category, path) in test_images(&plates.data) {
        let response = common::client()
            .post(server.url("/v1/inspect"))
            .header("content-type", "image/png")
            .body(std::fs::read(&path).unwrap())
            .send()
            .unwrap();
        let body: serde_json::Value = response.json().unwrap();
        assert_eq!(body["precision"], "int8", "{body}");
        assert_eq!(body["model"], "plates", "named after the file: {body}");
        assert_eq!(body["label"], if category == "good" { "good" } else { "defective" }, "{category}: {body}");
    }
    drop(server);

    // A missing Python is a clear error that says what to install.
    let output = edgeway(&[
        "vision",
        "quantize",
        "--images",
        good.to_str().unwrap(),
        "--model",
        &plates.backbone,
        "--out",
        int8,
        "--python",
        "/nonexistent/python3",
    ]);
    let text = output_text(&output);
    assert!(!output.status.success() && text.contains("scripts/vision-tools.sh"), "{text}");
}

#[test]
fn red_team_attacks_fp32_and_int8_at_the_same_budget() {
    let plates = plates();
    let (int8, _) = int8();
    let json = plates.dir.join("redteam.json");
    // The red team on the plates with the FP32 backbone's detector; `extra` says how.
    let redteam = |extra: &[&str]| {
        let mut args = vec!["vision", "redteam", plates.data.to_str().unwrap(), "--detector", &plates.detector];
        args.extend(["--model", &plates.backbone, "--json", json.to_str().unwrap()]);
        args.extend_from_slice(extra);
        edgeway(&args)
    };
    let output = redteam(&["--int8", int8, "--epsilons", "2,32", "--queries", "12", "--defence", "jpeg:75"]);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    eprintln!("{text}");
    assert!(text.contains("| fp32 evaded |") && text.contains("| fp32 → int8 |"), "{text}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["defective"], 3);
    assert_eq!(report["attacked"], 3, "every defective plate is caught clean by both models");
    let epsilons = report["epsilons"].as_array().unwrap();
    assert_eq!(epsilons.len(), 2);
    for row in epsilons {
        for evasion in row["evasion"].as_array().unwrap() {
            assert_eq!(evasion["evaded"]["n"], 3, "{row}");
            assert!(evasion["mean_queries"].as_f64().unwrap() <= 12.0, "{row}");
        }
        assert_eq!(row["transfer"].as_array().unwrap().len(), 2, "{row}");
    }
    let defence = &report["defence"];
    assert_eq!((defence["defence"].as_str(), defence["epsilon"].as_u64()), (Some("jpeg:75"), Some(32)));
    assert_eq!(defence["models"].as_array().unwrap().len(), 2);
    let output = edgeway(&["vision", "redteam", plates.data.to_str().unwrap(), "--defence", "median:3"]);
    let text = output_text(&output);
    assert!(!output.status.success() && text.contains("jpeg:QUALITY"), "{text}");

    // The attacker who also holds good parts: at ε 128 the pull towards the nearest good plate
    // erases most of a defect; the report names the attacker.
    let output = redteam(&["--epsilons", "128", "--queries", "12", "--defence", "none", "--attacker", "guided"]);
    let text = output_text(&output);
    assert!(output.status.success() && text.contains("guided towards good parts"), "{text}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let evaded = &report["epsilons"][0]["evasion"][0]["evaded"];
    assert!(evaded["hits"].as_u64().unwrap() >= 1, "the guided attack evades at ε 128: {report}");
}

#[test]
fn compare_puts_fp32_and_int8_side_by_side() {
    let plates = plates();
    let (int8, _) = int8();
    let json = plates.dir.join("compare.json");
    let output = edgeway(&[
        "vision",
        "compare",
        plates.data.to_str().unwrap(),
        "--detector",
        &plates.detector,
        "--model",
        &plates.backbone,
        "--with",
        int8,
        "--json",
        json.to_str().unwrap(),
    ]);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("| lite0 | fp32 |") && text.contains("| int8 |"), "{text}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let backbones = report["backbones"].as_array().unwrap();
    assert_eq!(backbones.len(), 2);
    let (fp32, int8) = (&backbones[0], &backbones[1]);
    assert!(int8["bytes"].as_u64().unwrap() * 3 < fp32["bytes"].as_u64().unwrap(), "{report}");
    let speedup = &int8["speedup_over_first"]["backbone"];
    assert!(speedup["low"].as_f64().unwrap() <= speedup["median"].as_f64().unwrap(), "{report}");
    assert!(text.contains("lite0.int8 vs lite0, backbone:"), "{text}");
    for backbone in backbones {
        assert_eq!(backbone["image_auroc"], 1.0, "{backbone}");
        assert!(backbone["images_per_s"].as_f64().unwrap() > 0.0 && backbone["p99_ms"].as_f64().unwrap() > 0.0);
    }
    let missing = edgeway(&["vision", "compare", plates.data.to_str().unwrap(), "--with", "/nonexistent.onnx"]);
    assert!(!missing.status.success(), "{}", output_text(&missing));
}

/// A model with anomalib's export signature (`input` → `pred_score`, a boolean `pred_label`,
/// `anomaly_map`), built here because anomalib itself cannot be installed offline: the map is
/// the mean over the colour channels, the score the sigmoid of its maximum, so a bright part is
/// defective and a dark one good.
fn anomalib_shaped_model(path: &Path) {
    use edgeway_vision::onnx::{
        float_value, AttributeProto, Dim, GraphBuilder, TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
    };
    let mut graph = GraphBuilder::new();
    graph.node("ReduceMean", "map", &["input"], "anomaly_map", vec![AttributeProto::ints("axes", &[1])]);
    let keep = vec![AttributeProto::ints("axes", &[1, 2, 3]), AttributeProto::int("keepdims", 0)];
    graph.node("ReduceMax", "max", &["anomaly_map"], "max", keep);
    graph.node("Sigmoid", "score", &["max"], "pred_score", Vec::new());
    let half = graph.constant("half", &[], &[0.5]);
    graph.node("Greater", "label", &["pred_score", &half], "pred_label", Vec::new());
    let n = Dim::Named("N");
    let pred_label = ValueInfoProto {
        name: "pred_label".into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: 9, // BOOL
                shape: Some(TensorShapeProto { dim: Vec::new() }),
            }),
        }),
        doc_string: String::new(),
    };
    let bytes = graph.finish(
        "anomalib-shaped",
        "a stand-in for an anomalib export",
        vec![float_value("input", &[n.clone(), Dim::Fixed(3), Dim::Fixed(64), Dim::Fixed(64)], "")],
        vec![
            float_value("pred_score", std::slice::from_ref(&n), ""),
            pred_label,
            float_value("anomaly_map", &[n, Dim::Fixed(1), Dim::Fixed(64), Dim::Fixed(64)], ""),
        ],
    );
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn an_anomalib_export_is_served_as_it_is() {
    use common::{client, Server};
    use serde_json::Value;

    let dir = temp_dir("vision", "anomalib");
    let model = dir.join("toy.onnx");
    anomalib_shaped_model(&model);
    let args: Vec<String> = [
        "serve",
        "--model",
        common::test_model().to_str().unwrap(),
        "--no-embeddings",
        "--inspect",
        &format!("toy={}", model.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = Server::start_with(&args).expect("the server did not start");
    let inspect = |level: u8, query: &str| -> Value {
        let file = dir.join(format!("part-{level}.png"));
        edgeway_vision::RgbImage::from_pixel(80, 80, edgeway_vision::Rgb([level; 3])).save(&file).unwrap();
        let response = client()
            .post(server.url(&format!("/v1/inspect{query}")))
            .header("content-type", "image/png")
            .body(std::fs::read(&file).unwrap())
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().unwrap()
    };
    let dark = inspect(0, "");
    assert_eq!(
        (dark["model"].as_str(), dark["label"].as_str(), dark["threshold"].as_f64()),
        (Some("toy"), Some("good"), Some(0.5))
    );
    assert!(dark["score"].as_f64().unwrap() < 0.2, "{dark}");
    let bright = inspect(255, "?heatmap=true");
    assert_eq!(bright["label"], "defective", "{bright}");
    assert!(bright["score"].as_f64().unwrap() > 0.8, "{bright}");
    let (status, metadata) = server.get("/v2/models/toy");
    assert_eq!(status, 200, "{metadata}");
    let _ = std::fs::remove_dir_all(&dir);
}
