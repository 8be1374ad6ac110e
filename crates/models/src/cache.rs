//! The data directory: where pulled models live.

use std::path::{Path, PathBuf};

use crate::catalog::CatalogModel;

/// The cache of model files under a data directory (`~/.cache/edgeway` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCache {
    data_dir: PathBuf,
}

impl ModelCache {
    /// A cache rooted at `data_dir`; nothing is created until a model is pulled.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self { data_dir: data_dir.into() }
    }

    /// `$XDG_CACHE_HOME/edgeway`, else `~/.cache/edgeway`, else `./.edgeway`.
    pub fn default_data_dir() -> PathBuf {
        if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("edgeway");
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".cache").join("edgeway"),
            None => PathBuf::from(".edgeway"),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where model files are kept.
    pub fn models_dir(&self) -> PathBuf {
        self.data_dir.join("models")
    }

    /// Where a catalog model's file is (or will be once pulled).
    pub fn path_of(&self, model: &CatalogModel) -> PathBuf {
        self.models_dir().join(model.file_name)
    }

    /// The catalog model's file, if it has been pulled.
    pub fn cached(&self, model: &CatalogModel) -> Option<PathBuf> {
        let path = self.path_of(model);
        let len = std::fs::metadata(&path).ok()?.len();
        (len == model.size_bytes).then_some(path)
    }

    /// GGUF files in the models directory that are not catalog models (copied in by hand).
    pub fn other_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.models_dir()) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "gguf"))
            .filter(|path| {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                crate::catalog::CATALOG.iter().all(|model| model.file_name != name)
            })
            .collect();
        files.sort();
        files
    }
}
