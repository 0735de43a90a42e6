//! Argon2id password hashes (PHC strings), computed off the async threads.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};

/// Shortest password accepted.
pub const MIN_PASSWORD_LENGTH: usize = 10;
/// Longest password accepted (hashing a megabyte would be a cheap denial of service).
pub const MAX_PASSWORD_LENGTH: usize = 1024;

/// Passwords of ten characters or more that lists of leaked passwords are full of.
const COMMON: &[&str] = &[
    "password123",
    "password1234",
    "password12345",
    "password123456",
    "passwordpassword",
    "1234567890",
    "12345678910",
    "123456789a",
    "1234567890a",
    "qwertyuiop",
    "qwertyuiop123",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "iloveyou123",
    "abcdefghij",
    "letmein123",
    "welcome123",
    "administrator",
    "admin12345",
    "changeme123",
    "football123",
    "baseball123",
    "superman123",
    "princess123",
    "minecraft123",
    "qwerty123456",
    "asdfghjkl123",
    "zaq12wsxcde",
];

/// Rows of keys and runs of letters and digits that people type as "a password".
const SEQUENCES: &[&str] =
    &["abcdefghijklmnopqrstuvwxyz", "0123456789012345678901234567890", "qwertyuiopasdfghjklzxcvbnm"];

/// Why a password is not acceptable, for people: too short or long, too few different
/// characters, a run of letters or keys, one of the most common passwords, or made of the
/// account's own name (`context`: the email address).
pub fn weakness(password: &str, context: &[&str]) -> Option<String> {
    let length = password.chars().count();
    let lower = password.to_lowercase();
    let distinct = lower.chars().collect::<std::collections::BTreeSet<_>>().len();
    let reversed: String = lower.chars().rev().collect();
    let sequence = SEQUENCES.iter().any(|run| run.contains(&lower) || run.contains(&reversed));
    let personal = context
        .iter()
        .filter_map(|text| text.split('@').next())
        .filter(|name| name.chars().count() >= 4)
        .any(|name| lower.contains(&name.to_lowercase()));
    if length < MIN_PASSWORD_LENGTH {
        Some(format!("the password needs at least {MIN_PASSWORD_LENGTH} characters"))
    } else if password.len() > MAX_PASSWORD_LENGTH {
        Some(format!("the password may have at most {MAX_PASSWORD_LENGTH} bytes"))
    } else if distinct < 5 || sequence {
        Some("the password is too easy to guess: use more different characters, or a few words".into())
    } else if COMMON.contains(&lower.as_str()) {
        Some("that is one of the most common passwords; choose another".into())
    } else if personal {
        Some("the password contains your email's name; choose another".into())
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
        assert!(weakness("short", &[]).is_some());
        assert!(weakness(&"x".repeat(2000), &[]).is_some());
        assert_eq!(weakness("long enough password", &[]), None);
        for weak in [
            "aaaaaaaaaa",
            "1111111111",
            "1212121212",
            "0123456789",
            "9876543210",
            "qwertyuiop",
            "Password123",
        ] {
            assert!(weakness(weak, &[]).is_some(), "{weak}");
        }
        assert!(weakness("margaret the great", &["margaret@example.com"]).is_some());
    }
}
