//! Scoring is on every request's path: it must cost microseconds, not milliseconds.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use edgeway_core::Prompt;
use edgeway_policy::{ComplexityScorer, DomainRules, TransparentScorer};

fn scoring(c: &mut Criterion) {
    let short = Prompt::Text("What is the capital of France?".into());
    let long = Prompt::Text("Explain step by step why the algorithm is correct, then calculate its cost. ".repeat(40));
    let rules = DomainRules::defaults();
    c.bench_function("score_short", |b| b.iter(|| TransparentScorer.score(black_box(&short))));
    c.bench_function("score_long_3k_chars", |b| b.iter(|| TransparentScorer.score(black_box(&long))));
    c.bench_function("classify_domain_long", |b| b.iter(|| rules.classify(black_box(&long)).len()));
}

criterion_group!(benches, scoring);
criterion_main!(benches);
