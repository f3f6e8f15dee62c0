//! An HTTPS receiver on loopback with its own self-signed certificate, for the webhook tests: herd posts
//! webhooks only over HTTPS, so a test that follows one needs a server whose certificate herd is told to trust.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A running receiver: where herd should post, the certificate to trust, and the bodies it got, in order.
pub struct HttpsReceiver {
    pub url: String,
    pub cert: PathBuf,
    pub received: Arc<Mutex<Vec<Value>>>,
}

impl HttpsReceiver {
    /// Serves `POST {path}` on 127.0.0.1 (a free port) until the test's runtime ends: each JSON body is kept,
    /// then handed to `on_body` (e.g. to play the part of the system the webhook drives). The certificate is
    /// written to `dir/receiver.pem`.
    pub async fn start(dir: &Path, path: &str, on_body: impl Fn(&Value) + Clone + Send + Sync + 'static) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let certified = rcgen::generate_simple_self_signed(names).unwrap();
        let cert = dir.join("receiver.pem");
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        let config = axum_server::tls_rustls::RustlsConfig::from_pem(
            certified.cert.pem().into_bytes(),
            certified.signing_key.serialize_pem().into_bytes(),
        )
        .await
        .unwrap();
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = received.clone();
        let app = axum::Router::new().route(
            path,
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let (sink, on_body) = (sink.clone(), on_body.clone());
                async move {
                    sink.lock().unwrap().push(body.clone());
                    on_body(&body);
                    "ok"
                }
            }),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://127.0.0.1:{}{path}", listener.local_addr().unwrap().port());
        let server = axum_server::from_tcp_rustls(listener, config).unwrap();
        tokio::spawn(async move { server.serve(app.into_make_service()).await });
        HttpsReceiver { url, cert, received }
    }
}
