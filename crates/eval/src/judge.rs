//! Grading open answers with a judge model ("LLM as a judge"), for sets with no single right
//! answer (MT-Bench).
//!
//! The judge is any [`Backend`] and a route on it: in `edgeway eval`, the same router that
//! answered, asked for the judge's model, tier or side, so judging goes through exactly what
//! answering does. It rates one answer from 1 to 10 against the reference answer when there is
//! one ([`Judge::grade`]), or says which of two answers is better ([`Judge::prefer`], and
//! [`Judge::compare`] with the positions swapped). Its reply is held to a JSON schema (a short
//! reason, then the rating or verdict), and read leniently when a cloud ignores the schema.
//!
//! A rating becomes a grade of `(rating - 1) / 9`, so 1 is 0 and 10 is 1, and counts as correct
//! from [`PASS_RATING`]. A judge that fails or gives no rating is an error, never a 0: the answer
//! stays unlogged and a later run asks again.

use edgeway_core::{
    Backend, BackendError, ChatMessage, GenerateRequest, GenerationEvent, OutputFormat, Prompt, SamplingParams,
};
use serde_json::{json, Value};

use crate::dataset::{EvalItem, Reference};
use crate::pairwise::{position_swapped, PairOutcome, Verdict};
use crate::run::EvalRoute;
use crate::task::Grade;

/// The lowest rating that counts as a correct answer ("good, with minor flaws" and up).
pub const PASS_RATING: f64 = 7.0;

/// Tokens the judge may write: the schema holds its reason to 400 characters, so this is ample.
pub const JUDGE_MAX_TOKENS: u32 = 256;

/// The longest reason the schema allows, so a rambling judge still reaches its rating.
const MAX_REASON_CHARS: u32 = 400;

/// Each text shown to the judge (question, reference, answer) is cut after this many
/// characters, so two answers and a reference fit a small judge's context.
const MAX_TEXT_CHARS: usize = 3000;

/// What the judge is told when rating one answer.
const RATING_RUBRIC: &str = "You grade an AI assistant's answer to a user's question. Judge how well \
the answer does what the question asks. Correctness comes first: when a reference answer is given, check the \
assistant's answer against it, and rate a wrong result low however well it is written. Then ask whether it is \
useful, on topic, thorough, original where the task calls for it, and clear; length is no merit in itself. Give \
your reason in at most three sentences, then rate the answer from 1 (wrong or useless) to 10 (correct and \
excellent). Reply with JSON only: {\"reason\": \"...\", \"rating\": N}.";

/// What the judge is told when comparing two answers.
const PAIR_RUBRIC: &str = "You compare two answers, A and B, that AI assistants gave to the same question, \
and decide which does better what the question asks. Correctness comes first: when a reference answer is given, \
check both answers against it. Then ask which is more useful, on topic, thorough, original and clear. Do not let \
the order in which the answers are shown or their length sway you, and say \"tie\" when neither is better. Give \
your reason in at most three sentences, then your verdict. Reply with JSON only: \
{\"reason\": \"...\", \"verdict\": \"A\"}, with \"A\", \"B\" or \"tie\" as the verdict.";

/// Why the judge gave no rating or verdict.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The backend refused or failed.
    #[error("the judge failed: {0}")]
    Backend(#[from] BackendError),
    /// The stream ended without its final event.
    #[error("the judge hung up before finishing")]
    Incomplete,
    /// Another model answered for the judge (a fallback), so it is not the judge asked for.
    #[error("asked the judge {asked} but {answered} answered; not judged")]
    WrongJudge {
        /// The judge's route.
        asked: String,
        /// The model that answered.
        answered: String,
    },
    /// The reply holds no rating from 1 to 10.
    #[error("the judge gave no rating from 1 to 10: {said:?}")]
    NoRating {
        /// The start of what it said.
        said: String,
    },
    /// The reply holds no verdict (A, B or tie).
    #[error("the judge gave no verdict: {said:?}")]
    NoVerdict {
        /// The start of what it said.
        said: String,
    },
}

/// A judge: a backend and where on it the judge's model is.
pub struct Judge<'a> {
    backend: &'a dyn Backend,
    route: EvalRoute,
}

impl<'a> Judge<'a> {
    /// The judge `route` names on `backend` (in `edgeway eval`, the router itself).
    pub fn new(backend: &'a dyn Backend, route: EvalRoute) -> Self {
        Self { backend, route }
    }

    /// The judge's name, as grades record it (`cloud`, `tier1`, a model's name).
    pub fn label(&self) -> String {
        self.route.label()
    }

    /// The request that asks for a rating of `answer` to `item`.
    pub fn rating_request(&self, item: &EvalItem, answer: &str) -> GenerateRequest {
        let mut text = shown(item);
        text.push_str(&tagged("answer", answer));
        let schema = json!({
            "type": "object",
            "properties": {
                "reason": {"type": "string", "maxLength": MAX_REASON_CHARS},
                "rating": {"type": "integer", "enum": (1..=10).collect::<Vec<u32>>()},
            },
            "required": ["reason", "rating"],
            "additionalProperties": false,
        });
        self.request(item, RATING_RUBRIC, text, schema)
    }

    /// The request that asks which of `a` (shown first) and `b` answers `item` better.
    pub fn pair_request(&self, item: &EvalItem, a: &str, b: &str) -> GenerateRequest {
        let mut text = shown(item);
        text.push_str(&tagged("answer_a", a));
        text.push_str("\n\n");
        text.push_str(&tagged("answer_b", b));
        let schema = json!({
            "type": "object",
            "properties": {
                "reason": {"type": "string", "maxLength": MAX_REASON_CHARS},
                "verdict": {"type": "string", "enum": ["A", "B", "tie"]},
            },
            "required": ["reason", "verdict"],
            "additionalProperties": false,
        });
        self.request(item, PAIR_RUBRIC, text, schema)
    }

    /// Greedy, short, held to `schema`: the rubric as the system message, the texts as the user's.
    fn request(&self, item: &EvalItem, rubric: &str, text: String, schema: Value) -> GenerateRequest {
        GenerateRequest {
            prompt: Prompt::Chat(vec![ChatMessage::new("system", rubric), ChatMessage::new("user", text)]),
            sampling: SamplingParams {
                temperature: 0.0,
                max_tokens: Some(JUDGE_MAX_TOKENS),
                seed: Some(0),
                format: Some(OutputFormat::JsonSchema {
                    name: Some("judgement".into()),
                    schema: schema.to_string(),
                    // `maxLength` is not for every cloud's strict mode; the local engine enforces it anyway.
                    strict: false,
                }),
                ..SamplingParams::default()
            },
            route: self.route.hints(item.domain.clone()),
            tools: None,
            query_embedding: None,
        }
    }

    /// The judge's rating of `answer` to `item`, from 1 to 10.
    pub async fn rate(&self, item: &EvalItem, answer: &str) -> Result<f64, JudgeError> {
        let said = self.ask(self.rating_request(item, answer)).await?;
        parse_rating(&said).ok_or_else(|| JudgeError::NoRating { said: start_of(&said) })
    }

    /// The grade of `answer` to `item`: the judge's rating mapped onto `[0, 1]` ([`grade_of`]).
    pub async fn grade(&self, item: &EvalItem, answer: &str) -> Result<Grade, JudgeError> {
        Ok(grade_of(self.rate(item, answer).await?, &self.label()))
    }

    /// Which of `a` (shown first) and `b` answers `item` better, by the judge, in this order.
    pub async fn prefer(&self, item: &EvalItem, a: &str, b: &str) -> Result<Verdict, JudgeError> {
        let said = self.ask(self.pair_request(item, a, b)).await?;
        parse_verdict(&said).ok_or_else(|| JudgeError::NoVerdict { said: start_of(&said) })
    }

    /// The edge's answer against the cloud's, judged in both orders ([`position_swapped`]).
    pub async fn compare(&self, item: &EvalItem, edge: &str, cloud: &str) -> Result<PairOutcome, JudgeError> {
        position_swapped(edge, cloud, |a, b| self.prefer(item, a, b)).await
    }

    /// The judge's whole reply to `request`, refused if someone else answered it.
    async fn ask(&self, request: GenerateRequest) -> Result<String, JudgeError> {
        let mut generation = self.backend.submit(request)?;
        let mut route = None;
        let mut text = String::new();
        loop {
            match generation.next_event().await {
                Some(Ok(GenerationEvent::Routed(info))) => route = Some(info),
                Some(Ok(GenerationEvent::Delta { text: delta, .. })) => text.push_str(&delta),
                Some(Ok(GenerationEvent::ToolCall(_))) => {}
                Some(Ok(GenerationEvent::Finished(_))) => break,
                Some(Err(error)) => return Err(error.into()),
                None => return Err(JudgeError::Incomplete),
            }
        }
        if let Some(info) = route.filter(|info| !self.route.answered_by(info)) {
            return Err(JudgeError::WrongJudge {
                asked: self.label(),
                answered: format!("{} ({})", info.model, info.target.as_str()),
            });
        }
        Ok(text)
    }
}

/// The grade of a `rating` (1 to 10) by `judge`: `(rating - 1) / 9`, correct from [`PASS_RATING`].
pub fn grade_of(rating: f64, judge: &str) -> Grade {
    Grade {
        score: ((rating - 1.0) / 9.0).clamp(0.0, 1.0),
        correct: rating >= PASS_RATING,
        extracted: Some(format!("{rating}/10 by {judge}")),
    }
}

/// The question and the reference answer (when there is one), tagged for the judge.
fn shown(item: &EvalItem) -> String {
    let mut text = tagged("question", &item.question);
    text.push_str("\n\n");
    if let Reference::Judged(Some(reference)) = &item.reference {
        text.push_str(&tagged("reference_answer", reference));
        text.push_str("\n\n");
    }
    text
}

/// `text` between `<tag>` and `</tag>`, cut to [`MAX_TEXT_CHARS`].
fn tagged(tag: &str, text: &str) -> String {
    let text = text.trim();
    let cut = match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((end, _)) => format!("{}\n[… the rest is cut]", &text[..end]),
        None => text.to_owned(),
    };
    format!("<{tag}>\n{cut}\n</{tag}>")
}

/// The first 200 characters of a reply, for error messages.
fn start_of(said: &str) -> String {
    said.chars().take(200).collect()
}

/// Reads a rating from 1 to 10 out of a judge's reply: the `rating` of a JSON reply (even one
/// cut short), else the last `[[N]]`, else the last "rating: N", "N/10" or "N out of 10".
/// A rating outside 1..=10 is no rating.
pub fn parse_rating(text: &str) -> Option<f64> {
    let rating = match json_field(text, "rating") {
        Some(Value::Number(number)) => number.as_f64(),
        Some(Value::String(text)) => leading_number(text.trim()),
        Some(_) => None,
        None => last_bracketed(text, leading_number).or_else(|| phrased_rating(text)),
    }?;
    (1.0..=10.0).contains(&rating).then_some(rating)
}

/// Reads a verdict out of a judge's reply: the `verdict` of a JSON reply, else the last
/// `[[A]]`, `[[B]]` or `[[C]]`/`[[tie]]`.
pub fn parse_verdict(text: &str) -> Option<Verdict> {
    let word =
        |word: &str| match word.trim().trim_matches(|c: char| c == '"' || c == '\'').to_ascii_lowercase().as_str() {
            "a" | "assistant a" | "answer a" => Some(Verdict::A),
            "b" | "assistant b" | "answer b" => Some(Verdict::B),
            "c" | "tie" | "draw" | "neither" => Some(Verdict::Tie),
            _ => None,
        };
    match json_field(text, "verdict") {
        Some(Value::String(verdict)) => word(&verdict),
        Some(_) => None,
        None => last_bracketed(text, word),
    }
}

/// The value of `key` in the JSON object the reply is (or holds between its first `{` and
/// last `}`); for a reply cut short, a number or string right after the last `"key":`.
fn json_field(text: &str, key: &str) -> Option<Value> {
    let whole = text.trim();
    let inner = match (whole.find('{'), whole.rfind('}')) {
        (Some(start), Some(end)) if start < end => &whole[start..=end],
        _ => whole,
    };
    for candidate in [whole, inner] {
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(candidate) {
            return fields.get(key).cloned();
        }
    }
    // Cut short (or with junk around it): scan for the key by hand.
    let quoted = format!("\"{key}\"");
    let after = &whole[whole.rfind(&quoted)? + quoted.len()..];
    let value = after.trim_start().strip_prefix(':')?.trim_start();
    if let Some(string) = value.strip_prefix('"') {
        return string.find('"').map(|end| Value::String(string[..end].to_owned()));
    }
    let end = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
    value[..end].parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
}

/// The last `[[…]]` in `text` whose inside `read` accepts.
fn last_bracketed<T>(text: &str, read: impl Fn(&str) -> Option<T>) -> Option<T> {
    let mut end = text.len();
    while let Some(open) = text[..end].rfind("[[") {
        let inside = &text[open + 2..];
        if let Some(close) = inside.find("]]") {
            if let Some(value) = read(inside[..close].trim()) {
                return Some(value);
            }
        }
        end = open;
    }
    None
}

/// The number `text` starts with (`7`, `8.5`; `7/10` reads 7).
fn leading_number(text: &str) -> Option<f64> {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let number = text[..end].trim_end_matches('.');
    if number.is_empty() {
        return None;
    }
    // "7/10" is out of ten; any other fraction is not a rating.
    let out_of_ten = match text[end..].trim_start().strip_prefix('/') {
        Some(denominator) => denominator.trim() == "10",
        None => true,
    };
    out_of_ten.then(|| number.parse().ok()).flatten()
}

/// The last rating written out in words: "rating: 7", "rating of 7", "7/10", "7 out of 10".
fn phrased_rating(text: &str) -> Option<f64> {
    let lower = text.to_ascii_lowercase();
    let mut found: Option<(usize, f64)> = None;
    let mut keep = |at: usize, number: Option<f64>| {
        if let Some(number) = number {
            if found.is_none_or(|(last, _)| at >= last) {
                found = Some((at, number));
            }
        }
    };
    // "rating", then up to a few connecting characters or words, then the number.
    for (at, _) in lower.match_indices("rating") {
        let rest = lower[at + "rating".len()..].trim_start_matches([':', '*', ' ']);
        let rest = ["is ", "of ", "= "].iter().find_map(|word| rest.strip_prefix(word)).unwrap_or(rest).trim_start();
        keep(at, leading_number_only(rest));
    }
    // "N/10" and "N out of 10", the number before the marker.
    for marker in ["/10", " out of 10"] {
        for (at, _) in lower.match_indices(marker) {
            let followed_by_digit = lower[at + marker.len()..].starts_with(|c: char| c.is_ascii_digit());
            let before = lower[..at].trim_end();
            let start = before.rfind(|c: char| !(c.is_ascii_digit() || c == '.')).map_or(0, |i| i + 1);
            if !followed_by_digit {
                keep(at, leading_number_only(&before[start..]));
            }
        }
    }
    found.map(|(_, number)| number)
}

/// The number at the start of `text`, with nothing read after it.
fn leading_number_only(text: &str) -> Option<f64> {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    text[..end].trim_end_matches('.').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeway_core::fake::FakeBackend;
    use edgeway_core::RouteTarget;

    #[test]
    fn ratings_are_read_from_json_brackets_and_words() {
        let cases: &[(&str, Option<f64>)] = &[
            (r#"{"reason": "Correct and clear.", "rating": 8}"#, Some(8.0)),
            (r#"{"reason": "ok", "rating": "7"}"#, Some(7.0)),
            (r#"{"rating": 10, "reason": "perfect"}"#, Some(10.0)),
            ("```json\n{\"reason\": \"fine\", \"rating\": 6}\n```", Some(6.0)),
            // JSON wins over brackets inside its reason.
            (r#"{"reason": "not the [[3]] it seems", "rating": 9}"#, Some(9.0)),
            // Cut short after the rating, or before it.
            (r#"{"reason": "The answer is right", "rating": 7"#, Some(7.0)),
            (r#"{"reason": "The answer is ri"#, None),
            ("The answer is helpful. Rating: [[7]]", Some(7.0)),
            ("[[ 6 ]]", Some(6.0)),
            ("Rating: [[8.5]]", Some(8.5)),
            ("[[7/10]]", Some(7.0)),
            // The rubric's example echoed, then the real rating: the last counts.
            ("Following the format \"[[5]]\" I give: [[9]]", Some(9.0)),
            ("Its score [[x]] is, I think, [[4]].", Some(4.0)),
            ("I'd give it 8/10.", Some(8.0)),
            ("a 7 out of 10", Some(7.0)),
            ("Rating: 6", Some(6.0)),
            ("**Rating:** 3", Some(3.0)),
            ("The rating is 5.", Some(5.0)),
            ("a rating of 2; it misses the point", Some(2.0)),
            // Out of range, or not a rating at all.
            ("[[0]]", None),
            ("[[11]]", None),
            (r#"{"reason": "bad", "rating": 0}"#, None),
            (r#"{"reason": "no rating here"}"#, None),
            ("[[-3]]", None),
            ("It costs 10/100 of the budget.", None),
            ("[[3/4]]", None),
            ("", None),
            ("A good answer overall.", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_rating(text), *expected, "{text}");
        }
    }

    #[test]
    fn verdicts_are_read_from_json_and_brackets() {
        assert_eq!(parse_verdict(r#"{"reason": "B is wrong", "verdict": "A"}"#), Some(Verdict::A));
        assert_eq!(parse_verdict(r#"{"reason": "same", "verdict": "tie"}"#), Some(Verdict::Tie));
        assert_eq!(parse_verdict(r#"{"reason": "x", "verdict": "B""#), Some(Verdict::B));
        assert_eq!(parse_verdict("Assistant B is better. [[B]]"), Some(Verdict::B));
        assert_eq!(parse_verdict("Neither: [[C]]"), Some(Verdict::Tie));
        assert_eq!(parse_verdict(r#"{"reason": "x", "verdict": "both"}"#), None);
        assert_eq!(parse_verdict("A is better"), None);
    }

    #[test]
    fn ratings_map_onto_grades() {
        let top = grade_of(10.0, "cloud");
        assert_eq!((top.score, top.correct, top.extracted.as_deref()), (1.0, true, Some("10/10 by cloud")));
        assert_eq!(grade_of(1.0, "j").score, 0.0);
        assert!(grade_of(PASS_RATING, "j").correct && !grade_of(6.0, "j").correct);
        assert!((grade_of(7.0, "j").score - 6.0 / 9.0).abs() < 1e-12);
    }

    fn open_item(reference: Option<&str>) -> EvalItem {
        EvalItem {
            dataset: "mt-bench".into(),
            id: "111".into(),
            subject: Some("math".into()),
            domain: None,
            question: "What is the area of the triangle?".into(),
            context: None,
            choices: Vec::new(),
            reference: Reference::Judged(reference.map(str::to_owned)),
        }
    }

    #[tokio::test]
    async fn the_judge_is_asked_with_a_schema_on_its_route_and_its_rating_graded() {
        let backend =
            FakeBackend::new("judge", r#"{"reason": "matches the reference", "rating": 8}"#).with_context(4096);
        let judge = Judge::new(&backend, EvalRoute::Side(RouteTarget::Cloud));
        let grade = judge.grade(&open_item(Some("The area is 3.")), "It is 3.").await.unwrap();
        assert_eq!((grade.correct, grade.extracted.as_deref()), (true, Some("8/10 by cloud")));
        assert!((grade.score - 7.0 / 9.0).abs() < 1e-12);
        let request = backend.last_request().unwrap();
        assert_eq!(request.route.target, Some(RouteTarget::Cloud));
        assert_eq!((request.sampling.temperature, request.sampling.max_tokens), (0.0, Some(JUDGE_MAX_TOKENS)));
        let Some(OutputFormat::JsonSchema { schema, .. }) = &request.sampling.format else { panic!("{request:?}") };
        let schema: Value = serde_json::from_str(schema).unwrap();
        assert_eq!(schema["properties"]["rating"]["enum"], json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
        let Prompt::Chat(messages) = &request.prompt else { panic!("a chat") };
        assert_eq!((messages[0].role.as_str(), messages[0].content.as_str()), ("system", RATING_RUBRIC));
        assert!(messages[1].content.contains("<reference_answer>\nThe area is 3.\n</reference_answer>"));
        assert!(messages[1].content.ends_with("<answer>\nIt is 3.\n</answer>"), "{}", messages[1].content);
        // Without a reference the judge sees none.
        judge.rate(&open_item(None), "It is 3.").await.unwrap();
        let Prompt::Chat(messages) = backend.last_request().unwrap().prompt else { panic!("a chat") };
        assert!(!messages[1].content.contains("reference"));
    }

    #[tokio::test]
    async fn a_judge_without_a_rating_is_an_error_not_a_zero() {
        let backend = FakeBackend::new("judge", "I cannot judge this.").with_context(4096);
        let judge = Judge::new(&backend, EvalRoute::Model("judge".into()));
        let error = judge.grade(&open_item(None), "answer").await.unwrap_err();
        assert!(matches!(&error, JudgeError::NoRating { said } if said == "I cannot judge this."), "{error}");
        // A prompt the judge cannot take is an error too.
        let small = FakeBackend::new("judge", r#"{"reason": "ok", "rating": 5}"#);
        let error = Judge::new(&small, EvalRoute::Model("judge".into())).grade(&open_item(None), "x").await;
        assert!(matches!(error, Err(JudgeError::Backend(BackendError::PromptTooLong { .. }))), "{error:?}");
    }

    #[tokio::test]
    async fn pairs_are_asked_in_both_orders_and_a_biased_judge_ties() {
        // This judge always picks the answer shown first: position bias.
        let backend = FakeBackend::new("judge", r#"{"reason": "first is best", "verdict": "A"}"#).with_context(4096);
        let judge = Judge::new(&backend, EvalRoute::Side(RouteTarget::Cloud));
        let item = open_item(Some("3"));
        assert_eq!(judge.compare(&item, "edge says 3", "cloud says 3").await.unwrap(), PairOutcome::Inconsistent);
        let Prompt::Chat(messages) = backend.last_request().unwrap().prompt else { panic!("a chat") };
        // The last request was the swapped one: the cloud's answer first.
        let text = &messages[1].content;
        assert!(text.find("cloud says 3").unwrap() < text.find("edge says 3").unwrap(), "{text}");
        assert!(text.contains("<answer_a>") && text.contains("<answer_b>"));
        let tie = FakeBackend::new("judge", r#"{"reason": "same", "verdict": "tie"}"#).with_context(4096);
        let judge = Judge::new(&tie, EvalRoute::Side(RouteTarget::Cloud));
        assert_eq!(judge.compare(&item, "a", "b").await.unwrap(), PairOutcome::Tie);
    }

    #[test]
    fn long_texts_are_cut_for_the_judge() {
        let long = "x".repeat(MAX_TEXT_CHARS + 10);
        let shown = tagged("answer", &long);
        assert!(shown.contains("[… the rest is cut]"));
        assert_eq!(shown.matches('x').count(), MAX_TEXT_CHARS);
        assert_eq!(tagged("answer", " short "), "<answer>\nshort\n</answer>");
    }
}
