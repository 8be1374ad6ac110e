//! Hugging Face BERT sentence encoders (safetensors + `tokenizer.json` +
//! `config.json`, as sentence-transformers ships them) to GGUF for
//! llama.cpp's `bert` architecture, weights kept in F32.
//!
//! The vocabulary is rewritten for llama.cpp's WordPiece tokenizer, which
//! marks a word's first piece with "▁" instead of marking the others with
//! "##"; the normalizer's lowercase and accent stripping are carried over.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::gguf::{Metadata, Storage, Tensor, Value};
use super::ConvertError;

/// llama.cpp's pooling type for mean pooling.
const POOLING_MEAN: u32 = 1;
/// Token types in GGUF's vocabulary.
const TOKEN_NORMAL: i32 = 1;
const TOKEN_UNKNOWN: i32 = 2;
const TOKEN_CONTROL: i32 = 3;

/// The parts of `config.json` the conversion needs.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct BertConfig {
    hidden_size: u32,
    intermediate_size: u32,
    num_hidden_layers: u32,
    num_attention_heads: u32,
    max_position_embeddings: u32,
    #[serde(default = "default_eps")]
    layer_norm_eps: f32,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: u32,
    #[serde(default)]
    hidden_act: Option<String>,
}

fn default_eps() -> f32 {
    1e-12
}

fn default_type_vocab() -> u32 {
    2
}

/// Converts the model in `dir` into GGUF metadata and tensors.
pub fn convert(dir: &Path, name: &str, precision: Storage) -> Result<(Metadata, Vec<Tensor>), ConvertError> {
    let read =
        |file: &str| std::fs::read(dir.join(file)).map_err(|source| ConvertError::Io { path: dir.join(file), source });
    let bad = |reason: String| ConvertError::Invalid { model: name.to_owned(), reason };
    let config: BertConfig =
        serde_json::from_slice(&read("config.json")?).map_err(|e| bad(format!("config.json: {e}")))?;
    if config.hidden_act.as_deref().is_some_and(|act| act != "gelu") {
        return Err(bad(format!("activation {:?} is not gelu, which llama.cpp's bert graph uses", config.hidden_act)));
    }
    let tokenizer: serde_json::Value =
        serde_json::from_slice(&read("tokenizer.json")?).map_err(|e| bad(format!("tokenizer.json: {e}")))?;
    let mut metadata = vocabulary(&tokenizer).map_err(bad)?;
    let vocab_size = match metadata.iter().find(|(k, _)| k == "tokenizer.ggml.tokens") {
        Some((_, Value::StrArray(tokens))) => tokens.len(),
        _ => 0,
    };
    metadata.extend([
        ("general.architecture".to_owned(), Value::Str("bert".into())),
        ("general.name".to_owned(), Value::Str(name.to_owned())),
        ("general.file_type".to_owned(), Value::U32(if precision == Storage::F16 { 1 } else { 0 })),
        ("bert.context_length".to_owned(), Value::U32(config.max_position_embeddings)),
        ("bert.embedding_length".to_owned(), Value::U32(config.hidden_size)),
        ("bert.feed_forward_length".to_owned(), Value::U32(config.intermediate_size)),
        ("bert.block_count".to_owned(), Value::U32(config.num_hidden_layers)),
        ("bert.attention.head_count".to_owned(), Value::U32(config.num_attention_heads)),
        ("bert.attention.layer_norm_epsilon".to_owned(), Value::F32(config.layer_norm_eps)),
        ("bert.attention.causal".to_owned(), Value::Bool(false)),
        ("bert.pooling_type".to_owned(), Value::U32(POOLING_MEAN)),
        ("tokenizer.ggml.token_type_count".to_owned(), Value::U32(config.type_vocab_size)),
    ]);

    let weights = read("model.safetensors")?;
    let tensors = SafeTensors::deserialize(&weights).map_err(|e| bad(format!("model.safetensors: {e}")))?;
    let mut converted = Vec::new();
    for (hf_name, view) in tensors.tensors() {
        let Some(gguf_name) = gguf_name(&hf_name) else { continue };
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            other => return Err(bad(format!("{hf_name} is {other:?}; only F32 checkpoints are converted"))),
        };
        let dims: Vec<u64> = view.shape().iter().rev().map(|&d| d as u64).collect();
        // Norms and biases stay F32 at any precision, as llama.cpp expects, and so does the
        // token-type table: its row is added to the activations directly, and ggml's CPU add
        // cannot take an F16 operand there (it aborts).
        let storage = if dims.len() >= 2 && gguf_name != "token_types.weight" { precision } else { Storage::F32 };
        converted.push(Tensor { name: gguf_name, dims, data, storage });
    }
    converted.sort_by(|a, b| a.name.cmp(&b.name));
    let expected = 5 + 16 * config.num_hidden_layers as usize;
    if converted.len() != expected {
        return Err(bad(format!("found {} of the {expected} tensors a BERT encoder has", converted.len())));
    }
    if let Some(embedding) = converted.iter().find(|t| t.name == "token_embd.weight") {
        if embedding.dims.get(1).copied() != Some(vocab_size as u64) {
            return Err(bad(format!("{vocab_size} tokens but an embedding of {:?}", embedding.dims)));
        }
    }
    Ok((metadata, converted))
}

/// The GGUF name of a Hugging Face BERT tensor; `None` for tensors llama.cpp does not use (the pooler).
fn gguf_name(hf: &str) -> Option<String> {
    let name = hf.strip_prefix("bert.").unwrap_or(hf).replace(".gamma", ".weight").replace(".beta", ".bias");
    let fixed = [
        ("embeddings.word_embeddings.weight", "token_embd.weight"),
        ("embeddings.position_embeddings.weight", "position_embd.weight"),
        ("embeddings.token_type_embeddings.weight", "token_types.weight"),
        ("embeddings.LayerNorm.weight", "token_embd_norm.weight"),
        ("embeddings.LayerNorm.bias", "token_embd_norm.bias"),
    ];
    if let Some((_, to)) = fixed.iter().find(|(from, _)| *from == name) {
        return Some((*to).to_owned());
    }
    let rest = name.strip_prefix("encoder.layer.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: u32 = layer.parse().ok()?;
    let (module, kind) = part.rsplit_once('.')?;
    let target = match module {
        "attention.self.query" => "attn_q",
        "attention.self.key" => "attn_k",
        "attention.self.value" => "attn_v",
        "attention.output.dense" => "attn_output",
        "attention.output.LayerNorm" => "attn_output_norm",
        "intermediate.dense" => "ffn_up",
        "output.dense" => "ffn_down",
        "output.LayerNorm" => "layer_output_norm",
        _ => return None,
    };
    Some(format!("blk.{layer}.{target}.{kind}"))
}

/// The tokenizer metadata from a WordPiece `tokenizer.json`.
fn vocabulary(tokenizer: &serde_json::Value) -> Result<Metadata, String> {
    let model = &tokenizer["model"];
    if model["type"].as_str() != Some("WordPiece") {
        return Err(format!("the tokenizer is {}, not WordPiece", model["type"]));
    }
    let vocab = model["vocab"].as_object().ok_or("tokenizer.json has no model.vocab")?;
    let mut tokens = vec![String::new(); vocab.len()];
    for (token, id) in vocab {
        let id = id.as_u64().filter(|&id| (id as usize) < tokens.len()).ok_or(format!("token {token} has id {id}"))?;
        tokens[id as usize] = token.clone();
    }
    let special: HashMap<&str, u64> = tokenizer["added_tokens"]
        .as_array()
        .map(|added| {
            added
                .iter()
                .filter(|t| t["special"].as_bool() == Some(true))
                .filter_map(|t| Some((t["content"].as_str()?, t["id"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    let id_of = |token: &str, fallback: u32| special.get(token).map_or(fallback, |&id| id as u32);
    let types: Vec<i32> = tokens
        .iter()
        .map(|token| match token.as_str() {
            "[UNK]" => TOKEN_UNKNOWN,
            t if special.contains_key(t) => TOKEN_CONTROL,
            _ => TOKEN_NORMAL,
        })
        .collect();
    // llama.cpp's WordPiece marks a word's first piece ("▁word") rather than the rest ("##ing").
    let tokens: Vec<String> = tokens
        .into_iter()
        .map(|token| {
            if token.starts_with('[') && token.ends_with(']') {
                token
            } else if let Some(rest) = token.strip_prefix("##") {
                rest.to_owned()
            } else {
                format!("\u{2581}{token}")
            }
        })
        .collect();
    let normalizer = &tokenizer["normalizer"];
    let lowercase = normalizer["lowercase"].as_bool().unwrap_or(false);
    // BERT's normalizer strips accents when lowercasing unless told otherwise.
    let strip_accents = normalizer["strip_accents"].as_bool().unwrap_or(lowercase);
    Ok(vec![
        ("tokenizer.ggml.model".to_owned(), Value::Str("bert".into())),
        ("tokenizer.ggml.pre".to_owned(), Value::Str("default".into())),
        ("tokenizer.ggml.tokens".to_owned(), Value::StrArray(tokens)),
        ("tokenizer.ggml.token_type".to_owned(), Value::I32Array(types)),
        ("tokenizer.ggml.bos_token_id".to_owned(), Value::U32(id_of("[CLS]", 101))),
        ("tokenizer.ggml.cls_token_id".to_owned(), Value::U32(id_of("[CLS]", 101))),
        ("tokenizer.ggml.seperator_token_id".to_owned(), Value::U32(id_of("[SEP]", 102))),
        ("tokenizer.ggml.unknown_token_id".to_owned(), Value::U32(id_of("[UNK]", 100))),
        ("tokenizer.ggml.padding_token_id".to_owned(), Value::U32(id_of("[PAD]", 0))),
        ("tokenizer.ggml.mask_token_id".to_owned(), Value::U32(id_of("[MASK]", 103))),
        ("tokenizer.ggml.normalizer.lowercase".to_owned(), Value::Bool(lowercase)),
        ("tokenizer.ggml.normalizer.strip_accents".to_owned(), Value::Bool(strip_accents)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_names_map_to_llama_cpp_names() {
        assert_eq!(gguf_name("embeddings.word_embeddings.weight").as_deref(), Some("token_embd.weight"));
        assert_eq!(gguf_name("bert.embeddings.LayerNorm.gamma").as_deref(), Some("token_embd_norm.weight"));
        assert_eq!(
            gguf_name("encoder.layer.5.attention.output.LayerNorm.bias").as_deref(),
            Some("blk.5.attn_output_norm.bias")
        );
        assert_eq!(gguf_name("encoder.layer.0.output.dense.weight").as_deref(), Some("blk.0.ffn_down.weight"));
        assert_eq!(gguf_name("pooler.dense.weight"), None);
        assert_eq!(gguf_name("embeddings.position_ids"), None);
    }

    #[test]
    fn word_pieces_are_rewritten_for_llama_cpp() {
        let tokenizer = serde_json::json!({
            "added_tokens": [{"id": 0, "content": "[PAD]", "special": true}, {"id": 1, "content": "[UNK]", "special": true}],
            "normalizer": {"type": "BertNormalizer", "lowercase": true, "strip_accents": null},
            "model": {"type": "WordPiece", "vocab": {"[PAD]": 0, "[UNK]": 1, "play": 2, "##ing": 3}}
        });
        let metadata = vocabulary(&tokenizer).unwrap();
        let get = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(
            get("tokenizer.ggml.tokens"),
            Value::StrArray(vec!["[PAD]".into(), "[UNK]".into(), "\u{2581}play".into(), "ing".into()])
        );
        assert_eq!(get("tokenizer.ggml.token_type"), Value::I32Array(vec![3, 2, 1, 1]));
        assert_eq!(get("tokenizer.ggml.normalizer.strip_accents"), Value::Bool(true));
        assert_eq!(get("tokenizer.ggml.unknown_token_id"), Value::U32(1));
    }
}
