//! herd's Debian packages (scripts/package) as an admin meets them: built from the binaries this test run
//! built, lintian-clean, installed with `apt-get install ./…deb` as README says, enabled but not started (no
//! systemd runs here), started the way their units start them (the unit's user, environment file and
//! command line), the agent enrolled into the server, stopped, removed (data kept) and purged (data gone).
//!
//! It installs into this machine, so that part runs only where it is harmless: as root, without a running
//! systemd (a CI container) and without herd's packages installed. Elsewhere it is skipped (and without
//! lintian or dpkg-dev, the whole test), unless REQUIRE_PACKAGES is set (CI: scripts/test sets it with
//! REQUIRE_POSTGRES, and installs the tools), where that fails it. The environment files are checked against
//! the binaries' `--help` everywhere.

use herd_testkit::{ADMIN_PASSWORD, Server, client_for, eventually};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(90);
const AGENT: &str = env!("CARGO_BIN_EXE_herd-agent");
const PACKAGES: [&str; 3] = ["herd", "herd-agent", "herdctl"];
/// What building and checking the packages needs, and what installing and checking them needs besides.
const BUILD_TOOLS: [&str; 4] = ["dpkg-deb", "dpkg-shlibdeps", "strip", "lintian"];
const INSTALL_TOOLS: [&str; 3] = ["apt-get", "dpkg-query", "systemd-analyze"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory of the binaries this test run built (target/debug), which scripts/package packs.
fn built_binaries() -> PathBuf {
    Path::new(AGENT).parent().unwrap().to_path_buf()
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

fn missing(tools: &[&str]) -> Option<String> {
    let missing: Vec<&str> = tools.iter().copied().filter(|tool| !on_path(tool)).collect();
    (!missing.is_empty()).then(|| format!("{} missing (scripts/test installs them)", missing.join(", ")))
}

/// Skips (returns true) when `reason` says the test cannot go on, or fails when REQUIRE_PACKAGES is set.
fn skipped(what: &str, reason: Option<String>) -> bool {
    let Some(reason) = reason else { return false };
    assert!(std::env::var_os("REQUIRE_PACKAGES").is_none(), "REQUIRE_PACKAGES is set, but {reason}");
    eprintln!("skipped {what}: {reason}");
    true
}

/// Why installing into this machine is not possible or not harmless, if it is not.
fn cannot_install() -> Option<String> {
    if let Some(missing) = missing(&INSTALL_TOOLS) {
        return Some(missing);
    }
    if !nix::unistd::geteuid().is_root() {
        return Some("installing packages needs root".into());
    }
    if Path::new("/run/systemd/system").exists() {
        return Some("systemd runs here: installing would start herd's services on this machine".into());
    }
    let installed = Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status} "]).args(PACKAGES).output().unwrap();
    if String::from_utf8_lossy(&installed.stdout).split_whitespace().any(|status| status != "not-installed") {
        return Some("herd's packages are installed here already: the test would replace them".into());
    }
    None
}

/// One line of an environment file (systemd's EnvironmentFile): `NAME=value`, or `#NAME=value` showing a
/// default (prose comments are not settings).
#[derive(Debug, PartialEq)]
struct Setting {
    name: String,
    value: String,
    active: bool,
}

fn settings(env_file: &str) -> Vec<Setting> {
    env_file
        .lines()
        .filter_map(|line| {
            let (active, line) = match line.trim().strip_prefix('#') {
                Some(commented) => (false, commented),
                None => (true, line.trim()),
            };
            let (name, value) = line.split_once('=')?;
            let is_name = name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !is_name {
                assert!(!active || line.is_empty(), "not a setting: {line:?}");
                return None;
            }
            let value = value.trim_matches('"');
            Some(Setting { name: name.to_string(), value: value.to_string(), active })
        })
        .collect()
}

/// The environment variables a `--help` lists, each with its default when it shows one.
fn help_variables(help: &str) -> BTreeMap<String, Option<String>> {
    help.lines()
        .filter_map(|line| {
            let rest = line.split("[env: ").nth(1)?;
            let name = rest.split(['=', ']']).next()?.to_string();
            let default = line.split("[default: ").nth(1).and_then(|d| d.split(']').next()).map(str::to_string);
            Some((name, default))
        })
        .collect()
}

/// What an environment file gets wrong about the variables its binary reads: a variable the binary does not
/// know, one it reads that the file never mentions, a `#NAME=value` line whose value is not the default.
fn env_file_problems(env_file: &str, help: &BTreeMap<String, Option<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    for setting in settings(env_file) {
        match help.get(&setting.name) {
            None => problems.push(format!("{} is not a variable of the binary", setting.name)),
            Some(Some(default)) if !setting.active && &setting.value != default => {
                problems.push(format!("#{}={} is not the default, {default}", setting.name, setting.value))
            }
            Some(_) => {}
        }
    }
    for name in help.keys() {
        if !env_file.contains(name.as_str()) {
            problems.push(format!("{name} is not mentioned"));
        }
    }
    problems
}

#[test]
fn environment_files_and_help_are_read_alike() {
    let file = "# prose, HERD_X mentioned\n#HERD_A=1\nHERD_B=\"x y\"\n\n#HERD_C=\n";
    assert_eq!(
        settings(file),
        [
            Setting { name: "HERD_A".into(), value: "1".into(), active: false },
            Setting { name: "HERD_B".into(), value: "x y".into(), active: true },
            Setting { name: "HERD_C".into(), value: "".into(), active: false },
        ]
    );
    let help = "  --a <A>\n      Thing [env: HERD_A=] [default: 1]\n  --b\n      Flag [env: HERD_B=]\n  --s <S>\n      \
                Secret [env: HERD_S]\n";
    let variables = help_variables(help);
    assert_eq!(
        variables,
        BTreeMap::from([
            ("HERD_A".to_string(), Some("1".to_string())),
            ("HERD_B".to_string(), None),
            ("HERD_S".to_string(), None)
        ])
    );
    let cases: [(&str, &[&str]); 5] = [
        ("#HERD_A=1\nHERD_B=true\n# HERD_S: a secret\n", &[]),
        ("#HERD_A=2\nHERD_B=true\nHERD_S=x\n", &["#HERD_A=2 is not the default, 1"]),
        ("HERD_A=2\nHERD_B=true\nHERD_S=x\n", &[]),
        ("#HERD_A=1\nHERD_B=true\n", &["HERD_S is not mentioned"]),
        ("#HERD_A=1\nHERD_B=true\nHERD_S=x\n#HERD_GONE=1\n", &["HERD_GONE is not a variable of the binary"]),
    ];
    for (file, expected) in cases {
        assert_eq!(env_file_problems(file, &variables), expected, "{file}");
    }
}

/// The packaged environment files name exactly the variables the binaries read, with their defaults.
#[test]
fn packaged_environment_files_match_the_binaries() {
    let bin = built_binaries();
    for (file, binary, command) in
        [("packaging/herd/herd.env", "herd", "serve"), ("packaging/herd-agent/agent.env", "herd-agent", "run")]
    {
        let help = run(Command::new(bin.join(binary)).args([command, "--help"])).stdout;
        let variables = help_variables(&String::from_utf8(help).unwrap());
        assert!(variables.len() > 5, "{binary} {command} --help lists its variables: {variables:?}");
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        assert_eq!(env_file_problems(&text, &variables), Vec::<String>::new(), "{file} against `{binary} {command}`");
    }
}

/// The `[Service]` settings that say how systemd starts a unit, read from its file.
#[derive(Debug)]
struct Service {
    exec_start: Vec<String>,
    user: String,
    environment_file: PathBuf,
    working_directory: Option<PathBuf>,
}

impl Service {
    fn read(unit: &Path) -> Service {
        let text = std::fs::read_to_string(unit).unwrap();
        let value =
            |key: &str| text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix('=').map(str::to_string));
        let exec_start = value("ExecStart").expect("ExecStart");
        // Only plain words: the split below is systemd's for them.
        assert!(!exec_start.contains(['"', '\'', '\\', '$', '%']), "{exec_start}");
        Service {
            exec_start: exec_start.split_whitespace().map(str::to_string).collect(),
            user: value("User").expect("User"),
            environment_file: value("EnvironmentFile").expect("EnvironmentFile").into(),
            working_directory: value("WorkingDirectory").map(PathBuf::from),
        }
    }

    /// The service's process as systemd starts it, with `overrides` added to its environment.
    fn start(&self, overrides: &[(&str, &str)]) -> Child {
        let (uid, gid) = user_ids(&self.user);
        let env_file = std::fs::read_to_string(&self.environment_file).unwrap();
        let mut command = Command::new(&self.exec_start[0]);
        command
            .args(&self.exec_start[1..])
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(settings(&env_file).into_iter().filter(|s| s.active).map(|s| (s.name, s.value)))
            .envs(overrides.iter().copied())
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(dir) = &self.working_directory {
            command.current_dir(dir);
        }
        command.spawn().unwrap_or_else(|e| panic!("starting {:?}: {e}", self.exec_start))
    }
}

/// A user's uid and gid, from /etc/passwd; panics when there is no such user.
fn user_ids(user: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let fields: Vec<&str> = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields[0] == user)
        .unwrap_or_else(|| panic!("no user {user}"));
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

fn passwd_entry(user: &str) -> Option<String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .map(String::from)
}

/// Waits for `herd serve`'s banner line with its URL; returns it and the lines printed.
fn banner_url(child: &mut Child) -> (String, Vec<String>) {
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    let mut printed = Vec::new();
    loop {
        match lines_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let url = line.split(" is listening on ").nth(1).map(|url| url.trim().to_string());
                printed.push(line);
                if let Some(url) = url {
                    return (url, printed);
                }
            }
            Err(_) => {
                let exit = child.try_wait();
                let _ = child.kill();
                panic!("the installed herd printed no URL (exit: {exit:?}): {printed:#?}")
            }
        }
    }
}

fn dpkg_files(package: &str) -> Vec<String> {
    String::from_utf8(run(Command::new("dpkg-query").args(["-L", package])).stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn unit_file(package: &str) -> PathBuf {
    let unit = format!("/{package}.service");
    dpkg_files(package)
        .into_iter()
        .find(|f| f.ends_with(&unit))
        .unwrap_or_else(|| panic!("{package} has no unit"))
        .into()
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}")).permissions().mode() & 0o7777
}

/// Purges herd's packages however the test ends, so a failure leaves this machine as it found it.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").arg("--purge").args(PACKAGES).stdout(Stdio::null()).status();
    }
}

/// A service's process, killed if the test ends before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops a service's process with SIGTERM (the units' KillSignal) and returns its exit status.
fn stop(Running(child): &mut Running, what: &str) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not exit within {PATIENCE:?} of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn packages_build_pass_lintian_install_start_stop_and_purge() {
    if skipped("the packages test", missing(&BUILD_TOOLS)) {
        return;
    }
    let bin = built_binaries();
    let profile = bin.file_name().unwrap().to_str().unwrap();
    let out = tempfile::tempdir().unwrap();

    // Build from the binaries already built (no release build in CI).
    let built = run(Command::new(repo().join("scripts/package"))
        .args(["--profile", profile, "--no-build", "--out"])
        .arg(out.path())
        .env("CARGO_TARGET_DIR", bin.parent().unwrap()));
    let debs: Vec<PathBuf> = String::from_utf8(built.stdout).unwrap().lines().map(PathBuf::from).collect();
    let names: Vec<String> = debs.iter().map(|d| d.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for (name, package) in names.iter().zip(PACKAGES) {
        assert!(name.starts_with(&format!("{package}_")) && name.ends_with(".deb"), "{names:?}");
    }

    // lintian-clean: no error or warning (overrides carry their reasons in packaging/*/lintian-overrides).
    let lintian = run(Command::new("lintian").args(["--fail-on", "error,warning"]).args(&debs));
    let findings = String::from_utf8_lossy(&lintian.stdout);
    assert!(!findings.lines().any(|l| l.starts_with("E:") || l.starts_with("W:")), "{findings}");

    if skipped("installing the packages", cannot_install()) {
        return;
    }

    // Installed as README says; postinst creates the user and enables the units, starts nothing here.
    let installed = Installed;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&debs)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null()));
    let herd_user = passwd_entry("herd").expect("postinst created the herd user");
    let fields: Vec<&str> = herd_user.split(':').collect();
    assert!(fields[2].parse::<u32>().unwrap() < 1000 && fields[6].ends_with("nologin"), "a system user: {herd_user}");
    let (herd_uid, _) = user_ids("herd");
    assert_eq!(std::fs::metadata("/var/lib/herd").unwrap().uid(), herd_uid);
    assert_eq!(mode("/var/lib/herd"), 0o700);
    assert_eq!(mode("/var/lib/herd-agent"), 0o755, "the device token is for local users to read");
    assert_eq!(mode("/etc/herd/herd.env"), 0o600);
    for (package, conffile) in [("herd", "/etc/herd/herd.env"), ("herd-agent", "/etc/herd-agent/agent.env")] {
        let conffiles = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", package])).stdout;
        assert!(String::from_utf8_lossy(&conffiles).contains(conffile), "{package}: {conffile} is a conffile");
        let wants = format!("/etc/systemd/system/multi-user.target.wants/{package}.service");
        assert_eq!(std::fs::read_link(&wants).unwrap(), unit_file(package), "{package}.service is enabled");
    }
    let server_unit = Service::read(&unit_file("herd"));
    let agent_unit = Service::read(&unit_file("herd-agent"));
    assert_eq!(herd_testkit::processes_running(&server_unit.exec_start.join(" ")), 0, "started without systemd");
    run(Command::new("/usr/bin/herdctl").arg("--version"));

    // The units as systemd reads them: no unknown key or bad value (verify only warns), and the server's
    // sandbox stays tight (systemd's exposure score, 0 to 10: at most 2).
    let verify = run(Command::new("systemd-analyze").arg("verify").arg(unit_file("herd")).arg(unit_file("herd-agent")));
    let said = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(said.trim().is_empty(), "systemd-analyze verify: {said}");
    run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(unit_file("herd")));

    // The server, started as its unit starts it, on a free port with a known password.
    let mut child = server_unit.start(&[
        ("HERD_LISTEN", "127.0.0.1:0"),
        ("HERD_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("HERD_ENROLLMENT_LAG_LIMIT", "off"),
        ("RUST_LOG", "warn"),
    ]);
    let (url, stdout) = banner_url(&mut child);
    let data_dir = PathBuf::from("/var/lib/herd");
    let client = client_for(&data_dir.join("tls/cert.pem"));
    let mut server = Server {
        bin: "/usr/bin/herd".into(),
        child: Some(child),
        data_dir,
        database_url: None,
        url,
        client,
        stdout,
        extra_args: vec![],
    };
    for written in ["herd.db", "tls/cert.pem", "enroll-secret"] {
        let owner = std::fs::metadata(server.data_dir.join(written)).unwrap().uid();
        assert_eq!(owner, herd_uid, "{written}: the server runs as herd");
    }
    let admin = server.admin_token().await;

    // The agent, configured as README says: the server's URL, enroll secret and certificate in /etc/herd-agent.
    let agent_env = std::fs::read_to_string("/etc/herd-agent/agent.env").unwrap();
    let agent_env: String = agent_env
        .lines()
        .map(|line| {
            if line.starts_with("HERD_AGENT_SERVER=") {
                format!("HERD_AGENT_SERVER={}\n", server.url)
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    std::fs::write("/etc/herd-agent/agent.env", agent_env).unwrap();
    std::fs::copy("/var/lib/herd/enroll-secret", "/etc/herd-agent/enroll-secret").unwrap();
    std::fs::set_permissions("/etc/herd-agent/enroll-secret", std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::copy("/var/lib/herd/tls/cert.pem", "/etc/herd-agent/ca.pem").unwrap();
    let mut agent = Running(agent_unit.start(&[("RUST_LOG", "warn")]));
    let hostname = eventually(PATIENCE, "the packaged agent's host", || async {
        let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
        hosts["hosts"].as_array()?.first()?["hostname"].as_str().map(str::to_string)
    })
    .await;
    assert!(!hostname.is_empty());
    eventually(PATIENCE, "the device token published", || async {
        Path::new("/var/lib/herd-agent/identifier").exists().then_some(())
    })
    .await;

    // Stopped as systemd stops them: both exit cleanly.
    let agent_status = stop(&mut agent, "herd-agent");
    assert!(agent_status.success(), "herd-agent: {agent_status:?}");
    let server_status = server.stop();
    assert!(server_status.success(), "herd: {server_status:?}");

    // Removed: the data and settings stay. Purged: they go, the units are no longer enabled; the herd user
    // stays (its id must not be reused while files may still belong to it).
    run(Command::new("dpkg").arg("--remove").args(PACKAGES).stdout(Stdio::null()));
    for kept in
        ["/var/lib/herd/herd.db", "/etc/herd/herd.env", "/var/lib/herd-agent/identifier", "/etc/herd-agent/agent.env"]
    {
        assert!(Path::new(kept).exists(), "{kept} is kept until purge");
    }
    assert!(!Path::new("/usr/bin/herd").exists());
    run(Command::new("dpkg").arg("--purge").args(PACKAGES).stdout(Stdio::null()));
    for gone in [
        "/var/lib/herd",
        "/etc/herd",
        "/var/lib/herd-agent",
        "/etc/herd-agent",
        "/etc/systemd/system/multi-user.target.wants/herd.service",
        "/etc/systemd/system/multi-user.target.wants/herd-agent.service",
    ] {
        assert!(std::fs::symlink_metadata(gone).is_err(), "{gone} is gone after purge");
    }
    assert!(passwd_entry("herd").is_some());
    std::mem::forget(installed);
}
