//! Throughput of encrypted object files: writes then reads N MiB (default
//! 1024) through `ObjectWriter` / `ObjectReader`, and prints MiB/s.
//!
//! ```sh
//! cargo run --release -p hangar-blocks --example object_throughput -- [MiB] [dir]
//! ```
//!
//! The directory defaults to a temporary one under `$TMPDIR`; the file is
//! removed at the end. The write includes the final fsync and rename; the
//! read is sequential, in 64 KiB reads as the S3 layer does (the page cache
//! is warm, so this measures the cipher and copies, not the disk).

use std::io::Read;
use std::time::Instant;

use hangar_blocks::crypto::MasterKey;
use hangar_blocks::objects::ObjectFiles;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1024);
    let base = args.next().map(std::path::PathBuf::from);
    let scratch = tempfile_dir(base)?;
    let files = ObjectFiles::open(&scratch.join("buckets"), MasterKey::generate()?)?;
    let buffer: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
    let name = format!("{}.bench", "ab".repeat(32));

    let started = Instant::now();
    let mut writer = files.writer("bench-bucket")?;
    for _ in 0..mib {
        writer.write(&buffer)?;
    }
    let streamed_secs = started.elapsed().as_secs_f64();
    let written = writer.finish(&name)?;
    let write_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut reader = files.open_read("bench-bucket", &name)?;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let read = reader.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        total += read as u64;
    }
    let read_secs = started.elapsed().as_secs_f64();
    assert_eq!(total, written.size);

    let on_disk = std::fs::metadata(files.path_of("bench-bucket", &name)?)?.len();
    println!(
        "{mib} MiB: write {:.0} MiB/s ({write_secs:.2} s; {:.0} MiB/s before the final fsync), \
         read {:.0} MiB/s ({read_secs:.2} s); {on_disk} bytes on disk",
        mib as f64 / write_secs,
        mib as f64 / streamed_secs,
        mib as f64 / read_secs,
    );
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

fn tempfile_dir(base: Option<std::path::PathBuf>) -> std::io::Result<std::path::PathBuf> {
    let base = base.unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("hangar-object-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
