//! One blind judging item: a sample's image with two captions of a pair, in the order they are
//! shown. The sources are never sent to a member before they voted on the item.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "judging_items")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub run_id: i32,
    pub pair_id: i32,
    /// WebDataset key of the sample.
    pub sample_key: String,
    /// Shard holding the sample's image, relative to the run's output folder.
    pub shard: String,
    /// Source of the caption shown on the left (caption A).
    pub left_source: String,
    /// Source of the caption shown on the right (caption B).
    pub right_source: String,
    pub left_caption: String,
    pub right_caption: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
