//! Team quotas, set by admins: GPU-seconds per month (metered from the engine's and the
//! trainer's busy time), storage bytes (`teams.storage_quota_bytes`), concurrent runs and
//! samples per run. Checked when a run is submitted (a 403 naming the limit) and at every task
//! boundary of a running run (it pauses with the reason, and is queued again once the limit
//! allows it).
//!
//! - [`storage`]: bytes reserved atomically by uploads in flight, released on failure.
//! - [`meter`]: charges a run's busy time to its team and month, and decides when it pauses.

pub mod meter;
pub mod storage;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    Set,
};
use serde::{Deserialize, Serialize};

use crate::entities::{dataset, run, team, team_quota, team_usage};
use crate::error::ApiError;

/// Run statuses that count against the concurrent-runs limit.
pub const ACTIVE: [&str; 3] = [run::QUEUED, run::RUNNING, run::PAUSED];

/// A team's limits; `null` is unlimited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Bytes of dataset shards the team may store.
    pub storage_quota_bytes: i64,
    /// Metered busy seconds (engine + trainer) per calendar month, UTC.
    #[serde(default)]
    pub gpu_seconds_per_month: Option<f64>,
    /// Runs queued, running or paused at once.
    #[serde(default)]
    pub max_concurrent_runs: Option<i32>,
    /// Samples of the dataset one run augments.
    #[serde(default)]
    pub max_samples_per_run: Option<i64>,
}

impl Limits {
    /// Refuses negative or non-finite limits, naming the field.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.storage_quota_bytes < 0 {
            return Err(ApiError::BadRequest(
                "storage_quota_bytes: must be 0 or more".into(),
            ));
        }
        if let Some(s) = self.gpu_seconds_per_month
            && !(s.is_finite() && s >= 0.0)
        {
            return Err(ApiError::BadRequest(
                "gpu_seconds_per_month: must be a number, 0 or more (null: unlimited)".into(),
            ));
        }
        if self.max_concurrent_runs.is_some_and(|n| n < 0) {
            return Err(ApiError::BadRequest(
                "max_concurrent_runs: must be 0 or more (null: unlimited)".into(),
            ));
        }
        if self.max_samples_per_run.is_some_and(|n| n < 0) {
            return Err(ApiError::BadRequest(
                "max_samples_per_run: must be 0 or more (null: unlimited)".into(),
            ));
        }
        Ok(())
    }
}

/// A team's limits and what it uses of them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TeamUsage {
    pub team_id: i32,
    pub team_name: String,
    pub limits: Limits,
    /// `YYYY-MM` (UTC) of `gpu_seconds`.
    pub month: String,
    /// Metered busy seconds charged this month.
    pub gpu_seconds: f64,
    /// Bytes of the team's datasets.
    pub storage_bytes: i64,
    /// Those bytes plus the bytes reserved by uploads in flight.
    pub storage_charged_bytes: i64,
    /// Runs queued, running or paused.
    pub active_runs: u64,
}

/// `YYYY-MM` of `at` (the month usage is charged to).
pub fn month_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m").to_string()
}

/// The quota row of `team_id`, created (unlimited, nothing charged) when missing.
pub async fn row(
    db: &DatabaseConnection,
    team_id: i32,
) -> Result<team_quota::Model, sea_orm::DbErr> {
    team_quota::Entity::insert(team_quota::ActiveModel {
        team_id: Set(team_id),
        gpu_seconds_per_month: Set(None),
        max_concurrent_runs: Set(None),
        max_samples_per_run: Set(None),
        storage_charged_bytes: Set(0),
    })
    .on_conflict_do_nothing()
    .exec(db)
    .await?;
    team_quota::Entity::find_by_id(team_id)
        .one(db)
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("team_quotas row of team {team_id}")))
}

/// The limits of `team`.
pub async fn limits(db: &DatabaseConnection, team: &team::Model) -> Result<Limits, ApiError> {
    let q = row(db, team.id).await?;
    Ok(Limits {
        storage_quota_bytes: team.storage_quota_bytes,
        gpu_seconds_per_month: q.gpu_seconds_per_month,
        max_concurrent_runs: q.max_concurrent_runs,
        max_samples_per_run: q.max_samples_per_run,
    })
}

/// Replaces the limits of `team` (admins). Paused runs the new limits allow are queued again
/// by the worker.
pub async fn set_limits(
    db: &DatabaseConnection,
    team: &team::Model,
    limits: &Limits,
) -> Result<(), ApiError> {
    limits.check()?;
    let q = row(db, team.id).await?;
    let mut t: team::ActiveModel = team.clone().into();
    t.storage_quota_bytes = Set(limits.storage_quota_bytes);
    t.update(db).await?;
    let mut q: team_quota::ActiveModel = q.into();
    q.gpu_seconds_per_month = Set(limits.gpu_seconds_per_month);
    q.max_concurrent_runs = Set(limits.max_concurrent_runs);
    q.max_samples_per_run = Set(limits.max_samples_per_run);
    q.update(db).await?;
    tracing::info!(team = team.id, ?limits, "team quotas set");
    Ok(())
}

/// GPU-seconds charged to `team_id` in `month`.
pub async fn gpu_seconds(
    db: &DatabaseConnection,
    team_id: i32,
    month: &str,
) -> Result<f64, sea_orm::DbErr> {
    Ok(team_usage::Entity::find()
        .filter(team_usage::Column::TeamId.eq(team_id))
        .filter(team_usage::Column::Month.eq(month))
        .one(db)
        .await?
        .map_or(0.0, |u| u.gpu_seconds))
}

/// Adds `seconds` of metered busy time to `team_id`'s usage of the current month.
pub async fn charge(
    db: &DatabaseConnection,
    team_id: i32,
    seconds: f64,
) -> Result<(), sea_orm::DbErr> {
    if seconds <= 0.0 {
        return Ok(());
    }
    let month = month_of(Utc::now());
    team_usage::Entity::insert(team_usage::ActiveModel {
        team_id: Set(team_id),
        month: Set(month.clone()),
        gpu_seconds: Set(0.0),
        ..Default::default()
    })
    .on_conflict_do_nothing_on([team_usage::Column::TeamId, team_usage::Column::Month])
    .exec(db)
    .await?;
    team_usage::Entity::update_many()
        .col_expr(
            team_usage::Column::GpuSeconds,
            Expr::col(team_usage::Column::GpuSeconds).add(seconds),
        )
        .filter(team_usage::Column::TeamId.eq(team_id))
        .filter(team_usage::Column::Month.eq(month))
        .exec(db)
        .await?;
    Ok(())
}

/// Limits and usage of `team`.
pub async fn usage(db: &DatabaseConnection, team: &team::Model) -> Result<TeamUsage, ApiError> {
    let q = row(db, team.id).await?;
    let month = month_of(Utc::now());
    Ok(TeamUsage {
        team_id: team.id,
        team_name: team.name.clone(),
        limits: limits(db, team).await?,
        gpu_seconds: gpu_seconds(db, team.id, &month).await?,
        month,
        storage_bytes: crate::datasets::storage_used(db, team.id).await?,
        storage_charged_bytes: q.storage_charged_bytes,
        active_runs: active_runs(db, team.id).await?,
    })
}

async fn active_runs(db: &DatabaseConnection, team_id: i32) -> Result<u64, sea_orm::DbErr> {
    run::Entity::find()
        .filter(run::Column::TeamId.eq(team_id))
        .filter(run::Column::Status.is_in(ACTIVE))
        .count(db)
        .await
}

fn refused(msg: String) -> ApiError {
    ApiError::Forbidden(format!("quota: {msg}"))
}

/// Why `team` may not start more work this month under its GPU-seconds limit, if so.
async fn gpu_exhausted(
    db: &DatabaseConnection,
    team: &team::Model,
    limits: &Limits,
) -> Result<Option<String>, sea_orm::DbErr> {
    let Some(quota) = limits.gpu_seconds_per_month else {
        return Ok(None);
    };
    let month = month_of(Utc::now());
    let used = gpu_seconds(db, team.id, &month).await?;
    Ok((used >= quota).then(|| {
        format!(
            "team {} used {used:.2} of its {quota} GPU-seconds per month for {month}",
            team.name
        )
    }))
}

/// Why a run of `dataset` may not run for `team` (samples per run), if so.
fn too_many_samples(
    team: &team::Model,
    limits: &Limits,
    dataset: &dataset::Model,
) -> Option<String> {
    let max = limits.max_samples_per_run?;
    (dataset.sample_count > max).then(|| {
        format!(
            "dataset {} has {} samples, over team {}'s samples per run limit of {max}",
            dataset.name, dataset.sample_count, team.name
        )
    })
}

/// The checks at submit: concurrent runs, samples per run, GPU-seconds per month. A refusal
/// is a 403 whose message starts with `quota:` and names the limit.
pub async fn check_submit(
    db: &DatabaseConnection,
    team: &team::Model,
    dataset: &dataset::Model,
) -> Result<(), ApiError> {
    let limits = limits(db, team).await?;
    if let Some(max) = limits.max_concurrent_runs {
        let active = active_runs(db, team.id).await?;
        if active >= std::cmp::max(max, 0) as u64 {
            return Err(refused(format!(
                "team {} has {active} runs queued, running or paused and its concurrent runs \
                 limit is {max}; wait for one to finish, cancel one, or ask an admin to raise it",
                team.name
            )));
        }
    }
    if let Some(msg) = too_many_samples(team, &limits, dataset) {
        return Err(refused(format!(
            "{msg}; use a smaller dataset or ask an admin to raise the limit"
        )));
    }
    if let Some(msg) = gpu_exhausted(db, team, &limits).await? {
        return Err(refused(format!(
            "{msg}; ask an admin to raise the limit or wait for next month"
        )));
    }
    Ok(())
}

/// Why `run` must pause now (a limit of its team is reached), if so.
pub async fn run_limit(
    db: &DatabaseConnection,
    run: &run::Model,
) -> Result<Option<String>, sea_orm::DbErr> {
    let Some(team) = team::Entity::find_by_id(run.team_id).one(db).await? else {
        return Ok(None);
    };
    let q = row(db, team.id).await?;
    let limits = Limits {
        storage_quota_bytes: team.storage_quota_bytes,
        gpu_seconds_per_month: q.gpu_seconds_per_month,
        max_concurrent_runs: q.max_concurrent_runs,
        max_samples_per_run: q.max_samples_per_run,
    };
    if let Some(msg) = gpu_exhausted(db, &team, &limits).await? {
        return Ok(Some(format!(
            "quota: {msg}; the run continues when an admin raises the limit"
        )));
    }
    if let Some(dataset) = dataset::Entity::find_by_id(run.dataset_id).one(db).await?
        && let Some(msg) = too_many_samples(&team, &limits, &dataset)
    {
        return Ok(Some(format!(
            "quota: {msg}; the run continues when an admin raises the limit"
        )));
    }
    Ok(None)
}

/// Queues again the paused runs whose limits now allow them (they resume from their done
/// tasks). Returns their ids.
pub async fn resume_paused(db: &DatabaseConnection) -> Result<Vec<i32>, sea_orm::DbErr> {
    let paused = run::Entity::find()
        .filter(run::Column::Status.eq(run::PAUSED))
        .all(db)
        .await?;
    let mut resumed = Vec::new();
    for r in paused {
        if run_limit(db, &r).await?.is_some() {
            continue;
        }
        let done = run::Entity::update_many()
            .col_expr(run::Column::Status, Expr::value(run::QUEUED))
            .col_expr(
                run::Column::PausedReason,
                Expr::value(Option::<String>::None),
            )
            .filter(run::Column::Id.eq(r.id))
            .filter(run::Column::Status.eq(run::PAUSED))
            .exec(db)
            .await?;
        if done.rows_affected == 1 {
            tracing::info!(run = r.id, team = r.team_id, "paused run queued again");
            resumed.push(r.id);
        }
    }
    Ok(resumed)
}
