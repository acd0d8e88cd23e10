//! Durable task state: every unit of pipeline work (a stage, a shard, an evaluation) has an
//! id; its outputs are written atomically and then a record saying it is done. A restarted
//! run skips the done tasks and redoes the rest, so a kill at any point loses at most the
//! task in flight and never leaves a half-written output visible.
//!
//! The store is a folder of JSON records today; the shared-database store for several
//! workers (row leases with `FOR UPDATE SKIP LOCKED`) implements the same trait.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::PipelineError;

/// Where done records live.
pub trait TaskStore: Send + Sync {
    /// The record of task `id`, when it is done.
    fn done(&self, id: &str) -> Result<Option<serde_json::Value>, PipelineError>;
    /// Records task `id` as done with `record`.
    fn mark_done(&self, id: &str, record: serde_json::Value) -> Result<(), PipelineError>;
}

/// Done records as `DIR/<id>.json` files.
#[derive(Debug, Clone)]
pub struct FileTaskStore {
    dir: PathBuf,
}

impl FileTaskStore {
    /// A store in `dir` (created when missing).
    pub fn new(dir: &Path) -> Result<Self, PipelineError> {
        create_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{}.json", id.replace('/', "__")))
    }
}

impl TaskStore for FileTaskStore {
    fn done(&self, id: &str) -> Result<Option<serde_json::Value>, PipelineError> {
        let path = self.file(id);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| PipelineError::State {
                        path,
                        msg: format!("corrupt task record ({e}); delete it to redo the task"),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PipelineError::Io { path, error: e }),
        }
    }

    fn mark_done(&self, id: &str, record: serde_json::Value) -> Result<(), PipelineError> {
        let bytes = serde_json::to_vec_pretty(&record).expect("JSON values serialise");
        write_atomic(&self.file(id), &bytes)
    }
}

/// A done record as stored: the task's output and the fingerprint of the inputs it was
/// made from ([`super::fingerprint`]).
#[derive(Serialize, Deserialize)]
struct DoneRecord {
    fingerprint: String,
    output: serde_json::Value,
}

/// Whether a done record of a task counts for inputs of fingerprint `fingerprint`.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Not done.
    No,
    /// Done from these inputs, with this output.
    Done(serde_json::Value),
    /// Done from other inputs (or recorded before fingerprints): to redo.
    Stale,
}

/// What `store` holds of task `id` for inputs of fingerprint `fingerprint`.
pub fn recorded(
    store: &dyn TaskStore,
    id: &str,
    fingerprint: &str,
) -> Result<Recorded, PipelineError> {
    let Some(v) = store.done(id)? else {
        return Ok(Recorded::No);
    };
    Ok(match serde_json::from_value::<DoneRecord>(v) {
        Ok(d) if d.fingerprint == fingerprint => Recorded::Done(d.output),
        _ => Recorded::Stale,
    })
}

/// Runs task `id` unless it is done from inputs of fingerprint `fingerprint`; returns its
/// output either way. A record of other inputs is redone and replaced.
pub fn once<T, F>(
    store: &dyn TaskStore,
    id: &str,
    fingerprint: &str,
    work: F,
) -> Result<T, PipelineError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T, PipelineError>,
{
    match recorded(store, id, fingerprint)? {
        Recorded::Done(v) => match serde_json::from_value(v) {
            Ok(t) => {
                tracing::debug!(task = id, "already done");
                return Ok(t);
            }
            Err(_) => tracing::warn!(task = id, "task record unreadable by this version; redoing"),
        },
        Recorded::Stale => {
            tracing::info!(task = id, "done from other settings or inputs; redoing")
        }
        Recorded::No => {}
    }
    tracing::info!(task = id, "start");
    let start = std::time::Instant::now();
    let t = work()?;
    let record = DoneRecord {
        fingerprint: fingerprint.to_string(),
        output: serde_json::to_value(&t).expect("task records serialise"),
    };
    store.mark_done(
        id,
        serde_json::to_value(&record).expect("task records serialise"),
    )?;
    tracing::info!(
        task = id,
        seconds = start.elapsed().as_secs_f64(),
        "task done"
    );
    Ok(t)
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    let tmp = temp_path(path);
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| PipelineError::Io { path: p, error: e }
    };
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// A sibling name for writing `path` before renaming it into place.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Fills the folder `dir` through `fill(tmp)` on a temporary sibling and renames it into
/// place, replacing a leftover from an interrupted attempt.
pub fn build_dir<T>(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<T, PipelineError>,
) -> Result<T, PipelineError> {
    let tmp = temp_path(dir);
    remove_dir(&tmp)?;
    create_dir(&tmp)?;
    let t = fill(&tmp)?;
    remove_dir(dir)?;
    std::fs::rename(&tmp, dir).map_err(|e| PipelineError::Io {
        path: dir.to_path_buf(),
        error: e,
    })?;
    Ok(t)
}

/// `create_dir_all` with the path in the error.
pub fn create_dir(dir: &Path) -> Result<(), PipelineError> {
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::Io {
        path: dir.to_path_buf(),
        error: e,
    })
}

fn remove_dir(dir: &Path) -> Result<(), PipelineError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PipelineError::Io {
            path: dir.to_path_buf(),
            error: e,
        }),
    }
}

/// The files of `dir` whose extension is `ext`, sorted by path.
pub fn files_with_ext(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, PipelineError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| PipelineError::Io {
            path: dir.to_path_buf(),
            error: e,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_runs_a_task_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileTaskStore::new(dir.path()).unwrap();
        let mut calls = 0;
        for _ in 0..3 {
            let v: u32 = once(&store, "round-1/shard-00000", "fp", || {
                calls += 1;
                Ok(7)
            })
            .unwrap();
            assert_eq!(v, 7);
        }
        assert_eq!(calls, 1);
        let failed: Result<u32, _> = once(&store, "t2", "fp", || {
            Err(PipelineError::Failed("boom".into()))
        });
        assert!(failed.is_err());
        assert!(store.done("t2").unwrap().is_none());
    }

    #[test]
    fn once_redoes_a_task_whose_inputs_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileTaskStore::new(dir.path()).unwrap();
        let mut calls = 0;
        for (fp, want) in [("a", 1), ("a", 1), ("b", 2), ("b", 2), ("a", 3)] {
            let _: u32 = once(&store, "round-0/sft", fp, || {
                calls += 1;
                Ok(calls)
            })
            .unwrap();
            assert_eq!(calls, want, "after fingerprint {fp}");
        }
        assert_eq!(
            recorded(&store, "round-0/sft", "a").unwrap(),
            Recorded::Done(serde_json::json!(3))
        );
        assert_eq!(
            recorded(&store, "round-0/sft", "b").unwrap(),
            Recorded::Stale
        );
        assert_eq!(recorded(&store, "round-0/eval", "a").unwrap(), Recorded::No);
        // A record from before fingerprints is redone, not trusted.
        store.mark_done("old", serde_json::json!(7)).unwrap();
        assert_eq!(recorded(&store, "old", "a").unwrap(), Recorded::Stale);
        let v: u32 = once(&store, "old", "a", || Ok(8)).unwrap();
        assert_eq!(v, 8);
    }

    #[test]
    fn build_dir_replaces_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("model");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("stale"), b"x").unwrap();
        build_dir(&out, |tmp| {
            std::fs::write(tmp.join("fresh"), b"y").unwrap();
            Ok(())
        })
        .unwrap();
        assert!(out.join("fresh").exists());
        assert!(!out.join("stale").exists());
    }
}
