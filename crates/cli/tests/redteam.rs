//! `edgeway redteam` against the real test model (served by a child process)
//! and against a running `edgeway serve` with its injection screen set to
//! block: the same attacks, and the defended endpoint's refusals count as
//! failed attacks.

mod common;

use common::{edgeway, output_text, temp_dir, test_model, Server};
use serde_json::Value;

#[test]
fn redteam_reports_attack_success_per_family_for_a_model_and_a_defended_endpoint() {
    let dir = temp_dir("redteam", "families");
    let model = test_model();
    let json = dir.join("model.json");
    let args = ["--families", "injection,encoded,robustness", "--per-family", "3", "--max-tokens", "24"];
    let mut run = vec!["redteam", "--target", model.to_str().unwrap(), "--json", json.to_str().unwrap()];
    run.extend_from_slice(&args);
    let output = edgeway(&run);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("injection") && text.contains("robustness") && text.contains('['), "{text}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let target = &report["targets"][0];
    for family in ["injection", "encoded", "robustness"] {
        let figures = &target["families"][family];
        assert_eq!(figures["attempts"], 3, "{family}: {figures}");
        let (asr, low, high) = (
            figures["asr"].as_f64().unwrap(),
            figures["ci95"][0].as_f64().unwrap(),
            figures["ci95"][1].as_f64().unwrap(),
        );
        assert!(low <= asr && asr <= high, "{family}: {figures}");
    }
    assert_eq!(target["attempts"].as_array().unwrap().len(), 9);

    // The same injection attacks through edgeway with the screen blocking: refused, so none succeed.
    let server = Server::start(&["--injection-action", "block", "--no-embeddings", "--api-key", "ew-redteam-key"]);
    let json = dir.join("defended.json");
    let url = server.url("/v1");
    let redteam = |key: &str| {
        edgeway(&[
            "redteam",
            "--target",
            &url,
            "--api-key",
            key,
            "--families",
            "injection",
            "--per-family",
            "3",
            "--json",
            json.to_str().unwrap(),
        ])
    };
    // A wrong key is an error, not "every attack refused".
    let output = redteam("ew-wrong-key");
    let text = output_text(&output);
    assert!(!output.status.success() && text.contains("--api-key"), "{text}");
    let output = redteam("ew-redteam-key");
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let figures = &report["targets"][0]["families"]["injection"];
    assert_eq!(figures["successes"], 0, "{figures}");
    let attempts = report["targets"][0]["attempts"].as_array().unwrap();
    assert!(attempts.iter().all(|a| a["refused_status"] == 400), "{attempts:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_family_is_named_with_the_known_ones() {
    let output = edgeway(&["redteam", "--target", "http://127.0.0.1:9/v1", "--families", "nonsense"]);
    assert!(!output.status.success());
    let text = output_text(&output);
    assert!(text.contains("nonsense") && text.contains("jailbreak, dan, encoded, injection, robustness"), "{text}");
}
