//! An augmentation run: queued by a team member, executed by the portal's worker.

use sea_orm::entity::prelude::*;

/// Waiting for the worker.
pub const QUEUED: &str = "queued";
/// Being executed.
pub const RUNNING: &str = "running";
/// Finished with its report.
pub const SUCCEEDED: &str = "succeeded";
/// Stopped by an error (`error` says which).
pub const FAILED: &str = "failed";
/// Cancelled by a member.
pub const CANCELLED: &str = "cancelled";
/// Stopped at a task boundary by a team quota (`paused_reason` says which); queued again
/// when the limit allows it.
pub const PAUSED: &str = "paused";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Run)]
#[sea_orm(table_name = "runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub team_id: i32,
    pub dataset_id: i32,
    /// User id of the submitter.
    pub created_by: i32,
    /// `queued`, `running`, `paused`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The run document (TOML, paths relative to the run's folder).
    pub config: String,
    pub rounds: i32,
    /// The current pipeline task (e.g. `round-0/train-pretrain`).
    pub stage: String,
    /// Steps done of the current task.
    pub done: i64,
    /// Steps of the current task.
    pub total: i64,
    pub error: Option<String>,
    /// A cancel was asked while running; the worker stops before the next task.
    pub cancel_requested: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTimeUtc,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<DateTimeUtc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTimeUtc>,
    /// Higher runs are claimed first (then the oldest); set by admins.
    pub priority: i32,
    /// Why the run is `paused` (the quota reached).
    pub paused_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
