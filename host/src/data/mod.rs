//! TEMPORARY compile shim (replaced by the shapes branch).
pub mod webdataset {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    pub struct RawSample {
        pub key: String,
        pub members: BTreeMap<String, Vec<u8>>,
    }
    pub fn read_shard(_p: &Path) -> Result<Vec<RawSample>, super::DataError> {
        todo!()
    }
    pub fn list_shards(_p: &Path) -> Result<Vec<PathBuf>, super::DataError> {
        todo!()
    }
    pub struct ShardWriter;
    impl ShardWriter {
        pub fn create(_p: &Path) -> Result<Self, super::DataError> {
            todo!()
        }
        pub fn add(&mut self, _k: &str, _m: &[(&str, &[u8])]) -> Result<(), super::DataError> {
            todo!()
        }
        pub fn finish(self) -> Result<(), super::DataError> {
            todo!()
        }
    }
}
pub mod shapes {
    #[derive(Debug, Clone, Default, serde::Serialize)]
    pub struct ShapesConfig {
        pub seed: u64,
        pub pretrain: usize,
        pub sft: usize,
        pub specialist: usize,
    }
    pub fn generate(_o: &std::path::Path, _c: &ShapesConfig) -> Result<(), super::DataError> {
        todo!()
    }
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub struct Scene;
    pub struct CaptionScore {
        pub mentioned: usize,
        pub correct: usize,
        pub gt_objects: usize,
        pub recalled: usize,
        pub hallucinated: usize,
    }
    pub fn caption_metrics(_t: &str, _s: &Scene) -> CaptionScore {
        todo!()
    }
    pub fn score_answer(_k: &str, _p: &str, _g: &str) -> bool {
        todo!()
    }
}
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct DataError;
