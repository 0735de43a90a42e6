//! The IDE proxy: requests/s, p99 latency and CPU per request through our proxy and through
//! nginx proxying the same upstream, in rounds that take turns (the machine's mood changes
//! over a minute), and straight to the upstream (the limit), for small and 1 MiB responses
//! (wrk, keep-alive, loopback); and WebSocket echo round trips, one through each in turn.
//!
//! The upstream is nginx serving static files (and, for WebSockets, an echo server). Our proxy
//! is a release `zlh serve` with an `external` dev server whose code-server is that upstream,
//! reached as `dev-<id>.localhost` with the cookie an IDE link set.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use zlh_control::db::{SqliteStore, Store};
use zlh_proto::Secret;
use zlh_proto::api::{Role, ServerKind};
use zlh_testkit::{ControlSpec, EchoUpstream, TestControlPlane};

use super::{cpu_seconds, print_table};

const CONNECTIONS: &str = "64";
const DURATION: &str = "8s";
/// Unmeasured load through each proxy before the first round, so neither is measured cold.
const WARM_UP: &str = "2s";
/// WebSocket round trips per round through each (a p99 of 2,000 was 20 samples, which one
/// descheduling of this VM's cores moved by tens of microseconds).
const ROUND_TRIPS: usize = 5000;
/// Turns each proxy takes per response size.
const ROUNDS: usize = 3;

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// An nginx with this `http { }` body, in `dir`.
fn nginx(dir: &Path, name: &str, workers: u32, http: &str) -> anyhow::Result<Child> {
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes {workers};\npid {dir}/{name}.pid;\nerror_log {dir}/{name}-error.log;\n\
             events {{ worker_connections 8192; }}\nhttp {{\n access_log off;\n sendfile on;\n tcp_nopush on;\n tcp_nodelay on;\n\
             keepalive_requests 1000000;\n client_body_temp_path {dir}/{name}-body;\n proxy_temp_path {dir}/{name}-proxy;\n{http}\n}}\n",
            dir = dir.display()
        ),
    )?;
    Ok(Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

async fn wait_for_port(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Runs wrk; returns (requests/s, p99 ms).
fn wrk(url: &str, headers: &[String], duration: &str) -> anyhow::Result<(f64, f64)> {
    let mut command = Command::new("wrk");
    command.args(["-t2", "-c", CONNECTIONS, "-d", duration, "--latency"]);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command.arg(url).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(!text.contains("Non-2xx"), "wrk saw errors on {url}:\n{text}");
    let requests = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec in:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| parse_latency(v.trim()))
        .ok_or_else(|| anyhow::anyhow!("no 99% in:\n{text}"))?;
    Ok((requests, p99))
}

/// `812.00us`, `1.23ms`, `2.00s` → milliseconds.
fn parse_latency(text: &str) -> f64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let value: f64 = text[..split].parse().unwrap_or(f64::NAN);
    match &text[split..] {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => f64::NAN,
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket to `url` over a connection to `connect_to`, with these headers.
async fn websocket(url: &str, headers: &[(&str, String)], connect_to: &str) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = name.parse()?;
        request.headers_mut().insert(name, value.parse()?);
    }
    let stream = tokio::net::TcpStream::connect(connect_to).await?;
    stream.set_nodelay(true)?;
    Ok(tokio_tungstenite::client_async(request, stream).await?.0)
}

/// One round trip of a small text message, in microseconds.
async fn round_trip(socket: &mut Socket, i: usize) -> anyhow::Result<f64> {
    let began = Instant::now();
    socket.send(Message::Text(format!("round trip {i:08}").into())).await?;
    let reply = socket.next().await.ok_or_else(|| anyhow::anyhow!("closed"))??;
    anyhow::ensure!(reply.is_text(), "unexpected {reply:?}");
    Ok(began.elapsed().as_secs_f64() * 1e6)
}

/// [`ROUND_TRIPS`] round trips on each socket, one on each in turn (who goes first alternates),
/// after 100 unmeasured: every socket sees the same moments of the machine. (p50, p99) in
/// microseconds for each.
async fn round_trips_in_turn(sockets: &mut [Socket]) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut times = vec![Vec::with_capacity(ROUND_TRIPS); sockets.len()];
    for i in 0..ROUND_TRIPS + 100 {
        for k in 0..sockets.len() {
            let at = if i % 2 == 0 { k } else { sockets.len() - 1 - k };
            let time = round_trip(&mut sockets[at], i).await?;
            if i >= 100 {
                times[at].push(time);
            }
        }
    }
    Ok(times
        .into_iter()
        .map(|mut times| {
            times.sort_by(f64::total_cmp);
            (times[times.len() / 2], times[times.len() * 99 / 100])
        })
        .collect())
}

pub(super) async fn run(zlh: &Path) -> anyhow::Result<()> {
    crate::e2e::ensure_debian_packages(&["nginx", "wrk"])?;
    let dir = tempfile::tempdir()?;
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("small.txt"), "a small response, like code-server's JSON and redirects\n")?;
    std::fs::write(www.join("big.bin"), vec![b'z'; 1 << 20])?;
    let echo = EchoUpstream::start().await;
    let (upstream_port, proxy_port) = (free_port()?, free_port()?);
    let mut upstream = nginx(
        dir.path(),
        "upstream",
        1,
        &format!(" server {{ listen 127.0.0.1:{upstream_port}; root {}; }}", www.display()),
    )?;
    let mut proxy = nginx(
        dir.path(),
        "proxy",
        2,
        &format!(
            " upstream files {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}\n upstream echo {{ server {}; }}\n\
             server {{ listen 127.0.0.1:{proxy_port};\n  location / {{ proxy_pass http://files; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n\
              location /socket {{ proxy_pass http://echo; proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\"; }}\n }}",
            echo.address
        ),
    )?;
    wait_for_port(upstream_port).await?;
    wait_for_port(proxy_port).await?;

    // Our proxy: two external dev servers, one whose code-server is nginx's files, one the echo.
    let mut control =
        TestControlPlane::prepare(zlh, &ControlSpec { poll_interval: "1h".into(), ..ControlSpec::default() });
    let password = "benchmark password";
    let ids = {
        let store = SqliteStore::open(&control.data.path().join("zlh.db").display().to_string()).await?;
        let hash = zlh_control::auth::passwords::hash(password).await;
        let owner = store.create_user("bench@example.com", &hash, Role::User, true, 1).await?;
        let mut ids = Vec::new();
        for upstream in [format!("127.0.0.1:{upstream_port}"), echo.address.clone()] {
            let endpoint = zlh_control::registry::AgentEndpoint {
                url: Secret::new("http://127.0.0.1:9"),
                secret: Secret::new("unused"),
                ide: Some(Secret::new(upstream)),
            };
            let server = zlh_control::provision::ExternalServer {
                owner_id: owner.id,
                name: "bench".into(),
                kind: ServerKind::Dev,
                endpoint,
            };
            ids.push(zlh_control::provision::record_external(&store, server).await?);
        }
        ids
    };
    control.launch().await;
    let user = control.login("bench@example.com", password).await;
    let port = control.url.rsplit(':').next().unwrap_or_default().to_owned();
    let address = control.url.trim_start_matches("http://").to_owned();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let mut cookies = Vec::new();
    for id in &ids {
        let (_, link) =
            control.call("POST", &format!("/api/dev/{id}/ide-token"), Some(&user.access_token), None).await;
        let token = link["token"].as_str().unwrap_or_default();
        let opened = no_redirects
            .get(format!("{}/?token={token}", control.url))
            .header("host", format!("dev-{id}.localhost:{port}"))
            .send()
            .await?;
        let cookie = opened.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default();
        cookies.push(cookie.split(';').next().unwrap_or_default().to_owned());
    }
    let ours = vec![format!("Host: dev-{}.localhost:{port}", ids[0]), format!("Cookie: {}", cookies[0])];

    // CPU of nginx's workers (its master only waits), and of our control plane.
    let nginx_workers: Vec<u32> = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", proxy.id()))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect();
    let zlh_pid = control.pid();
    let mut rows = Vec::new();
    for (label, file) in [("small (56 B)", "small.txt"), ("1 MiB", "big.bin")] {
        let (requests, p99) = wrk(&format!("http://127.0.0.1:{upstream_port}/{file}"), &[], DURATION)?;
        rows.push(vec![
            label.to_owned(),
            "-".into(),
            "upstream directly (the limit)".into(),
            format!("{requests:.0}"),
            format!("{p99:.2}"),
            "-".into(),
            "-".into(),
        ]);
        let proxies = [
            (
                "nginx proxy",
                format!("http://127.0.0.1:{proxy_port}/{file}"),
                Vec::new(),
                nginx_workers.clone(),
            ),
            ("zlh IDE proxy", format!("http://{address}/{file}"), ours.clone(), vec![zlh_pid]),
        ];
        for (_, url, headers, _) in &proxies {
            wrk(url, headers, WARM_UP)?;
        }
        for round in 1..=ROUNDS {
            let mut nginx_rate = f64::NAN;
            for (target, url, headers, pids) in &proxies {
                let cpu_before: f64 = pids.iter().map(|pid| cpu_seconds(*pid)).sum();
                let began = Instant::now();
                let (requests, p99) = wrk(url, headers, DURATION)?;
                let cpu = pids.iter().map(|pid| cpu_seconds(*pid)).sum::<f64>() - cpu_before;
                let served = requests * began.elapsed().as_secs_f64();
                if nginx_rate.is_nan() {
                    nginx_rate = requests;
                }
                rows.push(vec![
                    label.to_owned(),
                    round.to_string(),
                    (*target).to_owned(),
                    format!("{requests:.0}"),
                    format!("{p99:.2}"),
                    format!("{:.1}", cpu / served * 1e6),
                    format!("{:.2}×", requests / nginx_rate),
                ]);
            }
        }
    }
    print_table(
        &format!(
            "IDE proxy, HTTP: wrk -t2 -c{CONNECTIONS} -d{DURATION}, keep-alive, loopback, release build; {ROUNDS} rounds taking turns"
        ),
        &["response", "round", "through", "requests/s", "p99 ms", "proxy CPU µs/request", "vs nginx"],
        &rows,
    );

    let echo_port = echo.address.rsplit(':').next().unwrap_or_default();
    let ide_host = format!("dev-{}.localhost:{port}", ids[1]);
    let targets = ["echo server directly", "nginx proxy", "zlh IDE proxy"];
    let mut sockets = vec![
        websocket(&format!("ws://127.0.0.1:{echo_port}/socket"), &[], &echo.address).await?,
        websocket(&format!("ws://127.0.0.1:{proxy_port}/socket"), &[], &format!("127.0.0.1:{proxy_port}"))
            .await?,
        websocket(
            &format!("ws://{ide_host}/socket"),
            &[("cookie", cookies[1].clone()), ("origin", format!("http://{ide_host}"))],
            &address,
        )
        .await?,
    ];
    let mut rtt_rows = Vec::new();
    for round in 1..=ROUNDS {
        let times = round_trips_in_turn(&mut sockets).await?;
        let nginx_p99 = times[1].1;
        for (target, (p50, p99)) in targets.iter().zip(times) {
            rtt_rows.push(vec![
                round.to_string(),
                (*target).to_owned(),
                format!("{p50:.0}"),
                format!("{p99:.0}"),
                if *target == targets[0] { "-".into() } else { format!("{:.2}×", p99 / nginx_p99) },
            ]);
        }
    }
    print_table(
        &format!(
            "IDE proxy, WebSocket echo: {ROUND_TRIPS} sequential round trips of a small text message through each per round, one through each in turn, {ROUNDS} rounds"
        ),
        &["round", "through", "p50 µs", "p99 µs", "p99 vs nginx"],
        &rtt_rows,
    );
    // SIGTERM: nginx's master stops its workers (SIGKILL would orphan them).
    for child in [&mut upstream, &mut proxy] {
        if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = child.wait();
    }
    Ok(())
}
