//! Network state: interface_addresses, interface_details, routes, listening_ports, iptables.
//!
//! NULL columns and why: interface_details.metric / last_change / collisions when sysfs lacks them;
//! routes.source and hopcount (not in /proc/net/route); iptables is empty when `iptables-save` is not
//! installed (the kernel's rule tables have no text interface of their own).

use super::procfs::read_trimmed;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

pub struct InterfaceAddresses;

impl Table for InterfaceAddresses {
    fn name(&self) -> &'static str {
        "interface_addresses"
    }
    fn description(&self) -> &'static str {
        "Network interfaces and relevant metadata."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("interface"),
            Column::text("address"),
            Column::text("mask"),
            Column::text("broadcast"),
            Column::text("point_to_point"),
            Column::text("type"),
            Column::text("friendly_name").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let addresses = nix::ifaddrs::getifaddrs().map_err(|e| TableError::Message(format!("getifaddrs: {e}")))?;
        let ip = |a: Option<nix::sys::socket::SockaddrStorage>| -> Option<String> {
            let a = a?;
            if let Some(v4) = a.as_sockaddr_in() {
                return Some(v4.ip().to_string());
            }
            a.as_sockaddr_in6().map(|v6| v6.ip().to_string())
        };
        let mut rows = Vec::new();
        for entry in addresses {
            let Some(address) = ip(entry.address) else { continue };
            let p2p = entry.flags.contains(nix::net::if_::InterfaceFlags::IFF_POINTOPOINT);
            let other = ip(entry.destination);
            rows.push(Row::from([
                ("interface", Value::text(entry.interface_name.clone())),
                ("address", Value::text(address)),
                ("mask", Value::opt_text(ip(entry.netmask))),
                ("broadcast", Value::opt_text(if p2p { None } else { other.clone() })),
                ("point_to_point", Value::opt_text(if p2p { other } else { None })),
                // How the address was assigned is not exposed by getifaddrs.
                ("type", Value::text("unknown")),
            ]));
        }
        Ok(rows)
    }
}

pub struct InterfaceDetails;

impl Table for InterfaceDetails {
    fn name(&self) -> &'static str {
        "interface_details"
    }
    fn description(&self) -> &'static str {
        "Detailed information and stats of network interfaces."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("interface"),
            Column::text("mac"),
            Column::int("type"),
            Column::int("mtu"),
            Column::int("metric"),
            Column::int("flags"),
            Column::bigint("ipackets"),
            Column::bigint("opackets"),
            Column::bigint("ibytes"),
            Column::bigint("obytes"),
            Column::bigint("ierrors"),
            Column::bigint("oerrors"),
            Column::bigint("idrops"),
            Column::bigint("odrops"),
            Column::bigint("collisions"),
            Column::bigint("last_change"),
            Column::bigint("link_speed"),
            Column::text("pci_slot"),
            Column::text("friendly_name").hidden(),
            Column::text("description").hidden(),
            Column::text("manufacturer").hidden(),
            Column::text("connection_id").hidden(),
            Column::text("connection_status").hidden(),
            Column::int("enabled").hidden(),
            Column::int("physical_adapter").hidden(),
            Column::int("speed").hidden(),
            Column::text("service").hidden(),
            Column::int("dhcp_enabled").hidden(),
            Column::text("dhcp_lease_expires").hidden(),
            Column::text("dhcp_lease_obtained").hidden(),
            Column::text("dhcp_server").hidden(),
            Column::text("dns_domain").hidden(),
            Column::text("dns_domain_suffix_search_order").hidden(),
            Column::text("dns_host_name").hidden(),
            Column::text("dns_server_search_order").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for entry in std::fs::read_dir("/sys/class/net")?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            let num = |f: &str| {
                read_trimmed(dir.join(f)).and_then(|v| {
                    i64::from_str_radix(v.trim_start_matches("0x"), if v.starts_with("0x") { 16 } else { 10 }).ok()
                })
            };
            let pci = std::fs::read_link(dir.join("device"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            rows.push(Row::from([
                ("interface", Value::text(name)),
                ("mac", Value::opt_text(read_trimmed(dir.join("address")))),
                ("type", Value::opt_int(num("type"))),
                ("mtu", Value::opt_int(num("mtu"))),
                ("flags", Value::opt_int(num("flags"))),
                ("ipackets", Value::opt_int(num("statistics/rx_packets"))),
                ("opackets", Value::opt_int(num("statistics/tx_packets"))),
                ("ibytes", Value::opt_int(num("statistics/rx_bytes"))),
                ("obytes", Value::opt_int(num("statistics/tx_bytes"))),
                ("ierrors", Value::opt_int(num("statistics/rx_errors"))),
                ("oerrors", Value::opt_int(num("statistics/tx_errors"))),
                ("idrops", Value::opt_int(num("statistics/rx_dropped"))),
                ("odrops", Value::opt_int(num("statistics/tx_dropped"))),
                ("collisions", Value::opt_int(num("statistics/collisions"))),
                // Unknown speeds read as -1 from sysfs; osquery reports them as such.
                ("link_speed", Value::opt_int(num("speed"))),
                ("pci_slot", Value::opt_text(pci.filter(|p| p.contains(':')))),
            ]));
        }
        Ok(rows)
    }
}

pub struct Routes;

fn hex_ipv4(hex: &str) -> Option<Ipv4Addr> {
    // /proc/net/route stores addresses in host (little-endian) byte order.
    u32::from_str_radix(hex, 16).ok().map(|v| Ipv4Addr::from(v.to_le_bytes()))
}

fn hex_ipv6(hex: &str) -> Option<Ipv6Addr> {
    u128::from_str_radix(hex, 16).ok().map(Ipv6Addr::from)
}

impl Table for Routes {
    fn name(&self) -> &'static str {
        "routes"
    }
    fn description(&self) -> &'static str {
        "The active route table for the host system."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("destination"),
            Column::int("netmask"),
            Column::text("gateway"),
            Column::text("source"),
            Column::int("flags"),
            Column::text("interface"),
            Column::int("mtu"),
            Column::int("metric"),
            Column::text("type").index(),
            Column::int("hopcount"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        // Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
        for line in std::fs::read_to_string("/proc/net/route").unwrap_or_default().lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 11 {
                continue;
            }
            let flags = i64::from_str_radix(f[3], 16).unwrap_or(0);
            let mask = hex_ipv4(f[7]).map(|m| u32::from(m).count_ones() as i64);
            let gateway = hex_ipv4(f[2]).map(|g| g.to_string());
            rows.push(Row::from([
                ("destination", Value::opt_text(hex_ipv4(f[1]).map(|d| d.to_string()))),
                ("netmask", Value::opt_int(mask)),
                ("gateway", Value::opt_text(gateway)),
                ("flags", Value::Int(flags)),
                ("interface", Value::text(f[0])),
                ("mtu", Value::opt_int(f[8].parse().ok())),
                ("metric", Value::opt_int(f[6].parse().ok())),
                // RTF_GATEWAY (0x2): via a gateway; else directly connected.
                ("type", Value::text(if flags & 0x2 != 0 { "gateway" } else { "local" })),
            ]));
        }
        // dest dest_len src src_len gateway metric refcnt use flags iface
        for line in std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default().lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let flags = i64::from_str_radix(f[8], 16).unwrap_or(0);
            rows.push(Row::from([
                ("destination", Value::opt_text(hex_ipv6(f[0]).map(|d| d.to_string()))),
                ("netmask", Value::opt_int(i64::from_str_radix(f[1], 16).ok())),
                ("gateway", Value::opt_text(hex_ipv6(f[4]).map(|g| g.to_string()))),
                ("flags", Value::Int(flags)),
                ("interface", Value::text(f[9])),
                ("metric", Value::opt_int(i64::from_str_radix(f[5], 16).ok())),
                ("type", Value::text(if flags & 0x2 != 0 { "gateway" } else { "local" })),
            ]));
        }
        Ok(rows)
    }
}

pub struct ListeningPorts;

/// socket inode → (pid, fd), from every process's fd directory we may read.
fn socket_owners() -> BTreeMap<u64, (i64, i64)> {
    let mut owners = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return owners };
    for proc_entry in procs.flatten() {
        let Some(pid) = proc_entry.file_name().to_str().and_then(|p| p.parse::<i64>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let target = target.to_string_lossy();
            if let Some(inode) =
                target.strip_prefix("socket:[").and_then(|t| t.strip_suffix(']')).and_then(|i| i.parse().ok())
            {
                let fd_num = fd.file_name().to_str().and_then(|f| f.parse().ok()).unwrap_or(-1);
                owners.entry(inode).or_insert((pid, fd_num));
            }
        }
    }
    owners
}

pub(super) fn parse_endpoint(text: &str, v6: bool) -> Option<(String, i64)> {
    let (address, port) = text.split_once(':')?;
    let port = i64::from_str_radix(port, 16).ok()?;
    let address = if v6 {
        // Four little-endian 32-bit words.
        let mut bytes = [0u8; 16];
        for i in 0..4 {
            let word = u32::from_str_radix(address.get(i * 8..i * 8 + 8)?, 16).ok()?;
            bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
        Ipv6Addr::from(bytes).to_string()
    } else {
        Ipv4Addr::from(u32::from_str_radix(address, 16).ok()?.to_le_bytes()).to_string()
    };
    Some((address, port))
}

impl Table for ListeningPorts {
    fn name(&self) -> &'static str {
        "listening_ports"
    }
    fn description(&self) -> &'static str {
        "Processes with listening (bound) network sockets/ports."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::int("pid"),
            Column::int("port"),
            Column::int("protocol"),
            Column::int("family"),
            Column::text("address"),
            Column::bigint("fd"),
            Column::bigint("socket"),
            Column::text("path"),
            Column::text("net_namespace"),
        ];
        COLUMNS
    }
    /// TCP sockets in LISTEN and bound UDP sockets. pid and fd are NULL for sockets of processes the agent may
    /// not inspect (other users' when not root).
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let owners = socket_owners();
        let namespace = std::fs::read_link("/proc/self/ns/net")
            .ok()
            .map(|p| p.to_string_lossy().trim_start_matches("net:[").trim_end_matches(']').to_string());
        let mut rows = Vec::new();
        for (file, protocol, family, v6) in
            [("tcp", 6, 2, false), ("tcp6", 6, 10, true), ("udp", 17, 2, false), ("udp6", 17, 10, true)]
        {
            for line in std::fs::read_to_string(format!("/proc/net/{file}")).unwrap_or_default().lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 10 {
                    continue;
                }
                // TCP: only LISTEN (0A). UDP: bound sockets (no remote peer).
                let listening = if protocol == 6 { f[3] == "0A" } else { f[2].ends_with(":0000") };
                if !listening {
                    continue;
                }
                let Some((address, port)) = parse_endpoint(f[1], v6) else { continue };
                let inode: u64 = f[9].parse().unwrap_or(0);
                let owner = owners.get(&inode);
                rows.push(Row::from([
                    ("pid", Value::opt_int(owner.map(|o| o.0))),
                    ("port", Value::Int(port)),
                    ("protocol", Value::Int(protocol)),
                    ("family", Value::Int(family)),
                    ("address", Value::text(address)),
                    ("fd", Value::opt_int(owner.map(|o| o.1))),
                    ("socket", Value::Int(inode as i64)),
                    ("path", Value::text("")),
                    ("net_namespace", Value::opt_text(namespace.clone())),
                ]));
            }
        }
        Ok(rows)
    }
}

pub struct Iptables;

impl Table for Iptables {
    fn name(&self) -> &'static str {
        "iptables"
    }
    fn description(&self) -> &'static str {
        "Linux IP packet filtering and NAT tool (from iptables-save)."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("filter_name"),
            Column::text("chain"),
            Column::text("policy"),
            Column::text("target"),
            Column::int("protocol"),
            Column::text("src_port"),
            Column::text("dst_port"),
            Column::text("src_ip"),
            Column::text("src_mask"),
            Column::text("iniface"),
            Column::text("iniface_mask"),
            Column::text("dst_ip"),
            Column::text("dst_mask"),
            Column::text("outiface"),
            Column::text("outiface_mask"),
            Column::text("match"),
            Column::int("packets"),
            Column::int("bytes"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let Ok(output) = std::process::Command::new("iptables-save").arg("-c").output() else { return Ok(Vec::new()) };
        Ok(parse_iptables_save(&String::from_utf8_lossy(&output.stdout)))
    }
}

/// Rows from `iptables-save -c` output: one per chain policy and one per rule.
pub fn parse_iptables_save(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut table = String::new();
    let mut policies: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = name.to_string();
            policies.clear();
        } else if let Some(chain) = line.strip_prefix(':') {
            let f: Vec<&str> = chain.split_whitespace().collect();
            if let [name, policy, ..] = f[..] {
                policies.insert(name.to_string(), policy.to_string());
            }
        } else if line.starts_with('[') || line.starts_with("-A") {
            let (counters, rule) = match line.strip_prefix('[') {
                Some(rest) => rest.split_once(']').map(|(c, r)| (Some(c), r.trim())).unwrap_or((None, line)),
                None => (None, line),
            };
            let words: Vec<&str> = rule.split_whitespace().collect();
            let arg = |flag: &str| {
                words.iter().position(|w| *w == flag).and_then(|i| words.get(i + 1)).map(|s| s.to_string())
            };
            let chain = arg("-A").unwrap_or_default();
            let (packets, bytes) = counters
                .and_then(|c| c.split_once(':'))
                .map(|(p, b)| (p.parse().ok(), b.parse().ok()))
                .unwrap_or((None, None));
            let (src_ip, src_mask) = arg("-s").map(|s| split_mask(&s)).unwrap_or_default();
            let (dst_ip, dst_mask) = arg("-d").map(|s| split_mask(&s)).unwrap_or_default();
            let protocol = arg("-p").map(|p| match p.as_str() {
                "tcp" => 6,
                "udp" => 17,
                "icmp" => 1,
                other => other.parse().unwrap_or(0),
            });
            rows.push(Row::from([
                ("filter_name", Value::text(table.clone())),
                ("policy", Value::opt_text(policies.get(&chain).cloned())),
                ("chain", Value::text(chain)),
                ("target", Value::opt_text(arg("-j"))),
                ("protocol", Value::opt_int(protocol)),
                ("src_port", Value::opt_text(arg("--sport"))),
                ("dst_port", Value::opt_text(arg("--dport"))),
                ("src_ip", Value::text(src_ip)),
                ("src_mask", Value::text(src_mask)),
                ("iniface", Value::opt_text(arg("-i"))),
                ("dst_ip", Value::text(dst_ip)),
                ("dst_mask", Value::text(dst_mask)),
                ("outiface", Value::opt_text(arg("-o"))),
                ("match", Value::opt_text(arg("-m"))),
                ("packets", Value::opt_int(packets)),
                ("bytes", Value::opt_int(bytes)),
            ]));
        }
    }
    rows
}

fn split_mask(cidr: &str) -> (String, String) {
    match cidr.split_once('/') {
        Some((ip, bits)) => {
            let mask = bits
                .parse::<u32>()
                .ok()
                .filter(|b| *b <= 32)
                .map(|b| Ipv4Addr::from(if b == 0 { 0 } else { u32::MAX << (32 - b) }).to_string());
            (ip.to_string(), mask.unwrap_or_else(|| bits.to_string()))
        }
        None => (cidr.to_string(), "255.255.255.255".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_endpoints() {
        assert_eq!(parse_endpoint("0100007F:1F90", false), Some(("127.0.0.1".into(), 8080)));
        assert_eq!(parse_endpoint("00000000000000000000000001000000:0016", true), Some(("::1".into(), 22)));
        assert_eq!(hex_ipv4("0100A8C0").map(|a| a.to_string()).as_deref(), Some("192.168.0.1"));
    }

    #[test]
    fn iptables_save_rules() {
        let text = "*filter\n:INPUT DROP [10:600]\n:FORWARD ACCEPT [0:0]\n[5:300] -A INPUT -s 10.0.0.0/8 -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n";
        let rows = parse_iptables_save(text);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r["chain"], Value::text("INPUT"));
        assert_eq!(r["policy"], Value::text("DROP"));
        assert_eq!(r["target"], Value::text("ACCEPT"));
        assert_eq!(r["protocol"], Value::Int(6));
        assert_eq!(r["dst_port"], Value::text("22"));
        assert_eq!(r["src_mask"], Value::text("255.0.0.0"));
        assert_eq!(r["packets"], Value::Int(5));
    }
}
