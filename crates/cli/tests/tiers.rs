//! Several local models and clouds on tiers, end to end: a real `edgeway serve`
//! with SmolLM2-135M and Qwen2.5-Coder-0.5B from the cache, and real second
//! `edgeway serve` processes on loopback playing the clouds.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{chat, Server};
use serde_json::{json, Value};

const CHAT: &str = "Hi! What is the capital of France?";
const CODE: &str = "Why does this Python function raise an exception? def f(x): return x[0]";

/// The second model of the suite, Qwen2.5-Coder-0.5B (`scripts/test.sh` pulls it).
fn coder_model() -> PathBuf {
    let path = common::test_model().with_file_name("qwen2.5-coder-0.5b-instruct.gguf");
    assert!(
        path.is_file(),
        "the code model is missing at {}; run `edgeway model pull qwen2.5-0.5b` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A config file for this test with `body` after two `[[models]]`: `smollm2` on tier 0 and
/// `coder` on tier 1 with `coder_extra` lines.
fn config(name: &str, coder_extra: &str, body: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("edgeway-tiers-{name}-{}.toml", std::process::id()));
    let text = format!(
        "[[models]]\nname = \"smollm2\"\nmodel = {small:?}\ntier = 0\n\n\
         [[models]]\nname = \"coder\"\nmodel = {coder:?}\ntier = 1\nctx_size = 2048\n{coder_extra}\n\n{body}",
        small = common::test_model().display().to_string(),
        coder = coder_model().display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn serve(config: &std::path::Path, extra: &[&str]) -> Server {
    let mut args =
        vec!["serve".to_owned(), "--config".to_owned(), config.display().to_string(), "--no-embeddings".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start_with(&args).expect("server did not become ready")
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// `/v1/models`' local chat models and whether each is loaded.
fn residency(server: &Server) -> Vec<(String, bool)> {
    let (status, models) = server.get("/v1/models");
    assert_eq!(status, 200, "{models}");
    models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["local"] == true && m["meta"]["kind"] != "embedding")
        .map(|m| (m["id"].as_str().unwrap().to_owned(), m["loaded"].as_bool().unwrap()))
        .collect()
}

fn loaded(server: &Server) -> Vec<String> {
    residency(server).into_iter().filter(|(_, loaded)| *loaded).map(|(id, _)| id).collect()
}

/// Polls until `check` holds or 20 s have passed; the last value checked.
fn eventually<T>(mut value: impl FnMut() -> T, check: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let current = value();
        if check(&current) || Instant::now() > deadline {
            return current;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_domain_picks_the_specialist_and_models_load_on_first_use() {
    let config = config("specialist", "domains = [\"code\"]", "");
    let server = serve(&config, &[]);
    assert_eq!(loaded(&server), Vec::<String>::new(), "nothing is pinned: nothing loads before a request");
    assert_eq!(residency(&server).len(), 2);

    let request = |text: &str| chat(text, json!({"max_tokens": 8, "temperature": 0}));
    let (status, headers, body) = server.post_with_headers("/v1/chat/completions", &request(CODE), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "coder", "a code question goes to the code model");
    assert_eq!(header(&headers, "x-edgeway-tier"), "1");
    assert_eq!(loaded(&server), ["coder"]);
    let (_, models) = server.get("/v1/models");
    let coder = models["data"].as_array().unwrap().iter().find(|m| m["id"] == "coder").unwrap().clone();
    assert_eq!((coder["tier"].as_u64(), coder["domains"][0].as_str()), (Some(1), Some("code")), "{coder}");
    assert!(coder["memory_bytes"].as_u64().unwrap() > 400_000_000, "{coder}");

    let (status, _, body) = server.post_with_headers("/v1/chat/completions", &request(CHAT), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "smollm2", "a chat question goes to the chat model");
    assert_eq!(loaded(&server), ["smollm2", "coder"]);

    // Ollama's view of the same: both loaded, with their sizes.
    let (status, ps) = server.get("/api/ps");
    assert_eq!(status, 200, "{ps}");
    let sizes: Vec<u64> = ps["models"].as_array().unwrap().iter().map(|m| m["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes.len(), 2, "{ps}");
    assert!(sizes.iter().all(|&size| size > 50_000_000), "{ps}");

    let rows = common::logged_rows(&server, "SELECT model, tier FROM queries ORDER BY id", 2, |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Option<i64>>(1)?))
    });
    assert_eq!(rows, [("coder".to_owned(), Some(1)), ("smollm2".to_owned(), Some(0))]);
}

#[test]
fn a_budget_for_one_model_swaps_them_and_no_request_fails() {
    let config = config("budget", "", "");
    let server = serve(&config, &["--max-loaded-models", "1"]);
    // Both models asked for at once, several times: each request waits for its turn and its model.
    let mut memory = std::collections::HashMap::new();
    for model in ["smollm2", "coder"] {
        let (status, body) = server.post("/v1/chat/completions", &chat(CHAT, json!({"model": model, "max_tokens": 4})));
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(loaded(&server), [model], "{:?}", residency(&server));
        let (_, models) = server.get("/v1/models");
        let entry = models["data"].as_array().unwrap().iter().find(|m| m["id"] == model).unwrap().clone();
        memory.insert(model, entry["memory_bytes"].as_u64().unwrap());
    }
    let handles: Vec<_> = ["smollm2", "coder", "smollm2", "coder", "smollm2"]
        .into_iter()
        .enumerate()
        .map(|(i, model)| {
            let url = server.url("/v1/chat/completions");
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200 * i as u64));
                let body = chat(CHAT, json!({"model": model, "max_tokens": 4, "temperature": 0}));
                let response = common::client().post(url).json(&body).send().expect("request failed");
                let status = response.status().as_u16();
                (model, status, response.json::<Value>().unwrap_or(Value::Null))
            })
        })
        .collect();
    for handle in handles {
        let (model, status, body) = handle.join().unwrap();
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["model"], model);
    }
    assert_eq!(loaded(&server).len(), 1, "{:?}", residency(&server));

    // The memory budget does the same: room for the larger model, not for both.
    let (small, large) = (memory["smollm2"], memory["coder"]);
    let budget_mb = (large + small / 2) / 1_000_000 + 1;
    drop(server);
    let server = serve(&config, &["--memory-budget-mb", &budget_mb.to_string()]);
    for model in ["coder", "smollm2", "coder"] {
        let (status, body) = server.post("/v1/chat/completions", &chat(CHAT, json!({"model": model, "max_tokens": 4})));
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(loaded(&server), [model], "budget {budget_mb} MB: {:?}", residency(&server));
    }
}

#[test]
fn keep_alive_zero_unloads_right_after_the_answer() {
    let config = config("keepalive", "", "");
    let server = serve(&config, &[]);
    let (status, body) =
        server.post("/v1/chat/completions", &chat(CHAT, json!({"model": "coder", "max_tokens": 4, "keep_alive": 0})));
    assert_eq!(status, 200, "{body}");
    let now = eventually(|| loaded(&server), |loaded| loaded.is_empty());
    assert!(now.is_empty(), "still loaded: {now:?}");

    // Ollama's idiom: an empty prompt loads, and with keep_alive 0 unloads.
    let (status, body) = server.post("/api/generate", &json!({"model": "smollm2", "prompt": ""}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(loaded(&server), ["smollm2"]);
    let (status, body) = server.post("/api/generate", &json!({"model": "smollm2", "prompt": "", "keep_alive": 0}));
    assert_eq!(status, 200, "{body}");
    let now = eventually(|| loaded(&server), |loaded| loaded.is_empty());
    assert!(now.is_empty(), "still loaded: {now:?}");
}

#[test]
fn a_cascade_climbs_from_the_small_model_to_the_larger_one_to_the_cloud() {
    let cloud = Server::start(&[]);
    // Every local answer is "unsure" (a mean log-probability is never above 0): the request climbs every tier.
    let body = format!(
        "[[cloud]]\nname = \"cloud\"\nbase_url = {:?}\nmodel = \"smollm2\"\n\n\
         [routing]\nescalate_below_logprob = 0.0\nescalate_probe_tokens = 4\n",
        cloud.url("/v1")
    );
    let config = config("cascade", "", &body);
    let server = serve(&config, &[]);
    let (status, headers, body) =
        server.post_with_headers("/v1/chat/completions", &chat(CHAT, json!({"max_tokens": 8})), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "cloud");
    assert_eq!(header(&headers, "x-edgeway-tier"), "2");
    assert_eq!(header(&headers, "x-edgeway-route-reason"), "low_edge_confidence");
    let rows = common::logged_rows(&server, "SELECT model, tier, reason, tried FROM queries", 1, |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?, row.get::<_, String>(3)?))
    });
    let (model, tier, reason, tried) = &rows[0];
    assert_eq!((model.as_str(), *tier, reason.as_str()), ("cloud", 2, "low_edge_confidence"));
    assert!(tried.starts_with("smollm2@0: low_confidence"), "{tried}");
    assert!(tried.contains("→ coder@1: low_confidence"), "{tried}");
}

#[test]
fn killing_cloud_a_makes_cloud_b_answer() {
    let cloud = |alias: &str| {
        let model = common::test_model().display().to_string();
        let args = ["serve", "--model", &model, "--alias", alias, "--no-embeddings"];
        Server::start_with(&args.map(String::from)).expect("cloud did not start")
    };
    let mut cloud_a = cloud("a");
    let cloud_b = cloud("b");
    let body = format!(
        "[[cloud]]\nname = \"a\"\nbase_url = {:?}\nmodel = \"a\"\ntimeout_secs = 5\n\n\
         [[cloud]]\nname = \"b\"\nbase_url = {:?}\nmodel = \"b\"\ntimeout_secs = 5\n\n\
         [routing]\ncooldown_secs = 600\n",
        cloud_a.url("/v1"),
        cloud_b.url("/v1")
    );
    let config = config("clouds", "", &body);
    let server = serve(&config, &[]);
    let to_cloud = [("x-edgeway-route", "cloud")];
    let request = chat(CHAT, json!({"max_tokens": 4}));
    let (status, _, body) = server.post_with_headers("/v1/chat/completions", &request, &to_cloud);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "a");

    cloud_a.kill();
    let (status, headers, body) = server.post_with_headers("/v1/chat/completions", &request, &to_cloud);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "b", "the second cloud answers for the first");
    assert_eq!(header(&headers, "x-edgeway-route-reason"), "fallback_cloud_failed");
    assert!(header(&headers, "x-edgeway-tried").starts_with("a@2: failed"), "{headers:?}");
    // While A cools down, the next request goes straight to B.
    let (status, _, body) = server.post_with_headers("/v1/chat/completions", &request, &to_cloud);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "b");
}

#[test]
fn eval_answers_on_each_tier_and_by_model_name() {
    let dir = common::temp_dir("tiers", "eval");
    let set = dir.join("set.jsonl");
    let items = [
        json!({"question": "What is 2 plus 2?", "reference": 4, "id": "add"}),
        json!({"question": "Which of these is a colour?", "choices": ["table", "blue"], "reference": "B", "id": "colour"}),
    ];
    std::fs::write(&set, items.map(|item| item.to_string()).join("\n") + "\n").unwrap();
    let config = config("eval", "", "");
    let log = dir.join("queries.db");
    let output = common::edgeway(&[
        "eval",
        "--config",
        config.to_str().unwrap(),
        "--set",
        set.to_str().unwrap(),
        "--route",
        "tier0,tier1,coder",
        "--threads",
        "1",
        "--log-path",
        log.to_str().unwrap(),
        "--run",
        "tiers",
    ]);
    assert!(output.status.success(), "{}", common::output_text(&output));
    let conn = rusqlite::Connection::open(&log).unwrap();
    let mut statement =
        conn.prepare("SELECT route, model, COUNT(*) FROM eval_results GROUP BY route, model ORDER BY route").unwrap();
    let rows: Vec<(String, String, i64)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected = [("coder", "coder", 2), ("tier0", "smollm2", 2), ("tier1", "coder", 2)]
        .map(|(route, model, n)| (route.to_owned(), model.to_owned(), n));
    assert_eq!(rows, expected);
}
