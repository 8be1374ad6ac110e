//! Scoring is on every request's path: it must cost microseconds, not milliseconds.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use edgeway_core::{ChatMessage, Prompt, QueryEmbedding};
use edgeway_policy::embedding::{Classifier, EmbeddingFeatures, EmbeddingTraining};
use edgeway_policy::{
    ComplexityScorer, DomainRules, EmbeddingModel, EmbeddingScorer, EmbeddingSpec, TransparentScorer,
};

/// A unit vector of 384 numbers, different for each `seed` (the shape of all-MiniLM-L6-v2's).
fn vector(seed: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..384).map(|d| (((seed * 7919 + d * 104_729) % 1000) as f32 / 1000.0) - 0.5).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn scoring(c: &mut Criterion) {
    let short = Prompt::Text("What is the capital of France?".into());
    let long = Prompt::Text("Explain step by step why the algorithm is correct, then calculate its cost. ".repeat(40));
    let rules = DomainRules::defaults();
    c.bench_function("score_short", |b| b.iter(|| TransparentScorer.score(black_box(&short))));
    c.bench_function("score_long_3k_chars", |b| b.iter(|| TransparentScorer.score(black_box(&long))));
    c.bench_function("classify_domain_long", |b| b.iter(|| rules.classify(black_box(&long)).len()));

    // The embedding scorer over 1000 logged queries, with the query's embedding already computed.
    let examples: Vec<(EmbeddingFeatures, bool)> =
        (0..1000).map(|i| (EmbeddingFeatures::new(&vector(i), "a logged question"), i % 3 == 0)).collect();
    let spec = EmbeddingSpec { model: "all-minilm-l6-v2".into(), dims: 384 };
    let chat = Prompt::Chat(vec![ChatMessage::new("user", "Why does the press on line three stall every winter?")]);
    let query = QueryEmbedding::new("all-minilm-l6-v2", vector(5000));
    for (name, classifier) in [
        ("embedding_logistic", Classifier::fit_logistic(&examples[..200], 0.01)),
        ("embedding_10_nearest_of_1000", Classifier::fit_neighbours(&examples, 10)),
    ] {
        let scorer = EmbeddingScorer::new(EmbeddingModel::new(spec.clone(), classifier, EmbeddingTraining::default()));
        c.bench_function(name, |b| b.iter(|| scorer.score_with(black_box(&chat), Some(&query))));
    }
}

criterion_group!(benches, scoring);
criterion_main!(benches);
