//! The one way herd's clients (herd-agent, herdctl) pin a server: a TLS client configuration that trusts
//! exactly the certificates in a PEM file (the server's self-signed certificate, or an internal CA) and
//! nothing else, with ring as the crypto provider (one provider for the whole workspace).

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::sync::Arc;

/// A client configuration trusting only the certificates in `ca_cert` (PEM). A file with no certificate is
/// an error, never "trust nothing" or "trust the system".
pub fn pinned_client_config(ca_cert: &Path) -> Result<rustls::ClientConfig> {
    let pem = std::fs::read(ca_cert).with_context(|| format!("reading {}", ca_cert.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.with_context(|| format!("parsing {}", ca_cert.display()))?)?;
    }
    if roots.is_empty() {
        bail!("{} holds no certificate", ca_cert.display());
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_a_certificate_and_refuses_files_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap().cert;
        let good = dir.path().join("cert.pem");
        std::fs::write(&good, cert.pem()).unwrap();
        assert!(pinned_client_config(&good).is_ok());
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let err = pinned_client_config(&empty).unwrap_err().to_string();
        assert!(err.contains("holds no certificate"), "{err}");
        assert!(pinned_client_config(&dir.path().join("missing.pem")).is_err());
    }
}
