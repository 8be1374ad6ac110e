//! One module per endpoint. Handlers are thin: validate, submit, shape.

pub mod chat;
pub mod completions;
pub mod dashboard;
pub mod embeddings;
pub mod health;
pub mod inspect;
pub mod kserve;
pub mod metrics;
pub mod models;
pub mod ollama;
pub mod responses;
pub mod tokenize;

use std::sync::Arc;

use axum::http::HeaderMap;
use edgeway_core::{Backend, GenerateRequest, Prompt, RouteTarget};
use edgeway_guard::extraction::ExtractionAction;
use edgeway_guard::injection::{Channel, InjectionAction};
use edgeway_guard::{Ask, Caller, Denied, Guard, Permit};

use edgeway_structured::tools::ToolsCheck;
use edgeway_structured::FormatCheck;

use crate::error::{invalid, ApiError};
use crate::record::Recorder;
use crate::state::AppState;
use crate::stream::{start, Started};

/// Header that forces a side: `edge` or `cloud`.
pub const ROUTE_HEADER: &str = "x-edgeway-route";
/// Header that names the request's domain for per-domain thresholds.
pub const DOMAIN_HEADER: &str = "x-edgeway-domain";

/// Who is asking, for which model and from which collection, as the generating endpoints hand it to [`begin`].
pub(crate) struct Asker<'a> {
    /// The caller, from the auth layer.
    pub caller: &'a Caller,
    /// The `model` field.
    pub model: Option<&'a str>,
    /// The collection to retrieve from, if any: retrieval runs once the request is admitted.
    pub collection: Option<String>,
}

/// The checks a finished answer gets (compiled at validation), as the endpoints hand them to [`begin`].
#[derive(Default)]
pub(crate) struct Checks {
    /// The requested output format's.
    pub format: Option<FormatCheck>,
    /// The offered tools'.
    pub tools: Option<ToolsCheck>,
}

/// What the generating endpoints share: read the routing headers, let the
/// guard check the caller's allow-lists and quota, retrieve (admitted requests
/// only: an over-quota key costs no embedding or index search), screen, submit
/// (a long prompt is tokenized off the async threads), and wait until the
/// route and first output are known. Returns the started generation, its
/// sources, and the model name to report.
async fn begin(
    state: &AppState,
    backend: Arc<dyn Backend>,
    headers: &HeaderMap,
    endpoint: &str,
    asker: Asker<'_>,
    mut request: GenerateRequest,
    checks: Checks,
) -> Result<(Started, String), ApiError> {
    if let Some(value) = headers.get(ROUTE_HEADER) {
        let text = value.to_str().unwrap_or_default();
        let target = RouteTarget::parse(text).ok_or_else(|| {
            invalid("x-edgeway-route", format!("x-edgeway-route must be 'edge' or 'cloud', got '{text}'"))
        })?;
        request.route.target = Some(target);
    }
    if let Some(value) = headers.get(DOMAIN_HEADER).and_then(|v| v.to_str().ok()) {
        request.route.domain = Some(value.trim().to_owned());
    }
    let recorder = Recorder::new(state.log(), state.metrics().clone(), endpoint, &request.prompt)
        .for_caller(state.guard(), asker.caller);
    let route = request.route.target.map(RouteTarget::as_str);
    let ask = Ask { model: asker.model, route, logprobs: request.sampling.logprobs.is_some() };
    let permit = match admit(state.guard(), asker.caller, &ask) {
        Ok(permit) => permit,
        Err(error) => {
            recorder.refused(&error);
            return Err(error);
        }
    };
    if let Some(forced) = permit.force_route.as_deref().and_then(RouteTarget::parse) {
        request.route.target = Some(forced);
    }
    let sources = match &asker.collection {
        Some(collection) => match crate::rag::augment(state, &backend, asker.caller, &mut request, collection).await {
            Ok(sources) => sources,
            Err(error) => {
                recorder.refused(&error);
                return Err(error);
            }
        },
        None => Vec::new(),
    };
    let guard = state.guard();
    let watched =
        guard.extraction_config().action != ExtractionAction::Off || guard.injection_action() != InjectionAction::Off;
    let user_text = if watched { request.prompt.user_text().unwrap_or_default().to_owned() } else { String::new() };
    if let Err(error) = watch_for_extraction(guard, asker.caller, &user_text, &mut request).await {
        recorder.refused(&error);
        return Err(error);
    }
    if let Err(error) = screen_injections(state, asker.caller, user_text, &mut request.prompt).await {
        recorder.refused(&error);
        return Err(error);
    }
    // Only when the router would read it (its scorer embeds, and this request is routed by score),
    // and only once: retrieval may have embedded the text already.
    if request.query_embedding.is_none() && backend.wants_query_embedding(&request) {
        crate::query_embedding::ensure(state, &mut request).await;
    }
    let generation = match edgeway_core::submit_off_runtime(backend, request).await {
        Ok(generation) => generation,
        Err(error) => {
            let error = ApiError::from(error);
            recorder.refused(&error);
            return Err(error);
        }
    };
    let mut started = start(generation, recorder).await?;
    started.sources = sources;
    started.watch_format(checks.format, checks.tools);
    let model = started.route.as_ref().map_or_else(|| state.model_id().to_owned(), |route| route.model.clone());
    Ok((started, model))
}

/// The guard's allow-list and quota checks, in that order (a refused request does not count against the quota).
pub(crate) fn admit(guard: &Guard, caller: &Caller, ask: &Ask) -> Result<Permit, ApiError> {
    let permit = guard.authorize(caller, ask)?;
    guard.admit(caller)?;
    Ok(permit)
}

/// Screens the user's text and the tools' results for prompt injection (see [`screen_user_text`] and
/// [`screen_tool_results`]). Rules and a linear model over the text: microseconds for a chat
/// message, so inline; a large prompt is screened on a blocking thread. With an injection judge
/// configured ([`crate::injection_judge`]), what they let through is then shown to it.
async fn screen_injections(
    state: &AppState,
    caller: &Caller,
    user_text: String,
    prompt: &mut Prompt,
) -> Result<(), ApiError> {
    let guard = state.guard();
    if guard.injection_action() == InjectionAction::Off {
        return Ok(());
    }
    let heavy = prompt.text_len() >= edgeway_core::LARGE_PROMPT_BYTES;
    let (screen_guard, screen_caller) = (guard.clone(), caller.clone());
    let mut owned = std::mem::replace(prompt, Prompt::Text(String::new()));
    let (verdict, unflagged_tools, owned, user_text) = edgeway_core::off_runtime_if(heavy, move || {
        let verdict = screen_user_text(&screen_guard, &screen_caller, &user_text);
        let unflagged_tools = screen_tool_results(&screen_guard, &screen_caller, &mut owned);
        (verdict, unflagged_tools, owned, user_text)
    })
    .await
    .map_err(ApiError::from)?;
    *prompt = owned;
    let user_flagged = verdict?;
    if guard.injection_judge().is_none() {
        return Ok(());
    }
    if !user_flagged
        && !user_text.trim().is_empty()
        && crate::injection_judge::flags(state, caller, &user_text, Channel::User, "user").await
        && guard.injection_action() == InjectionAction::Block
    {
        return Err(injection_refusal("the injection judge"));
    }
    if let Prompt::Chat(messages) = prompt {
        for index in unflagged_tools {
            let message = &mut messages[index];
            let source = message.tool_call_id.clone().unwrap_or_else(|| "tool".to_owned());
            if crate::injection_judge::flags(state, caller, &message.content, Channel::Tool, &source).await
                && guard.injection_action() == InjectionAction::Block
            {
                message.content = WITHHELD_TOOL_RESULT.to_owned();
            }
        }
    }
    Ok(())
}

/// The refusal of a user message the screen flagged (`by`: what flagged it).
fn injection_refusal(by: &str) -> ApiError {
    ApiError::Guard(Denied::Refused {
        code: "prompt_injection",
        message: format!("the message looks like a prompt-injection attempt ({by}); it was not sent to the model"),
    })
}

/// Screens the user's text for prompt injection; refuses it (400) when the action is `block`
/// (decisions are logged by a background thread). Otherwise says whether it was flagged.
fn screen_user_text(guard: &Guard, caller: &Caller, user_text: &str) -> Result<bool, ApiError> {
    match guard.screen(caller, user_text, Channel::User, "user") {
        Some(screening) if screening.flagged && guard.injection_action() == InjectionAction::Block => {
            Err(injection_refusal(&if screening.rules.is_empty() {
                "classifier".to_owned()
            } else {
                screening.rules.join(", ")
            }))
        }
        Some(screening) => Ok(screening.flagged),
        None => Ok(false),
    }
}

/// What a tool result the screen withholds is replaced with: the model still sees that the call
/// returned, and can tell the user why it has no answer from it.
pub(crate) const WITHHELD_TOOL_RESULT: &str =
    "[edgeway withheld this tool result: it looks like a prompt-injection attempt. Tell the user the tool's answer could not be used.]";

/// Screens the tools' results in a conversation (`role: tool` messages, which an agent copies from
/// web pages, files and APIs): a flagged one is logged and, when the action is `block`, replaced by
/// [`WITHHELD_TOOL_RESULT`]. The request goes on either way: an agent's loop should not break on one
/// poisoned page. Returns the positions of the tool messages nothing flagged.
fn screen_tool_results(guard: &Guard, caller: &Caller, prompt: &mut Prompt) -> Vec<usize> {
    let Prompt::Chat(messages) = prompt else {
        return Vec::new();
    };
    let mut unflagged = Vec::new();
    for (index, message) in messages.iter_mut().enumerate().filter(|(_, m)| m.role == "tool" || m.role == "function") {
        let source = message.tool_call_id.as_deref().unwrap_or("tool");
        let flagged = guard.screen(caller, &message.content, Channel::Tool, source).is_some_and(|s| s.flagged);
        if !flagged {
            unflagged.push(index);
        } else if guard.injection_action() == InjectionAction::Block {
            message.content = WITHHELD_TOOL_RESULT.to_owned();
        }
    }
    unflagged
}

/// Shows the request to the model-extraction detector and applies its verdict:
/// nothing (`flag`), a delay (`slow`), no log-probabilities (`strip_logprobs`) or 403 (`block`).
async fn watch_for_extraction(
    guard: &Guard,
    caller: &Caller,
    user_text: &str,
    request: &mut GenerateRequest,
) -> Result<(), ApiError> {
    if guard.extraction_config().action == ExtractionAction::Off {
        return Ok(());
    }
    // A few counters per request: inline (decisions are logged by a background thread).
    let verdict = guard.inspect(caller, user_text, request.sampling.logprobs, request.sampling.max_tokens);
    if !verdict.suspected {
        return Ok(());
    }
    match verdict.action {
        ExtractionAction::Off | ExtractionAction::Flag => {}
        ExtractionAction::Slow => {
            tokio::time::sleep(std::time::Duration::from_millis(guard.extraction_config().slow_ms)).await;
        }
        ExtractionAction::StripLogprobs => request.sampling.logprobs = None,
        ExtractionAction::Block => {
            return Err(ApiError::Guard(Denied::Forbidden {
                code: "extraction_suspected",
                message: format!(
                    "key '{}' is sending traffic that looks like model extraction (score {:.2}); requests are refused \
                     until it changes. Ask the administrator if this is wrong",
                    caller.name, verdict.evidence.score
                ),
            }))
        }
    }
    Ok(())
}
