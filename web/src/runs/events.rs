//! Live progress of runs: what the worker records (in `run_events`) and broadcasts in
//! process, the snapshot a client starts from, and the Server-Sent Events stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::Event as SseEvent;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use vila2_host::pipeline::report::RoundReport;

use crate::entities::{run, run_event};
use crate::error::ApiError;

/// Log lines a snapshot carries (the most recent).
pub const LOG_TAIL: u64 = 200;

/// How often a live stream re-reads the run's status (a cancel of a queued run, or another
/// process's worker, has no in-process broadcast).
const POLL: Duration = Duration::from_secs(2);

/// Where a run stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// The current pipeline task (e.g. `round-1/recaption/shard-000000.tar`).
    pub stage: String,
    /// The round of the current task (0 for the first training), when it has one.
    pub round: Option<u32>,
    /// Training steps done of the current task.
    pub step: u64,
    /// Training steps of the current task (0: not a training task).
    pub steps: u64,
    /// Pipeline tasks done (including ones found done from an earlier attempt).
    pub tasks_done: u64,
    /// Pipeline tasks the run has (an upper bound when the loop may stop early).
    pub tasks_total: u64,
    /// Samples recaptioned so far, over all rounds.
    pub samples_done: u64,
    /// Samples to recaption over all rounds.
    pub samples_total: u64,
    /// Recent throughput (training or recaptioning), images per second.
    pub images_per_s: Option<f64>,
    /// Estimated seconds to the end.
    pub eta_s: Option<f64>,
    /// 0 to 100.
    pub percent: f64,
}

/// One training loss point (downsampled: about [`super::progress::LOSS_POINTS`] per stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LossPoint {
    /// Training task (e.g. `round-0/pretrain`).
    pub task: String,
    pub step: u64,
    pub loss: f64,
}

/// A line of the run's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct End {
    /// `succeeded`, `failed` or `cancelled`.
    pub status: String,
    pub error: Option<String>,
}

/// One live update of a run, as broadcast and sent over SSE (the SSE event name is the tag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Update {
    Progress(Progress),
    Loss(LossPoint),
    Log(LogLine),
    /// A round finished with its report row.
    Round(Box<RoundReport>),
    End(End),
}

impl Update {
    fn name(&self) -> &'static str {
        match self {
            Update::Progress(_) => "progress",
            Update::Loss(_) => "loss",
            Update::Log(_) => "log",
            Update::Round(_) => "round",
            Update::End(_) => "end",
        }
    }

    fn data(&self) -> String {
        match self {
            Update::Progress(p) => serde_json::to_string(p),
            Update::Loss(l) => serde_json::to_string(l),
            Update::Log(l) => serde_json::to_string(l),
            Update::Round(r) => serde_json::to_string(r),
            Update::End(e) => serde_json::to_string(e),
        }
        .expect("updates serialise")
    }

    /// As an SSE event.
    pub fn sse(&self) -> SseEvent {
        SseEvent::default().event(self.name()).data(self.data())
    }
}

/// The in-process broadcast of every run's updates. Cheap to clone.
#[derive(Clone)]
pub struct Live(broadcast::Sender<(i32, Update)>);

impl Default for Live {
    fn default() -> Self {
        Self(broadcast::channel(1024).0)
    }
}

impl Live {
    /// Sends `update` of run `run_id` to every listener (none is fine).
    pub fn send(&self, run_id: i32, update: Update) {
        let _ = self.0.send((run_id, update));
    }

    /// Listens from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<(i32, Update)> {
        self.0.subscribe()
    }
}

/// Where a run stands now: what a client shows before the live updates.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    pub run: run::Model,
    /// Absent until the worker started it.
    pub progress: Option<Progress>,
    /// The training loss points so far.
    pub losses: Vec<LossPoint>,
    /// The rounds finished so far.
    #[schema(value_type = Vec<Object>)]
    pub rounds: Vec<RoundReport>,
    /// The last [`LOG_TAIL`] log lines.
    pub log: Vec<LogLine>,
}

/// Whether `status` is one a run ends in.
pub fn is_final(status: &str) -> bool {
    matches!(status, run::SUCCEEDED | run::FAILED | run::CANCELLED)
}

/// Appends an item of `kind` to run `run_id`'s persisted events.
pub async fn append(
    db: &DatabaseConnection,
    run_id: i32,
    kind: &str,
    data: &impl Serialize,
) -> Result<(), sea_orm::DbErr> {
    run_event::ActiveModel {
        run_id: Set(run_id),
        kind: Set(kind.into()),
        data: Set(serde_json::to_string(data).expect("events serialise")),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// Replaces run `run_id`'s persisted progress.
pub async fn set_progress(
    db: &DatabaseConnection,
    run_id: i32,
    progress: &Progress,
) -> Result<(), sea_orm::DbErr> {
    let data = serde_json::to_string(progress).expect("progress serialises");
    let updated = run_event::Entity::update_many()
        .col_expr(
            run_event::Column::Data,
            sea_orm::sea_query::Expr::value(data),
        )
        .col_expr(
            run_event::Column::CreatedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(run_event::Column::RunId.eq(run_id))
        .filter(run_event::Column::Kind.eq(run_event::PROGRESS))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        append(db, run_id, run_event::PROGRESS, progress).await?;
    }
    Ok(())
}

async fn items<T: for<'de> Deserialize<'de>>(
    db: &DatabaseConnection,
    run_id: i32,
    kind: &str,
    last: Option<u64>,
) -> Result<Vec<T>, ApiError> {
    let mut query = run_event::Entity::find()
        .filter(run_event::Column::RunId.eq(run_id))
        .filter(run_event::Column::Kind.eq(kind))
        .order_by_desc(run_event::Column::Id);
    if let Some(n) = last {
        query = query.limit(n);
    }
    let mut rows = query.all(db).await?;
    rows.reverse();
    rows.into_iter()
        .map(|r| {
            serde_json::from_str(&r.data).map_err(|e| {
                ApiError::Internal(format!("run {run_id}: event {} ({kind}): {e}", r.id))
            })
        })
        .collect()
}

/// The rounds of run `run_id` finished so far (from its events).
pub async fn rounds(db: &DatabaseConnection, run_id: i32) -> Result<Vec<RoundReport>, ApiError> {
    items(db, run_id, run_event::ROUND, None).await
}

/// The snapshot of `row` (re-read from the database).
pub async fn snapshot(db: &DatabaseConnection, row: &run::Model) -> Result<Snapshot, ApiError> {
    let run = run::Entity::find_by_id(row.id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("run", row.id))?;
    let progress = items::<Progress>(db, row.id, run_event::PROGRESS, Some(1))
        .await?
        .pop();
    Ok(Snapshot {
        progress,
        losses: items(db, row.id, run_event::LOSS, None).await?,
        rounds: rounds(db, row.id).await?,
        log: items(db, row.id, run_event::LOG, Some(LOG_TAIL)).await?,
        run,
    })
}

fn snapshot_event(s: &Snapshot) -> SseEvent {
    SseEvent::default()
        .event("snapshot")
        .data(serde_json::to_string(s).expect("snapshots serialise"))
}

enum Phase {
    Snapshot(Box<Snapshot>),
    Live,
    End(End),
    Done,
}

/// The SSE stream of run `row`: `snapshot` first, then `progress`, `loss`, `log`, `round`
/// updates as they happen, and `end` when the run has ended (then the stream closes). `rx` must
/// be subscribed before `first` was read, so nothing falls between them.
pub fn stream(
    db: DatabaseConnection,
    row: run::Model,
    rx: broadcast::Receiver<(i32, Update)>,
    first: Snapshot,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    let start = Phase::Snapshot(Box::new(first));
    futures_util::stream::unfold((start, rx), move |(phase, mut rx)| {
        let db = db.clone();
        let row = row.clone();
        async move {
            match phase {
                Phase::Done => None,
                Phase::Snapshot(s) => {
                    let next = if is_final(&s.run.status) {
                        Phase::End(End {
                            status: s.run.status.clone(),
                            error: s.run.error.clone(),
                        })
                    } else {
                        Phase::Live
                    };
                    Some((snapshot_event(&s), (next, rx)))
                }
                Phase::End(end) => Some((Update::End(end).sse(), (Phase::Done, rx))),
                Phase::Live => loop {
                    tokio::select! {
                        got = rx.recv() => match got {
                            Ok((id, update)) if id == row.id => {
                                let next = if matches!(update, Update::End(_)) {
                                    Phase::Done
                                } else {
                                    Phase::Live
                                };
                                return Some((update.sse(), (next, rx)));
                            }
                            Ok(_) => {}
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                // Missed updates: start over from a fresh snapshot.
                                match snapshot(&db, &row).await {
                                    Ok(s) => return Some((snapshot_event(&s), (Phase::Live, rx))),
                                    Err(e) => tracing::warn!(run = row.id, error = %e, "snapshot"),
                                }
                            }
                            Err(broadcast::error::RecvError::Closed) => return None,
                        },
                        _ = tokio::time::sleep(POLL) => {
                            if let Ok(Some(now)) = run::Entity::find_by_id(row.id).one(&db).await
                                && is_final(&now.status)
                            {
                                let end = Update::End(End { status: now.status, error: now.error });
                                return Some((end.sse(), (Phase::Done, rx)));
                            }
                        }
                    }
                },
            }
        }
    })
    .map(Ok)
}
