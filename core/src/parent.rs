//! Ending with the parent process. `meshctl demo` starts meshd and mesh-proxy with
//! [`EXIT_WITH_PARENT_ENV`] set to its own pid; they stop (gracefully: mesh-proxy stops its
//! Envoy) once their parent is no longer that process, which is how a meshctl killed with
//! SIGKILL, whose signal handlers never run, still takes its mesh down. The binaries await
//! [`parent_exit`] in their shutdown future.

/// The variable naming the pid a process must not outlive.
pub const EXIT_WITH_PARENT_ENV: &str = "MESH_EXIT_WITH_PARENT";

/// The pid this process must not outlive: [`EXIT_WITH_PARENT_ENV`] when it holds a pid.
pub fn watched_parent() -> Option<u32> {
    std::env::var(EXIT_WITH_PARENT_ENV)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is no longer this process's parent (it died and this process was given to
/// init or a subreaper). Naming the pid, not the parent seen at start, means a parent that
/// died before the first look is still noticed.
pub fn parent_gone(pid: u32) -> bool {
    std::os::unix::process::parent_id() != pid
}

/// Completes with the pid once [`watched_parent`] is no longer the parent, checking every
/// 250 ms with the caller's runtime's `sleep`; never completes without the variable.
pub async fn parent_exit<F, Fut>(sleep: F) -> u32
where
    F: Fn(std::time::Duration) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(pid) = watched_parent() else {
        return std::future::pending().await;
    };
    loop {
        sleep(std::time::Duration::from_millis(250)).await;
        if parent_gone(pid) {
            return pid;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_parent_is_not_gone_and_another_pid_is() {
        let parent = std::os::unix::process::parent_id();
        assert!(!parent_gone(parent));
        assert!(parent_gone(parent.wrapping_add(1)));
    }
}
