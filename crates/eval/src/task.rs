//! How an item is asked and how its answer is graded.
//!
//! Prompts are zero-shot and say what form the answer should take; the
//! graders still accept the other forms small models use.

use edgeway_core::OutputFormat;
use serde_json::{json, Value};

use crate::dataset::{EvalItem, Reference};
use crate::grade::{exact_match, extract_choice, extract_number, extract_yes_no, f1_score};
use crate::sandbox::{Sandbox, SandboxError};

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
        Reference::Code(check) if check.stub.is_some() => {
            text.push_str("Complete the following Python function.\n\n```python\n");
            text.push_str(item.question.trim_end());
            text.push_str("\n```\n\nAnswer with the complete function, signature included, in a ```python code block.");
        }
        Reference::Code(_) => {
            text.push_str(item.question.trim());
            text.push_str("\n\nAnswer with the complete Python function in a ```python code block.");
        }
        // An open question is asked as it is written.
        Reference::Judged(_) => text.push_str(&item.question),
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

/// How closed answers (a letter, yes/no, a number) are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnswerFormat {
    /// With a JSON schema the sampler enforces (an `enum` of the letters, of yes/no; a number
    /// after the working), so a small model cannot fail by format, and the probability it gave
    /// its choice is the confidence escalation reads.
    #[default]
    Constrained,
    /// As free text, read by the graders' extractors.
    Free,
}

impl AnswerFormat {
    /// Parses `constrained` or `free`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "constrained" | "json" | "schema" => Some(AnswerFormat::Constrained),
            "free" | "text" => Some(AnswerFormat::Free),
            _ => None,
        }
    }

    /// `constrained` or `free`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerFormat::Constrained => "constrained",
            AnswerFormat::Free => "free",
        }
    }
}

/// How one item is asked: the user message, the shape the answer must have, and its length.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// The user message.
    pub prompt: String,
    /// The schema the answer is held to, for closed answers asked [`AnswerFormat::Constrained`].
    pub format: Option<OutputFormat>,
    /// The longest answer worth waiting for.
    pub max_tokens: u32,
}

/// How `item` is asked in `format`. Open answers (text spans, code) are never constrained.
pub fn ask(item: &EvalItem, format: AnswerFormat) -> Ask {
    let schema = match (&item.reference, format) {
        (_, AnswerFormat::Free) => None,
        (Reference::Choice(_), _) => {
            let letters: Vec<String> =
                (0..item.choices.len()).map(|i| char::from(b'A' + i as u8).to_string()).collect();
            Some(json!({"type": "string", "enum": letters}))
        }
        (Reference::YesNo(_), _) => Some(json!({"type": "string", "enum": ["yes", "no"]})),
        (Reference::Number(_), _) => Some(json!({
            "type": "object",
            "properties": {"steps": {"type": "string"}, "answer": {"type": "number"}},
            "required": ["steps", "answer"],
        })),
        (
            Reference::Texts(_)
            | Reference::Code(_)
            | Reference::Judged(_)
            | Reference::Math(_)
            | Reference::ShortAnswer(_),
            _,
        ) => None,
    };
    let mut prompt = prompt(item);
    if schema.is_some() && matches!(item.reference, Reference::Number(_)) {
        let free_ending = prompt.rfind("\nSolve it step by step").unwrap_or(prompt.len());
        prompt.truncate(free_ending);
        prompt.push_str(
            "\nSolve it step by step. Answer in JSON: your working in \"steps\", the final number in \"answer\".",
        );
    }
    Ask {
        prompt,
        format: schema.map(|schema| OutputFormat::JsonSchema {
            name: Some("answer".into()),
            schema: schema.to_string(),
            strict: true,
        }),
        max_tokens: max_tokens(item),
    }
}

/// The answer inside a constrained (JSON) answer: a JSON string's text, a number's digits,
/// an object's `answer`; anything else (free text) as it is.
fn unwrap_json_answer(answer: &str) -> std::borrow::Cow<'_, str> {
    match serde_json::from_str::<Value>(answer.trim()) {
        Ok(Value::String(text)) => text.into(),
        Ok(Value::Number(number)) => number.to_string().into(),
        Ok(Value::Object(fields)) => match fields.get("answer") {
            Some(Value::String(text)) => text.clone().into(),
            Some(Value::Number(number)) => number.to_string().into(),
            _ => answer.into(),
        },
        _ => answer.into(),
    }
}

/// The longest answer worth waiting for: a letter needs a few tokens, arithmetic and code a few hundred.
pub fn max_tokens(item: &EvalItem) -> u32 {
    match item.reference {
        Reference::Choice(_) => 32,
        Reference::YesNo(_) => 8,
        Reference::Number(_) => 320,
        Reference::Texts(_) => 32,
        Reference::Code(_) => 512,
        Reference::Judged(_) => 512,
        Reference::Math(_) => 512,
        Reference::ShortAnswer(_) => 48,
    }
}

/// Why an answer could not be graded here.
#[derive(Debug, thiserror::Error)]
pub enum GradeError {
    /// Its code could not be run.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// It is an open answer, which only a judge model grades ([`crate::judge::Judge`]).
    #[error("an open answer is graded by a judge model, not by a rule")]
    NeedsJudge,
}

/// Grades `answer` against the item's reference. Code that cannot be run
/// (no Python) and open answers (which need a judge) grade 0 with the reason as
/// what was extracted; use [`try_grade`] where that must be an error instead.
pub fn grade(item: &EvalItem, answer: &str) -> Grade {
    try_grade(item, answer).unwrap_or_else(|error| Grade {
        score: 0.0,
        correct: false,
        extracted: Some(format!("not run: {error}")),
    })
}

/// Whether grading `item` asks a judge model ([`crate::judge`]) rather than a rule.
pub fn needs_judge(item: &EvalItem) -> bool {
    matches!(item.reference, Reference::Judged(_))
}

/// Whether grading `item` runs a program (and so blocks for a while).
pub fn runs_code(item: &EvalItem) -> bool {
    matches!(item.reference, Reference::Code(_))
}

/// Grades `answer` against the item's reference; code runs in the [shared
/// sandbox](Sandbox::shared). Only code can fail to be graded, and open answers,
/// which are left to a judge.
pub fn try_grade(item: &EvalItem, answer: &str) -> Result<Grade, GradeError> {
    let binary =
        |correct: bool, extracted: Option<String>| Grade { score: f64::from(u8::from(correct)), correct, extracted };
    // Closed answers may come as constrained JSON; open ones (text spans, code) are graded as written.
    let closed = unwrap_json_answer(answer);
    let answer = match item.reference {
        Reference::Choice(_) | Reference::YesNo(_) | Reference::Number(_) => closed.as_ref(),
        Reference::Texts(_)
        | Reference::Code(_)
        | Reference::Judged(_)
        | Reference::Math(_)
        | Reference::ShortAnswer(_) => answer,
    };
    Ok(match &item.reference {
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
        Reference::Code(check) => crate::code::grade(check, answer, Sandbox::shared()?)?,
        Reference::Judged(_) => return Err(GradeError::NeedsJudge),
        Reference::Math(right) => crate::math_answer::grade(answer, right),
        Reference::ShortAnswer(answers) => crate::short_answer::grade(answer, answers),
    })
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
    fn closed_answers_are_asked_with_a_schema_and_open_ones_are_not() {
        let choice = item(Reference::Choice(1), &["red", "blue", "green"]);
        let ask_choice = ask(&choice, AnswerFormat::Constrained);
        let Some(OutputFormat::JsonSchema { schema, strict: true, .. }) = &ask_choice.format else {
            panic!("{ask_choice:?}")
        };
        assert_eq!(serde_json::from_str::<Value>(schema).unwrap()["enum"], json!(["A", "B", "C"]));
        assert_eq!(ask_choice.prompt, prompt(&choice));
        assert_eq!(ask(&choice, AnswerFormat::Free).format, None);

        let number = ask(&item(Reference::Number(4.0), &[]), AnswerFormat::Constrained);
        assert!(number.prompt.ends_with("the final number in \"answer\"."), "{}", number.prompt);
        assert!(!number.prompt.contains("The answer is N"));
        assert!(number.format.is_some());

        assert_eq!(ask(&item(Reference::Texts(vec!["x".into()]), &[]), AnswerFormat::Constrained).format, None);
        assert_eq!(AnswerFormat::parse("Free"), Some(AnswerFormat::Free));
        assert_eq!(AnswerFormat::parse("constrained"), Some(AnswerFormat::Constrained));
        assert_eq!(AnswerFormat::parse("maybe"), None);
    }

    #[test]
    fn constrained_answers_are_graded_from_their_json() {
        let choice = item(Reference::Choice(1), &["red", "blue"]);
        assert!(grade(&choice, "\"B\"").correct);
        assert!(!grade(&choice, "\"A\"").correct);
        let yes_no = item(Reference::YesNo(false), &[]);
        assert_eq!(grade(&yes_no, "\"no\"").extracted.as_deref(), Some("no"));
        let number = item(Reference::Number(12.0), &[]);
        assert!(grade(&number, r#"{"steps": "3 boxes of 4 and then 7 more", "answer": 12}"#).correct);
        assert!(!grade(&number, r#"{"steps": "it is 12", "answer": 7}"#).correct);
        // A cut JSON answer is read as text, as the free graders would.
        assert!(grade(&number, r#"{"steps": "so the answer is 12"#).correct);
        // Open answers are graded as written, even when they happen to be JSON.
        let texts = item(Reference::Texts(vec!["\"quoted\"".into()]), &[]);
        assert!(grade(&texts, "\"quoted\"").correct);
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
    fn code_prompts_ask_for_a_fenced_function_and_grading_runs_the_tests() {
        let check = |stub: Option<&str>| crate::code::CodeCheck {
            tests: "assert add(1, 2) == 3".into(),
            entry_point: "add".into(),
            stub: stub.map(str::to_owned),
            setup: String::new(),
        };
        let mut humaneval = item(Reference::Code(check(Some("def add(a, b):\n    \"\"\"Add.\"\"\"\n"))), &[]);
        humaneval.question = "def add(a, b):\n    \"\"\"Add.\"\"\"\n".into();
        assert_eq!(
            prompt(&humaneval),
            "Complete the following Python function.\n\n```python\ndef add(a, b):\n    \"\"\"Add.\"\"\"\n```\n\n\
             Answer with the complete function, signature included, in a ```python code block."
        );
        let mut mbpp = item(Reference::Code(check(None)), &[]);
        mbpp.question =
            "Write a function to add two numbers.\nYour code should pass this test:\n\nassert add(1, 2) == 3".into();
        assert!(prompt(&mbpp).starts_with(
            "Write a function to add two numbers.\nYour code should pass this test:\n\nassert add(1, 2) == 3\n\n"
        ));
        assert!(prompt(&mbpp).ends_with("in a ```python code block."));
        assert_eq!(max_tokens(&mbpp), 512);
        assert!(runs_code(&mbpp) && !runs_code(&item(Reference::YesNo(true), &[])));
        assert_eq!(mbpp.reference.display(&[]), "the tests of add");
        let right = try_grade(&mbpp, "```python\ndef add(a, b):\n    return a + b\n```").unwrap();
        assert!(right.correct && right.extracted.as_deref() == Some("passed"));
        assert_eq!(grade(&humaneval, "    return a - b").extracted.as_deref(), Some("failed: AssertionError"));
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
