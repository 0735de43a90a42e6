//! Argon2id password hashes (PHC strings), computed off the async threads.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};

/// Shortest password accepted.
pub const MIN_PASSWORD_LENGTH: usize = 10;
/// Longest password accepted (hashing a megabyte would be a cheap denial of service).
pub const MAX_PASSWORD_LENGTH: usize = 1024;

/// Why a password is not acceptable, for people.
pub fn weakness(password: &str) -> Option<String> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LENGTH {
        Some(format!("the password needs at least {MIN_PASSWORD_LENGTH} characters"))
    } else if password.len() > MAX_PASSWORD_LENGTH {
        Some(format!("the password may have at most {MAX_PASSWORD_LENGTH} bytes"))
    } else {
        None
    }
}

/// Hashes a password with Argon2id and a random salt.
pub async fn hash(password: &str) -> String {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).expect("the operating system's random source failed");
        Argon2::default()
            .hash_password_with_salt(password.as_bytes(), &salt)
            .expect("Argon2 with default parameters cannot fail")
            .to_string()
    })
    .await
    .expect("the hashing task does not panic")
}

/// Checks a password against a PHC string. A malformed hash never matches.
pub async fn verify(password: &str, phc: &str) -> bool {
    let (password, phc) = (password.to_owned(), phc.to_owned());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let first = hash("correct horse battery").await;
        let second = hash("correct horse battery").await;
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second, "salted");
        assert!(verify("correct horse battery", &first).await);
        assert!(!verify("wrong horse battery", &first).await);
        assert!(!verify("anything", "not a hash").await);
    }

    #[test]
    fn weak_passwords_are_named() {
        assert!(weakness("short").is_some());
        assert!(weakness(&"x".repeat(2000)).is_some());
        assert_eq!(weakness("long enough password"), None);
    }
}
