//! Logged-out session tokens: a blocklist by JWT id, kept until the token would have expired,
//! so a logout holds across restarts and across portal processes sharing a database.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RevokedJwt {
    Table,
    Jti,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RevokedJwt::Table)
                    .if_not_exists()
                    .col(string_len(RevokedJwt::Jti, 64).primary_key())
                    .col(timestamp_with_time_zone(RevokedJwt::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("revoked_jwt_expires_at")
                    .table(RevokedJwt::Table)
                    .col(RevokedJwt::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RevokedJwt::Table).to_owned())
            .await
    }
}
