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
    if state.config.buckets.collect_interval_secs > 0 {
        let bucket_state = state.clone();
        tokio::spawn(async move { collect_bucket_files(bucket_state).await });
    }
    if state.config.blocks.gc_interval_secs > 0 {
        tokio::spawn(async move { collect_blocks(state).await });
    }
}

/// Runs unfinished tasks, at most `task_concurrency` at once, each in its
/// own tokio task (a long store must not hold up an image build), and never
/// the same task twice at a time.
async fn run_tasks(state: Arc<AppState>) {
    let limit = state.task_concurrency.max(1);
    let permits = Arc::new(tokio::sync::Semaphore::new(limit));
    let running: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Arc::default();
    loop {
        match state.hangar.unfinished_tasks().await {
            Ok(task_ids) => {
                for task_id in task_ids {
                    let fresh = running
                        .lock()
                        .map(|mut running| running.insert(task_id.clone()))
                        .unwrap_or(false);
                    if !fresh {
                        continue;
                    }
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    let (state, running) = (state.clone(), running.clone());
                    tokio::spawn(async move {
                        if let Err(error) = state.hangar.run_task(&task_id).await {
                            // The task stays unfinished and is retried on
                            // the next round.
                            tracing::error!(task_id, %error, "task step failed");
                        }
                        if let Ok(mut running) = running.lock() {
                            running.remove(&task_id);
                        }
                        drop(permit);
                        state.waker.notify.notify_one();
                    });
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

/// Aborts abandoned multipart uploads, then removes object files no record
/// names (see [`crate::collect`]).
async fn collect_bucket_files(state: Arc<AppState>) {
    let config = &state.config.buckets;
    let interval = Duration::from_secs(config.collect_interval_secs);
    let grace = Duration::from_secs(config.orphan_grace_secs);
    loop {
        tokio::time::sleep(interval).await;
        if config.abandoned_upload_secs > 0 {
            let age_ms = (config.abandoned_upload_secs as i64).saturating_mul(1000);
            match crate::collect::abort_abandoned_uploads(
                &state.hangar,
                &state.object_files,
                age_ms,
            )
            .await
            {
                Ok(0) => {}
                Ok(aborted) => tracing::info!(aborted, "aborted abandoned multipart uploads"),
                Err(error) => tracing::error!(%error, "aborting abandoned uploads failed"),
            }
        }
        match crate::collect::collect_object_files(&state.hangar, &state.object_files, grace).await
        {
            Ok(collected) => tracing::info!(
                kept = collected.kept,
                removed = collected.removed,
                "object file collection finished"
            ),
            Err(error) => tracing::error!(%error, "object file collection failed"),
        }
    }
}
