//! Checks of block maps and of the hashes they reference.

use hangar_core::repo::{MetaStore, ZERO_BLOCK};

use super::records::{fresh_snapshot_id, fresh_volume_id};
use super::{hashes_with_fresh_prefix, ok};

/// A whole map, read in one page.
async fn whole_map(store: &dyn MetaStore, map_id: &str) -> Vec<(i64, String)> {
    ok(
        store.list_blocks(map_id, i64::MIN, usize::MAX).await,
        &format!("list the whole map {map_id}"),
    )
}

/// Puts `entries` into `map_id`'s map.
async fn fill(store: &dyn MetaStore, map_id: &str, entries: &[(i64, &str)]) {
    for (index, hash) in entries {
        ok(
            store.put_block(map_id, *index, hash).await,
            &format!("put block {index} of {map_id}"),
        );
    }
}

fn owned(entries: &[(i64, &str)]) -> Vec<(i64, String)> {
    entries
        .iter()
        .map(|(index, hash)| (*index, (*hash).to_owned()))
        .collect()
}

/// `put_block` sets an entry (replacing the one at its index), `get_block`
/// reads it, `list_blocks` pages through a map in index order, `count_blocks`
/// counts it, and `delete_blocks` empties it; maps are independent.
pub async fn check_block_map_entries(store: &dyn MetaStore) {
    let (map, other) = (fresh_snapshot_id(), fresh_volume_id());
    let h = hashes_with_fresh_prefix(4);

    assert_eq!(
        ok(store.get_block(&map, 0).await, "get from an empty map"),
        None,
        "conformance: an empty map must have no entries"
    );
    assert_eq!(ok(store.count_blocks(&map).await, "count an empty map"), 0);
    assert!(whole_map(store, &map).await.is_empty());

    // Out of index order, with a far index and a zero block.
    fill(
        store,
        &map,
        &[
            (7, &h[2]),
            (0, &h[0]),
            (1_000_000, &h[3]),
            (1, &h[1]),
            (3, ZERO_BLOCK),
        ],
    )
    .await;
    fill(store, &other, &[(0, &h[3]), (1, &h[3])]).await;

    for (index, expected) in [
        (0, Some(&h[0])),
        (1, Some(&h[1])),
        (2, None),
        (3, Some(&ZERO_BLOCK.to_owned())),
        (7, Some(&h[2])),
        (1_000_000, Some(&h[3])),
    ] {
        let got = ok(store.get_block(&map, index).await, "get a block");
        assert_eq!(
            got.as_ref(),
            expected,
            "conformance: get_block({index}) must return what put_block stored there"
        );
    }

    ok(store.put_block(&map, 1, &h[3]).await, "replace block 1");
    assert_eq!(
        ok(store.get_block(&map, 1).await, "get the replaced block"),
        Some(h[3].clone()),
        "conformance: put_block must replace the entry at an index"
    );
    assert_eq!(
        ok(store.count_blocks(&map).await, "count the map"),
        5,
        "conformance: replacing an entry must not add one"
    );
    assert_eq!(
        ok(store.count_blocks(&other).await, "count the other map"),
        2
    );

    let all = owned(&[
        (0, &h[0]),
        (1, &h[3]),
        (3, ZERO_BLOCK),
        (7, &h[2]),
        (1_000_000, &h[3]),
    ]);
    assert_eq!(
        whole_map(store, &map).await,
        all,
        "conformance: list_blocks must return every entry in index order"
    );
    for (start, limit, expected) in [
        (0, 2, &all[0..2]),
        (2, 2, &all[2..4]),
        (3, 1, &all[2..3]),
        (4, 10, &all[3..5]),
        (8, 2, &all[4..5]),
        (1_000_001, 2, &all[5..5]),
        (0, 0, &all[0..0]),
    ] {
        let page = ok(
            store.list_blocks(&map, start, limit).await,
            "list a page of the map",
        );
        assert_eq!(
            page, expected,
            "conformance: list_blocks(start {start}, limit {limit}) must return the entries \
             from that index on, in order, at most limit"
        );
    }
    // Walking the map page by page, as readers do.
    let mut walked = Vec::new();
    let mut next = 0;
    loop {
        let page = ok(store.list_blocks(&map, next, 2).await, "list a page");
        let Some((last, _)) = page.last() else {
            break;
        };
        next = last + 1;
        walked.extend(page);
    }
    assert_eq!(
        walked, all,
        "conformance: paging through a map must visit every entry once"
    );

    ok(store.delete_blocks(&map).await, "delete the map");
    assert_eq!(
        ok(store.count_blocks(&map).await, "count the deleted map"),
        0,
        "conformance: delete_blocks must remove every entry"
    );
    assert!(
        whole_map(store, &map).await.is_empty(),
        "conformance: delete_blocks must remove every entry"
    );
    assert_eq!(
        ok(store.get_block(&map, 0).await, "get a deleted block"),
        None
    );
    assert_eq!(
        whole_map(store, &other).await,
        owned(&[(0, &h[3]), (1, &h[3])]),
        "conformance: delete_blocks must leave other maps alone"
    );
    ok(store.delete_blocks(&map).await, "delete the map again");
    ok(
        store.delete_blocks(&fresh_snapshot_id()).await,
        "delete an unknown map",
    );
}

/// `copy_blocks` makes the destination an exact copy of the source,
/// replacing all it had, and returns the number of entries copied.
pub async fn check_copy_blocks(store: &dyn MetaStore) {
    let (from, to) = (fresh_volume_id(), fresh_snapshot_id());
    let h = hashes_with_fresh_prefix(6);
    let source = [(0, &*h[0]), (1, &h[1]), (5, ZERO_BLOCK), (9, &h[2])];
    fill(store, &from, &source).await;
    // The destination has entries at indices the source has and lacks.
    fill(store, &to, &[(1, &h[3]), (2, &h[4]), (20, &h[5])]).await;

    let copied = ok(store.copy_blocks(&from, &to).await, "copy a map");
    assert_eq!(
        copied, 4,
        "conformance: copy_blocks must return the number of entries copied"
    );
    assert_eq!(
        whole_map(store, &to).await,
        owned(&source),
        "conformance: copy_blocks must make the destination an exact copy of the source"
    );
    assert_eq!(
        whole_map(store, &from).await,
        owned(&source),
        "conformance: copy_blocks must leave the source as it was"
    );

    let copied = ok(store.copy_blocks(&from, &to).await, "copy it again");
    assert_eq!(copied, 4, "conformance: copy_blocks must be repeatable");
    assert_eq!(whole_map(store, &to).await, owned(&source));

    let fresh = fresh_snapshot_id();
    let copied = ok(store.copy_blocks(&from, &fresh).await, "copy to a new map");
    assert_eq!(copied, 4);
    assert_eq!(
        whole_map(store, &fresh).await,
        owned(&source),
        "conformance: copy_blocks to a new map must create it"
    );

    let copied = ok(
        store.copy_blocks(&from, &from).await,
        "copy a map onto itself",
    );
    assert_eq!(copied, 4);
    assert_eq!(
        whole_map(store, &from).await,
        owned(&source),
        "conformance: copying a map onto itself must leave it as it was"
    );

    let copied = ok(
        store.copy_blocks(&fresh_volume_id(), &to).await,
        "copy an empty map",
    );
    assert_eq!(
        copied, 0,
        "conformance: copying an empty map must copy nothing"
    );
    assert!(
        whole_map(store, &to).await.is_empty(),
        "conformance: copying an empty map must empty the destination"
    );
}

/// `merge_blocks` copies into `into` the entries of `base` at indices `into`
/// lacks, keeping `into`'s own.
pub async fn check_merge_blocks(store: &dyn MetaStore) {
    let (base, into) = (fresh_snapshot_id(), fresh_snapshot_id());
    let h = hashes_with_fresh_prefix(5);
    let parent = [(0, &*h[0]), (1, &h[1]), (2, &h[2]), (5, ZERO_BLOCK)];
    fill(store, &base, &parent).await;
    fill(store, &into, &[(1, &h[3]), (3, &h[4])]).await;
    let merged = owned(&[
        (0, &h[0]),
        (1, &h[3]),
        (2, &h[2]),
        (3, &h[4]),
        (5, ZERO_BLOCK),
    ]);

    ok(store.merge_blocks(&base, &into).await, "merge a map");
    assert_eq!(
        whole_map(store, &into).await,
        merged,
        "conformance: merge_blocks must add the base's entries at indices `into` lacks \
         and keep `into`'s own"
    );
    assert_eq!(
        whole_map(store, &base).await,
        owned(&parent),
        "conformance: merge_blocks must leave the base as it was"
    );

    ok(store.merge_blocks(&base, &into).await, "merge it again");
    assert_eq!(
        whole_map(store, &into).await,
        merged,
        "conformance: merging twice must change nothing more"
    );
    ok(
        store.merge_blocks(&fresh_snapshot_id(), &into).await,
        "merge an empty map",
    );
    assert_eq!(
        whole_map(store, &into).await,
        merged,
        "conformance: merging an empty map must change nothing"
    );
    ok(
        store.merge_blocks(&into, &into).await,
        "merge a map into itself",
    );
    assert_eq!(whole_map(store, &into).await, merged);

    let empty = fresh_volume_id();
    ok(
        store.merge_blocks(&base, &empty).await,
        "merge into an empty map",
    );
    assert_eq!(
        whole_map(store, &empty).await,
        owned(&parent),
        "conformance: merging into an empty map must copy the base"
    );
}

/// `referenced_hashes` pages through the distinct hashes that maps
/// reference, in order, leaving out zero blocks and hashes no map holds any
/// more.
pub async fn check_referenced_hashes(store: &dyn MetaStore) {
    // The hashes share a prefix no other check uses, so in a shared store
    // they are the first ones after it.
    let h = hashes_with_fresh_prefix(5);
    let prefix = &h[0][..16];
    let (first, second) = (fresh_snapshot_id(), fresh_volume_id());
    fill(
        store,
        &first,
        &[
            (0, &h[0]),
            (1, &h[1]),
            (2, &h[2]),
            (3, ZERO_BLOCK),
            (4, &h[0]),
        ],
    )
    .await;
    fill(
        store,
        &second,
        &[(0, &h[1]), (1, &h[4]), (2, &h[3]), (3, ZERO_BLOCK)],
    )
    .await;
    let gone = hashes_with_fresh_prefix(1).remove(0);
    let unreferenced = fresh_snapshot_id();
    fill(store, &unreferenced, &[(0, &gone)]).await;
    ok(store.delete_blocks(&unreferenced).await, "delete a map");

    let ours = |page: &[String]| -> Vec<String> {
        page.iter()
            .take_while(|hash| hash.starts_with(prefix))
            .cloned()
            .collect()
    };
    let mut expected = h.clone();
    expected.sort();

    let page = ok(
        store.referenced_hashes(Some(prefix), 2).await,
        "list the first page",
    );
    assert_eq!(
        page,
        expected[0..2],
        "conformance: referenced_hashes must return the distinct hashes after `after`, in \
         order, at most limit"
    );
    let page = ok(
        store.referenced_hashes(Some(&page[1]), 2).await,
        "list the second page",
    );
    assert_eq!(page, expected[2..4]);
    let page = ok(
        store.referenced_hashes(Some(&page[1]), 2).await,
        "list the third page",
    );
    assert_eq!(
        ours(&page),
        expected[4..5],
        "conformance: referenced_hashes must end each hash's run once"
    );
    let page = ok(
        store.referenced_hashes(Some(prefix), 0).await,
        "list an empty page",
    );
    assert!(page.is_empty(), "conformance: a limit of 0 returns nothing");

    let page = ok(
        store.referenced_hashes(Some(&gone[..16]), 1).await,
        "list after a deleted map's hash",
    );
    assert_ne!(
        page.first(),
        Some(&gone),
        "conformance: referenced_hashes must leave out hashes of deleted maps"
    );

    // Every page from the start: strictly ascending (so distinct), no zero
    // blocks, ours among them.
    let mut all: Vec<String> = Vec::new();
    loop {
        let page = ok(
            store
                .referenced_hashes(all.last().map(String::as_str), 50)
                .await,
            "list a page of every referenced hash",
        );
        assert!(page.len() <= 50, "conformance: at most limit hashes");
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    assert!(
        all.windows(2).all(|pair| pair[0] < pair[1]),
        "conformance: referenced_hashes must list each hash once, in order"
    );
    assert!(
        !all.iter().any(|hash| hash == ZERO_BLOCK),
        "conformance: referenced_hashes must leave out {ZERO_BLOCK:?}"
    );
    for hash in &h {
        assert!(
            all.contains(hash),
            "conformance: referenced_hashes from the start must reach {hash}"
        );
    }
    assert!(!all.contains(&gone));

    // Once the second map is gone, the hashes only it held are no longer
    // referenced; the one the first map holds too still is.
    ok(store.delete_blocks(&second).await, "delete the second map");
    let page = ok(
        store.referenced_hashes(Some(prefix), 10).await,
        "list after deleting a map",
    );
    let mut still = vec![h[0].clone(), h[1].clone(), h[2].clone()];
    still.sort();
    assert_eq!(
        ours(&page),
        still,
        "conformance: referenced_hashes must follow deleted maps"
    );
}

/// `delete_orphan_block_maps` removes the maps of IDs that have no snapshot
/// or volume record, and keeps those that do. It empties every record-less
/// map in the store, so it must not run beside other checks.
pub async fn check_orphan_block_maps(store: &dyn MetaStore) {
    use super::records::{sample_snapshot, sample_volume};
    let h = hashes_with_fresh_prefix(3);
    let (snapshot_id, volume_id, orphan) =
        (fresh_snapshot_id(), fresh_volume_id(), fresh_snapshot_id());
    ok(
        store
            .insert_snapshot(&sample_snapshot(&snapshot_id, "us-east-1", "111111111111"))
            .await,
        "insert a snapshot",
    );
    ok(
        store
            .insert_volume(&sample_volume(&volume_id, "us-east-1", "111111111111"))
            .await,
        "insert a volume",
    );
    fill(store, &snapshot_id, &[(0, &h[0])]).await;
    fill(store, &volume_id, &[(1, &h[1])]).await;
    fill(store, &orphan, &[(2, &h[2]), (3, ZERO_BLOCK)]).await;
    let removed = ok(store.delete_orphan_block_maps().await, "delete orphan maps");
    assert!(
        removed >= 2,
        "conformance: both orphan entries must be removed, got {removed}"
    );
    assert!(
        whole_map(store, &orphan).await.is_empty(),
        "conformance: the orphan map must be gone"
    );
    assert_eq!(whole_map(store, &snapshot_id).await, owned(&[(0, &h[0])]));
    assert_eq!(whole_map(store, &volume_id).await, owned(&[(1, &h[1])]));
}

/// `referenced_among` answers which of the given hashes some map references.
pub async fn check_referenced_among(store: &dyn MetaStore) {
    let h = hashes_with_fresh_prefix(3);
    let map = fresh_snapshot_id();
    fill(store, &map, &[(0, &h[0]), (1, &h[1])]).await;
    let mut found = ok(
        store
            .referenced_among(&[h[0].clone(), h[2].clone(), h[1].clone()])
            .await,
        "ask which hashes are referenced",
    );
    found.sort();
    let mut expected = vec![h[0].clone(), h[1].clone()];
    expected.sort();
    assert_eq!(
        found, expected,
        "conformance: referenced_among must return exactly the referenced ones"
    );
    assert!(ok(store.referenced_among(&[]).await, "ask about nothing").is_empty());
}

/// `put_blocks` sets many entries of one map at once, replacing existing
/// ones, exactly as that many `put_block` calls would.
pub async fn check_block_map_batches(store: &dyn MetaStore) {
    let map = fresh_snapshot_id();
    let h = hashes_with_fresh_prefix(3);
    ok(store.put_block(&map, 5, &h[0]).await, "put one entry");
    let batch: Vec<(i64, String)> = vec![
        (9, h[1].clone()),
        (5, h[2].clone()),
        (2, ZERO_BLOCK.to_owned()),
    ];
    ok(store.put_blocks(&map, &batch).await, "put a batch");
    ok(store.put_blocks(&map, &[]).await, "put an empty batch");
    assert_eq!(
        whole_map(store, &map).await,
        vec![
            (2, ZERO_BLOCK.to_owned()),
            (5, h[2].clone()),
            (9, h[1].clone())
        ],
        "conformance: a batch sets every entry and replaces existing ones"
    );
}
