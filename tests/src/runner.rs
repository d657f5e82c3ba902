//! Running one scenario end to end: meshd on the scenario's config directory, a mesh-echo
//! app per workload, a proxy per workload (`mesh-proxy run --engine envoy`, or Envoy itself
//! on `mesh-proxy bootstrap` output), a bounded wait until meshd's `/debug/syncz` shows every
//! proxy ACKed, then each request step and its checks, a final look for NACKs, and teardown
//! of every process on every path.
//!
//! The command lines of meshd and mesh-proxy are built in one place each
//! ([`meshd_command`], [`proxy_identity_args`]) so they can follow those binaries' flags.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::client::{self, HttpRequest, HttpResponse, Via};
use crate::echo::{EchoStats, STATS_PATH};
use crate::expect;
use crate::process::{ChildGuard, Processes, ensure_free, wait_for_port, workspace_binary};
use crate::scenario::{
    ConfigIndex, LoadedScenario, ProxyMode, Step, Target, Workload, WorkloadEntry,
};
use crate::syncz;

/// How each workload's Envoy is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyEngine {
    /// `mesh-proxy run --engine envoy ...`: mesh-proxy writes the bootstrap and supervises
    /// Envoy.
    Agent,
    /// `mesh-proxy bootstrap ...` to a file, then Envoy started by the runner.
    Bootstrap,
    /// `mesh-proxy run --engine native ...`: mesh-proxy's own data plane, no Envoy.
    Native,
}

impl ProxyEngine {
    /// From `MESH_E2E_PROXY` (`agent`, the default, `bootstrap` or `native`).
    pub fn from_env() -> anyhow::Result<ProxyEngine> {
        match std::env::var("MESH_E2E_PROXY").as_deref() {
            Err(_) | Ok("") | Ok("agent") => Ok(ProxyEngine::Agent),
            Ok("bootstrap") => Ok(ProxyEngine::Bootstrap),
            Ok("native") => Ok(ProxyEngine::Native),
            Ok(other) => bail!("MESH_E2E_PROXY={other:?}: use `agent`, `bootstrap` or `native`"),
        }
    }
}

/// The binaries a run needs.
#[derive(Clone, Debug)]
pub struct Tools {
    pub meshd: PathBuf,
    pub mesh_proxy: PathBuf,
    pub mesh_echo: PathBuf,
    pub envoy: PathBuf,
}

impl Tools {
    /// The workspace's built binaries, and the given Envoy.
    pub fn discover(envoy: PathBuf) -> anyhow::Result<Tools> {
        Ok(Tools {
            meshd: workspace_binary("meshd")?,
            mesh_proxy: workspace_binary("mesh-proxy")?,
            mesh_echo: workspace_binary("mesh-echo")?,
            envoy,
        })
    }
}

/// How to run scenarios.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub tools: Tools,
    pub engine: ProxyEngine,
    /// Workloads whose proxy runs on another engine than [`RunOptions::engine`] (mixed
    /// meshes: native callers of Envoy servers and the reverse).
    pub engine_by_workload: std::collections::BTreeMap<String, ProxyEngine>,
    /// Each scenario's process logs go to `log_root/NAME/`.
    pub log_root: PathBuf,
    /// Bound on meshd and the apps starting.
    pub start_timeout: Duration,
    /// Bound on every proxy being connected and ACKed.
    pub sync_timeout: Duration,
    /// Bound on request counts (mirrors, retries) reaching their expected values.
    pub count_timeout: Duration,
}

impl RunOptions {
    pub fn new(tools: Tools, engine: ProxyEngine, log_root: PathBuf) -> RunOptions {
        RunOptions {
            tools,
            engine,
            engine_by_workload: std::collections::BTreeMap::new(),
            log_root,
            start_timeout: Duration::from_secs(20),
            sync_timeout: Duration::from_secs(30),
            count_timeout: Duration::from_secs(5),
        }
    }
}

/// The outcome of one scenario.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub scenario: String,
    pub description: String,
    /// Empty when the scenario passed.
    pub failures: Vec<String>,
    /// What happened, step by step.
    pub notes: Vec<String>,
    /// The end of each process's log (only kept when the scenario failed).
    pub logs: Vec<(String, String)>,
    pub log_dir: PathBuf,
    pub elapsed: Duration,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        writeln!(
            f,
            "{verdict} {} ({:.1} s): {}",
            self.scenario,
            self.elapsed.as_secs_f64(),
            self.description.trim()
        )?;
        for n in &self.notes {
            writeln!(f, "    {n}")?;
        }
        for m in &self.failures {
            writeln!(f, "  ✗ {m}")?;
        }
        if !self.passed() {
            writeln!(f, "  logs in {}", self.log_dir.display())?;
            for (name, log) in &self.logs {
                writeln!(f, "  --- {name} (last lines) ---")?;
                for line in log.lines() {
                    writeln!(f, "  | {line}")?;
                }
            }
        }
        Ok(())
    }
}

/// The node id meshd knows a workload's proxy by.
pub fn node_id(w: &Workload) -> String {
    let kind = match w.proxy {
        ProxyMode::Gateway => "router",
        _ => "sidecar",
    };
    format!(
        "{kind}~{}~{}.{}~{}.svc.cluster.local",
        w.ip, w.name, w.namespace, w.namespace
    )
}

/// `meshd --config-dir DIR --xds-address ADDR --debug-address ADDR`.
pub fn meshd_command(meshd: &Path, s: &LoadedScenario) -> Command {
    let mut cmd = Command::new(meshd);
    cmd.arg("--config-dir")
        .arg(&s.config_dir)
        .arg("--xds-address")
        .arg(s.xds_addr().to_string())
        .arg("--debug-address")
        .arg(s.debug_addr().to_string());
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    cmd
}

/// `mesh-echo --listen IP:PORT --name NAME`.
pub fn echo_command(mesh_echo: &Path, w: &Workload, addr: SocketAddr) -> Command {
    let mut cmd = Command::new(mesh_echo);
    cmd.arg("--listen")
        .arg(addr.to_string())
        .arg("--name")
        .arg(w.app_name());
    cmd
}

/// The identity flags `mesh-proxy run` and `mesh-proxy bootstrap` share: xDS address,
/// workload, IP, proxy type, and the WorkloadEntry's labels and service account.
pub fn proxy_identity_args(
    s: &LoadedScenario,
    w: &Workload,
    entry: Option<&WorkloadEntry>,
) -> Vec<String> {
    let mut args = vec![
        "--xds-address".to_owned(),
        s.xds_addr().to_string(),
        "--workload".to_owned(),
        format!("{}/{}", w.namespace, w.name),
        "--ip".to_owned(),
        w.ip.to_string(),
        "--proxy-type".to_owned(),
        match w.proxy {
            ProxyMode::Gateway => "router",
            _ => "sidecar",
        }
        .to_owned(),
    ];
    if let Some(e) = entry {
        for (k, v) in &e.labels {
            args.push("--label".to_owned());
            args.push(format!("{k}={v}"));
        }
        if let Some(sa) = &e.service_account {
            args.push("--service-account".to_owned());
            args.push(sa.clone());
        }
    }
    args
}

/// `mesh-proxy run --engine envoy ...`.
pub fn agent_command(tools: &Tools, identity: &[String]) -> Command {
    let mut cmd = Command::new(&tools.mesh_proxy);
    cmd.args(["run", "--engine", "envoy"])
        .args(identity)
        .arg("--envoy-bin")
        .arg(&tools.envoy)
        .env("MESH_ENVOY_BIN", &tools.envoy);
    cmd
}

/// `mesh-proxy run --engine native ...`.
pub fn native_command(tools: &Tools, identity: &[String]) -> Command {
    let mut cmd = Command::new(&tools.mesh_proxy);
    cmd.args(["run", "--engine", "native"]).args(identity);
    cmd
}

/// Envoy on a bootstrap file, as a supervisor would start it.
pub fn envoy_command(envoy: &Path, bootstrap: &Path) -> Command {
    let mut cmd = Command::new(envoy);
    cmd.arg("-c").arg(bootstrap).args([
        "--use-dynamic-base-id",
        "--concurrency",
        "1",
        "--log-level",
        "warning",
    ]);
    cmd
}

/// Runs one scenario; never panics, every problem is in the report.
pub async fn run(s: &LoadedScenario, opts: &RunOptions) -> Report {
    run_then(s, opts, |_| async { Ok(Vec::new()) }).await
}

/// Runs one scenario like [`run`], and once every request step has run, while meshd and
/// every proxy are still up, calls `after` with the scenario (to look at live proxies:
/// capture config dumps, run `meshctl proxy-config`). The failures it returns, or its
/// error, count as the scenario's failures. Teardown happens after it on every path.
pub async fn run_then<F, Fut>(s: &LoadedScenario, opts: &RunOptions, after: F) -> Report
where
    F: FnOnce(LoadedScenario) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<String>>>,
{
    let start = Instant::now();
    let log_dir = opts.log_root.join(&s.name);
    let mut report = Report {
        scenario: s.name.clone(),
        description: s.scenario.description.clone(),
        log_dir: log_dir.clone(),
        ..Report::default()
    };
    let mut procs = Processes::default();
    let outcome = run_inner(s, opts, &log_dir, &mut procs, &mut report).await;
    match outcome {
        Err(e) => report.failures.push(format!("{e:#}")),
        Ok(()) => match after(s.clone()).await {
            Ok(failures) => report.failures.extend(failures),
            Err(e) => report.failures.push(format!("after the requests: {e:#}")),
        },
    }
    if !report.passed() {
        report.logs = procs
            .iter()
            .map(|c| (c.name().to_owned(), c.log_tail(30)))
            .collect();
        if procs.iter().next().is_some() {
            save_diagnostics(s, &log_dir).await;
        }
    }
    // Stopping waits (bounded) for each process: off the async workers.
    let _ = tokio::task::spawn_blocking(move || drop(procs)).await;
    report.elapsed = start.elapsed();
    report
}

async fn run_inner(
    s: &LoadedScenario,
    opts: &RunOptions,
    log_dir: &Path,
    procs: &mut Processes,
    report: &mut Report,
) -> anyhow::Result<()> {
    let problems = s.problems();
    if !problems.is_empty() {
        bail!(
            "scenario.yaml is inconsistent:\n  {}",
            problems.join("\n  ")
        );
    }
    let index = ConfigIndex::load(&s.config_dir)?;
    let mismatches = index.mismatches(&s.scenario);
    if !mismatches.is_empty() {
        bail!(
            "scenario.yaml and config/ disagree:\n  {}",
            mismatches.join("\n  ")
        );
    }
    if log_dir.exists() {
        std::fs::remove_dir_all(log_dir)
            .with_context(|| format!("clearing {}", log_dir.display()))?;
    }
    std::fs::create_dir_all(log_dir).with_context(|| format!("creating {}", log_dir.display()))?;

    // Every address this run will listen on must be free.
    let mut addrs = vec![s.xds_addr(), s.debug_addr()];
    for w in &s.scenario.workloads {
        addrs.extend(w.app_addr());
        addrs.extend(w.admin_addr());
        addrs.extend(w.ready_addrs());
    }
    for a in addrs {
        ensure_free(a)?;
    }

    // meshd, with its CA in the log directory for mTLS scenarios.
    let ca_dir = log_dir.join("ca");
    let mut meshd_cmd = meshd_command(&opts.tools.meshd, s);
    if s.scenario.mtls {
        meshd_cmd.arg("--ca-dir").arg(&ca_dir);
        if let Some(ttl) = s.scenario.cert_ttl_secs {
            meshd_cmd.arg("--workload-cert-ttl").arg(format!("{ttl}s"));
        }
    }
    let meshd = ChildGuard::spawn("meshd", meshd_cmd, &log_dir.join("meshd.log"))?;
    procs.push(meshd);
    wait_ready(s.debug_addr(), opts.start_timeout, procs)
        .await
        .context("meshd did not start")?;

    // Apps.
    for w in &s.scenario.workloads {
        if let Some(addr) = w.app_addr() {
            let name = format!("app {}", w.name);
            let app = ChildGuard::spawn(
                &name,
                echo_command(&opts.tools.mesh_echo, w, addr),
                &log_dir.join(format!("app-{}.log", w.name)),
            )?;
            procs.push(app);
        }
    }
    for w in &s.scenario.workloads {
        if let Some(addr) = w.app_addr() {
            wait_for_port(addr, opts.start_timeout)
                .await
                .with_context(|| format!("app {} did not start", w.name))?;
        }
    }

    // Proxies.
    let mut ids = Vec::new();
    for w in &s.scenario.workloads {
        if w.proxy == ProxyMode::None {
            continue;
        }
        let mut identity = proxy_identity_args(s, w, index.workload_entry(w));
        let name = format!("proxy {}", w.name);
        let log = log_dir.join(format!("proxy-{}.log", w.name));
        let engine = opts
            .engine_by_workload
            .get(&w.name)
            .copied()
            .unwrap_or(opts.engine);
        // Both engines get their certificate from meshd's CA (the agent serves it to Envoy
        // over SDS; the native engine uses it in process).
        if s.scenario.mtls && matches!(engine, ProxyEngine::Agent | ProxyEngine::Native) {
            identity.push("--ca-dir".to_owned());
            identity.push(ca_dir.display().to_string());
        }
        let cmd = match engine {
            ProxyEngine::Agent => agent_command(&opts.tools, &identity),
            ProxyEngine::Native => native_command(&opts.tools, &identity),
            ProxyEngine::Bootstrap => {
                let file = log_dir.join(format!("bootstrap-{}.json", w.name));
                write_bootstrap(&opts.tools.mesh_proxy, &identity, &file)?;
                envoy_command(&opts.tools.envoy, &file)
            }
        };
        procs.push(ChildGuard::spawn(&name, cmd, &log)?);
        ids.push(node_id(w));
    }
    let synced_in = wait_synced(s.debug_addr(), &ids, opts.sync_timeout, procs).await?;
    for w in &s.scenario.workloads {
        for addr in w.ready_addrs() {
            wait_for_port(addr, opts.sync_timeout)
                .await
                .with_context(|| format!("proxy {} is ACKed but not listening", w.name))?;
        }
    }
    report.notes.push(format!(
        "{} proxies connected and ACKed in {} ms",
        ids.len(),
        synced_in.as_millis()
    ));

    // Requests.
    for step in &s.scenario.requests {
        procs.ensure_running()?;
        let failures = run_step(s, step, opts).await;
        let verdict = if failures.is_empty() { "ok" } else { "FAILED" };
        report.notes.push(format!(
            "{verdict}: {} ({} request{})",
            step.name,
            step.count(),
            if step.count() == 1 { "" } else { "s" }
        ));
        report
            .failures
            .extend(failures.into_iter().map(|f| format!("{}: {f}", step.name)));
    }

    // No NACK, ever, and everyone still running.
    let state = fetch_sync_state(s.debug_addr(), &ids).await?;
    for n in state.nacks {
        report.failures.push(format!("NACK in /debug/syncz: {n}"));
    }
    procs.ensure_running()?;
    Ok(())
}

/// Saves what meshd and each proxy say about their state into the log directory (best
/// effort): meshd's `/debug/syncz` and `/debug/configz`, each proxy's `/config_dump`.
async fn save_diagnostics(s: &LoadedScenario, log_dir: &Path) {
    let mut fetches = vec![
        (
            s.debug_addr(),
            "/debug/syncz".to_owned(),
            "meshd-syncz.json".to_owned(),
        ),
        (
            s.debug_addr(),
            "/debug/configz".to_owned(),
            "meshd-configz.json".to_owned(),
        ),
    ];
    for w in &s.scenario.workloads {
        if let Some(admin) = w.admin_addr() {
            fetches.push((
                admin,
                "/config_dump".to_owned(),
                format!("config_dump-{}.json", w.name),
            ));
        }
    }
    for (addr, path, file) in fetches {
        if let Ok(r) = get(addr, &path).await {
            let _ = std::fs::write(log_dir.join(file), &r.body);
        }
    }
}

fn write_bootstrap(mesh_proxy: &Path, identity: &[String], file: &Path) -> anyhow::Result<()> {
    let out = Command::new(mesh_proxy)
        .arg("bootstrap")
        .args(identity)
        .output()
        .context("running mesh-proxy bootstrap")?;
    if !out.status.success() {
        bail!(
            "mesh-proxy bootstrap {} failed ({}): {}",
            identity.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(file, &out.stdout).with_context(|| format!("writing {}", file.display()))
}

async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<HttpResponse> {
    let req = HttpRequest::get(&format!("http://{addr}{path}"));
    client::send(&req, Via::Direct(addr), Duration::from_secs(5)).await
}

/// Waits until meshd's debug API answers `/debug/syncz`.
async fn wait_ready(
    debug: SocketAddr,
    timeout: Duration,
    procs: &mut Processes,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        procs.ensure_running()?;
        let last = match get(debug, "/debug/syncz").await {
            Ok(r) if r.status == 200 => return Ok(()),
            Ok(r) => format!("status {}", r.status),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("http://{debug}/debug/syncz did not answer within {timeout:?} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fetch_sync_state(debug: SocketAddr, ids: &[String]) -> anyhow::Result<syncz::SyncState> {
    let resp = get(debug, "/debug/syncz").await?;
    if resp.status != 200 {
        bail!("/debug/syncz answered {}", resp.status);
    }
    let json: serde_json::Value =
        serde_json::from_slice(&resp.body).context("/debug/syncz is not JSON")?;
    Ok(syncz::state(&syncz::parse(&json), ids))
}

/// Waits until every proxy is connected and has ACKed what it was sent, seen twice in a row.
async fn wait_synced(
    debug: SocketAddr,
    ids: &[String],
    timeout: Duration,
    procs: &mut Processes,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut synced_once = false;
    loop {
        procs.ensure_running()?;
        let state = fetch_sync_state(debug, ids).await;
        if let Ok(st) = &state {
            if st.all_synced() {
                if synced_once {
                    return Ok(start.elapsed());
                }
                synced_once = true;
            } else {
                synced_once = false;
            }
        }
        if start.elapsed() >= timeout {
            let detail = match state {
                Ok(st) => format!(
                    "not connected: {:?}; not ACKed: {:?}; NACKs: {:?}",
                    st.missing, st.pending, st.nacks
                ),
                Err(e) => format!("{e:#}"),
            };
            bail!("proxies not ACKed within {timeout:?}: {detail}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stats(addr: SocketAddr) -> anyhow::Result<EchoStats> {
    let r = get(addr, STATS_PATH).await?;
    serde_json::from_slice(&r.body).with_context(|| format!("{addr}{STATS_PATH} is not stats"))
}

/// `message (N times)` for repeated messages, in first-seen order.
fn dedupe(messages: Vec<String>) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for m in messages {
        let c = counts.entry(m.clone()).or_insert(0);
        if *c == 0 {
            order.push(m);
        }
        *c += 1;
    }
    order
        .into_iter()
        .map(|m| match counts.get(&m) {
            Some(&n) if n > 1 => format!("{m} ({n} times)"),
            _ => m,
        })
        .collect()
}

/// Sends a step's requests and checks everything it expects; returns the failures.
pub async fn run_step(s: &LoadedScenario, step: &Step, opts: &RunOptions) -> Vec<String> {
    let mut failures = Vec::new();
    let via = match s.target(step) {
        Ok(Target::Proxy(a)) => Via::Proxy(a),
        Ok(Target::Direct(a)) => Via::Direct(a),
        Ok(Target::Tunnel(a)) => Via::Tunnel(a),
        Err(e) => return vec![format!("{e:#}")],
    };
    let counted: Vec<(&str, SocketAddr, crate::scenario::Count)> = step
        .expect_counts
        .iter()
        .filter_map(|(name, c)| {
            s.workload(name)
                .and_then(Workload::app_addr)
                .map(|a| (name.as_str(), a, *c))
        })
        .collect();
    let mut before = BTreeMap::new();
    for (name, addr, _) in &counted {
        match stats(*addr).await {
            Ok(st) => {
                before.insert(*name, st);
            }
            Err(e) => failures.push(format!("counting {name}'s requests: {e:#}")),
        }
    }

    let req = HttpRequest {
        method: step.method.clone(),
        url: step.url.clone(),
        headers: step
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body: step.body.clone(),
    };
    let mut responses = Vec::new();
    let mut per_response = Vec::new();
    for _ in 0..step.count() {
        let refused = step.expect.as_ref().is_some_and(|e| e.refused);
        match client::send(&req, via, step.timeout()).await {
            Ok(resp) if refused => per_response.push(format!(
                "expected no response, got {}",
                expect::describe(&resp)
            )),
            Err(_) if refused => {}
            Ok(resp) => {
                if let Some(e) = &step.expect {
                    let f = expect::check_response(e, &resp);
                    if !f.is_empty() {
                        per_response.push(format!(
                            "{} ({})",
                            f.join("; "),
                            expect::describe(&resp)
                        ));
                    }
                }
                responses.push(resp);
            }
            Err(e) => per_response.push(format!("{e:#}")),
        }
    }
    failures.extend(dedupe(per_response));
    if let Some(split) = &step.expect_split {
        failures.extend(expect::check_split(split, &responses));
    }
    if step.expect_same_backend {
        failures.extend(expect::check_same_backend(&responses));
    }

    // Counts: mirrored requests arrive on their own time, so wait (bounded) for the minimum,
    // then a little longer so that a maximum is not judged too early.
    if !counted.is_empty() {
        let deadline = Instant::now() + opts.count_timeout;
        let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
        loop {
            seen.clear();
            for (name, addr, _) in &counted {
                if let (Some(b), Ok(a)) = (before.get(name), stats(*addr).await) {
                    seen.insert(*name, expect::delta(b, &a));
                }
            }
            let minimums_met = counted
                .iter()
                .all(|(n, _, c)| seen.get(n).is_some_and(|v| *v >= c.min()));
            if minimums_met || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (name, addr, c) in &counted {
            let Some(b) = before.get(name) else { continue };
            match stats(*addr).await {
                Ok(a) => failures.extend(expect::check_count(name, *c, expect::delta(b, &a))),
                Err(e) => failures.push(format!("counting {name}'s requests: {e:#}")),
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::scenario::parse;

    fn sample() -> LoadedScenario {
        LoadedScenario {
            name: "sample".into(),
            dir: PathBuf::from("/s"),
            config_dir: PathBuf::from("/s/config"),
            scenario: parse(
                r#"
description: d
meshd_ip: 127.10.201.1
workloads:
  - {name: client, namespace: shop, ip: 127.10.201.10}
  - {name: ingress, namespace: istio-system, ip: 127.10.201.5, proxy: gateway}
requests:
  - {name: r, from: client, url: "http://a:1/", expect: {status: 200}}
"#,
            )
            .unwrap(),
        }
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn node_ids_follow_istio() {
        let s = sample();
        assert_eq!(
            node_id(s.workload("client").unwrap()),
            "sidecar~127.10.201.10~client.shop~shop.svc.cluster.local"
        );
        assert_eq!(
            node_id(s.workload("ingress").unwrap()),
            "router~127.10.201.5~ingress.istio-system~istio-system.svc.cluster.local"
        );
    }

    #[test]
    fn command_lines() {
        let s = sample();
        assert_eq!(
            args(&meshd_command(Path::new("meshd"), &s)),
            [
                "--config-dir",
                "/s/config",
                "--xds-address",
                "127.10.201.1:15010",
                "--debug-address",
                "127.10.201.1:15014"
            ]
        );
        let entry = WorkloadEntry {
            address: "127.10.201.5".into(),
            labels: [("istio".to_owned(), "ingressgateway".to_owned())].into(),
            service_account: Some("gw".into()),
        };
        let id = proxy_identity_args(&s, s.workload("ingress").unwrap(), Some(&entry));
        assert_eq!(
            id.join(" "),
            "--xds-address 127.10.201.1:15010 --workload istio-system/ingress --ip 127.10.201.5 \
             --proxy-type router --label istio=ingressgateway --service-account gw"
        );
        let tools = Tools {
            meshd: "meshd".into(),
            mesh_proxy: "mesh-proxy".into(),
            mesh_echo: "mesh-echo".into(),
            envoy: "/usr/bin/envoy".into(),
        };
        let a = args(&agent_command(&tools, &id));
        assert_eq!(&a[..3], ["run", "--engine", "envoy"]);
        assert_eq!(&a[a.len() - 2..], ["--envoy-bin", "/usr/bin/envoy"]);
        let w = s.workload("client").unwrap();
        assert_eq!(
            args(&echo_command(
                Path::new("e"),
                w,
                "127.10.201.10:19080".parse().unwrap()
            )),
            ["--listen", "127.10.201.10:19080", "--name", "client"]
        );
    }

    #[test]
    fn repeated_failures_are_counted_once() {
        let d = dedupe(vec!["a".into(), "b".into(), "a".into(), "a".into()]);
        assert_eq!(d, ["a (3 times)", "b"]);
    }

    #[test]
    fn a_failed_report_shows_failures_and_logs() {
        let r = Report {
            scenario: "x".into(),
            description: "does x".into(),
            failures: vec!["boom".into()],
            logs: vec![("meshd".into(), "line".into())],
            ..Report::default()
        };
        let text = r.to_string();
        assert!(text.starts_with("FAIL x"), "{text}");
        assert!(text.contains("✗ boom") && text.contains("| line"), "{text}");
    }
}
