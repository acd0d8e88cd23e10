//! The records plugins exchange with the host, as plain serde structs (the JSON-lines format of
//! `vila2 plugin run`), and their conversions to and from the generated WIT types.

use serde::{Deserialize, Serialize};

use super::World;
use super::bindings::types as wit;

/// One image–caption sample as a plugin sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub key: String,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
    #[serde(default)]
    pub original_caption: String,
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
}

/// A model-written caption to be judged by a caption filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub sample: Sample,
    pub text: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub round: u32,
    #[serde(default)]
    pub mean_logprob: Option<f32>,
}

/// A filter's decision on one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub keep: bool,
    pub score: f32,
    pub reasons: Vec<String>,
}

/// Asks a prompt template for one sample's prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptRequest {
    pub sample: Sample,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub round: u32,
}

/// A rendered prompt; `<image>` marks the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub text: String,
    pub variant: String,
}

/// A specialist model's answer about a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpecialistOutput {
    pub sample: Sample,
    pub task: String,
    #[serde(default)]
    pub prompt: String,
    pub answer: String,
    #[serde(default)]
    pub model: String,
}

/// One question–answer turn appended to a caption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaTurn {
    pub question: String,
    pub answer: String,
}

/// A post-processor's result for one specialist answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Processed {
    pub turns: Vec<QaTurn>,
    pub dropped: Vec<String>,
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Description {
    pub name: String,
    pub version: String,
    pub world: World,
    pub description: String,
    pub config_schema: String,
}

impl From<&Sample> for wit::Sample {
    fn from(s: &Sample) -> Self {
        wit::Sample {
            key: s.key.clone(),
            width: s.width,
            height: s.height,
            original_caption: s.original_caption.clone(),
            metadata: s.metadata.clone(),
        }
    }
}

impl From<&Candidate> for wit::Candidate {
    fn from(c: &Candidate) -> Self {
        wit::Candidate {
            sample: (&c.sample).into(),
            text: c.text.clone(),
            model: c.model.clone(),
            round: c.round,
            mean_logprob: c.mean_logprob,
        }
    }
}

impl From<&PromptRequest> for wit::PromptRequest {
    fn from(r: &PromptRequest) -> Self {
        wit::PromptRequest {
            sample: (&r.sample).into(),
            seed: r.seed,
            round: r.round,
        }
    }
}

impl From<&SpecialistOutput> for wit::SpecialistOutput {
    fn from(o: &SpecialistOutput) -> Self {
        wit::SpecialistOutput {
            sample: (&o.sample).into(),
            task: o.task.clone(),
            prompt: o.prompt.clone(),
            answer: o.answer.clone(),
            model: o.model.clone(),
        }
    }
}

impl From<wit::Verdict> for Verdict {
    fn from(v: wit::Verdict) -> Self {
        Verdict {
            keep: v.keep,
            score: v.score,
            reasons: v.reasons,
        }
    }
}

impl From<wit::Prompt> for Prompt {
    fn from(p: wit::Prompt) -> Self {
        Prompt {
            text: p.text,
            variant: p.variant,
        }
    }
}

impl From<wit::Processed> for Processed {
    fn from(p: wit::Processed) -> Self {
        Processed {
            turns: p
                .turns
                .into_iter()
                .map(|t| QaTurn {
                    question: t.question,
                    answer: t.answer,
                })
                .collect(),
            dropped: p.dropped,
        }
    }
}

impl From<wit::Description> for Description {
    fn from(d: wit::Description) -> Self {
        Description {
            name: d.name,
            version: d.version,
            world: d.world.into(),
            description: d.description,
            config_schema: d.config_schema,
        }
    }
}

impl From<wit::WorldKind> for World {
    fn from(w: wit::WorldKind) -> Self {
        match w {
            wit::WorldKind::CaptionFilter => World::CaptionFilter,
            wit::WorldKind::PromptTemplate => World::PromptTemplate,
            wit::WorldKind::PostProcessor => World::PostProcessor,
            wit::WorldKind::Specialist => World::Specialist,
        }
    }
}

/// Bytes a result occupies once lifted into the host, for the output-size cap.
pub(crate) trait HostSize {
    fn host_size(&self) -> usize;
}

impl HostSize for wit::Verdict {
    fn host_size(&self) -> usize {
        16 + self.reasons.iter().map(String::len).sum::<usize>()
    }
}

impl HostSize for wit::Prompt {
    fn host_size(&self) -> usize {
        self.text.len() + self.variant.len()
    }
}

impl HostSize for wit::Processed {
    fn host_size(&self) -> usize {
        self.turns
            .iter()
            .map(|t| t.question.len() + t.answer.len())
            .sum::<usize>()
            + self.dropped.iter().map(String::len).sum::<usize>()
    }
}
