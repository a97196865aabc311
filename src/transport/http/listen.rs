//! The accept loop: each connection served by hyper (HTTP/1.1, keep-alive), over TLS when a
//! certificate is configured, and shut down gracefully: on the signal the listener closes,
//! `drain` runs (calls in flight finish), then open connections are closed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tower::ServiceExt;

use super::Peer;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot use the TLS certificate or key ({path}): {reason}")]
    Tls { path: String, reason: String },
}

/// A TLS acceptor from PEM files.
#[derive(Clone)]
pub struct Tls(TlsAcceptor);

impl Tls {
    pub fn load(cert: &Path, key: &Path) -> Result<Self, ListenError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |path: &Path, reason: String| ListenError::Tls {
            path: path.display().to_string(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| bad(cert, e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(cert, e.to_string()))?;
        if certs.is_empty() {
            return Err(bad(cert, "no certificate in the file".into()));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(cert, e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key_der)
            .map_err(|e| bad(cert, e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self(TlsAcceptor::from(Arc::new(config))))
    }
}

/// A client gets this long to finish its TLS handshake, and to send a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(
    listener: std::net::TcpListener,
    tls: Option<Tls>,
    router: Router,
    shutdown: impl Future<Output = ()>,
    drain: impl Future<Output = ()>,
) -> Result<(), ListenError> {
    let bound = listener.local_addr().map_err(|source| ListenError::Bind {
        address: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let listener = TcpListener::from_std(listener).map_err(|source| ListenError::Bind {
        address: bound,
        source,
    })?;
    // The one line that says where the server is (tests read it to find a free port's number).
    tracing::warn!(
        "serving MCP over HTTP at {}://{bound}/mcp",
        if tls.is_some() { "https" } else { "http" }
    );
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, say: wait a little rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service =
            router.map_request(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(Peer(peer));
                request
            });
        let service = TowerToHyperService::new(service);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true);
            let result = match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
                Some(Tls(acceptor)) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
            };
            if let Err(e) = result {
                tracing::debug!("connection from {peer} ended: {e}");
            }
        });
    }
    drop(listener);
    drain.await;
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not close in time");
    }
    Ok(())
}
