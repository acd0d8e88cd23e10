//! Metering of a running run: the pipeline counts its engines' and trainer's busy time into a
//! [`BusyClock`]; before each task the worker asks [`RunMeter::should_pause`], which charges
//! the time since the last ask to the team's month and says whether a limit is now reached.

use sea_orm::{DatabaseConnection, EntityTrait};
use vila2_host::vlm::engine::BusyClock;

use crate::entities::run;

/// Charges one run's busy time and decides when it pauses. Used on the pipeline's blocking
/// thread (it blocks on `handle` for database calls).
pub struct RunMeter {
    db: DatabaseConnection,
    handle: tokio::runtime::Handle,
    run_id: i32,
    team_id: i32,
    clock: BusyClock,
    charged: f64,
    pause: Option<String>,
}

impl RunMeter {
    /// A meter for `run` with a fresh clock.
    pub fn new(db: DatabaseConnection, handle: tokio::runtime::Handle, run: &run::Model) -> Self {
        RunMeter {
            db,
            handle,
            run_id: run.id,
            team_id: run.team_id,
            clock: BusyClock::default(),
            charged: 0.0,
            pause: None,
        }
    }

    /// The clock to hand to the pipeline.
    pub fn clock(&self) -> &BusyClock {
        &self.clock
    }

    /// Charges the busy time not yet charged to the team's usage of this month.
    pub fn flush(&mut self) {
        let now = self.clock.seconds();
        let delta = now - self.charged;
        if delta <= 0.0 {
            return;
        }
        match self
            .handle
            .block_on(super::charge(&self.db, self.team_id, delta))
        {
            Ok(()) => self.charged = now,
            Err(e) => tracing::warn!(run = self.run_id, error = %e, "charging GPU-seconds"),
        }
    }

    /// Flushes, then whether a limit of the team stops the run now (the reason is kept for
    /// [`RunMeter::pause_reason`]).
    pub fn should_pause(&mut self) -> bool {
        self.flush();
        let reason = self.handle.block_on(async {
            let Some(row) = run::Entity::find_by_id(self.run_id).one(&self.db).await? else {
                return Ok(None);
            };
            super::run_limit(&self.db, &row).await
        });
        match reason {
            Ok(Some(reason)) => {
                tracing::info!(run = self.run_id, %reason, "run pauses");
                self.pause = Some(reason);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(run = self.run_id, error = %e, "checking the run's quotas");
                false
            }
        }
    }

    /// Why the run paused, when [`RunMeter::should_pause`] said so.
    pub fn pause_reason(&self) -> Option<&str> {
        self.pause.as_deref()
    }
}
