//! dconf_read against dconf itself: a database compiled by `dconf compile` from a key file, chosen through
//! DCONF_PROFILE, read through the table and by `dconf read` as the same user. Its own test binary: the one
//! place that sets an environment variable, before any thread starts.

use herd_osquery::{Engine, Limits};
use std::process::Command;

#[test]
fn dconf_read_matches_dconf() {
    let dir = tempfile::tempdir().unwrap();
    let keyfiles = dir.path().join("keyfiles");
    std::fs::create_dir(&keyfiles).unwrap();
    std::fs::write(
        keyfiles.join("00-screensaver"),
        "[org/gnome/desktop/screensaver]\nlock-enabled=true\nlock-delay=uint32 300\npicture-uri='file:///x.png'\n",
    )
    .unwrap();
    let db = dir.path().join("db");
    let compiled = Command::new("dconf").arg("compile").arg(&db).arg(&keyfiles).status().expect("dconf installed");
    assert!(compiled.success());
    let profile = dir.path().join("profile");
    std::fs::write(&profile, format!("file-db:{}\n", db.display())).unwrap();
    // SAFETY: this test binary has this one test, and nothing else runs while the variable is set.
    unsafe { std::env::set_var("DCONF_PROFILE", &profile) };

    let me = nix::unistd::User::from_uid(nix::unistd::getuid()).unwrap().unwrap().name;
    let engine = Engine::new().unwrap();
    for key in [
        "/org/gnome/desktop/screensaver/lock-enabled",
        "/org/gnome/desktop/screensaver/lock-delay",
        "/org/gnome/desktop/screensaver/picture-uri",
        "/org/gnome/desktop/screensaver/not-set",
    ] {
        let dconf = Command::new("dconf").args(["read", key]).output().unwrap();
        let expected = String::from_utf8_lossy(&dconf.stdout).trim_end_matches('\n').to_string();
        let rows = engine
            .query(
                &format!("SELECT value FROM dconf_read WHERE username = '{me}' AND key = '{key}'"),
                Limits::default(),
            )
            .unwrap()
            .rows;
        assert_eq!(rows, vec![vec![Some(expected)]], "{key}");
    }
    let policy = engine
        .query(
            &format!(
                "SELECT 1 FROM dconf_read WHERE username = '{me}' AND \
                 key = '/org/gnome/desktop/screensaver/lock-enabled' AND value = 'true'"
            ),
            Limits::default(),
        )
        .unwrap();
    assert_eq!(policy.rows.len(), 1, "Fleet's screen-lock policy passes");
    let none = engine
        .query("SELECT * FROM dconf_read WHERE username = 'no-such-user-herd' AND key = '/a/b'", Limits::default())
        .unwrap();
    assert!(none.rows.is_empty());
    let err = engine.query("SELECT * FROM dconf_read WHERE key = '/a/b'", Limits::default()).unwrap_err();
    assert!(err.to_string().contains("username"), "{err}");
}
