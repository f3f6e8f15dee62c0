//! A real headless Chromium for page tests, driven over WebDriver (chromedriver). Needs Debian's `chromium`
//! and `chromium-driver`: `scripts/test` installs them and sets HERD_TEST_CHROMEDRIVER (and may set
//! HERD_TEST_CHROMIUM). Screenshots go to target/browser-artifacts/.

use crate::eventually;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

/// The chromedriver to use, or None when there is none — the caller skips its test, unless REQUIRE_BROWSER
/// is set (CI), where a missing browser fails.
pub fn chromedriver() -> Option<String> {
    match std::env::var("HERD_TEST_CHROMEDRIVER") {
        Ok(path) => Some(path),
        Err(_) => {
            assert!(std::env::var("REQUIRE_BROWSER").is_err(), "REQUIRE_BROWSER=1 but HERD_TEST_CHROMEDRIVER is unset");
            eprintln!("skipped: no browser (HERD_TEST_CHROMEDRIVER unset; scripts/test sets it)");
            None
        }
    }
}

/// A chromedriver process and one headless Chromium session, spoken to over the WebDriver protocol.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    base: String,
}

impl Browser {
    pub async fn start(chromedriver: &str) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        use std::os::unix::process::CommandExt;
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            // Its own process group, so the browsers it starts go with it (see Drop).
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let status_url = format!("{base}/status");
        eventually(PATIENCE, "chromedriver ready", || async {
            let status: Value = http.get(&status_url).send().await.ok()?.json().await.ok()?;
            (status["value"]["ready"] == true).then_some(())
        })
        .await;
        let chromium = std::env::var("HERD_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let profile = tempfile::tempdir().unwrap().keep();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1024,1400",
                format!("--user-data-dir={}", profile.display()),
            ]}
        }}});
        let created: Value =
            http.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session =
            created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_string();
        Browser { driver, http, session, base }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply: Value = request.send().await.unwrap().json().await.unwrap();
        reply["value"].clone()
    }

    pub async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn script(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    pub async fn text(&self) -> String {
        self.script("return document.body.innerText;").await.as_str().unwrap_or_default().to_string()
    }

    pub async fn click(&self, css: &str) {
        let found =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element found")
            .to_string();
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    pub async fn screenshot(&self, name: &str) {
        use base64_png::decode;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), decode(png.as_str().unwrap())).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and every Chromium process it started.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Base64 (standard alphabet) for the screenshots, without another dependency.
mod base64_png {
    pub fn decode(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
        let mut out = Vec::with_capacity(clean.len() * 3 / 4);
        for chunk in clean.chunks(4) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, c)| acc | (u32::from(value(*c)) << (18 - 6 * i)));
            out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
        }
        out
    }
}
