//! Checks of snapshots, volumes, instances and tasks, and of images stored
//! with their task.
//!
//! Every kind of record follows the same rules (insert refuses a duplicate
//! ID, update follows the revision rule of images, listings narrow by region
//! and owners and order by ID), so the rules are checked once, generically,
//! over a [`Kind`], and each kind's public checks run them.

use std::fmt::Debug;

use async_trait::async_trait;
use hangar_core::model::{
    Image, ImageState, Instance, InstanceBlockDevice, InstanceState, Snapshot, SnapshotCopyPlan,
    SnapshotState, StateReason, Tag, Task, TaskState, TaskWork, Volume, VolumeAttachment,
    VolumeState,
};
use hangar_core::repo::{MetaStore, RecordQuery, StoreError};

use super::{
    expect_err, fresh_account, fresh_image_id, fresh_region, hashes_with_fresh_prefix, ok,
    sample_image, unique,
};

// ---------------------------------------------------------------------------
// Sample records and fresh IDs.

/// A snapshot ID no check has used.
pub fn fresh_snapshot_id() -> String {
    format!("snap-{:017x}", unique())
}

/// A volume ID no check has used.
pub fn fresh_volume_id() -> String {
    format!("vol-{:017x}", unique())
}

/// An instance ID no check has used.
pub fn fresh_instance_id() -> String {
    format!("i-{:017x}", unique())
}

/// A task ID no check has used.
pub fn fresh_task_id() -> String {
    format!("task-{:017x}", unique())
}

/// Tags that exercise the encoding: an empty value, quotes, non-ASCII text
/// and a newline.
fn sample_tags(name: &str) -> Vec<Tag> {
    vec![
        Tag {
            key: "Name".to_owned(),
            value: name.to_owned(),
        },
        Tag {
            key: "empty".to_owned(),
            value: String::new(),
        },
        Tag {
            key: "quoting".to_owned(),
            value: "it's \"quoted\", ünïcødé ✈ and\na newline".to_owned(),
        },
    ]
}

/// A completed snapshot with every optional field set; revision 0.
pub fn sample_snapshot(id: &str, region: &str, owner: &str) -> Snapshot {
    Snapshot {
        snapshot_id: id.to_owned(),
        region: region.to_owned(),
        owner_id: owner.to_owned(),
        owner_alias: Some("hangar-conformance".to_owned()),
        volume_id: "vol-0123456789abcdef0".to_owned(),
        volume_size_gib: 8,
        state: SnapshotState::Completed,
        state_message: Some("copied from \"elsewhere\" ✈".to_owned()),
        progress: 100,
        start_ms: 1_700_000_000_123,
        completion_ms: Some(1_700_000_060_456),
        description: Some(format!("{id}: made by the conformance suite")),
        encrypted: true,
        kms_key_id: Some(
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                .to_owned(),
        ),
        tags: sample_tags(id),
        parent_snapshot_id: Some("snap-0fedcba9876543210".to_owned()),
        source_snapshot_id: Some("snap-00112233445566778".to_owned()),
        source_region: Some("eu-west-1".to_owned()),
        client_token: Some("start-snapshot-token".to_owned()),
        timeout_ms: Some(1_700_000_600_000),
        create_volume_permissions: vec!["123456789012".to_owned(), "210987654321".to_owned()],
        revision: 0,
    }
}

/// The sample snapshot with every optional field empty.
pub fn bare_snapshot(id: &str, region: &str, owner: &str) -> Snapshot {
    Snapshot {
        owner_alias: None,
        state: SnapshotState::Pending,
        state_message: None,
        progress: 0,
        completion_ms: None,
        description: None,
        encrypted: false,
        kms_key_id: None,
        tags: Vec::new(),
        parent_snapshot_id: None,
        source_snapshot_id: None,
        source_region: None,
        client_token: None,
        timeout_ms: None,
        create_volume_permissions: Vec::new(),
        ..sample_snapshot(id, region, owner)
    }
}

/// An attached volume with every optional field set; revision 0.
pub fn sample_volume(id: &str, region: &str, owner: &str) -> Volume {
    Volume {
        volume_id: id.to_owned(),
        region: region.to_owned(),
        owner_id: owner.to_owned(),
        availability_zone: format!("{region}a"),
        size_gib: 30,
        snapshot_id: Some("snap-0123456789abcdef0".to_owned()),
        volume_type: "io2".to_owned(),
        iops: Some(6000),
        throughput: Some(250),
        encrypted: true,
        kms_key_id: Some(
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                .to_owned(),
        ),
        state: VolumeState::InUse,
        create_ms: 1_700_000_000_123,
        attachment: Some(VolumeAttachment {
            instance_id: "i-0123456789abcdef0".to_owned(),
            device: "/dev/sda1".to_owned(),
            attach_ms: 1_700_000_001_000,
            delete_on_termination: true,
        }),
        tags: sample_tags(id),
        revision: 0,
    }
}

/// The sample volume with every optional field empty.
pub fn bare_volume(id: &str, region: &str, owner: &str) -> Volume {
    Volume {
        snapshot_id: None,
        volume_type: "gp2".to_owned(),
        iops: None,
        throughput: None,
        encrypted: false,
        kms_key_id: None,
        state: VolumeState::Creating,
        attachment: None,
        tags: Vec::new(),
        ..sample_volume(id, region, owner)
    }
}

/// A pending instance due to settle into `running`, with two volumes and
/// every optional field set; revision 0.
pub fn sample_instance(id: &str, region: &str, owner: &str) -> Instance {
    Instance {
        instance_id: id.to_owned(),
        region: region.to_owned(),
        owner_id: owner.to_owned(),
        reservation_id: "r-0123456789abcdef0".to_owned(),
        image_id: "ami-0123456789abcdef0".to_owned(),
        instance_type: "t3.micro".to_owned(),
        availability_zone: format!("{region}b"),
        architecture: "x86_64".to_owned(),
        virtualization_type: "hvm".to_owned(),
        hypervisor: "xen".to_owned(),
        platform_details: "Linux/UNIX".to_owned(),
        root_device_name: Some("/dev/xvda".to_owned()),
        root_device_type: "ebs".to_owned(),
        block_devices: vec![
            InstanceBlockDevice {
                device_name: "/dev/xvda".to_owned(),
                volume_id: "vol-0123456789abcdef0".to_owned(),
                delete_on_termination: true,
                attach_ms: 1_700_000_000_500,
            },
            InstanceBlockDevice {
                device_name: "/dev/sdf".to_owned(),
                volume_id: "vol-0fedcba9876543210".to_owned(),
                delete_on_termination: false,
                attach_ms: 1_700_000_000_600,
            },
        ],
        state: InstanceState::Pending,
        settles_to: Some(InstanceState::Running),
        settles_at_ms: Some(1_700_000_010_000),
        state_reason: Some(StateReason {
            code: "pending".to_owned(),
            message: "pending".to_owned(),
        }),
        state_transition_reason: "User initiated (2023-11-14 22:13:20 GMT)".to_owned(),
        launch_ms: 1_700_000_000_123,
        ami_launch_index: 2,
        private_ip_address: "10.0.0.12".to_owned(),
        client_token: Some("run-instances-token".to_owned()),
        tags: sample_tags(id),
        revision: 0,
    }
}

/// The sample instance with every optional field empty.
pub fn bare_instance(id: &str, region: &str, owner: &str) -> Instance {
    Instance {
        root_device_name: None,
        block_devices: Vec::new(),
        state: InstanceState::Running,
        settles_to: None,
        settles_at_ms: None,
        state_reason: None,
        state_transition_reason: String::new(),
        client_token: None,
        tags: Vec::new(),
        ..sample_instance(id, region, owner)
    }
}

/// A queued task that builds `image_id` from two snapshots, with every
/// optional field set; revision 0.
pub fn sample_task(id: &str, region: &str, owner: &str, image_id: &str) -> Task {
    Task {
        task_id: id.to_owned(),
        region: region.to_owned(),
        owner_id: owner.to_owned(),
        state: TaskState::Queued,
        work: TaskWork::BuildImage {
            image_id: image_id.to_owned(),
            snapshots: vec![
                SnapshotCopyPlan {
                    source_map_id: "vol-0123456789abcdef0".to_owned(),
                    source_snapshot_id: Some("snap-0123456789abcdef0".to_owned()),
                    source_volume_id: Some("vol-0123456789abcdef0".to_owned()),
                    new_snapshot_id: "snap-0aaaaaaaaaaaaaaaa".to_owned(),
                    device_name: "/dev/xvda".to_owned(),
                    volume_size_gib: 8,
                    done: true,
                },
                SnapshotCopyPlan {
                    source_map_id: "snap-0fedcba9876543210".to_owned(),
                    source_snapshot_id: None,
                    source_volume_id: None,
                    new_snapshot_id: "snap-0bbbbbbbbbbbbbbbb".to_owned(),
                    device_name: "/dev/sdf".to_owned(),
                    volume_size_gib: 100,
                    done: false,
                },
            ],
            snapshot_tags: sample_tags(id),
            description: Some("Created by CreateImage(i-0123456789abcdef0)".to_owned()),
        },
        progress: 40,
        created_ms: 1_700_000_000_123,
        updated_ms: 1_700_000_005_000,
        attempts: 2,
        failure_reason: Some("block store unavailable; retried".to_owned()),
        revision: 0,
    }
}

/// The sample task with every optional field empty.
pub fn bare_task(id: &str, region: &str, owner: &str) -> Task {
    Task {
        work: TaskWork::BuildImage {
            image_id: fresh_image_id(),
            snapshots: Vec::new(),
            snapshot_tags: Vec::new(),
            description: None,
        },
        progress: 0,
        attempts: 0,
        failure_reason: None,
        ..sample_task(id, region, owner, "")
    }
}

// ---------------------------------------------------------------------------
// The generic rules.

/// A kind of record, as the generic checks handle it.
#[async_trait]
trait Kind: Clone + Debug + PartialEq + Send + Sync + 'static {
    /// Names the kind in messages.
    const NAME: &'static str;
    fn fresh_id() -> String;
    fn sample(id: &str, region: &str, owner: &str) -> Self;
    fn bare(id: &str, region: &str, owner: &str) -> Self;
    /// Changes fields other than the ID, region, owner and revision, as the
    /// `generation`th edit.
    fn edit(&mut self, generation: i64);
    fn id(&self) -> &str;
    fn revision(&self) -> i64;
    fn set_revision(&mut self, revision: i64);
    async fn insert(&self, store: &dyn MetaStore) -> Result<(), StoreError>;
    async fn update(&self, store: &dyn MetaStore) -> Result<i64, StoreError>;
    async fn get(store: &dyn MetaStore, id: &str) -> Result<Option<Self>, StoreError>;
}

/// A kind with a listing.
#[async_trait]
trait Listed: Kind {
    async fn list(store: &dyn MetaStore, query: &RecordQuery) -> Result<Vec<Self>, StoreError>;
}

/// A kind whose records own a block map, and can be deleted.
#[async_trait]
trait Deleted: Kind {
    async fn delete(store: &dyn MetaStore, id: &str) -> Result<bool, StoreError>;
}

#[async_trait]
impl Kind for Snapshot {
    const NAME: &'static str = "snapshot";
    fn fresh_id() -> String {
        fresh_snapshot_id()
    }
    fn sample(id: &str, region: &str, owner: &str) -> Self {
        sample_snapshot(id, region, owner)
    }
    fn bare(id: &str, region: &str, owner: &str) -> Self {
        bare_snapshot(id, region, owner)
    }
    fn edit(&mut self, generation: i64) {
        self.state = SnapshotState::Error;
        self.state_message = Some(format!("edit {generation}"));
        self.progress = generation;
        self.tags.pop();
        self.create_volume_permissions
            .push(format!("{generation:012}"));
    }
    fn id(&self) -> &str {
        &self.snapshot_id
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn set_revision(&mut self, revision: i64) {
        self.revision = revision;
    }
    async fn insert(&self, store: &dyn MetaStore) -> Result<(), StoreError> {
        store.insert_snapshot(self).await
    }
    async fn update(&self, store: &dyn MetaStore) -> Result<i64, StoreError> {
        store.update_snapshot(self).await
    }
    async fn get(store: &dyn MetaStore, id: &str) -> Result<Option<Self>, StoreError> {
        store.get_snapshot(id).await
    }
}

#[async_trait]
impl Listed for Snapshot {
    async fn list(store: &dyn MetaStore, query: &RecordQuery) -> Result<Vec<Self>, StoreError> {
        store.list_snapshots(query).await
    }
}

#[async_trait]
impl Deleted for Snapshot {
    async fn delete(store: &dyn MetaStore, id: &str) -> Result<bool, StoreError> {
        store.delete_snapshot(id).await
    }
}

#[async_trait]
impl Kind for Volume {
    const NAME: &'static str = "volume";
    fn fresh_id() -> String {
        fresh_volume_id()
    }
    fn sample(id: &str, region: &str, owner: &str) -> Self {
        sample_volume(id, region, owner)
    }
    fn bare(id: &str, region: &str, owner: &str) -> Self {
        bare_volume(id, region, owner)
    }
    fn edit(&mut self, generation: i64) {
        self.state = VolumeState::Available;
        self.attachment = None;
        self.size_gib += generation;
        self.tags.push(Tag {
            key: format!("edit-{generation}"),
            value: String::new(),
        });
    }
    fn id(&self) -> &str {
        &self.volume_id
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn set_revision(&mut self, revision: i64) {
        self.revision = revision;
    }
    async fn insert(&self, store: &dyn MetaStore) -> Result<(), StoreError> {
        store.insert_volume(self).await
    }
    async fn update(&self, store: &dyn MetaStore) -> Result<i64, StoreError> {
        store.update_volume(self).await
    }
    async fn get(store: &dyn MetaStore, id: &str) -> Result<Option<Self>, StoreError> {
        store.get_volume(id).await
    }
}

#[async_trait]
impl Listed for Volume {
    async fn list(store: &dyn MetaStore, query: &RecordQuery) -> Result<Vec<Self>, StoreError> {
        store.list_volumes(query).await
    }
}

#[async_trait]
impl Deleted for Volume {
    async fn delete(store: &dyn MetaStore, id: &str) -> Result<bool, StoreError> {
        store.delete_volume(id).await
    }
}

#[async_trait]
impl Kind for Instance {
    const NAME: &'static str = "instance";
    fn fresh_id() -> String {
        fresh_instance_id()
    }
    fn sample(id: &str, region: &str, owner: &str) -> Self {
        sample_instance(id, region, owner)
    }
    fn bare(id: &str, region: &str, owner: &str) -> Self {
        bare_instance(id, region, owner)
    }
    fn edit(&mut self, generation: i64) {
        self.state = InstanceState::Stopping;
        self.settles_to = Some(InstanceState::Stopped);
        self.settles_at_ms = Some(1_700_000_100_000 + generation);
        self.state_transition_reason = format!("edit {generation}");
        self.block_devices.truncate(1);
    }
    fn id(&self) -> &str {
        &self.instance_id
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn set_revision(&mut self, revision: i64) {
        self.revision = revision;
    }
    async fn insert(&self, store: &dyn MetaStore) -> Result<(), StoreError> {
        store.insert_instance(self).await
    }
    async fn update(&self, store: &dyn MetaStore) -> Result<i64, StoreError> {
        store.update_instance(self).await
    }
    async fn get(store: &dyn MetaStore, id: &str) -> Result<Option<Self>, StoreError> {
        store.get_instance(id).await
    }
}

#[async_trait]
impl Listed for Instance {
    async fn list(store: &dyn MetaStore, query: &RecordQuery) -> Result<Vec<Self>, StoreError> {
        store.list_instances(query).await
    }
}

#[async_trait]
impl Kind for Task {
    const NAME: &'static str = "task";
    fn fresh_id() -> String {
        fresh_task_id()
    }
    fn sample(id: &str, region: &str, owner: &str) -> Self {
        sample_task(id, region, owner, &fresh_image_id())
    }
    fn bare(id: &str, region: &str, owner: &str) -> Self {
        bare_task(id, region, owner)
    }
    fn edit(&mut self, generation: i64) {
        self.state = TaskState::Running;
        self.progress = (self.progress + generation).min(100);
        self.updated_ms += generation;
        self.attempts += 1;
        self.failure_reason = None;
    }
    fn id(&self) -> &str {
        &self.task_id
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn set_revision(&mut self, revision: i64) {
        self.revision = revision;
    }
    async fn insert(&self, store: &dyn MetaStore) -> Result<(), StoreError> {
        store.insert_task(self).await
    }
    async fn update(&self, store: &dyn MetaStore) -> Result<i64, StoreError> {
        store.update_task(self).await
    }
    async fn get(store: &dyn MetaStore, id: &str) -> Result<Option<Self>, StoreError> {
        store.get_task(id).await
    }
}

/// A fully populated record and a bare one read back equal; an unknown ID
/// reads as `None`; a second record with a stored ID is refused with
/// `DuplicateId` and leaves the first as it was.
async fn roundtrip<T: Kind>(store: &dyn MetaStore) {
    let name = T::NAME;
    let full = T::sample(&T::fresh_id(), &fresh_region(), &fresh_account());
    ok(
        full.insert(store).await,
        &format!("insert a fully populated {name}"),
    );
    let got = ok(T::get(store, full.id()).await, &format!("get the {name}"));
    assert_eq!(
        got.as_ref(),
        Some(&full),
        "conformance: a fully populated {name} must read back equal"
    );

    let bare = T::bare(&T::fresh_id(), &fresh_region(), &fresh_account());
    ok(bare.insert(store).await, &format!("insert a bare {name}"));
    let got = ok(
        T::get(store, bare.id()).await,
        &format!("get the bare {name}"),
    );
    assert_eq!(
        got.as_ref(),
        Some(&bare),
        "conformance: a {name} with no optional field set must read back equal"
    );

    let got = ok(
        T::get(store, &T::fresh_id()).await,
        &format!("get an unknown {name}"),
    );
    assert_eq!(
        got, None,
        "conformance: an unknown {name} ID must read as None"
    );

    let mut second = T::sample(full.id(), &fresh_region(), &fresh_account());
    second.edit(1);
    expect_err(
        second.insert(store).await,
        StoreError::DuplicateId(full.id().to_owned()),
        &format!("insert a second {name} with the same ID"),
    );
    let got = ok(
        T::get(store, full.id()).await,
        &format!("get the first {name}"),
    );
    assert_eq!(
        got.as_ref(),
        Some(&full),
        "conformance: a refused duplicate {name} must leave the first untouched"
    );
}

/// Insert keeps the record's revision; update replaces the record, returns
/// `revision + 1` and stores it; an update from a stale or future revision,
/// or of a record never stored, is refused with `Conflict` and changes
/// nothing.
async fn revisions<T: Kind>(store: &dyn MetaStore) {
    let name = T::NAME;
    let mut record = T::sample(&T::fresh_id(), &fresh_region(), &fresh_account());
    record.set_revision(7);
    ok(
        record.insert(store).await,
        &format!("insert a {name} at revision 7"),
    );
    let got = ok(T::get(store, record.id()).await, &format!("get the {name}"));
    assert_eq!(
        got.as_ref().map(T::revision),
        Some(7),
        "conformance: insert must keep the {name}'s revision"
    );

    let mut changed = record.clone();
    changed.edit(1);
    let revision = ok(changed.update(store).await, &format!("update the {name}"));
    assert_eq!(
        revision, 8,
        "conformance: updating a {name} must return revision + 1"
    );
    changed.set_revision(8);
    let got = ok(T::get(store, record.id()).await, &format!("get the {name}"));
    assert_eq!(
        got.as_ref(),
        Some(&changed),
        "conformance: an updated {name} must read back as written, with the new revision"
    );

    changed.edit(2);
    let revision = ok(
        changed.update(store).await,
        &format!("update the {name} again from the new revision"),
    );
    assert_eq!(
        revision, 9,
        "conformance: updating a {name} must return revision + 1"
    );
    changed.set_revision(9);

    let mut stale = record.clone();
    stale.edit(3);
    expect_err(
        stale.update(store).await,
        StoreError::Conflict(record.id().to_owned()),
        &format!("update the {name} from the stale revision 7"),
    );
    stale.set_revision(20);
    expect_err(
        stale.update(store).await,
        StoreError::Conflict(record.id().to_owned()),
        &format!("update the {name} from a revision the store never had"),
    );
    let got = ok(T::get(store, record.id()).await, &format!("get the {name}"));
    assert_eq!(
        got.as_ref(),
        Some(&changed),
        "conformance: refused {name} updates must leave the last accepted one in place"
    );

    let unknown = T::sample(&T::fresh_id(), &fresh_region(), &fresh_account());
    expect_err(
        unknown.update(store).await,
        StoreError::Conflict(unknown.id().to_owned()),
        &format!("update a {name} that was never stored"),
    );
    let got = ok(T::get(store, unknown.id()).await, "get it");
    assert_eq!(
        got, None,
        "conformance: updating an unknown {name} must not create it"
    );
}

/// Listings narrow by region (any region when unset) and owner IDs (none
/// match an empty list), return whole records, and order by ID.
async fn listing<T: Listed>(store: &dyn MetaStore) {
    let name = T::NAME;
    let (region, other_region) = (fresh_region(), fresh_region());
    let (first, second, third) = (fresh_account(), fresh_account(), fresh_account());
    let mut ids: Vec<String> = (0..4).map(|_| T::fresh_id()).collect();
    ids.sort();
    // Assigned out of ID order and inserted in reverse, so an engine that
    // returns rows in insertion order fails.
    let a = T::sample(&ids[2], &region, &first);
    let b = T::bare(&ids[0], &region, &second);
    let c = T::sample(&ids[3], &region, &third);
    let d = T::sample(&ids[1], &other_region, &first);
    for record in [&d, &c, &b, &a] {
        ok(
            record.insert(store).await,
            &format!("insert a {name} to list"),
        );
    }

    let query = |region: Option<&String>, owners: Option<&[&String]>| RecordQuery {
        region: region.cloned(),
        owner_ids: owners.map(|owners| owners.iter().map(|owner| (*owner).clone()).collect()),
    };
    let cases: Vec<(&str, RecordQuery, Vec<&T>)> = vec![
        ("the region", query(Some(&region), None), vec![&a, &b, &c]),
        (
            "one owner in the region",
            query(Some(&region), Some(&[&first])),
            vec![&a],
        ),
        (
            "two owners in the region",
            query(Some(&region), Some(&[&second, &first])),
            vec![&a, &b],
        ),
        (
            "no owner in the region",
            query(Some(&region), Some(&[])),
            vec![],
        ),
        (
            "the other region",
            query(Some(&other_region), None),
            vec![&d],
        ),
        (
            "one owner in every region",
            query(None, Some(&[&first])),
            vec![&a, &d],
        ),
        (
            "a region with nothing",
            query(Some(&fresh_region()), None),
            vec![],
        ),
    ];
    for (what, query, mut expected) in cases {
        let listed = ok(
            T::list(store, &query).await,
            &format!("list {name}s: {what}"),
        );
        expected.sort_by(|x, y| x.id().cmp(y.id()));
        let expected: Vec<T> = expected.into_iter().cloned().collect();
        assert_eq!(
            listed, expected,
            "conformance: listing {name}s of {what} ({query:?}) must return these whole \
             records, ordered by ID"
        );
    }

    let everything = ok(
        T::list(store, &RecordQuery::default()).await,
        &format!("list every {name}"),
    );
    assert!(
        everything
            .windows(2)
            .all(|pair| pair[0].id() < pair[1].id()),
        "conformance: listing every {name} must order by ID, each once"
    );
    for record in [&a, &b, &c, &d] {
        assert!(
            everything.contains(record),
            "conformance: listing every {name} must include {}",
            record.id()
        );
    }
}

/// Deleting a record removes it and its block map, and no other; it reports
/// whether the record existed.
async fn deletion<T: Deleted>(store: &dyn MetaStore) {
    let name = T::NAME;
    let (region, owner) = (fresh_region(), fresh_account());
    let doomed = T::sample(&T::fresh_id(), &region, &owner);
    let kept = T::sample(&T::fresh_id(), &region, &owner);
    let hashes = hashes_with_fresh_prefix(3);
    for record in [&doomed, &kept] {
        ok(record.insert(store).await, &format!("insert a {name}"));
        for (index, hash) in hashes.iter().enumerate() {
            ok(
                store.put_block(record.id(), index as i64, hash).await,
                &format!("put a block in the {name}'s map"),
            );
        }
    }

    let existed = ok(
        T::delete(store, doomed.id()).await,
        &format!("delete a {name}"),
    );
    assert!(
        existed,
        "conformance: deleting a stored {name} must report that it existed"
    );
    let got = ok(
        T::get(store, doomed.id()).await,
        &format!("get the deleted {name}"),
    );
    assert_eq!(got, None, "conformance: a deleted {name} must be gone");
    let count = ok(
        store.count_blocks(doomed.id()).await,
        "count the deleted map",
    );
    assert_eq!(
        count, 0,
        "conformance: deleting a {name} must delete its block map"
    );
    let got = ok(store.get_block(doomed.id(), 0).await, "get a deleted block");
    assert_eq!(
        got, None,
        "conformance: deleting a {name} must delete its block map"
    );

    let got = ok(
        T::get(store, kept.id()).await,
        &format!("get the other {name}"),
    );
    assert_eq!(
        got.as_ref(),
        Some(&kept),
        "conformance: deleting a {name} must leave other {name}s alone"
    );
    let count = ok(store.count_blocks(kept.id()).await, "count the other map");
    assert_eq!(
        count, 3,
        "conformance: deleting a {name} must leave other maps alone"
    );

    let existed = ok(
        T::delete(store, doomed.id()).await,
        &format!("delete the {name} again"),
    );
    assert!(
        !existed,
        "conformance: deleting a {name} that is gone must report that it did not exist"
    );
    let existed = ok(
        T::delete(store, &T::fresh_id()).await,
        &format!("delete an unknown {name}"),
    );
    assert!(
        !existed,
        "conformance: deleting an unknown {name} must report that it did not exist"
    );
}

// ---------------------------------------------------------------------------
// The public checks.

/// Snapshots store and read back whole; duplicates are refused.
pub async fn check_snapshot_roundtrip(store: &dyn MetaStore) {
    roundtrip::<Snapshot>(store).await;
}

/// `update_snapshot` follows the revision rule.
pub async fn check_snapshot_revisions(store: &dyn MetaStore) {
    revisions::<Snapshot>(store).await;
}

/// `list_snapshots` narrows by region and owners, ordered by ID.
pub async fn check_snapshot_listing(store: &dyn MetaStore) {
    listing::<Snapshot>(store).await;
}

/// `delete_snapshot` removes the record and its block map.
pub async fn check_snapshot_delete(store: &dyn MetaStore) {
    deletion::<Snapshot>(store).await;
}

/// Volumes store and read back whole; duplicates are refused.
pub async fn check_volume_roundtrip(store: &dyn MetaStore) {
    roundtrip::<Volume>(store).await;
}

/// `update_volume` follows the revision rule.
pub async fn check_volume_revisions(store: &dyn MetaStore) {
    revisions::<Volume>(store).await;
}

/// `list_volumes` narrows by region and owners, ordered by ID.
pub async fn check_volume_listing(store: &dyn MetaStore) {
    listing::<Volume>(store).await;
}

/// `delete_volume` removes the record and its block map.
pub async fn check_volume_delete(store: &dyn MetaStore) {
    deletion::<Volume>(store).await;
}

/// Instances store and read back whole; duplicates are refused.
pub async fn check_instance_roundtrip(store: &dyn MetaStore) {
    roundtrip::<Instance>(store).await;
}

/// `update_instance` follows the revision rule.
pub async fn check_instance_revisions(store: &dyn MetaStore) {
    revisions::<Instance>(store).await;
}

/// `list_instances` narrows by region and owners, ordered by ID.
pub async fn check_instance_listing(store: &dyn MetaStore) {
    listing::<Instance>(store).await;
}

/// Tasks store and read back whole; duplicates are refused.
pub async fn check_task_roundtrip(store: &dyn MetaStore) {
    roundtrip::<Task>(store).await;
}

/// `update_task` follows the revision rule.
pub async fn check_task_revisions(store: &dyn MetaStore) {
    revisions::<Task>(store).await;
}

/// `list_unfinished_tasks` returns the queued and running tasks, oldest
/// first, and follows their state through updates.
pub async fn check_unfinished_tasks(store: &dyn MetaStore) {
    let (region, owner) = (fresh_region(), fresh_account());
    let task = |created_ms: i64, state: TaskState| Task {
        state,
        created_ms,
        updated_ms: created_ms,
        ..sample_task(&fresh_task_id(), &region, &owner, &fresh_image_id())
    };
    let oldest = task(1_000, TaskState::Running);
    let middle = task(2_000, TaskState::Queued);
    let newest = task(3_000, TaskState::Queued);
    let completed = task(500, TaskState::Completed);
    let failed = task(1_500, TaskState::Failed);
    // Inserted out of age order, and with IDs unrelated to age.
    for task in [&newest, &completed, &oldest, &failed, &middle] {
        ok(store.insert_task(task).await, "insert a task");
    }
    let ours = |listed: &[Task]| -> Vec<String> {
        let mine = [&oldest, &middle, &newest, &completed, &failed].map(|t| t.task_id.clone());
        listed
            .iter()
            .filter(|task| mine.contains(&task.task_id))
            .map(|task| task.task_id.clone())
            .collect()
    };
    let check_all_unfinished = |listed: &[Task]| {
        assert!(
            listed.iter().all(|task| !task.state.is_finished()),
            "conformance: list_unfinished_tasks must return only queued and running tasks"
        );
        assert!(
            listed
                .windows(2)
                .all(|pair| pair[0].created_ms <= pair[1].created_ms),
            "conformance: list_unfinished_tasks must return the oldest first"
        );
    };

    let listed = ok(store.list_unfinished_tasks().await, "list unfinished tasks");
    check_all_unfinished(&listed);
    assert_eq!(
        ours(&listed),
        [&oldest, &middle, &newest].map(|t| t.task_id.clone()),
        "conformance: list_unfinished_tasks must return the queued and running tasks, oldest first"
    );
    let got = listed
        .iter()
        .find(|task| task.task_id == middle.task_id)
        .expect("listed");
    assert_eq!(
        got, &middle,
        "conformance: list_unfinished_tasks must return whole records"
    );

    // The oldest completes; the middle one starts running; a failed one is
    // retried.
    let done = Task {
        state: TaskState::Completed,
        progress: 100,
        ..oldest.clone()
    };
    ok(store.update_task(&done).await, "complete the oldest task");
    let running = Task {
        state: TaskState::Running,
        ..middle.clone()
    };
    ok(store.update_task(&running).await, "run the middle task");
    let retried = Task {
        state: TaskState::Queued,
        ..failed.clone()
    };
    ok(store.update_task(&retried).await, "retry the failed task");

    let listed = ok(
        store.list_unfinished_tasks().await,
        "list unfinished tasks after updates",
    );
    check_all_unfinished(&listed);
    assert_eq!(
        ours(&listed),
        [&failed, &middle, &newest].map(|t| t.task_id.clone()),
        "conformance: list_unfinished_tasks must follow states changed by update_task"
    );
    let got = listed
        .iter()
        .find(|task| task.task_id == middle.task_id)
        .expect("listed");
    assert_eq!(
        got,
        &Task {
            revision: 1,
            ..running
        },
        "conformance: list_unfinished_tasks must return the updated record"
    );
}

/// `insert_image_with_task` stores both records, or, when the image's name
/// or ID or the task's ID is taken, neither.
pub async fn check_insert_image_with_task(store: &dyn MetaStore) {
    let (region, owner) = (fresh_region(), fresh_account());
    let pending = |name: &str| Image {
        state: ImageState::Pending,
        ..sample_image(&fresh_image_id(), &region, &owner, name)
    };
    let task_for = |image: &Image| sample_task(&fresh_task_id(), &region, &owner, &image.image_id);

    let image = pending("with-task");
    let task = task_for(&image);
    ok(
        store.insert_image_with_task(&image, &task).await,
        "insert an image with its task",
    );
    let got = ok(store.get_image(&image.image_id).await, "get the image");
    assert_eq!(
        got.as_ref(),
        Some(&image),
        "conformance: insert_image_with_task must store the image"
    );
    let got = ok(store.get_task(&task.task_id).await, "get the task");
    assert_eq!(
        got.as_ref(),
        Some(&task),
        "conformance: insert_image_with_task must store the task"
    );

    // The name is taken (by the image just stored).
    let clash = pending("with-task");
    let clash_task = task_for(&clash);
    expect_err(
        store.insert_image_with_task(&clash, &clash_task).await,
        StoreError::ImageNameTaken {
            existing_image_id: image.image_id.clone(),
        },
        "insert an image of a taken name with its task",
    );
    let stored_image = ok(store.get_image(&clash.image_id).await, "get the image");
    let stored_task = ok(store.get_task(&clash_task.task_id).await, "get the task");
    assert_eq!(
        (stored_image, stored_task),
        (None, None),
        "conformance: a refused insert_image_with_task (name taken) must store neither record"
    );

    // The image ID is taken.
    let same_id = Image {
        name: "with-task-other-name".to_owned(),
        ..pending("unused")
    };
    let same_id = Image {
        image_id: image.image_id.clone(),
        ..same_id
    };
    let same_id_task = task_for(&same_id);
    expect_err(
        store.insert_image_with_task(&same_id, &same_id_task).await,
        StoreError::DuplicateId(image.image_id.clone()),
        "insert an image of a taken ID with its task",
    );
    let stored_task = ok(store.get_task(&same_id_task.task_id).await, "get the task");
    assert_eq!(
        stored_task, None,
        "conformance: a refused insert_image_with_task (image ID taken) must not store the task"
    );
    let got = ok(store.get_image(&image.image_id).await, "get the image");
    assert_eq!(
        got.as_ref(),
        Some(&image),
        "conformance: a refused insert_image_with_task must leave the existing image untouched"
    );

    // The task ID is taken: the image must not be stored, nor its name held.
    let fresh = pending("with-task-fresh");
    let reused_task = Task {
        progress: 0,
        ..sample_task(&task.task_id, &region, &owner, &fresh.image_id)
    };
    expect_err(
        store.insert_image_with_task(&fresh, &reused_task).await,
        StoreError::DuplicateId(task.task_id.clone()),
        "insert an image with a task of a taken ID",
    );
    let got = ok(store.get_image(&fresh.image_id).await, "get the image");
    assert_eq!(
        got, None,
        "conformance: a refused insert_image_with_task (task ID taken) must not store the image"
    );
    let got = ok(store.get_task(&task.task_id).await, "get the first task");
    assert_eq!(
        got.as_ref(),
        Some(&task),
        "conformance: a refused insert_image_with_task must leave the existing task untouched"
    );
    ok(
        store.insert_image(&fresh).await,
        "insert the refused image alone: its name must be free",
    );
}
