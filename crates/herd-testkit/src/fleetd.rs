//! A simulated fleetd — Fleet's agent: orbit beside osqueryd — for end-to-end tests against the real `herd`.
//!
//! No real fleetd binary can run on these machines (it is downloaded from Fleet's update server, which tests
//! may not reach, and its packages target macOS and Windows hosts), so this speaks its protocol instead,
//! written field by field from Fleet's client code:
//!
//! - orbit: `server/service/orbit_client.go` (`enroll`, `GetConfig`, `Ping`, `SetOrUpdateDeviceToken`,
//!   `GetHostScript`, `SaveHostScriptResult`, `authenticatedRequest`: on 401 the node key file is deleted and
//!   the next request enrolls again), `server/service/base_client.go` (`parseResponse`: 401 is
//!   unauthenticated, the `X-Fleet-Capabilities` header of each answer replaces the known capabilities),
//!   `server/service/orbit.go` and `server/fleet/api_orbit.go` (request bodies: `orbit_node_key` in each),
//!   `server/fleet/orbit.go` (`OrbitConfig`, `OrbitConfigNotifications`), `server/fleet/scripts.go`
//!   (`HostScriptResult`, `HostScriptResultPayload`: `runtime` in seconds, `exit_code`, `timeout`);
//! - running scripts: `orbit/pkg/scripts/scripts.go` (`Runner.runOne`: skip a run that has an exit code,
//!   run the rest in order, stop at the first that cannot be fetched; output capped at 4 × 10,000 bytes from
//!   its end; `runOneDisabled`: exit code -2, "Scripts are disabled") and `exec_nonwindows.go` (`/bin/sh` on
//!   the script in its own temporary directory, stdout and stderr combined, exit code -1 when it did not end
//!   by itself);
//! - osqueryd as orbit starts it (`--host_identifier=uuid`: the hardware UUID is its host identifier), over
//!   the osquery TLS API at `/api/osquery/*`, enrolling again on `node_invalid`.
//!
//! - the detail queries as Fleet asks them (`server/service/osquery_utils/queries.go`: `os_version`,
//!   `os_version_windows`, `system_info`, `uptime`, `network_interface_*`, `disk_space_*`, `orbit_info`),
//!   answered with the columns osquery and fleetd's extension tables return on that platform
//!   (`orbit/pkg/table/orbit_info/orbit_info.go`: every column a text, `scripts_enabled` "1" or "0"); a query
//!   whose discovery finds no row is neither run nor reported, as osqueryd does.
//!
//! The simulated host is a Mac (`Fleetd::new`) or a Windows PC (`Fleetd::windows`): it enrolls with that
//! platform and answers the vitals queries with that machine's rows.

use crate::Server;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

/// Fleet's cap on what a result's output is sent with (`utf8.UTFMax * maxOutputRuneLen`).
const MAX_OUTPUT_BYTES: usize = 4 * 10_000;

/// What went wrong with an orbit request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrbitError {
    /// 401: the node key is gone (fleetd deleted its key file; the next request enrolls).
    Unauthenticated,
    NotFound(String),
    Status(StatusCode, String),
}

/// What Fleet Desktop does about the migration after reading its summary (`orbit/cmd/desktop/desktop.go`, the
/// summary loop: `shouldRunMigrator`, `forceModeEnabled`, `isUnmanaged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesktopMigration {
    /// No "Migrate to Fleet" item.
    Nothing,
    /// The "Migrate to Fleet" item is shown; the dialog opens when the person clicks it (voluntary mode).
    MenuItem,
    /// The item, and the dialog opened by itself every 15 minutes (`ShowInterval`): forced mode, or a Mac
    /// the old MDM already let go of.
    DialogEveryInterval,
}

/// The result fleetd posted for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RanScript {
    pub execution_id: String,
    pub exit_code: i64,
    pub output: String,
}

/// The machine fleetd runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Mac,
    Windows,
}

impl Platform {
    /// osquery's platform name (os_version.platform, orbit's enroll `platform`).
    pub fn osquery_name(self) -> &'static str {
        match self {
            Platform::Mac => "darwin",
            Platform::Windows => "windows",
        }
    }
}

/// The osquery tables of osqueryd as fleetd runs it (its extension tables included), for discovery.
fn registered_tables(platform: Platform) -> &'static [&'static str] {
    match platform {
        Platform::Mac => &[
            "os_version",
            "osquery_info",
            "system_info",
            "uptime",
            "interface_addresses",
            "interface_details",
            "routes",
            "mounts",
            "osquery_flags",
            "osquery_registry",
            "kernel_info",
            "mdm",
            "disk_encryption",
            "file",
            "processes",
            "disk_space",
            "orbit_info",
        ],
        Platform::Windows => &[
            "os_version",
            "osquery_info",
            "system_info",
            "uptime",
            "interface_addresses",
            "interface_details",
            "routes",
            "logical_drives",
            "osquery_flags",
            "osquery_registry",
            "kernel_info",
            "registry",
            "file",
            "processes",
            "bitlocker_info",
            "orbit_info",
        ],
    }
}

pub struct Fleetd {
    pub platform: Platform,
    pub hardware_uuid: String,
    pub hardware_serial: String,
    pub hostname: String,
    pub computer_name: String,
    pub hardware_model: String,
    pub enroll_secret: String,
    /// orbit's node key file: None when absent (not enrolled yet, or deleted after a 401).
    pub orbit_node_key: Option<String>,
    /// osqueryd's node key (its database's), empty before it enrolls.
    pub osquery_node_key: String,
    /// What the last answer's `X-Fleet-Capabilities` said.
    pub server_capabilities: Vec<String>,
    /// How many times orbit enrolled.
    pub orbit_enrollments: usize,
    /// `--enable-scripts` (fleetd's default for packages built with it).
    pub scripts_enabled: bool,
    /// The last configuration orbit fetched.
    pub last_config: Value,
    /// What osquery's `mdm` table says: enrolled in another MDM (the migration of seed 002).
    pub enrolled_in_other_mdm: bool,
}

impl Fleetd {
    /// fleetd on a Mac.
    pub fn new(name: &str, enroll_secret: &str) -> Fleetd {
        Fleetd {
            platform: Platform::Mac,
            hardware_uuid: format!("FLEETD-{name}").to_uppercase(),
            hardware_serial: format!("C02{}", name.to_uppercase()),
            hostname: format!("{name}.local"),
            computer_name: name.to_string(),
            hardware_model: "MacBookPro18,3".to_string(),
            enroll_secret: enroll_secret.to_string(),
            orbit_node_key: None,
            osquery_node_key: String::new(),
            server_capabilities: Vec::new(),
            orbit_enrollments: 0,
            scripts_enabled: true,
            last_config: Value::Null,
            enrolled_in_other_mdm: false,
        }
    }

    /// fleetd on a Windows PC (a Dell laptop, Windows 11 Enterprise 23H2).
    pub fn windows(name: &str, enroll_secret: &str) -> Fleetd {
        Fleetd {
            platform: Platform::Windows,
            hardware_uuid: format!("4C4C4544-0000-{name}").to_uppercase(),
            hardware_serial: format!("5CG{}", name.to_uppercase()),
            hostname: name.to_uppercase(),
            computer_name: name.to_uppercase(),
            hardware_model: "Latitude 7420".to_string(),
            ..Fleetd::new(name, enroll_secret)
        }
    }

    /// `OrbitClient.request`: a JSON body (none for HEAD), the capabilities header read from every answer
    /// that is not an error.
    async fn orbit_request(
        &mut self,
        server: &Server,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, OrbitError> {
        let mut request = server.client.request(method, format!("{}{path}", server.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("orbit request");
        let status = response.status();
        let capabilities = response
            .headers()
            .get("X-Fleet-Capabilities")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect::<Vec<_>>());
        let text = response.text().await.unwrap_or_default();
        match status {
            StatusCode::NOT_FOUND => return Err(OrbitError::NotFound(text)),
            StatusCode::UNAUTHORIZED => return Err(OrbitError::Unauthenticated),
            s if !s.is_success() => return Err(OrbitError::Status(s, text)),
            _ => {}
        }
        self.server_capabilities = capabilities.unwrap_or_default();
        if text.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: non-JSON answer {text:?}")))
    }

    /// `OrbitClient.Ping`: HEAD, unauthenticated; what the server supports.
    pub async fn ping(&mut self, server: &Server) -> Result<(), OrbitError> {
        self.orbit_request(server, Method::HEAD, "/api/fleet/orbit/ping", None).await.map(|_| ())
    }

    /// `OrbitClient.enroll`: every field of `EnrollOrbitRequest` (fleetd sends `osquery_identifier` empty
    /// unless osqueryd runs with `--host-identifier=instance`).
    pub async fn enroll(&mut self, server: &Server) -> Result<String, OrbitError> {
        let body = json!({
            "enroll_secret": self.enroll_secret,
            "hardware_uuid": self.hardware_uuid,
            "hardware_serial": self.hardware_serial,
            "hostname": self.hostname,
            "platform": self.platform.osquery_name(),
            "osquery_identifier": "",
            "computer_name": self.computer_name,
            "hardware_model": self.hardware_model,
        });
        let answer = self.orbit_request(server, Method::POST, "/api/fleet/orbit/enroll", Some(body)).await?;
        let key = answer["orbit_node_key"].as_str().expect("an orbit node key").to_string();
        self.orbit_node_key = Some(key.clone());
        self.orbit_enrollments += 1;
        Ok(key)
    }

    /// `OrbitClient.authenticatedRequest`: enrolls first when there is no node key file; a 401 deletes it.
    async fn authenticated(&mut self, server: &Server, path: &str, mut body: Value) -> Result<Value, OrbitError> {
        let key = match self.orbit_node_key.clone() {
            Some(key) => key,
            None => self.enroll(server).await?,
        };
        body["orbit_node_key"] = json!(key);
        let answer = self.orbit_request(server, Method::POST, path, Some(body)).await;
        if answer == Err(OrbitError::Unauthenticated) {
            self.orbit_node_key = None;
        }
        answer
    }

    /// `OrbitClient.GetConfig`.
    pub async fn config(&mut self, server: &Server) -> Result<Value, OrbitError> {
        let config = self.authenticated(server, "/api/fleet/orbit/config", json!({})).await?;
        self.last_config = config.clone();
        Ok(config)
    }

    /// `OrbitClient.SetOrUpdateDeviceToken`.
    pub async fn set_device_token(&mut self, server: &Server, token: &str) -> Result<(), OrbitError> {
        self.authenticated(server, "/api/fleet/orbit/device_token", json!({"device_auth_token": token})).await?;
        Ok(())
    }

    /// `OrbitClient.GetHostScript`: a queued run (Fleet's `HostScriptResult`).
    pub async fn get_script(&mut self, server: &Server, execution_id: &str) -> Result<Value, OrbitError> {
        self.authenticated(server, "/api/fleet/orbit/scripts/request", json!({"execution_id": execution_id})).await
    }

    /// `OrbitClient.SaveHostScriptResult` with a `HostScriptResultPayload` as fleetd fills it (`host_id` 0:
    /// the server uses the authenticated host).
    pub async fn post_result(
        &mut self,
        server: &Server,
        execution_id: &str,
        exit_code: i64,
        output: &str,
        runtime_s: i64,
        timeout_s: i64,
    ) -> Result<(), OrbitError> {
        let body = json!({"host_id": 0, "execution_id": execution_id, "output": output, "runtime": runtime_s,
            "exit_code": exit_code, "timeout": timeout_s});
        self.authenticated(server, "/api/fleet/orbit/scripts/result", body).await?;
        Ok(())
    }

    /// The config receiver for scripts (`scripts.Runner.Run`) on the last configuration's
    /// `pending_script_execution_ids`: what it posted.
    pub async fn run_pending_scripts(&mut self, server: &Server) -> Result<Vec<RanScript>, OrbitError> {
        let ids: Vec<String> = self.last_config["notifications"]["pending_script_execution_ids"]
            .as_array()
            .map(|ids| ids.iter().filter_map(|id| id.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let timeout_s = self.last_config["script_execution_timeout"].as_i64().filter(|s| *s > 0).unwrap_or(300);
        let mut ran = Vec::new();
        for execution_id in ids {
            if !self.scripts_enabled {
                self.post_result(server, &execution_id, -2, "Scripts are disabled", 0, 0).await?;
                ran.push(RanScript { execution_id, exit_code: -2, output: "Scripts are disabled".into() });
                continue;
            }
            // Stop at the first that cannot be fetched: scripts run in the order they were queued.
            let script = self.get_script(server, &execution_id).await?;
            if !script["exit_code"].is_null() {
                continue;
            }
            let contents = script["script_contents"].as_str().unwrap_or_default().to_string();
            let started = Instant::now();
            let (exit_code, output) = run_shell(&execution_id, &contents, Duration::from_secs(timeout_s as u64)).await;
            let runtime_s = started.elapsed().as_secs() as i64;
            self.post_result(server, &execution_id, exit_code, &output, runtime_s, timeout_s).await?;
            ran.push(RanScript { execution_id, exit_code, output });
        }
        Ok(ran)
    }

    /// osqueryd's enrollment as orbit starts it: the hardware UUID is its host identifier; `host_details` holds
    /// the first row of os_version, osquery_info, system_info and platform_info (osquery's enroll plugin).
    pub async fn osquery_enroll(&mut self, server: &Server) -> StatusCode {
        // osquery's PlatformType bits: posix 4, windows 2, darwin 16, bsd 32 (a Mac is 4 | 16 | 1 "unknown").
        let platform_type = match self.platform {
            Platform::Mac => "21",
            Platform::Windows => "2",
        };
        let first = |rows: Value| rows[0].clone();
        let body = json!({
            "enroll_secret": self.enroll_secret,
            "host_identifier": self.hardware_uuid,
            "platform_type": platform_type,
            "host_details": {
                "os_version": first(self.vital_rows("os_version")),
                "osquery_info": first(self.vital_rows("osquery_info")),
                "system_info": first(self.vital_rows("system_info")),
                "platform_info": {"vendor": self.hardware_vendor()}
            }
        });
        let (status, answer) = server.osquery("/api/osquery/enroll", body).await;
        if status == StatusCode::OK {
            self.osquery_node_key = answer["node_key"].as_str().unwrap().to_string();
        }
        status
    }

    fn hardware_vendor(&self) -> &'static str {
        match self.platform {
            Platform::Mac => "Apple Inc.",
            Platform::Windows => "Dell Inc.",
        }
    }

    /// osqueryd's discovery: a query runs only when its discovery SQL returns a row, here against an
    /// osquery_registry holding this host's tables.
    fn discovered(&self, discovery: &str) -> bool {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE osquery_registry (registry TEXT, name TEXT, owner_uuid INTEGER, internal INTEGER, active INTEGER)")
            .unwrap();
        for table in registered_tables(self.platform) {
            db.execute("INSERT INTO osquery_registry VALUES ('table', ?1, 0, 0, 1)", [table]).unwrap();
        }
        let mut statement = db.prepare(discovery).unwrap_or_else(|e| panic!("discovery {discovery:?}: {e}"));
        statement.query([]).unwrap().next().unwrap().is_some()
    }

    /// One osqueryd check-in: `distributed/read`, then `distributed/write` with the vitals a Mac reports and
    /// each policy answered by `passes` (given the policy's SQL). On `node_invalid`, osqueryd enrolls again
    /// and checks in once more. Returns the read's answer.
    pub async fn osquery_check_in(&mut self, server: &Server, passes: impl Fn(&str) -> bool) -> Value {
        if self.osquery_node_key.is_empty() {
            assert_eq!(self.osquery_enroll(server).await, StatusCode::OK, "osqueryd enrolls");
        }
        let (mut status, mut read) =
            server.osquery("/api/osquery/distributed/read", json!({"node_key": self.osquery_node_key})).await;
        if status == StatusCode::UNAUTHORIZED && read["node_invalid"] == json!(true) {
            assert_eq!(self.osquery_enroll(server).await, StatusCode::OK, "osqueryd enrolls again");
            (status, read) =
                server.osquery("/api/osquery/distributed/read", json!({"node_key": self.osquery_node_key})).await;
        }
        assert_eq!(status, StatusCode::OK, "distributed/read: {read}");
        let mut queries = Map::new();
        let mut statuses = Map::new();
        for (name, sql) in read["queries"].as_object().cloned().unwrap_or_default() {
            if let Some(discovery) = read["discovery"][&name].as_str()
                && !self.discovered(discovery)
            {
                continue;
            }
            let rows = match name.strip_prefix("fleet_detail_query_") {
                Some(vital) => self.vital_rows(vital),
                None if name.starts_with("fleet_policy_query_") => {
                    if passes(sql.as_str().unwrap_or_default()) {
                        json!([{"1": "1"}])
                    } else {
                        json!([])
                    }
                }
                None => json!([]),
            };
            queries.insert(name.clone(), rows);
            statuses.insert(name, json!(0));
        }
        if !queries.is_empty() {
            let body = json!({"node_key": self.osquery_node_key, "queries": queries, "statuses": statuses,
                "messages": {}, "stats": {}});
            let (status, answer) = server.osquery("/api/osquery/distributed/write", body).await;
            assert_eq!(status, StatusCode::OK, "distributed/write: {answer}");
        }
        read
    }

    /// What osquery on this machine answers to the detail queries, column by column as its tables return them
    /// (unknown ones: no rows).
    fn vital_rows(&self, query: &str) -> Value {
        match (self.platform, query) {
            (Platform::Mac, "os_version") => json!([{"name": "macOS", "version": "14.5", "major": "14", "minor": "5",
                "patch": "0", "build": "23F79", "platform": "darwin", "platform_like": "darwin", "codename": "",
                "arch": "arm64", "extra": ""}]),
            (Platform::Windows, "os_version") => json!([{"name": "Microsoft Windows 11 Enterprise",
                "version": "10.0.22631", "major": "10", "minor": "0", "patch": "", "build": "22631",
                "platform": "windows", "platform_like": "windows", "codename": "Microsoft Windows 11 Enterprise",
                "arch": "64-bit", "install_date": "20240115093012"}]),
            // The registry's DisplayVersion and UBR joined to os_version and kernel_info.
            (Platform::Windows, "os_version_windows") => json!([{"name": "Microsoft Windows 11 Enterprise",
                "display_version": "23H2", "version": "10.0.22631.3155", "installation_type": "Client"}]),
            (_, "osquery_info") => json!([{"pid": "4242", "uuid": self.hardware_uuid, "instance_id": "0c1d",
                "version": "5.13.1", "config_hash": "", "config_valid": "1", "extensions": "active",
                "build_platform": self.platform.osquery_name(), "build_distro": "", "start_time": "1717000000",
                "watcher": "4241", "platform_mask": if self.platform == Platform::Mac { "21" } else { "2" }}]),
            (Platform::Mac, "system_info") => json!([{"hostname": self.hostname, "uuid": self.hardware_uuid,
                "cpu_type": "arm64e", "cpu_subtype": "ARM64E", "cpu_brand": "Apple M1 Pro",
                "cpu_physical_cores": "10", "cpu_logical_cores": "10", "cpu_sockets": "", "cpu_microcode": "",
                "physical_memory": "34359738368", "hardware_vendor": "Apple Inc.",
                "hardware_model": self.hardware_model, "hardware_version": "", "hardware_serial": self.hardware_serial,
                "board_vendor": "", "board_model": "", "board_version": "", "board_serial": "",
                "computer_name": self.computer_name, "local_hostname": self.computer_name}]),
            (Platform::Windows, "system_info") => json!([{"hostname": self.hostname, "uuid": self.hardware_uuid,
                "cpu_type": "x86_64", "cpu_subtype": "-1", "cpu_brand": "11th Gen Intel(R) Core(TM) i7-1185G7 @ 3.00GHz",
                "cpu_physical_cores": "4", "cpu_logical_cores": "8", "cpu_sockets": "1", "cpu_microcode": "",
                "physical_memory": "17179869184", "hardware_vendor": "Dell Inc.",
                "hardware_model": self.hardware_model, "hardware_version": "-1", "hardware_serial": self.hardware_serial,
                "board_vendor": "Dell Inc.", "board_model": "07MHG4", "board_version": "A00",
                "board_serial": "/5CG0000/CNWS200000000/", "computer_name": self.computer_name,
                "local_hostname": self.hostname}]),
            (Platform::Mac, "uptime") => {
                json!([{"days": "0", "hours": "2", "minutes": "0", "seconds": "0", "total_seconds": "7200"}])
            }
            (Platform::Windows, "uptime") => {
                json!([{"days": "3", "hours": "4", "minutes": "5", "seconds": "6", "total_seconds": "273906"}])
            }
            (Platform::Mac, "network_interface") => json!([{"address": "192.0.2.20", "mac": "a4:83:e7:00:00:01"}]),
            (Platform::Windows, "network_interface_windows") => {
                json!([{"address": "10.20.30.40", "mac": "00:15:5d:0a:0b:0c"}])
            }
            // fleetd's disk_space table (the data volume's APFS container).
            (Platform::Mac, "disk_space_darwin") => json!([{"percent_disk_space_available": "55.0",
                "gigs_disk_space_available": "250.1", "gigs_total_disk_space": "460.4"}]),
            // The `/` mount: a sealed system volume on a Mac, which fleetd's table replaces.
            (Platform::Mac, "disk_space") => json!([{"percent_disk_space_available": "3.1",
                "gigs_disk_space_available": "14.2", "gigs_total_disk_space": "460.4"}]),
            (Platform::Windows, "disk_space_windows") => json!([{"percent_disk_space_available": "41.07",
                "gigs_disk_space_available": "200.12", "gigs_total_disk_space": "487.25"}]),
            (_, "osquery_flags") => json!([{"name": "distributed_interval", "value": "10"},
                {"name": "config_tls_refresh", "value": "60"}, {"name": "logger_tls_period", "value": "10"}]),
            (_, "orbit_info") => json!([{"version": "1.32.0", "device_auth_token": "",
                "enrolled": self.orbit_node_key.is_some().to_string(), "last_recorded_error": "",
                "orbit_channel": "stable", "osqueryd_channel": "stable", "desktop_channel": "stable",
                "desktop_version": "1.32.0", "uptime": "7100",
                "scripts_enabled": if self.scripts_enabled { "1" } else { "0" }, "update_url": "https://updates.fleetdm.com"}]),
            // osquery's mdm table.
            (Platform::Mac, "mdm_migration") if self.enrolled_in_other_mdm => {
                json!([{"enrolled": "true", "server_url": "https://mdm.previous-vendor.example/mdm"}])
            }
            (Platform::Mac, "mdm_migration") => json!([{"enrolled": "false", "server_url": ""}]),
            // Elsewhere the admin's migration query: a row means "managed by the other system".
            (Platform::Windows, "mdm_migration") if self.enrolled_in_other_mdm => json!([{"1": "1"}]),
            _ => json!([]),
        }
    }

    /// Fleet Desktop's decision on a device summary (`GET /device/{token}/desktop`), on this machine: only on
    /// macOS, only while the Mac is not enrolled in the MDM it would migrate to (here: in another one).
    pub fn desktop_migration(&self, summary: &Value) -> DesktopMigration {
        let notifications = &summary["notifications"];
        let needs_migration = notifications["needs_mdm_migration"] == true;
        let renew_profile = notifications["renew_enrollment_profile"] == true;
        if self.platform != Platform::Mac || !(needs_migration || renew_profile) {
            return DesktopMigration::Nothing;
        }
        let unmanaged = renew_profile && !self.enrolled_in_other_mdm;
        let forced = needs_migration && summary["config"]["mdm"]["macos_migration"]["mode"] == "forced";
        if unmanaged || forced { DesktopMigration::DialogEveryInterval } else { DesktopMigration::MenuItem }
    }

    /// Whether orbit's last configuration lists `execution_id` among the runs to do.
    pub fn config_lists(&self, execution_id: &str) -> bool {
        self.last_config["notifications"]["pending_script_execution_ids"]
            .as_array()
            .is_some_and(|ids| ids.iter().any(|id| id == execution_id))
    }
}

/// `ExecCmd` (non-Windows): `/bin/sh script` in a fresh temporary directory, output combined, killed at the
/// timeout with exit code -1 and the error appended as `runOne` does.
async fn run_shell(execution_id: &str, contents: &str, timeout: Duration) -> (i64, String) {
    let dir = tempfile::Builder::new().prefix(&format!("fleet-{execution_id}-")).tempdir().unwrap();
    let script = dir.path().join("script");
    std::fs::write(&script, contents).unwrap();
    let child = tokio::process::Command::new("/bin/sh")
        .arg(&script)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("/bin/sh");
    let (exit_code, mut output) = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let mut combined = out.stdout;
            combined.extend(out.stderr);
            (out.status.code().map(i64::from).unwrap_or(-1), combined)
        }
        Ok(Err(err)) => (-1, format!("\nscript execution error: {err}").into_bytes()),
        Err(_) => (-1, b"\nscript execution error: signal: killed".to_vec()),
    };
    if output.len() > MAX_OUTPUT_BYTES {
        output.drain(..output.len() - MAX_OUTPUT_BYTES);
    }
    (exit_code, String::from_utf8_lossy(&output).into_owned())
}
