//! The pipeline's durable task records in the database (`run_tasks`): what a restarted run
//! skips. Called from the pipeline's blocking thread, so each call blocks on the runtime.

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use vila2_host::pipeline::PipelineError;
use vila2_host::pipeline::state::TaskStore;

use crate::entities::run_task;

/// The done tasks of one run, in the portal's database.
pub struct DbTaskStore {
    db: DatabaseConnection,
    run_id: i32,
    handle: tokio::runtime::Handle,
}

impl DbTaskStore {
    /// The store of run `run_id`; `handle` runs the queries (call from outside the runtime).
    pub fn new(db: DatabaseConnection, run_id: i32, handle: tokio::runtime::Handle) -> Self {
        Self { db, run_id, handle }
    }

    fn error(&self, id: &str, e: impl std::fmt::Display) -> PipelineError {
        PipelineError::Failed(format!(
            "run {}: task record `{id}` in the database: {e}",
            self.run_id
        ))
    }
}

impl TaskStore for DbTaskStore {
    fn done(&self, id: &str) -> Result<Option<serde_json::Value>, PipelineError> {
        let row = self
            .handle
            .block_on(
                run_task::Entity::find()
                    .filter(run_task::Column::RunId.eq(self.run_id))
                    .filter(run_task::Column::TaskId.eq(id))
                    .one(&self.db),
            )
            .map_err(|e| self.error(id, e))?;
        row.map(|r| serde_json::from_str(&r.record))
            .transpose()
            .map_err(|e| {
                self.error(
                    id,
                    format!("corrupt record ({e}); delete the row to redo it"),
                )
            })
    }

    fn mark_done(&self, id: &str, record: serde_json::Value) -> Result<(), PipelineError> {
        let row = run_task::ActiveModel {
            run_id: Set(self.run_id),
            task_id: Set(id.to_string()),
            record: Set(record.to_string()),
            done_at: Set(Utc::now()),
            ..Default::default()
        };
        self.handle
            .block_on(
                run_task::Entity::insert(row)
                    .on_conflict(
                        OnConflict::columns([run_task::Column::RunId, run_task::Column::TaskId])
                            .update_columns([run_task::Column::Record, run_task::Column::DoneAt])
                            .to_owned(),
                    )
                    .exec(&self.db),
            )
            .map(|_| ())
            .map_err(|e| self.error(id, e))
    }
}

/// The ids of run `run_id`'s done tasks, oldest first.
pub async fn done_ids(db: &DatabaseConnection, run_id: i32) -> Result<Vec<String>, sea_orm::DbErr> {
    use sea_orm::QueryOrder;
    Ok(run_task::Entity::find()
        .filter(run_task::Column::RunId.eq(run_id))
        .order_by_asc(run_task::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.task_id)
        .collect())
}
