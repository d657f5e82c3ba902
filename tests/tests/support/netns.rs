//! Shared by the network-namespace capture tests (`capture.rs`: one captured pod and a peer
//! without a sidecar; `capture_mtls.rs`: two captured pods with sidecars): namespaces and
//! veth links removed on drop, running commands in a namespace (as an ordinary user when
//! asked), the prerequisites check, curl, Envoy's counters, the capture step and the
//! command lines of meshd and of a Kubernetes-mode sidecar. Each test binary uses a part.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mesh_e2e::process::{ChildGuard, on_path};

/// The uid of the unmodified clients and apps (nobody).
pub const USER: &str = "65534";

/// The network namespaces of one run, deleted on drop (which also removes their veth
/// ends, bridges and iptables rules).
pub struct Netns {
    names: Vec<String>,
}

impl Netns {
    /// Creates the namespaces `names`, each with its loopback up; those already made are
    /// deleted again if one fails.
    pub fn create(names: &[String]) -> Netns {
        let mut net = Netns { names: Vec::new() };
        for n in names {
            must("ip", &["netns", "add", n]);
            net.names.push(n.clone());
            must("ip", &["-n", n, "link", "set", "lo", "up"]);
        }
        net
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A veth pair from `a` (device `a_dev`) to `b` (device `b_dev`), both ends up; `a_ip` and
/// `b_ip` (with prefix length) are given to the ends that have one.
pub fn veth(a: (&str, &str, Option<&str>), b: (&str, &str, Option<&str>)) {
    must(
        "ip",
        &["link", "add", a.1, "type", "veth", "peer", "name", b.1],
    );
    for (ns, dev, ip) in [a, b] {
        must("ip", &["link", "set", dev, "netns", ns]);
        if let Some(ip) = ip {
            must("ip", &["-n", ns, "addr", "add", ip, "dev", dev]);
        }
        must("ip", &["-n", ns, "link", "set", dev, "up"]);
    }
}

pub fn sh(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

pub fn must(program: &str, args: &[&str]) {
    let out = sh(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `args` in namespace `ns`, as `user` when given (setpriv drops root).
pub fn in_ns(ns: &str, user: Option<&str>, args: &[&str]) -> Output {
    let mut full: Vec<&str> = vec!["netns", "exec", ns];
    let uid_flag;
    let gid_flag;
    if let Some(u) = user {
        uid_flag = format!("--reuid={u}");
        gid_flag = format!("--regid={u}");
        full.extend(["setpriv", &uid_flag, &gid_flag, "--clear-groups"]);
    }
    full.extend(args);
    sh("ip", &full)
}

pub fn spawn_in_ns(
    name: &str,
    ns: &str,
    user: Option<&str>,
    args: &[String],
    log: &Path,
) -> ChildGuard {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]);
    if let Some(u) = user {
        cmd.args([
            "setpriv",
            &format!("--reuid={u}"),
            &format!("--regid={u}"),
            "--clear-groups",
        ]);
    }
    cmd.args(args);
    ChildGuard::spawn(name, cmd, log).unwrap()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Why the capture tests cannot run here, if they cannot.
fn missing_prerequisite() -> Option<String> {
    if !is_root() {
        return Some("not running as root".into());
    }
    for tool in [
        "ip",
        "ss",
        "iptables-restore",
        "iptables-save",
        "curl",
        "openssl",
        "setpriv",
    ] {
        if on_path(tool).is_none() {
            return Some(format!(
                "{tool} is not installed (apt-get install -y iproute2 iptables curl util-linux)"
            ));
        }
    }
    None
}

/// Whether test `name` can run: under `CI` a missing prerequisite fails it, otherwise it
/// is skipped with a loud message.
pub fn can_run(name: &str) -> bool {
    match missing_prerequisite() {
        None => true,
        Some(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "the capture test {name} cannot run under CI: {why}"
            );
            eprintln!("\n\n*** SKIPPED {name}: {why} ***\n");
            false
        }
    }
}

/// curl in a namespace; the body on HTTP success.
pub fn curl(ns: &str, user: Option<&str>, args: &[&str]) -> Result<String, String> {
    let mut full = vec!["curl", "-sS", "-f", "-m", "3"];
    full.extend(args);
    let out = in_ns(ns, user, &full);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// curl in a namespace taking any HTTP answer: (status, body); Err when there was none.
pub fn curl_status(ns: &str, user: Option<&str>, args: &[&str]) -> Result<(u16, String), String> {
    let mut full = vec!["curl", "-sS", "-m", "3", "-w", "\n%{http_code}"];
    full.extend(args);
    let out = in_ns(ns, user, &full);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    let code = code
        .trim()
        .parse()
        .map_err(|_| format!("no status in {stdout:?}"))?;
    Ok((code, body.to_owned()))
}

/// One Envoy counter from the admin API on `ip:15000` in `ns` (queried as the ordinary
/// user: the proxy's own uid calling its pod IP over loopback is, as in Istio, sent
/// inbound).
pub fn envoy_stat(ns: &str, ip: &str, name: &str) -> u64 {
    let body = curl(
        ns,
        Some(USER),
        &[&format!(
            "http://{ip}:15000/stats?filter=^{}$",
            regex_escape(name)
        )],
    )
    .unwrap_or_default();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if "|.".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

/// `mesh-proxy init`'s arguments as the injected init container passes them (the tests'
/// proxies run as root, so root is the proxy's uid).
pub fn init_args(proxy: &str) -> Vec<&str> {
    vec![
        proxy,
        "init",
        "--proxy-uid",
        "0",
        "--exclude-inbound-ports",
        "15090,15021,15020",
    ]
}

/// Applies the capture rules in `ns` and checks that `init --check` sees them.
pub fn capture(ns: &str, proxy: &Path) {
    let p = proxy.to_str().unwrap();
    let out = in_ns(ns, None, &init_args(p));
    assert!(
        out.status.success(),
        "mesh-proxy init in {ns} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = in_ns(ns, None, &[p, "init", "--check"]);
    assert!(
        check.status.success(),
        "init --check does not see the rules in {ns}"
    );
}

/// meshd's command line: config from `cfg`, xDS and debug on loopback, the CA in `ca`
/// (signing with `root`, a (certificate, key) pair, when given).
pub fn meshd_args(
    meshd: &Path,
    cfg: &Path,
    ca: &Path,
    root: Option<(&Path, &Path)>,
) -> Vec<String> {
    let mut args: Vec<String> = [
        meshd.display().to_string(),
        "--config-dir".into(),
        cfg.display().to_string(),
        "--xds-address".into(),
        "127.0.0.1:15010".into(),
        "--debug-address".into(),
        "127.0.0.1:15014".into(),
        "--ca-dir".into(),
        ca.display().to_string(),
    ]
    .into();
    if let Some((cert, key)) = root {
        args.extend([
            "--ca-cert".into(),
            cert.display().to_string(),
            "--ca-key".into(),
            key.display().to_string(),
        ]);
    }
    args
}

/// A Kubernetes-mode sidecar (Envoy through `mesh-proxy run`) for pod `workload`
/// (NS/NAME) on `ip`, with `labels` and service account `sa`, its certificate from the CA
/// in `ca` of the meshd on the namespace's 127.0.0.1:15010.
pub struct Sidecar<'a> {
    pub proxy: &'a Path,
    pub envoy: &'a Path,
    pub workload: &'a str,
    pub ip: &'a str,
    pub labels: &'a [&'a str],
    pub service_account: Option<&'a str>,
    pub ca: &'a Path,
}

impl Sidecar<'_> {
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            self.proxy.display().to_string(),
            "run".into(),
            "--engine".into(),
            "envoy".into(),
            "--workload".into(),
            self.workload.into(),
            "--ip".into(),
            self.ip.into(),
            "--xds-address".into(),
            "127.0.0.1:15010".into(),
            "--ca-dir".into(),
            self.ca.display().to_string(),
            "--envoy-bin".into(),
            self.envoy.display().to_string(),
        ];
        for l in self.labels {
            args.extend(["--label".into(), (*l).to_owned()]);
        }
        if let Some(sa) = self.service_account {
            args.extend(["--service-account".into(), sa.to_owned()]);
        }
        args
    }
}

/// The last lines of each process's log, for a failure message.
pub fn logs(children: &[&ChildGuard]) -> String {
    children
        .iter()
        .map(|c| format!("--- {} ---\n{}", c.name(), c.log_tail(30)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The test's temporary directory `name` under Cargo's, emptied.
pub fn temp_dir(name: &str) -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    tmp
}
