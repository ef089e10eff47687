//! One keep-alive HTTP/1.1 connection (hyper's low-level client: no pool,
//! no per-request allocation beyond the request itself).

use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn connect(address: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("cannot connect to {address}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { sender })
    }

    /// Sends one request and reads the whole response body.
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let (status, _, body) = self.send_full(request).await?;
        Ok((status, body))
    }

    /// Sends one request and reads the whole response, headers included.
    pub async fn send_full(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
        self.sender.ready().await.context("connection closed")?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok((parts.status, parts.headers, body))
    }
}

/// A GET without a body (for `/_hangar/health`).
pub fn get(host: &str, path: &str) -> anyhow::Result<Request<Full<Bytes>>> {
    Ok(Request::get(path)
        .header(http::header::HOST, host)
        .body(Full::new(Bytes::new()))?)
}
