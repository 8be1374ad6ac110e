//! Turning what a user typed (a catalog name or a path) into a model file.

use std::path::{Path, PathBuf};

use crate::cache::ModelCache;
use crate::catalog;
use crate::pull::{pull, PullError, PullProgress};

/// A model file and the name it is served under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// The `model` id clients use: the catalog name, or the file stem of a path.
    pub id: String,
    /// The GGUF file.
    pub path: PathBuf,
}

/// Why a model spec could not be turned into a file.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Neither a catalog name nor an existing file.
    #[error("unknown model '{spec}': not a file, and not one of the models edgeway can pull ({known}); see `edgeway model list`")]
    Unknown {
        /// What was asked for.
        spec: String,
        /// The catalog names.
        known: String,
    },
    /// A catalog model that is not in the cache, with pulling disabled.
    #[error("model '{name}' is not downloaded yet; run `edgeway model pull {name}`")]
    NotPulled {
        /// The catalog name.
        name: String,
    },
    /// Pulling failed.
    #[error(transparent)]
    Pull(#[from] PullError),
}

/// Whether `spec` names a file (a path or a `.gguf` name) rather than a catalog model.
pub fn is_path(spec: &str) -> bool {
    spec.ends_with(".gguf") || Path::new(spec).is_file()
}

/// The name a model is served under: its catalog name, or a file's stem.
pub fn served_id(spec: &str) -> String {
    if is_path(spec) {
        return Path::new(spec).file_stem().and_then(|s| s.to_str()).unwrap_or(spec).to_owned();
    }
    catalog::find(spec).map_or_else(|| spec.to_owned(), |model| model.name.to_owned())
}

/// Resolves `spec`: an existing path (or anything ending in `.gguf`) is used as
/// is; a catalog name is taken from the cache, pulled first when `allow_pull`.
pub fn resolve_model(
    spec: &str,
    cache: &ModelCache,
    allow_pull: bool,
    progress: &mut dyn FnMut(PullProgress),
) -> Result<ResolvedModel, ResolveError> {
    if is_path(spec) {
        return Ok(ResolvedModel { id: served_id(spec), path: PathBuf::from(spec) });
    }
    let Some(model) = catalog::find(spec) else {
        return Err(ResolveError::Unknown { spec: spec.to_owned(), known: catalog::known_names() });
    };
    let path = match cache.cached(model) {
        Some(path) => path,
        None if allow_pull => pull(model, cache, progress)?,
        None => return Err(ResolveError::NotPulled { name: model.name.to_owned() }),
    };
    Ok(ResolvedModel { id: model.name.to_owned(), path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_pass_through_and_unknown_names_list_the_catalog() {
        let cache = ModelCache::new(std::env::temp_dir().join("edgeway-resolve-test-empty"));
        let resolved = resolve_model("/models/my-model.Q4_0.gguf", &cache, false, &mut |_| {}).unwrap();
        assert_eq!(resolved.id, "my-model.Q4_0");
        let error = resolve_model("llama-70b", &cache, false, &mut |_| {}).unwrap_err();
        assert!(error.to_string().contains("smollm2-135m"), "{error}");
        let error = resolve_model("smollm2-135m", &cache, false, &mut |_| {}).unwrap_err();
        assert!(matches!(error, ResolveError::NotPulled { .. }));
    }
}
