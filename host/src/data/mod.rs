//! Datasets on disk: WebDataset tar shards ([`webdataset`]) and the synthetic ShapesWorld
//! with ground truth ([`shapes`]).

pub mod shapes;
pub mod webdataset;

use std::path::PathBuf;

pub use webdataset::{DirReader, RawSample, ShardWriter, list_shards, read_shard, visit_shard};

/// Errors of the data layer; each names the file, shard, member or key concerned.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A shard is not a readable tar archive.
    #[error("shard {shard}: {msg}")]
    Shard {
        /// The shard.
        shard: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// One member of a shard is unusable.
    #[error("shard {shard}, member {member:?}: {msg}")]
    Member {
        /// The shard.
        shard: PathBuf,
        /// The member path inside the archive.
        member: String,
        /// What is wrong.
        msg: String,
    },
    /// A sample key or member extension given to [`ShardWriter`] is not allowed.
    #[error("shard {shard}: invalid key {key:?}: {msg}")]
    BadKey {
        /// The shard being written.
        shard: PathBuf,
        /// The offending key (or `KEY.EXT`).
        key: String,
        /// Why it is rejected.
        msg: String,
    },
    /// A folder holds no `*.tar` shards.
    #[error("no *.tar shards in {0}")]
    NoShards(PathBuf),
    /// A JSON document could not be written or read.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// An image could not be encoded.
    #[error("sample {key}: cannot encode image: {msg}")]
    Image {
        /// The sample key.
        key: String,
        /// The encoder's message.
        msg: String,
    },
    /// `generate` refuses to write into a folder that already holds files.
    #[error("output folder {0} is not empty: choose a new folder or remove its contents")]
    OutputNotEmpty(PathBuf),
    /// A ShapesWorld configuration value is out of range.
    #[error("invalid ShapesWorld config: {0}")]
    Config(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
