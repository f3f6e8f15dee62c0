//! TLS: a self-signed certificate generated on first start (and reused), or the operator's own.

use anyhow::{Context, Result, bail};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub generated: bool,
}

/// Names the generated certificate is valid for: loopback, plus this machine's hostname so hosts on the
/// local network can enroll against it too.
fn subject_names() -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Ok(hostname) =
        std::fs::read_to_string("/proc/sys/kernel/hostname").or_else(|_| std::fs::read_to_string("/etc/hostname"))
    {
        let hostname = hostname.trim().to_string();
        if !hostname.is_empty() && !names.contains(&hostname) {
            names.push(hostname);
        }
    }
    names
}

/// The certificate and key to serve: the given pair, or `DATA_DIR/tls/{cert,key}.pem`, generated if absent.
pub fn ensure_files(data_dir: &Path, cert: Option<&Path>, key: Option<&Path>) -> Result<TlsFiles> {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            return Ok(TlsFiles { cert: cert.to_path_buf(), key: key.to_path_buf(), generated: false });
        }
        (None, None) => {}
        _ => bail!("--tls-cert and --tls-key go together"),
    }
    let dir = data_dir.join("tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok(TlsFiles { cert: cert_path, key: key_path, generated: false });
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let certified =
        rcgen::generate_simple_self_signed(subject_names()).context("generating a self-signed certificate")?;
    std::fs::write(&cert_path, certified.cert.pem()).with_context(|| format!("writing {}", cert_path.display()))?;
    crate::files::write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())?;
    Ok(TlsFiles { cert: cert_path, key: key_path, generated: true })
}

pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>> {
    let cert_pem = std::fs::read(&files.cert).with_context(|| format!("reading {}", files.cert.display()))?;
    let key_pem = std::fs::read(&files.key).with_context(|| format!("reading {}", files.key.display()))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", files.cert.display());
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .with_context(|| format!("parsing {}", files.key.display()))?
        .with_context(|| format!("{} holds no private key", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
