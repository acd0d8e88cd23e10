//! Turns the pipeline's events into the run's live progress: tasks done of the run's plan,
//! samples recaptioned, images/s, ETA, downsampled loss points, round reports and log lines;
//! each is persisted (`run_events`) and broadcast ([`Live`]).

use std::time::Instant;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use vila2_host::pipeline::{Event, RunConfig};

use super::events::{self, End, Live, LogLine, LossPoint, Progress, Update};
use crate::entities::{run, run_event};

/// About how many loss points a training stage keeps.
pub const LOSS_POINTS: u64 = 50;

/// What a run will do, for percentages and ETA.
#[derive(Debug, Clone)]
pub struct Plan {
    tasks: u64,
    samples_total: u64,
    per_shard: u64,
    batch: [(String, u64); 5],
}

impl Plan {
    /// The plan of `cfg` on a dataset of `shards` shards and `samples` samples.
    pub fn new(cfg: &RunConfig, shards: u64, samples: u64) -> Self {
        let t = &cfg.train;
        let stages = [&t.align, &t.pretrain, &t.sft]
            .iter()
            .filter(|s| s.steps > 0)
            .count() as u64;
        let specs = cfg.specialists.len() as u64;
        let rounds = cfg.rounds as u64;
        let trainings = rounds + 1 + u64::from(specs > 0);
        let vision = t.vision.as_ref().filter(|v| v.steps > 0);
        let tasks = u64::from(cfg.model.init.is_none())
            + u64::from(vision.is_some())
            + trainings * (stages + 1)
            + rounds * shards
            + if specs > 0 {
                specs * (1 + shards) + shards
            } else {
                0
            };
        let batch = |s: &vila2_host::pipeline::config::StageConfig| s.batch_size as u64;
        Plan {
            tasks: tasks.max(1),
            samples_total: rounds * samples,
            per_shard: samples.div_ceil(shards.max(1)),
            batch: [
                ("align".into(), batch(&t.align)),
                ("pretrain".into(), batch(&t.pretrain)),
                ("sft".into(), batch(&t.sft)),
                ("train".into(), t.specialist.as_ref().map_or(1, batch)),
                ("vision".into(), vision.map_or(1, |v| v.batch_size as u64)),
            ],
        }
    }

    fn batch_of(&self, task: &str) -> u64 {
        let last = task.rsplit('/').next().unwrap_or_default();
        self.batch
            .iter()
            .find(|(name, _)| name == last)
            .map_or(1, |(_, b)| *b)
    }
}

/// The round of task `id` (`round-2/...` → 2).
fn round_of(id: &str) -> Option<u32> {
    id.strip_prefix("round-")?.split('/').next()?.parse().ok()
}

fn is_recaption(id: &str) -> bool {
    id.contains("/recaption/")
}

/// Records one run's events; lives on the pipeline's blocking thread.
pub struct Recorder {
    db: DatabaseConnection,
    id: i32,
    handle: tokio::runtime::Handle,
    live: Live,
    plan: Plan,
    progress: Progress,
    started: Instant,
    start_fraction: Option<f64>,
    task_started: Instant,
    task_cached: bool,
    last_write: Option<Instant>,
}

impl Recorder {
    /// A recorder of run `id` following `plan`; `handle` runs the writes.
    pub fn new(
        db: DatabaseConnection,
        live: Live,
        id: i32,
        handle: tokio::runtime::Handle,
        plan: Plan,
    ) -> Self {
        let progress = Progress {
            tasks_total: plan.tasks,
            samples_total: plan.samples_total,
            ..Progress::default()
        };
        Recorder {
            db,
            id,
            handle,
            live,
            plan,
            progress,
            started: Instant::now(),
            start_fraction: None,
            task_started: Instant::now(),
            task_cached: false,
            last_write: None,
        }
    }

    /// Handles one pipeline event.
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::Task { id, cached } => {
                self.finish_task();
                self.progress.stage = id.clone();
                self.progress.round = round_of(&id);
                self.progress.step = 0;
                self.progress.steps = 0;
                self.task_started = Instant::now();
                self.task_cached = cached;
                if cached {
                    self.log("info", format!("{id}: done in an earlier attempt, skipped"));
                } else {
                    self.log("info", format!("{id}: started"));
                }
                self.write_progress();
            }
            Event::Step {
                task,
                step,
                steps,
                loss,
            } => {
                let (step, steps) = (step as u64, steps as u64);
                self.progress.step = step;
                self.progress.steps = steps;
                let secs = self.task_started.elapsed().as_secs_f64();
                if secs > 0.0 {
                    self.progress.images_per_s =
                        Some((step * self.plan.batch_of(&task)) as f64 / secs);
                }
                let stride = steps.div_ceil(LOSS_POINTS).max(1);
                if step % stride == 0 || step == steps || step == 1 {
                    let point = LossPoint { task, step, loss };
                    self.persist(run_event::LOSS, &point);
                    self.live.send(self.id, Update::Loss(point));
                }
                if step == steps || self.last_write.is_none_or(|t| t.elapsed().as_secs() >= 1) {
                    self.write_progress();
                }
            }
            Event::Round { report } => {
                let mut line = format!(
                    "{} finished: VQA accuracy {:.1}%",
                    report.label,
                    100.0 * report.score()
                );
                if let Some(r) = &report.recaption {
                    line.push_str(&format!(
                        ", {} of {} recaptions used, {:.2} images/s",
                        r.recaptioned, r.samples, r.images_per_s
                    ));
                    if r.failed > 0 {
                        self.log(
                            "warn",
                            format!(
                                "{}: recaptioning failed on {} samples",
                                report.label, r.failed
                            ),
                        );
                    }
                }
                self.log("info", line);
                self.persist(run_event::ROUND, &report);
                self.live.send(self.id, Update::Round(report));
            }
        }
    }

    /// Counts the task in flight as done (the pipeline moved on from it).
    fn finish_task(&mut self) {
        if self.progress.stage.is_empty() {
            return;
        }
        self.progress.tasks_done += 1;
        if is_recaption(&self.progress.stage) {
            self.progress.samples_done =
                (self.progress.samples_done + self.plan.per_shard).min(self.plan.samples_total);
            let secs = self.task_started.elapsed().as_secs_f64();
            if !self.task_cached && secs > 0.0 {
                self.progress.images_per_s = Some(self.plan.per_shard as f64 / secs);
            }
        }
    }

    /// A log line, persisted and broadcast.
    pub fn log(&mut self, level: &str, message: String) {
        let line = LogLine {
            at: Utc::now(),
            level: level.into(),
            message,
        };
        self.persist(run_event::LOG, &line);
        self.live.send(self.id, Update::Log(line));
    }

    fn persist(&self, kind: &str, data: &impl serde::Serialize) {
        if let Err(e) = self
            .handle
            .block_on(events::append(&self.db, self.id, kind, data))
        {
            tracing::warn!(run = self.id, kind, error = %e, "recording a run event");
        }
    }

    fn write_progress(&mut self) {
        self.last_write = Some(Instant::now());
        let p = &mut self.progress;
        let within = if p.steps > 0 {
            p.step as f64 / p.steps as f64
        } else {
            0.0
        };
        let fraction = ((p.tasks_done as f64 + within) / p.tasks_total as f64).min(0.999);
        p.percent = 100.0 * fraction;
        let f0 = *self.start_fraction.get_or_insert(fraction);
        p.eta_s = (fraction > f0 + 1e-3)
            .then(|| self.started.elapsed().as_secs_f64() * (1.0 - fraction) / (fraction - f0));
        let progress = self.progress.clone();
        let result = self.handle.block_on(async {
            run::Entity::update_many()
                .col_expr(run::Column::Stage, Expr::value(progress.stage.clone()))
                .col_expr(run::Column::Done, Expr::value(progress.step as i64))
                .col_expr(run::Column::Total, Expr::value(progress.steps as i64))
                .filter(run::Column::Id.eq(self.id))
                .exec(&self.db)
                .await?;
            events::set_progress(&self.db, self.id, &progress).await
        });
        if let Err(e) = result {
            tracing::warn!(run = self.id, error = %e, "recording run progress");
        }
        self.live.send(self.id, Update::Progress(progress));
    }
}

/// Records that run `id` ended with `status` (a log line; 100% when it succeeded) and
/// broadcasts the end.
pub async fn finish(
    db: &DatabaseConnection,
    live: &Live,
    id: i32,
    status: &str,
    error: Option<String>,
) -> Result<(), sea_orm::DbErr> {
    let (level, message) = match (status, &error) {
        (_, Some(e)) => ("error", format!("run {status}: {e}")),
        (run::SUCCEEDED, None) => ("info", "run succeeded".to_string()),
        _ => ("warn", format!("run {status}")),
    };
    let line = LogLine {
        at: Utc::now(),
        level: level.into(),
        message,
    };
    events::append(db, id, run_event::LOG, &line).await?;
    live.send(id, Update::Log(line));
    if status == run::SUCCEEDED {
        let snapshot_progress = run_event::Entity::find()
            .filter(run_event::Column::RunId.eq(id))
            .filter(run_event::Column::Kind.eq(run_event::PROGRESS))
            .one(db)
            .await?
            .and_then(|r| serde_json::from_str::<Progress>(&r.data).ok());
        if let Some(mut p) = snapshot_progress {
            p.tasks_done = p.tasks_total;
            p.samples_done = p.samples_total;
            p.step = p.steps;
            p.percent = 100.0;
            p.eta_s = Some(0.0);
            events::set_progress(db, id, &p).await?;
            live.send(id, Update::Progress(p));
        }
    }
    live.send(
        id,
        Update::End(End {
            status: status.into(),
            error,
        }),
    );
    Ok(())
}

/// Logs a line for run `id` from async code (persisted and broadcast).
pub async fn log(
    db: &DatabaseConnection,
    live: &Live,
    id: i32,
    level: &str,
    message: String,
) -> Result<(), sea_orm::DbErr> {
    let line = LogLine {
        at: Utc::now(),
        level: level.into(),
        message,
    };
    events::append(db, id, run_event::LOG, &line).await?;
    live.send(id, Update::Log(line));
    Ok(())
}
