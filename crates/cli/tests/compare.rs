//! `edgeway compare` on the real test model and a quantization of it made by
//! `edgeway quantize`: every figure is there, the most precise variant is
//! the baseline, and the outputs (JSON, Markdown, SVG) are written.

mod common;

use common::{edgeway, output_text, temp_dir, test_model};
use serde_json::Value;

#[test]
fn compare_measures_each_variant_against_the_most_precise() {
    let dir = temp_dir("compare", "generative");
    let model = test_model();
    let q4_0 = dir.join("smollm2-q4_0.gguf");
    let output = edgeway(&["quantize", model.to_str().unwrap(), q4_0.to_str().unwrap(), "--type", "q4_0"]);
    assert!(output.status.success(), "{}", output_text(&output));
    let (json, markdown, plot) = (dir.join("r.json"), dir.join("r.md"), dir.join("r.svg"));
    let output = edgeway(&[
        "compare",
        q4_0.to_str().unwrap(),
        model.to_str().unwrap(),
        "--sets",
        "arc-easy",
        "--limit",
        "3",
        "--ppl-tokens",
        "512",
        "--ppl-window",
        "128",
        "--repetitions",
        "1",
        "--gen-tokens",
        "8",
        "--json",
        json.to_str().unwrap(),
        "--markdown",
        markdown.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("(base)") && text.contains("Q4_0") && text.contains("Q4_1"), "{text}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["kind"], "generative");
    let model_name = model.file_name().unwrap().to_str().unwrap();
    assert_eq!(report["baseline"], model_name, "Q4_1 has more bits per weight than Q4_0");
    let variants = report["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    for variant in variants {
        for field in ["file_bytes", "load_s", "peak_rss_bytes", "prompt_tokens_per_s", "gen_tokens_per_s", "perplexity"]
        {
            assert!(variant[field].as_f64().is_some_and(|v| v > 0.0), "{field} in {variant}");
        }
        assert!(variant["gen_joules_per_token"].as_f64().is_some_and(|j| j > 0.0), "{variant}");
        assert!(["rapl", "cpu-time-model"].contains(&variant["energy_source"].as_str().unwrap()));
        assert_eq!(variant["items"], 3);
    }
    let (q4_0, q4_1) = (&variants[0], &variants[1]);
    assert!(q4_0["file_bytes"].as_u64() < q4_1["file_bytes"].as_u64());
    assert_eq!(q4_1["agreement_with_baseline"], 1.0);
    assert!(std::fs::read_to_string(&markdown).unwrap().starts_with("| variant |"));
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_refuses_a_file_that_is_not_a_model_and_a_mix_of_kinds() {
    let dir = temp_dir("compare", "refusals");
    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, b"not a model at all").unwrap();
    let output = edgeway(&["compare", common::test_model().to_str().unwrap(), junk.to_str().unwrap()]);
    assert!(!output.status.success());
    let text = output_text(&output);
    assert!(text.contains("junk.gguf") && text.contains("GGUF"), "{text}");
    let output = edgeway(&["compare", common::test_model().to_str().unwrap(), "all-minilm-l6-v2", "--no-pull"]);
    assert!(!output.status.success());
    let text = output_text(&output);
    assert!(text.contains("mix embedding and generative"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
