//! The web portal: static files embedded in the binary, served at `/` (and `/reset-password`,
//! where reset links land) and `/portal/*`.
//!
//! API Boundary: the portal is a client of the public API like any other; it has no route of
//! its own beyond these files. Its only third-party code is xterm.js and CodeMirror 6, copied
//! unchanged from the pinned npm packages in `portal/package.json` (`cargo xtask vendor`;
//! `cargo xtask test` checks the copies); `index.html`'s import map names CodeMirror's modules
//! by the names they import each other by.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use zlh_http::ApiError;

/// A vendored CodeMirror module.
macro_rules! codemirror {
    ($file:literal) => {
        (
            concat!("vendor/codemirror/", $file),
            "text/javascript; charset=utf-8",
            include_bytes!(concat!("../portal/vendor/codemirror/", $file)),
        )
    };
}

/// Every file of the portal: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("../portal/index.html")),
    ("style.css", "text/css; charset=utf-8", include_bytes!("../portal/style.css")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../portal/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_bytes!("../portal/api.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_bytes!("../portal/dom.js")),
    ("server.js", "text/javascript; charset=utf-8", include_bytes!("../portal/server.js")),
    ("templates.js", "text/javascript; charset=utf-8", include_bytes!("../portal/templates.js")),
    ("artifacts.js", "text/javascript; charset=utf-8", include_bytes!("../portal/artifacts.js")),
    ("usage.js", "text/javascript; charset=utf-8", include_bytes!("../portal/usage.js")),
    ("vendor/xterm.mjs", "text/javascript; charset=utf-8", include_bytes!("../portal/vendor/xterm.mjs")),
    (
        "vendor/addon-fit.mjs",
        "text/javascript; charset=utf-8",
        include_bytes!("../portal/vendor/addon-fit.mjs"),
    ),
    ("vendor/xterm.css", "text/css; charset=utf-8", include_bytes!("../portal/vendor/xterm.css")),
    ("editor.js", "text/javascript; charset=utf-8", include_bytes!("../portal/editor.js")),
    codemirror!("state.js"),
    codemirror!("view.js"),
    codemirror!("commands.js"),
    codemirror!("language.js"),
    codemirror!("search.js"),
    codemirror!("lang-json.js"),
    codemirror!("lang-yaml.js"),
    codemirror!("streamparser.js"),
    codemirror!("mode-properties.js"),
    codemirror!("mode-toml.js"),
    codemirror!("mode-shell.js"),
    codemirror!("lezer-common.js"),
    codemirror!("lezer-highlight.js"),
    codemirror!("lezer-lr.js"),
    codemirror!("lezer-json.js"),
    codemirror!("lezer-yaml.js"),
    codemirror!("style-mod.js"),
    codemirror!("w3c-keyname.js"),
    codemirror!("crelt.js"),
    codemirror!("find-cluster-break.js"),
];

/// What the portal may load and talk to: itself only. xterm.js and CodeMirror set styles
/// inline; the one inline script is the import map, allowed by its hash.
const CSP: &str = "default-src 'self'; script-src 'self' 'sha256-UmiKe6kz8UsfhPcnQFQU+MQ/gKdYLCouKsr4Tkpmdno='; \
                   style-src 'self' 'unsafe-inline'; \
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_import_map() {
        use base64::Engine;
        let page = std::str::from_utf8(FILES[0].2).expect("utf-8");
        let map = page
            .split_once("<script type=\"importmap\">")
            .and_then(|(_, rest)| rest.split_once("</script>"))
            .map(|(map, _)| map)
            .expect("index.html has an import map");
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(map.as_bytes()));
        assert!(CSP.contains(&format!("'sha256-{hash}'")), "put 'sha256-{hash}' in CSP");
        // Every module it names is served.
        for path in map.split('"').filter(|s| s.starts_with("/portal/")) {
            let name = path.trim_start_matches("/portal/");
            assert!(FILES.iter().any(|(file, _, _)| *file == name), "{name} is not served");
        }
    }
}
