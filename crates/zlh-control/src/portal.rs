//! The web portal: static files embedded in the binary, served at `/` (and `/reset-password`,
//! where reset links land) and `/portal/*`.
//!
//! API Boundary: the portal is a client of the public API like any other; it has no route of
//! its own beyond these files. Its only third-party code is xterm.js, copied from the pinned npm
//! packages in `portal/package.json` (`cargo xtask vendor`; `cargo xtask test` checks the copies).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use zlh_http::ApiError;

/// Every file of the portal: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("../portal/index.html")),
    ("style.css", "text/css; charset=utf-8", include_bytes!("../portal/style.css")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../portal/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_bytes!("../portal/api.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_bytes!("../portal/dom.js")),
    ("server.js", "text/javascript; charset=utf-8", include_bytes!("../portal/server.js")),
    ("templates.js", "text/javascript; charset=utf-8", include_bytes!("../portal/templates.js")),
    ("usage.js", "text/javascript; charset=utf-8", include_bytes!("../portal/usage.js")),
    ("vendor/xterm.mjs", "text/javascript; charset=utf-8", include_bytes!("../portal/vendor/xterm.mjs")),
    (
        "vendor/addon-fit.mjs",
        "text/javascript; charset=utf-8",
        include_bytes!("../portal/vendor/addon-fit.mjs"),
    ),
    ("vendor/xterm.css", "text/css; charset=utf-8", include_bytes!("../portal/vendor/xterm.css")),
];

/// What the portal may load and talk to: itself only. xterm.js sets styles inline.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                   form-action 'self'";

/// ETags: a short hash of each file, computed once.
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        FILES
            .iter()
            .map(|(_, _, bytes)| {
                let digest = Sha256::digest(bytes);
                format!("\"{}\"", digest[..8].iter().map(|b| format!("{b:02x}")).collect::<String>())
            })
            .collect()
    });
    &tags[index]
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(index) = FILES.iter().position(|(file, _, _)| *file == name) else {
        return ApiError::not_found("file").into_response();
    };
    let (_, content_type, bytes) = FILES[index];
    let tag = etag(index);
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, HeaderValue::from_static(tag));
    // Always revalidated: an upgraded binary serves new files at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if request.get(header::IF_NONE_MATCH).is_some_and(|value| value.as_bytes() == tag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if name == "index.html" {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        // Reset links carry their token in the URL.
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    (headers, bytes).into_response()
}

/// `GET /`, `GET /reset-password` and `GET /verify-email`: the portal's page.
pub async fn page(request: HeaderMap) -> Response {
    serve("index.html", &request)
}

/// `GET /portal/{*file}`: its scripts and styles.
pub async fn asset(Path(file): Path<String>, request: HeaderMap) -> Response {
    serve(&file, &request)
}
