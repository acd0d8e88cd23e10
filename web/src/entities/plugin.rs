//! An uploaded, validated WebAssembly plugin component.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "plugins")]
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
    pub is_public: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
