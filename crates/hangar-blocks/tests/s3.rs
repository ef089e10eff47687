//! The block-store conformance suite on the S3 engine, against a real S3
//! server no one here wrote: moto's `moto_server`, started per test on a
//! free port and killed at the end. Where `moto_server` is not installed the
//! moto tests print why and pass without running.
//!
//! Also: the checksum each put carries, captured on the wire by a one-shot
//! HTTP listener (moto 5.2.1 accepts `x-amz-checksum-sha256` but neither
//! verifies nor stores it, so moto alone cannot show it is right).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hangar_blocks::conformance::{self, random_block};
use hangar_blocks::{ObjectBlockStore, S3BlockConfig};
use hangar_core::blocks::{BLOCK_SIZE, BlockError, BlockStore};
use sha2::{Digest, Sha256};

/// A running `moto_server`, killed (and reaped) on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `moto_server` on a free port and waits until it answers HTTP;
/// `None` (with the reason printed) when it is not installed.
fn start_moto() -> Option<Moto> {
    let port = free_port();
    let child = match Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: moto_server is not on the PATH (pip install 'moto[server]')");
            return None;
        }
        Err(error) => panic!("starting moto_server: {error}"),
    };
    let mut moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = moto.child.try_wait().expect("moto_server status") {
            panic!("moto_server exited early: {status}");
        }
        if http_status(port, "GET", "/", &[]).is_some() {
            return Some(moto);
        }
        assert!(Instant::now() < deadline, "moto_server did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One plain HTTP/1.1 request; the status code, `None` if nothing answered.
fn http_status(port: u16, method: &str, path: &str, body: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line).ok()?;
    status_line.split(' ').nth(1)?.parse().ok()
}

/// Creates `bucket` with a plain `PUT /<bucket>`. moto accepts requests
/// with any credentials or none (it checks signatures only when asked to),
/// so no signing is needed to set up the test.
fn create_bucket(moto: &Moto, bucket: &str) {
    let port: u16 = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    // No body: us-east-1, the region the stores sign for.
    assert_eq!(
        http_status(port, "PUT", &format!("/{bucket}"), b""),
        Some(200),
        "creating bucket {bucket}"
    );
}

fn config(endpoint: &str, bucket: &str, prefix: &str) -> S3BlockConfig {
    S3BlockConfig {
        bucket: bucket.into(),
        prefix: prefix.into(),
        endpoint: Some(endpoint.into()),
        region: "us-east-1".into(),
        access_key_id: Some("AKIAHANGARTEST".into()),
        secret_access_key: Some("hangar-test-secret".into()),
        allow_http: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_engine_conforms_on_moto() {
    let Some(moto) = start_moto() else { return };
    create_bucket(&moto, "hangar-blocks");
    let store =
        ObjectBlockStore::s3(config(&moto.endpoint, "hangar-blocks", "tenant/one")).unwrap();
    // Raw access (reading, damaging and planting objects) goes through the
    // same AmazonS3 client, so every corruption and leftover check runs.
    conformance::run_all_with_raw(&store, &store).await;

    // The bucket's root as prefix, in a second bucket.
    create_bucket(&moto, "hangar-root");
    let root = ObjectBlockStore::s3(config(&moto.endpoint, "hangar-root", "")).unwrap();
    conformance::run_all_with_raw(&root, &root).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_engine_prefixes_sharing_and_errors_on_moto() {
    let Some(moto) = start_moto() else { return };
    create_bucket(&moto, "hangar-shared");
    let one = ObjectBlockStore::s3(config(&moto.endpoint, "hangar-shared", "one")).unwrap();
    let two = ObjectBlockStore::s3(config(&moto.endpoint, "hangar-shared", "two")).unwrap();
    let (hash, data) = random_block(BLOCK_SIZE);
    one.put(&hash, data.clone()).await.unwrap();
    assert_eq!(
        two.get(&hash).await,
        Err(BlockError::NotFound(hash.to_hex()))
    );
    assert!(two.list(None, 10).await.unwrap().is_empty());
    // Another node (another client, same bucket and prefix) reads it.
    let other_node = ObjectBlockStore::s3(config(&moto.endpoint, "hangar-shared", "one")).unwrap();
    assert!(other_node.get(&hash).await.unwrap() == data);

    // The checks share one store concurrently, as the server's tasks do.
    let shared: &dyn BlockStore = &one;
    tokio::join!(
        conformance::check_roundtrip(shared),
        conformance::check_put_idempotent(shared),
        conformance::check_delete(shared),
        conformance::check_list_order_and_paging(shared),
        conformance::check_concurrent_puts(shared),
    );

    // A missing bucket is a backend error naming the problem, not a panic
    // nor a "not found" block.
    let missing = ObjectBlockStore::s3(config(&moto.endpoint, "no-such-bucket", "")).unwrap();
    match missing.put(&hash, data).await {
        Err(BlockError::Backend(message)) => assert!(!message.is_empty()),
        other => panic!("expected a Backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn s3_plain_http_endpoint_needs_allow_http() {
    // A listener that would accept the request: with allow_http off the
    // client refuses before connecting, so nothing reaches it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let mut refused = config(&endpoint, "hangar-blocks", "");
    refused.allow_http = false;
    let store = ObjectBlockStore::s3(refused).unwrap();
    let (hash, data) = random_block(10);
    assert!(matches!(
        store.put(&hash, data).await,
        Err(BlockError::Backend(_))
    ));
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|error| error.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "a plain HTTP request was sent"
    );
}

/// Standard base64 with padding (S3's checksum headers).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_rfc_4648() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
}

/// Reads one HTTP/1.1 request (headers lowercased, and the body by its
/// Content-Length) and answers `status` with `extra` headers.
fn serve_one(listener: &TcpListener, status: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let (stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = Vec::new();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(0, |(_, value)| value.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nETag: \"0\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    (headers, body)
}

#[tokio::test]
async fn s3_puts_carry_a_sha256_checksum_of_the_object() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let store = ObjectBlockStore::s3(config(&endpoint, "hangar-blocks", "p")).unwrap();
    let (hash, data) = random_block(4096);
    let server = std::thread::spawn(move || serve_one(&listener, "200 OK"));
    store.put(&hash, data.clone()).await.unwrap();
    let (headers, body) = server.join().unwrap();
    // The object is the block's header then its content...
    assert!(body.len() > data.len() && body.ends_with(&data));
    // ...and the request says its SHA-256, for S3 to verify on receipt.
    let sent: Vec<&str> = headers
        .iter()
        .filter(|(name, _)| name == "x-amz-checksum-sha256")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(sent, [base64(&Sha256::digest(&body))]);
}

#[tokio::test]
async fn s3_refused_checksum_is_a_backend_error() {
    // What S3 answers when the body does not match the checksum sent.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let store = ObjectBlockStore::s3(config(&endpoint, "hangar-blocks", "p")).unwrap();
    let (hash, data) = random_block(100);
    let server = std::thread::spawn(move || serve_one(&listener, "400 Bad Request"));
    assert!(matches!(
        store.put(&hash, data).await,
        Err(BlockError::Backend(_))
    ));
    server.join().unwrap();
}

/// The time fence of several nodes (docs/deployment.md, "Block collection
/// across nodes") needs a put of a block that exists to refresh its time:
/// S3 sets `LastModified` at every `PutObject`, and the collector's listing
/// must show the newer time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_put_of_an_existing_block_refreshes_its_time_on_moto() {
    let Some(moto) = start_moto() else { return };
    create_bucket(&moto, "hangar-refresh");
    let store = ObjectBlockStore::s3(config(&moto.endpoint, "hangar-refresh", "p")).unwrap();
    let (hash, data) = random_block(BLOCK_SIZE);
    store.put(&hash, data.clone()).await.unwrap();
    let listed = |blocks: Vec<hangar_core::blocks::StoredBlock>| {
        blocks
            .into_iter()
            .find(|block| block.hash == hash)
            .expect("the block is listed")
            .modified_ms
    };
    let first = listed(store.list(None, 1000).await.unwrap());
    // LastModified has a resolution of one second.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    store.put(&hash, data.clone()).await.unwrap();
    let second = listed(store.list(None, 1000).await.unwrap());
    assert!(
        second >= first + 1000,
        "a put of an existing block must refresh its time ({first} then {second})"
    );
    assert_eq!(store.get(&hash).await.unwrap(), data);
}
