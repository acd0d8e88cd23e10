//! Team quotas (GPU-seconds per month, concurrent runs, samples per run, the storage charge
//! that uploads reserve into), metered usage per team and month, run priority and pause
//! reason, and the admins' model registry.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    Status,
    Priority,
    PausedReason,
}

#[derive(DeriveIden)]
enum TeamQuotas {
    Table,
    TeamId,
    GpuSecondsPerMonth,
    MaxConcurrentRuns,
    MaxSamplesPerRun,
    StorageChargedBytes,
}

#[derive(DeriveIden)]
enum TeamUsage {
    Table,
    Id,
    TeamId,
    Month,
    GpuSeconds,
}

#[derive(DeriveIden)]
enum Models {
    Table,
    Id,
    Name,
    Path,
    Architecture,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .add_column(integer(Runs::Priority).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .add_column(text_null(Runs::PausedReason))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TeamQuotas::Table)
                    .if_not_exists()
                    .col(integer(TeamQuotas::TeamId).primary_key())
                    .col(double_null(TeamQuotas::GpuSecondsPerMonth))
                    .col(integer_null(TeamQuotas::MaxConcurrentRuns))
                    .col(big_integer_null(TeamQuotas::MaxSamplesPerRun))
                    .col(big_integer(TeamQuotas::StorageChargedBytes).default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TeamQuotas::Table, TeamQuotas::TeamId)
                            .to(Teams::Table, Teams::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TeamUsage::Table)
                    .if_not_exists()
                    .col(pk_auto(TeamUsage::Id))
                    .col(integer(TeamUsage::TeamId))
                    .col(string_len(TeamUsage::Month, 7))
                    .col(double(TeamUsage::GpuSeconds).default(0.0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TeamUsage::Table, TeamUsage::TeamId)
                            .to(Teams::Table, Teams::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("team_usage_team_month")
                    .table(TeamUsage::Table)
                    .col(TeamUsage::TeamId)
                    .col(TeamUsage::Month)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Models::Table)
                    .if_not_exists()
                    .col(pk_auto(Models::Id))
                    .col(string_len(Models::Name, 100).unique_key())
                    .col(text(Models::Path))
                    .col(string_len(Models::Architecture, 200))
                    .col(integer_null(Models::CreatedBy))
                    .col(timestamp_with_time_zone(Models::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("runs_status_priority")
                    .table(Runs::Table)
                    .col(Runs::Status)
                    .col(Runs::Priority)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("runs_status_priority")
                    .table(Runs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Models::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(TeamUsage::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(TeamQuotas::Table).to_owned())
            .await?;
        for column in [Runs::PausedReason, Runs::Priority] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Runs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
