//! Background work: the task runner (image builds today; store, restore and
//! copy later) and the block collector. Tasks live in the repository with
//! their progress, so whatever a crash interrupted is picked up again at
//! start-up.

use std::sync::Arc;
use std::time::Duration;

use hangar_core::service::TaskWaker;
use tokio::sync::Notify;

use crate::state::AppState;

/// Wakes the runner as soon as a task is created; the runner also polls, so
/// a missed wake-up only delays work.
#[derive(Default)]
pub struct Waker {
    notify: Notify,
}

impl TaskWaker for Waker {
    fn wake(&self) {
        self.notify.notify_one();
    }
}

const POLL: Duration = Duration::from_secs(2);

pub fn spawn(state: Arc<AppState>) {
    let runner_state = state.clone();
    tokio::spawn(async move { run_tasks(runner_state).await });
    if state.config.blocks.gc_interval_secs > 0 {
        tokio::spawn(async move { collect_blocks(state).await });
    }
}

async fn run_tasks(state: Arc<AppState>) {
    loop {
        match state.hangar.unfinished_tasks().await {
            Ok(task_ids) => {
                for task_id in task_ids {
                    if let Err(error) = state.hangar.run_task(&task_id).await {
                        // The task stays unfinished and is retried on the
                        // next round.
                        tracing::error!(task_id, %error, "task step failed");
                    }
                }
            }
            Err(error) => tracing::error!(%error, "cannot list tasks"),
        }
        let _ = tokio::time::timeout(POLL, state.waker.notify.notified()).await;
    }
}

async fn collect_blocks(state: Arc<AppState>) {
    let interval = Duration::from_secs(state.config.blocks.gc_interval_secs);
    let grace_ms = (state.config.blocks.gc_grace_secs as i64) * 1000;
    loop {
        tokio::time::sleep(interval).await;
        match state.hangar.collect_blocks(grace_ms).await {
            Ok((kept, deleted)) => tracing::info!(kept, deleted, "block collection finished"),
            Err(error) => tracing::error!(%error, "block collection failed"),
        }
    }
}
