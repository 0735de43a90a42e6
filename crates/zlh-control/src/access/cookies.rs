//! The portal's session in cookies that scripts cannot read.
//!
//! A client that sends `X-ZLH-Session: cookie` when it signs in gets its access and refresh
//! tokens as `HttpOnly`, `SameSite=Strict` cookies instead of in the answer, so a script on the
//! page (an injected one included) never holds them. Every request signed in by such a cookie
//! must carry the same header: a page of another origin cannot add it without a CORS preflight,
//! which this server never grants, so a cross-site form or link is refused (CSRF) even from a
//! site that counts as the same site (an IDE origin on another port or a sibling host).
//! Scripts and CLIs keep sending `Authorization: Bearer`, which needs none of this.

use axum::http::header::{COOKIE, HeaderValue};
use axum::http::{HeaderMap, HeaderName};
use std::time::Duration;

/// The header of a cookie-session client: `X-ZLH-Session: cookie`.
pub const SESSION_HEADER: HeaderName = HeaderName::from_static("x-zlh-session");

/// The access token's cookie, sent to the API only.
pub const ACCESS: Cookie = Cookie { name: "zlh_access", path: "/api" };

/// The refresh token's cookie, sent only where it is exchanged or ended.
pub const REFRESH: Cookie = Cookie { name: "zlh_refresh", path: "/api/auth" };

/// Whether the request comes from a cookie-session client (the portal).
pub fn from_portal(headers: &HeaderMap) -> bool {
    headers.get(&SESSION_HEADER).is_some_and(|value| value == "cookie")
}

/// A cookie the control plane sets.
#[derive(Debug, Clone, Copy)]
pub struct Cookie {
    /// Its name.
    pub name: &'static str,
    /// Where the browser sends it.
    pub path: &'static str,
}

impl Cookie {
    /// Its value in a request, if sent.
    pub fn read(self, headers: &HeaderMap) -> Option<&str> {
        read(headers, self.name)
    }

    /// `Set-Cookie` for `value`, kept `max_age`; `Secure` when the public URL is https.
    pub fn set(self, value: &str, max_age: Duration, secure: bool) -> Option<HeaderValue> {
        let secure = if secure { "; Secure" } else { "" };
        let text = format!(
            "{}={value}; Path={}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.name,
            self.path,
            max_age.as_secs()
        );
        HeaderValue::from_str(&text).ok()
    }

    /// `Set-Cookie` that removes it.
    pub fn clear(self, secure: bool) -> Option<HeaderValue> {
        self.set("", Duration::ZERO, secure)
    }
}

/// The value of the cookie `name` in a request's `Cookie` headers.
pub fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_strict_and_read_back_by_exact_name() {
        let set = ACCESS.set("abc", Duration::from_secs(60), true).expect("header");
        assert_eq!(set, "zlh_access=abc; Path=/api; HttpOnly; SameSite=Strict; Max-Age=60; Secure");
        assert_eq!(
            REFRESH.clear(false).expect("header"),
            "zlh_refresh=; Path=/api/auth; HttpOnly; SameSite=Strict; Max-Age=0"
        );
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("zlh_access_old=no; theme=dark"));
        headers.append(COOKIE, HeaderValue::from_static("zlh_access=yes"));
        assert_eq!(ACCESS.read(&headers), Some("yes"));
        assert_eq!(REFRESH.read(&headers), None);
        assert!(!from_portal(&headers));
        headers.insert(SESSION_HEADER, HeaderValue::from_static("cookie"));
        assert!(from_portal(&headers));
    }
}
