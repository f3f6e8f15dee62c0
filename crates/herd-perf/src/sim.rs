//! One simulated host: an identity, the vitals an osqueryd on a Linux server would report, stable policy
//! answers, and osqueryd's loop — enroll, config every `config_interval`, distributed read every
//! `distributed_interval`, a distributed write whenever the read handed out queries.

use crate::net::{Endpoint as Server, ErrorKind, HostLink, Transport};
use crate::stats::{Endpoint, Stats};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// What every simulated host is doing now (set by the run, read by each host at its next tick).
pub const PHASE_RUN: u8 = 0;
/// Each host polls the floor endpoint instead of checking in.
pub const PHASE_FLOOR: u8 = 1;
pub const PHASE_STOP: u8 = 2;

pub struct Shared {
    /// One or several servers (several herd servers on one database): each request goes to the next one,
    /// round robin, as a load balancer without stickiness would send it.
    pub servers: Vec<Server>,
    pub next_server: std::sync::atomic::AtomicUsize,
    pub transport: Transport,
    pub stats: Stats,
    pub phase: AtomicU8,
    pub enroll_secret: String,
    pub prefix: String,
    pub distributed_interval: Duration,
    pub config_interval: Duration,
    pub pass_probability: f64,
    pub floor_path: String,
    /// Wakes every host when the run stops.
    pub stopped: tokio::sync::Notify,
}

/// What a host ends the run knowing: who it is and the policy answers the server acknowledged.
#[derive(Debug, Clone)]
pub struct HostOutcome {
    pub uuid: String,
    pub hostname: String,
    pub enrolled: bool,
    /// policy id → passes, for answers the server acknowledged (200).
    pub answered: BTreeMap<i64, bool>,
    /// Seconds into the run of this host's last failed request, and of its first successful check-in after
    /// it (None: not recovered by the end).
    pub last_error_at: Option<f64>,
    pub recovered_at: Option<f64>,
}

/// A stable 64-bit mix (splitmix64 over FNV-1a) for per-host choices that do not change between runs.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub struct SimHost {
    index: u64,
    pub uuid: String,
    pub hostname: String,
    node_key: Option<String>,
    link: HostLink,
    answered: BTreeMap<i64, bool>,
}

impl SimHost {
    pub fn new(prefix: &str, index: u64) -> SimHost {
        let h = stable_hash(&[prefix.as_bytes(), &index.to_le_bytes()]);
        let l = stable_hash(&[&h.to_le_bytes()]);
        let uuid = format!(
            "{:08X}-{:04X}-4{:03X}-8{:03X}-{:012X}",
            h >> 32,
            (h >> 16) & 0xffff,
            h & 0xfff,
            (l >> 48) & 0xfff,
            l & 0xffff_ffff_ffff
        );
        SimHost {
            index,
            uuid,
            hostname: format!("{prefix}-{index:06}"),
            node_key: None,
            link: HostLink::new(),
            answered: BTreeMap::new(),
        }
    }

    /// Whether this host passes `policy` (stable for the host and policy).
    pub fn passes(uuid: &str, policy: i64, probability: f64) -> bool {
        let draw = stable_hash(&[uuid.as_bytes(), &policy.to_le_bytes()]) as f64 / u64::MAX as f64;
        draw < probability
    }

    fn system_info(&self) -> Value {
        let memory_gib = [8u64, 16, 32, 64][(self.index % 4) as usize];
        json!({
            "hostname": self.hostname, "computer_name": self.hostname, "uuid": self.uuid,
            "cpu_type": "x86_64", "cpu_subtype": "85", "cpu_brand": "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
            "cpu_physical_cores": "8", "cpu_logical_cores": "16", "cpu_microcode": "0xd0003a5",
            "physical_memory": (memory_gib << 30).to_string(), "hardware_vendor": "Dell Inc.",
            "hardware_model": "PowerEdge R650", "hardware_version": "", "hardware_serial": format!("SN{:010}", self.index),
            "board_vendor": "Dell Inc.", "board_model": "0Y2K8N", "board_version": "A01", "board_serial": "",
            "local_hostname": self.hostname
        })
    }

    fn os_version() -> Value {
        json!({"name": "Ubuntu", "version": "22.04.4 LTS (Jammy Jellyfish)", "major": "22", "minor": "4", "patch": "0",
               "build": "", "platform": "ubuntu", "platform_like": "debian", "codename": "jammy", "arch": "x86_64"})
    }

    fn osquery_info(&self) -> Value {
        json!({"pid": (1000 + self.index % 30000).to_string(), "uuid": self.uuid, "instance_id": format!("i-{:016x}", stable_hash(&[self.uuid.as_bytes()])),
               "version": "5.12.1", "config_hash": "", "config_valid": "1", "extensions": "active",
               "build_platform": "ubuntu", "build_distro": "focal", "start_time": "1763800000", "watcher": "1"})
    }

    fn enroll_body(&self, secret: &str) -> Value {
        json!({
            "enroll_secret": secret,
            "host_identifier": self.uuid,
            "platform_type": "9",
            "host_details": {
                "os_version": Self::os_version(),
                "osquery_info": self.osquery_info(),
                "system_info": self.system_info(),
                "platform_info": {"vendor": "Dell Inc.", "version": "1.10.2", "date": "10/12/2023"}
            }
        })
    }

    /// The rows osqueryd would return for a query herd handed out (vitals by name; anything unknown: none).
    fn rows_for(&self, name: &str, probability: f64) -> Value {
        if let Some(id) = policy_id_of(name) {
            return if Self::passes(&self.uuid, id, probability) { json!([{"1": "1"}]) } else { json!([]) };
        }
        if let Some(id) = name.strip_prefix("fleet_label_query_").and_then(|id| id.parse::<i64>().ok()) {
            // A dynamic label: half the hosts are members, always the same half per label.
            return if Self::passes(&self.uuid, 1_000_000 + id, 0.5) { json!([{"1": "1"}]) } else { json!([]) };
        }
        let octet = |shift: u32| (self.index >> shift) & 0xff;
        match name.strip_prefix("fleet_detail_query_").unwrap_or(name) {
            "os_version" => json!([Self::os_version()]),
            "osquery_info" => json!([self.osquery_info()]),
            "system_info" => json!([self.system_info()]),
            "uptime" => {
                let total = 86_400 + self.index % 2_000_000;
                json!([{"days": (total / 86_400).to_string(), "hours": (total / 3600 % 24).to_string(),
                        "minutes": (total / 60 % 60).to_string(), "seconds": (total % 60).to_string(),
                        "total_seconds": total.to_string()}])
            }
            "network_interface" => json!([{
                "interface": "eno1", "address": format!("10.{}.{}.{}", octet(16), octet(8), octet(0).max(1)),
                "mask": "255.255.0.0", "broadcast": "", "point_to_point": "", "type": "",
                "mac": format!("a4:bb:6d:{:02x}:{:02x}:{:02x}", octet(16), octet(8), octet(0))
            }]),
            "disk_space" => {
                let total = 512.0;
                let free = 40.0 + (self.index % 400) as f64;
                json!([{"percent_disk_space_available": format!("{:.1}", free / total * 100.0),
                        "gigs_disk_space_available": format!("{free:.2}"), "gigs_total_disk_space": format!("{total:.2}")}])
            }
            "osquery_flags" => json!([
                {"name": "distributed_interval", "value": "10"},
                {"name": "config_tls_refresh", "value": "60"},
                {"name": "logger_tls_period", "value": "10"}
            ]),
            _ => json!([]),
        }
    }

    async fn call(
        &mut self,
        shared: &Shared,
        endpoint: Endpoint,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<Value> {
        let bytes = body.map(|b| Bytes::from(serde_json::to_vec(&b).expect("JSON of a JSON value")));
        let started = Instant::now();
        let index = shared.next_server.fetch_add(1, Ordering::Relaxed) % shared.servers.len();
        let outcome = self.link.send(&shared.transport, &shared.servers, index, method, path, bytes).await;
        let took = started.elapsed();
        let failed = |kind: ErrorKind| {
            shared.stats.error(endpoint, &kind);
            None
        };
        match outcome {
            Ok((status, body)) if status.is_success() => {
                let value: Value = match serde_json::from_slice(&body) {
                    Ok(value) => value,
                    Err(_) if endpoint == Endpoint::Floor => Value::Null,
                    Err(_) => return failed(ErrorKind::BadBody),
                };
                if value.get("node_invalid").and_then(Value::as_bool) == Some(true) {
                    self.node_key = None;
                    return failed(ErrorKind::NodeInvalid);
                }
                shared.stats.ok(endpoint, took);
                Some(value)
            }
            // The server is behind and asks new hosts to come back later: osqueryd retries, nothing is lost.
            Ok((StatusCode::TOO_MANY_REQUESTS, _)) if endpoint == Endpoint::Enroll => {
                shared.stats.enroll_deferred.fetch_add(1, Ordering::Relaxed);
                None
            }
            Ok((status, _)) => failed(ErrorKind::Status(status.as_u16())),
            Err(kind) => failed(kind),
        }
    }

    async fn enroll(&mut self, shared: &Shared) -> bool {
        let body = self.enroll_body(&shared.enroll_secret);
        let reply = self.call(shared, Endpoint::Enroll, Method::POST, "/api/osquery/enroll", Some(body)).await;
        self.node_key = reply.and_then(|r| r["node_key"].as_str().map(str::to_string));
        self.node_key.is_some()
    }

    /// One check-in: the read, and the write when the read handed out queries. False when a request failed.
    async fn check_in(&mut self, shared: &Shared) -> bool {
        let Some(key) = self.node_key.clone() else { return false };
        let read = json!({"node_key": key});
        let Some(work) = self
            .call(shared, Endpoint::DistributedRead, Method::POST, "/api/osquery/distributed/read", Some(read))
            .await
        else {
            return false;
        };
        let Some(queries) = work["queries"].as_object().filter(|q| !q.is_empty()) else { return true };
        let mut results = serde_json::Map::with_capacity(queries.len());
        let mut statuses = serde_json::Map::with_capacity(queries.len());
        let mut policies = Vec::new();
        for name in queries.keys() {
            results.insert(name.clone(), self.rows_for(name, shared.pass_probability));
            statuses.insert(name.clone(), json!(0));
            if let Some(id) = policy_id_of(name) {
                policies.push(id);
            }
        }
        let write = json!({"node_key": key, "queries": results, "statuses": statuses, "messages": {}, "stats": {}});
        let written = self
            .call(shared, Endpoint::DistributedWrite, Method::POST, "/api/osquery/distributed/write", Some(write))
            .await;
        if written.is_none() {
            return false;
        }
        for id in policies {
            self.answered.insert(id, Self::passes(&self.uuid, id, shared.pass_probability));
        }
        true
    }

    async fn config(&mut self, shared: &Shared) -> bool {
        let Some(key) = self.node_key.clone() else { return false };
        let body = Some(json!({"node_key": key}));
        self.call(shared, Endpoint::Config, Method::POST, "/api/osquery/config", body).await.is_some()
    }

    /// osqueryd's loop until the run stops. `start_in` staggers the start (the ramp).
    pub async fn run(mut self, shared: Arc<Shared>, start_in: Duration) -> HostOutcome {
        tokio::time::sleep(start_in).await;
        // Enroll like osqueryd: up to three attempts 1 and 4 s apart (`tls_enroll_max_attempts`, waiting
        // attempt² s), then again at the next distributed interval; until it works or the run ends.
        let mut attempt = 0u32;
        while shared.phase.load(Ordering::Relaxed) == PHASE_RUN && !self.enroll(&shared).await {
            attempt += 1;
            let wait = match attempt % 3 {
                0 => shared.distributed_interval,
                n => Duration::from_secs(u64::from(n * n)),
            };
            tokio::time::sleep(wait).await;
        }
        if self.node_key.is_some() {
            shared.stats.host_enrolled();
        }
        let mut ticker = tokio::time::interval(shared.distributed_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_config = Instant::now();
        let enrolled = self.node_key.is_some();
        let (mut last_error_at, mut recovered_at) = (None, None);
        loop {
            if shared.phase.load(Ordering::Relaxed) == PHASE_STOP {
                break;
            }
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shared.stopped.notified() => break,
            }
            match shared.phase.load(Ordering::Relaxed) {
                PHASE_RUN => {}
                PHASE_FLOOR => {
                    let path = shared.floor_path.clone();
                    self.call(&shared, Endpoint::Floor, Method::GET, &path, None).await;
                    continue;
                }
                _ => break,
            }
            let mut ok = self.node_key.is_some() || self.enroll(&shared).await;
            if ok && Instant::now() >= next_config {
                next_config = Instant::now() + shared.config_interval;
                ok = self.config(&shared).await;
            }
            ok = ok && self.check_in(&shared).await;
            let now = shared.stats.elapsed().as_secs_f64();
            if !ok {
                (last_error_at, recovered_at) = (Some(now), None);
            } else if last_error_at.is_some() && recovered_at.is_none() {
                recovered_at = Some(now);
            }
        }
        HostOutcome {
            uuid: self.uuid,
            hostname: self.hostname,
            enrolled,
            answered: self.answered,
            last_error_at,
            recovered_at,
        }
    }
}

/// The policy a query name is for: `fleet_policy_query_<id>` or, as herd names them, `..._<id>_<revision>`.
fn policy_id_of(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("fleet_policy_query_")?;
    rest.split('_').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_stable_and_distinct() {
        let a = SimHost::new("perf", 1);
        assert_eq!(a.uuid, SimHost::new("perf", 1).uuid);
        assert_ne!(a.uuid, SimHost::new("perf", 2).uuid);
        assert_ne!(a.uuid, SimHost::new("other", 1).uuid);
        assert_eq!(a.uuid.len(), 36);
        assert_eq!(a.hostname, "perf-000001");
    }

    #[test]
    fn pass_probability_holds_over_many_hosts() {
        let passing = (0..10_000).filter(|i| SimHost::passes(&SimHost::new("p", *i).uuid, 7, 0.8)).count();
        assert!((7_600..8_400).contains(&passing), "{passing}");
        assert!((0..100).all(|i| !SimHost::passes(&SimHost::new("p", i).uuid, 7, 0.0)));
        assert!((0..100).all(|i| SimHost::passes(&SimHost::new("p", i).uuid, 7, 1.0)));
    }

    #[test]
    fn vitals_rows_carry_what_herd_reads() {
        let host = SimHost::new("perf", 42);
        let info = host.rows_for("fleet_detail_query_system_info", 1.0);
        assert_eq!(info[0]["hostname"], "perf-000042");
        assert_eq!(info[0]["uuid"], host.uuid.as_str());
        let flags = host.rows_for("fleet_detail_query_osquery_flags", 1.0);
        assert_eq!(flags.as_array().unwrap().len(), 3);
        assert_eq!(host.rows_for("fleet_policy_query_5", 1.0), json!([{"1": "1"}]));
        assert_eq!(host.rows_for("fleet_policy_query_5_3", 1.0), json!([{"1": "1"}]));
        assert_eq!(policy_id_of("fleet_policy_query_5_3"), Some(5));
        assert_eq!(host.rows_for("fleet_policy_query_5", 0.0), json!([]));
    }
}
