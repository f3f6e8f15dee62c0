//! End-to-end: the device API, authenticated by the device token the agent registered — what the host's own
//! user (My Device page, desktop notifier) sees: the host, its policies without SQL, failing first; a bad
//! token is 401 and only failures count toward the rate limit.

use herd_testkit::{ENROLL_SECRET, Server, TestHost};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "3b7e1f0a-9c2d-4e6f-8a1b-5d4c3e2f1a0b";

async fn device(server: &Server, token: &str, path: &str) -> (StatusCode, Value) {
    let response =
        server.client.get(format!("{}/api/latest/fleet/device/{token}{path}", server.url)).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn answer(host: &TestHost, server: &Server, answers: &[(i64, bool)]) {
    let mut queries = serde_json::Map::new();
    let mut statuses = serde_json::Map::new();
    for (policy, pass) in answers {
        let name = format!("fleet_policy_query_{policy}");
        queries.insert(name.clone(), if *pass { json!([{"1": "1"}]) } else { json!([]) });
        statuses.insert(name, json!(0));
    }
    assert_eq!(host.write(server, Value::Object(queries), Value::Object(statuses)).await.0, 200);
}

async fn the_device_sees_its_own_state(server: Server) {
    let admin = server.admin_token().await;
    let org = json!({"org_info": {"org_name": "Acme", "contact_url": "https://help.acme.test/it"}});
    assert_eq!(server.patch("/api/v1/fleet/config", &admin, org).await.0, 200);
    let mut ids = Vec::new();
    for (name, resolution) in
        [("a passing one", "nothing to do"), ("disk encrypted", "Turn on disk encryption"), ("unanswered", "")]
    {
        let body = json!({"name": name, "query": "SELECT 1;", "resolution": resolution, "description": "why", "critical": name == "disk encrypted"});
        let (_, created) = server.post("/api/v1/fleet/global/policies", &admin, body).await;
        ids.push(created["policy"]["id"].as_i64().unwrap());
    }
    let mut host = TestHost::new("laptop-7");
    host.enroll(&server, ENROLL_SECRET).await;
    answer(&host, &server, &[(ids[0], true), (ids[1], false)]).await;
    let (status, _) = server
        .osquery("/api/fleet/orbit/device_token", json!({"node_key": host.node_key, "device_auth_token": TOKEN}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, summary) = device(&server, TOKEN, "").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["host"]["hostname"], "laptop-7");
    assert_eq!(summary["org_contact_url"], "https://help.acme.test/it");
    assert_eq!(summary["global_config"]["org_info"]["org_name"], "Acme");

    let (_, listed) = device(&server, TOKEN, "/policies").await;
    let policies = listed["policies"].as_array().unwrap();
    let order: Vec<(&str, &str)> =
        policies.iter().map(|p| (p["name"].as_str().unwrap(), p["response"].as_str().unwrap())).collect();
    assert_eq!(order, vec![("disk encrypted", "fail"), ("unanswered", ""), ("a passing one", "pass")], "failing first");
    assert_eq!(policies[0]["resolution"], "Turn on disk encryption");
    assert_eq!(policies[0]["critical"], true);
    for p in policies {
        assert!(p.get("query").is_none() && p.get("author_email").is_none(), "no SQL, no authors: {p}");
    }
    assert_eq!(summary["host"]["policies"], listed["policies"]);

    let (_, desktop) = device(&server, TOKEN, "/desktop").await;
    assert_eq!(desktop["failing_policies_count"], 1);
    assert_eq!(desktop["notifications"], json!({"needs_mdm_migration": false, "renew_enrollment_profile": false}));
    assert_eq!(desktop["config"]["org_info"]["contact_url"], "https://help.acme.test/it");

    let ping =
        |token: String| server.client.head(format!("{}/api/latest/fleet/device/{token}/ping", server.url)).send();
    assert_eq!(ping(TOKEN.into()).await.unwrap().status(), StatusCode::OK);

    // The My Device page: readable HTML, failing policies first with how to fix them, never cached.
    let org = json!({"org_info": {"org_name": "Acme <R&D>", "contact_url": "https://help.acme.test/it"}});
    assert_eq!(server.patch("/api/v1/fleet/config", &admin, org).await.0, 200);
    let page = server.client.get(format!("{}/device/{TOKEN}", server.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer", "the token must not leak to the logo's or contact's host");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.starts_with("<!doctype html><html lang=\"en\">"), "{html}");
    assert!(html.contains("<h1>laptop-7</h1>"));
    assert!(html.contains("Acme &lt;R&amp;D&gt;") && !html.contains("Acme <R&D>"), "configured text is escaped");
    assert!(html.contains("href=\"https://help.acme.test/it\""));
    let at = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("{needle} missing from {html}"));
    assert!(at("disk encrypted") < at("unanswered") && at("unanswered") < at("a passing one"), "failing first");
    assert!(html.contains("<strong>How to fix:</strong> Turn on disk encryption"));
    assert!(html.contains("<button type=\"submit\">Refetch</button>"));
    assert!(!html.contains("Checking your device again"));

    // Refetch from the page: back to the page, which says results are on their way; the host gets every query.
    let refetched = server.client.post(format!("{}/device/{TOKEN}/refetch", server.url)).send().await.unwrap();
    assert_eq!(refetched.status(), StatusCode::OK, "the redirect leads back to the page");
    assert!(refetched.url().path().ends_with(&format!("/device/{TOKEN}")));
    let html = refetched.text().await.unwrap();
    assert!(html.contains("Checking your device again") && html.contains("http-equiv=\"refresh\""), "{html}");
    let (_, read) = host.read(&server).await;
    assert!(herd_testkit::policy_sql(&read, ids[2]).is_some(), "{read}");
    let script = server.client.get(format!("{}/assets/my-device.js", server.url)).send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    let stale = server.client.get(format!("{}/device/not-a-token-000000000000", server.url)).send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    assert!(stale.text().await.unwrap().contains("not valid"));

    // Successes never count toward the limit; failures do, per client address.
    for _ in 0..40 {
        assert_eq!(device(&server, TOKEN, "/desktop").await.0, StatusCode::OK);
    }
    let (status, refused) = device(&server, "not-a-token-at-all-00000", "/desktop").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The refusal says what is wrong and where the current token is, not a bare "Authentication required".
    assert_eq!(refused["message"], "Invalid device token", "{refused}");
    let reason = refused["errors"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("not (or no longer) valid") && reason.contains("/opt/orbit/identifier"), "{reason}");
    let (status, refused) = device(&server, "", "/desktop").await;
    if status == StatusCode::UNAUTHORIZED {
        let reason = refused["errors"][0]["reason"].as_str().unwrap();
        assert!(reason.contains("no device token in the URL"), "{reason}");
    } else {
        assert_eq!(status, StatusCode::NOT_FOUND, "an empty token is a clear refusal: {refused}");
    }
    assert_eq!(ping("not-a-token-at-all-00000".into()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let mut limited = false;
    for _ in 0..120 {
        if device(&server, "wrong-token-000000000000", "/policies").await.0 == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "repeated bad tokens are rate limited");
    assert_eq!(device(&server, TOKEN, "/desktop").await.0, StatusCode::OK, "the valid token still works");
}

herd_testkit::server_cases!(the_device_sees_its_own_state);
