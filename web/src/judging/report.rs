//! The judging report of a run: per pair of sources, each side's win rate with a 95% Wilson
//! interval, the ties and the number of votes. [`judging_report`] computes it,
//! [`report_html`] renders it as a section other pages embed.

use std::collections::HashMap;

use askama::Template;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use super::source::Source;
use super::stats::{Z95, wilson};
use crate::entities::{judging_item, judging_pair, judging_vote, run};
use crate::error::ApiError;
use crate::runs::RunSettings;

/// How rates are computed, as stated on the report.
pub const CONVENTION: &str = "A side's win rate is (its wins + half the ties) / votes: a \
    \"same\" vote counts as half a win for each side. Ties are also reported separately. The \
    interval is the 95% Wilson score interval of that rate over the votes.";

/// The judging report of a run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JudgingReport {
    pub run_id: i32,
    /// Whether the run can be judged (succeeded with at least one recaption round).
    pub open: bool,
    /// Why not, when it cannot.
    pub closed_reason: Option<String>,
    /// How the rates and intervals are computed.
    pub convention: String,
    /// Votes over all pairs.
    pub votes: u64,
    /// Members who voted.
    pub judges: u64,
    /// One row per pair: original vs each round, then round j vs round k.
    pub pairs: Vec<PairReport>,
}

/// The votes on one pair of sources.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PairReport {
    /// E.g. `original vs round 1`.
    pub label: String,
    /// Items sampled for the pair.
    pub items: u64,
    /// Votes on them (one per member and item).
    pub votes: u64,
    /// "Same" votes.
    pub ties: u64,
    /// The earlier source.
    pub a: SideReport,
    /// The later source.
    pub b: SideReport,
}

/// One side of a pair.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SideReport {
    /// `original` or `round:K`.
    pub source: String,
    /// `original` or `round K`.
    pub label: String,
    /// Votes saying this side has fewer hallucinations.
    pub wins: u64,
    /// (wins + ties / 2) / votes; None without votes.
    pub rate: Option<f64>,
    /// Lower end of the 95% Wilson interval of `rate`.
    pub ci_low: Option<f64>,
    /// Upper end of the 95% Wilson interval of `rate`.
    pub ci_high: Option<f64>,
}

impl SideReport {
    fn new(source: Source, wins: u64, ties: u64, votes: u64) -> Self {
        let successes = wins as f64 + ties as f64 / 2.0;
        let interval = wilson(successes, votes as f64, Z95);
        SideReport {
            source: source.to_string(),
            label: source.label(),
            wins,
            rate: (votes > 0).then(|| successes / votes as f64),
            ci_low: interval.map(|i| i.0),
            ci_high: interval.map(|i| i.1),
        }
    }

    /// `rate` as a percentage for pages, `–` without votes.
    pub fn rate_pct(&self) -> String {
        pct(self.rate)
    }

    /// The interval as `[low, high]` percentages for pages.
    pub fn interval_pct(&self) -> String {
        match (self.ci_low, self.ci_high) {
            (Some(lo), Some(hi)) => format!("[{}, {}]", pct(Some(lo)), pct(Some(hi))),
            _ => "–".into(),
        }
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |x| format!("{:.1}%", 100.0 * x))
}

/// The report of `run`, building its judging items first when the run is open (so every pair
/// is listed, with 0 votes before anyone judged). A run that cannot be judged gets an empty
/// report saying why. This is what the run page embeds (with [`report_html`]).
pub async fn judging_report(
    db: &DatabaseConnection,
    settings: &RunSettings,
    run: &run::Model,
) -> Result<JudgingReport, ApiError> {
    let closed_reason = match super::ensure_items(db, settings, run).await {
        Ok(()) => None,
        Err(ApiError::Conflict(why)) => Some(why),
        Err(e) => return Err(e),
    };
    let pairs = judging_pair::Entity::find()
        .filter(judging_pair::Column::RunId.eq(run.id))
        .order_by_asc(judging_pair::Column::Id)
        .all(db)
        .await?;
    let items: HashMap<i32, (i32, String)> = judging_item::Entity::find()
        .select_only()
        .column(judging_item::Column::Id)
        .column(judging_item::Column::PairId)
        .column(judging_item::Column::LeftSource)
        .filter(judging_item::Column::RunId.eq(run.id))
        .into_tuple::<(i32, i32, String)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, pair, left)| (id, (pair, left)))
        .collect();
    let votes: Vec<(i32, i32, String)> = judging_vote::Entity::find()
        .select_only()
        .column(judging_vote::Column::ItemId)
        .column(judging_vote::Column::UserId)
        .column(judging_vote::Column::Choice)
        .filter(judging_vote::Column::RunId.eq(run.id))
        .into_tuple()
        .all(db)
        .await?;
    // (a wins, b wins, ties) per pair id.
    let mut tally: HashMap<i32, (u64, u64, u64)> = HashMap::new();
    let mut judges: Vec<i32> = votes.iter().map(|v| v.1).collect();
    judges.sort_unstable();
    judges.dedup();
    for (item_id, _, choice) in &votes {
        let Some((pair_id, left)) = items.get(item_id) else {
            continue;
        };
        let Some(pair) = pairs.iter().find(|p| p.id == *pair_id) else {
            continue;
        };
        let left_is_a = *left == pair.source_a;
        let t = tally.entry(*pair_id).or_default();
        match (choice.as_str(), left_is_a) {
            ("same", _) => t.2 += 1,
            ("left", true) | ("right", false) => t.0 += 1,
            ("left", false) | ("right", true) => t.1 += 1,
            (other, _) => tracing::warn!(choice = other, "unknown judging choice stored"),
        }
    }
    let mut rows: Vec<(Source, Source, PairReport)> = Vec::new();
    for p in &pairs {
        let (Ok(a), Ok(b)) = (p.source_a.parse::<Source>(), p.source_b.parse::<Source>()) else {
            return Err(ApiError::Internal(format!(
                "judging pair {} has unknown sources {}|{}",
                p.id, p.source_a, p.source_b
            )));
        };
        let (a_wins, b_wins, ties) = tally.get(&p.id).copied().unwrap_or_default();
        let n = a_wins + b_wins + ties;
        rows.push((
            a,
            b,
            PairReport {
                label: format!("{} vs {}", a.label(), b.label()),
                items: p.items.max(0) as u64,
                votes: n,
                ties,
                a: SideReport::new(a, a_wins, ties, n),
                b: SideReport::new(b, b_wins, ties, n),
            },
        ));
    }
    // Original vs each round first, then round j vs round k (as `Source::pairs`).
    rows.sort_by_key(|(a, b, _)| (*a != Source::Original, *a, *b));
    Ok(JudgingReport {
        run_id: run.id,
        open: closed_reason.is_none(),
        closed_reason,
        convention: CONVENTION.into(),
        votes: votes.len() as u64,
        judges: judges.len() as u64,
        pairs: rows.into_iter().map(|(_, _, r)| r).collect(),
    })
}

#[derive(Template)]
#[template(path = "judging_report_section.html")]
struct Section<'a> {
    report: &'a JudgingReport,
}

/// The report as an HTML `<section>` (escaped; embed it with askama's `|safe`).
pub fn report_html(report: &JudgingReport) -> Result<String, ApiError> {
    Section { report }
        .render()
        .map_err(|e| ApiError::Internal(format!("rendering the judging report: {e}")))
}
