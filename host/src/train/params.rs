//! Trainable parameters: the engine's tensors grouped by component (vision tower, projector,
//! LLM), the stage that selects which groups train, and the weight-decay split.

use std::fmt;

use tch::Tensor;

use super::TrainError;
use crate::vlm::weights::Weights;

/// A component of the model.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// The vision tower (`vision_tower.*`).
    Vision,
    /// The projector (`multi_modal_projector.*`, `mm_projector.*`).
    Projector,
    /// The language model (`language_model.*`).
    Llm,
}

impl Group {
    /// The group of a canonical key.
    pub fn of(key: &str) -> Self {
        if key.starts_with("vision_tower.") {
            Self::Vision
        } else if key.starts_with("multi_modal_projector.") || key.starts_with("mm_projector.") {
            Self::Projector
        } else {
            Self::Llm
        }
    }
}

/// VILA's training stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Projector alignment: only the projector trains.
    Align,
    /// Interleaved pretraining: projector + LLM; the vision tower is frozen.
    Pretrain,
    /// Supervised fine-tuning: everything trains.
    Sft,
    /// Specialist fine-tuning from a checkpoint: everything trains.
    Specialist,
}

impl Stage {
    /// The groups this stage trains.
    pub fn groups(self) -> &'static [Group] {
        match self {
            Self::Align => &[Group::Projector],
            Self::Pretrain => &[Group::Projector, Group::Llm],
            Self::Sft | Self::Specialist => &[Group::Vision, Group::Projector, Group::Llm],
        }
    }

    /// The paper's peak learning rate for the stage.
    pub fn default_lr(self) -> f64 {
        match self {
            Self::Align => 1e-3,
            Self::Pretrain => 5e-5,
            Self::Sft => 2e-5,
            Self::Specialist => 1e-4,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Align => "align",
            Self::Pretrain => "pretrain",
            Self::Sft => "sft",
            Self::Specialist => "specialist",
        })
    }
}

/// One tensor of the model. Its storage is shared with the model's layers.
#[derive(Debug)]
pub struct Param {
    /// Canonical key (Hub layout, `vision_model.` stripped).
    pub key: String,
    /// The tensor.
    pub tensor: Tensor,
    /// Component it belongs to.
    pub group: Group,
    /// Whether the stage trains it.
    pub trainable: bool,
    /// Whether weight decay applies (not to norms, biases or other 1-D tensors).
    pub decay: bool,
}

/// Every tensor of a checkpoint, sorted by key, with the stage's trainable subset.
#[derive(Debug)]
pub struct Params {
    /// All tensors (saved in checkpoints), sorted by key.
    pub all: Vec<Param>,
}

impl Params {
    /// Marks the tensors of `w` that `stage` trains (or the `train` groups when given, minus
    /// the `frozen` groups) as requiring gradients. Errors when that leaves nothing to train.
    pub fn select(
        w: &Weights,
        stage: Stage,
        train: Option<&[Group]>,
        frozen: &[Group],
    ) -> Result<Self, TrainError> {
        let groups: Vec<Group> = train
            .unwrap_or(stage.groups())
            .iter()
            .copied()
            .filter(|g| !frozen.contains(g))
            .collect();
        let mut all: Vec<Param> = w
            .named_tensors()
            .map(|(key, t)| {
                let group = Group::of(key);
                let floating = t.is_floating_point();
                let trainable = floating && groups.contains(&group);
                let mut tensor = t.shallow_clone();
                if floating {
                    tensor = tensor.set_requires_grad(trainable);
                }
                Param {
                    key: key.to_string(),
                    decay: t.dim() >= 2 && !key.contains("norm"),
                    tensor,
                    group,
                    trainable,
                }
            })
            .collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        if !all.iter().any(|p| p.trainable) {
            return Err(TrainError::NothingToTrain {
                stage,
                why: format!(
                    "it trains {:?}, frozen {:?}, checkpoint groups {:?}",
                    train.unwrap_or(stage.groups()),
                    frozen,
                    {
                        let mut g: Vec<Group> = all.iter().map(|p| p.group).collect();
                        g.dedup();
                        g
                    }
                ),
            });
        }
        let n: i64 = all
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.tensor.numel() as i64)
            .sum();
        tracing::info!(%stage, trainable_params = n, "selected trainable parameters");
        Ok(Self { all })
    }

    /// The trainable tensors.
    pub fn trainable(&self) -> impl Iterator<Item = &Param> {
        self.all.iter().filter(|p| p.trainable)
    }

    /// Number of trainable scalars.
    pub fn trainable_count(&self) -> usize {
        self.trainable().map(|p| p.tensor.numel()).sum()
    }
}
