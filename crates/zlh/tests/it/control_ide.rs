//! The browser IDE: links, cookies, the proxy, and a real code-server in a real browser.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use zlh_control::db::{SqliteStore, Store};
use zlh_control::provision::{ExternalServer, record_external};
use zlh_control::registry::AgentEndpoint;
use zlh_proto::Secret;
use zlh_proto::api::{Role, ServerKind};
use zlh_testkit::{ApiUser, ControlSpec, EchoUpstream, TestControlPlane, eventually};

use crate::zlh;

/// A control plane with `owner`'s two dev servers whose "code-server" is an [`EchoUpstream`]
/// (their agents are elsewhere and never asked), a third whose code-server does not answer,
/// plus `other`, a second user.
struct Setup {
    control: TestControlPlane,
    upstream: EchoUpstream,
    owner: ApiUser,
    other: ApiUser,
    servers: [i64; 3],
    http: reqwest::Client,
}

async fn setup(extra_toml: &str) -> Setup {
    let upstream = EchoUpstream::start().await;
    let mut control = TestControlPlane::prepare(
        zlh(),
        &ControlSpec { extra_toml: extra_toml.into(), ..ControlSpec::default() },
    );
    let password = "owner password 1";
    let servers = {
        let store = SqliteStore::open(&control.data.path().join("zlh.db").display().to_string())
            .await
            .expect("store");
        let hash = zlh_control::auth::passwords::hash(password).await;
        let owner = store.create_user("owner@example.com", &hash, Role::User, true, 1).await.expect("owner");
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let nobody = closed.local_addr().expect("address").to_string();
        drop(closed);
        let mut ids = [0; 3];
        for (n, id) in ids.iter_mut().enumerate() {
            let ide = if n < 2 { upstream.address.clone() } else { nobody.clone() };
            let endpoint = AgentEndpoint {
                url: Secret::new("http://127.0.0.1:9"),
                secret: Secret::new("unused-agent-secret"),
                ide: Some(Secret::new(ide)),
            };
            let server = ExternalServer {
                owner_id: owner.id,
                name: format!("ide-{n}"),
                kind: ServerKind::Dev,
                endpoint,
            };
            *id = record_external(&store, server).await.expect("server");
        }
        ids
    };
    control.launch().await;
    let owner = control.login("owner@example.com", password).await;
    let other = control.register("other@example.com").await;
    let address: SocketAddr = control.url.trim_start_matches("http://").parse().expect("address");
    let mut http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    for id in servers {
        http = http.resolve(&format!("dev-{id}.localhost"), address);
    }
    Setup { control, upstream, owner, other, servers, http: http.build().expect("client") }
}

impl Setup {
    async fn link(&self, id: i64) -> Value {
        let (status, link) = self
            .control
            .call("POST", &format!("/api/dev/{id}/ide-token"), Some(&self.owner.access_token), None)
            .await;
        assert_eq!(status, 200, "{link}");
        link
    }

    /// Opens server `id`'s IDE link: the session cookie it set, as `name=value`.
    async fn open(&self, id: i64) -> String {
        let opened =
            self.http.get(self.link(id).await["url"].as_str().expect("url")).send().await.expect("open");
        let cookie = opened.headers()["set-cookie"].to_str().expect("cookie");
        cookie.split(';').next().expect("pair").to_owned()
    }

    fn port(&self) -> &str {
        self.control.url.rsplit(':').next().expect("port")
    }

    /// Sends `request` (to server `id`'s IDE at `path`, with our cookie and `theme=dark`) with
    /// headers that would carry credentials or lie about the origin, and checks that the
    /// upstream saw the public host and scheme, the other cookie, and none of those.
    async fn passes_clean(&self, request: reqwest::RequestBuilder, id: i64, path: &str) {
        let page = request
            .header("authorization", "Bearer must-not-pass")
            .header("x-forwarded-host", "evil.example")
            .header("forwarded", "host=evil.example")
            .header("x-forwarded-proto", "gopher")
            .header("x-forwarded-port", "6666")
            .header("x-forwarded-prefix", "/evil")
            .header("x-real-ip", "10.6.6.6")
            .send()
            .await
            .expect("page");
        assert_eq!(page.status(), 200);
        assert_eq!(page.text().await.expect("body"), "hello from the upstream\n");
        let seen = self.upstream.seen().pop().expect("the upstream saw it");
        let header = |name: &str| seen.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        assert_eq!(seen.path, path);
        assert_eq!(header("host"), Some(format!("dev-{id}.localhost:{}", self.port())), "the public host");
        assert_eq!(header("cookie").as_deref(), Some("theme=dark"), "our cookie stripped, others kept");
        assert_eq!(
            header("x-forwarded-proto").as_deref(),
            Some("http"),
            "the public scheme, not the client's"
        );
        for name in [
            "authorization",
            "x-forwarded-host",
            "forwarded",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-real-ip",
        ] {
            assert_eq!(header(name), None, "{name} passed");
        }
    }
}

fn code(response_body: &str) -> String {
    serde_json::from_str::<Value>(response_body)
        .map(|v| v["error"]["code"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_code_server_that_does_not_answer_yet_gets_a_page_that_retries() {
    let s = setup("").await;
    let id = s.servers[2];
    let session = s.open(id).await;
    let host = format!("http://dev-{id}.localhost:{}", s.port());

    // Someone opening the IDE: a page that says what is happening and reloads itself.
    let page = s
        .http
        .get(format!("{host}/?folder=/home/dev/workspace"))
        .header("cookie", &session)
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 503);
    assert_eq!(page.headers()["retry-after"], "3");
    assert!(page.headers()["content-type"].to_str().expect("type").starts_with("text/html"));
    let text = page.text().await.expect("html");
    assert!(text.contains("The IDE is starting") && text.contains("http-equiv=\"refresh\""), "{text}");
    assert!(!text.contains("127.0.0.1"), "the backend address stays hidden: {text}");

    // A script's request: the JSON error, as from every other route.
    let fetched =
        s.http.get(format!("{host}/static/app.js")).header("cookie", &session).send().await.expect("js");
    assert_eq!(fetched.status(), 502);
    assert_eq!(code(&fetched.text().await.expect("body")), "agent_unreachable");
}

/// A connection whose first request is a plain `GET` is served by the IDE's fast path (bytes
/// proxied by hand) until a request that is not plain hands it to the general path.
#[tokio::test]
async fn plain_requests_on_a_kept_connection_pass_the_fast_path_the_same_way() {
    let s = setup("").await;
    let id = s.servers[0];
    let session = s.open(id).await;
    let host = format!("http://dev-{id}.localhost:{}", s.port());
    let address: SocketAddr = s.control.url.trim_start_matches("http://").parse().expect("address");
    // One connection, its first request plain.
    let kept = reqwest::Client::builder()
        .resolve(&format!("dev-{id}.localhost"), address)
        .pool_max_idle_per_host(1)
        .http1_only()
        .build()
        .expect("client");
    let get =
        |path: &str| kept.get(format!("{host}{path}")).header("cookie", format!("{session}; theme=dark"));

    s.passes_clean(get("/?folder=/w"), id, "/?folder=/w").await;

    let chunked = get("/chunked").send().await.expect("chunked");
    assert_eq!(chunked.text().await.expect("body"), "first chunk, second chunk, the end\n");
    let big = get("/big").send().await.expect("big");
    assert_eq!(big.bytes().await.expect("bytes").len(), 1 << 20);
    let head = kept.head(format!("{host}/big")).header("cookie", &session).send().await.expect("head");
    assert_eq!(head.headers()["content-length"], "1048576");
    assert!(head.bytes().await.expect("no body").is_empty());
    let scoped = get("/cookie").send().await.expect("cookie");
    let set = scoped.headers()["set-cookie"].to_str().expect("set-cookie").to_owned();
    assert_eq!(set, "vscode-tkn=abc; HttpOnly; Path=/", "held to the IDE");

    // Not plain: a body, then a link's token and no cookie: the general path answers, as ever.
    let posted = kept
        .post(format!("{host}/upload"))
        .header("cookie", &session)
        .body("a body")
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), 200);
    let anonymous = kept.get(format!("{host}/?folder=x")).send().await.expect("anonymous");
    assert_eq!(anonymous.status(), 401);
    let forged =
        kept.get(format!("{host}/x")).header("cookie", format!("{session}x")).send().await.expect("forged");
    assert_eq!(forged.status(), 401);

    // A forged cookie on a fresh connection's first request: refused by the general path too.
    let fresh =
        reqwest::Client::builder().resolve(&format!("dev-{id}.localhost"), address).build().expect("client");
    let forged =
        fresh.get(format!("{host}/x")).header("cookie", format!("{session}x")).send().await.expect("forged");
    assert_eq!(forged.status(), 401);
    // This IDE's cookie at another server's IDE, as a connection's first request: refused.
    let other_server = s
        .http
        .get(format!("http://dev-{}.localhost:{}/x", s.servers[1], s.port()))
        .header("cookie", &session)
        .send()
        .await
        .expect("other server");
    assert_eq!(other_server.status(), 401);
}

#[tokio::test]
async fn hosted_links_set_a_host_only_cookie_and_proxy_without_our_credentials() {
    let s = setup("").await;
    let id = s.servers[0];
    let link = s.link(id).await;
    let url = link["url"].as_str().expect("url");
    assert!(
        url.starts_with(&format!("http://dev-{id}.localhost:{}/?token=", s.port())),
        "hosted by default on loopback: {url}"
    );
    assert_eq!(link["expiresIn"], 300);

    let opened = s.http.get(url).send().await.expect("open");
    assert_eq!(opened.status(), 302);
    assert_eq!(opened.headers()["location"], "/", "the clean URL: no token in the address bar");
    assert_eq!(opened.headers()["referrer-policy"], "no-referrer");
    let cookie = opened.headers()["set-cookie"].to_str().expect("cookie").to_owned();
    assert!(cookie.starts_with("zlh_ide="), "{cookie}");
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(
        !cookie.contains("Domain") && !cookie.contains("Secure"),
        "host-only, and plain http here: {cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_owned();

    // Single use.
    let again = s.http.get(url).send().await.expect("again");
    assert_eq!(again.status(), 401);
    assert_eq!(code(&again.text().await.expect("body")), "token_reused");

    let host = format!("http://dev-{id}.localhost:{}", s.port());
    let root = s.http.get(format!("{host}/")).header("cookie", &session).send().await.expect("root");
    assert_eq!(
        (root.status().as_u16(), root.headers()["location"].to_str().expect("location")),
        (302, "/?folder=/home/dev/workspace"),
        "the agent never answered: the default folder"
    );

    let page = s
        .http
        .get(format!("{host}/?folder=/home/dev/workspace"))
        .header("cookie", format!("{session}; theme=dark"));
    s.passes_clean(page, id, "/?folder=/home/dev/workspace").await;

    // Big bodies stream through whole.
    let big = s.http.get(format!("{host}/big")).header("cookie", &session).send().await.expect("big");
    assert_eq!(big.bytes().await.expect("bytes").len(), 1 << 20);

    // No cookie, a forged one, or another server's host: refused.
    let anonymous = s.http.get(format!("{host}/?folder=x")).send().await.expect("anonymous");
    assert_eq!(anonymous.status(), 401);
    let forged = s
        .http
        .get(format!("{host}/?folder=x"))
        .header("cookie", format!("{session}x"))
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), 401);
    let sibling = format!("http://dev-{}.localhost:{}/?folder=x", s.servers[1], s.port());
    let elsewhere = s.http.get(sibling).header("cookie", &session).send().await.expect("sibling");
    assert_eq!(elsewhere.status(), 401, "a cookie is for one server");
}

#[tokio::test]
async fn an_ide_lives_no_longer_than_the_session_that_opened_it() {
    let s = setup("").await;
    let id = s.servers[0];
    let link = s.link(id).await;
    let opened = s.http.get(link["url"].as_str().expect("url")).send().await.expect("open");
    assert_eq!(opened.status(), 302);
    let cookie =
        opened.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let host = format!("http://dev-{id}.localhost:{}", s.port());
    let page = |cookie: String| s.http.get(format!("{host}/static/x.js")).header("cookie", cookie).send();
    assert_eq!(page(cookie.clone()).await.expect("page").status(), 200);
    // A link made before signing out opens nothing after it, and the open IDE closes.
    let unused = s.link(id).await;
    let (status, _) = s
        .control
        .call("POST", "/api/auth/logout", None, Some(json!({"refreshToken": s.owner.refresh_token})))
        .await;
    assert_eq!(status, 204);
    let late = s.http.get(unused["url"].as_str().expect("url")).send().await.expect("late");
    assert_eq!(late.status(), 401);
    eventually("the IDE's cookie stops working", crate::SOON, async || {
        (page(cookie.clone()).await.expect("page").status() == 401).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_path_form_works_and_can_be_switched_off() {
    let s = setup("[ide]\nreturn_hosted_url = false\n").await;
    let id = s.servers[0];
    let url = s.link(id).await["url"].as_str().expect("url").to_owned();
    // At an origin of its own, never the portal's: an IDE page there could read the portal's.
    let origin = s.control.url.replace("127.0.0.1", "localhost");
    assert!(url.starts_with(&format!("{origin}/api/dev/{id}/ide?token=")), "{url}");
    let at_portal = url.replace(&origin, &s.control.url);
    assert_eq!(s.http.get(&at_portal).send().await.expect("at the portal").status(), 404);
    let opened = s.http.get(&url).send().await.expect("open");
    assert_eq!(
        (opened.status().as_u16(), opened.headers()["location"].to_str().expect("loc")),
        (302, format!("/__ide/{id}/").as_str())
    );
    let cookie = opened.headers()["set-cookie"].to_str().expect("cookie").to_owned();
    assert!(
        cookie.starts_with(&format!("zlh_ide_{id}=")) && cookie.contains(&format!("Path=/__ide/{id}/")),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_owned();
    let bare = s.http.get(format!("{origin}/__ide/{id}")).send().await.expect("bare");
    assert_eq!(bare.headers()["location"], format!("/__ide/{id}/"));
    let root =
        s.http.get(format!("{origin}/__ide/{id}/")).header("cookie", &session).send().await.expect("root");
    assert_eq!(root.headers()["location"], format!("/__ide/{id}/?folder=/home/dev/workspace"));
    let page = s
        .http
        .get(format!("{origin}/__ide/{id}/static/x.js?v=1"))
        .header("cookie", &session)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let at_portal = s
        .http
        .get(format!("{}/__ide/{id}/static/x.js?v=1", s.control.url))
        .header("cookie", &session)
        .send()
        .await
        .expect("page at the portal");
    assert_eq!(at_portal.status(), 404, "no IDE content on the portal's origin");
    assert_eq!(s.upstream.seen().pop().expect("seen").path, "/static/x.js?v=1", "the prefix is stripped");

    let off = setup("[ide]\npath_form = false\nreturn_hosted_url = false\n").await;
    let url = off.link(off.servers[0]).await["url"].as_str().expect("url").to_owned();
    assert_eq!(off.http.get(&url).send().await.expect("off").status(), 404);
}

#[tokio::test]
async fn a_spent_link_stays_spent_after_a_restart() {
    let mut s = setup("").await;
    let id = s.servers[0];
    let link = s.link(id).await;
    let url = link["url"].as_str().expect("url");
    assert_eq!(s.http.get(url).send().await.expect("open").status(), 302);
    let token = url.split("token=").nth(1).expect("token").to_owned();
    s.control.kill9();
    s.control.launch().await;
    // The same link at the restarted control plane's address: still spent.
    let address: SocketAddr = s.control.url.trim_start_matches("http://").parse().expect("address");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&format!("dev-{id}.localhost"), address)
        .build()
        .expect("client");
    let again = http
        .get(format!("http://dev-{id}.localhost:{}/?token={token}", s.port()))
        .send()
        .await
        .expect("again");
    assert_eq!(again.status(), 401);
    assert_eq!(code(&again.text().await.expect("body")), "token_reused");
}

#[tokio::test]
async fn links_expire_and_are_bound_to_their_server_user_and_type() {
    // Long enough for the refusals below to come before it expires on a busy machine.
    let s = setup("[ide]\ntoken_ttl = \"3s\"\n").await;
    let [id, other_id, _] = s.servers;
    let host = |id: i64| format!("http://dev-{id}.localhost:{}", s.port());
    let link = s.link(id).await;
    let token = link["token"].as_str().expect("token").to_owned();

    let wrong_server = s.http.get(format!("{}/?token={token}", host(other_id))).send().await.expect("wrong");
    assert_eq!(
        (wrong_server.status().as_u16(), code(&wrong_server.text().await.expect("body"))),
        (401, "token_invalid".into())
    );
    let access_token = &s.owner.access_token;
    let wrong_type = s.http.get(format!("{}/?token={access_token}", host(id))).send().await.expect("type");
    assert_eq!(
        (wrong_type.status().as_u16(), code(&wrong_type.text().await.expect("body"))),
        (401, "token_invalid".into())
    );
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let forged = s.http.get(format!("{}/?token={forged}", host(id))).send().await.expect("forged");
    assert_eq!(forged.status(), 401);
    // Another user cannot even get a link to these servers.
    let (status, _) =
        s.control.call("POST", &format!("/api/dev/{id}/ide-token"), Some(&s.other.access_token), None).await;
    assert_eq!(status, 404);

    zlh_testkit::eventually("the link to expire", Duration::from_secs(10), || async {
        let late = s.http.get(format!("{}/?token={token}", host(id))).send().await.expect("late");
        let status = late.status().as_u16();
        (status == 401 && code(&late.text().await.expect("body")) == "token_expired").then_some(())
    })
    .await;
    // No token ever reaches a log line.
    let logs = s.control.logs().join("\n");
    assert!(!logs.contains(&token) && !logs.contains(access_token.as_str()));
    assert!(logs.contains("IDE opened") || !logs.contains("token="), "query strings are never logged");
}

#[tokio::test]
async fn websockets_pass_through_only_from_the_ides_own_origin() {
    let s = setup("").await;
    let id = s.servers[0];
    let session = s.open(id).await;
    let host = format!("dev-{id}.localhost:{}", s.port());
    let connect = |origin: String| {
        let (host, session) = (host.clone(), session.clone());
        let address = s.control.url.trim_start_matches("http://").to_owned();
        async move {
            let mut request = format!("ws://{host}/socket").into_client_request().expect("request");
            request.headers_mut().insert("cookie", session.parse().expect("cookie"));
            request.headers_mut().insert("origin", origin.parse().expect("origin"));
            let stream = tokio::net::TcpStream::connect(address).await.expect("tcp");
            tokio_tungstenite::client_async(request, stream).await
        }
    };
    let (mut socket, _) = connect(format!("http://{host}")).await.expect("same origin upgrades");
    socket.send(Message::Text("ping through the proxy".into())).await.expect("send");
    let echo = socket.next().await.expect("echo").expect("frame");
    assert_eq!(echo, Message::Text("ping through the proxy".into()));
    for foreign in
        ["http://evil.example".to_owned(), format!("http://dev-{}.localhost:{}", s.servers[1], s.port())]
    {
        match connect(foreign.clone()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{foreign}")
            }
            other => panic!("{foreign} must be refused, got {other:?}"),
        }
    }
    let upgrade =
        s.upstream.seen().into_iter().find(|r| r.path == "/socket").expect("upgrade reached the upstream");
    let origin = upgrade.headers.iter().find(|(n, _)| n == "origin").map(|(_, v)| v.clone());
    assert_eq!(origin, Some(format!("http://{host}")), "Origin untouched");
}

/// A control plane that stops gracefully closes what its IDE thread serves, a kept-alive
/// connection between requests and a WebSocket (code-server's reconnect by themselves), before
/// it exits rather than by exiting.
#[tokio::test]
async fn a_stopping_control_plane_closes_its_ide_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = setup("").await;
    let id = s.servers[0];
    let session = s.open(id).await;
    let host = format!("dev-{id}.localhost:{}", s.port());
    let address = s.control.url.trim_start_matches("http://").to_owned();
    let mut kept = tokio::net::TcpStream::connect(&address).await.expect("tcp");
    let request = format!("GET /kept HTTP/1.1\r\nhost: {host}\r\ncookie: {session}\r\n\r\n");
    kept.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(kept.read_buf(&mut answer).await.expect("read") > 0, "closed: {answer:?}");
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    let mut request = format!("ws://{host}/socket").into_client_request().expect("request");
    request.headers_mut().insert("cookie", session.parse().expect("cookie"));
    request.headers_mut().insert("origin", format!("http://{host}").parse().expect("origin"));
    let stream = tokio::net::TcpStream::connect(&address).await.expect("tcp");
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream).await.expect("upgrades");
    socket.send(Message::Text("before the stop".into())).await.expect("send");
    assert_eq!(socket.next().await.expect("echo").expect("frame"), Message::Text("before the stop".into()));

    s.control.stop().await;
    tokio::time::timeout(crate::SOON, async {
        // The rest of the answer, if any, then the end.
        while matches!(kept.read_buf(&mut answer).await, Ok(1..)) {}
        while let Some(Ok(frame)) = socket.next().await {
            assert!(frame.is_close(), "only a close may come: {frame:?}");
        }
    })
    .await
    .expect("both connections closed");
    let cut = s.control.logs().into_iter().find(|line| line.contains("sockets still open are cut"));
    assert_eq!(cut, None, "closed by the stop, not cut after it");
}

/// A WebSocket upgrade after a plain request on one connection, sent with its first frame in
/// the same write: the frame reaches code-server once it switched protocols, the echo comes
/// back, and the upgrade went on without our cookie or credentials.
#[tokio::test]
async fn a_websocket_upgrade_with_its_first_frame_passes_after_a_plain_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup("").await;
    let id = s.servers[0];
    let session = s.open(id).await;
    let host = format!("dev-{id}.localhost:{}", s.port());
    let mut stream =
        tokio::net::TcpStream::connect(s.control.url.trim_start_matches("http://")).await.expect("tcp");
    // Reads until `complete` says how much of what was read is the answer.
    async fn read_until(
        stream: &mut tokio::net::TcpStream,
        complete: impl Fn(&[u8]) -> Option<usize>,
    ) -> Vec<u8> {
        let mut read = Vec::new();
        tokio::time::timeout(crate::SOON, async {
            loop {
                if let Some(len) = complete(&read) {
                    return read[..len].to_vec();
                }
                assert!(stream.read_buf(&mut read).await.expect("read") > 0, "closed: {read:?}");
            }
        })
        .await
        .expect("an answer in time")
    }
    let head_end = |read: &[u8]| read.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4);

    let plain = format!("GET /x HTTP/1.1\r\nhost: {host}\r\ncookie: {session}\r\n\r\n");
    stream.write_all(plain.as_bytes()).await.expect("plain request");
    let body = "hello from the upstream\n";
    let answer = read_until(&mut stream, |read| {
        head_end(read).map(|end| end + body.len()).filter(|len| read.len() >= *len)
    })
    .await;
    assert!(answer.starts_with(b"HTTP/1.1 200") && answer.ends_with(body.as_bytes()), "{answer:?}");

    let payload = b"the first frame, sent with the upgrade";
    let mask = [7, 1, 9, 3];
    let mut upgrade = format!(
        "GET /socket HTTP/1.1\r\nhost: {host}\r\norigin: http://{host}\r\ncookie: {session}; theme=dark\r\n\
         authorization: Bearer must-not-pass\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .into_bytes();
    upgrade.extend_from_slice(&[0x81, 0x80 | payload.len() as u8]);
    upgrade.extend_from_slice(&mask);
    upgrade.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&upgrade).await.expect("upgrade and frame");
    let switched = read_until(&mut stream, |read| {
        head_end(read).map(|end| end + 2 + payload.len()).filter(|len| read.len() >= *len)
    })
    .await;
    let head = String::from_utf8_lossy(&switched[..head_end(&switched).expect("head")]).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
    let mut echo = vec![0x81, payload.len() as u8];
    echo.extend_from_slice(payload);
    assert!(switched.ends_with(&echo), "the echo of the first frame: {switched:?}");

    let seen = s.upstream.seen().into_iter().find(|r| r.path == "/socket").expect("the upgrade arrived");
    let header = |name: &str| seen.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(header("cookie").as_deref(), Some("theme=dark"), "our cookie stripped, others kept");
    assert_eq!(header("authorization"), None);
    assert_eq!(header("origin"), Some(format!("http://{host}")), "Origin untouched");
    assert_eq!(header("upgrade").as_deref(), Some("websocket"));
}

#[tokio::test]
async fn an_invited_accounts_ide_and_its_websockets_end_when_the_owner_removes_it() {
    let s = setup("").await;
    let id = s.servers[0];
    let members = format!("/api/servers/{id}/members");
    let owner = Some(s.owner.access_token.as_str());
    let invite = json!({"email": s.other.email, "permissions": ["files"]});
    let (status, invited) = s.control.call("POST", &members, owner, Some(invite)).await;
    assert_eq!(status, 201, "{invited}");
    let token = format!("/api/dev/{id}/ide-token");
    let (status, refused) = s.control.call("POST", &token, Some(&s.other.access_token), None).await;
    assert_eq!((status, &refused["error"]["code"]), (403, &json!("forbidden")), "{refused}");
    let ide = json!({"permissions": ["ide"]});
    let member = format!("{members}/{}", invited["id"]);
    assert_eq!(s.control.call("PUT", &member, owner, Some(ide)).await.0, 200);
    let (status, link) = s.control.call("POST", &token, Some(&s.other.access_token), None).await;
    assert_eq!(status, 200, "{link}");
    let opened = s.http.get(link["url"].as_str().expect("url")).send().await.expect("open");
    let cookie =
        opened.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let host = format!("dev-{id}.localhost:{}", s.port());
    let mut request = format!("ws://{host}/socket").into_client_request().expect("request");
    request.headers_mut().insert("cookie", cookie.parse().expect("cookie"));
    request.headers_mut().insert("origin", format!("http://{host}").parse().expect("origin"));
    let stream =
        tokio::net::TcpStream::connect(s.control.url.trim_start_matches("http://")).await.expect("tcp");
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream).await.expect("upgrades");
    socket.send(Message::Text("mine for now".into())).await.expect("send");
    assert_eq!(socket.next().await.expect("echo").expect("frame"), Message::Text("mine for now".into()));

    // Removed: the open WebSocket ends, the cookie opens nothing, no new link.
    assert_eq!(s.control.call("DELETE", &member, owner, None).await.0, 204);
    let ended = tokio::time::timeout(crate::SOON, async {
        while let Some(Ok(frame)) = socket.next().await {
            if frame.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the IDE WebSocket must close when access ends");
    let page = format!("http://{host}/static/x.js");
    eventually("the IDE's cookie stops working", crate::SOON, async || {
        let status = s.http.get(&page).header("cookie", &cookie).send().await.expect("page").status();
        (status == 404).then_some(())
    })
    .await;
    let (status, _) = s.control.call("POST", &token, Some(&s.other.access_token), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn only_dev_servers_have_ides() {
    let control = TestControlPlane::start(zlh(), &ControlSpec::default()).await;
    let user = control.register("gamer@example.com").await;
    let game = control.create_sample_server(&user, "Not a dev server").await;
    let id = game["id"].as_i64().expect("id");
    for path in ["ide-token", "codeserver/start", "codeserver/stop", "codeserver/restart"] {
        let (status, body) =
            control.call("POST", &format!("/api/dev/{id}/{path}"), Some(&user.access_token), None).await;
        assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")), "{path}");
    }
}

/// Runs `e2e/ide.mjs` on a link: what Chromium saw, as JSON.
async fn open_in_chromium(url: &str, file: &str, screenshot: &str) -> Value {
    let screenshot = format!("{}/{screenshot}", zlh_testkit::browser::screenshots());
    zlh_testkit::browser::run_script("ide.mjs", &[url, file, &screenshot], &[]).await
}

#[tokio::test]
async fn a_real_code_server_opens_in_a_real_browser_in_both_forms() {
    // The control plane waits for an agent longer than the agent waits for code-server (4 s),
    // as in production.
    let spec = ControlSpec {
        provision_timeout: "240s".into(),
        agent_timeout: "10s".into(),
        ..ControlSpec::default()
    };
    let control = TestControlPlane::start(zlh(), &spec).await;
    zlh_testkit::browser::publish_dev_artifacts(&control);

    let user = control.register_admin("coder@example.com").await;
    let (status, runtimes) = control.call("GET", "/api/dev/runtimes", Some(&user.access_token), None).await;
    assert_eq!(
        (status, &runtimes),
        (200, &json!([{"name": "fakenode", "description": "", "versions": ["1.0.0"]}]))
    );
    let request = json!({"name": "workspace", "type": "dev", "runtime": "fakenode", "version": "1.0.0", "enable_code_server": true});
    let (status, server) =
        control.call("POST", "/api/servers", Some(&user.access_token), Some(request)).await;
    assert_eq!(status, 201, "{server}");
    let id = server["id"].as_i64().expect("id");
    let detail = &server["status"]["detail"];
    for field in ["codeServerInstalled", "runtimeInstalled", "devProvisioned", "provisioningComplete"] {
        assert_eq!(detail[field], true, "{field}: {detail}");
    }
    // code-server has no authentication of its own: it listens on loopback only, where the
    // proxy reaches it and no other machine does.
    let agent_toml = std::fs::read_to_string(control.data.path().join(format!("servers/{id}/agent.toml")))
        .expect("agent.toml");
    let port: u16 = agent_toml
        .lines()
        .find_map(|line| line.strip_prefix("code_server_port = ")?.trim().parse().ok())
        .expect("code-server's port");
    let sockets = std::fs::read_to_string("/proc/net/tcp").expect("tcp")
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let listening: Vec<&str> = sockets
        .lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[1].ends_with(&format!(":{port:04X}")) && fields[3] == "0A"
        })
        .collect();
    assert!(
        !listening.is_empty()
            && listening
                .iter()
                .all(|l| l.split_whitespace().nth(1).is_some_and(|a| a.starts_with("0100007F:"))),
        "code-server must listen on 127.0.0.1 only: {listening:?}"
    );
    let workspace = control.data.path().join(format!("servers/{id}/root/home/dev/workspace"));
    std::fs::write(workspace.join("ZLH_E2E_README.md"), "# Written by the test\n").expect("workspace file");

    let hosted =
        control.call("POST", &format!("/api/dev/{id}/ide-token"), Some(&user.access_token), None).await.1;
    let seen =
        open_in_chromium(hosted["url"].as_str().expect("url"), "ZLH_E2E_README.md", "ide-hosted.png").await;
    assert_eq!(seen["ok"], true, "{seen}");
    assert!(seen["finalUrl"].as_str().expect("url").contains(&format!("dev-{id}.localhost")), "{seen}");
    let sockets = seen["sockets"].as_array().expect("sockets");
    assert!(!sockets.is_empty(), "the workbench opens WebSockets: {seen}");
    assert!(
        sockets.iter().all(|s| s["closed"] == false && s["error"].is_null()),
        "and they stay open: {seen}"
    );

    let path_link =
        control.call("POST", &format!("/api/dev/{id}/ide-token"), Some(&user.access_token), None).await.1;
    // The path form, at its own origin (the other loopback name), never the portal's.
    let path_origin = control.url.replace("127.0.0.1", "localhost");
    let path_url =
        format!("{path_origin}/api/dev/{id}/ide?token={}", path_link["token"].as_str().expect("token"));
    let seen = open_in_chromium(&path_url, "ZLH_E2E_README.md", "ide-path.png").await;
    assert_eq!(seen["ok"], true, "{seen}");
    assert!(seen["finalUrl"].as_str().expect("url").contains(&format!("/__ide/{id}/")), "{seen}");
    assert!(
        seen["sockets"]
            .as_array()
            .expect("sockets")
            .iter()
            .all(|s| s["closed"] == false && s["error"].is_null()),
        "{seen}"
    );

    // code-server's controls reach the agent.
    let (status, stopped) =
        control.call("POST", &format!("/api/dev/{id}/codeserver/stop"), Some(&user.access_token), None).await;
    assert_eq!((status, &stopped["codeServerRunning"]), (200, &json!(false)));
    // A start answers within the agent timeout; a slow code-server is "not running" until it
    // answers on its port, and asking again is harmless.
    let start = format!("/api/dev/{id}/codeserver/start");
    eventually("code-server answers again", Duration::from_secs(60), async || {
        let (status, started) = control.call("POST", &start, Some(&user.access_token), None).await;
        assert_eq!(status, 200, "{started}");
        (started["codeServerRunning"] == true).then_some(())
    })
    .await;
}
