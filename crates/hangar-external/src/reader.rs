//! A blocking reader of an external object: ranged `GetObject`s, each
//! `If-Match` the ETag seen when the object was opened, one window ahead
//! while the caller consumes the current one. Restore tasks and the
//! request-time archive check read through it on blocking threads (the
//! [`ObjectBackend`](hangar_core::transfer::ObjectBackend) contract), where
//! waiting on the runtime is allowed.
//!
//! The two window buffers are reused for the whole object: a fresh 8 MiB
//! buffer per window page-faults on every page of it, which cost a restore
//! more CPU than decompressing (`scripts/bench-store`, external buckets).

use std::io::Read;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// The first window: enough for an archive's header and manifest, so the
/// request-time check reads little.
const FIRST_WINDOW: u64 = 1024 * 1024;
/// Later windows: large enough that request overhead is small against the
/// transfer, small enough that two in memory are cheap.
const WINDOW: u64 = 8 * 1024 * 1024;
/// Attempts of one window (the SDK retries failed requests itself; this
/// covers a body cut off mid-way).
const ATTEMPTS: u32 = 3;

pub(crate) struct RangeReader {
    runtime: Option<Handle>,
    client: Client,
    bucket: String,
    key: String,
    etag: String,
    /// The window being handed out, and its first unread byte.
    current: Vec<u8>,
    at: usize,
    /// The next window, being fetched.
    next: Option<JoinHandle<std::io::Result<Vec<u8>>>>,
    /// Window buffers handed out, for the next fetch to fill again.
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Where the next window to fetch starts, and where the object ends.
    fetch_at: u64,
    end: u64,
}

impl RangeReader {
    pub(crate) fn new(
        client: Client,
        bucket: String,
        key: String,
        etag: String,
        start: u64,
        end: u64,
    ) -> Self {
        Self {
            runtime: Handle::try_current().ok(),
            client,
            bucket,
            key,
            etag,
            current: Vec::new(),
            at: 0,
            next: None,
            spare: Arc::default(),
            fetch_at: start,
            end,
        }
    }

    /// Starts fetching the window at `fetch_at`, if any is left.
    fn spawn_next(&mut self, runtime: &Handle) {
        if self.next.is_some() || self.fetch_at >= self.end {
            return;
        }
        let size = if self.fetch_at == 0 {
            FIRST_WINDOW
        } else {
            WINDOW
        };
        let first = self.fetch_at;
        let last = (first + size).min(self.end) - 1;
        self.fetch_at = last + 1;
        let (client, bucket, key, etag) = (
            self.client.clone(),
            self.bucket.clone(),
            self.key.clone(),
            self.etag.clone(),
        );
        let mut buffer = self
            .spare
            .lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_default();
        self.next = Some(runtime.spawn(async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match fetch(&client, &bucket, &key, &etag, first, last, &mut buffer).await {
                    Ok(()) => return Ok(buffer),
                    Err(Fetch::Final(error)) => return Err(error),
                    Err(Fetch::Retry(error)) if attempt >= ATTEMPTS => return Err(error),
                    Err(Fetch::Retry(_)) => {}
                }
            }
        }));
    }
}

enum Fetch {
    /// The object changed or is gone: reading again cannot help.
    Final(std::io::Error),
    Retry(std::io::Error),
}

async fn fetch(
    client: &Client,
    bucket: &str,
    key: &str,
    etag: &str,
    first: u64,
    last: u64,
    buffer: &mut Vec<u8>,
) -> Result<(), Fetch> {
    let mut output = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!("bytes={first}-{last}"))
        .if_match(format!("\"{etag}\""))
        .send()
        .await
        .map_err(|error| {
            let message = format!(
                "reading bytes {first}-{last} of {key} from the external store: {}",
                DisplayErrorContext(&error)
            );
            match error.code() {
                Some("PreconditionFailed") => Fetch::Final(std::io::Error::other(format!(
                    "the object {key} was replaced during the read"
                ))),
                Some("NoSuchKey" | "NoSuchBucket" | "AccessDenied" | "InvalidRange") => {
                    Fetch::Final(std::io::Error::other(message))
                }
                _ => Fetch::Retry(std::io::Error::other(message)),
            }
        })?;
    let expected = last - first + 1;
    buffer.clear();
    buffer.reserve(usize::try_from(expected).unwrap_or(0));
    while let Some(chunk) = output.body.next().await {
        let chunk = chunk.map_err(|error| {
            Fetch::Retry(std::io::Error::other(format!(
                "reading {key} from the external store: {error}"
            )))
        })?;
        if (buffer.len() + chunk.len()) as u64 > expected {
            break;
        }
        buffer.extend_from_slice(&chunk);
    }
    if buffer.len() as u64 != expected {
        return Err(Fetch::Retry(std::io::Error::other(format!(
            "the external store sent {} bytes of {key} for a range of {expected}",
            buffer.len()
        ))));
    }
    Ok(())
}

impl Read for RangeReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if buffer.is_empty() {
            return Ok(0);
        }
        if self.at >= self.current.len() {
            let Some(runtime) = self.runtime.clone() else {
                return Err(std::io::Error::other(
                    "the external object reader was opened outside the runtime",
                ));
            };
            let spent = std::mem::take(&mut self.current);
            self.at = 0;
            if spent.capacity() > 0
                && let Ok(mut spare) = self.spare.lock()
            {
                spare.push(spent);
            }
            self.spawn_next(&runtime);
            let Some(next) = self.next.take() else {
                return Ok(0);
            };
            self.current = runtime
                .block_on(next)
                .map_err(|error| std::io::Error::other(error.to_string()))??;
            // One window ahead while this one is consumed.
            self.spawn_next(&runtime);
        }
        let count = buffer.len().min(self.current.len() - self.at);
        buffer[..count].copy_from_slice(&self.current[self.at..self.at + count]);
        self.at += count;
        Ok(count)
    }
}

impl Drop for RangeReader {
    fn drop(&mut self) {
        if let Some(next) = self.next.take() {
            next.abort();
        }
    }
}
