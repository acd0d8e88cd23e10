//! Database schema of the vila2 portal, as sea-orm migrations.
//!
//! The same migrations run on SQLite (the embedded default) and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_accounts_teams_datasets_plugins;
mod m20261126_000002_dataset_uploads;
mod m20261126_000003_plugin_description;
mod m20261126_000004_revoked_jwt;
mod m20261126_000005_runs;
mod m20261127_000006_run_tasks_events;
mod m20261127_000007_quotas_priority_models;
mod m20261127_000008_judging;

pub use m20261126_000002_dataset_uploads::DEFAULT_TEAM_QUOTA_BYTES;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_accounts_teams_datasets_plugins::Migration),
            Box::new(m20261126_000002_dataset_uploads::Migration),
            Box::new(m20261126_000003_plugin_description::Migration),
            Box::new(m20261126_000004_revoked_jwt::Migration),
            Box::new(m20261126_000005_runs::Migration),
            Box::new(m20261127_000006_run_tasks_events::Migration),
            Box::new(m20261127_000007_quotas_priority_models::Migration),
            Box::new(m20261127_000008_judging::Migration),
        ]
    }
}
