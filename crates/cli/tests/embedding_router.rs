//! The embedding router end to end, on the real all-MiniLM-L6-v2: a scorer trained on its
//! vectors of a few labelled questions is written, loaded by `edgeway serve`, and routes a new
//! question that means what the hard ones mean (in other words) to the cloud and a small-talk
//! one to the edge. Without the embedding model it routes on the transparent score and says
//! so; with a scorer from another embedding model it refuses to start.

mod common;

use std::path::{Path, PathBuf};

use common::{chat, temp_dir, Server};
use edgeway_core::EmbeddingBackend;
use edgeway_policy::embedding::{Classifier, EmbeddingFeatures, EmbeddingTraining};
use edgeway_policy::{EmbeddingModel, EmbeddingSpec};
use serde_json::json;

/// Questions the edge gets wrong: proofs and derivations.
const HARD: &[&str] = &[
    "Prove that there are infinitely many prime numbers.",
    "Derive the closed form of the sum of the first n squares.",
    "Show that every bounded monotone sequence of reals converges.",
    "Prove that the eigenvalues of a symmetric matrix are real.",
    "Demonstrate rigorously that the harmonic series diverges.",
    "Establish that a continuous function on a closed interval attains a maximum.",
];
/// Questions the edge gets right: greetings and small talk.
const EASY: &[&str] = &[
    "Hello! How are you doing today?",
    "Good morning, nice to meet you.",
    "Thanks a lot, have a great weekend!",
    "Hi there, what's up?",
    "Good night, see you tomorrow.",
    "Hey, hope you are having a lovely day.",
];

/// The embedding model `serve` uses by default, from the cache.
fn embedder() -> edgeway_engine::Embedder {
    let data_dir = std::env::var_os("EDGEWAY_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(edgeway_models::ModelCache::default_data_dir);
    let model = edgeway_models::find_embedding(edgeway_models::DEFAULT_EMBEDDING_MODEL).expect("in the catalog");
    let path = edgeway_models::embedding::cached_embedding(&edgeway_models::ModelCache::new(data_dir), model)
        .expect("the embedding model is in the cache (`edgeway model pull all-minilm-l6-v2`)");
    edgeway_engine::Embedder::load(&path, model.name, 2, model.max_tokens).expect("the embedding model loads")
}

/// Trains a scorer on the labelled questions' real embeddings and writes it; returns its spec.
fn write_scorer(path: &Path) -> EmbeddingSpec {
    let embedder = embedder();
    let texts: Vec<String> = HARD.iter().chain(EASY).map(|t| (*t).to_owned()).collect();
    let vectors = embedder.embed(&texts).unwrap().vectors;
    let examples: Vec<(EmbeddingFeatures, bool)> = texts
        .iter()
        .zip(&vectors)
        .enumerate()
        .map(|(i, (text, vector))| (EmbeddingFeatures::new(vector, &text.to_lowercase()), i < HARD.len()))
        .collect();
    let info = embedder.embedding_info();
    let spec = EmbeddingSpec { model: info.id.clone(), dims: info.dims };
    let training = EmbeddingTraining { run: "toy".into(), items: examples.len(), positive_share: 0.5, cv_apgr: 1.0 };
    let model = EmbeddingModel::new(spec.clone(), Classifier::fit_neighbours(&examples, 3), training);
    model.save(path).unwrap();
    assert_eq!(EmbeddingModel::load(path).unwrap(), model, "the file round-trips");
    spec
}

#[test]
fn serve_routes_by_meaning_with_an_embedding_scorer_and_falls_back_without_the_model() {
    let dir = temp_dir("embedding-router", "flow");
    let scorer = dir.join("embedding-scorer.json");
    let spec = write_scorer(&scorer);
    assert_eq!((spec.model.as_str(), spec.dims), ("all-minilm-l6-v2", 384));
    let cloud = Server::start(&[]);
    let cloud_url = cloud.url("/v1");
    let scorer_arg = scorer.display().to_string();
    let routed = [
        "--scorer",
        "embedding",
        "--scorer-path",
        &scorer_arg,
        "--cloud-url",
        &cloud_url,
        "--cloud-model",
        "smollm2",
        "--route-threshold",
        "0.5",
    ];

    let server = Server::start(&routed);
    assert!(server.stderr().contains("embedding scorer loaded"), "{}", server.stderr());
    let ask = |server: &Server, question: &str| {
        let (status, headers, body) =
            server.post_with_headers("/v1/chat/completions", &chat(question, json!({"max_tokens": 4})), &[]);
        assert_eq!(status, 200, "{body}");
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        (header("x-edgeway-route"), header("x-edgeway-score"), header("x-edgeway-score-fallback"))
    };
    // New wording, same meanings as the labelled questions.
    let (route, score, fallback) = ask(&server, "Show that the square root of two is irrational.");
    assert_eq!((route.as_deref(), fallback), (Some("cloud"), None), "score {score:?}");
    let (route, score, fallback) = ask(&server, "Hey, good to see you again!");
    assert_eq!((route.as_deref(), fallback), (Some("edge"), None), "score {score:?}");
    drop(server);

    // No embedding model: the transparent score routes, and every response says so.
    let mut without: Vec<&str> = routed.to_vec();
    without.push("--no-embeddings");
    let server = Server::start(&without);
    assert!(server.stderr().contains("every request is routed on the transparent score"), "{}", server.stderr());
    let (_, _, fallback) = ask(&server, "Show that the square root of two is irrational.");
    assert_eq!(fallback.as_deref(), Some("no_embedding"));
    drop(server);

    // A scorer trained on another embedding model's vectors is refused at start, saying why.
    let mut foreign = EmbeddingModel::load(&scorer).unwrap();
    foreign.embedding = EmbeddingSpec { model: "bge-small-en".into(), ..foreign.embedding };
    foreign.save(&scorer).unwrap();
    let mut args: Vec<String> = vec!["serve".into(), "--model".into(), common::test_model().display().to_string()];
    args.extend(routed.iter().map(|s| (*s).to_owned()));
    let error = Server::start_with(&args).err().expect("serve must refuse a scorer from another embedding model");
    assert!(error.contains("bge-small-en (384 dims)") && error.contains("all-minilm-l6-v2 (384 dims)"), "{error}");
    let _ = std::fs::remove_dir_all(dir);
}
