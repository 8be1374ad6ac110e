//! Professional knowledge: MedQA (USMLE questions, English test split) and
//! MedMCQA (Indian medical entrance exams, validation split), multiple choice.

use std::path::Path;

use super::{index, letters, read_docs, split_inline_options, text};
use crate::dataset::{format_error, DatasetError, EvalItem, Reference};

/// MedQA: the document's `question` has no options; its `query` lists them inline.
pub(super) fn load_medqa(path: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    read_docs(path)?
        .into_iter()
        .map(|request| {
            let doc = &request.doc;
            let id = request.doc_id.to_string();
            let letters = letters(doc, path)?;
            let query = text(doc, "query", path)?;
            let Some((_, choices)) = split_inline_options(&query, &letters) else {
                return Err(format_error(path, format!("item {id}: cannot find the options in the query")));
            };
            let gold = index(doc, "gold", path)?;
            if gold >= choices.len() {
                return Err(format_error(path, format!("item {id}: gold {gold} is out of range")));
            }
            Ok(EvalItem {
                dataset: "medqa".into(),
                id,
                // "step1" or "step2&3" of the USMLE.
                subject: doc.get("meta_info").and_then(|m| m.as_str()).map(str::to_owned),
                domain: None,
                question: text(doc, "question", path)?,
                context: None,
                choices,
                reference: Reference::Choice(gold),
            })
        })
        .collect()
}

/// MedMCQA: four options `opa`…`opd`, the right one's index in `cop`.
pub(super) fn load_medmcqa(path: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    read_docs(path)?
        .into_iter()
        .map(|request| {
            let doc = &request.doc;
            let id = text(doc, "id", path)?;
            let choices = ["opa", "opb", "opc", "opd"]
                .iter()
                .map(|field| text(doc, field, path))
                .collect::<Result<Vec<_>, _>>()?;
            let right = index(doc, "cop", path)?;
            if right >= choices.len() {
                return Err(format_error(path, format!("item {id}: answer {right} is out of range")));
            }
            Ok(EvalItem {
                dataset: "medmcqa".into(),
                id,
                subject: doc.get("subject_name").and_then(|s| s.as_str()).map(str::to_owned),
                domain: None,
                question: text(doc, "question", path)?,
                context: None,
                choices,
                reference: Reference::Choice(right),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::dataset::Reference;
    use crate::sets::tests::check;

    #[test]
    fn medqa_and_medmcqa_load() {
        let medqa = check("medqa", 1273);
        if let Some(first) = medqa.first() {
            assert_eq!(first.choices.len(), 5);
            assert_eq!(first.choices[2], "Tell the attending that he cannot fail to disclose this mistake");
            assert_eq!(first.reference, Reference::Choice(2));
        }
        let medmcqa = check("medmcqa", 4183);
        if let Some(first) = medmcqa.first() {
            assert_eq!(first.choices.len(), 4);
            assert_eq!(first.subject.as_deref(), Some("Physiology"));
        }
    }
}
