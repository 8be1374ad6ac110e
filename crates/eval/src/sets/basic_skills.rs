//! OLMo's basic skills: arithmetic, coding, common knowledge, logical reasoning,
//! patterns and string operations, the simple requests most edge traffic is.
//!
//! The `mc_5shot` variant's document holds the question with its lettered
//! options inline, `choices` (the letters) and `gold` (the right one's index).

use std::path::Path;

use super::{index, letters, read_docs, split_inline_options, text};
use crate::dataset::{format_error, DatasetError, EvalItem, Reference};

/// The skills, as the package names them (`basic_skills_<skill>`).
const SKILLS: &[&str] =
    &["arithmetic", "coding", "common_knowledge", "logical_reasoning", "pattern", "string_operations"];

/// Loads every skill, or only `only` (`common_knowledge` or `common-knowledge`).
pub(super) fn load(tasks: &Path, only: Option<&str>) -> Result<Vec<EvalItem>, DatasetError> {
    let skills: Vec<&str> = match only.map(|skill| skill.replace('-', "_")) {
        None => SKILLS.to_vec(),
        Some(skill) => match SKILLS.iter().find(|s| **s == skill) {
            Some(skill) => vec![*skill],
            None => {
                let reason = format!("no basic skill `{skill}`; skills are {}", SKILLS.join(", "));
                return Err(format_error(tasks, reason));
            }
        },
    };
    let mut items = Vec::new();
    for skill in skills {
        let path = tasks.join(format!("basic_skills_{skill}/mc_5shot/requests.jsonl.gz"));
        for request in read_docs(&path)? {
            let doc = &request.doc;
            let letters = letters(doc, &path)?;
            let question = text(doc, "question", &path)?;
            let id = doc.get("id").and_then(|id| id.as_str()).map_or_else(|| request.doc_id.to_string(), str::to_owned);
            let Some((question, choices)) = split_inline_options(&question, &letters) else {
                return Err(format_error(
                    &path,
                    format!("item {id}: cannot find the options {letters:?} in the question"),
                ));
            };
            let gold = index(doc, "gold", &path)?;
            if gold >= choices.len() {
                return Err(format_error(&path, format!("item {id}: gold {gold} is out of range")));
            }
            items.push(EvalItem {
                dataset: "basic-skills".into(),
                id: format!("{skill}/{id}"),
                subject: Some(skill.to_owned()),
                domain: None,
                question,
                context: None,
                choices,
                reference: Reference::Choice(gold),
            });
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use crate::dataset::Reference;
    use crate::sets::tests::check;

    #[test]
    fn each_skill_loads_with_its_options() {
        for (skill, expected) in [
            ("arithmetic", 1047),
            ("coding", 1012),
            ("common_knowledge", 1037),
            ("logical_reasoning", 1118),
            ("pattern", 534),
            ("string_operations", 1219),
        ] {
            let items = check(&format!("basic-skills:{skill}"), expected);
            if skill == "arithmetic" && !items.is_empty() {
                // "4 * 8 =\n A. 40\n B. 24\n C. 36\n D. 32 …", gold D.
                assert_eq!(items[0].question, "4 * 8 =");
                assert_eq!(items[0].choices.len(), 10);
                assert_eq!(items[0].reference, Reference::Choice(3));
                assert_eq!(items[0].choices[3], "32");
            }
        }
        check("basic-skills", 5967);
        check("basic-skills:common-knowledge", 1037);
    }

    #[test]
    fn an_unknown_skill_lists_the_skills() {
        let error =
            crate::dataset::load("basic-skills:juggling", std::path::Path::new("/none")).unwrap_err().to_string();
        assert!(error.contains("string_operations"), "{error}");
    }
}
