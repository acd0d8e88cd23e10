//! One valid sample of a dataset: its caption and where its image lies in which shard.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, utoipa::ToSchema)]
#[schema(as = DatasetSample)]
#[sea_orm(table_name = "dataset_samples")]
pub struct Model {
    #[sea_orm(primary_key)]
    #[serde(skip)]
    pub id: i32,
    #[serde(skip)]
    pub dataset_id: i32,
    /// Position in the dataset, from 0.
    pub idx: i32,
    /// WebDataset key.
    pub key: String,
    /// Shard number (`shard-{shard:06}.tar`).
    pub shard: i32,
    /// `png`, `jpg` or `webp`.
    pub image_ext: String,
    /// Byte offset of the image's data in the shard.
    #[serde(skip)]
    pub image_offset: i64,
    pub image_size: i64,
    pub width: i32,
    pub height: i32,
    pub caption: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
