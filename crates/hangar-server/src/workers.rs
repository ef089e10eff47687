//! Background work: the task runner (image builds, stores, restores) and
//! the block collector. Tasks live in the repository with their progress,
//! so whatever a crash interrupted is picked up again, by this node at its
//! next start or by another node once the lease lapses.
//!
//! Several nodes may share one database: a task runs on the node that
//! claimed its lease (`[tasks] lease_secs`), which renews it every third
//! of the lease; a node whose lease was lost stops the task (see
//! `hangar_core::build`). One node at a time collects blocks, under the
//! "block-collector" lease.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hangar_core::build::{HeldLease, TaskOutcome};
use hangar_core::repo::LeaseHolder;
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

/// The lease of the block collector, in the same table as the tasks'.
pub const COLLECTOR_LEASE: &str = "block-collector";

pub fn spawn(state: Arc<AppState>) {
    let holder = LeaseHolder {
        node_id: node_id(&state.config),
        run_id: uuid::Uuid::new_v4().to_string(),
    };
    tracing::info!(
        node_id = holder.node_id,
        run_id = holder.run_id,
        "task leases"
    );
    state
        .hangar
        .set_block_grace_ms((state.config.blocks.gc_grace_secs as i64).saturating_mul(1000));
    let runner_state = state.clone();
    let runner_holder = holder.clone();
    tokio::spawn(async move { run_tasks(runner_state, runner_holder).await });
    if state.config.buckets.collect_interval_secs > 0 {
        let bucket_state = state.clone();
        tokio::spawn(async move { collect_bucket_files(bucket_state).await });
    }
    if state.config.blocks.gc_interval_secs > 0 {
        tokio::spawn(async move { collect_blocks(state, holder).await });
    }
}

/// This node's name in the leases: `[tasks] node_id`, else the UUID kept
/// in `<data_dir>/node-id` (created at the first start), so a restart on
/// the same data directory takes its old leases back at once. When that
/// file cannot be kept, a fresh UUID: the node's old leases then lapse
/// after `lease_secs` instead.
fn node_id(config: &crate::config::Config) -> String {
    if let Some(node_id) = &config.tasks.node_id {
        return node_id.clone();
    }
    match persisted_node_id(&config.data_dir.join("node-id")) {
        Ok(node_id) => node_id,
        Err(error) => {
            tracing::warn!(%error, "cannot keep a node ID in the data directory; using a new one");
            uuid::Uuid::new_v4().to_string()
        }
    }
}

fn persisted_node_id(path: &Path) -> std::io::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let text = text.trim();
        if !text.is_empty() {
            return Ok(text.to_owned());
        }
    }
    let node_id = uuid::Uuid::new_v4().to_string();
    // Written whole (temporary file, fsync, rename) so a crash never
    // leaves half an ID.
    let temporary = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(node_id.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(node_id)
}

/// Claims and runs tasks, at most `task_concurrency` at once, each in its
/// own tokio task (a long store must not hold up an image build) with its
/// own heartbeat. The claim decides which node runs a task; the local map
/// only keeps this node from running one task twice (possible only when a
/// stalled heartbeat let its lease lapse and this node claimed it again).
async fn run_tasks(state: Arc<AppState>, holder: LeaseHolder) {
    let limit = state.task_concurrency.max(1);
    let lease_ms = (state.config.tasks.lease_secs as i64).saturating_mul(1000);
    let permits = Arc::new(tokio::sync::Semaphore::new(limit));
    let running: Arc<std::sync::Mutex<HashMap<String, HeldLease>>> = Arc::default();
    loop {
        while let Ok(permit) = permits.clone().try_acquire_owned() {
            let asked = Instant::now();
            let held = match state.hangar.claim_task(&holder, lease_ms).await {
                Ok(Some(held)) => held,
                Ok(None) => break,
                Err(error) => {
                    tracing::error!(%error, "cannot claim tasks");
                    break;
                }
            };
            let Some(task_id) = held.task_id() else {
                continue;
            };
            let earlier = running
                .lock()
                .ok()
                .and_then(|mut running| running.insert(task_id.clone(), held.clone()));
            if let Some(earlier) = earlier {
                // Our earlier run's lease lapsed and the claim moved the
                // token on: stop that run and free the task.
                earlier.mark_lost();
                if let Ok(mut running) = running.lock() {
                    running.insert(task_id.clone(), earlier);
                }
                if let Err(error) = state.hangar.release_lease(&held).await {
                    tracing::warn!(task_id, %error, "cannot release a task lease");
                }
                // Claimed again at the next poll, once that run stopped.
                break;
            }
            let (state, running) = (state.clone(), running.clone());
            tokio::spawn(async move {
                let heartbeat = tokio::spawn(keep_lease(state.clone(), held.clone(), asked));
                match state.hangar.run_claimed_task(&held).await {
                    Ok(TaskOutcome::Finished) => {
                        if let Err(error) = state.hangar.release_lease(&held).await {
                            tracing::warn!(task_id, %error, "cannot release a task lease");
                        }
                    }
                    Ok(TaskOutcome::LeaseLost) => {
                        tracing::warn!(
                            task_id,
                            "task lease lost: stopped here, another node has it"
                        );
                    }
                    Err(error) => {
                        // The task stays unfinished; released, it is tried
                        // again on the next round, by whichever node claims it.
                        tracing::error!(task_id, %error, "task step failed");
                        if let Err(error) = state.hangar.release_lease(&held).await {
                            tracing::warn!(task_id, %error, "cannot release a task lease");
                        }
                    }
                }
                heartbeat.abort();
                if let Ok(mut running) = running.lock()
                    && running
                        .get(&task_id)
                        .is_some_and(|entry| entry.lease().token == held.lease().token)
                {
                    running.remove(&task_id);
                }
                drop(permit);
                state.waker.notify.notify_one();
            });
        }
        let _ = tokio::time::timeout(POLL, state.waker.notify.notified()).await;
    }
}

/// Renews `held` every third of its length until it is lost. `confirmed`
/// is when the claim (or the last successful renewal) was asked for: the
/// store's expiry is at least a lease after it. When renewals keep failing
/// (the database is unreachable) the lease is given up, and the work
/// stopped, two thirds of a lease after the last confirmation: before
/// another node could take it over (nodes' clocks in step).
async fn keep_lease(state: Arc<AppState>, held: HeldLease, mut confirmed: Instant) {
    let length = Duration::from_millis(held.lease_ms().max(3) as u64);
    let period = length / 3;
    loop {
        tokio::time::sleep(period).await;
        let asked = Instant::now();
        match state.hangar.renew_lease(&held).await {
            Ok(true) => confirmed = asked,
            Ok(false) => {
                tracing::warn!(lease = held.lease().name, "lease lost");
                return;
            }
            Err(error) => {
                if confirmed.elapsed() >= length * 2 / 3 {
                    tracing::error!(lease = held.lease().name, %error, "cannot renew a lease in time: giving it up");
                    held.mark_lost();
                    return;
                }
                tracing::warn!(lease = held.lease().name, %error, "cannot renew a lease; retrying");
            }
        }
    }
}

/// Collects blocks every `gc_interval_secs`, on one node at a time: the
/// node that takes the collector's lease (held for an interval, so the
/// nodes together collect about once per interval) collects; the others
/// skip that round. A writer on another node is kept safe by the time
/// fence (see `Hangar::refresh_if_stale`), not by this lease.
async fn collect_blocks(state: Arc<AppState>, holder: LeaseHolder) {
    let interval = Duration::from_secs(state.config.blocks.gc_interval_secs);
    let grace_ms = (state.config.blocks.gc_grace_secs as i64) * 1000;
    let lease_ms = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(3);
    loop {
        tokio::time::sleep(interval).await;
        let asked = Instant::now();
        let held = match state
            .hangar
            .acquire_lease(COLLECTOR_LEASE, &holder, lease_ms)
            .await
        {
            Ok(Some(held)) => held,
            Ok(None) => {
                tracing::debug!("another node collects blocks this round");
                continue;
            }
            Err(error) => {
                tracing::error!(%error, "cannot take the block collector's lease");
                continue;
            }
        };
        let heartbeat = tokio::spawn(keep_lease(state.clone(), held.clone(), asked));
        tokio::select! {
            collected = state.hangar.collect_blocks(grace_ms) => match collected {
                Ok((kept, deleted)) => tracing::info!(kept, deleted, "block collection finished"),
                Err(error) => tracing::error!(%error, "block collection failed"),
            },
            () = held.lost() => tracing::warn!("block collector's lease lost: collection stopped"),
        }
        heartbeat.abort();
        // Not released: the lease lapses an interval after the last
        // heartbeat, so other nodes skip this round.
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
