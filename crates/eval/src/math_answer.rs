//! Grading LaTeX math answers (MATH): find the final answer, normalise it
//! lightly, compare.
//!
//! The answer is the last `\boxed{…}` (what the prompt asks for), else what
//! follows the last "answer is" / "Answer:", else, when the reference is a
//! number, the last number in the text (GSM8K's convention).
//!
//! Normalisation removes what changes the look but not the value: `$`,
//! `\left`/`\right`, spacing commands, `\text{}` wrappers, degree, percent and
//! dollar signs, trailing units ("162 minutes", "15 cm^2"), a leading `x =`,
//! thousands separators; it reads "and" in a list as a comma; it writes `\dfrac` as `\frac` and `\frac12` as
//! `\frac{1}{2}`, and drops whitespace. Two answers are equal when their
//! normal forms are, when both are words (or lists of letters) equal up to
//! case, or when both are numbers (`0.5`, `\frac{1}{2}`, `1/2`) of the same
//! value. It does no algebra: `\frac{\sqrt{3}}{3}` is not `\frac{1}{\sqrt{3}}`.

use crate::grade::extract_number;
use crate::task::Grade;

/// The content of the last `\boxed{…}` (or `\fbox{…}`, or `\boxed 5`) in `text`, braces balanced.
pub fn last_boxed(text: &str) -> Option<&str> {
    let (at, command) = ["\\boxed", "\\fbox"]
        .iter()
        .filter_map(|command| text.rfind(command).map(|at| (at, *command)))
        .max_by_key(|(at, _)| *at)?;
    let rest = &text[at + command.len()..];
    if let Some(inside) = rest.strip_prefix('{') {
        return braced(inside).map(|(content, _)| content);
    }
    // `\boxed 5`: up to the next space or `$`.
    let rest = rest.strip_prefix(' ')?;
    let end = rest.find(|c: char| c.is_whitespace() || c == '$').unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// Splits `text`, which follows an opening `{`, at its matching `}`: (inside, after).
fn braced(text: &str) -> Option<(&str, &str)> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some((&text[..i], &text[i + 1..])),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The final answer of a worked solution, as the module describes (without the number fallback).
pub fn extract(answer: &str) -> Option<String> {
    if let Some(boxed) = last_boxed(answer) {
        return Some(boxed.trim().to_owned());
    }
    // ASCII lowercase keeps byte offsets the same in both strings.
    let lower = answer.to_ascii_lowercase();
    let at = ["answer is", "answer:"].iter().filter_map(|m| lower.rfind(m).map(|at| at + m.len())).max()?;
    let rest = answer.get(at..)?.lines().next().unwrap_or_default();
    // Up to the end of the sentence: ". " or a final ".".
    let rest = rest.split(". ").next().unwrap_or_default();
    let rest = rest.trim().trim_end_matches("I hope it is correct").trim().trim_end_matches('.');
    let rest = rest.trim().trim_matches('$').trim();
    (!rest.is_empty()).then(|| rest.to_owned())
}

/// Replaces each `command{X}` by `X`.
fn unwrap_command(text: &str, command: &str) -> String {
    let opening = format!("{command}{{");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&opening) {
        out.push_str(&rest[..at]);
        match braced(&rest[at + opening.len()..]) {
            Some((inside, after)) => {
                out.push_str(inside);
                rest = after;
            }
            None => {
                out.push_str(&rest[at..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Removes `command` where it is not the start of a longer command (`\left` but not `\leftarrow`).
fn remove_command(text: &str, command: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(command) {
        let after = &rest[at + command.len()..];
        out.push_str(&rest[..at]);
        if after.starts_with(|c: char| c.is_ascii_alphabetic()) {
            out.push_str(command);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Braces the arguments of `command` given without them: `\frac12` → `\frac{1}{2}`, `\sqrt2` → `\sqrt{2}`.
fn brace_arguments(text: &str, command: &str, arguments: usize) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(at) = rest.find(command) {
        out.push_str(&rest[..at + command.len()]);
        rest = &rest[at + command.len()..];
        if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue; // a longer command
        }
        for _ in 0..arguments {
            if let Some(inside) = rest.strip_prefix('{') {
                let Some((argument, after)) = braced(inside) else { break };
                out.push_str(&format!("{{{argument}}}"));
                rest = after;
            } else if let Some(c) = rest.chars().next().filter(char::is_ascii_alphanumeric) {
                out.push_str(&format!("{{{c}}}"));
                rest = &rest[1..];
            } else {
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `word` is a unit after a value: `minutes`, `cm^2`, `in^{3}`; a single
/// letter is a variable (`x`, the `i` of `3 + 2 i`), not a unit.
fn is_unit(word: &str) -> bool {
    let word = ["^2", "^3", "^{2}", "^{3}"].iter().find_map(|power| word.strip_suffix(power)).unwrap_or(word);
    word.len() > 1 && word.chars().all(|c| c.is_ascii_alphabetic())
}

/// The normal form of a LaTeX answer (see the module).
pub fn normalize(answer: &str) -> String {
    // LaTeX's row break `\\` must not read as `\` followed by a spacing command.
    const ROW_BREAK: &str = "\u{1}";
    let mut s = answer.trim().replace("\\\\", ROW_BREAK);
    for command in ["\\text", "\\mbox"] {
        s = s.replace(&format!("{command} {{"), &format!("{command}{{"));
    }
    for command in ["\\text", "\\textbf", "\\textit", "\\textrm", "\\mathrm", "\\mathbf", "\\mbox"] {
        s = unwrap_command(&s, command);
    }
    for (from, to) in [("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("{,}", ",")] {
        s = s.replace(from, to);
    }
    for command in ["\\left", "\\right", "\\displaystyle"] {
        s = remove_command(&s, command);
    }
    for mark in [
        "^{\\circ}",
        "^\\circ",
        "\\circ",
        "°",
        "\\%",
        "%",
        "\\$",
        "$",
        "\\!",
        "\\,",
        "\\;",
        "\\:",
        "\\ ",
        "\\qquad",
        "\\quad",
    ] {
        s = s.replace(mark, " ");
    }
    // Trailing unit words after a value: "162 minutes", "\frac{3}{4}\pi inches", "15 cm^2".
    let mut words: Vec<&str> = s.trim_end_matches(|c: char| c == '.' || c.is_whitespace()).split_whitespace().collect();
    while words.len() > 1
        && words.last().is_some_and(|w| is_unit(w))
        && words[..words.len() - 1].iter().any(|w| w.chars().any(|c| c.is_ascii_digit()))
    {
        words.pop();
    }
    // "7, -2, and -5" and "12 and 13" are lists: 7,-2,-5 and 12,13.
    let listed = words.iter().any(|w| w.contains(','));
    let words: Vec<&str> =
        words.into_iter().filter(|w| !(listed && *w == "and")).map(|w| if w == "and" { "," } else { w }).collect();
    let mut s: String = words.concat();
    // A leading `x =` or `x \in` when the rest is the value.
    for relation in ["=", "\\in"] {
        let mut chars = s.chars();
        if chars.next().is_some_and(|c| c.is_ascii_alphabetic()) {
            if let Some(value) = chars.as_str().strip_prefix(relation) {
                if !value.is_empty() && !value.contains('=') {
                    s = value.to_owned();
                }
            }
        }
    }
    s = brace_arguments(&s, "\\frac", 2);
    s = brace_arguments(&s, "\\sqrt", 1);
    s = crate::short_answer::drop_thousands_separators(&s);
    let s = s.replace(ROW_BREAK, "\\\\");
    let s = s.trim_end_matches('.');
    // "(E)" is the letter E.
    match s.strip_prefix('(').and_then(|inner| inner.strip_suffix(')')) {
        Some(letter) if letter.len() == 1 && letter.chars().all(|c| c.is_ascii_alphabetic()) => letter.to_owned(),
        _ => s.to_owned(),
    }
}

/// The value of a normalised answer that is a number: `-3`, `.5`, `\frac{1}{2}`, `-1/2`.
fn value(normal: &str) -> Option<f64> {
    let number = |text: &str| -> Option<f64> {
        let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.') && text != ".";
        plain.then(|| text.parse::<f64>().ok()).flatten()
    };
    let (sign, unsigned) = match normal.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, normal),
    };
    if let Some(n) = number(unsigned) {
        return Some(sign * n);
    }
    let (numerator, denominator) = match unsigned.strip_prefix("\\frac{") {
        Some(fraction) => {
            let (numerator, rest) = braced(fraction)?;
            let denominator = rest.strip_prefix('{')?.strip_suffix('}')?;
            (numerator, denominator)
        }
        None => unsigned.split_once('/')?,
    };
    let (numerator, denominator) = (number(numerator)?, number(denominator)?);
    (denominator != 0.0).then(|| sign * numerator / denominator)
}

/// Whether two answers are the same by the module's rule.
pub fn equivalent(answer: &str, reference: &str) -> bool {
    let (a, b) = (normalize(answer), normalize(reference));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let words = |s: &str| s.chars().all(|c| c.is_alphabetic() || c == ',');
    if a == b || (words(&a) && words(&b) && a.eq_ignore_ascii_case(&b)) {
        return true;
    }
    match (value(&a), value(&b)) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * y.abs().max(1.0),
        _ => false,
    }
}

/// Grades a worked solution against the reference answer.
pub fn grade(answer: &str, reference: &str) -> Grade {
    let extracted = extract(answer).or_else(|| {
        value(&normalize(reference))?;
        extract_number(answer).map(|n| n.to_string())
    });
    let correct = extracted.as_deref().is_some_and(|said| equivalent(said, reference));
    Grade { score: f64::from(u8::from(correct)), correct, extracted }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_boxed_answer_is_found_with_nested_braces() {
        assert_eq!(last_boxed("so $\\boxed{\\frac{1}{2}}$."), Some("\\frac{1}{2}"));
        assert_eq!(last_boxed("\\boxed{1} then \\boxed{2}"), Some("2"));
        assert_eq!(last_boxed("\\fbox{x}"), Some("x"));
        assert_eq!(last_boxed("$\\boxed 5$"), Some("5"));
        assert_eq!(last_boxed("\\boxed{\\frac{1}{2}"), None, "unbalanced");
        assert_eq!(last_boxed("no box"), None);
    }

    #[test]
    fn answers_are_found_without_a_box() {
        assert_eq!(
            extract("Final Answer: The final answer is $\\frac{2}{3}$. I hope it is correct."),
            Some("\\frac{2}{3}".into())
        );
        assert_eq!(extract("So the answer is 5. Then we check it."), Some("5".into()));
        assert_eq!(extract("x = 4"), None);
        // With a numeric reference, the last number counts; with another, nothing.
        assert!(grade("Adding them gives 4, so 2 + 2 = 4", "4").correct);
        assert_eq!(grade("x = 4", "x^2").extracted, None);
    }

    #[test]
    fn forms_of_the_same_answer_are_equal() {
        let same = [
            ("\\dfrac{1}{2}", "\\frac12"),
            ("0.5", "\\frac{1}{2}"),
            ("1/2", "\\frac{1}{2}"),
            ("-\\frac{2}{3}", "-\\frac23"),
            ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
            ("\\frac{270}7\\text{ degrees}", "\\frac{270}{7}"),
            ("14,\\!400", "14400"),
            ("12,000,085", "12000085"),
            ("\\$40", "40"),
            ("90^\\circ", "90"),
            ("162\\text{ minutes}", "162"),
            ("15\\mbox{ cm}^2", "15"),
            ("18\\text{ ways.}", "18"),
            ("8\\sqrt{3} \\text { square inches}", "8\\sqrt3"),
            ("\\frac{12}{5,\\!525}", "\\frac{12}{5525}"),
            ("7, -2, \\text{ and } -5", "7,-2,-5"),
            ("12\\text{ and }13", "12, 13"),
            ("x=5", "5"),
            ("x \\in [-2,7]", "[-2,7]"),
            ("\\text{Evelyn}", "evelyn"),
            ("\\text{(E)}", "E"),
            ("\\text{B, E, G}", "B,E,G"),
            ("2\\sqrt{3}", "2\\sqrt3"),
            ("5.", "5"),
            ("10\\%", "10"),
            ("\\begin{pmatrix} 6 \\\\ 3 \\\\ 0 \\end{pmatrix}", "\\begin{pmatrix}6\\\\3\\\\0\\end{pmatrix}"),
        ];
        for (a, b) in same {
            assert!(equivalent(a, b), "{a} = {b}: {} vs {}", normalize(a), normalize(b));
        }
    }

    #[test]
    fn different_answers_are_not() {
        let different = [
            ("4,6,14,15", "461415"),
            ("1,3", "13"),
            ("27^\\circ, 63^\\circ, 99^\\circ, 135^\\circ", "27,63,99135"),
            ("\\frac{1}{3}", "0.33"),
            ("2\\sqrt{3}", "2\\sqrt{2}"),
            ("x+1", "x-1"),
            ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"),
            ("", ""),
            ("\\rightarrow", ""),
            ("y=2x", "2x+1"),
            ("x^3 + 2x^2 + x", "x^3+2x^2"),
            ("\\frac{3}{2} + \\frac{3}{2} i", "\\frac{3}{2}+\\frac{3}{2}"),
            ("2 \\tan x", "2\\tan"),
        ];
        for (a, b) in different {
            assert!(!equivalent(a, b), "{a} ≠ {b}: {} vs {}", normalize(a), normalize(b));
        }
        // `\right` goes, `\rightarrow` stays.
        assert_eq!(normalize("\\left(1\\right)\\rightarrow"), "(1)\\rightarrow");
    }

    #[test]
    fn worked_solutions_are_graded() {
        let solution = "We have $r = 3$ and $\\theta = \\frac{\\pi}{2}$, so the answer is $\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}$.";
        let g = grade(solution, "\\left( 3, \\frac{\\pi}{2} \\right)");
        assert!(g.correct && g.score == 1.0, "{g:?}");
        assert_eq!(g.extracted.as_deref(), Some("\\left(3, \\frac{\\pi}{2}\\right)"));
        assert!(!grade("The answer is $\\boxed{3}$.", "\\frac{1}{2}").correct);
        assert!(!grade("I could not solve it.", "\\frac{1}{2}").correct);
    }

    proptest::proptest! {
        /// Any text normalises and grades without panicking.
        #[test]
        fn any_answer_grades_safely(answer in "\\PC{0,60}") {
            let _ = grade(&answer, "\\frac{1}{2}");
            let _ = normalize(&answer);
        }
    }
}
