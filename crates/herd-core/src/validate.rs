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

/// Names of teams and users: non-empty after trimming, bounded, no control characters.
pub fn display_name(name: &str) -> Result<(), &'static str> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err("must not be empty");
    }
    if trimmed.chars().count() > 255 {
        return Err("must be at most 255 characters long");
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters");
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
    }
}
