//! TLS on the listening port (rustls): certificate and key from PEM files, reloaded without
//! a restart.
//!
//! Defaults, chosen so that there is nothing to tune: TLS 1.3 and 1.2 only; rustls' cipher
//! suites (AEAD only, forward secrecy only: TLS 1.3 AES-GCM and ChaCha20-Poly1305, TLS 1.2
//! ECDHE with the same); ALPN `http/1.1` (a client that offers ALPN without it is refused);
//! no client certificates. The crypto provider is *ring*.
//!
//! The certificate is served through [`CertStore`], a `ResolvesServerCert` that hands out the
//! current certificate from an `ArcSwap`: a reload loads and checks the new pair first and
//! swaps it in only if it is usable, so new connections get the new certificate, connections
//! already open keep theirs, and a broken file leaves the old certificate in service.
//!
//! A client that speaks plain text to the TLS port is told so (a plain-HTTP `400` when it
//! looks like HTTP), its connection is closed, and the failure is counted
//! (`tickwire_tls_handshake_failures_total{reason}`); nothing else is affected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_http::error::DispatchError;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::metrics::{Metrics, TlsFailure};

/// A certificate or key that cannot be used; the message names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("`tls.cert_file` {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("`tls.key_file` {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

impl TlsError {
    /// The configuration key at fault, if any.
    pub fn key(&self) -> Option<&'static str> {
        match self {
            TlsError::Cert { .. } => Some("tls.cert_file"),
            TlsError::Key { .. } => Some("tls.key_file"),
            TlsError::Setup(_) => None,
        }
    }

    /// The message without the key: the file and what is wrong with it.
    pub fn detail(&self) -> String {
        match self {
            TlsError::Cert { path, reason } | TlsError::Key { path, reason } => {
                format!("{}: {reason}", path.display())
            }
            TlsError::Setup(m) => m.clone(),
        }
    }
}

/// The certificate chain and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads and checks a certificate chain and its private key.
pub fn load_certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: files.cert_file.clone(),
        reason,
    };
    let key_err = |reason: String| TlsError::Key {
        path: files.key_file.clone(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .map_err(|e| cert_err(pem_error(&e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(pem_error(&e)))?;
    if certs.is_empty() {
        return Err(cert_err("no PEM certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| key_err(pem_error(&e)))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_err(format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified.keys_match().map_err(|e| {
        key_err(format!(
            "does not match the certificate in {}: {e}",
            files.cert_file.display()
        ))
    })?;
    Ok(certified)
}

fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no PEM item of the expected kind".into(),
        Error::MissingSectionEnd { .. } => "invalid PEM: a section has no END line".into(),
        Error::IllegalSectionStart { .. } => "invalid PEM: malformed BEGIN line".into(),
        Error::Base64Decode(_) => "invalid PEM: the body is not base64".into(),
        other => format!("invalid PEM: {other}"),
    }
}

/// The certificate in service; see the module documentation.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    /// A store serving `key`.
    pub fn new(key: CertifiedKey) -> Self {
        CertStore {
            current: ArcSwap::from_pointee(key),
        }
    }

    /// Loads `files` and, if they are usable, serves them to new connections from now on.
    pub fn reload(&self, files: &TlsFiles) -> Result<(), TlsError> {
        let key = load_certified_key(files)?;
        self.current.store(Arc::new(key));
        Ok(())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The rustls server configuration with our defaults, serving `store`'s certificate.
pub fn server_config(store: Arc<CertStore>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts TLS connections for the listener (cheap to clone: one per worker).
#[derive(Clone)]
pub struct TlsAcceptor {
    acceptor: tokio_rustls::TlsAcceptor,
    store: Arc<CertStore>,
    metrics: Arc<Metrics>,
}

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

impl TlsAcceptor {
    /// Loads `files` (refusing unusable ones) and builds the acceptor.
    pub fn new(files: &TlsFiles, metrics: Arc<Metrics>) -> Result<Self, TlsError> {
        let store = Arc::new(CertStore::new(load_certified_key(files)?));
        let config = server_config(store.clone())?;
        Ok(TlsAcceptor {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            store,
            metrics,
        })
    }

    /// The certificate store, for reloads.
    pub fn store(&self) -> &Arc<CertStore> {
        &self.store
    }

    /// Runs the TLS handshake on a new connection. A client that is not speaking TLS is
    /// answered (plain HTTP 400 when it sent HTTP) and closed; every failure is logged and
    /// counted.
    pub async fn accept(
        &self,
        mut tcp: TcpStream,
        peer: Option<SocketAddr>,
        timeout: Duration,
    ) -> Result<TlsStream<TcpStream>, DispatchError> {
        let peer = peer.map(|p| p.to_string()).unwrap_or_default();
        let mut first = [0u8; 1];
        match tokio::time::timeout(timeout, tcp.peek(&mut first)).await {
            Ok(Ok(1)) => {}
            Ok(Ok(_)) | Ok(Err(_)) => {
                return Err(self.failed(
                    TlsFailure::Handshake,
                    &peer,
                    "closed before a TLS handshake",
                ))
            }
            Err(_) => {
                return Err(self.failed(TlsFailure::Timeout, &peer, "no TLS handshake in time"))
            }
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            if first[0].is_ascii_uppercase() {
                // Most likely an HTTP request (or a ws:// handshake): say what is wrong.
                let body = "this port speaks TLS: use https:// or wss://\n";
                let response = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tokio::time::timeout(timeout, async {
                    let _ = tcp.write_all(response.as_bytes()).await;
                    let _ = tcp.shutdown().await;
                })
                .await;
            }
            return Err(self.failed(
                TlsFailure::Plaintext,
                &peer,
                "plain-text client on the TLS port",
            ));
        }
        match tokio::time::timeout(timeout, self.acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(self.failed(TlsFailure::Handshake, &peer, &e.to_string())),
            Err(_) => Err(self.failed(TlsFailure::Timeout, &peer, "TLS handshake timed out")),
        }
    }

    fn failed(&self, why: TlsFailure, peer: &str, detail: &str) -> DispatchError {
        self.metrics.tls_failure(why);
        tracing::info!(peer = %peer, reason = why.as_str(), detail = %detail, "TLS handshake failed");
        DispatchError::Io(std::io::Error::other(detail.to_string()))
    }
}

/// The reload hook's work: loads the configured files into `store`. The outcome names the
/// files, or says why the old certificate stays.
pub fn reload_into(
    store: &CertStore,
    files: Option<&TlsFiles>,
    serving: &TlsFiles,
) -> Result<String, String> {
    let Some(files) = files else {
        return Err(
            "TLS cannot be turned off without a restart; keeping the current certificate".into(),
        );
    };
    if files != serving {
        // New paths are fine: the listener does not care where the files are.
        tracing::info!(cert = %files.cert_file.display(), key = %files.key_file.display(), "TLS files moved");
    }
    store
        .reload(files)
        .map(|()| format!("certificate reloaded from {}", files.cert_file.display()))
        .map_err(|e| format!("{e}; keeping the current certificate"))
}

/// Whether a path names an existing, readable file (for configuration validation).
pub fn readable(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
