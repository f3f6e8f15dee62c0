//! curl and curl_certificate: osquery's tables that ask a server — an HTTP GET, and the certificate a TLS
//! server presents. Both are bounded: each request or handshake ends within 15 seconds (curl_certificate:
//! its `timeout`, default 4) and within the time left to the query; curl keeps at most 1 MiB of a body.
//!
//! curl (osquery's columns): `url` as given (required; LIKE is not supported, as in osquery), `method` GET,
//! `user_agent` the constraint's (one only: several give no rows, as in osquery) or `osquery`;
//! `response_code` the HTTP status, `round_trip_time` microseconds from before connecting to the end of the
//! body, `bytes` the body's size, `result` the body (as text; invalid UTF-8 replaced). http and https (trusting
//! the system CA bundle); redirects are not followed; chunked bodies are decoded. A request that fails
//! (unresolvable, refused, timed out, untrusted certificate, bad response) still gives its row with
//! `response_code`, `round_trip_time`, `bytes` and `result` NULL, as osquery does. A body over 1 MiB is cut
//! there (`bytes` counts what was kept).
//!
//! curl_certificate: `hostname` as given (`host` or `host:port`, port 443 by default). The peer certificate
//! of a TLS handshake that accepts any certificate (as osquery's, which does not verify either), with
//! osquery's (OpenSSL's) formats: names' first CN/O/OU, `serial_number` uppercase hex, `valid_from`/`valid_to`
//! as `Mon DD HH:MM:SS YYYY GMT`, fingerprints lowercase hex, `signature` colon-separated hex,
//! `signature_algorithm` OpenSSL's short name, extensions as `openssl x509 -text` prints them (lines joined
//! with `;`), `""` when absent. `timeout` (hidden) is the read timeout in seconds (default 4) and
//! `dump_certificate` (hidden) 1 to fill `pem`. Extensions this module does not format — `policies`,
//! `issuer_alternative_names`, `info_access`, `subject_info_access`, `policy_mappings`, `name_constraints`,
//! `policy_constraints` — are `""` when absent and NULL when present. A host that cannot be reached gives no
//! row, as in osquery.

use super::net;
use crate::engine::time_left;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Longest one request or handshake may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(15);
/// Largest body kept.
const MAX_BODY: usize = 1 << 20;
/// Largest response head read.
const MAX_HEAD: usize = 64 << 10;

pub struct Curl;

struct Response {
    status: u16,
    body: Vec<u8>,
}

fn read_capped(stream: &mut dyn Read, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 16 << 10];
    while data.len() < limit {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buffer[..n]),
            // A TLS peer that closes without close_notify has still sent everything.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok(data)
}

/// A chunked body's content, as far as it goes.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16) else { break };
        if size == 0 {
            break;
        }
        let start = end + 2;
        let stop = (start + size).min(data.len());
        out.extend_from_slice(&data[start..stop]);
        if stop + 2 > data.len() {
            break;
        }
        data = &data[stop + 2..];
    }
    out
}

fn parse_response(data: &[u8]) -> Option<Response> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = response.parse(data).ok()? else { return None };
    let status = response.code?;
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let raw = &data[head..];
    let mut body = if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        dechunk(raw)
    } else if let Some(length) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        raw[..length.min(raw.len())].to_vec()
    } else {
        raw.to_vec()
    };
    body.truncate(MAX_BODY);
    Some(Response { status, body })
}

fn get(url: &str, user_agent: &str, deadline: Instant) -> Option<Response> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_string();
    let port = parsed.port_or_known_default()?;
    let mut target = parsed.path().to_string();
    if let Some(query) = parsed.query() {
        target = format!("{target}?{query}");
    }
    let host_header = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let stream = net::connect(&host, port, deadline).ok()?;
    let data = match parsed.scheme() {
        "http" => {
            let mut stream = stream;
            stream.write_all(request.as_bytes()).ok()?;
            read_capped(&mut stream, MAX_HEAD + MAX_BODY).ok()?
        }
        "https" => {
            let mut session = net::tls(net::verifying_config()?, &host, stream).ok()?;
            session.write_all(request.as_bytes()).ok()?;
            read_capped(&mut session, MAX_HEAD + MAX_BODY).ok()?
        }
        _ => return None,
    };
    parse_response(&data)
}

impl Table for Curl {
    fn name(&self) -> &'static str {
        "curl"
    }
    fn description(&self) -> &'static str {
        "Perform an http request and return stats about it."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("url").required(),
            Column::text("method"),
            Column::text("user_agent").index(),
            Column::int("response_code"),
            Column::bigint("round_trip_time"),
            Column::bigint("bytes"),
            Column::text("result"),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let agents = constraints.texts("user_agent");
        if agents.len() > 1 {
            return Ok(Vec::new());
        }
        let user_agent = agents.first().cloned().unwrap_or_else(|| "osquery".into());
        let mut rows = Vec::new();
        for url in constraints.texts("url") {
            let mut row = Row::from([
                ("url", Value::text(url.as_str())),
                ("method", Value::text("GET")),
                ("user_agent", Value::text(user_agent.as_str())),
            ]);
            let started = Instant::now();
            let deadline = started + REQUEST_LIMIT.min(time_left());
            // A header value cannot hold a line break: such an agent sends nothing.
            let response = (!user_agent.contains(['\r', '\n'])).then(|| get(&url, &user_agent, deadline)).flatten();
            if let Some(response) = response {
                row.insert("response_code", Value::Int(response.status as i64));
                row.insert("round_trip_time", Value::Int(started.elapsed().as_micros() as i64));
                row.insert("bytes", Value::Int(response.body.len() as i64));
                row.insert("result", Value::text(String::from_utf8_lossy(&response.body).into_owned()));
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

pub struct CurlCertificate;

/// Read timeout when the query gives none (osquery's DEFAULT_READ_TIMEOUT).
const DEFAULT_CERTIFICATE_TIMEOUT: i64 = 4;

/// `host[:port]` as osquery splits it: at the first colon, 443 when no port follows.
fn host_and_port(hostname: &str) -> Option<(String, u16)> {
    match hostname.split_once(':') {
        None => Some((hostname.to_string(), 443)),
        Some((host, "")) => Some((host.to_string(), 443)),
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
    }
}

fn peer_certificate(hostname: &str, timeout: Duration) -> Option<Vec<u8>> {
    let (host, port) = host_and_port(hostname)?;
    let deadline = Instant::now() + timeout.min(REQUEST_LIMIT).min(time_left());
    let stream = net::connect(&host, port, deadline).ok()?;
    let session = net::tls(net::inspecting_config()?, &host, stream).ok()?;
    Some(session.conn.peer_certificates()?.first()?.as_ref().to_vec())
}

fn colon_hex(bytes: &[u8], upper: bool) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") }).collect();
    hex.join(":")
}

/// OpenSSL's BN_bn2hex of a serial: uppercase, leading zero bytes dropped, "0" for zero.
pub(crate) fn serial_hex(raw: &[u8]) -> String {
    let digits: String = raw.iter().skip_while(|b| **b == 0).map(|b| format!("{b:02X}")).collect();
    if digits.is_empty() { "0".into() } else { digits }
}

/// OpenSSL's ASN1_TIME_print: `Nov  9 18:00:00 2026 GMT`.
fn asn1_time(timestamp: i64) -> Option<String> {
    let time = chrono::DateTime::<chrono::Utc>::from_timestamp(timestamp, 0)?;
    Some(time.format("%b %e %H:%M:%S %Y GMT").to_string())
}

/// OpenSSL's short names of the usual signature algorithms.
fn signature_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.4" => "RSA-MD5",
        "1.2.840.113549.1.1.5" => "RSA-SHA1",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.2.840.113549.1.1.11" => "RSA-SHA256",
        "1.2.840.113549.1.1.12" => "RSA-SHA384",
        "1.2.840.113549.1.1.13" => "RSA-SHA512",
        "1.2.840.113549.1.1.14" => "RSA-SHA224",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        other => return other.to_string(),
    }
    .to_string()
}

fn general_name(name: &x509_parser::extensions::GeneralName<'_>) -> String {
    use x509_parser::extensions::GeneralName as G;
    match name {
        G::DNSName(d) => format!("DNS:{d}"),
        G::RFC822Name(e) => format!("email:{e}"),
        G::URI(u) => format!("URI:{u}"),
        G::IPAddress(ip) => match ip.len() {
            4 => format!("IP Address:{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]),
            16 => {
                let groups: Vec<String> =
                    ip.chunks(2).map(|g| format!("{:X}", u16::from_be_bytes([g[0], g[1]]))).collect();
                format!("IP Address:{}", groups.join(":"))
            }
            _ => "IP Address:<invalid>".into(),
        },
        G::DirectoryName(n) => format!("DirName:{n}"),
        G::RegisteredID(oid) => format!("Registered ID:{oid}"),
        _ => "othername:<unsupported>".into(),
    }
}

fn key_usage(ku: &x509_parser::extensions::KeyUsage) -> String {
    let names = [
        (ku.digital_signature(), "Digital Signature"),
        (ku.non_repudiation(), "Non Repudiation"),
        (ku.key_encipherment(), "Key Encipherment"),
        (ku.data_encipherment(), "Data Encipherment"),
        (ku.key_agreement(), "Key Agreement"),
        (ku.key_cert_sign(), "Certificate Sign"),
        (ku.crl_sign(), "CRL Sign"),
        (ku.encipher_only(), "Encipher Only"),
        (ku.decipher_only(), "Decipher Only"),
    ];
    names.iter().filter(|(set, _)| *set).map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
}

fn extended_key_usage(eku: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> String {
    let mut names: Vec<String> = [
        (eku.server_auth, "TLS Web Server Authentication"),
        (eku.client_auth, "TLS Web Client Authentication"),
        (eku.code_signing, "Code Signing"),
        (eku.email_protection, "E-mail Protection"),
        (eku.time_stamping, "Time Stamping"),
        (eku.ocsp_signing, "OCSP Signing"),
        (eku.any, "Any Extended Key Usage"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, n)| n.to_string())
    .collect();
    names.extend(eku.other.iter().map(|oid| oid.to_id_string()));
    names.join(", ")
}

fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = encoded.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

/// The row of a DER certificate, in osquery's formats.
pub(crate) fn certificate_row(der: &[u8], row: &mut Row) -> Option<()> {
    use md5::Digest as _;
    use x509_parser::extensions::ParsedExtension as P;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let first = |mut values: Box<dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>> + '_>| {
        values.next().and_then(|v| v.as_str().ok()).map(str::to_string)
    };
    let (subject, issuer) = (cert.subject(), cert.issuer());
    row.insert("common_name", Value::opt_text(first(Box::new(subject.iter_common_name()))));
    row.insert("organization", Value::opt_text(first(Box::new(subject.iter_organization()))));
    row.insert("organization_unit", Value::opt_text(first(Box::new(subject.iter_organizational_unit()))));
    row.insert("issuer_common_name", Value::opt_text(first(Box::new(issuer.iter_common_name()))));
    row.insert("issuer_organization", Value::opt_text(first(Box::new(issuer.iter_organization()))));
    row.insert("issuer_organization_unit", Value::opt_text(first(Box::new(issuer.iter_organizational_unit()))));
    row.insert("serial_number", Value::text(serial_hex(cert.raw_serial())));
    let validity = cert.validity();
    row.insert("valid_from", Value::opt_text(asn1_time(validity.not_before.timestamp())));
    row.insert("valid_to", Value::opt_text(asn1_time(validity.not_after.timestamp())));
    row.insert("sha256_fingerprint", Value::text(hex::encode(sha2::Sha256::digest(der))));
    row.insert("sha1_fingerprint", Value::text(hex::encode(sha1::Sha1::digest(der))));
    row.insert("version", Value::Int(cert.version().0 as i64 + 1));
    row.insert("signature_algorithm", Value::text(signature_name(&cert.signature_algorithm.algorithm.to_id_string())));
    row.insert("signature", Value::text(colon_hex(&cert.signature_value.data, false)));
    let formatted = [
        "subject_key_identifier",
        "authority_key_identifier",
        "key_usage",
        "extended_key_usage",
        "subject_alternative_names",
        "basic_constraint",
        "policies",
        "issuer_alternative_names",
        "info_access",
        "subject_info_access",
        "policy_mappings",
        "name_constraints",
        "policy_constraints",
    ];
    for column in formatted {
        row.insert(column, Value::text(""));
    }
    for extension in cert.extensions() {
        let (column, value) = match extension.parsed_extension() {
            P::SubjectKeyIdentifier(id) => ("subject_key_identifier", Some(colon_hex(id.0, true))),
            P::AuthorityKeyIdentifier(aki) => {
                let mut parts = Vec::new();
                if let Some(id) = &aki.key_identifier {
                    parts.push(colon_hex(id.0, true));
                }
                for name in aki.authority_cert_issuer.iter().flatten() {
                    parts.push(general_name(name));
                }
                if let Some(serial) = aki.authority_cert_serial {
                    parts.push(format!("serial:{}", colon_hex(serial, true)));
                }
                ("authority_key_identifier", Some(parts.join(";")))
            }
            P::KeyUsage(ku) => ("key_usage", Some(key_usage(ku))),
            P::ExtendedKeyUsage(eku) => ("extended_key_usage", Some(extended_key_usage(eku))),
            P::SubjectAlternativeName(san) => (
                "subject_alternative_names",
                Some(san.general_names.iter().map(general_name).collect::<Vec<_>>().join(", ")),
            ),
            P::BasicConstraints(bc) => {
                let mut text = format!("CA:{}", if bc.ca { "TRUE" } else { "FALSE" });
                if let Some(len) = bc.path_len_constraint {
                    text.push_str(&format!(", pathlen:{len}"));
                }
                ("basic_constraint", Some(text))
            }
            P::CertificatePolicies(_) => ("policies", None),
            P::IssuerAlternativeName(_) => ("issuer_alternative_names", None),
            P::AuthorityInfoAccess(_) => ("info_access", None),
            P::SubjectInfoAccess(_) => ("subject_info_access", None),
            P::PolicyMappings(_) => ("policy_mappings", None),
            P::NameConstraints(_) => ("name_constraints", None),
            P::PolicyConstraints(_) => ("policy_constraints", None),
            _ => continue,
        };
        row.insert(column, Value::opt_text(value));
    }
    let expired = validity.not_after.timestamp() <= chrono::Utc::now().timestamp();
    row.insert("has_expired", Value::Int(expired as i64));
    Some(())
}

impl Table for CurlCertificate {
    fn name(&self) -> &'static str {
        "curl_certificate"
    }
    fn description(&self) -> &'static str {
        "Inspect TLS certificates by connecting to input hostnames."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("hostname").required(),
            Column::text("common_name"),
            Column::text("organization"),
            Column::text("organization_unit"),
            Column::text("serial_number"),
            Column::text("issuer_common_name"),
            Column::text("issuer_organization"),
            Column::text("issuer_organization_unit"),
            Column::text("valid_from"),
            Column::text("valid_to"),
            Column::text("sha256_fingerprint"),
            Column::text("sha1_fingerprint"),
            Column::int("version"),
            Column::text("signature_algorithm"),
            Column::text("signature"),
            Column::text("subject_key_identifier"),
            Column::text("authority_key_identifier"),
            Column::text("key_usage"),
            Column::text("extended_key_usage"),
            Column::text("policies"),
            Column::text("subject_alternative_names"),
            Column::text("issuer_alternative_names"),
            Column::text("info_access"),
            Column::text("subject_info_access"),
            Column::text("policy_mappings"),
            Column::int("has_expired"),
            Column::text("basic_constraint"),
            Column::text("name_constraints"),
            Column::text("policy_constraints"),
            Column::int("dump_certificate").index().hidden(),
            Column::int("timeout").index().hidden(),
            Column::text("pem"),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let dump = constraints.ints("dump_certificate").contains(&1);
        let timeout =
            constraints.ints("timeout").first().copied().filter(|t| *t >= 0).unwrap_or(DEFAULT_CERTIFICATE_TIMEOUT);
        let limit = if timeout == 0 { REQUEST_LIMIT } else { Duration::from_secs(timeout as u64) };
        let mut rows = Vec::new();
        for hostname in constraints.texts("hostname") {
            let Some(der) = peer_certificate(&hostname, limit) else { continue };
            let mut row = Row::from([
                ("hostname", Value::text(hostname.as_str())),
                ("timeout", Value::Int(timeout)),
                ("dump_certificate", Value::Int(dump as i64)),
            ]);
            if certificate_row(&der, &mut row).is_none() {
                continue;
            }
            if dump {
                row.insert("pem", Value::text(pem(&der)));
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_parsed() {
        let plain = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more").unwrap();
        assert_eq!((plain.status, plain.body.as_slice()), (200, b"hello".as_slice()));
        let chunked = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((chunked.status, chunked.body.as_slice()), (404, b"Wikipedia".as_slice()));
        let until_close = parse_response(b"HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\nbody").unwrap();
        assert_eq!((until_close.status, until_close.body.as_slice()), (302, b"body".as_slice()));
        assert!(parse_response(b"garbage").is_none());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Le").is_none(), "a cut head is no response");
    }
}
