//! A persisted progress item of a run: the current progress (one row, updated), a training
//! loss point, or a log line.

use sea_orm::entity::prelude::*;

/// The run's current progress (one row per run, updated in place).
pub const PROGRESS: &str = "progress";
/// A (downsampled) training loss point.
pub const LOSS: &str = "loss";
/// A log line.
pub const LOG: &str = "log";
/// A finished round's report row.
pub const ROUND: &str = "round";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "run_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub run_id: i32,
    /// [`PROGRESS`], [`LOSS`], [`LOG`] or [`ROUND`].
    pub kind: String,
    /// The item as JSON.
    pub data: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
