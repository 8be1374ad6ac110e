use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let mut backend = LlamaBackend::init().unwrap();
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, &path, &LlamaModelParams::default()).unwrap();
    for (n_ctx, n_seq, sample) in [
        (256, 1, false),
        (256, 1, true),
        (4096, 2, false),
        (4096, 2, true),
        (256, 1, false),
        (4096, 1, false),
        (512, 2, false),
    ] {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(512)
            .with_n_ubatch(512)
            .with_n_seq_max(n_seq)
            .with_n_threads(2)
            .with_n_threads_batch(2)
            .with_kv_unified(false);
        let mut ctx = model.new_context(&backend, params).unwrap();
        let mut batch = LlamaBatch::new(512, 1);
        let mut sampler = LlamaSampler::greedy();
        let mut rates = vec![];
        for _rep in 0..3 {
            ctx.clear_kv_cache();
            let mut token = LlamaToken(1);
            let start = Instant::now();
            for pos in 0..128 {
                batch.clear();
                batch.add(token, pos, &[0], true).unwrap();
                ctx.decode(&mut batch).unwrap();
                if sample {
                    token = sampler.sample(&ctx, 0);
                } else {
                    token = LlamaToken(1 + (pos % 100));
                }
            }
            rates.push(128.0 / start.elapsed().as_secs_f64());
        }
        println!(
            "n_ctx {n_ctx} n_seq {n_seq} sample {sample}: {:?}",
            rates.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>()
        );
    }
}
