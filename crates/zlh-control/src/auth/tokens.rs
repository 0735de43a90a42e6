//! Signed tokens: compact JWTs with HS256.
//!
//! We need one algorithm (HMAC-SHA256 with a key only this control plane knows), so this is
//! forty lines over `hmac` instead of a JWT library that brings every asymmetric algorithm.
//! Access tokens (`type: "access"`) name their session (`sid`), so revoking a session ends its
//! access tokens at once; IDE tokens (`type: "dev-ide"`) name their server (`vmid`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zlh_proto::Secret;

/// The claims of every token we sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string (JWT convention).
    pub sub: String,
    /// What the token is for.
    #[serde(rename = "type")]
    pub kind: TokenKind,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expires at (seconds since the epoch).
    pub exp: u64,
    /// The session of an access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The server of an IDE token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<i64>,
    /// A unique id, for single-use tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// What a token is for; a token of one kind is refused wherever another is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenKind {
    /// A signed-in session's API access.
    #[serde(rename = "access")]
    Access,
    /// A single-use link that opens a dev server's IDE.
    #[serde(rename = "dev-ide")]
    IdeLink,
    /// The IDE's cookie, after a link was opened.
    #[serde(rename = "dev-ide-session")]
    IdeSession,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Signed by us, but past its expiry.
    #[error("the token has expired")]
    Expired,
    /// Malformed, forged, or of another type.
    #[error("the token is not valid")]
    Invalid,
}

/// Signs and verifies tokens with one key.
#[derive(Clone)]
pub struct TokenSigner {
    key: Secret,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner { key: [redacted] }")
    }
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenSigner {
    /// A signer with this key.
    pub fn new(key: Secret) -> TokenSigner {
        TokenSigner { key }
    }

    fn mac(&self, signing_input: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.key.expose().as_bytes()).expect("HMAC takes any key length");
        mac.update(signing_input.as_bytes());
        mac
    }

    /// Signs claims into a compact JWT.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(payload));
        let signature = self.mac(&signing_input).finalize().into_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// Verifies the signature (in constant time), the type and the expiry.
    pub fn verify(&self, token: &str, kind: TokenKind, now_secs: u64) -> Result<Claims, TokenError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Invalid)?;
        self.mac(signing_input).verify_slice(&signature).map_err(|_| TokenError::Invalid)?;
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Invalid)?)
                .map_err(|_| TokenError::Invalid)?;
        if header["alg"] != "HS256" {
            return Err(TokenError::Invalid);
        }
        let claims: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Invalid)?)
                .map_err(|_| TokenError::Invalid)?;
        if claims.kind != kind {
            return Err(TokenError::Invalid);
        }
        if claims.exp <= now_secs {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "7".into(),
            kind: TokenKind::Access,
            iat: 100,
            exp,
            sid: Some("s".into()),
            vmid: None,
            jti: None,
        }
    }

    #[test]
    fn signed_tokens_verify_and_tampering_fails() {
        let signer = TokenSigner::new(Secret::new("key-one"));
        let token = signer.sign(&claims(200));
        assert_eq!(signer.verify(&token, TokenKind::Access, 150), Ok(claims(200)));
        assert_eq!(signer.verify(&token, TokenKind::Access, 200), Err(TokenError::Expired));
        assert_eq!(signer.verify(&token, TokenKind::IdeLink, 150), Err(TokenError::Invalid));
        assert_eq!(
            TokenSigner::new(Secret::new("key-two")).verify(&token, TokenKind::Access, 150),
            Err(TokenError::Invalid)
        );
        // A forged payload with the original signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(9_999_999)).expect("json"));
        parts[1] = &forged;
        assert_eq!(signer.verify(&parts.join("."), TokenKind::Access, 150), Err(TokenError::Invalid));
        // "alg": "none" and friends.
        let unsigned = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), parts[1]);
        assert_eq!(signer.verify(&unsigned, TokenKind::Access, 150), Err(TokenError::Invalid));
        assert_eq!(signer.verify("garbage", TokenKind::Access, 150), Err(TokenError::Invalid));
        assert!(!format!("{signer:?}").contains("key-one"));
    }
}
