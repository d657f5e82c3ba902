//! The init step of an injected pod: the iptables rules that send the pod's TCP traffic
//! through the sidecar.
//!
//! This module owns the rule set (Istio's layout, so people and tools that know
//! `istio-iptables` read it unchanged) and applying it with `iptables-restore`. The rules live
//! in the `nat` table:
//!
//! - `ISTIO_REDIRECT` sends a connection to the outbound port (15001), `ISTIO_IN_REDIRECT` to
//!   the inbound port (15006).
//! - `PREROUTING -> ISTIO_INBOUND`: connections arriving at the pod go to 15006, except the
//!   excluded inbound ports (and 15008, the HBONE port); with an explicit list of inbound
//!   ports only those are captured; with none, inbound capture is off.
//! - `OUTPUT -> ISTIO_OUTPUT`: connections the pod opens go to 15001, except the proxy's own
//!   (by uid and gid, so the proxy never captures itself), loopback traffic between local
//!   processes, excluded ports and excluded IP ranges. A proxy connecting to its own pod IP
//!   over loopback is sent inbound (`ISTIO_IN_REDIRECT`), as Istio does, so a pod calling
//!   itself through its service still passes its inbound policy. With an explicit list of
//!   included IP ranges only those are captured.
//!
//! Only IPv4 and TCP are captured; TPROXY mode and DNS capture are not built.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use thiserror::Error;

/// The port of the outbound listener.
pub const DEFAULT_PROXY_PORT: u16 = 15001;
/// The port of the inbound listener.
pub const DEFAULT_INBOUND_PORT: u16 = 15006;
/// The uid (and gid) the proxy runs as; its traffic is never captured.
pub const DEFAULT_PROXY_UID: u32 = 1337;
/// HBONE's port: never captured inbound, never sent inbound from loopback.
pub const HBONE_PORT: u16 = 15008;

/// A set of ports: every port (`*`) or a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ports {
    All,
    List(Vec<u16>),
}

impl Ports {
    /// Parses `*`, an empty string (no ports) or a comma-separated list of ports.
    pub fn parse(s: &str) -> Result<Ports, InitError> {
        let s = s.trim();
        if s == "*" {
            return Ok(Ports::All);
        }
        Ok(Ports::List(parse_port_list(s)?))
    }
}

/// A set of IPv4 ranges: every address (`*`) or a list of CIDRs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ranges {
    All,
    List(Vec<Cidr>),
}

impl Ranges {
    /// Parses `*`, an empty string (no ranges) or a comma-separated list of CIDRs.
    pub fn parse(s: &str) -> Result<Ranges, InitError> {
        let s = s.trim();
        if s == "*" {
            return Ok(Ranges::All);
        }
        Ok(Ranges::List(parse_cidr_list(s)?))
    }
}

/// An IPv4 network, `ADDR/LEN` (a bare address means `/32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Cidr {
    type Err = InitError;

    fn from_str(s: &str) -> Result<Cidr, InitError> {
        let bad = || InitError::BadCidr(s.to_owned());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad())?),
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        Ok(Cidr { addr, len })
    }
}

/// Parses a comma-separated list of ports (spaces allowed, empty items skipped).
pub fn parse_port_list(s: &str) -> Result<Vec<u16>, InitError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(InitError::BadPort(p.to_owned())),
        })
        .collect()
}

/// Parses a comma-separated list of IPv4 CIDRs (spaces allowed, empty items skipped).
pub fn parse_cidr_list(s: &str) -> Result<Vec<Cidr>, InitError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect()
}

/// Errors of the init step.
#[derive(Debug, Error)]
pub enum InitError {
    #[error("{0:?} is not a port (1-65535)")]
    BadPort(String),
    #[error("{0:?} is not an IPv4 CIDR (ADDR/LEN)")]
    BadCidr(String),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the capture rules are not installed (missing: {0})")]
    NotInstalled(String),
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// What to capture: the settings of `mesh-proxy init` (Istio's `istio-iptables` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Where outbound connections go (`virtualOutbound`).
    pub proxy_port: u16,
    /// Where inbound connections go (`virtualInbound`).
    pub inbound_port: u16,
    /// The proxy's uid; its connections are not captured.
    pub proxy_uid: u32,
    /// The proxy's gid; its connections are not captured.
    pub proxy_gid: u32,
    /// Outbound destinations to capture.
    pub include_outbound_ranges: Ranges,
    /// Outbound destinations never captured.
    pub exclude_outbound_ranges: Vec<Cidr>,
    /// Inbound ports to capture.
    pub include_inbound_ports: Ports,
    /// Inbound ports never captured (used with `*`).
    pub exclude_inbound_ports: Vec<u16>,
    /// Outbound destination ports never captured.
    pub exclude_outbound_ports: Vec<u16>,
    /// Interfaces whose incoming traffic is treated as outbound (KubeVirt VMs).
    pub reroute_interfaces: Vec<String>,
}

impl Default for CaptureConfig {
    fn default() -> CaptureConfig {
        CaptureConfig {
            proxy_port: DEFAULT_PROXY_PORT,
            inbound_port: DEFAULT_INBOUND_PORT,
            proxy_uid: DEFAULT_PROXY_UID,
            proxy_gid: DEFAULT_PROXY_UID,
            include_outbound_ranges: Ranges::All,
            exclude_outbound_ranges: Vec::new(),
            include_inbound_ports: Ports::All,
            exclude_inbound_ports: Vec::new(),
            exclude_outbound_ports: Vec::new(),
            reroute_interfaces: Vec::new(),
        }
    }
}

fn join_ports(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `--dport P` for one port, `-m multiport --dports A,B` for several (15 at most per rule,
/// iptables' limit; longer lists become several rules).
fn port_matches(ports: &[u16]) -> Vec<String> {
    ports
        .chunks(15)
        .map(|chunk| match chunk {
            [one] => format!("--dport {one}"),
            many => format!("-m multiport --dports {}", join_ports(many)),
        })
        .collect()
}

/// The rules as `iptables-restore` input (the `nat` table, one `COMMIT`).
pub fn rules(cfg: &CaptureConfig) -> String {
    let mut r: Vec<String> = vec![
        "-N ISTIO_INBOUND".into(),
        "-N ISTIO_REDIRECT".into(),
        "-N ISTIO_IN_REDIRECT".into(),
        "-N ISTIO_OUTPUT".into(),
        format!("-A ISTIO_INBOUND -p tcp --dport {HBONE_PORT} -j RETURN"),
        format!(
            "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {}",
            cfg.proxy_port
        ),
        format!(
            "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {}",
            cfg.inbound_port
        ),
    ];

    // Traffic arriving on a virtual interface (a KubeVirt VM's) is the VM's outbound.
    for i in &cfg.reroute_interfaces {
        r.push(format!("-I PREROUTING 1 -i {i} -j ISTIO_REDIRECT"));
    }

    // Inbound.
    match &cfg.include_inbound_ports {
        Ports::All => {
            r.push("-A PREROUTING -p tcp -j ISTIO_INBOUND".into());
            for m in port_matches(&cfg.exclude_inbound_ports) {
                r.push(format!("-A ISTIO_INBOUND -p tcp {m} -j RETURN"));
            }
            r.push("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT".into());
        }
        Ports::List(ports) if !ports.is_empty() => {
            r.push("-A PREROUTING -p tcp -j ISTIO_INBOUND".into());
            for p in ports {
                r.push(format!(
                    "-A ISTIO_INBOUND -p tcp --dport {p} -j ISTIO_IN_REDIRECT"
                ));
            }
        }
        Ports::List(_) => {}
    }

    // Outbound.
    r.push("-A OUTPUT -p tcp -j ISTIO_OUTPUT".into());
    for m in port_matches(&cfg.exclude_outbound_ports) {
        r.push(format!("-A ISTIO_OUTPUT -p tcp {m} -j RETURN"));
    }
    r.push("-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN".into());
    for (flag, id) in [
        ("--uid-owner", cfg.proxy_uid),
        ("--gid-owner", cfg.proxy_gid),
    ] {
        r.push(format!(
            "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport {HBONE_PORT} -m owner {flag} {id} -j ISTIO_IN_REDIRECT"
        ));
        r.push(format!(
            "-A ISTIO_OUTPUT -o lo -m owner ! {flag} {id} -j RETURN"
        ));
        r.push(format!("-A ISTIO_OUTPUT -m owner {flag} {id} -j RETURN"));
    }
    r.push("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN".into());
    for c in &cfg.exclude_outbound_ranges {
        r.push(format!("-A ISTIO_OUTPUT -d {c} -j RETURN"));
    }
    match &cfg.include_outbound_ranges {
        Ranges::All => r.push("-A ISTIO_OUTPUT -j ISTIO_REDIRECT".into()),
        Ranges::List(list) if !list.is_empty() => {
            for c in list {
                r.push(format!("-A ISTIO_OUTPUT -d {c} -j ISTIO_REDIRECT"));
            }
            r.push("-A ISTIO_OUTPUT -j RETURN".into());
        }
        Ranges::List(_) => {}
    }

    let mut out = String::from("* nat\n");
    for line in r {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("COMMIT\n");
    out
}

/// Checks that capture rules are installed (by this init step or by a CNI plugin), reading
/// `iptables-save -t nat` output (or `iptables-restore` input): the `ISTIO_OUTPUT` chain and
/// the jump to it from `OUTPUT`.
pub fn check_installed(save_output: &str) -> Result<(), InitError> {
    let lines: Vec<&str> = save_output.lines().map(str::trim).collect();
    let mut missing = Vec::new();
    if !lines
        .iter()
        .any(|l| *l == "-N ISTIO_OUTPUT" || l.starts_with(":ISTIO_OUTPUT "))
    {
        missing.push("the ISTIO_OUTPUT chain");
    }
    if !lines.contains(&"-A OUTPUT -p tcp -j ISTIO_OUTPUT") {
        missing.push("-A OUTPUT -p tcp -j ISTIO_OUTPUT");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(InitError::NotInstalled(missing.join("; ")))
    }
}

/// Runs `iptables-save -t nat` and checks the capture rules are installed.
pub fn check(program: Option<PathBuf>) -> Result<(), InitError> {
    let program = program.unwrap_or_else(|| PathBuf::from("iptables-save"));
    let name = program.display().to_string();
    let out = Command::new(&program)
        .args(["-t", "nat"])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| InitError::Spawn {
            program: name.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(InitError::Failed {
            program: name,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    check_installed(&String::from_utf8_lossy(&out.stdout))
}

/// Applies `rules` with `iptables-restore --noflush` (the program can be overridden for
/// `iptables-legacy-restore` and the like).
pub fn apply(rules: &str, program: Option<PathBuf>) -> Result<(), InitError> {
    let program = program.unwrap_or_else(|| PathBuf::from("iptables-restore"));
    let name = program.display().to_string();
    let mut child = Command::new(&program)
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| InitError::Spawn {
            program: name.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .map_err(|source| InitError::Spawn {
                program: name.clone(),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| InitError::Spawn {
            program: name.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(InitError::Failed {
            program: name,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn lines(cfg: &CaptureConfig) -> Vec<String> {
        rules(cfg).lines().map(str::to_owned).collect()
    }

    fn has(cfg: &CaptureConfig, line: &str) -> bool {
        lines(cfg).iter().any(|l| l == line)
    }

    fn position(cfg: &CaptureConfig, line: &str) -> usize {
        lines(cfg)
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("missing {line:?} in\n{}", rules(cfg)))
    }

    #[test]
    fn defaults_capture_everything_but_the_proxy_and_loopback() {
        let cfg = CaptureConfig::default();
        let text = rules(&cfg);
        assert!(text.starts_with("* nat\n-N ISTIO_INBOUND\n"), "{text}");
        assert!(text.ends_with("COMMIT\n"));
        for l in [
            "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
            "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
            "-A PREROUTING -p tcp -j ISTIO_INBOUND",
            "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
            "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
            "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
            "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN",
            "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN",
            "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
            "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
        ] {
            assert!(has(&cfg, l), "missing {l:?} in\n{text}");
        }
        // The proxy's own traffic returns before the catch-all redirect.
        assert!(
            position(&cfg, "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN")
                < position(&cfg, "-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
        );
        // HBONE is never captured inbound, and that rule comes first.
        assert!(
            position(&cfg, "-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN")
                < position(&cfg, "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT")
        );
    }

    #[test]
    fn ports_uid_and_ranges_are_configurable() {
        let cfg = CaptureConfig {
            proxy_port: 16001,
            inbound_port: 16006,
            proxy_uid: 7,
            proxy_gid: 8,
            include_outbound_ranges: Ranges::parse("10.96.0.0/12, 192.168.1.1").unwrap(),
            exclude_outbound_ranges: parse_cidr_list("10.96.0.10/32").unwrap(),
            ..CaptureConfig::default()
        };
        for l in [
            "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 16001",
            "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006",
            "-A ISTIO_OUTPUT -m owner --uid-owner 7 -j RETURN",
            "-A ISTIO_OUTPUT -m owner --gid-owner 8 -j RETURN",
            "-A ISTIO_OUTPUT -d 10.96.0.0/12 -j ISTIO_REDIRECT",
            "-A ISTIO_OUTPUT -d 192.168.1.1/32 -j ISTIO_REDIRECT",
            "-A ISTIO_OUTPUT -j RETURN",
        ] {
            assert!(has(&cfg, l), "missing {l:?} in\n{}", rules(&cfg));
        }
        assert!(!has(&cfg, "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"));
        // Exclusions win over inclusions: they come first.
        assert!(
            position(&cfg, "-A ISTIO_OUTPUT -d 10.96.0.10/32 -j RETURN")
                < position(&cfg, "-A ISTIO_OUTPUT -d 10.96.0.0/12 -j ISTIO_REDIRECT")
        );
    }

    #[test]
    fn empty_include_lists_turn_capture_off() {
        let cfg = CaptureConfig {
            include_outbound_ranges: Ranges::parse("").unwrap(),
            include_inbound_ports: Ports::parse("").unwrap(),
            ..CaptureConfig::default()
        };
        let text = rules(&cfg);
        assert!(!text.contains("-j ISTIO_REDIRECT"), "{text}");
        assert!(!text.contains("-A PREROUTING"), "{text}");
        assert!(!text.contains("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT"));
        // The proxy's exceptions stay, so the chain is still well formed.
        assert!(has(&cfg, "-A OUTPUT -p tcp -j ISTIO_OUTPUT"));
    }

    #[test]
    fn inbound_port_lists_and_exclusions() {
        let only = CaptureConfig {
            include_inbound_ports: Ports::parse("9080,9090").unwrap(),
            exclude_inbound_ports: vec![15020],
            ..CaptureConfig::default()
        };
        assert!(has(
            &only,
            "-A ISTIO_INBOUND -p tcp --dport 9080 -j ISTIO_IN_REDIRECT"
        ));
        assert!(has(
            &only,
            "-A ISTIO_INBOUND -p tcp --dport 9090 -j ISTIO_IN_REDIRECT"
        ));
        assert!(!has(&only, "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT"));
        // With an explicit list the exclusions are moot (as in istio-iptables).
        assert!(!rules(&only).contains("15020"));

        let all = CaptureConfig {
            exclude_inbound_ports: vec![15090, 15021, 15020],
            exclude_outbound_ports: vec![5432],
            ..CaptureConfig::default()
        };
        let excl = "-A ISTIO_INBOUND -p tcp -m multiport --dports 15090,15021,15020 -j RETURN";
        assert!(
            position(&all, excl) < position(&all, "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT")
        );
        let out_excl = "-A ISTIO_OUTPUT -p tcp --dport 5432 -j RETURN";
        assert!(position(&all, out_excl) < position(&all, "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"));
    }

    #[test]
    fn long_port_lists_split_at_iptables_multiport_limit() {
        let ports: Vec<u16> = (1..=20).collect();
        let m = port_matches(&ports);
        assert_eq!(m.len(), 2);
        assert!(m[0].ends_with(",15"), "{}", m[0]);
        assert_eq!(m[1], "-m multiport --dports 16,17,18,19,20");
    }

    #[test]
    fn virtual_interfaces_are_rerouted_outbound_first() {
        let cfg = CaptureConfig {
            reroute_interfaces: vec!["net1".into()],
            ..CaptureConfig::default()
        };
        assert!(has(&cfg, "-I PREROUTING 1 -i net1 -j ISTIO_REDIRECT"));
    }

    #[test]
    fn check_finds_installed_rules() {
        let installed = rules(&CaptureConfig::default());
        check_installed(&installed).unwrap();
        // iptables-save declares chains as `:NAME POLICY [counters]`.
        check_installed(":ISTIO_OUTPUT - [0:0]\n-A OUTPUT -p tcp -j ISTIO_OUTPUT\n").unwrap();
        let err = check_installed("*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n").unwrap_err();
        assert!(err.to_string().contains("ISTIO_OUTPUT chain"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(
            Ranges::parse("10.0.0.0/33").unwrap_err().to_string(),
            "\"10.0.0.0/33\" is not an IPv4 CIDR (ADDR/LEN)"
        );
        assert!(matches!(
            Ports::parse("80,http"),
            Err(InitError::BadPort(p)) if p == "http"
        ));
        assert!(matches!(Ports::parse("0"), Err(InitError::BadPort(_))));
        assert_eq!(Ports::parse(" * ").unwrap(), Ports::All);
        assert_eq!(Ports::parse("").unwrap(), Ports::List(vec![]));
    }

    #[test]
    fn apply_reports_a_missing_program() {
        let err = apply(
            &rules(&CaptureConfig::default()),
            Some(PathBuf::from("/nonexistent/iptables-restore")),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot run /nonexistent/iptables-restore"),
            "{err}"
        );
    }
}
