//! End-to-end: Fleet's agent, fleetd (orbit beside osqueryd), against the real `herd` on SQLite and
//! PostgreSQL. No real fleetd binary can run on these machines; `herd_testkit::fleetd` speaks its protocol,
//! written field by field from Fleet's client code (the files are cited in its header).
//!
//! Enrollment (orbit and osqueryd in one host row, whichever comes first; concurrent orbit enrollments of one
//! machine), the configuration's shape, node-invalid answers and re-enrollment after a host deletion, a
//! failing policy fixed by the script fleetd runs and green at the next check-in, results for runs a host was
//! not given, Fleet's output limit, and every field Fleet Desktop reads; a Mac's and a Windows PC's vitals
//! from the platform variants of Fleet's detail queries, on the REST host view and the console's host page;
//! `orbit_info`'s `scripts_enabled` holding and resuming automations; the forced migration of a Mac through
//! `migrate_mdm`, the webhook job, an HTTPS receiver and the critical window.

use herd_testkit::fleetd::{DesktopMigration, Fleetd, OrbitError};
use herd_testkit::receiver::HttpsReceiver;
use herd_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, ENROLL_SECRET, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

async fn hosts(server: &Server, admin: &str) -> Vec<Value> {
    let (status, body) = server.get("/api/v1/fleet/hosts", admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["hosts"].as_array().unwrap().clone()
}

async fn policy_counts(server: &Server, admin: &str, policy: i64) -> (i64, i64) {
    let (_, body) = server.get(&format!("/api/v1/fleet/global/policies/{policy}"), admin).await;
    (body["policy"]["passing_host_count"].as_i64().unwrap(), body["policy"]["failing_host_count"].as_i64().unwrap())
}

async fn orbit_enrolls_first_and_osqueryd_joins_its_host(server: Server) {
    let admin = server.admin_token().await;
    let mut fleetd = Fleetd::new("mac-1", ENROLL_SECRET);
    fleetd.ping(&server).await.expect("ping");
    assert_eq!(fleetd.server_capabilities, vec!["orbit_endpoints", "token_rotation"]);

    fleetd.enroll(&server).await.expect("orbit enrolls");
    let listed = hosts(&server, &admin).await;
    assert_eq!(listed.len(), 1, "orbit's enrollment makes the host");
    assert_eq!(listed[0]["hardware_serial"], json!(fleetd.hardware_serial));

    let config = fleetd.config(&server).await.expect("config");
    assert_eq!(fleetd.server_capabilities, vec!["orbit_endpoints", "token_rotation"], "every answer says so");
    assert_eq!(config["script_execution_timeout"], 300);
    let notifications = config["notifications"].as_object().unwrap();
    for (field, neutral) in [
        ("renew_enrollment_profile", json!(false)),
        ("rotate_disk_encryption_key", json!(false)),
        ("needs_mdm_migration", json!(false)),
        ("needs_programmatic_windows_mdm_enrollment", json!(false)),
        ("windows_mdm_discovery_endpoint", json!("")),
        ("needs_programmatic_windows_mdm_unenrollment", json!(false)),
        ("pending_script_execution_ids", json!([])),
        ("enforce_bitlocker_encryption", json!(false)),
        ("pending_software_installer_ids", json!([])),
        ("run_setup_experience", json!(false)),
        ("run_disk_encryption_escrow", json!(false)),
    ] {
        assert_eq!(notifications.get(field), Some(&neutral), "{field} in {config}");
    }

    // osqueryd (started by orbit with the hardware UUID as its identifier) enrolls into the same row.
    fleetd.osquery_check_in(&server, |_| true).await;
    let listed = hosts(&server, &admin).await;
    assert_eq!(listed.len(), 1, "one machine, one host: {listed:?}");
    assert_eq!(listed[0]["platform"], "darwin");
    assert!(fleetd.config(&server).await.is_ok(), "orbit's key still works after osqueryd enrolled");
}

async fn osqueryd_enrolls_first_and_orbit_joins_its_host(server: Server) {
    let admin = server.admin_token().await;
    let mut fleetd = Fleetd::new("mac-2", ENROLL_SECRET);
    fleetd.osquery_check_in(&server, |_| true).await;
    fleetd.config(&server).await.expect("orbit enrolls on its first request, then fetches its config");
    assert_eq!(fleetd.orbit_enrollments, 1);
    let listed = hosts(&server, &admin).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["computer_name"], "mac-2");
}

async fn bad_orbit_keys_are_node_invalid(server: Server) {
    let mut fleetd = Fleetd::new("mac-3", ENROLL_SECRET);
    fleetd.enroll(&server).await.unwrap();
    for body in [json!({"orbit_node_key": "not-a-key"}), json!({}), json!({"orbit_node_key": ""})] {
        let (status, answer) = server.osquery("/api/fleet/orbit/config", body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}: {answer}");
        assert_eq!(answer["node_invalid"], true, "{answer}");
    }
    // osqueryd's node key names no orbit.
    fleetd.osquery_enroll(&server).await;
    let (status, _) =
        server.osquery("/api/fleet/orbit/config", json!({"orbit_node_key": fleetd.osquery_node_key})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A bad enroll secret.
    let mut stranger = Fleetd::new("mac-4", "not-the-secret");
    assert_eq!(stranger.enroll(&server).await, Err(OrbitError::Unauthenticated));
    // No hardware UUID.
    let (status, _) =
        server.osquery("/api/fleet/orbit/enroll", json!({"enroll_secret": ENROLL_SECRET, "hardware_uuid": " "})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn a_deleted_host_makes_fleetd_enroll_again(server: Server) {
    let admin = server.admin_token().await;
    let mut fleetd = Fleetd::new("mac-5", ENROLL_SECRET);
    fleetd.config(&server).await.unwrap();
    fleetd.osquery_check_in(&server, |_| true).await;
    let id = hosts(&server, &admin).await[0]["id"].as_i64().unwrap();
    let (status, _) = server.delete(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);

    // Fleet's answer: 401, on which fleetd deletes its key file; its next request enrolls again.
    assert_eq!(fleetd.config(&server).await, Err(OrbitError::Unauthenticated));
    assert_eq!(fleetd.orbit_node_key, None);
    fleetd.config(&server).await.expect("enrolled again");
    assert_eq!(fleetd.orbit_enrollments, 2);
    // osqueryd is node_invalid too, enrolls again, and lands in the row orbit made (same hardware UUID).
    fleetd.osquery_check_in(&server, |_| true).await;
    let listed = hosts(&server, &admin).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_ne!(listed[0]["id"].as_i64().unwrap(), id, "a new row, as in Fleet: the old one is gone");
    assert_eq!(listed[0]["platform"], "darwin");
    assert!(fleetd.config(&server).await.is_ok() && fleetd.orbit_enrollments == 2);
}

async fn a_failing_policy_is_fixed_by_fleetd_and_green_at_the_next_check_in(server: Server) {
    let admin = server.admin_token().await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("fixed");
    let script = server.script_id(&admin, "fix.sh", &format!("echo fixing\ntouch '{}'\n", marker.display())).await;
    let query = format!("SELECT 1 FROM file WHERE path = '{}';", marker.display());
    let (_, created) = server
        .post("/api/v1/fleet/global/policies", &admin, json!({"name": "fixed", "query": query, "script_id": script}))
        .await;
    let policy = created["policy"]["id"].as_i64().unwrap();
    let fixed = |_: &str| marker.exists();

    let mut fleetd = Fleetd::new("mac-6", ENROLL_SECRET);
    fleetd.config(&server).await.unwrap();
    fleetd.osquery_check_in(&server, fixed).await;
    assert_eq!(policy_counts(&server, &admin, policy).await, (0, 1), "failing");

    // The automation's run shows up in orbit's next configuration; fleetd fetches, runs and reports it.
    let config = fleetd.config(&server).await.unwrap();
    let ids = config["notifications"]["pending_script_execution_ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 1, "{config}");
    let ran = fleetd.run_pending_scripts(&server).await.unwrap();
    assert_eq!(ran.len(), 1);
    assert_eq!((ran[0].exit_code, ran[0].output.as_str()), (0, "fixing\n"));
    assert!(marker.exists(), "the script ran");
    let (_, result) = server.get(&format!("/api/v1/fleet/scripts/results/{}", ran[0].execution_id), &admin).await;
    assert_eq!((result["exit_code"].clone(), result["output"].clone()), (json!(0), json!("fixing\n")), "{result}");
    assert_eq!(result["host_timeout"], false);
    assert!(
        !fleetd.config(&server).await.unwrap()["notifications"]["pending_script_execution_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| id == &ids[0])
    );

    // fleetd does not re-check by itself: herd hands the policy out again at the next check-in, and it passes.
    let read = fleetd.osquery_check_in(&server, fixed).await;
    assert!(herd_testkit::policy_queries(&read).contains_key(&policy), "re-checked at once: {read}");
    assert_eq!(read["accelerate"], 60);
    assert_eq!(policy_counts(&server, &admin, policy).await, (1, 0), "green");
}

async fn results_for_runs_the_host_was_not_given_are_refused(server: Server) {
    let admin = server.admin_token().await;
    let mut owner = Fleetd::new("mac-7", ENROLL_SECRET);
    let mut other = Fleetd::new("mac-8", ENROLL_SECRET);
    owner.config(&server).await.unwrap();
    other.config(&server).await.unwrap();
    let owner_id = hosts(&server, &admin).await.iter().find(|h| h["computer_name"] == "mac-7").unwrap()["id"].clone();
    let run = |contents: &str| json!({"host_id": owner_id, "script_contents": contents});
    let (status, queued) = server.post("/api/v1/fleet/scripts/run", &admin, run("echo one")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let execution = queued["execution_id"].as_str().unwrap().to_string();

    // Another host can neither fetch nor answer it; an unknown id is not found either.
    assert!(matches!(other.get_script(&server, &execution).await, Err(OrbitError::NotFound(_))));
    assert_eq!(owner.get_script(&server, &execution).await.unwrap()["script_contents"], "echo one");
    assert!(matches!(other.post_result(&server, &execution, 0, "forged", 1, 300).await, Err(OrbitError::NotFound(_))));
    assert!(matches!(owner.post_result(&server, "no-such-run", 0, "", 1, 300).await, Err(OrbitError::NotFound(_))));
    let (_, result) = server.get(&format!("/api/v1/fleet/scripts/results/{execution}"), &admin).await;
    assert_eq!((result["status"].clone(), result["output"].clone()), (json!("pending"), json!("")), "unchanged");
    assert!(
        owner.config(&server).await.unwrap()["notifications"]["pending_script_execution_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| id == &json!(execution))
    );

    // Fleet's output limit: the last 10,000 characters are kept.
    let long: String = "é".repeat(6_000) + &"x".repeat(6_000);
    owner.post_result(&server, &execution, 3, &long, 2, 300).await.unwrap();
    let (_, result) = server.get(&format!("/api/v1/fleet/scripts/results/{execution}"), &admin).await;
    let output = result["output"].as_str().unwrap();
    assert_eq!(output.chars().count(), 10_000);
    assert!(output.ends_with(&"x".repeat(6_000)) && output.starts_with('é'));
    assert_eq!((result["exit_code"].clone(), result["runtime"].clone()), (json!(3), json!(2)));
    // A result sent again changes nothing.
    owner.post_result(&server, &execution, 0, "again", 1, 300).await.unwrap();
    let (_, again) = server.get(&format!("/api/v1/fleet/scripts/results/{execution}"), &admin).await;
    assert_eq!(again["exit_code"], 3);

    // fleetd's -1: the script did not end by itself (Fleet's host timeout); -2: scripts disabled there.
    let (_, queued) = server.post("/api/v1/fleet/scripts/run", &admin, run("sleep 1000")).await;
    let slow = queued["execution_id"].as_str().unwrap().to_string();
    owner.post_result(&server, &slow, -1, "\nscript execution error: signal: killed", 300, 300).await.unwrap();
    let (_, result) = server.get(&format!("/api/v1/fleet/scripts/results/{slow}"), &admin).await;
    assert_eq!((result["host_timeout"].clone(), result["exit_code"].clone()), (json!(true), Value::Null), "{result}");
    let (_, queued) = server.post("/api/v1/fleet/scripts/run", &admin, run("echo never")).await;
    let refused = queued["execution_id"].as_str().unwrap().to_string();
    owner.scripts_enabled = false;
    owner.config(&server).await.unwrap();
    let ran = owner.run_pending_scripts(&server).await.unwrap();
    assert_eq!(ran.iter().map(|r| r.exit_code).collect::<Vec<_>>(), vec![-2]);
    let (_, result) = server.get(&format!("/api/v1/fleet/scripts/results/{refused}"), &admin).await;
    assert_eq!((result["status"].clone(), result["host_timeout"].clone()), (json!("error"), json!(false)), "{result}");
}

async fn concurrent_orbit_enrollments_of_one_machine_leave_one_host(server: Server) {
    let admin = server.admin_token().await;
    let server = std::sync::Arc::new(server);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut fleetd = Fleetd::new("twin", ENROLL_SECRET);
            fleetd.enroll(&server).await.expect("enrolled");
            fleetd
        }));
    }
    let mut enrolled = Vec::new();
    for task in tasks {
        enrolled.push(task.await.unwrap());
    }
    let listed = hosts(&server, &admin).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    // The last enrollment's key is the host's (as for osqueryd: the last node key wins); exactly one works.
    let mut working = 0;
    for fleetd in &mut enrolled {
        let key = fleetd.orbit_node_key.clone().unwrap();
        let (status, _) = server.osquery("/api/fleet/orbit/config", json!({"orbit_node_key": key})).await;
        working += usize::from(status == StatusCode::OK);
    }
    assert_eq!(working, 1);
}

/// Every field Fleet Desktop reads, with the Fleet file that reads it, and its JSON type.
const DESKTOP_FIELDS: &[(&str, &str, &str)] = &[
    // server/fleet/device.go DesktopSummary, read in orbit/cmd/desktop/desktop.go (refreshMenuItems, the
    // summary loop) through server/service/device_client.go DesktopSummary.
    ("/failing_policies_count", "number", "orbit/cmd/desktop/desktop.go refreshMenuItems"),
    ("/self_service", "boolean", "orbit/cmd/desktop/desktop.go checkToken, refreshMenuItems"),
    ("/notifications/needs_mdm_migration", "boolean", "orbit/cmd/desktop/desktop.go shouldRunMigrator"),
    ("/notifications/renew_enrollment_profile", "boolean", "orbit/cmd/desktop/desktop.go shouldRunMigrator"),
    ("/config/mdm/macos_migration/mode", "string", "orbit/cmd/desktop/desktop.go forceModeEnabled"),
    ("/config/org_info/org_name", "string", "orbit/pkg/useraction (MDMMigratorProps.OrgInfo)"),
    ("/config/org_info/org_logo_url", "string", "orbit/pkg/useraction (MDMMigratorProps.OrgInfo)"),
    ("/config/org_info/org_logo_url_light_background", "string", "orbit/pkg/useraction (MDMMigratorProps.OrgInfo)"),
    ("/config/org_info/contact_url", "string", "orbit/pkg/useraction (MDMMigratorProps.OrgInfo)"),
];

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

async fn fleet_desktop_reads_every_field_it_needs(server: Server) {
    let admin = server.admin_token().await;
    let (_, _) =
        server.post("/api/v1/fleet/global/policies", &admin, json!({"name": "fails", "query": "SELECT 0;"})).await;
    let mut fleetd = Fleetd::new("mac-9", ENROLL_SECRET);
    fleetd.config(&server).await.unwrap();
    fleetd.osquery_check_in(&server, |_| false).await;
    let token = "3a7c1f0e-5b2d-4c8e-9f1a-0d2b4c6e8f10";
    fleetd.set_device_token(&server, token).await.expect("fleetd registers its device token");

    let (status, summary) =
        server.request(reqwest::Method::GET, &format!("/api/latest/fleet/device/{token}/desktop"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    for (pointer, kind, read_in) in DESKTOP_FIELDS {
        let value =
            summary.pointer(pointer).unwrap_or_else(|| panic!("{pointer} (read in {read_in}) missing: {summary}"));
        assert_eq!(json_type(value), *kind, "{pointer} (read in {read_in}): {summary}");
    }
    assert_eq!(summary["failing_policies_count"], 1);
    assert_eq!(summary["self_service"], false, "herd has no self-service page: Fleet Desktop hides the item");

    // Fleet Desktop's fallback (server/service/device_client.go) counts policies whose `response` is not "pass".
    let (status, policies) =
        server.request(reqwest::Method::GET, &format!("/api/latest/fleet/device/{token}/policies"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(policies["policies"][0]["response"], "fail", "{policies}");
    // HEAD /device/{token}/ping: its token check (device_client.go CheckToken).
    let ping = server.client.head(format!("{}/api/latest/fleet/device/{token}/ping", server.url)).send().await.unwrap();
    assert_eq!(ping.status(), StatusCode::OK);
    // "About Fleet" opens the transparency link (device_client.go BrowserTransparencyURL): a redirect.
    let about = server.browser().get(format!("{}/api/latest/fleet/device/{token}/transparency", server.url));
    let about = about.send().await.unwrap();
    assert_eq!(about.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(about.headers()["location"], "https://fleetdm.com/transparency");
    // "My device" opens /device/{token} (device_client.go BrowserDeviceURL): herd's My Device page.
    let page = server.client.get(format!("{}/device/{token}", server.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
}

/// Seed 002 on a Mac with fleetd: osquery's `mdm` table says another MDM manages it, so orbit's configuration
/// and Fleet Desktop's summary offer the migration; `migrate_mdm` starts it; once the Mac reports itself
/// unmanaged, the offer ends.
async fn a_mac_managed_elsewhere_is_offered_the_migration(server: Server) {
    let admin = server.admin_token().await;
    let migration = json!({"mdm": {"macos_migration": {"enable": true, "mode": "voluntary",
        "webhook_url": "https://migration.example.test/hook"}}});
    let (status, body) = server.patch("/api/v1/fleet/config", &admin, migration).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut fleetd = Fleetd::new("mac-10", ENROLL_SECRET);
    fleetd.enrolled_in_other_mdm = true;
    let token = "6b1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
    fleetd.set_device_token(&server, token).await.unwrap();
    let read = fleetd.osquery_check_in(&server, |_| true).await;
    assert!(read["queries"].get("fleet_detail_query_mdm_migration").is_some(), "asked: {read}");
    let config = fleetd.config(&server).await.unwrap();
    assert_eq!(config["notifications"]["needs_mdm_migration"], true, "{config}");
    let desktop_path = format!("/api/latest/fleet/device/{token}/desktop");
    let (_, summary) = server.request(reqwest::Method::GET, &desktop_path, None, None).await;
    assert_eq!(summary["notifications"]["needs_mdm_migration"], true, "{summary}");
    assert_eq!(summary["config"]["mdm"]["macos_migration"]["mode"], "voluntary");
    assert_eq!(fleetd.desktop_migration(&summary), DesktopMigration::MenuItem, "offered, not pressed");

    // Fleet Desktop's dialog: "Start" calls migrate_mdm (device_client.go MigrateMDM).
    let (status, _) = server
        .request(reqwest::Method::POST, &format!("/api/latest/fleet/device/{token}/migrate_mdm"), None, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The old MDM removed the Mac; osquery says so at the next check-in: migrated, nothing more to offer.
    fleetd.enrolled_in_other_mdm = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        fleetd.osquery_check_in(&server, |_| true).await;
        if fleetd.config(&server).await.unwrap()["notifications"]["needs_mdm_migration"] == false {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the Mac's unmanaged report never ended the offer");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, summary) = server.request(reqwest::Method::GET, &desktop_path, None, None).await;
    assert_eq!(summary["notifications"]["needs_mdm_migration"], false, "{summary}");
}

/// A Windows PC is never offered the migration, even when the admin's migration query says another system
/// manages it: its fleetd takes `needs_mdm_migration` as an order to unenroll from its Windows MDM (Fleet's
/// orbit/pkg/update/notifications.go, windowsMDMEnrollmentConfigReceiver), which herd cannot replace.
async fn a_windows_pc_is_never_offered_the_migration(server: Server) {
    let admin = server.admin_token().await;
    let migration = json!({"mdm": {"macos_migration": {"enable": true, "mode": "forced",
        "webhook_url": "https://migration.example.test/hook"}, "migration_query": "SELECT 1;"}});
    let (status, body) = server.patch("/api/v1/fleet/config", &admin, migration).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut fleetd = Fleetd::windows("pc-20", ENROLL_SECRET);
    fleetd.enrolled_in_other_mdm = true;
    let token = "0d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a";
    fleetd.set_device_token(&server, token).await.unwrap();
    let read = fleetd.osquery_check_in(&server, |_| true).await;
    assert!(!detail_queries(&read).iter().any(|q| q == "mdm_migration"), "not even asked: {read}");
    let config = fleetd.config(&server).await.unwrap();
    assert_eq!(config["notifications"]["needs_mdm_migration"], false, "{config}");
    let desktop_path = format!("/api/latest/fleet/device/{token}/desktop");
    let (_, summary) = server.request(reqwest::Method::GET, &desktop_path, None, None).await;
    assert_eq!(summary["notifications"]["needs_mdm_migration"], false, "{summary}");
}

/// The detail queries a host was handed, without the prefix.
fn detail_queries(read: &Value) -> Vec<String> {
    let mut names: Vec<String> = read["queries"]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|name| name.strip_prefix("fleet_detail_query_").map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The console's page of a host, as an admin signed in sees it.
async fn console_host_page(server: &Server, id: i64) -> String {
    let browser = server.browser();
    let form = [("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD), ("next", "/console")];
    let signed_in = browser.post(format!("{}/console/login", server.url)).form(&form).send().await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let page = browser.get(format!("{}/console/hosts/{id}", server.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

/// A Mac and a Windows PC each get their platform's variants of Fleet's detail queries (a Mac's disk from
/// fleetd's `disk_space` table, its `mounts` twin skipped by discovery; Windows' label from the registry, its
/// route by address, its NTFS drives), and the host view shows what each machine reported.
async fn a_mac_and_a_windows_pc_show_their_own_vitals(server: Server) {
    let admin = server.admin_token().await;
    let mut mac = Fleetd::new("mac-11", ENROLL_SECRET);
    let mut pc = Fleetd::windows("pc-1", ENROLL_SECRET);
    for fleetd in [&mut mac, &mut pc] {
        fleetd.config(&server).await.expect("orbit enrolls");
    }
    let mac_read = mac.osquery_check_in(&server, |_| true).await;
    let pc_read = pc.osquery_check_in(&server, |_| true).await;
    let unix_and = |extra: &[&str]| {
        // orbit_info: fleetd's own row, asked of every host whose orbit enrolled.
        let mut names: Vec<String> =
            ["orbit_info", "os_version", "osquery_flags", "osquery_info", "system_info", "uptime"]
                .iter()
                .chain(extra)
                .map(|n| n.to_string())
                .collect();
        names.sort();
        names
    };
    assert_eq!(
        detail_queries(&mac_read),
        unix_and(&["disk_space", "disk_space_darwin", "network_interface"]),
        "the platform is known from orbit's enrollment before osqueryd's first check-in"
    );
    assert_eq!(
        detail_queries(&pc_read),
        unix_and(&["disk_space_windows", "network_interface_windows", "os_version_windows"])
    );

    let listed = hosts(&server, &admin).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let id_of = |name: &str| listed.iter().find(|h| h["computer_name"] == name).unwrap()["id"].as_i64().unwrap();
    let cases = [
        (
            id_of("mac-11"),
            json!({"platform": "darwin", "os_version": "macOS 14.5", "build": "23F79", "hostname": "mac-11.local",
                "computer_name": "mac-11", "hardware_vendor": "Apple Inc.", "hardware_model": "MacBookPro18,3",
                "hardware_serial": "C02MAC-11", "cpu_brand": "Apple M1 Pro", "cpu_type": "arm64e",
                "memory": 34_359_738_368_i64, "uptime": 7_200_000_000_000_i64, "primary_ip": "192.0.2.20",
                "primary_mac": "a4:83:e7:00:00:01", "percent_disk_space_available": 55.0,
                "gigs_disk_space_available": 250.1, "gigs_total_disk_space": 460.4, "osquery_version": "5.13.1"}),
            ["macOS 14.5", "Apple Inc. MacBookPro18,3 (serial C02MAC-11)", "34.4 GB", "55 % free", "192.0.2.20"],
        ),
        (
            id_of("PC-1"),
            json!({"platform": "windows", "os_version": "Windows 11 Enterprise 23H2 10.0.22631.3155",
                "build": "22631", "hostname": "PC-1", "computer_name": "PC-1", "hardware_vendor": "Dell Inc.",
                "hardware_model": "Latitude 7420", "hardware_serial": "5CGPC-1",
                "cpu_brand": "11th Gen Intel(R) Core(TM) i7-1185G7 @ 3.00GHz", "cpu_type": "x86_64",
                "memory": 17_179_869_184_i64, "uptime": 273_906_000_000_000_i64, "primary_ip": "10.20.30.40",
                "primary_mac": "00:15:5d:0a:0b:0c", "percent_disk_space_available": 41.07,
                "gigs_disk_space_available": 200.12, "gigs_total_disk_space": 487.25, "osquery_version": "5.13.1"}),
            [
                "Windows 11 Enterprise 23H2 10.0.22631.3155",
                "Dell Inc. Latitude 7420 (serial 5CGPC-1)",
                "17.2 GB",
                "41 % free",
                "10.20.30.40",
            ],
        ),
    ];
    for (id, want, on_page) in cases {
        let (status, body) = server.get(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(&body["host"][field], value, "{field} of host {id}: {body}");
        }
        let page = console_host_page(&server, id).await;
        for text in on_page {
            assert!(page.contains(text), "{text:?} on the console's page of host {id}");
        }
    }
}

/// fleetd says in Fleet's `orbit_info` row whether it runs scripts. Disabled, its failing policy queues no run
/// it would refuse; enabled again (seen at the next vitals), the automation resumes at once: the run shows up in
/// orbit's configuration, fleetd runs it, and the policy is green.
async fn fleetd_without_scripts_gets_no_runs_until_it_runs_them(server: Server) {
    let admin = server.admin_token().await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("fixed");
    let script = server.script_id(&admin, "fix.sh", &format!("touch '{}'\n", marker.display())).await;
    let query = format!("SELECT 1 FROM file WHERE path = '{}';", marker.display());
    let (_, created) = server
        .post("/api/v1/fleet/global/policies", &admin, json!({"name": "fixed", "query": query, "script_id": script}))
        .await;
    let policy = created["policy"]["id"].as_i64().unwrap();
    let fixed = |_: &str| marker.exists();

    let mut fleetd = Fleetd::new("mac-12", ENROLL_SECRET);
    fleetd.scripts_enabled = false;
    fleetd.config(&server).await.unwrap();
    let read = fleetd.osquery_check_in(&server, fixed).await;
    assert_eq!(read["queries"]["fleet_detail_query_orbit_info"], "SELECT * FROM orbit_info", "{read}");
    assert!(read["discovery"]["fleet_detail_query_orbit_info"].as_str().unwrap().contains("'orbit_info'"));
    assert_eq!(policy_counts(&server, &admin, policy).await, (0, 1), "failing");
    let id = hosts(&server, &admin).await[0]["id"].as_i64().unwrap();
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
    assert_eq!(host["host"]["scripts_enabled"], false, "{host}");
    let pending = |config: &Value| config["notifications"]["pending_script_execution_ids"].as_array().unwrap().len();
    assert_eq!(pending(&fleetd.config(&server).await.unwrap()), 0, "no run for a fleetd that would refuse it");
    let (_, runs) = server.get(&format!("/api/v1/fleet/hosts/{id}/scripts"), &admin).await;
    assert!(!runs.to_string().contains("\"pending\""), "nothing queued: {runs}");

    // Scripts turned on in fleetd; its next vitals (a refetch brings them now) say so.
    fleetd.scripts_enabled = true;
    let (status, _) = server.post(&format!("/api/v1/fleet/hosts/{id}/refetch"), &admin, json!({})).await;
    assert!(status.is_success(), "{status}");
    let read = fleetd.osquery_check_in(&server, fixed).await;
    assert!(read["queries"].get("fleet_detail_query_orbit_info").is_some(), "{read}");
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
    assert_eq!(host["host"]["scripts_enabled"], true, "{host}");

    // The failing automation resumes within a check-in or two: its run reaches fleetd, which fixes the Mac.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while pending(&fleetd.config(&server).await.unwrap()) == 0 {
        assert!(std::time::Instant::now() < deadline, "the automation never resumed");
        fleetd.osquery_check_in(&server, fixed).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ran = fleetd.run_pending_scripts(&server).await.unwrap();
    assert_eq!(ran.iter().map(|r| r.exit_code).collect::<Vec<_>>(), vec![0]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while policy_counts(&server, &admin, policy).await != (1, 0) {
        assert!(std::time::Instant::now() < deadline, "never green");
        fleetd.osquery_check_in(&server, fixed).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Seed 002 in forced mode with fleetd: orbit's configuration says `needs_mdm_migration`, Fleet Desktop (forced
/// mode) opens the dialog by itself; its "Start" calls `migrate_mdm`, whose webhook goes through the job table
/// to the receiver once, with Fleet's payload; in the critical window osqueryd is asked only the management
/// status, quickly; the Mac reporting itself unmanaged ends the migration and the offer.
async fn forced_migration_of_a_mac(server: Server, url: String, received: Arc<Mutex<Vec<Value>>>) {
    let admin = server.admin_token().await;
    let settings = json!({"mdm": {"macos_migration": {"enable": true, "mode": "forced", "webhook_url": url},
        "migration_window_seconds": 60}});
    let (status, body) = server.patch("/api/v1/fleet/config", &admin, settings).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut fleetd = Fleetd::new("mac-13", ENROLL_SECRET);
    fleetd.enrolled_in_other_mdm = true;
    let token = "8d2e3f4a-5b6c-4d7e-8f9a-0b1c2d3e4f5a";
    fleetd.set_device_token(&server, token).await.unwrap();
    fleetd.osquery_check_in(&server, |_| true).await;
    assert_eq!(fleetd.config(&server).await.unwrap()["notifications"]["needs_mdm_migration"], true);
    let desktop_path = format!("/api/latest/fleet/device/{token}/desktop");
    let (_, summary) = server.request(reqwest::Method::GET, &desktop_path, None, None).await;
    assert_eq!(fleetd.desktop_migration(&summary), DesktopMigration::DialogEveryInterval, "{summary}");
    let id = hosts(&server, &admin).await[0]["id"].as_i64().unwrap();

    // The person presses "Start" (the dialog may be opened again meanwhile: a second start sends nothing).
    let migrate = format!("/api/latest/fleet/device/{token}/migrate_mdm");
    for _ in 0..2 {
        let (status, _) = server.request(reqwest::Method::POST, &migrate, None, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let body = herd_testkit::eventually(Duration::from_secs(30), "the migration webhook", || async {
        received.lock().unwrap().first().cloned()
    })
    .await;
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
    let host = &host["host"];
    assert_eq!(body["host"], json!({"id": id, "uuid": host["uuid"], "hardware_serial": "C02MAC-13"}), "{body}");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{body}");
    assert_eq!(host["mdm_migration"]["state"], "started", "{host}");
    let (_, deliveries) = server.get("/api/v1/fleet/webhook_deliveries", &admin).await;
    let deliveries: Vec<&Value> =
        deliveries["webhook_deliveries"].as_array().unwrap().iter().filter(|d| d["kind"] == "mdm_migration").collect();
    assert_eq!(deliveries.len(), 1, "one job for two starts: {deliveries:?}");
    assert_eq!((deliveries[0]["host_id"].clone(), deliveries[0]["destination_url"].clone()), (json!(id), json!(url)));

    // The critical window: osqueryd is asked only whether the old MDM still manages the Mac, accelerated (osquery
    // polls every second) for what is left of the window's 60 seconds.
    let read = fleetd.osquery_check_in(&server, |_| true).await;
    let names: Vec<&String> = read["queries"].as_object().unwrap().keys().collect();
    assert_eq!(names, vec!["fleet_detail_query_mdm_migration"], "{read}");
    assert!(read["accelerate"].as_u64().is_some_and(|s| (1..=60).contains(&s)), "{read}");

    // The old MDM let the Mac go: its next report ends the migration, and the offer with it.
    fleetd.enrolled_in_other_mdm = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        fleetd.osquery_check_in(&server, |_| true).await;
        let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
        if host["host"]["mdm_migration"]["state"] == "migrated" {
            break;
        }
        assert!(Instant::now() < deadline, "never migrated: {host}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fleetd.config(&server).await.unwrap()["notifications"]["needs_mdm_migration"], false);
    let (_, summary) = server.request(reqwest::Method::GET, &desktop_path, None, None).await;
    assert_eq!(fleetd.desktop_migration(&summary), DesktopMigration::Nothing, "{summary}");
    assert_eq!(received.lock().unwrap().len(), 1, "delivered once");
}

async fn forced_migration_on(backend: herd_testkit::Backend) {
    let work = tempfile::tempdir().unwrap();
    let receiver = HttpsReceiver::start(work.path(), "/migrate", |_| {}).await;
    let (url, cert, received) = (receiver.url, receiver.cert, receiver.received);
    let cert = cert.to_string_lossy().to_string();
    let mut args = vec!["--webhook-ca-cert", cert.as_str()];
    args.extend(herd_testkit::ALLOW_LOOPBACK_WEBHOOKS);
    herd_testkit::with_server_args(&herd_testkit::herd_binary(), backend, &args, |server| {
        forced_migration_of_a_mac(server, url, received)
    })
    .await;
}

mod forced_migration {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::forced_migration_on(herd_testkit::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
    async fn postgres() {
        super::forced_migration_on(herd_testkit::Backend::Postgres).await;
    }
}

herd_testkit::server_cases!(
    fleetd_without_scripts_gets_no_runs_until_it_runs_them,
    a_mac_and_a_windows_pc_show_their_own_vitals,
    a_mac_managed_elsewhere_is_offered_the_migration,
    a_windows_pc_is_never_offered_the_migration,
    orbit_enrolls_first_and_osqueryd_joins_its_host,
    osqueryd_enrolls_first_and_orbit_joins_its_host,
    bad_orbit_keys_are_node_invalid,
    a_deleted_host_makes_fleetd_enroll_again,
    a_failing_policy_is_fixed_by_fleetd_and_green_at_the_next_check_in,
    results_for_runs_the_host_was_not_given_are_refused,
    concurrent_orbit_enrollments_of_one_machine_leave_one_host,
    fleet_desktop_reads_every_field_it_needs,
);
