//! Questions about a text in front of the model: CoQA (a conversation about a
//! story), DROP (counting and comparing over a passage), and Social IQa
//! (what people in a short situation feel or do next, multiple choice).

use std::path::Path;

use super::{gradable, read_docs, text};
use crate::dataset::{column, format_error, read_arrow_dir, strings, DatasetError, EvalItem, Reference};

/// Social IQa's validation split: a situation, a question, three answers and a 1-based `label`.
pub(super) fn load_socialiqa(dir: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    let mut items = Vec::new();
    for (batch_index, batch) in read_arrow_dir(dir)?.into_iter().enumerate() {
        let field = |name: &str| strings(column(&batch, name, dir)?.as_ref(), dir);
        let (contexts, questions, labels) = (field("context")?, field("question")?, field("label")?);
        let options = [field("answerA")?, field("answerB")?, field("answerC")?];
        for row in 0..batch.num_rows() {
            let right = labels[row].trim().parse::<usize>().ok().filter(|n| (1..=3).contains(n));
            let Some(right) = right else {
                return Err(format_error(dir, format!("row {row}: label `{}` is not 1, 2 or 3", labels[row])));
            };
            items.push(EvalItem {
                dataset: "socialiqa".into(),
                id: format!("{batch_index}-{row}"),
                subject: None,
                domain: None,
                question: questions[row].clone(),
                context: Some(contexts[row].clone()),
                choices: options.iter().map(|column| column[row].clone()).collect(),
                reference: Reference::Choice(right - 1),
            });
        }
    }
    Ok(items)
}

/// CoQA's validation turns: the story and the conversation so far are the
/// context. The four annotators' answers are all accepted; "unknown" is not an
/// answer to grade, so a turn only "unknown" answers (13 of 7,983) is left out.
pub(super) fn load_coqa(path: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    let mut items = Vec::new();
    for request in read_docs(path)? {
        let doc = &request.doc;
        let id = text(doc, "id", path)?;
        let turn = id.rsplit_once("_turn").and_then(|(_, n)| n.parse::<usize>().ok());
        let Some(turn) = turn else {
            return Err(format_error(path, format!("item {id}: no `_turnN` in the id")));
        };
        let answers = doc.get("answers").and_then(|a| a.as_array()).map_or(&[][..], Vec::as_slice);
        let answers = answers.iter().filter_map(|a| a.as_str()).map(str::to_owned);
        let kept = gradable(answers.filter(|a| !a.trim().trim_end_matches('.').eq_ignore_ascii_case("unknown")));
        if kept.is_empty() {
            continue;
        }
        let mut context = text(doc, "story", path)?.trim().to_owned();
        let earlier = doc.get("previous_qa").and_then(|p| p.as_array()).map_or(&[][..], Vec::as_slice);
        if turn > 0 {
            context.push_str("\n\nThe conversation so far:");
            for qa in earlier.iter().take(turn) {
                let (q, a) = (qa.get("question").and_then(|q| q.as_str()), qa.get("answer").and_then(|a| a.as_str()));
                context.push_str(&format!("\nQ: {}\nA: {}", q.unwrap_or_default(), a.unwrap_or_default()));
            }
        }
        items.push(EvalItem {
            dataset: "coqa".into(),
            id,
            subject: doc.get("source").and_then(|s| s.as_str()).map(str::to_owned),
            domain: None,
            question: text(doc, "question", path)?,
            context: Some(context),
            choices: Vec::new(),
            reference: Reference::ShortAnswer(kept),
        });
    }
    Ok(items)
}

/// DROP's questions (the package's 1,000 of validation): a number, a date or
/// one span. `answers` lists alternatives, each a list of spans; an
/// alternative of several spans needs a grader of sets, so those are dropped,
/// and a question with no single-span alternative (32) is left out.
pub(super) fn load_drop(path: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    let mut items = Vec::new();
    for request in read_docs(path)? {
        let doc = &request.doc;
        let alternatives = doc.get("answers").and_then(|a| a.as_array()).map_or(&[][..], Vec::as_slice);
        // One span per alternative; a list of spans needs a grader of sets.
        let single = alternatives.iter().filter_map(|spans| match spans.as_array().map(Vec::as_slice) {
            Some([only]) => only.as_str().map(str::to_owned),
            _ => None,
        });
        let answers = gradable(single);
        if answers.is_empty() {
            continue;
        }
        items.push(EvalItem {
            dataset: "drop".into(),
            id: text(doc, "query_id", path)?,
            subject: None,
            domain: None,
            question: text(doc, "question", path)?,
            context: Some(text(doc, "passage", path)?),
            choices: Vec::new(),
            reference: Reference::ShortAnswer(answers),
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use crate::dataset::Reference;
    use crate::sets::tests::check;

    #[test]
    fn reading_sets_load_with_their_passages() {
        let social = check("socialiqa", 1954);
        if let Some(first) = social.first() {
            assert_eq!(first.choices.len(), 3);
            assert!(first.context.is_some());
        }
        let coqa = check("coqa", 7970);
        if let Some(fourth) = coqa.get(3) {
            // Turn 3 of the first story: the story, then turns 0-2.
            let context = fourth.context.as_deref().unwrap_or_default();
            assert!(context.starts_with("Once upon a time"), "{context}");
            assert!(context.ends_with("Q: Did she live alone?\nA: no"), "{context}");
            assert_eq!(fourth.question, "Who did she live with?");
        }
        let drop = check("drop", 968);
        if let Some(second) = drop.get(1) {
            assert_eq!(second.reference, Reference::ShortAnswer(vec!["1507".into(), "1477".into()]));
        }
    }
}
