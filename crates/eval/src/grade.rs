//! Graders: pure functions from an answer (and the reference) to a grade.

/// The choice a multiple-choice answer picks, as an index into `choices`.
///
/// Accepts, in order of trust: an explicit "answer is X" / "Answer: X"; a
/// letter standing alone at the start ("B", "(B)", "B)", "B.", "**B**"); a
/// lone letter anywhere when only one valid letter appears alone; and the
/// text of exactly one choice appearing in the answer. An answer that walks
/// through the options ("Let's analyze each option: A. …") and is cut off
/// before choosing picks nothing.
pub fn extract_choice(answer: &str, choices: &[&str]) -> Option<usize> {
    let letters: Vec<char> = (0..choices.len()).filter_map(|i| char::from_u32('A' as u32 + i as u32)).collect();
    let index_of = |c: char| letters.iter().position(|&l| l == c.to_ascii_uppercase());
    let cleaned: String = answer.chars().map(|c| if matches!(c, '*' | '_' | '`') { ' ' } else { c }).collect();
    let lower = cleaned.to_lowercase();

    for marker in ["answer is", "answer:", "correct option is", "correct choice is", "option"] {
        if let Some(at) = lower.find(marker) {
            let rest = &cleaned[at + marker.len()..];
            if let Some(letter) = first_standalone_letter(rest, 12) {
                if let Some(index) = index_of(letter) {
                    return Some(index);
                }
            }
        }
    }
    if let Some(letter) = first_standalone_letter(&cleaned, 3) {
        if let Some(index) = index_of(letter) {
            return Some(index);
        }
    }
    // An answer that goes through the options one by one names them without
    // choosing; unless it says "the answer is", what follows would be guessing.
    if ["analy", "each option", "let's", "let us", "consider each", "step by step"].iter().any(|m| lower.contains(m)) {
        return None;
    }
    let standalone: Vec<usize> = standalone_letters(&cleaned).into_iter().filter_map(|(_, c)| index_of(c)).collect();
    if !standalone.is_empty() && standalone.iter().all(|&i| i == standalone[0]) {
        return Some(standalone[0]);
    }
    let matching: Vec<usize> = choices
        .iter()
        .enumerate()
        .filter(|(_, choice)| {
            let choice = normalize_answer(choice);
            !choice.is_empty() && normalize_answer(answer).contains(&choice)
        })
        .map(|(i, _)| i)
        .collect();
    (matching.len() == 1).then(|| matching[0])
}

/// A letter that stands alone (not part of a word), starting within the first `within` characters.
fn first_standalone_letter(text: &str, within: usize) -> Option<char> {
    let trimmed = text.trim_start();
    standalone_letters(trimmed).into_iter().find(|(at, _)| *at < within).map(|(_, c)| c)
}

/// Letters that stand alone, with their positions: "(B)", "B.", "B)", " B ", but
/// not the "A" in "A cat"; a lowercase one only when it is the whole answer ("b").
fn standalone_letters(text: &str) -> Vec<(usize, char)> {
    let chars: Vec<char> = text.chars().collect();
    let whole_answer_is_short = text.trim().chars().count() <= 3;
    let mut found = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphabetic() {
            continue;
        }
        let before = i.checked_sub(1).map(|j| chars[j]);
        let after = chars.get(i + 1).copied();
        let alone_before = before.is_none_or(|b| !b.is_alphanumeric());
        let alone_after = after.is_none_or(|a| !a.is_alphanumeric());
        if !(alone_before && alone_after) {
            continue;
        }
        // "A" or "I" followed by a space and a word is an article or a pronoun, not a choice.
        let next_word = after == Some(' ') && chars.get(i + 2).is_some_and(|n| n.is_alphabetic());
        if c.is_ascii_uppercase() && !(matches!(c, 'A' | 'I') && next_word) {
            found.push((i, c));
        } else if c.is_ascii_lowercase() && whole_answer_is_short {
            found.push((i, c.to_ascii_uppercase()));
        }
    }
    found
}

/// The number an answer ends on (GSM8K's convention), after "####" if present.
///
/// Handles thousands separators, currency and percent signs, signs and decimals.
pub fn extract_number(answer: &str) -> Option<f64> {
    let tail = answer.rsplit_once("####").map_or(answer, |(_, after)| after);
    let mut last = None;
    let chars: Vec<char> = tail.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let negative = i > 0 && chars[i - 1] == '-' && (i < 2 || !chars[i - 2].is_ascii_digit());
            let mut text = String::new();
            while i < chars.len() {
                let c = chars[i];
                let next_is_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
                if c.is_ascii_digit() {
                    text.push(c);
                } else if c == ',' && next_is_digit {
                    // a thousands separator
                } else if c == '.' && next_is_digit && !text.contains('.') {
                    text.push('.');
                } else {
                    break;
                }
                i += 1;
            }
            if let Ok(value) = text.parse::<f64>() {
                last = Some(if negative { -value } else { value });
            }
        } else {
            i += 1;
        }
    }
    last
}

/// Yes or no, from the first word that says so ("Yes.", "no,", "True", "**No**").
pub fn extract_yes_no(answer: &str) -> Option<bool> {
    let lower = answer.to_lowercase();
    for word in lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(12) {
        match word {
            "yes" | "true" | "correct" => return Some(true),
            "no" | "false" | "incorrect" | "not" => return Some(false),
            _ => {}
        }
    }
    None
}

/// SQuAD's normalization: lowercase, no punctuation, no articles, single spaces.
pub fn normalize_answer(text: &str) -> String {
    let lower: String =
        text.to_lowercase().chars().map(|c| if c.is_alphanumeric() || c.is_whitespace() { c } else { ' ' }).collect();
    lower.split_whitespace().filter(|w| !matches!(*w, "a" | "an" | "the")).collect::<Vec<_>>().join(" ")
}

/// Whether the answer equals any reference after normalization.
pub fn exact_match(answer: &str, references: &[&str]) -> bool {
    let answer = normalize_answer(answer);
    references.iter().any(|r| normalize_answer(r) == answer)
}

/// SQuAD's token-level F1, the best over the references.
pub fn f1_score(answer: &str, references: &[&str]) -> f64 {
    let predicted = normalize_answer(answer);
    let predicted: Vec<&str> = predicted.split_whitespace().collect();
    references
        .iter()
        .map(|reference| {
            let reference = normalize_answer(reference);
            let reference: Vec<&str> = reference.split_whitespace().collect();
            if predicted.is_empty() || reference.is_empty() {
                return f64::from(u8::from(predicted == reference));
            }
            let mut unused = reference.clone();
            let mut common = 0usize;
            for token in &predicted {
                if let Some(at) = unused.iter().position(|r| r == token) {
                    unused.swap_remove(at);
                    common += 1;
                }
            }
            if common == 0 {
                return 0.0;
            }
            let precision = common as f64 / predicted.len() as f64;
            let recall = common as f64 / reference.len() as f64;
            2.0 * precision * recall / (precision + recall)
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHOICES: &[&str] = &["Berlin", "Paris", "Rome", "Madrid"];

    #[test]
    fn choices_as_small_models_write_them() {
        let cases = [
            ("B", Some(1)),
            ("b", Some(1)),
            ("(B)", Some(1)),
            ("B) Paris", Some(1)),
            ("**B**", Some(1)),
            ("The answer is C.", Some(2)),
            ("Answer: D - Madrid", Some(3)),
            ("I think the correct option is (A) Berlin", Some(0)),
            ("Paris is the capital of France.", Some(1)),
            ("A cat sat on the mat.", None),
            ("I do not know.", None),
            ("Berlin or Rome?", None),
            ("E", None),
        ];
        for (answer, expected) in cases {
            assert_eq!(extract_choice(answer, CHOICES), expected, "{answer:?}");
        }
    }

    /// Answers SmolLM2-135M and Qwen2.5-Coder-1.5B actually gave to ARC and MMLU in `edgeway eval`.
    #[test]
    fn choices_as_the_models_here_answered() {
        let cases = [
            ("C. non-volcanic islands", Some(2)),
            ("The correct answer is A. coal, oil, and gas.", Some(0)),
            ("The correct answer is B. increases by 1.\n\nThe Periodic Table is", Some(1)),
            ("A is incorrect. The correct answer is C.\n\nThe correct answer is", Some(2)),
            ("The correct answer is:\n\nD. not relieve the architect of liability, unless there was", Some(3)),
            ("The correct method to gather information is:\n\nD. Pick one day a year during the migration.", Some(3)),
            ("The best way to show the data is a line graph.", Some(3)),
            (
                "This problem involves a scenario of mistaken identity. Let's analyze each option step by step:\n\nA. **Preval",
                None,
            ),
            ("To determine which statement is incorrect, let's analyze each option in the context of", None),
            ("To determine the correct answer, we need to analyze the legal implications of the radar finding", None),
        ];
        let choices = ["bar graph", "pie chart", "table", "line graph"];
        for (answer, expected) in cases {
            assert_eq!(extract_choice(answer, &choices), expected, "{answer:?}");
        }
    }

    #[test]
    fn numbers_as_small_models_write_them() {
        let cases = [
            ("#### 42", Some(42.0)),
            ("She has 3 apples, then buys 5 more, so 8 apples.", Some(8.0)),
            ("The total is $1,234.50.", Some(1234.5)),
            ("It drops to -7 degrees", Some(-7.0)),
            ("Step 1: 2+2=4. #### 18", Some(18.0)),
            ("5-3 = 2", Some(2.0)),
            ("no numbers here", None),
            ("About 12.5%", Some(12.5)),
        ];
        for (answer, expected) in cases {
            assert_eq!(extract_number(answer), expected, "{answer:?}");
        }
    }

    #[test]
    fn squad_exact_match_and_f1() {
        assert!(exact_match("The Eiffel Tower!", &["eiffel tower"]));
        assert!(!exact_match("the tower", &["eiffel tower"]));
        assert_eq!(f1_score("Eiffel Tower", &["the Eiffel Tower in Paris", "Eiffel Tower"]), 1.0);
        let partial = f1_score("tower in Paris", &["Eiffel Tower"]);
        assert!((partial - 0.4).abs() < 1e-9, "{partial}");
        assert_eq!(f1_score("", &["x"]), 0.0);
    }

    proptest::proptest! {
        /// Any text grades without panicking, to an index in range.
        #[test]
        fn any_answer_grades_safely(answer in "\\PC{0,80}") {
            if let Some(index) = extract_choice(&answer, CHOICES) {
                proptest::prop_assert!(index < CHOICES.len());
            }
            let _ = extract_number(&answer);
            let f1 = f1_score(&answer, &["Eiffel Tower"]);
            proptest::prop_assert!((0.0..=1.0).contains(&f1));
        }
    }
}
