//! Ollama's JSON shapes (`/api/*`) and their validation into core types.
//!
//! Ollama's API differs from OpenAI's in its framing (newline-delimited JSON, streamed by
//! default), its sampling settings (`options`, with Ollama's defaults), its names (`model:tag`)
//! and its error body (`{"error": "..."}`); the generation underneath is the same.

pub mod models;
pub mod options;
pub mod reply;
pub mod request;
pub mod time;

/// The tag Ollama gives a name that has none.
pub const DEFAULT_TAG: &str = "latest";

/// The name edgeway serves for an Ollama model name: `X:latest` is `X` (Ollama's default tag).
pub fn base_name(name: &str) -> &str {
    let name = name.trim();
    match name.rsplit_once(':') {
        Some((base, tag)) if tag.eq_ignore_ascii_case(DEFAULT_TAG) && !base.is_empty() => base,
        _ => name,
    }
}

/// The name Ollama lists for a served model: with a tag, `X:latest` when it has none.
pub fn tagged_name(name: &str) -> String {
    if name.contains(':') {
        name.to_owned()
    } else {
        format!("{name}:{DEFAULT_TAG}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_the_default_tag_are_one() {
        assert_eq!(base_name("smollm2"), "smollm2");
        assert_eq!(base_name("smollm2:latest"), "smollm2");
        assert_eq!(base_name("smollm2:LATEST"), "smollm2");
        assert_eq!(base_name("smollm2:135m"), "smollm2:135m");
        assert_eq!(base_name(":latest"), ":latest");
        assert_eq!(tagged_name("smollm2"), "smollm2:latest");
        assert_eq!(tagged_name("qwen:7b"), "qwen:7b");
    }
}
