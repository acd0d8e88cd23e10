//! Task fingerprints: a hash of everything a task's output depends on — its settings and the
//! fingerprints of its inputs — kept in its done record. A resumed run redoes a done task
//! whose fingerprint no longer matches, and so everything downstream of it, whose
//! fingerprints chain through it: the way a build system keys its actions by their inputs.
//!
//! Files the run did not make (datasets, a given model, the corpus) are keyed by their
//! relative paths, sizes and modification times, as make and cargo do, not by content:
//! hashing a web-scale dataset on every resume would cost more than the check is worth.
//! Plugins are small and keyed by content.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::PipelineError;

/// The fingerprint of `value` (a task's settings and its inputs' fingerprints): the SHA-256
/// of its JSON, as hex.
pub fn of(value: &impl Serialize) -> String {
    let json = serde_json::to_vec(value).expect("fingerprint inputs serialise");
    hex::encode(Sha256::digest(&json))
}

/// The fingerprint of the file or folder `path` the run did not make: each file's path
/// below it, size and modification time, in path order.
pub fn of_path(path: &Path) -> Result<String, PipelineError> {
    let mut entries = Vec::new();
    list(path, Path::new(""), &mut entries)?;
    entries.sort();
    Ok(of(&entries))
}

/// The fingerprint of the bytes of the file `path`.
pub fn of_content(path: &Path) -> Result<String, PipelineError> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

fn io(path: &Path, error: std::io::Error) -> PipelineError {
    PipelineError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Appends `(relative path, size, mtime ns)` of every file at or below `path`.
fn list(path: &Path, rel: &Path, out: &mut Vec<(String, u64, u128)>) -> Result<(), PipelineError> {
    let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| io(path, e))? {
            let entry = entry.map_err(|e| io(path, e))?;
            list(&entry.path(), &rel.join(entry.file_name()), out)?;
        }
        return Ok(());
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    out.push((rel.to_string_lossy().into_owned(), meta.len(), mtime));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_changes_its_fingerprint_when_a_file_does() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.tar"), b"one").unwrap();
        std::fs::write(dir.path().join("sub/b.jsonl"), b"two").unwrap();
        let first = of_path(dir.path()).unwrap();
        assert_eq!(of_path(dir.path()).unwrap(), first, "stable");
        std::fs::write(dir.path().join("sub/b.jsonl"), b"three").unwrap();
        let grown = of_path(dir.path()).unwrap();
        assert_ne!(grown, first, "a file grew");
        std::fs::write(dir.path().join("c.tar"), b"").unwrap();
        assert_ne!(of_path(dir.path()).unwrap(), grown, "a file was added");
        assert!(matches!(
            of_path(&dir.path().join("missing")),
            Err(PipelineError::Io { .. })
        ));
    }

    #[test]
    fn settings_fingerprints_differ_with_any_field() {
        let a = of(&serde_json::json!({"steps": 250, "lr": 1e-3}));
        assert_eq!(a, of(&serde_json::json!({"steps": 250, "lr": 1e-3})));
        assert_ne!(a, of(&serde_json::json!({"steps": 251, "lr": 1e-3})));
        assert_eq!(a.len(), 64);
    }
}
