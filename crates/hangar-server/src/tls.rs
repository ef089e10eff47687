//! HTTPS on the one listener, when the configuration names `tls_cert` and
//! `tls_key` (see `docs/tls.md`).
//!
//! rustls with the `ring` provider terminates TLS; hyper serves HTTP/1.1 on
//! each connection to the same axum router as the plain-HTTP path, and every
//! request that arrives this way carries [`hangar_s3::SecureTransport`] in its
//! extensions (bucket policies read it as `aws:SecureTransport`).
//!
//! Only `http/1.1` is offered by ALPN: over HTTP/2 a request has no `Host`
//! header (the authority travels as `:authority`), and SigV4 signs `host`.
//!
//! A client that fails its handshake (plain HTTP sent to the HTTPS port, an
//! untrusted certificate, a stalled peer) costs one debug line and its own
//! connection only; the accept loop goes on.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The only application protocol offered (see the module documentation).
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Reads the PEM files and builds the TLS acceptor. Every failure is one
/// line that names the file and the key it came from.
pub fn acceptor(cert_path: &Path, key_path: &Path) -> anyhow::Result<TlsAcceptor> {
    let cert_pem = std::fs::read(cert_path)
        .with_context(|| format!("cannot read tls_cert {}", cert_path.display()))?;
    let key_pem = std::fs::read(key_path)
        .with_context(|| format!("cannot read tls_key {}", key_path.display()))?;
    let config = server_config(
        &cert_pem,
        &key_pem,
        &cert_path.display().to_string(),
        &key_path.display().to_string(),
    )?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The rustls configuration for a certificate chain and its key, both PEM.
/// `cert_name` and `key_name` only label the error messages.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_name: &str,
    key_name: &str,
) -> anyhow::Result<ServerConfig> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| anyhow!("tls_cert {cert_name} is not valid PEM: {error}"))?;
    if chain.is_empty() {
        anyhow::bail!(
            "tls_cert {cert_name} holds no certificate (expected a PEM \"-----BEGIN CERTIFICATE-----\" block)"
        );
    }
    let key = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(key) => key,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => anyhow::bail!(
            "tls_key {key_name} holds no private key (expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block)"
        ),
        Err(error) => anyhow::bail!("tls_key {key_name} is not valid PEM: {error}"),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => anyhow!(
                "tls_key {key_name} does not match the certificate in tls_cert {cert_name} (the first certificate must be the server's own)"
            ),
            rustls::Error::InvalidCertificate(_) => {
                anyhow!("tls_cert {cert_name}: the first certificate cannot be used: {error}")
            }
            other => anyhow!("cannot use tls_cert {cert_name} with tls_key {key_name}: {other}"),
        })?;
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(config)
}

/// Serves `router` over TLS on `listener` until `shutdown` completes, then
/// stops accepting and waits for the open connections to finish their
/// requests (as `axum::serve`'s graceful shutdown does for plain HTTP).
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: axum::Router,
    shutdown: impl Future<Output = ()>,
) {
    // The whole listener is TLS, so every request it serves is marked.
    let service =
        TowerToHyperService::new(router.layer(axum::Extension(hangar_s3::SecureTransport)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: the same pause
                    // as axum::serve, rather than a hot loop.
                    if !is_connection_error(&error) {
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let service = service.clone();
        // Taken before the handshake so that a shutdown that starts during
        // it still reaches this connection.
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let builder = Builder::new(TokioExecutor::new()).http1_only();
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of one connection that `accept` reports (the peer gave up before
/// it was accepted): nothing to wait for.
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::body::Body;
    use axum::http::Request;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct TestPki {
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
    }

    /// A CA and a server certificate for 127.0.0.1 and localhost it signed.
    fn make_pki() -> TestPki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &ca).unwrap();
        TestPki {
            ca_pem: ca_cert.pem(),
            cert_pem: server_cert.pem(),
            key_pem: server_key.serialize_pem(),
        }
    }

    fn config_error(cert: &str, key: &str) -> String {
        format!(
            "{:#}",
            server_config(cert.as_bytes(), key.as_bytes(), "cert.pem", "key.pem").unwrap_err()
        )
    }

    #[test]
    fn good_files_make_a_config() {
        let pki = make_pki();
        let config =
            server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), "c", "k").unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        // The chain may carry the CA after the leaf.
        let chain = format!("{}{}", pki.cert_pem, pki.ca_pem);
        server_config(chain.as_bytes(), pki.key_pem.as_bytes(), "c", "k").unwrap();
    }

    #[test]
    fn bad_files_are_one_clear_line() {
        let pki = make_pki();
        let error = config_error("", &pki.key_pem);
        assert!(error.contains("holds no certificate"), "{error}");
        // a key where the certificate should be
        let error = config_error(&pki.key_pem, &pki.key_pem);
        assert!(error.contains("holds no certificate"), "{error}");
        let error = config_error(&pki.cert_pem, &pki.cert_pem);
        assert!(error.contains("holds no private key"), "{error}");
        let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let error = config_error(&pki.cert_pem, &other_key);
        assert!(error.contains("does not match the certificate"), "{error}");
        let error = config_error(
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
            &pki.key_pem,
        );
        assert!(error.contains("cert.pem"), "{error}");
        for error in [
            config_error("", &pki.key_pem),
            config_error(&pki.cert_pem, &other_key),
        ] {
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn missing_files_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let pki = make_pki();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, &pki.cert_pem).unwrap();
        let missing = dir.path().join("missing.pem");
        let error = format!("{:#}", acceptor(&cert, &missing).err().unwrap());
        assert!(error.starts_with("cannot read tls_key"), "{error}");
        assert!(error.contains("missing.pem"), "{error}");
        let error = format!("{:#}", acceptor(&missing, &cert).err().unwrap());
        assert!(error.starts_with("cannot read tls_cert"), "{error}");
    }

    async fn https_get(
        address: std::net::SocketAddr,
        ca_pem: &str,
        path: &str,
    ) -> std::io::Result<String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(address).await?;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut answer = String::new();
        tls.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn serves_marks_secure_survives_bad_clients_and_stops() {
        let pki = make_pki();
        let acceptor = TlsAcceptor::from(Arc::new(
            server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes(), "c", "k").unwrap(),
        ));
        let router = axum::Router::new().fallback(|request: Request<Body>| async move {
            match request.extensions().get::<hangar_s3::SecureTransport>() {
                Some(_) => "secure",
                None => "insecure",
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, acceptor, router, async {
            let _ = stopped.await;
        }));

        let answer = https_get(address, &pki.ca_pem, "/").await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.ends_with("secure") && !answer.ends_with("insecure"),
            "{answer}"
        );

        // Plain HTTP on the TLS port: that client fails, the server goes on.
        let mut plain = tokio::net::TcpStream::connect(address).await.unwrap();
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let _ = plain.read_to_end(&mut reply).await;
        assert!(!reply.starts_with(b"HTTP/"), "{reply:?}");
        // A client that does not trust the certificate.
        let other = make_pki();
        assert!(https_get(address, &other.ca_pem, "/").await.is_err());
        // A client that connects and hangs up at once.
        drop(tokio::net::TcpStream::connect(address).await.unwrap());

        let answer = https_get(address, &pki.ca_pem, "/again").await.unwrap();
        assert!(answer.ends_with("secure"), "{answer}");

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server stops on the shutdown signal")
            .unwrap();
        assert!(tokio::net::TcpStream::connect(address).await.is_err());
    }
}
