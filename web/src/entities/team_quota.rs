//! A team's limits beside `teams.storage_quota_bytes` (absent limits are unlimited), and the
//! bytes its datasets and in-flight uploads hold against the storage quota.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "team_quotas")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub team_id: i32,
    /// Metered engine + trainer busy seconds the team may use per calendar month (UTC).
    pub gpu_seconds_per_month: Option<f64>,
    /// Runs queued, running or paused at once.
    pub max_concurrent_runs: Option<i32>,
    /// Samples of the dataset a run augments.
    pub max_samples_per_run: Option<i64>,
    /// Bytes of the team's datasets plus the bytes reserved by uploads in flight.
    pub storage_charged_bytes: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
