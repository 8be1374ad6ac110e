//! How an item is asked and how its answer is graded.
//!
//! Prompts are zero-shot and say what form the answer should take; the
//! graders still accept the other forms small models use.

use crate::dataset::{EvalItem, Reference};
use crate::grade::{exact_match, extract_choice, extract_number, extract_yes_no, f1_score};

/// The grade of one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Grade {
    /// In `[0, 1]`: 1 or 0 for right or wrong, F1 for SQuAD (and for a wrong short answer).
    pub score: f64,
    /// Whether the answer counts as right (score 1, or exact match for SQuAD).
    pub correct: bool,
    /// What the grader read from the answer (`B`, `42`, `yes`), if anything.
    pub extracted: Option<String>,
}

/// The user message that asks `item`.
pub fn prompt(item: &EvalItem) -> String {
    let mut text = String::new();
    if let Some(context) = &item.context {
        text.push_str(context.trim());
        text.push_str("\n\n");
    }
    match &item.reference {
        Reference::Choice(_) => {
            text.push_str("Question: ");
            text.push_str(item.question.trim());
            text.push('\n');
            for (index, choice) in item.choices.iter().enumerate() {
                text.push_str(&format!("{}. {}\n", char::from(b'A' + index as u8), choice.trim()));
            }
            text.push_str("Answer with the letter of the correct option.");
        }
        Reference::YesNo(_) => {
            text.push_str(item.question.trim());
            text.push_str("?\nAnswer yes or no.");
        }
        Reference::Number(_) => {
            text.push_str(item.question.trim());
            text.push_str("\nSolve it step by step, then end with \"The answer is N\" where N is a number.");
        }
        Reference::Texts(_) => {
            text.push_str("Question: ");
            text.push_str(item.question.trim());
            text.push_str("\nAnswer with a short phrase from the text above.");
        }
        Reference::Math(_) => {
            text.push_str(item.question.trim());
            text.push_str("\nSolve it step by step, then give the final answer as \\boxed{ANSWER}.");
        }
        Reference::ShortAnswer(_) => {
            text.push_str("Question: ");
            text.push_str(item.question.trim());
            text.push_str(match item.context {
                Some(_) => "\nAnswer in a few words, from the text above.",
                None => "\nAnswer in a few words: just the name, number, date or phrase.",
            });
        }
    }
    text
}

/// The longest answer worth waiting for: a letter needs a few tokens, arithmetic a few hundred.
pub fn max_tokens(item: &EvalItem) -> u32 {
    match item.reference {
        Reference::Choice(_) => 32,
        Reference::YesNo(_) => 8,
        Reference::Number(_) => 320,
        Reference::Texts(_) => 32,
        Reference::Math(_) => 512,
        Reference::ShortAnswer(_) => 48,
    }
}

/// Grades `answer` against the item's reference.
pub fn grade(item: &EvalItem, answer: &str) -> Grade {
    let binary =
        |correct: bool, extracted: Option<String>| Grade { score: f64::from(u8::from(correct)), correct, extracted };
    match &item.reference {
        Reference::Choice(right) => {
            let choices: Vec<&str> = item.choices.iter().map(String::as_str).collect();
            let picked = extract_choice(answer, &choices);
            binary(picked == Some(*right), picked.map(|i| char::from(b'A' + i as u8).to_string()))
        }
        Reference::YesNo(right) => {
            let said = extract_yes_no(answer);
            binary(said == Some(*right), said.map(|yes| if yes { "yes" } else { "no" }.to_owned()))
        }
        Reference::Number(right) => {
            let number = extract_number(answer);
            let correct = number.is_some_and(|n| (n - right).abs() <= 1e-6 * right.abs().max(1.0));
            binary(correct, number.map(|n| n.to_string()))
        }
        Reference::Texts(references) => {
            let references: Vec<&str> = references.iter().map(String::as_str).collect();
            // Small models wrap the span in a sentence; grade the first line.
            let line = answer.trim().lines().next().unwrap_or_default().trim();
            let correct = exact_match(line, &references);
            Grade { score: f1_score(line, &references), correct, extracted: Some(line.to_owned()) }
        }
        Reference::Math(right) => crate::math_answer::grade(answer, right),
        Reference::ShortAnswer(answers) => crate::short_answer::grade(answer, answers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(reference: Reference, choices: &[&str]) -> EvalItem {
        EvalItem {
            dataset: "t".into(),
            id: "1".into(),
            subject: None,
            domain: None,
            question: "Q".into(),
            context: None,
            choices: choices.iter().map(|c| (*c).to_owned()).collect(),
            reference,
        }
    }

    #[test]
    fn multiple_choice_prompts_list_lettered_options() {
        let mc = item(Reference::Choice(1), &["red", "blue"]);
        assert_eq!(prompt(&mc), "Question: Q\nA. red\nB. blue\nAnswer with the letter of the correct option.");
        assert!(grade(&mc, "The answer is (B) blue.").correct);
        assert!(!grade(&mc, "A").correct);
        assert_eq!(grade(&mc, "I am not sure").extracted, None);
    }

    #[test]
    fn yes_no_numbers_and_spans_are_graded() {
        let yes = item(Reference::YesNo(true), &[]);
        assert!(grade(&yes, "Yes, it is.").correct);
        assert!(!grade(&yes, "No.").correct);
        let number = item(Reference::Number(18.0), &[]);
        assert!(grade(&number, "She sells 9 eggs for $2 each, so 9 * 2 = 18. The answer is $18.").correct);
        assert!(!grade(&number, "The answer is 19").correct);
        let span = item(Reference::Texts(vec!["23 years".into(), "23".into()]), &[]);
        let g = grade(&span, "23 years\nbecause the regatta is older");
        assert!(g.correct && g.score == 1.0);
        let partial = grade(&span, "about 23 years ago");
        assert!(!partial.correct && partial.score > 0.5);
    }
}
