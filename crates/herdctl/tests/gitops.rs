//! End-to-end: `herdctl gitops` applies a Fleet-layout repository (tests/fixtures/gitops) declaratively
//! against the real `herd`: a dry run changes nothing, a second run changes nothing, a removed policy file
//! deletes its policy (shown first by `--dry-run`).

mod common;

use common::{activity_count, command, login, ok, run};
use herd_testkit::Server;
use serde_json::{Value, json};
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn gitops(config: &Path, repo: &Path, dry_run: bool) -> String {
    let mut args = vec!["gitops", "-f", repo.to_str().unwrap()];
    if dry_run {
        args.push("--dry-run");
    }
    let mut gitops = command(config, &args);
    gitops.env("ORG_NAME", "Acme Corp").env("GLOBAL_ENROLL_SECRET", "acme-global-enroll-secret-1");
    ok(&run(gitops, None))
}

/// Everything the repository manages, as the server has it.
async fn state(server: &Server, admin: &str) -> Value {
    let (_, teams) = server.get("/api/v1/fleet/teams", admin).await;
    let (_, config) = server.get("/api/v1/fleet/config", admin).await;
    let (_, global_policies) = server.get("/api/v1/fleet/global/policies", admin).await;
    let (_, global_scripts) = server.get("/api/v1/fleet/scripts", admin).await;
    let mut team_policies = Vec::new();
    for team in teams["teams"].as_array().unwrap() {
        let id = team["id"].as_i64().unwrap();
        team_policies.push(server.get(&format!("/api/v1/fleet/teams/{id}/policies"), admin).await.1);
        team_policies.push(server.get(&format!("/api/v1/fleet/scripts?team_id={id}"), admin).await.1);
    }
    json!({"teams": teams, "config": config, "global_policies": global_policies, "global_scripts": global_scripts,
           "team_things": team_policies})
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect()
}

async fn applies_a_fleet_repository(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = login(&server, dir.path());
    let repo = dir.path().join("it-and-security");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitops"), &repo);
    let admin = server.admin_token().await;
    // Not in the files: deleted, like everything else a managed scope no longer holds.
    let (status, _) = server
        .post("/api/v1/fleet/global/policies", &admin, json!({"name": "Made by hand", "query": "SELECT 1;"}))
        .await;
    assert!(status.is_success());

    // A dry run lists the changes and makes none.
    let before = state(&server, &admin).await;
    let activities = activity_count(&server, &admin).await;
    let planned = gitops(&config, &repo, true);
    for line in [
        "+ team \"Workstations\"",
        "~ config: agent_options, org_info.contact_url, org_info.org_name",
        "~ global enroll secrets",
        "+ script \"update-linux-os.sh\" (global)",
        "+ script \"remove-non-root-sudoers-entries.sh\" (team \"Workstations\")",
        "+ policy \"Linux - Firewall enabled\" (global)",
        "+ policy \"Linux - No non-root users in sudoers\" (team \"Workstations\")",
        "+ policy \"Linux - Screen lock enabled\" (team \"Workstations\")",
        "- policy \"Made by hand\" (global)",
        "would be made",
    ] {
        assert!(planned.contains(line), "{line} in:\n{planned}");
    }
    assert_eq!(state(&server, &admin).await, before, "a dry run changes nothing");
    assert_eq!(activity_count(&server, &admin).await, activities);

    // The real run.
    let applied = gitops(&config, &repo, false);
    assert!(applied.contains("+ team \"Workstations\"") && applied.contains("change(s) made"), "{applied}");
    let (_, teams) = server.get("/api/v1/fleet/teams", &admin).await;
    let team = &teams["teams"][0];
    assert_eq!(team["name"], "Workstations");
    assert_eq!(team["secrets"][0]["secret"], "workstations-enroll-secret-1");
    assert_eq!(team["agent_options"]["config"]["options"]["distributed_interval"], 30);
    let team_id = team["id"].as_i64().unwrap();
    let (_, cfg) = server.get("/api/v1/fleet/config", &admin).await;
    assert_eq!(cfg["org_info"]["org_name"], "Acme Corp", "$ORG_NAME expanded");
    assert_eq!(cfg["agent_options"]["config"]["options"]["distributed_interval"], 10);
    let (_, secrets) = server.get("/api/v1/fleet/spec/enroll_secret", &admin).await;
    assert_eq!(secrets["spec"]["secrets"][0]["secret"], "acme-global-enroll-secret-1");
    let (_, global) = server.get("/api/v1/fleet/global/policies", &admin).await;
    assert_eq!(names(&global["policies"]), ["Linux - Firewall enabled"]);
    let (_, scripts) = server.get("/api/v1/fleet/scripts", &admin).await;
    assert_eq!(names(&scripts["scripts"]), ["update-linux-os.sh"]);
    let (_, policies) = server.get(&format!("/api/v1/fleet/teams/{team_id}/policies"), &admin).await;
    let mut team_names = names(&policies["policies"]);
    team_names.sort();
    assert_eq!(team_names, ["Linux - No non-root users in sudoers", "Linux - Screen lock enabled"]);
    let sudoers =
        policies["policies"].as_array().unwrap().iter().find(|p| p["name"] == "Linux - No non-root users in sudoers");
    assert_eq!(sudoers.unwrap()["run_script"]["name"], "remove-non-root-sudoers-entries.sh");

    // A second run changes nothing and records nothing.
    let applied_state = state(&server, &admin).await;
    let activities = activity_count(&server, &admin).await;
    let again = gitops(&config, &repo, false);
    assert!(again.trim_end().ends_with("no changes"), "{again}");
    assert_eq!(state(&server, &admin).await, applied_state);
    assert_eq!(activity_count(&server, &admin).await, activities, "nothing changed, nothing recorded");

    // A removed policy file: the dry run shows the delete and changes nothing; the run deletes it.
    std::fs::remove_file(repo.join("lib/linux/policies/screen-lock-enabled.yml")).unwrap();
    let team_file = repo.join("teams/workstations.yml");
    let text = std::fs::read_to_string(&team_file).unwrap();
    std::fs::write(&team_file, text.replace("  - path: ../lib/linux/policies/screen-lock-enabled.yml\n", "")).unwrap();
    let planned = gitops(&config, &repo, true);
    assert!(planned.contains("- policy \"Linux - Screen lock enabled\" (team \"Workstations\")"), "{planned}");
    assert!(planned.contains("1 change(s) would be made"), "only that: {planned}");
    assert_eq!(state(&server, &admin).await, applied_state, "a dry run changes nothing");
    let applied = gitops(&config, &repo, false);
    assert!(applied.contains("- policy \"Linux - Screen lock enabled\""), "{applied}");
    let (_, policies) = server.get(&format!("/api/v1/fleet/teams/{team_id}/policies"), &admin).await;
    assert_eq!(names(&policies["policies"]), ["Linux - No non-root users in sudoers"]);

    // A script edited in the repository is replaced, and its policy still runs it.
    let script = repo.join("lib/linux/scripts/remove-non-root-sudoers-entries.sh");
    std::fs::write(&script, "#!/bin/sh\necho cleaned again\n").unwrap();
    let planned = gitops(&config, &repo, true);
    assert!(planned.contains("~ script \"remove-non-root-sudoers-entries.sh\""), "{planned}");
    let applied = gitops(&config, &repo, false);
    assert!(applied.contains("~ script \"remove-non-root-sudoers-entries.sh\""), "{applied}");
    let (_, policies) = server.get(&format!("/api/v1/fleet/teams/{team_id}/policies"), &admin).await;
    assert_eq!(policies["policies"][0]["run_script"]["name"], "remove-non-root-sudoers-entries.sh");
    let (_, scripts) = server.get(&format!("/api/v1/fleet/scripts?team_id={team_id}"), &admin).await;
    let id = scripts["scripts"][0]["id"].as_i64().unwrap();
    assert_eq!(policies["policies"][0]["run_script"]["id"], id, "linked to the new upload");
    assert!(gitops(&config, &repo, false).trim_end().ends_with("no changes"));
}

const LABELS_DEFAULT: &str = "labels:
  - name: Kiosks
    label_membership_type: manual
    hosts: [kiosk-1]
  - path: ./lib/labels.yml
policies:
  - name: Builds are signed
    query: SELECT 1;
    labels_include_any: [Build servers, All Linux]
    labels_exclude_any: [Kiosks]
";

const LABELS_LIB: &str = "- name: Build servers
  query: SELECT 1 FROM file WHERE path = '/etc/build-server';
  label_membership_type: dynamic
- name: Modern Ubuntu
  criteria:
    os: {name: Ubuntu, min_version: '22.04'}
";

async fn labels_and_policies(server: &Server, admin: &str) -> Value {
    let (_, labels) = server.get("/api/v1/fleet/labels", admin).await;
    let (_, policies) = server.get("/api/v1/fleet/global/policies", admin).await;
    json!({"labels": labels, "policies": policies})
}

/// default.yml's `labels:`: created before the policies naming them, updated, and deleted when the files
/// no longer hold them (after the policies that named them changed); without the key, labels are left alone.
async fn manages_labels(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = login(&server, dir.path());
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("lib")).unwrap();
    std::fs::write(repo.join("default.yml"), LABELS_DEFAULT).unwrap();
    std::fs::write(repo.join("lib/labels.yml"), LABELS_LIB).unwrap();
    let admin = server.admin_token().await;
    let (status, _) =
        server.post("/api/v1/fleet/labels", &admin, json!({"name": "Made by hand", "query": "SELECT 1;"})).await;
    assert!(status.is_success());

    let before = labels_and_policies(&server, &admin).await;
    let planned = gitops(&config, &repo, true);
    for line in [
        "+ label \"Kiosks\"",
        "+ label \"Build servers\"",
        "+ label \"Modern Ubuntu\"",
        "+ policy \"Builds are signed\" (global)",
        "- label \"Made by hand\"",
        "5 change(s) would be made",
    ] {
        assert!(planned.contains(line), "{line} in:\n{planned}");
    }
    assert!(!planned.contains("All Hosts"), "built-in labels are never deleted: {planned}");
    assert_eq!(labels_and_policies(&server, &admin).await, before, "a dry run changes nothing");

    let applied = gitops(&config, &repo, false);
    assert!(applied.contains("5 change(s) made"), "{applied}");
    let (_, labels) = server.get("/api/v1/fleet/labels", &admin).await;
    let find = |name: &str| labels["labels"].as_array().unwrap().iter().find(|l| l["name"] == name).cloned();
    assert_eq!(find("Kiosks").unwrap()["label_membership_type"], "manual");
    assert_eq!(find("Build servers").unwrap()["label_membership_type"], "dynamic");
    assert_eq!(find("Modern Ubuntu").unwrap()["criteria"]["os"]["min_version"], "22.04");
    assert!(find("Made by hand").is_none() && find("All Hosts").is_some());
    let (_, policies) = server.get("/api/v1/fleet/global/policies", &admin).await;
    let policy = &policies["policies"][0];
    let mut included = names(&policy["labels_include_any"]);
    included.sort();
    assert_eq!(included, ["All Linux", "Build servers"]);
    assert_eq!(names(&policy["labels_exclude_any"]), ["Kiosks"]);

    // A second run changes nothing and records nothing.
    let applied_state = labels_and_policies(&server, &admin).await;
    let activities = activity_count(&server, &admin).await;
    assert!(gitops(&config, &repo, false).trim_end().ends_with("no changes"));
    assert_eq!(labels_and_policies(&server, &admin).await, applied_state);
    assert_eq!(activity_count(&server, &admin).await, activities);

    // A label removed from the files (and from the policy naming it) is deleted after the policy changes.
    let without_kiosks = LABELS_DEFAULT
        .replace("  - name: Kiosks\n    label_membership_type: manual\n    hosts: [kiosk-1]\n", "")
        .replace("    labels_exclude_any: [Kiosks]\n", "");
    std::fs::write(repo.join("default.yml"), &without_kiosks).unwrap();
    let planned = gitops(&config, &repo, true);
    assert!(planned.contains("~ policy \"Builds are signed\" (global)"), "{planned}");
    assert!(planned.contains("- label \"Kiosks\"") && planned.contains("2 change(s) would be made"), "{planned}");
    assert_eq!(labels_and_policies(&server, &admin).await, applied_state, "a dry run changes nothing");
    let applied = gitops(&config, &repo, false);
    assert!(applied.contains("- label \"Kiosks\""), "{applied}");
    let (_, labels) = server.get("/api/v1/fleet/labels", &admin).await;
    assert!(!names(&labels["labels"]).contains(&"Kiosks"));

    // A policy naming a label the files no longer hold would lose it in this very run: refused first.
    std::fs::write(
        repo.join("default.yml"),
        without_kiosks.replace("[Build servers, All Linux]", "[Build servers, Kiosks]"),
    )
    .unwrap();
    let before = labels_and_policies(&server, &admin).await;
    let mut refused = command(&config, &["gitops", "-f", repo.to_str().unwrap()]);
    refused.env("ORG_NAME", "Acme Corp");
    let stderr = common::failed(&run(refused, None));
    assert!(stderr.contains("default.yml:4:5:") && stderr.contains("names label \"Kiosks\""), "{stderr}");
    assert_eq!(labels_and_policies(&server, &admin).await, before, "nothing changed");

    // Without `labels:`, labels are not managed: one made by hand stays.
    let unmanaged = without_kiosks.split("policies:").nth(1).unwrap();
    std::fs::write(repo.join("default.yml"), format!("policies:{unmanaged}")).unwrap();
    let (status, _) =
        server.post("/api/v1/fleet/labels", &admin, json!({"name": "Made by hand", "query": "SELECT 1;"})).await;
    assert!(status.is_success());
    assert!(gitops(&config, &repo, false).trim_end().ends_with("no changes"));
    let (_, labels) = server.get("/api/v1/fleet/labels", &admin).await;
    assert!(names(&labels["labels"]).contains(&"Made by hand"));
}

herd_testkit::server_cases!(bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herdctl")); applies_a_fleet_repository, manages_labels);
