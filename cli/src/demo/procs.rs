//! The demo's child processes (meshd and one mesh-proxy per workload): each in its own
//! process group, so that Ctrl-C in the terminal reaches only meshctl and meshctl stops
//! each whole group itself (mesh-proxy and the Envoy it runs), on every exit path: SIGTERM
//! to the group, a bounded grace, then SIGKILL to the group. Output goes to a log file per
//! process.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a process group gets after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// A running child in its own process group, stopped when dropped.
#[derive(Debug)]
pub struct Group {
    pub name: String,
    child: Child,
    pub log: PathBuf,
    stopped: bool,
}

impl Group {
    /// Starts `cmd` in a new process group, stdin closed, output to `log`, told to stop
    /// when meshctl is gone ([`mesh_core::parent::EXIT_WITH_PARENT_ENV`]: meshd and
    /// mesh-proxy watch their parent, so a meshctl killed with SIGKILL leaves nothing).
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Group> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating a log file")?;
        cmd.env(
            mesh_core::parent::EXIT_WITH_PARENT_ENV,
            std::process::id().to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Group {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            stopped: false,
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has exited, with the end of its log.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "{} exited ({status}); the end of its log ({}):\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 15)
            );
        }
        Ok(())
    }

    /// Sends `sig` (`TERM`, `KILL`) to the whole group; whether kill(1) succeeded.
    fn signal(&self, sig: &str) -> bool {
        // This crate forbids `unsafe`, so signals go through kill(1), as mesh-proxy does.
        Command::new("kill")
            .args(["-s", sig, "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGKILL to the group (the leader may be gone while others of its group, an Envoy,
    /// still run), and reaps the leader.
    fn kill_and_reap(&mut self) {
        self.stopped = true;
        self.signal("KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the whole group: SIGTERM, up to `grace`, then SIGKILL. Idempotent.
    pub fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        if self.signal("TERM") {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline && !self.has_exited() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill_and_reap();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop(STOP_GRACE);
    }
}

/// Every child of the demo, stopped last-started first (proxies before meshd).
#[derive(Debug, Default)]
pub struct Groups {
    list: Vec<Group>,
}

impl Groups {
    pub fn push(&mut self, g: Group) {
        self.list.push(g);
    }

    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.list.iter_mut().try_for_each(Group::ensure_running)
    }

    pub fn ids(&self) -> Vec<u32> {
        self.list.iter().map(Group::id).collect()
    }

    /// Stops every group at once: SIGTERM to all, up to [`STOP_GRACE`] for them to exit,
    /// then SIGKILL to every group.
    pub fn stop_all(&mut self) {
        for g in self.list.iter().rev() {
            g.signal("TERM");
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline && !self.list.iter_mut().all(Group::has_exited) {
            std::thread::sleep(Duration::from_millis(20));
        }
        while let Some(mut g) = self.list.pop() {
            g.kill_and_reap();
        }
    }
}

impl Drop for Groups {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A workspace binary next to meshctl's own executable (`MESH_BIN_DIR` overrides the
/// directory).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("MESH_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()
            .context("locating meshctl's executable")?
            .parent()
            .context("meshctl's executable has no directory")?
            .to_owned(),
    };
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{name} is not built: looked for {} next to meshctl; build the workspace first (`cargo build`)",
            path.display()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Running (a zombie waiting for a reaper counts as gone).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    }

    #[test]
    fn stopping_a_group_ends_its_grandchildren_too() {
        let dir = std::env::temp_dir().join(format!("meshctl-procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("grandchild.pid");
        let mut cmd = Command::new("sh");
        // The shell ignores TERM; its background grandchild does not know about meshctl.
        cmd.arg("-c").arg(format!(
            "trap '' TERM; sleep 30 & echo $! > {}; wait",
            pidfile.display()
        ));
        let mut g = Group::spawn("sh", cmd, &dir.join("sh.log")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pidfile.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let grandchild: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let leader = g.id();
        g.stop(Duration::from_millis(200));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!alive(leader), "the group leader survived");
        assert!(!alive(grandchild), "the grandchild {grandchild} survived");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
