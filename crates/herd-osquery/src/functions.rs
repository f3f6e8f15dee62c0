//! osquery's SQL functions and collations.

use base64::Engine as _;
use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value as SqlValue, ValueRef};
use std::cmp::Ordering;

fn text_arg(ctx: &Context<'_>, i: usize) -> Option<String> {
    match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(v.to_string()),
        ValueRef::Real(v) => Some(v.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

fn int_arg(ctx: &Context<'_>, i: usize) -> rusqlite::Result<i64> {
    match ctx.get_raw(i) {
        ValueRef::Integer(v) => Ok(v),
        ValueRef::Real(v) => Ok(v as i64),
        ValueRef::Text(t) => String::from_utf8_lossy(t)
            .trim()
            .parse()
            .map_err(|_| rusqlite::Error::UserFunctionError("expected an integer index".into())),
        _ => Err(rusqlite::Error::UserFunctionError("expected an integer index".into())),
    }
}

fn user_error(message: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(message.into().into())
}

pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("concat", -1, flags, |ctx| {
        Ok((0..ctx.len()).filter_map(|i| text_arg(ctx, i)).collect::<String>())
    })?;
    conn.create_scalar_function("concat_ws", -1, flags, |ctx| {
        if ctx.is_empty() {
            return Err(user_error("concat_ws needs a separator"));
        }
        let separator = text_arg(ctx, 0).unwrap_or_default();
        Ok((1..ctx.len()).filter_map(|i| text_arg(ctx, i)).collect::<Vec<_>>().join(&separator))
    })?;
    // split(string, tokens, index): the index-th (0-based) non-empty piece between any of the token characters.
    conn.create_scalar_function("split", 3, flags, |ctx| {
        let (Some(text), Some(tokens)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else { return Ok(None) };
        let index = int_arg(ctx, 2)?;
        let piece = text.split(|c| tokens.contains(c)).filter(|p| !p.is_empty()).nth(index.max(0) as usize);
        Ok(if index < 0 { None } else { piece.map(str::to_string) })
    })?;
    // regex_match(string, pattern, index): group `index` (0 = whole match) of the first match.
    conn.create_scalar_function("regex_match", 3, flags, |ctx| {
        let (Some(text), Some(pattern)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else { return Ok(None) };
        let index = int_arg(ctx, 2)?;
        let regex = regex::Regex::new(&pattern).map_err(|e| user_error(format!("invalid regex: {e}")))?;
        Ok(regex
            .captures(&text)
            .and_then(|c| usize::try_from(index).ok().and_then(|i| c.get(i)))
            .map(|m| m.as_str().to_string()))
    })?;
    // regex_split(string, pattern, index): the index-th piece between matches.
    conn.create_scalar_function("regex_split", 3, flags, |ctx| {
        let (Some(text), Some(pattern)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else { return Ok(None) };
        let index = int_arg(ctx, 2)?;
        let regex = regex::Regex::new(&pattern).map_err(|e| user_error(format!("invalid regex: {e}")))?;
        Ok(usize::try_from(index).ok().and_then(|i| regex.split(&text).nth(i)).map(str::to_string))
    })?;
    conn.create_scalar_function("version_compare", -1, flags, |ctx| {
        if !(2..=3).contains(&ctx.len()) {
            return Err(user_error("version_compare takes 2 or 3 arguments"));
        }
        let (Some(a), Some(b)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else { return Ok(None) };
        let scheme = if ctx.len() == 3 { text_arg(ctx, 2).unwrap_or_default() } else { String::new() };
        let ordering = match scheme.to_ascii_uppercase().as_str() {
            "" | "RHEL" | "ARCH" => rpm_version_cmp(&a, &b),
            "DPKG" => dpkg_version_cmp(&a, &b),
            other => return Err(user_error(format!("unknown version type {other:?}; expected ARCH, DPKG or RHEL"))),
        };
        Ok(Some(ordering as i64))
    })?;
    conn.create_scalar_function("md5", 1, flags, |ctx| {
        Ok(text_arg(ctx, 0).map(|t| hex::encode(<md5::Md5 as md5::Digest>::digest(t.as_bytes()))))
    })?;
    conn.create_scalar_function("sha1", 1, flags, |ctx| {
        Ok(text_arg(ctx, 0).map(|t| hex::encode(<sha1::Sha1 as sha1::Digest>::digest(t.as_bytes()))))
    })?;
    conn.create_scalar_function("sha256", 1, flags, |ctx| {
        Ok(text_arg(ctx, 0).map(|t| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(t.as_bytes()))))
    })?;
    conn.create_scalar_function("to_base64", 1, flags, |ctx| {
        Ok(text_arg(ctx, 0).map(|t| base64::engine::general_purpose::STANDARD.encode(t)))
    })?;
    conn.create_scalar_function("from_base64", 1, flags, |ctx| {
        Ok(text_arg(ctx, 0).and_then(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t.trim())
                .ok()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        }))
    })?;
    conn.create_scalar_function("inet_aton", 1, flags, |ctx| {
        Ok(text_arg(ctx, 0).and_then(|t| t.trim().parse::<std::net::Ipv4Addr>().ok()).map(|ip| u32::from(ip) as i64))
    })?;
    conn.create_scalar_function("in_cidr_block", 2, flags, |ctx| {
        let (Some(block), Some(ip)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else { return Ok(SqlValue::Null) };
        Ok(match in_cidr_block(&block, &ip) {
            Some(inside) => SqlValue::Integer(inside as i64),
            None => SqlValue::Null,
        })
    })?;
    conn.create_collation("version", rpm_version_cmp)?;
    conn.create_collation("version_rhel", rpm_version_cmp)?;
    conn.create_collation("version_arch", rpm_version_cmp)?;
    conn.create_collation("version_dpkg", dpkg_version_cmp)?;
    Ok(())
}

/// Whether `ip` is inside `block` ("10.0.0.0/8", "fd00::/8"); None when either does not parse.
pub fn in_cidr_block(block: &str, ip: &str) -> Option<bool> {
    let (network, bits) = block.trim().split_once('/')?;
    let bits: u32 = bits.parse().ok()?;
    match (network.parse::<std::net::IpAddr>().ok()?, ip.trim().parse::<std::net::IpAddr>().ok()?) {
        (std::net::IpAddr::V4(net), std::net::IpAddr::V4(ip)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            Some(u32::from(net) & mask == u32::from(ip) & mask)
        }
        (std::net::IpAddr::V6(net), std::net::IpAddr::V6(ip)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            Some(u128::from(net) & mask == u128::from(ip) & mask)
        }
        _ => Some(false),
    }
}

/// RPM's rpmvercmp (also used for Arch and as the generic order): alternating runs of digits and letters,
/// digits compared as numbers and newer than letters, `~` sorting before anything (pre-releases).
pub fn rpm_version_cmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut one, mut two) = (a.as_bytes(), b.as_bytes());
    let separator = |c: &u8| !c.is_ascii_alphanumeric() && *c != b'~';
    loop {
        while one.first().is_some_and(separator) {
            one = &one[1..];
        }
        while two.first().is_some_and(separator) {
            two = &two[1..];
        }
        match (one.first() == Some(&b'~'), two.first() == Some(&b'~')) {
            (true, true) => {
                one = &one[1..];
                two = &two[1..];
                continue;
            }
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        if one.is_empty() || two.is_empty() {
            break;
        }
        let numeric = one[0].is_ascii_digit();
        let run = |s: &[u8]| {
            s.iter().take_while(|c| if numeric { c.is_ascii_digit() } else { c.is_ascii_alphabetic() }).count()
        };
        let (n1, n2) = (run(one), run(two));
        let (seg1, seg2) = (&one[..n1], &two[..n2]);
        if seg2.is_empty() {
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        let ordering = if numeric {
            let strip = |s: &[u8]| -> Vec<u8> { s.iter().skip_while(|c| **c == b'0').copied().collect() };
            let (s1, s2) = (strip(seg1), strip(seg2));
            s1.len().cmp(&s2.len()).then_with(|| s1.cmp(&s2))
        } else {
            seg1.cmp(seg2)
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
        one = &one[n1..];
        two = &two[n2..];
    }
    match (one.is_empty(), two.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

/// dpkg's version order: `epoch:upstream-revision`, each part by dpkg's verrevcmp.
pub fn dpkg_version_cmp(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, rest)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), rest),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((upstream, revision)) => (epoch, upstream, revision),
            None => (epoch, rest, ""),
        }
    }
    let (e1, u1, r1) = split(a.trim());
    let (e2, u2, r2) = split(b.trim());
    e1.cmp(&e2).then_with(|| verrevcmp(u1, u2)).then_with(|| verrevcmp(r1, r2))
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    fn order(c: Option<&u8>) -> i32 {
        match c {
            None => 0,
            Some(c) if c.is_ascii_digit() => 0,
            Some(c) if c.is_ascii_alphabetic() => *c as i32,
            Some(b'~') => -1,
            Some(c) => *c as i32 + 256,
        }
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        while a.first().is_some_and(|c| !c.is_ascii_digit()) || b.first().is_some_and(|c| !c.is_ascii_digit()) {
            let (ac, bc) = (order(a.first()), order(b.first()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            a = a.get(1..).unwrap_or(&[]);
            b = b.get(1..).unwrap_or(&[]);
        }
        while a.first() == Some(&b'0') {
            a = &a[1..];
        }
        while b.first() == Some(&b'0') {
            b = &b[1..];
        }
        let mut first_diff = Ordering::Equal;
        while a.first().is_some_and(u8::is_ascii_digit) && b.first().is_some_and(u8::is_ascii_digit) {
            if first_diff == Ordering::Equal {
                first_diff = a[0].cmp(&b[0]);
            }
            a = &a[1..];
            b = &b[1..];
        }
        if a.first().is_some_and(u8::is_ascii_digit) {
            return Ordering::Greater;
        }
        if b.first().is_some_and(u8::is_ascii_digit) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn rpm_order() {
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0", Greater),
            ("1.10", "1.9", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("5.5p1", "5.5p10", Less),
            ("1.002", "1.2", Equal),
            ("a", "1", Less),
        ] {
            assert_eq!(rpm_version_cmp(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn dpkg_order() {
        for (a, b, want) in [
            ("1.0-1", "1.0-1", Equal),
            ("1:1.0", "2.0", Greater),
            ("1.0~beta1", "1.0", Less),
            ("1.0-1ubuntu1", "1.0-1", Greater),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("3.0.11-1~deb12u2", "3.0.11-1", Less),
            ("1.2.3", "1.2.3a", Less),
        ] {
            assert_eq!(dpkg_version_cmp(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn cidr() {
        assert_eq!(in_cidr_block("10.0.0.0/8", "10.1.2.3"), Some(true));
        assert_eq!(in_cidr_block("10.0.0.0/8", "11.0.0.1"), Some(false));
        assert_eq!(in_cidr_block("0.0.0.0/0", "8.8.8.8"), Some(true));
        assert_eq!(in_cidr_block("fd00::/8", "fd12::1"), Some(true));
        assert_eq!(in_cidr_block("10.0.0.0/8", "fd12::1"), Some(false));
        assert_eq!(in_cidr_block("nonsense", "10.0.0.1"), None);
    }
}
