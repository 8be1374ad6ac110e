//! Short factual questions with open answers: Natural Questions (questions
//! people typed into Google), TriviaQA (quiz questions) and Jeopardy! clues.
//! Each becomes a [`Reference::ShortAnswer`] over its accepted answers.

use std::path::Path;

use arrow_array::cast::AsArray;

use super::{gradable, read_docs, text};
use crate::dataset::{column, format_error, read_arrow_dir, string_list, strings, DatasetError, EvalItem, Reference};

/// NQ-Open's validation split, every answer the annotators accepted: 3,610
/// questions less two whose only answer normalises to nothing ("---", "A+").
pub(super) fn load_naturalqs(dir: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    let mut items = Vec::new();
    for (batch_index, batch) in read_arrow_dir(dir)?.into_iter().enumerate() {
        let questions = strings(column(&batch, "question", dir)?.as_ref(), dir)?;
        let answers = column(&batch, "answer", dir)?;
        for (row, question) in questions.into_iter().enumerate() {
            let answers = string_list(answers.as_ref(), row, dir)?;
            items.extend(open_item("naturalqs", format!("{batch_index}-{row}"), question, answers));
        }
    }
    Ok(items)
}

/// TriviaQA (`rc.wikipedia.nocontext`, validation): the answer's value and its aliases.
pub(super) fn load_trivia_qa(dir: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    let mut items = Vec::new();
    for batch in read_arrow_dir(dir)? {
        let questions = strings(column(&batch, "question", dir)?.as_ref(), dir)?;
        let ids = strings(column(&batch, "question_id", dir)?.as_ref(), dir)?;
        let answer = column(&batch, "answer", dir)?;
        let answer = answer.as_struct_opt().ok_or_else(|| format_error(dir, "`answer` is not a struct"))?;
        let values = answer.column_by_name("value").ok_or_else(|| format_error(dir, "no `answer.value`"))?;
        let values = strings(values.as_ref(), dir)?;
        let aliases = answer.column_by_name("aliases").ok_or_else(|| format_error(dir, "no `answer.aliases`"))?;
        for (row, (question, id)) in questions.into_iter().zip(ids).enumerate() {
            let mut answers = vec![values[row].clone()];
            answers.extend(string_list(aliases.as_ref(), row, dir)?);
            items.extend(open_item("trivia-qa", id, question, answers));
        }
    }
    Ok(items)
}

/// Jeopardy! clues: `query` reads "Category: …\nQuestion: <clue>\nAnswer:"; an
/// answer like "Ceylon/Sri Lanka" accepts either name.
pub(super) fn load_jeopardy(path: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    let mut items = Vec::new();
    for request in read_docs(path)? {
        let doc = &request.doc;
        let query = text(doc, "query", path)?;
        let clue = query.split_once("\nQuestion: ").map(|(_, rest)| rest.trim_end().trim_end_matches("Answer:").trim());
        let Some(clue) = clue.filter(|clue| !clue.is_empty()) else {
            return Err(format_error(path, format!("item {}: no clue in the query", request.doc_id)));
        };
        let category = text(doc, "category", path)?.replace('_', " ");
        let answer = text(doc, "answer", path)?.replace("\\'", "'");
        let mut answers = vec![answer.clone()];
        if answer.contains('/') {
            answers.extend(answer.split('/').map(|part| part.trim().to_owned()));
        }
        let question = format!("A Jeopardy! clue in the category \"{category}\": {clue}\nWho or what is it?");
        if let Some(mut item) = open_item("jeopardy", request.doc_id.to_string(), question, answers) {
            item.subject = Some(category);
            items.push(item);
        }
    }
    Ok(items)
}

/// An open question, unless none of its answers can be graded.
fn open_item(dataset: &str, id: String, question: String, answers: Vec<String>) -> Option<EvalItem> {
    let answers = gradable(answers);
    (!answers.is_empty()).then(|| EvalItem {
        dataset: dataset.to_owned(),
        id,
        subject: None,
        domain: None,
        question,
        context: None,
        choices: Vec::new(),
        reference: Reference::ShortAnswer(answers),
    })
}

#[cfg(test)]
mod tests {
    use crate::dataset::Reference;
    use crate::sets::tests::check;

    #[test]
    fn open_question_sets_load_with_their_answers() {
        let nq = check("naturalqs", 3608);
        let trivia = check("trivia-qa", 7993);
        if let Some(first) = trivia.first() {
            let Reference::ShortAnswer(answers) = &first.reference else { panic!("{first:?}") };
            assert!(answers.len() > 1, "the value and its aliases: {answers:?}");
        }
        let jeopardy = check("jeopardy", 2116);
        if let Some(first) = jeopardy.first() {
            assert!(first.question.contains("1,129 feet per second"), "{}", first.question);
            assert_eq!(first.reference, Reference::ShortAnswer(vec!["sound".into()]));
        }
        let either = jeopardy.iter().find(|item| item.reference.display(&[]).starts_with("Ceylon/Sri Lanka"));
        if !nq.is_empty() {
            let Some(Reference::ShortAnswer(answers)) = either.map(|item| &item.reference) else { panic!() };
            assert!(answers.contains(&"Sri Lanka".to_owned()));
        }
    }
}
