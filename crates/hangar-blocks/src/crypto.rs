//! Encryption at rest of S3 object files: the master key and the keys of
//! each file derived from it.
//!
//! The master key is 32 random bytes kept in a key file apart from the data
//! (the server's default is `<data_dir>/keys/master.key`, beside but outside
//! `<data_dir>/buckets`). The file holds the key as 64 hexadecimal digits and
//! an optional final newline, nothing else, and must not be accessible to
//! group or others (mode `0600` or stricter): [`MasterKey::load`] refuses any
//! other content or mode. [`MasterKey::load_or_create`] creates a missing
//! file: its folder with mode `0700` when missing, then the key written to a
//! `create_new` temporary file of mode `0600` in that folder, fsynced, linked
//! to its final name (a link, not a rename, so two processes starting at
//! once cannot replace each other's key: the loser loads the winner's), and
//! the folder fsynced.
//!
//! Each object file has its own random 32-byte salt, stored in its header,
//! and its own AES-256-GCM key, `HKDF-SHA256(ikm = master key, salt, info =
//! "hangar object file v1")` ([`FILE_KEY_INFO`]). [`FileCipher`] seals and
//! opens the file's chunks: the nonce of chunk `i` is `i` as u64 LE followed
//! by four zero bytes (unique per key, since every file has its own key),
//! and the associated data is `i` as u64 LE followed by one byte, 1 for the
//! file's final chunk and 0 otherwise, so chunks cannot be reordered,
//! dropped, repeated or the file cut short without the tag check failing.
//! The file format itself is in [`crate::objects`].
//!
//! The cipher is ring's AES-256-GCM (the same ring rustls uses): with
//! AES-NI and carry-less multiplication it seals several GB/s per core,
//! about four times RustCrypto's `aes-gcm`, which showed as a tenth of a
//! store task's CPU. The master key and derived keys are zeroized on drop;
//! ring's expanded key schedule is not (ring offers no way to), which is
//! why the master key, not the schedule, is what a memory dump must not
//! find: a file key opens one file. Key material is never printed: `Debug`
//! shows `<redacted>`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use hkdf::Hkdf;
use rand::TryRngCore;
use rand::rngs::OsRng;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// Bytes of the master key and of every derived key.
pub const KEY_LEN: usize = 32;
/// Bytes of an object file's salt.
pub const SALT_LEN: usize = 32;
/// Bytes of the AES-GCM tag after each chunk.
pub const TAG_LEN: usize = 16;
/// The HKDF `info` of an object file's key.
pub const FILE_KEY_INFO: &[u8] = b"hangar object file v1";

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|error| io::Error::other(format!("no randomness from the OS: {error}")))?;
    Ok(bytes)
}

/// The key every object file's key is derived from. Zeroized on drop;
/// `Debug` never shows it.
pub struct MasterKey([u8; KEY_LEN]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("MasterKey(<redacted>)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
impl PartialEq for MasterKey {
    fn eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

#[cfg(test)]
impl Eq for MasterKey {}

fn at_path(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("master key file {}: {error}", path.display()),
    )
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

impl MasterKey {
    /// A new random key (from the operating system's generator).
    pub fn generate() -> io::Result<Self> {
        Ok(Self(random_bytes()?))
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses a key file's content: 64 hexadecimal digits (either case) and
    /// an optional final `\n`.
    fn parse(text: &[u8]) -> Option<Self> {
        let digits = text.strip_suffix(b"\n").unwrap_or(text);
        if digits.len() != 2 * KEY_LEN {
            return None;
        }
        let mut key = Self([0u8; KEY_LEN]);
        hex::decode_to_slice(digits, &mut key.0).ok()?;
        Some(key)
    }

    /// Reads an existing key file; refuses one accessible to group or
    /// others and any content but the key in hex.
    pub fn load(path: &Path) -> io::Result<Self> {
        let mut file = File::open(path).map_err(|error| at_path(path, error))?;
        let metadata = file.metadata().map_err(|error| at_path(path, error))?;
        if !metadata.is_file() {
            return Err(at_path(
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "master key file {} is accessible to group or others (mode {mode:04o}); \
                         make it private with `chmod 600 {}`",
                        path.display(),
                        path.display()
                    ),
                ));
            }
        }
        // One byte more than the longest valid content, to refuse longer
        // files without reading them whole.
        let mut text = Zeroizing::new(Vec::with_capacity(2 * KEY_LEN + 2));
        (&mut file)
            .take(2 * KEY_LEN as u64 + 2)
            .read_to_end(&mut text)
            .map_err(|error| at_path(path, error))?;
        Self::parse(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "master key file {} is malformed: it must hold exactly 64 hexadecimal \
                     digits (32 bytes) and an optional final newline",
                    path.display()
                ),
            )
        })
    }

    /// Creates a new key file with a new random key; fails with
    /// [`io::ErrorKind::AlreadyExists`] when the file exists.
    pub fn create(path: &Path) -> io::Result<Self> {
        let name = path
            .file_name()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("master key file {} has no file name", path.display()),
                )
            })?
            .to_string_lossy()
            .into_owned();
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        if !dir.is_dir() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(&dir).map_err(|error| at_path(path, error))?;
            if let Some(grand) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(grand).map_err(|error| at_path(path, error))?;
            }
        }
        let key = Self::generate()?;
        let tmp = dir.join(format!(".{name}.tmp-{:032x}", rand::random::<u128>()));
        let written = (|| {
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp)?;
            let mut text = Zeroizing::new(hex::encode(key.0));
            text.push('\n');
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            // A link fails when the name exists: two processes creating the
            // key at once cannot overwrite each other's.
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Err(error),
                // File systems without hard links: rename, checking first.
                Err(_) if !path.exists() => std::fs::rename(&tmp, path),
                Err(error) => Err(error),
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        written.map_err(|error| at_path(path, error))?;
        sync_dir(&dir).map_err(|error| at_path(path, error))?;
        Ok(key)
    }

    /// Loads the key file, creating it (and its folder) when missing.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        match Self::load(path) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => match Self::create(path) {
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Self::load(path),
                created => created,
            },
            loaded => loaded,
        }
    }
}

/// The AES-256-GCM cipher of one object file, keyed by
/// `HKDF-SHA256(master key, salt, FILE_KEY_INFO)`.
pub(crate) struct FileCipher(LessSafeKey);

fn nonce(index: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&index.to_le_bytes());
    nonce
}

fn associated_data(index: u64, last: bool) -> [u8; 9] {
    let mut aad = [0u8; 9];
    aad[..8].copy_from_slice(&index.to_le_bytes());
    aad[8] = u8::from(last);
    aad
}

impl FileCipher {
    pub(crate) fn new(master: &MasterKey, salt: &[u8; SALT_LEN]) -> Self {
        let mut okm = Zeroizing::new([0u8; KEY_LEN]);
        Hkdf::<Sha256>::new(Some(salt), &master.0)
            .expand(FILE_KEY_INFO, okm.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let key =
            UnboundKey::new(&AES_256_GCM, okm.as_ref()).expect("AES-256-GCM takes a 32-byte key");
        Self(LessSafeKey::new(key))
    }

    /// Encrypts chunk `index` in place and returns its tag.
    pub(crate) fn seal(&self, index: u64, last: bool, chunk: &mut [u8]) -> [u8; TAG_LEN] {
        let tag: Tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce(index)),
                Aad::from(associated_data(index, last)),
                chunk,
            )
            .expect("a chunk is far below AES-GCM's length limit");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Checks the tag of chunk `index` and decrypts it in place;
    /// [`io::ErrorKind::InvalidData`] when the check fails.
    pub(crate) fn open(
        &self,
        index: u64,
        last: bool,
        chunk: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> io::Result<()> {
        self.0
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce(index)),
                Aad::from(associated_data(index, last)),
                Tag::from(*tag),
                chunk,
                0..,
            )
            .map(|_| ())
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "object file chunk {index} fails its authentication check \
                         (tampered, truncated, or written under another master key)"
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn created_private_and_reloaded_identically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys").join("master.key");
        let created = MasterKey::load_or_create(&path).expect("create");
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join("keys")), 0o700);
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        let again = MasterKey::load_or_create(&path).expect("reload");
        assert!(created == again);
        assert!(MasterKey::load(&path).expect("load") == created);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("keys"))
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("master.key")]);
        assert!(matches!(
            MasterKey::create(&path)
                .map(|_| ())
                .map_err(|error| error.kind()),
            Err(io::ErrorKind::AlreadyExists)
        ));
        assert!(MasterKey::load(&path).expect("load") == created);
    }

    #[test]
    fn debug_is_redacted() {
        let key = MasterKey::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "MasterKey(<redacted>)");
        assert!(!shown.contains("ab"));
    }

    #[cfg(unix)]
    #[test]
    fn group_readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        MasterKey::create(&path).expect("create");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let error = MasterKey::load_or_create(&path).expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert!(error.to_string().contains("chmod 600"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).expect("chmod");
        assert!(MasterKey::load(&path).is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        MasterKey::load(&path).expect("owner-only read is fine");
    }

    #[test]
    fn malformed_key_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let good = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let cases: [&[u8]; 8] = [
            b"",
            b"\n",
            &good.as_bytes()[..63],
            b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeefg",
            b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00",
            b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n\n",
            b" 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\r\n",
        ];
        for content in cases {
            std::fs::remove_file(&path).ok();
            write_private(&path, content);
            let error = MasterKey::load_or_create(&path).expect_err("refused");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{content:?}");
            assert!(error.to_string().contains("malformed"), "{error}");
        }
        for content in [good.to_string(), format!("{good}\n")] {
            std::fs::remove_file(&path).ok();
            write_private(&path, content.as_bytes());
            let key = MasterKey::load(&path).expect("valid");
            let mut expected = [0u8; KEY_LEN];
            hex::decode_to_slice(good, &mut expected).expect("hex");
            assert!(key == MasterKey::from_bytes(expected));
        }
    }

    fn write_private(path: &Path, content: &[u8]) {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
            .open(path)
            .expect("create")
            .write_all(content)
            .expect("write");
    }

    #[test]
    fn chunks_are_bound_to_index_finality_and_key() {
        let master = MasterKey::from_bytes([7; KEY_LEN]);
        let salt = [9u8; SALT_LEN];
        let cipher = FileCipher::new(&master, &salt);
        let mut chunk = b"some plaintext".to_vec();
        let tag = cipher.seal(3, false, &mut chunk);
        assert_ne!(chunk, b"some plaintext");
        for (index, last) in [(3, true), (2, false), (4, false)] {
            let mut copy = chunk.clone();
            let error = cipher
                .open(index, last, &mut copy, &tag)
                .expect_err("refused");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        }
        let other_salt = FileCipher::new(&master, &[8u8; SALT_LEN]);
        assert!(other_salt.open(3, false, &mut chunk.clone(), &tag).is_err());
        let other_key = FileCipher::new(&MasterKey::from_bytes([6; KEY_LEN]), &salt);
        assert!(other_key.open(3, false, &mut chunk.clone(), &tag).is_err());
        cipher.open(3, false, &mut chunk, &tag).expect("opens");
        assert_eq!(chunk, b"some plaintext");
    }
}
