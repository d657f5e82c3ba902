//! proxy-bench: the same HTTP/1.1 load direct to an app, through mesh-proxy (native engine)
//! and through Envoy (`mesh-proxy run --engine envoy`), on one machine, in one go.
//!
//! The mesh is generated into a temporary config directory and served by a `meshd` child: a
//! Service `app.bench:9080` selecting one WorkloadEntry (the server, 127.88.0.20), a client
//! WorkloadEntry (127.88.0.10), a DestinationRule with two subsets that both select the
//! server and a VirtualService splitting between them (the soak shifts that weight). The app
//! is this binary started again as `proxy-bench app` (a thread-per-connection HTTP/1.1 server
//! answering every request with a 1 KB body) on 127.88.0.20:19080.
//!
//! Paths measured (two proxy hops, as local mode routes a request from one sidecar to
//! another): direct (load generator -> app), and load generator -> client sidecar outbound
//! 127.88.0.10:15001 (Host `app.bench:9080`) -> server sidecar inbound 127.88.0.20:9080 ->
//! app. Each sidecar has one worker thread (native: its single data-plane thread; Envoy:
//! `--concurrency 1`, the agent's default).
//!
//! For each path: latency percentiles at a fixed rate (open loop: each request has a
//! scheduled send time and latency is measured from it, so a stall is charged to every
//! request that should have gone out during it), maximum throughput (closed loop, N
//! connections, fixed time), CPU seconds of the proxy processes (utime + stime from
//! `/proc/PID/stat`, the proxy and its children) per 1,000 req/s, and resident memory idle
//! and under load. `--soak SECS` instead runs the fixed rate through the native sidecars for
//! SECS seconds while rewriting the VirtualService every few seconds, and reports failed
//! requests and the sidecars' RSS every 10 s.
//!
//! `--handshake` instead measures what mutual TLS costs (issue 7): see [`handshake`].
//!
//! A benchmark program, not a test: run it on a release build. Every wait is bounded; every
//! child is stopped and the generated directory removed on every path.
//!
//! Usage: proxy-bench [--rate R] [--rate-secs S] [--conns C] [--max-conns N] [--max-secs S]
//!                    [--soak SECS] [--only direct,native,envoy] [--meshd PATH]
//!                    [--mesh-proxy PATH] [--envoy PATH]
//!        proxy-bench --handshake [--max-conns N] [--max-secs S] [--close-secs S]

mod handshake;

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 88, 0, 10);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(127, 88, 0, 20);
const MESHD_IP: Ipv4Addr = Ipv4Addr::new(127, 88, 0, 1);
const SERVICE_PORT: u16 = 9080;
const APP_PORT: u16 = 19080;
const BODY_LEN: usize = 1024;
const HOST: &str = "app.bench:9080";
/// Linux's USER_HZ: the unit of utime/stime in /proc/PID/stat.
const CLOCK_TICKS: f64 = 100.0;

struct Options {
    rate: u32,
    rate_secs: u64,
    conns: usize,
    max_conns: usize,
    max_secs: u64,
    soak: Option<u64>,
    handshake: bool,
    /// The closed loop's duration with a new connection per request (`--handshake`).
    close_secs: u64,
    only: Vec<Mode>,
    meshd: PathBuf,
    mesh_proxy: PathBuf,
    envoy: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Direct,
    Native,
    Envoy,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Native => "mesh-proxy",
            Mode::Envoy => "envoy",
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
    let mut o = Options {
        rate: 1_000,
        rate_secs: 20,
        conns: 4,
        max_conns: 16,
        max_secs: 10,
        soak: None,
        handshake: false,
        close_secs: 5,
        only: vec![Mode::Direct, Mode::Native, Mode::Envoy],
        meshd: sibling("meshd"),
        mesh_proxy: sibling("mesh-proxy"),
        envoy: std::env::var_os("MESH_ENVOY_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("envoy")),
    };
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--rate" => o.rate = value()?.parse().context("--rate")?,
            "--rate-secs" => o.rate_secs = value()?.parse().context("--rate-secs")?,
            "--conns" => o.conns = value()?.parse().context("--conns")?,
            "--max-conns" => o.max_conns = value()?.parse().context("--max-conns")?,
            "--max-secs" => o.max_secs = value()?.parse().context("--max-secs")?,
            "--soak" => o.soak = Some(value()?.parse().context("--soak")?),
            "--handshake" => o.handshake = true,
            "--close-secs" => o.close_secs = value()?.parse().context("--close-secs")?,
            "--meshd" => o.meshd = PathBuf::from(value()?),
            "--mesh-proxy" => o.mesh_proxy = PathBuf::from(value()?),
            "--envoy" => o.envoy = PathBuf::from(value()?),
            "--only" => {
                o.only = value()?
                    .split(',')
                    .map(|m| match m {
                        "direct" => Ok(Mode::Direct),
                        "native" | "mesh-proxy" => Ok(Mode::Native),
                        "envoy" => Ok(Mode::Envoy),
                        other => Err(anyhow!("unknown mode {other:?}")),
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "-h" | "--help" => {
                println!(
                    "usage: proxy-bench [--rate R] [--rate-secs S] [--conns C] [--max-conns N] \
                     [--max-secs S] [--soak SECS] [--only direct,native,envoy] [--meshd PATH] \
                     [--mesh-proxy PATH] [--envoy PATH]\n       proxy-bench --handshake \
                     [--max-conns N] [--max-secs S] [--close-secs S]\n       \
                     proxy-bench app --listen ADDR"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if o.rate == 0
        || o.conns == 0
        || o.max_conns == 0
        || o.rate_secs == 0
        || o.max_secs == 0
        || o.close_secs == 0
    {
        bail!("rates, connection counts and durations must be positive");
    }
    Ok(o)
}

/// A binary next to this one (`target/release/meshd` beside `target/release/proxy-bench`).
fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

// ---------------------------------------------------------------------------------------
// The app: 1 KB answers on keep-alive connections

fn serve_app(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let body = "x".repeat(BODY_LEN);
    let response: Arc<[u8]> = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {BODY_LEN}\r\n\r\n{body}"
    )
    .into_bytes()
    .into();
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let response = Arc::clone(&response);
        thread::spawn(move || {
            let _ = app_connection(stream, &response);
        });
    }
    Ok(())
}

/// Reads requests (headers, then a body by content-length) and answers each.
fn app_connection(stream: TcpStream, response: &[u8]) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        let mut content_length = 0usize;
        let mut first = true;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                if first {
                    continue;
                }
                break;
            }
            first = false;
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        if content_length > 0 {
            std::io::copy(
                &mut (&mut reader).take(content_length as u64),
                &mut std::io::sink(),
            )?;
        }
        writer.write_all(response)?;
    }
}

// ---------------------------------------------------------------------------------------
// The load generator's HTTP/1.1 client (keep-alive, blocking, one request at a time)

struct Conn {
    target: SocketAddr,
    stream: Option<(TcpStream, BufReader<TcpStream>)>,
    request: Vec<u8>,
    /// A new connection per request (`connection: close`).
    close: bool,
}

impl Conn {
    fn new(target: SocketAddr, host: &str) -> Conn {
        let request =
            format!("GET /bench HTTP/1.1\r\nhost: {host}\r\nuser-agent: proxy-bench\r\n\r\n");
        Conn {
            target,
            stream: None,
            request: request.into_bytes(),
            close: false,
        }
    }

    /// A client that opens a new connection for every request and asks the server to
    /// close it after the response.
    fn closing(target: SocketAddr, host: &str) -> Conn {
        let request = format!(
            "GET /bench HTTP/1.1\r\nhost: {host}\r\nuser-agent: proxy-bench\r\nconnection: close\r\n\r\n"
        );
        Conn {
            target,
            stream: None,
            request: request.into_bytes(),
            close: true,
        }
    }

    /// One request; Ok(status). On an I/O error the connection is dropped (next call
    /// reconnects).
    fn request(&mut self) -> std::io::Result<u16> {
        let result = self.request_inner();
        if result.is_err() || self.close {
            self.stream = None;
        }
        result
    }

    fn request_inner(&mut self) -> std::io::Result<u16> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.target, Duration::from_secs(2))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let r = BufReader::with_capacity(16 * 1024, s.try_clone()?);
            self.stream = Some((s, r));
        }
        let Some((w, r)) = self.stream.as_mut() else {
            return Err(std::io::Error::other("no connection"));
        };
        w.write_all(&self.request)?;
        if self.close {
            // The connection is dropped after this answer whatever it says.
            return read_response_closing(r).map(|(status, _)| status);
        }
        read_response(r)
    }
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidData, msg.to_owned())
}

/// Reads one response (content-length or chunked body); returns its status.
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<u16> {
    let (status, close) = read_response_closing(r)?;
    if close {
        return Err(std::io::Error::new(
            ErrorKind::ConnectionAborted,
            "server closed",
        ));
    }
    Ok(status)
}

/// Reads one response; returns its status and whether the server closes the connection.
fn read_response_closing(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                "eof in headers",
            ));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.eq_ignore_ascii_case("chunked");
            } else if k.eq_ignore_ascii_case("connection") {
                close = v.eq_ignore_ascii_case("close");
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailers until an empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            std::io::copy(&mut r.by_ref().take(size + 2), &mut std::io::sink())?;
        }
    } else if let Some(n) = length {
        let copied = std::io::copy(&mut r.by_ref().take(n), &mut std::io::sink())?;
        if copied != n {
            return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "short body"));
        }
    }
    Ok((status, close))
}

// ---------------------------------------------------------------------------------------
// Load: open loop at a fixed rate, closed loop for throughput

#[derive(Default)]
struct RateResult {
    latencies_us: Vec<u64>,
    sent: u64,
    failed: u64,
}

/// `rate` req/s for `secs` over `conns` connections, each connection sending its share on
/// schedule; latency from the scheduled time. `tick` is called every second on the
/// coordinating thread (the soak rewrites config and samples memory there).
fn fixed_rate(
    target: SocketAddr,
    host: &str,
    rate: u32,
    duration: Duration,
    conns: usize,
    mut tick: impl FnMut(Duration),
) -> RateResult {
    let interval = Duration::from_secs_f64(f64::from(rate.max(1)).recip() * conns as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let total = Arc::new(Mutex::new(RateResult::default()));
    let mut handles = Vec::new();
    for c in 0..conns {
        let total = Arc::clone(&total);
        let host = host.to_owned();
        handles.push(thread::spawn(move || {
            let mut conn = Conn::new(target, &host);
            let offset = interval.mul_f64(c as f64 / conns as f64);
            let mut out = RateResult::default();
            let mut i: u32 = 0;
            loop {
                let scheduled = start + offset + interval * i;
                if scheduled >= start + duration {
                    break;
                }
                let now = Instant::now();
                if scheduled > now {
                    thread::sleep(scheduled - now);
                }
                out.sent += 1;
                match conn.request() {
                    Ok(200) => {
                        let us = u64::try_from(scheduled.elapsed().as_micros()).unwrap_or(u64::MAX);
                        out.latencies_us.push(us);
                    }
                    _ => out.failed += 1,
                }
                i += 1;
            }
            if let Ok(mut t) = total.lock() {
                t.sent += out.sent;
                t.failed += out.failed;
                t.latencies_us.extend(out.latencies_us);
            }
        }));
    }
    let mut next = start + Duration::from_secs(1);
    while !handles.iter().all(thread::JoinHandle::is_finished) {
        let now = Instant::now();
        if now >= next {
            tick(now.saturating_duration_since(start));
            next += Duration::from_secs(1);
        }
        thread::sleep(Duration::from_millis(20));
    }
    for h in handles {
        let _ = h.join();
    }
    let mut r = std::mem::take(
        &mut *total
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    r.latencies_us.sort_unstable();
    r
}

/// Closed loop: `conns` connections each sending back-to-back for `duration`.
/// Returns (completed 200s, failed).
fn max_throughput(target: SocketAddr, host: &str, conns: usize, duration: Duration) -> (u64, u64) {
    closed_loop(target, host, conns, duration, false)
}

/// Closed loop as [`max_throughput`], with a new connection per request when `close`.
fn closed_loop(
    target: SocketAddr,
    host: &str,
    conns: usize,
    duration: Duration,
    close: bool,
) -> (u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
            let host = host.to_owned();
            thread::spawn(move || {
                let mut conn = if close {
                    Conn::closing(target, &host)
                } else {
                    Conn::new(target, &host)
                };
                while !stop.load(Ordering::Relaxed) {
                    match conn.request() {
                        Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------
// Processes

/// utime+stime (seconds), VmRSS and VmHWM (KiB) of one process.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    cpu: f64,
    rss_kib: u64,
    hwm_kib: u64,
}

fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3; utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some(Usage {
        cpu: (utime + stime) / CLOCK_TICKS,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

/// The direct children of `pid` (Envoy under its agent), from /proc/*/stat.
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s[s.rfind(')')? + 2..].to_owned();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// A child process: SIGTERM (bounded grace), then SIGKILL, on drop; its own children
/// (Envoy under an agent) are killed too if still there.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited: {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let kids = children(self.pid());
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            for k in kids {
                if usage(k).is_some() {
                    let _ = Command::new("kill")
                        .args(["-KILL", &k.to_string()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
}

/// The generated directory, removed on drop unless kept (after a failure, for its logs).
struct WorkDir(PathBuf, bool);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn wait_for_port(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listening on {addr} after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Polls until a request through `target` answers 200 `n` times in a row.
fn wait_for_route(target: SocketAddr, procs: &mut [Proc], timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut in_a_row = 0;
    loop {
        for p in procs.iter_mut() {
            p.ensure_running()?;
        }
        let mut conn = Conn::new(target, HOST);
        match conn.request() {
            Ok(200) => in_a_row += 1,
            _ => in_a_row = 0,
        }
        if in_a_row >= 20 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no route through {target} after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(if in_a_row > 0 { 10 } else { 200 }));
    }
}

// ---------------------------------------------------------------------------------------
// The mesh config

fn mesh_yaml() -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n  labels:\n    istio-injection: enabled\n---\n\
         apiVersion: v1\nkind: Service\nmetadata:\n  name: app\n  namespace: bench\nspec:\n  selector:\n    app: app\n  \
         ports:\n  - name: http\n    port: {SERVICE_PORT}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: client\n  namespace: bench\n  \
         labels:\n    app: client\nspec:\n  address: {CLIENT_IP}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: app\n  namespace: bench\n  \
         labels:\n    app: app\n    track: stable\nspec:\n  address: {SERVER_IP}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: app\n  namespace: bench\n  \
         annotations:\n    galley.istio.io/analyze-suppress: IST0173\nspec:\n  host: app.bench.svc.cluster.local\n  \
         subsets:\n  - name: a\n    labels:\n      app: app\n  - name: b\n    labels:\n      track: stable\n---\n"
    )
}

/// Both subsets select the one server, so a weight shift changes config, never the answer.
fn virtual_service(a_weight: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: app\n  namespace: bench\n\
         spec:\n  hosts:\n  - app.bench.svc.cluster.local\n  http:\n  - route:\n    - destination:\n        \
         host: app.bench.svc.cluster.local\n        subset: a\n      weight: {a_weight}\n    - destination:\n        \
         host: app.bench.svc.cluster.local\n        subset: b\n      weight: {b}\n",
        b = 100 - a_weight
    )
}

fn replace_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// One run per mode

struct Figures {
    mode: Mode,
    p50: f64,
    p99: f64,
    p999: f64,
    rate_sent: u64,
    rate_failed: u64,
    achieved_rate: f64,
    max_rps: f64,
    max_failed: u64,
    /// CPU seconds per second of the proxy processes at the fixed rate, scaled to 1,000 req/s.
    cpu_per_krps: Option<f64>,
    /// (label, idle RSS KiB, RSS under load KiB, HWM KiB) per proxy process group.
    memory: Vec<(String, u64, u64, u64)>,
}

/// The proxy processes of one mode: (label, pids). Native: each sidecar. Envoy: the two
/// agents and the two Envoys, reported as groups.
fn groups(mode: Mode, sidecars: &[Proc]) -> Vec<(String, Vec<u32>)> {
    match mode {
        Mode::Direct => Vec::new(),
        Mode::Native => vec![(
            "mesh-proxy (2 sidecars)".to_owned(),
            sidecars.iter().map(Proc::pid).collect(),
        )],
        Mode::Envoy => vec![
            (
                "envoy (2 processes)".to_owned(),
                sidecars.iter().flat_map(|p| children(p.pid())).collect(),
            ),
            (
                "mesh-proxy agent (2)".to_owned(),
                sidecars.iter().map(Proc::pid).collect(),
            ),
        ],
    }
}

fn sum(pids: &[u32]) -> Usage {
    pids.iter()
        .filter_map(|p| usage(*p))
        .fold(Usage::default(), |a, u| Usage {
            cpu: a.cpu + u.cpu,
            rss_kib: a.rss_kib + u.rss_kib,
            hwm_kib: a.hwm_kib + u.hwm_kib,
        })
}

/// Fields drop in order: the processes stop before their directory goes.
struct Mesh {
    procs: Vec<Proc>,
    config: PathBuf,
    logs: PathBuf,
    dir: WorkDir,
}

fn xds_addr() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(MESHD_IP, 15010))
}

/// meshd and the app, running.
fn start_mesh(o: &Options) -> anyhow::Result<Mesh> {
    start_mesh_with(o, "", &mesh_yaml(), false)
}

/// meshd (with its CA in `DIR/ca` when `ca`) on the mesh `yaml`, and the app, running.
fn start_mesh_with(o: &Options, tag: &str, yaml: &str, ca: bool) -> anyhow::Result<Mesh> {
    let dir = std::env::temp_dir().join(format!("proxy-bench-{}{tag}", std::process::id()));
    std::fs::create_dir_all(dir.join("config"))?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let work = WorkDir(dir.clone(), false);
    let config = dir.join("config");
    std::fs::write(config.join("mesh.yaml"), yaml)?;
    std::fs::write(config.join("vs.yaml"), virtual_service(50))?;
    let logs = dir.join("logs");
    let mut procs = Vec::new();
    let mut meshd = Command::new(&o.meshd);
    meshd
        .arg("--config-dir")
        .arg(&config)
        .arg("--xds-address")
        .arg(xds_addr().to_string())
        .arg("--debug-address")
        .arg(SocketAddrV4::new(MESHD_IP, 15014).to_string());
    if ca {
        meshd.arg("--ca-dir").arg(dir.join("ca"));
    }
    procs.push(Proc::spawn("meshd", meshd, &logs.join("meshd.log"))?);
    let mut app = Command::new(std::env::current_exe()?);
    app.args([
        "app",
        "--listen",
        &SocketAddrV4::new(SERVER_IP, APP_PORT).to_string(),
    ]);
    procs.push(Proc::spawn("app", app, &logs.join("app.log"))?);
    wait_for_port(xds_addr(), Duration::from_secs(20)).context("meshd did not start")?;
    wait_for_port(
        SocketAddr::V4(SocketAddrV4::new(SERVER_IP, APP_PORT)),
        Duration::from_secs(10),
    )
    .context("app did not start")?;
    Ok(Mesh {
        procs,
        config,
        logs,
        dir: work,
    })
}

fn sidecar_command(
    o: &Options,
    mode: Mode,
    ns_name: &str,
    ip: Ipv4Addr,
    labels: &[&str],
) -> Command {
    let mut cmd = Command::new(&o.mesh_proxy);
    let engine = if mode == Mode::Envoy {
        "envoy"
    } else {
        "native"
    };
    cmd.args(["run", "--engine", engine])
        .args(["--xds-address", &xds_addr().to_string()])
        .args(["--workload", ns_name])
        .args(["--ip", &ip.to_string()])
        .args(["--proxy-type", "sidecar"]);
    for l in labels {
        cmd.args(["--label", l]);
    }
    if mode == Mode::Native {
        // meshd configures no access log for Envoy; the native engine's is off to match.
        cmd.arg("--no-access-log");
    }
    if mode == Mode::Envoy {
        cmd.arg("--envoy-bin")
            .arg(&o.envoy)
            .env("MESH_ENVOY_BIN", &o.envoy);
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    cmd
}

fn start_sidecars(o: &Options, mesh: &Mesh, mode: Mode) -> anyhow::Result<Vec<Proc>> {
    let tag = mode.name();
    let client = Proc::spawn(
        "client sidecar",
        sidecar_command(o, mode, "bench/client", CLIENT_IP, &["app=client"]),
        &mesh.logs.join(format!("{tag}-client.log")),
    )?;
    let server = Proc::spawn(
        "server sidecar",
        sidecar_command(
            o,
            mode,
            "bench/app",
            SERVER_IP,
            &["app=app", "track=stable"],
        ),
        &mesh.logs.join(format!("{tag}-server.log")),
    )?;
    let mut sidecars = vec![client, server];
    let target = SocketAddr::V4(SocketAddrV4::new(CLIENT_IP, 15001));
    wait_for_route(target, &mut sidecars, Duration::from_secs(60)).with_context(|| {
        format!(
            "{tag} sidecars did not route (logs in {})",
            mesh.logs.display()
        )
    })?;
    Ok(sidecars)
}

fn run_mode(o: &Options, mesh: &Mesh, mode: Mode) -> anyhow::Result<Figures> {
    let (target, sidecars) = match mode {
        Mode::Direct => (
            SocketAddr::V4(SocketAddrV4::new(SERVER_IP, APP_PORT)),
            Vec::new(),
        ),
        _ => (
            SocketAddr::V4(SocketAddrV4::new(CLIENT_IP, 15001)),
            start_sidecars(o, mesh, mode)?,
        ),
    };
    eprintln!("[{}] warming up", mode.name());
    let _ = fixed_rate(
        target,
        HOST,
        o.rate,
        Duration::from_secs(2),
        o.conns,
        |_| {},
    );
    thread::sleep(Duration::from_secs(2));
    let groups = groups(mode, &sidecars);
    let idle: Vec<Usage> = groups.iter().map(|(_, p)| sum(p)).collect();

    eprintln!("[{}] {} req/s for {} s", mode.name(), o.rate, o.rate_secs);
    let all: Vec<u32> = groups.iter().flat_map(|(_, p)| p.clone()).collect();
    let before = sum(&all);
    let t0 = Instant::now();
    let fixed = fixed_rate(
        target,
        HOST,
        o.rate,
        Duration::from_secs(o.rate_secs),
        o.conns,
        |_| {},
    );
    let elapsed = t0.elapsed().as_secs_f64();
    let after = sum(&all);
    let achieved_rate = fixed.latencies_us.len() as f64 / elapsed;
    let cpu_per_krps = (mode != Mode::Direct)
        .then(|| (after.cpu - before.cpu) / elapsed * 1000.0 / achieved_rate.max(1.0));

    eprintln!(
        "[{}] closed loop, {} connections, {} s",
        mode.name(),
        o.max_conns,
        o.max_secs
    );
    // Sample memory in the middle of the closed-loop run.
    let sampler = {
        let groups = groups.clone();
        let half = Duration::from_secs(o.max_secs) / 2;
        thread::spawn(move || {
            thread::sleep(half);
            groups.iter().map(|(_, p)| sum(p)).collect::<Vec<_>>()
        })
    };
    let (ok, failed) = max_throughput(target, HOST, o.max_conns, Duration::from_secs(o.max_secs));
    let loaded = sampler.join().unwrap_or_default();
    let memory = groups
        .iter()
        .enumerate()
        .map(|(i, (label, pids))| {
            let end = sum(pids);
            (
                label.clone(),
                idle.get(i).map_or(0, |u| u.rss_kib),
                loaded.get(i).map_or(end.rss_kib, |u| u.rss_kib),
                end.hwm_kib,
            )
        })
        .collect();
    drop(sidecars);
    Ok(Figures {
        mode,
        p50: percentile(&fixed.latencies_us, 50.0),
        p99: percentile(&fixed.latencies_us, 99.0),
        p999: percentile(&fixed.latencies_us, 99.9),
        rate_sent: fixed.sent,
        rate_failed: fixed.failed,
        achieved_rate,
        max_rps: ok as f64 / o.max_secs as f64,
        max_failed: failed,
        cpu_per_krps,
        memory,
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(o: &Options, figures: &[Figures]) -> String {
    let mut s = String::new();
    let direct = figures.iter().find(|f| f.mode == Mode::Direct);
    let _ = writeln!(
        s,
        "Fixed rate {} req/s for {} s over {} keep-alive connections (open loop, latency from the \
         scheduled send time); closed loop {} connections for {} s; 1 KB responses.\n",
        o.rate, o.rate_secs, o.conns, o.max_conns, o.max_secs
    );
    let _ = writeln!(
        s,
        "| path | p50 ms | p99 ms | p99.9 ms | added p99 ms | failed | max req/s | CPU s/s per 1k req/s |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for f in figures {
        let added = match direct {
            Some(d) if f.mode != Mode::Direct => format!("{:.3}", f.p99 - d.p99),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {:.3} | {} | {}/{} | {:.0} ({} failed) | {} |",
            f.mode.name(),
            f.p50,
            f.p99,
            f.p999,
            added,
            f.rate_failed,
            f.rate_sent,
            f.max_rps,
            f.max_failed,
            f.cpu_per_krps.map_or("-".to_owned(), |c| format!("{c:.3}")),
        );
    }
    let _ = writeln!(
        s,
        "\n| proxy processes | RSS idle MiB | RSS under load MiB | VmHWM MiB |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for f in figures {
        for (label, idle, loaded, hwm) in &f.memory {
            let _ = writeln!(
                s,
                "| {label} | {:.1} | {:.1} | {:.1} |",
                mib(*idle),
                mib(*loaded),
                mib(*hwm)
            );
        }
    }
    for f in figures {
        let _ = writeln!(
            s,
            "\n{}: achieved fixed rate {:.0} req/s",
            f.mode.name(),
            f.achieved_rate
        );
    }
    s
}

fn soak(o: &Options, mesh: &Mesh, secs: u64) -> anyhow::Result<String> {
    let mut sidecars = start_sidecars(o, mesh, Mode::Native)?;
    let target = SocketAddr::V4(SocketAddrV4::new(CLIENT_IP, 15001));
    let pids: Vec<u32> = sidecars.iter().map(Proc::pid).collect();
    let vs = mesh.config.join("vs.yaml");
    let mut samples: Vec<(u64, Vec<u64>)> = vec![(
        0,
        pids.iter()
            .map(|p| usage(*p).map_or(0, |u| u.rss_kib))
            .collect(),
    )];
    let mut pushes = 0u32;
    let mut write_errors = 0u32;
    eprintln!(
        "[soak] {} req/s for {secs} s, VirtualService rewritten every 5 s",
        o.rate
    );
    let result = fixed_rate(
        target,
        HOST,
        o.rate,
        Duration::from_secs(secs),
        o.conns,
        |at| {
            let s = at.as_secs();
            if s > 0 && s.is_multiple_of(5) {
                pushes += 1;
                let weight = [50, 90, 10, 70, 30][pushes as usize % 5];
                if replace_file(&vs, &virtual_service(weight)).is_err() {
                    write_errors += 1;
                }
            }
            if s > 0 && s.is_multiple_of(10) {
                samples.push((
                    s,
                    pids.iter()
                        .map(|p| usage(*p).map_or(0, |u| u.rss_kib))
                        .collect(),
                ));
            }
        },
    );
    for p in &mut sidecars {
        p.ensure_running()?;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "soak: {} req/s for {secs} s through the native sidecars, {pushes} VirtualService rewrites \
         ({write_errors} write errors)\nrequests sent {}, failed {}; p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms\n",
        o.rate,
        result.sent,
        result.failed,
        percentile(&result.latencies_us, 50.0),
        percentile(&result.latencies_us, 99.0),
        percentile(&result.latencies_us, 99.9),
    );
    let _ = writeln!(
        out,
        "| t s | client sidecar RSS MiB | server sidecar RSS MiB |"
    );
    let _ = writeln!(out, "|---:|---:|---:|");
    for (t, rss) in &samples {
        let _ = writeln!(
            out,
            "| {t} | {:.1} | {:.1} |",
            mib(rss.first().copied().unwrap_or(0)),
            mib(rss.get(1).copied().unwrap_or(0))
        );
    }
    let hwm: Vec<String> = pids
        .iter()
        .map(|p| usage(*p).map_or("?".to_owned(), |u| format!("{:.1}", mib(u.hwm_kib))))
        .collect();
    let _ = writeln!(
        out,
        "\nVmHWM at the end (client, server): {} MiB",
        hwm.join(", ")
    );
    Ok(out)
}

fn run(o: &Options) -> anyhow::Result<()> {
    for (what, p) in [("meshd", &o.meshd), ("mesh-proxy", &o.mesh_proxy)] {
        if !p.exists() {
            bail!(
                "{what} not found at {} (build it --release, or pass --{what} PATH)",
                p.display()
            );
        }
    }
    if o.handshake {
        let out = handshake::run(o)?;
        println!("{out}");
        println!("```markdown\n{out}```");
        return Ok(());
    }
    let mut mesh = start_mesh(o)?;
    let result = run_on(o, &mut mesh);
    if let Err(e) = &result {
        mesh.dir.1 = true;
        eprintln!("proxy-bench: {e:#}; logs kept in {}", mesh.logs.display());
    }
    result
}

fn run_on(o: &Options, mesh: &mut Mesh) -> anyhow::Result<()> {
    if let Some(secs) = o.soak {
        let out = soak(o, mesh, secs)?;
        for p in &mut mesh.procs {
            p.ensure_running()?;
        }
        println!("{out}");
        return Ok(());
    }
    let mut figures = Vec::new();
    for mode in &o.only {
        figures.push(run_mode(o, mesh, *mode)?);
        for p in &mut mesh.procs {
            p.ensure_running()?;
        }
    }
    let table = report(o, &figures);
    println!("{table}");
    println!("```markdown\n{table}```");
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("app") {
        let listen = args.nth(2).and_then(|a| a.parse::<SocketAddr>().ok());
        let Some(addr) = listen else {
            eprintln!("usage: proxy-bench app --listen ADDR");
            return ExitCode::from(2);
        };
        return match serve_app(addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("proxy-bench app: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let result = parse_args(args).and_then(|o| run(&o));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
