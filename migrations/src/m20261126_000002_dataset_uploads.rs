//! Dataset uploads: a storage quota per team, the per-sample error report and shard count of a
//! dataset, and one row per valid sample (where its image lies in which shard) for browsing.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Storage a team gets unless an admin changes it: 10 GiB.
pub const DEFAULT_TEAM_QUOTA_BYTES: i64 = 10 << 30;

#[derive(DeriveIden)]
enum Teams {
    Table,
    StorageQuotaBytes,
}

#[derive(DeriveIden)]
enum Datasets {
    Table,
    Id,
    InvalidCount,
    ShardCount,
    Report,
}

#[derive(DeriveIden)]
enum DatasetSamples {
    Table,
    Id,
    DatasetId,
    Idx,
    Key,
    Shard,
    ImageExt,
    ImageOffset,
    ImageSize,
    Width,
    Height,
    Caption,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Teams::Table)
                    .add_column(
                        big_integer(Teams::StorageQuotaBytes).default(DEFAULT_TEAM_QUOTA_BYTES),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Datasets::Table)
                    .add_column(big_integer(Datasets::InvalidCount).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Datasets::Table)
                    .add_column(integer(Datasets::ShardCount).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Datasets::Table)
                    .add_column(text(Datasets::Report).default("[]"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DatasetSamples::Table)
                    .if_not_exists()
                    .col(pk_auto(DatasetSamples::Id))
                    .col(integer(DatasetSamples::DatasetId))
                    .col(integer(DatasetSamples::Idx))
                    .col(string(DatasetSamples::Key))
                    .col(integer(DatasetSamples::Shard))
                    .col(string(DatasetSamples::ImageExt))
                    .col(big_integer(DatasetSamples::ImageOffset))
                    .col(big_integer(DatasetSamples::ImageSize))
                    .col(integer(DatasetSamples::Width))
                    .col(integer(DatasetSamples::Height))
                    .col(text(DatasetSamples::Caption))
                    .foreign_key(
                        ForeignKey::create()
                            .from(DatasetSamples::Table, DatasetSamples::DatasetId)
                            .to(Datasets::Table, Datasets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("dataset_samples_dataset_idx")
                    .table(DatasetSamples::Table)
                    .col(DatasetSamples::DatasetId)
                    .col(DatasetSamples::Idx)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(DatasetSamples::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        for column in [
            Datasets::Report.into_iden(),
            Datasets::ShardCount.into_iden(),
            Datasets::InvalidCount.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Datasets::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Teams::Table)
                    .drop_column(Teams::StorageQuotaBytes)
                    .to_owned(),
            )
            .await
    }
}
