//! Run pages: the dashboard's new-run form, the cancel button, and a run's page (live
//! progress over SSE, the per-round report with server-rendered SVG plots, original vs
//! augmented captions, downloads).

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::pages::{check_csrf, csrf_page, error_page, render};
use super::run_charts::line_chart;
use super::run_live::{PageQuery, report_view, side_page, team_run};
use crate::AppState;
use crate::accounts;
use crate::auth::AuthUser;
use crate::entities::run;
use crate::error::ApiError;
use crate::runs::download::{self, DataFile};
use crate::runs::events::is_final;
use crate::runs::samples::SidePage;
use crate::runs::{
    self, ConfiguredFilter, FilterChoice, RunRequest, RunSettings, SpecialistChoice,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/teams/{id}/runs", post(new_run_form))
        .route("/teams/{id}/runs/{run_id}", get(run_page))
        .route("/teams/{id}/runs/{run_id}/cancel", post(cancel_form))
}

/// The dashboard's new-run form (read from its fields in order: `specialists` repeats).
#[derive(Default)]
struct NewRunForm {
    csrf: String,
    dataset_id: String,
    rounds: String,
    template: String,
    /// One filter per line: a plugin name, optionally followed by its JSON config (names
    /// without one may be comma-separated); empty: the preset's filters; `none`: no filter.
    filters: String,
    fusion: String,
    /// A registered model's id; empty: the preset's model.
    model_id: String,
    /// The checked specialist boxes (empty values: the form's marker that it lists them);
    /// None when the form sent no `specialists` field: the preset's.
    specialists: Option<Vec<String>>,
}

impl NewRunForm {
    fn from_fields(fields: Vec<(String, String)>) -> Self {
        let mut form = NewRunForm::default();
        for (key, value) in fields {
            match key.as_str() {
                "csrf" => form.csrf = value,
                "dataset_id" => form.dataset_id = value,
                "rounds" => form.rounds = value,
                "template" => form.template = value,
                "filters" => form.filters = value,
                "fusion" => form.fusion = value,
                "model_id" => form.model_id = value,
                "specialists" => {
                    let list = form.specialists.get_or_insert_with(Vec::new);
                    if !value.trim().is_empty() {
                        list.push(value.trim().to_string());
                    }
                }
                _ => {}
            }
        }
        form
    }

    fn request(&self) -> Result<RunRequest, ApiError> {
        let int = |field: &str, v: &str| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::BadRequest(format!("{field}: `{v}` is not a whole number")))
        };
        let text = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        Ok(RunRequest {
            dataset_id: int("dataset_id", &self.dataset_id)? as i32,
            rounds: int("rounds", &self.rounds)?,
            fusion: text(&self.fusion),
            template: text(&self.template),
            filters: parse_filters(&self.filters)?,
            specialists: self
                .specialists
                .as_ref()
                .map(|names| names.iter().cloned().map(SpecialistChoice::Name).collect()),
            model_id: match self.model_id.trim() {
                "" => None,
                id => Some(int("model_id", id)? as i32),
            },
        })
    }
}

/// The form's filters field (see [`NewRunForm::filters`]).
fn parse_filters(text: &str) -> Result<Option<Vec<FilterChoice>>, ApiError> {
    let text = text.trim();
    match text {
        "" => return Ok(None),
        "none" => return Ok(Some(Vec::new())),
        _ => {}
    }
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.find('{') {
            Some(at) => {
                let field = format!("filters[{}].config", out.len());
                let config: serde_json::Value = serde_json::from_str(&line[at..])
                    .map_err(|e| ApiError::BadRequest(format!("{field}: not JSON: {e}")))?;
                out.push(FilterChoice::Configured(ConfiguredFilter {
                    name: line[..at].trim().to_string(),
                    config: Some(config),
                }));
            }
            None => out.extend(
                line.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| FilterChoice::Name(n.to_string())),
            ),
        }
    }
    Ok(Some(out))
}

/// A specialist checkbox of the new-run form.
pub(super) struct SpecialistBox {
    pub name: String,
    /// The preset runs it by default.
    pub checked: bool,
}

/// What the new-run form is prefilled with: the preset's filters (one per line with its
/// config) and specialists.
pub(super) struct RunFormDefaults {
    pub filters: String,
    pub specialists: Vec<SpecialistBox>,
}

impl RunFormDefaults {
    pub(super) fn of(settings: &RunSettings) -> Self {
        let preset = vila2_host::pipeline::RunConfig::parse(&settings.preset.document).ok();
        let filters = preset.as_ref().map_or(String::new(), |c| {
            c.recaption
                .filters
                .iter()
                .map(plugin_text)
                .collect::<Vec<_>>()
                .join("\n")
        });
        let specialists = if settings.preset.shapes.specialist == 0 {
            Vec::new()
        } else {
            runs::choices::specialist_tasks()
                .into_iter()
                .map(|name| SpecialistBox {
                    checked: preset
                        .as_ref()
                        .is_some_and(|c| c.specialists.iter().any(|s| s.name == name)),
                    name: name.to_string(),
                })
                .collect()
        };
        RunFormDefaults {
            filters,
            specialists,
        }
    }
}

/// `plugin` or `plugin {"config": ...}`, as the run page and the form show a plugin.
fn plugin_text(p: &vila2_host::pipeline::config::PluginRef) -> String {
    match &p.config {
        Some(config) => format!("{} {config}", p.plugin),
        None => p.plugin.clone(),
    }
}

async fn new_run_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path(team_id): Path<i32>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    let form = NewRunForm::from_fields(fields);
    check_csrf(&headers, &form.csrf)?;
    let (team, _) = accounts::team_access(&state.db, &auth.user, team_id).await?;
    let result = async {
        let req = form.request()?;
        runs::submit(&state, &team, &auth.user, &req).await
    }
    .await;
    match result {
        Ok(row) => Ok(Redirect::to(&format!("/teams/{team_id}/runs/{}", row.id)).into_response()),
        Err(e) if e.status().is_client_error() => error_page("Run refused", &e),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct CancelForm {
    #[serde(default)]
    csrf: String,
}

async fn cancel_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path((team_id, run_id)): Path<(i32, i32)>,
    Form(form): Form<CancelForm>,
) -> Result<Response, ApiError> {
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    check_csrf(&headers, &form.csrf)?;
    let row = team_run(&state, &auth, team_id, run_id).await?;
    match runs::cancel(&state.db, &row).await {
        Ok(_) | Err(ApiError::Conflict(_)) => {}
        Err(e) => return Err(e),
    }
    Ok((
        StatusCode::SEE_OTHER,
        [("location", format!("/teams/{team_id}/runs/{run_id}"))],
    )
        .into_response())
}

/// One row of the report table, formatted.
struct RoundRow {
    label: String,
    samples: usize,
    mean_words: String,
    vocabulary: usize,
    vqa: String,
    precision: String,
    recall: String,
    hallucination: String,
    recaption: String,
    images_per_s: String,
    reasons: String,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage<'a> {
    csrf: &'a str,
    email: &'a str,
    team_id: i32,
    run: run::Model,
    dataset_name: String,
    fusion: String,
    template: String,
    filters: String,
    specialists: String,
    finished: bool,
    active: bool,
    rounds: Vec<RoundRow>,
    charts: Vec<String>,
    stopped_early: Option<String>,
    samples: Option<SidePage>,
    files: Vec<DataFile>,
    /// The human judging report's section (finished runs).
    judging: Option<String>,
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn round_rows(rounds: &[vila2_host::pipeline::report::RoundReport]) -> Vec<RoundRow> {
    rounds
        .iter()
        .map(|r| {
            let c = r.eval.captions;
            let cap = |f: fn(&vila2_host::pipeline::evaluate::CaptionQuality) -> f64| {
                c.as_ref().map_or("–".into(), |c| pct(f(c)))
            };
            RoundRow {
                label: r.label.clone(),
                samples: r.data.samples,
                mean_words: format!("{:.1}", r.data.mean_words),
                vocabulary: r.data.vocabulary,
                vqa: pct(r.score()),
                precision: cap(|c| c.precision),
                recall: cap(|c| c.recall),
                hallucination: cap(|c| c.hallucination),
                recaption: r.recaption.as_ref().map_or("–".into(), |s| {
                    format!(
                        "{} used, {} rejected, {} failed ({} dropped)",
                        s.recaptioned,
                        s.rejected,
                        s.failed,
                        pct(s.drop_rate())
                    )
                }),
                images_per_s: r
                    .recaption
                    .as_ref()
                    .map_or("–".into(), |s| format!("{:.2}", s.images_per_s)),
                reasons: r.recaption.as_ref().map_or(String::new(), |s| {
                    s.reasons
                        .iter()
                        .map(|(why, n)| format!("{why} × {n}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                }),
            }
        })
        .collect()
}

fn charts(rounds: &[vila2_host::pipeline::report::RoundReport]) -> Vec<String> {
    if rounds.is_empty() {
        return Vec::new();
    }
    let kinds: std::collections::BTreeSet<&String> =
        rounds.iter().flat_map(|r| r.eval.vqa.keys()).collect();
    let mut vqa: Vec<(String, Vec<f64>)> = kinds
        .iter()
        .map(|k| {
            (
                (*k).clone(),
                rounds
                    .iter()
                    .map(|r| r.eval.vqa.get(*k).map_or(0.0, |a| a.rate()))
                    .collect(),
            )
        })
        .collect();
    vqa.push(("all".into(), rounds.iter().map(|r| r.score()).collect()));
    let words = vec![(
        "training captions".to_string(),
        rounds.iter().map(|r| r.data.mean_words).collect(),
    )];
    let losses: Vec<(String, Vec<f64>)> = rounds
        .iter()
        .map(|r| (r.label.clone(), r.losses.clone()))
        .collect();
    vec![
        line_chart("VQA accuracy per round", &vqa, "round"),
        line_chart("Caption length (words)", &words, "round"),
        line_chart("Training loss per round", &losses, "step"),
    ]
}

async fn run_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path((team_id, run_id)): Path<(i32, i32)>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    let row = team_run(&state, &auth, team_id, run_id).await?;
    let dataset_name = crate::datasets::get(&state.db, team_id, row.dataset_id)
        .await
        .map(|d| d.name)
        .unwrap_or_else(|_| format!("dataset {}", row.dataset_id));
    let cfg = vila2_host::pipeline::RunConfig::parse(&row.config).ok();
    let report = report_view(&state, &row).await?;
    let (samples, files) = if row.status == run::SUCCEEDED {
        let dir = download::augmented_dir(&state.runs, &row)?;
        (
            Some(side_page(&state, &row, query.page.unwrap_or(1)).await?),
            download::files(&dir)?,
        )
    } else {
        (None, Vec::new())
    };
    let judging = if row.status == run::SUCCEEDED {
        let report = crate::judging::judging_report(&state.db, &state.runs, &row).await?;
        Some(crate::judging::report_html(&report)?)
    } else {
        None
    };
    csrf_page(&state, &headers, |csrf| {
        render(&RunPage {
            csrf,
            email: &auth.user.email,
            team_id,
            dataset_name,
            fusion: cfg.as_ref().map_or("?".into(), |c| c.fusion.to_string()),
            template: cfg
                .as_ref()
                .map_or("?".into(), |c| plugin_text(&c.recaption.template)),
            filters: cfg.as_ref().map_or("?".into(), |c| {
                let names: Vec<String> = c.recaption.filters.iter().map(plugin_text).collect();
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join("; ")
                }
            }),
            specialists: cfg.as_ref().map_or("?".into(), |c| {
                let names: Vec<String> = c
                    .specialists
                    .iter()
                    .map(|s| format!("{} ({})", s.name, plugin_text(&s.plugin)))
                    .collect();
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join("; ")
                }
            }),
            finished: is_final(&row.status),
            active: [run::QUEUED, run::RUNNING, run::PAUSED].contains(&row.status.as_str()),
            rounds: round_rows(&report.rounds),
            charts: charts(&report.rounds),
            stopped_early: report.stopped_early,
            samples,
            files,
            judging,
            run: row,
        })
    })
}
