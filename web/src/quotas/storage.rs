//! The storage quota under concurrent uploads: each upload reserves its bytes in the team's
//! `storage_charged_bytes` with one conditional `UPDATE` (atomic on SQLite and PostgreSQL), so
//! uploads running together can never exceed the quota; a failed upload releases its bytes,
//! a committed one keeps them as its dataset's, and a deleted dataset releases them.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
};

use crate::entities::{dataset, team, team_quota};
use crate::error::ApiError;

/// Reserve at least this much at a time while an upload streams (fewer database writes).
pub const RESERVE_STEP: i64 = 4 << 20;

/// Bytes of storage held for one upload until it is committed or fails.
pub struct Reservation {
    db: DatabaseConnection,
    team_id: i32,
    quota: i64,
    bytes: i64,
    kept: bool,
}

impl Reservation {
    /// An empty reservation for `team` (its quota row is created if missing).
    pub async fn start(db: &DatabaseConnection, team: &team::Model) -> Result<Self, ApiError> {
        super::row(db, team.id).await?;
        Ok(Reservation {
            db: db.clone(),
            team_id: team.id,
            quota: team.storage_quota_bytes,
            bytes: 0,
            kept: false,
        })
    }

    /// Bytes held.
    pub fn bytes(&self) -> i64 {
        self.bytes
    }

    /// Holds `total` bytes in all (more or fewer than now); false, holding as before, when
    /// that would exceed the team's quota.
    pub async fn resize(&mut self, total: i64) -> Result<bool, ApiError> {
        let delta = total - self.bytes;
        if delta == 0 {
            return Ok(true);
        }
        let mut update = team_quota::Entity::update_many()
            .col_expr(
                team_quota::Column::StorageChargedBytes,
                Expr::col(team_quota::Column::StorageChargedBytes).add(delta),
            )
            .filter(team_quota::Column::TeamId.eq(self.team_id));
        if delta > 0 {
            update = update.filter(
                Expr::col(team_quota::Column::StorageChargedBytes)
                    .add(delta)
                    .lte(self.quota),
            );
        }
        let done = update.exec(&self.db).await?;
        if done.rows_affected == 1 {
            self.bytes = total;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Holds at least `needed` bytes, reserving ahead by [`RESERVE_STEP`] when the quota
    /// allows; false when even `needed` does not fit.
    pub async fn cover(&mut self, needed: i64) -> Result<bool, ApiError> {
        if needed <= self.bytes {
            return Ok(true);
        }
        if self.resize(needed.saturating_add(RESERVE_STEP)).await? {
            return Ok(true);
        }
        self.resize(needed).await
    }

    /// The upload was committed: its bytes stay charged, as its dataset's.
    pub fn keep(mut self) {
        self.kept = true;
    }

    /// Gives the bytes back (the upload failed).
    pub async fn release(mut self) {
        if let Err(e) = self.resize(0).await {
            tracing::warn!(team = self.team_id, error = %e, "releasing reserved storage");
        }
        self.kept = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // A path that neither kept nor released (a panic, a dropped request): release later.
        if !self.kept
            && self.bytes != 0
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let (db, team_id, bytes) = (self.db.clone(), self.team_id, self.bytes);
            handle.spawn(async move {
                if let Err(e) = release_bytes(&db, team_id, bytes).await {
                    tracing::warn!(team = team_id, error = %e, "releasing reserved storage");
                }
            });
        }
    }
}

/// Takes `bytes` off the team's charge (a deleted dataset), inside `db`'s transaction.
pub async fn release_bytes(
    db: &impl ConnectionTrait,
    team_id: i32,
    bytes: i64,
) -> Result<(), sea_orm::DbErr> {
    team_quota::Entity::update_many()
        .col_expr(
            team_quota::Column::StorageChargedBytes,
            Expr::col(team_quota::Column::StorageChargedBytes).sub(bytes),
        )
        .filter(team_quota::Column::TeamId.eq(team_id))
        .exec(db)
        .await?;
    Ok(())
}

/// At start, when no upload is in flight: every team's charge is the bytes of its datasets
/// (reservations of a crashed process are dropped).
pub async fn recompute(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    let teams: Vec<i32> = team::Entity::find()
        .select_only()
        .column(team::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    for team_id in teams {
        super::row(db, team_id).await?;
        let sizes: Vec<i64> = dataset::Entity::find()
            .select_only()
            .column(dataset::Column::Bytes)
            .filter(dataset::Column::TeamId.eq(team_id))
            .into_tuple()
            .all(db)
            .await?;
        team_quota::Entity::update_many()
            .col_expr(
                team_quota::Column::StorageChargedBytes,
                Expr::value(sizes.into_iter().sum::<i64>()),
            )
            .filter(team_quota::Column::TeamId.eq(team_id))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Bytes `team` may still upload: its quota less its datasets and uploads in flight.
pub async fn left(db: &DatabaseConnection, team: &team::Model) -> Result<i64, ApiError> {
    let q = super::row(db, team.id).await?;
    Ok(std::cmp::max(
        team.storage_quota_bytes - q.storage_charged_bytes,
        0,
    ))
}
