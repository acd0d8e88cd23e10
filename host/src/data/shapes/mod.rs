//! ShapesWorld: a procedural image dataset with exact ground truth, a miniature stand-in for
//! COYO in the VILA² loop. Each image is a [`Scene`] of 1–4 coloured shapes (and sometimes a
//! word) rendered by [`render`]; pretraining captions are noisy alt text ([`alt_text`]),
//! the ideal recaption is [`detailed_caption`], and [`caption_metrics`] / [`score_answer`]
//! measure how close a model gets.
//!
//! [`generate`] writes the whole dataset:
//! ```text
//! OUT/pretrain/shard-00000.tar …  KEY.png + KEY.txt (noisy alt text)
//! OUT/pretrain/scenes.jsonl       {"key":…, "scene":{…}} per sample (ground truth, not in shards)
//! OUT/sft/shard-*.tar             KEY.png + KEY.json: LLaVA conversation, a long VILA² prompt →
//!                                 detailed caption, then 2–3 VQA turns
//! OUT/specialist/{spatial,grounding,ocr}/shard-*.tar
//!                                 KEY.png + KEY.json: the specialist prompt → its answer
//!                                 (spatial adds relation and closest-object questions, ocr a
//!                                 text question)
//! OUT/eval/shard-*.tar            KEY.png + KEY.txt (detailed caption, the reference)
//! OUT/eval/vqa.jsonl              {"key","kind","question","answer"} per question
//! OUT/<split>/scenes.jsonl        ground truth of every split
//! OUT/corpus.txt                  every prompt, caption, question and answer, one per line
//! OUT/shapes.json                 the ShapesConfig used (written last: the completion mark)
//! ```
//! Keys are `<split>_<index:06>`; every sample has its own RNG seeded from (seed, split,
//! index), so splits use disjoint seed streams; an evaluation scene that happens to equal a
//! training scene is redrawn, so the held-out images are truly unseen.

pub mod captions;
pub mod facts;
pub mod files;
pub mod generate;
pub mod labels;
pub mod metrics;
pub mod questions;
pub mod render;
pub mod scene;
pub mod spatial;
pub mod tasks;

pub use captions::{AltTextConfig, alt_text, detailed_caption};
pub use facts::{CHECKED_TASKS, FactScore, PlacementScore, task_facts};
pub use files::{SceneRecord, VqaRecord, load_scenes, load_vqa};
pub use generate::{Conversation, GenerateSummary, ShapesConfig, Turn, generate};
pub use labels::{SceneLabels, scene_labels};
pub use metrics::{
    CaptionScore, CaptionTally, VqaTally, caption_metrics, normalize_answer, score_answer,
};
pub use questions::{Qa, QaKind, questions};
pub use render::render;
pub use scene::{BBox, Background, Color, Object, Scene, SceneConfig, Shape, Size, TextItem};
pub use tasks::{LONG_PROMPTS, Specialist};
