//! Snapshots and their data: the EBS direct APIs (start, put blocks,
//! complete, list, read) and the EC2 snapshot operations (describe, delete,
//! copy, create from a volume).
//!
//! A snapshot's data is its block map (index → content hash) in the
//! repository plus the blocks in the block store. Blocks of zeros are never
//! stored; the map records them as `ZERO_BLOCK` when a client wrote them.

use sha2::{Digest, Sha256};

use crate::blocks::{BLOCK_SIZE, BlockHash, is_all_zero};
use crate::error::{Error, ResourceKind, Result};
use crate::filter::{self, Filter};
use crate::ids;
use crate::model::{ImageState, Snapshot, SnapshotState, Tag};
use crate::page;
use crate::repo::{ImageListQuery, RecordQuery, StoreError, ZERO_BLOCK};
use crate::service::{Caller, Hangar};
use crate::tags::{self, TagSpecification};

/// AWS's largest EBS volume, in GiB.
pub const MAX_VOLUME_GIB: i64 = 65_536;
/// Blocks per GiB at 512 KiB each.
pub const BLOCKS_PER_GIB: i64 = 2048;
/// Default and bounds of `StartSnapshot`'s `Timeout`, in minutes.
pub const DEFAULT_TIMEOUT_MINUTES: i64 = 60;
/// The volume ID AWS reports for snapshots that have none.
pub const NO_VOLUME: &str = "vol-ffffffff";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartSnapshotInput {
    pub volume_size_gib: Option<i64>,
    pub parent_snapshot_id: Option<String>,
    pub tags: Vec<Tag>,
    pub description: Option<String>,
    pub client_token: Option<String>,
    pub encrypted: Option<bool>,
    pub kms_key_arn: Option<String>,
    pub timeout_minutes: Option<i64>,
}

/// One block as `ListSnapshotBlocks` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    pub index: i64,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockListing {
    pub blocks: Vec<BlockEntry>,
    pub volume_size_gib: i64,
    pub expiry_ms: i64,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedBlock {
    pub index: i64,
    pub first_token: Option<String>,
    pub second_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedBlockListing {
    pub blocks: Vec<ChangedBlock>,
    pub volume_size_gib: i64,
    pub expiry_ms: i64,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DescribeSnapshotsInput {
    pub snapshot_ids: Vec<String>,
    pub owners: Vec<String>,
    pub restorable_by: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribeSnapshotsOutput {
    pub snapshots: Vec<Snapshot>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopySnapshotInput {
    pub source_region: String,
    pub source_snapshot_id: String,
    pub description: Option<String>,
    pub encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    pub tag_specifications: Vec<TagSpecification>,
}

/// How long a block token handed out by a listing stays valid. Tokens name
/// content, so they never actually go stale; this is what we promise.
const TOKEN_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;

/// A block token: the first 16 bytes of the content hash, hex. It proves the
/// caller listed the block and pins the content it saw.
fn block_token(hash_hex: &str) -> String {
    hash_hex.chars().take(32).collect()
}

pub(crate) fn new_snapshot(
    snapshot_id: String,
    caller: &Caller,
    volume_size_gib: i64,
    now: i64,
) -> Snapshot {
    Snapshot {
        snapshot_id,
        region: caller.region.clone(),
        owner_id: caller.account_id.clone(),
        owner_alias: None,
        volume_id: NO_VOLUME.into(),
        volume_size_gib,
        state: SnapshotState::Pending,
        state_message: None,
        progress: 0,
        start_ms: now,
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
        revision: 0,
    }
}

fn check_snapshot_id(snapshot_id: &str) -> Result<()> {
    if ids::is_well_formed(ids::SNAPSHOT, snapshot_id) {
        Ok(())
    } else {
        Err(Error::MalformedId {
            kind: ResourceKind::Snapshot,
            id: snapshot_id.to_string(),
        })
    }
}

fn not_found(snapshot_id: &str) -> Error {
    Error::ResourceNotFound {
        kind: ResourceKind::Snapshot,
        ids: vec![snapshot_id.to_string()],
    }
}

impl Hangar {
    fn can_see_snapshot(caller: &Caller, snapshot: &Snapshot) -> bool {
        snapshot.region == caller.region
            && (snapshot.owner_id == caller.account_id
                || snapshot
                    .create_volume_permissions
                    .iter()
                    .any(|who| who == "all" || who == &caller.account_id))
    }

    /// A snapshot the caller can see, with a timed-out pending snapshot
    /// turned into an error first.
    pub async fn visible_snapshot(&self, caller: &Caller, snapshot_id: &str) -> Result<Snapshot> {
        check_snapshot_id(snapshot_id)?;
        let snapshot = self
            .store
            .get_snapshot(snapshot_id)
            .await?
            .filter(|snapshot| Self::can_see_snapshot(caller, snapshot))
            .ok_or_else(|| not_found(snapshot_id))?;
        self.expire_if_timed_out(snapshot).await
    }

    pub async fn owned_snapshot(&self, caller: &Caller, snapshot_id: &str) -> Result<Snapshot> {
        let snapshot = self.visible_snapshot(caller, snapshot_id).await?;
        if snapshot.owner_id != caller.account_id {
            return Err(Error::UnauthorizedOperation);
        }
        Ok(snapshot)
    }

    /// A pending snapshot past its timeout becomes `error` and loses its
    /// blocks (AWS: a snapshot not completed in time fails).
    async fn expire_if_timed_out(&self, mut snapshot: Snapshot) -> Result<Snapshot> {
        let now = self.clock.now_ms();
        if snapshot.state == SnapshotState::Pending
            && snapshot.timeout_ms.is_some_and(|at| now >= at)
        {
            snapshot.state = SnapshotState::Error;
            snapshot.state_message =
                Some("The snapshot was not completed before its timeout".into());
            match self.store.update_snapshot(&snapshot).await {
                Ok(revision) => snapshot.revision = revision,
                Err(StoreError::Conflict(_)) => {
                    return self
                        .store
                        .get_snapshot(&snapshot.snapshot_id)
                        .await?
                        .ok_or_else(|| not_found(&snapshot.snapshot_id));
                }
                Err(other) => return Err(other.into()),
            }
            self.store.delete_blocks(&snapshot.snapshot_id).await?;
        }
        Ok(snapshot)
    }

    /// Applies `change` to a snapshot the caller owns, retrying on races.
    pub(crate) async fn update_owned_snapshot<F>(
        &self,
        caller: &Caller,
        snapshot_id: &str,
        mut change: F,
    ) -> Result<Snapshot>
    where
        F: FnMut(&mut Snapshot) -> Result<()>,
    {
        for _ in 0..8 {
            let mut snapshot = self.owned_snapshot(caller, snapshot_id).await?;
            change(&mut snapshot)?;
            match self.store.update_snapshot(&snapshot).await {
                Ok(revision) => {
                    snapshot.revision = revision;
                    return Ok(snapshot);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Internal(format!(
            "too much contention updating {snapshot_id}"
        )))
    }

    // ---- EBS direct APIs ----

    pub async fn start_snapshot(
        &self,
        caller: &Caller,
        input: StartSnapshotInput,
    ) -> Result<Snapshot> {
        let size = input
            .volume_size_gib
            .ok_or_else(|| Error::MissingParameter("VolumeSize".into()))?;
        if !(1..=MAX_VOLUME_GIB).contains(&size) {
            return Err(Error::InvalidVolumeSize(format!(
                "The volume size must be between 1 and {MAX_VOLUME_GIB} GiB"
            )));
        }
        if input.encrypted == Some(true) || input.kms_key_arn.is_some() {
            return Err(Error::InvalidParameterValue(
                "Hangar does not encrypt snapshots: Encrypted and KmsKeyArn are not supported"
                    .into(),
            ));
        }
        let timeout_minutes = input.timeout_minutes.unwrap_or(DEFAULT_TIMEOUT_MINUTES);
        if !(10..=4320).contains(&timeout_minutes) {
            return Err(Error::invalid_value(
                "Timeout",
                &timeout_minutes.to_string(),
                "Timeout must be between 10 and 4320 minutes.",
            ));
        }
        if let Some(description) = &input.description
            && description.chars().count() > 255
        {
            return Err(Error::InvalidParameterValue(
                "Description must be at most 255 characters long".into(),
            ));
        }
        let mut snapshot_tags = Vec::new();
        tags::merge(&mut snapshot_tags, &input.tags)?;
        if let Some(parent_id) = &input.parent_snapshot_id {
            let parent = self.visible_snapshot(caller, parent_id).await?;
            if parent.state != SnapshotState::Completed {
                return Err(Error::IncorrectSnapshotState {
                    snapshot_id: parent_id.clone(),
                    state: parent.state.as_str().into(),
                    detail: "a parent snapshot must be completed".into(),
                });
            }
            if parent.volume_size_gib > size {
                return Err(Error::InvalidVolumeSize(format!(
                    "The volume size must be at least the parent snapshot's {} GiB",
                    parent.volume_size_gib
                )));
            }
        }
        let now = self.clock.now_ms();
        let snapshot_id = ids::generate(ids::SNAPSHOT);
        if let Some(token) = &input.client_token {
            let fingerprint = format!(
                "{size}|{:?}|{:?}|{:?}",
                input.parent_snapshot_id, input.description, input.tags
            );
            let scope = format!("StartSnapshot/{}/{}", caller.account_id, caller.region);
            if let Some((first_fingerprint, first_id)) = self
                .store
                .claim_client_token(&scope, token, &fingerprint, &snapshot_id)
                .await?
            {
                if first_fingerprint != fingerprint {
                    return Err(Error::IdempotentParameterMismatch(token.clone()));
                }
                return self
                    .store
                    .get_snapshot(&first_id)
                    .await?
                    .ok_or_else(|| not_found(&first_id));
            }
        }
        let mut snapshot = new_snapshot(snapshot_id, caller, size, now);
        snapshot.description = input.description;
        snapshot.tags = snapshot_tags;
        snapshot.parent_snapshot_id = input.parent_snapshot_id;
        snapshot.client_token = input.client_token;
        snapshot.timeout_ms = Some(now + timeout_minutes * 60 * 1000);
        self.store.insert_snapshot(&snapshot).await?;
        Ok(snapshot)
    }

    /// Stores one block of a pending snapshot. `checksum` is the SHA-256 the
    /// client computed; the data must match it.
    pub async fn put_snapshot_block(
        &self,
        caller: &Caller,
        snapshot_id: &str,
        index: i64,
        data: Vec<u8>,
        declared_length: i64,
        checksum: [u8; 32],
    ) -> Result<()> {
        let snapshot = self.owned_snapshot(caller, snapshot_id).await?;
        if snapshot.state != SnapshotState::Pending {
            return Err(Error::IncorrectSnapshotState {
                snapshot_id: snapshot_id.into(),
                state: snapshot.state.as_str().into(),
                detail: "blocks can only be written to a pending snapshot".into(),
            });
        }
        let block_count = snapshot.volume_size_gib * BLOCKS_PER_GIB;
        if !(0..block_count).contains(&index) {
            return Err(Error::InvalidBlock(format!(
                "The block index {index} is out of range: the snapshot has blocks 0 to {}",
                block_count - 1
            )));
        }
        if declared_length != BLOCK_SIZE as i64 || data.len() != BLOCK_SIZE {
            return Err(Error::InvalidBlock(format!(
                "A block must be exactly {BLOCK_SIZE} bytes; got {} bytes (declared {declared_length})",
                data.len()
            )));
        }
        let hash = BlockHash::of(&data);
        if hash.0 != checksum {
            return Err(Error::InvalidBlock(
                "The checksum does not match the block data".into(),
            ));
        }
        // The block is durable before the map points at it; a crash between
        // the two leaves an unreferenced block for the collector.
        if is_all_zero(&data) {
            self.store.put_block(snapshot_id, index, ZERO_BLOCK).await?;
            return Ok(());
        }
        let _writing = self.block_guard.read().await;
        let put_ms = self.clock.wall_ms();
        self.blocks.put(&hash, data).await?;
        self.refresh_if_stale(&hash, put_ms).await?;
        self.store
            .put_block(snapshot_id, index, &hash.to_hex())
            .await?;
        Ok(())
    }

    /// The block writers' time fence, for collectors on other nodes (which
    /// the in-process guard does not reach): a collector deletes only
    /// blocks last written more than the grace before its mark began, so a
    /// map entry committed within half the grace of the block's last put
    /// is seen by any mark that could take the block. A writer that got
    /// here later than that (a stall) puts the block again, refreshing its
    /// time, before it commits the map entry. `put_ms` is the wall time
    /// just before the put.
    pub async fn refresh_if_stale(&self, hash: &BlockHash, put_ms: i64) -> Result<()> {
        if !self.block_write_is_stale(put_ms) {
            return Ok(());
        }
        // Read back rather than kept: a copy of every block for this rare
        // case would cost more. If it is already gone (a stall longer than
        // the grace), this fails and no map entry is written: the caller's
        // put is retried whole.
        let data = self.blocks.get(hash).await?;
        self.blocks.put(hash, data).await?;
        Ok(())
    }

    /// Whether a write that put its blocks at `put_ms` is past the time
    /// fence (half the collectors' grace), see [`Hangar::refresh_if_stale`].
    pub(crate) fn block_write_is_stale(&self, put_ms: i64) -> bool {
        let grace_ms = self
            .leases
            .block_grace_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        self.clock.wall_ms().saturating_sub(put_ms) > grace_ms / 2
    }

    /// Completes a pending snapshot: checks the number of blocks written
    /// (and the aggregate checksum when given), inherits the parent's other
    /// blocks, and makes it `completed`.
    pub async fn complete_snapshot(
        &self,
        caller: &Caller,
        snapshot_id: &str,
        changed_blocks_count: i64,
        aggregate_checksum: Option<[u8; 32]>,
    ) -> Result<Snapshot> {
        let snapshot = self.owned_snapshot(caller, snapshot_id).await?;
        match snapshot.state {
            SnapshotState::Pending => {}
            // Completing twice is harmless, as on AWS.
            SnapshotState::Completed => return Ok(snapshot),
            SnapshotState::Error => {
                return Err(Error::IncorrectSnapshotState {
                    snapshot_id: snapshot_id.into(),
                    state: "error".into(),
                    detail: "the snapshot failed and cannot be completed".into(),
                });
            }
        }
        let written = self.store.count_blocks(snapshot_id).await?;
        if written != changed_blocks_count {
            return Err(Error::InvalidParameterValue(format!(
                "ChangedBlocksCount is {changed_blocks_count} but {written} blocks were written to {snapshot_id}"
            )));
        }
        if let Some(expected) = aggregate_checksum {
            // LINEAR aggregation: SHA-256 over the blocks' SHA-256 digests in
            // index order.
            let zero_hash = BlockHash::of(&vec![0u8; BLOCK_SIZE]);
            let mut hasher = Sha256::new();
            let mut start = 0;
            loop {
                let page = self.store.list_blocks(snapshot_id, start, 1000).await?;
                let Some((last, _)) = page.last() else { break };
                start = last + 1;
                for (_, entry) in &page {
                    let digest = if entry == ZERO_BLOCK {
                        zero_hash
                    } else {
                        BlockHash::from_hex(entry).ok_or_else(|| {
                            Error::Internal(format!("bad block map entry {entry}"))
                        })?
                    };
                    hasher.update(digest.0);
                }
            }
            let actual: [u8; 32] = hasher.finalize().into();
            if actual != expected {
                return Err(Error::InvalidParameterValue(
                    "The aggregate checksum does not match the blocks written".into(),
                ));
            }
        }
        if let Some(parent) = &snapshot.parent_snapshot_id {
            self.store.merge_blocks(parent, snapshot_id).await?;
        }
        let now = self.clock.now_ms();
        self.update_owned_snapshot(caller, snapshot_id, |snapshot| {
            snapshot.state = SnapshotState::Completed;
            snapshot.progress = 100;
            snapshot.completion_ms = Some(now);
            snapshot.timeout_ms = None;
            Ok(())
        })
        .await
    }

    fn readable(snapshot: &Snapshot) -> Result<()> {
        if snapshot.state == SnapshotState::Completed {
            Ok(())
        } else {
            Err(Error::IncorrectSnapshotState {
                snapshot_id: snapshot.snapshot_id.clone(),
                state: snapshot.state.as_str().into(),
                detail: "only completed snapshots can be read".into(),
            })
        }
    }

    pub async fn list_snapshot_blocks(
        &self,
        caller: &Caller,
        snapshot_id: &str,
        starting_index: Option<i64>,
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<BlockListing> {
        let snapshot = self.visible_snapshot(caller, snapshot_id).await?;
        Self::readable(&snapshot)?;
        let limit = page::check_max_results(max_results, 100, 10_000)?.unwrap_or(10_000);
        let mut start = starting_index.unwrap_or(0).max(0);
        if let Some(token) = next_token {
            let after: i64 = page::decode("ListSnapshotBlocks", token)?
                .parse()
                .map_err(|_| Error::InvalidPaginationToken)?;
            start = start.max(after + 1);
        }
        let mut blocks = Vec::new();
        let mut next = None;
        let mut cursor = start;
        'pages: loop {
            let page = self.store.list_blocks(snapshot_id, cursor, 1000).await?;
            let Some((last, _)) = page.last() else { break };
            cursor = last + 1;
            for (index, entry) in page {
                if entry == ZERO_BLOCK {
                    continue;
                }
                if blocks.len() == limit {
                    next = Some(page::encode(
                        "ListSnapshotBlocks",
                        &(blocks.last().map_or(index, |b: &BlockEntry| b.index)).to_string(),
                    ));
                    break 'pages;
                }
                blocks.push(BlockEntry {
                    index,
                    token: block_token(&entry),
                });
            }
        }
        Ok(BlockListing {
            blocks,
            volume_size_gib: snapshot.volume_size_gib,
            expiry_ms: self.clock.now_ms() + TOKEN_LIFETIME_MS,
            next_token: next,
        })
    }

    pub async fn list_changed_blocks(
        &self,
        caller: &Caller,
        first_snapshot_id: Option<&str>,
        second_snapshot_id: &str,
        starting_index: Option<i64>,
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<ChangedBlockListing> {
        let second = self.visible_snapshot(caller, second_snapshot_id).await?;
        Self::readable(&second)?;
        if let Some(first_id) = first_snapshot_id {
            let first = self.visible_snapshot(caller, first_id).await?;
            Self::readable(&first)?;
        }
        let limit = page::check_max_results(max_results, 100, 10_000)?.unwrap_or(10_000);
        let mut start = starting_index.unwrap_or(0).max(0);
        if let Some(token) = next_token {
            let after: i64 = page::decode("ListChangedBlocks", token)?
                .parse()
                .map_err(|_| Error::InvalidPaginationToken)?;
            start = start.max(after + 1);
        }
        let second_map = self.load_map(second_snapshot_id, start).await?;
        let first_map = match first_snapshot_id {
            Some(first) => self.load_map(first, start).await?,
            None => Default::default(),
        };
        let mut indices: Vec<i64> = second_map.keys().chain(first_map.keys()).copied().collect();
        indices.sort_unstable();
        indices.dedup();
        let mut blocks = Vec::new();
        let mut next = None;
        for index in indices {
            let first = first_map.get(&index);
            let second = second_map.get(&index);
            let data = |entry: Option<&String>| {
                entry
                    .filter(|entry| entry.as_str() != ZERO_BLOCK)
                    .map(|entry| block_token(entry))
            };
            let (first_token, second_token) = (data(first), data(second));
            if first_token == second_token {
                continue;
            }
            if blocks.len() == limit {
                let last: &ChangedBlock = blocks.last().expect("limit is at least 100");
                next = Some(page::encode("ListChangedBlocks", &last.index.to_string()));
                break;
            }
            blocks.push(ChangedBlock {
                index,
                first_token,
                second_token,
            });
        }
        Ok(ChangedBlockListing {
            blocks,
            volume_size_gib: second.volume_size_gib,
            expiry_ms: self.clock.now_ms() + TOKEN_LIFETIME_MS,
            next_token: next,
        })
    }

    async fn load_map(
        &self,
        map_id: &str,
        start: i64,
    ) -> Result<std::collections::BTreeMap<i64, String>> {
        let mut map = std::collections::BTreeMap::new();
        let mut cursor = start;
        loop {
            let page = self.store.list_blocks(map_id, cursor, 5000).await?;
            let Some((last, _)) = page.last() else { break };
            cursor = last + 1;
            map.extend(page);
        }
        Ok(map)
    }

    /// Reads one block of a completed snapshot; the token from a listing
    /// must match the block's content. Returns the data and its SHA-256.
    pub async fn get_snapshot_block(
        &self,
        caller: &Caller,
        snapshot_id: &str,
        index: i64,
        token: &str,
    ) -> Result<(Vec<u8>, BlockHash)> {
        let snapshot = self.visible_snapshot(caller, snapshot_id).await?;
        Self::readable(&snapshot)?;
        let block_count = snapshot.volume_size_gib * BLOCKS_PER_GIB;
        if !(0..block_count).contains(&index) {
            return Err(Error::InvalidBlock(format!(
                "The block index {index} is out of range: the snapshot has blocks 0 to {}",
                block_count - 1
            )));
        }
        let entry = self
            .store
            .get_block(snapshot_id, index)
            .await?
            .filter(|entry| entry != ZERO_BLOCK)
            .ok_or(Error::InvalidBlockToken)?;
        if block_token(&entry) != token {
            return Err(Error::InvalidBlockToken);
        }
        let hash = BlockHash::from_hex(&entry)
            .ok_or_else(|| Error::Internal(format!("bad block map entry {entry}")))?;
        let data = self.blocks.get(&hash).await?;
        Ok((data, hash))
    }

    // ---- EC2 snapshot operations ----

    pub async fn describe_snapshots(
        &self,
        caller: &Caller,
        input: DescribeSnapshotsInput,
    ) -> Result<DescribeSnapshotsOutput> {
        if !input.snapshot_ids.is_empty() && input.max_results.is_some() {
            return Err(Error::InvalidParameterCombination(
                "The parameter snapshotSet cannot be used with the parameter maxResults".into(),
            ));
        }
        let max_results = page::check_max_results(input.max_results, 5, 1000)?;
        filter::check_limits(&input.filters)?;
        let probe = crate::catalog::snapshots_for("us-east-1").remove(0);
        for filter in &input.filters {
            if snapshot_filter_values(&probe, &filter.name).is_none() {
                return Err(filter::unknown_filter(&filter.name));
            }
        }
        for snapshot_id in &input.snapshot_ids {
            check_snapshot_id(snapshot_id)?;
        }
        let mut owner_ids = Vec::new();
        let mut owner_aliases = Vec::new();
        for owner in &input.owners {
            match owner.as_str() {
                "self" => owner_ids.push(caller.account_id.clone()),
                "amazon" => owner_aliases.push(owner.clone()),
                account if ids::is_account_id(account) => owner_ids.push(account.to_string()),
                other => {
                    return Err(Error::InvalidParameterValue(format!(
                        "Invalid value '{other}' for Owner"
                    )));
                }
            }
        }
        let now = self.clock.now_ms();
        let mut candidates = if input.snapshot_ids.is_empty() {
            self.store
                .list_snapshots(&RecordQuery {
                    region: Some(caller.region.clone()),
                    owner_ids: None,
                })
                .await?
        } else {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for snapshot_id in &input.snapshot_ids {
                match self.store.get_snapshot(snapshot_id).await? {
                    Some(snapshot) if Self::can_see_snapshot(caller, &snapshot) => {
                        found.push(snapshot)
                    }
                    _ => missing.push(snapshot_id.clone()),
                }
            }
            if !missing.is_empty() {
                return Err(Error::ResourceNotFound {
                    kind: ResourceKind::Snapshot,
                    ids: missing,
                });
            }
            found.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
            found.dedup_by(|a, b| a.snapshot_id == b.snapshot_id);
            found
        };
        candidates.retain(|snapshot| Self::can_see_snapshot(caller, snapshot));
        let mut selected = Vec::new();
        for snapshot in candidates {
            let snapshot = if snapshot.state == SnapshotState::Pending
                && snapshot.timeout_ms.is_some_and(|at| now >= at)
            {
                self.expire_if_timed_out(snapshot).await?
            } else {
                snapshot
            };
            if !input.owners.is_empty()
                && !owner_ids.contains(&snapshot.owner_id)
                && !snapshot
                    .owner_alias
                    .as_ref()
                    .is_some_and(|alias| owner_aliases.contains(alias))
            {
                continue;
            }
            if !input.restorable_by.is_empty()
                && !input.restorable_by.iter().any(|who| {
                    let who = if who == "self" {
                        &caller.account_id
                    } else {
                        who
                    };
                    snapshot.owner_id == *who
                        || snapshot
                            .create_volume_permissions
                            .iter()
                            .any(|permitted| permitted == "all" || permitted == who)
                })
            {
                continue;
            }
            let owned = snapshot.owner_id == caller.account_id;
            let keep = input.filters.iter().all(|filter| {
                let mut values =
                    snapshot_filter_values(&snapshot, &filter.name).unwrap_or_default();
                if !owned && (filter.name == "tag-key" || filter.name.starts_with("tag:")) {
                    values.clear();
                }
                filter::matches_any(filter, &values)
            });
            if keep {
                selected.push(snapshot);
            }
        }
        let (page, next_token) = page::paginate(
            selected,
            "DescribeSnapshots",
            input.next_token.as_deref(),
            max_results,
            |snapshot| snapshot.snapshot_id.as_str(),
        )?;
        Ok(DescribeSnapshotsOutput {
            snapshots: page
                .into_iter()
                .map(|mut snapshot| {
                    if snapshot.owner_id != caller.account_id {
                        snapshot.tags.clear();
                    }
                    snapshot
                })
                .collect(),
            next_token,
        })
    }

    pub async fn delete_snapshot(
        &self,
        caller: &Caller,
        snapshot_id: &str,
        dry_run: bool,
    ) -> Result<()> {
        let snapshot = self.owned_snapshot(caller, snapshot_id).await?;
        if let Some(image_id) = self
            .image_using_snapshot(&snapshot.region, snapshot_id)
            .await?
        {
            return Err(Error::SnapshotInUse {
                snapshot_id: snapshot_id.into(),
                image_id,
            });
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        // The record and its map go together; the blocks it alone used are
        // reclaimed by the collector.
        self.store.delete_snapshot(snapshot_id).await?;
        Ok(())
    }

    /// A live (not deregistered) image in `region` whose mappings use the
    /// snapshot, if any.
    pub(crate) async fn image_using_snapshot(
        &self,
        region: &str,
        snapshot_id: &str,
    ) -> Result<Option<String>> {
        let images = self
            .store
            .list_images(&ImageListQuery {
                region: region.to_string(),
                owner_ids: None,
                owner_aliases: None,
                exclude_deregistered: true,
            })
            .await?;
        Ok(images
            .into_iter()
            .filter(|image| image.state != ImageState::Deregistered)
            .find(|image| image.snapshot_ids().any(|id| id == snapshot_id))
            .map(|image| image.image_id))
    }

    /// `CopySnapshot`: a new snapshot in the caller's region holding the same
    /// data as the source (in this or another served region).
    pub async fn copy_snapshot(
        &self,
        caller: &Caller,
        input: CopySnapshotInput,
        dry_run: bool,
    ) -> Result<String> {
        if !self.settings.regions.contains(&input.source_region) {
            return Err(Error::InvalidRegion(input.source_region.clone()));
        }
        if input.encrypted == Some(true) || input.kms_key_id.is_some() {
            return Err(Error::InvalidParameterValue(
                "Hangar does not encrypt snapshots: Encrypted and KmsKeyId are not supported"
                    .into(),
            ));
        }
        let source_caller = Caller {
            account_id: caller.account_id.clone(),
            region: input.source_region.clone(),
        };
        let source = self
            .visible_snapshot(&source_caller, &input.source_snapshot_id)
            .await?;
        Self::readable(&source)?;
        let snapshot_tags = tags::tags_for(&input.tag_specifications, "snapshot", &["snapshot"])?;
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let now = self.clock.now_ms();
        let mut copy = new_snapshot(
            ids::generate(ids::SNAPSHOT),
            caller,
            source.volume_size_gib,
            now,
        );
        copy.description = input.description.or_else(|| {
            Some(format!(
                "[Copied {} from {}] {}",
                source.snapshot_id,
                source.region,
                source.description.clone().unwrap_or_default()
            ))
        });
        copy.tags = snapshot_tags;
        copy.source_snapshot_id = Some(source.snapshot_id.clone());
        copy.source_region = Some(source.region.clone());
        // A copy interrupted by a crash times out into `error` instead of
        // staying pending forever.
        copy.timeout_ms = Some(now + DEFAULT_TIMEOUT_MINUTES * 60 * 1000);
        self.store.insert_snapshot(&copy).await?;
        self.store
            .copy_blocks(&source.snapshot_id, &copy.snapshot_id)
            .await?;
        self.finish_snapshot(&copy.snapshot_id).await?;
        Ok(copy.snapshot_id)
    }

    /// Marks a pending snapshot completed (internal; no ownership check).
    pub(crate) async fn finish_snapshot(&self, snapshot_id: &str) -> Result<()> {
        for _ in 0..8 {
            let Some(mut snapshot) = self.store.get_snapshot(snapshot_id).await? else {
                return Err(not_found(snapshot_id));
            };
            if snapshot.state == SnapshotState::Completed {
                return Ok(());
            }
            snapshot.state = SnapshotState::Completed;
            snapshot.progress = 100;
            snapshot.completion_ms = Some(self.clock.now_ms());
            snapshot.timeout_ms = None;
            match self.store.update_snapshot(&snapshot).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Internal(format!(
            "too much contention updating {snapshot_id}"
        )))
    }

    /// `CreateSnapshot` from a volume.
    pub async fn create_snapshot(
        &self,
        caller: &Caller,
        volume_id: &str,
        description: Option<String>,
        tag_specifications: &[TagSpecification],
        dry_run: bool,
    ) -> Result<Snapshot> {
        let volume = self.owned_volume(caller, volume_id).await?;
        let snapshot_tags = tags::tags_for(tag_specifications, "snapshot", &["snapshot"])?;
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let now = self.clock.now_ms();
        let mut snapshot = new_snapshot(ids::generate(ids::SNAPSHOT), caller, volume.size_gib, now);
        snapshot.volume_id = volume.volume_id.clone();
        snapshot.description = description;
        snapshot.tags = snapshot_tags;
        snapshot.timeout_ms = Some(now + DEFAULT_TIMEOUT_MINUTES * 60 * 1000);
        self.store.insert_snapshot(&snapshot).await?;
        self.store
            .copy_blocks(&volume.volume_id, &snapshot.snapshot_id)
            .await?;
        self.finish_snapshot(&snapshot.snapshot_id).await?;
        self.store
            .get_snapshot(&snapshot.snapshot_id)
            .await?
            .ok_or_else(|| not_found(&snapshot.snapshot_id))
    }

    /// The mark-and-sweep block collector. Mark: every hash any block map
    /// references. Sweep: the stored blocks that are unmarked and were last
    /// written more than `grace_ms` before the mark began are candidates;
    /// under the exclusive block guard (no block write in flight) the
    /// candidates still unreferenced are deleted. A writer holds the guard
    /// shared from its block put to its map entry, so a block is never
    /// deleted between the two (on this node; writers on other nodes are
    /// kept safe by the time fence, see [`Hangar::refresh_if_stale`], and
    /// one node at a time collects, under the "block-collector" lease).
    /// Returns (kept, deleted).
    pub async fn collect_blocks(&self, grace_ms: i64) -> Result<(u64, u64)> {
        // Wall time, not the service clock: it is compared with the block
        // files' modification times, and an advanced dev clock must not
        // remove the grace period.
        let mark_started = self.clock.wall_ms();
        self.store.delete_orphan_block_maps().await?;
        let mut referenced = std::collections::HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .referenced_hashes(cursor.as_deref(), 10_000)
                .await?;
            let Some(tail) = page.last().cloned() else {
                break;
            };
            referenced.extend(page);
            cursor = Some(tail);
        }
        let mut kept = 0;
        let mut deleted = 0;
        let mut after: Option<BlockHash> = None;
        loop {
            let stored = self.blocks.list(after.as_ref(), 1000).await?;
            let Some(last) = stored.last() else {
                break;
            };
            after = Some(last.hash);
            let candidates: Vec<BlockHash> = stored
                .iter()
                .filter(|block| {
                    block.modified_ms < mark_started - grace_ms
                        && !referenced.contains(&block.hash.to_hex())
                })
                .map(|block| block.hash)
                .collect();
            kept += (stored.len() - candidates.len()) as u64;
            if candidates.is_empty() {
                continue;
            }
            let _sweeping = self.block_guard.write().await;
            let names: Vec<String> = candidates.iter().map(BlockHash::to_hex).collect();
            let still: std::collections::HashSet<String> = self
                .store
                .referenced_among(&names)
                .await?
                .into_iter()
                .collect();
            for hash in candidates {
                if still.contains(&hash.to_hex()) {
                    kept += 1;
                } else {
                    self.blocks.delete(&hash).await?;
                    deleted += 1;
                }
            }
        }
        Ok((kept, deleted))
    }
}

/// The values of a snapshot for one `DescribeSnapshots` filter, or `None`
/// for a name that is not one.
pub fn snapshot_filter_values(snapshot: &Snapshot, name: &str) -> Option<Vec<String>> {
    let values = match name {
        "description" => snapshot.description.iter().cloned().collect(),
        "encrypted" => vec![snapshot.encrypted.to_string()],
        "owner-alias" => snapshot.owner_alias.iter().cloned().collect(),
        "owner-id" => vec![snapshot.owner_id.clone()],
        "progress" => vec![format!("{}%", snapshot.progress)],
        "snapshot-id" => vec![snapshot.snapshot_id.clone()],
        "start-time" => vec![crate::timefmt::iso_millis(snapshot.start_ms)],
        "status" => vec![snapshot.state.as_str().to_string()],
        "storage-tier" => vec!["standard".into()],
        "volume-id" => vec![snapshot.volume_id.clone()],
        "volume-size" => vec![snapshot.volume_size_gib.to_string()],
        "tag-key" => snapshot.tags.iter().map(|tag| tag.key.clone()).collect(),
        other if other.starts_with("tag:") => {
            let key = &other["tag:".len()..];
            snapshot
                .tags
                .iter()
                .filter(|tag| tag.key == key)
                .map(|tag| tag.value.clone())
                .collect()
        }
        _ => return None,
    };
    Some(values)
}
