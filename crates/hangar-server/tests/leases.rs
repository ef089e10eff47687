//! Task leases across two nodes ("nodes" here: two `Hangar`s over one
//! metadata store and one block store, as two processes share PostgreSQL
//! and S3): a node whose lease was taken over is fenced out, whether it
//! finds out at its first write or in the middle of the work, and the task's
//! progress stays monotonic across the take-over.

use hangar_blocks::LocalBlockStore;
use hangar_core::build::TaskOutcome;
use hangar_core::clock::{Clock, ManualClock};
use hangar_core::model::{Bucket, Tag, Task, TaskState, TaskWork};
use hangar_core::repo::{LeaseHolder, MetaStore};
use hangar_core::transfer::{ImageTransfer, StoredImage};
use hangar_core::{Error, Hangar, Settings};
use hangar_meta::SqliteStore;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::Notify;

const NOW: i64 = 1_764_504_000_000;
const LEASE_MS: i64 = 1_000;

fn holder(name: &str) -> LeaseHolder {
    LeaseHolder {
        node_id: name.to_owned(),
        run_id: format!("{name}-run"),
    }
}

/// A store task's work that reports progress 40, waits until the test lets
/// it go on, then reports `then` and finishes.
struct Steps {
    reached: Notify,
    go_on: Notify,
    then: i64,
    pause: bool,
}

impl Steps {
    async fn run(&self, hangar: &Hangar, task: &mut Task) -> Result<(), Error> {
        hangar.report_task_progress(task, 40).await?;
        if self.pause {
            self.reached.notify_one();
            self.go_on.notified().await;
        }
        hangar.report_task_progress(task, self.then).await?;
        hangar.save_task(task).await?;
        Ok(())
    }
}

/// The trait is `#[async_trait]`; written out here (boxed futures) so this
/// test needs no extra crate.
type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

impl ImageTransfer for Steps {
    fn store<'s, 'h, 't, 'f>(&'s self, hangar: &'h Hangar, task: &'t mut Task) -> Boxed<'f, ()>
    where
        's: 'f,
        'h: 'f,
        't: 'f,
        Self: 'f,
    {
        Box::pin(self.run(hangar, task))
    }
    fn restore<'s, 'h, 't, 'f>(&'s self, _hangar: &'h Hangar, _task: &'t mut Task) -> Boxed<'f, ()>
    where
        's: 'f,
        'h: 'f,
        't: 'f,
        Self: 'f,
    {
        Box::pin(async { Err(Error::Internal("not used".into())) })
    }
    fn inspect<'s, 'b, 'k, 'f>(
        &'s self,
        _bucket: &'b Bucket,
        _key: &'k str,
    ) -> Boxed<'f, StoredImage>
    where
        's: 'f,
        'b: 'f,
        'k: 'f,
        Self: 'f,
    {
        Box::pin(async { Err(Error::Internal("not used".into())) })
    }
}

struct Nodes {
    store: Arc<SqliteStore>,
    clock: Arc<ManualClock>,
    a: Arc<Hangar>,
    b: Arc<Hangar>,
    _dir: tempfile::TempDir,
}

async fn two_nodes(a_work: Arc<Steps>, b_work: Arc<Steps>) -> Nodes {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("meta.sqlite"))
            .await
            .unwrap(),
    );
    let blocks = Arc::new(LocalBlockStore::open(&dir.path().join("blocks")).unwrap());
    let clock = Arc::new(ManualClock::at(NOW));
    let node = |work: Arc<Steps>| {
        let hangar = Hangar::new(
            store.clone(),
            blocks.clone(),
            clock.clone() as Arc<dyn Clock>,
            Settings::new("aws", vec!["us-east-1".into()]),
        );
        hangar.set_transfer(work);
        Arc::new(hangar)
    };
    Nodes {
        a: node(a_work),
        b: node(b_work),
        store,
        clock,
        _dir: dir,
    }
}

fn steps(pause: bool, then: i64) -> Arc<Steps> {
    Arc::new(Steps {
        reached: Notify::new(),
        go_on: Notify::new(),
        then,
        pause,
    })
}

async fn queue_store_task(store: &SqliteStore) -> Task {
    let task = Task {
        task_id: "store-ami-0123456789abcdef0".into(),
        region: "us-east-1".into(),
        owner_id: "111111111111".into(),
        state: TaskState::Queued,
        work: TaskWork::StoreImage {
            image_id: "ami-0123456789abcdef0".into(),
            bucket: "bucket".into(),
            object_key: "ami-0123456789abcdef0.bin".into(),
            object_tags: vec![Tag {
                key: "k".into(),
                value: "v".into(),
            }],
            upload_id: Some("upload-1".into()),
        },
        progress: 0,
        created_ms: NOW,
        updated_ms: NOW,
        attempts: 0,
        failure_reason: None,
        revision: 0,
    };
    store.insert_task(&task).await.unwrap();
    task
}

/// Node A claims the task but stalls before its first write; its lease
/// expires and node B takes the task over. A's run then writes nothing
/// (not even "running"), and B finishes the task.
#[tokio::test]
async fn a_runner_whose_lease_was_taken_over_writes_nothing() {
    let nodes = two_nodes(steps(false, 70), steps(false, 80)).await;
    let queued = queue_store_task(&nodes.store).await;
    let a = nodes
        .a
        .claim_task(&holder("a"), LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    assert!(
        nodes
            .b
            .claim_task(&holder("b"), LEASE_MS)
            .await
            .unwrap()
            .is_none(),
        "a held lease is not claimable"
    );
    nodes.clock.set(NOW + LEASE_MS);
    let b = nodes
        .b
        .claim_task(&holder("b"), LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    assert!(b.lease().token > a.lease().token);

    assert_eq!(
        nodes.a.run_claimed_task(&a).await.unwrap(),
        TaskOutcome::LeaseLost
    );
    assert!(a.is_lost());
    let after_a = nodes
        .store
        .get_task(&queued.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after_a, queued, "the fenced-out node wrote nothing");

    assert_eq!(
        nodes.b.run_claimed_task(&b).await.unwrap(),
        TaskOutcome::Finished
    );
    let done = nodes
        .store
        .get_task(&queued.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, TaskState::Completed);
    assert_eq!(done.progress, 100);
    assert_eq!(done.attempts, 1, "only B's run counts");
}

/// Node A is in the middle of the work (progress 40 recorded) when its
/// lease is taken over. Its next progress report is refused and its run
/// stops there, without reaching its failure path or the end; B resumes
/// and the recorded progress never goes back (B's own 30 stays 40).
#[tokio::test]
async fn a_runner_fenced_out_mid_task_stops_and_progress_stays_monotonic() {
    let a_work = steps(true, 90);
    let nodes = two_nodes(a_work.clone(), steps(false, 30)).await;
    let queued = queue_store_task(&nodes.store).await;
    let a = nodes
        .a
        .claim_task(&holder("a"), LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    let running_a = {
        let (hangar, a) = (nodes.a.clone(), a.clone());
        tokio::spawn(async move { hangar.run_claimed_task(&a).await })
    };
    a_work.reached.notified().await;
    let midway = nodes
        .store
        .get_task(&queued.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((midway.state, midway.progress), (TaskState::Running, 40));

    nodes.clock.set(NOW + LEASE_MS);
    let b = nodes
        .b
        .claim_task(&holder("b"), LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    a_work.go_on.notify_one();
    assert_eq!(running_a.await.unwrap().unwrap(), TaskOutcome::LeaseLost);
    let after_a = nodes
        .store
        .get_task(&queued.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after_a, midway,
        "A's report of 90 after losing its lease was refused"
    );

    assert_eq!(
        nodes.b.run_claimed_task(&b).await.unwrap(),
        TaskOutcome::Finished
    );
    let done = nodes
        .store
        .get_task(&queued.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.state, done.progress), (TaskState::Completed, 100));
    assert_eq!(done.attempts, 2);
}

/// The heartbeat's side: a lease marked lost (a renewal found it taken
/// over) stops the run even while the work is not writing.
#[tokio::test]
async fn a_lost_heartbeat_stops_the_run() {
    let a_work = steps(true, 90);
    let nodes = two_nodes(a_work.clone(), steps(false, 30)).await;
    let queued = queue_store_task(&nodes.store).await;
    let a = nodes
        .a
        .claim_task(&holder("a"), LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    let running_a = {
        let (hangar, a) = (nodes.a.clone(), a.clone());
        tokio::spawn(async move { hangar.run_claimed_task(&a).await })
    };
    a_work.reached.notified().await;
    assert!(nodes.a.renew_lease(&a).await.unwrap(), "still held");
    nodes.clock.set(NOW + 10 * LEASE_MS);
    let _b = nodes
        .b
        .claim_task(&holder("b"), LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !nodes.a.renew_lease(&a).await.unwrap(),
        "renewal finds it lost"
    );
    // The work is still parked (never let go on), yet the run ends.
    assert_eq!(running_a.await.unwrap().unwrap(), TaskOutcome::LeaseLost);
    let after = nodes
        .store
        .get_task(&queued.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.progress, 40);
}
