//! The behaviour every [`MetaStore`] engine must show.
//!
//! [`run_all`] runs every check in turn; each check is also public so a test
//! can run one alone. A check panics, naming what went wrong, on the first
//! deviation. Checks use fresh IDs, accounts, regions, block hashes and
//! client-token scopes, so they can run against a store that holds other
//! data (and side by side), with one exception:
//! [`check_reset`] empties the whole store, so don't run it (or `run_all`)
//! concurrently with anything else using the same store.
//!
//! ```no_run
//! # async fn demo() {
//! let store = hangar_meta::SqliteStore::open_in_memory().await.unwrap();
//! hangar_meta::conformance::run_all(&store).await;
//! # }
//! ```

use std::fmt::Debug;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hangar_core::model::{
    BlockDeviceMapping, DeregistrationProtection, EbsBlockDevice, Image, ImageState,
    LaunchPermission, StateReason, Tag, Task, TaskState,
};
use hangar_core::repo::{ImageListQuery, MetaStore, RecordQuery, StoreError, ZERO_BLOCK};

mod blocks;
mod buckets;
mod leases;
mod multipart;
mod objects;
mod records;
mod tasks;
mod tokens;

pub use blocks::{
    check_block_map_batches, check_block_map_entries, check_copy_blocks, check_merge_blocks,
    check_orphan_block_maps, check_referenced_among, check_referenced_hashes,
};
pub use buckets::{
    check_bucket_delete, check_bucket_listing, check_bucket_names_are_global,
    check_bucket_revisions, check_bucket_roundtrip, fresh_bucket_name, sample_bucket,
};
pub use leases::{
    check_concurrent_claims, check_named_leases, check_task_leases, earliest_task, fresh_holder,
    next_run,
};
pub use multipart::{
    check_complete_refusals, check_complete_upload, check_parts, check_upload_listing,
    check_upload_roundtrip, fresh_upload_id, sample_part, sample_upload,
};
pub use objects::{
    check_object_delete, check_object_listing, check_object_needs_bucket, check_object_roundtrip,
    check_object_update_if, sample_object,
};
pub use records::{
    bare_instance, bare_snapshot, bare_task, bare_volume, check_insert_image_with_task,
    check_instance_listing, check_instance_revisions, check_instance_roundtrip,
    check_snapshot_delete, check_snapshot_listing, check_snapshot_revisions,
    check_snapshot_roundtrip, check_task_revisions, check_task_roundtrip, check_unfinished_tasks,
    check_volume_delete, check_volume_listing, check_volume_revisions, check_volume_roundtrip,
    fresh_instance_id, fresh_snapshot_id, fresh_task_id, fresh_volume_id, sample_instance,
    sample_snapshot, sample_task, sample_volume,
};
pub use tasks::check_tasks_by_owner;
pub use tokens::check_claim_client_token;

/// Runs every check, in order; [`check_reset`] last.
pub async fn run_all(store: &dyn MetaStore) {
    // Images.
    check_roundtrip(store).await;
    check_get_unknown(store).await;
    check_duplicate_id(store).await;
    check_name_unique_per_owner_and_region(store).await;
    check_name_reusable_after_deregistration(store).await;
    check_update_bumps_revision(store).await;
    check_update_stale_revision_conflicts(store).await;
    check_list_images(store).await;
    check_get_images(store).await;
    check_upsert(store).await;
    check_insert_image_with_task(store).await;
    // Snapshots, volumes, instances, tasks.
    check_snapshot_roundtrip(store).await;
    check_snapshot_revisions(store).await;
    check_snapshot_listing(store).await;
    check_snapshot_delete(store).await;
    check_volume_roundtrip(store).await;
    check_volume_revisions(store).await;
    check_volume_listing(store).await;
    check_volume_delete(store).await;
    check_instance_roundtrip(store).await;
    check_instance_revisions(store).await;
    check_instance_listing(store).await;
    check_task_roundtrip(store).await;
    check_task_revisions(store).await;
    check_unfinished_tasks(store).await;
    check_tasks_by_owner(store).await;
    // Leases.
    check_task_leases(store).await;
    check_named_leases(store).await;
    check_concurrent_claims(&[store]).await;
    // Block maps and client tokens.
    check_block_map_entries(store).await;
    check_block_map_batches(store).await;
    check_copy_blocks(store).await;
    check_merge_blocks(store).await;
    check_referenced_hashes(store).await;
    check_referenced_among(store).await;
    check_claim_client_token(store).await;
    // Empties every record-less map: only after the checks that use them.
    check_orphan_block_maps(store).await;
    // Buckets.
    check_bucket_roundtrip(store).await;
    check_bucket_names_are_global(store).await;
    check_bucket_revisions(store).await;
    check_bucket_listing(store).await;
    check_bucket_delete(store).await;
    // Objects.
    check_object_roundtrip(store).await;
    check_object_needs_bucket(store).await;
    check_object_listing(store).await;
    check_object_delete(store).await;
    check_object_update_if(store).await;
    // Multipart uploads.
    check_upload_roundtrip(store).await;
    check_parts(store).await;
    check_complete_upload(store).await;
    check_complete_refusals(store).await;
    check_upload_listing(store).await;
    check_reset(store).await;
}

/// An image with every optional field set, several block device mappings,
/// tags and every kind of launch permission; state `available`, revision 0.
pub fn sample_image(id: &str, region: &str, owner: &str, name: &str) -> Image {
    Image {
        image_id: id.to_owned(),
        region: region.to_owned(),
        owner_id: owner.to_owned(),
        owner_alias: Some("hangar-conformance".to_owned()),
        name: name.to_owned(),
        description: Some(format!("{name}: made by the conformance suite")),
        image_location: format!("{owner}/{name}"),
        image_type: "machine".to_owned(),
        architecture: "x86_64".to_owned(),
        virtualization_type: "hvm".to_owned(),
        hypervisor: "xen".to_owned(),
        platform: Some("windows".to_owned()),
        platform_details: "Windows".to_owned(),
        usage_operation: "RunInstances:0002".to_owned(),
        root_device_type: "ebs".to_owned(),
        root_device_name: Some("/dev/sda1".to_owned()),
        block_device_mappings: vec![
            BlockDeviceMapping {
                device_name: "/dev/sda1".to_owned(),
                virtual_name: Some("root".to_owned()),
                ebs: Some(EbsBlockDevice {
                    snapshot_id: Some("snap-0123456789abcdef0".to_owned()),
                    volume_size: Some(30),
                    volume_type: Some("gp3".to_owned()),
                    delete_on_termination: Some(true),
                    iops: Some(3000),
                    throughput: Some(125),
                    encrypted: Some(true),
                    kms_key_id: Some(
                        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                            .to_owned(),
                    ),
                }),
                no_device: false,
            },
            BlockDeviceMapping {
                device_name: "/dev/sdb".to_owned(),
                virtual_name: Some("ephemeral0".to_owned()),
                ebs: None,
                no_device: false,
            },
            BlockDeviceMapping {
                device_name: "/dev/sdc".to_owned(),
                virtual_name: None,
                ebs: Some(EbsBlockDevice {
                    volume_size: Some(100),
                    delete_on_termination: Some(false),
                    encrypted: Some(false),
                    ..EbsBlockDevice::default()
                }),
                no_device: false,
            },
            BlockDeviceMapping {
                device_name: "/dev/sdd".to_owned(),
                virtual_name: None,
                ebs: None,
                no_device: true,
            },
        ],
        boot_mode: Some("uefi".to_owned()),
        ena_support: Some(true),
        sriov_net_support: Some("simple".to_owned()),
        tpm_support: Some("v2.0".to_owned()),
        imds_support: Some("v2.0".to_owned()),
        uefi_data: Some("QU1aTlVFRkk9".to_owned()),
        kernel_id: Some("aki-0123456789abcdef0".to_owned()),
        ramdisk_id: Some("ari-0123456789abcdef0".to_owned()),
        state: ImageState::Available,
        state_reason: Some(StateReason {
            code: "Client.UserInitiated".to_owned(),
            message: "Client.UserInitiated".to_owned(),
        }),
        creation_ms: 1_700_000_000_123,
        launch_permissions: vec![
            LaunchPermission::UserId("123456789012".to_owned()),
            LaunchPermission::GroupAll,
            LaunchPermission::OrganizationArn(
                "arn:aws:organizations::123456789012:organization/o-abc123".to_owned(),
            ),
            LaunchPermission::OrganizationalUnitArn(
                "arn:aws:organizations::123456789012:ou/o-abc123/ou-ab12-cdef3456".to_owned(),
            ),
        ],
        tags: vec![
            Tag {
                key: "Name".to_owned(),
                value: name.to_owned(),
            },
            Tag {
                key: "team".to_owned(),
                value: "platform".to_owned(),
            },
            Tag {
                key: "empty".to_owned(),
                value: String::new(),
            },
            Tag {
                key: "quoting".to_owned(),
                value: "it's \"quoted\", ünïcødé ✈ and\na newline".to_owned(),
            },
        ],
        source_image_id: Some("ami-0fedcba9876543210".to_owned()),
        source_image_region: Some("eu-west-1".to_owned()),
        source_instance_id: Some("i-0123456789abcdef0".to_owned()),
        deprecation_ms: Some(1_900_000_000_000),
        deregistration_protection: DeregistrationProtection {
            enabled: true,
            with_cooldown: true,
            cooldown_until: Some(1_700_086_400_123),
        },
        last_launched_ms: Some(1_750_000_000_456),
        launch_history_ms: vec![1_749_000_000_000, 1_750_000_000_456],
        deregistered_ms: Some(1_760_000_000_789),
        revision: 0,
    }
}

/// An image ID no check has used, in AWS's form (`ami-` and 17 hex digits).
pub fn fresh_image_id() -> String {
    format!("ami-{:017x}", unique())
}

/// A 12-digit account ID no check has used.
pub fn fresh_account() -> String {
    format!("{:012}", unique() % 1_000_000_000_000)
}

/// A region name no check has used (the store treats regions as opaque).
pub fn fresh_region() -> String {
    format!("cf-{:x}-1", unique())
}

/// `count` block hashes (64 hex digits), in ascending order, sharing a
/// 16-digit prefix that no other call returns: so no other check's hash
/// sorts between them.
pub fn hashes_with_fresh_prefix(count: usize) -> Vec<String> {
    let prefix = unique();
    (0..count)
        .map(|n| format!("{prefix:016x}{:048x}", n + 1))
        .collect()
}

/// An image inserted with every optional field set stores and reads back
/// equal; so does one with every optional field empty.
pub async fn check_roundtrip(store: &dyn MetaStore) {
    let image = sample_image(
        &fresh_image_id(),
        &fresh_region(),
        &fresh_account(),
        "roundtrip-full",
    );
    ok(
        store.insert_image(&image).await,
        "insert a fully populated image",
    );
    let got = ok(store.get_image(&image.image_id).await, "get it back");
    assert_eq!(
        got.as_ref(),
        Some(&image),
        "conformance: a fully populated image must read back equal"
    );

    let bare = Image {
        owner_alias: None,
        description: None,
        platform: None,
        root_device_name: None,
        block_device_mappings: Vec::new(),
        boot_mode: None,
        ena_support: None,
        sriov_net_support: None,
        tpm_support: None,
        imds_support: None,
        uefi_data: None,
        kernel_id: None,
        ramdisk_id: None,
        state: ImageState::Pending,
        state_reason: None,
        launch_permissions: Vec::new(),
        tags: Vec::new(),
        source_image_id: None,
        source_image_region: None,
        source_instance_id: None,
        deprecation_ms: None,
        deregistration_protection: DeregistrationProtection::default(),
        last_launched_ms: None,
        launch_history_ms: Vec::new(),
        deregistered_ms: None,
        ..sample_image(
            &fresh_image_id(),
            &fresh_region(),
            &fresh_account(),
            "roundtrip-bare",
        )
    };
    ok(store.insert_image(&bare).await, "insert a bare image");
    let got = ok(store.get_image(&bare.image_id).await, "get it back");
    assert_eq!(
        got.as_ref(),
        Some(&bare),
        "conformance: an image with no optional field set must read back equal"
    );
}

/// Getting an ID that was never stored finds nothing (and is no error).
pub async fn check_get_unknown(store: &dyn MetaStore) {
    let got = ok(
        store.get_image(&fresh_image_id()).await,
        "get an unknown image",
    );
    assert_eq!(
        got, None,
        "conformance: an unknown image ID must read as None"
    );
}

/// A second image with an existing ID is refused with `DuplicateId`, even
/// with another owner, region and name, and the first stays as it was.
pub async fn check_duplicate_id(store: &dyn MetaStore) {
    let id = fresh_image_id();
    let first = sample_image(&id, &fresh_region(), &fresh_account(), "duplicate-a");
    ok(store.insert_image(&first).await, "insert the first image");
    let second = sample_image(&id, &fresh_region(), &fresh_account(), "duplicate-b");
    expect_err(
        store.insert_image(&second).await,
        StoreError::DuplicateId(id.clone()),
        "insert a second image with the same ID",
    );
    let got = ok(store.get_image(&id).await, "get the first image");
    assert_eq!(
        got.as_ref(),
        Some(&first),
        "conformance: a refused duplicate must leave the first image untouched"
    );
}

/// Names are unique among an owner's live images in a region: the same name
/// is refused for that owner there, by insert and by rename, and allowed for
/// another owner or in another region.
pub async fn check_name_unique_per_owner_and_region(store: &dyn MetaStore) {
    let (region, other_region) = (fresh_region(), fresh_region());
    let (owner, other_owner) = (fresh_account(), fresh_account());
    let name = "same-name";

    let first = sample_image(&fresh_image_id(), &region, &owner, name);
    ok(store.insert_image(&first).await, "insert the first image");

    let clash = sample_image(&fresh_image_id(), &region, &owner, name);
    expect_err(
        store.insert_image(&clash).await,
        StoreError::ImageNameTaken {
            existing_image_id: first.image_id.clone(),
        },
        "insert a second live image of the same owner, region and name",
    );
    let got = ok(
        store.get_image(&clash.image_id).await,
        "get the refused image",
    );
    assert_eq!(
        got, None,
        "conformance: a refused insert must store nothing"
    );

    let other_owners = sample_image(&fresh_image_id(), &region, &other_owner, name);
    ok(
        store.insert_image(&other_owners).await,
        "insert the same name for another owner in the same region",
    );
    let other_regions = sample_image(&fresh_image_id(), &other_region, &owner, name);
    ok(
        store.insert_image(&other_regions).await,
        "insert the same name for the same owner in another region",
    );

    let sibling = sample_image(&fresh_image_id(), &region, &owner, "another-name");
    ok(
        store.insert_image(&sibling).await,
        "insert a sibling of another name",
    );
    let renamed = Image {
        name: name.to_owned(),
        ..sibling.clone()
    };
    expect_err(
        store.update_image(&renamed).await,
        StoreError::ImageNameTaken {
            existing_image_id: first.image_id.clone(),
        },
        "rename the sibling to the taken name",
    );
    let got = ok(store.get_image(&sibling.image_id).await, "get the sibling");
    assert_eq!(
        got.as_ref(),
        Some(&sibling),
        "conformance: a refused rename must leave the image (and its revision) untouched"
    );
}

/// Deregistered images don't hold their names: once the first is
/// deregistered (through `update_image`) the name can be used again, any
/// number of deregistered images may share it, and reviving a deregistered
/// image whose name was reused is refused.
pub async fn check_name_reusable_after_deregistration(store: &dyn MetaStore) {
    let region = fresh_region();
    let owner = fresh_account();
    let name = "reused-name";

    let first = sample_image(&fresh_image_id(), &region, &owner, name);
    ok(store.insert_image(&first).await, "insert the first image");
    let first_gone = deregistered(&first);
    let revision = ok(
        store.update_image(&first_gone).await,
        "deregister the first image",
    );
    let first_gone = Image {
        revision,
        ..first_gone
    };

    let second = sample_image(&fresh_image_id(), &region, &owner, name);
    ok(
        store.insert_image(&second).await,
        "insert a live image with the name of a deregistered one",
    );
    let revision = ok(
        store.update_image(&deregistered(&second)).await,
        "deregister the second image",
    );
    assert_eq!(
        revision,
        second.revision + 1,
        "conformance: update must return revision + 1"
    );

    let third = sample_image(&fresh_image_id(), &region, &owner, name);
    ok(
        store.insert_image(&third).await,
        "insert a third image of the name, two deregistered ones sharing it",
    );
    let already_gone = deregistered(&sample_image(&fresh_image_id(), &region, &owner, name));
    ok(
        store.insert_image(&already_gone).await,
        "insert a deregistered image named like a live one",
    );

    let revived = Image {
        state: ImageState::Available,
        ..first_gone
    };
    expect_err(
        store.update_image(&revived).await,
        StoreError::ImageNameTaken {
            existing_image_id: third.image_id.clone(),
        },
        "make the first image live again while the third holds its name",
    );
}

/// `update_image` replaces the record, returns `revision + 1`, and the
/// stored record carries the new revision.
pub async fn check_update_bumps_revision(store: &dyn MetaStore) {
    let image = Image {
        revision: 7,
        ..sample_image(&fresh_image_id(), &fresh_region(), &fresh_account(), "bump")
    };
    ok(
        store.insert_image(&image).await,
        "insert an image at revision 7",
    );
    let got = ok(store.get_image(&image.image_id).await, "get it");
    assert_eq!(
        got.map(|image| image.revision),
        Some(7),
        "conformance: insert must keep the image's revision"
    );

    let mut changed = image.clone();
    changed.description = None;
    changed.tags.push(Tag {
        key: "stage".to_owned(),
        value: "two".to_owned(),
    });
    changed.launch_permissions.clear();
    let revision = ok(store.update_image(&changed).await, "update it");
    assert_eq!(revision, 8, "conformance: update must return revision + 1");
    let got = ok(
        store.get_image(&image.image_id).await,
        "get it after the update",
    );
    changed.revision = 8;
    assert_eq!(
        got.as_ref(),
        Some(&changed),
        "conformance: an updated image must read back as written, with the new revision"
    );

    changed.name = "bump-renamed".to_owned();
    let revision = ok(
        store.update_image(&changed).await,
        "update it again from the new revision",
    );
    assert_eq!(revision, 9, "conformance: update must return revision + 1");
    let got = ok(store.get_image(&image.image_id).await, "get it again");
    changed.revision = 9;
    assert_eq!(
        got.as_ref(),
        Some(&changed),
        "conformance: a second update must read back too"
    );
}

/// An update made from a stale (or future) revision, or of an image that
/// doesn't exist, is refused with `Conflict` and changes nothing.
pub async fn check_update_stale_revision_conflicts(store: &dyn MetaStore) {
    let image = sample_image(
        &fresh_image_id(),
        &fresh_region(),
        &fresh_account(),
        "stale",
    );
    ok(store.insert_image(&image).await, "insert an image");
    let first = Image {
        description: Some("first writer".to_owned()),
        ..image.clone()
    };
    let revision = ok(store.update_image(&first).await, "update from revision 0");
    let second = Image {
        description: Some("second writer".to_owned()),
        ..image.clone()
    };
    expect_err(
        store.update_image(&second).await,
        StoreError::Conflict(image.image_id.clone()),
        "update again from the stale revision 0",
    );
    let ahead = Image {
        revision: revision + 5,
        ..second.clone()
    };
    expect_err(
        store.update_image(&ahead).await,
        StoreError::Conflict(image.image_id.clone()),
        "update from a revision the store never had",
    );
    let got = ok(store.get_image(&image.image_id).await, "get the image");
    assert_eq!(
        got.as_ref(),
        Some(&Image { revision, ..first }),
        "conformance: refused updates must leave the first writer's change in place"
    );

    let unknown = sample_image(
        &fresh_image_id(),
        &fresh_region(),
        &fresh_account(),
        "stale-unknown",
    );
    expect_err(
        store.update_image(&unknown).await,
        StoreError::Conflict(unknown.image_id.clone()),
        "update an image that was never stored",
    );
    let got = ok(store.get_image(&unknown.image_id).await, "get it");
    assert_eq!(
        got, None,
        "conformance: updating an unknown image must not create it"
    );
}

/// `list_images` narrows by region, owner IDs, owner aliases (both lists
/// must match when both are set) and state, and orders by image ID.
pub async fn check_list_images(store: &dyn MetaStore) {
    let (region, other_region) = (fresh_region(), fresh_region());
    let (user, provider, vendor) = (fresh_account(), fresh_account(), fresh_account());
    let mut ids: Vec<String> = (0..5).map(|_| fresh_image_id()).collect();
    ids.sort();
    // Assigned out of ID order, and inserted in reverse, so an engine that
    // returns rows in insertion order fails.
    let [a, b, c, d, e] = [&ids[3], &ids[0], &ids[4], &ids[2], &ids[1]];
    let users_live = Image {
        owner_alias: None,
        ..sample_image(a, &region, &user, "list-user-live")
    };
    let users_gone = deregistered(&Image {
        owner_alias: None,
        ..sample_image(b, &region, &user, "list-user-gone")
    });
    let providers = Image {
        owner_alias: Some("amazon".to_owned()),
        ..sample_image(c, &region, &provider, "list-amazon")
    };
    let vendors = Image {
        owner_alias: Some("aws-marketplace".to_owned()),
        ..sample_image(d, &region, &vendor, "list-marketplace")
    };
    let elsewhere = Image {
        owner_alias: None,
        ..sample_image(e, &other_region, &user, "list-user-live")
    };
    let all = [&users_live, &users_gone, &providers, &vendors, &elsewhere];
    for image in all.iter().rev() {
        ok(store.insert_image(image).await, "insert an image to list");
    }

    let query =
        |owner_ids: Option<&[&String]>, aliases: Option<&[&str]>, live: bool| ImageListQuery {
            region: region.clone(),
            owner_ids: owner_ids.map(|ids| ids.iter().map(|id| (*id).clone()).collect()),
            owner_aliases: aliases.map(|aliases| aliases.iter().map(|a| (*a).to_owned()).collect()),
            exclude_deregistered: live,
        };
    let cases: Vec<(&str, ImageListQuery, Vec<&Image>)> = vec![
        (
            "the region",
            query(None, None, false),
            vec![&users_live, &users_gone, &providers, &vendors],
        ),
        (
            "the region's live images",
            query(None, None, true),
            vec![&users_live, &providers, &vendors],
        ),
        (
            "one owner",
            query(Some(&[&user]), None, false),
            vec![&users_live, &users_gone],
        ),
        (
            "one owner's live images",
            query(Some(&[&user]), None, true),
            vec![&users_live],
        ),
        (
            "two owners",
            query(Some(&[&user, &provider]), None, false),
            vec![&users_live, &users_gone, &providers],
        ),
        ("no owner", query(Some(&[]), None, false), vec![]),
        (
            "one alias",
            query(None, Some(&["amazon"]), false),
            vec![&providers],
        ),
        (
            "two aliases",
            query(None, Some(&["amazon", "aws-marketplace"]), false),
            vec![&providers, &vendors],
        ),
        ("no alias", query(None, Some(&[]), false), vec![]),
        (
            "an owner and its alias",
            query(Some(&[&provider, &user]), Some(&["amazon"]), false),
            vec![&providers],
        ),
        (
            "an owner and another's alias",
            query(Some(&[&user]), Some(&["amazon"]), false),
            vec![],
        ),
        (
            "the other region",
            ImageListQuery {
                region: other_region.clone(),
                ..ImageListQuery::default()
            },
            vec![&elsewhere],
        ),
        (
            "a region with no images",
            ImageListQuery {
                region: fresh_region(),
                ..ImageListQuery::default()
            },
            vec![],
        ),
    ];
    for (what, query, mut expected) in cases {
        let listed = ok(store.list_images(&query).await, &format!("list {what}"));
        expected.sort_by(|x, y| x.image_id.cmp(&y.image_id));
        assert_eq!(
            image_ids(&listed),
            image_ids(expected.iter().copied()),
            "conformance: listing {what} ({query:?}) must return these images, ordered by ID"
        );
        let expected: Vec<Image> = expected.into_iter().cloned().collect();
        assert_eq!(
            listed, expected,
            "conformance: listing {what} must return whole, unchanged records"
        );
    }
}

/// `get_images` returns the stored images among the IDs asked for, each
/// once, in any order; unknown IDs are skipped, and long lists work.
pub async fn check_get_images(store: &dyn MetaStore) {
    let region = fresh_region();
    let owner = fresh_account();
    let known: Vec<Image> = (0..3)
        .map(|n| sample_image(&fresh_image_id(), &region, &owner, &format!("many-{n}")))
        .collect();
    for image in &known {
        ok(store.insert_image(image).await, "insert an image to fetch");
    }
    let mut expected = known.clone();
    expected.sort_by(|x, y| x.image_id.cmp(&y.image_id));

    let asked = vec![
        fresh_image_id(),
        known[1].image_id.clone(),
        known[0].image_id.clone(),
        fresh_image_id(),
        known[2].image_id.clone(),
        known[0].image_id.clone(),
    ];
    let mut got = ok(store.get_images(&asked).await, "get known and unknown IDs");
    got.sort_by(|x, y| x.image_id.cmp(&y.image_id));
    assert_eq!(
        got, expected,
        "conformance: get_images must return each stored image asked for, once"
    );

    let got = ok(store.get_images(&[]).await, "get no IDs");
    assert!(
        got.is_empty(),
        "conformance: get_images of no IDs must return nothing"
    );

    let unknown: Vec<String> = (0..2).map(|_| fresh_image_id()).collect();
    let got = ok(store.get_images(&unknown).await, "get only unknown IDs");
    assert!(
        got.is_empty(),
        "conformance: get_images of unknown IDs must return nothing"
    );

    // Longer than one bound-parameter list may be in some engines.
    let mut many: Vec<String> = (0..1200).map(|_| fresh_image_id()).collect();
    many[5] = known[0].image_id.clone();
    many[600] = known[1].image_id.clone();
    many[1199] = known[2].image_id.clone();
    let mut got = ok(store.get_images(&many).await, "get 1200 IDs");
    got.sort_by(|x, y| x.image_id.cmp(&y.image_id));
    assert_eq!(
        got, expected,
        "conformance: get_images of 1200 IDs must find the stored ones among them"
    );
}

/// `upsert_image` inserts a new image, replaces an existing one entirely,
/// never moves its revision back, leaves a record whose revision later
/// updates accept, and refuses a name another live image holds.
pub async fn check_upsert(store: &dyn MetaStore) {
    let region = fresh_region();
    let owner = fresh_account();
    let image = sample_image(&fresh_image_id(), &region, &owner, "upsert");
    ok(store.upsert_image(&image).await, "upsert a new image");
    let got = ok(store.get_image(&image.image_id).await, "get it");
    assert_eq!(
        got.as_ref(),
        Some(&image),
        "conformance: upserting a new image must store it as given"
    );

    ok(
        store.upsert_image(&image).await,
        "upsert the same image again",
    );
    let got = ok(store.get_image(&image.image_id).await, "get it")
        .unwrap_or_else(|| panic!("conformance: upserted image {} vanished", image.image_id));
    assert!(
        got.revision >= image.revision,
        "conformance: upsert must never move a revision back"
    );

    let replacement = Image {
        name: "upsert-renamed".to_owned(),
        description: None,
        tags: vec![Tag {
            key: "generation".to_owned(),
            value: "2".to_owned(),
        }],
        block_device_mappings: Vec::new(),
        deprecation_ms: None,
        revision: 0,
        ..image.clone()
    };
    ok(
        store.upsert_image(&replacement).await,
        "upsert a changed image over it",
    );
    let replaced = ok(store.get_image(&image.image_id).await, "get it")
        .unwrap_or_else(|| panic!("conformance: upserted image {} vanished", image.image_id));
    assert!(
        replaced.revision > got.revision,
        "conformance: replacing an image by upsert must raise its revision ({} -> {})",
        got.revision,
        replaced.revision
    );
    assert_eq!(
        replaced,
        Image {
            revision: replaced.revision,
            ..replacement.clone()
        },
        "conformance: upsert must replace the whole record"
    );

    let updated = Image {
        description: Some("updated after upsert".to_owned()),
        ..replaced.clone()
    };
    let revision = ok(
        store.update_image(&updated).await,
        "update from the revision an upsert left",
    );
    assert_eq!(
        revision,
        replaced.revision + 1,
        "conformance: update must return revision + 1"
    );

    let holder = sample_image(&fresh_image_id(), &region, &owner, "upsert-holder");
    ok(
        store.insert_image(&holder).await,
        "insert a holder of another name",
    );
    let clash = sample_image(&fresh_image_id(), &region, &owner, "upsert-holder");
    expect_err(
        store.upsert_image(&clash).await,
        StoreError::ImageNameTaken {
            existing_image_id: holder.image_id.clone(),
        },
        "upsert a new image onto a name a live image holds",
    );
}

/// `reset` removes every record of every kind, every block map and every
/// client token; the store is usable afterwards.
pub async fn check_reset(store: &dyn MetaStore) {
    let region = fresh_region();
    let owner = fresh_account();
    let images: Vec<Image> = (0..2)
        .map(|n| sample_image(&fresh_image_id(), &region, &owner, &format!("reset-{n}")))
        .collect();
    for image in &images {
        ok(
            store.insert_image(image).await,
            "insert an image to reset away",
        );
    }
    let snapshot = sample_snapshot(&fresh_snapshot_id(), &region, &owner);
    let volume = sample_volume(&fresh_volume_id(), &region, &owner);
    let instance = sample_instance(&fresh_instance_id(), &region, &owner);
    let task = sample_task(&fresh_task_id(), &region, &owner, &images[0].image_id);
    ok(store.insert_snapshot(&snapshot).await, "insert a snapshot");
    ok(store.insert_volume(&volume).await, "insert a volume");
    ok(store.insert_instance(&instance).await, "insert an instance");
    ok(store.insert_task(&task).await, "insert a task");
    let bucket = sample_bucket(&fresh_bucket_name(), &region, &owner);
    ok(store.insert_bucket(&bucket).await, "insert a bucket");
    let object = sample_object(&bucket.name, "reset/me", "aa");
    ok(store.put_object(&object).await, "put an object");
    let hashes = hashes_with_fresh_prefix(2);
    for map_id in [&snapshot.snapshot_id, &volume.volume_id] {
        ok(store.put_block(map_id, 0, &hashes[0]).await, "put a block");
        ok(store.put_block(map_id, 1, ZERO_BLOCK).await, "put a block");
    }
    ok(
        store.put_block("orphan-map", 0, &hashes[1]).await,
        "put a block in a map without a record",
    );
    let scope = format!("reset-{:x}", unique());
    ok(
        store.claim_client_token(&scope, "t", "before", "r").await,
        "claim a token",
    );

    ok(store.reset().await, "reset");

    for image in &images {
        let got = ok(store.get_image(&image.image_id).await, "get after reset");
        assert_eq!(
            got, None,
            "conformance: reset must remove {}",
            image.image_id
        );
    }
    let listed = ok(
        store
            .list_images(&ImageListQuery {
                region: region.clone(),
                ..ImageListQuery::default()
            })
            .await,
        "list after reset",
    );
    assert!(
        listed.is_empty(),
        "conformance: reset must leave nothing to list"
    );
    let everywhere = RecordQuery::default();
    let snapshots = ok(store.list_snapshots(&everywhere).await, "list snapshots");
    let volumes = ok(store.list_volumes(&everywhere).await, "list volumes");
    let instances = ok(store.list_instances(&everywhere).await, "list instances");
    let tasks = ok(store.list_unfinished_tasks().await, "list tasks");
    assert!(
        snapshots.is_empty() && volumes.is_empty() && instances.is_empty() && tasks.is_empty(),
        "conformance: reset must remove every snapshot, volume, instance and task"
    );
    assert_eq!(
        ok(store.get_task(&task.task_id).await, "get the task"),
        None,
        "conformance: reset must remove every task"
    );
    assert_eq!(
        ok(
            store.get_object(&bucket.name, &object.key).await,
            "get the object"
        ),
        None,
        "conformance: reset must remove every object"
    );
    for map_id in [&snapshot.snapshot_id, &volume.volume_id, "orphan-map"] {
        assert_eq!(
            ok(store.count_blocks(map_id).await, "count a map after reset"),
            0,
            "conformance: reset must remove every block map"
        );
    }
    assert!(
        ok(store.referenced_hashes(None, 10).await, "list hashes").is_empty(),
        "conformance: after a reset no hash is referenced"
    );
    assert_eq!(
        ok(
            store.get_bucket(&bucket.name).await,
            "read a bucket after reset"
        ),
        None,
        "conformance: reset must remove buckets"
    );
    assert_eq!(
        ok(
            store.claim_client_token(&scope, "t", "after", "r").await,
            "claim the token again"
        ),
        None,
        "conformance: reset must forget client tokens"
    );

    ok(
        store.insert_image(&images[0]).await,
        "insert the same image again after reset",
    );
    let got = ok(store.get_image(&images[0].image_id).await, "get it");
    assert_eq!(
        got.as_ref(),
        Some(&images[0]),
        "conformance: the store must work after a reset"
    );
    let queued = Task {
        state: TaskState::Queued,
        ..task
    };
    ok(store.insert_task(&queued).await, "insert the task again");
    assert_eq!(
        ok(store.list_unfinished_tasks().await, "list tasks"),
        vec![queued],
        "conformance: the store must work after a reset"
    );
}

fn deregistered(image: &Image) -> Image {
    Image {
        state: ImageState::Deregistered,
        ..image.clone()
    }
}

fn image_ids<'a>(images: impl IntoIterator<Item = &'a Image>) -> Vec<&'a str> {
    images
        .into_iter()
        .map(|image| image.image_id.as_str())
        .collect()
}

#[track_caller]
fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("conformance: {what}: unexpected error {error:?}"),
    }
}

#[track_caller]
fn expect_err<T: Debug>(result: Result<T, StoreError>, expected: StoreError, what: &str) {
    match result {
        Err(error) if error == expected => {}
        Err(error) => panic!("conformance: {what}: expected {expected:?}, got error {error:?}"),
        Ok(value) => panic!("conformance: {what}: expected {expected:?}, got Ok({value:?})"),
    }
}

/// A number no earlier call in this process returned, and unlikely to be
/// returned in another process (seeded from the clock and process ID).
fn unique() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or_default();
        // splitmix64, so nearby seeds land far apart.
        let mut z =
            (nanos ^ (u64::from(std::process::id()) << 40)).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    });
    base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}
