//! An uploaded, validated WebAssembly plugin component.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, utoipa::ToSchema)]
#[sea_orm(table_name = "plugins")]
#[schema(as = Plugin)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub team_id: i32,
    /// From the plugin's `describe()`.
    pub name: String,
    pub version: String,
    /// The WIT world its exports satisfy.
    pub world: String,
    pub sha256: String,
    pub size: i64,
    pub object_key: String,
    /// Visible (read-only) to every team once a platform admin publishes it.
    pub is_public: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTimeUtc,
    /// From `describe()`.
    pub description: String,
    /// JSON Schema of `configure()`'s input, from `describe()` (may be empty).
    pub config_schema: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
