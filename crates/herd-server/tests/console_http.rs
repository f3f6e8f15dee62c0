//! The admin console over HTTP (what a browser sends, without one): the login form and its refusals, the
//! session cookie's flags, CSRF on every form, no open redirect after login, roles (a team user sees only their
//! team's hosts; the users page is for admins), escaping of what users typed, and a 4xx page for bad input.

use herd_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, ENROLL_SECRET, Server, TestHost};
use reqwest::StatusCode;
use serde_json::json;

herd_testkit::server_cases!(console_login_csrf_roles_and_escaping);

async fn log_in(
    server: &Server,
    client: &reqwest::Client,
    email: &str,
    password: &str,
    next: &str,
) -> reqwest::Response {
    let form = [("email", email), ("password", password), ("next", next)];
    client.post(format!("{}/console/login", server.url)).form(&form).send().await.unwrap()
}

async fn page(server: &Server, client: &reqwest::Client, path: &str) -> (StatusCode, String) {
    let response = client.get(format!("{}{path}", server.url)).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..at + 64].to_string()
}

async fn console_login_csrf_roles_and_escaping(server: Server) {
    let admin_token = server.admin_token().await;
    let client = server.browser();
    // Signed out: every page sends to the login page, remembering where.
    let response = client.get(format!("{}/console/policies", server.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/console/login?next=%2Fconsole%2Fpolicies");
    // A wrong password: 401 with a message, no cookie.
    let refused = log_in(&server, &client, ADMIN_EMAIL, "wrong-password-1!", "/console").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get("set-cookie").is_none());
    assert!(refused.text().await.unwrap().contains("The email or password is wrong."));
    // Logged in: the cookie is HttpOnly, Secure, SameSite=Strict; an outside `next` is ignored.
    let ok = log_in(&server, &client, ADMIN_EMAIL, ADMIN_PASSWORD, "https://evil.example/steal").await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()["location"], "/console");
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let (status, html) = page(&server, &client, "/console").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<h1>Dashboard</h1>"));

    // Forms need the session's CSRF token.
    let (_, form_page) = page(&server, &client, "/console/policies/new").await;
    let token = csrf(&form_page);
    let policy = [("name", "<script>alert(1)</script>"), ("query", "SELECT 1;"), ("team_id", "0"), ("script_id", "0")];
    let forged = client.post(format!("{}/console/policies/new", server.url)).form(&policy).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "no token");
    assert_eq!(server.get("/api/v1/fleet/policies/count", &admin_token).await.1["count"], 0);
    let mut with_token = policy.to_vec();
    with_token.push(("csrf", &token));
    let saved = client.post(format!("{}/console/policies/new", server.url)).form(&with_token).send().await.unwrap();
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let (_, list) = page(&server, &client, "/console/policies").await;
    assert!(list.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !list.contains("<script>alert"), "escaped");
    // Bad input: a 422 page naming the field, nothing saved.
    let bad = [("name", "x"), ("query", "SELECT 1;"), ("interval", "soon"), ("csrf", token.as_str())];
    let refused = client.post(format!("{}/console/policies/new", server.url)).form(&bad).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("interval"), "names the field");
    let bad_deferral =
        [("name", "y"), ("query", "SELECT 1;"), ("deferral", "{\"options\": [\"0h\"]}"), ("csrf", token.as_str())];
    let refused = client.post(format!("{}/console/policies/new", server.url)).form(&bad_deferral).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(server.get("/api/v1/fleet/policies/count", &admin_token).await.1["count"], 1);
    let (status, _) = page(&server, &client, "/console/hosts/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = page(&server, &client, "/console/hosts?status=sleeping").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Teams, scripts, users and settings from their pages; bad ones refused with the reason.
    let post = |path: &str, fields: Vec<(&str, &str)>| {
        let mut fields: Vec<(String, String)> =
            fields.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        fields.push(("csrf".into(), token.clone()));
        client.post(format!("{}{path}", server.url)).form(&fields).send()
    };
    assert_eq!(post("/console/teams", vec![("name", "Kiosks")]).await.unwrap().status(), StatusCode::SEE_OTHER);
    assert_eq!(post("/console/teams", vec![("name", "")]).await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);
    let script = vec![("name", "hello.sh"), ("team_id", "0"), ("contents", "echo hi\r\n")];
    assert_eq!(post("/console/scripts", script).await.unwrap().status(), StatusCode::SEE_OTHER);
    let (_, scripts) = server.get("/api/v1/fleet/scripts", &admin_token).await;
    assert_eq!(scripts["scripts"][0]["name"], "hello.sh");
    let bad_script = vec![("name", "hello.exe"), ("team_id", "0"), ("contents", "x")];
    assert_eq!(post("/console/scripts", bad_script).await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);
    let profile =
        "identifier: com.acme.motd\nname: MOTD\npayloads:\n  - type: file\n    path: /etc/motd\n    content: hi\n";
    let made = post("/console/profiles", vec![("file_name", "motd.yml"), ("team_id", "0"), ("contents", profile)])
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let (_, profiles) = server.get("/api/v1/fleet/configuration_profiles", &admin_token).await;
    assert_eq!(profiles["profiles"][0]["identifier"], "com.acme.motd");
    let bad_profile =
        vec![("file_name", "x.yml"), ("team_id", "0"), ("contents", "identifier: a\nname: b\npayloads: []\n")];
    let refused = post("/console/profiles", bad_profile).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("profile.payloads"));
    let new_user = vec![
        ("name", "Ann"),
        ("email", "ann@example.com"),
        ("password", "ann-password-1!"),
        ("global_role", "observer"),
    ];
    assert_eq!(post("/console/users", new_user).await.unwrap().status(), StatusCode::SEE_OTHER);
    let weak = vec![("name", "Bob"), ("email", "bob@example.com"), ("password", "short"), ("global_role", "observer")];
    assert_eq!(post("/console/users", weak).await.unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);
    let settings = vec![
        ("org_name", "Acme"),
        ("contact_url", ""),
        ("policy_interval", "600"),
        ("vitals_interval", "3600"),
        ("agent_options", "{\"config\": {\"options\": {\"distributed_interval\": 30}}}"),
    ];
    assert_eq!(post("/console/settings", settings).await.unwrap().status(), StatusCode::SEE_OTHER);
    let (_, config) = server.get("/api/v1/fleet/config", &admin_token).await;
    assert_eq!(
        (config["org_info"]["org_name"].as_str(), config["host_settings"]["policy_interval"].as_i64()),
        (Some("Acme"), Some(600))
    );
    assert_eq!(config["agent_options"]["config"]["options"]["distributed_interval"], 30);
    let broken =
        vec![("org_name", "Acme"), ("policy_interval", "600"), ("vitals_interval", "3600"), ("mdm", "{not json")];
    let refused = post("/console/settings", broken).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("mdm"));

    // Deleting from the console: a profile, a script, a policy (only with the box ticked).
    let uuid = profiles["profiles"][0]["profile_uuid"].as_str().unwrap().to_string();
    assert_eq!(
        post(&format!("/console/profiles/{uuid}/delete"), vec![]).await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(server.get("/api/v1/fleet/configuration_profiles", &admin_token).await.1["profiles"], json!([]));
    let script_id = scripts["scripts"][0]["id"].as_i64().unwrap();
    assert_eq!(
        post(&format!("/console/scripts/{script_id}/delete"), vec![]).await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(server.get("/api/v1/fleet/scripts", &admin_token).await.1["scripts"], json!([]));
    let (_, listed) = server.get("/api/v1/fleet/global/policies", &admin_token).await;
    let policy_id = listed["policies"][0]["id"].as_i64().unwrap();
    let unconfirmed = post(&format!("/console/policies/{policy_id}/delete"), vec![]).await.unwrap();
    assert_eq!(unconfirmed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let confirmed = post(&format!("/console/policies/{policy_id}/delete"), vec![("confirm", "yes")]).await.unwrap();
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.get("/api/v1/fleet/policies/count", &admin_token).await.1["count"], 0);

    // Roles: a team observer sees their team's hosts only, and not the users page.
    let (_, team) = server.post("/api/v1/fleet/teams", &admin_token, json!({"name": "Lab"})).await;
    let team_id = team["team"]["id"].as_i64().unwrap();
    let mut inside = TestHost::new("lab-host");
    inside.enroll(&server, ENROLL_SECRET).await;
    let mut outside = TestHost::new("office-host");
    outside.enroll(&server, ENROLL_SECRET).await;
    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin_token).await;
    let id_of = |name: &str| {
        hosts["hosts"].as_array().unwrap().iter().find(|h| h["hostname"] == name).map(|h| h["id"].as_i64().unwrap())
    };
    let (lab, office) = (id_of("lab-host").unwrap(), id_of("office-host").unwrap());
    server.post("/api/v1/fleet/hosts/transfer", &admin_token, json!({"team_id": team_id, "hosts": [lab]})).await;
    server.user_token(&admin_token, "lab@example.com", "observer", Some(team_id)).await;
    let observer = server.browser();
    assert_eq!(
        log_in(&server, &observer, "lab@example.com", "user-password-1!", "/console").await.status(),
        StatusCode::SEE_OTHER
    );
    let (_, listed) = page(&server, &observer, "/console/hosts").await;
    assert!(listed.contains("lab-host") && !listed.contains("office-host"), "{listed}");
    assert_eq!(page(&server, &observer, &format!("/console/hosts/{office}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(page(&server, &observer, &format!("/console/hosts/{lab}")).await.0, StatusCode::OK);
    assert_eq!(page(&server, &observer, "/console/users").await.0, StatusCode::FORBIDDEN);
    let (_, observer_form) = page(&server, &observer, &format!("/console/hosts/{lab}")).await;
    let delete = [("do", "delete"), ("confirm", "yes"), ("csrf", &csrf(&observer_form))];
    let denied =
        observer.post(format!("{}/console/hosts/{lab}/action", server.url)).form(&delete).send().await.unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN, "observers cannot delete");

    // Logging out ends the session.
    let (_, html) = page(&server, &client, "/console").await;
    let out =
        client.post(format!("{}/console/logout", server.url)).form(&[("csrf", csrf(&html))]).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(page(&server, &client, "/console").await.0, StatusCode::SEE_OTHER);
}
