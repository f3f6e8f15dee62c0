//! End-to-end: Fleet's REST paths as Fleet versions and names them — `/api/v1/fleet` and `/api/latest/fleet`
//! each with its own route set, `/version`, `/host_summary`, `/hosts/report` (CSV), `POST /hosts/delete`,
//! `POST /spec/teams`, Fleet's host-list parameters, Fleet's status codes, and Fleet's `features` section.

use herd_testkit::{ENROLL_SECRET, Server, TestHost};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

herd_testkit::server_cases!(
    each_version_serves_its_own_routes,
    version_and_fleet_status_codes,
    host_list_takes_fleet_parameters,
    host_summary_report_and_bulk_delete,
    team_specs_create_update_and_dry_run,
    config_takes_fleet_features_and_its_alias,
);

fn names(body: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        body["hosts"].as_array().unwrap().iter().map(|h| h["hostname"].as_str().unwrap().to_string()).collect();
    names.sort();
    names
}

async fn each_version_serves_its_own_routes(server: Server) {
    let admin = server.admin_token().await;
    // Fleet's `latest` (2022-04) names global policies `/policies`; v1 names them `/global/policies`.
    let (status, created) =
        server.post("/api/latest/fleet/policies", &admin, json!({"name": "firewall on", "query": "SELECT 1;"})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["policy"]["id"].as_i64().unwrap();
    let (status, listed) = server.get("/api/latest/fleet/policies", &admin).await;
    assert_eq!((status, listed["policies"][0]["id"].as_i64()), (StatusCode::OK, Some(id)), "{listed}");
    let (status, one) = server.get(&format!("/api/latest/fleet/policies/{id}"), &admin).await;
    assert_eq!((status, &one["policy"]["name"]), (StatusCode::OK, &json!("firewall on")));
    let (status, patched) =
        server.patch(&format!("/api/latest/fleet/policies/{id}"), &admin, json!({"description": "d"})).await;
    assert_eq!((status, &patched["policy"]["description"]), (StatusCode::OK, &json!("d")));
    let (status, one) = server.get(&format!("/api/v1/fleet/global/policies/{id}"), &admin).await;
    assert_eq!((status, &one["policy"]["description"]), (StatusCode::OK, &json!("d")), "one policy, two names");
    for path in ["/api/v1/fleet/policies/count", "/api/latest/fleet/policies/count"] {
        assert_eq!(server.get(path, &admin).await.1["count"], 1, "{path}: both versions count");
    }
    // Each version lacks the other's names, as in Fleet.
    for path in [
        "/api/latest/fleet/global/policies".to_string(),
        format!("/api/latest/fleet/global/policies/{id}"),
        "/api/v1/fleet/policies".to_string(),
        format!("/api/v1/fleet/policies/{id}"),
    ] {
        assert_eq!(server.get(&path, &admin).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = server.post("/api/latest/fleet/policies/delete", &admin, json!({"ids": [id]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.get("/api/v1/fleet/policies/count", &admin).await.1["count"], 0);
}

async fn version_and_fleet_status_codes(server: Server) {
    let admin = server.admin_token().await;
    let (status, version) = server.get("/api/latest/fleet/version", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    for field in ["branch", "revision", "go_version", "build_date", "build_user"] {
        assert!(version[field].is_string(), "{field}: Fleet's shape, a string (empty when herd has no value)");
    }
    assert_eq!(server.request(Method::GET, "/api/v1/fleet/version", None, None).await.0, StatusCode::UNAUTHORIZED);

    // Fleet answers a script's deletion with 204 and no body.
    let id = server.script_id(&admin, "hello.sh", "#!/bin/sh\necho hi\n").await;
    let response = server
        .client
        .delete(format!("{}/api/v1/fleet/scripts/{id}", server.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.text().await.unwrap().is_empty());
    assert_eq!(server.get(&format!("/api/v1/fleet/scripts/{id}"), &admin).await.0, StatusCode::NOT_FOUND);
    // Where Fleet answers a deletion with 200 and `{}` (teams, users, hosts, configuration profiles), so does herd.
    let (_, team) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Short-lived"})).await;
    let team = team["team"]["id"].as_i64().unwrap();
    assert_eq!(server.delete(&format!("/api/v1/fleet/teams/{team}"), &admin).await, (StatusCode::OK, json!({})));
    server.user_token(&admin, "leaving@herd.test", "observer", None).await;
    let (_, users) = server.get("/api/v1/fleet/users", &admin).await;
    let user = users["users"].as_array().unwrap().iter().find(|u| u["email"] == "leaving@herd.test").unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_eq!(server.delete(&format!("/api/v1/fleet/users/{user}"), &admin).await, (StatusCode::OK, json!({})));
}

async fn host_list_takes_fleet_parameters(server: Server) {
    let admin = server.admin_token().await;
    let mut hosts = Vec::new();
    for name in ["alpha", "bravo"] {
        let mut host = TestHost::new(name);
        host.enroll(&server, ENROLL_SECRET).await;
        hosts.push(host);
    }
    // Only alpha reports its disk (98.2 GB free).
    let (_, read) = hosts[0].read(&server).await;
    assert_eq!(hosts[0].answer_vitals(&server, &read).await.0, StatusCode::OK);
    let (_, policy) =
        server.post("/api/v1/fleet/global/policies", &admin, json!({"name": "ssh off", "query": "SELECT 1;"})).await;
    let policy = policy["policy"]["id"].as_i64().unwrap();

    let (_, all) = server.get("/api/v1/fleet/hosts", &admin).await;
    let os_version = all["hosts"][0]["os_version"].as_str().unwrap().to_string();
    let (os_name, os_number) = os_version.split_once(' ').expect("name and version");
    let path = format!("/api/v1/fleet/hosts?os_name={os_name}&os_version={os_number}");
    let (status, by_os) = server.get(&path, &admin).await;
    assert_eq!((status, names(&by_os)), (StatusCode::OK, vec!["alpha".to_string(), "bravo".to_string()]));
    let (_, other_os) = server.get(&format!("/api/v1/fleet/hosts?os_name={os_name}&os_version=1.0"), &admin).await;
    assert!(names(&other_os).is_empty());
    let (_, low) = server.get("/api/v1/fleet/hosts?low_disk_space=100", &admin).await;
    assert_eq!(names(&low), ["alpha"], "98.2 GB is under 100; a host that never reported its disk is not low");
    let (_, low) = server.get("/api/v1/fleet/hosts/count?low_disk_space=50", &admin).await;
    assert_eq!(low["count"], 0);
    let (status, mia) = server.get("/api/v1/fleet/hosts/count?status=mia", &admin).await;
    assert_eq!((status, &mia["count"]), (StatusCode::OK, &json!(0)), "mia is Fleet's older name for missing");

    let (_, plain) = server.get("/api/v1/fleet/hosts", &admin).await;
    assert!(plain["hosts"][0].get("policies").is_none(), "policies only when asked");
    let (status, populated) = server.get("/api/v1/fleet/hosts?populate_policies=true", &admin).await;
    assert_eq!(status, StatusCode::OK);
    for host in populated["hosts"].as_array().unwrap() {
        assert_eq!(host["policies"][0]["id"], policy, "{host}");
    }

    // Fleet filters for data herd does not have: 422 naming the parameter and the missing feature.
    for (query, field, feature) in [
        ("label_id=three", "label_id", "label_id"),
        ("software_title_id=1", "software_title_id", "software inventory"),
        ("mdm_id=2", "mdm_id", "MDM"),
        ("munki_issue_id=1", "munki_issue_id", "Munki"),
        ("os_id=1", "os_id", "os_name with os_version"),
        ("bootstrap_package=failed", "bootstrap_package", "bootstrap packages"),
        ("macos_settings_disk_encryption=verified", "macos_settings_disk_encryption", "disk encryption"),
        ("os_name=Ubuntu", "os_version", "required with os_name"),
        ("low_disk_space=0", "low_disk_space", "1 to 100"),
        ("order_key=label", "order_key", "cannot order"),
    ] {
        for path in ["/api/v1/fleet/hosts", "/api/v1/fleet/hosts/count"] {
            let (status, reply) = server.get(&format!("{path}?{query}"), &admin).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query} → {reply}");
            assert_eq!(reply["errors"][0]["name"], field, "{query}");
            assert!(reply.to_string().contains(feature), "{query}: {reply}");
        }
    }
}

async fn host_summary_report_and_bulk_delete(server: Server) {
    let admin = server.admin_token().await;
    let (_, team) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Servers"})).await;
    let team_id = team["team"]["id"].as_i64().unwrap();
    let team_secret = team["team"]["secrets"][0]["secret"].as_str().unwrap().to_string();
    for (name, secret) in [("alpha", ENROLL_SECRET), ("bravo", ENROLL_SECRET), ("charlie,\"quoted\"", &team_secret)] {
        let mut host = TestHost::new(name);
        let (status, _) = host.enroll(&server, secret).await;
        assert_eq!(status, StatusCode::OK);
        let (_, read) = host.read(&server).await;
        assert_eq!(host.answer_vitals(&server, &read).await.0, StatusCode::OK);
    }
    let (_, listed) = server.get("/api/v1/fleet/hosts", &admin).await;
    let ids: std::collections::BTreeMap<String, i64> = listed["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["hostname"].as_str().unwrap().to_string(), h["id"].as_i64().unwrap()))
        .collect();

    let (status, summary) = server.get("/api/latest/fleet/host_summary", &admin).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["totals_hosts_count"], 3);
    assert_eq!(summary["online_count"], 3, "they just checked in: {summary}");
    assert_eq!((summary["offline_count"].as_i64(), summary["mia_count"].as_i64()), (Some(0), Some(0)));
    assert_eq!(summary["new_count"], 3);
    assert_eq!(summary["all_linux_count"], 3);
    assert_eq!(summary["platforms"], json!([{"platform": "ubuntu", "hosts_count": 3}]));
    let (_, summary) =
        server.get(&format!("/api/v1/fleet/host_summary?team_id={team_id}&low_disk_space=100"), &admin).await;
    assert_eq!((summary["team_id"].as_i64(), summary["totals_hosts_count"].as_i64()), (Some(team_id), Some(1)));
    assert_eq!(summary["low_disk_space_count"], 1);
    // By platform family: a Mac joins the three Ubuntu hosts.
    let mut mac = TestHost::new("mac");
    mac.enroll(&server, ENROLL_SECRET).await;
    let macos = json!([{"name": "macOS", "version": "14.4.1", "major": "14", "minor": "4", "patch": "1", "build": "23E224", "platform": "darwin", "platform_like": "darwin", "arch": "arm64"}]);
    let (status, _) = mac
        .write(&server, json!({"fleet_detail_query_os_version": macos}), json!({"fleet_detail_query_os_version": 0}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let summary_of = |query: &'static str| {
        let server = &server;
        let admin = &admin;
        async move { server.get(&format!("/api/v1/fleet/host_summary?{query}"), admin).await }
    };
    let (status, linux) = summary_of("platform=linux").await;
    assert_eq!(status, StatusCode::OK, "{linux}");
    assert_eq!((linux["totals_hosts_count"].as_i64(), linux["online_count"].as_i64()), (Some(3), Some(3)), "{linux}");
    assert_eq!(linux["platforms"], json!([{"platform": "ubuntu", "hosts_count": 3}]));
    let (_, darwin) = summary_of("platform=darwin").await;
    assert_eq!(darwin["totals_hosts_count"], 1, "{darwin}");
    assert_eq!(darwin["platforms"], json!([{"platform": "darwin", "hosts_count": 1}]));
    let (_, linux_team) = summary_of("platform=linux&low_disk_space=100").await;
    assert_eq!(linux_team["low_disk_space_count"], 3, "the Mac reported no disk: {linux_team}");
    let (_, ios) = summary_of("platform=ios").await;
    assert_eq!((ios["totals_hosts_count"].as_i64(), ios["platforms"].clone()), (Some(0), json!([])), "{ios}");
    let (_, all) = summary_of("").await;
    assert_eq!(all["totals_hosts_count"], 4);
    let (status, refused) = summary_of("platform=beos").await;
    assert_eq!((status, &refused["errors"][0]["name"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("platform")));
    // The Mac is not part of what follows.
    let (_, hosts) = server.get("/api/v1/fleet/hosts?query=mac", &admin).await;
    let mac_id = hosts["hosts"][0]["id"].as_i64().unwrap();
    assert_eq!(server.delete(&format!("/api/v1/fleet/hosts/{mac_id}"), &admin).await.0, StatusCode::OK);

    // The report: Fleet's columns, the listing's filters and order, CSV with quoting.
    let csv = |query: &str| {
        let request =
            server.client.get(format!("{}/api/v1/fleet/hosts/report?{query}", server.url)).bearer_auth(&admin);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
            (status, kind, response.text().await.unwrap())
        }
    };
    let (status, kind, body) = csv("format=csv&columns=id,hostname&order_key=hostname").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(kind.as_deref(), Some("text/csv; charset=utf-8"));
    let expected = format!(
        "id,hostname\r\n{},alpha\r\n{},bravo\r\n{},\"charlie,\"\"quoted\"\"\"\r\n",
        ids["alpha"], ids["bravo"], ids["charlie,\"quoted\""]
    );
    assert_eq!(body, expected);
    let (_, _, body) = csv(&format!("format=csv&columns=hostname,team_id&team_id={team_id}")).await;
    assert_eq!(body, format!("hostname,team_id\r\n\"charlie,\"\"quoted\"\"\",{team_id}\r\n"));
    let (_, _, body) = csv("format=csv").await;
    assert!(body.starts_with("id,uuid,osquery_host_id,hostname,"), "every column by default: {body}");
    assert_eq!(body.lines().count(), 4);
    let (status, _, body) = csv("format=csv&columns=id,password").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("password"), "{body}");
    let (status, _, _) = csv("format=json").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Bulk delete: neither ids nor filters, or both, is refused; an observer deletes nothing.
    for body in [json!({}), json!({"ids": [1], "filters": {"status": "online"}}), json!({"filters": {}})] {
        let (status, reply) = server.post("/api/v1/fleet/hosts/delete", &admin, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {reply}");
    }
    let filters = json!({"filters": {"software_title_id": 4}});
    let (status, reply) = server.post("/api/v1/fleet/hosts/delete", &admin, filters).await;
    assert_eq!(
        (status, &reply["errors"][0]["name"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("filters.software_title_id"))
    );
    let observer = server.user_token(&admin, "observer@herd.test", "observer", None).await;
    let (status, _) = server.post("/api/v1/fleet/hosts/delete", &observer, json!({"ids": [ids["alpha"]]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, reply) = server.post("/api/v1/fleet/hosts/delete", &admin, json!({"ids": [ids["alpha"]]})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (status, reply) =
        server.post("/api/v1/fleet/hosts/delete", &admin, json!({"filters": {"team_id": team_id}})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (_, left) = server.get("/api/v1/fleet/hosts", &admin).await;
    assert_eq!(names(&left), ["bravo"]);
}

async fn team_specs_create_update_and_dry_run(server: Server) {
    let admin = server.admin_token().await;
    let (_, existing) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Laptops"})).await;
    let laptops = existing["team"]["id"].as_i64().unwrap();
    let specs = json!({"specs": [
        {"name": "Laptops", "agent_options": {"config": {"options": {"distributed_interval": 30}}},
         "secrets": [{"secret": "laptops-secret-0123456789"}]},
        {"name": "Servers", "webhook_settings": {"failing_policies_webhook": {"enable_failing_policies_webhook": false}},
         "features": {}, "mdm": null}
    ]});

    let (status, dry) = server.post("/api/v1/fleet/spec/teams?dry_run=true", &admin, specs.clone()).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["team_ids_by_name"], json!({"Laptops": laptops}), "a dry run creates nothing");
    assert_eq!(server.get("/api/v1/fleet/teams", &admin).await.1["teams"].as_array().unwrap().len(), 1);

    let (status, applied) = server.post("/api/latest/fleet/spec/teams", &admin, specs.clone()).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["team_ids_by_name"]["Laptops"], laptops, "updated by name");
    let servers = applied["team_ids_by_name"]["Servers"].as_i64().expect("created");
    let (_, team) = server.get(&format!("/api/v1/fleet/teams/{laptops}"), &admin).await;
    assert_eq!(team["team"]["agent_options"]["config"]["options"]["distributed_interval"], 30, "{team}");
    assert_eq!(team["team"]["secrets"][0]["secret"], "laptops-secret-0123456789");
    let (_, team) = server.get(&format!("/api/v1/fleet/teams/{servers}"), &admin).await;
    assert_eq!(team["team"]["secrets"].as_array().unwrap().len(), 1, "a new team gets a secret: {team}");
    let (_, activities) = server.get("/api/v1/fleet/activities", &admin).await;
    let applied_activity = activities["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "applied_spec_team")
        .cloned()
        .expect("applied_spec_team recorded");
    assert_eq!(applied_activity["details"]["teams"].as_array().unwrap().len(), 2, "{applied_activity}");

    // Every spec is checked before any is written; settings herd does not have are refused by name.
    for (body, field) in [
        (json!({"specs": [{"name": "New"}, {"name": ""}]}), "specs[1].name"),
        (
            json!({"specs": [{"name": "New"}, {"name": "X", "mdm": {"macos_updates": {"minimum_version": "14"}}}]}),
            "specs[1].mdm",
        ),
        (json!({"specs": [{"name": "New", "agent_options": {"config": 5}}]}), "specs[0].agent_options.config"),
        (json!({"specs": [{"name": "New"}, {"name": "New"}]}), "specs[1].name"),
    ] {
        let (status, reply) = server.post("/api/v1/fleet/spec/teams", &admin, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {reply}");
        assert!(reply["errors"][0]["name"].as_str().unwrap().starts_with(field), "{body} → {reply}");
    }
    assert_eq!(server.get("/api/v1/fleet/teams", &admin).await.1["teams"].as_array().unwrap().len(), 2);
    let maintainer = server.user_token(&admin, "m@herd.test", "maintainer", Some(laptops)).await;
    let (status, _) = server.post("/api/v1/fleet/spec/teams", &maintainer, json!({"specs": [{"name": "Other"}]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only global admins create teams");
}

async fn config_takes_fleet_features_and_its_alias(server: Server) {
    let admin = server.admin_token().await;
    let (_, config) = server.get("/api/latest/fleet/config", &admin).await;
    assert_eq!(config["features"]["enable_software_inventory"], false, "{config}");
    // Older Fleet's `host_settings` (its alias of `features`) and herd's own host settings in one section.
    let patch = json!({"host_settings": {"enable_host_users": false, "vitals_interval": 600}});
    let (status, config) = server.patch("/api/v1/fleet/config", &admin, patch).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert_eq!(config["host_settings"]["vitals_interval"], 600);
    assert_eq!(config["features"]["enable_host_users"], false);
    let (status, reply) =
        server.patch("/api/v1/fleet/config", &admin, json!({"features": {"enable_software_inventory": true}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply["errors"][0]["name"], "features.enable_software_inventory");
}
