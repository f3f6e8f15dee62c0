//! `herd-agent query` and `herd-agent shell`, as a person at a terminal (or a script) uses them.

use std::io::Write;
use std::process::{Command, Stdio};

fn agent(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herd-agent"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn query_prints_tables_and_json() {
    let (ok, table, _) = agent(&["query", "SELECT username, uid FROM users WHERE uid = 0"], "");
    assert!(ok);
    assert!(table.contains("| username | uid |") && table.contains("| root     | 0   |"), "{table}");
    let (ok, json, _) = agent(&["query", "--json", "SELECT uid, shell, NULL AS missing FROM users WHERE uid = 0"], "");
    assert!(ok);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["uid"], "0", "values are strings, as osqueryi --json prints them");
    assert_eq!(rows[0]["missing"], serde_json::Value::Null);
    let (ok, _, err) = agent(&["query", "SELECT * FROM nope"], "");
    assert!(!ok);
    assert!(err.contains("no such table: nope"), "{err}");
}

#[test]
fn shell_answers_dot_commands_and_multi_line_statements() {
    let script = ".tables\n.schema uptime\nSELECT uid\n  FROM users WHERE uid = 0;\nSELECT * FROM file;\n.quit\nSELECT 'never';\n";
    let (ok, out, _) = agent(&["shell"], script);
    assert!(ok);
    assert!(out.contains("=> processes") && out.contains("=> osquery_registry"), "{out}");
    assert!(out.contains("CREATE TABLE uptime(`days` INTEGER"), "{out}");
    assert!(out.contains("| uid |") && out.contains("| 0   |"), "{out}");
    assert!(out.contains("Error: table file requires a constraint on path or directory"), "{out}");
    assert!(!out.contains("never"), ".quit stops reading");
}
