//! Child processes of a scenario run and where their binaries are: a guard that stops its
//! process on every path (SIGTERM, a bounded grace, then SIGKILL), the workspace's built
//! binaries (found next to the test executable), Envoy (`MESH_ENVOY_BIN` or `PATH`), and
//! bounded waits for a port to accept.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a stopped process gets to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// A running child process, stopped when the guard is dropped. Its stdout and stderr go to a
/// log file, shown in failure reports.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
    log: PathBuf,
    stopped: bool,
}

impl ChildGuard {
    /// Starts `cmd` with stdin closed and output to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<ChildGuard> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file")?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(ChildGuard {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            stopped: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails when the process has ended, with the end of its log.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.exited() {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited ({status}); end of its log:\n{}",
                self.name,
                self.log_tail(40)
            ),
        }
    }

    /// The last `lines` lines of the process's output.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// Stops the process: SIGTERM, up to `grace` to exit, then SIGKILL. Idempotent.
    pub fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if self.exited().is_some() {
            return;
        }
        // SIGTERM lets mesh-proxy stop the Envoy it supervises; std only sends SIGKILL.
        let termed = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if termed {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if self.exited().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(STOP_GRACE);
    }
}

/// The processes of one scenario, stopped in reverse order of start when dropped (proxies
/// before apps before meshd).
#[derive(Debug, Default)]
pub struct Processes {
    list: Vec<ChildGuard>,
}

impl Processes {
    pub fn push(&mut self, child: ChildGuard) {
        self.list.push(child);
    }

    pub fn iter(&self) -> impl Iterator<Item = &ChildGuard> {
        self.list.iter()
    }

    /// Fails when any process has ended.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        for c in &mut self.list {
            c.ensure_running()?;
        }
        Ok(())
    }

    /// Stops every process, last started first.
    pub fn stop_all(&mut self) {
        while let Some(mut c) = self.list.pop() {
            c.stop(STOP_GRACE);
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// The last `lines` lines of a file (empty when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Where the workspace's binaries are: `MESH_BIN_DIR`, else the directory of the running
/// test executable (`target/debug`, leaving `deps/`).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MESH_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let mut dir = exe
        .parent()
        .context("the test executable has no directory")?
        .to_owned();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// A workspace binary (`meshd`, `mesh-proxy`, `mesh-echo`, `meshctl`), which must be built.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join(name);
    if !path.is_file() {
        bail!(
            "{} is not built (looked for {}); build the workspace first (`cargo build`)",
            name,
            path.display()
        );
    }
    Ok(path)
}

/// Looks `name` up on `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Envoy, through mesh-core's shared lookup (`MESH_ENVOY_BIN`, else `envoy` on PATH).
/// `Ok(None)` means not installed: the caller skips, unless `CI` is set, where this is an
/// error.
pub fn find_envoy() -> anyhow::Result<Option<PathBuf>> {
    Ok(mesh_core::envoy::locate_for_tests()?)
}

/// Waits until `addr` accepts a TCP connection, up to `timeout`.
pub async fn wait_for_port(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        if let Ok(Ok(_)) = attempt {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("nothing accepted connections on {addr} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fails when something already listens on `addr` (a process left over from an earlier run
/// would make a scenario fail in confusing ways).
pub fn ensure_free(addr: SocketAddr) -> anyhow::Result<()> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) => bail!("{addr} is not free ({e}): a process left over from an earlier run?"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mesh-e2e-process-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn a_guard_kills_its_process_when_dropped() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let guard = ChildGuard::spawn("sleep", cmd, &tmp("sleep.log")).unwrap();
        let pid = guard.id();
        let start = Instant::now();
        drop(guard);
        assert!(
            start.elapsed() < STOP_GRACE,
            "SIGTERM should end sleep at once"
        );
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive, "process {pid} still alive");
    }

    #[test]
    fn a_process_that_ignores_sigterm_is_killed_after_the_grace() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' TERM; echo started; sleep 30"]);
        let mut guard = ChildGuard::spawn("stubborn", cmd, &tmp("stubborn.log")).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let start = Instant::now();
        guard.stop(Duration::from_millis(300));
        assert!(guard.exited().is_some());
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert_eq!(guard.log_tail(5), "started");
    }

    #[test]
    fn an_exited_process_is_reported_with_its_log() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo boom >&2; exit 3"]);
        let mut guard = ChildGuard::spawn("boom", cmd, &tmp("boom.log")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while guard.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let err = guard.ensure_running().unwrap_err().to_string();
        assert!(err.starts_with("boom exited"), "{err}");
        assert!(err.ends_with("\nboom"), "{err}");
    }

    #[test]
    fn busy_addresses_are_detected() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(ensure_free(l.local_addr().unwrap()).is_err());
    }

    #[test]
    fn bin_dir_is_the_target_profile_directory() {
        let d = bin_dir().unwrap();
        assert!(!d.ends_with("deps"), "{}", d.display());
    }
}
