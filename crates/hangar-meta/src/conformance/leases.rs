//! Checks of leases: claiming tasks, heartbeats, release, expiry, fencing,
//! and the take-over of an earlier run's leases by the same node.

use hangar_core::model::{Task, TaskState};
use hangar_core::repo::{Lease, LeaseHolder, MetaStore, StoreError, task_lease_name};

use super::{expect_err, fresh_account, fresh_region, ok, unique};
use crate::conformance::records::{bare_task, fresh_task_id};

/// A node (and one run of it) no check has used.
pub fn fresh_holder() -> LeaseHolder {
    LeaseHolder {
        node_id: format!("node-{:x}", unique()),
        run_id: format!("run-{:x}", unique()),
    }
}

/// The same node, started again.
pub fn next_run(holder: &LeaseHolder) -> LeaseHolder {
    LeaseHolder {
        node_id: holder.node_id.clone(),
        run_id: format!("run-{:x}", unique()),
    }
}

/// A queued task created before any other check's (so a claim finds it
/// first while its lease is free).
pub fn earliest_task() -> Task {
    Task {
        created_ms: i64::MIN / 2 + (unique() % 1_000_000) as i64,
        ..bare_task(&fresh_task_id(), &fresh_region(), &fresh_account())
    }
}

const LEASE_MS: i64 = 30_000;
const NOW: i64 = 1_800_000_000_000;

/// What one claim returned, as (task ID, lease); `None` when nothing was
/// claimable.
async fn claim(store: &dyn MetaStore, holder: &LeaseHolder, now: i64) -> Option<(Task, Lease)> {
    ok(
        store.claim_task(holder, now, LEASE_MS).await,
        "claim a task",
    )
}

/// `claim_task` takes the oldest unfinished task whose lease is free, with
/// a growing fencing token; another node cannot claim it until it expires;
/// heartbeats extend it only for the current holder; a lost lease refuses
/// renewals and fenced writes; an earlier run of the same node yields at
/// once; a released lease is free; finished tasks are never claimed.
pub async fn check_task_leases(store: &dyn MetaStore) {
    let (a, b) = (fresh_holder(), fresh_holder());
    let task = earliest_task();
    ok(store.insert_task(&task).await, "insert a task");
    let name = task_lease_name(&task.task_id);

    // A claims it.
    let (claimed, lease_a) = claim(store, &a, NOW)
        .await
        .expect("conformance: claim_task must claim an unclaimed queued task");
    assert_eq!(
        claimed, task,
        "conformance: claim_task must return the oldest claimable task, as stored"
    );
    assert_eq!(lease_a.name, name, "conformance: a task's lease name");
    assert_eq!(
        lease_a.expires_ms,
        NOW + LEASE_MS,
        "conformance: lease expiry"
    );

    // B cannot take it while A's lease runs, nor just before it lapses.
    for now in [NOW, NOW + LEASE_MS - 1] {
        let other = claim(store, &b, now).await;
        assert!(
            other
                .as_ref()
                .is_none_or(|(t, _)| t.task_id != task.task_id),
            "conformance: claim_task must not hand out a task whose lease is held"
        );
    }

    // A's heartbeat extends it; B still cannot take it at the old expiry.
    let renewed = ok(
        store.renew_lease(&lease_a, NOW + 10_000, LEASE_MS).await,
        "renew a held lease",
    );
    assert_eq!(
        renewed,
        NOW + 10_000 + LEASE_MS,
        "conformance: renewed expiry"
    );
    let other = claim(store, &b, NOW + LEASE_MS).await;
    assert!(
        other
            .as_ref()
            .is_none_or(|(t, _)| t.task_id != task.task_id),
        "conformance: a renewed lease must hold until its new expiry"
    );

    // A's fenced write goes through while it holds the lease.
    let mut running = task.clone();
    running.state = TaskState::Running;
    running.progress = 10;
    running.revision = ok(
        store.update_task_fenced(&running, &lease_a).await,
        "fenced update by the holder",
    );
    assert_eq!(running.revision, task.revision + 1, "conformance: revision");

    // A's lease lapses; B takes the task over with a greater token, and
    // finds A's last write.
    let (taken, lease_b) = claim(store, &b, NOW + 10_000 + LEASE_MS)
        .await
        .expect("conformance: claim_task must claim a task whose lease expired");
    assert_eq!(
        taken.task_id, task.task_id,
        "conformance: expired task claimed"
    );
    assert_eq!(
        taken, running,
        "conformance: the claimed task must be the last one written"
    );
    assert!(
        lease_b.token > lease_a.token,
        "conformance: fencing tokens must grow ({} then {})",
        lease_a.token,
        lease_b.token
    );

    // A is fenced out: no renewal, no write, and its release changes nothing.
    expect_err(
        store.renew_lease(&lease_a, NOW + 50_000, LEASE_MS).await,
        StoreError::LeaseLost(name.clone()),
        "renewal of a lease taken over",
    );
    let mut stale = running.clone();
    stale.progress = 5;
    expect_err(
        store.update_task_fenced(&stale, &lease_a).await,
        StoreError::LeaseLost(name.clone()),
        "fenced update after the lease was taken over",
    );
    assert_eq!(
        ok(store.get_task(&task.task_id).await, "read the task"),
        Some(running.clone()),
        "conformance: a refused fenced update must write nothing"
    );
    ok(store.release_lease(&lease_a).await, "release a lost lease");
    let other = claim(store, &fresh_holder(), NOW + 10_000 + LEASE_MS).await;
    assert!(
        other
            .as_ref()
            .is_none_or(|(t, _)| t.task_id != task.task_id),
        "conformance: releasing a lost lease must not free the new holder's"
    );

    // B writes with its lease; the revision rule still applies.
    let mut by_b = running.clone();
    by_b.progress = 30;
    by_b.revision = ok(
        store.update_task_fenced(&by_b, &lease_b).await,
        "fenced update by the new holder",
    );
    expect_err(
        store.update_task_fenced(&running, &lease_b).await,
        StoreError::Conflict(task.task_id.clone()),
        "fenced update from a stale revision",
    );

    // B restarts: its new run takes the lease at once, before expiry.
    let b2 = next_run(&b);
    let (again, lease_b2) = claim(store, &b2, NOW + 10_000 + LEASE_MS + 1)
        .await
        .expect("conformance: a node's new run must take its earlier run's lease at once");
    assert_eq!(
        again.task_id, task.task_id,
        "conformance: same task resumed"
    );
    assert!(lease_b2.token > lease_b.token, "conformance: token grows");
    expect_err(
        store.update_task_fenced(&by_b, &lease_b).await,
        StoreError::LeaseLost(name.clone()),
        "fenced update by the node's earlier run",
    );
    // ... but the running run's lease is not taken by the same run again.
    let same = claim(store, &b2, NOW + 10_000 + LEASE_MS + 2).await;
    assert!(
        same.as_ref().is_none_or(|(t, _)| t.task_id != task.task_id),
        "conformance: a run must not claim a task it holds"
    );

    // Released: free for anyone at once, with a greater token.
    ok(store.release_lease(&lease_b2).await, "release");
    let (freed, lease_a2) = claim(store, &a, NOW + 10_000 + LEASE_MS + 3)
        .await
        .expect("conformance: a released lease must be claimable at once");
    assert_eq!(
        freed.task_id, task.task_id,
        "conformance: released task claimed"
    );
    assert!(
        lease_a2.token > lease_b2.token,
        "conformance: token grows after release"
    );

    // Finished: never claimed again, whatever its lease.
    let mut done = freed.clone();
    done.state = TaskState::Completed;
    done.progress = 100;
    ok(
        store.update_task_fenced(&done, &lease_a2).await,
        "fenced completion",
    );
    ok(store.release_lease(&lease_a2).await, "release");
    let after = claim(store, &fresh_holder(), NOW + 10 * LEASE_MS).await;
    assert!(
        after
            .as_ref()
            .is_none_or(|(t, _)| t.task_id != task.task_id),
        "conformance: claim_task must not claim a finished task"
    );
}

/// Named leases (the block collector's): one holder at a time, taken over
/// after expiry with a greater token, renewed and released only by the
/// current holder, the token kept across a release.
pub async fn check_named_leases(store: &dyn MetaStore) {
    let name = format!("conformance-{:x}", unique());
    let (a, b) = (fresh_holder(), fresh_holder());
    let first = ok(
        store.acquire_lease(&name, &a, NOW, LEASE_MS).await,
        "acquire",
    )
    .expect("conformance: acquire_lease must take a lease never taken");
    assert_eq!(
        ok(
            store.acquire_lease(&name, &b, NOW + 1, LEASE_MS).await,
            "acquire"
        ),
        None,
        "conformance: acquire_lease must refuse a held lease"
    );
    assert_eq!(
        ok(
            store.acquire_lease(&name, &a, NOW + 1, LEASE_MS).await,
            "acquire"
        ),
        None,
        "conformance: acquire_lease must refuse a lease its own run holds"
    );
    let second = ok(
        store
            .acquire_lease(&name, &b, NOW + LEASE_MS, LEASE_MS)
            .await,
        "acquire",
    )
    .expect("conformance: acquire_lease must take an expired lease");
    assert!(second.token > first.token, "conformance: token grows");
    expect_err(
        store.renew_lease(&first, NOW + LEASE_MS, LEASE_MS).await,
        StoreError::LeaseLost(name.clone()),
        "renewal by the former holder",
    );
    ok(
        store
            .renew_lease(&second, NOW + LEASE_MS + 5, LEASE_MS)
            .await,
        "renewal by the holder",
    );
    ok(store.release_lease(&second).await, "release");
    let third = ok(
        store
            .acquire_lease(&name, &a, NOW + LEASE_MS + 6, LEASE_MS)
            .await,
        "acquire",
    )
    .expect("conformance: acquire_lease must take a released lease");
    assert!(
        third.token > second.token,
        "conformance: the token must keep growing across a release"
    );
    ok(store.release_lease(&third).await, "release");
}

/// Several claimers at once (on one store or on several sharing one
/// database: pass them all) claim every task of a batch exactly once.
pub async fn check_concurrent_claims(stores: &[&dyn MetaStore]) {
    let tasks: Vec<Task> = (0..24).map(|_| earliest_task()).collect();
    for task in &tasks {
        ok(stores[0].insert_task(task).await, "insert a task");
    }
    let claimer = |index: usize| {
        let store = stores[index % stores.len()];
        async move {
            let holder = fresh_holder();
            let mut claimed = Vec::new();
            while let Some((task, lease)) = claim(store, &holder, NOW).await {
                claimed.push((task.task_id, lease));
            }
            claimed
        }
    };
    let (c0, c1, c2, c3, c4, c5, c6, c7) = tokio::join!(
        claimer(0),
        claimer(1),
        claimer(2),
        claimer(3),
        claimer(4),
        claimer(5),
        claimer(6),
        claimer(7)
    );
    let results = [c0, c1, c2, c3, c4, c5, c6, c7];
    let mut seen = std::collections::HashMap::new();
    for (task_id, lease) in results.into_iter().flatten() {
        if let Some(earlier) = seen.insert(task_id.clone(), lease) {
            panic!("conformance: task {task_id} claimed twice (first {earlier:?})");
        }
    }
    for task in &tasks {
        assert!(
            seen.contains_key(&task.task_id),
            "conformance: task {} never claimed",
            task.task_id
        );
    }
    // Finish them, so later claims in this store skip them.
    for task in &tasks {
        let lease = &seen[&task.task_id];
        let mut done = task.clone();
        done.state = TaskState::Completed;
        ok(stores[0].update_task_fenced(&done, lease).await, "finish");
        ok(stores[0].release_lease(lease).await, "release");
    }
}
