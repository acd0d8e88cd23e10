//! Judging pages: the blind pairwise page of a run (image, caption A, caption B, three vote
//! buttons; after a vote the next item, with the last item's sources revealed) and the
//! judging report page. Form posts check the CSRF token.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::pages::{check_csrf, csrf_page, refused, render};
use super::run_live::team_run;
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::judging::{self, NextItem, Source, VoteRequest};

/// The judging pages, at the root.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/teams/{id}/runs/{run_id}/judging",
            get(judging_page).post(vote_form),
        )
        .route("/teams/{id}/runs/{run_id}/judging/report", get(report_page))
}

/// The sources of the item voted on last, shown after the vote.
struct Revealed {
    choice: &'static str,
    source_a: String,
    source_b: String,
}

#[derive(Template)]
#[template(path = "judging.html")]
struct JudgingPage<'a> {
    csrf: &'a str,
    email: &'a str,
    team_id: i32,
    run_id: i32,
    next: NextItem,
    revealed: Option<Revealed>,
}

#[derive(Template)]
#[template(path = "judging_report.html")]
struct ReportPage<'a> {
    csrf: &'a str,
    email: &'a str,
    team_id: i32,
    run_id: i32,
    section: String,
}

/// `?voted=ITEM`: the item the member just voted on.
#[derive(Deserialize)]
struct VotedQuery {
    voted: Option<i32>,
}

fn label(source: &str) -> String {
    source
        .parse::<Source>()
        .map(Source::label)
        .unwrap_or_else(|_| source.to_string())
}

async fn judging_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path((team_id, run_id)): Path<(i32, i32)>,
    Query(query): Query<VotedQuery>,
) -> Result<Response, ApiError> {
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    let run = team_run(&state, &auth, team_id, run_id).await?;
    let next = match judging::next(&state.db, &state.runs, &run, &auth.user).await {
        Ok(next) => next,
        Err(e) => return refused("Judging is not open", e),
    };
    let revealed = match query.voted {
        Some(item_id) => judging::my_vote(&state.db, &run, &auth.user, item_id)
            .await?
            .map(|(item, vote)| Revealed {
                choice: match vote.choice.as_str() {
                    "left" => "A has fewer hallucinations",
                    "right" => "B has fewer hallucinations",
                    _ => "same",
                },
                source_a: label(&item.left_source),
                source_b: label(&item.right_source),
            }),
        None => None,
    };
    csrf_page(&state, &headers, |csrf| {
        render(&JudgingPage {
            csrf,
            email: &auth.user.email,
            team_id,
            run_id,
            next,
            revealed,
        })
    })
}

#[derive(Deserialize)]
struct VoteForm {
    #[serde(default)]
    csrf: String,
    item_id: i32,
    #[serde(default)]
    choice: String,
}

async fn vote_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path((team_id, run_id)): Path<(i32, i32)>,
    Form(form): Form<VoteForm>,
) -> Result<Response, ApiError> {
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    check_csrf(&headers, &form.csrf)?;
    let run = team_run(&state, &auth, team_id, run_id).await?;
    let req = VoteRequest {
        item_id: form.item_id,
        choice: form.choice,
    };
    match judging::vote(&state.db, &state.runs, &run, &auth.user, &req).await {
        Ok(v) => Ok((
            StatusCode::SEE_OTHER,
            [(
                "location",
                format!("/teams/{team_id}/runs/{run_id}/judging?voted={}", v.item_id),
            )],
        )
            .into_response()),
        Err(e) => refused("Vote refused", e),
    }
}

async fn report_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path((team_id, run_id)): Path<(i32, i32)>,
) -> Result<Response, ApiError> {
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    let run = team_run(&state, &auth, team_id, run_id).await?;
    let report = judging::judging_report(&state.db, &state.runs, &run).await?;
    let section = judging::report_html(&report)?;
    csrf_page(&state, &headers, |csrf| {
        render(&ReportPage {
            csrf,
            email: &auth.user.email,
            team_id,
            run_id,
            section,
        })
    })
}
