//! Request bodies handed to `s3s` through a pump that drains what the
//! operation did not read.
//!
//! An operation may answer before it reads the body (`AccessDenied`,
//! `NoSuchBucket`, a refused ACL, …). If the server then dropped the body,
//! the HTTP layer would close the connection while the client is still
//! sending, and the client's TCP stack may discard the error document
//! before the client reads it (a reset), so the client sees a bare status
//! or a broken connection instead of the S3 error. The pump forwards the
//! body to the operation; once the operation lets go of it, the pump reads
//! and discards the rest, up to [`DRAIN_LIMIT`] bytes, so the answer
//! arrives whole and the connection stays usable. A larger remainder is
//! dropped (the connection closes), as S3 does for refused huge uploads.
//!
//! A client that sent `Expect: 100-continue` and got a final answer before
//! `100 Continue` does not send the body, and may send its next request on
//! the same connection at once. The server cannot tell those bytes from a
//! late body (HTTP/1.1 has no marker), so such an answer closes the
//! connection ([`Requested`], `Connection: close`); otherwise the first
//! bytes of the next request could be read as the unread body, and that
//! request would arrive with a mangled method.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use s3s::Body;

/// The most bytes drained after the operation stopped reading.
pub const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The operation's side of the pump.
struct Pumped {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, BoxError>>,
    remaining: Option<u64>,
    /// The body and the pump's sender, until the first read starts the
    /// pump (requests with `Expect: 100-continue`).
    deferred: Option<(Body, tokio::sync::mpsc::Sender<Result<Bytes, BoxError>>)>,
    requested: Requested,
}

/// Whether the operation asked for a deferred body (one sent only after
/// `100 Continue`). Answers to requests whose body was never asked for
/// close the connection (see the module's notes).
#[derive(Clone, Default)]
pub struct Requested(Arc<AtomicBool>);

impl Requested {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Stream for Pumped {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some((body, tx)) = this.deferred.take() {
            this.requested.0.store(true, Ordering::Release);
            tokio::spawn(pump(body, tx));
        }
        let item = std::task::ready!(this.rx.poll_recv(cx));
        if let (Some(Ok(bytes)), Some(remaining)) = (&item, &mut this.remaining) {
            *remaining = remaining.saturating_sub(bytes.len() as u64);
        }
        Poll::Ready(item)
    }
}

impl s3s::stream::ByteStream for Pumped {
    fn remaining_length(&self) -> s3s::stream::RemainingLength {
        match self.remaining.and_then(|n| usize::try_from(n).ok()) {
            Some(n) => s3s::stream::RemainingLength::new_exact(n),
            None => s3s::stream::RemainingLength::unknown(),
        }
    }
}

/// Wraps `body` (of `length` bytes when known) in a pump. With `expect_continue`
/// (the client waits for `100 Continue`, which the HTTP layer sends on the
/// first read), nothing is read until the operation reads: a request refused
/// before that never makes the client send its body. Otherwise the client
/// sends the body anyway, and the pump starts at once. With
/// `expect_continue`, also returns whether the body was ever asked for.
pub fn pumped(body: Body, length: Option<u64>, expect_continue: bool) -> (Body, Option<Requested>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, BoxError>>(4);
    let requested = Requested::default();
    let deferred = if expect_continue {
        Some((body, tx))
    } else {
        tokio::spawn(pump(body, tx));
        None
    };
    let stream: s3s::stream::DynByteStream = Box::pin(Pumped {
        rx,
        remaining: length,
        deferred,
        requested: requested.clone(),
    });
    (Body::from(stream), expect_continue.then_some(requested))
}

async fn pump(mut body: Body, tx: tokio::sync::mpsc::Sender<Result<Bytes, BoxError>>) {
    let mut forwarding = true;
    let mut drained: u64 = 0;
    while let Some(item) = body.next().await {
        match item {
            Ok(bytes) if forwarding => {
                let len = bytes.len() as u64;
                if tx.send(Ok(bytes)).await.is_err() {
                    forwarding = false;
                    drained += len;
                }
            }
            Ok(bytes) => drained += bytes.len() as u64,
            Err(error) => {
                if forwarding {
                    let _ = tx.send(Err(error)).await;
                }
                return;
            }
        }
        if !forwarding && drained > DRAIN_LIMIT {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwards_everything_and_knows_the_length() {
        let inner = Body::from(Bytes::from_static(b"hello world"));
        let (mut body, requested) = pumped(inner, Some(11), false);
        assert!(requested.is_none());
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk.expect("chunk"));
        }
        assert_eq!(out, b"hello world");
        let inner = Body::from(Bytes::from_static(b"later"));
        let (mut body, requested) = pumped(inner, None, true);
        let requested = requested.expect("a deferred body");
        assert!(!requested.get());
        let chunk = body.next().await.expect("a chunk").expect("data");
        assert_eq!(&chunk[..], b"later");
        assert!(requested.get());
        let (body, requested) = pumped(Body::from(Bytes::from_static(b"x")), Some(1), true);
        drop(body);
        assert!(!requested.expect("a deferred body").get());
    }
}
