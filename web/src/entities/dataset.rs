//! An uploaded image–caption dataset.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Dataset)]
#[sea_orm(table_name = "datasets")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub team_id: i32,
    pub name: String,
    pub status: String,
    pub sample_count: i64,
    pub bytes: i64,
    /// Prefix of its shards in the object store (`<prefix>/shard-000000.tar`, ...).
    pub object_key: String,
    /// Samples left out because they failed validation (listed in `report`).
    pub invalid_count: i64,
    pub shard_count: i32,
    /// JSON array of [`crate::datasets::SampleError`].
    #[serde(skip)]
    pub report: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
