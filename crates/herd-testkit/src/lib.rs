//! End-to-end test support: starts the real `herd` binary on an OS-chosen loopback port and talks to it
//! over HTTPS, pinning the certificate the server generated, as an operator following the README would.

pub mod browser;
pub mod fleetd;
pub mod receiver;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const ADMIN_EMAIL: &str = "admin@herd.local";
pub const ADMIN_PASSWORD: &str = "admin-password-1!";
pub const ENROLL_SECRET: &str = "test-enroll-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `case` against a server (the `herd` binary at `bin`) on SQLite or on PostgreSQL (whose cases are
/// `#[ignore]`d and fail without `HERD_TEST_DATABASE_URL`; see `herd_store::testing`).
pub async fn with_server<F, Fut>(bin: &str, backend: Backend, case: F)
where
    F: FnOnce(Server) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    with_server_args(bin, backend, &[], case).await
}

/// `with_server`, with extra `herd serve` arguments.
pub async fn with_server_args<F, Fut>(bin: &str, backend: Backend, extra: &[&str], case: F)
where
    F: FnOnce(Server) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(herd_store::testing::fresh_postgres_url().await),
    };
    let server =
        Server::start_with(Path::new(bin), tempfile::tempdir().unwrap().keep(), database_url, "127.0.0.1:0", extra);
    case(server).await;
}

/// Declares each case once and runs it on both backends as `sqlite::<case>` and `postgres::<case>`, against
/// the workspace's `herd` binary ([`herd_binary`]) — or, with `bin = EXPR;` first, the `herd` at that path.
#[macro_export]
macro_rules! server_cases {
    (bin = $bin:expr; $($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $case() {
                  $crate::with_server(&$bin, $crate::Backend::Sqlite, super::$case).await
              })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              #[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
              async fn $case() {
                  $crate::with_server(&$bin, $crate::Backend::Postgres, super::$case).await
              })*
        }
    };
    (args = $args:expr; $($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $case() {
                  $crate::with_server_args(&$crate::herd_binary(), $crate::Backend::Sqlite, &$args, super::$case).await
              })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              #[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
              async fn $case() {
                  $crate::with_server_args(&$crate::herd_binary(), $crate::Backend::Postgres, &$args, super::$case).await
              })*
        }
    };
    ($($case:ident),* $(,)?) => {
        $crate::server_cases!(bin = $crate::herd_binary(); $($case),*);
    };
}

/// The `herd serve` flags that let webhooks reach receivers on this machine (tests run them on loopback,
/// which the outbound policy forbids by default).
pub const ALLOW_LOOPBACK_WEBHOOKS: [&str; 4] =
    ["--webhook-allow-cidr", "127.0.0.0/8", "--webhook-allow-cidr", "::1/128"];

pub struct Server {
    pub bin: PathBuf,
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub url: String,
    pub client: Client,
    pub stdout: Vec<String>,
    /// The extra `herd serve` arguments it was started with (kept across restarts).
    pub extra_args: Vec<String>,
}

/// An HTTPS client that trusts only the certificate at `cert`.
pub fn client_for(cert: &Path) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(cert).expect("server certificate");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Client::builder().use_preconfigured_tls(tls).timeout(Duration::from_secs(30)).build().unwrap()
}

impl Server {
    pub fn start(bin: &Path, data_dir: PathBuf, database_url: Option<String>) -> Server {
        Server::start_at(bin, data_dir, database_url, "127.0.0.1:0")
    }

    /// Starts the server on a given address (a restart that agents must find again uses the old port).
    pub fn start_at(bin: &Path, data_dir: PathBuf, database_url: Option<String>, listen: &str) -> Server {
        Server::start_with(bin, data_dir, database_url, listen, &[])
    }

    /// Starts the server with extra `herd serve` arguments.
    pub fn start_with(
        bin: &Path,
        data_dir: PathBuf,
        database_url: Option<String>,
        listen: &str,
        extra: &[&str],
    ) -> Server {
        Server::spawn(bin, data_dir, database_url, listen, extra).ready()
    }

    /// Starts `count` servers on one PostgreSQL database at the same moment (each its own data dir and
    /// certificate), as an operator scaling out would run them behind a load balancer.
    pub fn start_cluster(bin: &Path, count: usize, database_url: &str, extra: &[&str]) -> Vec<Server> {
        let starting: Vec<Starting> = (0..count)
            .map(|_| {
                let data_dir = tempfile::tempdir().unwrap().keep();
                Server::spawn(bin, data_dir, Some(database_url.to_string()), "127.0.0.1:0", extra)
            })
            .collect();
        starting.into_iter().map(Starting::ready).collect()
    }

    /// [`Server::start_cluster`] on a fresh PostgreSQL database (its tests are ignored by default, see
    /// `herd_store::testing`).
    pub async fn cluster_on_fresh_postgres(bin: &Path, count: usize, extra: &[&str]) -> Vec<Server> {
        let url = herd_store::testing::fresh_postgres_url().await;
        Server::start_cluster(bin, count, &url, extra)
    }

    /// Starts the process; [`Starting::ready`] waits for it to listen.
    fn spawn(bin: &Path, data_dir: PathBuf, database_url: Option<String>, listen: &str, extra: &[&str]) -> Starting {
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg(listen)
            .args(extra)
            .env("HERD_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("HERD_BOOTSTRAP_ENROLL_SECRET", ENROLL_SECRET)
            .env("RUST_LOG", "warn")
            // Test machines run many servers at once on few cores: runtime lag there says nothing about the
            // server under test, and refused enrollments would fail unrelated tests. Tests of the refusal
            // pass --enrollment-lag-limit themselves.
            .env("HERD_ENROLLMENT_LAG_LIMIT", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = &database_url {
            command.arg("--database-url").arg(url);
        }
        let mut child = command.spawn().expect("starting herd");
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let extra_args = extra.iter().map(|arg| arg.to_string()).collect();
        Starting { bin: bin.to_path_buf(), child, lines_rx, data_dir, database_url, extra_args }
    }
}

/// A `herd serve` process started but perhaps not listening yet.
struct Starting {
    bin: PathBuf,
    child: Child,
    lines_rx: mpsc::Receiver<String>,
    data_dir: PathBuf,
    database_url: Option<String>,
    extra_args: Vec<String>,
}

impl Starting {
    /// Waits (up to 60 s) for the banner's URL line.
    fn ready(self) -> Server {
        let Starting { bin, mut child, lines_rx, data_dir, database_url, extra_args } = self;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut printed = Vec::new();
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    printed.push(line.clone());
                    if let Some(rest) = line.split(" is listening on ").nth(1) {
                        break rest.trim().to_string();
                    }
                }
                Err(_) => {
                    let status = child.try_wait().ok().flatten();
                    panic!("herd did not print its URL within 60 s (exit: {status:?}); it printed: {printed:#?}");
                }
            }
        };
        // Keep reading the banner until its end, without blocking on it.
        while let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(200)) {
            printed.push(line);
        }
        let client = client_for(&data_dir.join("tls/cert.pem"));
        Server { bin, child: Some(child), data_dir, database_url, url, client, stdout: printed, extra_args }
    }
}

impl Server {
    /// The same server with a new HTTP client (new connections).
    pub fn with_fresh_client(mut self) -> Server {
        self.client = client_for(&self.data_dir.join("tls/cert.pem"));
        self
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done_tx.send(child.wait());
        });
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("herd did not exit within 60 s of SIGTERM")
            .expect("waiting for herd")
    }

    /// Stops the server and starts it again on the same port, data dir, database and arguments.
    pub fn restart_same_port(mut self) -> Server {
        let address = self.url.trim_start_matches("https://").to_string();
        assert!(self.stop().success());
        self.start_again(&address)
    }

    /// Starts a fresh process on the same data dir, database and arguments.
    pub fn restart(mut self) -> Server {
        assert!(self.stop().success());
        self.start_again("127.0.0.1:0")
    }

    /// Starts the server again (after it stopped or was killed) with what it had.
    pub fn start_again(&self, listen: &str) -> Server {
        let extra: Vec<&str> = self.extra_args.iter().map(String::as_str).collect();
        Server::start_with(&self.bin, self.data_dir.clone(), self.database_url.clone(), listen, &extra)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: non-JSON body {text:?}"))
        };
        (status, value)
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url)).body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: non-JSON body {text:?}")))
    }

    /// Sends a body over the server's limit. The server may answer 413 before reading it all and close the
    /// connection, which the client can see as a broken connection instead: either way it is refused. Then
    /// checks, on a fresh connection, that the server still serves.
    pub async fn assert_oversize_refused(&self, path: &str, token: Option<&str>, size: usize) {
        let client = client_for(&self.data_dir.join("tls/cert.pem"));
        let mut request = client.post(format!("{}{path}", self.url)).body(vec![b' '; size]);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Ok(response) = request.send().await {
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        }
        let fresh = client_for(&self.data_dir.join("tls/cert.pem"));
        let health = fresh.get(format!("{}/healthz", self.url)).send().await.expect("server still serving");
        assert_eq!(health.status(), StatusCode::OK);
    }

    /// A browser-like client for the console: keeps cookies, does not follow redirects (tests look at them),
    /// trusts only this server's certificate.
    pub fn browser(&self) -> Client {
        let cert = std::fs::read(self.data_dir.join("tls/cert.pem")).expect("server certificate");
        Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .request(Method::POST, "/api/v1/fleet/login", None, Some(json!({"email": email, "password": password})))
            .await;
        assert_eq!(status, StatusCode::OK, "login {email}: {body}");
        body["token"].as_str().unwrap().to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Creates a user with a global role (`team` None) or a role in one team, and logs in as them.
    pub async fn user_token(&self, admin: &str, email: &str, role: &str, team: Option<i64>) -> String {
        let password = "user-password-1!";
        let mut body = json!({"name": email, "email": email, "password": password});
        match team {
            None => body["global_role"] = json!(role),
            Some(team) => body["teams"] = json!([{"id": team, "role": role}]),
        }
        let (status, created) = self.post("/api/v1/fleet/users/admin", admin, body).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        self.login(email, password).await
    }

    /// Uploads a file as the Fleet UI does (multipart: the file under `field`, and `team_id` when given).
    pub async fn upload(
        &self,
        path: &str,
        token: &str,
        field: &str,
        file_name: &str,
        contents: &[u8],
        team_id: Option<i64>,
    ) -> (StatusCode, Value) {
        let part = reqwest::multipart::Part::bytes(contents.to_vec()).file_name(file_name.to_string());
        let mut form = reqwest::multipart::Form::new().part(field.to_string(), part);
        if let Some(team) = team_id {
            form = form.text("team_id", team.to_string());
        }
        let url = format!("{}{path}", self.url);
        let response = self.client.post(url).bearer_auth(token).multipart(form).send().await.unwrap();
        (response.status(), response.json().await.unwrap_or(Value::Null))
    }

    /// Uploads a global script: the status and the reply.
    pub async fn upload_script(&self, token: &str, name: &str, contents: &str) -> (StatusCode, Value) {
        self.upload("/api/v1/fleet/scripts", token, "script", name, contents.as_bytes(), None).await
    }

    /// Uploads a configuration profile to a team (None: no team): the status and the reply.
    pub async fn upload_profile(
        &self,
        token: &str,
        file_name: &str,
        contents: &[u8],
        team_id: Option<i64>,
    ) -> (StatusCode, Value) {
        self.upload("/api/v1/fleet/configuration_profiles", token, "profile", file_name, contents, team_id).await
    }

    /// Uploads a global script that must be accepted; its id.
    pub async fn script_id(&self, token: &str, name: &str, contents: &str) -> i64 {
        let (status, reply) = self.upload_script(token, name, contents).await;
        assert_eq!(status, StatusCode::OK, "uploading {name}: {reply}");
        reply["script_id"].as_i64().expect("a script id")
    }

    /// An osquery TLS API call, as osqueryd makes it.
    pub async fn osquery(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .header("User-Agent", "osquery/5.12.1")
            .json(&body)
            .send()
            .await
            .expect("osquery request");
        let status = response.status();
        (status, response.json().await.expect("osquery endpoints always answer JSON"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A host speaking the osquery protocol, with the identity a real one would report.
pub struct TestHost {
    pub uuid: String,
    pub hostname: String,
    pub node_key: String,
}

impl TestHost {
    pub fn new(name: &str) -> TestHost {
        TestHost { uuid: format!("UUID-{name}").to_uppercase(), hostname: name.to_string(), node_key: String::new() }
    }

    pub fn enroll_body(&self, secret: &str) -> Value {
        json!({
            "enroll_secret": secret,
            "host_identifier": self.hostname,
            "platform_type": "9",
            "host_details": {
                "os_version": {"name": "Ubuntu", "version": "22.04.4 LTS (Jammy Jellyfish)", "major": "22", "minor": "4", "patch": "0", "platform": "ubuntu", "platform_like": "debian"},
                "osquery_info": {"version": "5.12.1", "uuid": self.uuid},
                "system_info": {"uuid": self.uuid, "hostname": self.hostname, "hardware_serial": format!("SN-{}", self.hostname)},
                "platform_info": {"vendor": "test"}
            }
        })
    }

    pub async fn enroll(&mut self, server: &Server, secret: &str) -> (StatusCode, Value) {
        let (status, body) = server.osquery("/api/osquery/enroll", self.enroll_body(secret)).await;
        if status == StatusCode::OK {
            self.node_key = body["node_key"].as_str().unwrap().to_string();
        }
        (status, body)
    }

    pub async fn read(&self, server: &Server) -> (StatusCode, Value) {
        server.osquery("/api/osquery/distributed/read", json!({"node_key": self.node_key})).await
    }

    pub async fn write(&self, server: &Server, queries: Value, statuses: Value) -> (StatusCode, Value) {
        server
            .osquery(
                "/api/osquery/distributed/write",
                json!({"node_key": self.node_key, "queries": queries, "statuses": statuses, "messages": {}, "stats": {}}),
            )
            .await
    }

    /// Answers every vitals query of a distributed/read the way osquery on this test host would.
    pub async fn answer_vitals(&self, server: &Server, read: &Value) -> (StatusCode, Value) {
        let mut queries = serde_json::Map::new();
        let mut statuses = serde_json::Map::new();
        // Only the vitals: callers answer policies themselves.
        for name in read["queries"].as_object().unwrap().keys().filter(|n| n.starts_with("fleet_detail_query_")) {
            let rows = match name.trim_start_matches("fleet_detail_query_") {
                "os_version" => {
                    json!([{"name": "Ubuntu", "version": "22.04.4 LTS (Jammy Jellyfish)", "major": "22", "minor": "4", "patch": "0", "build": "", "platform": "ubuntu", "platform_like": "debian", "arch": "x86_64"}])
                }
                "osquery_info" => json!([{"version": "5.12.1", "uuid": self.uuid}]),
                "system_info" => {
                    json!([{"uuid": self.uuid, "hostname": self.hostname, "computer_name": "", "cpu_brand": "Test CPU @ 3.0GHz", "cpu_type": "x86_64", "cpu_physical_cores": "4", "cpu_logical_cores": "8", "physical_memory": "17179869184", "hardware_vendor": "Acme", "hardware_model": "T1000", "hardware_serial": format!("SN-{}", self.hostname)}])
                }
                "uptime" => {
                    json!([{"days": "0", "hours": "1", "minutes": "0", "seconds": "0", "total_seconds": "3600"}])
                }
                "network_interface" => {
                    json!([{"address": "192.0.2.10", "mac": "00:11:22:33:44:55"}])
                }
                "disk_space" => {
                    json!([{"percent_disk_space_available": "41.5", "gigs_disk_space_available": "98.2", "gigs_total_disk_space": "236.6"}])
                }
                "osquery_flags" => {
                    json!([{"name": "distributed_interval", "value": "10"}, {"name": "config_tls_refresh", "value": "60"}, {"name": "logger_tls_period", "value": "10"}])
                }
                // Migration eligibility: not managed by another system unless a test says so.
                "mdm_migration" => json!([]),
                other => panic!("unexpected query {other}"),
            };
            queries.insert(name.clone(), rows);
            // Old agents send statuses as strings: mix both.
            statuses.insert(name.clone(), if name.ends_with("uptime") { json!("0") } else { json!(0) });
        }
        self.write(server, Value::Object(queries), Value::Object(statuses)).await
    }
}

/// Polls `check` until it returns Some, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `herd` binary built beside another workspace binary (scripts/test builds the whole workspace first).
pub fn herd_beside(other_binary: &str) -> String {
    let herd = std::path::PathBuf::from(other_binary).with_file_name("herd");
    assert!(herd.exists(), "{} is missing: build the workspace first (scripts/test does)", herd.display());
    herd.to_string_lossy().into_owned()
}

/// The workspace's `herd` binary (crate `herd`), in the build directory of the running test: a test binary
/// lives in `target/<profile>/deps/`, the binaries in `target/<profile>/`. Only the `herd` crate itself has
/// `CARGO_BIN_EXE_herd`; every other package finds it here (scripts/test builds the whole workspace first).
pub fn herd_binary() -> String {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    herd_beside(&profile_dir.join("herd").to_string_lossy())
}

/// A running `herd-agent run`, enrolled with `server`'s secret and pinning its certificate; killed on drop.
pub struct AgentProcess(Child);

impl AgentProcess {
    pub fn start(
        agent_binary: &str,
        server: &Server,
        data_dir: &Path,
        identifier: &str,
        extra: &[&str],
    ) -> AgentProcess {
        let child = Command::new(agent_binary)
            .arg("run")
            .args(["--server", &server.url, "--host-identifier", identifier])
            .arg("--enroll-secret-file")
            .arg(server.data_dir.join("enroll-secret"))
            .arg("--ca-cert")
            .arg(server.data_dir.join("tls/cert.pem"))
            .arg("--data-dir")
            .arg(data_dir)
            // Not the machine's /opt/orbit/identifier: a test that wants Fleet's path names its own.
            .args(if extra.iter().any(|a| a.starts_with("--orbit-identifier")) {
                &[][..]
            } else {
                &["--orbit-identifier="][..]
            })
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting herd-agent");
        AgentProcess(child)
    }
}

impl AgentProcess {
    /// The agent's process (to signal it, or wait for it to exit).
    pub fn child(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Processes on this machine whose command line is exactly `cmdline` (NUL-separated words joined by spaces).
pub fn processes_running(cmdline: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|raw| {
            String::from_utf8_lossy(raw).split('\0').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ") == cmdline
        })
        .count()
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The policy queries of a distributed/read response, by policy id: (revision handed out, SQL). Policy
/// queries are named `fleet_policy_query_<id>_<revision>`.
pub fn policy_queries(read: &serde_json::Value) -> std::collections::BTreeMap<i64, (i64, String)> {
    let mut out = std::collections::BTreeMap::new();
    for (name, sql) in read["queries"].as_object().into_iter().flatten() {
        let Some(rest) = name.strip_prefix("fleet_policy_query_") else { continue };
        let (id, revision) = rest.split_once('_').unwrap_or_else(|| panic!("policy query {name} names no revision"));
        out.insert(id.parse().unwrap(), (revision.parse().unwrap(), sql.as_str().unwrap_or_default().to_string()));
    }
    out
}

/// The SQL of one policy's query in a distributed/read response, whatever revision it was handed out at.
pub fn policy_sql(read: &serde_json::Value, policy_id: i64) -> Option<String> {
    policy_queries(read).remove(&policy_id).map(|(_, sql)| sql)
}
