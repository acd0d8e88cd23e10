//! Durable pipeline tasks of a run (`run_tasks`: the done record of every shard task, so a
//! restart skips them) and its live progress (`run_events`: the current progress snapshot,
//! downsampled training loss points and log lines).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RunTasks {
    Table,
    Id,
    RunId,
    TaskId,
    Record,
    DoneAt,
}

#[derive(DeriveIden)]
enum RunEvents {
    Table,
    Id,
    RunId,
    Kind,
    Data,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RunTasks::Table)
                    .if_not_exists()
                    .col(pk_auto(RunTasks::Id))
                    .col(integer(RunTasks::RunId))
                    .col(string_len(RunTasks::TaskId, 255))
                    .col(text(RunTasks::Record))
                    .col(timestamp_with_time_zone(RunTasks::DoneAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RunTasks::Table, RunTasks::RunId)
                            .to(Runs::Table, Runs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("run_tasks_run_task")
                    .table(RunTasks::Table)
                    .col(RunTasks::RunId)
                    .col(RunTasks::TaskId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RunEvents::Table)
                    .if_not_exists()
                    .col(pk_auto(RunEvents::Id))
                    .col(integer(RunEvents::RunId))
                    .col(string_len(RunEvents::Kind, 16))
                    .col(text(RunEvents::Data))
                    .col(timestamp_with_time_zone(RunEvents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RunEvents::Table, RunEvents::RunId)
                            .to(Runs::Table, Runs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("run_events_run_kind_id")
                    .table(RunEvents::Table)
                    .col(RunEvents::RunId)
                    .col(RunEvents::Kind)
                    .col(RunEvents::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RunEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RunTasks::Table).to_owned())
            .await
    }
}
