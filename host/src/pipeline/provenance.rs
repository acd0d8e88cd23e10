//! Per-sample provenance: where every caption came from. Each output sample carries it as
//! `KEY.json` in its shard, and each shard gets a Parquet table with one row per sample,
//! in the spirit of Recap-DataComp-1B's columns.

use std::path::Path;
use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, FloatType, Int32Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde::{Deserialize, Serialize};

use super::PipelineError;
use super::prune::PrunedSentence;
use super::state::temp_path;
use crate::plugin::records::QaTurn;

/// The history of one sample's caption.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// WebDataset key.
    pub key: String,
    /// The caption the dataset came with.
    pub org_caption: String,
    /// One record per self-augmentation round that touched the sample.
    #[serde(default)]
    pub rounds: Vec<RoundRecord>,
    /// Turns added by specialists.
    #[serde(default)]
    pub specialist_turns: Vec<SpecialistRecord>,
    /// The caption the sample now trains on (its `.txt`).
    pub caption: String,
}

/// What one round did to a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Round number (1 = first recaption).
    pub round: u32,
    /// Id of the model that recaptioned.
    pub model: String,
    /// SHA-256 of its weights.
    pub model_sha256: String,
    /// Template plugin as `name@version`.
    pub template: String,
    /// The prompt the model answered.
    pub prompt: String,
    /// The template's variant name.
    pub variant: String,
    /// The model's caption, when it wrote one (less the sentences pruned or dropped).
    pub recaption: Option<String>,
    /// Sentences taken out of it for a low-probability token (`min_sentence_logprob`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<PrunedSentence>,
    /// Sentences taken out of it for repeating an earlier one (`drop_repeated_sentences`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeated_sentences: usize,
    /// Sentences taken out of it for relating an object to itself (`drop_self_relations`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_relations: Vec<String>,
    /// Its mean token log-probability under the model.
    pub mean_logprob: Option<f32>,
    /// Each filter's verdict, in order.
    pub verdicts: Vec<FilterRecord>,
    /// Whether the recaption was used (otherwise the previous caption stays).
    pub kept: bool,
    /// Why no recaption was used, when something failed.
    pub error: Option<String>,
}

/// A caption filter's verdict on a recaption.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterRecord {
    /// Filter plugin as `name@version`.
    pub plugin: String,
    /// Kept by this filter.
    pub keep: bool,
    /// Its score in [0, 1].
    pub score: Option<f32>,
    /// Its reasons.
    pub reasons: Vec<String>,
    /// The plugin's error for this item.
    pub error: Option<String>,
}

/// What one specialist added to a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpecialistRecord {
    /// Task (`spatial`, `grounding`, `ocr`, ...).
    pub task: String,
    /// Id of the specialist model.
    pub model: String,
    /// The prompt it answered.
    pub prompt: String,
    /// Its raw answer.
    pub answer: String,
    /// The QA turns the post-processor made of it.
    pub turns: Vec<QaTurn>,
    /// Parts the post-processor dropped, with reasons.
    pub dropped: Vec<String>,
    /// Why nothing was added, when something failed.
    pub error: Option<String>,
}

impl Provenance {
    /// The most recent round record.
    pub fn last_round(&self) -> Option<&RoundRecord> {
        self.rounds.last()
    }
}

/// Words in a caption.
pub fn words(s: &str) -> i32 {
    s.split_whitespace().count() as i32
}

const SCHEMA: &[(&str, Physical, bool, bool)] = &[
    // name, physical type, optional, is string
    ("key", Physical::BYTE_ARRAY, false, true),
    ("org_caption", Physical::BYTE_ARRAY, false, true),
    ("re_caption", Physical::BYTE_ARRAY, true, true),
    ("caption", Physical::BYTE_ARRAY, false, true),
    ("round", Physical::INT32, false, false),
    ("model", Physical::BYTE_ARRAY, false, true),
    ("model_sha256", Physical::BYTE_ARRAY, false, true),
    ("template", Physical::BYTE_ARRAY, false, true),
    ("prompt", Physical::BYTE_ARRAY, false, true),
    ("prompt_variant", Physical::BYTE_ARRAY, false, true),
    ("kept", Physical::BOOLEAN, false, false),
    ("filter_score", Physical::FLOAT, true, false),
    ("filter_reasons", Physical::BYTE_ARRAY, false, true),
    ("mean_logprob", Physical::FLOAT, true, false),
    ("org_length", Physical::INT32, false, false),
    ("re_length", Physical::INT32, false, false),
    ("length", Physical::INT32, false, false),
    ("specialist_turns", Physical::INT32, false, false),
    ("error", Physical::BYTE_ARRAY, true, true),
];

/// The Parquet column names, in order.
pub fn columns() -> impl Iterator<Item = &'static str> {
    SCHEMA.iter().map(|c| c.0)
}

fn schema() -> Arc<Type> {
    let fields = SCHEMA
        .iter()
        .map(|&(name, physical, optional, string)| {
            let mut b = Type::primitive_type_builder(name, physical).with_repetition(if optional {
                Repetition::OPTIONAL
            } else {
                Repetition::REQUIRED
            });
            if string {
                b = b.with_logical_type(Some(LogicalType::String));
            }
            Arc::new(b.build().expect("valid column"))
        })
        .collect();
    Arc::new(
        Type::group_type_builder("provenance")
            .with_fields(fields)
            .build()
            .expect("valid schema"),
    )
}

enum Column {
    Str(Vec<Option<String>>),
    Int(Vec<i32>),
    Float(Vec<Option<f32>>),
    Bool(Vec<bool>),
}

fn column(name: &str, rows: &[Provenance]) -> Column {
    let last = |p: &Provenance| p.last_round().cloned().unwrap_or_default();
    let s = |f: &dyn Fn(&Provenance) -> Option<String>| Column::Str(rows.iter().map(f).collect());
    match name {
        "key" => s(&|p| Some(p.key.clone())),
        "org_caption" => s(&|p| Some(p.org_caption.clone())),
        "re_caption" => s(&|p| last(p).recaption),
        "caption" => s(&|p| Some(p.caption.clone())),
        "round" => Column::Int(rows.iter().map(|p| last(p).round as i32).collect()),
        "model" => s(&|p| Some(last(p).model)),
        "model_sha256" => s(&|p| Some(last(p).model_sha256)),
        "template" => s(&|p| Some(last(p).template)),
        "prompt" => s(&|p| Some(last(p).prompt)),
        "prompt_variant" => s(&|p| Some(last(p).variant)),
        "kept" => Column::Bool(rows.iter().map(|p| last(p).kept).collect()),
        "filter_score" => Column::Float(
            rows.iter()
                .map(|p| {
                    last(p)
                        .verdicts
                        .iter()
                        .filter_map(|v| v.score)
                        .reduce(f32::min)
                })
                .collect(),
        ),
        "filter_reasons" => s(&|p| {
            let r: Vec<String> = last(p)
                .verdicts
                .iter()
                .flat_map(|v| v.reasons.clone())
                .collect();
            Some(r.join(";"))
        }),
        "mean_logprob" => Column::Float(rows.iter().map(|p| last(p).mean_logprob).collect()),
        "org_length" => Column::Int(rows.iter().map(|p| words(&p.org_caption)).collect()),
        "re_length" => Column::Int(
            rows.iter()
                .map(|p| last(p).recaption.as_deref().map_or(0, words))
                .collect(),
        ),
        "length" => Column::Int(rows.iter().map(|p| words(&p.caption)).collect()),
        "specialist_turns" => Column::Int(
            rows.iter()
                .map(|p| {
                    p.specialist_turns
                        .iter()
                        .map(|t| t.turns.len())
                        .sum::<usize>() as i32
                })
                .collect(),
        ),
        "error" => s(&|p| {
            let mut errs: Vec<String> = p.rounds.iter().filter_map(|r| r.error.clone()).collect();
            errs.extend(p.specialist_turns.iter().filter_map(|t| t.error.clone()));
            (!errs.is_empty()).then(|| errs.join("; "))
        }),
        other => unreachable!("column {other} has no extractor"),
    }
}

/// Writes the provenance table of one shard to `path` (atomically).
pub fn write_parquet(path: &Path, rows: &[Provenance]) -> Result<(), PipelineError> {
    let err = |e: parquet::errors::ParquetError| PipelineError::Output {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    let tmp = temp_path(path);
    let file = std::fs::File::create(&tmp).map_err(|e| PipelineError::Io {
        path: tmp.clone(),
        error: e,
    })?;
    let props = Arc::new(WriterProperties::builder().build());
    let mut w = SerializedFileWriter::new(file, schema(), props).map_err(err)?;
    let mut rg = w.next_row_group().map_err(err)?;
    for &(name, ..) in SCHEMA {
        let mut col = rg
            .next_column()
            .map_err(err)?
            .expect("one writer per schema column");
        match column(name, rows) {
            Column::Str(v) => {
                let def: Vec<i16> = v.iter().map(|x| x.is_some() as i16).collect();
                let vals: Vec<ByteArray> = v
                    .into_iter()
                    .flatten()
                    .map(|s| ByteArray::from(s.into_bytes()))
                    .collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&vals, Some(&def), None)
                    .map_err(err)?;
            }
            Column::Float(v) => {
                let def: Vec<i16> = v.iter().map(|x| x.is_some() as i16).collect();
                let vals: Vec<f32> = v.into_iter().flatten().collect();
                col.typed::<FloatType>()
                    .write_batch(&vals, Some(&def), None)
                    .map_err(err)?;
            }
            Column::Int(v) => {
                col.typed::<Int32Type>()
                    .write_batch(&v, None, None)
                    .map_err(err)?;
            }
            Column::Bool(v) => {
                col.typed::<BoolType>()
                    .write_batch(&v, None, None)
                    .map_err(err)?;
            }
        }
        col.close().map_err(err)?;
    }
    rg.close().map_err(err)?;
    w.close().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| PipelineError::Io {
        path: path.to_path_buf(),
        error: e,
    })
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    use super::*;

    #[test]
    fn parquet_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard-00000.parquet");
        let rows = vec![
            Provenance {
                key: "a".into(),
                org_caption: "red ball".into(),
                caption: "a big red circle".into(),
                rounds: vec![RoundRecord {
                    round: 1,
                    model: "round-0".into(),
                    recaption: Some("a big red circle".into()),
                    kept: true,
                    verdicts: vec![FilterRecord {
                        plugin: "q@1".into(),
                        keep: true,
                        score: Some(0.75),
                        reasons: vec![],
                        error: None,
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
            Provenance {
                key: "b".into(),
                org_caption: "stock photo".into(),
                caption: "stock photo".into(),
                rounds: vec![RoundRecord {
                    round: 1,
                    error: Some("plugin trapped".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
        ];
        write_parquet(&path, &rows).unwrap();
        let r = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(r.metadata().file_metadata().num_rows(), 2);
        let got: Vec<_> = r.get_row_iter(None).unwrap().map(|r| r.unwrap()).collect();
        let field = |row: usize, name: &str| {
            got[row]
                .get_column_iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, f)| f.clone())
                .unwrap()
        };
        assert_eq!(field(0, "key"), Field::Str("a".into()));
        assert_eq!(field(0, "re_length"), Field::Int(4));
        assert_eq!(field(0, "filter_score"), Field::Float(0.75));
        assert_eq!(field(1, "re_caption"), Field::Null);
        assert_eq!(field(1, "kept"), Field::Bool(false));
        assert_eq!(field(1, "error"), Field::Str("plugin trapped".into()));
        let names: Vec<String> = got[0].get_column_iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names, columns().map(String::from).collect::<Vec<_>>());
    }
}
