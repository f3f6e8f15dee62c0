//! The server under hostile input and concurrency (issue 16): configuration patches and enrollments racing,
//! requests naming 100,000 ids, device tokens that belong to another host or are easy to guess, paging
//! numbers that overflow, names that are paths or rewrite the text around them, and script output far
//! longer than what is kept. Each case runs on SQLite and on PostgreSQL.

use futures_util::future::join_all;
use herd_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, ENROLL_SECRET, Server, TestHost};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Instant;

herd_testkit::server_cases!(
    config_patches_at_once_all_survive,
    enrollments_of_one_uuid_at_once_all_succeed,
    requests_naming_100000_ids_succeed,
    device_tokens_belong_to_their_host_and_must_be_random,
    paging_parameters_are_checked,
    hostile_names_are_refused_everywhere,
    script_output_keeps_the_last_10000_characters,
);

/// On PostgreSQL, a second server on the same database (the deployment that shares one fleet): the races
/// are then between servers too. On SQLite, the one server twice.
fn second_server(server: &Server) -> Option<Server> {
    let url = server.database_url.clone()?;
    Some(Server::start(&server.bin, tempfile::tempdir().unwrap().keep(), Some(url)))
}

async fn config_patches_at_once_all_survive(server: Server) {
    let admin = server.admin_token().await;
    let other = second_server(&server);
    let servers: Vec<&Server> = match &other {
        Some(other) => vec![&server, other],
        None => vec![&server],
    };
    for round in 0..3i64 {
        // Each patch sets one field of one section; all are sent at once.
        let patches = vec![
            (
                json!({"org_info": {"org_name": format!("Acme {round}")}}),
                "/org_info/org_name",
                json!(format!("Acme {round}")),
            ),
            (
                json!({"org_info": {"contact_url": format!("https://help.example/{round}")}}),
                "/org_info/contact_url",
                json!(format!("https://help.example/{round}")),
            ),
            (
                json!({"org_info": {"org_logo_url": format!("https://logo.example/{round}.png")}}),
                "/org_info/org_logo_url",
                json!(format!("https://logo.example/{round}.png")),
            ),
            (
                json!({"server_settings": {"server_url": format!("https://herd{round}.example")}}),
                "/server_settings/server_url",
                json!(format!("https://herd{round}.example")),
            ),
            (
                json!({"host_settings": {"vitals_interval": 3600 + round}}),
                "/host_settings/vitals_interval",
                json!(3600 + round),
            ),
            (
                json!({"host_settings": {"policy_interval": 600 + round}}),
                "/host_settings/policy_interval",
                json!(600 + round),
            ),
            (
                json!({"host_settings": {"automation_retries": 1 + round}}),
                "/host_settings/automation_retries",
                json!(1 + round),
            ),
            (
                json!({"host_settings": {"automation_script_timeout": 100 + round}}),
                "/host_settings/automation_script_timeout",
                json!(100 + round),
            ),
            (
                json!({"host_settings": {"profile_grace_period": 900 + round}}),
                "/host_settings/profile_grace_period",
                json!(900 + round),
            ),
            (
                json!({"host_settings": {"profile_retries": 2 + round}}),
                "/host_settings/profile_retries",
                json!(2 + round),
            ),
            (
                json!({"mdm": {"migration_window_seconds": 300 + round}}),
                "/mdm/migration_window_seconds",
                json!(300 + round),
            ),
            (
                json!({"mdm": {"migration_query": format!("SELECT {round};")}}),
                "/mdm/migration_query",
                json!(format!("SELECT {round};")),
            ),
            (
                json!({"agent_options": {"config": {"options": {"distributed_interval": 10 + round}}}}),
                "/agent_options/config/options/distributed_interval",
                json!(10 + round),
            ),
        ];
        let sent = patches.iter().enumerate().map(|(i, (patch, _, _))| {
            let target = servers[i % servers.len()];
            target.patch("/api/v1/fleet/config", &admin, patch.clone())
        });
        for (status, body) in join_all(sent).await {
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        for target in &servers {
            let (_, config) = target.get("/api/v1/fleet/config", &admin).await;
            for (_, pointer, expected) in &patches {
                assert_eq!(config.pointer(pointer), Some(expected), "round {round}: {pointer} was lost: {config}");
            }
        }
    }
}

async fn enrollments_of_one_uuid_at_once_all_succeed(server: Server) {
    let admin = server.admin_token().await;
    let other = second_server(&server);
    let servers: Vec<&Server> = match &other {
        Some(other) => vec![&server, other],
        None => vec![&server],
    };
    let host = TestHost::new("cloned-laptop");
    const ENROLLMENTS: usize = 30;
    let sent = (0..ENROLLMENTS)
        .map(|i| servers[i % servers.len()].osquery("/api/osquery/enroll", host.enroll_body(ENROLL_SECRET)));
    let mut keys = Vec::new();
    for (status, body) in join_all(sent).await {
        assert_eq!(status, StatusCode::OK, "every enrollment succeeds (osqueryd retries): {body}");
        keys.push(body["node_key"].as_str().unwrap().to_string());
    }
    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    assert_eq!(hosts["hosts"].as_array().unwrap().len(), 1, "one host row: {hosts}");
    // The last enrollment's key works; the others are told to enroll again.
    let mut working = 0;
    for key in &keys {
        let (status, _) = server.osquery("/api/osquery/distributed/read", json!({"node_key": key})).await;
        match status {
            StatusCode::OK => working += 1,
            StatusCode::UNAUTHORIZED => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(working, 1);
}

async fn requests_naming_100000_ids_succeed(server: Server) {
    let admin = server.admin_token().await;
    let (_, team) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Big"})).await;
    let team_id = team["team"]["id"].as_i64().unwrap();
    let mut host_ids = Vec::new();
    for name in ["big-1", "big-2"] {
        let mut host = TestHost::new(name);
        assert_eq!(host.enroll(&server, ENROLL_SECRET).await.0, StatusCode::OK);
    }
    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    for host in hosts["hosts"].as_array().unwrap() {
        host_ids.push(host["id"].as_i64().unwrap());
    }
    let mut policy_ids = Vec::new();
    for name in ["big-a", "big-b"] {
        let (_, created) =
            server.post("/api/v1/fleet/global/policies", &admin, json!({"name": name, "query": "SELECT 1;"})).await;
        policy_ids.push(created["policy"]["id"].as_i64().unwrap());
    }

    // Transfer: 100,000 ids, two of them real (unknown ones are ignored, as in Fleet).
    let mut ids: Vec<i64> = (1_000_000..1_099_998).collect();
    ids.extend(&host_ids);
    let started = Instant::now();
    let (status, body) =
        server.post("/api/v1/fleet/hosts/transfer", &admin, json!({"team_id": team_id, "hosts": ids})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eprintln!("transfer of 100,000 ids: {:?}", started.elapsed());
    let (_, moved) = server.get(&format!("/api/v1/fleet/hosts?team_id={team_id}"), &admin).await;
    assert_eq!(moved["hosts"].as_array().unwrap().len(), 2);

    // Reset and delete: every id must be a policy, so 100,000 ids naming the two policies again and again.
    let repeated: Vec<i64> = policy_ids.iter().copied().cycle().take(100_000).collect();
    let started = Instant::now();
    let (status, body) =
        server.post("/api/v1/fleet/automations/reset", &admin, json!({"policy_ids": repeated, "team_ids": []})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eprintln!("automations reset of 100,000 ids: {:?}", started.elapsed());

    // 100,000 ids that are not policies: refused by name, nothing deleted.
    let unknown: Vec<i64> = (2_000_000..2_100_000).collect();
    let (status, body) = server.post("/api/v1/fleet/global/policies/delete", &admin, json!({"ids": unknown})).await;
    assert_eq!((status, body["errors"][0]["name"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("ids")), "{body}");
    let started = Instant::now();
    let (status, body) = server.post("/api/v1/fleet/global/policies/delete", &admin, json!({"ids": repeated})).await;
    assert_eq!((status, &body["deleted"]), (StatusCode::OK, &json!(2)), "{body}");
    eprintln!("policies delete of 100,000 ids: {:?}", started.elapsed());
    assert_eq!(server.get("/api/v1/fleet/policies/count", &admin).await.1["count"], 0);
}

/// Tokens as herd-agent (64 hex digits) and Fleet's orbit (a UUID) make them.
const AGENT_TOKEN: &str = "6d1f0c8e9b2a4f7e8c3d5a1b0e9f8d7c6b5a4e3d2c1b0a9f8e7d6c5b4a3f2e1d";
const ORBIT_TOKEN: &str = "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f";

async fn device_tokens_belong_to_their_host_and_must_be_random(server: Server) {
    let mut owner = TestHost::new("owner-laptop");
    owner.enroll(&server, ENROLL_SECRET).await;
    let mut thief = TestHost::new("thief-laptop");
    thief.enroll(&server, ENROLL_SECRET).await;
    let register = |host: &TestHost, token: &str| {
        server.osquery("/api/fleet/orbit/device_token", json!({"node_key": host.node_key, "device_auth_token": token}))
    };
    for token in [AGENT_TOKEN, ORBIT_TOKEN] {
        let (status, body) = register(&owner, token).await;
        assert_eq!(status, StatusCode::OK, "{token}: {body}");
    }
    // Another host presenting the owner's token is refused; the owner keeps it.
    for token in [AGENT_TOKEN, ORBIT_TOKEN] {
        let (status, body) = register(&thief, token).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["error"].as_str().unwrap().contains("another host"), "{body}");
        let (status, summary) = device(&server, token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(summary["host"]["hostname"], "owner-laptop", "{summary}");
    }
    // Easy to guess: refused with the reason, whatever the host.
    for weak in [
        "aaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "0123456789abcdef0123456789abcdef",
        "abababababababababababababababababababab",
        "00000000-0000-0000-0000-000000000000",
        "short-but-random-Zq8",
    ] {
        let (status, body) = register(&thief, weak).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{weak}: {body}");
        assert!(body["error"].as_str().unwrap().contains("device"), "{body}");
    }
    let (status, _) = device(&server, "aaaaaaaaaaaaaaaa").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn device(server: &Server, token: &str) -> (StatusCode, Value) {
    let response = server.client.get(format!("{}/api/v1/fleet/device/{token}", server.url)).send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

async fn console_session(server: &Server) -> (reqwest::Client, String) {
    let client = server.browser();
    let form = [("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD), ("next", "/console")];
    let response = client.post(format!("{}/console/login", server.url)).form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let html = client.get(format!("{}/console/teams", server.url)).send().await.unwrap().text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    (client, html[at..at + 64].to_string())
}

async fn paging_parameters_are_checked(server: Server) {
    let admin = server.admin_token().await;
    let mut host = TestHost::new("paged");
    host.enroll(&server, ENROLL_SECRET).await;
    for path in ["/api/v1/fleet/hosts", "/api/v1/fleet/activities", "/api/v1/fleet/configuration_profiles"] {
        for (query, field) in [
            ("page=9223372036854775808", "page"),
            ("page=9223372036854775807", "page"),
            ("page=92233720368547758&per_page=1000", "page"),
            ("page=-1", "page"),
            ("page=1.5", "page"),
            ("per_page=0", "per_page"),
            ("per_page=10001", "per_page"),
            ("per_page=-3", "per_page"),
        ] {
            let (status, body) = server.get(&format!("{path}?{query}"), &admin).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}?{query}: {body}");
            assert_eq!(body["errors"][0]["name"], field, "{path}?{query}: {body}");
        }
        // The largest page that can be addressed is simply empty.
        let (status, body) = server.get(&format!("{path}?page=922337203685476&per_page=10000"), &admin).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (client, _) = console_session(&server).await;
    for path in [
        "/console/hosts?page=92233720368547758&per_page=1000",
        "/console/hosts?page=-1",
        "/console/hosts?per_page=0",
        "/console/activity?page=922337203685477580",
        "/console/activity?page=-2",
        "/console/activity?page=x",
    ] {
        let response = client.get(format!("{}{path}", server.url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert!(response.text().await.unwrap().contains("page"), "{path}: names the parameter");
    }
    let response = client.get(format!("{}/console/hosts?page=0&per_page=10", server.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Names that are paths, that reverse the text after them (U+202E), or carry control characters are refused
/// at every way in, with the field named; nothing is stored.
async fn hostile_names_are_refused_everywhere(server: Server) {
    let admin = server.admin_token().await;
    let rtl = "invoice\u{202E}hs.ps1";
    // Scripts (REST upload; the console form below).
    // (Control characters cannot reach a multipart file name: the console form below carries one.)
    for name in ["../../etc/cron.d/x.sh", "..\\..\\x.ps1", "evil\u{202E}hs.sh", "/abs.sh"] {
        let (status, body) = server.upload_script(&admin, name, "echo hi").await;
        assert_eq!(
            (status, body["errors"][0]["name"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("script")),
            "{name:?}: {body}"
        );
    }
    let (status, body) = server.upload_script(&admin, "  fix-disk.sh ", "echo hi").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, scripts) = server.get("/api/v1/fleet/scripts", &admin).await;
    assert_eq!(scripts["scripts"].as_array().unwrap().len(), 1, "{scripts}");
    assert_eq!(scripts["scripts"][0]["name"], "fix-disk.sh", "stored trimmed");
    // Teams.
    for name in [rtl, "tab\tteam", "line\u{2028}break", " "] {
        let (status, body) = server.post("/api/v1/fleet/teams", &admin, json!({"name": name})).await;
        assert_eq!(
            (status, body["errors"][0]["name"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
            "{name:?}: {body}"
        );
    }
    let (_, team) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Fine"})).await;
    let team_id = team["team"]["id"].as_i64().unwrap();
    let (status, _) = server.patch(&format!("/api/v1/fleet/teams/{team_id}"), &admin, json!({"name": rtl})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Policies: REST and spec.
    let (status, body) =
        server.post("/api/v1/fleet/global/policies", &admin, json!({"name": rtl, "query": "SELECT 1;"})).await;
    assert_eq!(
        (status, body["errors"][0]["name"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        "{body}"
    );
    let spec = json!({"specs": [{"name": "esc\u{1b}[31m", "query": "SELECT 1;", "team": ""}]});
    let (status, body) = server.post("/api/v1/fleet/spec/policies", &admin, spec).await;
    assert_eq!(
        (status, body["errors"][0]["name"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("specs[0].name")),
        "{body}"
    );
    assert_eq!(server.get("/api/v1/fleet/policies/count", &admin).await.1["count"], 0);
    // Users.
    let user = json!({"name": rtl, "email": "u@herd.local", "password": "user-password-1!", "global_role": "observer"});
    let (status, body) = server.post("/api/v1/fleet/users/admin", &admin, user).await;
    assert_eq!(
        (status, body["errors"][0]["name"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        "{body}"
    );
    // Profiles: the name and the identifier (which the agent uses as a file name).
    let profile = |identifier: &str, name: &str| {
        json!({"identifier": identifier, "name": name, "payloads": [{"type": "file", "path": "/etc/motd", "content": "hi"}]})
            .to_string()
    };
    for (identifier, name, field) in [
        ("com.acme.motd", rtl, "profile.name"),
        ("..", "MOTD", "profile.identifier"),
        ("com.acme\u{202E}", "MOTD", "profile.identifier"),
    ] {
        let (status, body) =
            server.upload_profile(&admin, "motd.json", profile(identifier, name).as_bytes(), None).await;
        assert_eq!(
            (status, body["errors"][0]["name"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{body}"
        );
    }
    let mobileconfig = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>PayloadType</key><string>Configuration</string><key>PayloadIdentifier</key><string>com.acme.x</string><key>PayloadDisplayName</key><string>{rtl}</string><key>PayloadContent</key><array/></dict></plist>"#
    );
    let (status, body) = server.upload_profile(&admin, "x.mobileconfig", mobileconfig.as_bytes(), None).await;
    assert_eq!(
        (status, body["errors"][0]["name"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("profile.PayloadDisplayName")),
        "{body}"
    );
    // The organisation's name (on every My Device page).
    let (status, body) = server.patch("/api/v1/fleet/config", &admin, json!({"org_info": {"org_name": rtl}})).await;
    assert_eq!(
        (status, body["errors"][0]["name"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("org_info.org_name")),
        "{body}"
    );

    // The console's forms share the rules.
    let (client, csrf) = console_session(&server).await;
    let post = |path: &str, fields: Vec<(&str, &str)>| {
        let mut fields: Vec<(String, String)> =
            fields.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        fields.push(("csrf".into(), csrf.clone()));
        client.post(format!("{}{path}", server.url)).form(&fields).send()
    };
    for (path, fields) in [
        ("/console/teams", vec![("name", rtl)]),
        ("/console/scripts", vec![("name", "../../etc/cron.d/x.sh"), ("team_id", "0"), ("contents", "echo hi")]),
        ("/console/scripts", vec![("name", "bell\u{7}.sh"), ("team_id", "0"), ("contents", "echo hi")]),
        ("/console/policies/new", vec![("name", rtl), ("query", "SELECT 1;"), ("team_id", "0"), ("script_id", "0")]),
    ] {
        let response = post(path, fields).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
    }
    let (_, teams) = server.get("/api/v1/fleet/teams", &admin).await;
    assert_eq!(teams["teams"].as_array().unwrap().len(), 1, "{teams}");
    assert_eq!(server.get("/api/v1/fleet/scripts", &admin).await.1["scripts"].as_array().unwrap().len(), 1);
    assert_eq!(server.get("/api/v1/fleet/policies/count", &admin).await.1["count"], 0);
}

async fn script_output_keeps_the_last_10000_characters(server: Server) {
    let admin = server.admin_token().await;
    let mut host = TestHost::new("chatty");
    host.enroll(&server, ENROLL_SECRET).await;
    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    let host_id = hosts["hosts"][0]["id"].as_i64().unwrap();
    let script_id = server.script_id(&admin, "chatty.sh", "yes").await;
    let (status, queued) =
        server.post("/api/v1/fleet/scripts/run", &admin, json!({"host_id": host_id, "script_id": script_id})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let execution_id = queued["execution_id"].as_str().unwrap().to_string();
    // 20 MiB of output, multi-byte characters at the cut: the tail is whole characters, counted as such.
    let tail: String = "東".repeat(9_999) + "!";
    let output = "é".repeat(10 * 1024 * 1024) + &tail;
    let report = json!({"node_key": host.node_key, "execution_id": execution_id, "exit_code": 0, "output": output, "runtime_ms": 5});
    let (status, body) = server.osquery("/api/fleet/orbit/scripts/result", report).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, result) = server.get(&format!("/api/v1/fleet/scripts/results/{execution_id}"), &admin).await;
    let kept = result["output"].as_str().unwrap();
    assert_eq!(kept.chars().count(), 10_000);
    assert_eq!(kept, tail);
}
