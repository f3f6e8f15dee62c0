//! End-to-end: instant re-check for a host whose agent does not re-check by itself — osqueryd speaking the TLS
//! API, its scripts run by another runner through the agent API. Once the host's last automation run has
//! finished, the server hands the remediated policies out again at the next distributed/read, with
//! `accelerate`, instead of waiting for their interval.

use herd_testkit::{ENROLL_SECRET, Server, TestHost};
use serde_json::{Value, json};

fn query_name(policy: i64) -> String {
    format!("fleet_policy_query_{policy}")
}

fn policies_in(read: &Value) -> Vec<String> {
    let mut names: Vec<String> = herd_testkit::policy_queries(read).keys().map(|id| query_name(*id)).collect();
    names.sort();
    names
}

async fn answer(host: &TestHost, server: &Server, answers: &[(i64, bool)]) {
    let mut queries = serde_json::Map::new();
    let mut statuses = serde_json::Map::new();
    for (policy, pass) in answers {
        queries.insert(query_name(*policy), if *pass { json!([{"1": "1"}]) } else { json!([]) });
        statuses.insert(query_name(*policy), json!(0));
    }
    let (status, _) = host.write(server, Value::Object(queries), Value::Object(statuses)).await;
    assert_eq!(status, 200);
}

async fn counts(server: &Server, admin: &str, policy: i64) -> (i64, i64) {
    let (_, body) = server.get(&format!("/api/v1/fleet/global/policies/{policy}"), admin).await;
    (body["policy"]["passing_host_count"].as_i64().unwrap(), body["policy"]["failing_host_count"].as_i64().unwrap())
}

async fn remediated_policies_are_handed_out_again_at_once(server: Server) {
    let admin = server.admin_token().await;
    let fix_a = server.script_id(&admin, "fix-a.sh", "echo fixed\n").await;
    let fix_b = server.script_id(&admin, "fix-b.sh", "echo fixed\n").await;
    let mut policies = Vec::new();
    for (name, script) in [("a", fix_a), ("b", fix_b)] {
        let body = json!({"name": name, "query": "SELECT 1;", "script_id": script});
        let (_, created) = server.post("/api/v1/fleet/global/policies", &admin, body).await;
        policies.push(created["policy"]["id"].as_i64().unwrap());
    }
    let (a, b) = (policies[0], policies[1]);
    let (_, created) =
        server.post("/api/v1/fleet/global/policies", &admin, json!({"name": "c", "query": "SELECT 1;"})).await;
    let c = created["policy"]["id"].as_i64().unwrap();

    let mut host = TestHost::new("osqueryd-1");
    host.enroll(&server, ENROLL_SECRET).await;
    let (_, first) = host.read(&server).await;
    assert_eq!(policies_in(&first), vec![query_name(a), query_name(b), query_name(c)]);
    host.answer_vitals(&server, &first).await;
    answer(&host, &server, &[(a, false), (b, false), (c, true)]).await;
    let (_, read) = host.read(&server).await;
    assert!(policies_in(&read).is_empty(), "answered just now: nothing due for an hour");

    // The other runner fetches the queued runs and reports them, without promising a re-check of its own.
    let (status, pending) = server
        .osquery("/api/fleet/orbit/scripts/pending", json!({"node_key": host.node_key, "scripts_enabled": true}))
        .await;
    assert_eq!(status, 200, "{pending}");
    let runs: Vec<String> =
        pending["scripts"].as_array().unwrap().iter().map(|s| s["execution_id"].as_str().unwrap().into()).collect();
    assert_eq!(runs.len(), 2, "{pending}");
    let report = |execution: &str| json!({"node_key": host.node_key, "execution_id": execution, "exit_code": 0, "output": "fixed\n", "runtime_ms": 5});
    assert_eq!(server.osquery("/api/fleet/orbit/scripts/result", report(&runs[0])).await.0, 200);
    let (_, read) = host.read(&server).await;
    assert!(policies_in(&read).is_empty(), "one run is still pending: no re-check yet");
    assert_eq!(server.osquery("/api/fleet/orbit/scripts/result", report(&runs[1])).await.0, 200);

    // The last run finished: exactly the remediated policies, at once, with accelerate.
    let (_, read) = host.read(&server).await;
    assert_eq!(policies_in(&read), vec![query_name(a), query_name(b)], "{read}");
    assert_eq!(read["accelerate"], 60);
    let (_, again) = host.read(&server).await;
    assert!(policies_in(&again).is_empty(), "handed out once while its answers are awaited");
    answer(&host, &server, &[(a, true), (b, true)]).await;
    assert_eq!(counts(&server, &admin, a).await, (1, 0));
    assert_eq!(counts(&server, &admin, b).await, (1, 0));
    let (_, after) = host.read(&server).await;
    assert!(policies_in(&after).is_empty() && after.get("accelerate").is_none_or(Value::is_null), "{after}");

    let (_, feed) = server.get("/api/v1/fleet/activities?per_page=50", &admin).await;
    let requested: Vec<&Value> =
        feed["activities"].as_array().unwrap().iter().filter(|a| a["type"] == "requested_policy_recheck").collect();
    assert_eq!(requested.len(), 1, "one re-check round for the host");
    assert_eq!(requested[0]["details"]["policy_ids"], json!([a, b]));
}

herd_testkit::server_cases!(remediated_policies_are_handed_out_again_at_once);
