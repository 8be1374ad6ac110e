//! ONNX Runtime on the CPU: finding and loading the library, sessions, running a batch.
//!
//! This is the one module in edgeway that uses `ort`. The library is not
//! linked at build time: `ort`'s `load-dynamic` feature opens
//! `libonnxruntime.so` when the first [`Runtime`] is made, from the
//! `onnxruntime` wheel on PyPI ([`ORT_WHEEL_VERSION`], pinned together with
//! the `ort` crate, whose C API it must match). A process can load only one
//! ONNX Runtime library; asking for a second path is an error, not a silent
//! reuse.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ndarray::{Array4, ArrayD};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

/// The `onnxruntime` wheel whose library this build's `ort` (2.0.0-rc.15, C API 1.31) expects.
pub const ORT_WHEEL_VERSION: &str = "1.31.1";
/// The library's file name inside the wheel (`onnxruntime/capi/`).
pub const ORT_LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";
/// The environment variables that name the library, in the order they are read.
pub const LIBRARY_ENV_VARS: [&str; 2] = ["EDGEWAY_ORT_DYLIB", "ORT_DYLIB_PATH"];

/// Why the runtime or a model could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No library was named and none was found where the setup script installs it.
    #[error(
        "ONNX Runtime's library was not found (looked in: {}); run scripts/setup.sh, which installs \
         onnxruntime=={ORT_WHEEL_VERSION} into .venv, or `pip install onnxruntime=={ORT_WHEEL_VERSION}` and \
         set EDGEWAY_ORT_DYLIB (or ORT_DYLIB_PATH) to its onnxruntime/capi/{ORT_LIBRARY_FILE}",
        .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// Every place looked at.
        tried: Vec<PathBuf>,
    },
    /// The named library does not exist.
    #[error("ONNX Runtime's library {path} (from {source_name}) does not exist; point it at onnxruntime=={ORT_WHEEL_VERSION}'s onnxruntime/capi/{ORT_LIBRARY_FILE}, or unset it to use the one scripts/setup.sh installs")]
    Missing {
        /// The path named.
        path: PathBuf,
        /// Where the name came from (a setting or an environment variable).
        source_name: String,
    },
    /// The library exists but could not be loaded (wrong file, wrong version, wrong architecture).
    #[error("cannot load ONNX Runtime from {path}: {reason}; onnxruntime=={ORT_WHEEL_VERSION} is the version this build expects")]
    Load {
        /// The library.
        path: PathBuf,
        /// What the loader said.
        reason: String,
    },
    /// A library is already loaded in this process, from another path.
    #[error(
        "ONNX Runtime is already loaded from {loaded}; a process can load it only once, so {requested} cannot be used"
    )]
    AlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The one asked for.
        requested: PathBuf,
    },
    /// A model file could not be read.
    #[error("cannot read the model {path}: {error}")]
    ReadModel {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// ONNX Runtime refused the model.
    #[error("ONNX Runtime cannot load the model: {0}")]
    Model(String),
    /// Running the model failed.
    #[error("running the model failed: {0}")]
    Run(String),
}

/// What [`Runtime::load`] needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// The library to load; when `None`, [`locate_library`] looks for it.
    pub library: Option<PathBuf>,
    /// Threads per session for one operator (0: ONNX Runtime's default, one per core).
    /// One is as fast as two at batch 1 on a small CPU (shared/DATA.md).
    pub threads: usize,
}

/// Finds the library: `explicit`, else `EDGEWAY_ORT_DYLIB`, else `ORT_DYLIB_PATH`, else the wheel
/// in a `.venv` (where scripts/setup.sh installs it) under the working directory or a folder
/// above the running executable.
pub fn locate_library(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let named = explicit.map(|p| (p.to_path_buf(), "the library setting".to_owned())).or_else(|| {
        LIBRARY_ENV_VARS.iter().find_map(|var| {
            std::env::var_os(var).filter(|v| !v.is_empty()).map(|v| (PathBuf::from(v), (*var).to_owned()))
        })
    });
    if let Some((path, source_name)) = named {
        return if path.is_file() { Ok(absolute(&path)) } else { Err(RuntimeError::Missing { path, source_name }) };
    }
    let mut roots: Vec<PathBuf> = std::env::current_dir().into_iter().collect();
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    let mut tried = Vec::new();
    for root in roots {
        tried.push(root.join(".venv/lib").join(format!("python3.*/site-packages/onnxruntime/capi/{ORT_LIBRARY_FILE}")));
        if let Some(path) = library_in_venv(&root.join(".venv")) {
            return Ok(path);
        }
    }
    tried.dedup();
    Err(RuntimeError::NotFound { tried })
}

/// The wheel's library inside the virtualenv `venv`, if it is installed there.
pub fn library_in_venv(venv: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .map(|python| python.join("site-packages/onnxruntime/capi").join(ORT_LIBRARY_FILE))
        .filter(|path| path.is_file())
        .collect();
    found.sort();
    found.pop()
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The library this process loaded and its one environment (ONNX Runtime allows one per process),
/// once it has.
static LOADED: OnceLock<(PathBuf, Arc<ort::environment::Environment>)> = OnceLock::new();
/// Serialises the first load, so two threads cannot race to load different files.
static LOADING: Mutex<()> = Mutex::new(());

/// ONNX Runtime, loaded: makes sessions. Every runtime in a process shares the one environment.
pub struct Runtime {
    environment: Arc<ort::environment::Environment>,
    library: PathBuf,
    threads: usize,
    spinning: bool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("library", &self.library).field("threads", &self.threads).finish()
    }
}

impl Runtime {
    /// Finds and loads the library and makes its environment (once per process; later calls
    /// share them, with their own thread count).
    pub fn load(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let library = locate_library(config.library.as_deref())?;
        let _guard = LOADING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((loaded, environment)) = LOADED.get() {
            if loaded != &library {
                return Err(RuntimeError::AlreadyLoaded { loaded: loaded.clone(), requested: library });
            }
            return Ok(Self { environment: environment.clone(), library, threads: config.threads, spinning: true });
        }
        let load_error = |reason: String| RuntimeError::Load { path: library.clone(), reason };
        let environment = ort::init_from(&library)
            .map_err(|error| load_error(error.to_string()))?
            .with_name("edgeway")
            .build()
            .map_err(|error| load_error(error.to_string()))?;
        let environment = Arc::new(environment);
        let _ = LOADED.set((library.clone(), environment.clone()));
        Ok(Self { environment, library, threads: config.threads, spinning: true })
    }

    /// Sessions whose worker threads sleep between operators instead of spinning: slower for a
    /// process that only runs the model, faster for a server whose other threads (HTTP,
    /// decoding) need the same cores.
    pub fn without_spinning(mut self) -> Self {
        self.spinning = false;
        self
    }

    /// The library in use.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// ONNX Runtime's version string, e.g. `1.31.1`.
    pub fn version(&self) -> String {
        ort::info().split("git-branch=rel-").nth(1).and_then(|s| s.split(',').next()).unwrap_or("unknown").to_owned()
    }

    /// A session for the ONNX model in `bytes`.
    pub fn session_from_bytes(&self, bytes: &[u8]) -> Result<VisionSession, RuntimeError> {
        let model_error = |error: String| RuntimeError::Model(error);
        let mut builder = Session::builder(&self.environment)
            .map_err(|e| model_error(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| model_error(e.to_string()))?;
        if self.threads > 0 {
            builder = builder.with_intra_threads(self.threads).map_err(|e| model_error(e.to_string()))?;
        }
        if !self.spinning {
            builder = builder.with_intra_op_spinning(false).map_err(|e| model_error(e.to_string()))?;
        }
        let session = builder.commit_from_memory(bytes).map_err(|e| model_error(e.to_string()))?;
        Ok(VisionSession { session })
    }

    /// A session for the ONNX model file at `path`.
    pub fn session_from_file(&self, path: &Path) -> Result<VisionSession, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|error| RuntimeError::ReadModel { path: path.to_owned(), error })?;
        self.session_from_bytes(&bytes)
    }
}

/// Every output of one run, by name, in the model's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// `(name, values)` per output.
    pub values: Vec<(String, ArrayD<f32>)>,
}

impl Outputs {
    /// The output called `name`.
    pub fn get(&self, name: &str) -> Option<&ArrayD<f32>> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// A loaded model with one float image input.
#[derive(Debug)]
pub struct VisionSession {
    session: Session,
}

impl VisionSession {
    /// The model's output names.
    pub fn output_names(&self) -> Vec<String> {
        self.session.outputs().iter().map(|o| o.name().to_owned()).collect()
    }

    /// The side of the square images the one input takes (`[N, 3, S, S]`), when the model fixes it.
    pub fn input_side(&self) -> Option<u32> {
        let [input] = self.session.inputs() else { return None };
        match input.dtype().tensor_shape().map(|shape| shape.to_vec()).as_deref() {
            Some([_, 3, h, w]) if h == w && *h > 0 => u32::try_from(*h).ok(),
            _ => None,
        }
    }

    /// Runs a batch `[N, 3, H, W]` through the model and returns every float output.
    pub fn run(&mut self, batch: &Array4<f32>) -> Result<Outputs, RuntimeError> {
        let input_name = match self.session.inputs() {
            [input] => input.name().to_owned(),
            inputs => {
                return Err(RuntimeError::Run(format!(
                    "the model has {} inputs, one image input was expected",
                    inputs.len()
                )))
            }
        };
        let contiguous = batch.as_standard_layout();
        let tensor = TensorRef::from_array_view(contiguous.view()).map_err(|e| RuntimeError::Run(e.to_string()))?;
        let names = self.output_names();
        let outputs = self
            .session
            .run(ort::inputs![input_name.as_str() => tensor])
            .map_err(|e| RuntimeError::Run(e.to_string()))?;
        let mut values = Vec::with_capacity(names.len());
        for name in names {
            // Only float outputs are read (an anomalib export's `pred_label` is boolean).
            if outputs[name.as_str()].dtype().tensor_type() != Some(ort::value::TensorElementType::Float32) {
                continue;
            }
            let array = outputs[name.as_str()]
                .try_extract_array::<f32>()
                .map_err(|e| RuntimeError::Run(format!("output {name}: {e}")))?
                .to_owned();
            values.push((name, array));
        }
        Ok(Outputs { values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_library_that_does_not_exist_is_a_clear_error() {
        let error = locate_library(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("/nonexistent/libonnxruntime.so") && message.contains("onnxruntime==1.31.1"),
            "{message}"
        );
    }

    #[test]
    fn a_file_that_is_not_the_library_fails_to_load_without_a_panic() {
        let fake = std::env::temp_dir().join(format!("edgeway-not-ort-{}.so", std::process::id()));
        std::fs::write(&fake, b"not a shared library").unwrap();
        let error = Runtime::load(&RuntimeConfig { library: Some(fake.clone()), threads: 1 }).unwrap_err();
        assert!(matches!(error, RuntimeError::Load { .. }), "{error}");
        let _ = std::fs::remove_file(&fake);
    }
}
