//! The admin console in a real headless Chromium, with the real server and a real agent: log in, create a
//! policy, watch the agent's host fail it and pass it again without reloading, run a script and read its
//! output, change settings; every page keeps basic accessibility (language, one h1, labelled controls, named
//! buttons and links, keyboard focus). Screenshots go to target/browser-artifacts/.

use herd_testkit::browser::Browser;
use herd_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, AgentProcess, Server, eventually};
use serde_json::{Value, json};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(90);
const AGENT: &str = env!("CARGO_BIN_EXE_herd-agent");

/// Basic accessibility of the page in the browser: the findings, empty when all hold.
async fn accessibility_problems(browser: &Browser) -> Value {
    browser
        .script(
            "const problems = [];
             if (document.documentElement.lang !== 'en') problems.push('lang');
             if (document.querySelectorAll('h1').length !== 1) problems.push('h1 count');
             for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
               const labelled = (el.id && document.querySelector('label[for=\"' + el.id + '\"]')) || el.getAttribute('aria-label');
               if (!labelled) problems.push('unlabelled ' + (el.name || el.id));
             }
             for (const el of document.querySelectorAll('a, button')) {
               if (!(el.innerText || el.getAttribute('aria-label') || '').trim()) problems.push('unnamed ' + el.outerHTML.slice(0, 60));
             }
             for (const img of document.querySelectorAll('img')) if (!img.alt) problems.push('img without alt');
             const first = document.querySelector('main a, main button, main input:not([type=hidden]), main select');
             if (first) { first.focus(); if (document.activeElement !== first) problems.push('not focusable'); }
             return problems;",
        )
        .await
}

async fn login(browser: &Browser, server: &Server) {
    browser.open(&format!("{}/console", server.url)).await;
    let at = browser.script("return location.pathname;").await;
    assert_eq!(at, "/console/login", "signed out: the login page");
    assert_eq!(accessibility_problems(browser).await, json!([]));
    browser
        .script(&format!(
            "document.getElementById('email').value = {}; document.getElementById('password').value = {}; return 1;",
            json!(ADMIN_EMAIL),
            json!(ADMIN_PASSWORD)
        ))
        .await;
    browser.click("main form button[type=submit]").await;
    eventually(PATIENCE, "the dashboard", || async {
        (browser.script("return location.pathname;").await == "/console").then_some(())
    })
    .await;
}

async fn console_drives_a_real_host(server: Server) {
    let Some(chromedriver) = herd_testkit::browser::chromedriver() else { return };
    let admin = server.admin_token().await;
    let fast = json!({"agent_options": {"config": {"options": {"distributed_interval": 2}}}, "host_settings": {"policy_interval": 2}});
    assert_eq!(server.patch("/api/v1/fleet/config", &admin, fast).await.0, 200);
    server.script_id(&admin, "hello.sh", "echo hello-from-the-console\n").await;
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("unwanted");
    let _agent = AgentProcess::start(AGENT, &server, &work.path().join("agent"), "console-host", &["--enable-scripts"]);
    let host_id = eventually(PATIENCE, "the host", || async {
        let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
        hosts["hosts"].as_array()?.first()?["id"].as_i64()
    })
    .await;

    let browser = Browser::start(&chromedriver).await;
    login(&browser, &server).await;
    let text = browser.text().await;
    assert!(text.contains("Dashboard") && text.contains("online") && text.contains("Compliance over time"), "{text}");
    assert_eq!(accessibility_problems(&browser).await, json!([]));
    browser.screenshot("console-dashboard").await;

    // Create a policy in the form.
    browser.open(&format!("{}/console/policies/new", server.url)).await;
    assert_eq!(accessibility_problems(&browser).await, json!([]));
    let query = format!("SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM file WHERE path = '{}');", marker.display());
    browser
        .script(&format!(
            "document.getElementById('name').value = 'No unwanted file'; document.getElementById('query').value = {}; \
             document.getElementById('resolution').value = 'Delete the file.'; return 1;",
            json!(query)
        ))
        .await;
    browser.click("main form button[type=submit]").await;
    let policy_id = eventually(PATIENCE, "the saved policy", || async {
        let path = browser.script("return location.pathname;").await;
        path.as_str()?.strip_prefix("/console/policies/")?.parse::<i64>().ok()
    })
    .await;
    let (_, policy) = server.get(&format!("/api/v1/fleet/global/policies/{policy_id}"), &admin).await;
    assert_eq!(policy["policy"]["name"], "No unwanted file");

    // The host's page follows the host: failing, then passing, without a reload.
    browser.open(&format!("{}/console/hosts/{host_id}", server.url)).await;
    assert_eq!(accessibility_problems(&browser).await, json!([]));
    browser.script("window.sameDocument = true; return 1;").await;
    std::fs::write(&marker, "x").unwrap();
    eventually(PATIENCE, "the policy failing on screen", || async {
        let row =
            browser.script("const c = document.getElementById('host-policies'); return c ? c.innerText : '';").await;
        row.as_str()?.contains("Failing").then_some(())
    })
    .await;
    browser.screenshot("console-host-failing").await;
    std::fs::remove_file(&marker).unwrap();
    eventually(PATIENCE, "the policy passing on screen", || async {
        let row = browser.script("return document.getElementById('host-policies').innerText;").await;
        let text = row.as_str()?.to_string();
        (text.contains("Passing") && !text.contains("Failing")).then_some(())
    })
    .await;
    assert_eq!(browser.script("return window.sameDocument === true;").await, true, "updated in place, no reload");

    // Run a script from the host's page and read its output there.
    browser.click("form input[value=run_script] ~ button").await;
    eventually(PATIENCE, "the script's output on screen", || async {
        browser.text().await.contains("hello-from-the-console").then_some(())
    })
    .await;
    browser.screenshot("console-host-script").await;

    // The host's My Device page, as its user sees it: a preview whose buttons are inert, styled by herd's own
    // stylesheet (the only one its Content-Security-Policy allows).
    browser.click("a[href$='/my-device']").await;
    let preview = eventually(PATIENCE, "the My Device preview", || async {
        let text = browser.text().await;
        text.contains("Preview: this is what the person at this computer sees").then_some(text)
    })
    .await;
    assert!(preview.contains("Passing policies (1)") && preview.contains("No unwanted file"), "{preview}");
    let buttons = browser
        .script(
            "const b = document.querySelector('form[action=\"\"] button'); \
             return {disabled: b.disabled, styled: getComputedStyle(b).backgroundColor};",
        )
        .await;
    assert_eq!(buttons, json!({"disabled": true, "styled": "rgb(11, 83, 148)"}), "{buttons}");
    assert_eq!(accessibility_problems(&browser).await, json!([]));
    browser.screenshot("console-host-my-device-preview").await;

    // The policy list shows the live counts.
    browser.open(&format!("{}/console/policies", server.url)).await;
    let text = browser.text().await;
    assert!(text.contains("No unwanted file"), "{text}");
    assert_eq!(accessibility_problems(&browser).await, json!([]));

    // Change settings.
    browser.open(&format!("{}/console/settings", server.url)).await;
    assert_eq!(accessibility_problems(&browser).await, json!([]));
    browser.script("document.getElementById('org_name').value = 'Console Corp'; return 1;").await;
    browser.click("main form button[type=submit]").await;
    eventually(PATIENCE, "the settings saved", || async {
        let (_, config) = server.get("/api/v1/fleet/config", &admin).await;
        (config["org_info"]["org_name"] == "Console Corp").then_some(())
    })
    .await;

    // Every page: basic accessibility, and a screenshot.
    for page in ["hosts", "labels", "teams", "scripts", "profiles", "users", "activity"] {
        browser.open(&format!("{}/console/{page}", server.url)).await;
        assert_eq!(accessibility_problems(&browser).await, json!([]), "{page}");
        browser.screenshot(&format!("console-{page}")).await;
    }
    // Log out: the console is closed again.
    browser.click("form.logout button").await;
    eventually(PATIENCE, "logged out", || async {
        (browser.script("return location.pathname;").await == "/console/login").then_some(())
    })
    .await;
    browser.open(&format!("{}/console/hosts", server.url)).await;
    assert_eq!(browser.script("return location.pathname;").await, "/console/login");
}

/// Issue 19 in the console: a criteria label created on the labels page, then a policy scoped to it in the
/// policy form; the host page lists the host's labels and the hosts page filters by label.
async fn console_creates_a_label_and_scopes_a_policy(server: Server) {
    let Some(chromedriver) = herd_testkit::browser::chromedriver() else { return };
    let admin = server.admin_token().await;
    let fast = json!({"agent_options": {"config": {"options": {"distributed_interval": 2}}}});
    assert_eq!(server.patch("/api/v1/fleet/config", &admin, fast).await.0, 200);
    let work = tempfile::tempdir().unwrap();
    let _agent = AgentProcess::start(AGENT, &server, &work.path().join("agent"), "label-host", &[]);
    let browser = Browser::start(&chromedriver).await;
    login(&browser, &server).await;

    browser.open(&format!("{}/console/labels", server.url)).await;
    assert_eq!(accessibility_problems(&browser).await, json!([]));
    assert!(browser.text().await.contains("All Linux"), "the built-in labels are listed");
    browser
        .script(
            "document.getElementById('label-name').value = 'Linux machines';              document.getElementById('label-kind').value = 'criteria';              document.getElementById('label-criteria').value = '{\"platform\": \"linux\"}'; return 1;",
        )
        .await;
    browser.click("form[action='/console/labels'] button[type=submit]").await;
    let label_id = eventually(PATIENCE, "the label created", || async {
        let (_, labels) = server.get("/api/v1/fleet/labels", &admin).await;
        labels["labels"].as_array()?.iter().find(|l| l["name"] == "Linux machines")?["id"].as_i64()
    })
    .await;
    // The host joins it (herd decides criteria labels itself), and the page counts it.
    eventually(PATIENCE, "the host counted in the label", || async {
        browser.open(&format!("{}/console/labels", server.url)).await;
        browser.text().await.contains("Linux machines").then_some(())?;
        let count = browser
            .script(&format!("return document.querySelector('a[href$=\"label_id={label_id}\"]').innerText;"))
            .await;
        (count == "1").then_some(())
    })
    .await;
    browser.screenshot("console-labels").await;

    browser.open(&format!("{}/console/policies/new", server.url)).await;
    assert_eq!(accessibility_problems(&browser).await, json!([]));
    browser
        .script(
            "document.getElementById('name').value = 'Linux only'; document.getElementById('query').value = 'SELECT 1;';              document.getElementById('labels-include-any').value = 'Linux machines'; return 1;",
        )
        .await;
    browser.click("main form button[type=submit]").await;
    let policy_id = eventually(PATIENCE, "the saved policy", || async {
        let path = browser.script("return location.pathname;").await;
        path.as_str()?.strip_prefix("/console/policies/")?.parse::<i64>().ok()
    })
    .await;
    let (_, policy) = server.get(&format!("/api/v1/fleet/global/policies/{policy_id}"), &admin).await;
    assert_eq!(policy["policy"]["labels_include_any"], json!([{"id": label_id, "name": "Linux machines"}]));
    let shown = browser.script("return document.getElementById('labels-include-any').value;").await;
    assert_eq!(shown, "Linux machines", "the form shows the scope it saved");

    let host_id = eventually(PATIENCE, "the host", || async {
        let (_, hosts) = server.get(&format!("/api/v1/fleet/hosts?label_id={label_id}"), &admin).await;
        hosts["hosts"].as_array()?.first()?["id"].as_i64()
    })
    .await;
    browser.open(&format!("{}/console/hosts/{host_id}", server.url)).await;
    assert!(browser.text().await.contains("Linux machines"), "the host page lists its labels");
    browser.open(&format!("{}/console/hosts?label_id={label_id}", server.url)).await;
    assert_eq!(accessibility_problems(&browser).await, json!([]));
    let listed =
        browser.script(&format!("return !!document.querySelector('a[href=\"/console/hosts/{host_id}\"]');")).await;
    assert_eq!(listed, true, "the hosts page filtered by the label lists the host");
    browser.open(&format!("{}/console/hosts?label_id={}", server.url, label_id + 1000)).await;
    let listed =
        browser.script(&format!("return !!document.querySelector('a[href=\"/console/hosts/{host_id}\"]');")).await;
    assert_eq!(listed, false, "a label without the host does not list it");
}

herd_testkit::server_cases!(
    bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herd-agent"));
    console_drives_a_real_host,
    console_creates_a_label_and_scopes_a_policy
);
