//! Human judging of a run's captions (VILA²'s hallucination study): the caption pairs of a
//! finished run, the blind items built from them, and the members' votes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JudgingPairs {
    Table,
    Id,
    RunId,
    /// The earlier caption source: `original` or `round:j`.
    SourceA,
    /// The later caption source: `round:k`.
    SourceB,
    /// How many items were sampled for this pair.
    Items,
}

#[derive(DeriveIden)]
enum JudgingItems {
    Table,
    Id,
    RunId,
    PairId,
    SampleKey,
    /// The shard holding the sample's image, relative to the run's output folder.
    Shard,
    LeftSource,
    RightSource,
    LeftCaption,
    RightCaption,
}

#[derive(DeriveIden)]
enum JudgingVotes {
    Table,
    Id,
    RunId,
    ItemId,
    UserId,
    /// `left`, `right` or `same`.
    Choice,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Runs {
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
                    .table(JudgingPairs::Table)
                    .if_not_exists()
                    .col(pk_auto(JudgingPairs::Id))
                    .col(integer(JudgingPairs::RunId))
                    .col(string_len(JudgingPairs::SourceA, 32))
                    .col(string_len(JudgingPairs::SourceB, 32))
                    .col(integer(JudgingPairs::Items))
                    .foreign_key(
                        ForeignKey::create()
                            .from(JudgingPairs::Table, JudgingPairs::RunId)
                            .to(Runs::Table, Runs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("judging_pairs_run_sources")
                    .table(JudgingPairs::Table)
                    .col(JudgingPairs::RunId)
                    .col(JudgingPairs::SourceA)
                    .col(JudgingPairs::SourceB)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JudgingItems::Table)
                    .if_not_exists()
                    .col(pk_auto(JudgingItems::Id))
                    .col(integer(JudgingItems::RunId))
                    .col(integer(JudgingItems::PairId))
                    .col(text(JudgingItems::SampleKey))
                    .col(text(JudgingItems::Shard))
                    .col(string_len(JudgingItems::LeftSource, 32))
                    .col(string_len(JudgingItems::RightSource, 32))
                    .col(text(JudgingItems::LeftCaption))
                    .col(text(JudgingItems::RightCaption))
                    .foreign_key(
                        ForeignKey::create()
                            .from(JudgingItems::Table, JudgingItems::RunId)
                            .to(Runs::Table, Runs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(JudgingItems::Table, JudgingItems::PairId)
                            .to(JudgingPairs::Table, JudgingPairs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("judging_items_pair_key")
                    .table(JudgingItems::Table)
                    .col(JudgingItems::PairId)
                    .col(JudgingItems::SampleKey)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("judging_items_run_id")
                    .table(JudgingItems::Table)
                    .col(JudgingItems::RunId)
                    .col(JudgingItems::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JudgingVotes::Table)
                    .if_not_exists()
                    .col(pk_auto(JudgingVotes::Id))
                    .col(integer(JudgingVotes::RunId))
                    .col(integer(JudgingVotes::ItemId))
                    .col(integer(JudgingVotes::UserId))
                    .col(string_len(JudgingVotes::Choice, 8))
                    .col(timestamp_with_time_zone(JudgingVotes::CreatedAt))
                    .col(timestamp_with_time_zone(JudgingVotes::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(JudgingVotes::Table, JudgingVotes::RunId)
                            .to(Runs::Table, Runs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(JudgingVotes::Table, JudgingVotes::ItemId)
                            .to(JudgingItems::Table, JudgingItems::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(JudgingVotes::Table, JudgingVotes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One vote per member per item: voting again updates it.
        manager
            .create_index(
                Index::create()
                    .name("judging_votes_item_user")
                    .table(JudgingVotes::Table)
                    .col(JudgingVotes::ItemId)
                    .col(JudgingVotes::UserId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("judging_votes_run_user")
                    .table(JudgingVotes::Table)
                    .col(JudgingVotes::RunId)
                    .col(JudgingVotes::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            JudgingVotes::Table.into_iden(),
            JudgingItems::Table.into_iden(),
            JudgingPairs::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
