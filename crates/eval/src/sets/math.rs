//! MATH (competition mathematics, as Minerva asks it) by subject, and MATH-500.
//!
//! The gold answer is the last `\boxed{}` of the reference solution. The
//! documents' own `answer` field is a normalised copy with damage
//! (`\left(` became `\le(`, the list `4,6,14,15` became `461415`), so it is not used.

use std::path::Path;

use super::{read_docs, text, RequestDoc};
use crate::dataset::{format_error, DatasetError, EvalItem, Reference};

/// The seven subjects of MATH's test split, as the package names them (`minerva_math_<subject>`).
const SUBJECTS: &[&str] = &[
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
];

/// Every subject (`minerva-math`), or only `only` (`number_theory` or `number-theory`).
pub(super) fn load_subjects(tasks: &Path, only: Option<&str>) -> Result<Vec<EvalItem>, DatasetError> {
    let subjects: Vec<&str> = match only.map(|subject| subject.replace('-', "_")) {
        None => SUBJECTS.to_vec(),
        Some(subject) => match SUBJECTS.iter().find(|s| **s == subject) {
            Some(subject) => vec![*subject],
            None => {
                let reason = format!("no MATH subject `{subject}`; subjects are {}", SUBJECTS.join(", "));
                return Err(format_error(tasks, reason));
            }
        },
    };
    let mut items = Vec::new();
    for subject in subjects {
        let path = tasks.join(format!("minerva_math_{subject}/gold_bpb_0shot/requests.jsonl.gz"));
        for request in read_docs(&path)? {
            items.push(item(&request, "minerva-math", Some(subject), &path)?);
        }
    }
    Ok(items)
}

/// MATH-500: the 500 problems of MATH's test split that OpenAI's "Let's Verify Step by Step" kept.
pub(super) fn load_500(tasks: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    let path = tasks.join("minerva_math_500/gold_bpb_0shot/requests.jsonl.gz");
    read_docs(&path)?.iter().map(|request| item(request, "minerva-math-500", None, &path)).collect()
}

fn item(request: &RequestDoc, dataset: &str, subject: Option<&str>, path: &Path) -> Result<EvalItem, DatasetError> {
    let doc = &request.doc;
    let number = doc.get("index").and_then(serde_json::Value::as_u64).unwrap_or(request.doc_id);
    let solution = text(doc, "solution", path)?;
    let Some(answer) = crate::math_answer::last_boxed(&solution) else {
        return Err(format_error(path, format!("problem {number}: the solution has no \\boxed{{}} answer")));
    };
    Ok(EvalItem {
        dataset: dataset.to_owned(),
        id: subject.map_or_else(|| number.to_string(), |subject| format!("{subject}/{number}")),
        subject: subject.map(str::to_owned),
        domain: None,
        question: text(doc, "problem", path)?,
        context: None,
        choices: Vec::new(),
        reference: Reference::Math(answer.trim().to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use crate::dataset::Reference;
    use crate::sets::tests::check;

    #[test]
    fn subjects_and_math_500_load_with_boxed_answers() {
        let mut total = 0;
        for (subject, expected) in [
            ("algebra", 1187),
            ("counting_and_probability", 474),
            ("geometry", 479),
            ("intermediate_algebra", 903),
            ("number_theory", 540),
            ("prealgebra", 871),
            ("precalculus", 546),
        ] {
            total += check(&format!("minerva-math:{subject}"), expected).len();
        }
        if total > 0 {
            check("minerva-math", 5000);
        }
        let items = check("minerva-math-500", 500);
        if let Some(first) = items.first() {
            // Polar coordinates of (0,3): the solution's boxed answer, not the damaged `answer` field.
            assert_eq!(first.reference, Reference::Math("\\left( 3, \\frac{\\pi}{2} \\right)".into()));
        }
    }
}
