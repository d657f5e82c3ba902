//! `proxy-bench --handshake`: what mutual TLS costs between two Envoy sidecars (issue 7,
//! "requests per second with mTLS versus without").
//!
//! The same two-sidecar path as the main benchmark (load generator -> client sidecar
//! outbound 127.88.0.10:15001 -> server sidecar inbound 127.88.0.20:9080 -> app), through
//! Envoy (`mesh-proxy run --engine envoy`), twice: plaintext (meshd without a CA, sidecars
//! without certificates), and mTLS (meshd `--ca-dir`, sidecars `--ca-dir`, both
//! WorkloadEntries labelled `security.istio.io/tlsMode: istio`, PeerAuthentication STRICT
//! in the namespace, so the client sidecar uses auto mTLS and the server takes only mTLS).
//! Each is measured closed loop (`--max-conns` connections sending back to back) with
//! keep-alive for `--max-secs`, then with a new connection per request for `--close-secs`:
//! the load generator closes each connection and a DestinationRule sets
//! `maxRequestsPerConnection: 1`, so every request also opens a new sidecar-to-sidecar
//! connection, which under mTLS is a full TLS handshake (handshake-bound). The sidecars'
//! own counters are read to show it: upstream connections the client sidecar opened and
//! TLS handshakes the server sidecar's inbound listener completed, per request. The native
//! engine (`mesh-proxy run --engine native --ca-dir`) is measured with keep-alive only: it
//! has no `maxRequestsPerConnection` and no connection or handshake counters to force and
//! check a handshake per request.

use std::fmt::Write as _;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::{
    CLIENT_IP, Conn, HOST, Mode, Options, Proc, SERVER_IP, SERVICE_PORT, closed_loop, groups,
    replace_file, sidecar_command, start_mesh_with, sum, wait_for_route,
};

/// One engine and security setting's figures.
struct Figures {
    mode: Mode,
    mtls: bool,
    keepalive_rps: f64,
    keepalive_failed: u64,
    keepalive_cpu_ms: Option<f64>,
    /// The new-connection run (Envoy only: the native engine has no
    /// `maxRequestsPerConnection` nor connection and handshake counters to check it by).
    close: Option<Close>,
}

struct Close {
    rps: f64,
    failed: u64,
    cpu_ms: Option<f64>,
    /// Upstream connections the client sidecar opened per request.
    upstream_cx_per_rq: f64,
    /// TLS handshakes on the server sidecar's inbound listener per request.
    handshakes_per_rq: f64,
}

/// The mesh: one service, the client and server WorkloadEntries (meshed, with service
/// accounts), subsets `a` and `b` (the VirtualService the main benchmark writes splits
/// between them), and with `mtls` a namespace-wide STRICT PeerAuthentication.
fn mesh_yaml(mtls: bool, one_request_per_connection: bool) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n  labels:\n    istio-injection: enabled\n---\n\
         apiVersion: v1\nkind: Service\nmetadata:\n  name: app\n  namespace: bench\nspec:\n  selector:\n    app: app\n  \
         ports:\n  - name: http\n    port: {SERVICE_PORT}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: client\n  namespace: bench\n  \
         labels:\n    app: client\n    security.istio.io/tlsMode: istio\nspec:\n  address: {CLIENT_IP}\n  serviceAccount: client\n---\n\
         apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: app\n  namespace: bench\n  \
         labels:\n    app: app\n    track: stable\n    security.istio.io/tlsMode: istio\nspec:\n  address: {SERVER_IP}\n  serviceAccount: app\n---\n\
         apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: app\n  namespace: bench\n  \
         annotations:\n    galley.istio.io/analyze-suppress: IST0173\nspec:\n  host: app.bench.svc.cluster.local\n"
    );
    if one_request_per_connection {
        y.push_str("  trafficPolicy:\n    connectionPool:\n      http:\n        maxRequestsPerConnection: 1\n");
    }
    y.push_str(
        "  subsets:\n  - name: a\n    labels:\n      app: app\n  - name: b\n    labels:\n      track: stable\n---\n",
    );
    if mtls {
        y.push_str(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  \
             namespace: bench\nspec:\n  mtls:\n    mode: STRICT\n",
        );
    }
    y
}

/// The response (head and body) of `GET path` on an admin API.
fn admin_get(admin: SocketAddr, path: &str) -> anyhow::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&admin, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// Whether the native server sidecar counted requests over mutual TLS (its Istio metrics'
/// `connection_security_policy`).
fn native_served_mtls() -> anyhow::Result<bool> {
    Ok(admin_get(admin(SERVER_IP), "/stats/prometheus")?
        .contains("connection_security_policy=\"mutual_tls\""))
}

/// Sums the counters of an Envoy admin's `/stats` whose name satisfies `keep`.
fn envoy_counter(admin: SocketAddr, keep: impl Fn(&str) -> bool) -> anyhow::Result<u64> {
    let body = admin_get(admin, "/stats")?;
    Ok(body
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(name, _)| keep(name))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum())
}

fn admin(ip: std::net::Ipv4Addr) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, 15000))
}

/// Connections the client sidecar opened to the service's outbound clusters.
fn upstream_cx() -> anyhow::Result<u64> {
    envoy_counter(admin(CLIENT_IP), |n| {
        n.starts_with(&format!("cluster.outbound|{SERVICE_PORT}|"))
            && n.ends_with(".upstream_cx_total")
    })
}

/// TLS handshakes completed on the server sidecar's inbound listener.
fn server_handshakes() -> anyhow::Result<u64> {
    let listener = format!("listener.{SERVER_IP}_{SERVICE_PORT}.ssl.handshake");
    envoy_counter(admin(SERVER_IP), |n| n == listener)
}

/// Waits until the client sidecar opens a connection per request (the DestinationRule
/// with `maxRequestsPerConnection: 1` has reached it).
fn wait_one_request_per_connection(target: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let before = upstream_cx()?;
        let mut conn = Conn::new(target, HOST);
        let mut ok = 0;
        for _ in 0..10 {
            if conn.request().is_ok_and(|s| s == 200) {
                ok += 1;
            }
        }
        if ok == 10 && upstream_cx()? - before >= 10 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the client sidecar still reuses upstream connections after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// CPU milliseconds of `pids` per request over a closed-loop run.
fn cpu_ms(before: f64, after: f64, requests: u64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    (requests > 0).then(|| (after - before) * 1000.0 / requests as f64)
}

fn measure(o: &Options, mode: Mode, mtls: bool) -> anyhow::Result<Figures> {
    let tag = format!(
        "{}-{}",
        mode.name(),
        if mtls { "mtls" } else { "plaintext" }
    );
    let mesh = start_mesh_with(o, &format!("-{tag}"), &mesh_yaml(mtls, false), mtls)?;
    let ca = mesh.dir.0.join("ca");
    let sidecar = |ns_name: &str, ip, labels: &[&str], sa: &str, log: &str| {
        let mut cmd = sidecar_command(o, mode, ns_name, ip, labels);
        cmd.args(["--service-account", sa]);
        if mtls {
            cmd.arg("--ca-dir").arg(&ca);
        }
        Proc::spawn(log, cmd, &mesh.logs.join(format!("{tag}-{log}.log")))
    };
    let tls_label = "security.istio.io/tlsMode=istio";
    let mut sidecars = vec![
        sidecar(
            "bench/client",
            CLIENT_IP,
            &["app=client", tls_label],
            "client",
            "client",
        )?,
        sidecar(
            "bench/app",
            SERVER_IP,
            &["app=app", "track=stable", tls_label],
            "app",
            "server",
        )?,
    ];
    let target = SocketAddr::V4(SocketAddrV4::new(CLIENT_IP, 15001));
    wait_for_route(target, &mut sidecars, Duration::from_secs(60)).with_context(|| {
        format!(
            "{tag} sidecars did not route (logs in {})",
            mesh.logs.display()
        )
    })?;
    if mode == Mode::Envoy {
        let handshakes = server_handshakes()?;
        if mtls != (handshakes > 0) {
            bail!("{tag}: the server sidecar completed {handshakes} TLS handshakes while routing");
        }
    } else if mtls != native_served_mtls()? {
        bail!("{tag}: the server sidecar's requests were not labelled as expected (mutual_tls)");
    }
    let pids: Vec<u32> = groups(mode, &sidecars)
        .into_iter()
        .flat_map(|(_, p)| p)
        .collect();

    eprintln!("[{tag}] warming up");
    let _ = closed_loop(target, HOST, o.max_conns, Duration::from_secs(2), false);
    eprintln!(
        "[{tag}] closed loop, keep-alive, {} connections, {} s",
        o.max_conns, o.max_secs
    );
    let cpu0 = sum(&pids).cpu;
    let (ka_ok, ka_failed) = closed_loop(
        target,
        HOST,
        o.max_conns,
        Duration::from_secs(o.max_secs),
        false,
    );
    let keepalive_cpu_ms = cpu_ms(cpu0, sum(&pids).cpu, ka_ok);
    #[allow(clippy::cast_precision_loss)]
    let keepalive_rps = ka_ok as f64 / o.max_secs as f64;
    if mode != Mode::Envoy {
        for p in &mut sidecars {
            p.ensure_running()?;
        }
        return Ok(Figures {
            mode,
            mtls,
            keepalive_rps,
            keepalive_failed: ka_failed,
            keepalive_cpu_ms,
            close: None,
        });
    }

    replace_file(&mesh.config.join("mesh.yaml"), &mesh_yaml(mtls, true))?;
    wait_one_request_per_connection(target, Duration::from_secs(30))?;
    // Let the TIME_WAIT sockets of the keep-alive run not matter: a short pause.
    std::thread::sleep(Duration::from_secs(1));
    eprintln!(
        "[{tag}] closed loop, a new connection per request, {} connections, {} s",
        o.max_conns, o.close_secs
    );
    let (cx0, hs0, cpu0) = (upstream_cx()?, server_handshakes()?, sum(&pids).cpu);
    let (cl_ok, cl_failed) = closed_loop(
        target,
        HOST,
        o.max_conns,
        Duration::from_secs(o.close_secs),
        true,
    );
    let close_cpu_ms = cpu_ms(cpu0, sum(&pids).cpu, cl_ok);
    let (cx1, hs1) = (upstream_cx()?, server_handshakes()?);
    for p in &mut sidecars {
        p.ensure_running()?;
    }
    #[allow(clippy::cast_precision_loss)]
    let per = |d: u64| d as f64 / (cl_ok + cl_failed).max(1) as f64;
    #[allow(clippy::cast_precision_loss)]
    Ok(Figures {
        mode,
        mtls,
        keepalive_rps,
        keepalive_failed: ka_failed,
        keepalive_cpu_ms,
        close: Some(Close {
            rps: cl_ok as f64 / o.close_secs as f64,
            failed: cl_failed,
            cpu_ms: close_cpu_ms,
            upstream_cx_per_rq: per(cx1.saturating_sub(cx0)),
            handshakes_per_rq: per(hs1.saturating_sub(hs0)),
        }),
    })
}

/// Runs both settings and returns the Markdown report.
pub(super) fn run(o: &Options) -> anyhow::Result<String> {
    let mut figures = Vec::new();
    for mode in [Mode::Envoy, Mode::Native] {
        if o.only.contains(&mode) {
            figures.push(measure(o, mode, false)?);
            figures.push(measure(o, mode, true)?);
        }
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Two sidecars (client -> server; Envoy --concurrency 1, mesh-proxy one worker thread), \
         closed loop over {} connections: keep-alive for {} s, then (Envoy) a new connection \
         per request for {} s (the load generator closes each connection; \
         maxRequestsPerConnection 1 makes the client sidecar open a new upstream connection \
         each time). CPU: the sidecar processes (Envoy: both Envoys and both agents), ms per \
         request.\n",
        o.max_conns, o.max_secs, o.close_secs
    );
    let _ = writeln!(
        s,
        "| sidecars | sidecar to sidecar | keep-alive req/s | CPU ms/req | new connection per request req/s | CPU ms/req | upstream connections/req | TLS handshakes/req |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    for f in &figures {
        let close = f.close.as_ref().map_or_else(
            || "- | - | - | -".to_owned(),
            |c| {
                format!(
                    "{:.0} ({} failed) | {} | {:.2} | {:.2}",
                    c.rps,
                    c.failed,
                    ms(c.cpu_ms),
                    c.upstream_cx_per_rq,
                    c.handshakes_per_rq
                )
            },
        );
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} ({} failed) | {} | {close} |",
            f.mode.name(),
            if f.mtls { "mTLS (STRICT)" } else { "plaintext" },
            f.keepalive_rps,
            f.keepalive_failed,
            ms(f.keepalive_cpu_ms),
        );
    }
    for pair in figures.chunks(2) {
        if let [plain, mtls] = pair
            && plain.keepalive_rps > 0.0
        {
            let close = match (&plain.close, &mtls.close) {
                (Some(p), Some(m)) if p.rps > 0.0 => {
                    format!(", new connection per request {:.0}%", m.rps / p.rps * 100.0)
                }
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "\n{}: mTLS / plaintext: keep-alive {:.0}%{close}",
                plain.mode.name(),
                mtls.keepalive_rps / plain.keepalive_rps * 100.0,
            );
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_mtls_mesh_is_strict_and_the_per_connection_mesh_limits_requests() {
        let plain = mesh_yaml(false, false);
        assert!(!plain.contains("PeerAuthentication"));
        assert!(!plain.contains("maxRequestsPerConnection"));
        assert_eq!(plain.matches("security.istio.io/tlsMode: istio").count(), 2);
        let strict = mesh_yaml(true, true);
        assert!(strict.contains("mode: STRICT"));
        assert!(strict.contains("maxRequestsPerConnection: 1"));
    }
}
