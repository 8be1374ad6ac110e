//! Grammar-constrained sampling: the answer can only take the shape its
//! request asked for.
//!
//! A requested [`OutputFormat`] becomes a GBNF grammar (a JSON Schema through
//! llama.cpp's own converter, the one llama-server uses), and llama.cpp's
//! grammar sampler says which tokens may come next. Asking it about the whole
//! vocabulary every token is the expensive part (49k to 262k candidates), so
//! [`Constraint::sample`] first picks freely and asks the grammar about that
//! one token; only when the grammar refuses it are all tokens checked, the
//! refused ones masked, and the pick made again from what is left. Rejecting
//! and re-drawing from the masked distribution gives each allowed token the
//! probability the masked distribution gives it (up to top-k/top-p cut-offs),
//! and the same token as masking first for greedy decoding.
//!
//! Everything fails closed, at admission: a schema the converter cannot turn
//! into a grammar, or a grammar that does not parse, is the client's error
//! (400), never an answer in unconstrained text.

use edgeway_core::{BackendError, OutputFormat, ToolUse};
use edgeway_structured::tools::{call_schema, CLOSE_TAG, OPEN_TAG};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::sampling::Sampler;

/// The grammar's start rule, as llama.cpp's converter names it.
const ROOT: &str = "root";

/// The GBNF grammar text that enforces `format`.
pub fn grammar_text(format: &OutputFormat) -> Result<String, BackendError> {
    let schema = match format {
        OutputFormat::Grammar(grammar) => return Ok(grammar.clone()),
        OutputFormat::JsonObject => r#"{"type": "object"}"#,
        OutputFormat::JsonSchema { schema, .. } => schema.as_str(),
    };
    schema_grammar(schema, "the JSON schema")
}

/// llama.cpp's grammar for a JSON Schema; `what` names the schema in the error.
fn schema_grammar(schema: &str, what: &str) -> Result<String, BackendError> {
    llama_cpp_2::json_schema_to_grammar(schema).map_err(|error| {
        BackendError::InvalidRequest(format!(
            "{what} cannot be turned into a grammar for constrained sampling ({error}); \
             simplify it (remote $ref and some keywords are not supported)"
        ))
    })
}

/// The grammar of an answer made of tool calls, each a tagged JSON call object
/// whose arguments follow its function's schema:
///
/// ```text
/// <tool_call>
/// {"name": "get_weather", "arguments": {"city": "Oslo"}}
/// </tool_call>
/// ```
///
/// One call, or several separated by newlines when `parallel`. `None` when no tool may be called.
pub fn tool_grammar(tools: &ToolUse) -> Result<Option<String>, BackendError> {
    let callable: Vec<_> = tools.callable().collect();
    if callable.is_empty() {
        return Ok(None);
    }
    let schema = call_schema(callable).to_string();
    let call = schema_grammar(&schema, "a tool's parameters schema")?;
    // The converter's start rule becomes the call rule; ours wraps it in tags.
    let mut text: String = call
        .lines()
        .map(|line| match line.strip_prefix(&format!("{ROOT} ::=")) {
            Some(rest) => format!("tool-call-json ::={rest}\n"),
            None => format!("{line}\n"),
        })
        .collect();
    let block = format!(r#""{OPEN_TAG}\n" tool-call-json "\n{CLOSE_TAG}""#);
    let repeat = if tools.parallel { format!(r#" ("\n" {block})*"#) } else { String::new() };
    text.push_str(&format!("{ROOT} ::= {block}{repeat}\n"));
    Ok(Some(text))
}

/// One request's grammar state and the buffers to apply it.
pub struct Constraint {
    grammar: LlamaSampler,
    /// One candidate, for asking about the picked token (reused: no allocation per token).
    one: LlamaTokenDataArray,
    /// The whole vocabulary as candidates, for the masking pass.
    all: LlamaTokenDataArray,
    /// The logits with the refused tokens at minus infinity.
    masked: Vec<f32>,
    /// Whether each pick's probability under the grammar is measured (answers with choices).
    probe: bool,
    /// The last pick's probability among the tokens the grammar allowed, when probed.
    last_probability: Option<f32>,
    /// The strongest candidates, for estimating what the grammar allows (reused).
    top: Vec<(f32, usize)>,
}

/// How many of the most likely tokens are asked about when a pick's probability
/// under the grammar is estimated: the allowed mass outside them is negligible.
const PROBE_CANDIDATES: usize = 32;

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint").finish_non_exhaustive()
    }
}

impl Constraint {
    /// Compiles `format` for `model`'s vocabulary; an error names what is wrong with it.
    pub fn new(model: &LlamaModel, format: &OutputFormat) -> Result<Self, BackendError> {
        let text = grammar_text(format)?;
        let grammar = LlamaSampler::grammar(model, &text, ROOT).map_err(|error| {
            let what = match format {
                OutputFormat::Grammar(_) => "the grammar does not parse as GBNF with a 'root' rule",
                _ => "the grammar made from the JSON schema does not parse",
            };
            BackendError::InvalidRequest(format!("{what} ({error}); see llama.cpp's log for the line"))
        })?;
        Ok(Self::with(grammar))
    }

    /// The constraint of an answer that may (`auto`) or must (`required`, a named
    /// function) call `tools`: a required call is constrained from the first token;
    /// an optional one only once the model opens a call tag (a lazy grammar), so
    /// free text stays free. `None` when no tool may be called.
    pub fn for_tools(model: &LlamaModel, tools: &ToolUse) -> Result<Option<Self>, BackendError> {
        let Some(text) = tool_grammar(tools)? else { return Ok(None) };
        let grammar = if tools.call_required() {
            LlamaSampler::grammar(model, &text, ROOT)
        } else {
            LlamaSampler::grammar_lazy(model, &text, ROOT, [OPEN_TAG], &[])
        };
        let grammar = grammar.map_err(|error| {
            BackendError::InvalidRequest(format!(
                "the grammar made from the tools' parameter schemas does not parse ({error}); simplify the schemas"
            ))
        })?;
        Ok(Some(Self::with(grammar)))
    }

    fn with(grammar: LlamaSampler) -> Self {
        Self {
            grammar,
            one: LlamaTokenDataArray::new(Vec::with_capacity(1), false),
            all: LlamaTokenDataArray::new(Vec::new(), false),
            masked: Vec::new(),
            probe: false,
            last_probability: None,
            top: Vec::with_capacity(PROBE_CANDIDATES + 1),
        }
    }

    /// Measures each pick's probability among the tokens the grammar allows (see
    /// [`Constraint::last_probability`]); for answers whose choices are reported.
    pub fn with_probe(mut self) -> Self {
        self.probe = true;
        self
    }

    /// The last picked token's probability under the model (temperature 1) renormalized
    /// over the tokens the grammar allowed there; `None` unless probing.
    pub fn last_probability(&self) -> Option<f32> {
        self.last_probability
    }

    /// Picks the next token with `sampler` among those the grammar allows, and advances the
    /// grammar past it (end-of-generation tokens end the answer and are not fed to it).
    /// An error means the grammar allows no token at all.
    pub fn sample(
        &mut self,
        sampler: &mut Sampler,
        logits: &[f32],
        is_end: impl Fn(usize) -> bool,
    ) -> Result<usize, String> {
        let first = sampler.pick(logits);
        let (token, masked) =
            if self.allows(first) { (first, false) } else { (self.pick_masked(sampler, logits)?, true) };
        if self.probe {
            self.last_probability = Some(self.probability(logits, token, masked));
        }
        sampler.record(token);
        if !is_end(token) {
            self.grammar
                .try_accept(LlamaToken(token as i32))
                .map_err(|error| format!("the grammar refused token {token} it had allowed: {error}"))?;
        }
        Ok(token)
    }

    /// Whether the grammar allows `token` next.
    fn allows(&mut self, token: usize) -> bool {
        self.one.data.clear();
        self.one.data.push(LlamaTokenData::new(LlamaToken(token as i32), 0.0, 0.0));
        self.one.selected = None;
        self.one.sorted = false;
        self.one.apply_sampler(&mut self.grammar);
        self.one.data.first().is_some_and(|data| data.logit().is_finite())
    }

    /// `token`'s probability among the allowed tokens: exact when the whole vocabulary was
    /// just masked, else estimated over the strongest candidates the grammar allows.
    fn probability(&mut self, logits: &[f32], token: usize, masked: bool) -> f32 {
        let Some(&chosen) = logits.get(token) else { return 0.0 };
        let mut sum = 0.0f64;
        if masked {
            let max = self.masked.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for &logit in self.masked.iter().filter(|l| l.is_finite()) {
                sum += f64::from(logit - max).exp();
            }
            return (f64::from(chosen - max).exp() / sum) as f32;
        }
        self.top.clear();
        self.top.extend(logits.iter().enumerate().map(|(id, &logit)| (logit, id)).take(PROBE_CANDIDATES));
        self.top.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        for (id, &logit) in logits.iter().enumerate().skip(PROBE_CANDIDATES) {
            if self.top.last().is_some_and(|last| logit > last.0) {
                let at = self.top.partition_point(|candidate| candidate.0 >= logit);
                self.top.insert(at, (logit, id));
                self.top.pop();
            }
        }
        let max = self.top.first().map_or(chosen, |best| best.0).max(chosen);
        let mut counted_chosen = false;
        let candidates = std::mem::take(&mut self.top);
        for &(logit, id) in &candidates {
            if id == token || self.allows(id) {
                sum += f64::from(logit - max).exp();
                counted_chosen |= id == token;
            }
        }
        self.top = candidates;
        if !counted_chosen {
            sum += f64::from(chosen - max).exp();
        }
        (f64::from(chosen - max).exp() / sum) as f32
    }

    /// Masks every token the grammar refuses and picks again.
    fn pick_masked(&mut self, sampler: &mut Sampler, logits: &[f32]) -> Result<usize, String> {
        self.all.data.clear();
        self.all.data.extend(
            logits.iter().enumerate().map(|(id, &logit)| LlamaTokenData::new(LlamaToken(id as i32), logit, 0.0)),
        );
        self.all.selected = None;
        self.all.sorted = false;
        self.all.apply_sampler(&mut self.grammar);
        self.masked.clear();
        self.masked.resize(logits.len(), f32::NEG_INFINITY);
        let mut any = false;
        for data in &self.all.data {
            let id = data.id().0 as usize;
            if data.logit().is_finite() && id < self.masked.len() {
                self.masked[id] = logits[id];
                any = true;
            }
        }
        if !any {
            return Err("the grammar allows no token here".into());
        }
        Ok(sampler.pick(&self.masked))
    }
}
