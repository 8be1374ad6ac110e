//! Traffic mixes: an evaluation shaped like what an edge gateway is actually sent.
//!
//! A mix is a TOML file that names domains (the routing domains: `general`,
//! `code`, …), gives each a weight (its share of the requests) and the sets
//! that stand for it, each with a weight within its domain:
//!
//! ```toml
//! description = "…"            # optional
//!
//! [[domain]]
//! name = "code"
//! weight = 0.25
//! sets = [{ set = "basic-skills:coding", weight = 4 }, { set = "mbpp", weight = 3 }]
//! ```
//!
//! A set's share of the sample is its domain's share of all domain weights
//! times its share of its domain's set weights. [`Mix::sample`] draws that many
//! items from each set (a deterministic, seeded choice) and tags each with its
//! domain, so calibration reports and sets thresholds per domain. `default`
//! ships in the binary; `docs/traffic-mix.md` explains and justifies it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::dataset::{DatasetError, EvalItem};

/// The default mix: mostly simple requests with a minority of hard ones (`crates/eval/mixes/default.toml`).
pub const DEFAULT_MIX: &str = include_str!("../mixes/default.toml");

/// The mixes built into the binary, by the names `--mix` takes.
pub const BUILTIN_MIXES: &[(&str, &str)] = &[("default", DEFAULT_MIX)];

/// A traffic mix: weighted domains, each stood for by weighted sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// What `--mix` named: a built-in mix's name or the file.
    pub name: String,
    /// The file's own description, if it has one.
    pub description: Option<String>,
    /// The domains, in the file's order.
    pub domains: Vec<MixDomain>,
}

/// One domain of a mix.
#[derive(Debug, Clone, PartialEq)]
pub struct MixDomain {
    /// The routing domain its items are tagged with.
    pub name: String,
    /// Its weight among the domains (positive; the weights need not add up to 1).
    pub weight: f64,
    /// The sets that stand for it.
    pub sets: Vec<MixSet>,
}

/// One set of a domain.
#[derive(Debug, Clone, PartialEq)]
pub struct MixSet {
    /// A set name `edgeway eval --set` takes, or a JSONL file (relative to the mix file).
    pub set: String,
    /// Its weight within the domain (positive).
    pub weight: f64,
}

/// A set's share of a mix's sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    /// The domain.
    pub domain: String,
    /// The set.
    pub set: String,
    /// The fraction of the sample, in `(0, 1]`; all shares add up to 1.
    pub share: f64,
}

/// What a sample drew from one set.
#[derive(Debug, Clone, PartialEq)]
pub struct SetDraw {
    /// The domain.
    pub domain: String,
    /// The set.
    pub set: String,
    /// How many items the set holds.
    pub available: usize,
    /// How many were drawn.
    pub drawn: usize,
}

/// A mix's sample: the items, tagged with their domains, and what each set gave.
#[derive(Debug, Clone, PartialEq)]
pub struct MixSample {
    /// The items, in a seeded order that spreads domains and sets evenly, so
    /// an interrupted run has still answered a mix in the right proportions.
    pub items: Vec<EvalItem>,
    /// What each set gave, in the mix's order.
    pub draws: Vec<SetDraw>,
    /// The most items the mix can give in its proportions: beyond it, the
    /// smallest set (for its share) would run out.
    pub capacity: usize,
}

/// Why a mix could not be read or sampled. The cause of `Io`, `UnknownSet` and `Set`
/// is their `source()`, printed by the caller's error chain.
#[derive(Debug, thiserror::Error)]
pub enum MixError {
    /// The file could not be read.
    #[error("cannot read the mix {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape.
    #[error("mix `{mix}` is not a valid mix file: {message}")]
    Toml {
        /// The mix.
        mix: String,
        /// The TOML reader's message, with the line.
        message: String,
    },
    /// The file is TOML of the right shape but says something impossible.
    #[error("mix `{mix}`: {reason}")]
    Invalid {
        /// The mix.
        mix: String,
        /// What is wrong.
        reason: String,
    },
    /// A set is neither a built-in set nor a file.
    #[error("mix `{mix}`, domain `{domain}`")]
    UnknownSet {
        /// The mix.
        mix: String,
        /// The domain that names it.
        domain: String,
        /// [`DatasetError::Unknown`], which lists the sets there are.
        source: DatasetError,
    },
    /// A set could not be loaded.
    #[error("mix `{mix}`, domain `{domain}`: cannot load the set `{set}`")]
    Set {
        /// The mix.
        mix: String,
        /// The domain that names it.
        domain: String,
        /// The set.
        set: String,
        /// Why.
        source: DatasetError,
    },
}

/// The file, as TOML.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MixFile {
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "domain")]
    domains: Vec<DomainTable>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainTable {
    name: String,
    weight: f64,
    sets: Vec<SetTable>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SetTable {
    set: String,
    #[serde(default = "one")]
    weight: f64,
}

fn one() -> f64 {
    1.0
}

impl Mix {
    /// A built-in mix by name (`default`), else the TOML file at `name`.
    pub fn load(name: &str) -> Result<Self, MixError> {
        if let Some((_, text)) = BUILTIN_MIXES.iter().find(|(builtin, _)| *builtin == name) {
            return Self::parse(name, text);
        }
        let path = Path::new(name);
        let text = std::fs::read_to_string(path).map_err(|source| MixError::Io { path: path.to_owned(), source })?;
        let mut mix = Self::parse(name, &text)?;
        // A JSONL set is named relative to the mix file, as a config names its files.
        let base = path.parent().unwrap_or(Path::new(""));
        for set in mix.domains.iter_mut().flat_map(|domain| domain.sets.iter_mut()) {
            let file = Path::new(&set.set);
            if !crate::dataset::is_builtin(&set.set) && file.is_relative() {
                set.set = base.join(file).display().to_string();
            }
        }
        Ok(mix)
    }

    /// Reads a mix from TOML text and checks its weights; `name` is for messages.
    pub fn parse(name: &str, text: &str) -> Result<Self, MixError> {
        let file: MixFile = toml::from_str(text)
            .map_err(|error| MixError::Toml { mix: name.to_owned(), message: error.to_string() })?;
        let invalid = |reason: String| MixError::Invalid { mix: name.to_owned(), reason };
        if file.domains.is_empty() {
            return Err(invalid("it names no domains; add a [[domain]] table with a name, a weight and sets".into()));
        }
        let mut domains: Vec<MixDomain> = Vec::new();
        let mut set_domains: HashMap<String, String> = HashMap::new();
        for table in file.domains {
            let domain = table.name.trim().to_owned();
            if domain.is_empty() {
                return Err(invalid("a domain has an empty name".into()));
            }
            if domains.iter().any(|d| d.name == domain) {
                return Err(invalid(format!("domain `{domain}` appears twice; list its sets in one [[domain]]")));
            }
            if !(table.weight.is_finite() && table.weight > 0.0) {
                let reason = format!(
                    "domain `{domain}` has weight {}; weights must be positive (drop the domain instead)",
                    table.weight
                );
                return Err(invalid(reason));
            }
            if table.sets.is_empty() {
                return Err(invalid(format!("domain `{domain}` names no sets")));
            }
            let mut sets = Vec::new();
            for set in table.sets {
                let name = set.set.trim().to_owned();
                if !(set.weight.is_finite() && set.weight > 0.0) {
                    let reason = format!(
                        "set `{name}` in domain `{domain}` has weight {}; weights must be positive (drop the set instead)",
                        set.weight
                    );
                    return Err(invalid(reason));
                }
                if let Some(other) = set_domains.insert(name.clone(), domain.clone()) {
                    return Err(invalid(format!(
                        "set `{name}` appears twice (domains `{other}` and `{domain}`); name each set once"
                    )));
                }
                sets.push(MixSet { set: name, weight: set.weight });
            }
            domains.push(MixDomain { name: domain, weight: table.weight, sets });
        }
        Ok(Self { name: name.to_owned(), description: file.description, domains })
    }

    /// Each set's share of a sample, in the mix's order; they add up to 1.
    pub fn shares(&self) -> Vec<Share> {
        let total: f64 = self.domains.iter().map(|d| d.weight).sum();
        self.domains
            .iter()
            .flat_map(|domain| {
                let within: f64 = domain.sets.iter().map(|s| s.weight).sum();
                domain.sets.iter().map(move |set| Share {
                    domain: domain.name.clone(),
                    set: set.set.clone(),
                    share: domain.weight / total * set.weight / within,
                })
            })
            .collect()
    }

    /// Checks that every set is a built-in set or an existing file, before anything loads.
    pub fn check_sets(&self) -> Result<(), MixError> {
        for domain in &self.domains {
            for set in &domain.sets {
                if !crate::dataset::is_builtin(&set.set) && !Path::new(&set.set).is_file() {
                    return Err(MixError::UnknownSet {
                        mix: self.name.clone(),
                        domain: domain.name.clone(),
                        source: DatasetError::Unknown(set.set.clone()),
                    });
                }
            }
        }
        Ok(())
    }

    /// Draws `limit` items (at most [`MixSample::capacity`]; all it can give when `None`)
    /// in the mix's proportions, loading each set with `load`.
    ///
    /// Each set gives its share of the items, rounded so they add up exactly
    /// (largest remainders first), chosen by a hash of `seed` and the item's
    /// id: the same mix, limit and seed draw the same items on every machine.
    pub fn sample(
        &self,
        limit: Option<usize>,
        seed: u64,
        mut load: impl FnMut(&str) -> Result<Vec<EvalItem>, DatasetError>,
    ) -> Result<MixSample, MixError> {
        let invalid = |reason: String| MixError::Invalid { mix: self.name.clone(), reason };
        let shares = self.shares();
        let mut loaded: Vec<Vec<EvalItem>> = Vec::with_capacity(shares.len());
        let mut owners: HashMap<(String, String), String> = HashMap::new();
        for share in &shares {
            let items = load(&share.set).map_err(|source| MixError::Set {
                mix: self.name.clone(),
                domain: share.domain.clone(),
                set: share.set.clone(),
                source,
            })?;
            if items.is_empty() {
                return Err(invalid(format!("set `{}` holds no items", share.set)));
            }
            for item in &items {
                let key = (item.dataset.clone(), item.id.clone());
                if let Some(other) = owners.insert(key, share.set.clone()) {
                    if other != share.set {
                        return Err(invalid(format!(
                            "sets `{other}` and `{}` share the item {}/{}; name each item once (a whole set or its parts, not both)",
                            share.set, item.dataset, item.id
                        )));
                    }
                }
            }
            loaded.push(items);
        }
        // The largest sample in which no set runs out; the small tolerance keeps
        // a share that divides its set exactly from losing one to rounding.
        let capacity = shares
            .iter()
            .zip(&loaded)
            .map(|(share, items)| (items.len() as f64 / share.share + 1e-6).floor() as usize)
            .min()
            .unwrap_or(0);
        let n = limit.map_or(capacity, |limit| limit.min(capacity));
        let quotas = quotas(&shares, &loaded, n);

        let key =
            |item: &EvalItem| edgeway_core::hash::fnv1a(format!("{seed}/{}/{}", item.dataset, item.id).as_bytes());
        let mut items = Vec::with_capacity(n);
        let mut draws = Vec::with_capacity(shares.len());
        for ((share, mut set_items), quota) in shares.iter().zip(loaded).zip(quotas) {
            draws.push(SetDraw {
                domain: share.domain.clone(),
                set: share.set.clone(),
                available: set_items.len(),
                drawn: quota,
            });
            set_items.sort_by_cached_key(|item| key(item));
            items.extend(set_items.into_iter().take(quota).map(|mut item| {
                item.domain = Some(share.domain.clone());
                item
            }));
        }
        items.sort_by_cached_key(|item| edgeway_core::hash::fnv1a(format!("order/{}", key(item)).as_bytes()));
        Ok(MixSample { items, draws, capacity })
    }
}

/// Items per set for a sample of `n`: each share of `n`, rounded down, then one
/// more to the largest remainders (never past a set's size) until they add up to `n`.
fn quotas(shares: &[Share], loaded: &[Vec<EvalItem>], n: usize) -> Vec<usize> {
    let exact: Vec<f64> = shares.iter().map(|share| share.share * n as f64).collect();
    let mut quotas: Vec<usize> =
        exact.iter().zip(loaded).map(|(x, items)| (x.floor() as usize).min(items.len())).collect();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - quotas[b] as f64).total_cmp(&(exact[a] - quotas[a] as f64)).then(a.cmp(&b)));
    let mut missing = n.saturating_sub(quotas.iter().sum());
    while missing > 0 {
        let before = missing;
        for &index in &order {
            if missing > 0 && quotas[index] < loaded[index].len() {
                quotas[index] += 1;
                missing -= 1;
            }
        }
        if missing == before {
            break;
        }
    }
    quotas
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Reference;

    fn items(dataset: &str, count: usize) -> Vec<EvalItem> {
        (0..count)
            .map(|i| EvalItem {
                dataset: dataset.to_owned(),
                id: i.to_string(),
                subject: None,
                domain: Some("theirs".into()),
                question: format!("{dataset} question {i}"),
                context: None,
                choices: Vec::new(),
                reference: Reference::Number(i as f64),
            })
            .collect()
    }

    /// Three made-up sets: `a` (200 items), `b` (40), `c` (1,000).
    fn load(name: &str) -> Result<Vec<EvalItem>, DatasetError> {
        match name {
            "a" => Ok(items("a", 200)),
            "b" => Ok(items("b", 40)),
            "c" => Ok(items("c", 1000)),
            other => Err(DatasetError::Unknown(other.to_owned())),
        }
    }

    const SMALL: &str = r#"
description = "two domains"

[[domain]]
name = "code"
weight = 1
sets = [{ set = "a", weight = 3 }, { set = "b" }]

[[domain]]
name = "general"
weight = 3
sets = [{ set = "c" }]
"#;

    #[test]
    fn the_default_mix_parses_into_mostly_simple_domains() {
        let mix = Mix::load("default").unwrap();
        assert!(mix.description.is_some());
        let names: Vec<&str> = mix.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["general", "code", "customer-service", "finance"]);
        let shares = mix.shares();
        let total: f64 = shares.iter().map(|s| s.share).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        let domain_share = |name: &str| shares.iter().filter(|s| s.domain == name).map(|s| s.share).sum::<f64>();
        assert!((domain_share("general") - 0.45).abs() < 1e-9);
        assert!((domain_share("code") - 0.25).abs() < 1e-9);
        // Code names the two sets another branch adds, whether or not they resolve here.
        assert!(shares.iter().any(|s| s.set == "humaneval") && shares.iter().any(|s| s.set == "mbpp"));
        // The hard sets (math, professional knowledge, long reasoning) are a minority.
        let hard = ["minerva-math", "gsm8k", "medqa", "medmcqa", "mmlu:", "drop", "arc-challenge"];
        let hard_share: f64 =
            shares.iter().filter(|s| hard.iter().any(|h| s.set.starts_with(h))).map(|s| s.share).sum();
        assert!((0.1..0.25).contains(&hard_share), "{hard_share}");
        // Every other set it names is one this crate loads.
        for share in &shares {
            assert!(
                crate::dataset::is_builtin(&share.set) || ["humaneval", "mbpp"].contains(&share.set.as_str()),
                "{}",
                share.set
            );
        }
    }

    #[test]
    fn samples_follow_the_weights_and_tag_domains() {
        let mix = Mix::parse("small", SMALL).unwrap();
        // a: 1/4 × 3/4 = 3/16, b: 1/16, c: 3/4 of the sample.
        let sample = mix.sample(Some(160), 7, load).unwrap();
        assert_eq!(sample.items.len(), 160);
        let count = |dataset: &str| sample.items.iter().filter(|i| i.dataset == dataset).count();
        assert_eq!((count("a"), count("b"), count("c")), (30, 10, 120));
        assert!(sample.items.iter().filter(|i| i.dataset != "c").all(|i| i.domain.as_deref() == Some("code")));
        assert!(sample.items.iter().filter(|i| i.dataset == "c").all(|i| i.domain.as_deref() == Some("general")));
        // b (40 items at 1/16) limits the sample to 640.
        assert_eq!(sample.capacity, 640);
        assert_eq!(sample.draws[1], SetDraw { domain: "code".into(), set: "b".into(), available: 40, drawn: 10 });
        // The order mixes the sets: the first 16 are not all from one.
        let first: std::collections::HashSet<&str> = sample.items[..16].iter().map(|i| i.dataset.as_str()).collect();
        assert!(first.len() > 1);
    }

    #[test]
    fn samples_are_seeded_exact_and_capped() {
        let mix = Mix::parse("small", SMALL).unwrap();
        let ids =
            |sample: &MixSample| sample.items.iter().map(|i| format!("{}/{}", i.dataset, i.id)).collect::<Vec<_>>();
        let once = mix.sample(Some(50), 1, load).unwrap();
        assert_eq!(ids(&once), ids(&mix.sample(Some(50), 1, load).unwrap()), "same seed, same sample");
        assert_ne!(ids(&once), ids(&mix.sample(Some(50), 2, load).unwrap()), "another seed, another sample");
        // 50 × (3/16, 1/16, 3/4) = 9.375, 3.125, 37.5: rounded by largest remainder to 50.
        let drawn: Vec<usize> = once.draws.iter().map(|d| d.drawn).collect();
        assert_eq!(drawn.iter().sum::<usize>(), 50);
        assert_eq!(drawn, [9, 3, 38]);
        // More than the capacity gives the capacity; no limit gives it too.
        assert_eq!(mix.sample(Some(5000), 0, load).unwrap().items.len(), 640);
        let all = mix.sample(None, 0, load).unwrap();
        assert_eq!(all.items.len(), 640);
        assert_eq!(all.draws.iter().map(|d| d.drawn).collect::<Vec<_>>(), [120, 40, 480]);
    }

    /// The message with its causes, as `edgeway` prints it.
    fn chain(error: &MixError) -> String {
        let mut text = error.to_string();
        let mut cause = std::error::Error::source(error);
        while let Some(error) = cause {
            text.push_str(&format!(": {error}"));
            cause = error.source();
        }
        text
    }

    #[test]
    fn bad_mixes_are_refused_with_a_reason() {
        let error = |text: &str| Mix::parse("m", text).unwrap_err().to_string();
        assert!(error("[[domain]\nname = 1").contains("not a valid mix file"), "{}", error("[[domain]\nname = 1"));
        let typo = error("[[domain]]\nname = \"x\"\nweight = 1\nsets = [{ sett = \"a\" }]");
        assert!(typo.contains("unknown field `sett`"), "{typo}");
        assert!(error("description = \"none\"").contains("names no domains"));
        let zero = error("[[domain]]\nname = \"x\"\nweight = 0\nsets = [{ set = \"a\" }]");
        assert!(zero.contains("domain `x` has weight 0") && zero.contains("positive"), "{zero}");
        let negative = error("[[domain]]\nname = \"x\"\nweight = 1\nsets = [{ set = \"a\", weight = -2 }]");
        assert!(negative.contains("set `a` in domain `x` has weight -2"), "{negative}");
        assert!(error("[[domain]]\nname = \"x\"\nweight = 1\nsets = []").contains("names no sets"));
        let twice = "[[domain]]\nname = \"x\"\nweight = 1\nsets = [{ set = \"a\" }]\n\
                     [[domain]]\nname = \"y\"\nweight = 1\nsets = [{ set = \"a\" }]";
        assert!(error(twice).contains("set `a` appears twice (domains `x` and `y`)"), "{}", error(twice));
        let same = "[[domain]]\nname = \"x\"\nweight = 1\nsets = [{ set = \"a\" }]\n\
                    [[domain]]\nname = \"x\"\nweight = 1\nsets = [{ set = \"b\" }]";
        assert!(error(same).contains("domain `x` appears twice"));
    }

    #[test]
    fn unknown_and_overlapping_sets_are_named() {
        let mix = Mix::parse("m", "[[domain]]\nname = \"code\"\nweight = 1\nsets = [{ set = \"nope\" }]").unwrap();
        let error = chain(&mix.check_sets().unwrap_err());
        assert!(error.contains("mix `m`, domain `code`: unknown evaluation set `nope`"), "{error}");
        assert!(error.contains("arc-easy") && error.contains("trivia-qa"), "{error}");
        let error = chain(&mix.sample(Some(10), 0, load).unwrap_err());
        assert!(error.contains("cannot load the set `nope`: unknown evaluation set `nope`"), "{error}");
        // Two names for the same items.
        let overlap =
            Mix::parse("m", "[[domain]]\nname = \"x\"\nweight = 1\nsets = [{ set = \"a\" }, { set = \"a2\" }]")
                .unwrap();
        let error = overlap
            .sample(Some(10), 0, |name| if name == "a2" { Ok(items("a", 5)) } else { load(name) })
            .unwrap_err()
            .to_string();
        assert!(error.contains("sets `a` and `a2` share the item a/0"), "{error}");
        let missing = chain(&Mix::load("/nonexistent/mix.toml").unwrap_err());
        assert!(missing.contains("cannot read the mix /nonexistent/mix.toml: No such file"), "{missing}");
    }
}
