//! End-to-end: configuration profiles at Fleet's paths on the real `herd` binary — upload (herd JSON/YAML and
//! Apple .mobileconfig), every refusal with its reason, list/get/download/delete, batch edits, roles.

use herd_testkit::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

herd_testkit::server_cases!(profiles_upload_list_edit_delete_and_refusals);

const MOBILECONFIG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadIdentifier</key><string>com.acme.wifi</string>
  <key>PayloadDisplayName</key><string>Office Wi-Fi</string>
  <key>PayloadUUID</key><string>6C4A2F64-9F52-4B4A-8E8B-2D2C5B7A9E11</string>
  <key>PayloadVersion</key><integer>1</integer>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>PayloadType</key><string>com.apple.wifi.managed</string>
      <key>PayloadIdentifier</key><string>com.acme.wifi.payload</string>
      <key>SSID_STR</key><string>Acme</string>
    </dict>
  </array>
</dict>
</plist>
"#;

const YAML_PROFILE: &str = "identifier: com.acme.banner
name: Login banner
payloads:
  - type: file
    path: /etc/issue.net
    content: |
      Authorized use only.
    mode: '0644'
";

fn herd_profile(identifier: &str, name: &str, content: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"identifier": identifier, "name": name,
        "payloads": [{"type": "file", "path": "/etc/motd", "content": content}]}))
    .unwrap()
}

async fn profiles_upload_list_edit_delete_and_refusals(server: Server) {
    let admin = server.admin_token().await;
    let (_, team) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Servers"})).await;
    let team_id = team["team"]["id"].as_i64().unwrap();

    // Apple: parsed, listed with its identifier, and plainly not delivered.
    let (status, apple) = server.upload_profile(&admin, "wifi.mobileconfig", MOBILECONFIG.as_bytes(), None).await;
    assert_eq!(status, StatusCode::OK, "{apple}");
    let apple_uuid = apple["profile_uuid"].as_str().unwrap().to_string();
    assert!(apple_uuid.starts_with('a'), "{apple_uuid}");
    let (_, listed) = server.get("/api/v1/fleet/configuration_profiles", &admin).await;
    let shown = &listed["profiles"][0];
    assert_eq!((shown["identifier"].as_str(), shown["name"].as_str()), (Some("com.acme.wifi"), Some("Office Wi-Fi")));
    assert_eq!(
        (shown["platform"].as_str(), &shown["payload_types"]),
        (Some("darwin"), &json!(["com.apple.wifi.managed"]))
    );
    assert!(shown["delivery"].as_str().unwrap().contains("no Apple MDM transport"), "{shown}");
    assert_eq!(listed["meta"], json!({"has_next_results": false, "has_previous_results": false}));

    // Malformed Apple profiles: 422 with the reason.
    let malformed = [
        ("<plist><dict><key>PayloadType</key>", "not a property list"),
        (&MOBILECONFIG.replace("<string>Configuration</string>", "<string>Other</string>"), "invalid PayloadType"),
        (&MOBILECONFIG.replace("<string>com.acme.wifi</string>", "<string> </string>"), "PayloadIdentifier"),
        (&MOBILECONFIG.replace("<key>PayloadDisplayName</key><string>Office Wi-Fi</string>", ""), "PayloadDisplayName"),
    ];
    for (bytes, reason) in malformed {
        let (status, reply) = server.upload_profile(&admin, "bad.mobileconfig", bytes.as_bytes(), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
        assert_eq!(reply["errors"][0]["name"], "profile");
        assert!(reply["errors"][0]["reason"].as_str().unwrap().contains(reason), "{reason}: {reply}");
    }

    // herd profiles: JSON and YAML; bad ones name the field.
    let (status, motd) =
        server.upload_profile(&admin, "motd.json", &herd_profile("com.acme.motd", "MOTD", "hi\n"), Some(team_id)).await;
    assert_eq!(status, StatusCode::OK, "{motd}");
    let motd_uuid = motd["profile_uuid"].as_str().unwrap().to_string();
    let (status, banner) = server.upload_profile(&admin, "banner.yml", YAML_PROFILE.as_bytes(), Some(team_id)).await;
    assert_eq!(status, StatusCode::OK, "{banner}");
    let bad_cases: Vec<(&str, Value, &str)> = vec![
        (
            "x.json",
            json!({"identifier": "a", "name": "b", "payloads": [{"type": "file", "path": "etc/x", "content": ""}]}),
            "profile.payloads[0].path",
        ),
        (
            "x.json",
            json!({"identifier": "a", "name": "b", "payloads": [{"type": "sysctl", "key": "a..b", "value": "1"}]}),
            "profile.payloads[0].key",
        ),
        (
            "x.json",
            json!({"identifier": "a", "name": "b", "payloads": [{"type": "file", "path": "/x", "content": "", "mode": "9"}]}),
            "profile.payloads[0].mode",
        ),
        ("x.json", json!({"identifier": "a", "name": "b", "payloads": []}), "profile.payloads"),
        ("x.json", json!({"identifier": "a", "name": "b", "payloads": [{"type": "registry"}]}), "profile"),
        ("x.json", json!({"identifier": "a", "name": "b", "extra": 1, "payloads": []}), "profile"),
        ("x.txt", json!({}), "profile"),
    ];
    for (file, body, field) in bad_cases {
        let (status, reply) =
            server.upload_profile(&admin, file, &serde_json::to_vec(&body).unwrap(), Some(team_id)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {reply}");
        assert_eq!(reply["errors"][0]["name"], field, "{body} → {reply}");
    }
    // The same identifier or name in one team: 409; in another set it is fine.
    let (status, reply) =
        server.upload_profile(&admin, "again.json", &herd_profile("com.acme.motd", "Other", "x"), Some(team_id)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert!(reply.to_string().contains("identifier"), "{reply}");
    let (status, reply) =
        server.upload_profile(&admin, "again.json", &herd_profile("com.acme.other", "MOTD", "x"), Some(team_id)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert_eq!(
        server.upload_profile(&admin, "motd.json", &herd_profile("com.acme.motd", "MOTD", "x"), None).await.0,
        StatusCode::OK
    );
    let (status, _) =
        server.upload_profile(&admin, "motd.json", &herd_profile("com.acme.x", "X", "x"), Some(9999)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "no such team");

    // Get, download, list per team with paging.
    let (status, one) = server.get(&format!("/api/v1/fleet/configuration_profiles/{motd_uuid}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((one["team_id"].as_i64(), one["platform"].as_str()), (Some(team_id), Some("linux")));
    let download = server
        .client
        .get(format!("{}/api/v1/fleet/configuration_profiles/{apple_uuid}?alt=media", server.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(download.headers()["content-type"], "application/x-apple-aspen-config");
    assert!(download.headers()["content-disposition"].to_str().unwrap().contains("Office_Wi-Fi.mobileconfig"));
    assert_eq!(download.text().await.unwrap(), MOBILECONFIG);
    let (_, page) =
        server.get(&format!("/api/v1/fleet/configuration_profiles?team_id={team_id}&per_page=1"), &admin).await;
    assert_eq!(page["profiles"].as_array().unwrap().len(), 1);
    assert_eq!(page["meta"]["has_next_results"], true);

    // Batch: the team's whole set; edits keep the uuid; what is left out goes.
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let batch = json!({"profiles": [{"name": "motd.json", "contents": b64(&herd_profile("com.acme.motd", "MOTD", "edited\n"))}]});
    let path = format!("/api/v1/fleet/mdm/profiles/batch?team_id={team_id}");
    let (status, reply) = server.post(&path, &admin, batch).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{reply}");
    let (_, after) = server.get(&format!("/api/v1/fleet/configuration_profiles?team_id={team_id}"), &admin).await;
    assert_eq!(after["profiles"].as_array().unwrap().len(), 1, "{after}");
    assert_eq!(after["profiles"][0]["profile_uuid"], motd_uuid.as_str(), "edited in place");
    assert_ne!(after["profiles"][0]["checksum"], one["checksum"], "a new checksum: hosts get it again");
    let broken = json!({"profiles": [{"name": "x.json", "contents": "%%%"}]});
    let (status, reply) = server.post(&path, &admin, broken).await;
    assert_eq!(
        (status, &reply["errors"][0]["name"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("profiles[0].contents"))
    );

    // Roles: observers read, do not write; a team's maintainer cannot touch the no-team set.
    let observer = server.user_token(&admin, "obs@example.com", "observer", None).await;
    assert_eq!(server.get("/api/v1/fleet/configuration_profiles", &observer).await.0, StatusCode::OK);
    let (status, _) = server.upload_profile(&observer, "o.json", &herd_profile("com.acme.o", "O", "x"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let maintainer = server.user_token(&admin, "tm@example.com", "maintainer", Some(team_id)).await;
    let (status, _) = server.delete(&format!("/api/v1/fleet/configuration_profiles/{apple_uuid}"), &maintainer).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not in reach: not shown");

    // Delete; a second delete is a 404.
    let (status, _) = server.delete(&format!("/api/v1/fleet/configuration_profiles/{apple_uuid}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.delete(&format!("/api/v1/fleet/configuration_profiles/{apple_uuid}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, summary) =
        server.get(&format!("/api/v1/fleet/configuration_profiles/summary?team_id={team_id}"), &admin).await;
    assert_eq!(summary, json!({"verified": 0, "verifying": 0, "pending": 0, "failed": 0}), "no host expects them yet");
}
