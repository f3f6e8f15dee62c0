//! End-to-end: the failure limiter stops attackers, not users; sessions follow password changes; a forced
//! password reset confines the user; "at least one global admin" holds under concurrent removals.
//!
//! Every test client connects from 127.0.0.1: one address shared by attacker and users, as behind a proxy.

use herd_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, ENROLL_SECRET, Server, TestHost};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

herd_testkit::server_cases!(
    simultaneous_bad_logins_evaluate_at_most_the_budget,
    valid_credentials_from_a_noisy_address_still_succeed,
    change_password_is_limited_like_login,
    console_login_is_limited_like_login,
    password_changes_end_other_sessions,
    forced_password_reset_confines_the_user,
    own_email_change_needs_the_current_password,
    two_admins_deleting_each_other_leave_one,
);

/// Per (address, account) and window: `rate_limit::PASSWORD_FAILURES_PER_ADDRESS_AND_ACCOUNT`.
const PASSWORD_BUDGET: usize = 10;
/// Bad tokens and secrets per address and window: `rate_limit::BAD_TOKENS_PER_ADDRESS`.
const TOKEN_BUDGET: usize = 100;
const USER_PASSWORD: &str = "user-password-1!";

/// Sends `count` requests built by `make` all at once; their statuses, reasons and Retry-After headers.
async fn all_at_once(
    count: usize,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Vec<(StatusCode, Option<u64>, String)> {
    let mut set = JoinSet::new();
    for _ in 0..count {
        let request = make();
        set.spawn(async move {
            let response = request.send().await.expect("request");
            let status = response.status();
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
            (status, retry_after, response.text().await.unwrap())
        });
    }
    let mut results = Vec::new();
    while let Some(result) = set.join_next().await {
        results.push(result.unwrap());
    }
    results
}

fn count(results: &[(StatusCode, Option<u64>, String)], status: StatusCode) -> usize {
    results.iter().filter(|(s, _, _)| *s == status).count()
}

/// Every 429 carries Retry-After (1 s to two windows) and a body naming why.
fn assert_refusals_explained(results: &[(StatusCode, Option<u64>, String)], why: &str) {
    for (status, retry_after, body) in results.iter().filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS) {
        let retry_after = retry_after.unwrap_or_else(|| panic!("{status}: no Retry-After; {body}"));
        assert!((1..=120).contains(&retry_after), "Retry-After {retry_after}");
        assert!(body.contains(why), "{body}");
    }
}

async fn create_user(server: &Server, admin: &str, email: &str, role: &str) -> i64 {
    let body = json!({"name": email, "email": email, "password": USER_PASSWORD, "global_role": role});
    let (status, created) = server.post("/api/v1/fleet/users/admin", admin, body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created["user"]["id"].as_i64().unwrap()
}

fn login_request(server: &Server, email: &str, password: &str) -> reqwest::RequestBuilder {
    server
        .client
        .post(format!("{}/api/v1/fleet/login", server.url))
        .json(&json!({"email": email, "password": password}))
}

async fn simultaneous_bad_logins_evaluate_at_most_the_budget(server: Server) {
    let results = all_at_once(200, || login_request(&server, ADMIN_EMAIL, "wrong-password-1!")).await;
    let evaluated = count(&results, StatusCode::UNAUTHORIZED);
    assert!(evaluated <= PASSWORD_BUDGET, "{evaluated} of 200 simultaneous bad logins were evaluated");
    assert_eq!(evaluated + count(&results, StatusCode::TOO_MANY_REQUESTS), 200);
    assert_refusals_explained(&results, "too many failed password attempts for this account");
}

async fn valid_credentials_from_a_noisy_address_still_succeed(server: Server) {
    let admin = server.admin_token().await;
    create_user(&server, &admin, "victim@example.com", "observer").await;
    create_user(&server, &admin, "bystander@example.com", "observer").await;
    // An attacker behind the shared address hammers one account, and sprays bad session tokens.
    let results = all_at_once(60, || login_request(&server, "victim@example.com", "wrong-password-1!")).await;
    assert!(count(&results, StatusCode::UNAUTHORIZED) <= PASSWORD_BUDGET);
    assert_refusals_explained(&results, "from your address");
    let results = all_at_once(TOKEN_BUDGET + 20, || {
        server.client.get(format!("{}/api/v1/fleet/me", server.url)).bearer_auth("not-a-session-token")
    })
    .await;
    assert_eq!(count(&results, StatusCode::UNAUTHORIZED), TOKEN_BUDGET, "bad tokens: 401 up to the budget");
    assert_eq!(count(&results, StatusCode::TOO_MANY_REQUESTS), 20, "then 429");
    assert_refusals_explained(&results, "too many bad session tokens from your address");

    // Everyone else behind that address carries on: a valid session token, another account's password.
    let (status, me) = server.get("/api/v1/fleet/me", &admin).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    server.login("bystander@example.com", USER_PASSWORD).await;
    server.admin_token().await;
    // The attacked account itself is refused from this address, even with the right password (that is the
    // price of limiting per account: see the README's limiter model).
    let (status, body) = server
        .request(
            Method::POST,
            "/api/v1/fleet/login",
            None,
            Some(json!({"email": "victim@example.com", "password": USER_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    // Enroll secrets and device tokens: valid ones work whatever the address's failures.
    let bad_enrolls = all_at_once(TOKEN_BUDGET + 10, || {
        server.client.post(format!("{}/api/osquery/enroll", server.url)).json(&TestHost::new("x").enroll_body("bad"))
    })
    .await;
    assert_eq!(count(&bad_enrolls, StatusCode::UNAUTHORIZED), TOKEN_BUDGET);
    assert_eq!(count(&bad_enrolls, StatusCode::TOO_MANY_REQUESTS), 10);
    assert_refusals_explained(&bad_enrolls, "too many bad enroll secrets from your address");
    let mut host = TestHost::new("noisy-office-laptop");
    host.enroll(&server, ENROLL_SECRET).await;
    let device_token = "8c4e1f2a-7b39-4d05-9e6a-13f5c0d2b7e4";
    let (status, _) = server
        .osquery("/api/fleet/orbit/device_token", json!({"node_key": host.node_key, "device_auth_token": device_token}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let bad_devices = all_at_once(TOKEN_BUDGET + 10, || {
        server.client.get(format!("{}/api/latest/fleet/device/not-a-device-token-000/desktop", server.url))
    })
    .await;
    assert_eq!(count(&bad_devices, StatusCode::UNAUTHORIZED), TOKEN_BUDGET);
    assert_eq!(count(&bad_devices, StatusCode::TOO_MANY_REQUESTS), 10);
    assert_refusals_explained(&bad_devices, "too many bad device tokens from your address");
    let desktop = server
        .client
        .get(format!("{}/api/latest/fleet/device/{device_token}/desktop", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(desktop.status(), StatusCode::OK);
}

async fn change_password_is_limited_like_login(server: Server) {
    let admin = server.admin_token().await;
    create_user(&server, &admin, "thief-target@example.com", "observer").await;
    let stolen = server.login("thief-target@example.com", USER_PASSWORD).await;
    // Someone holding a stolen session guesses the password through change_password, all at once.
    let results = all_at_once(100, || {
        server
            .client
            .post(format!("{}/api/v1/fleet/change_password", server.url))
            .bearer_auth(&stolen)
            .json(&json!({"old_password": "a-guess-at-it-1!", "new_password": "taken-over-pass-2?"}))
    })
    .await;
    let evaluated = count(&results, StatusCode::UNPROCESSABLE_ENTITY);
    assert!((1..=PASSWORD_BUDGET).contains(&evaluated), "{evaluated} guesses evaluated");
    assert_eq!(evaluated + count(&results, StatusCode::TOO_MANY_REQUESTS), 100);
    assert_refusals_explained(&results, "too many failed password attempts for this account");
    // They share the account's count with logins.
    let (status, _) = server
        .request(
            Method::POST,
            "/api/v1/fleet/login",
            None,
            Some(json!({"email": "thief-target@example.com", "password": "another-guess-1!"})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

async fn console_login_is_limited_like_login(server: Server) {
    let client = server.browser();
    let results = all_at_once(200, || {
        client.post(format!("{}/console/login", server.url)).form(&[
            ("email", ADMIN_EMAIL),
            ("password", "wrong-password-1!"),
            ("next", "/console"),
        ])
    })
    .await;
    let evaluated = count(&results, StatusCode::UNAUTHORIZED);
    assert!(evaluated <= PASSWORD_BUDGET, "{evaluated} of 200 simultaneous console logins were evaluated");
    assert_eq!(evaluated + count(&results, StatusCode::TOO_MANY_REQUESTS), 200);
    assert_refusals_explained(&results, "Too many failed password attempts for this account");
    // The console and the REST API share the count.
    let refused = login_request(&server, ADMIN_EMAIL, "wrong-password-1!").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
}

async fn password_changes_end_other_sessions(server: Server) {
    let admin = server.admin_token().await;
    let ada = create_user(&server, &admin, "ada@example.com", "observer").await;
    let laptop = server.login("ada@example.com", USER_PASSWORD).await;
    let phone = server.login("ada@example.com", USER_PASSWORD).await;
    let (status, body) = server
        .post(
            "/api/v1/fleet/change_password",
            &laptop,
            json!({"old_password": USER_PASSWORD, "new_password": "ada-new-pass-2?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server.get("/api/v1/fleet/me", &laptop).await.0, StatusCode::OK, "the changing session stays");
    assert_eq!(server.get("/api/v1/fleet/me", &phone).await.0, StatusCode::UNAUTHORIZED, "the others end");
    assert_eq!(server.get("/api/v1/fleet/me", &admin).await.0, StatusCode::OK, "other users are untouched");

    // An admin resets it: every session of the user ends, the admin's stays.
    let phone = server.login("ada@example.com", "ada-new-pass-2?").await;
    let (status, body) =
        server.patch(&format!("/api/v1/fleet/users/{ada}"), &admin, json!({"new_password": "admin-set-pass-3#"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["force_password_reset"], true);
    for token in [&laptop, &phone] {
        assert_eq!(server.get("/api/v1/fleet/me", token).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(server.get("/api/v1/fleet/me", &admin).await.0, StatusCode::OK);
    server.login("ada@example.com", "admin-set-pass-3#").await;
}

async fn forced_password_reset_confines_the_user(server: Server) {
    let admin = server.admin_token().await;
    let body = json!({"name": "Bo", "email": "bo@example.com", "password": USER_PASSWORD, "global_role": "maintainer",
        "admin_forced_password_reset": true});
    let (status, created) = server.post("/api/v1/fleet/users/admin", &admin, body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let bo = server.login("bo@example.com", USER_PASSWORD).await;
    let (status, me) = server.get("/api/latest/fleet/me", &bo).await;
    assert_eq!((status, &me["user"]["force_password_reset"]), (StatusCode::OK, &json!(true)));
    for (method, path) in [
        (Method::GET, "/api/v1/fleet/hosts"),
        (Method::GET, "/api/latest/fleet/config"),
        (Method::GET, "/api/v1/fleet/global/policies"),
        (Method::POST, "/api/v1/fleet/teams"),
        (Method::PATCH, "/api/v1/fleet/users/1"),
        (Method::GET, "/api/v1/fleet/hosts/identifier/me"),
    ] {
        let (status, body) = server.request(method.clone(), path, Some(&bo), Some(json!({"name": "x"}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert!(body["errors"][0]["reason"].as_str().unwrap().contains("password reset required"), "{body}");
    }
    // The console says the same, and offers the way out.
    let client = server.browser();
    let form = [("email", "bo@example.com"), ("password", USER_PASSWORD), ("next", "/console")];
    let login = client.post(format!("{}/console/login", server.url)).form(&form).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let page = client.get(format!("{}/console/hosts", server.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.text().await.unwrap().contains("/console/password"));
    let page = client.get(format!("{}/console/password", server.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(!html.contains("old_password"), "a required reset does not ask for the admin's password");

    // Fleet's way out: a new password, no old one; the user is free again and other sessions ended.
    let other = server.login("bo@example.com", USER_PASSWORD).await;
    let (status, body) = server
        .post("/api/v1/fleet/perform_required_password_reset", &bo, json!({"new_password": "bo-own-pass-4$"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["force_password_reset"], false);
    assert_eq!(server.get("/api/v1/fleet/hosts", &bo).await.0, StatusCode::OK);
    assert_eq!(server.get("/api/v1/fleet/me", &other).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .post("/api/v1/fleet/perform_required_password_reset", &bo, json!({"new_password": "bo-own-pass-5$"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "only while a reset is required");
    // Logging out still works for a confined user (checked with a fresh reset).
    let (_, me) = server.get("/api/v1/fleet/me", &bo).await;
    let bo_id = me["user"]["id"].as_i64().unwrap();
    server.patch(&format!("/api/v1/fleet/users/{bo_id}"), &admin, json!({"new_password": "admin-set-pass-6&"})).await;
    let bo = server.login("bo@example.com", "admin-set-pass-6&").await;
    assert_eq!(server.post("/api/v1/fleet/logout", &bo, json!({})).await.0, StatusCode::OK);
}

async fn own_email_change_needs_the_current_password(server: Server) {
    let admin = server.admin_token().await;
    let cy = create_user(&server, &admin, "cy@example.com", "observer").await;
    let session = server.login("cy@example.com", USER_PASSWORD).await;
    let path = format!("/api/v1/fleet/users/{cy}");
    let (status, body) = server.patch(&path, &session, json!({"email": "attacker@evil.example"})).await;
    assert_eq!((status, &body["errors"][0]["name"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("password")), "{body}");
    let (status, body) =
        server.patch(&path, &session, json!({"email": "attacker@evil.example", "password": "a-guess-1!"})).await;
    assert_eq!((status, &body["errors"][0]["name"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("password")), "{body}");
    assert_eq!(server.get(&path, &admin).await.1["user"]["email"], "cy@example.com");
    let (status, body) =
        server.patch(&path, &session, json!({"email": "cy@new.example", "password": USER_PASSWORD})).await;
    assert_eq!((status, &body["user"]["email"]), (StatusCode::OK, &json!("cy@new.example")));
    // Other edits of oneself, and an admin's edits of others, need no password.
    assert_eq!(server.patch(&path, &session, json!({"name": "Cy"})).await.0, StatusCode::OK);
    let (status, body) = server.patch(&path, &admin, json!({"email": "cy@example.com"})).await;
    assert_eq!((status, &body["user"]["email"]), (StatusCode::OK, &json!("cy@example.com")));
}

/// With exactly two admins, each removes the other at the same moment (deleting, then demoting): one wins,
/// the other is refused (409), and one admin remains. Several rounds, so the race is really run.
async fn two_admins_deleting_each_other_leave_one(server: Server) {
    let (_, me) = server.get("/api/v1/fleet/me", &server.admin_token().await).await;
    let mut survivor = (me["user"]["id"].as_i64().unwrap(), ADMIN_EMAIL.to_string(), ADMIN_PASSWORD.to_string());
    for round in 0..8 {
        let survivor_token = server.login(&survivor.1, &survivor.2).await;
        let email = format!("admin-{round}@example.com");
        let other_id = create_user(&server, &survivor_token, &email, "admin").await;
        let other_token = server.login(&email, USER_PASSWORD).await;
        let demote = round % 2 == 1;
        let remove = |token: String, id: i64| {
            let url = format!("{}/api/v1/fleet/users/{id}", server.url);
            let request = if demote {
                server.client.patch(url).json(&json!({"global_role": "observer"}))
            } else {
                server.client.delete(url)
            };
            request.bearer_auth(token).send()
        };
        let (first, second) =
            tokio::join!(remove(survivor_token.clone(), other_id), remove(other_token.clone(), survivor.0));
        let statuses = [first.unwrap().status(), second.unwrap().status()];
        let admins =
            |users: &Value| users["users"].as_array().unwrap().iter().filter(|u| u["global_role"] == "admin").count();
        // Whoever is still an admin can list the users.
        let mut remaining = None;
        for (token, candidate) in
            [(&survivor_token, survivor.clone()), (&other_token, (other_id, email.clone(), USER_PASSWORD.to_string()))]
        {
            let (status, users) = server.get("/api/v1/fleet/users", token).await;
            if status == StatusCode::OK {
                assert_eq!(admins(&users), 1, "round {round}: {statuses:?}");
                remaining = Some(candidate);
            }
        }
        let remaining = remaining.unwrap_or_else(|| panic!("round {round}: no admin left ({statuses:?})"));
        // One wins; the other is refused: 409 (the last admin), or — when the winner's change landed before
        // the loser's request was authenticated — 401 (deleted) or 403 (no longer an admin).
        let refusals = [StatusCode::CONFLICT, StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN];
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "round {round}: {statuses:?}");
        assert!(statuses.iter().any(|s| refusals.contains(s)), "round {round}: {statuses:?}");
        survivor = remaining;
    }
}
