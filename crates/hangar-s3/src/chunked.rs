//! Dev mode's decoder of `aws-chunked` bodies.
//!
//! With accounts configured, `s3s` verifies and decodes `aws-chunked`
//! bodies (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`,
//! `STREAMING-UNSIGNED-PAYLOAD-TRAILER`). In dev mode there is no secret to
//! verify with, so the gateway strips the signature and decodes the framing
//! here instead: `<hex size>[;chunk-signature=…]\r\n<data>\r\n` repeated,
//! a zero-size chunk, then optional trailing headers (`name:value\r\n`) and
//! a final `\r\n`. Chunk signatures are ignored, as every signature is in
//! dev mode. Trailing headers go to a shared slot that the operations read
//! once the body is consumed (for `x-amz-checksum-*`).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures::Stream;

/// Largest chunk header or trailer line accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting `<hex size>[;…]\r\n`.
    Header,
    /// Inside a chunk's data: this many bytes left.
    Data(u64),
    /// Expecting the `\r\n` after a chunk's data.
    DataEnd,
    /// After the zero-size chunk: trailer lines until an empty one.
    Trailers,
    Done,
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ChunkedError {
    #[error("malformed aws-chunked body: {0}")]
    Malformed(&'static str),
    #[error("aws-chunked body ended early")]
    Truncated,
    #[error("{0}")]
    Inner(String),
}

/// Decodes an `aws-chunked` stream of bytes into the payload.
pub struct ChunkedDecoder<S> {
    inner: S,
    buffer: BytesMut,
    state: State,
    inner_done: bool,
    trailers: Arc<Mutex<Option<http::HeaderMap>>>,
    collected: http::HeaderMap,
}

impl<S> ChunkedDecoder<S> {
    pub fn new(inner: S, trailers: Arc<Mutex<Option<http::HeaderMap>>>) -> Self {
        Self {
            inner,
            buffer: BytesMut::new(),
            state: State::Header,
            inner_done: false,
            trailers,
            collected: http::HeaderMap::new(),
        }
    }

    /// Takes one `\r\n`-terminated line off the buffer, without the ending.
    fn line(&mut self) -> Result<Option<Bytes>, ChunkedError> {
        match self.buffer.windows(2).position(|pair| pair == b"\r\n") {
            Some(at) => {
                let line = self.buffer.split_to(at).freeze();
                self.buffer.advance(2);
                Ok(Some(line))
            }
            None if self.buffer.len() > MAX_LINE => Err(ChunkedError::Malformed("line too long")),
            None => Ok(None),
        }
    }

    /// Decodes what the buffer holds: `Some(data)` for payload bytes,
    /// `None` when more input is needed (or the body is done).
    fn step(&mut self) -> Result<Option<Bytes>, ChunkedError> {
        loop {
            match self.state {
                State::Header => {
                    let Some(line) = self.line()? else {
                        return Ok(None);
                    };
                    let text = std::str::from_utf8(&line)
                        .map_err(|_| ChunkedError::Malformed("chunk header is not text"))?;
                    let size = text.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(size, 16)
                        .map_err(|_| ChunkedError::Malformed("bad chunk size"))?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if self.buffer.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(self.buffer.len());
                    let data = self.buffer.split_to(take).freeze();
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Some(data));
                }
                State::DataEnd => {
                    if self.buffer.len() < 2 {
                        return Ok(None);
                    }
                    if &self.buffer[..2] != b"\r\n" {
                        return Err(ChunkedError::Malformed("chunk data not followed by CRLF"));
                    }
                    self.buffer.advance(2);
                    self.state = State::Header;
                }
                State::Trailers => {
                    let Some(line) = self.line()? else {
                        if self.inner_done && self.buffer.is_empty() {
                            // Some clients end right after the last trailer.
                            self.finish_trailers();
                        }
                        return Ok(None);
                    };
                    if line.is_empty() {
                        self.finish_trailers();
                        return Ok(None);
                    }
                    let text = std::str::from_utf8(&line)
                        .map_err(|_| ChunkedError::Malformed("trailer is not text"))?;
                    let (name, value) = text
                        .split_once(':')
                        .ok_or(ChunkedError::Malformed("trailer without a colon"))?;
                    if let (Ok(name), Ok(value)) = (
                        http::HeaderName::from_bytes(name.trim().as_bytes()),
                        http::HeaderValue::from_str(value.trim()),
                    ) {
                        self.collected.append(name, value);
                    }
                }
                State::Done => return Ok(None),
            }
        }
    }

    fn finish_trailers(&mut self) {
        self.state = State::Done;
        if let Ok(mut slot) = self.trailers.lock() {
            *slot = Some(std::mem::take(&mut self.collected));
        }
    }
}

impl<S, E> Stream for ChunkedDecoder<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, ChunkedError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.step() {
                Err(error) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(error)));
                }
                Ok(Some(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(None) if this.state == State::Done => return Poll::Ready(None),
                Ok(None) if this.inner_done => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(ChunkedError::Truncated)));
                }
                Ok(None) => {}
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => this.buffer.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(error))) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(ChunkedError::Inner(error.to_string()))));
                }
                Poll::Ready(None) => this.inner_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The decoder as a body `s3s` accepts, with the decoded length known
/// from `x-amz-decoded-content-length`.
pub struct DecodedBody {
    decoder: ChunkedDecoder<s3s::Body>,
    remaining: usize,
}

impl DecodedBody {
    pub fn new(
        body: s3s::Body,
        decoded_length: usize,
        trailers: Arc<Mutex<Option<http::HeaderMap>>>,
    ) -> Self {
        Self {
            decoder: ChunkedDecoder::new(body, trailers),
            remaining: decoded_length,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Stream for DecodedBody {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match Pin::new(&mut this.decoder).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.remaining = this.remaining.saturating_sub(bytes.len());
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(Box::new(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl s3s::stream::ByteStream for DecodedBody {
    fn remaining_length(&self) -> s3s::stream::RemainingLength {
        s3s::stream::RemainingLength::new_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    async fn decode(
        pieces: Vec<&'static [u8]>,
    ) -> (Result<Vec<u8>, String>, Option<http::HeaderMap>) {
        let slot = Arc::new(Mutex::new(None));
        let inner = futures::stream::iter(
            pieces
                .into_iter()
                .map(|piece| Ok::<_, std::io::Error>(Bytes::from_static(piece))),
        );
        let mut decoder = ChunkedDecoder::new(inner, slot.clone());
        let mut out = Vec::new();
        while let Some(item) = decoder.next().await {
            match item {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(error) => return (Err(error.to_string()), None),
            }
        }
        let trailers = slot.lock().expect("lock").take();
        (Ok(out), trailers)
    }

    #[tokio::test]
    async fn signed_chunks_without_trailers() {
        let body: &[u8] = b"5;chunk-signature=abc\r\nhello\r\n6;chunk-signature=def\r\n world\r\n0;chunk-signature=0\r\n\r\n";
        let (out, trailers) = decode(vec![body]).await;
        assert_eq!(out.expect("decoded"), b"hello world");
        assert_eq!(trailers.expect("trailers").len(), 0);
    }

    #[tokio::test]
    async fn unsigned_chunks_with_a_trailer_split_anywhere() {
        let body: &[u8] = b"3\r\nabc\r\n2\r\nde\r\n0\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n";
        // Feed it a byte at a time.
        let pieces: Vec<&'static [u8]> = (0..body.len()).map(|i| &body[i..i + 1]).collect();
        let (out, trailers) = decode(pieces).await;
        assert_eq!(out.expect("decoded"), b"abcde");
        let trailers = trailers.expect("trailers");
        assert_eq!(
            trailers
                .get("x-amz-checksum-crc32")
                .and_then(|v| v.to_str().ok()),
            Some("NSRBwg==")
        );
    }

    #[tokio::test]
    async fn broken_bodies_are_errors() {
        let (out, _) = decode(vec![b"zz\r\nabc\r\n"]).await;
        assert!(out.is_err());
        let (out, _) = decode(vec![b"5\r\nabc"]).await;
        assert!(out.is_err(), "truncated data");
        let (out, _) = decode(vec![b"3\r\nabcXX0\r\n\r\n"]).await;
        assert!(out.is_err(), "missing CRLF after data");
    }
}
