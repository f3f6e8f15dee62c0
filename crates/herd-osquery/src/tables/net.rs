//! Bounded network access for curl and curl_certificate: name resolution, connection and TLS, each limited in
//! time, so a query about an unreachable or silent host ends by itself.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// Where Debian, Fedora/RHEL, openSUSE and Alpine keep the system's trusted CA bundle.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Resolves `host:port` within `limit` (getaddrinfo has no timeout of its own: it runs on a helper thread
/// that is abandoned if it is late). IPv4 addresses first, as osquery's curl_certificate prefers them.
pub(crate) fn resolve(host: &str, port: u16, limit: Duration) -> Option<Vec<SocketAddr>> {
    let (sender, receiver) = mpsc::channel();
    let target = (host.trim_start_matches('[').trim_end_matches(']').to_string(), port);
    std::thread::spawn(move || {
        let _ = sender.send(target.to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
    });
    let mut addresses = receiver.recv_timeout(limit).ok()?.ok()?;
    addresses.sort_by_key(|a| !a.is_ipv4());
    Some(addresses)
}

/// A TCP connection to `host:port` with read and write timeouts, all within `deadline`.
pub(crate) fn connect(host: &str, port: u16, deadline: Instant) -> std::io::Result<TcpStream> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "time limit reached");
    let addresses = resolve(host, port, left())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("cannot resolve {host}")))?;
    let mut last = timed_out();
    for address in addresses {
        if left().is_zero() {
            return Err(timed_out());
        }
        match TcpStream::connect_timeout(&address, left()) {
            Ok(stream) => {
                stream.set_read_timeout(Some(left().max(Duration::from_millis(1))))?;
                stream.set_write_timeout(Some(left().max(Duration::from_millis(1))))?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS that trusts the system's CA bundle (curl).
pub(crate) fn verifying_config() -> Option<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for bundle in CA_BUNDLES {
        let Ok(file) = std::fs::File::open(bundle) else { continue };
        let mut reader = std::io::BufReader::new(file);
        let certificates: Vec<_> = rustls_pemfile::certs(&mut reader).flatten().collect();
        let (added, _) = roots.add_parsable_certificates(certificates);
        if added > 0 {
            break;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(Arc::new(config))
}

/// Accepts any certificate while checking the handshake's signatures: curl_certificate reports what a server
/// presents, trusted or not (osquery's does not verify either).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS that accepts whatever certificate the server presents (curl_certificate).
pub(crate) fn inspecting_config() -> Option<Arc<rustls::ClientConfig>> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Some(Arc::new(config))
}

/// A TLS session over `stream`, handshake completed.
pub(crate) fn tls(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    stream: TcpStream,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
        .map_err(|e| invalid(e.to_string()))?;
    let connection = rustls::ClientConnection::new(config, name).map_err(|e| invalid(e.to_string()))?;
    let mut session = rustls::StreamOwned::new(connection, stream);
    while session.conn.is_handshaking() {
        session.conn.complete_io(&mut session.sock)?;
    }
    Ok(session)
}
