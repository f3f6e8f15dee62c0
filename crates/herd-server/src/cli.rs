//! The flags of `herd serve` that configure the server (the `herd` binary adds its own: `--with-agent`). Every
//! flag can also come from a `HERD_*` environment variable.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where herd keeps its database (SQLite), TLS certificate, enroll secret and result logs.
    #[arg(long, env = "HERD_DATA_DIR", default_value = "./herd-data")]
    pub data_dir: PathBuf,
    /// Address to listen on. Port 0 picks a free port (printed at start).
    #[arg(long, env = "HERD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Database URL: a `postgres://` URL selects PostgreSQL (for several servers); default: SQLite in the data dir.
    #[arg(long, env = "HERD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// TLS certificate (PEM). Default: a self-signed one generated at DATA_DIR/tls/cert.pem.
    #[arg(long, env = "HERD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "HERD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP, for running behind a TLS-terminating proxy.
    #[arg(long, env = "HERD_PLAIN_HTTP", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub plain_http: bool,
    /// The URL hosts and users reach this server at (default: the listen address). Shown in enroll flags.
    #[arg(long, env = "HERD_SERVER_URL")]
    pub server_url: Option<String>,
    /// A CA certificate (PEM) to trust for outgoing webhooks besides the system's roots (an internal CA).
    #[arg(long, env = "HERD_WEBHOOK_CA_CERT")]
    pub webhook_ca_cert: Option<PathBuf>,
    /// Let webhooks reach an address range that is forbidden by default (loopback, private, link-local, ...),
    /// e.g. an internal receiver: `10.20.0.0/16`, `127.0.0.1`. Repeatable; comma-separated in the variable.
    #[arg(long, env = "HERD_WEBHOOK_ALLOW_CIDR", value_delimiter = ',', value_parser = crate::outbound::parse_allowed)]
    pub webhook_allow_cidr: Vec<ipnet::IpNet>,
    /// A connection must complete its TLS handshake within this time (`10s`, `500ms`, `2m`).
    #[arg(long, env = "HERD_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,
    /// A request's headers must arrive within this time of its first byte (and a new connection's first request
    /// within this time of connecting), or the connection is closed.
    #[arg(long, env = "HERD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// A request's body must be received within this time of its headers (else 400 and the connection closed).
    #[arg(long, env = "HERD_REQUEST_BODY_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub request_body_timeout: Duration,
    /// A kept-alive connection with no request in flight is closed after this long without one.
    #[arg(long, env = "HERD_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Most client connections open at once (default: the open-file limit, raised to its hard limit, less 512
    /// kept for the database, logs and workers). At the limit, the longest-idle connection is closed for a new one.
    #[arg(long, env = "HERD_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// The result log (DATA_DIR/osquery-results.log) is rotated when a write would take it past this size.
    #[arg(long, env = "HERD_RESULT_LOG_MAX_SIZE", default_value = "100MiB", value_parser = parse_size)]
    pub result_log_max_size: u64,
    /// Rotated result logs kept (osquery-results.log.1 is the newest); older ones are deleted.
    #[arg(long, env = "HERD_RESULT_LOG_KEEP", default_value_t = 5)]
    pub result_log_keep: u32,
    /// Result-log bytes one host may write per hour (a burst of this size, refilled evenly); beyond it the
    /// host's log posts get 429 with Retry-After, which osqueryd answers by keeping and resending its buffer.
    #[arg(long, env = "HERD_RESULT_LOG_HOST_BUDGET", default_value = "64MiB", value_parser = parse_size)]
    pub result_log_host_budget: u64,
    /// New enrollments are refused (429 with Retry-After; agents retry) while requests wait longer than this
    /// to run, or enrollments and reports wait more than four times this to start on the database, so hosts
    /// already enrolled keep checking in fast while a fleet enrolls (see `admission`). `off`: never refuse.
    #[arg(long, env = "HERD_ENROLLMENT_LAG_LIMIT", default_value = "50ms", value_parser = parse_lag_limit)]
    pub enrollment_lag_limit: LagLimit,
    /// Email of the admin created on first start.
    #[arg(long, env = "HERD_BOOTSTRAP_ADMIN_EMAIL", default_value = "admin@herd.local")]
    pub bootstrap_admin_email: String,
    /// Password of the admin created on first start (default: generated and printed once).
    #[arg(long, env = "HERD_BOOTSTRAP_ADMIN_PASSWORD", hide_env_values = true)]
    pub bootstrap_admin_password: Option<String>,
    /// Global enroll secret created on first start (default: generated).
    #[arg(long, env = "HERD_BOOTSTRAP_ENROLL_SECRET", hide_env_values = true)]
    pub bootstrap_enroll_secret: Option<String>,
}

/// A duration: a number with a unit (`ms`, `s`, `m`, `h`), or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration (e.g. 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?} (ms, s, m, h)")),
    };
    if !(seconds > 0.0 && seconds <= 86_400.0 * 7.0) {
        return Err(format!("{text:?} must be more than 0 and at most a week"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The default of `--enrollment-lag-limit`.
pub const DEFAULT_ENROLLMENT_LAG_LIMIT: Duration = Duration::from_millis(50);

/// `--enrollment-lag-limit`: a duration, or None for `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagLimit(pub Option<Duration>);

/// The least `--enrollment-lag-limit`: an idle server's probe already wakes ~1–2 ms late (the timer's
/// millisecond resolution), so a lower limit would refuse every enrollment.
const LEAST_ENROLLMENT_LAG_LIMIT: Duration = Duration::from_millis(5);

pub fn parse_lag_limit(text: &str) -> Result<LagLimit, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(LagLimit(None));
    }
    let limit = parse_duration(text)?;
    if limit < LEAST_ENROLLMENT_LAG_LIMIT {
        return Err(format!(
            "{text:?} is below 5ms: even an idle server wakes ~1-2 ms late, so every enrollment would be refused"
        ));
    }
    Ok(LagLimit(Some(limit)))
}

/// A size in bytes: a number with an optional unit (`B`, `KiB`/`K`/`KB`, `MiB`/`M`/`MB`, `GiB`/`G`/`GB`;
/// all powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a size (e.g. 100MiB)"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} in {text:?} (B, KiB, MiB, GiB)")),
    };
    match number.checked_mul(scale) {
        Some(0) => Err(format!("{text:?} must be more than 0")),
        Some(bytes) => Ok(bytes),
        None => Err(format!("{text:?} is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
        assert_eq!(parse_size("100MiB"), Ok(100 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("99999999999G").is_err());
        assert_eq!(parse_lag_limit("50ms"), Ok(LagLimit(Some(Duration::from_millis(50)))));
        assert_eq!(parse_lag_limit("OFF"), Ok(LagLimit(None)));
        assert!(parse_lag_limit("0ms").is_err());
        assert!(parse_lag_limit("2ms").unwrap_err().contains("below 5ms"));
    }
}
