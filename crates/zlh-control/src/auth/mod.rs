//! Accounts: password hashing, signed tokens, sessions, rate limiting, password resets,
//! two-factor codes.

pub mod mailer;
pub mod passwords;
pub mod rate_limit;
pub mod tokens;
pub mod totp;

use sha2::{Digest, Sha256};

/// A random token of `bytes` random bytes, URL-safe base64.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system's random source failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

/// The SHA-256 of a token, as tokens are stored (a database leak gives no usable token).
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
