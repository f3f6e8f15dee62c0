//! End-to-end: herdctl behaves like a well-kept command line (closed pipes, no terminal, every mistake at
//! once, "unchanged" that leaves no trace, Fleet's metadata, environment expansion), against the real `herd`.

mod common;

use common::{activity_count, command, failed, herdctl, login, ok, run, stderr};
use herd_testkit::Server;
use std::process::Stdio;

async fn closed_pipes_and_no_terminal(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = login(&server, dir.path());
    let specs = dir.path().join("policies.yml");
    std::fs::write(&specs, "apiVersion: v1\nkind: policy\nspec:\n  name: Firewall\n  query: SELECT 1;\n").unwrap();
    ok(&herdctl(&config, &["apply", "-f", &specs.to_string_lossy()]));

    // `herdctl get … | head` once head has gone: the reader closed its end before herdctl writes anything.
    for args in [&["get", "policies"][..], &["get", "policies", "--json"], &["get", "teams"], &["get", "hosts"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut closed = command(&config, args);
        closed.stdout(Stdio::from(writer));
        let output = run(closed, None);
        assert!(output.status.success(), "{args:?}: {:?}, stderr: {}", output.status, stderr(&output));
        assert_eq!(stderr(&output), "", "{args:?}: nothing to say when the reader has gone");
    }

    // A login from a script without --password-stdin: no prompt possible, and the way out is named.
    let cert = server.data_dir.join("tls/cert.pem");
    let args = ["login", "--server", &server.url, "--ca-cert", &cert.to_string_lossy(), "--email", "admin@herd.local"];
    let refused = failed(&run(command(&config, &args), Some("a-password\n")));
    assert!(refused.contains("--password-stdin"), "{refused}");
    assert!(refused.contains("not a terminal"), "{refused}");
    assert!(!refused.contains("No such device"), "{refused}");
}

const FIRST_FILE: &str = "apiVersion: v1
kind: policy
spec:
  name: Good policy
  query: SELECT 1;
---
apiVersion: v1
kind: policy
spec:
  name: Bad critical
  query: SELECT 1;
  critical: sometimes
---
apiVersion: v1
kind: team
spec:
  team:
    name: Workstations
    colour: blue
";

const SECOND_FILE: &str = "apiVersion: v1
kind: policy
spec:
  query: SELECT 2;
  platfrom: linux
---
apiVersion: v1
kind: query
spec: {}
";

async fn every_mistake_at_once(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = login(&server, dir.path());
    let first = dir.path().join("first.yml");
    let second = dir.path().join("second.yml");
    std::fs::write(&first, FIRST_FILE).unwrap();
    std::fs::write(&second, SECOND_FILE).unwrap();
    let refused =
        failed(&herdctl(&config, &["apply", "-f", &first.to_string_lossy(), "-f", &second.to_string_lossy()]));
    let (first, second) = (first.display().to_string(), second.display().to_string());
    let expected = [
        format!("{first}:12:13: critical:"),
        format!("{first}:19:13: team spec: unknown field `colour`"),
        format!("{second}:5:13: unknown policy field `platfrom`"),
        format!("{second}:4:3: this policy has no `name`"),
        format!("{second}:8:7: unknown kind \"query\""),
    ];
    for line in &expected {
        assert!(refused.lines().any(|l| l.starts_with(line.as_str())), "{line} in:\n{refused}");
    }
    assert!(refused.contains("5 mistakes, nothing applied"), "{refused}");
    assert!(refused.contains("colour"), "the team's unknown field is named: {refused}");
    let admin = server.admin_token().await;
    assert_eq!(server.get("/api/v1/fleet/policies/count", &admin).await.1["count"], 0, "nothing applied");
    assert_eq!(server.get("/api/v1/fleet/teams", &admin).await.1["teams"], serde_json::json!([]));
}

const SPECS: &str = "apiVersion: v1
kind: team
spec:
  team:
    name: Workstations
---
apiVersion: v1
kind: policy
spec:
  name: Firewall enabled
  query: SELECT 1 FROM iptables WHERE policy = 'DROP';
  platform: linux
---
apiVersion: v1
kind: policy
spec:
  name: Screen lock
  query: SELECT 1;
  team: Workstations
---
apiVersion: v1
kind: config
spec:
  org_info:
    org_name: Acme
";

async fn unchanged_applies_leave_no_trace(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = login(&server, dir.path());
    let specs = dir.path().join("fleet.yml");
    std::fs::write(&specs, SPECS).unwrap();
    let first = ok(&herdctl(&config, &["apply", "-f", &specs.to_string_lossy()]));
    assert!(first.contains("policy \"Firewall enabled\" created"), "{first}");
    assert!(first.contains("policy \"Screen lock\" created"), "{first}");

    let admin = server.admin_token().await;
    let before = activity_count(&server, &admin).await;
    let (_, policies) = server.get("/api/v1/fleet/global/policies", &admin).await;
    let second = ok(&herdctl(&config, &["apply", "-f", &specs.to_string_lossy()]));
    assert!(second.contains("policy \"Firewall enabled\" unchanged"), "{second}");
    assert!(second.contains("policy \"Screen lock\" unchanged"), "{second}");
    assert!(second.contains("team \"Workstations\" unchanged") && second.contains("config unchanged"), "{second}");
    assert!(second.contains("0 created, 0 updated, 2 unchanged"), "{second}");
    assert!(!second.contains("applied:") || second.contains("policies applied:"), "{second}");
    assert_eq!(activity_count(&server, &admin).await, before, "nothing changed, nothing recorded");
    assert_eq!(server.get("/api/v1/fleet/global/policies", &admin).await.1, policies);

    // One edit: that policy is updated and one activity says so.
    std::fs::write(&specs, SPECS.replace("SELECT 1;\n  team", "SELECT 2;\n  team")).unwrap();
    let third = ok(&herdctl(&config, &["apply", "-f", &specs.to_string_lossy()]));
    assert!(
        third.contains("policy \"Screen lock\" updated") && third.contains("\"Firewall enabled\" unchanged"),
        "{third}"
    );
    assert_eq!(activity_count(&server, &admin).await, before + 1);
}

const CIS: &str = "---
apiVersion: v1
kind: policy
spec:
  name: CIS Ubuntu 22.04 - 1.1.1.1 Ensure cramfs kernel module is not available (Automated)
  platforms: linux
  platform: linux
  description: Ensure cramfs kernel module is not available (Automated)
  resolution: |
    Create /etc/modprobe.d/cramfs.conf with blacklist + install rules to prevent loading cramfs.
  query: |
    SELECT 1 WHERE (SELECT COUNT(*) FROM kernel_modules WHERE name='cramfs') = 0;
  purpose: Informational
  tags: compliance, CIS, CIS_Ubuntu_22_04
  contributors: sharon-fdm
---
apiVersion: v1
kind: policy
spec:
  name: CIS Ubuntu 22.04 - 1.1.1.2 Ensure freevxfs kernel module is not available (Automated)
  platforms: linux
  platform: linux
  query: SELECT 1;
  purpose: Informational
  tags: compliance, CIS, CIS_Ubuntu_22_04
  contributors: sharon-fdm
";

async fn fleet_metadata_and_environment(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = login(&server, dir.path());
    let admin = server.admin_token().await;

    // Fleet's own CIS file: accepted, with one warning per ignored field naming where it first appears.
    let cis = dir.path().join("cis-policy-queries.yml");
    std::fs::write(&cis, CIS).unwrap();
    let output = herdctl(&config, &["apply", "-f", &cis.to_string_lossy()]);
    let applied = ok(&output);
    assert!(applied.contains("2 created"), "{applied}");
    let warnings = stderr(&output);
    let at = cis.display().to_string();
    assert!(warnings.contains(&format!("{at}:6:14: warning: `platforms`")), "{warnings}");
    assert!(warnings.contains(&format!("{at}:13:12: warning: Fleet's descriptive metadata")), "{warnings}");
    assert!(warnings.contains("2 times in this file"), "{warnings}");
    let (_, policies) = server.get("/api/v1/fleet/global/policies", &admin).await;
    assert_eq!(policies["policies"][0]["platform"], "linux");

    // $VAR and ${VAR} from the environment; \$ is a literal dollar; prose is left alone.
    let file = dir.path().join("env.yml");
    std::fs::write(
        &file,
        "apiVersion: v1
kind: policy
spec:
  name: ${TEAM_NAME} firewall
  query: SELECT 1 FROM users WHERE shell != '\\$SHELL_PLACEHOLDER';
  description: Costs $5 per $HOST_THAT_IS_NOT_SET.
  team: $TEAM_NAME
---
apiVersion: v1
kind: team
spec:
  team:
    name: $TEAM_NAME
",
    )
    .unwrap();
    let mut expanded = command(&config, &["apply", "-f", &file.to_string_lossy()]);
    expanded.env("TEAM_NAME", "Servers");
    ok(&run(expanded, None));
    let (_, teams) = server.get("/api/v1/fleet/teams", &admin).await;
    let team_id = teams["teams"][0]["id"].as_i64().unwrap();
    assert_eq!(teams["teams"][0]["name"], "Servers");
    let (_, policies) = server.get(&format!("/api/v1/fleet/teams/{team_id}/policies"), &admin).await;
    assert_eq!(policies["policies"][0]["name"], "Servers firewall");
    assert_eq!(policies["policies"][0]["query"], "SELECT 1 FROM users WHERE shell != '$SHELL_PLACEHOLDER';");
    assert_eq!(policies["policies"][0]["description"], "Costs $5 per $HOST_THAT_IS_NOT_SET.");

    // An undefined variable is named, where it is, and nothing is applied.
    let mut missing = command(&config, &["apply", "-f", &file.to_string_lossy()]);
    missing.env_remove("TEAM_NAME");
    let refused = failed(&run(missing, None));
    assert!(
        refused.contains(&format!("{}:4:9: environment variable \"TEAM_NAME\" is not set", file.display())),
        "{refused}"
    );
    assert!(refused.contains(&format!("{}:7:9:", file.display())), "{refused}");
}

herd_testkit::server_cases!(bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herdctl"));
    closed_pipes_and_no_terminal, every_mistake_at_once, unchanged_applies_leave_no_trace, fleet_metadata_and_environment);
