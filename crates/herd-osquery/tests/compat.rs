//! Compatibility suite: each table against an independent source on this same machine (getent, uname,
//! stat, /proc), and queries that combine tables, subqueries, CTEs, globs and osquery's functions.

use herd_osquery::{Engine, Limits, QueryOutput};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn engine() -> Engine {
    Engine::new().expect("engine")
}

fn query(engine: &Engine, sql: &str) -> Vec<BTreeMap<String, Option<String>>> {
    engine.query(sql, Limits::default()).unwrap_or_else(|e| panic!("{sql}: {e}")).records()
}

fn one(engine: &Engine, sql: &str) -> BTreeMap<String, Option<String>> {
    let mut rows = query(engine, sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows.remove(0)
}

fn text(row: &BTreeMap<String, Option<String>>, column: &str) -> String {
    row.get(column).cloned().flatten().unwrap_or_default()
}

fn command(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(output.status.success(), "{program} {args:?} failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn users_match_getent_passwd() {
    let expected: BTreeSet<(String, String, String, String, String)> = command("getent", &["passwd"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7).then(|| (f[0].into(), f[2].into(), f[3].into(), f[5].into(), f[6].into()))
        })
        .collect();
    let got: BTreeSet<_> = query(&engine(), "SELECT username, uid, gid, directory, shell FROM users")
        .iter()
        .map(|r| (text(r, "username"), text(r, "uid"), text(r, "gid"), text(r, "directory"), text(r, "shell")))
        .collect();
    assert_eq!(got, expected);
    let root = one(&engine(), "SELECT username, uid_signed FROM users WHERE uid = 0");
    assert_eq!((text(&root, "username"), text(&root, "uid_signed")), ("root".into(), "0".into()));
}

#[test]
fn groups_match_getent_group() {
    let expected: BTreeSet<(String, String)> = command("getent", &["group"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3).then(|| (f[0].into(), f[2].into()))
        })
        .collect();
    let got: BTreeSet<_> = query(&engine(), "SELECT groupname, gid FROM groups")
        .iter()
        .map(|r| (text(r, "groupname"), text(r, "gid")))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn processes_include_this_test_with_name_and_cmdline() {
    let pid = std::process::id();
    let row = one(
        &engine(),
        &format!("SELECT pid, name, cmdline, path, parent, uid, state FROM processes WHERE pid = {pid}"),
    );
    let exe = std::env::current_exe().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(text(&row, "name"), comm.trim());
    assert!(text(&row, "cmdline").starts_with(&*std::env::args().next().unwrap()), "{row:?}");
    assert_eq!(text(&row, "path"), exe.display().to_string());
    assert_eq!(text(&row, "uid"), nix::unistd::getuid().as_raw().to_string());
    assert_eq!(text(&row, "parent"), std::os::unix::process::parent_id().to_string());
    let all = query(&engine(), "SELECT pid FROM processes");
    assert!(all.len() > 1 && all.iter().any(|r| text(r, "pid") == pid.to_string()));
    let two = query(&engine(), &format!("SELECT pid FROM processes WHERE pid IN ({pid}, 1)"));
    assert_eq!(two.len(), 2, "IN lists are pushed down whole: {two:?}");
}

#[test]
fn file_matches_stat() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.conf");
    std::fs::write(&path, "PermitRootLogin no\n").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let stat = command("stat", &["-c", "%a %s %Y %i %U", &path.to_string_lossy()]);
    let fields: Vec<&str> = stat.split_whitespace().collect();
    let row = one(&engine(), &format!("SELECT * FROM file WHERE path = '{}'", path.display()));
    assert_eq!(text(&row, "mode"), format!("0{}", fields[0]));
    assert_eq!(text(&row, "size"), fields[1]);
    assert_eq!(text(&row, "mtime"), fields[2]);
    assert_eq!(text(&row, "inode"), fields[3]);
    assert_eq!(text(&row, "type"), "regular");
    assert_eq!(text(&row, "filename"), "policy.conf");
    assert_eq!(text(&row, "directory"), dir.path().display().to_string());
    assert_eq!(row["btime"], None, "not available through stat(2): NULL, not invented");
    let listed = query(&engine(), &format!("SELECT filename FROM file WHERE directory = '{}'", dir.path().display()));
    assert_eq!(listed.len(), 1);
    assert!(query(&engine(), "SELECT * FROM file WHERE path = '/no/such/file'").is_empty());
}

#[test]
fn kernel_info_matches_uname() {
    let row = one(&engine(), "SELECT version FROM kernel_info");
    assert_eq!(text(&row, "version"), command("uname", &["-r"]).trim());
}

#[test]
fn mounts_match_proc_mounts() {
    let expected: BTreeSet<String> = std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(|p| p.replace("\\040", " ")))
        .collect();
    let got: BTreeSet<String> = query(&engine(), "SELECT path FROM mounts").iter().map(|r| text(r, "path")).collect();
    assert_eq!(got, expected);
    let root = one(&engine(), "SELECT blocks, blocks_size, blocks_available FROM mounts WHERE path = '/'");
    let df = command("stat", &["-f", "-c", "%b %S", "/"]);
    let df: Vec<&str> = df.split_whitespace().collect();
    assert_eq!(text(&root, "blocks"), df[0]);
}

#[test]
fn identity_tables_match_the_system() {
    let e = engine();
    let os = one(&e, "SELECT platform, name FROM os_version");
    let release = std::fs::read_to_string("/etc/os-release").unwrap();
    let id = release.lines().find_map(|l| l.strip_prefix("ID=")).unwrap().trim_matches('"');
    assert_eq!(text(&os, "platform"), id);
    let system = one(&e, "SELECT hostname, cpu_logical_cores, physical_memory FROM system_info");
    assert_eq!(text(&system, "hostname"), command("hostname", &[]).trim());
    assert_eq!(text(&system, "cpu_logical_cores"), command("getconf", &["_NPROCESSORS_ONLN"]).trim());
    let free = command("free", &["-b"]);
    let total = free.lines().find(|l| l.starts_with("Mem:")).unwrap().split_whitespace().nth(1).unwrap();
    let memory: i64 = text(&system, "physical_memory").parse().unwrap();
    // free(1) reports MemTotal too; allow for rounding to kB.
    assert!((memory - total.parse::<i64>().unwrap()).abs() < 4096, "{memory} vs {total}");
    let info = one(&e, "SELECT pid, version FROM osquery_info");
    assert_eq!(text(&info, "pid"), std::process::id().to_string());
    let uptime_before: f64 =
        std::fs::read_to_string("/proc/uptime").unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let up: i64 = text(&one(&e, "SELECT total_seconds FROM uptime"), "total_seconds").parse().unwrap();
    let uptime_after: f64 =
        std::fs::read_to_string("/proc/uptime").unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!((uptime_before as i64..=uptime_after as i64).contains(&up));
    let before = chrono::Utc::now().timestamp();
    let now: i64 = text(&one(&e, "SELECT unix_time FROM time"), "unix_time").parse().unwrap();
    assert!((before..=chrono::Utc::now().timestamp()).contains(&now));
    assert_eq!(query(&e, "SELECT * FROM load_average").len(), 3);
    let hosts = query(&e, "SELECT address, hostnames FROM etc_hosts");
    let localhost = command("getent", &["hosts", "localhost"]);
    let address = localhost.split_whitespace().next().unwrap();
    assert!(hosts.iter().any(|r| text(r, "address") == address), "{hosts:?}");
}

#[test]
fn queries_combine_tables_subqueries_ctes_globs_and_functions() {
    let e = engine();
    let me = nix::unistd::getuid().as_raw();
    let joined = query(
        &e,
        &format!(
            "SELECT p.pid, u.username FROM processes p JOIN users u ON u.uid = p.uid WHERE p.pid = {}",
            std::process::id()
        ),
    );
    assert_eq!(joined.len(), 1);
    assert_eq!(text(&joined[0], "username"), nix::unistd::User::from_uid(me.into()).unwrap().unwrap().name);
    // The path comes from another table (a join supplies the required constraint).
    let passwd = query(&e, "SELECT f.path, f.size FROM users u JOIN file f ON f.path = u.directory WHERE u.uid = 0");
    assert_eq!(passwd.len(), 1, "{passwd:?}");
    let sub = query(&e, "SELECT path FROM file WHERE path IN (SELECT '/etc/passwd' UNION SELECT '/etc/group')");
    assert_eq!(sub.len(), 2);
    let cte = one(&e, "WITH shells AS (SELECT DISTINCT shell FROM users) SELECT COUNT(*) AS n FROM shells");
    assert!(text(&cte, "n").parse::<i64>().unwrap() >= 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for name in ["a.conf", "b.conf", "sub/c.conf"] {
        std::fs::write(dir.path().join(name), "x").unwrap();
    }
    let base = dir.path().display();
    assert_eq!(query(&e, &format!("SELECT path FROM file WHERE path LIKE '{base}/%.conf'")).len(), 2, "one level");
    assert_eq!(query(&e, &format!("SELECT path FROM file WHERE path LIKE '{base}/%%'")).len(), 4, "recursive");
    let f = one(
        &e,
        "SELECT concat('a', NULL, 'b') AS c, concat_ws('-', 'x', 'y') AS cw, split('a,b;c', ',;', 2) AS s, \
         regex_match('version 5.12.1', '(\\d+)\\.(\\d+)', 2) AS r, regex_split('a1b22c', '\\d+', 1) AS rs, \
         version_compare('1.10', '1.9') AS v1, version_compare('1.0~rc1', '1.0', 'DPKG') AS v2, \
         sha256('abc') AS h, md5('abc') AS m, sha1('abc') AS s1, to_base64('herd') AS b64, from_base64('aGVyZA==') AS d64, \
         inet_aton('10.0.0.1') AS ip, in_cidr_block('10.0.0.0/8', '10.1.2.3') AS inside, \"quoted\" AS dq",
    );
    let want = [
        ("c", "ab"),
        ("cw", "x-y"),
        ("s", "c"),
        ("r", "12"),
        ("rs", "b"),
        ("v1", "1"),
        ("v2", "-1"),
        ("h", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("m", "900150983cd24fb0d6963f7d28e17f72"),
        ("s1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("b64", "aGVyZA=="),
        ("d64", "herd"),
        ("ip", "167772161"),
        ("inside", "1"),
        ("dq", "quoted"),
    ];
    for (column, value) in want {
        assert_eq!(text(&f, column), value, "{column}");
    }
    let sorted = query(
        &e,
        "SELECT v FROM (SELECT '1.10' AS v UNION SELECT '1.9' UNION SELECT '1.2') ORDER BY v COLLATE version",
    );
    assert_eq!(sorted.iter().map(|r| text(r, "v")).collect::<Vec<_>>(), ["1.2", "1.9", "1.10"]);
}

#[test]
fn errors_read_like_osquery() {
    let e = engine();
    let err = e.query("SELECT * FROM no_such_table", Limits::default()).unwrap_err().to_string();
    assert!(err.contains("no such table: no_such_table"), "{err}");
    let err = e.query("SELECT * FROM file", Limits::default()).unwrap_err().to_string();
    assert!(err.contains("requires a constraint on path or directory"), "{err}");
    let err = e.query("SELECT version_compare('1', '2', 'BOGUS')", Limits::default()).unwrap_err().to_string();
    assert!(err.contains("unknown version type"), "{err}");
    let limited = Limits { timeout: std::time::Duration::from_secs(30), max_rows: 2 };
    let err = e.query("SELECT * FROM users", limited).unwrap_err().to_string();
    assert!(err.contains("more than 2 rows"), "{err}");
    let slow = Limits { timeout: std::time::Duration::from_millis(50), max_rows: 10 };
    let err = e
        .query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n", slow)
        .unwrap_err()
        .to_string();
    assert!(err.contains("longer than"), "{err}");
    let _: QueryOutput = e.query("SELECT 1", Limits::default()).unwrap();
}

#[test]
fn registry_lists_tables_and_flags_are_live() {
    let flags = herd_osquery::tables::default_flags();
    let e = Engine::with_flags(flags.clone()).unwrap();
    let names: BTreeSet<String> =
        query(&e, "SELECT name FROM osquery_registry WHERE registry = 'table' AND active = 1")
            .iter()
            .map(|r| text(r, "name"))
            .collect();
    for table in ["file", "processes", "osquery_registry", "osquery_flags", "mounts", "system_info"] {
        assert!(names.contains(table), "{table} in {names:?}");
    }
    // The server's vitals discovery query (every table present → one row).
    let discovery = query(
        &e,
        "SELECT 1 FROM (SELECT COUNT(*) AS present FROM osquery_registry WHERE active = 1 AND registry = 'table' \
         AND name IN ('mounts', 'system_info')) WHERE present = 2",
    );
    assert_eq!(discovery.len(), 1);
    flags.write().unwrap().insert("distributed_interval".into(), "7".into());
    let row = one(&e, "SELECT value FROM osquery_flags WHERE name = 'distributed_interval'");
    assert_eq!(text(&row, "value"), "7");
}

fn set_of(rows: &[BTreeMap<String, Option<String>>], column: &str) -> BTreeSet<String> {
    rows.iter().map(|r| text(r, column)).collect()
}

#[test]
fn listening_ports_include_a_socket_this_test_opens() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let rows =
        query(&engine(), &format!("SELECT pid, protocol, family, address FROM listening_ports WHERE port = {port}"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(text(&rows[0], "pid"), std::process::id().to_string());
    assert_eq!(
        (text(&rows[0], "protocol"), text(&rows[0], "family"), text(&rows[0], "address")),
        ("6".into(), "2".into(), "127.0.0.1".into())
    );
    let udp = std::net::UdpSocket::bind("[::1]:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    let rows = query(&engine(), &format!("SELECT protocol, family, address FROM listening_ports WHERE port = {port}"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (text(&rows[0], "protocol"), text(&rows[0], "family"), text(&rows[0], "address")),
        ("17".into(), "10".into(), "::1".into())
    );
}

#[test]
fn deb_packages_match_dpkg_query() {
    let expected: BTreeSet<String> =
        command("dpkg-query", &["-W", "-f", "${db:Status-Status} ${Package} ${Version}\n"])
            .lines()
            .filter_map(|l| l.strip_prefix("installed ").map(str::to_string))
            .collect();
    let got: BTreeSet<String> = query(&engine(), "SELECT name, version FROM deb_packages")
        .iter()
        .map(|r| format!("{} {}", text(r, "name"), text(r, "version")))
        .collect();
    assert_eq!(got, expected);
    let newest =
        query(&engine(), "SELECT name FROM deb_packages WHERE version_compare(version, '0', 'DPKG') > 0 LIMIT 1");
    assert_eq!(newest.len(), 1);
}

#[test]
fn hash_and_file_lines_match_coreutils() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("motd");
    std::fs::write(&path, "Authorized use only.\nSecond line\n").unwrap();
    let p = path.display().to_string();
    let row = one(&engine(), &format!("SELECT md5, sha1, sha256 FROM hash WHERE path = '{p}'"));
    for (tool, column) in [("md5sum", "md5"), ("sha1sum", "sha1"), ("sha256sum", "sha256")] {
        assert_eq!(text(&row, column), command(tool, &[&p]).split_whitespace().next().unwrap(), "{tool}");
    }
    let lines = query(&engine(), &format!("SELECT line FROM file_lines WHERE path = '{p}'"));
    assert_eq!(lines.iter().map(|r| text(r, "line")).collect::<Vec<_>>(), ["Authorized use only.", "Second line"]);
    let err = engine().query("SELECT * FROM hash", Limits::default()).unwrap_err().to_string();
    assert!(err.contains("requires a constraint on path or directory"), "{err}");
    let err = engine().query("SELECT * FROM file_lines", Limits::default()).unwrap_err().to_string();
    assert!(err.contains("requires a constraint on path"), "{err}");
}

#[test]
fn accounts_match_id_shadow_and_who() {
    let e = engine();
    let expected: BTreeSet<String> = command("id", &["-G", "root"]).split_whitespace().map(str::to_string).collect();
    assert_eq!(set_of(&query(&e, "SELECT gid FROM user_groups WHERE uid = 0"), "gid"), expected);
    let shadow = query(&e, "SELECT username, password_status FROM shadow");
    if nix::unistd::getuid().is_root() {
        let expected: BTreeSet<String> =
            command("getent", &["shadow"]).lines().filter_map(|l| l.split(':').next().map(str::to_string)).collect();
        assert_eq!(set_of(&shadow, "username"), expected);
    } else {
        assert!(shadow.is_empty(), "unreadable /etc/shadow: no rows, as in osquery");
    }
    let who = command("who", &[]).lines().count();
    assert_eq!(query(&e, "SELECT * FROM logged_in_users WHERE type = 'user'").len(), who);
}

#[test]
fn kernel_and_sysctl_tables_match_the_system() {
    let e = engine();
    let row = one(&e, "SELECT current_value, subsystem FROM system_controls WHERE name = 'kernel.ostype'");
    assert_eq!(text(&row, "current_value"), command("sysctl", &["-n", "kernel.ostype"]).trim());
    assert_eq!(text(&row, "subsystem"), "kernel");
    assert!(query(&e, "SELECT name FROM system_controls").len() > 100, "the whole /proc/sys tree");
    // Kernels built without module support have no /proc/modules: then no rows.
    let modules = std::fs::read_to_string("/proc/modules").unwrap_or_default().lines().count();
    assert_eq!(query(&e, "SELECT name FROM kernel_modules").len(), modules);
    let logical: i64 = query(&e, "SELECT logical_processors FROM cpu_info")
        .iter()
        .map(|r| text(r, "logical_processors").parse::<i64>().unwrap())
        .sum();
    assert_eq!(logical.to_string(), command("getconf", &["_NPROCESSORS_ONLN"]).trim());
    let disks: BTreeSet<String> =
        command("lsblk", &["-d", "-n", "-o", "NAME"]).lines().map(|n| format!("/dev/{}", n.trim())).collect();
    let got = set_of(&query(&e, "SELECT name FROM disk_encryption"), "name");
    assert!(disks.is_subset(&got), "{disks:?} ⊄ {got:?}");
    assert!(query(&e, "SELECT * FROM disk_encryption WHERE encrypted NOT IN (0, 1)").is_empty());
}

#[test]
fn network_tables_match_ip() {
    let e = engine();
    let expected: BTreeSet<String> = command("ip", &["-o", "addr", "show"])
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let at = w.iter().position(|x| *x == "inet" || *x == "inet6")?;
            Some(w.get(at + 1)?.split('/').next()?.to_string())
        })
        .collect();
    let got: BTreeSet<String> = set_of(&query(&e, "SELECT address FROM interface_addresses"), "address")
        .into_iter()
        .map(|a| a.split('%').next().unwrap().to_string())
        .collect();
    assert_eq!(got, expected);
    let links: BTreeSet<String> = command("ip", &["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap().to_string()))
        .collect();
    assert_eq!(set_of(&query(&e, "SELECT interface FROM interface_details"), "interface"), links);
    let routes = command("ip", &["-4", "route", "show", "table", "main"]);
    if let Some(gateway) =
        routes.lines().find_map(|l| l.strip_prefix("default via ").and_then(|r| r.split_whitespace().next()))
    {
        let default = one(&e, "SELECT gateway, type FROM routes WHERE destination = '0.0.0.0' AND netmask = 0");
        assert_eq!((text(&default, "gateway"), text(&default, "type")), (gateway.to_string(), "gateway".into()));
    }
}

#[test]
fn package_sources_and_services_match_their_tools() {
    let e = engine();
    let policy = command("apt-cache", &["policy"]);
    for uri in set_of(&query(&e, "SELECT base_uri FROM apt_sources"), "base_uri") {
        assert!(policy.contains(uri.trim_end_matches('/')), "{uri} not in apt-cache policy");
    }
    let python =
        query(&e, "SELECT name, directory FROM python_packages WHERE directory = '/usr/lib/python3/dist-packages'");
    if !python.is_empty() {
        let listed = Command::new("/usr/bin/python3")
            .args(["-c", "import importlib.metadata as m\nfor d in m.distributions(path=['/usr/lib/python3/dist-packages']): print(d.metadata['Name'])"])
            .output()
            .unwrap();
        let expected: BTreeSet<String> =
            String::from_utf8_lossy(&listed.stdout).lines().map(str::to_lowercase).collect();
        let got: BTreeSet<String> = set_of(&python, "name").into_iter().map(|n| n.to_lowercase()).collect();
        assert_eq!(got, expected);
    }
    let systemd = Command::new("systemctl").args(["list-units", "--all", "--plain", "--no-legend"]).output();
    let units = query(&e, "SELECT id, active_state FROM systemd_units");
    match systemd {
        Ok(out) if out.status.success() => {
            assert_eq!(units.len(), String::from_utf8_lossy(&out.stdout).lines().count())
        }
        _ => assert!(units.is_empty(), "no systemd: no rows"),
    }
    assert!(query(&e, "SELECT * FROM rpm_packages").is_empty() || std::path::Path::new("/var/lib/rpm").exists());
}

/// jq's view of a JSON stream: every non-null scalar's path (keys joined with `/`) and value.
fn jq_leaves(path: &std::path::Path, slurp: bool) -> BTreeSet<(String, String)> {
    let program = r#"paths(type != "null" and type != "array" and type != "object") as $p
        | [($p | map(tostring) | join("/")), (getpath($p) | tostring)] | @tsv"#;
    let mut args = vec!["-r"];
    if slurp {
        args.push("-s");
    }
    args.push(program);
    let path = path.to_string_lossy().into_owned();
    args.push(&path);
    command("jq", &args)
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

#[test]
fn parse_json_and_jsonl_match_jq() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("settings.json");
    std::fs::write(
        &json,
        r#"{"editor": {"fontSize": 14, "ratio": 1.5, "wrap": false, "name": "x y", "none": null},
            "extensions": [{"id": "a", "enabled": true}, {"id": "b", "tags": ["one", "two"]}], "empty": {}}"#,
    )
    .unwrap();
    let jsonl = dir.path().join("events.jsonl");
    std::fs::write(&jsonl, "{\"event\": \"login\", \"uid\": 1000}\n{\"event\": \"logout\", \"uid\": 0}\n").unwrap();
    let e = engine();
    for (path, table, slurp) in [(&json, "parse_json", false), (&jsonl, "parse_jsonl", true)] {
        let rows =
            query(&e, &format!("SELECT fullkey, parent, key, value FROM {table} WHERE path = '{}'", path.display()));
        let got: BTreeSet<(String, String)> = rows.iter().map(|r| (text(r, "fullkey"), text(r, "value"))).collect();
        assert_eq!(got, jq_leaves(path, slurp), "{table}");
        for row in &rows {
            assert_eq!(
                format!("{}/{}", text(row, "parent"), text(row, "key")).trim_start_matches('/'),
                text(row, "fullkey")
            );
        }
    }
    // fleetd's policy shape: one value by its key, files found by a glob.
    let size = one(
        &e,
        &format!(
            "SELECT value FROM parse_json WHERE path LIKE '{}/%.json' AND fullkey = 'editor/fontSize'",
            dir.path().display()
        ),
    );
    assert_eq!(text(&size, "value"), "14");
    let filtered = query(
        &e,
        &format!(
            "SELECT fullkey FROM parse_json WHERE path = '{}' AND query = 'extensions/id=>b/tags'",
            json.display()
        ),
    );
    assert_eq!(
        set_of(&filtered, "fullkey"),
        BTreeSet::from(["extensions/1/tags/0".to_string(), "extensions/1/tags/1".to_string()])
    );
    assert!(query(&e, "SELECT * FROM parse_json WHERE path = '/no/such/file.json'").is_empty());
    std::fs::write(dir.path().join("broken.json"), "{\"a\": ").unwrap();
    assert!(
        query(&e, &format!("SELECT * FROM parse_json WHERE path = '{}/broken.json'", dir.path().display())).is_empty()
    );
    let err = e.query("SELECT * FROM parse_ini", Limits::default()).unwrap_err().to_string();
    assert!(err.contains("requires a constraint on path"), "{err}");
}

#[test]
fn parse_ini_and_parse_xml_read_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("gdm.conf");
    std::fs::write(
        &ini,
        "# GDM\n[daemon]\nAutomaticLoginEnable = false\nWaylandEnable=true\n[security]\nDisallowTCP = true\n",
    )
    .unwrap();
    let xml = dir.path().join("policy.xml");
    std::fs::write(
        &xml,
        "<?xml version=\"1.0\"?>\n<policy><rule name=\"ssh\">deny</rule><rule name=\"ftp\">allow</rule></policy>\n",
    )
    .unwrap();
    let e = engine();
    let rows = query(&e, &format!("SELECT fullkey, value FROM parse_ini WHERE path = '{}'", ini.display()));
    let got: BTreeSet<(String, String)> = rows.iter().map(|r| (text(r, "fullkey"), text(r, "value"))).collect();
    let want: BTreeSet<(String, String)> =
        [("daemon/AutomaticLoginEnable", "false"), ("daemon/WaylandEnable", "true"), ("security/DisallowTCP", "true")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    assert_eq!(got, want);
    let rows = query(&e, &format!("SELECT fullkey, value FROM parse_xml WHERE path = '{}'", xml.display()));
    let got: BTreeSet<(String, String)> = rows.iter().map(|r| (text(r, "fullkey"), text(r, "value"))).collect();
    let want: BTreeSet<(String, String)> = [
        ("policy/rule/0/#text", "deny"),
        ("policy/rule/0/-name", "ssh"),
        ("policy/rule/1/#text", "allow"),
        ("policy/rule/1/-name", "ftp"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(got, want);
}

/// What herd's augeas lens subset reads, as augtool names it (files and directories of files).
const AUGEAS_SUBSET: &[&str] = &[
    "/etc/login.defs",
    "/etc/pam.d",
    "/etc/ssh/sshd_config",
    "/etc/ssh/sshd_config.d",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/fstab",
    "/etc/sysctl.conf",
    "/etc/sysctl.d",
];

/// augtool's tree (node → value, "" for none) of the subset under `root`, with augeas's own lenses.
fn augtool_tree(root: &std::path::Path) -> BTreeSet<(String, String)> {
    let script: String = AUGEAS_SUBSET.iter().map(|p| format!("print /files{p}\n")).collect();
    let mut child = Command::new("augtool")
        .arg("--root")
        .arg(root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("augtool installed");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| match line.split_once(" = ") {
            Some((node, value)) => {
                let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
                (node.to_string(), augtool_unescape(value))
            }
            None => (line.to_string(), String::new()),
        })
        .collect()
}

/// augtool prints values with C escapes (`\t`, `\"`, `\\`).
fn augtool_unescape(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn same_tree(herd: &BTreeSet<(String, String)>, augtool: &BTreeSet<(String, String)>, what: &str) {
    let only_herd: Vec<_> = herd.difference(augtool).collect();
    let only_augtool: Vec<_> = augtool.difference(herd).collect();
    assert!(
        only_herd.is_empty() && only_augtool.is_empty(),
        "{what}: only herd has {only_herd:#?}\nonly augtool has {only_augtool:#?}"
    );
}

fn herd_augeas_tree(engine: &Engine) -> BTreeSet<(String, String)> {
    query(engine, "SELECT node, value FROM augeas")
        .iter()
        .map(|r| (text(r, "node"), text(r, "value")))
        .filter(|(node, _)| {
            AUGEAS_SUBSET.iter().any(|p| {
                let base = format!("/files{p}");
                *node == base || node.starts_with(&format!("{base}/"))
            })
        })
        .collect()
}

#[test]
fn augeas_matches_augtool_on_this_machine_and_on_fixtures() {
    same_tree(&herd_augeas_tree(&engine()), &augtool_tree(std::path::Path::new("/")), "this machine's files");

    let root = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "etc/ssh/sshd_config",
        "# Hardened\nInclude /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\nPasswordAuthentication no\n\
         AcceptEnv LANG LC_*\nAcceptEnv XMODIFIERS\nAllowUsers alice \"bob smith\"\nCiphers aes256-gcm@openssh.com,chacha20-poly1305@openssh.com\n\
         MACs hmac-sha2-512\nSubsystem sftp /usr/lib/openssh/sftp-server -l INFO\nClientAliveInterval=300\n\n\
         Match User backup Address 10.0.0.0/8\n  ForceCommand internal-sftp\n  # chrooted\n\n  ChrootDirectory /srv/%u\n\
         Match Group admins\n  X11Forwarding yes\n",
    );
    write("etc/ssh/sshd_config.d/50-cloud.conf", "PasswordAuthentication yes\n");
    write("etc/ssh/sshd_config.d/broken.conf", "  PermitRootLogin no\n");
    write("etc/ssh/sshd_config.d/60-last.conf", "MaxAuthTries 3");
    write(
        "etc/sudoers",
        "#\n# This file MUST be edited with the 'visudo' command as root.\nDefaults\tenv_reset\nDefaults\tmail_badpass\n\
         Defaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin\"\nDefaults\tuse_pty\n\
         Defaults:OPERATORS !lecture, passwd_tries=5, env_keep += \"LANG LC_ALL\"\n\
         User_Alias OPERATORS = alice, bob\nCmnd_Alias REBOOT = /sbin/reboot, /sbin/shutdown -r now\n\n\
         root\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\nOPERATORS ALL = (root) NOPASSWD: REBOOT # allowed\n\
         alice host1, host2 = /usr/bin/systemctl restart nginx : host3 = (www-data) /usr/bin/tail\n\
         @includedir /etc/sudoers.d\n",
    );
    write("etc/sudoers.d/90-admins", "%admins ALL=(ALL) NOPASSWD: ALL\n");
    write(
        "etc/login.defs",
        "# Password aging\nPASS_MAX_DAYS\t90\nPASS_MIN_DAYS   7\nUMASK\t\t022\nENCRYPT_METHOD SHA512\n#\n\nMAIL_DIR /var/mail # trailing\n",
    );
    write(
        "etc/pam.d/common-auth",
        "# PAM\nauth\t[success=1 default=ignore]\tpam_unix.so nullok\nauth\trequisite\t\t\tpam_deny.so\n\
         -session optional pam_systemd.so\npassword requisite pam_pwquality.so retry=3 minlen=14 # strength\n\
         @include common-account\naccount [success=ok new_authtok_reqd=done default=ignore] pam_unix.so\n",
    );
    write("etc/pam.d/README", "not a pam file\n");
    write(
        "etc/fstab",
        "# <file system> <mount point> <type> <options> <dump> <pass>\nUUID=abc / ext4 errors=remount-ro 0 1\n\
         /dev/sdb1\t/srv\txfs\tdefaults,noatime,x-systemd.device-timeout=5\t0\t2 # data\n/swap none swap sw 0 0\ntmpfs /tmp tmpfs\n",
    );
    write(
        "etc/sysctl.conf",
        "# Kernel\nnet.ipv4.ip_forward = 0\nkernel.randomize_va_space=2 # ASLR\n; old style\nfs.suid_dumpable =\n",
    );
    write("etc/sysctl.d/99-herd.conf", "net.ipv4.conf.all.rp_filter = 1\n-kernel.unknown = 1\n");
    write("etc/sysctl.d/README.sysctl", "docs\n");
    let fixture =
        Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::Augeas::at_root(root.path()))]).unwrap();
    let herd = herd_augeas_tree(&fixture);
    let augtool = augtool_tree(root.path());
    assert!(augtool.len() > 100, "augtool read the fixtures: {augtool:?}");
    same_tree(&herd, &augtool, "fixtures");

    // osquery's query shapes: by file path, by node, by label.
    let root_login =
        query(&fixture, "SELECT value FROM augeas WHERE path = '/etc/ssh/sshd_config' AND label = 'PermitRootLogin'");
    assert_eq!(set_of(&root_login, "value"), BTreeSet::from(["no".to_string()]));
    let node =
        one(&fixture, "SELECT label, value, path FROM augeas WHERE node = '/files/etc/login.defs/PASS_MAX_DAYS'");
    assert_eq!(
        (text(&node, "label"), text(&node, "value"), text(&node, "path")),
        ("PASS_MAX_DAYS".into(), "90".into(), "/etc/login.defs".into())
    );
    let dir = one(&fixture, "SELECT label, path FROM augeas WHERE node = '/files/etc/pam.d'");
    assert_eq!((text(&dir, "label"), text(&dir, "path")), ("pam.d".into(), "/etc/pam.d".into()));
    assert!(
        query(&fixture, "SELECT * FROM augeas WHERE path = '/etc/ssh/sshd_config.d/broken.conf'").is_empty(),
        "unparsable: no tree"
    );
    assert!(query(&fixture, "SELECT * FROM augeas WHERE path = '/etc/hosts'").is_empty(), "no Hosts lens: no rows");
}

#[test]
fn npm_packages_match_npm_ls() {
    let dir = tempfile::tempdir().unwrap();
    let package = |path: &str, json: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("package.json"), json).unwrap();
    };
    package(
        "node_modules/left-pad",
        r#"{"name": "left-pad", "version": "1.3.0", "author": {"name": "azer"}, "license": "WTFPL"}"#,
    );
    package(
        "node_modules/left-pad/node_modules/nested",
        r#"{"name": "nested", "version": "0.1.0", "author": "Someone <a@b>"}"#,
    );
    package(
        "node_modules/@scope/tool",
        r#"{"name": "@scope/tool", "version": "2.0.0-beta.1", "license": {"type": "MIT", "url": "https://x/l"}}"#,
    );
    let listed = Command::new("npm")
        .args(["ls", "--all", "--parseable", "--long"])
        .current_dir(dir.path())
        .output()
        .expect("npm installed");
    let expected: BTreeSet<(String, String)> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (path, rest) = l.split_once(':')?;
            let at = rest.split(':').next()?;
            let version = at.rsplit_once('@')?.1;
            Some((format!("{path}/package.json"), version.to_string()))
        })
        .collect();
    let e = engine();
    let rows = query(
        &e,
        &format!(
            "SELECT path, version, name, author, license, depth, directory FROM npm_packages WHERE directory = '{}'",
            dir.path().display()
        ),
    );
    let got: BTreeSet<(String, String)> = rows.iter().map(|r| (text(r, "path"), text(r, "version"))).collect();
    assert_eq!(got, expected);
    let by_name: BTreeMap<String, &BTreeMap<String, Option<String>>> =
        rows.iter().map(|r| (text(r, "name"), r)).collect();
    assert_eq!(text(by_name["left-pad"], "author"), "azer");
    assert_eq!(text(by_name["nested"], "depth"), "1");
    assert_eq!(text(by_name["nested"], "author"), "Someone <a@b>");
    assert_eq!(text(by_name["@scope/tool"], "license"), "https://x/l");
    assert_eq!(text(by_name["@scope/tool"], "directory"), dir.path().display().to_string());
    let shallow = query(
        &e,
        &format!("SELECT name FROM npm_packages WHERE directory = '{}' AND max_depth = 0", dir.path().display()),
    );
    assert_eq!(shallow.len(), 2, "max_depth 0 leaves nested packages out");
}

/// A local HTTP server for the curl table: `/ok` (a length-delimited body), `/chunked`, and `/silent` (accepts,
/// never answers). It records the User-Agent headers it saw.
fn http_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let agents = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = agents.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap_or_default();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(agent) = line.strip_prefix("User-Agent: ") {
                    seen.lock().unwrap().push(agent.trim().to_string());
                }
                line.clear();
            }
            let mut stream = stream;
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            match path.as_str() {
                "/ok" => {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello herd\n");
                }
                "/chunked" => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nnot f\r\n5\r\nound.\r\n0\r\n\r\n",
                    );
                }
                _ => held.push(stream),
            }
        }
    });
    (port, agents)
}

#[test]
fn curl_matches_the_curl_tool_against_a_local_server() {
    let (port, agents) = http_server();
    let e = engine();
    for path in ["/ok", "/chunked"] {
        let url = format!("http://127.0.0.1:{port}{path}");
        let tool =
            command("curl", &["-s", "-A", "herd-test", "-o", "-", "-w", "\n%{http_code} %{size_download}", &url]);
        let (body, stats) = tool.rsplit_once('\n').unwrap();
        let (code, size) = stats.split_once(' ').unwrap();
        let row = one(
            &e,
            &format!(
                "SELECT url, method, user_agent, response_code, bytes, result, round_trip_time FROM curl WHERE url = '{url}' AND user_agent = 'herd-test'"
            ),
        );
        assert_eq!(
            (text(&row, "response_code"), text(&row, "bytes"), text(&row, "result")),
            (code.to_string(), size.to_string(), body.to_string()),
            "{path}"
        );
        assert_eq!((text(&row, "method"), text(&row, "user_agent")), ("GET".into(), "herd-test".into()));
        assert!(text(&row, "round_trip_time").parse::<i64>().unwrap() > 0);
    }
    let default_agent = one(&e, &format!("SELECT user_agent FROM curl WHERE url = 'http://127.0.0.1:{port}/ok'"));
    assert_eq!(text(&default_agent, "user_agent"), "osquery");
    assert!(agents.lock().unwrap().iter().any(|a| a == "osquery"), "osquery's User-Agent is sent");
    // A server that never answers: the query's time limit ends the request, and the row says nothing came.
    let limits = Limits { timeout: std::time::Duration::from_secs(1), max_rows: 10 };
    let silent = e
        .query(&format!("SELECT response_code, result FROM curl WHERE url = 'http://127.0.0.1:{port}/silent'"), limits)
        .unwrap();
    assert_eq!(silent.rows, vec![vec![None, None]]);
    let refused = one(&e, "SELECT response_code FROM curl WHERE url = 'http://127.0.0.1:1/'");
    assert_eq!(refused["response_code"], None);
    let err = e.query("SELECT * FROM curl", Limits::default()).unwrap_err().to_string();
    assert!(err.contains("requires a constraint on url"), "{err}");
}

/// A local TLS server presenting `certificate` to one client after another.
fn tls_server(certificate: &rcgen::Certificate, key: &rcgen::KeyPair) -> u16 {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut connection = rustls::ServerConnection::new(config.clone()).unwrap();
            while connection.is_handshaking() {
                if connection.complete_io(&mut stream).is_err() {
                    break;
                }
            }
            let _ = connection.complete_io(&mut stream);
        }
    });
    port
}

/// `openssl x509 -ext` output: extension name → its lines joined with `;`.
fn openssl_extensions(pem: &std::path::Path) -> BTreeMap<String, String> {
    let out = command(
        "openssl",
        &[
            "x509",
            "-in",
            &pem.to_string_lossy(),
            "-noout",
            "-ext",
            "subjectAltName,keyUsage,extendedKeyUsage,basicConstraints,subjectKeyIdentifier,authorityKeyIdentifier",
        ],
    );
    let mut extensions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in out.lines() {
        if let Some(value) = line.strip_prefix("    ") {
            extensions.entry(current.clone()).or_default().push(value.trim().to_string());
        } else {
            current = line.split(':').next().unwrap_or("").trim().to_string();
        }
    }
    extensions.into_iter().map(|(k, v)| (k, v.join(";"))).collect()
}

#[test]
fn curl_certificate_matches_openssl_against_a_local_server() {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params.distinguished_name.push(rcgen::DnType::CommonName, "herd test");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "herd");
    params.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, "qa");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    let port = tls_server(&certificate, &key);
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("cert.pem");
    std::fs::write(&pem_path, certificate.pem()).unwrap();

    let row = one(
        &engine(),
        &format!("SELECT *, pem FROM curl_certificate WHERE hostname = '127.0.0.1:{port}' AND dump_certificate = 1"),
    );
    let field = |args: &[&str]| {
        let out = command("openssl", &[&["x509", "-in", &pem_path.to_string_lossy(), "-noout"], args].concat());
        out.trim().split_once('=').map(|(_, v)| v.to_string()).unwrap_or_default()
    };
    let serial = field(&["-serial"]);
    assert_eq!(text(&row, "serial_number"), serial.trim_start_matches("00"));
    assert_eq!(text(&row, "sha256_fingerprint"), field(&["-fingerprint", "-sha256"]).replace(':', "").to_lowercase());
    assert_eq!(text(&row, "sha1_fingerprint"), field(&["-fingerprint", "-sha1"]).replace(':', "").to_lowercase());
    assert_eq!(text(&row, "valid_from"), field(&["-startdate"]));
    assert_eq!(text(&row, "valid_to"), field(&["-enddate"]));
    assert_eq!(
        (text(&row, "common_name"), text(&row, "organization"), text(&row, "organization_unit")),
        ("herd test".into(), "herd".into(), "qa".into())
    );
    assert_eq!(text(&row, "issuer_common_name"), "herd test", "self-signed");
    assert_eq!(text(&row, "version"), "3");
    assert_eq!(text(&row, "signature_algorithm"), "ecdsa-with-SHA256");
    assert_eq!(text(&row, "has_expired"), "0");
    assert_eq!(text(&row, "pem"), certificate.pem());
    let extensions = openssl_extensions(&pem_path);
    for (name, column) in [
        ("X509v3 Subject Alternative Name", "subject_alternative_names"),
        ("X509v3 Key Usage", "key_usage"),
        ("X509v3 Extended Key Usage", "extended_key_usage"),
        ("X509v3 Basic Constraints", "basic_constraint"),
        ("X509v3 Subject Key Identifier", "subject_key_identifier"),
        ("X509v3 Authority Key Identifier", "authority_key_identifier"),
    ] {
        assert_eq!(text(&row, column), extensions.get(name).cloned().unwrap_or_default(), "{column}");
    }
    assert!(query(&engine(), "SELECT * FROM curl_certificate WHERE hostname = '127.0.0.1:1'").is_empty());
}

#[test]
fn chrome_extensions_read_a_profile_like_osquery() {
    let home = tempfile::tempdir().unwrap();
    let profile = home.path().join(".config/google-chrome/Default");
    let packed = profile.join("Extensions/abcdefghijklmnopabcdefghijklmnop/1.2.3_0");
    std::fs::create_dir_all(packed.join("_locales/en")).unwrap();
    let key = "aGVyZCB0ZXN0IGtleSBtYXRlcmlhbA==";
    let manifest = format!(
        r#"{{"name": "__MSG_appName__", "version": "1.2.3", "manifest_version": 3, "default_locale": "en",
            "permissions": ["tabs", "storage"], "background": {{"persistent": false}}, "key": "{key}",
            "description": "Blocks things", "update_url": "https://clients2.google.com/service/update2/crx"}}"#
    );
    std::fs::write(packed.join("manifest.json"), &manifest).unwrap();
    std::fs::write(packed.join("_locales/en/messages.json"), r#"{"appname": {"message": "Herd Blocker"}}"#).unwrap();
    let unpacked = home.path().join("dev/ext");
    std::fs::create_dir_all(&unpacked).unwrap();
    std::fs::write(unpacked.join("manifest.json"), r#"{"name": "Dev tool", "version": "0.1", "author": "me"}"#)
        .unwrap();
    let preferences = format!(
        r#"{{"profile": {{"name": "Person 1"}}, "extensions": {{"settings": {{
            "abcdefghijklmnopabcdefghijklmnop": {{"path": "abcdefghijklmnopabcdefghijklmnop/1.2.3_0", "state": 1,
                "from_webstore": true, "install_time": "13300000000000000"}},
            "devdevdevdevdevdevdevdevdevdevde": {{"path": "{}", "state": 0}}}}}}}}"#,
        unpacked.display()
    );
    std::fs::write(profile.join("Preferences"), preferences).unwrap();
    std::fs::write(profile.join("Secure Preferences"), "{}").unwrap();
    let e = Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::ChromeExtensions::with_homes(vec![(
        1000,
        home.path().to_path_buf(),
    )]))])
    .unwrap();
    let rows = query(&e, "SELECT * FROM chrome_extensions ORDER BY name");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (dev, blocker) = (&rows[0], &rows[1]);
    assert_eq!(text(blocker, "name"), "Herd Blocker", "localized from messages.json");
    assert_eq!(
        (text(blocker, "browser_type"), text(blocker, "profile"), text(blocker, "uid")),
        ("chrome".into(), "Person 1".into(), "1000".into())
    );
    assert_eq!((text(blocker, "permissions"), text(blocker, "persistent")), ("tabs, storage".into(), "0".into()));
    assert_eq!(
        (text(blocker, "referenced"), text(blocker, "state"), text(blocker, "from_webstore")),
        ("1".into(), "1".into(), "true".into())
    );
    assert_eq!(text(blocker, "install_timestamp"), "1655526400");
    // The identifier Chrome derives from the key, computed by base64 and openssl instead.
    let digest = Command::new("sh")
        .args(["-c", &format!("printf %s '{key}' | base64 -d | openssl dgst -sha256 -r")])
        .output()
        .unwrap();
    let hex_digest = String::from_utf8_lossy(&digest.stdout);
    let expected_id: String =
        hex_digest[..32].chars().map(|c| (b'a' + c.to_digit(16).unwrap() as u8) as char).collect();
    assert_eq!(text(blocker, "identifier"), expected_id);
    let sha = command("sha256sum", &[&packed.join("manifest.json").to_string_lossy()]);
    assert_eq!(text(blocker, "manifest_hash"), sha.split_whitespace().next().unwrap());
    assert_eq!((text(dev, "author"), text(dev, "referenced")), ("me".into(), "1".into()));
    assert_eq!(text(dev, "path"), std::fs::canonicalize(&unpacked).unwrap().display().to_string());
    assert_eq!(text(dev, "identifier"), "", "no key, no identifier");
    assert!(query(&e, "SELECT * FROM chrome_extensions WHERE uid = 0").is_empty());
    // A profile without its Secure Preferences is not read, as in osquery.
    std::fs::remove_file(profile.join("Secure Preferences")).unwrap();
    assert!(query(&e, "SELECT * FROM chrome_extensions").is_empty());
    assert!(query(&engine(), "SELECT * FROM chrome_extensions WHERE uid = 0").len() < 1000);
}

#[test]
fn process_envs_match_the_environment_a_child_was_given() {
    let mut child =
        Command::new("env").args(["-i", "HERD_A=1", "HERD_B=x=y", "HERD_EMPTY=", "sleep", "30"]).spawn().unwrap();
    let pid = child.id();
    // `env` replaces itself with sleep, whose environ is the one `env` built. Before that exec the child shows
    // this test's environment, and during it (the kernel sets up the new stack after renaming the process) an
    // empty one, so wait, with a deadline, until the kernel shows sleep's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default().starts_with(b"HERD_A=1\0") {
        assert!(std::time::Instant::now() < deadline, "the child never became sleep");
        std::thread::yield_now();
    }
    let rows = query(&engine(), &format!("SELECT key, value FROM process_envs WHERE pid = {pid}"));
    child.kill().unwrap();
    child.wait().unwrap();
    let got: BTreeSet<(String, String)> = rows.iter().map(|r| (text(r, "key"), text(r, "value"))).collect();
    let want: BTreeSet<(String, String)> = [("HERD_A", "1"), ("HERD_B", "x=y"), ("HERD_EMPTY", "")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn known_hosts_and_shell_history_read_a_home() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    let ed25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    let known_hosts = format!(
        "# managed by herd\ngithub.com ssh-ed25519 {ed25519}\n\n  [git.example.com]:2222 ssh-ed25519 {ed25519}  \n"
    );
    let file = home.path().join(".ssh/known_hosts");
    std::fs::write(&file, &known_hosts).unwrap();
    std::fs::write(home.path().join(".bash_history"), "#1700000000\nsudo systemctl restart ssh\nls\n").unwrap();
    std::fs::write(home.path().join(".zsh_history"), ": 1700000100:0;git push\n").unwrap();
    let homes = vec![(1000, home.path().to_path_buf())];
    let e = Engine::with_tables(vec![
        std::sync::Arc::new(herd_osquery::tables::KnownHosts::with_homes(homes.clone())),
        std::sync::Arc::new(herd_osquery::tables::ShellHistory::with_homes(homes)),
    ])
    .unwrap();
    let keys = query(&e, "SELECT uid, key, key_file FROM known_hosts");
    // ssh-keygen lists one fingerprint per host key line it accepts.
    let listed = command("ssh-keygen", &["-l", "-f", &file.to_string_lossy()]);
    assert_eq!(keys.len(), listed.lines().count(), "{keys:?}\n{listed}");
    assert_eq!(
        set_of(&keys, "key"),
        BTreeSet::from([
            format!("github.com ssh-ed25519 {ed25519}"),
            format!("[git.example.com]:2222 ssh-ed25519 {ed25519}")
        ])
    );
    assert_eq!(set_of(&keys, "key_file"), BTreeSet::from([file.display().to_string()]));
    let history = query(&e, "SELECT time, command, history_file FROM shell_history WHERE uid = 1000 ORDER BY time");
    let got: Vec<(String, String)> = history.iter().map(|r| (text(r, "time"), text(r, "command"))).collect();
    assert_eq!(
        got,
        [("0", "ls"), ("1700000000", "sudo systemctl restart ssh"), ("1700000100", "git push")]
            .map(|(t, c)| (t.to_string(), c.to_string()))
    );
    assert!(query(&e, "SELECT * FROM shell_history WHERE uid = 0").is_empty());
}

/// lsblk's devices (all of them, sizes in bytes) as (name, parent, size in bytes, logical sector, vendor, model,
/// serial).
fn lsblk_devices() -> BTreeMap<String, serde_json::Value> {
    let out = command("lsblk", &["-J", "-a", "-b", "-o", "NAME,PKNAME,SIZE,LOG-SEC,VENDOR,MODEL,SERIAL,MAJ:MIN"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut devices = BTreeMap::new();
    fn walk(list: &serde_json::Value, devices: &mut BTreeMap<String, serde_json::Value>) {
        for device in list.as_array().into_iter().flatten() {
            devices.insert(format!("/dev/{}", device["name"].as_str().unwrap()), device.clone());
            walk(&device["children"], devices);
        }
    }
    walk(&json["blockdevices"], &mut devices);
    devices
}

#[test]
fn block_devices_and_lsblk_match_lsblk() {
    let e = engine();
    let rows = query(&e, "SELECT * FROM block_devices");
    let lsblk = lsblk_devices();
    let ours: BTreeMap<String, &BTreeMap<String, Option<String>>> = rows.iter().map(|r| (text(r, "name"), r)).collect();
    // lsblk leaves out RAM disks (major 1) even with -a; every other device is in both.
    for (name, row) in &ours {
        let major = std::fs::read_to_string(format!("/sys/class/block/{}/dev", &name[5..])).unwrap_or_default();
        assert!(lsblk.contains_key(name) || major.starts_with("1:"), "{name} not listed by lsblk");
        let Some(device) = lsblk.get(name) else { continue };
        let field = |k: &str| match &device[k] {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.trim().to_string()),
            other => Some(other.to_string()),
        };
        let size: i64 = text(row, "size").parse().unwrap();
        assert_eq!(Some((size * 512).to_string()), field("size"), "{name}");
        assert_eq!(row["block_size"], field("log-sec"), "{name}");
        assert_eq!(text(row, "parent"), field("pkname").map(|p| format!("/dev/{p}")).unwrap_or_default(), "{name}");
        for column in ["vendor", "model", "serial"] {
            assert_eq!(row[column], field(column), "{name}.{column}");
        }
    }
    assert!(lsblk.keys().all(|n| ours.contains_key(n)), "{:?} vs {:?}", lsblk.keys(), ours.keys());
    let one = query(&e, &format!("SELECT name FROM block_devices WHERE name = '{}'", rows[0]["name"].clone().unwrap()));
    assert_eq!(one.len(), 1);

    // fleetd's lsblk: lsblk's own JSON, flattened; names per device index as lsblk -n -O lists them.
    let names = query(&e, "SELECT fullkey, value FROM lsblk WHERE query = 'blockdevices/*/name'");
    let out = command("lsblk", &["-n", "-O", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let want: BTreeSet<(String, String)> = json["blockdevices"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("blockdevices/{i}/name"), d["name"].as_str().unwrap().to_string()))
        .collect();
    let got: BTreeSet<(String, String)> = names.iter().map(|r| (text(r, "fullkey"), text(r, "value"))).collect();
    assert_eq!(got, want);
    assert!(query(&e, "SELECT * FROM lsblk").len() > names.len());
}

#[test]
fn process_open_sockets_match_ss_and_open_files_this_test_holds() {
    let pid = std::process::id();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_accepted, _) = listener.accept().unwrap();
    let udp = std::net::UdpSocket::bind("[::1]:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("herd test.sock");
    let _unix = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    let e = engine();
    let rows = query(&e, &format!("SELECT * FROM process_open_sockets WHERE pid = {pid}"));
    // ss's view of this process's TCP and UDP sockets: (fd, inode, local port, remote port).
    let ss = command("ss", &["-tuanpeH"]);
    let owner = format!("pid={pid},fd=");
    let token = |line: &str, prefix: &str| -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(prefix))
            .map(|v| v.split(|c: char| !c.is_ascii_digit()).next().unwrap().to_string())
            .unwrap_or_default()
    };
    let port = |endpoint: &str| endpoint.rsplit(':').next().unwrap().replace('*', "0");
    let want: BTreeSet<(String, String, String, String)> = ss
        .lines()
        .filter(|l| l.contains(&owner))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let fd = l[l.find(&owner).unwrap() + owner.len()..].split(|c: char| !c.is_ascii_digit()).next().unwrap();
            (fd.to_string(), token(l, "ino:"), port(f[4]), port(f[5]))
        })
        .collect();
    let got: BTreeSet<(String, String, String, String)> = rows
        .iter()
        .filter(|r| text(r, "family") != "1")
        .map(|r| (text(r, "fd"), text(r, "socket"), text(r, "local_port"), text(r, "remote_port")))
        .collect();
    assert_eq!(got, want, "{rows:?}\n{ss}");
    let client_row = rows
        .iter()
        .find(|r| text(r, "local_port") == client.local_addr().unwrap().port().to_string())
        .expect("the client socket");
    assert_eq!(
        (text(client_row, "family"), text(client_row, "protocol"), text(client_row, "state")),
        ("2".into(), "6".into(), "ESTABLISHED".into())
    );
    assert_eq!(text(client_row, "remote_address"), "127.0.0.1");
    let udp_row = rows
        .iter()
        .find(|r| text(r, "local_port") == udp.local_addr().unwrap().port().to_string())
        .expect("the UDP socket");
    assert_eq!(
        (text(udp_row, "family"), text(udp_row, "protocol"), text(udp_row, "local_address")),
        ("10".into(), "17".into(), "::1".into())
    );
    let unix: Vec<_> = rows.iter().filter(|r| text(r, "path") == socket_path.display().to_string()).collect();
    assert_eq!(unix.len(), 1, "{rows:?}");
    assert_eq!((text(unix[0], "family"), text(unix[0], "protocol")), ("1".into(), "0".into()));
    let namespace = std::fs::read_link("/proc/self/ns/net").unwrap().display().to_string();
    assert_eq!(format!("net:[{}]", text(unix[0], "net_namespace")), namespace);

    let file_path = dir.path().join("held open");
    let file = std::fs::File::create(&file_path).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let files = query(&e, &format!("SELECT fd, path FROM process_open_files WHERE pid = {pid}"));
    let held: Vec<_> = files.iter().filter(|r| text(r, "fd") == fd.to_string()).collect();
    assert_eq!(held.len(), 1, "{files:?}");
    assert_eq!(text(held[0], "path"), file_path.display().to_string());
    assert!(files.iter().all(|r| !text(r, "path").starts_with("socket:")), "{files:?}");
    // lsof's numbered descriptors other than sockets, pipes and anonymous inodes are the same ones.
    let lsof = command("lsof", &["-a", "-p", &pid.to_string(), "-Fftn"]);
    let mut listed = BTreeSet::new();
    let (mut fd_number, mut kind) = (String::new(), String::new());
    for line in lsof.lines() {
        match line.split_at(1) {
            ("f", v) => fd_number = v.to_string(),
            ("t", v) => kind = v.to_string(),
            ("n", v) if fd_number.parse::<u32>().is_ok() => {
                if !["IPv4", "IPv6", "unix", "sock", "FIFO", "a_inode"].contains(&kind.as_str()) {
                    listed.insert(fd_number.clone());
                }
                let _ = v;
            }
            _ => {}
        }
    }
    // The table's own reading of /proc/PID/fd is a descriptor too while it runs (as in osquery).
    let reading = format!("/proc/{pid}/fd");
    let ours: BTreeSet<String> = files.iter().filter(|r| text(r, "path") != reading).map(|r| text(r, "fd")).collect();
    assert_eq!(ours, listed, "{files:?}\n{lsof}");
    std::fs::remove_file(&file_path).unwrap();
    let files = query(&e, &format!("SELECT path FROM process_open_files WHERE pid = {pid} AND fd = {fd}"));
    assert_eq!(text(&files[0], "path"), format!("{} (deleted)", file_path.display()));
}

#[test]
fn suid_bin_matches_find_on_osquerys_roots() {
    // A setuid and a setgid file of this test's own, in /tmp (one of the roots).
    let dir = tempfile::Builder::new().prefix("herd-suid").tempdir_in("/tmp").unwrap();
    let (setuid, setgid) = (dir.path().join("setuid"), dir.path().join("setgid"));
    for (path, mode) in [(&setuid, 0o4755), (&setgid, 0o2750)] {
        std::fs::write(path, "").unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let rows = query(&engine(), "SELECT path, username, groupname, permissions FROM suid_bin");
    let roots = ["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/tmp"];
    let mut want = BTreeSet::new();
    for root in roots.iter().filter(|r| std::path::Path::new(r).exists()) {
        // -H: the root itself is followed when it is a link (merged /usr), nothing below it is.
        let found = Command::new("find")
            .args(["-H", root, "-perm", "/6000", "-type", "f", "-printf", "%p\t%u\t%g\t%m\n"])
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&found.stdout).lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let mode = u32::from_str_radix(f[3], 8).unwrap();
            let perms =
                format!("{}{}", if mode & 0o4000 != 0 { "S" } else { "" }, if mode & 0o2000 != 0 { "G" } else { "" });
            want.insert((f[0].to_string(), f[1].to_string(), f[2].to_string(), perms));
        }
    }
    let got: BTreeSet<_> = rows
        .iter()
        .map(|r| (text(r, "path"), text(r, "username"), text(r, "groupname"), text(r, "permissions")))
        // Links to setuid files are listed by osquery (and herd) under their own path; find -type f skips them.
        .filter(|(p, ..)| !std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()))
        .collect();
    assert_eq!(got, want);
    let mine: BTreeSet<_> = rows
        .iter()
        .filter(|r| text(r, "path").starts_with(&*dir.path().to_string_lossy()))
        .map(|r| (text(r, "path"), text(r, "permissions")))
        .collect();
    assert_eq!(
        mine,
        BTreeSet::from([
            (setuid.display().to_string(), "S".to_string()),
            (setgid.display().to_string(), "G".to_string())
        ])
    );
}

/// A glibc utmp record (384 bytes) of `kind` for `user` on `line` from `host` at `time`.
fn utmp_record(kind: i16, pid: i32, line: &str, user: &str, host: &str, time: i32) -> Vec<u8> {
    let mut record = vec![0u8; 384];
    record[0..2].copy_from_slice(&kind.to_ne_bytes());
    record[4..8].copy_from_slice(&pid.to_ne_bytes());
    record[8..8 + line.len()].copy_from_slice(line.as_bytes());
    record[40..40 + line.len().min(4)].copy_from_slice(&line.as_bytes()[line.len().saturating_sub(4)..]);
    record[44..44 + user.len()].copy_from_slice(user.as_bytes());
    record[76..76 + host.len()].copy_from_slice(host.as_bytes());
    record[340..344].copy_from_slice(&time.to_ne_bytes());
    record
}

#[test]
fn last_matches_the_last_tool_on_a_wtmp_file() {
    let dir = tempfile::tempdir().unwrap();
    let wtmp = dir.path().join("wtmp");
    let records = [
        utmp_record(2, 0, "~", "reboot", "6.1.0", 1_700_000_000),
        utmp_record(7, 4242, "pts/1", "alice", "10.0.0.5", 1_700_000_100),
        utmp_record(7, 4343, "tty1", "bob", "", 1_700_000_200),
        utmp_record(8, 4242, "pts/1", "", "", 1_700_000_500),
    ];
    std::fs::write(&wtmp, records.concat()).unwrap();
    // A truncated last record is ignored (last, which reads from the end, would misread this file).
    let truncated = dir.path().join("wtmp.truncated");
    std::fs::write(&truncated, [records.concat(), vec![0u8; 100]].concat()).unwrap();
    let e = Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::Last::with_path(&truncated))]).unwrap();
    let rows = query(&e, "SELECT * FROM last");
    let got: Vec<Vec<String>> = rows
        .iter()
        .map(|r| ["username", "tty", "pid", "type", "type_name", "time", "host"].iter().map(|c| text(r, c)).collect())
        .collect();
    let row = |v: [&str; 7]| v.map(String::from).to_vec();
    assert_eq!(
        got,
        [
            row(["alice", "pts/1", "4242", "7", "user-process", "1700000100", "10.0.0.5"]),
            row(["bob", "tty1", "4343", "7", "user-process", "1700000200", ""]),
            row(["", "pts/1", "4242", "8", "dead-process", "1700000500", ""]),
        ]
    );
    // util-linux's last lists the same logins (user, tty, host, time) from the same file.
    let listed = command("last", &["-f", &wtmp.to_string_lossy(), "-w", "--time-format", "iso"]);
    let logins: BTreeSet<(String, String, String)> = listed
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("reboot") && !l.starts_with("wtmp begins"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let host = if f[2].contains('T') { "" } else { f[2] };
            let time = if host.is_empty() { f[2] } else { f[3] };
            let seconds = chrono::DateTime::parse_from_rfc3339(time).unwrap().timestamp();
            (f[0].to_string(), f[1].to_string(), format!("{host}@{seconds}"))
        })
        .collect();
    let ours: BTreeSet<(String, String, String)> = rows
        .iter()
        .filter(|r| text(r, "type") == "7")
        .map(|r| (text(r, "username"), text(r, "tty"), format!("{}@{}", text(r, "host"), text(r, "time"))))
        .collect();
    assert_eq!(ours, logins, "{listed}");
    // This machine's wtmp reads without error (often empty).
    query(&engine(), "SELECT * FROM last");
}

unsafe extern "C" {
    /// glibc's res_init (resolv.h defines res_init as this) and the thread's resolver state (`_res`).
    fn __res_init() -> std::ffi::c_int;
    fn __res_state() -> *mut u8;
}

/// glibc's own reading of /etc/resolv.conf: (options, nameservers' IPv4 addresses).
fn glibc_resolver() -> (i64, Vec<String>) {
    // SAFETY: __res_init fills this thread's `struct __res_state`, whose head glibc has kept for decades:
    // int retrans, int retry, unsigned long options, int nscount, struct sockaddr_in nsaddr_list[3].
    unsafe {
        assert_eq!(__res_init(), 0);
        let state = __res_state();
        let long = std::mem::size_of::<std::ffi::c_ulong>();
        let options = std::ptr::read_unaligned(state.add(8) as *const std::ffi::c_ulong) as i64;
        let count = std::ptr::read_unaligned(state.add(8 + long) as *const std::ffi::c_int) as usize;
        let list = state.add(8 + long + 4);
        let addresses = (0..count.min(3))
            .filter_map(|i| {
                let entry = list.add(i * 16);
                let family = std::ptr::read_unaligned(entry as *const u16);
                // IPv6 nameservers live elsewhere in the state (family 0 here).
                (family == 2).then(|| {
                    let octets: [u8; 4] = std::ptr::read_unaligned(entry.add(4) as *const [u8; 4]);
                    std::net::Ipv4Addr::from(octets).to_string()
                })
            })
            .collect();
        (options, addresses)
    }
}

#[test]
fn dns_resolvers_match_glibc_and_read_a_fixture() {
    let rows = query(&engine(), "SELECT * FROM dns_resolvers");
    if std::path::Path::new("/etc/resolv.conf").exists() {
        let (options, nameservers) = glibc_resolver();
        let ours: Vec<String> = rows
            .iter()
            .filter(|r| text(r, "type") == "nameserver" && !text(r, "address").contains(':'))
            .map(|r| text(r, "address"))
            .collect();
        if !ours.is_empty() {
            assert_eq!(ours, nameservers, "{rows:?}");
        }
        assert!(rows.iter().all(|r| text(r, "options") == options.to_string()), "glibc: {options}: {rows:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("resolv.conf");
    std::fs::write(
        &conf,
        "# comment\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 10.0.0.2\n\
         nameserver 10.0.0.3\ndomain old.example\nsearch corp.example example.org\nsortlist 130.155.160.0/255.255.240.0 \
         130.155.0.0\noptions rotate ndots:2 edns0 trust-ad\n",
    )
    .unwrap();
    let e =
        Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::DnsResolvers::with_path(&conf))]).unwrap();
    let got: Vec<(String, String, String, String, String)> = query(&e, "SELECT * FROM dns_resolvers")
        .iter()
        .map(|r| (text(r, "type"), text(r, "id"), text(r, "address"), text(r, "netmask"), text(r, "options")))
        .collect();
    // glibc's defaults (0x2c1) with rotate (0x4000), edns0 (0x100000), trust-ad (0x4000000).
    let options = (0x2c1 | 0x4000 | 0x100000 | 0x4000000).to_string();
    let want: Vec<(String, String, String, String, String)> = [
        ("nameserver", "0", "10.0.0.1", "32"),
        ("nameserver", "1", "fe80::1", "32"),
        ("nameserver", "2", "10.0.0.2", "32"),
        ("sortlist", "0", "130.155.160.0", "255.255.240.0"),
        ("sortlist", "1", "130.155.0.0", ""),
        ("search", "0", "corp.example", ""),
        ("search", "1", "example.org", ""),
    ]
    .iter()
    .map(|(t, i, a, m)| (t.to_string(), i.to_string(), a.to_string(), m.to_string(), options.clone()))
    .collect();
    assert_eq!(got, want);
    let missing = Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::DnsResolvers::with_path(
        dir.path().join("none"),
    ))])
    .unwrap();
    assert!(query(&missing, "SELECT * FROM dns_resolvers").is_empty());
}

fn write_tree(root: &std::path::Path, files: &[(&str, &str)]) {
    for (path, contents) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

/// A helper's stdout when it ran and succeeded, else None (not installed, or it reports the feature absent).
fn tool_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn selinux_settings_read_selinuxfs_and_match_getenforce() {
    let root = tempfile::tempdir().unwrap();
    write_tree(
        root.path(),
        &[
            ("enforce", "1"),
            ("policyvers", "33"),
            ("booleans/httpd_can_network_connect", "1 1"),
            ("booleans/ssh_sysadm_login", "0 0"),
            ("booleans/pending_change", "0 1"),
            ("policy_capabilities/network_peer_controls", "1"),
            ("class/file/index", "7"),
            ("class/file/perms/read", "1"),
        ],
    );
    let e =
        Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::SelinuxSettings::with_root(root.path()))])
            .unwrap();
    let got: BTreeSet<(String, String, String)> = query(&e, "SELECT * FROM selinux_settings")
        .iter()
        .map(|r| (text(r, "scope"), text(r, "key"), text(r, "value")))
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        ("", "enforce", "1"),
        ("", "policyvers", "33"),
        ("booleans", "httpd_can_network_connect", "on"),
        ("booleans", "ssh_sysadm_login", "off"),
        ("policy_capabilities", "network_peer_controls", "1"),
        ("class", "file/perms", "read"),
    ]
    .iter()
    .map(|(s, k, v)| (s.to_string(), k.to_string(), v.to_string()))
    .collect();
    assert_eq!(got, want);
    // This machine: getenforce (selinux-utils) says Disabled exactly when there is no enforce key.
    let enforce = query(&engine(), "SELECT value FROM selinux_settings WHERE scope = '' AND key = 'enforce'");
    let want = match command("getenforce", &[]).trim() {
        "Enforcing" => vec!["1".to_string()],
        "Permissive" => vec!["0".to_string()],
        _ => vec![],
    };
    assert_eq!(enforce.iter().map(|r| text(r, "value")).collect::<Vec<_>>(), want);
}

#[test]
fn apparmor_profiles_read_securityfs_and_match_aa_status() {
    let root = tempfile::tempdir().unwrap();
    write_tree(
        root.path(),
        &[
            ("usr.sbin.cupsd.3/name", "/usr/sbin/cupsd\n"),
            ("usr.sbin.cupsd.3/mode", "enforce\n"),
            ("usr.sbin.cupsd.3/attach", "/usr/sbin/cupsd\n"),
            ("usr.sbin.cupsd.3/sha256", "ab12\n"),
            ("usr.sbin.cupsd.3/profiles/third_party.4/name", "third_party\n"),
            ("usr.sbin.cupsd.3/profiles/third_party.4/mode", "complain\n"),
            ("usr.sbin.cupsd.3/profiles/third_party.4/attach", "<unconfined>\n"),
            ("broken.5/name", "broken\n"),
        ],
    );
    let e = Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::ApparmorProfiles::with_profiles(
        root.path(),
    ))])
    .unwrap();
    let got: Vec<Vec<String>> =
        query(&e, "SELECT path, name, attach, mode, sha1, sha256 FROM apparmor_profiles ORDER BY path")
            .iter()
            .map(|r| ["path", "name", "attach", "mode", "sha1", "sha256"].iter().map(|c| text(r, c)).collect())
            .collect();
    let row = |v: [&str; 6]| v.map(String::from).to_vec();
    assert_eq!(
        got,
        [
            row(["/usr/sbin/cupsd", "/usr/sbin/cupsd", "/usr/sbin/cupsd", "enforce", "", "ab12"]),
            row(["/usr/sbin/cupsd//third_party", "third_party", "<unconfined>", "complain", "", ""]),
        ]
    );
    // This machine: aa-status (apparmor) lists the loaded profiles with their modes, or fails when AppArmor is
    // not enabled — then the table is empty.
    let ours: BTreeSet<(String, String)> = query(&engine(), "SELECT path, mode FROM apparmor_profiles")
        .iter()
        .map(|r| (text(r, "path"), text(r, "mode")))
        .collect();
    // aa-status prints nothing (and succeeds) when it cannot read securityfs.
    match tool_output("aa-status", &["--json"]).filter(|json| !json.trim().is_empty()) {
        Some(json) => {
            let json: serde_json::Value = serde_json::from_str(&json).unwrap();
            let listed: BTreeSet<(String, String)> = json["profiles"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(name, mode)| (name.clone(), mode.as_str().unwrap().to_string()))
                .collect();
            assert_eq!(ours, listed);
        }
        None => assert!(ours.is_empty(), "{ours:?}"),
    }
}

#[test]
fn secureboot_reads_efivars_and_matches_mokutil() {
    let efi = tempfile::tempdir().unwrap();
    let global = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
    std::fs::create_dir(efi.path().join("efivars")).unwrap();
    std::fs::write(efi.path().join(format!("efivars/SecureBoot-{global}")), [6, 0, 0, 0, 1]).unwrap();
    let e =
        Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::Secureboot::with_efi(efi.path()))]).unwrap();
    let row = one(&e, "SELECT secure_boot, setup_mode FROM secureboot");
    assert_eq!((row["secure_boot"].clone(), row["setup_mode"].clone()), (Some("1".into()), None));
    let bios = Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::Secureboot::with_efi(
        efi.path().join("absent"),
    ))])
    .unwrap();
    assert!(query(&bios, "SELECT * FROM secureboot").is_empty());
    // This machine: mokutil reads the same variable, and fails without EFI variables (then no row).
    let ours = query(&engine(), "SELECT secure_boot FROM secureboot");
    match tool_output("mokutil", &["--sb-state"]) {
        Some(state) if state.contains("SecureBoot enabled") => assert_eq!(text(&ours[0], "secure_boot"), "1"),
        Some(state) if state.contains("SecureBoot disabled") => assert_eq!(text(&ours[0], "secure_boot"), "0"),
        _ => assert!(ours.iter().all(|r| r["secure_boot"].is_none()), "{ours:?}"),
    }
}

#[test]
fn yum_sources_match_pythons_configparser() {
    let root = tempfile::tempdir().unwrap();
    let repos = root.path().join("repos");
    write_tree(
        root.path(),
        &[
            (
                "yum.conf",
                &format!(
                    "[main]\ngpgcheck=1\nreposdir={}\n\n[inline]\nname=Inline repo\nbaseurl=http://inline.example/\n",
                    repos.display()
                ),
            ),
            (
                "repos/base.repo",
                "# CentOS base\n[base]\nname = CentOS-$releasever - Base\nmirrorlist=http://mirrorlist.centos.org/?release=$releasever\n\
                 gpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7\n\n; updates\n[updates]\nname=Updates\n\
                 metalink=https://mirrors.fedoraproject.org/metalink?repo=updates\nenabled=0\n",
            ),
            (
                "repos/epel.repo",
                "[epel]\nname=EPEL\nbaseurl=https://dl.fedoraproject.org/pub/epel/9/\nenabled=1\ngpgcheck=0\n",
            ),
            ("repos/ignored.repo.rpmsave", "[old]\nname=old\n"),
            ("default/other.repo", "[other]\nname=not read: reposdir points elsewhere\n"),
        ],
    );
    let e = Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::YumSources::with_paths(
        root.path().join("yum.conf"),
        root.path().join("default"),
    ))])
    .unwrap();
    let columns = ["name", "baseurl", "mirrorlist", "metalink", "enabled", "gpgcheck", "gpgkey"];
    let got: Vec<BTreeMap<String, Option<String>>> = query(&e, "SELECT * FROM yum_sources")
        .into_iter()
        .map(|mut r| {
            r.retain(|k, _| columns.contains(&k.as_str()) || k == "source");
            r
        })
        .collect();
    // Python's configparser (no interpolation) reads the same files: each section but main, its keys.
    let script = r#"
import configparser, json, sys
rows = []
for path in sys.argv[2:]:
    parser = configparser.RawConfigParser()
    parser.read(path)
    for section in parser.sections():
        if section == "main":
            continue
        row = {k: parser.get(section, k) if parser.has_option(section, k) else None for k in sys.argv[1].split(",")}
        row["source"] = path
        rows.append(row)
print(json.dumps(rows))
"#;
    let files = [root.path().join("yum.conf"), repos.join("base.repo"), repos.join("epel.repo")];
    let mut args = vec!["-c".to_string(), script.to_string(), columns.join(",")];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let want: Vec<BTreeMap<String, Option<String>>> = serde_json::from_str(&command("python3", &args)).unwrap();
    assert_eq!(got, want);
    assert_eq!(got.len(), 4);
}

#[test]
fn agent_tables_report_herd_agents_own_facts() {
    let facts = herd_osquery::tables::SharedFacts::default();
    let e =
        Engine::with_tables(herd_osquery::tables::all_with_facts(herd_osquery::tables::default_flags(), facts.clone()))
            .unwrap();
    let version = text(&one(&e, "SELECT version FROM osquery_info"), "version");
    // ps (procps) counts this process's elapsed seconds from the same start time: read before and after.
    let elapsed =
        || -> i64 { command("ps", &["-o", "etimes=", "-p", &std::process::id().to_string()]).trim().parse().unwrap() };
    let before = elapsed();
    let row = one(&e, "SELECT * FROM orbit_info");
    let after = elapsed();
    assert_eq!(text(&row, "version"), version);
    for column in ["enrolled", "scripts_enabled", "device_auth_token", "orbit_channel", "update_url", "desktop_version"]
    {
        assert_eq!(row[column], None, "{column} is NULL until the agent says");
    }
    let uptime: i64 = text(&row, "uptime").parse().unwrap();
    // One second either way: ps and the table each round to whole seconds.
    assert!(before - 1 <= uptime && uptime <= after + 1, "orbit_info {uptime} s, ps {before}..{after} s");
    facts
        .write()
        .unwrap()
        .extend([("enrolled".to_string(), "true".to_string()), ("scripts_enabled".to_string(), "1".to_string())]);
    let row = one(&e, "SELECT enrolled, scripts_enabled FROM orbit_info");
    assert_eq!((text(&row, "enrolled"), text(&row, "scripts_enabled")), ("true".into(), "1".into()));
    assert!(query(&e, "SELECT * FROM osquery_schedule").is_empty());
    let core = one(&e, "SELECT * FROM osquery_extensions");
    assert_eq!(
        (text(&core, "uuid"), text(&core, "name"), text(&core, "version"), text(&core, "type")),
        ("0".into(), "core".into(), version, "core".into())
    );
}

/// What `openssl x509` says of one PEM certificate, in the certificates table's columns.
fn openssl_certificate(pem: &str) -> BTreeMap<&'static str, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cert.pem");
    std::fs::write(&file, pem).unwrap();
    let out = command(
        "openssl",
        &[
            "x509",
            "-in",
            &file.to_string_lossy(),
            "-noout",
            "-nameopt",
            "compat",
            "-subject",
            "-issuer",
            "-serial",
            "-fingerprint",
            "-sha1",
            "-startdate",
            "-enddate",
            "-text",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    let after = |label: &str| -> Option<String> {
        let i = lines.iter().position(|l| l.trim().starts_with(label))?;
        Some(lines.get(i + 1)?.trim().trim_start_matches("keyid:").replace(':', "").to_lowercase())
    };
    let field = |prefix: &str| lines.iter().find_map(|l| l.strip_prefix(prefix)).unwrap_or_default().to_string();
    let date = |prefix: &str| {
        let text = field(prefix);
        chrono::NaiveDateTime::parse_from_str(text.trim_end_matches(" GMT"), "%b %e %H:%M:%S %Y")
            .unwrap()
            .and_utc()
            .timestamp()
            .to_string()
    };
    let text_value = |label: &str| {
        lines.iter().find_map(|l| l.trim().strip_prefix(label)).map(|v| v.trim().to_string()).unwrap_or_default()
    };
    let strength = match lines.iter().find_map(|l| l.trim().strip_prefix("Public-Key: (")) {
        Some(bits) if text_value("Public Key Algorithm:") == "rsaEncryption" => {
            bits.split(' ').next().unwrap().to_string()
        }
        _ => text_value("ASN1 OID:"),
    };
    BTreeMap::from([
        ("subject", field("subject=")),
        ("issuer", field("issuer=")),
        // A zero serial: openssl's CLI prints the DER byte (00), osquery's BN_bn2hex prints 0.
        ("serial", Some(field("serial=")).filter(|s| !s.chars().all(|c| c == '0')).unwrap_or_else(|| "0".into())),
        ("sha1", field("sha1 Fingerprint=").replace(':', "").to_lowercase()),
        ("not_valid_before", date("notBefore=")),
        ("not_valid_after", date("notAfter=")),
        ("signing_algorithm", text_value("Signature Algorithm:")),
        ("key_algorithm", text_value("Public Key Algorithm:")),
        ("key_strength", strength),
        ("subject_key_id", after("X509v3 Subject Key Identifier:").unwrap_or_default()),
        ("authority_key_id", after("X509v3 Authority Key Identifier:").unwrap_or_default()),
        ("ca", if out.contains("CA:TRUE") { "1" } else { "0" }.to_string()),
    ])
}

#[test]
fn certificates_match_openssl_on_the_system_bundle_and_generated_ones() {
    let e = engine();
    let bundle = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("a system CA bundle");
    let rows = query(&e, &format!("SELECT * FROM certificates WHERE path = '{bundle}'"));
    let text_of_bundle = std::fs::read_to_string(bundle).unwrap();
    let pems: Vec<String> = text_of_bundle
        .split("-----END CERTIFICATE-----")
        .filter_map(|part| {
            part.find("-----BEGIN CERTIFICATE-----").map(|i| format!("{}-----END CERTIFICATE-----\n", &part[i..]))
        })
        .collect();
    assert_eq!(rows.len(), pems.len());
    for (row, pem) in rows.iter().zip(&pems) {
        let want = openssl_certificate(pem);
        for (column, value) in &want {
            assert_eq!(&text(row, column), value, "{column} of {}", text(row, "subject"));
        }
        assert_eq!(text(row, "path"), bundle);
        assert_eq!(row["subject2"], None);
    }
    let by_default = query(&e, "SELECT sha1 FROM certificates");
    assert!(set_of(&rows, "sha1").is_subset(&set_of(&by_default, "sha1")));

    // A CA of our own and a leaf it signed: key usage, CA and self-signed flags, an EC key's curve.
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "herd test CA");
    ca_params.distinguished_name.push(rcgen::DnType::OrganizationName, "herd");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(vec!["leaf.example".to_string()]).unwrap();
    leaf_params.distinguished_name.push(rcgen::DnType::CommonName, "leaf.example");
    leaf_params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment];
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.pem");
    std::fs::write(&path, format!("{}junk between\n{}", ca.pem(), leaf.pem())).unwrap();
    let rows = query(&e, &format!("SELECT * FROM certificates WHERE path = '{}'", path.display()));
    assert_eq!(rows.len(), 2);
    for (row, pem) in rows.iter().zip([ca.pem(), leaf.pem()]) {
        for (column, value) in openssl_certificate(&pem) {
            assert_eq!(text(row, column), value, "{column}");
        }
    }
    let flags = |r: &BTreeMap<String, Option<String>>| {
        (text(r, "common_name"), text(r, "ca"), text(r, "self_signed"), text(r, "key_usage"), text(r, "key_strength"))
    };
    assert_eq!(
        flags(&rows[0]),
        ("herd test CA".into(), "1".into(), "1".into(), "CRL Sign, Key Cert Sign".into(), "secp384r1".into())
    );
    assert_eq!(
        flags(&rows[1]),
        (
            "leaf.example".into(),
            "0".into(),
            "0".into(),
            "Key Encipherment, Digital Signature".into(),
            "prime256v1".into()
        )
    );
    assert_eq!(text(&rows[0], "subject"), "/CN=herd test CA/O=herd");
    assert!(query(&e, "SELECT * FROM certificates WHERE path = '/no/such/bundle.pem'").is_empty());
}

#[test]
fn vscode_extensions_match_jq_on_a_home() {
    let home = tempfile::tempdir().unwrap();
    let code = home.path().join(".vscode/extensions");
    let cursor = home.path().join(".cursor/extensions");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::create_dir_all(&cursor).unwrap();
    std::fs::write(
        code.join("extensions.json"),
        r#"[{"identifier":{"id":"ms-python.python","uuid":"f1f59ae4-9318-4f3c-a9b5-81b2eaa5f8a5"},"version":"2024.0.1",
            "location":{"$mid":1,"fsPath":"/home/u/.vscode/extensions/ms-python.python-2024.0.1","path":"/home/u/.vscode/extensions/ms-python.python-2024.0.1","scheme":"file"},
            "relativeLocation":"ms-python.python-2024.0.1",
            "metadata":{"id":"f1f59ae4-9318-4f3c-a9b5-81b2eaa5f8a5","publisherId":"998b010b-e2af-44a5-a6cd-0b5fd3b9b6f8","publisherDisplayName":"Microsoft","installedTimestamp":1700000000123,"isPreReleaseVersion":true}},
           {"identifier":{"id":"local.unsigned"},"version":"0.0.1","location":{"fsPath":"/home/u/.vscode/extensions/local.unsigned-0.0.1"}}]"#,
    )
    .unwrap();
    std::fs::write(cursor.join("extensions.json"), "not json").unwrap();
    let e = Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::VscodeExtensions::with_homes(vec![(
        1000,
        home.path().to_path_buf(),
    )]))])
    .unwrap();
    let columns = ["name", "uuid", "version", "path", "publisher", "publisher_id", "installed_at", "prerelease"];
    let got: Vec<Vec<String>> = query(&e, "SELECT * FROM vscode_extensions WHERE uid = 1000")
        .iter()
        .map(|r| {
            assert_eq!((text(r, "uid"), text(r, "vscode_edition")), ("1000".into(), "vscode".into()));
            columns.iter().map(|c| text(r, c)).collect()
        })
        .collect();
    // jq reads the same entries the same way (missing keys as "").
    let filter = r#".[] | [.identifier.id, .identifier.uuid, .version, (.location.path // .location.fsPath),
        .metadata.publisherDisplayName, .metadata.publisherId, (.metadata.installedTimestamp | if . == null then null else tostring end),
        (if (.metadata.isPreReleaseVersion // .metadata.preRelease // false) then "1" else "0" end)] | map(. // "") | @tsv"#;
    let want: Vec<Vec<String>> = command("jq", &["-r", filter, &code.join("extensions.json").to_string_lossy()])
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 2);
    assert!(query(&e, "SELECT * FROM vscode_extensions WHERE uid = 0").is_empty());
}

#[test]
fn firefox_addons_match_jq_on_a_profile() {
    let home = tempfile::tempdir().unwrap();
    let profile = home.path().join(".mozilla/firefox/abcd1234.default-release");
    std::fs::create_dir_all(&profile).unwrap();
    std::fs::write(home.path().join(".mozilla/firefox/profiles.ini"), "[Profile0]\nPath=abcd1234.default-release\n")
        .unwrap();
    let extensions = profile.join("extensions.json");
    std::fs::write(
        &extensions,
        r#"{"schemaVersion":36,"addons":[
            {"id":"uBlock0@raymondhill.net","version":"1.55.0","type":"extension","location":"app-profile",
             "defaultLocale":{"name":"uBlock Origin","creator":"Raymond Hill","description":"Finally, an efficient blocker."},
             "sourceURI":"https://addons.mozilla.org/firefox/downloads/file/4216633/ublock_origin-1.55.0.xpi",
             "visible":true,"active":true,"userDisabled":false,"appDisabled":false,"softDisabled":false,"applyBackgroundUpdates":1,
             "path":"/home/u/.mozilla/firefox/abcd1234.default-release/extensions/uBlock0@raymondhill.net.xpi"},
            {"id":"old@example.org","version":"0.1","type":"extension","location":"app-profile","defaultLocale":{"name":"Old"},
             "visible":true,"active":false,"userDisabled":true,"applyBackgroundUpdates":0},
            {"id":"default-theme@mozilla.org","type":"theme","location":"app-builtin","visible":false,"active":true}]}"#,
    )
    .unwrap();
    let e = Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::FirefoxAddons::with_homes(vec![(
        1000,
        home.path().to_path_buf(),
    )]))])
    .unwrap();
    let columns = [
        "identifier",
        "name",
        "creator",
        "type",
        "version",
        "description",
        "source_url",
        "visible",
        "active",
        "disabled",
        "autoupdate",
        "location",
        "path",
    ];
    let got: Vec<Vec<String>> = query(&e, "SELECT * FROM firefox_addons")
        .iter()
        .map(|r| columns.iter().map(|c| text(r, c)).collect())
        .collect();
    // jq reads the same entries (booleans as 1/0, any of the three disables as disabled, missing keys as "").
    let filter = r#".addons[] | [.id, .defaultLocale.name, .defaultLocale.creator, .type, .version,
        .defaultLocale.description, .sourceURI, (if .visible then "1" else "0" end), (if .active then "1" else "0" end),
        (if (.softDisabled or .appDisabled or .userDisabled) then "1" else "0" end),
        (.applyBackgroundUpdates | if . == null then null else tostring end), .location, .path] | map(. // "") | @tsv"#;
    let want: Vec<Vec<String>> = command("jq", &["-r", filter, &extensions.to_string_lossy()])
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 3);
    let one_addon = query(&e, "SELECT uid, name FROM firefox_addons WHERE identifier = 'old@example.org'");
    assert_eq!((text(&one_addon[0], "uid"), text(&one_addon[0], "name")), ("1000".into(), "Old".into()));
}

#[test]
fn google_chrome_profiles_match_jq_on_a_local_state() {
    let home = tempfile::tempdir().unwrap();
    let chrome = home.path().join(".config/google-chrome");
    std::fs::create_dir_all(&chrome).unwrap();
    let local_state = chrome.join("Local State");
    std::fs::write(
        &local_state,
        r#"{"browser":{"enabled_labs_experiments":[]},"profile":{"info_cache":{
            "Default":{"name":"Person 1","user_name":"alice@example.com","is_ephemeral":false,"gaia_name":"Alice"},
            "Profile 1":{"name":"Guest-ish","user_name":"","is_ephemeral":true}},"last_used":"Default"}}"#,
    )
    .unwrap();
    let e = Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::GoogleChromeProfiles::with_homes(
        vec![("alice".to_string(), home.path().to_path_buf())],
    ))])
    .unwrap();
    let got: BTreeSet<Vec<String>> = query(&e, "SELECT * FROM google_chrome_profiles")
        .iter()
        .map(|r| ["name", "email", "ephemeral", "username"].iter().map(|c| text(r, c)).collect())
        .collect();
    let filter =
        r#".profile.info_cache[] | [.name, .user_name, (if .is_ephemeral then "1" else "0" end), "alice"] | @tsv"#;
    let want: BTreeSet<Vec<String>> = command("jq", &["-r", filter, &local_state.to_string_lossy()])
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 2);
    assert_eq!(query(&e, "SELECT name FROM google_chrome_profiles WHERE ephemeral = 1").len(), 1);
}

#[test]
fn nftables_matches_nft_flattened_by_jq() {
    let rows = query(&engine(), "SELECT fullkey, value FROM nftables");
    let got: BTreeSet<(String, String)> = rows.iter().map(|r| (text(r, "fullkey"), text(r, "value"))).collect();
    // nft itself, the same way; it fails without CAP_NET_ADMIN, and then the table is empty.
    let output = Command::new("nft").args(["-jat", "list", "ruleset"]).output().expect("nft (Debian's nftables)");
    if !output.status.success() {
        assert!(got.is_empty(), "{got:?}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ruleset.json");
    std::fs::write(&file, &output.stdout).unwrap();
    assert_eq!(got, jq_leaves(&file, false));
    assert!(got.iter().any(|(k, _)| k.starts_with("nftables/0/metainfo/")), "{got:?}");
}

#[test]
fn portage_packages_read_a_portage_database() {
    let root = tempfile::tempdir().unwrap();
    write_tree(
        root.path(),
        &[
            ("var/db/pkg/sys-devel/gcc-13.2.1_p20240113-r1/SLOT", "13\n"),
            ("var/db/pkg/sys-devel/gcc-13.2.1_p20240113-r1/BUILD_TIME", "1706000000\n"),
            ("var/db/pkg/sys-devel/gcc-13.2.1_p20240113-r1/repository", "gentoo\n"),
            ("var/db/pkg/sys-devel/gcc-13.2.1_p20240113-r1/EAPI", "8\n"),
            ("var/db/pkg/sys-devel/gcc-13.2.1_p20240113-r1/SIZE", "187654321\n"),
            ("var/db/pkg/app-editors/vim-9.0.2092/SLOT", "0\n"),
            ("var/db/pkg/app-editors/vim-9.0.2092/EAPI", "not a number\n"),
            ("var/lib/portage/world", "app-editors/vim\nwww-client/firefox\n"),
        ],
    );
    let e =
        Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::PortagePackages::with_root(root.path()))])
            .unwrap();
    let columns = ["package", "version", "slot", "build_time", "repository", "eapi", "size", "world"];
    let got: Vec<Vec<String>> = query(&e, "SELECT * FROM portage_packages ORDER BY package")
        .iter()
        .map(|r| columns.iter().map(|c| text(r, c)).collect())
        .collect();
    let row = |v: [&str; 8]| v.map(String::from).to_vec();
    assert_eq!(
        got,
        [
            row(["app-editors/vim", "9.0.2092", "0", "", "", "", "", "1"]),
            row(["sys-devel/gcc", "13.2.1_p20240113-r1", "13", "1706000000", "gentoo", "8", "187654321", "0"]),
        ]
    );
    // Not a Gentoo machine: no database, no rows.
    assert!(
        query(&engine(), "SELECT * FROM portage_packages").is_empty() || std::path::Path::new("/var/db/pkg").exists()
    );
}

/// A local SNTP server answering every request with `transmit_unix_ms` as its time and the given stratum.
fn sntp_server(transmit_unix_ms: u64, stratum: u8) -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut request = [0u8; 48];
        while let Ok((_, peer)) = socket.recv_from(&mut request) {
            let seconds = transmit_unix_ms / 1000 + 2_208_988_800;
            let fraction = ((transmit_unix_ms % 1000) << 32) / 1000;
            let ntp = ((seconds << 32) | fraction).to_be_bytes();
            let mut reply = [0u8; 48];
            reply[0] = 0x24; // LI 0, version 4, mode 4 (server)
            reply[1] = stratum;
            reply[24..32].copy_from_slice(&request[40..48]);
            reply[32..40].copy_from_slice(&ntp);
            reply[40..48].copy_from_slice(&ntp);
            let _ = socket.send_to(&reply, peer);
        }
    });
    port
}

#[test]
fn sntp_request_asks_a_local_server() {
    let server_ms: u64 = 1_893_456_000_500; // 2030-01-01T00:00:00.5Z
    let port = sntp_server(server_ms, 2);
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let e = engine();
    let before = now_ms();
    let row = one(&e, &format!("SELECT * FROM sntp_request WHERE server = '127.0.0.1:{port}'"));
    let after = now_ms();
    assert_eq!(text(&row, "timestamp_ms"), server_ms.to_string());
    let offset: i64 = text(&row, "clock_offset_ms").parse().unwrap();
    let server_ms = server_ms as i64;
    assert!(server_ms - after - 1 <= offset && offset <= server_ms - before + 1, "{offset}");
    // A kiss of death (stratum 0) gives no row, and so does a server that never answers (within the query's
    // time), and a required column left out is osquery's error.
    let kiss = sntp_server(server_ms as u64, 0);
    assert!(query(&e, &format!("SELECT * FROM sntp_request WHERE server = '127.0.0.1:{kiss}'")).is_empty());
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let limits = Limits { timeout: std::time::Duration::from_millis(300), max_rows: 10 };
    match e.query(&format!("SELECT * FROM sntp_request WHERE server = '127.0.0.1:{silent_port}'"), limits) {
        Ok(out) => assert!(out.rows.is_empty()),
        Err(err) => assert!(err.to_string().contains("longer than"), "{err}"),
    }
    assert!(e.query("SELECT * FROM sntp_request", Limits::default()).is_err());
}

/// Docker's `top` answer for the fake container (ps's columns as osquery asks for them).
const TOP: &str = r#"{"Titles":["PID","S","UID","GID","EUID","EGID","SUID","SGID","RSS","VSZ","ELAPSED","PPID","PGRP","NLWP","NI","USER","TIME","%CPU","%MEM","COMMAND","CMD"],
  "Processes":[["1","Ss","0","0","0","0","0","0","5120","11000","7200","0","1","1","0","root","00:00:00","0.1","0.2","nginx","nginx: master process nginx -g daemon off;"],
               ["29","S","101","101","101","101","101","101","2048","11500","7190","1","1","1","0","nginx","00:00:01","0.0","0.1","nginx","nginx: worker process"]]}"#;

#[test]
fn docker_containers_ask_the_engine_api_on_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let pid = std::process::id();
    let list = r#"[{"Id":"c0ffee","Names":["/web"],"Image":"nginx:1.25","ImageID":"sha256:abc","Command":"/docker-entrypoint.sh nginx","Created":1700000000,"State":"running","Status":"Up 2 hours"},
                   {"Id":"dead00","Names":["/old"],"Image":"busybox","ImageID":"sha256:def","Command":"sh","Created":1690000000,"State":"exited","Status":"Exited (0) 3 days ago"}]"#;
    let web = format!(
        r#"{{"Id":"c0ffee","Path":"/docker-entrypoint.sh","State":{{"Pid":{pid},"StartedAt":"2023-11-14T22:13:20Z","FinishedAt":"0001-01-01T00:00:00Z"}},
            "HostConfig":{{"Privileged":true,"ReadonlyRootfs":false,"SecurityOpt":["seccomp=unconfined","no-new-privileges"]}},
            "Config":{{"Entrypoint":["/docker-entrypoint.sh"],"Env":["PATH=/usr/bin","NGINX_VERSION=1.25.3"]}}}}"#
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 4096];
            let n = std::io::Read::read(&mut stream, &mut request).unwrap_or(0);
            let request = String::from_utf8_lossy(&request[..n]).into_owned();
            let (status, body) = if request.starts_with("GET /containers/json?all=1 ") {
                ("200 OK", list.to_string())
            } else if request.starts_with("GET /containers/c0ffee/json ") {
                ("200 OK", web.clone())
            } else if request.starts_with(
                "GET /containers/c0ffee/top?ps_args=axwwo%20pid,state,uid,gid,euid,egid,suid,sgid,rss,vsz,etimes,ppid,\
                 pgrp,nlwp,nice,user,time,pcpu,pmem,comm,cmd ",
            ) {
                ("200 OK", TOP.to_string())
            } else {
                ("404 Not Found", r#"{"message":"No such container"}"#.to_string())
            };
            let _ = std::io::Write::write_all(
                &mut stream,
                format!("HTTP/1.0 {status}\r\nContent-Type: application/json\r\n\r\n{body}").as_bytes(),
            );
        }
    });
    let e =
        Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::DockerContainers::with_socket(&socket))])
            .unwrap();
    let rows = query(&e, "SELECT * FROM docker_containers ORDER BY id");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let web_row = &rows[0];
    let expect = [
        ("id", "c0ffee"),
        ("name", "web"),
        ("image", "nginx:1.25"),
        ("image_id", "sha256:abc"),
        ("command", "/docker-entrypoint.sh nginx"),
        ("created", "1700000000"),
        ("state", "running"),
        ("status", "Up 2 hours"),
        ("path", "/docker-entrypoint.sh"),
        ("started_at", "2023-11-14T22:13:20Z"),
        ("privileged", "1"),
        ("readonly_rootfs", "0"),
        ("config_entrypoint", "/docker-entrypoint.sh"),
        ("security_options", "seccomp=unconfined, no-new-privileges"),
        ("env_variables", "PATH=/usr/bin, NGINX_VERSION=1.25.3"),
    ];
    for (column, value) in expect {
        assert_eq!(text(web_row, column), value, "{column}");
    }
    assert_eq!(text(web_row, "pid"), pid.to_string());
    for (column, ns) in [("net_namespace", "net"), ("mnt_namespace", "mnt"), ("pid_namespace", "pid")] {
        let link = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap().display().to_string();
        assert_eq!(format!("{ns}:[{}]", text(web_row, column)), link, "{column}");
    }
    // The exited one: its details were not found (404), so they are NULL.
    assert_eq!((text(&rows[1], "name"), rows[1]["pid"].clone()), ("old".into(), None));
    assert_eq!(query(&e, "SELECT id FROM docker_containers WHERE name = 'web'").len(), 1);
    // Its processes, as Docker's top reports them with osquery's ps columns.
    let e = Engine::with_tables(vec![std::sync::Arc::new(
        herd_osquery::tables::DockerContainerProcesses::with_socket(&socket),
    )])
    .unwrap();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let before = now();
    let processes = query(&e, "SELECT * FROM docker_container_processes WHERE id = 'c0ffee' ORDER BY pid");
    let after = now();
    assert_eq!(processes.len(), 2, "{processes:?}");
    let nginx = &processes[0];
    let expect = [
        ("pid", "1"),
        ("state", "Ss"),
        ("uid", "0"),
        ("euid", "0"),
        ("resident_size", "5242880"),
        ("total_size", "11264000"),
        ("parent", "0"),
        ("pgroup", "1"),
        ("threads", "1"),
        ("nice", "0"),
        ("user", "root"),
        ("time", "00:00:00"),
        ("cpu", "0.1"),
        ("mem", "0.2"),
        ("name", "nginx"),
        ("cmdline", "nginx: master process nginx -g daemon off;"),
    ];
    for (column, value) in expect {
        assert_eq!(text(nginx, column), value, "{column}");
    }
    let started: i64 = text(nginx, "start_time").parse().unwrap();
    // ELAPSED 7200 s before the moment the table read it.
    assert!(before - 7200 <= started && started <= after - 7200, "{started}");
    assert_eq!(nginx["wired_size"], None);
    assert!(query(&e, "SELECT * FROM docker_container_processes WHERE id = 'dead00'").is_empty());
    assert!(e.query("SELECT * FROM docker_container_processes", Limits::default()).is_err(), "id is required");
    // No socket: no rows.
    let none = Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::DockerContainers::with_socket(
        dir.path().join("absent.sock"),
    ))])
    .unwrap();
    assert!(query(&none, "SELECT * FROM docker_containers").is_empty());
}

/// An SQL string literal.
fn sql_text(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// What the yara tool reported for one file: its matched rules, their tags, each string's first match.
#[derive(Default)]
struct YaraReport {
    matches: Vec<String>,
    tags: Vec<String>,
    strings: Vec<String>,
}

/// What osquery's yara columns would hold (`matches`, `tags`, `strings`) for each file the yara tool reports on,
/// from `yara -f -s -g` (fast mode, as osquery scans): rules in the order reported, their tags, and each string's
/// first match as `$id:hexoffset`. Files the tool reports nothing for are absent.
fn yara_tool(rules: &std::path::Path, target: &std::path::Path) -> BTreeMap<String, (String, String, String)> {
    let out = command("yara", &["-f", "-s", "-g", "-r", &rules.display().to_string(), &target.display().to_string()]);
    let mut files: BTreeMap<String, YaraReport> = BTreeMap::new();
    let mut current: Option<(String, BTreeSet<String>)> = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("0x") {
            // 0xOFFSET:$id: data
            let (offset, rest) = rest.split_once(':').unwrap();
            let id = rest.split(':').next().unwrap();
            let (path, seen) = current.as_mut().unwrap();
            if seen.insert(id.to_string()) {
                files.get_mut(path.as_str()).unwrap().strings.push(format!("{id}:{offset}"));
            }
            continue;
        }
        // rule [tag,tag] path
        let (rule, rest) = line.split_once(' ').unwrap();
        let (tags, path) = rest.strip_prefix('[').unwrap().split_once("] ").unwrap();
        let report = files.entry(path.to_string()).or_default();
        report.matches.push(rule.to_string());
        report.tags.extend(tags.split(',').filter(|t| !t.is_empty()).map(str::to_string));
        current = Some((path.to_string(), BTreeSet::new()));
    }
    files.into_iter().map(|(path, r)| (path, (r.matches.join(","), r.tags.join(","), r.strings.join(",")))).collect()
}

#[test]
fn yara_matches_the_yara_tool() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("scanned");
    write_tree(
        &target,
        &[
            ("a.txt", "..alpha..beta..alpha..gamma..delta"),
            ("b.txt", "nothing here"),
            ("sub/c.txt", "gamma delta alpha"),
            ("sub/deeper/d.bin", "\u{7f}ELF....beta"),
        ],
    );
    // Not scanned: a FIFO (opening it would block) and a sparse file over the 64 MiB limit.
    nix::unistd::mkfifo(&target.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::File::create(target.join("huge.bin")).unwrap().set_len(65 << 20).unwrap();
    let rules = dir.path().join("rules.yar");
    std::fs::write(
        &rules,
        r#"
import "hash"
import "math"
rule first : tag1 tag2 { strings: $a = "alpha" $b = "beta" condition: any of them }
private rule hidden { condition: true }
rule second { strings: $c = "gamma" $d = "delta" private condition: $c and $d and hidden }
rule small : tiny { condition: filesize < 20 and hash.md5(0, filesize) != "" and math.entropy(0, filesize) > 1 }
rule elf { condition: uint32(0) == 0x464c457f }
rule never { condition: false }
"#,
    )
    .unwrap();
    let bad = dir.path().join("bad.yar");
    std::fs::write(&bad, "rule bad { condition: $undefined }").unwrap();
    assert!(tool_output("yara", &[&bad.display().to_string(), &target.display().to_string()]).is_none());

    // The yara tool, without the FIFO and the huge file (it would scan the latter, herd does not).
    std::fs::remove_file(target.join("fifo")).unwrap();
    std::fs::remove_file(target.join("huge.bin")).unwrap();
    let want = yara_tool(&rules, &target);
    nix::unistd::mkfifo(&target.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::File::create(target.join("huge.bin")).unwrap().set_len(65 << 20).unwrap();
    assert_eq!(want.len(), 4, "{want:?}");

    let e = engine();
    let sigfile = sql_text(&rules.display().to_string());
    let like = sql_text(&format!("{}/%%", target.display()));
    let rows = query(
        &e,
        &format!(
            "SELECT path, matches, count, tags, strings, sigfile, sig_group, sigrule, sigurl FROM yara \
             WHERE path LIKE {like} AND sigfile IN ({sigfile}, {})",
            sql_text(&bad.display().to_string())
        ),
    );
    // Every regular file within the limit has a row (no match: count 0, empty columns); the bad rule file none.
    let got: BTreeMap<String, (String, String, String)> = rows
        .iter()
        .filter(|r| text(r, "count") != "0")
        .map(|r| (text(r, "path"), (text(r, "matches"), text(r, "tags"), text(r, "strings"))))
        .collect();
    assert_eq!(got, want);
    assert_eq!(rows.len(), 4, "{rows:?}");
    for row in &rows {
        assert_eq!(text(row, "count"), text(row, "matches").split(',').filter(|m| !m.is_empty()).count().to_string());
        assert_eq!(text(row, "sigfile"), rules.display().to_string());
        assert_eq!(
            (row["sig_group"].as_deref(), row["sigrule"].as_deref(), row["sigurl"].as_deref()),
            (Some(""), Some(""), None)
        );
    }

    // `=` paths; rule text from the query: the same matches, strings hidden.
    let text_rules = std::fs::read_to_string(&rules).unwrap();
    let a = target.join("a.txt").display().to_string();
    let row = one(
        &e,
        &format!(
            "SELECT matches, strings, sigrule FROM yara WHERE path = {} AND sigrule = {}",
            sql_text(&a),
            sql_text(&text_rules)
        ),
    );
    assert_eq!((text(&row, "matches"), text(&row, "strings")), (want[&a].0.clone(), String::new()));
    assert_eq!(text(&row, "sigrule"), text_rules);

    // No rows: no signature, a group or URL (herd-agent has none configured and fetches nothing), a FIFO or
    // directory named by `=`, rule text that does not compile; a missing path is osquery's error.
    let a = sql_text(&a);
    for sql in [
        format!("SELECT * FROM yara WHERE path = {a}"),
        format!("SELECT * FROM yara WHERE path = {a} AND sig_group = 'default'"),
        format!("SELECT * FROM yara WHERE path = {a} AND sigurl = 'https://127.0.0.1:1/rules.yar'"),
        format!(
            "SELECT * FROM yara WHERE path = {} AND sigfile = {sigfile}",
            sql_text(&target.join("fifo").display().to_string())
        ),
        format!("SELECT * FROM yara WHERE path = {} AND sigfile = {sigfile}", sql_text(&target.display().to_string())),
        format!("SELECT * FROM yara WHERE path = {a} AND sigrule = 'rule invalid {{ Not a valid rule }}'"),
        format!("SELECT * FROM yara WHERE path = {a} AND sigfile = '/dev/zero'"),
    ] {
        assert!(query(&e, &sql).is_empty(), "{sql}");
    }
    let err = e.query(&format!("SELECT * FROM yara WHERE sigfile = {sigfile}"), Limits::default()).unwrap_err();
    assert!(err.to_string().contains("requires a constraint on path"), "{err}");

    // A scan longer than the query's time: the query ends at its limit (an error, or no row for that file).
    let slow = target.join("slow.bin");
    std::fs::write(&slow, vec![b'a'; 48 << 20]).unwrap();
    let limits = Limits { timeout: std::time::Duration::from_millis(300), max_rows: 10 };
    let sql = format!(
        "SELECT * FROM yara WHERE path = {} AND sigrule = 'rule slow {{ strings: $a = /aa[^b]{{0,300}}c/ condition: #a > 0 }}'",
        sql_text(&slow.display().to_string())
    );
    match e.query(&sql, limits) {
        Ok(out) => assert!(out.rows.is_empty(), "{out:?}"),
        Err(err) => assert!(err.to_string().contains("longer than"), "{err}"),
    }
}

fn cryptsetup(args: &[&str]) -> std::process::Output {
    let program = ["/usr/sbin/cryptsetup", "/sbin/cryptsetup"].into_iter().find(|p| std::path::Path::new(p).exists());
    Command::new(program.expect("cryptsetup (Debian's cryptsetup-bin) is installed")).args(args).output().unwrap()
}

/// Key slots and their salts (hex) from `cryptsetup luksDump`'s text: an independent reading of the header.
fn luks_dump_salts(device: &str) -> BTreeMap<String, String> {
    let out = String::from_utf8(cryptsetup(&["luksDump", device]).stdout).unwrap();
    let mut salts = BTreeMap::new();
    let (mut in_keyslots, mut slot, mut reading) = (false, String::new(), false);
    for line in out.lines() {
        if !line.starts_with([' ', '\t']) {
            in_keyslots = line == "Keyslots:";
            continue;
        }
        if !in_keyslots {
            continue;
        }
        let trimmed = line.trim();
        if let Some((number, "luks2")) = trimmed.split_once(": ") {
            slot = number.to_string();
            reading = false;
        } else if let Some(hex) = trimmed.strip_prefix("Salt:") {
            reading = true;
            salts.insert(slot.clone(), hex.split_whitespace().collect::<String>());
        } else if reading && trimmed.split_whitespace().all(|w| w.len() == 2 && u8::from_str_radix(w, 16).is_ok()) {
            salts.get_mut(&slot).unwrap().push_str(&trimmed.split_whitespace().collect::<String>());
        } else {
            reading = false;
        }
    }
    salts
}

#[test]
fn cryptsetup_tables_match_cryptsetup_on_luks_images() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("key1"), "first passphrase").unwrap();
    std::fs::write(path("key2"), "second passphrase").unwrap();
    for (image, kind) in [("luks2.img", "luks2"), ("luks1.img", "luks1"), ("plain.img", "")] {
        std::fs::File::create(path(image)).unwrap().set_len(20 << 20).unwrap();
        if !kind.is_empty() {
            let format = cryptsetup(&[
                // PBKDF2 with few iterations: formatting takes milliseconds (argon2id's default wants 1 GiB).
                "luksFormat",
                "--batch-mode",
                "--type",
                kind,
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
                "--key-file",
                &path("key1"),
                &path(image),
            ]);
            assert!(format.status.success(), "{}", String::from_utf8_lossy(&format.stderr));
        }
    }
    // A second key slot with another KDF.
    let add = cryptsetup(&[
        "luksAddKey",
        "--batch-mode",
        "--pbkdf",
        "argon2id",
        "--pbkdf-memory",
        "32",
        "--pbkdf-force-iterations",
        "4",
        "--key-file",
        &path("key1"),
        &path("luks2.img"),
        &path("key2"),
    ]);
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));

    let e = engine();
    let luks2 = path("luks2.img");
    let rows = query(&e, &format!("SELECT * FROM cryptsetup_luks_salt WHERE device = {}", sql_text(&luks2)));
    let got: BTreeMap<String, String> = rows.iter().map(|r| (text(r, "key_slot"), text(r, "salt"))).collect();
    assert!(rows.iter().all(|r| text(r, "device") == luks2));
    // cryptsetup's JSON metadata, as fleetd reads it.
    let json: serde_json::Value =
        serde_json::from_slice(&cryptsetup(&["luksDump", "--dump-json-metadata", &luks2]).stdout).unwrap();
    let want: BTreeMap<String, String> = json["keyslots"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(slot, entry)| (slot.clone(), entry["kdf"]["salt"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 2);
    // The same salts as the text dump prints them (hex).
    let hex: BTreeMap<String, String> = got
        .iter()
        .map(|(slot, salt)| {
            (slot.clone(), hex::encode(base64::engine::general_purpose::STANDARD.decode(salt).unwrap()))
        })
        .collect();
    assert_eq!(hex, luks_dump_salts(&luks2));

    // LUKS1 (no JSON metadata: cryptsetup refuses), a file without a header, a missing device, an option-like
    // device: no rows. No device at all is fleetd's error.
    assert!(!cryptsetup(&["luksDump", "--dump-json-metadata", &path("luks1.img")]).status.success());
    for device in [path("luks1.img"), path("plain.img"), path("absent.img"), "--help".into()] {
        assert!(
            query(&e, &format!("SELECT * FROM cryptsetup_luks_salt WHERE device = {}", sql_text(&device))).is_empty()
        );
    }
    assert!(e.query("SELECT * FROM cryptsetup_luks_salt", Limits::default()).is_err());

    // cryptsetup_status: each name cryptsetup reports on successfully gives its `key: value` lines, others none
    // (no device mapper here: every status fails, and so gives no rows).
    // (fleetd allows only `A-Za-z0-9-/_` in a name: the image's temporary path, with its `.`, cannot be one.)
    let mut names = vec!["herd-no-such-mapping".to_string(), "/dev/mapper/herd_absent".to_string()];
    if let Ok(entries) = std::fs::read_dir("/dev/mapper") {
        names
            .extend(entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n != "control"));
    }
    for name in &names {
        let status = cryptsetup(&["--readonly", "status", name]);
        let rows = query(&e, &format!("SELECT key, value FROM cryptsetup_status WHERE name = {}", sql_text(name)));
        let got: BTreeMap<String, String> = rows.iter().map(|r| (text(r, "key"), text(r, "value"))).collect();
        if !status.status.success() {
            assert!(got.is_empty(), "{name}: {got:?}");
            continue;
        }
        for line in String::from_utf8_lossy(&status.stdout).lines().skip(1) {
            if let Some((key, value)) = line.split_once(": ") {
                assert_eq!(got.get(&key.trim().replace(' ', "_")), Some(&value.trim().to_string()), "{name}: {line}");
            }
        }
    }
    let err = e.query("SELECT * FROM cryptsetup_status WHERE name = 'a b'", Limits::default()).unwrap_err();
    assert!(err.to_string().contains("requires that you specify a constraint for name"), "{err}");
}

#[test]
fn cryptsetup_status_flattens_what_cryptsetup_prints_and_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("cryptsetup");
    // An active LUKS2 mapping as cryptsetup 2.x reports it (fleetd's test data), for the name asked.
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1 $2\" = '--readonly status' ] || exit 1\n[ \"$3\" = slow ] && exec sleep 30\n\
         [ \"$3\" = luks ] || { echo \"Device $3 not found\"; exit 4; }\n\
         printf '/dev/mapper/luks is active and is in use.\\n  type:    LUKS2\\n  cipher:  aes-xts-plain64\\n  \
         keysize: 512 bits\\n  key location: keyring\\n  device:  /dev/sdc2\\n  sector size:  512\\n  mode:    read/write\\n'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let e = Engine::with_tables(vec![std::sync::Arc::new(herd_osquery::tables::CryptsetupStatus::with_programs(&[
        dir.path().join("absent"),
        fake.clone(),
    ]))])
    .unwrap();
    let rows = query(
        &e,
        "SELECT name, fullkey, parent, key, value, query FROM cryptsetup_status WHERE name IN ('luks', 'gone')",
    );
    let got: BTreeSet<(String, String, String, String, String, String)> = rows
        .iter()
        .map(|r| {
            (text(r, "name"), text(r, "fullkey"), text(r, "parent"), text(r, "key"), text(r, "value"), text(r, "query"))
        })
        .collect();
    let want: BTreeSet<_> = [
        ("display_name", "/dev/mapper/luks"),
        ("status", "active"),
        ("mounted", "true"),
        ("type", "LUKS2"),
        ("cipher", "aes-xts-plain64"),
        ("keysize", "512 bits"),
        ("key_location", "keyring"),
        ("device", "/dev/sdc2"),
        ("sector_size", "512"),
        ("mode", "read/write"),
    ]
    .iter()
    .map(|(k, v)| ("luks".to_string(), k.to_string(), String::new(), k.to_string(), v.to_string(), "*".to_string()))
    .collect();
    assert_eq!(got, want);
    // fleetd's query filter.
    let keys = query(&e, "SELECT key FROM cryptsetup_status WHERE name = 'luks' AND query = 'key*'");
    assert_eq!(set_of(&keys, "key"), ["key_location", "keysize"].iter().map(|s| s.to_string()).collect());
    // A cryptsetup that hangs is killed when the query's time is up.
    let started = std::time::Instant::now();
    let limits = Limits { timeout: std::time::Duration::from_millis(300), max_rows: 10 };
    match e.query("SELECT * FROM cryptsetup_status WHERE name = 'slow'", limits) {
        Ok(out) => assert!(out.rows.is_empty()),
        Err(err) => assert!(err.to_string().contains("longer than"), "{err}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "killed at the query's limit, not waited for");
}
