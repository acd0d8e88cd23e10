//! A user's role in a team.

use sea_orm::entity::prelude::*;

/// `role` of a team owner: may add members.
pub const OWNER: &str = "owner";
/// `role` of a plain member.
pub const MEMBER: &str = "member";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Membership)]
#[sea_orm(table_name = "memberships")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub user_id: i32,
    pub team_id: i32,
    pub role: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
