//! certificates: the certificates of PEM bundles, as osquery reads them on Linux — by default the system CA
//! bundles /etc/pki/tls/certs/ca-bundle.crt (Red Hat) and /etc/ssl/certs/ca-certificates.crt (Debian); a `path`
//! constraint names other bundles instead (osquery's `path` is an `additional` column). Missing or unreadable
//! files, and PEM blocks that are not certificates, give no rows; a certificate that does not parse is skipped.
//!
//! Columns, as osquery computes them with OpenSSL:
//! - `path` the bundle; `common_name` the subject's first CN (`""` without one).
//! - `subject`, `issuer`: OpenSSL's one-line form (X509_NAME_oneline, `openssl -nameopt compat`):
//!   `/C=US/O=Org/CN=Name`, OpenSSL's short names (dotted OIDs for others), `/` in a value as `\/` and bytes
//!   outside printable ASCII as `\xHH` (OpenSSL 3's escapes).
//! - `ca`: 1 when OpenSSL's X509_check_ca would say so — basicConstraints CA:TRUE, or without basicConstraints
//!   a keyUsage with keyCertSign, or a self-issued version 1 certificate; `self_signed`: 1 when the issuer is
//!   the subject, the authority key identifier (if any) is the subject key identifier and the key usage (if
//!   any) allows certificate signing (X509_check_issued of the certificate with itself).
//! - `not_valid_before`, `not_valid_after`: Unix seconds.
//! - `signing_algorithm`, `key_algorithm`: OpenSSL's long names (`sha256WithRSAEncryption`, `rsaEncryption`,
//!   `id-ecPublicKey`; dotted OIDs for others); `key_strength`: RSA and DSA key bits, an EC key's curve
//!   (`prime256v1`, `secp384r1`, `secp521r1`), `""` otherwise.
//! - `key_usage`: the key usage bits with osquery's names in osquery's order (`Encipher Only`, `CRL Sign`,
//!   `Key Cert Sign`, `Key Agreement`, `Data Encipherment`, `Key Encipherment`, `Non Repudiation`, `Digital
//!   Signature`, `Decipher Only`), joined with `, `; `""` without the extension.
//! - `subject_key_id`, `authority_key_id`, `sha1` (of the DER certificate): lowercase hex; `serial`: OpenSSL's
//!   uppercase hex.
//! - NULL: `subject2` and `issuer2` (osquery's newer name format, whose exact OpenSSL print flags herd does
//!   not reproduce — rather no value than a differently spelled one); the Windows store columns.

use super::curl::serial_hex;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use md5::Digest as _;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::x509::X509Name;

const BUNDLES: &[&str] = &["/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt"];
/// Largest bundle read.
const MAX_BUNDLE: u64 = 64 << 20;

/// OpenSSL's short name of a name attribute.
fn attribute_short_name(oid: &str) -> String {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        other => return other.to_string(),
    }
    .to_string()
}

/// X509_NAME_oneline: `/KEY=value` per attribute, unprintable bytes as `\xHH`. For BMPString and
/// UniversalString values whose high bytes are all zero, OpenSSL prints the low bytes alone.
fn oneline(name: &X509Name<'_>) -> String {
    let mut text = String::new();
    for attribute in name.iter_attributes() {
        let value = attribute.attr_value();
        let mut bytes: Vec<u8> = value.data.to_vec();
        let width = match value.tag() {
            x509_parser::asn1_rs::Tag::BmpString => 2,
            x509_parser::asn1_rs::Tag::UniversalString => 4,
            _ => 1,
        };
        if width > 1
            && bytes.len().is_multiple_of(width)
            && bytes.chunks(width).all(|c| c[..width - 1].iter().all(|b| *b == 0))
        {
            bytes = bytes.chunks(width).map(|c| c[width - 1]).collect();
        }
        text.push('/');
        text.push_str(&attribute_short_name(&attribute.attr_type().to_id_string()));
        text.push('=');
        for byte in bytes {
            if byte == b'/' {
                // OpenSSL 3 escapes the separator inside a value.
                text.push_str("\\/");
            } else if (b' '..=b'~').contains(&byte) {
                text.push(byte as char);
            } else {
                text.push_str(&format!("\\x{byte:02X}"));
            }
        }
    }
    text
}

/// OpenSSL's long names of the usual algorithms.
fn algorithm_long_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.1" => "rsaEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.2.840.10045.2.1" => "id-ecPublicKey",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10040.4.1" => "dsaEncryption",
        "1.2.840.10040.4.3" => "dsaWithSHA1",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        other => return other.to_string(),
    }
    .to_string()
}

fn curve_name(oid: &str) -> String {
    match oid {
        "1.2.840.10045.3.1.7" => "prime256v1",
        "1.3.132.0.34" => "secp384r1",
        "1.3.132.0.35" => "secp521r1",
        "1.3.132.0.10" => "secp256k1",
        other => return other.to_string(),
    }
    .to_string()
}

fn key_strength(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    match (algorithm.as_str(), spki.parsed()) {
        (_, Ok(x509_parser::public_key::PublicKey::RSA(rsa))) => {
            let modulus: Vec<&u8> = rsa.modulus.iter().skip_while(|b| **b == 0).collect();
            (modulus.len() * 8).to_string()
        }
        ("1.2.840.10045.2.1", _) => spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|oid| curve_name(&oid.to_id_string()))
            .unwrap_or_default(),
        (_, Ok(x509_parser::public_key::PublicKey::DSA(y))) => {
            (y.iter().skip_while(|b| **b == 0).count() * 8).to_string()
        }
        _ => String::new(),
    }
}

/// osquery's key usage names, in its order.
fn key_usage_names(ku: &x509_parser::extensions::KeyUsage) -> String {
    let names = [
        (ku.encipher_only(), "Encipher Only"),
        (ku.crl_sign(), "CRL Sign"),
        (ku.key_cert_sign(), "Key Cert Sign"),
        (ku.key_agreement(), "Key Agreement"),
        (ku.data_encipherment(), "Data Encipherment"),
        (ku.key_encipherment(), "Key Encipherment"),
        (ku.non_repudiation(), "Non Repudiation"),
        (ku.digital_signature(), "Digital Signature"),
        (ku.decipher_only(), "Decipher Only"),
    ];
    names.iter().filter(|(set, _)| *set).map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
}

/// One certificate's row.
pub(crate) fn certificate_row(der: &[u8], path: &str) -> Option<Row> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let (mut basic_ca, mut key_usage, mut skid, mut akid) = (None, None, None, None);
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => basic_ca = Some(bc.ca),
            ParsedExtension::KeyUsage(ku) => key_usage = Some(*ku),
            ParsedExtension::SubjectKeyIdentifier(id) => skid = Some(hex::encode(id.0)),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                akid = aki.key_identifier.as_ref().map(|id| hex::encode(id.0))
            }
            _ => {}
        }
    }
    let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
    let can_sign = key_usage.as_ref().is_none_or(|ku| ku.key_cert_sign());
    let self_signed = self_issued && can_sign && (akid.is_none() || skid.is_none() || akid == skid);
    let ca = match basic_ca {
        Some(ca) => ca,
        None => key_usage.as_ref().is_some_and(|ku| ku.key_cert_sign()) || (cert.version().0 == 0 && self_issued),
    };
    let common_name =
        cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default().to_string();
    let validity = cert.validity();
    Some(Row::from([
        ("path", Value::text(path)),
        ("common_name", Value::text(common_name)),
        ("subject", Value::text(oneline(cert.subject()))),
        ("issuer", Value::text(oneline(cert.issuer()))),
        ("ca", Value::Int(ca as i64)),
        ("self_signed", Value::Int(self_signed as i64)),
        ("not_valid_before", Value::text(validity.not_before.timestamp().to_string())),
        ("not_valid_after", Value::text(validity.not_after.timestamp().to_string())),
        ("signing_algorithm", Value::text(algorithm_long_name(&cert.signature_algorithm.algorithm.to_id_string()))),
        ("key_algorithm", Value::text(algorithm_long_name(&cert.public_key().algorithm.algorithm.to_id_string()))),
        ("key_strength", Value::text(key_strength(&cert))),
        ("key_usage", Value::text(key_usage.as_ref().map(key_usage_names).unwrap_or_default())),
        ("subject_key_id", Value::text(skid.unwrap_or_default())),
        ("authority_key_id", Value::text(akid.unwrap_or_default())),
        ("sha1", Value::text(hex::encode(sha1::Sha1::digest(der)))),
        ("serial", Value::text(serial_hex(cert.raw_serial()))),
    ]))
}

pub struct Certificates;

impl Table for Certificates {
    fn name(&self) -> &'static str {
        "certificates"
    }
    fn description(&self) -> &'static str {
        "Certificate Authorities installed in Keychains/ca-bundles."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("common_name"),
            Column::text("subject"),
            Column::text("subject2"),
            Column::text("issuer"),
            Column::text("issuer2"),
            Column::int("ca"),
            Column::int("self_signed"),
            Column::text("not_valid_before"),
            Column::text("not_valid_after"),
            Column::text("signing_algorithm"),
            Column::text("key_algorithm"),
            Column::text("key_strength"),
            Column::text("key_usage"),
            Column::text("subject_key_id"),
            Column::text("authority_key_id"),
            Column::text("sha1"),
            Column::text("path").index(),
            Column::text("serial"),
            Column::text("sid").hidden(),
            Column::text("store_location").hidden(),
            Column::text("store").hidden(),
            Column::text("username").hidden(),
            Column::text("store_id").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let paths: Vec<String> = if constraints.equals.contains_key("path") {
            constraints.texts("path")
        } else {
            BUNDLES.iter().map(|p| p.to_string()).collect()
        };
        let mut rows = Vec::new();
        for path in paths {
            if std::fs::metadata(&path).map(|m| !m.is_file() || m.len() > MAX_BUNDLE).unwrap_or(true) {
                continue;
            }
            let Ok(file) = std::fs::File::open(&path) else { continue };
            let mut reader = std::io::BufReader::new(file);
            for der in rustls_pemfile::certs(&mut reader).flatten() {
                rows.extend(certificate_row(&der, &path));
            }
        }
        Ok(rows)
    }
}
