//! A loaded GGUF model and everything that turns a request into tokens.
//!
//! Tokenizing and templating run on the caller's thread (llama.cpp's
//! vocabulary is read-only once loaded), so the worker thread only decodes.

use edgeway_core::{BackendError, ChatMessage, Prompt, SamplingParams, ToolChoice, ToolUse};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use crate::config::EngineConfig;
use crate::gguf_check::check_gguf_header;
use crate::hugepages::Advice;
use crate::template::{generic_messages, JinjaTemplate};
use crate::EngineError;

/// The template llama-server falls back to when a model ships none it can render.
const FALLBACK_TEMPLATE: &str = "chatml";

/// A model plus the chat template chosen for it.
pub struct LoadedModel {
    pub model: LlamaModel,
    template: LlamaChatTemplate,
    /// The model's Jinja template, when it renders tools (else tools take the generic form).
    tool_template: Option<JinjaTemplate>,
    /// Sliding-window size of SWA layers, 0 when the model has none.
    pub n_swa: u32,
    /// Every end-of-generation token, banned when a request sets `ignore_eos`.
    pub end_of_generation_tokens: Vec<LlamaToken>,
}

impl LoadedModel {
    /// Checks the file, loads it with llama.cpp and picks its chat template.
    pub fn load(backend: &LlamaBackend, config: &EngineConfig) -> Result<Self, EngineError> {
        check_gguf_header(&config.model_path)?;
        let params = LlamaModelParams::default().with_use_mmap(config.mmap);
        let advice = (!config.mmap).then(Advice::before_load);
        let model = LlamaModel::load_from_file(backend, &config.model_path, &params).map_err(|error| EngineError::Load {
            path: config.model_path.display().to_string(),
            reason: format!("{error}; the file may be corrupt or use an architecture this llama.cpp does not know (see the log above)"),
        })?;
        if let Some(advice) = advice {
            let huge = advice.apply();
            tracing::info!(mib = huge >> 20, "model weights on 2 MiB pages");
        }
        let template = pick_template(&model);
        let tool_template = jinja_template(&model);
        let n_swa = sliding_window(&model);
        let vocab = model.vocab();
        let end_of_generation_tokens = vocab.tokens().filter(|&token| vocab.is_eog(token)).collect();
        Ok(Self { model, template, tool_template, n_swa, end_of_generation_tokens })
    }

    /// Tokens of the prompt, after the chat template for chats (with `tools` offered).
    pub fn prompt_tokens(&self, prompt: &Prompt, tools: Option<&ToolUse>) -> Result<Vec<LlamaToken>, BackendError> {
        let text = match prompt {
            Prompt::Text(text) => text.clone(),
            Prompt::Chat(messages) if uses_tools(messages, tools) => match &self.tool_template {
                Some(template) => template.render(messages, tools)?,
                None => self.render_chat(&generic_messages(messages, tools))?,
            },
            Prompt::Chat(messages) => self.render_chat(messages)?,
        };
        // add_special adds BOS only for models that want one; parse_special lets
        // the template's control tokens (<|im_start|>…) become single tokens.
        let parse_special = matches!(prompt, Prompt::Chat(_));
        Ok(self.model.vocab().tokenize(text.as_bytes(), true, parse_special))
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String, BackendError> {
        let messages = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| BackendError::InvalidRequest("a message contains a NUL character".into()))?;
        self.model
            .apply_chat_template(&self.template, &messages, true)
            .map_err(|error| BackendError::Internal(format!("cannot apply the chat template: {error}")))
    }

    /// The bytes a token stands for (control tokens render as nothing).
    pub fn token_bytes(&self, token: LlamaToken) -> Vec<u8> {
        self.model.vocab().token_to_piece(token, false, None)
    }

    /// Tokens a request may not generate: end-of-generation ones under `ignore_eos`.
    pub fn banned_tokens(&self, sampling: &SamplingParams) -> Vec<usize> {
        if !sampling.ignore_eos {
            return Vec::new();
        }
        self.end_of_generation_tokens.iter().map(|token| token.0 as usize).collect()
    }

    /// Whether the token ends generation (EOS, end-of-turn…).
    pub fn is_end_of_generation(&self, token: LlamaToken) -> bool {
        self.model.vocab().is_eog(token)
    }

    pub fn n_ctx_train(&self) -> u32 {
        self.model.n_ctx_train()
    }

    pub fn n_params(&self) -> u64 {
        self.model.n_params()
    }

    pub fn size_bytes(&self) -> u64 {
        self.model.size()
    }
}

/// Whether a chat needs tool-aware rendering: tools on offer, or calls and results in its history.
fn uses_tools(messages: &[ChatMessage], tools: Option<&ToolUse>) -> bool {
    tools.is_some_and(|tools| tools.choice != ToolChoice::None)
        || messages.iter().any(|m| !m.tool_calls.is_empty() || m.role == "tool")
}

/// The model's Jinja template, compiled for tool conversations when it renders tools.
fn jinja_template(model: &LlamaModel) -> Option<JinjaTemplate> {
    let source = model.chat_template(None).ok()?;
    let source = source.to_str().ok()?;
    let vocab = model.vocab();
    let piece = |token| String::from_utf8_lossy(&vocab.token_to_piece(token, true, None)).into_owned();
    let template = JinjaTemplate::for_tools(source, piece(vocab.bos()), piece(vocab.eos()));
    match &template {
        Some(_) => tracing::info!("tools: the model's own chat template renders them"),
        None => tracing::info!("tools: the model's chat template knows none; edgeway's tool prompt is used"),
    }
    template
}

/// The model's own chat template when llama.cpp can render it, else ChatML.
fn pick_template(model: &LlamaModel) -> LlamaChatTemplate {
    let probe = [LlamaChatMessage::new("user".into(), "hi".into()).expect("no NUL in literal")];
    if let Ok(template) = model.chat_template(None) {
        if model.apply_chat_template(&template, &probe, true).is_ok() {
            return template;
        }
        tracing::warn!("the model's chat template is not one llama.cpp can render; using {FALLBACK_TEMPLATE}");
    } else {
        tracing::warn!("the model has no chat template; using {FALLBACK_TEMPLATE}");
    }
    LlamaChatTemplate::new(FALLBACK_TEMPLATE).expect("no NUL in literal")
}

/// `<arch>.attention.sliding_window` from the metadata, or 0.
fn sliding_window(model: &LlamaModel) -> u32 {
    let Ok(arch) = model.meta_val_str("general.architecture") else {
        return 0;
    };
    model
        .meta_val_str(&format!("{arch}.attention.sliding_window"))
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}
