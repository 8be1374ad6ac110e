//! Grading open short answers: Natural Questions, TriviaQA, Jeopardy!, CoQA, DROP.
//!
//! Small models answer these in a sentence ("Justin Timberlake performed the
//! halftime show."), so an exact match alone would mark most right answers wrong.
//! The rule:
//!
//! 1. Read the answer's first line, without an "Answer:" (or "A:") label in front.
//! 2. Normalise it and every accepted answer: SQuAD's normalisation (lowercase,
//!    no punctuation, no articles, single spaces), with number words up to
//!    twenty as digits and no thousands separators ("three" = "3", "1,507" = "1507").
//! 3. It is right when it equals an accepted answer, or when it has at most
//!    [`SHORT_ANSWER_WORDS`] words and an accepted answer appears in it as a
//!    whole phrase (word for word, not inside a longer word).
//!
//! A longer line is only right by exact match: it can name several candidates.
//! The rule does not read negation ("It was not Paris" holds "Paris"); a short
//! answer rarely says what it is not. The score is 1 when right, else the
//! token F1 against the closest accepted answer.

use crate::grade::{f1_score, normalize_answer};
use crate::task::Grade;

/// The most words a first line may have for an accepted answer inside it to count: one sentence.
pub const SHORT_ANSWER_WORDS: usize = 20;

/// Number words that small models and annotators write either way.
const NUMBER_WORDS: &[&str] = &[
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

/// Drops the commas of numbers written with thousands separators (`12,000,085`,
/// `5,525`): a run of digits and commas whose groups after the first have three
/// digits each. A list (`1,3`, `27,63,99,135`) keeps its commas.
pub fn drop_thousands_separators(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        out.push_str(&rest[..start]);
        let run = &rest[start..];
        let end = run.find(|c: char| !(c.is_ascii_digit() || c == ',')).unwrap_or(run.len());
        let run = run[..end].trim_end_matches(',');
        let groups: Vec<&str> = run.split(',').collect();
        let thousands = groups.len() > 1 && groups[0].len() <= 3 && groups[1..].iter().all(|g| g.len() == 3);
        if thousands {
            out.push_str(&run.replace(',', ""));
        } else {
            out.push_str(run);
        }
        rest = &rest[start + run.len()..];
    }
    out.push_str(rest);
    out
}

/// The normalised form both sides are compared in (see the module's rule, step 2).
pub fn normalize(text: &str) -> String {
    normalize_answer(&drop_thousands_separators(text))
        .split(' ')
        .map(|word| match NUMBER_WORDS.iter().position(|n| *n == word) {
            Some(number) => number.to_string(),
            None => word.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The line of `answer` that is graded: its first non-empty line, without an
/// "Answer:" label (or "A:", as a model continuing a "Q: … A: …" conversation writes).
pub fn answer_line(answer: &str) -> &str {
    for line in answer.lines() {
        let line = line.trim().trim_matches('*').trim();
        let lower = line.to_ascii_lowercase();
        let label = ["answer:", "a:"].iter().find(|label| lower.starts_with(*label));
        let unlabelled = label.map_or(line, |label| line[label.len()..].trim());
        if !unlabelled.is_empty() {
            return unlabelled;
        }
    }
    ""
}

/// Whether `phrase`'s words appear in `words`, consecutively.
fn contains_phrase(words: &[&str], phrase: &[&str]) -> bool {
    !phrase.is_empty() && words.windows(phrase.len()).any(|window| window == phrase)
}

/// Grades `answer` against the accepted `answers` by the module's rule.
pub fn grade(answer: &str, answers: &[String]) -> Grade {
    let line = answer_line(answer);
    let said = normalize(line);
    let said_words: Vec<&str> = said.split_whitespace().collect();
    let accepted: Vec<String> = answers.iter().map(|a| normalize(a)).filter(|a| !a.is_empty()).collect();
    let exact = !said.is_empty() && accepted.contains(&said);
    let within = said_words.len() <= SHORT_ANSWER_WORDS
        && accepted.iter().any(|a| contains_phrase(&said_words, &a.split_whitespace().collect::<Vec<_>>()));
    let correct = exact || within;
    let accepted: Vec<&str> = accepted.iter().map(String::as_str).collect();
    let score = if correct { 1.0 } else { f1_score(&said, &accepted) };
    Grade { score, correct, extracted: (!line.is_empty()).then(|| line.to_owned()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn right(answer: &str, answers: &[&str]) -> bool {
        grade(answer, &answers.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>()).correct
    }

    #[test]
    fn exact_and_sentence_answers_are_right() {
        assert!(right("Justin Timberlake", &["Justin Timberlake"]));
        assert!(right("justin timberlake.", &["Justin Timberlake"]));
        assert!(right("Justin Timberlake performed the halftime show at Super Bowl 2018.", &["Justin Timberlake"]));
        assert!(right("Answer: The Eiffel Tower", &["Eiffel Tower"]));
        assert!(right("A: Aleck.", &["Aleck"]));
        assert!(right(
            "**Sri Lanka**\n\nIt was called Ceylon until 1972.",
            &["Ceylon/Sri Lanka", "Ceylon", "Sri Lanka"]
        ));
        // Number words and thousands separators, either side.
        assert!(right("There were three of them.", &["3"]));
        assert!(right("1,507 more", &["1507"]));
        assert!(right("Yes, she did.", &["yes"]));
    }

    #[test]
    fn partial_words_long_lines_and_other_lines_are_not() {
        // "Tim" is inside "Timberlake" but not a word of the answer.
        assert!(!right("Justin Timberlake", &["Tim"]));
        assert!(!right("Timberlake", &["Justin Timberlake"]));
        // 21 words: too long for an accepted answer inside it to count.
        let long =
            "It could be Paris or Rome or Madrid or Berlin or Vienna or Prague or Lisbon or Dublin or Oslo or Bern";
        assert!(long.split_whitespace().count() > SHORT_ANSWER_WORDS);
        assert!(!right(long, &["Paris"]));
        // Only the first line is read.
        assert!(!right("I am not sure.\nMaybe Paris.", &["Paris"]));
        // Nothing, and accepted answers that normalise to nothing, never match.
        assert!(!right("", &["Paris"]));
        assert!(!right("The", &["the"]));
        assert!(!right("1,5070", &["1507"]));
        assert_eq!(
            drop_thousands_separators("12,000,085 and 1,3 or 27,63,99,135, then 5,525."),
            "12000085 and 1,3 or 27,63,99,135, then 5525."
        );
    }

    #[test]
    fn wrong_answers_score_their_overlap() {
        let g = grade("Justin Bieber", &["Justin Timberlake".to_owned()]);
        assert!(!g.correct && (g.score - 0.5).abs() < 1e-9, "{g:?}");
        assert_eq!(g.extracted.as_deref(), Some("Justin Bieber"));
        assert_eq!(normalize("Twenty, 12,000 and 1,5"), "20 12000 and 1 5");
    }
}
