//! Small readers for procfs, sysfs and key-value files.

use std::collections::BTreeMap;
use std::path::Path;

/// A file's contents trimmed, or None when it cannot be read (missing, permission denied) or is empty.
pub fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `KEY=value` lines (os-release style), quotes removed.
pub fn key_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').trim_matches('\'').to_string()))
        .collect()
}

/// `Key:   value kB` lines (/proc/meminfo, /proc/PID/status): key → first word of the value.
pub fn colon_fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A /proc/meminfo-style value in bytes ("16384 kB" → 16777216).
pub fn kib_field(fields: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    let value = fields.get(key)?;
    let number: i64 = value.split_whitespace().next()?.parse().ok()?;
    Some(if value.ends_with("kB") { number * 1024 } else { number })
}

/// The kernel's clock ticks per second (for /proc/PID/stat times).
pub fn clock_ticks() -> i64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().filter(|t| *t > 0).unwrap_or(100)
}

/// Boot time (Unix seconds) from /proc/stat.
pub fn boot_time() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// Undoes the octal escapes /proc/mounts uses for spaces, tabs and backslashes.
pub fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let value = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        let kv = key_values("NAME=\"Debian GNU/Linux\"\nVERSION_ID='12'\nbad line\n");
        assert_eq!(kv["NAME"], "Debian GNU/Linux");
        assert_eq!(kv["VERSION_ID"], "12");
        let fields = colon_fields("MemTotal:       16384 kB\nHugePages_Total:       0\n");
        assert_eq!(kib_field(&fields, "MemTotal"), Some(16_777_216));
        assert_eq!(kib_field(&fields, "HugePages_Total"), Some(0));
        assert_eq!(unescape_octal("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape_octal("/plain"), "/plain");
    }
}
