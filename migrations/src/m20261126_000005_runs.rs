//! Augmentation runs: queued in the database, executed by the portal's worker.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    Id,
    TeamId,
    DatasetId,
    CreatedBy,
    Status,
    Config,
    Rounds,
    Stage,
    Done,
    Total,
    Error,
    CancelRequested,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Datasets {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Runs::Table)
                    .if_not_exists()
                    .col(pk_auto(Runs::Id))
                    .col(integer(Runs::TeamId))
                    .col(integer(Runs::DatasetId))
                    .col(integer(Runs::CreatedBy))
                    .col(string_len(Runs::Status, 16))
                    .col(text(Runs::Config))
                    .col(integer(Runs::Rounds))
                    .col(text(Runs::Stage).default(""))
                    .col(big_integer(Runs::Done).default(0))
                    .col(big_integer(Runs::Total).default(0))
                    .col(text_null(Runs::Error))
                    .col(boolean(Runs::CancelRequested).default(false))
                    .col(timestamp_with_time_zone(Runs::CreatedAt))
                    .col(timestamp_with_time_zone_null(Runs::StartedAt))
                    .col(timestamp_with_time_zone_null(Runs::FinishedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Runs::Table, Runs::TeamId)
                            .to(Teams::Table, Teams::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Runs::Table, Runs::DatasetId)
                            .to(Datasets::Table, Datasets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Runs::Table, Runs::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("runs_status_id")
                    .table(Runs::Table)
                    .col(Runs::Status)
                    .col(Runs::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("runs_team_id")
                    .table(Runs::Table)
                    .col(Runs::TeamId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Runs::Table).to_owned())
            .await
    }
}
