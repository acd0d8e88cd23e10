//! sea-orm entities, one per table of `vila2-migrations`.

pub mod api_token;
pub mod dataset;
pub mod dataset_sample;
pub mod judging_item;
pub mod judging_pair;
pub mod judging_vote;
pub mod membership;
pub mod plugin;
pub mod registered_model;
pub mod revoked_jwt;
pub mod run;
pub mod run_event;
pub mod run_task;
pub mod team;
pub mod team_quota;
pub mod team_usage;
pub mod user;
