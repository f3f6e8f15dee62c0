//! Time of typical policy queries on this machine (compliance checks as Fleet's library and CIS write them).
//!
//!     cargo bench -p herd-osquery --bench policy_queries

use criterion::{Criterion, criterion_group, criterion_main};
use herd_osquery::{Engine, Limits};

const POLICIES: &[(&str, &str)] = &[
    ("file_exists", "SELECT 1 FROM file WHERE path = '/etc/passwd';"),
    ("file_mode", "SELECT 1 FROM file WHERE path = '/etc/shadow' AND mode IN ('0640', '0600', '0000');"),
    (
        "package_version",
        "SELECT 1 FROM deb_packages WHERE name = 'openssl' AND version_compare(version, '3.0.0', 'DPKG') >= 0;",
    ),
    ("no_telnet_listening", "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM listening_ports WHERE port = 23);"),
    (
        "sysctl_ip_forward_off",
        "SELECT 1 FROM system_controls WHERE name = 'net.ipv4.ip_forward' AND current_value = '0';",
    ),
    ("no_uid0_but_root", "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM users WHERE uid = 0 AND username != 'root');"),
    ("process_running", "SELECT 1 FROM processes WHERE name = 'sshd';"),
    ("config_line", "SELECT 1 FROM file_lines WHERE path = '/etc/os-release' AND line LIKE 'ID=%';"),
];

fn policies(c: &mut Criterion) {
    let engine = Engine::new().unwrap();
    let mut group = c.benchmark_group("policy_query");
    group.sample_size(30);
    for (name, sql) in POLICIES {
        engine.query(sql, Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        group.bench_function(*name, |b| b.iter(|| engine.query(sql, Limits::default()).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, policies);
criterion_main!(benches);
