//! Validation rules for values admins type in. Each returns a lower-case reason that the REST layer puts in
//! Fleet's error shape, naming the field.

/// Fleet's password rule: at least 12 characters, one digit, one symbol. Long enough that argon2 is not the
/// only thing between an attacker and an account.
pub fn password(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < 12 {
        return Err("password must be at least 12 characters long");
    }
    if password.chars().count() > 256 {
        return Err("password must be at most 256 characters long");
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        return Err("password must contain a number");
    }
    if !password.chars().any(|c| !c.is_alphanumeric()) {
        return Err("password must contain a symbol");
    }
    Ok(())
}

pub fn email(email: &str) -> Result<(), &'static str> {
    let email = email.trim();
    let Some((local, domain)) = email.split_once('@') else {
        return Err("email must contain @");
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') || email.len() > 254 {
        return Err("email is not a valid address");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("email must not contain spaces");
    }
    Ok(())
}

/// Enroll secrets are typed into flag files and MDM profiles: printable, no spaces, long enough to resist
/// guessing.
pub fn enroll_secret(secret: &str) -> Result<(), &'static str> {
    if secret.len() < 8 {
        return Err("enroll secret must be at least 8 characters long");
    }
    if secret.len() > 255 {
        return Err("enroll secret must be at most 255 characters long");
    }
    if !secret.chars().all(|c| c.is_ascii_graphic()) {
        return Err("enroll secret must be printable ascii without spaces");
    }
    Ok(())
}

/// Longest name accepted, in characters (after trimming).
pub const MAX_NAME_CHARS: usize = 255;

/// What a name is used as, which decides how strict its rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// Shown to people: teams, users, policies, profiles.
    Display,
    /// Also used as a file name (scripts, profile identifiers): no path separators, not `.` or `..`.
    File,
}

/// Characters that are not controls (`char::is_control`) but still rewrite how the text around them reads:
/// bidirectional embeddings, overrides, isolates and marks (U+202E makes `evil\u{202E}hs.exe` read as
/// `evilexe.sh`), invisible separators and zero-width characters that make two different names look alike,
/// and line and paragraph separators.
fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            | '\u{2028}' | '\u{2029}' | '\u{2060}' | '\u{FEFF}'
    )
}

/// The one rule for names typed in by admins (teams, users, policies, scripts, profiles, at every way in):
/// trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control, bidirectional-override or invisible formatting
/// characters, and for [`NameKind::File`] no path separators and not `.` or `..`. Returns the trimmed name,
/// which is what callers store.
pub fn name(text: &str, kind: NameKind) -> Result<&str, &'static str> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("must not be empty");
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err("must be at most 255 characters long");
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    if trimmed.chars().any(is_deceptive) {
        return Err("must not contain bidirectional-override or invisible formatting characters");
    }
    if kind == NameKind::File {
        if trimmed.contains(['/', '\\']) {
            return Err("must not contain / or \\ (a file name, not a path)");
        }
        if trimmed == "." || trimmed == ".." {
            return Err("must not be . or ..");
        }
    }
    Ok(trimmed)
}

/// [`name`] for names only shown to people.
pub fn display_name(text: &str) -> Result<(), &'static str> {
    name(text, NameKind::Display).map(|_| ())
}

/// Shortest device token accepted: Fleet's orbit sends a UUID (36 characters), herd-agent 64 hex digits.
pub const MIN_DEVICE_TOKEN_LEN: usize = 32;
pub const MAX_DEVICE_TOKEN_LEN: usize = 256;
/// Least information a device token must show, in bits, estimated from its own character frequencies.
/// Random UUIDs measure above 105 (version and dashes included), 32 random hex digits above 90; a token
/// made of a few repeated characters measures far below.
const MIN_DEVICE_TOKEN_BITS: f64 = 80.0;

/// A device token is the only credential of the device endpoints and the My Device page, so it must be hard
/// to guess: 32 to 256 characters of letters, digits, `-` and `_`, and not obviously made up — a crude check
/// refuses too little variety (estimated entropy), a repeated block, or a run of consecutive characters
/// (`abcdef…`, `0123…`).
pub fn device_token(token: &str) -> Result<(), &'static str> {
    let bytes = token.as_bytes();
    if !(MIN_DEVICE_TOKEN_LEN..=MAX_DEVICE_TOKEN_LEN).contains(&bytes.len()) {
        return Err("device token must be 32 to 256 characters long");
    }
    if !bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_') {
        return Err("device token must contain only letters, digits, - and _");
    }
    let mut counts = [0u32; 128];
    for b in bytes {
        counts[*b as usize] += 1;
    }
    let n = bytes.len() as f64;
    let bits: f64 = counts.iter().filter(|c| **c > 0).map(|c| *c as f64 / n).map(|p| -p * p.log2() * n).sum();
    if bits < MIN_DEVICE_TOKEN_BITS {
        return Err("device token is too predictable: use a random token (e.g. a UUID)");
    }
    // The shortest period: a token that repeats a block of half its length or less.
    let repeats = (1..=bytes.len() / 2).any(|p| bytes.iter().zip(&bytes[p..]).all(|(a, b)| a == b));
    let consecutive = bytes.windows(2).filter(|w| w[0].abs_diff(w[1]) == 1).count();
    if repeats || consecutive * 2 > bytes.len() - 1 {
        return Err("device token is too predictable: use a random token (e.g. a UUID)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        assert!(password("correct-horse-1").is_ok());
        assert!(password("short-1").is_err());
        assert!(password("nodigitsherebutlong!").is_err());
        assert!(password("nosymbols12345678").is_err());
    }

    #[test]
    fn emails() {
        assert!(email("admin@herd.local").is_ok());
        for bad in ["", "admin", "@x", "a@", "a b@c", "a@b@c"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets() {
        assert!(enroll_secret("s3cr3t-value").is_ok());
        assert!(enroll_secret("short").is_err());
        assert!(enroll_secret("has space inside").is_err());
        assert!(enroll_secret(&"x".repeat(256)).is_err());
    }

    #[test]
    fn names() {
        assert!(display_name("Workstations").is_ok());
        assert!(display_name("   ").is_err());
        assert!(display_name("a\u{0}b").is_err());
        assert!(display_name("'; DROP TABLE hosts; --").is_ok());
        assert_eq!(name("  Laptops ", NameKind::Display), Ok("Laptops"));
        assert_eq!(name("Café ☕ 東京", NameKind::Display), Ok("Café ☕ 東京"));
        assert!(name(&"é".repeat(255), NameKind::Display).is_ok());
        assert!(name(&"é".repeat(256), NameKind::Display).is_err());
        for bad in
            ["evil\u{202E}hs.exe", "a\u{2066}b", "x\u{200F}", "a\u{200B}dmin", "tab\there", "new\nline", "\u{1b}[31m"]
        {
            assert!(name(bad, NameKind::Display).is_err(), "{bad:?}");
        }
        assert_eq!(name("fix-disk.sh", NameKind::File), Ok("fix-disk.sh"));
        assert_eq!(name("a/b", NameKind::Display), Ok("a/b"), "a policy may be called a/b");
        for bad in ["../../etc/cron.d/x.sh", "a\\b.ps1", "..", ".", "/x.sh"] {
            assert!(name(bad, NameKind::File).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn device_tokens() {
        for good in ["0b8c7e36-6f35-4a7e-9d0e-2f2f8f4c9a51", "C5A7B0D2-9E1F-4C3B-8A6D-7F2E1B0C9D8A"] {
            assert_eq!(device_token(good), Ok(()), "orbit's uuid.NewString(): {good}");
        }
        assert_eq!(
            device_token("6d1f0c8e9b2a4f7e8c3d5a1b0e9f8d7c6b5a4e3d2c1b0a9f8e7d6c5b4a3f2e1d"),
            Ok(()),
            "herd-agent: 64 hex digits"
        );
        assert!(device_token(&"3fa85f64c6a14f0e8b1e0c2d9a7b5e41".repeat(2)).is_err(), "one block twice");
        assert_eq!(device_token("a1b2c3d4e5f60718293a4b5c6d7e8f90"), Ok(()));
        for (bad, why) in [
            ("aaaaaaaaaaaaaaaa", "16 characters"),
            (&"a".repeat(40) as &str, "one character"),
            ("abababababababababababababababab", "two characters"),
            ("q8Zk3mP1q8Zk3mP1q8Zk3mP1q8Zk3mP1", "a repeated block"),
            ("0123456789abcdef0123456789abcdef", "counting"),
            ("abcdefghijklmnopqrstuvwxyz012345", "the alphabet"),
            ("00000000-0000-4000-8000-000000000000", "a nil-like uuid"),
            ("0b8c7e36-6f35-4a7e-9d0e-2f2f8f4c9a51/", "a slash"),
            ("0b8c7e36 6f35 4a7e 9d0e 2f2f8f4c9a51", "spaces"),
        ] {
            assert!(device_token(bad).is_err(), "{why}: {bad}");
        }
        assert!(device_token(&"x".repeat(257)).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5_000))]

        #[test]
        fn every_random_uuid_is_a_good_device_token(
            token in "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
        ) {
            proptest::prop_assert_eq!(device_token(&token), Ok(()));
            proptest::prop_assert_eq!(device_token(&token.to_uppercase()), Ok(()));
        }

        #[test]
        fn every_random_hex_token_is_a_good_device_token(token in "[0-9a-f]{64}") {
            proptest::prop_assert_eq!(device_token(&token), Ok(()));
        }
    }
}
