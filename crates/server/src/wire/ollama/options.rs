//! Ollama's `options` (its Modelfile parameters) onto edgeway's validated sampling.
//!
//! The options the engine has are applied and range-checked as on `/v1/*`. The others Ollama
//! knows are type-checked and ignored ([`IGNORED`]), and unknown ones are ignored, as Ollama
//! ignores them.

use edgeway_core::SamplingParams;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{invalid, ApiError};
use crate::wire::common::{SamplingFields, StopField};

/// Ollama's default temperature, used when a request sets none.
pub const DEFAULT_TEMPERATURE: f32 = 0.8;
/// Ollama's default nucleus mass, used when a request sets none.
pub const DEFAULT_TOP_P: f32 = 0.9;

/// `options`, as sent.
#[derive(Debug, Default, Deserialize)]
pub struct Options {
    /// Softmax temperature, 0 to 2 (0 is greedy).
    pub temperature: Option<f32>,
    /// Nucleus mass, above 0 and at most 1.
    pub top_p: Option<f32>,
    /// Sampler seed; negative (Ollama's -1) picks one per request.
    pub seed: Option<i64>,
    /// Most tokens to generate; zero or negative (Ollama's -1 and -2) means no limit but the context.
    pub num_predict: Option<i64>,
    /// Strings that end the answer (a list, or one string).
    pub stop: Option<StopField>,
    /// OpenAI-style presence penalty, -2 to 2.
    pub presence_penalty: Option<f32>,
    /// OpenAI-style frequency penalty, -2 to 2.
    pub frequency_penalty: Option<f32>,
    /// Every other option: checked against [`IGNORED`], else ignored.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The JSON type an ignored option must still have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A number (Ollama takes `40.0` for an integer, so any number).
    Number,
    /// `true` or `false`.
    Boolean,
}

impl Kind {
    fn accepts(self, value: &Value) -> bool {
        match self {
            Kind::Number => value.is_number(),
            Kind::Boolean => value.is_boolean(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Number => "a number",
            Kind::Boolean => "true or false",
        }
    }
}

/// Options Ollama knows that edgeway accepts without applying: load-time settings (the server
/// loads its model once, with its own context size and threads) and samplers the engine does not
/// have (it samples with top-k 40 and no repetition penalty but the two OpenAI penalties).
pub const IGNORED: &[(&str, Kind)] = &[
    ("num_ctx", Kind::Number),
    ("num_batch", Kind::Number),
    ("num_gpu", Kind::Number),
    ("main_gpu", Kind::Number),
    ("num_thread", Kind::Number),
    ("num_keep", Kind::Number),
    ("numa", Kind::Boolean),
    ("low_vram", Kind::Boolean),
    ("f16_kv", Kind::Boolean),
    ("logits_all", Kind::Boolean),
    ("vocab_only", Kind::Boolean),
    ("use_mmap", Kind::Boolean),
    ("use_mlock", Kind::Boolean),
    ("embedding_only", Kind::Boolean),
    ("top_k", Kind::Number),
    ("min_p", Kind::Number),
    ("typical_p", Kind::Number),
    ("tfs_z", Kind::Number),
    ("repeat_last_n", Kind::Number),
    ("repeat_penalty", Kind::Number),
    ("mirostat", Kind::Number),
    ("mirostat_tau", Kind::Number),
    ("mirostat_eta", Kind::Number),
    ("penalize_newline", Kind::Boolean),
];

impl Options {
    /// Checks every known option and builds the sampling parameters (without a format or logprobs).
    pub fn validate(self) -> Result<SamplingParams, ApiError> {
        for (name, kind) in IGNORED {
            if let Some(value) = self.other.get(*name).filter(|v| !v.is_null()) {
                if !kind.accepts(value) {
                    return Err(invalid("options", format!("option '{name}' must be {}, got {value}", kind.name())));
                }
            }
        }
        let fields = SamplingFields {
            temperature: Some(self.temperature.unwrap_or(DEFAULT_TEMPERATURE)),
            top_p: Some(self.top_p.unwrap_or(DEFAULT_TOP_P)),
            seed: self.seed.filter(|&seed| seed >= 0),
            stop: self.stop,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            ..SamplingFields::default()
        };
        // No format fields: the format is the request's own `format`, set by the caller.
        let (mut sampling, _) = fields.validate()?;
        sampling.max_tokens = self.num_predict.filter(|&n| n > 0).map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        Ok(sampling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(value: Value) -> Result<SamplingParams, ApiError> {
        serde_json::from_value::<Options>(value).unwrap().validate()
    }

    #[test]
    fn known_options_map_onto_sampling_with_ollamas_defaults() {
        let sampling = options(json!({})).unwrap();
        assert_eq!((sampling.temperature, sampling.top_p, sampling.max_tokens), (0.8, 0.9, None));
        let sampling = options(json!({
            "temperature": 0, "top_p": 0.5, "seed": 7, "num_predict": 12, "stop": ["\n"],
            "presence_penalty": 0.5, "frequency_penalty": -0.5, "top_k": 20, "num_ctx": 4096, "unheard_of": "x"
        }))
        .unwrap();
        assert_eq!(sampling.temperature, 0.0);
        assert_eq!(sampling.top_p, 0.5);
        assert_eq!(sampling.seed, Some(7));
        assert_eq!(sampling.max_tokens, Some(12));
        assert_eq!(sampling.stop, vec!["\n".to_owned()]);
        assert_eq!((sampling.presence_penalty, sampling.frequency_penalty), (0.5, -0.5));
    }

    #[test]
    fn ollamas_sentinels_mean_no_limit_and_a_random_seed() {
        for n in [-2, -1, 0] {
            assert_eq!(options(json!({ "num_predict": n })).unwrap().max_tokens, None);
        }
        assert_eq!(options(json!({"seed": -1})).unwrap().seed, None);
    }

    #[test]
    fn bad_values_of_known_options_are_refused() {
        let message = |value: Value| options(value).unwrap_err().to_string();
        assert!(message(json!({"temperature": 3})).contains("temperature"));
        assert!(message(json!({"top_p": 0})).contains("top_p"));
        assert!(message(json!({"top_k": "many"})).contains("'top_k' must be a number"));
        assert!(message(json!({"use_mmap": 1})).contains("'use_mmap' must be true or false"));
    }
}
