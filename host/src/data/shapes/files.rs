//! Readers for the ground-truth files [`generate`](super::generate()) writes:
//! `scenes.jsonl` and `eval/vqa.jsonl`. Errors name the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::questions::QaKind;
use super::scene::Scene;
use crate::data::DataError;

/// One line of `scenes.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SceneRecord {
    /// The sample key.
    pub key: String,
    /// Its ground truth.
    pub scene: Scene,
}

/// One line of `eval/vqa.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VqaRecord {
    /// The image's sample key.
    pub key: String,
    /// What the question asks about.
    pub kind: QaKind,
    /// The question as it should be asked.
    pub question: String,
    /// The gold answer.
    pub answer: String,
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(line).map_err(|e| DataError::Json {
            path: PathBuf::from(format!("{}:{}", path.display(), i + 1)),
            source: e,
        })?;
        out.push(v);
    }
    Ok(out)
}

/// Reads a `scenes.jsonl` as a map from key to scene.
pub fn load_scenes(path: &Path) -> Result<BTreeMap<String, Scene>, DataError> {
    Ok(read_jsonl::<SceneRecord>(path)?
        .into_iter()
        .map(|r| (r.key, r.scene))
        .collect())
}

/// Reads `eval/vqa.jsonl` in file order.
pub fn load_vqa(path: &Path) -> Result<Vec<VqaRecord>, DataError> {
    read_jsonl(path)
}
