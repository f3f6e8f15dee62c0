//! Random tokens, their stored hashes, password hashing and constant-time comparison.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A random token of `bytes` bytes, hex-encoded. Node keys, session tokens and generated secrets are 32 bytes
/// (256 bits): unguessable, so a fast hash is enough to store them.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    hex::encode(buf)
}

/// What the database keeps of a node key or session token: its SHA-256, so a leaked database does not
/// let anyone check in as a host or act as a user.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A password that satisfies herd's rule (12+ characters, a digit, a symbol), for bootstrap and resets:
/// 96 random bits as three groups of hex digits joined by `-`. Only characters no shell treats specially,
/// even inside double quotes (a `!` there is bash's history expansion), so it can be pasted as printed.
pub fn generate_password() -> String {
    loop {
        let password = format!("{}-{}-{}", random_token(4), random_token(4), random_token(4));
        // The `-` is the symbol; a digit is all but certain in 24 hex digits, and checked.
        if password.chars().any(|c| c.is_ascii_digit()) {
            return password;
        }
    }
}

pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes).expect("the operating system's random source failed");
    let salt = SaltString::encode_b64(&salt_bytes)?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash of a password nobody has, verified against when the email is unknown, so a login takes as long
/// for a missing user as for a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_token(16)).expect("argon2 with default parameters"))
}

/// Constant-time equality of two secrets (their lengths may leak, their contents do not).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        let a = random_token(32);
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_token(32));
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn passwords() {
        let password = generate_password();
        herd_core::validate::password(&password).unwrap();
        let hash = hash_password(&password).unwrap();
        assert!(verify_password(&password, &hash));
        assert!(!verify_password("wrong-password-1!", &hash));
        assert!(!verify_password(&password, "not a hash"));
    }

    #[test]
    fn generated_passwords_paste_into_a_shell() {
        for _ in 0..200 {
            let password = generate_password();
            herd_core::validate::password(&password).unwrap();
            assert!(password.len() >= 26, "{password}");
            let special = password.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-'));
            assert_eq!(special, None, "{password}: only characters no shell expands, even in double quotes");
        }
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
    }
}
