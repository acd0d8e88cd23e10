//! sea-orm entities, one per table of `vila2-migrations`.

pub mod api_token;
pub mod dataset;
pub mod dataset_sample;
pub mod judging_item;
pub mod judging_pair;
pub mod judging_vote;
pub mod membership;
pub mod plugin;
pub mod revoked_jwt;
pub mod run;
pub mod team;
pub mod user;
