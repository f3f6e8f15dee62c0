//! End-to-end: the real `herdctl` binary against the real `herd` binary over HTTPS.

mod common;

use herd_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, ENROLL_SECRET, Server, TestHost};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn herdctl(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herdctl"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
    stdout
}

const SPECS: &str = "apiVersion: v1
kind: policy
spec:
  name: Firewall enabled
  query: SELECT 1 FROM iptables WHERE policy = 'DROP';
  description: Hosts drop unsolicited traffic.
  resolution: Run ufw enable.
  platform: linux
  critical: true
---
apiVersion: v1
kind: policy
spec:
  name: Workstation screen lock
  query: SELECT 1;
  team: Workstations
---
apiVersion: v1
kind: team
spec:
  team:
    name: Workstations
    secrets:
      - secret: workstations-secret-1
---
apiVersion: v1
kind: config
spec:
  org_info:
    org_name: Acme Corp
    contact_url: https://help.acme.test
  host_settings:
    policy_interval: 1800
  mdm:
    macos_migration:
      enable: true
      mode: forced
      webhook_url: https://automation.acme.test/unenroll
    migration_query: SELECT 1 FROM file WHERE path = '/opt/oldagent/enrolled';
";

async fn apply_get_delete(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herdctl.json");
    let cert = server.data_dir.join("tls/cert.pem");
    let login = |password: &str| {
        herdctl(
            &config,
            &[
                "login",
                "--server",
                &server.url,
                "--ca-cert",
                &cert.to_string_lossy(),
                "--email",
                ADMIN_EMAIL,
                "--password-stdin",
            ],
            Some(&format!("{password}\n")),
        )
    };
    let refused = login("wrong-password-1!");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("authentication failed"), "{refused:?}");
    assert!(ok(&login(ADMIN_PASSWORD)).contains("logged in"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let specs = dir.path().join("fleet.yml");
    std::fs::write(&specs, SPECS).unwrap();
    let first = ok(&herdctl(&config, &["apply", "-f", &specs.to_string_lossy()], None));
    assert!(first.contains("team \"Workstations\" created"), "{first}");
    assert!(first.contains("config updated"), "{first}");
    assert!(first.contains("policies applied"), "{first}");

    let admin = server.admin_token().await;
    let (_, policies) = server.get("/api/v1/fleet/global/policies", &admin).await;
    let firewall = &policies["policies"][0];
    assert_eq!(firewall["name"], "Firewall enabled");
    assert_eq!((firewall["platform"].as_str(), firewall["critical"].as_bool()), (Some("linux"), Some(true)));
    let (_, teams) = server.get("/api/v1/fleet/teams", &admin).await;
    let team_id = teams["teams"][0]["id"].as_i64().unwrap();
    assert_eq!(teams["teams"][0]["secrets"][0]["secret"], "workstations-secret-1");
    let (_, team_policies) = server.get(&format!("/api/v1/fleet/teams/{team_id}/policies"), &admin).await;
    assert_eq!(team_policies["policies"][0]["name"], "Workstation screen lock");
    let (_, cfg) = server.get("/api/v1/fleet/config", &admin).await;
    assert_eq!(cfg["org_info"]["org_name"], "Acme Corp");
    assert_eq!(cfg["host_settings"]["policy_interval"], 1800);
    assert_eq!(cfg["mdm"]["macos_migration"]["mode"], "forced", "the migration settings apply from YAML");
    assert_eq!(cfg["org_info"]["contact_url"], "https://help.acme.test");

    // Applying again changes nothing.
    let second = ok(&herdctl(&config, &["apply", "-f", &specs.to_string_lossy()], None));
    assert!(second.contains("team \"Workstations\" unchanged"), "{second}");
    assert!(second.contains("config unchanged"), "{second}");
    let (_, again) = server.get("/api/v1/fleet/global/policies", &admin).await;
    assert_eq!(again, policies, "policies untouched, updated_at included");

    // Editing a file and applying it updates by name.
    std::fs::write(&specs, SPECS.replace("query: SELECT 1;", "query: SELECT 2 FROM users;")).unwrap();
    ok(&herdctl(&config, &["apply", "-f", &specs.to_string_lossy()], None));
    let (_, team_policies) = server.get(&format!("/api/v1/fleet/teams/{team_id}/policies"), &admin).await;
    assert_eq!(team_policies["policies"].as_array().unwrap().len(), 1, "updated, not duplicated");
    assert_eq!(team_policies["policies"][0]["query"], "SELECT 2 FROM users;");

    let listed = ok(&herdctl(&config, &["get", "policies", "--json"], None));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["name"], "Firewall enabled");
    let table = ok(&herdctl(&config, &["get", "policies", "--team", "Workstations"], None));
    assert!(table.starts_with("ID") && table.contains("Workstation screen lock"), "{table}");
    assert!(ok(&herdctl(&config, &["get", "teams"], None)).contains("Workstations"));
    assert!(ok(&herdctl(&config, &["get", "hosts"], None)).starts_with("ID"));

    assert!(ok(&herdctl(&config, &["delete", "policy", "Firewall enabled"], None)).contains("deleted"));
    let (_, after) = server.get("/api/v1/fleet/global/policies", &admin).await;
    assert_eq!(after["policies"], serde_json::json!([]));
    let missing = herdctl(&config, &["delete", "policy", "Firewall enabled"], None);
    assert!(!missing.status.success());

    // Mistakes are reported with file, line and column, and nothing is applied.
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "apiVersion: v1\nkind: policy\nspec:\n  name: x\n  query: SELECT 1;\n---\napiVersion: v1\nkind: pack\nspec: {}\n").unwrap();
    let refused = herdctl(&config, &["apply", "-f", &bad.to_string_lossy()], None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&format!("{}:8:", bad.display())) && stderr.contains("unknown kind"), "{stderr}");
    assert_eq!(server.get("/api/v1/fleet/policies/count", &admin).await.1["count"], 0);

    // A disruptive fix users may defer, named by script in the YAML.
    server.script_id(&admin, "restart.sh", "echo restarting\n").await;
    let deferrable = "apiVersion: v1
kind: policy
spec:
  name: Restarted this week
  query: SELECT 1 FROM uptime WHERE total_seconds < 604800;
  script: restart.sh
  deferral:
    title: Restart needed
    message: '{org_name} restarts your computer by {deadline}.'
    options: [1h, 4h, 'tomorrow 09:00']
    max_deferrals: 3
    deadline_after: 3d
    blocking_processes: [zoom]
    when_no_user: run
";
    let file = dir.path().join("restart.yml");
    std::fs::write(&file, deferrable).unwrap();
    ok(&herdctl(&config, &["apply", "-f", &file.to_string_lossy()], None));
    let (_, policies) = server.get("/api/v1/fleet/global/policies", &admin).await;
    let restart = &policies["policies"][0];
    assert_eq!(restart["run_script"]["name"], "restart.sh");
    assert_eq!(restart["deferral"]["options"], serde_json::json!(["1h", "4h", "tomorrow 09:00"]));
    assert_eq!(restart["deferral"]["blocking_processes"], serde_json::json!(["zoom"]));
    let again = ok(&herdctl(&config, &["apply", "-f", &file.to_string_lossy()], None));
    assert!(again.contains("policies applied"), "{again}");
    assert_eq!(server.get("/api/v1/fleet/global/policies", &admin).await.1, policies, "applying again changes nothing");
    // Settings the server refuses point at the document and name the field.
    std::fs::write(&file, format!("{SPECS}---\n{}", deferrable.replace("deadline_after: 3d", "deadline_after: 2h")))
        .unwrap();
    let refused = herdctl(&config, &["apply", "-f", &file.to_string_lossy()], None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&format!("{}:44:", file.display())), "{stderr}");
    assert!(stderr.contains("deferral.options"), "{stderr}");
    // A misspelt setting is caught before anything is sent.
    std::fs::write(&file, deferrable.replace("max_deferrals", "max_deferral")).unwrap();
    let refused = herdctl(&config, &["apply", "-f", &file.to_string_lossy()], None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("max_deferral"), "{stderr}");
    assert_eq!(server.get("/api/v1/fleet/global/policies", &admin).await.1, policies, "nothing changed");

    assert!(ok(&herdctl(&config, &["logout"], None)).contains("logged out"));
    let after_logout = herdctl(&config, &["get", "teams"], None);
    assert!(String::from_utf8_lossy(&after_logout.stderr).contains("herdctl login"));
}

const LABELS: &str = "apiVersion: v1
kind: label
spec:
  name: Build servers
  description: Hosts that build our software.
  query: SELECT 1 FROM file WHERE path = '/etc/build-server';
  platform: linux
  label_membership_type: dynamic
---
apiVersion: v1
kind: label
spec:
  name: Kiosks
  label_membership_type: manual
  hosts:
    - kiosk-1
    - kiosk-2
---
apiVersion: v1
kind: label
spec:
  name: Modern Ubuntu
  label_membership_type: host_vitals
  criteria:
    all:
      - platform: linux
      - os: {name: Ubuntu, min_version: '22.04'}
---
apiVersion: v1
kind: policy
spec:
  name: Builds are signed
  query: SELECT 1;
  labels_include_any: [Build servers, Modern Ubuntu]
  labels_exclude_any: [Kiosks]
";

/// The labels without their member counts, which move as the server decides new hosts' memberships.
fn definitions(mut listed: Value) -> Value {
    for label in listed["labels"].as_array_mut().unwrap() {
        let label = label.as_object_mut().unwrap();
        label.remove("host_count");
        label.remove("count");
    }
    listed
}

/// The three kinds of label from Fleet's spec, a policy scoped by them, listing with the built-in ones, and
/// deleting one in use (refused, naming its users; then forced).
async fn labels_apply_get_delete(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = common::login(&server, dir.path());
    let admin = server.admin_token().await;
    for name in ["kiosk-1", "kiosk-2", "build-1"] {
        let (status, _) = TestHost::new(name).enroll(&server, ENROLL_SECRET).await;
        assert!(status.is_success(), "{name} enrolled");
    }
    let file = dir.path().join("labels.yml");
    std::fs::write(&file, LABELS).unwrap();
    let first = ok(&herdctl(&config, &["apply", "-f", &file.to_string_lossy()], None));
    for line in [
        "label \"Build servers\" created",
        "label \"Kiosks\" created",
        "label \"Modern Ubuntu\" created",
        "labels applied: 3 created, 0 updated, 0 unchanged",
        "policy \"Builds are signed\" created",
    ] {
        assert!(first.contains(line), "{line} in:\n{first}");
    }
    let labels = |body: &Value, name: &str| -> Value {
        body["labels"].as_array().unwrap().iter().find(|l| l["name"] == name).cloned().unwrap_or(Value::Null)
    };
    // The criteria label takes in the three Ubuntu hosts (the server decides memberships as it learns them).
    let listed = herd_testkit::eventually(std::time::Duration::from_secs(30), "memberships", || async {
        let (_, listed) = server.get("/api/v1/fleet/labels", &admin).await;
        let settled = ["All Hosts", "Modern Ubuntu"].iter().all(|name| labels(&listed, name)["host_count"] == 3);
        settled.then_some(listed)
    })
    .await;
    let build = labels(&listed, "Build servers");
    assert_eq!((build["label_membership_type"].as_str(), build["platform"].as_str()), (Some("dynamic"), Some("linux")));
    assert_eq!(build["description"], "Hosts that build our software.");
    let kiosks = labels(&listed, "Kiosks");
    assert_eq!((kiosks["label_membership_type"].as_str(), kiosks["host_count"].as_i64()), (Some("manual"), Some(2)));
    let ubuntu = labels(&listed, "Modern Ubuntu");
    assert_eq!(ubuntu["label_membership_type"], "host_vitals");
    assert_eq!(ubuntu["criteria"]["all"][1]["os"]["min_version"], "22.04");
    let (_, policies) = server.get("/api/v1/fleet/global/policies", &admin).await;
    let policy = &policies["policies"][0];
    let names = |list: &Value| -> Vec<String> {
        list.as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap().to_string()).collect()
    };
    let mut included = names(&policy["labels_include_any"]);
    included.sort();
    assert_eq!(included, ["Build servers", "Modern Ubuntu"]);
    assert_eq!(names(&policy["labels_exclude_any"]), ["Kiosks"]);

    // Applying again changes nothing and records nothing.
    let activities = common::activity_count(&server, &admin).await;
    let again = ok(&herdctl(&config, &["apply", "-f", &file.to_string_lossy()], None));
    assert!(again.contains("labels applied: 0 created, 0 updated, 3 unchanged"), "{again}");
    assert!(again.contains("policy \"Builds are signed\" unchanged"), "{again}");
    assert_eq!(
        definitions(server.get("/api/v1/fleet/labels", &admin).await.1),
        definitions(listed),
        "labels untouched, updated_at included"
    );
    assert_eq!(server.get("/api/v1/fleet/global/policies", &admin).await.1, policies);
    assert_eq!(common::activity_count(&server, &admin).await, activities, "nothing recorded");

    // A manual label's members follow the file.
    std::fs::write(&file, LABELS.replace("    - kiosk-2\n", "")).unwrap();
    let edited = ok(&herdctl(&config, &["apply", "-f", &file.to_string_lossy()], None));
    assert!(edited.contains("label \"Kiosks\" updated"), "{edited}");
    let (_, now) = server.get("/api/v1/fleet/labels", &admin).await;
    assert_eq!(labels(&now, "Kiosks")["host_count"], 1);

    // A policy naming a label the server lacks: refused at its document, naming the field; nothing changes.
    let unknown = dir.path().join("unknown.yml");
    std::fs::write(&unknown, "apiVersion: v1\nkind: policy\nspec:\n  name: Nowhere\n  query: SELECT 1;\n  labels_include_all: [No such label]\n").unwrap();
    let refused = herdctl(&config, &["apply", "-f", &unknown.to_string_lossy()], None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&format!("{}:4:", unknown.display())), "{stderr}");
    assert!(
        stderr.contains("422") && stderr.contains("labels_include_all: no label named \"No such label\""),
        "{stderr}"
    );
    assert_eq!(server.get("/api/v1/fleet/policies/count", &admin).await.1["count"], 1);
    // A label document with a mistake is caught before anything is sent.
    std::fs::write(
        &unknown,
        "apiVersion: v1\nkind: label\nspec:\n  name: Broken\n  query: SELECT 1;\n  hosts: [kiosk-1]\n",
    )
    .unwrap();
    let refused = herdctl(&config, &["apply", "-f", &unknown.to_string_lossy()], None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains(&format!("{}:6:10: `hosts` and `query`", unknown.display())),
        "{stderr}"
    );

    // `get labels`: the built-in labels too.
    let table = ok(&herdctl(&config, &["get", "labels"], None));
    assert!(table.starts_with("ID") && table.contains("MEMBERSHIP"), "{table}");
    for name in ["All Hosts", "All Linux", "Build servers", "Kiosks", "Modern Ubuntu"] {
        assert!(table.contains(name), "{name} in:\n{table}");
    }
    let json: Value = serde_json::from_str(&ok(&herdctl(&config, &["get", "labels", "--json"], None))).unwrap();
    let all_hosts = json.as_array().unwrap().iter().find(|l| l["name"] == "All Hosts").unwrap();
    assert_eq!(all_hosts["label_type"], "builtin");
    assert!(json.as_array().unwrap().iter().any(|l| l["name"] == "Kiosks" && l["label_type"] == "regular"));
    assert!(!herdctl(&config, &["get", "labels", "--team", "Workstations"], None).status.success());

    // Deleting a label in use is refused with its users; --force deletes it and the scope loses it.
    let refused = herdctl(&config, &["delete", "label", "Kiosks"], None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("409") && stderr.contains("in use by policy \"Builds are signed\""), "{stderr}");
    assert!(labels(&server.get("/api/v1/fleet/labels", &admin).await.1, "Kiosks").is_object(), "still there");
    assert!(
        ok(&herdctl(&config, &["delete", "label", "Kiosks", "--force"], None)).contains("label \"Kiosks\" deleted")
    );
    assert!(labels(&server.get("/api/v1/fleet/labels", &admin).await.1, "Kiosks").is_null());
    let (_, policies) = server.get("/api/v1/fleet/global/policies", &admin).await;
    assert!(policies["policies"][0].get("labels_exclude_any").is_none(), "{policies}");
    // Built-in labels cannot be deleted, and a missing one is named.
    let builtin = herdctl(&config, &["delete", "label", "All Hosts", "--force"], None);
    let stderr = String::from_utf8_lossy(&builtin.stderr);
    assert!(!builtin.status.success() && stderr.contains("422") && stderr.contains("built-in"), "{stderr}");
    let missing = herdctl(&config, &["delete", "label", "Kiosks"], None);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no label named \"Kiosks\""));
}

herd_testkit::server_cases!(bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herdctl")); apply_get_delete, labels_apply_get_delete);
