//! End to end, labels over Fleet's REST API and the osquery TLS API on the real `herd` binary (both backends):
//! dynamic labels handed out and answered (errors kept), manual labels by hostname, a label-scoped policy
//! handed out and counted only for members, and every refusal the issue lists.

use herd_testkit::{ENROLL_SECRET, Server, TestHost, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

herd_testkit::server_cases!(dynamic_and_manual_labels_scope_a_policy, refusals_and_labels_left_without_an_input);

const PATIENCE: Duration = Duration::from_secs(30);

fn label_query(id: i64) -> String {
    format!("fleet_label_query_{id}")
}

/// Names of the queries a check-in handed out.
fn handed_out(read: &Value) -> Vec<String> {
    read["queries"].as_object().map(|q| q.keys().cloned().collect()).unwrap_or_default()
}

fn policy_query_of(read: &Value, policy: i64) -> bool {
    handed_out(read).iter().any(|name| name.starts_with(&format!("fleet_policy_query_{policy}_")))
}

async fn created(server: &Server, admin: &str, path: &str, body: Value, key: &str) -> i64 {
    let (status, reply) = server.post(path, admin, body).await;
    assert_eq!(status, StatusCode::OK, "{path}: {reply}");
    reply[key]["id"].as_i64().unwrap()
}

async fn host_id(server: &Server, admin: &str, hostname: &str) -> i64 {
    let (_, hosts) = server.get(&format!("/api/v1/fleet/hosts?query={hostname}"), admin).await;
    hosts["hosts"][0]["id"].as_i64().unwrap()
}

async fn host_labels(server: &Server, admin: &str, id: i64) -> Vec<Value> {
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{id}"), admin).await;
    host["host"]["labels"].as_array().cloned().unwrap_or_default()
}

async fn counts(server: &Server, admin: &str, policy: i64) -> (i64, i64) {
    let (_, body) = server.get(&format!("/api/v1/fleet/global/policies/{policy}"), admin).await;
    (body["policy"]["passing_host_count"].as_i64().unwrap(), body["policy"]["failing_host_count"].as_i64().unwrap())
}

async fn dynamic_and_manual_labels_scope_a_policy(server: Server) {
    let admin = server.admin_token().await;
    let labels = "/api/v1/fleet/labels";
    let dynamic =
        created(&server, &admin, labels, json!({"name": "Has x", "query": "SELECT 1 FROM x;"}), "label").await;
    let mut alpha = TestHost::new("alpha");
    alpha.enroll(&server, ENROLL_SECRET).await;
    let mut bravo = TestHost::new("bravo");
    bravo.enroll(&server, ENROLL_SECRET).await;
    let manual =
        created(&server, &admin, labels, json!({"name": "Bravo only", "hosts": ["bravo", "not-enrolled"]}), "label")
            .await;
    let (a_id, b_id) = (host_id(&server, &admin, "alpha").await, host_id(&server, &admin, "bravo").await);
    let (_, listed) = server.get(&format!("/api/v1/fleet/labels/{manual}"), &admin).await;
    assert_eq!(listed["label"]["host_ids"], json!([b_id]), "manual members by hostname; unknown names ignored");
    let (_, members) = server.get(&format!("/api/v1/fleet/hosts?label_id={manual}"), &admin).await;
    assert_eq!(members["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(members["hosts"][0]["id"], b_id);

    // The dynamic label is handed out with its SQL; alpha answers rows (member), bravo an error.
    let (_, read) = alpha.read(&server).await;
    assert_eq!(read["queries"][label_query(dynamic)], "SELECT 1 FROM x;", "{read}");
    let (status, _) =
        alpha.write(&server, json!({label_query(dynamic): [{"1": "1"}]}), json!({label_query(dynamic): 0})).await;
    assert_eq!(status, StatusCode::OK);
    bravo.read(&server).await;
    let body = json!({"node_key": bravo.node_key, "queries": {label_query(dynamic): []},
        "statuses": {label_query(dynamic): 1}, "messages": {label_query(dynamic): "no such table: x"}});
    let (status, _) = server.osquery("/api/osquery/distributed/write", body).await;
    assert_eq!(status, StatusCode::OK);
    let alpha_labels = host_labels(&server, &admin, a_id).await;
    assert!(alpha_labels.iter().any(|l| l["id"] == dynamic && l.get("error").is_none()), "{alpha_labels:?}");
    let bravo_labels = host_labels(&server, &admin, b_id).await;
    let errored = bravo_labels.iter().find(|l| l["id"] == dynamic).expect("the error is shown");
    assert_eq!(errored["error"], "no such table: x");
    let (_, members) = server.get(&format!("/api/v1/fleet/labels/{dynamic}/hosts"), &admin).await;
    assert_eq!(members["hosts"].as_array().unwrap().len(), 1, "an error is not membership: {members}");

    // A policy scoped to the dynamic label: handed out to alpha only, counted for alpha only.
    let body = json!({"name": "scoped", "query": "SELECT 1;", "labels_include_any": ["Has x"]});
    let policy = created(&server, &admin, "/api/v1/fleet/global/policies", body, "policy").await;
    let (_, read) = alpha.read(&server).await;
    assert!(policy_query_of(&read, policy), "{read}");
    let (_, read) = bravo.read(&server).await;
    assert!(!policy_query_of(&read, policy), "bravo is outside the scope: {read}");
    let name = handed_out(&alpha.read(&server).await.1);
    assert!(name.is_empty(), "not handed out twice: {name:?}");
    let answer = |rows: Value| {
        let mut queries = serde_json::Map::new();
        queries.insert(format!("fleet_policy_query_{policy}"), rows);
        Value::Object(queries)
    };
    alpha.write(&server, answer(json!([{"1": "1"}])), json!({})).await;
    // bravo answers anyway (an old agent, a stale plan): ignored, never counted.
    bravo.write(&server, answer(json!([{"1": "1"}])), json!({})).await;
    assert_eq!(counts(&server, &admin, policy).await, (1, 0));

    // alpha leaves the label: its answer leaves the counts in the same transaction.
    alpha.write(&server, json!({label_query(dynamic): []}), json!({label_query(dynamic): 0})).await;
    assert_eq!(counts(&server, &admin, policy).await, (0, 0));
    assert!(!host_labels(&server, &admin, a_id).await.iter().any(|l| l["id"] == dynamic));
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{a_id}"), &admin).await;
    let listed = host["host"]["policies"].as_array().unwrap();
    assert!(!listed.iter().any(|p| p["id"] == policy), "out of scope, not in the host's view: {listed:?}");

    // Built-in labels follow the platform the hosts report (Ubuntu), decided by herd.
    let (_, all) = server.get("/api/v1/fleet/labels", &admin).await;
    let ubuntu = all["labels"].as_array().unwrap().iter().find(|l| l["name"] == "Ubuntu Linux").unwrap().clone();
    assert_eq!(ubuntu["label_type"], "builtin");
    let ubuntu_id = ubuntu["id"].as_i64().unwrap();
    eventually(PATIENCE, "both hosts in Ubuntu Linux", || async {
        let (_, members) = server.get(&format!("/api/v1/fleet/hosts?label_id={ubuntu_id}"), &admin).await;
        (members["hosts"].as_array()?.len() == 2).then_some(())
    })
    .await;
}

async fn refusals_and_labels_left_without_an_input(server: Server) {
    let admin = server.admin_token().await;
    let labels = "/api/v1/fleet/labels";
    let refused = |reply: &Value| (reply["errors"][0]["name"].clone(), reply["errors"][0]["reason"].to_string());
    let x =
        created(&server, &admin, "/api/v1/fleet/global/policies", json!({"name": "x", "query": "SELECT 1;"}), "policy")
            .await;
    let cases = [
        (json!({"name": "a", "criteria": {"all": [{"platform": "beos"}]}}), "criteria", "criteria.all[0].platform"),
        (
            json!({"name": "a", "criteria": {"policy": {"id": 999_999, "result": "failing"}}}),
            "criteria",
            "does not exist",
        ),
        (json!({"name": "a", "query": "SELECT 1;", "hosts": ["h"]}), "query", "Only one of"),
        (json!({"name": "a", "hosts": ["h"], "host_ids": [1]}), "hosts", "Only one of either"),
        (json!({"name": "a", "query": "SELECT 1;", "platform": "beos"}), "platform", "invalid platform"),
        (json!({"name": "All Hosts", "query": "SELECT 1;"}), "name", "built-in"),
        (json!({"name": "", "query": "SELECT 1;"}), "name", "empty"),
        (
            json!({"name": "a", "query": "SELECT 1;", "label_membership_type": "manual"}),
            "label_membership_type",
            "match",
        ),
    ];
    for (body, field, reason) in cases {
        let (status, reply) = server.post(labels, &admin, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {reply}");
        let (name, why) = refused(&reply);
        assert!(name == field && why.contains(reason), "{body} → {reply}");
    }
    let (status, _) = server.post(labels, &admin, json!({"name": "dup", "query": "SELECT 1;"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, reply) = server.post(labels, &admin, json!({"name": "dup", "query": "SELECT 2;"})).await;
    assert_eq!((status, refused(&reply).0), (StatusCode::UNPROCESSABLE_ENTITY, json!("name")));

    // Built-in labels are neither edited nor deleted.
    let (status, reply) = server.patch("/api/v1/fleet/labels/1", &admin, json!({"description": "mine"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    let (status, reply) = server.delete("/api/v1/fleet/labels/id/1", &admin).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");

    // Scopes: unknown names, two include lists, a label both in and out.
    let scoped = |scope: Value| {
        let mut body = json!({"name": "scoped", "query": "SELECT 1;"});
        body.as_object_mut().unwrap().extend(scope.as_object().unwrap().clone());
        body
    };
    for (scope, field) in [
        (json!({"labels_include_any": ["nope"]}), "labels_include_any"),
        (json!({"labels_include_any": ["dup"], "labels_include_all": ["dup"]}), "labels_include_all"),
        (json!({"labels_include_any": ["dup"], "labels_exclude_any": ["dup"]}), "labels_exclude_any"),
    ] {
        let (status, reply) = server.post("/api/v1/fleet/global/policies", &admin, scoped(scope.clone())).await;
        assert_eq!((status, refused(&reply).0), (StatusCode::UNPROCESSABLE_ENTITY, json!(field)), "{scope}: {reply}");
    }

    // A criteria label on x; a policy scoped by it. Deleting the label is refused with its users, then forced.
    let criteria = json!({"name": "Failing x", "criteria": {"policy": {"id": x, "result": "failing"}}});
    let failing_x = created(&server, &admin, labels, criteria, "label").await;
    let body = json!({"name": "after x", "query": "SELECT 1;", "labels_include_any": ["Failing x"]});
    let after = created(&server, &admin, "/api/v1/fleet/global/policies", body, "policy").await;
    let (status, reply) = server.delete(&format!("/api/v1/fleet/labels/id/{failing_x}"), &admin).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert!(reply.to_string().contains("after x"), "{reply}");
    // A label naming x's result, while x is scoped by it: a cycle.
    let (status, reply) = server
        .patch(&format!("/api/v1/fleet/global/policies/{x}"), &admin, json!({"labels_exclude_any": ["Failing x"]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert!(reply.to_string().contains("cycle"), "{reply}");

    // x deleted later: the label is left empty, with the reason.
    let mut host = TestHost::new("charlie");
    host.enroll(&server, ENROLL_SECRET).await;
    host.read(&server).await;
    let mut queries = serde_json::Map::new();
    queries.insert(format!("fleet_policy_query_{x}"), json!([]));
    host.write(&server, Value::Object(queries), json!({})).await;
    let (_, label) = server.get(&format!("/api/v1/fleet/labels/{failing_x}"), &admin).await;
    assert_eq!(label["label"]["host_count"], 1, "failing x: a member, at once: {label}");
    let (status, _) = server.post("/api/v1/fleet/global/policies/delete", &admin, json!({"ids": [x]})).await;
    assert_eq!(status, StatusCode::OK);
    let label = eventually(PATIENCE, "the label emptied", || async {
        let (_, label) = server.get(&format!("/api/v1/fleet/labels/{failing_x}"), &admin).await;
        (label["label"]["host_count"] == 0).then_some(label)
    })
    .await;
    assert!(label["label"]["broken_reason"].as_str().unwrap().contains(&format!("policy {x}")), "{label}");

    // Forced: the label goes, and the policy it scoped loses that scope.
    let (status, _) = server.delete(&format!("/api/v1/fleet/labels/id/{failing_x}?force=true"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    let (_, policy) = server.get(&format!("/api/v1/fleet/global/policies/{after}"), &admin).await;
    assert!(policy["policy"].get("labels_include_any").is_none(), "{policy}");
}
