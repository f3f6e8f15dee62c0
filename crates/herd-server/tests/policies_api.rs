//! End-to-end: policies on the real `herd` binary — scheduling at check-in, ingestion, live counts, host
//! views, refetch (admin and device token), management API, activities.

use herd_testkit::{ENROLL_SECRET, Server, TestHost};
use reqwest::StatusCode;
use serde_json::{Value, json};

herd_testkit::server_cases!(
    results_flip_and_counts_are_right_after_every_write,
    editing_a_query_voids_answers_and_hands_it_out_again,
    admin_and_device_token_refetch_carry_every_policy,
    policy_validation_specs_roles_and_activities,
    deferral_settings_are_checked_by_field_and_round_trip,
);

/// The policies handed out, as `q(id)` names (sorted by name).
fn policy_queries(read: &Value) -> Vec<String> {
    let mut names: Vec<String> = herd_testkit::policy_queries(read).keys().map(|id| q(*id)).collect();
    names.sort();
    names
}

fn q(id: i64) -> String {
    format!("fleet_policy_query_{id}")
}

/// Writes policy answers: true = one row (pass), false = no row (fail), None = the query failed.
async fn answer(host: &TestHost, server: &Server, answers: &[(i64, Option<bool>)]) {
    let mut queries = serde_json::Map::new();
    let mut statuses = serde_json::Map::new();
    for (id, outcome) in answers {
        let rows = match outcome {
            Some(true) => json!([{"1": "1"}]),
            _ => json!([]),
        };
        queries.insert(q(*id), rows);
        statuses.insert(q(*id), json!(if outcome.is_some() { 0 } else { 1 }));
    }
    let (status, body) = host.write(server, Value::Object(queries), Value::Object(statuses)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
}

async fn counts(server: &Server, token: &str, path: &str) -> (i64, i64) {
    let (status, body) = server.get(path, token).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    (body["policy"]["passing_host_count"].as_i64().unwrap(), body["policy"]["failing_host_count"].as_i64().unwrap())
}

async fn activity_count(server: &Server, token: &str) -> usize {
    server.get("/api/v1/fleet/activities?per_page=10000", token).await.1["activities"].as_array().unwrap().len()
}

async fn host_id(server: &Server, token: &str, hostname: &str) -> i64 {
    let (_, body) = server.get(&format!("/api/v1/fleet/hosts/identifier/{hostname}"), token).await;
    body["host"]["id"].as_i64().unwrap()
}

async fn responses(server: &Server, token: &str, id: i64) -> (Vec<(i64, String)>, i64) {
    let (_, body) = server.get(&format!("/api/v1/fleet/hosts/{id}"), token).await;
    let policies = body["host"]["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_i64().unwrap(), p["response"].as_str().unwrap().to_string()))
        .collect();
    (policies, body["host"]["issues"]["failing_policies_count"].as_i64().unwrap())
}

async fn results_flip_and_counts_are_right_after_every_write(server: Server) {
    let admin = server.admin_token().await;
    let (_, team) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Laptops"})).await;
    let team_id = team["team"]["id"].as_i64().unwrap();
    let team_secret = team["team"]["secrets"][0]["secret"].as_str().unwrap().to_string();
    let (status, global) = server
        .post(
            "/api/v1/fleet/global/policies",
            &admin,
            json!({"name": "Firewall on", "query": "SELECT 1 FROM iptables;", "critical": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{global}");
    let g = global["policy"]["id"].as_i64().unwrap();
    assert_eq!(global["policy"]["author_email"], "admin@herd.local");
    assert_eq!(global["policy"]["passing_host_count"], 0);
    let (status, team_policy) = server
        .post(&format!("/api/v1/fleet/teams/{team_id}/policies"), &admin, json!({"name": "Disk encrypted", "query": "SELECT 1 FROM disk_encryption WHERE encrypted = 1;", "platform": "linux"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{team_policy}");
    let t = team_policy["policy"]["id"].as_i64().unwrap();
    assert_eq!(team_policy["policy"]["team_id"], team_id);

    let mut a = TestHost::new("alpha");
    a.enroll(&server, ENROLL_SECRET).await;
    let mut b = TestHost::new("bravo");
    b.enroll(&server, &team_secret).await;
    let (_, read_a) = a.read(&server).await;
    let (_, read_b) = b.read(&server).await;
    assert_eq!(policy_queries(&read_a), [q(g)], "the team policy is not in alpha's scope");
    assert_eq!(policy_queries(&read_b), {
        let mut both = vec![q(g), q(t)];
        both.sort();
        both
    });
    assert_eq!(herd_testkit::policy_sql(&read_a, g).unwrap(), "SELECT 1 FROM iptables;");
    let (_, again) = a.read(&server).await;
    assert!(policy_queries(&again).is_empty(), "not handed out twice while the answer is on its way");
    let (a_id, b_id) = (host_id(&server, &admin, "alpha").await, host_id(&server, &admin, "bravo").await);
    let global_path = format!("/api/v1/fleet/global/policies/{g}");
    let team_path = format!("/api/v1/fleet/teams/{team_id}/policies/{t}");

    // Each write is visible at once: no job, no wait.
    answer(&a, &server, &[(g, Some(true))]).await;
    assert_eq!(counts(&server, &admin, &global_path).await, (1, 0));
    answer(&b, &server, &[(g, Some(false)), (t, Some(true))]).await;
    assert_eq!(counts(&server, &admin, &global_path).await, (1, 1));
    assert_eq!(counts(&server, &admin, &team_path).await, (1, 0));
    assert_eq!(responses(&server, &admin, a_id).await, (vec![(g, "pass".into())], 0));
    assert_eq!(responses(&server, &admin, b_id).await, (vec![(g, "fail".into()), (t, "pass".into())], 1));
    let (_, listed) = server.get("/api/v1/fleet/hosts?order_key=hostname", &admin).await;
    assert_eq!(listed["hosts"][1]["issues"]["failing_policies_count"], 1);
    let (_, failing) = server.get(&format!("/api/v1/fleet/hosts?policy_id={g}&policy_response=failing"), &admin).await;
    assert_eq!(failing["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(failing["hosts"][0]["hostname"], "bravo");
    let (_, passing) =
        server.get(&format!("/api/v1/fleet/hosts/count?policy_id={g}&policy_response=passing"), &admin).await;
    assert_eq!(passing["count"], 1);

    // Team view: the global policy counts the team's hosts only.
    let (_, team_view) = server.get(&format!("/api/v1/fleet/teams/{team_id}/policies"), &admin).await;
    assert_eq!(team_view["policies"][0]["id"], t);
    assert_eq!(team_view["inherited_policies"][0]["id"], g);
    assert_eq!(team_view["inherited_policies"][0]["passing_host_count"], 0);
    assert_eq!(team_view["inherited_policies"][0]["failing_host_count"], 1);
    let (_, merged) = server.get(&format!("/api/v1/fleet/teams/{team_id}/policies?merge_inherited=true"), &admin).await;
    assert_eq!(merged["policies"].as_array().unwrap().len(), 2);
    assert!(merged.get("inherited_policies").is_none());

    // Flip back and forth.
    answer(&b, &server, &[(g, Some(true))]).await;
    assert_eq!(counts(&server, &admin, &global_path).await, (2, 0));
    answer(&a, &server, &[(g, Some(false))]).await;
    assert_eq!(counts(&server, &admin, &global_path).await, (1, 1));
    answer(&a, &server, &[(g, None)]).await;
    assert_eq!(counts(&server, &admin, &global_path).await, (1, 0), "an errored query is no answer");
    assert_eq!(responses(&server, &admin, a_id).await, (vec![(g, String::new())], 0));

    // Moving bravo out of the team: its team-policy answer leaves the counts, its global one moves.
    server.post("/api/v1/fleet/hosts/transfer", &admin, json!({"team_id": null, "hosts": [b_id]})).await;
    assert_eq!(counts(&server, &admin, &team_path).await, (0, 0));
    assert_eq!(counts(&server, &admin, &global_path).await, (1, 0));
    let (_, team_view) = server.get(&format!("/api/v1/fleet/teams/{team_id}/policies"), &admin).await;
    assert_eq!(team_view["inherited_policies"][0]["passing_host_count"], 0);
    // Deleting a host takes its answers out of the counts.
    server.delete(&format!("/api/v1/fleet/hosts/{b_id}"), &admin).await;
    assert_eq!(counts(&server, &admin, &global_path).await, (0, 0));
    let (_, policy) = server.get(&global_path, &admin).await;
    assert!(policy["policy"]["host_count_updated_at"].is_string());
}

async fn editing_a_query_voids_answers_and_hands_it_out_again(server: Server) {
    let admin = server.admin_token().await;
    let (_, created) =
        server.post("/api/v1/fleet/global/policies", &admin, json!({"name": "SSH off", "query": "SELECT 1;"})).await;
    let id = created["policy"]["id"].as_i64().unwrap();
    let mut host = TestHost::new("edited");
    host.enroll(&server, ENROLL_SECRET).await;
    let (_, read) = host.read(&server).await;
    assert_eq!(policy_queries(&read), [q(id)]);
    host.answer_vitals(&server, &read).await;
    answer(&host, &server, &[(id, Some(true))]).await;
    let path = format!("/api/v1/fleet/global/policies/{id}");
    assert_eq!(counts(&server, &admin, &path).await, (1, 0));
    assert!(policy_queries(&host.read(&server).await.1).is_empty(), "fresh answer: not due");

    // Editing the description keeps answers; editing the query voids them.
    let (status, _) = server.patch(&path, &admin, json!({"description": "sshd must not run"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counts(&server, &admin, &path).await, (1, 0));
    let (status, edited) =
        server.patch(&path, &admin, json!({"query": "SELECT 1 FROM processes WHERE name = 'sshd';"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (edited["policy"]["passing_host_count"].as_i64(), edited["policy"]["failing_host_count"].as_i64()),
        (Some(0), Some(0))
    );
    let host_id = host_id(&server, &admin, "edited").await;
    assert_eq!(responses(&server, &admin, host_id).await, (vec![(id, String::new())], 0));
    let (_, read) = host.read(&server).await;
    assert_eq!(policy_queries(&read), [q(id)], "the edited policy is due at once");
    assert_eq!(herd_testkit::policy_sql(&read, id).unwrap(), "SELECT 1 FROM processes WHERE name = 'sshd';");
    answer(&host, &server, &[(id, Some(false))]).await;
    assert_eq!(counts(&server, &admin, &path).await, (0, 1));

    // Deleting the policy: gone from host views, not handed out.
    let (status, body) = server.post("/api/v1/fleet/global/policies/delete", &admin, json!({"ids": [id]})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"deleted": 1})));
    assert_eq!(responses(&server, &admin, host_id).await, (vec![], 0));
    assert_eq!(server.get(&path, &admin).await.0, StatusCode::NOT_FOUND);
}

async fn admin_and_device_token_refetch_carry_every_policy(server: Server) {
    let admin = server.admin_token().await;
    let mut ids = Vec::new();
    for name in ["p1", "p2", "p3"] {
        let (_, created) =
            server.post("/api/v1/fleet/global/policies", &admin, json!({"name": name, "query": "SELECT 1;"})).await;
        ids.push(created["policy"]["id"].as_i64().unwrap());
    }
    let mut host = TestHost::new("refetcher");
    host.enroll(&server, ENROLL_SECRET).await;
    let (_, read) = host.read(&server).await;
    host.answer_vitals(&server, &read).await;
    answer(&host, &server, &ids.iter().map(|id| (*id, Some(true))).collect::<Vec<_>>()).await;
    assert_eq!(host.read(&server).await.1, json!({"queries": {}}));
    let id = host_id(&server, &admin, "refetcher").await;

    // Admin refetch.
    server.post(&format!("/api/v1/fleet/hosts/{id}/refetch"), &admin, json!({})).await;
    let (_, read) = host.read(&server).await;
    assert_eq!(policy_queries(&read), ids.iter().map(|i| q(*i)).collect::<Vec<_>>());
    assert!(read["queries"].get("fleet_detail_query_os_version").is_some(), "and every vital");
    host.answer_vitals(&server, &read).await;
    answer(&host, &server, &ids.iter().map(|id| (*id, Some(true))).collect::<Vec<_>>()).await;
    assert_eq!(host.read(&server).await.1, json!({"queries": {}}));

    // The agent registers a device token; seed 000's curl line then triggers a refetch.
    let token = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let (status, body) = server
        .osquery("/api/fleet/orbit/device_token", json!({"orbit_node_key": host.node_key, "device_auth_token": token}))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let response = server
        .client
        .post(format!("{}/api/latest/fleet/device/{token}/refetch", server.url))
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, read) = host.read(&server).await;
    assert_eq!(policy_queries(&read).len(), 3, "device refetch: every policy at the next check-in");

    // Rotation: the previous token still works, the one before it does not.
    let second = "5e8d2c1b-0a9f-4e7d-b6c5-4a3b2c1d0e9f";
    let third = "7f6e5d4c-3b2a-4190-8f7e-6d5c4b3a2918";
    for t in [second, third] {
        let (status, _) = server
            .osquery("/api/fleet/orbit/device_token", json!({"node_key": host.node_key, "device_auth_token": t}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let refetch = |t: &str| server.client.post(format!("{}/api/latest/fleet/device/{t}/refetch", server.url)).send();
    assert_eq!(refetch(third).await.unwrap().status(), StatusCode::OK);
    assert_eq!(refetch(second).await.unwrap().status(), StatusCode::OK);
    let stale = refetch(token).await.unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    let body: Value = stale.json().await.unwrap();
    assert!(body["message"].is_string());
    let (status, _) = server
        .osquery("/api/fleet/orbit/device_token", json!({"node_key": host.node_key, "device_auth_token": "short"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) =
        server.osquery("/api/fleet/orbit/device_token", json!({"node_key": "bogus", "device_auth_token": token})).await;
    assert_eq!((status, &body["node_invalid"]), (StatusCode::UNAUTHORIZED, &json!(true)));
}

async fn policy_validation_specs_roles_and_activities(server: Server) {
    let admin = server.admin_token().await;
    let (_, team) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Servers"})).await;
    let team_id = team["team"]["id"].as_i64().unwrap();
    server.post("/api/v1/fleet/global/policies", &admin, json!({"name": "Taken", "query": "SELECT 1;"})).await;
    let cases = [
        ("/api/v1/fleet/global/policies".to_string(), json!({"name": "", "query": "SELECT 1;"}), "name"),
        ("/api/v1/fleet/global/policies".to_string(), json!({"name": "x", "query": "  "}), "query"),
        ("/api/v1/fleet/global/policies".to_string(), json!({"name": "x"}), "query"),
        ("/api/v1/fleet/global/policies".to_string(), json!({"name": "Taken", "query": "SELECT 2;"}), "name"),
        (
            "/api/v1/fleet/global/policies".to_string(),
            json!({"name": "x", "query": "SELECT 1;", "platform": "linux,beos"}),
            "platform",
        ),
        (
            "/api/v1/fleet/global/policies".to_string(),
            json!({"name": "x", "query": "SELECT 1;", "interval": 0}),
            "interval",
        ),
        (
            "/api/v1/fleet/global/policies".to_string(),
            json!({"name": "x", "query": "SELECT 1;", "critical": "yes"}),
            "critical",
        ),
        (
            format!("/api/v1/fleet/teams/{team_id}/policies"),
            json!({"name": "x", "query": "SELECT 1;", "team_id": 999}),
            "team_id",
        ),
    ];
    for (path, body, field) in cases {
        let (status, reply) = server.post(&path, &admin, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {reply}");
        assert_eq!(reply["errors"][0]["name"], field, "{body} → {reply}");
    }
    assert_eq!(
        server.post("/api/v1/fleet/teams/999/policies", &admin, json!({"name": "x", "query": "SELECT 1;"})).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = server
        .post(
            &format!("/api/v1/fleet/teams/{team_id}/policies"),
            &admin,
            json!({"name": "Taken", "query": "SELECT 1;"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "names are unique per scope, not across scopes");
    let (_, count) = server.get("/api/v1/fleet/policies/count", &admin).await;
    assert_eq!(count["count"], 1);

    // Apply by name, Fleet's spec format; applying the same specs twice changes nothing.
    let specs = json!({"specs": [
        {"name": "Gatekeeper", "query": "SELECT 1 FROM gatekeeper WHERE assessments_enabled = 1;", "platform": "darwin", "critical": true},
        {"name": "Team rule", "query": "SELECT 1;", "team": "Servers", "description": "d"}
    ]});
    let (status, body) = server.post("/api/v1/fleet/spec/policies", &admin, specs.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["policies"][0], json!({"name": "Gatekeeper", "outcome": "created"}), "herd says what it did");
    let (_, first) = server.get("/api/v1/fleet/global/policies", &admin).await;
    let recorded = activity_count(&server, &admin).await;
    let (status, body) = server.post("/api/v1/fleet/spec/policies", &admin, specs).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["policies"][1], json!({"name": "Team rule", "outcome": "unchanged"}));
    let (_, second) = server.get("/api/v1/fleet/global/policies", &admin).await;
    assert_eq!(first, second, "re-applying identical specs changes nothing");
    assert_eq!(activity_count(&server, &admin).await, recorded, "and records nothing");
    // A dry run answers what would change and changes nothing.
    let edit = json!({"specs": [{"name": "Gatekeeper", "query": "SELECT 3;", "platform": "darwin"}]});
    let (status, body) = server.post("/api/v1/fleet/spec/policies?dry_run=true", &admin, edit).await;
    assert_eq!((status, &body["policies"][0]["outcome"]), (StatusCode::OK, &json!("updated")), "{body}");
    assert_eq!(server.get("/api/v1/fleet/global/policies", &admin).await.1, first);
    assert_eq!(activity_count(&server, &admin).await, recorded);
    let gatekeeper = second["policies"].as_array().unwrap().iter().find(|p| p["name"] == "Gatekeeper").unwrap().clone();
    assert_eq!((gatekeeper["platform"].as_str(), gatekeeper["critical"].as_bool()), (Some("darwin"), Some(true)));
    let updated = json!({"specs": [{"name": "Gatekeeper", "query": "SELECT 2;", "platform": "darwin"}]});
    server.post("/api/v1/fleet/spec/policies", &admin, updated).await;
    let (_, after) = server.get(&format!("/api/v1/fleet/global/policies/{}", gatekeeper["id"]), &admin).await;
    assert_eq!(after["policy"]["query"], "SELECT 2;");
    assert_eq!(after["policy"]["critical"], false);
    let bad =
        json!({"specs": [{"name": "ok", "query": "SELECT 1;"}, {"name": "y", "query": "SELECT 1;", "team": "Nope"}]});
    let (status, reply) = server.post("/api/v1/fleet/spec/policies", &admin, bad).await;
    assert_eq!((status, &reply["errors"][0]["name"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("specs[1].team")));
    assert_eq!(server.get("/api/v1/fleet/policies/count", &admin).await.1["count"], 2, "nothing half-applied");

    // Roles.
    let observer = server.user_token(&admin, "obs@example.com", "observer", None).await;
    let team_maint = server.user_token(&admin, "tm@example.com", "maintainer", Some(team_id)).await;
    assert_eq!(server.get("/api/v1/fleet/global/policies", &observer).await.0, StatusCode::OK);
    let body = json!({"name": "new", "query": "SELECT 1;"});
    assert_eq!(server.post("/api/v1/fleet/global/policies", &observer, body.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(server.post("/api/v1/fleet/global/policies", &team_maint, body.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(server.get("/api/v1/fleet/global/policies", &team_maint).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        server.post(&format!("/api/v1/fleet/teams/{team_id}/policies"), &team_maint, body).await.0,
        StatusCode::OK
    );

    // Activities, newest first, with their actors.
    let (status, feed) = server.get("/api/v1/fleet/activities?per_page=100", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> = feed["activities"].as_array().unwrap().iter().map(|a| a["type"].as_str().unwrap()).collect();
    for kind in ["created_team", "created_policy", "applied_spec_policy", "user_logged_in"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert_eq!(kinds[0], "created_policy", "newest first");
    assert_eq!(feed["activities"][0]["actor_email"], "tm@example.com");
    assert_eq!(feed["activities"][0]["details"]["policy_name"], "new");
    let (_, page) = server.get("/api/v1/fleet/activities?per_page=1", &admin).await;
    assert_eq!(page["meta"]["has_next_results"], true);
    let taken = server.get("/api/v1/fleet/global/policies", &admin).await.1["policies"][0]["id"].as_i64().unwrap();
    server.patch(&format!("/api/v1/fleet/global/policies/{taken}"), &admin, json!({"name": "Renamed"})).await;
    server.post("/api/v1/fleet/global/policies/delete", &admin, json!({"ids": [taken]})).await;
    let (_, feed) = server.get("/api/v1/fleet/activities?per_page=2", &admin).await;
    assert_eq!(feed["activities"][0]["type"], "deleted_policy");
    assert_eq!(feed["activities"][0]["details"], json!({"policy_id": taken, "policy_name": "Renamed"}));
    assert_eq!(feed["activities"][1]["type"], "edited_policy");
    let (status, reply) = server.post("/api/v1/fleet/global/policies/delete", &admin, json!({"ids": [424242]})).await;
    assert_eq!((status, &reply["errors"][0]["name"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("ids")));
}

/// Deferral settings through REST and specs: each mistake is a 422 naming the field, nothing is saved; good
/// settings come back as given; a spec names its script.
async fn deferral_settings_are_checked_by_field_and_round_trip(server: Server) {
    let admin = server.admin_token().await;
    let script = server.script_id(&admin, "restart.sh", "echo restarting\n").await;
    let policy = |deferral: Value| json!({"name": "Needs restart", "query": "SELECT 1;", "script_id": script, "deferral": deferral});
    let past = "2001-01-01T00:00:00Z";
    let cases = [
        (json!({"options": ["0h"], "deadline_after": "1d"}), "deferral.options"),
        (json!({"options": ["-1h"], "deadline_after": "1d"}), "deferral.options"),
        (json!({"options": ["2d"], "deadline_after": "1d"}), "deferral.options"),
        (json!({"options": ["1h"], "deadline_after": "0h"}), "deferral.deadline_after"),
        (json!({"options": ["1h"], "deadline_after": "1d", "max_deferrals": -1}), "deferral.max_deferrals"),
        (json!({"options": ["1h"], "deadline_at": past}), "deferral.deadline_at"),
        (json!({"options": ["1h"]}), "deferral"),
        (json!({"options": ["1h"], "deadline_after": "1d", "message": "by {when}"}), "deferral.message"),
        (json!({"options": ["1h"], "deadline_after": "1d", "when_no_user": "sometimes"}), "deferral"),
        (json!({"options": ["1h"], "deadline_after": "1d", "colour": "red"}), "deferral"),
    ];
    for (deferral, field) in cases {
        let (status, reply) = server.post("/api/v1/fleet/global/policies", &admin, policy(deferral.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{deferral} → {reply}");
        assert!(reply["errors"][0]["name"].as_str().unwrap().starts_with(field), "{deferral} → {reply}");
        assert!(!reply["errors"][0]["reason"].as_str().unwrap_or_default().is_empty(), "a reason: {reply}");
    }
    let no_script = json!({"name": "x", "query": "SELECT 1;", "deferral": {"options": ["1h"], "deadline_after": "1d"}});
    let (status, reply) = server.post("/api/v1/fleet/global/policies", &admin, no_script).await;
    assert_eq!((status, &reply["errors"][0]["name"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("deferral")));
    assert_eq!(server.get("/api/v1/fleet/policies/count", &admin).await.1["count"], 0, "nothing saved");

    let good = json!({
        "title": "Restart needed", "message": "{org_name} restarts {policy_name} by {deadline}.",
        "options": ["1h", "4h", "tomorrow 09:00"], "max_deferrals": 3, "deadline_after": "3d",
        "blocking_processes": ["zoom", "Keynote"], "when_no_user": "wait",
    });
    let (status, created) = server.post("/api/v1/fleet/global/policies", &admin, policy(good.clone())).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["policy"]["id"].as_i64().unwrap();
    let (_, read) = server.get(&format!("/api/v1/fleet/global/policies/{id}"), &admin).await;
    for key in ["title", "message", "options", "max_deferrals", "deadline_after", "blocking_processes", "when_no_user"]
    {
        assert_eq!(read["policy"]["deferral"][key], good[key], "{key}: {read}");
    }
    // A bad edit is refused and leaves the settings as they were; null removes them.
    let path = format!("/api/v1/fleet/global/policies/{id}");
    let (status, _) = server.patch(&path, &admin, json!({"deferral": {"options": ["1h"], "deadline_at": past}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(server.get(&path, &admin).await.1["policy"]["deferral"]["deadline_after"], "3d");
    let (status, _) = server.patch(&path, &admin, json!({"script_id": null})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a deferral needs its script");
    let (status, cleared) = server.patch(&path, &admin, json!({"deferral": null})).await;
    assert_eq!((status, &cleared["policy"]["deferral"]), (StatusCode::OK, &Value::Null));

    // Specs name the script; a wrong name or bad settings name the spec's field.
    let spec = |script: &str, deferral: Value| json!({"specs": [{"name": "Needs restart", "query": "SELECT 1;", "script": script, "deferral": deferral}]});
    let (status, reply) = server.post("/api/v1/fleet/spec/policies", &admin, spec("nope.sh", good.clone())).await;
    assert_eq!((status, &reply["errors"][0]["name"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("specs[0].script")));
    let (status, reply) = server
        .post(
            "/api/v1/fleet/spec/policies",
            &admin,
            spec("restart.sh", json!({"options": ["5d"], "deadline_after": "1d"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert!(reply["errors"][0]["name"].as_str().unwrap().contains("deferral.options"), "{reply}");
    let (status, reply) = server.post("/api/v1/fleet/spec/policies", &admin, spec("restart.sh", good.clone())).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let read = server.get(&path, &admin).await.1;
    assert_eq!(
        (&read["policy"]["run_script"]["id"], &read["policy"]["deferral"]["options"]),
        (&json!(script), &good["options"])
    );
}
