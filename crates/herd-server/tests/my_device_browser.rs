//! The My Device page in a real headless Chromium, driven over WebDriver (chromedriver): it loads, lists
//! failing policies first, Refetch updates the page as the results arrive, Start migration starts it; basic
//! accessibility holds (language, one h1, labelled controls, keyboard focus). A screenshot of each state is
//! kept under target/browser-artifacts/.
//!
//! Needs Debian's `chromium` and `chromium-driver`: `scripts/test` installs them and sets
//! HERD_TEST_CHROMEDRIVER; without it the test is skipped, or fails when REQUIRE_BROWSER=1.

use herd_testkit::browser::Browser;
use herd_testkit::{ENROLL_SECRET, Server, TestHost, eventually};
use serde_json::{Value, json};
use std::time::Duration;

const TOKEN: &str = "c41d8f2e-7a3b-4b9c-9e0d-6f5a4b3c2d1e";
const PATIENCE: Duration = Duration::from_secs(60);

async fn answer(host: &TestHost, server: &Server, answers: &[(String, Value)]) {
    let queries: serde_json::Map<String, Value> = answers.iter().cloned().collect();
    let statuses: serde_json::Map<String, Value> = answers.iter().map(|(k, _)| (k.clone(), json!(0))).collect();
    assert_eq!(host.write(server, Value::Object(queries), Value::Object(statuses)).await.0, 200);
}

async fn my_device_page_in_chromium(server: Server) {
    let Some(chromedriver) = herd_testkit::browser::chromedriver() else { return };
    let admin = server.admin_token().await;
    let settings = json!({
        "org_info": {"org_name": "Acme", "contact_url": "https://help.acme.test"},
        "mdm": {"macos_migration": {"enable": true, "mode": "voluntary", "webhook_url": "https://migration.example.test/unused"},
                "migration_query": "SELECT 1;"}
    });
    assert_eq!(server.patch("/api/v1/fleet/config", &admin, settings).await.0, 200);
    let mut ids = Vec::new();
    for (name, resolution) in [("Firewall on", "Run: sudo ufw enable"), ("Disk encrypted", "")] {
        let body = json!({"name": name, "query": "SELECT 1;", "resolution": resolution});
        let (_, created) = server.post("/api/v1/fleet/global/policies", &admin, body).await;
        ids.push(created["policy"]["id"].as_i64().unwrap());
    }
    let q = |id: i64| format!("fleet_policy_query_{id}");
    let mut host = TestHost::new("browser-laptop");
    host.enroll(&server, ENROLL_SECRET).await;
    let (_, read) = host.read(&server).await;
    host.answer_vitals(&server, &read).await;
    // Managed by the old system, failing the firewall policy.
    answer(
        &host,
        &server,
        &[
            ("fleet_detail_query_mdm_migration".into(), json!([{"1": "1"}])),
            (q(ids[0]), json!([])),
            (q(ids[1]), json!([{"1": "1"}])),
        ],
    )
    .await;
    let (status, _) = server
        .osquery("/api/fleet/orbit/device_token", json!({"node_key": host.node_key, "device_auth_token": TOKEN}))
        .await;
    assert_eq!(status, 200);

    let browser = Browser::start(&chromedriver).await;
    let page = format!("{}/device/{TOKEN}", server.url);
    browser.open(&page).await;
    let text = browser.text().await;
    assert!(text.contains("browser-laptop"), "{text}");
    let (firewall, disk) = (text.find("Firewall on").unwrap(), text.find("Disk encrypted").unwrap());
    assert!(firewall < disk, "failing first: {text}");
    assert!(text.contains("Run: sudo ufw enable"));
    // Accessibility basics, in the rendered page.
    let a11y = browser
        .script(
            "return {lang: document.documentElement.lang, h1: document.querySelectorAll('h1').length, \
             unnamed: [...document.querySelectorAll('button, a, img')].filter(e => !(e.innerText || e.alt || '').trim()).length, \
             focusable: (() => { const b = document.querySelector('button'); b.focus(); return document.activeElement === b; })()};",
        )
        .await;
    assert_eq!(a11y, json!({"lang": "en", "h1": 1, "unnamed": 0, "focusable": true}), "{a11y}");
    // Styled by herd's own stylesheet, the only one the page's Content-Security-Policy allows.
    let button = browser.script("return getComputedStyle(document.querySelector('button')).backgroundColor;").await;
    assert_eq!(button, "rgb(11, 83, 148)");
    assert!(!text.contains("Preview"), "the person's own page is no preview: {text}");
    browser.screenshot("my-device-failing").await;

    // Refetch: the page says results are coming, and shows them when the host answers.
    browser.click("form[action$='/refetch'] button").await;
    eventually(PATIENCE, "the refetch notice", || async {
        browser.text().await.contains("Checking your device again").then_some(())
    })
    .await;
    let (_, read) = host.read(&server).await;
    assert!(herd_testkit::policy_sql(&read, ids[0]).is_some(), "{read}");
    host.answer_vitals(&server, &read).await;
    answer(
        &host,
        &server,
        &[
            ("fleet_detail_query_mdm_migration".into(), json!([{"1": "1"}])),
            (q(ids[0]), json!([{"1": "1"}])),
            (q(ids[1]), json!([{"1": "1"}])),
        ],
    )
    .await;
    let text = eventually(PATIENCE, "the page updating by itself", || async {
        let text = browser.text().await;
        (!text.contains("Checking your device again") && text.contains("Failing policies (0)")).then_some(text)
    })
    .await;
    assert!(text.contains("Passing policies (2)"), "{text}");
    browser.screenshot("my-device-after-refetch").await;

    // Start migration from the banner.
    assert!(text.contains("Start migration"), "{text}");
    browser.click("form[action$='/migrate'] button").await;
    eventually(PATIENCE, "the migration started", || async {
        browser.text().await.contains("Migration started").then_some(())
    })
    .await;
    browser.screenshot("my-device-migration").await;
    let (_, hosts) = server.get("/api/v1/fleet/hosts?query=browser-laptop", &admin).await;
    let id = hosts["hosts"][0]["id"].as_i64().unwrap();
    let (_, detail) = server.get(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
    assert_eq!(detail["host"]["mdm_migration"]["state"], "started");
}

herd_testkit::server_cases!(my_device_page_in_chromium);
