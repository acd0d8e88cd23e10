//! Human judging, VILA²'s hallucination study built in: members of a run's team see a sample's
//! image with two captions of a finished run (original vs round k, or round j vs round k,
//! sides randomised, sources hidden) and pick the one with fewer hallucinations, or "same".
//! The [`report`] gives each pair's win rates with Wilson intervals.
//!
//! Items are built once per run from its output folder ([`folder`], [`select`]) on first use
//! and stored; a member is served the first item (in the seeded order) they have not voted
//! on. The sources of an item are revealed only in the answer to a vote.

pub mod folder;
pub mod report;
pub mod select;
pub mod source;
pub mod stats;

use chrono::Utc;
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};

pub use report::{JudgingReport, PairReport, SideReport, judging_report, report_html};
pub use source::Source;

use crate::entities::{judging_item, judging_pair, judging_vote, run, user};
use crate::error::ApiError;
use crate::runs::{RunSettings, run_dir};
use select::{ITEMS_PER_PAIR, Selector};

/// Which shown caption has fewer hallucinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Caption A (shown on the left).
    Left,
    /// Caption B (shown on the right).
    Right,
    /// Neither: about as many hallucinations.
    Same,
}

impl Choice {
    /// Parses `left`, `right` or `same`; the error names the field `choice`.
    pub fn parse(s: &str) -> Result<Choice, ApiError> {
        match s {
            "left" => Ok(Choice::Left),
            "right" => Ok(Choice::Right),
            "same" => Ok(Choice::Same),
            other => Err(ApiError::BadRequest(format!(
                "choice: `{other}` is not one of left, right, same"
            ))),
        }
    }

    /// As stored: `left`, `right` or `same`.
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Left => "left",
            Choice::Right => "right",
            Choice::Same => "same",
        }
    }
}

/// Refuses (409) a run that cannot be judged: not succeeded, or without a recaption round.
pub fn check_open(run: &run::Model) -> Result<(), ApiError> {
    if run.status != run::SUCCEEDED {
        return Err(ApiError::Conflict(format!(
            "run {} is {}: judging opens once it has succeeded",
            run.id, run.status
        )));
    }
    if run.rounds < 1 {
        return Err(ApiError::Conflict(format!(
            "run {} has no self-augmentation round: there are no recaptions to judge",
            run.id
        )));
    }
    Ok(())
}

/// Builds and stores the judging items of `run` (open, see [`check_open`]) unless done before.
/// Concurrent calls store the same rows once.
pub async fn ensure_items(
    db: &DatabaseConnection,
    settings: &RunSettings,
    run: &run::Model,
) -> Result<(), ApiError> {
    check_open(run)?;
    let built = judging_pair::Entity::find()
        .filter(judging_pair::Column::RunId.eq(run.id))
        .count(db)
        .await?;
    if built > 0 {
        return Ok(());
    }
    let out = run_dir(settings, run.id).join("out");
    let (run_id, rounds) = (run.id, run.rounds as u32);
    let selection = tokio::task::spawn_blocking(move || {
        let last = folder::last_round(&out, rounds)?;
        let mut selector = Selector::new(run_id, last, ITEMS_PER_PAIR);
        folder::samples(&out, rounds, |s| selector.offer(&s))?;
        Ok::<_, folder::FolderError>(selector.finish())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("selecting judging items: {e}")))?
    .map_err(|e| match e {
        e @ folder::FolderError::NoRounds(_) => ApiError::Conflict(format!("run {}: {e}", run.id)),
        e => ApiError::Internal(format!("run {}: {e}", run.id)),
    })?;

    let txn = db.begin().await?;
    let pairs = selection
        .pairs
        .iter()
        .map(|((a, b), n)| judging_pair::ActiveModel {
            id: NotSet,
            run_id: Set(run.id),
            source_a: Set(a.to_string()),
            source_b: Set(b.to_string()),
            items: Set(*n as i32),
        });
    judging_pair::Entity::insert_many(pairs)
        .on_conflict_do_nothing()
        .exec(&txn)
        .await?;
    let ids: Vec<judging_pair::Model> = judging_pair::Entity::find()
        .filter(judging_pair::Column::RunId.eq(run.id))
        .all(&txn)
        .await?;
    let pair_id = |a: Source, b: Source| {
        ids.iter()
            .find(|p| p.source_a == a.to_string() && p.source_b == b.to_string())
            .map(|p| p.id)
            .ok_or_else(|| ApiError::Internal(format!("judging pair {a}|{b} was not stored")))
    };
    for chunk in selection.items.chunks(200) {
        let mut rows = Vec::with_capacity(chunk.len());
        for item in chunk {
            rows.push(judging_item::ActiveModel {
                id: NotSet,
                run_id: Set(run.id),
                pair_id: Set(pair_id(item.pair.0, item.pair.1)?),
                sample_key: Set(item.key.clone()),
                shard: Set(item.shard.clone()),
                left_source: Set(item.left.0.to_string()),
                right_source: Set(item.right.0.to_string()),
                left_caption: Set(item.left.1.clone()),
                right_caption: Set(item.right.1.clone()),
            });
        }
        judging_item::Entity::insert_many(rows)
            .on_conflict_do_nothing()
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    tracing::info!(
        run = run.id,
        pairs = selection.pairs.len(),
        items = selection.items.len(),
        "judging items built"
    );
    Ok(())
}

/// An item as a judge sees it: no sources, no sample key.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemView {
    /// The item's id (to vote on it).
    pub id: i32,
    /// Caption A, shown on the left.
    pub caption_a: String,
    /// Caption B, shown on the right.
    pub caption_b: String,
    /// The sample's image (same authentication).
    pub image_url: String,
}

/// `GET .../judging/next`: the member's next unjudged item and their progress.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NextItem {
    /// None when the member has voted on every item.
    pub item: Option<ItemView>,
    /// Items the member has voted on.
    pub voted: u64,
    /// Items of the run.
    pub total: u64,
}

/// Where item `id` of run `run` serves its image.
pub fn image_url(run: &run::Model, id: i32) -> String {
    format!(
        "/api/v1/teams/{}/runs/{}/judging/items/{id}/image",
        run.team_id, run.id
    )
}

/// The next item `user` has not voted on (after building the items if needed).
pub async fn next(
    db: &DatabaseConnection,
    settings: &RunSettings,
    run: &run::Model,
    user: &user::Model,
) -> Result<NextItem, ApiError> {
    ensure_items(db, settings, run).await?;
    let mine = Query::select()
        .column(judging_vote::Column::ItemId)
        .from(judging_vote::Entity)
        .and_where(judging_vote::Column::RunId.eq(run.id))
        .and_where(judging_vote::Column::UserId.eq(user.id))
        .to_owned();
    let item = judging_item::Entity::find()
        .filter(judging_item::Column::RunId.eq(run.id))
        .filter(judging_item::Column::Id.not_in_subquery(mine))
        .order_by_asc(judging_item::Column::Id)
        .one(db)
        .await?;
    let total = judging_item::Entity::find()
        .filter(judging_item::Column::RunId.eq(run.id))
        .count(db)
        .await?;
    let voted = judging_vote::Entity::find()
        .filter(judging_vote::Column::RunId.eq(run.id))
        .filter(judging_vote::Column::UserId.eq(user.id))
        .count(db)
        .await?;
    Ok(NextItem {
        item: item.map(|i| ItemView {
            id: i.id,
            image_url: image_url(run, i.id),
            caption_a: i.left_caption,
            caption_b: i.right_caption,
        }),
        voted,
        total,
    })
}

/// `POST .../judging/votes`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteRequest {
    /// The item voted on (from `judging/next`).
    pub item_id: i32,
    /// Which caption has fewer hallucinations: `left` (caption A), `right` (caption B) or
    /// `same`.
    pub choice: String,
}

/// The answer to a vote: now the item's sources are revealed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VoteResult {
    pub item_id: i32,
    /// `left`, `right` or `same`.
    pub choice: String,
    /// Source of caption A: `original` or `round:K`.
    pub source_a: String,
    /// Source of caption B.
    pub source_b: String,
    /// This vote replaced the member's earlier vote on the item.
    pub replaced: bool,
}

/// Item `item_id` of `run`, or a 404 naming the field.
pub async fn item(
    db: &DatabaseConnection,
    run: &run::Model,
    item_id: i32,
) -> Result<judging_item::Model, ApiError> {
    judging_item::Entity::find_by_id(item_id)
        .filter(judging_item::Column::RunId.eq(run.id))
        .one(db)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "item_id: judging item {item_id} not found in run {}",
                run.id
            ))
        })
}

/// Records (or changes) `user`'s vote on an item of `run`.
pub async fn vote(
    db: &DatabaseConnection,
    settings: &RunSettings,
    run: &run::Model,
    user: &user::Model,
    req: &VoteRequest,
) -> Result<VoteResult, ApiError> {
    let choice = Choice::parse(&req.choice)?;
    ensure_items(db, settings, run).await?;
    let item = item(db, run, req.item_id).await?;
    let earlier = judging_vote::Entity::find()
        .filter(judging_vote::Column::ItemId.eq(item.id))
        .filter(judging_vote::Column::UserId.eq(user.id))
        .one(db)
        .await?;
    let now = Utc::now();
    judging_vote::Entity::insert(judging_vote::ActiveModel {
        id: NotSet,
        run_id: Set(run.id),
        item_id: Set(item.id),
        user_id: Set(user.id),
        choice: Set(choice.as_str().into()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([judging_vote::Column::ItemId, judging_vote::Column::UserId])
            .update_columns([
                judging_vote::Column::Choice,
                judging_vote::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    tracing::debug!(
        run = run.id,
        item = item.id,
        user = user.id,
        choice = choice.as_str(),
        "judging vote"
    );
    Ok(VoteResult {
        item_id: item.id,
        choice: choice.as_str().into(),
        source_a: item.left_source,
        source_b: item.right_source,
        replaced: earlier.is_some(),
    })
}

/// `user`'s vote on item `item_id` of `run` with the item, if they voted on it.
pub async fn my_vote(
    db: &DatabaseConnection,
    run: &run::Model,
    user: &user::Model,
    item_id: i32,
) -> Result<Option<(judging_item::Model, judging_vote::Model)>, ApiError> {
    let Some(vote) = judging_vote::Entity::find()
        .filter(judging_vote::Column::RunId.eq(run.id))
        .filter(judging_vote::Column::ItemId.eq(item_id))
        .filter(judging_vote::Column::UserId.eq(user.id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((item(db, run, item_id).await?, vote)))
}

/// The image of item `item_id` of `run`: bytes and MIME type.
pub async fn item_image(
    db: &DatabaseConnection,
    settings: &RunSettings,
    run: &run::Model,
    item_id: i32,
) -> Result<(Vec<u8>, &'static str), ApiError> {
    check_open(run)?;
    let item = item(db, run, item_id).await?;
    let out = run_dir(settings, run.id).join("out");
    tokio::task::spawn_blocking(move || folder::image(&out, &item.shard, &item.sample_key))
        .await
        .map_err(|e| ApiError::Internal(format!("reading a judging image: {e}")))?
        .map_err(|e| ApiError::Internal(format!("run {}: {e}", run.id)))
}
