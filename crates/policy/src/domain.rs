//! Which domain a request belongs to, so each domain can have its own threshold.
//!
//! Rules are checked in order; the first whose keywords or regex match the
//! scored text names the domain, else it is `general`. A client may also name
//! the domain itself (the `x-edgeway-domain` header).

use edgeway_core::Prompt;
use regex::Regex;

use crate::scorer::scored_text;

/// The domain of requests no rule matches.
pub const GENERAL: &str = "general";

/// The domain a client-named domain becomes when no rule, threshold or model knows it, so that
/// what clients send cannot grow the metrics' label sets without bound.
pub const OTHER: &str = "other";

/// One domain and how to recognise it.
#[derive(Debug, Clone)]
pub struct DomainRule {
    /// The domain's name.
    pub name: String,
    /// Lowercase words or phrases; any one matches.
    pub keywords: Vec<String>,
    /// An optional regex over the lowercase text; a match also names the domain.
    pub pattern: Option<Regex>,
}

impl DomainRule {
    /// A rule from keywords and an optional regex, which is checked here.
    pub fn new(name: &str, keywords: &[&str], pattern: Option<&str>) -> Result<Self, regex::Error> {
        Ok(Self {
            name: name.to_owned(),
            keywords: keywords.iter().map(|k| k.to_lowercase()).collect(),
            pattern: pattern.map(Regex::new).transpose()?,
        })
    }

    fn matches(&self, text: &str) -> bool {
        self.keywords.iter().any(|k| text.contains(k.as_str()))
            || self.pattern.as_ref().is_some_and(|p| p.is_match(text))
    }
}

/// Ordered domain rules.
#[derive(Debug, Clone)]
pub struct DomainRules {
    rules: Vec<DomainRule>,
}

impl DomainRules {
    /// Rules checked in the given order.
    pub fn new(rules: Vec<DomainRule>) -> Self {
        Self { rules }
    }

    /// The shipped defaults: customer-service, code and finance, else general.
    pub fn defaults() -> Self {
        let rule =
            |name, keywords: &[&str], pattern| DomainRule::new(name, keywords, pattern).expect("valid built-in regex");
        Self::new(vec![
            rule(
                "code",
                &["```", "function", "compile", "stack trace", "python", "rust", "javascript", "sql", "regex", "bug"],
                Some(r"\b(fn|def|class|impl|struct|import)\s+\w+"),
            ),
            rule(
                "finance",
                &[
                    "invest",
                    "stock",
                    "portfolio",
                    "interest rate",
                    "loan",
                    "mortgage",
                    "tax",
                    "revenue",
                    "dividend",
                    "budget",
                ],
                Some(r"[$€£]\s?\d"),
            ),
            rule(
                "customer-service",
                &[
                    "order",
                    "refund",
                    "delivery",
                    "shipping",
                    "return",
                    "invoice",
                    "my account",
                    "password",
                    "cancel",
                    "warranty",
                ],
                None,
            ),
        ])
    }

    /// The names of every domain these rules can give, `general` included.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str()).chain(std::iter::once(GENERAL))
    }

    /// The domain of a prompt.
    pub fn classify(&self, prompt: &Prompt) -> &str {
        let text = scored_text(prompt);
        self.rules.iter().find(|rule| rule.matches(&text)).map_or(GENERAL, |rule| rule.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(text: &str) -> String {
        DomainRules::defaults().classify(&Prompt::Text(text.into())).to_owned()
    }

    #[test]
    fn default_rules_name_the_shipped_domains() {
        assert_eq!(domain("Where is my order? I want a refund."), "customer-service");
        assert_eq!(domain("Why does this Python function raise an exception?"), "code");
        assert_eq!(domain("Should I invest $5000 in an index fund?"), "finance");
        assert_eq!(domain("What is the tallest mountain?"), "general");
        assert_eq!(
            DomainRules::defaults().names().collect::<Vec<_>>(),
            ["code", "finance", "customer-service", "general"]
        );
    }

    #[test]
    fn a_bad_regex_is_an_error_not_a_panic() {
        assert!(DomainRule::new("x", &[], Some("(unclosed")).is_err());
    }
}
