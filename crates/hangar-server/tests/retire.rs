//! Provenance and retirement in the domain, over the real SQLite engine and
//! a manual clock: what the wire tests cannot time or shape (a 24-hour
//! cooldown, a deprecation time judged by the domain clock rather than the
//! wall clock, ancestry chains longer than 50, cycles, foreign partitions).

use std::path::Path;
use std::sync::Arc;

use hangar_blocks::LocalBlockStore;
use hangar_core::clock::{Clock, ManualClock};
use hangar_core::images::{PROTECTION_COOLDOWN_MS, RegisterImageInput};
use hangar_core::model::{BlockDeviceMapping, EbsBlockDevice, Image};
use hangar_core::snapshots::StartSnapshotInput;
use hangar_core::timefmt::iso_millis;
use hangar_core::{Caller, Error, Hangar, Settings};
use hangar_meta::SqliteStore;

/// 2025-11-30T12:00:00Z: a year before the machine's wall clock in these
/// tests' time, so a check against the wall clock would misjudge "past".
const NOW: i64 = 1_764_504_000_000;
const DAY: i64 = 24 * 60 * 60 * 1000;

async fn hangar_at(dir: &Path, clock: Arc<dyn Clock>) -> Hangar {
    let store = SqliteStore::open(&dir.join("meta.sqlite")).await.unwrap();
    let blocks = LocalBlockStore::open(&dir.join("blocks")).unwrap();
    let settings = Settings::new("aws", vec!["us-east-1".into(), "us-west-2".into()]);
    Hangar::new(Arc::new(store), Arc::new(blocks), clock, settings)
}

fn alice() -> Caller {
    Caller {
        account_id: "111111111111".into(),
        region: "us-east-1".into(),
    }
}

async fn register(hangar: &Hangar, caller: &Caller, name: &str) -> String {
    let snapshot = hangar
        .start_snapshot(
            caller,
            StartSnapshotInput {
                volume_size_gib: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    hangar
        .complete_snapshot(caller, &snapshot.snapshot_id, 0, None)
        .await
        .unwrap();
    hangar
        .register_image(
            caller,
            RegisterImageInput {
                name: Some(name.into()),
                root_device_name: Some("/dev/xvda".into()),
                virtualization_type: Some("hvm".into()),
                block_device_mappings: vec![BlockDeviceMapping {
                    device_name: "/dev/xvda".into(),
                    ebs: Some(EbsBlockDevice {
                        snapshot_id: Some(snapshot.snapshot_id),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap()
}

async fn image(hangar: &Hangar, image_id: &str) -> Image {
    hangar.store().get_image(image_id).await.unwrap().unwrap()
}

/// Writes a copy of `template` as `image_id` whose parent is `parent`.
async fn link(hangar: &Hangar, template: &Image, image_id: &str, parent: Option<(&str, &str)>) {
    let mut record = template.clone();
    record.image_id = image_id.into();
    record.name = format!("chain-{image_id}");
    record.block_device_mappings.clear();
    record.source_image_id = parent.map(|(id, _)| id.to_string());
    record.source_image_region = parent.map(|(_, region)| region.to_string());
    hangar.store().upsert_image(&record).await.unwrap();
}

fn chain_id(index: usize) -> String {
    format!("ami-{index:017x}")
}

async fn ancestry_ids(hangar: &Hangar, caller: &Caller, image_id: &str) -> Vec<String> {
    hangar
        .get_image_ancestry(caller, image_id, false)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.image_id)
        .collect()
}

#[tokio::test]
async fn ancestry_stops_at_fifty_cycles_partitions_and_absent_parents() {
    let dir = tempfile::tempdir().unwrap();
    let hangar = hangar_at(dir.path(), Arc::new(ManualClock::at(NOW))).await;
    let caller = alice();
    let template = image(&hangar, &register(&hangar, &caller, "template").await).await;

    // 60 images, each the parent of the next: only 50 entries come back.
    for index in 0..60 {
        let parent = (index > 0).then(|| chain_id(index - 1));
        link(
            &hangar,
            &template,
            &chain_id(index),
            parent.as_deref().map(|id| (id, "us-east-1")),
        )
        .await;
    }
    let ids = ancestry_ids(&hangar, &caller, &chain_id(59)).await;
    assert_eq!(ids.len(), 50);
    assert_eq!(ids[0], chain_id(59));
    assert_eq!(ids[49], chain_id(10));

    // A cycle is walked once.
    link(
        &hangar,
        &template,
        "ami-00000000000000a01",
        Some(("ami-00000000000000a02", "us-west-2")),
    )
    .await;
    link(
        &hangar,
        &template,
        "ami-00000000000000a02",
        Some(("ami-00000000000000a01", "us-east-1")),
    )
    .await;
    assert_eq!(
        ancestry_ids(&hangar, &caller, "ami-00000000000000a01").await,
        vec!["ami-00000000000000a01", "ami-00000000000000a02"]
    );

    // A parent in another partition ends the walk, even when a record with
    // that ID happens to exist here; the entry keeps its pointer.
    link(
        &hangar,
        &template,
        "ami-00000000000000b01",
        Some((&chain_id(0), "cn-north-1")),
    )
    .await;
    let entries = hangar
        .get_image_ancestry(&caller, "ami-00000000000000b01", false)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].source_image_region.as_deref(),
        Some("cn-north-1")
    );

    // An absent parent record (another deployment) ends the walk too.
    link(
        &hangar,
        &template,
        "ami-00000000000000c01",
        Some(("ami-00000000000000c99", "eu-west-1")),
    )
    .await;
    assert_eq!(
        ancestry_ids(&hangar, &caller, "ami-00000000000000c01").await,
        vec!["ami-00000000000000c01"]
    );

    // A provider's image ends the walk and is included.
    let mut provider = template.clone();
    provider.owner_alias = Some("aws-marketplace".into());
    provider.image_id = "ami-00000000000000d02".into();
    provider.name = "provider".into();
    provider.block_device_mappings.clear();
    provider.source_image_id = Some(chain_id(0));
    provider.source_image_region = Some("us-east-1".into());
    hangar.store().upsert_image(&provider).await.unwrap();
    link(
        &hangar,
        &template,
        "ami-00000000000000d01",
        Some(("ami-00000000000000d02", "us-east-1")),
    )
    .await;
    let entries = hangar
        .get_image_ancestry(&caller, "ami-00000000000000d01", false)
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].owner_alias.as_deref(), Some("aws-marketplace"));
    assert_eq!(entries[1].source_image_id, Some(chain_id(0)));
    assert_eq!(
        iso_millis(entries[1].creation_ms),
        iso_millis(template.creation_ms)
    );
}

#[tokio::test]
async fn protection_cooldown_follows_the_domain_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(NOW));
    let hangar = hangar_at(dir.path(), clock.clone()).await;
    let caller = alice();
    let image_id = register(&hangar, &caller, "protected").await;
    assert_eq!(
        hangar
            .enable_image_deregistration_protection(&caller, &image_id, true, false)
            .await
            .unwrap(),
        "enabled-with-cooldown"
    );
    assert_eq!(
        hangar
            .disable_image_deregistration_protection(&caller, &image_id, false)
            .await
            .unwrap(),
        "disabled-with-cooldown"
    );
    clock.set(NOW + PROTECTION_COOLDOWN_MS - 1);
    assert!(matches!(
        hangar
            .deregister_image(&caller, &image_id, false, false)
            .await,
        Err(Error::DeregistrationProtected { .. })
    ));
    clock.set(NOW + PROTECTION_COOLDOWN_MS);
    hangar
        .deregister_image(&caller, &image_id, false, false)
        .await
        .unwrap();
}

#[tokio::test]
async fn deprecation_is_judged_by_the_domain_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(NOW));
    let hangar = hangar_at(dir.path(), clock.clone()).await;
    let caller = alice();
    let image_id = register(&hangar, &caller, "deprecated").await;
    // A day after the domain's now (but long past by the wall clock).
    hangar
        .enable_image_deprecation(&caller, &image_id, &iso_millis(NOW + DAY + 30_000), false)
        .await
        .unwrap();
    assert_eq!(
        image(&hangar, &image_id).await.deprecation_ms,
        Some(NOW + DAY + 60_000)
    );
    let past = hangar
        .enable_image_deprecation(&caller, &image_id, &iso_millis(NOW - 1), false)
        .await;
    assert!(
        matches!(past, Err(Error::InvalidParameterValue(_))),
        "{past:?}"
    );
    // Ten years ahead of the domain's now, not of the wall clock's.
    let ten_years = hangar
        .enable_image_deprecation(&caller, &image_id, "2035-11-30T12:00:00Z", false)
        .await;
    assert!(ten_years.is_ok(), "{ten_years:?}");
    let too_far = hangar
        .enable_image_deprecation(&caller, &image_id, "2035-11-30T12:01:00Z", false)
        .await;
    assert!(
        matches!(too_far, Err(Error::InvalidParameterValue(_))),
        "{too_far:?}"
    );
    clock.set(NOW + 2 * DAY);
    let now_past = hangar
        .enable_image_deprecation(&caller, &image_id, &iso_millis(NOW + DAY), false)
        .await;
    assert!(
        matches!(now_past, Err(Error::InvalidParameterValue(_))),
        "{now_past:?}"
    );
}
