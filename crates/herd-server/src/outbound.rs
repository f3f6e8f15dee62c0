//! Outbound requests the server makes on an admin's behalf (webhooks today): where they may go.
//!
//! Anyone who may write a webhook URL (a team maintainer, for their policies) could otherwise make the server
//! POST to itself, to the cloud metadata service or to anything else on its private network. So every
//! outbound URL passes one policy, [`OutboundPolicy`], twice:
//! - when it is written (`check_url`): a literal IP address that is forbidden is refused at once (422);
//! - when it is used: the client's DNS resolver ([`FilteringResolver`]) drops forbidden addresses from every
//!   answer — the addresses actually connected to, so a name that resolves differently later is still caught —
//!   literal addresses are checked again before sending, proxies are not used and redirects are not followed.
//!
//! Forbidden unless the operator allows a range (`--webhook-allow-cidr`): loopback, unspecified, private
//! (RFC 1918, ULA `fc00::/7`), link-local (with the metadata address 169.254.169.254), carrier-grade NAT
//! (`100.64.0.0/10`), multicast, broadcast and reserved ranges, and the IPv6 forms that embed such an IPv4
//! address (IPv4-mapped, IPv4-compatible, NAT64, 6to4).

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Where outbound requests may go.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Ranges the operator allows although they are forbidden by default (an internal receiver).
    allowed: Vec<IpNet>,
}

/// A destination the policy forbids, with the reason (names the address and its kind).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl OutboundPolicy {
    pub fn new(allowed: Vec<IpNet>) -> OutboundPolicy {
        OutboundPolicy { allowed }
    }

    /// Whether the server may connect to `ip`; Err names the address and why not.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        let canonical = ip.to_canonical();
        if self.allowed.iter().any(|net| net.contains(&ip) || net.contains(&canonical)) {
            return Ok(());
        }
        match forbidden_kind(ip) {
            None => Ok(()),
            Some(kind) => Err(Refused(format!(
                "{ip} is a {kind} address; outbound requests may not go there (allow a range with --webhook-allow-cidr)"
            ))),
        }
    }

    /// Checks an outbound URL when it is written: an absolute http(s) URL with a host, and when the host is an
    /// IP address, one the policy allows. Host names are checked at delivery, on what they resolve to then.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("must be an http(s) url ({e}), not {url:?}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("must be an http(s) url, not {url:?}"));
        }
        // The URL parser has already turned every spelling of an IPv4 address (decimal, hex) into dotted form.
        let host = parsed.host_str().unwrap_or_default();
        match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => self.check_ip(ip).map_err(|refused| refused.0),
            Err(_) => Ok(()),
        }
    }

    /// The DNS resolver for clients that obey this policy.
    pub fn resolver(&self) -> FilteringResolver {
        FilteringResolver { policy: Arc::new(self.clone()) }
    }
}

/// What kind of forbidden address `ip` is, or None when it is a public one.
pub fn forbidden_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(match () {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => "cloud metadata",
        _ if ip.is_loopback() => "loopback",
        _ if a == 0 => "unspecified (\"this network\")",
        _ if ip.is_private() => "private (RFC 1918)",
        _ if ip.is_link_local() => "link-local",
        _ if a == 100 && (64..128).contains(&b) => "carrier-grade NAT (100.64.0.0/10)",
        _ if ip.is_broadcast() => "broadcast",
        _ if ip.is_multicast() => "multicast",
        // 240.0.0.0/4: reserved, never routed.
        _ if a >= 240 => "reserved",
        // 192.0.0.0/24: IETF protocol assignments (some hold NAT64 discovery and relay anycasts).
        _ if a == 192 && b == 0 && ip.octets()[2] == 0 => "reserved (192.0.0.0/24)",
        // 198.18.0.0/15: benchmarking networks, often used inside data centres.
        _ if a == 198 && (b == 18 || b == 19) => "benchmarking (198.18.0.0/15)",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    // Forms that carry an IPv4 address: judged by that address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4).map(|_| "IPv4-mapped IPv6 form of a forbidden");
    }
    if segments[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        // ::a.b.c.d, IPv4-compatible (deprecated, but some stacks still route it).
        let v4 = Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32);
        return forbidden_v4(v4).map(|_| "IPv4-compatible IPv6 form of a forbidden");
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32);
        return forbidden_v4(v4).map(|_| "NAT64 form of a forbidden");
    }
    if segments[0] == 0x2002 {
        let v4 = Ipv4Addr::from(((segments[1] as u32) << 16) | segments[2] as u32);
        return forbidden_v4(v4).map(|_| "6to4 form of a forbidden");
    }
    Some(match () {
        _ if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => "cloud metadata",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() => "unspecified",
        _ if segments[0] & 0xfe00 == 0xfc00 => "unique local (fc00::/7)",
        _ if segments[0] & 0xffc0 == 0xfe80 => "link-local",
        _ if segments[0] & 0xffc0 == 0xfec0 => "site-local (deprecated)",
        _ if ip.is_multicast() => "multicast",
        _ => return None,
    })
}

/// A DNS resolver that resolves with the system's resolver and keeps only the addresses the policy allows, so
/// the check holds for the address the client connects to, whatever the name resolved to when it was written.
#[derive(Clone)]
pub struct FilteringResolver {
    policy: Arc<OutboundPolicy>,
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusals = Vec::new();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.check_ip(addr.ip()) {
                    Ok(()) => true,
                    Err(refused) => {
                        refusals.push(refused);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let reason = match refusals.first() {
                    Some(first) => format!("{host} resolves only to forbidden addresses: {first}"),
                    None => format!("{host} resolves to no address"),
                };
                return Err(Box::new(Refused(reason)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The policy's refusal somewhere in an error's chain of sources (a refused delivery is final, not retried).
pub fn refusal_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = current {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return Some(refused);
        }
        current = err.source();
    }
    None
}

/// Parses `--webhook-allow-cidr` values: a range (`10.0.0.0/8`, `fd00::/8`) or one address.
pub fn parse_allowed(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    if let Ok(net) = value.parse::<IpNet>() {
        return Ok(net);
    }
    value.parse::<IpAddr>().map(IpNet::from).map_err(|_| format!("{value:?} is not an IP range (CIDR) or address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        OutboundPolicy::default().check_ip(ip.parse().unwrap()).is_err()
    }

    #[test]
    fn forbidden_ranges() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(refused(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in ["93.184.216.34", "8.8.8.8", "100.128.0.1", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!refused(ip), "{ip} must be allowed");
        }
    }

    #[test]
    fn allowed_ranges_override() {
        let policy = OutboundPolicy::new(vec![parse_allowed("127.0.0.0/8").unwrap(), parse_allowed("::1").unwrap()]);
        assert!(policy.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check_ip("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check_ip("::1".parse().unwrap()).is_ok());
        assert!(policy.check_ip("10.0.0.1".parse().unwrap()).is_err());
        assert!(parse_allowed("nonsense").is_err());
    }

    #[test]
    fn urls_with_forbidden_literals_are_refused_at_write() {
        let policy = OutboundPolicy::default();
        assert!(policy.check_url("http://127.0.0.1:9/hook").unwrap_err().contains("loopback"));
        assert!(policy.check_url("http://169.254.169.254/latest").unwrap_err().contains("metadata"));
        assert!(policy.check_url("http://[::1]:22/").unwrap_err().contains("loopback"));
        assert!(policy.check_url("http://[::ffff:7f00:1]/").is_err());
        assert!(policy.check_url("http://2130706433/").is_err(), "decimal form of 127.0.0.1");
        assert!(policy.check_url("http://0x7f.1/").is_err(), "hex short form of 127.0.0.1");
        assert!(policy.check_url("ftp://example.com/").is_err());
        // Names are judged when delivered, on their addresses then.
        assert!(policy.check_url("https://localhost/hook").is_ok());
        assert!(policy.check_url("https://hooks.example.com/x").is_ok());
    }
}
