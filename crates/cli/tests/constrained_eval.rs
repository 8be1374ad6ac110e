//! Constrained answers at the edge always parse: `edgeway eval` on the real SmolLM2-135M asks
//! closed questions (a letter, yes/no, a number) with a JSON schema, and every answer the
//! smallest model gives is one the grader reads, where free answers often are not.

mod common;

use serde_json::{json, Value};

/// Closed questions of every kind the constraint covers, with two to six options.
fn items() -> Vec<Value> {
    vec![
        json!({"question": "Which of these is a colour?", "choices": ["table", "blue"], "reference": "B", "id": "mc2"}),
        json!({"question": "Which animal barks?", "choices": ["cat", "dog", "fish"], "reference": "B", "id": "mc3"}),
        json!({"question": "What is 3 + 4?", "choices": ["5", "6", "7", "8"], "reference": "C", "id": "mc4"}),
        json!({"question": "Which planet is closest to the Sun?",
               "choices": ["Venus", "Earth", "Mercury", "Mars", "Jupiter"], "reference": "C", "id": "mc5"}),
        json!({"question": "Which word is a verb?",
               "choices": ["quickly", "blue", "run", "under", "happy", "table"], "reference": "C", "id": "mc6"}),
        json!({"question": "Is water wet", "reference": true, "id": "yn1"}),
        json!({"question": "Is the Moon larger than the Earth", "reference": false, "id": "yn2"}),
        json!({"question": "Can a fish fly a plane", "reference": false, "id": "yn3"}),
        json!({"question": "What is 2 plus 2?", "reference": 4, "id": "num1"}),
    ]
}

#[test]
fn every_constrained_edge_answer_parses() {
    let dir = common::temp_dir("constrained", "eval");
    let set = dir.join("closed.jsonl");
    std::fs::write(&set, items().iter().map(Value::to_string).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    let log = dir.join("queries.db");
    let model = common::test_model().display().to_string();
    let output = common::edgeway(&[
        "eval",
        "--model",
        &model,
        "--set",
        set.to_str().unwrap(),
        "--route",
        "edge",
        "--threads",
        "1",
        "--answer-format",
        "constrained",
        "--log-path",
        log.to_str().unwrap(),
        "--run",
        "constrained",
    ]);
    assert!(output.status.success(), "{}", common::output_text(&output));

    let conn = rusqlite::Connection::open(&log).unwrap();
    let mut statement =
        conn.prepare("SELECT item_id, answer, extracted FROM eval_results WHERE run = 'constrained'").unwrap();
    let rows: Vec<(String, String, Option<String>)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), items().len());
    for (id, answer, extracted) in &rows {
        // The raw answer is JSON of the schema's shape, and the grader read an answer out of it.
        let parsed: Value = serde_json::from_str(answer).unwrap_or_else(|e| panic!("{id}: {answer:?}: {e}"));
        match &id[..2] {
            "mc" => {
                let letter = parsed.as_str().unwrap_or_else(|| panic!("{id}: {answer}"));
                assert!(letter.len() == 1 && letter.as_bytes()[0].is_ascii_uppercase(), "{id}: {answer}");
            }
            "yn" => assert!(["yes", "no"].contains(&parsed.as_str().unwrap_or_default()), "{id}: {answer}"),
            _ => assert!(parsed["answer"].is_number(), "{id}: {answer}"),
        }
        assert!(extracted.is_some(), "{id}: the grader found no answer in {answer:?}");
    }
}
