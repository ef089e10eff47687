//! [`LocalBlockStore`]: the default engine, blocks as files in a directory
//! (the server's is `<data_dir>/blocks`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use hangar_core::blocks::{BlockError, BlockHash, BlockStore, StoredBlock};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;

use crate::format::{HEADER_LEN, TMP_PREFIX, block_name, encode_header};
use crate::object::{ObjectBlockStore, read_file_into};

/// Blocks as files at `<root>/<first 2 hex>/<64 hex>`, where `root` is the
/// blocks directory (`<data_dir>/blocks`): the same fan-out and format as
/// [`ObjectBlockStore`]'s `<prefix>/blocks/…`, with `root` standing for
/// `<prefix>/blocks`.
///
/// `put` is this type's own durable write (temporary file, `fsync`, rename,
/// `fsync` of the directory); `get`, `list` and `delete` go through an
/// [`ObjectBlockStore`] over `object_store`'s [`LocalFileSystem`], so the
/// header check and verification are the exact code every engine runs.
#[derive(Debug, Clone)]
pub struct LocalBlockStore {
    /// The blocks directory, canonical.
    root: PathBuf,
    objects: ObjectBlockStore,
}

impl LocalBlockStore {
    /// Opens (creating it if needed, and its parents) the block store in
    /// directory `root`, normally `<data_dir>/blocks`; everything under it
    /// belongs to the store. Does blocking file-system work (meant for
    /// start-up). Does not sweep: call
    /// [`sweep_incomplete`](BlockStore::sweep_incomplete) at start-up, before
    /// any write.
    pub fn open(root: &Path) -> Result<Self, BlockError> {
        let io = |what: &str, path: &Path, error: io::Error| {
            BlockError::Backend(format!("{what} {}: {error}", path.display()))
        };
        if !root.is_dir() {
            std::fs::create_dir_all(root)
                .map_err(|error| io("cannot create block directory", root, error))?;
            // Make the new directory's entry durable.
            if let Some(parent) = root
                .parent()
                .filter(|parent| !parent.as_os_str().is_empty())
            {
                sync_dir(parent).map_err(|error| io("cannot sync", parent, error))?;
            }
        }
        let root = std::fs::canonicalize(root)
            .map_err(|error| io("cannot resolve block directory", root, error))?;
        // Reads, listings and deletes only; writes never go through it (see
        // the crate docs), but fsync stays on should one ever be added.
        let files = LocalFileSystem::new_with_prefix(&root)
            .map_err(|error| BlockError::Backend(error.to_string()))?
            .with_fsync(true);
        let objects = ObjectBlockStore::with_blocks_path(Arc::new(files), ObjectPath::default());
        Ok(Self { root, objects })
    }

    /// The blocks directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `hash`: `<root>/<first 2 hex>/<64 hex>`. Always under
    /// the root: the name is asserted to be 64 lowercase hex digits.
    pub fn path_for(&self, hash: &BlockHash) -> PathBuf {
        let name = block_name(hash);
        self.root.join(&name[..2]).join(name)
    }
}

impl LocalBlockStore {
    /// `put` on the calling thread. Content addressing: a good copy already
    /// there only needs its time refreshed (see the crate docs, "Puts").
    fn put_here(&self, hash: &BlockHash, data: &[u8]) -> Result<(), BlockError> {
        let dest = self.path_for(hash);
        if refresh_existing(hash, &dest, None) {
            return Ok(());
        }
        let header = encode_header(hash, data)?;
        write_durably(&self.root, &dest, &header, data)
            .map_err(|error| BlockError::Backend(format!("writing {}: {error}", dest.display())))
    }
}

fn joined(error: tokio::task::JoinError) -> BlockError {
    BlockError::Backend(format!("block store task failed: {error}"))
}

/// Makes the directory entries in `dir` durable. Unix only: elsewhere a
/// directory cannot be opened to be synced.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Writes `header` + `data` to `dest` so that, on return, the file and its
/// directory entry are on stable storage, and a crash at any point leaves
/// either the old state or the whole new file (plus, maybe, a `.tmp-` file).
fn write_durably(
    root: &Path,
    dest: &Path,
    header: &[u8; HEADER_LEN],
    data: &[u8],
) -> io::Result<()> {
    let dir = dest.parent().expect("a block path has a fan-out directory");
    let tmp = dir.join(format!("{TMP_PREFIX}{:032x}", rand::random::<u128>()));
    let create = || OpenOptions::new().write(true).create_new(true).open(&tmp);
    let mut file = match create() {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            // First block of this fan-out directory: create it and make its
            // entry durable.
            std::fs::create_dir_all(dir)?;
            sync_dir(root)?;
            create()?
        }
        Err(error) => return Err(error),
    };
    let written = (|| {
        file.write_all(header)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, dest)
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(error);
    }
    sync_dir(dir)
}

thread_local! {
    /// The stored copy read by `refresh_existing`, reused block after block
    /// on each blocking thread.
    static HELD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// True when `dest` holds a good copy of the block (its header and checksum
/// pass, as on every read), with exactly `expected` as its content when
/// given, and its modification time is now refreshed; false when it is
/// missing, damaged, other bytes or cannot be refreshed, and must be
/// written. The refreshed time is not fsynced: it only matters until the
/// caller's map entry commits (the collector never takes a referenced
/// block), and a crash before that leaves the block unreferenced anyway.
fn refresh_existing(hash: &BlockHash, dest: &Path, expected: Option<&[u8]>) -> bool {
    let Ok(file) = File::open(dest) else {
        return false;
    };
    let good = HELD.with(|held| {
        let mut held = held.borrow_mut();
        let Ok(len) = file.metadata().map(|metadata| metadata.len()) else {
            return false;
        };
        let Ok(reader) = file.try_clone() else {
            return false;
        };
        read_file_into(hash, reader, 0..len, len, &mut held).is_ok()
            && expected.is_none_or(|data| held[..] == data[..])
    });
    good && file.set_modified(std::time::SystemTime::now()).is_ok()
}

/// Removes every `.tmp-*` file under `dir` (recursively; symlinks are
/// removed, never followed), plus `object_store`'s own staging files
/// (`<name>#<digits>`) should anything ever have written through
/// [`LocalFileSystem`]. Returns how many.
fn sweep_dir(dir: &Path) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            removed += sweep_dir(&entry.path())?;
            continue;
        }
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_leftover(&name) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(removed)
}

fn is_leftover(name: &str) -> bool {
    if name.starts_with(TMP_PREFIX) {
        return true;
    }
    // object_store's LocalFileSystem stages a put of `x` as `x#<n>`.
    matches!(name.rsplit_once('#'), Some((_, suffix))
        if !suffix.is_empty() && suffix.bytes().all(|byte| byte.is_ascii_digit()))
}

#[async_trait]
impl BlockStore for LocalBlockStore {
    async fn put(&self, hash: &BlockHash, data: Vec<u8>) -> Result<(), BlockError> {
        debug_assert_eq!(BlockHash::of(&data), *hash, "put with a wrong hash");
        let store = self.clone();
        let hash = *hash;
        tokio::task::spawn_blocking(move || store.put_here(&hash, &data))
            .await
            .map_err(joined)?
    }

    fn put_blocking(&self, hash: &BlockHash, data: &[u8]) -> Option<Result<(), BlockError>> {
        debug_assert_eq!(BlockHash::of(data), *hash, "put with a wrong hash");
        Some(self.put_here(hash, data))
    }

    async fn get(&self, hash: &BlockHash) -> Result<Vec<u8>, BlockError> {
        self.objects.get(hash).await
    }

    fn refresh_if_holding_blocking(
        &self,
        hash: &BlockHash,
        data: &[u8],
    ) -> Option<Result<bool, BlockError>> {
        // A damaged copy is not "held": the caller's put rewrites it.
        Some(Ok(refresh_existing(hash, &self.path_for(hash), Some(data))))
    }

    fn get_blocking_into(
        &self,
        hash: &BlockHash,
        content: &mut Vec<u8>,
    ) -> Option<Result<(), BlockError>> {
        let path = self.path_for(hash);
        let io = |error: io::Error| {
            if error.kind() == io::ErrorKind::NotFound {
                BlockError::NotFound(hash.to_hex())
            } else {
                BlockError::Backend(format!("reading {}: {error}", path.display()))
            }
        };
        let read = std::fs::File::open(&path).and_then(|file| {
            let len = file.metadata()?.len();
            Ok((file, len))
        });
        Some(match read {
            Ok((file, len)) => read_file_into(hash, file, 0..len, len, content),
            Err(error) => Err(io(error)),
        })
    }

    /// Not fsynced: a crash may bring a deleted block back, which content
    /// addressing makes harmless (the collector deletes it again).
    async fn delete(&self, hash: &BlockHash) -> Result<(), BlockError> {
        self.objects.delete(hash).await
    }

    async fn list(
        &self,
        after: Option<&BlockHash>,
        limit: usize,
    ) -> Result<Vec<StoredBlock>, BlockError> {
        self.objects.list(after, limit).await
    }

    async fn sweep_incomplete(&self) -> Result<usize, BlockError> {
        let root = self.root.clone();
        let removed = tokio::task::spawn_blocking(move || {
            sweep_dir(&root).map_err(|error| {
                BlockError::Backend(format!("sweeping {}: {error}", root.display()))
            })
        })
        .await
        .map_err(joined)??;
        if removed > 0 {
            tracing::info!(removed, "removed leftovers of interrupted block writes");
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_names() {
        assert!(is_leftover(".tmp-0123"));
        assert!(is_leftover(".tmp-"));
        let hex = BlockHash::of(b"x").to_hex();
        assert!(is_leftover(&format!("{hex}#1")));
        assert!(is_leftover(&format!("{hex}#12")));
        assert!(!is_leftover(&hex));
        assert!(!is_leftover(&format!("{hex}#")));
        assert!(!is_leftover(&format!("{hex}#a1")));
        assert!(!is_leftover("tmp-1"));
    }

    #[test]
    fn paths_stay_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlockStore::open(dir.path()).unwrap();
        let hash = BlockHash::of(b"hello");
        let path = store.path_for(&hash);
        assert!(path.starts_with(store.root().join("2c")));
        assert_eq!(path.file_name().unwrap().to_str().unwrap(), hash.to_hex());
    }

    #[tokio::test]
    async fn a_put_of_a_good_copy_refreshes_it_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlockStore::open(dir.path()).unwrap();
        let data = vec![5u8; 4096];
        let hash = BlockHash::of(&data);
        store.put(&hash, data.clone()).await.unwrap();
        let path = store.path_for(&hash);
        let inode = std::fs::metadata(&path).unwrap().ino();
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        store.put(&hash, data.clone()).await.unwrap();
        let metadata = std::fs::metadata(&path).unwrap();
        // The same file (not rewritten), its time now.
        assert_eq!(metadata.ino(), inode);
        let age = metadata.modified().unwrap().elapsed().unwrap_or_default();
        assert!(age < std::time::Duration::from_secs(60), "{age:?}");
        assert_eq!(store.get(&hash).await.unwrap(), data);
        // A damaged copy is rewritten (a new file), not refreshed.
        let mut raw = std::fs::read(&path).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        store.put(&hash, data.clone()).await.unwrap();
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), inode);
        assert_eq!(store.get(&hash).await.unwrap(), data);
    }
}
