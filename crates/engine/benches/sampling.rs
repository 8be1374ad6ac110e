//! Per-token sampling cost over real vocabulary sizes (SmolLM2 49,152; Gemma 3 262,144).
//! This is work llama-bench does not do, so it must stay small next to a decode step (~5 ms).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use edgeway_core::SamplingParams;
use edgeway_engine::sampling::{argmax, Sampler};

fn logits(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 10007) as f32 / 1000.0 - 5.0).collect()
}

fn sampling(c: &mut Criterion) {
    let mut group = c.benchmark_group("sample");
    for n_vocab in [49_152usize, 262_144] {
        let values = logits(n_vocab);
        group.bench_with_input(BenchmarkId::new("greedy_argmax", n_vocab), &values, |b, v| {
            b.iter(|| argmax(black_box(v)))
        });
        let params = SamplingParams { temperature: 0.8, top_p: 0.95, seed: Some(1), ..SamplingParams::default() };
        let mut sampler = Sampler::new(&params, Vec::new());
        group.bench_with_input(BenchmarkId::new("top_k_top_p", n_vocab), &values, |b, v| {
            b.iter(|| sampler.sample(black_box(v)))
        });
    }
    group.finish();
}

criterion_group!(benches, sampling);
criterion_main!(benches);
