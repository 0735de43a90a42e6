//! The IDE proxy: requests/s, p99 latency and CPU per request (of the proxy, the upstream and
//! wrk) through our proxy and through nginx proxying the same upstream, in rounds that take
//! turns (the machine's mood changes over a minute), and straight to the upstream (the limit),
//! for small and 1 MiB responses (wrk, keep-alive, loopback); and WebSocket echo round trips,
//! one through each in turn.
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

use super::{cpu_seconds, print_table, waited_children_cpu_seconds};

const CONNECTIONS: &str = "64";
/// Straight to the upstream.
const DURATION: &str = "8s";
/// Through a proxy, a round is [`TURNS`] turns this long through each, taking turns (who goes
/// first alternates), pooled: both proxies see the same moments of the machine, whose speed
/// changes from one second to the next on this VM.
const TURN: &str = "2s";
const TURNS: usize = 8;
/// Unmeasured load through each proxy before the first round, so neither is measured cold.
const WARM_UP: &str = "2s";
/// WebSocket round trips per round through each (a p99 of 2,000 was 20 samples, which one
/// descheduling of this VM's cores moved by tens of microseconds).
const ROUND_TRIPS: usize = 20_000;
/// Rounds per response size, and of WebSocket round trips.
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

/// A process's children.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// wrk's script: at the end, the requests, the microseconds, and the latency (µs) at each
/// percentile from 90 to 100 in steps of 0.01, so that turns can be pooled.
const REPORT: &str = r#"
done = function(summary, latency, requests)
  io.write(string.format("served %d %d\n", summary.requests, summary.duration))
  for i = 9000, 10000 do
    io.write(string.format("at %d %d\n", i, latency:percentile(i / 100)))
  end
end
"#;

/// What wrk measured, over one turn or several pooled.
#[derive(Default)]
struct Load {
    turns: Vec<Turn>,
}

struct Turn {
    requests: u64,
    microseconds: u64,
    /// The latency (µs) at percentiles 90.00, 90.01, ... 100.00.
    tail: Vec<u64>,
}

impl Load {
    fn rate(&self) -> f64 {
        let requests: u64 = self.turns.iter().map(|t| t.requests).sum();
        let microseconds: u64 = self.turns.iter().map(|t| t.microseconds).sum();
        requests as f64 / (microseconds as f64 / 1e6)
    }

    fn requests(&self) -> f64 {
        self.turns.iter().map(|t| t.requests as f64).sum()
    }

    /// The 99th percentile of all the turns' requests together: the least latency that at
    /// least 99 % of them took no longer than (each turn's share read off its tail).
    fn p99_ms(&self) -> f64 {
        let share_within = |latency: u64| -> f64 {
            self.turns
                .iter()
                .map(|turn| {
                    let at = turn.tail.partition_point(|&l| l <= latency);
                    let share = if at == 0 { 0.0 } else { 0.90 + (at - 1) as f64 / 10_000.0 };
                    share * turn.requests as f64
                })
                .sum::<f64>()
                / self.requests()
        };
        let mut candidates: Vec<u64> = self.turns.iter().flat_map(|t| t.tail.iter().copied()).collect();
        candidates.sort_unstable();
        candidates
            .into_iter()
            .find(|&l| share_within(l) >= 0.99 - 1e-9)
            .map_or(f64::NAN, |l| l as f64 / 1000.0)
    }
}

/// Runs wrk with [`REPORT`] (in `script`).
fn wrk(url: &str, headers: &[String], duration: &str, script: &Path) -> anyhow::Result<Load> {
    let mut command = Command::new("wrk");
    command.args(["-t2", "-c", CONNECTIONS, "-d", duration]).arg("-s").arg(script);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command.arg(url).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(!text.contains("Non-2xx"), "wrk saw errors on {url}:\n{text}");
    let numbers = |line: &str, prefix: &str| -> Option<(u64, u64)> {
        let (a, b) = line.strip_prefix(prefix)?.split_once(' ')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let (requests, microseconds) = text
        .lines()
        .find_map(|l| numbers(l, "served "))
        .ok_or_else(|| anyhow::anyhow!("no report from wrk on {url}:\n{text}"))?;
    let tail: Vec<u64> = text.lines().filter_map(|l| numbers(l, "at ")).map(|(_, latency)| latency).collect();
    anyhow::ensure!(tail.len() == 1001, "no latencies from wrk on {url}:\n{text}");
    Ok(Load { turns: vec![Turn { requests, microseconds, tail }] })
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

    // CPU of the nginx workers (their masters only wait), of our control plane, and of wrk.
    let nginx_workers = children(proxy.id());
    let upstream_workers = children(upstream.id());
    let zlh_pid = control.pid();
    let mut rows = Vec::new();
    let script = dir.path().join("report.lua");
    std::fs::write(&script, REPORT)?;
    let cpu_of = |pids: &[u32]| pids.iter().map(|pid| cpu_seconds(*pid)).sum::<f64>();
    for (label, file) in [("small (56 B)", "small.txt"), ("1 MiB", "big.bin")] {
        let direct = wrk(&format!("http://127.0.0.1:{upstream_port}/{file}"), &[], DURATION, &script)?;
        rows.push(vec![
            label.to_owned(),
            "-".into(),
            "upstream directly (the limit)".into(),
            format!("{:.0}", direct.rate()),
            format!("{:.2}", direct.p99_ms()),
            "-".into(),
            "-".into(),
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
            wrk(url, headers, WARM_UP, &script)?;
        }
        for round in 1..=ROUNDS {
            // Per proxy: its turns pooled, and CPU seconds of the proxy, the upstream and wrk.
            let mut loads = [Load::default(), Load::default()];
            let mut cpu = [[0.0; 3]; 2];
            for turn in 0..TURNS {
                for k in [turn % 2, 1 - turn % 2] {
                    let (_, url, headers, pids) = &proxies[k];
                    let before = [cpu_of(pids), cpu_of(&upstream_workers), waited_children_cpu_seconds()];
                    loads[k].turns.extend(wrk(url, headers, TURN, &script)?.turns);
                    let after = [cpu_of(pids), cpu_of(&upstream_workers), waited_children_cpu_seconds()];
                    for i in 0..3 {
                        cpu[k][i] += after[i] - before[i];
                    }
                }
            }
            let nginx_rate = loads[0].rate();
            for ((load, cpu), (target, ..)) in loads.iter().zip(cpu).zip(&proxies) {
                let mut row = vec![
                    label.to_owned(),
                    round.to_string(),
                    (*target).to_owned(),
                    format!("{:.0}", load.rate()),
                    format!("{:.2}", load.p99_ms()),
                ];
                row.extend(cpu.iter().map(|seconds| format!("{:.1}", seconds / load.requests() * 1e6)));
                row.push(format!("{:.2}×", load.rate() / nginx_rate));
                rows.push(row);
            }
        }
    }
    print_table(
        &format!(
            "IDE proxy, HTTP: wrk -t2 -c{CONNECTIONS}, keep-alive, loopback, release build; {ROUNDS} rounds of {TURNS} turns of {TURN} each, taking turns (pooled per round)"
        ),
        &[
            "response",
            "round",
            "through",
            "requests/s",
            "p99 ms",
            "CPU µs/request: proxy",
            "upstream",
            "wrk",
            "vs nginx",
        ],
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
