use std::time::Instant;
#[test]
fn timing() {
    let path = std::path::Path::new("/root/.cache/edgeway/models/all-minilm-l6-v2-f16.gguf");
    for threads in [1u32, 2] {
        let e = edgeway_engine::Embedder::load(path, "m", threads, 256).unwrap();
        for words in [3usize, 12, 48, 200] {
            let text: String = (0..words).map(|i| format!("word{} ", i % 7)).collect::<String>();
            let text = "the quick brown fox ".repeat(words / 4 + 1);
            let n = e.token_ids(&text).len();
            let inputs = [text];
            for _ in 0..5 { e.embed(&inputs).unwrap(); }
            let mut t: Vec<f64> = (0..40).map(|_| { let s = Instant::now(); e.embed(&inputs).unwrap(); s.elapsed().as_secs_f64()*1e3 }).collect();
            t.sort_by(f64::total_cmp);
            eprintln!("threads {threads} tokens {n}: p50 {:.2} ms min {:.2} ms", t[20], t[0]);
        }
    }
}
