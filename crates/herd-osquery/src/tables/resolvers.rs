//! dns_resolvers: the resolver configuration in /etc/resolv.conf, read as glibc's res_init reads it (osquery
//! asks res_init and reports `_res`):
//! - `nameserver ADDR` lines, the first 3 (glibc's MAXNS): rows of type `nameserver`, `id` 0.., `address` as
//!   written (an IPv6 scope `%eth0` dropped), `netmask` `32` (osquery's constant, IPv6 too).
//! - `search` (or `domain`; the last of them wins): a `search` row per domain, the first 6 (MAXDNSRCH),
//!   `netmask` NULL. osquery's loop repeats the first domain in every search row; herd gives each its own.
//! - `sortlist ADDR[/MASK]`, the first 10: `sortlist` rows, `netmask` the mask as written (NULL without one;
//!   osquery prints glibc's binary mask as a number, which is meaningless as text).
//! - `options`: the BIGINT glibc's `_res.options` would hold — RES_INIT, RES_RECURSE, RES_DEFNAMES and
//!   RES_DNSRCH (glibc's defaults) plus the flag of each option word (`rotate`, `edns0`, `single-request`,
//!   `single-request-reopen`, `no-tld-query`/`no_tld_query`, `no-reload`, `use-vc`, `trust-ad`, `no-aaaa`);
//!   valued options (`ndots:`, `timeout:`, `attempts:`) set no flag. The same on every row, as in osquery.
//! - `pid_with_namespace` (hidden): 0, as osquery fills it for the host's namespace.
//!
//! Where glibc would invent, herd does not: without the file there are no rows (glibc falls back to a
//! nameserver 127.0.0.1), a file without nameservers gives no nameserver rows, and no search domain is derived
//! from the hostname. The LOCALDOMAIN and RES_OPTIONS environment variables (the agent's own) are not applied.

use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::path::PathBuf;

const RESOLV_CONF: &str = "/etc/resolv.conf";
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCH: usize = 6;
const MAX_SORTLIST: usize = 10;
/// glibc's resolver flags (resolv.h).
const RES_INIT: i64 = 0x1;
const RES_DEFAULT: i64 = 0x40 | 0x80 | 0x200;
const OPTION_FLAGS: &[(&str, i64)] = &[
    ("use-vc", 0x8),
    ("rotate", 0x4000),
    ("edns0", 0x100000),
    ("single-request", 0x200000),
    ("single-request-reopen", 0x400000),
    ("no-tld-query", 0x1000000),
    ("no_tld_query", 0x1000000),
    ("no-reload", 0x2000000),
    ("trust-ad", 0x4000000),
    ("no-aaaa", 0x8000000),
];

/// The rows for a resolv.conf's text.
pub(crate) fn resolver_rows(text: &str) -> Vec<Row> {
    let (mut nameservers, mut search, mut sortlist) = (Vec::new(), Vec::new(), Vec::new());
    let mut options = RES_INIT | RES_DEFAULT;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else { continue };
        match keyword {
            "nameserver" => {
                if let Some(address) = words.next() {
                    let address = address.split('%').next().unwrap_or(address);
                    if address.parse::<std::net::IpAddr>().is_ok() && nameservers.len() < MAX_NAMESERVERS {
                        nameservers.push(address.to_string());
                    }
                }
            }
            "search" | "domain" => search = words.take(MAX_SEARCH).map(str::to_string).collect(),
            "sortlist" => {
                for entry in words {
                    if sortlist.len() == MAX_SORTLIST {
                        break;
                    }
                    let (address, mask) = match entry.split_once(['/', '&']) {
                        Some((a, m)) => (a, Some(m.to_string())),
                        None => (entry, None),
                    };
                    if address.parse::<std::net::Ipv4Addr>().is_ok() {
                        sortlist.push((address.to_string(), mask));
                    }
                }
            }
            "options" => {
                for word in words {
                    if let Some((_, flag)) = OPTION_FLAGS.iter().find(|(name, _)| *name == word) {
                        options |= flag;
                    }
                }
            }
            _ => {}
        }
    }
    let row = |id: usize, kind: &str, address: String, netmask: Value| {
        Row::from([
            ("id", Value::Int(id as i64)),
            ("type", Value::text(kind)),
            ("address", Value::text(address)),
            ("netmask", netmask),
            ("options", Value::Int(options)),
            ("pid_with_namespace", Value::Int(0)),
        ])
    };
    let mut rows = Vec::new();
    for (id, address) in nameservers.into_iter().enumerate() {
        rows.push(row(id, "nameserver", address, Value::text("32")));
    }
    for (id, (address, mask)) in sortlist.into_iter().enumerate() {
        rows.push(row(id, "sortlist", address, Value::opt_text(mask)));
    }
    for (id, domain) in search.into_iter().enumerate() {
        rows.push(row(id, "search", domain, Value::Null));
    }
    rows
}

/// The table over /etc/resolv.conf, or (tests) another file.
pub struct DnsResolvers {
    path: PathBuf,
}

impl Default for DnsResolvers {
    fn default() -> DnsResolvers {
        DnsResolvers { path: PathBuf::from(RESOLV_CONF) }
    }
}

impl DnsResolvers {
    pub fn with_path(path: impl Into<PathBuf>) -> DnsResolvers {
        DnsResolvers { path: path.into() }
    }
}

impl Table for DnsResolvers {
    fn name(&self) -> &'static str {
        "dns_resolvers"
    }
    fn description(&self) -> &'static str {
        "Resolvers used by this host."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::int("id"),
            Column::text("type"),
            Column::text("address"),
            Column::text("netmask"),
            Column::bigint("options"),
            Column::int("pid_with_namespace").index().hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        Ok(std::fs::read(&self.path).map(|b| resolver_rows(&String::from_utf8_lossy(&b))).unwrap_or_default())
    }
}
