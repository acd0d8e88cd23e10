//! A pair of caption sources of a run that members judge against each other, e.g. `original`
//! vs `round:2` or `round:1` vs `round:2`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "judging_pairs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub run_id: i32,
    /// The earlier source: `original` or `round:j`.
    pub source_a: String,
    /// The later source: `round:k`, k > j.
    pub source_b: String,
    /// Items sampled for this pair.
    pub items: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
