//! Two-factor sign-in: time-based one-time codes (RFC 6238 as authenticator apps expect them:
//! HMAC-SHA-1, 6 digits, 30-second steps, one step of clock skew either way) through `totp-rs`,
//! and single-use recovery codes for a lost phone.
//!
//! A code is accepted once: the store keeps the newest step used and refuses any step not newer
//! (RFC 6238 §5.2), so a code seen over someone's shoulder is worthless after its owner used it.

use totp_rs::{Builder, Secret, Totp};

/// The name authenticator apps show next to the account.
const ISSUER: &str = "ZeroLagHub";

/// How many recovery codes an account gets; each works once.
pub const RECOVERY_CODES: usize = 10;

/// A new shared secret: 160 random bits, as RFC 4226 recommends.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 20];
    getrandom::fill(&mut secret).expect("the operating system's random source failed");
    secret
}

fn totp(secret: &[u8], account: &str) -> Totp {
    Builder::new()
        .with_secret(secret.to_vec())
        // A colon separates issuer and account in the URL; no address needs one to be recognised.
        .with_account_name(account.replace(':', "_"))
        .with_issuer(Some(ISSUER))
        .build()
        .expect("a 160-bit secret, 6 digits and a colon-free name make a valid TOTP")
}

/// What an authenticator app needs to start making codes.
#[derive(Debug)]
pub struct Enrolment {
    /// The secret in base32, for typing in by hand.
    pub secret: String,
    /// The `otpauth://` URL the QR code holds.
    pub url: String,
    /// The QR code of `url`, as an SVG document.
    pub qr_svg: String,
}

/// The enrolment of `secret` for the account `account` (its email address).
pub fn enrolment(secret: &[u8], account: &str) -> Enrolment {
    let totp = totp(secret, account);
    let url = totp.to_url().expect("the account name was checked when it was set");
    let qr_svg = qrcode::QrCode::new(url.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build()
        })
        .unwrap_or_default();
    Enrolment { secret: Secret::from(secret.to_vec()).to_base32(), url, qr_svg }
}

/// The time step (`unix seconds / 30`) `code` belongs to, if it is the code of now, or of the
/// step before or after (a phone's clock a little off).
pub fn matching_step(secret: &[u8], code: &str, now_secs: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    totp(secret, "-").check(&code, now_secs)
}

/// Fresh recovery codes, `xxxxx-xxxxx` from an alphabet without look-alikes (50 random bits
/// each: they are single-use and tried under the sign-in throttle).
pub fn recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            getrandom::fill(&mut bytes).expect("the operating system's random source failed");
            let chars: String =
                bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

/// A recovery code as typed (any case, spaces, with or without the dash) in the form it is
/// stored hashed.
pub fn normalized_recovery_code(code: &str) -> String {
    let plain: String =
        code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
    if plain.len() == 10 { format!("{}-{}", &plain[..5], &plain[5..]) } else { plain }
}

/// Whether what someone typed looks like a one-time code (digits) rather than a recovery code.
pub fn is_one_time_code(code: &str) -> bool {
    let digits: Vec<char> = code.chars().filter(|c| !c.is_whitespace()).collect();
    digits.len() == 6 && digits.iter().all(char::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_rfc_6238_and_their_neighbouring_steps_only() {
        // RFC 6238 appendix B, SHA-1, the last 6 of its 8 digits.
        let secret = b"12345678901234567890";
        assert_eq!(matching_step(secret, "287082", 59), Some(1));
        assert_eq!(matching_step(secret, "081804", 1_111_111_109), Some(37_037_036));
        assert_eq!(matching_step(secret, "081 804", 1_111_111_109 + 30), Some(37_037_036), "a step late");
        assert_eq!(matching_step(secret, "081804", 1_111_111_109 + 60), None, "two steps late");
        assert_eq!(matching_step(secret, "not a code", 59), None);
    }

    #[test]
    fn an_enrolment_holds_the_secret_in_its_url_and_qr_code() {
        let secret = new_secret();
        let enrolment = enrolment(&secret, "ada:lovelace@example.com");
        assert!(enrolment.url.starts_with("otpauth://totp/ZeroLagHub:"), "{}", enrolment.url);
        assert!(enrolment.url.contains(&format!("secret={}", enrolment.secret)), "{}", enrolment.url);
        assert!(enrolment.qr_svg.starts_with("<?xml") && enrolment.qr_svg.contains("<svg"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_read_back_however_typed() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(codes.iter().collect::<std::collections::HashSet<_>>().len(), RECOVERY_CODES);
        let code = &codes[0];
        assert_eq!(&normalized_recovery_code(&code.to_uppercase().replace('-', " ")), code);
        assert!(is_one_time_code("123 456") && !is_one_time_code(code));
    }
}
