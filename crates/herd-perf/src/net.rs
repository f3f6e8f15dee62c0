//! HTTPS/1.1 connections to the server and the two connection models.
//!
//! - **pooled**: a fixed number of keep-alive connections shared by every simulated host, as behind a load
//!   balancer that keeps connections to the server open.
//! - **per-host**: every simulated host keeps a keep-alive connection of its own, as osqueryd agents that
//!   connect straight to the server. It needs one file descriptor per host on both sides.

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

/// Why a request failed, as counted in the report.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    Connect,
    Tls,
    Timeout,
    /// The connection broke while the request was under way.
    Io,
    Status(u16),
    /// 200 with `node_invalid: true`.
    NodeInvalid,
    BadBody,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Tls => f.write_str("tls"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Io => f.write_str("io"),
            ErrorKind::Status(code) => write!(f, "http_{code}"),
            ErrorKind::NodeInvalid => f.write_str("node_invalid"),
            ErrorKind::BadBody => f.write_str("bad_body"),
        }
    }
}

/// Where the server is and how to reach it.
pub struct Endpoint {
    addr: SocketAddr,
    host_header: String,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    timeout: Duration,
}

impl Endpoint {
    /// `url` is https://HOST:PORT; `ca_cert` a PEM file to trust (herd's generated certificate), or None to
    /// accept any certificate (a benchmark on loopback, never a real agent).
    pub fn new(url: &str, ca_cert: Option<&std::path::Path>, timeout: Duration) -> anyhow::Result<Endpoint> {
        let rest = url.strip_prefix("https://").ok_or_else(|| anyhow!("--server must be an https:// URL"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                (host.trim_start_matches('[').trim_end_matches(']').to_string(), port.parse::<u16>()?)
            }
            _ => (authority.to_string(), 443),
        };
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .with_context(|| format!("resolving {host}"))?
            .next()
            .ok_or_else(|| anyhow!("{host} has no address"))?;
        let config = match ca_cert {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    roots.add(cert?)?;
                }
                rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()
            }
            None => rustls::ClientConfig::builder()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny::new()))
                .with_no_client_auth(),
        };
        Ok(Endpoint {
            addr,
            host_header: authority.to_string(),
            server_name: ServerName::try_from(host)?,
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }

    pub async fn connect(&self) -> Result<Conn, ErrorKind> {
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| ErrorKind::Timeout)?
            .map_err(|_| ErrorKind::Connect)?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(self.timeout, self.tls.connect(self.server_name.clone(), tcp))
            .await
            .map_err(|_| ErrorKind::Timeout)?
            .map_err(|_| ErrorKind::Tls)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|_| ErrorKind::Tls)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender })
    }

    /// One request on `conn`: (status, body). The connection is unusable after an error.
    pub async fn send(
        &self,
        conn: &mut Conn,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ErrorKind> {
        self.send_as(conn, method, path, body, None).await
    }

    /// `send`, with a bearer token (the REST API).
    pub async fn send_as(
        &self,
        conn: &mut Conn,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        bearer: Option<&str>,
    ) -> Result<(StatusCode, Bytes), ErrorKind> {
        let mut request = Request::builder().method(method).uri(path).header(hyper::header::HOST, &self.host_header);
        if let Some(token) = bearer {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default())).map_err(|_| ErrorKind::BadBody)?;
        let exchange = async {
            conn.sender.ready().await.map_err(|_| ErrorKind::Io)?;
            let response = conn.sender.send_request(request).await.map_err(|_| ErrorKind::Io)?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|_| ErrorKind::Io)?.to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| ErrorKind::Timeout)?
    }
}

pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

/// A fixed number of keep-alive connections; a request waits for a free one.
pub struct Pool {
    idle: Mutex<Vec<Conn>>,
    slots: Semaphore,
}

impl Pool {
    pub fn new(size: usize) -> Pool {
        Pool { idle: Mutex::new(Vec::with_capacity(size)), slots: Semaphore::new(size) }
    }

    pub async fn send(
        &self,
        endpoint: &Endpoint,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ErrorKind> {
        let _slot = self.slots.acquire().await.map_err(|_| ErrorKind::Connect)?;
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => endpoint.connect().await?,
        };
        let outcome = endpoint.send(&mut conn, method, path, body).await;
        // A connection that failed is dropped (closed); the next request opens a fresh one.
        if !matches!(outcome, Err(ErrorKind::Io | ErrorKind::Timeout)) {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        }
        outcome
    }
}

/// How simulated hosts reach the servers.
pub enum Transport {
    /// A pool of connections to each server (index = the server's).
    Pooled(Vec<Pool>),
    PerHost,
}

/// The connections a simulated host uses under either model: under `PerHost`, one of its own to each server.
pub struct HostLink {
    own: Vec<Option<Conn>>,
}

impl HostLink {
    pub fn new() -> HostLink {
        HostLink { own: Vec::new() }
    }

    /// One request to server `index` (of `endpoints`).
    pub async fn send(
        &mut self,
        transport: &Transport,
        endpoints: &[Endpoint],
        index: usize,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ErrorKind> {
        let endpoint = &endpoints[index];
        match transport {
            Transport::Pooled(pools) => pools[index].send(endpoint, method, path, body).await,
            Transport::PerHost => {
                if self.own.len() <= index {
                    self.own.resize_with(index + 1, || None);
                }
                let mut conn = match self.own[index].take() {
                    Some(conn) => conn,
                    None => endpoint.connect().await?,
                };
                let outcome = endpoint.send(&mut conn, method, path, body).await;
                if !matches!(outcome, Err(ErrorKind::Io | ErrorKind::Timeout)) {
                    self.own[index] = Some(conn);
                }
                outcome
            }
        }
    }
}

/// The soft limit on open files of this process.
pub fn open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc == 0 { limit.rlim_cur } else { 1024 }
}

/// Raises the soft open-files limit to the hard one (per-host connections need one descriptor each).
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Accepts any server certificate: for benchmarks against a throwaway server with no CA file at hand.
#[derive(Debug)]
struct AcceptAny {
    schemes: Vec<rustls::SignatureScheme>,
}

impl AcceptAny {
    fn new() -> AcceptAny {
        let provider = rustls::crypto::ring::default_provider();
        AcceptAny { schemes: provider.signature_verification_algorithms.supported_schemes() }
    }
}

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes.clone()
    }
}
