//! Reading an object's bytes: a range of the concatenation of its files
//! (one file, or a completed multipart upload's parts), decrypted by the
//! file layer, for `GetObject` bodies and for copies.

use hangar_blocks::objects::ObjectReader;

use super::*;

/// One file's share of a range: `[start, end)` of its plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    file_name: String,
    start: u64,
    end: u64,
}

/// The files' shares of `[start, end)` of an object whose files have the
/// given sizes, in order.
fn segments(files: &[(&str, i64)], start: u64, end: u64) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for (file_name, size) in files {
        let size = u64::try_from(*size).unwrap_or(0);
        let (from, to) = (start.max(offset), end.min(offset + size));
        if from < to {
            out.push(Segment {
                file_name: (*file_name).to_owned(),
                start: from - offset,
                end: to - offset,
            });
        }
        offset += size;
    }
    out
}

/// A range of an object as one `Read`: the first file is opened by
/// [`RangeReader::open`] (so a record replaced in the meantime shows up
/// there, as `NotFound`), the others as reading reaches them.
pub(crate) struct RangeReader {
    files: ObjectFiles,
    bucket: String,
    segments: std::collections::VecDeque<Segment>,
    current: Option<(ObjectReader, u64)>,
    /// Files opened for one pass in order (tasks): direct reads.
    sequential: bool,
}

impl RangeReader {
    /// Blocking: opens the first file.
    pub(crate) fn open(
        files: ObjectFiles,
        bucket: &str,
        object: &S3Object,
        start: u64,
        end: u64,
        sequential: bool,
    ) -> io::Result<Self> {
        let mut reader = Self {
            files,
            bucket: bucket.to_owned(),
            segments: segments(&object.files(), start, end).into(),
            current: None,
            sequential,
        };
        reader.next_file()?;
        Ok(reader)
    }

    fn next_file(&mut self) -> io::Result<()> {
        self.current = None;
        if let Some(segment) = self.segments.pop_front() {
            let mut file = if self.sequential {
                self.files
                    .open_read_sequential(&self.bucket, &segment.file_name)?
            } else {
                self.files.open_read(&self.bucket, &segment.file_name)?
            };
            file.seek(SeekFrom::Start(segment.start))?;
            self.current = Some((file, segment.end - segment.start));
        }
        Ok(())
    }
}

impl Read for RangeReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some((file, remaining)) = &mut self.current else {
                return Ok(0);
            };
            if *remaining == 0 {
                self.next_file()?;
                continue;
            }
            let want = usize::try_from(*remaining)
                .unwrap_or(usize::MAX)
                .min(buffer.len());
            let read = file.read(&mut buffer[..want])?;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object file shorter than its record",
                ));
            }
            *remaining -= read as u64;
            return Ok(read);
        }
    }
}

/// A byte stream read on a blocking thread.
struct ChannelStream(tokio::sync::mpsc::Receiver<io::Result<Bytes>>);

impl Stream for ChannelStream {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_recv(cx)
    }
}

/// Streams `length` bytes of `reader` as a body, `READ_CHUNK` at a time.
pub(crate) fn reader_body(mut reader: RangeReader, length: u64) -> StreamingBlob {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut remaining = length;
        while remaining > 0 {
            let want = usize::try_from(remaining)
                .unwrap_or(READ_CHUNK)
                .min(READ_CHUNK);
            let mut buffer = vec![0u8; want];
            let result = match reader.read(&mut buffer) {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object shorter than its record",
                )),
                Ok(read) => {
                    buffer.truncate(read);
                    remaining -= read as u64;
                    Ok(Bytes::from(buffer))
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => Err(error),
            };
            let failed = result.is_err();
            if let Err(error) = &result {
                tracing::warn!(%error, "reading an object failed mid-stream");
            }
            if tx.blocking_send(result).is_err() || failed {
                return;
            }
        }
    });
    StreamingBlob::wrap(ChannelStream(rx))
}

/// Wire reads of this many bytes or more read around the page cache:
/// large objects are written around it too, so a first read finds nothing
/// there, and streaming one through it costs a copy of every byte and
/// evicts what small reads would reuse.
pub(crate) const DIRECT_READ_MIN: u64 = 8 * 1024 * 1024;

/// How often a read retries when the record it read was replaced before its
/// first file could be opened.
const OPEN_ATTEMPTS: usize = 5;

/// The object's record and a reader of `[start, end)` of it, where the range
/// comes from `range_of(record)`. A put or delete that replaces the record
/// between the read of the record and the opening of its first file makes
/// the read start over with the new record, so a reader gets the old object
/// or the new one, never an error. `lift` turns the domain's errors into the
/// caller's (the wire's `S3Error`, or `BucketError` itself for tasks).
/// `sequential` readers read each file once, in order, with direct reads
/// ([`ObjectFiles::open_read_sequential`]): tasks, and wire reads of at
/// least [`DIRECT_READ_MIN`] bytes; smaller reads go through the page
/// cache, which serves repeated and ranged reads.
pub(crate) async fn open_range<E, R, L>(
    hangar: &Hangar,
    files: &ObjectFiles,
    bucket: &Bucket,
    key: &str,
    sequential: bool,
    range_of: R,
    lift: L,
) -> Result<(S3Object, std::ops::Range<u64>, RangeReader), E>
where
    R: Fn(&S3Object) -> Result<std::ops::Range<u64>, E>,
    L: Fn(BucketError) -> E,
{
    let internal = |detail: String| lift(BucketError::Internal(detail));
    let mut last_error = None;
    for _ in 0..OPEN_ATTEMPTS {
        let object = hangar.object(bucket, key).await.map_err(&lift)?;
        let range = range_of(&object)?;
        let files = files.clone();
        let (bucket_name, record) = (bucket.name.clone(), object.clone());
        let (start, end) = (range.start, range.end);
        let sequential = sequential || end - start >= DIRECT_READ_MIN;
        let opened = tokio::task::spawn_blocking(move || {
            RangeReader::open(files, &bucket_name, &record, start, end, sequential)
        })
        .await
        .map_err(|error| internal(error.to_string()))?;
        match opened {
            Ok(reader) => return Ok((object, range, reader)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                last_error = Some(error);
            }
            Err(error) => return Err(internal(error.to_string())),
        }
    }
    Err(internal(format!(
        "object {key} kept changing while being opened: {last_error:?}"
    )))
}

impl HangarS3 {
    /// [`open_range`] for the wire operations.
    pub(crate) async fn open_object<R>(
        &self,
        bucket: &Bucket,
        key: &str,
        range_of: R,
    ) -> S3Result<(S3Object, std::ops::Range<u64>, RangeReader)>
    where
        R: Fn(&S3Object) -> S3Result<std::ops::Range<u64>>,
    {
        open_range(
            &self.hangar,
            &self.files,
            bucket,
            key,
            false,
            range_of,
            from_bucket_error,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_ranges_across_files() {
        let files = [("a", 5), ("b", 5), ("c", 3)];
        let names = |segments: Vec<Segment>| -> Vec<(String, u64, u64)> {
            segments
                .into_iter()
                .map(|s| (s.file_name, s.start, s.end))
                .collect()
        };
        assert_eq!(
            names(segments(&files, 0, 13)),
            vec![("a".into(), 0, 5), ("b".into(), 0, 5), ("c".into(), 0, 3)]
        );
        assert_eq!(
            names(segments(&files, 4, 11)),
            vec![("a".into(), 4, 5), ("b".into(), 0, 5), ("c".into(), 0, 1)]
        );
        assert_eq!(names(segments(&files, 5, 10)), vec![("b".into(), 0, 5)]);
        assert!(segments(&files, 3, 3).is_empty());
        assert!(segments(&[("a", 0)], 0, 0).is_empty());
    }
}
