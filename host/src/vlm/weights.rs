//! Reading safetensors checkpoints (one file or shards listed by
//! `model.safetensors.index.json`; bf16, fp16 or fp32) into tensors of the engine's dtype and
//! device, with every tensor looked up by a canonical key and checked against the shape the
//! config implies.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use tch::{Device, Kind, Tensor};

use super::VlmError;

/// Tensors of a checkpoint, keyed by canonical name — or, for benchmarks of model sizes
/// that are not on disk, random tensors of whatever shape the config asks for.
pub struct Weights {
    dir: PathBuf,
    files: Vec<PathBuf>,
    tensors: HashMap<String, (Tensor, usize)>,
    random: Option<(Kind, Device)>,
}

fn kind_of(dtype: Dtype, file: &Path, key: &str) -> Result<Kind, VlmError> {
    Ok(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F64 => Kind::Double,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        other => {
            return Err(VlmError::Safetensors {
                file: file.to_path_buf(),
                msg: format!("tensor {key} has unsupported dtype {other:?}"),
            });
        }
    })
}

/// The safetensors files of a checkpoint folder: the shards named by
/// `model.safetensors.index.json`, else `model.safetensors`, else every `*.safetensors`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, VlmError> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| VlmError::Io {
            path: index.clone(),
            source: e,
        })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| VlmError::Config {
            file: index.clone(),
            msg: e.to_string(),
        })?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| VlmError::Config {
                file: index.clone(),
                msg: "no \"weight_map\" object".into(),
            })?;
        let names: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
        return Ok(names.into_iter().map(|n| dir.join(n)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| VlmError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(VlmError::Io {
            path: single,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no model.safetensors, model.safetensors.index.json or *.safetensors in the folder",
            ),
        });
    }
    Ok(found)
}

impl Weights {
    /// Loads `files`, renaming every key with `canonical`, converting floating tensors to
    /// `kind` and moving them to `device`.
    pub fn load(
        dir: &Path,
        files: Vec<PathBuf>,
        kind: Kind,
        device: Device,
        canonical: impl Fn(&str) -> String,
    ) -> Result<Self, VlmError> {
        let mut tensors = HashMap::new();
        for (idx, file) in files.iter().enumerate() {
            let bytes = std::fs::read(file).map_err(|e| VlmError::Io {
                path: file.clone(),
                source: e,
            })?;
            let st = SafeTensors::deserialize(&bytes).map_err(|e| VlmError::Safetensors {
                file: file.clone(),
                msg: e.to_string(),
            })?;
            for (name, view) in st.tensors() {
                let src_kind = kind_of(view.dtype(), file, &name)?;
                let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
                let t = Tensor::f_from_data_size(view.data(), &shape, src_kind)?;
                let t = if matches!(
                    src_kind,
                    Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double
                ) {
                    t.to_kind(kind)
                } else {
                    t
                };
                tensors.insert(canonical(&name), (t.to_device(device), idx));
            }
            tracing::debug!(file = %file.display(), "loaded weights");
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            tensors,
            random: None,
        })
    }

    /// Random weights (seeded): norms' weights 1, biases 0, everything else N(0, 0.02²).
    /// Every key is present, so output heads are untied. For throughput benchmarks only.
    pub fn random(dir: &Path, seed: i64, kind: Kind, device: Device) -> Self {
        tch::manual_seed(seed);
        Self {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            tensors: HashMap::new(),
            random: Some((kind, device)),
        }
    }

    /// Adds the tensors of `other` (weights of a checkpoint split over folders).
    pub fn merge(&mut self, other: Weights) {
        let offset = self.files.len();
        self.files.extend(other.files);
        for (k, (t, i)) in other.tensors {
            self.tensors.insert(k, (t, i + offset));
        }
    }

    /// Every loaded tensor by canonical key (empty for random weights). The model's layers
    /// hold shallow clones of these, so gradients and in-place updates (the trainer's) reach
    /// the model.
    pub fn named_tensors(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, (t, _))| (k.as_str(), t))
    }

    /// Whether a canonical key is present.
    pub fn contains(&self, key: &str) -> bool {
        self.random.is_some() || self.tensors.contains_key(key)
    }

    /// The tensor under a canonical key, checked to have `shape`.
    pub fn get(&self, key: &str, shape: &[i64]) -> Result<Tensor, VlmError> {
        if let Some((kind, device)) = self.random {
            let opts = (kind, device);
            let is_norm = key.contains("norm") || key.contains("layrnorm");
            return Ok(if key.ends_with(".bias") {
                Tensor::zeros(shape, opts)
            } else if is_norm {
                Tensor::ones(shape, opts)
            } else {
                Tensor::randn(shape, opts) * 0.02
            });
        }
        let (t, idx) = self
            .tensors
            .get(key)
            .ok_or_else(|| VlmError::MissingWeight {
                key: key.to_string(),
                dir: self.dir.clone(),
                files: self
                    .files
                    .iter()
                    .map(|f| {
                        f.file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned()
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        if t.size() != shape {
            return Err(VlmError::Shape {
                key: key.to_string(),
                file: self.files[*idx].clone(),
                expected: shape.to_vec(),
                actual: t.size(),
            });
        }
        Ok(t.shallow_clone())
    }

    /// Like [`Weights::get`] but `None` when the key is absent.
    pub fn get_opt(&self, key: &str, shape: &[i64]) -> Result<Option<Tensor>, VlmError> {
        if self.contains(key) {
            self.get(key, shape).map(Some)
        } else {
            Ok(None)
        }
    }
}
