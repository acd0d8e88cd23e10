//! What a plugin's `describe()` said at upload (description, config schema), kept for its page.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Plugins {
    Table,
    Description,
    ConfigSchema,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [Plugins::Description, Plugins::ConfigSchema] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Plugins::Table)
                        .add_column(text(column).default(""))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Plugins::Description, Plugins::ConfigSchema] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Plugins::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
