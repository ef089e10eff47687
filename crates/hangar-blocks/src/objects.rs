//! Files of S3 objects: `<root>/<bucket>/<file name>`, where the server's
//! root is `<data_dir>/buckets`, the bucket is a valid bucket name (checked:
//! lowercase letters, digits, dots and hyphens, never `..`) and the file name
//! comes from [`hangar_core::objects::object_file_name`] (hex of the key's
//! hash and a unique suffix, checked), so no key or name can reach outside
//! the root.
//!
//! Writes follow the block store's recipe: a `.tmp-<random>` file in the
//! bucket's folder, written as the body streams in (MD5 computed on the
//! way), `sync_all`, renamed to its final name, the folder fsynced. A
//! writer dropped before [`ObjectWriter::finish`] removes its temporary
//! file; temporary files left by a crash are removed by
//! [`ObjectFiles::sweep_temporary`] at start-up. A file renamed into place
//! whose record never got committed (a crash in between) is not swept
//! here: it needs the records, and is left to the later collector.
//!
//! The calls are blocking; async callers run them in `spawn_blocking`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hangar_core::buckets::validate_bucket_name;
use hangar_core::objects::is_object_file_name;
use md5::{Digest, Md5};

use crate::format::TMP_PREFIX;

#[derive(Debug, Clone)]
pub struct ObjectFiles {
    root: PathBuf,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_owned())
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

impl ObjectFiles {
    /// Opens (creating it if needed) the root of every bucket's folder.
    pub fn open(root: &Path) -> io::Result<Self> {
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
        let dir = self.bucket_dir(bucket)?;
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir)?;
            sync_dir(&self.root)?;
        }
        let tmp = dir.join(format!("{TMP_PREFIX}{:032x}", rand::random::<u128>()));
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        Ok(ObjectWriter {
            file: Some(file),
            tmp,
            dir,
            md5: Md5::new(),
            size: 0,
        })
    }

    pub fn open_read(&self, bucket: &str, file_name: &str) -> io::Result<File> {
        File::open(self.path_of(bucket, file_name)?)
    }

    /// Removes an object's file; a missing one is not an error.
    pub fn remove(&self, bucket: &str, file_name: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path_of(bucket, file_name)?) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
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

/// An object file being written; see [`ObjectFiles::writer`].
pub struct ObjectWriter {
    file: Option<File>,
    tmp: PathBuf,
    dir: PathBuf,
    md5: Md5,
    size: u64,
}

/// What [`ObjectWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenObject {
    pub size: u64,
    pub md5: [u8; 16],
}

impl ObjectWriter {
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| invalid("writer already finished"))?;
        file.write_all(data)?;
        self.md5.update(data);
        self.size += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The MD5 of what was written so far.
    pub fn md5(&self) -> [u8; 16] {
        self.md5.clone().finalize().into()
    }

    /// Makes the file durable under `file_name` (fsync, rename, fsync of
    /// the folder). On error the temporary file is removed.
    pub fn finish(mut self, file_name: &str) -> io::Result<WrittenObject> {
        if !is_object_file_name(file_name) {
            return Err(invalid("not an object file name"));
        }
        let file = self
            .file
            .take()
            .ok_or_else(|| invalid("writer already finished"))?;
        let dest = self.dir.join(file_name);
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &dest)?;
        // Renamed: nothing left for `drop` to remove.
        self.tmp = PathBuf::new();
        sync_dir(&self.dir)?;
        Ok(WrittenObject {
            size: self.size,
            md5: self.md5.clone().finalize().into(),
        })
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        self.file.take();
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Lower-case hex of bytes (an ETag from an MD5).
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use hangar_core::objects::object_file_name;

    use super::*;

    fn files() -> (tempfile::TempDir, ObjectFiles) {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = ObjectFiles::open(&dir.path().join("buckets")).expect("open");
        (dir, files)
    }

    #[test]
    fn write_read_remove() {
        let (_dir, files) = files();
        let name = object_file_name("../../etc/passwd", "1");
        let mut writer = files.writer("my-bucket").expect("writer");
        writer.write(b"hello ").expect("write");
        writer.write(b"world").expect("write");
        let written = writer.finish(&name).expect("finish");
        assert_eq!(written.size, 11);
        assert_eq!(to_hex(&written.md5), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        let path = files.path_of("my-bucket", &name).expect("path");
        assert!(path.starts_with(files.root().join("my-bucket")));
        let mut text = String::new();
        files
            .open_read("my-bucket", &name)
            .expect("open")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "hello world");
        files.remove("my-bucket", &name).expect("remove");
        files.remove("my-bucket", &name).expect("remove again");
        assert!(!path.exists());
        let left: Vec<_> = std::fs::read_dir(files.root().join("my-bucket"))
            .expect("list")
            .collect();
        assert!(left.is_empty(), "no temporary file is left");
    }

    #[test]
    fn names_are_checked() {
        let (_dir, files) = files();
        assert!(files.writer("../x").is_err());
        assert!(files.writer("..").is_err());
        assert!(files.path_of("my-bucket", "../x").is_err());
        assert!(files.path_of("my-bucket", "passwd").is_err());
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
        writer.write(b"partial").expect("write");
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
}
