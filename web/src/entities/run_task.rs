//! The done record of one pipeline task of a run (see `vila2_host::pipeline::state`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "run_tasks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub run_id: i32,
    /// The pipeline's task id (e.g. `round-1/recaption/shard-000000.tar`).
    pub task_id: String,
    /// The task's record (JSON).
    pub record: String,
    pub done_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
