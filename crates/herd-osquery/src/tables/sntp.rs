//! sntp_request: Fleet's agent table — one SNTP (RFC 4330) exchange with a time server, as fleetd's (beevik/ntp)
//! does it: `server` as given (required; `host` or `host:port`, port 123 by default), `timestamp_ms` the time
//! the server sent its answer (its transmit timestamp, Unix milliseconds), `clock_offset_ms` how far the
//! server's clock is ahead of this host's (((T2 - T1) + (T3 - T4)) / 2, milliseconds).
//!
//! Bounded: name resolution and the exchange end within 5 seconds (less when the query has less time left).
//! No row when the server cannot be resolved or reached, does not answer in time, or answers with something
//! that is not a valid server reply (wrong mode, stratum 0 "kiss of death", unsynchronized leap indicator, or
//! not an answer to this request).

use super::net::resolve;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LIMIT: Duration = Duration::from_secs(5);
const PORT: u16 = 123;
/// Seconds from the NTP epoch (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Nanoseconds since the Unix epoch as an NTP timestamp (seconds since 1900 . 32-bit fraction).
fn to_ntp(unix_nanos: u128) -> u64 {
    let seconds = (unix_nanos / 1_000_000_000) as u64 + NTP_UNIX_OFFSET;
    let fraction = ((unix_nanos % 1_000_000_000) << 32) / 1_000_000_000;
    (seconds << 32) | fraction as u64
}

/// An NTP timestamp as nanoseconds since the Unix epoch.
fn from_ntp(ntp: u64) -> i128 {
    let seconds = (ntp >> 32) as i128 - NTP_UNIX_OFFSET as i128;
    let fraction = ((ntp & 0xffff_ffff) as i128 * 1_000_000_000) >> 32;
    seconds * 1_000_000_000 + fraction
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn host_and_port(server: &str) -> (String, u16) {
    if let Some(rest) = server.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once("]:") {
            return (host.to_string(), port.parse().unwrap_or(PORT));
        }
        return (rest.trim_end_matches(']').to_string(), PORT);
    }
    match server.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host.to_string(), port.parse().unwrap_or(PORT)),
        _ => (server.to_string(), PORT),
    }
}

/// (server transmit time, clock offset), both in nanoseconds.
fn exchange(server: &str, limit: Duration) -> Option<(i128, i128)> {
    let deadline = Instant::now() + limit;
    let left = || deadline.saturating_duration_since(Instant::now());
    let (host, port) = host_and_port(server);
    let address = *resolve(&host, port, left())?.first()?;
    let bind = if address.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(address).ok()?;
    let mut request = [0u8; 48];
    // LI 0, version 4, mode 3 (client).
    request[0] = 0x23;
    let t1 = now_nanos();
    let t1_ntp = to_ntp(t1);
    request[40..48].copy_from_slice(&t1_ntp.to_be_bytes());
    socket.send(&request).ok()?;
    let mut reply = [0u8; 48];
    loop {
        let wait = left();
        if wait.is_zero() {
            return None;
        }
        socket.set_read_timeout(Some(wait)).ok()?;
        let received = socket.recv(&mut reply).ok()?;
        let t4 = now_nanos();
        let originate = u64::from_be_bytes(reply[24..32].try_into().ok()?);
        // Another datagram (a late answer to someone else's request): keep waiting for ours.
        if received < 48 || originate != t1_ntp {
            continue;
        }
        let (leap, mode, stratum) = (reply[0] >> 6, reply[0] & 0x7, reply[1]);
        if mode != 4 || stratum == 0 || leap == 3 {
            return None;
        }
        let t2 = from_ntp(u64::from_be_bytes(reply[32..40].try_into().ok()?));
        let t3 = from_ntp(u64::from_be_bytes(reply[40..48].try_into().ok()?));
        let offset = ((t2 - t1 as i128) + (t3 - t4 as i128)) / 2;
        return Some((t3, offset));
    }
}

pub struct SntpRequest;

impl Table for SntpRequest {
    fn name(&self) -> &'static str {
        "sntp_request"
    }
    fn description(&self) -> &'static str {
        "Allows querying the timestamp and clock offset from a SNTP server (in milliseconds)."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] =
            &[Column::text("server").required(), Column::bigint("timestamp_ms"), Column::bigint("clock_offset_ms")];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for server in constraints.texts("server") {
            let Some((time, offset)) = exchange(&server, LIMIT.min(crate::engine::time_left())) else { continue };
            rows.push(Row::from([
                ("server", Value::text(server)),
                ("timestamp_ms", Value::Int((time / 1_000_000) as i64)),
                ("clock_offset_ms", Value::Int((offset / 1_000_000) as i64)),
            ]));
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_timestamps_round_trip_and_servers_split() {
        let nanos: u128 = 1_700_000_000_123_456_789;
        let back = from_ntp(to_ntp(nanos));
        assert!((back - nanos as i128).abs() < 2, "{back}");
        assert_eq!(host_and_port("pool.ntp.org"), ("pool.ntp.org".into(), 123));
        assert_eq!(host_and_port("127.0.0.1:1123"), ("127.0.0.1".into(), 1123));
        assert_eq!(host_and_port("[::1]:1123"), ("::1".into(), 1123));
        assert_eq!(host_and_port("::1"), ("::1".into(), 123));
    }
}
