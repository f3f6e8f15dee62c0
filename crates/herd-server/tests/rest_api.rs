//! End-to-end: Fleet's REST API on the real `herd` binary — auth, roles, users, teams, config, bad input.

use herd_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, ENROLL_SECRET, Server, TestHost};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

herd_testkit::server_cases!(
    login_me_logout_and_rate_limit,
    roles_are_enforced_on_every_surface,
    users_are_managed_by_admins,
    teams_and_enroll_secrets,
    config_patch_validates_and_names_fields,
    host_listing_filters_and_pagination,
    bad_input_gets_clear_4xx,
    health_and_metrics,
    rest_changes_are_recorded_as_the_console_s_are,
);

async fn login_me_logout_and_rate_limit(server: Server) {
    let (status, body) = server
        .request(
            Method::POST,
            "/api/v1/fleet/login",
            None,
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"]["global_role"], "admin");
    assert_eq!(body["user"]["email"], ADMIN_EMAIL);
    let token = body["token"].as_str().unwrap().to_string();
    let (status, me) = server.get("/api/latest/fleet/me", &token).await;
    assert_eq!((status, &me["user"]["email"]), (StatusCode::OK, &json!(ADMIN_EMAIL)));
    let (status, _) = server.post("/api/v1/fleet/logout", &token, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server.get("/api/v1/fleet/me", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a logged-out token is dead");
    assert_eq!(body["errors"][0]["name"], "base");
    let (status, _) = server.request(Method::GET, "/api/v1/fleet/hosts", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Ten failed passwords for one account from one address, then 429 with Retry-After for that account from
    // that address, even with the right password; successes are never counted. (Bad tokens are counted apart;
    // other accounts from this address are unaffected: tests/auth_limits.rs.)
    for _ in 0..10 {
        let (status, body) = server
            .request(
                Method::POST,
                "/api/v1/fleet/login",
                None,
                Some(json!({"email": ADMIN_EMAIL, "password": "wrong-password-1!"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["message"], "Authentication failed");
    }
    let response = server
        .client
        .post(format!("{}/api/v1/fleet/login", server.url))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry_after), "failures are kept for one to two minutes: {retry_after}");
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("retry"));
}

async fn roles_are_enforced_on_every_surface(server: Server) {
    let admin = server.admin_token().await;
    let (_, team) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Team A"})).await;
    let team_a = team["team"]["id"].as_i64().unwrap();
    let team_a_secret = team["team"]["secrets"][0]["secret"].as_str().unwrap().to_string();
    let (_, team) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Team B"})).await;
    let team_b = team["team"]["id"].as_i64().unwrap();

    let mut in_a = TestHost::new("in-a");
    in_a.enroll(&server, &team_a_secret).await;
    let mut global = TestHost::new("no-team");
    global.enroll(&server, ENROLL_SECRET).await;
    let (_, hosts) = server.get("/api/v1/fleet/hosts?order_key=hostname", &admin).await;
    let id_of = |name: &str| {
        hosts["hosts"].as_array().unwrap().iter().find(|h| h["hostname"] == name).unwrap()["id"].as_i64().unwrap()
    };
    let (host_a, host_global) = (id_of("in-a"), id_of("no-team"));

    let observer = server.user_token(&admin, "observer@example.com", "observer", None).await;
    let maintainer = server.user_token(&admin, "maintainer@example.com", "maintainer", None).await;
    let a_maint = server.user_token(&admin, "a-maint@example.com", "maintainer", Some(team_a)).await;
    let a_obs = server.user_token(&admin, "a-obs@example.com", "observer", Some(team_a)).await;
    let a_admin = server.user_token(&admin, "a-admin@example.com", "admin", Some(team_a)).await;

    // Reading hosts: global roles see all, team roles only their team (others are 404, not 403).
    assert_eq!(server.get("/api/v1/fleet/hosts", &observer).await.1["hosts"].as_array().unwrap().len(), 2);
    let seen_by_a_obs = server.get("/api/v1/fleet/hosts", &a_obs).await.1;
    assert_eq!(seen_by_a_obs["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(seen_by_a_obs["hosts"][0]["id"].as_i64(), Some(host_a));
    assert_eq!(server.get(&format!("/api/v1/fleet/hosts/{host_global}"), &a_obs).await.0, StatusCode::NOT_FOUND);
    assert_eq!(server.get(&format!("/api/v1/fleet/hosts/{host_a}"), &a_obs).await.0, StatusCode::OK);
    assert_eq!(server.get(&format!("/api/v1/fleet/hosts?team_id={team_b}"), &a_obs).await.0, StatusCode::FORBIDDEN);
    assert_eq!(server.get("/api/v1/fleet/hosts/count", &a_obs).await.1["count"], 1);

    // Refetch: observers may; deleting: maintainers and up, in scope.
    assert_eq!(
        server.post(&format!("/api/v1/fleet/hosts/{host_a}/refetch"), &a_obs, json!({})).await.0,
        StatusCode::OK
    );
    assert_eq!(server.delete(&format!("/api/v1/fleet/hosts/{host_a}"), &observer).await.0, StatusCode::FORBIDDEN);
    assert_eq!(server.delete(&format!("/api/v1/fleet/hosts/{host_a}"), &a_obs).await.0, StatusCode::FORBIDDEN);
    assert_eq!(server.delete(&format!("/api/v1/fleet/hosts/{host_global}"), &a_maint).await.0, StatusCode::NOT_FOUND);
    let transfer = json!({"team_id": team_a, "hosts": [host_global]});
    // A host the user cannot read is ignored like an unknown id (Fleet ignores those): nothing moves.
    assert_eq!(server.post("/api/v1/fleet/hosts/transfer", &a_maint, transfer.clone()).await.0, StatusCode::OK);
    let unmoved = server.get(&format!("/api/v1/fleet/hosts/{host_global}"), &admin).await.1;
    assert_eq!(unmoved["host"]["team_id"], Value::Null, "{unmoved}");
    assert_eq!(server.post("/api/v1/fleet/hosts/transfer", &observer, transfer.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(server.post("/api/v1/fleet/hosts/transfer", &maintainer, transfer).await.0, StatusCode::OK);
    assert_eq!(server.delete(&format!("/api/v1/fleet/hosts/{host_global}"), &a_maint).await.0, StatusCode::OK);

    // Config: everyone reads, only global admins write.
    assert_eq!(server.get("/api/v1/fleet/config", &a_obs).await.0, StatusCode::OK);
    let patch = json!({"org_info": {"org_name": "Nope"}});
    for token in [&observer, &maintainer, &a_admin] {
        assert_eq!(server.patch("/api/v1/fleet/config", token, patch.clone()).await.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(server.patch("/api/v1/fleet/config", &admin, patch).await.0, StatusCode::OK);

    // Teams: only global admins create and delete; team admins edit their own team.
    assert_eq!(server.post("/api/v1/fleet/teams", &maintainer, json!({"name": "C"})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(server.post("/api/v1/fleet/teams", &a_admin, json!({"name": "C"})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        server.patch(&format!("/api/v1/fleet/teams/{team_a}"), &a_admin, json!({"description": "ours"})).await.0,
        StatusCode::OK
    );
    // A team the user cannot read answers as a missing one.
    assert_eq!(
        server.patch(&format!("/api/v1/fleet/teams/{team_b}"), &a_admin, json!({"description": "theirs"})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.patch(&format!("/api/v1/fleet/teams/{team_a}"), &a_maint, json!({"description": "x"})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(server.delete(&format!("/api/v1/fleet/teams/{team_a}"), &a_admin).await.0, StatusCode::FORBIDDEN);
    let teams_seen = server.get("/api/v1/fleet/teams", &a_obs).await.1;
    assert_eq!(teams_seen["teams"].as_array().unwrap().len(), 1);
    assert_eq!(teams_seen["teams"][0]["secrets"], json!([]), "observers do not see enroll secrets");

    // Enroll secrets: maintainers and up, in scope.
    assert_eq!(server.get(&format!("/api/v1/fleet/teams/{team_a}/secrets"), &a_maint).await.0, StatusCode::OK);
    assert_eq!(server.get(&format!("/api/v1/fleet/teams/{team_a}/secrets"), &a_obs).await.0, StatusCode::FORBIDDEN);
    assert_eq!(server.get(&format!("/api/v1/fleet/teams/{team_b}/secrets"), &a_maint).await.0, StatusCode::NOT_FOUND);
    assert_eq!(server.get("/api/v1/fleet/spec/enroll_secret", &a_maint).await.0, StatusCode::FORBIDDEN);
    assert_eq!(server.get("/api/v1/fleet/spec/enroll_secret", &observer).await.0, StatusCode::FORBIDDEN);
    let (status, secrets) = server.get("/api/v1/fleet/spec/enroll_secret", &maintainer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(secrets["spec"]["secrets"][0]["secret"], ENROLL_SECRET);

    // Users: global admins only.
    for token in [&observer, &maintainer, &a_admin] {
        assert_eq!(server.get("/api/v1/fleet/users", token).await.0, StatusCode::FORBIDDEN);
        let body =
            json!({"name": "x", "email": "x@example.com", "password": "user-password-1!", "global_role": "admin"});
        assert_eq!(server.post("/api/v1/fleet/users/admin", token, body).await.0, StatusCode::FORBIDDEN);
    }
}

async fn users_are_managed_by_admins(server: Server) {
    let admin = server.admin_token().await;
    let (status, created) = server
        .post("/api/v1/fleet/users/admin", &admin, json!({"name": "Bot", "email": "bot@example.com", "password": "bot-password-1!", "global_role": "observer", "api_only": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["user"]["api_only"], true);
    let bot_id = created["user"]["id"].as_i64().unwrap();
    let bot = server.login("bot@example.com", "bot-password-1!").await;
    assert_eq!(server.get("/api/v1/fleet/hosts", &bot).await.0, StatusCode::OK);

    let (status, body) =
        server.patch(&format!("/api/v1/fleet/users/{bot_id}"), &bot, json!({"global_role": "admin"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no self-promotion: {body}");
    let (status, body) = server.patch(&format!("/api/v1/fleet/users/{bot_id}"), &bot, json!({"name": "Robot"})).await;
    assert_eq!((status, &body["user"]["name"]), (StatusCode::OK, &json!("Robot")));
    let (status, body) = server
        .post(
            "/api/v1/fleet/change_password",
            &bot,
            json!({"old_password": "wrong-password-1!", "new_password": "new-password-2?"}),
        )
        .await;
    assert_eq!((status, &body["errors"][0]["name"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("old_password")));
    let (status, _) = server
        .post(
            "/api/v1/fleet/change_password",
            &bot,
            json!({"old_password": "bot-password-1!", "new_password": "new-password-2?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.login("bot@example.com", "new-password-2?").await;

    let (status, body) =
        server.patch(&format!("/api/v1/fleet/users/{bot_id}"), &admin, json!({"global_role": "maintainer"})).await;
    assert_eq!((status, &body["user"]["global_role"]), (StatusCode::OK, &json!("maintainer")));
    let (_, users) = server.get("/api/v1/fleet/users", &admin).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);

    // The last global admin can neither be demoted nor deleted.
    let (_, me) = server.get("/api/v1/fleet/me", &admin).await;
    let admin_id = me["user"]["id"].as_i64().unwrap();
    assert_eq!(
        server.patch(&format!("/api/v1/fleet/users/{admin_id}"), &admin, json!({"global_role": "observer"})).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(server.delete(&format!("/api/v1/fleet/users/{admin_id}"), &admin).await.0, StatusCode::CONFLICT);

    let (status, _) = server.delete(&format!("/api/v1/fleet/users/{bot_id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.get("/api/v1/fleet/me", &bot).await.0, StatusCode::UNAUTHORIZED, "sessions die with the user");

    // Duplicates and bad fields.
    let dup =
        json!({"name": "Admin 2", "email": "ADMIN@herd.local", "password": "user-password-1!", "global_role": "admin"});
    assert_eq!(server.post("/api/v1/fleet/users/admin", &admin, dup).await.0, StatusCode::CONFLICT);
    let cases = [
        (
            json!({"name": "x", "email": "not-an-email", "password": "user-password-1!", "global_role": "admin"}),
            "email",
        ),
        (json!({"name": "x", "email": "x@example.com", "password": "short", "global_role": "admin"}), "password"),
        (
            json!({"name": "x", "email": "x@example.com", "password": "user-password-1!", "global_role": "root"}),
            "global_role",
        ),
        (json!({"name": "x", "email": "x@example.com", "password": "user-password-1!"}), "global_role"),
        (
            json!({"name": "x", "email": "x@example.com", "password": "user-password-1!", "teams": [{"id": 999, "role": "observer"}]}),
            "teams",
        ),
        (
            json!({"name": "x", "email": "x@example.com", "password": "user-password-1!", "teams": [{"id": 1, "role": "boss"}]}),
            "teams[0].role",
        ),
        (json!({"name": "", "email": "x@example.com", "password": "user-password-1!", "global_role": "admin"}), "name"),
        (
            json!({"name": "x", "email": "x@example.com", "password": "user-password-1!", "global_role": "admin", "is_root": true}),
            "is_root",
        ),
    ];
    for (body, field) in cases {
        let (status, reply) = server.post("/api/v1/fleet/users/admin", &admin, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {reply}");
        assert_eq!(reply["errors"][0]["name"], field, "{body} → {reply}");
    }
}

async fn teams_and_enroll_secrets(server: Server) {
    let admin = server.admin_token().await;
    let odd_name = "Robert'); DROP TABLE teams;--";
    let (status, team) =
        server.post("/api/v1/fleet/teams", &admin, json!({"name": odd_name, "description": "<script>"})).await;
    assert_eq!(status, StatusCode::OK, "{team}");
    let id = team["team"]["id"].as_i64().unwrap();
    assert_eq!(team["team"]["name"], odd_name, "stored verbatim");
    assert_eq!(team["team"]["secrets"].as_array().unwrap().len(), 1, "a new team gets a secret");
    assert_eq!(server.post("/api/v1/fleet/teams", &admin, json!({"name": odd_name})).await.0, StatusCode::CONFLICT);
    let (status, reply) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "  "})).await;
    assert_eq!((status, &reply["errors"][0]["name"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("name")));
    let (status, reply) = server
        .post("/api/v1/fleet/teams", &admin, json!({"name": "Short secret", "secrets": [{"secret": "abc"}]}))
        .await;
    assert_eq!((status, &reply["errors"][0]["name"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("secrets[0].secret")));
    assert_eq!(
        server.get("/api/v1/fleet/teams", &admin).await.1["teams"].as_array().unwrap().len(),
        1,
        "nothing half-written"
    );

    let (status, reply) = server
        .patch(
            &format!("/api/v1/fleet/teams/{id}"),
            &admin,
            json!({"agent_options": {"config": {"options": {"distributed_interval": "fast"}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply["errors"][0]["name"], "agent_options.config.options.distributed_interval");
    let (status, reply) = server
        .post(
            &format!("/api/v1/fleet/teams/{id}/agent_options"),
            &admin,
            json!({"config": {"options": {"distributed_interval": 20}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["team"]["agent_options"]["config"]["options"]["distributed_interval"], 20);

    let (status, _) = server
        .post(
            "/api/v1/fleet/spec/enroll_secret",
            &admin,
            json!({"spec": {"secrets": [{"secret": "rotated-global-1"}, {"secret": "rotated-global-2"}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut host = TestHost::new("rotated");
    assert_eq!(host.enroll(&server, ENROLL_SECRET).await.0, StatusCode::UNAUTHORIZED, "the old global secret is gone");
    assert_eq!(host.enroll(&server, "rotated-global-2").await.0, StatusCode::OK);
    let (status, reply) = server
        .post(
            "/api/v1/fleet/spec/enroll_secret",
            &admin,
            json!({"spec": {"secrets": [{"secret": "dup-secret-1"}, {"secret": "dup-secret-1"}]}}),
        )
        .await;
    assert_eq!(
        (status, &reply["errors"][0]["name"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("spec.secrets[1].secret"))
    );

    let team_secret = server.get(&format!("/api/v1/fleet/teams/{id}/secrets"), &admin).await.1["secrets"][0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let mut member = TestHost::new("member");
    member.enroll(&server, &team_secret).await;
    let (_, team) = server.get(&format!("/api/v1/fleet/teams/{id}"), &admin).await;
    assert_eq!(team["team"]["host_count"], 1);
    assert_eq!(server.delete(&format!("/api/v1/fleet/teams/{id}"), &admin).await.0, StatusCode::OK);
    assert_eq!(server.get(&format!("/api/v1/fleet/teams/{id}"), &admin).await.0, StatusCode::NOT_FOUND);
    assert_eq!(member.read(&server).await.0, StatusCode::OK, "hosts of a deleted team stay enrolled");
    let (_, hosts) = server.get("/api/v1/fleet/hosts?team_id=0", &admin).await;
    assert_eq!(hosts["hosts"].as_array().unwrap().len(), 2, "both hosts are now in no team");
    assert_eq!(TestHost::new("late").enroll(&server, &team_secret).await.0, StatusCode::UNAUTHORIZED);
}

async fn config_patch_validates_and_names_fields(server: Server) {
    let admin = server.admin_token().await;
    let (status, config) = server.get("/api/v1/fleet/config", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["server_settings"]["server_url"], server.url);
    assert_eq!(config["host_settings"]["vitals_interval"], 3600);
    assert_eq!(config["agent_options"]["config"]["options"]["distributed_interval"], 10);

    let (status, config) = server
        .patch(
            "/api/v1/fleet/config",
            &admin,
            json!({"org_info": {"org_name": "Acme", "contact_url": "https://help.acme.test"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert_eq!(config["org_info"]["org_name"], "Acme");
    assert_eq!(config["server_settings"]["server_url"], server.url, "other sections untouched");
    let cases = [
        (json!({"org_info": {"org_nmae": "x"}}), "org_info.org_nmae"),
        (json!({"host_settings": {"vitals_interval": 1}}), "host_settings.vitals_interval"),
        (json!({"host_settings": {"vitals_interval": "hourly"}}), "host_settings.vitals_interval"),
        (json!({"org_info": {"contact_url": "ftp://x"}}), "org_info.contact_url"),
        (
            json!({"agent_options": {"config": {"options": {"distributed_interval": -1}}}}),
            "agent_options.config.options.distributed_interval",
        ),
        (json!({"agent_options": "none"}), "agent_options"),
        // An unknown section is named (Fleet's `features` is known: tests/fleet_paths.rs).
        (json!({"host_setting": {}}), "host_setting"),
    ];
    for (patch, field) in cases {
        let (status, reply) = server.patch("/api/v1/fleet/config", &admin, patch.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{patch} → {reply}");
        assert_eq!(reply["errors"][0]["name"], field, "{patch} → {reply}");
    }
    let (_, config) = server.get("/api/v1/fleet/config", &admin).await;
    assert_eq!(config["org_info"]["org_name"], "Acme", "refused patches change nothing");

    // A shorter vitals interval takes effect for hosts at once.
    let (status, _) =
        server.patch("/api/v1/fleet/config", &admin, json!({"host_settings": {"vitals_interval": 600}})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.get("/api/v1/fleet/config", &admin).await.1["host_settings"]["vitals_interval"], 600);
}

async fn host_listing_filters_and_pagination(server: Server) {
    let admin = server.admin_token().await;
    for name in ["alpha", "bravo", "charlie", "delta", "echo"] {
        TestHost::new(name).enroll(&server, ENROLL_SECRET).await;
    }
    let names = |body: &Value| {
        body["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["hostname"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (_, page) =
        server.get("/api/v1/fleet/hosts?order_key=hostname&order_direction=desc&per_page=2&page=1", &admin).await;
    assert_eq!(names(&page), ["charlie", "bravo"]);
    let (_, found) = server.get("/api/v1/fleet/hosts?query=ARL", &admin).await;
    assert_eq!(names(&found), ["charlie"]);
    let (_, found) = server.get("/api/v1/fleet/hosts?query=SN-echo", &admin).await;
    assert_eq!(names(&found), ["echo"], "search covers serial numbers");
    let (_, none) = server.get("/api/v1/fleet/hosts?query=%25", &admin).await;
    assert_eq!(names(&none), Vec::<String>::new());
    let (_, new) = server.get("/api/v1/fleet/hosts/count?status=new", &admin).await;
    assert_eq!(new["count"], 5);
    let (_, offline) = server.get("/api/v1/fleet/hosts/count?status=offline", &admin).await;
    assert_eq!(offline["count"], 5, "enrolled but never checked in");
    let (_, missing) = server.get("/api/v1/fleet/hosts/count?status=missing", &admin).await;
    assert_eq!(missing["count"], 0);
    for (query, field) in [
        ("order_key=password", "order_key"),
        ("order_direction=sideways", "order_direction"),
        ("status=asleep", "status"),
        ("per_page=0", "per_page"),
        ("page=-1", "page"),
        ("team_id=abc", "team_id"),
        ("policy_id=3", "policy_response"),
    ] {
        let (status, reply) = server.get(&format!("/api/v1/fleet/hosts?{query}"), &admin).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query} → {reply}");
        assert_eq!(reply["errors"][0]["name"], field, "{query}");
    }
    let (status, _) = server.get("/api/v1/fleet/hosts?device_mapping=true&populate_software=false", &admin).await;
    assert_eq!(status, StatusCode::OK, "harmless Fleet display parameters are accepted");
}

async fn bad_input_gets_clear_4xx(server: Server) {
    let admin = server.admin_token().await;
    let bodies: [(&[u8], StatusCode); 4] = [
        (b"{\"name\":", StatusCode::BAD_REQUEST),
        (b"", StatusCode::BAD_REQUEST),
        (b"[1,2]", StatusCode::BAD_REQUEST),
        (b"{\"name\": 42}", StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (body, want) in bodies {
        let (status, reply) = server
            .raw(
                Method::POST,
                "/api/v1/fleet/teams",
                Some(&admin),
                &[("Content-Type", "application/json")],
                body.to_vec(),
            )
            .await;
        assert_eq!(status, want, "{}", String::from_utf8_lossy(body));
        assert!(reply["message"].is_string() && reply["errors"][0]["reason"].is_string(), "{reply}");
    }
    server.assert_oversize_refused("/api/v1/fleet/teams", Some(&admin), 5 << 20).await;
    let (status, reply) = server.get("/api/v1/fleet/hosts/not-a-number", &admin).await;
    assert_eq!((status, &reply["errors"][0]["name"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("id")));
    let (status, reply) = server.get("/api/v1/fleet/no-such-thing", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(reply["message"].is_string());
    let (status, _) = server.get("/api/v1/fleet/hosts/99999", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, reply) =
        server.post("/api/v1/fleet/hosts/transfer", &admin, json!({"team_id": null, "hosts": "all"})).await;
    assert_eq!((status, &reply["errors"][0]["name"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("hosts")));
    // And the server keeps serving.
    assert_eq!(server.get("/api/v1/fleet/me", &admin).await.0, StatusCode::OK);
}

async fn health_and_metrics(server: Server) {
    let (status, health) = server.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    let mut host = TestHost::new("metered");
    host.enroll(&server, ENROLL_SECRET).await;
    host.read(&server).await;
    host.read(&server).await;
    let text = server.client.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("herd_hosts_enrolled 1"), "{text}");
    assert!(text.contains("herd_checkins_total 2"), "{text}");
    assert!(text.contains("herd_checkins_with_work_total 1"), "{text}");
    assert!(text.contains("herd_enrollments_total 1"), "{text}");
    assert!(
        text.contains(
            r#"herd_http_requests_total{route="/api/osquery/distributed/read",method="POST",status="200"} 2"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"herd_http_request_duration_seconds_count{route="/api/osquery/enroll"} 1"#), "{text}");
    assert!(text.contains("herd_worker_runs_total{worker=\"seen_time_flusher\"}"), "{text}");
}

/// The REST API and the console share one use case per change, so a host transfer and a configuration change
/// made over REST are in the activity feed exactly as the console's are (REST used to record neither).
async fn rest_changes_are_recorded_as_the_console_s_are(server: Server) {
    let admin = server.admin_token().await;
    let (_, enrolled) = TestHost::new("moved").enroll(&server, ENROLL_SECRET).await;
    assert!(enrolled["node_key"].is_string(), "{enrolled}");
    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    let host_id = hosts["hosts"][0]["id"].as_i64().unwrap();
    let (_, team) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Movers"})).await;
    let team_id = team["team"]["id"].as_i64().unwrap();
    let (status, _) = server
        .post("/api/v1/fleet/hosts/transfer", &admin, json!({"team_id": team_id, "hosts": [host_id, 424242]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let patch = json!({
        "org_info": {"org_name": "Recorded Inc"},
        "agent_options": {"config": {"options": {"distributed_interval": 10, "enroll_secret_path": "/etc/S3CRET"}}},
    });
    let (status, _) = server.request(Method::PATCH, "/api/v1/fleet/config", Some(&admin), Some(patch)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, feed) = server.get("/api/v1/fleet/activities", &admin).await;
    let activities = feed["activities"].as_array().unwrap();
    let transferred = activities.iter().find(|a| a["type"] == "transferred_hosts").expect("transfer recorded");
    assert_eq!(transferred["details"]["team_id"], team_id);
    assert_eq!(transferred["details"]["host_ids"], json!([host_id]), "only the host that moved");
    let edited = activities.iter().find(|a| a["type"] == "edited_settings").expect("config change recorded");
    assert_eq!(edited["details"]["org_info"]["org_name"], "Recorded Inc");
    assert!(!feed.to_string().contains("S3CRET"), "agent options are withheld from the feed: {feed}");
}
