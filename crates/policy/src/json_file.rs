//! Writing a trained model's JSON file so that a reader never sees half of it: a temporary
//! file beside it, then a rename; a failed write (a full disk) leaves the old file and no
//! temporary one. The learned and embedding scorers and the injection classifier all save this way.

use std::path::Path;

use serde::Serialize;

/// Writes `value` as JSON to `path`, creating its folder if needed.
pub fn save(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let partial = path.with_extension("json.partial");
    let text = serde_json::to_string(value).map_err(std::io::Error::other)?;
    let written = std::fs::write(&partial, text).and_then(|()| std::fs::rename(&partial, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_is_replaced_whole_and_no_temporary_file_is_left() {
        let dir = std::env::temp_dir().join(format!("edgeway-json-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested").join("model.json");
        super::save(&path, &vec![1, 2]).unwrap();
        super::save(&path, &vec![3]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[3]");
        assert!(!path.with_extension("json.partial").exists());
        // A folder where the file should go: the write fails and leaves nothing behind.
        let blocked = dir.join("blocked.json");
        std::fs::create_dir_all(&blocked).unwrap();
        assert!(super::save(&blocked, &1).is_err());
        assert!(!blocked.with_extension("json.partial").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
