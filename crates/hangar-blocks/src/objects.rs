//! Files of S3 objects: `<root>/<bucket>/<file name>`, where the server's
//! root is `<data_dir>/buckets`, the bucket is a valid bucket name (checked:
//! lowercase letters, digits, dots and hyphens, never `..`) and the file name
//! comes from [`hangar_core::objects::object_file_name`] (hex of the key's
//! hash and a unique suffix, checked), so no key or name can reach outside
//! the root.
//!
//! # Encrypted at rest
//!
//! Every object file is encrypted with AES-256-GCM under a key of its own,
//! derived from the [`MasterKey`] and a random salt in the file's header
//! (see [`crate::crypto`]). The layout, all integers little-endian:
//!
//! | bytes | content |
//! |---|---|
//! | 4 | magic `HGOB` |
//! | 1 | format version, `1` |
//! | 1 | algorithm, `1` = AES-256-GCM |
//! | 4 | plaintext bytes per chunk, u32, `65536` ([`CHUNK_SIZE`]) |
//! | 32 | salt of the file's key |
//! | ... | the chunks |
//!
//! The 42-byte header ([`HEADER_LEN`]) is followed by the chunks in order:
//! chunk `i` is the AES-256-GCM ciphertext of plaintext bytes
//! `[i * 65536, min((i + 1) * 65536, size))` followed by its 16-byte tag.
//! Every chunk but the last holds a full 65,536 bytes; the last holds 1 to
//! 65,536, and an empty object is one empty final chunk (the tag alone), so
//! a file always ends with a chunk marked final. So the file of an `n`-byte
//! object is `42 + n + 16 * max(1, ceil(n / 65536))` bytes
//! ([`encrypted_len`]), and the plaintext size follows from the file size
//! alone ([`plaintext_len`]): with `b = file size - 42`, `q = b / 65552`,
//! `r = b % 65552`, the size is `q * 65536` when `r = 0`, else
//! `q * 65536 + r - 16`, and a file whose `r` is 1 to 15, or 16 after full
//! chunks, or shorter than 58 bytes, is malformed.
//!
//! A reader ([`ObjectReader`]) checks the header, derives the size from the
//! file size and verifies the final chunk when it opens the file, so a file
//! cut short, extended or written under another key fails at once; then it
//! verifies each chunk's tag before returning any of its bytes. Every such
//! failure is [`io::ErrorKind::InvalidData`].
//!
//! # Writes
//!
//! Writes follow the block store's recipe: a `.tmp-<random>` file in the
//! bucket's folder, written (encrypted chunk by chunk) as the body streams
//! in, the MD5 of the plaintext computed on the way, `sync_all`, renamed to
//! its final name, the folder fsynced.
//!
//! Sealed chunks gather in a 1 MiB buffer aligned to 4 KiB and go to the
//! file with `O_DIRECT` where the file system takes it (Linux; not tmpfs),
//! in 4 KiB multiples, and only the file's last partial 4 KiB through the
//! page cache (a second, ordinary descriptor; positional writes, so the two
//! never overlap). Object files are written once and fsynced before their
//! record commits anyway; going around the page cache saves the kernel's
//! copy of every byte (a quarter of a store task's CPU) and keeps large
//! objects from evicting what is read more often. A file system that
//! refuses `O_DIRECT` at open or at the first write gets ordinary writes. A writer dropped before
//! [`ObjectWriter::finish`] removes its temporary file; temporary files
//! left by a crash are removed by [`ObjectFiles::sweep_temporary`] at
//! start-up. A file renamed into place whose record never got committed (a
//! crash in between) is not swept here: it needs the records, and is left
//! to the later collector ([`ObjectFiles::bucket_folders`] and
//! [`ObjectFiles::list_bucket_files`] are its view of the files).
//!
//! The calls are blocking; async callers run them in `spawn_blocking`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use hangar_core::buckets::validate_bucket_name;
use hangar_core::objects::is_object_file_name;
use md5::{Digest, Md5};

use crate::crypto::{FileCipher, MasterKey, SALT_LEN, TAG_LEN, random_bytes};
use crate::format::TMP_PREFIX;

/// The first bytes of every object file.
pub const MAGIC: &[u8; 4] = b"HGOB";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// The algorithm byte of AES-256-GCM.
pub const ALGORITHM_AES_256_GCM: u8 = 1;
/// Plaintext bytes per chunk (all but the last chunk are full).
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Bytes of the header: magic, version, algorithm, chunk size, salt.
pub const HEADER_LEN: u64 = 4 + 1 + 1 + 4 + SALT_LEN as u64;

const CHUNK: u64 = CHUNK_SIZE as u64;
const TAG: u64 = TAG_LEN as u64;
/// Bytes of a full chunk on disk.
const SEALED_CHUNK: u64 = CHUNK + TAG;

/// Chunks in the file of an object of `size` bytes (at least one).
fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK).max(1)
}

/// Bytes of the file of an object of `size` bytes.
pub fn encrypted_len(size: u64) -> u64 {
    HEADER_LEN + size + TAG * chunk_count(size)
}

/// Bytes of the object held in a file of `file_len` bytes, `None` when no
/// object has a file of that size.
pub fn plaintext_len(file_len: u64) -> Option<u64> {
    let body = file_len.checked_sub(HEADER_LEN)?;
    let (full, rest) = (body / SEALED_CHUNK, body % SEALED_CHUNK);
    let size = match rest {
        0 if full > 0 => full * CHUNK,
        // An empty final chunk only ever stands alone (an empty object).
        _ if rest < TAG || (rest == TAG && full > 0) => return None,
        _ => full * CHUNK + rest - TAG,
    };
    debug_assert_eq!(encrypted_len(size), file_len);
    Some(size)
}

fn header(salt: &[u8; SALT_LEN]) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..4].copy_from_slice(MAGIC);
    header[4] = FORMAT_VERSION;
    header[5] = ALGORITHM_AES_256_GCM;
    header[6..10].copy_from_slice(&(CHUNK_SIZE as u32).to_le_bytes());
    header[10..].copy_from_slice(salt);
    header
}

#[derive(Debug, Clone)]
pub struct ObjectFiles {
    root: PathBuf,
    key: Arc<MasterKey>,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_owned())
}

fn corrupt(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

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

/// Whether any bucket folder under `root` holds an object file (a name
/// passing [`is_object_file_name`]). A missing root holds none. The server
/// asks before creating a master key: object files and no key means the
/// key was lost, and a new one could read none of them.
pub fn holds_object_files(root: &Path) -> io::Result<bool> {
    let buckets = match std::fs::read_dir(root) {
        Ok(buckets) => buckets,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    for bucket in buckets {
        let bucket = bucket?;
        if !bucket.file_type()?.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(bucket.path())? {
            if entry?.file_name().to_str().is_some_and(is_object_file_name) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

impl ObjectFiles {
    /// Opens (creating it if needed) the root of every bucket's folder;
    /// files are encrypted under keys derived from `key`.
    pub fn open(root: &Path, key: MasterKey) -> io::Result<Self> {
        if !root.is_dir() {
            std::fs::create_dir_all(root)?;
            if let Some(parent) = root
                .parent()
                .filter(|parent| !parent.as_os_str().is_empty())
            {
                sync_dir(parent)?;
            }
        }
        Ok(Self {
            root: std::fs::canonicalize(root)?,
            key: Arc::new(key),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bucket_dir(&self, bucket: &str) -> io::Result<PathBuf> {
        validate_bucket_name(bucket).map_err(|_| invalid("not a bucket name"))?;
        Ok(self.root.join(bucket))
    }

    /// Where an object's file is; refuses names that are not object file
    /// names.
    pub fn path_of(&self, bucket: &str, file_name: &str) -> io::Result<PathBuf> {
        if !is_object_file_name(file_name) {
            return Err(invalid("not an object file name"));
        }
        Ok(self.bucket_dir(bucket)?.join(file_name))
    }

    /// Starts writing a new object file in the bucket's folder.
    pub fn writer(&self, bucket: &str) -> io::Result<ObjectWriter> {
        self.new_writer(bucket, true)
    }

    /// A writer that computes no MD5: its [`WrittenObject::md5`] is 16
    /// random bytes, an opaque tag. For the parts store tasks write, whose
    /// ETags no client checks against the content (a multipart object's
    /// ETag is not its MD5), so the MD5 pass (a fifth of a store's CPU) is
    /// skipped; the archive carries its own digests, and every chunk its
    /// GCM tag.
    pub fn writer_without_md5(&self, bucket: &str) -> io::Result<ObjectWriter> {
        self.new_writer(bucket, false)
    }

    fn new_writer(&self, bucket: &str, with_md5: bool) -> io::Result<ObjectWriter> {
        let dir = self.bucket_dir(bucket)?;
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir)?;
            sync_dir(&self.root)?;
        }
        let salt = random_bytes::<SALT_LEN>()?;
        let cipher = FileCipher::new(&self.key, &salt);
        let tmp = dir.join(format!("{TMP_PREFIX}{:032x}", rand::random::<u128>()));
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        // From here on, `drop` removes the temporary file.
        Ok(ObjectWriter::new(file, tmp, dir, cipher, &salt, with_md5))
    }

    /// Opens an object's file for reading its plaintext; checks the header,
    /// the size and the final chunk (see [`ObjectReader`]).
    pub fn open_read(&self, bucket: &str, file_name: &str) -> io::Result<ObjectReader> {
        ObjectReader::open(File::open(self.path_of(bucket, file_name)?)?, &self.key)
    }

    /// As [`ObjectFiles::open_read`], for reading the whole file once, in
    /// order (store and restore tasks): the file is read in 4 MiB windows
    /// with `O_DIRECT` where the file system takes it, around the page
    /// cache, as it was written (see the module's "Writes").
    pub fn open_read_sequential(&self, bucket: &str, file_name: &str) -> io::Result<ObjectReader> {
        let path = self.path_of(bucket, file_name)?;
        let mut reader = ObjectReader::open(File::open(&path)?, &self.key)?;
        reader.window = open_direct_read(&path).map(DirectWindow::new);
        Ok(reader)
    }

    /// Removes an object's file; a missing one is not an error.
    pub fn remove(&self, bucket: &str, file_name: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path_of(bucket, file_name)?) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// Removes a bucket's folder if it holds nothing (the collector, after
    /// the bucket was deleted). A folder that is missing or not empty (a
    /// bucket of that name created again meanwhile) is left as it is.
    pub fn remove_bucket_folder_if_empty(&self, bucket: &str) -> io::Result<()> {
        match std::fs::remove_dir(self.bucket_dir(bucket)?) {
            Ok(()) => sync_dir(&self.root),
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// The folders under the root named like buckets, sorted.
    pub fn bucket_folders(&self) -> io::Result<Vec<String>> {
        let mut folders = Vec::new();
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            if let Ok(name) = entry.file_name().into_string()
                && validate_bucket_name(&name).is_ok()
            {
                folders.push(name);
            }
        }
        folders.sort();
        Ok(folders)
    }

    /// The object files in a bucket's folder (names passing
    /// [`is_object_file_name`]: no temporary files) with their modification
    /// times, sorted by name. A missing folder has none.
    pub fn list_bucket_files(&self, bucket: &str) -> io::Result<Vec<(String, SystemTime)>> {
        let entries = match std::fs::read_dir(self.bucket_dir(bucket)?) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !is_object_file_name(&name) {
                continue;
            }
            // A file removed since the listing is simply not there.
            let metadata = match entry.metadata() {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            if metadata.is_file() {
                files.push((name, metadata.modified()?));
            }
        }
        files.sort();
        Ok(files)
    }

    /// Removes temporary files of interrupted writes in every bucket's
    /// folder. Returns how many.
    pub fn sweep_temporary(&self) -> io::Result<usize> {
        let mut removed = 0;
        for bucket in std::fs::read_dir(&self.root)? {
            let bucket = bucket?;
            if !bucket.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(bucket.path())? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                        Err(error) => return Err(error),
                    }
                }
            }
        }
        Ok(removed)
    }
}

/// An object file being written; see [`ObjectFiles::writer`]. Plaintext is
/// gathered into 64 KiB chunks, in place in the output buffer; a full chunk
/// is sealed once more data arrives (until then it may be the final one),
/// and [`ObjectWriter::finish`] seals the last one as final.
pub struct ObjectWriter {
    /// The ordinary descriptor: `None` once finished, or after a failed
    /// write (which leaves the file unusable).
    file: Option<File>,
    /// An `O_DIRECT` descriptor of the same file, while the file system
    /// takes direct writes.
    direct: Option<File>,
    tmp: PathBuf,
    dir: PathBuf,
    /// `None` for writers made without it.
    md5: Option<Md5>,
    size: u64,
    cipher: FileCipher,
    /// Output buffer; `out[start..start + OUT_LEN]` is the 4 KiB-aligned
    /// region in use (a fixed-size `Vec`, so it never moves).
    out: Vec<u8>,
    start: usize,
    /// Bytes in the region: sealed output, then the gathered plaintext of
    /// the chunk being filled (from `chunk_at`).
    filled: usize,
    chunk_at: usize,
    /// Bytes of the file written so far (a 4 KiB multiple until `finish`).
    offset: u64,
    /// Index of the chunk being gathered.
    index: u64,
}

/// Alignment of direct writes (the largest logical block size in use).
const DIRECT_ALIGN: usize = 4096;
/// The output region: sixteen sealed chunks and the unaligned rest of a
/// flush.
const OUT_LEN: usize = 16 * (CHUNK_SIZE + TAG_LEN) + DIRECT_ALIGN;

/// What [`ObjectWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenObject {
    /// Bytes of plaintext.
    pub size: u64,
    /// MD5 of the plaintext (16 random bytes for writers made with
    /// [`ObjectFiles::writer_without_md5`]).
    pub md5: [u8; 16],
}

/// An `O_DIRECT` descriptor for writing `path`, `None` where the platform
/// or the file system has none.
fn open_direct(path: &Path) -> Option<File> {
    open_direct_with(path, OpenOptions::new().write(true))
}

/// An `O_DIRECT` descriptor for reading `path`, as [`open_direct`].
fn open_direct_read(path: &Path) -> Option<File> {
    open_direct_with(path, OpenOptions::new().read(true))
}

fn open_direct_with(path: &Path, options: &mut OpenOptions) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_DIRECT).open(path).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, options);
        None
    }
}

/// Bytes of a sequential reader's direct window.
const WINDOW_LEN: usize = 4 * 1024 * 1024;

/// A window of a file read with `O_DIRECT`: 4 KiB-aligned reads of 4 MiB
/// into an aligned buffer, from which chunks are copied out.
struct DirectWindow {
    file: File,
    buf: Vec<u8>,
    /// `buf[start..]` is aligned.
    start: usize,
    /// File offset and length of the bytes held.
    at: u64,
    len: usize,
}

impl DirectWindow {
    fn new(file: File) -> Self {
        let buf = vec![0u8; WINDOW_LEN + DIRECT_ALIGN];
        let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
        DirectWindow {
            file,
            buf,
            start,
            at: 0,
            len: 0,
        }
    }

    /// Fills `out` from file offset `offset`; `Ok(false)` when the file
    /// ends first.
    fn read(&mut self, offset: u64, out: &mut [u8]) -> io::Result<bool> {
        use std::os::unix::fs::FileExt;
        let end = offset + out.len() as u64;
        if offset < self.at || end > self.at + self.len as u64 {
            self.len = 0;
            self.at = offset / DIRECT_ALIGN as u64 * DIRECT_ALIGN as u64;
            let region = &mut self.buf[self.start..self.start + WINDOW_LEN];
            while self.len < WINDOW_LEN {
                match self
                    .file
                    .read_at(&mut region[self.len..], self.at + self.len as u64)
                {
                    Ok(0) => break,
                    // A short read is the end of the file (or a short
                    // direct read): what follows is read by the next call.
                    Ok(n) if !n.is_multiple_of(DIRECT_ALIGN) => {
                        self.len += n;
                        break;
                    }
                    Ok(n) => self.len += n,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(error),
                }
            }
            if end > self.at + self.len as u64 {
                return Ok(false);
            }
        }
        let from = self.start + (offset - self.at) as usize;
        out.copy_from_slice(&self.buf[from..from + out.len()]);
        Ok(true)
    }
}

impl ObjectWriter {
    fn new(
        file: File,
        tmp: PathBuf,
        dir: PathBuf,
        cipher: FileCipher,
        salt: &[u8; SALT_LEN],
        with_md5: bool,
    ) -> Self {
        let direct = open_direct(&tmp);
        // This thread's last writer's buffer when there is one: memory
        // already touched (a store writes one part after another on the
        // same threads). Only `filled` bytes of it are ever written out.
        let out = SPARE_OUT
            .try_with(|spare| spare.borrow_mut().take())
            .ok()
            .flatten()
            .filter(|out| out.len() == OUT_LEN + DIRECT_ALIGN)
            .unwrap_or_else(|| vec![0u8; OUT_LEN + DIRECT_ALIGN]);
        let start = out.as_ptr().align_offset(DIRECT_ALIGN);
        let mut writer = ObjectWriter {
            file: Some(file),
            direct,
            tmp,
            dir,
            md5: with_md5.then(Md5::new),
            size: 0,
            cipher,
            out,
            start,
            filled: 0,
            chunk_at: 0,
            offset: 0,
            index: 0,
        };
        let header = header(salt);
        writer.region()[..header.len()].copy_from_slice(&header);
        writer.filled = header.len();
        writer.chunk_at = writer.filled;
        writer
    }

    fn region(&mut self) -> &mut [u8] {
        &mut self.out[self.start..self.start + OUT_LEN]
    }

    /// Writes `region[..len]` at the current offset: through the direct
    /// descriptor when `len` is a 4 KiB multiple and it is there, else
    /// through the ordinary one.
    fn write_out(&mut self, len: usize) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if len == 0 {
            return Ok(());
        }
        let offset = self.offset;
        let range = self.start..self.start + len;
        if len.is_multiple_of(DIRECT_ALIGN)
            && let Some(direct) = &self.direct
        {
            match direct.write_all_at(&self.out[range.clone()], offset) {
                Ok(()) => {
                    self.offset += len as u64;
                    return Ok(());
                }
                // The file system takes no direct writes after all (or not
                // at this alignment): ordinary writes from here on.
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    self.direct = None;
                }
                Err(error) => {
                    self.file = None;
                    return Err(error);
                }
            }
        }
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| invalid("writer finished or failed"))?;
        match file.write_all_at(&self.out[range], offset) {
            Ok(()) => {
                self.offset += len as u64;
                Ok(())
            }
            Err(error) => {
                self.file = None;
                Err(error)
            }
        }
    }

    /// Seals the gathered chunk in place and appends its tag; writes the
    /// region's aligned part out when another sealed chunk might not fit.
    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        if self.file.is_none() {
            return Err(invalid("writer finished or failed"));
        }
        let (index, at, end) = (
            self.index,
            self.start + self.chunk_at,
            self.start + self.filled,
        );
        let tag = self.cipher.seal(index, last, &mut self.out[at..end]);
        let filled = self.filled;
        self.region()[filled..filled + TAG_LEN].copy_from_slice(&tag);
        self.filled += TAG_LEN;
        self.index += 1;
        if OUT_LEN - self.filled < CHUNK_SIZE + TAG_LEN {
            let aligned = self.filled / DIRECT_ALIGN * DIRECT_ALIGN;
            self.write_out(aligned)?;
            let filled = self.filled;
            self.region().copy_within(aligned..filled, 0);
            self.filled -= aligned;
        }
        self.chunk_at = self.filled;
        Ok(())
    }

    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            return Err(invalid("writer finished or failed"));
        }
        while !data.is_empty() {
            if self.filled - self.chunk_at == CHUNK_SIZE {
                // More data follows: the full chunk is not the last.
                self.seal_chunk(false)?;
            }
            let take = (CHUNK_SIZE - (self.filled - self.chunk_at)).min(data.len());
            let (piece, rest) = data.split_at(take);
            let filled = self.filled;
            self.region()[filled..filled + take].copy_from_slice(piece);
            self.filled += take;
            if let Some(md5) = self.md5.as_mut() {
                md5.update(piece);
            }
            self.size += take as u64;
            data = rest;
        }
        Ok(())
    }

    /// Plaintext bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The MD5 of the plaintext written so far (zeros for a writer made
    /// without it).
    pub fn md5(&self) -> [u8; 16] {
        self.md5
            .as_ref()
            .map(|md5| md5.clone().finalize().into())
            .unwrap_or_default()
    }

    /// Seals the final chunk and makes the file durable under `file_name`
    /// (fsync, rename, fsync of the folder). On error the temporary file is
    /// removed.
    pub fn finish(mut self, file_name: &str) -> io::Result<WrittenObject> {
        if !is_object_file_name(file_name) {
            return Err(invalid("not an object file name"));
        }
        self.seal_chunk(true)?;
        // The aligned part directly, the rest (under 4 KiB) through the
        // page cache.
        let aligned = self.filled / DIRECT_ALIGN * DIRECT_ALIGN;
        self.write_out(aligned)?;
        let filled = self.filled;
        self.region().copy_within(aligned..filled, 0);
        self.filled -= aligned;
        self.direct = None;
        self.write_out(self.filled)?;
        self.filled = 0;
        let file = self
            .file
            .take()
            .ok_or_else(|| invalid("writer finished or failed"))?;
        let dest = self.dir.join(file_name);
        // One inode: this flushes what both descriptors wrote.
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &dest)?;
        // Renamed: nothing left for `drop` to remove.
        self.tmp = PathBuf::new();
        sync_dir(&self.dir)?;
        let md5 = match &self.md5 {
            Some(md5) => md5.clone().finalize().into(),
            None => rand::random::<[u8; 16]>(),
        };
        Ok(WrittenObject {
            size: self.size,
            md5,
        })
    }
}

thread_local! {
    /// One spare output buffer per thread, for the next [`ObjectWriter`].
    static SPARE_OUT: std::cell::RefCell<Option<Vec<u8>>> =
        const { std::cell::RefCell::new(None) };
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        self.file.take();
        self.direct.take();
        let out = std::mem::take(&mut self.out);
        let _ = SPARE_OUT.try_with(|spare| *spare.borrow_mut() = Some(out));
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The plaintext of an object file: [`Read`] and [`Seek`] over the object's
/// bytes. Opening checks the header, derives the size from the file's size
/// and verifies the final chunk, so [`ObjectReader::len`] is authenticated.
/// A read decrypts the chunk holding the position (only that one: a seek
/// costs nothing until the next read) and checks its tag before returning
/// any of its bytes; the last chunk read is kept, so sequential reads of
/// any size decrypt each chunk once. A failed check is
/// [`io::ErrorKind::InvalidData`]. Seeking past the end is allowed (reads
/// there return 0 bytes), before the start is [`io::ErrorKind::InvalidInput`].
pub struct ObjectReader {
    file: File,
    cipher: FileCipher,
    len: u64,
    chunks: u64,
    /// Plaintext position.
    pos: u64,
    /// Where the file's cursor is (to skip needless seeks).
    file_pos: u64,
    /// Plaintext of chunk `loaded` (room for the tag while it is checked).
    chunk: Vec<u8>,
    loaded: Option<u64>,
    /// Direct reads, for sequential readers where the file system takes
    /// them ([`ObjectFiles::open_read_sequential`]).
    window: Option<DirectWindow>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ObjectReader")
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl ObjectReader {
    fn open(mut file: File, key: &MasterKey) -> io::Result<Self> {
        let file_len = file.metadata()?.len();
        let mut head = [0u8; HEADER_LEN as usize];
        if file_len < HEADER_LEN {
            return Err(corrupt(format!(
                "object file of {file_len} bytes is shorter than its header"
            )));
        }
        file.read_exact(&mut head)?;
        if &head[..4] != MAGIC {
            return Err(corrupt("not an object file (bad magic)".into()));
        }
        if head[4] != FORMAT_VERSION {
            return Err(corrupt(format!(
                "object file format version {} is not supported",
                head[4]
            )));
        }
        if head[5] != ALGORITHM_AES_256_GCM {
            return Err(corrupt(format!(
                "object file algorithm {} is not supported",
                head[5]
            )));
        }
        let chunk_size = u32::from_le_bytes([head[6], head[7], head[8], head[9]]);
        if chunk_size as usize != CHUNK_SIZE {
            return Err(corrupt(format!(
                "object file chunk size {chunk_size} is not supported"
            )));
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&head[10..]);
        let len = plaintext_len(file_len).ok_or_else(|| {
            corrupt(format!(
                "object file of {file_len} bytes is truncated or extended (no object has that size)"
            ))
        })?;
        let mut reader = Self {
            file,
            cipher: FileCipher::new(key, &salt),
            len,
            chunks: chunk_count(len),
            pos: 0,
            file_pos: HEADER_LEN,
            chunk: Vec::with_capacity(CHUNK_SIZE + TAG_LEN),
            loaded: None,
            window: None,
        };
        // The final chunk's flag authenticates the size.
        reader.load(reader.chunks - 1)?;
        Ok(reader)
    }

    /// Bytes of plaintext.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads, checks and decrypts chunk `index` into `self.chunk`.
    fn load(&mut self, index: u64) -> io::Result<()> {
        self.loaded = None;
        let start = index * CHUNK;
        let plain = (self.len - start).min(CHUNK) as usize;
        let offset = HEADER_LEN + index * SEALED_CHUNK;
        self.chunk.clear();
        self.chunk.resize(plain + TAG_LEN, 0);
        if let Some(window) = self.window.as_mut() {
            match window.read(offset, &mut self.chunk) {
                Ok(true) => return self.open_loaded(index, plain),
                Ok(false) => {
                    self.chunk.clear();
                    return Err(corrupt(format!("object file chunk {index} was cut short")));
                }
                // The file system takes no direct reads after all:
                // ordinary reads from here on.
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    self.window = None;
                }
                Err(error) => {
                    self.chunk.clear();
                    return Err(error);
                }
            }
        }
        if self.file_pos != offset {
            self.file.seek(SeekFrom::Start(offset))?;
            self.file_pos = offset;
        }
        let read = self.file.read_exact(&mut self.chunk);
        if let Err(error) = read {
            // Unknown cursor after a failed read.
            self.file_pos = u64::MAX;
            self.chunk.clear();
            return Err(if error.kind() == io::ErrorKind::UnexpectedEof {
                corrupt(format!("object file chunk {index} was cut short"))
            } else {
                error
            });
        }
        self.file_pos = offset + (plain + TAG_LEN) as u64;
        self.open_loaded(index, plain)
    }

    /// Checks and decrypts the sealed chunk `index` read into `self.chunk`.
    fn open_loaded(&mut self, index: u64, plain: usize) -> io::Result<()> {
        let (body, tag) = self.chunk.split_at_mut(plain);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().expect("tag length");
        let opened = self.cipher.open(index, index + 1 == self.chunks, body, tag);
        if let Err(error) = opened {
            self.chunk.clear();
            return Err(error);
        }
        self.chunk.truncate(plain);
        self.loaded = Some(index);
        Ok(())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.len {
            return Ok(0);
        }
        let index = self.pos / CHUNK;
        if self.loaded != Some(index) {
            self.load(index)?;
        }
        let within = (self.pos - index * CHUNK) as usize;
        let count = buf.len().min(self.chunk.len() - within);
        buf[..count].copy_from_slice(&self.chunk[within..within + count]);
        self.pos += count as u64;
        Ok(count)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, target: SeekFrom) -> io::Result<u64> {
        let pos = match target {
            SeekFrom::Start(pos) => Some(pos),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        }
        .ok_or_else(|| invalid("seek before the start of the object"))?;
        self.pos = pos;
        Ok(pos)
    }
}

/// Lower-case hex of bytes (an ETag from an MD5).
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use hangar_core::objects::object_file_name;

    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_bytes([0x42; 32])
    }

    fn files() -> (tempfile::TempDir, ObjectFiles) {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = ObjectFiles::open(&dir.path().join("buckets"), key()).expect("open");
        (dir, files)
    }

    /// Deterministic, non-repeating test data.
    fn data(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
            .collect()
    }

    fn put(files: &ObjectFiles, name: &str, body: &[u8], piece: usize) -> WrittenObject {
        let mut writer = files.writer("my-bucket").expect("writer");
        for part in body.chunks(piece.max(1)) {
            writer.write(part).expect("write");
        }
        assert_eq!(writer.size(), body.len() as u64);
        writer.finish(name).expect("finish")
    }

    fn read_all(files: &ObjectFiles, name: &str) -> io::Result<Vec<u8>> {
        let mut reader = files.open_read("my-bucket", name)?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    fn raw_path(files: &ObjectFiles, name: &str) -> PathBuf {
        files.path_of("my-bucket", name).expect("path")
    }

    #[test]
    fn writers_without_md5_give_opaque_tags_and_the_same_bytes() {
        let (_dir, files) = files();
        let mut tags = Vec::new();
        for unique in ["1", "2"] {
            let name = object_file_name("part", unique);
            let mut writer = files.writer_without_md5("my-bucket").expect("writer");
            writer.write(b"hello world").expect("write");
            assert_eq!(writer.md5(), [0u8; 16], "no MD5 is computed");
            let written = writer.finish(&name).expect("finish");
            assert_eq!(written.size, 11);
            assert_ne!(to_hex(&written.md5), "5eb63bbbe01eeed093cb22bb8f5acdc3");
            tags.push(written.md5);
            let mut text = String::new();
            files
                .open_read("my-bucket", &name)
                .expect("open")
                .read_to_string(&mut text)
                .expect("read");
            assert_eq!(text, "hello world");
        }
        assert_ne!(tags[0], tags[1], "tags are unique");
    }

    #[test]
    fn write_read_remove() {
        let (_dir, files) = files();
        let name = object_file_name("../../etc/passwd", "1");
        let mut writer = files.writer("my-bucket").expect("writer");
        writer.write(b"hello ").expect("write");
        writer.write(b"world").expect("write");
        assert_eq!(to_hex(&writer.md5()), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        let written = writer.finish(&name).expect("finish");
        assert_eq!(written.size, 11);
        assert_eq!(to_hex(&written.md5), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        let path = files.path_of("my-bucket", &name).expect("path");
        assert!(path.starts_with(files.root().join("my-bucket")));
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            encrypted_len(11)
        );
        let reader = files.open_read("my-bucket", &name).expect("open");
        assert_eq!(reader.len(), 11);
        assert_eq!(read_all(&files, &name).expect("read"), b"hello world");
        files.remove("my-bucket", &name).expect("remove");
        files.remove("my-bucket", &name).expect("remove again");
        assert!(!path.exists());
        assert_eq!(
            files
                .open_read("my-bucket", &name)
                .expect_err("gone")
                .kind(),
            io::ErrorKind::NotFound
        );
        let left: Vec<_> = std::fs::read_dir(files.root().join("my-bucket"))
            .expect("list")
            .collect();
        assert!(left.is_empty(), "no temporary file is left");
    }

    #[test]
    fn round_trips_at_chunk_boundaries() {
        let (_dir, files) = files();
        // Around chunks, and around the output buffer's flushes (sixteen
        // sealed chunks) and the 4 KiB direct-write alignment.
        for (i, size) in [
            0,
            1,
            65_535,
            65_536,
            65_537,
            3 * 65_536,
            3 * 65_536 + 5,
            16 * 65_536 - 1,
            16 * 65_536,
            17 * 65_536 + 3,
            40 * 65_536 + 4097,
        ]
        .into_iter()
        .enumerate()
        {
            let body = data(size);
            // Odd write sizes, so writes straddle chunks.
            for piece in [1000, 65_536, 100_000] {
                let name = object_file_name(&format!("k{i}-{piece}"), "1");
                let written = put(&files, &name, &body, piece);
                assert_eq!(written.size, size as u64);
                assert_eq!(written.md5, <[u8; 16]>::from(Md5::digest(&body)));
                let file_len = std::fs::metadata(raw_path(&files, &name))
                    .expect("meta")
                    .len();
                assert_eq!(file_len, encrypted_len(size as u64), "size {size}");
                assert_eq!(plaintext_len(file_len), Some(size as u64));
                let reader = files.open_read("my-bucket", &name).expect("open");
                assert_eq!(reader.len(), size as u64);
                assert_eq!(reader.is_empty(), size == 0);
                assert!(
                    read_all(&files, &name).expect("read") == body,
                    "size {size}"
                );
            }
        }
    }

    #[test]
    fn ordinary_and_direct_writes_make_the_same_object() {
        let (_dir, files) = files();
        let body = data(23 * 65_536 + 4321);
        for direct in [true, false] {
            let name = object_file_name(&format!("direct-{direct}"), "1");
            let mut writer = files.writer("my-bucket").expect("writer");
            if !direct {
                writer.direct = None;
            }
            for part in body.chunks(77_777) {
                writer.write(part).expect("write");
            }
            writer.finish(&name).expect("finish");
            let file_len = std::fs::metadata(raw_path(&files, &name))
                .expect("meta")
                .len();
            assert_eq!(file_len, encrypted_len(body.len() as u64));
            assert!(read_all(&files, &name).expect("read") == body, "{direct}");
        }
    }

    #[test]
    fn sequential_readers_read_every_range_and_detect_damage() {
        let (_dir, files) = files();
        // Over two 4 MiB windows, not a multiple of anything.
        let size = 150 * 65_536 + 7;
        let body = data(size);
        let name = object_file_name("sequential", "1");
        put(&files, &name, &body, 100_000);
        let mut reader = files
            .open_read_sequential("my-bucket", &name)
            .expect("open");
        let mut all = Vec::new();
        reader.read_to_end(&mut all).expect("read");
        assert!(all == body);
        // Backwards and across windows.
        for start in [9_000_000, 4_194_000, 0, 65_530, 9_830_000, 4_194_304 - 42] {
            let end = (start + 300_000).min(size);
            reader.seek(SeekFrom::Start(start as u64)).expect("seek");
            let mut out = vec![0u8; end - start];
            reader.read_exact(&mut out).expect("read");
            assert!(out == body[start..end], "{start}");
        }
        // A flipped byte in the second window fails there, not before.
        let path = raw_path(&files, &name);
        let mut raw = std::fs::read(&path).expect("raw");
        raw[5_000_000] ^= 1;
        std::fs::write(&path, &raw).expect("write");
        let mut reader = files
            .open_read_sequential("my-bucket", &name)
            .expect("open");
        let mut head = vec![0u8; 4_000_000];
        reader.read_exact(&mut head).expect("first window");
        let error = reader.read_to_end(&mut Vec::new()).expect_err("tampered");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn size_formula() {
        assert_eq!(encrypted_len(0), 42 + 16);
        assert_eq!(encrypted_len(1), 42 + 1 + 16);
        assert_eq!(encrypted_len(65_536), 42 + 65_536 + 16);
        assert_eq!(encrypted_len(65_537), 42 + 65_537 + 32);
        for size in (0..300_000u64)
            .step_by(997)
            .chain([65_536, 131_072, 131_073])
        {
            assert_eq!(plaintext_len(encrypted_len(size)), Some(size));
        }
        for bad in [
            0,
            41,
            42,
            57,
            42 + 65_552 + 15,
            42 + 65_552 + 16,
            42 + 65_552 + 1,
        ] {
            assert_eq!(plaintext_len(bad), None, "{bad}");
        }
    }

    #[test]
    fn seeks_read_any_range() {
        let (_dir, files) = files();
        let size = 3 * 65_536 + 5;
        let body = data(size);
        let name = object_file_name("ranges", "1");
        put(&files, &name, &body, 70_000);
        let mut reader = files.open_read("my-bucket", &name).expect("open");
        let starts = [
            0, 1, 65_535, 65_536, 65_537, 131_071, 131_072, 196_607, 196_608, 196_612,
        ];
        for start in starts {
            for len in [0, 1, 2, 100, 65_536, 200_000] {
                let end = (start + len).min(size);
                assert_eq!(
                    reader.seek(SeekFrom::Start(start as u64)).expect("seek"),
                    start as u64
                );
                let mut out = vec![0u8; end - start];
                reader.read_exact(&mut out).expect("read");
                assert!(out == body[start..end], "{start}+{len}");
            }
        }
        // Relative seeks, and the end.
        assert_eq!(
            reader.seek(SeekFrom::End(-5)).expect("seek"),
            size as u64 - 5
        );
        let mut tail = Vec::new();
        reader.read_to_end(&mut tail).expect("read");
        assert_eq!(tail, &body[size - 5..]);
        assert_eq!(
            reader.seek(SeekFrom::Current(-65_541)).expect("seek"),
            131_072
        );
        let mut one = [0u8; 1];
        reader.read_exact(&mut one).expect("read");
        assert_eq!(one[0], body[131_072]);
        assert_eq!(
            reader.seek(SeekFrom::Start(10 * 65_536)).expect("past end"),
            655_360
        );
        assert_eq!(reader.read(&mut one).expect("read"), 0);
        let error = reader
            .seek(SeekFrom::End(-(size as i64) - 1))
            .expect_err("before start");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        // A failed seek leaves the position.
        assert_eq!(reader.stream_position().expect("pos"), 655_360);
    }

    #[test]
    fn no_plaintext_on_disk() {
        let (_dir, files) = files();
        let pattern = b"HANGAR-PLAINTEXT-PATTERN-0123456789-";
        let body: Vec<u8> = pattern.iter().copied().cycle().take(1 << 20).collect();
        let name = object_file_name("pattern", "1");
        put(&files, &name, &body, 1 << 16);
        let raw = std::fs::read(raw_path(&files, &name)).expect("raw");
        assert!(raw.starts_with(b"HGOB\x01\x01\x00\x00\x01\x00"));
        // No 16-byte window of the pattern appears anywhere in the file.
        for start in 0..pattern.len() {
            let needle: Vec<u8> = pattern
                .iter()
                .copied()
                .cycle()
                .skip(start)
                .take(16)
                .collect();
            assert!(
                !raw.windows(needle.len()).any(|window| window == needle),
                "plaintext found on disk"
            );
        }
        assert!(read_all(&files, &name).expect("read") == body);
    }

    fn expect_invalid(files: &ObjectFiles, name: &str) {
        let error = read_all(files, name).expect_err("must fail");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    }

    #[test]
    fn tampering_is_detected() {
        let (_dir, files) = files();
        let body = data(3 * 65_536 + 5);
        let name = object_file_name("tamper", "1");
        put(&files, &name, &body, 65_536);
        let path = raw_path(&files, &name);
        let pristine = std::fs::read(&path).expect("raw");
        let sealed = SEALED_CHUNK as usize;
        let header = HEADER_LEN as usize;

        // One flipped bit anywhere: header, salt, ciphertext, tag.
        for at in [
            0,
            4,
            5,
            6,
            12,
            header,
            header + 1000,
            header + sealed - 1,
            pristine.len() - 1,
        ] {
            let mut bytes = pristine.clone();
            bytes[at] ^= 0x01;
            std::fs::write(&path, &bytes).expect("write");
            expect_invalid(&files, &name);
        }
        // Two chunks swapped.
        let mut bytes = pristine.clone();
        let (first, second) = (
            header..header + sealed,
            header + sealed..header + 2 * sealed,
        );
        let saved = bytes[first.clone()].to_vec();
        bytes.copy_within(second.clone(), first.start);
        bytes[second].copy_from_slice(&saved);
        std::fs::write(&path, &bytes).expect("write");
        expect_invalid(&files, &name);
        // A chunk repeated in place of another.
        let mut bytes = pristine.clone();
        bytes.copy_within(header..header + sealed, header + sealed);
        std::fs::write(&path, &bytes).expect("write");
        expect_invalid(&files, &name);
        // Truncated: at chunk boundaries (to a valid-looking size), inside a
        // chunk, inside the header; extended by garbage or a whole chunk.
        for len in [
            header + 3 * sealed,
            header + 2 * sealed,
            header + sealed,
            header + 16,
            header + 5000,
            pristine.len() - 1,
            header,
            10,
            0,
        ] {
            std::fs::write(&path, &pristine[..len]).expect("write");
            let error = files.open_read("my-bucket", &name).expect_err("must fail");
            assert_eq!(
                error.kind(),
                io::ErrorKind::InvalidData,
                "len {len}: {error}"
            );
        }
        let mut longer = pristine.clone();
        longer.extend_from_slice(&pristine[header..header + sealed]);
        std::fs::write(&path, &longer).expect("write");
        expect_invalid(&files, &name);
        // Untouched, it still reads.
        std::fs::write(&path, &pristine).expect("write");
        assert!(read_all(&files, &name).expect("read") == body);
    }

    #[test]
    fn tampered_middle_chunk_fails_only_when_read() {
        let (_dir, files) = files();
        let body = data(3 * 65_536);
        let name = object_file_name("middle", "1");
        put(&files, &name, &body, 65_536);
        let path = raw_path(&files, &name);
        let mut bytes = std::fs::read(&path).expect("raw");
        bytes[HEADER_LEN as usize + SEALED_CHUNK as usize + 7] ^= 0x80;
        std::fs::write(&path, &bytes).expect("write");
        let mut reader = files.open_read("my-bucket", &name).expect("opens");
        let mut first = vec![0u8; 65_536];
        reader.read_exact(&mut first).expect("chunk 0 is fine");
        assert!(first == body[..65_536]);
        let mut one = [0u8; 1];
        let error = reader.read(&mut one).expect_err("chunk 1 is not");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        reader.seek(SeekFrom::Start(2 * 65_536)).expect("seek");
        reader.read_exact(&mut one).expect("chunk 2 is fine");
        assert_eq!(one[0], body[2 * 65_536]);
    }

    #[test]
    fn empty_object_is_authenticated() {
        let (_dir, files) = files();
        let name = object_file_name("empty", "1");
        put(&files, &name, b"", 1);
        let path = raw_path(&files, &name);
        let pristine = std::fs::read(&path).expect("raw");
        assert_eq!(pristine.len(), 58);
        assert_eq!(read_all(&files, &name).expect("read"), b"");
        let mut bytes = pristine.clone();
        bytes[50] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let error = files
            .open_read("my-bucket", &name)
            .expect_err("tag checked at open");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        // A large object cut to the size of an empty one.
        let big = object_file_name("big", "1");
        put(&files, &big, &data(100_000), 4096);
        let big_path = raw_path(&files, &big);
        let raw = std::fs::read(&big_path).expect("raw");
        std::fs::write(&big_path, &raw[..58]).expect("write");
        let error = files.open_read("my-bucket", &big).expect_err("cut");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn another_master_key_cannot_read() {
        let (dir, files) = files();
        let name = object_file_name("secret", "1");
        put(&files, &name, b"for the right key only", 5);
        let other = ObjectFiles::open(&dir.path().join("buckets"), MasterKey::from_bytes([1; 32]))
            .expect("open");
        let error = other.open_read("my-bucket", &name).expect_err("wrong key");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let same = ObjectFiles::open(&dir.path().join("buckets"), key()).expect("open");
        assert_eq!(
            read_all(&same, &name).expect("read"),
            b"for the right key only"
        );
    }

    #[test]
    fn same_content_encrypts_differently() {
        let (_dir, files) = files();
        let (a, b) = (object_file_name("a", "1"), object_file_name("b", "1"));
        put(&files, &a, b"same bytes", 10);
        put(&files, &b, b"same bytes", 10);
        let raw_a = std::fs::read(raw_path(&files, &a)).expect("raw");
        let raw_b = std::fs::read(raw_path(&files, &b)).expect("raw");
        assert_ne!(raw_a[10..42], raw_b[10..42], "salts differ");
        assert_ne!(raw_a[42..], raw_b[42..], "ciphertexts differ");
    }

    #[test]
    fn names_are_checked() {
        let (_dir, files) = files();
        assert!(files.writer("../x").is_err());
        assert!(files.writer("..").is_err());
        assert!(files.path_of("my-bucket", "../x").is_err());
        assert!(files.path_of("my-bucket", "passwd").is_err());
        assert!(files.list_bucket_files("../x").is_err());
        let writer = files.writer("my-bucket").expect("writer");
        assert!(writer.finish("../../x").is_err());
        let left: Vec<_> = std::fs::read_dir(files.root().join("my-bucket"))
            .expect("list")
            .collect();
        assert!(left.is_empty(), "a refused finish leaves nothing");
    }

    #[test]
    fn abandoned_writes_leave_nothing_and_leftovers_are_swept() {
        let (_dir, files) = files();
        let mut writer = files.writer("my-bucket").expect("writer");
        writer.write(&data(200_000)).expect("write");
        drop(writer);
        let bucket = files.root().join("my-bucket");
        assert_eq!(std::fs::read_dir(&bucket).expect("list").count(), 0);
        // As a crash would leave it.
        std::fs::write(bucket.join(format!("{TMP_PREFIX}abc")), b"x").expect("leftover");
        let kept = object_file_name("k", "1");
        std::fs::write(bucket.join(&kept), b"x").expect("object");
        assert_eq!(files.sweep_temporary().expect("sweep"), 1);
        assert!(bucket.join(kept).exists(), "object files are kept");
    }

    #[test]
    fn listings_for_the_collector() {
        let (dir, files) = files();
        let root = dir.path().join("buckets");
        assert!(!holds_object_files(&dir.path().join("nowhere")).expect("missing root"));
        assert!(!holds_object_files(&root).expect("empty root"));
        assert!(files.bucket_folders().expect("folders").is_empty());
        assert!(
            files
                .list_bucket_files("my-bucket")
                .expect("missing")
                .is_empty()
        );
        let (a, b) = (object_file_name("a", "1"), object_file_name("b", "2"));
        put(&files, &a, b"a", 1);
        put(&files, &b, b"b", 1);
        let pending = files.writer("my-bucket").expect("writer");
        std::fs::create_dir(root.join("other-bucket")).expect("mkdir");
        std::fs::create_dir(root.join("Not_A_Bucket")).expect("mkdir");
        std::fs::write(root.join("stray-file"), b"x").expect("write");
        std::fs::write(root.join("my-bucket").join("notes.txt"), b"x").expect("write");
        assert_eq!(
            files.bucket_folders().expect("folders"),
            vec!["my-bucket".to_string(), "other-bucket".to_string()]
        );
        let listed = files.list_bucket_files("my-bucket").expect("list");
        let mut expected = vec![a.clone(), b.clone()];
        expected.sort();
        assert_eq!(
            listed
                .iter()
                .map(|(name, _)| name.clone())
                .collect::<Vec<_>>(),
            expected
        );
        let now = SystemTime::now();
        for (_, modified) in &listed {
            assert!(now.duration_since(*modified).expect("past").as_secs() < 600);
        }
        assert!(
            files
                .list_bucket_files("other-bucket")
                .expect("list")
                .is_empty()
        );
        assert!(holds_object_files(&root).expect("holds"));
        drop(pending);
    }
}
