//! diff-scale: how long `meshctl diff` takes on a generated mesh.
//!
//! Writes a mesh of N services (default 1,000) in 10 namespaces, each a Kubernetes Service
//! with one HTTP port backed by W WorkloadEntries (default 1; labels `app`, `version`) on
//! distinct loopback addresses (local mode, one sidecar each); every tenth service has a
//! DestinationRule (subsets v1, v2) and a VirtualService splitting 90/10. The change is a
//! weight shift (50/50) in one of those VirtualServices. Then it runs `meshctl diff -f
//! CHANGE --against DIR -o json` once to warm the page cache and R times measured, checks
//! that every proxy reports the route change (no proxy is scoped), and prints the
//! wall-clock times. A benchmark program, not a test: run it on a release build, on an
//! otherwise idle machine.
//!
//! Usage: diff-scale [--services N] [--workloads W] [--runs R] [--meshctl PATH] [--keep DIR]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

struct Options {
    services: usize,
    workloads: usize,
    runs: usize,
    meshctl: PathBuf,
    keep: Option<PathBuf>,
}

const NAMESPACES: usize = 10;
const USAGE: &str =
    "usage: diff-scale [--services N] [--workloads W] [--runs R] [--meshctl PATH] [--keep DIR]";

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        services: 1_000,
        workloads: 1,
        runs: 5,
        meshctl: default_meshctl(),
        keep: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--services" => {
                o.services = value()?
                    .parse::<usize>()
                    .map_err(|e| format!("--services: {e}"))?
                    .max(10)
            }
            "--workloads" => {
                o.workloads = value()?
                    .parse::<usize>()
                    .map_err(|e| format!("--workloads: {e}"))?
                    .max(1)
            }
            "--runs" => {
                o.runs = value()?
                    .parse::<usize>()
                    .map_err(|e| format!("--runs: {e}"))?
                    .max(1)
            }
            "--meshctl" => o.meshctl = PathBuf::from(value()?),
            "--keep" => o.keep = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(o)
}

/// The meshctl next to this program (same target directory and profile).
fn default_meshctl() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("meshctl")))
        .unwrap_or_else(|| PathBuf::from("meshctl"))
}

/// A distinct loopback address per workload, from 127.40.0.1 (250 per /24).
fn address(n: usize) -> String {
    format!(
        "127.{}.{}.{}",
        40 + n / 62_500,
        (n / 250) % 250,
        n % 250 + 1
    )
}

fn virtual_service(i: usize, ns: &str, v1: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: svc{i}\n  namespace: {ns}\nspec:\n  hosts: [svc{i}]\n  http:\n  - route:\n    - destination: {{host: svc{i}, subset: v1}}\n      weight: {v1}\n    - destination: {{host: svc{i}, subset: v2}}\n      weight: {}\n---\n",
        100 - v1
    )
}

/// Writes the mesh (one file per namespace) and the change; returns the number of proxies.
fn generate(dir: &Path, change: &Path, o: &Options) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut files = vec![String::new(); NAMESPACES];
    let mut workloads = 0;
    for i in 0..o.services {
        let ns = format!("ns{}", i % NAMESPACES);
        let s = &mut files[i % NAMESPACES];
        if i < NAMESPACES {
            let _ = write!(
                s,
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n"
            );
        }
        let _ = write!(
            s,
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc{i}\n  namespace: {ns}\nspec:\n  selector: {{app: svc{i}}}\n  ports:\n  - {{name: http, port: 8080}}\n---\n"
        );
        for w in 0..o.workloads {
            let version = if w % 2 == 0 { "v1" } else { "v2" };
            let _ = write!(
                s,
                "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: svc{i}-{w}\n  namespace: {ns}\n  labels: {{app: svc{i}, version: {version}}}\nspec:\n  address: {}\n---\n",
                address(workloads)
            );
            workloads += 1;
        }
        if i % 10 == 0 {
            let _ = write!(
                s,
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: svc{i}\n  namespace: {ns}\nspec:\n  host: svc{i}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n---\n"
            );
            s.push_str(&virtual_service(i, &ns, 90));
        }
    }
    for (n, text) in files.iter().enumerate() {
        std::fs::write(dir.join(format!("ns{n}.yaml")), text)?;
    }
    std::fs::write(change, virtual_service(0, "ns0", 50))?;
    Ok(workloads)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    let root = opts
        .keep
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("diff-scale-{}", std::process::id())));
    let dir = root.join("mesh");
    let change = root.join("change.yaml");
    let proxies = match generate(&dir, &change, &opts) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("writing the mesh to {}: {e}", root.display());
            return ExitCode::FAILURE;
        }
    };
    println!(
        "mesh: {} services, {proxies} proxies, {} VirtualServices; change: one weight shift; meshctl: {}",
        opts.services,
        opts.services.div_ceil(10),
        opts.meshctl.display()
    );
    let mut times = Vec::new();
    let mut failed = None;
    for run in 0..=opts.runs {
        let started = Instant::now();
        let out = Command::new(&opts.meshctl)
            .arg("diff")
            .arg("-f")
            .arg(&change)
            .arg("--against")
            .arg(&dir)
            .args(["-o", "json"])
            .stdin(Stdio::null())
            .output();
        let elapsed = started.elapsed();
        eprintln!("(meshctl diff took {:.3} s)", elapsed.as_secs_f64());
        let out = match out {
            Ok(o) if o.status.success() => o,
            Ok(o) => {
                failed = Some(format!(
                    "meshctl diff exited {:?}: {}",
                    o.status.code(),
                    String::from_utf8_lossy(&o.stderr)
                ));
                break;
            }
            Err(e) => {
                failed = Some(format!("running {}: {e}", opts.meshctl.display()));
                break;
            }
        };
        let report: serde_json::Value = match serde_json::from_slice(&out.stdout) {
            Ok(v) => v,
            Err(e) => {
                failed = Some(format!("meshctl diff printed no JSON: {e}"));
                break;
            }
        };
        let changed = report["proxies"].as_array().map_or(0, Vec::len);
        let unchanged = report["unchangedProxies"].as_u64().unwrap_or(0);
        if changed != proxies || unchanged != 0 {
            failed = Some(format!(
                "expected all {proxies} proxies to see the route change, got {changed} changed and {unchanged} unchanged"
            ));
            break;
        }
        if run == 0 {
            println!(
                "warm-up: {:.3} s ({changed} proxies changed)",
                elapsed.as_secs_f64()
            );
        } else {
            println!("run {run}: {:.3} s", elapsed.as_secs_f64());
            times.push(elapsed);
        }
    }
    if opts.keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    if let Some(e) = failed {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    times.sort();
    let secs = |d: Duration| d.as_secs_f64();
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        println!(
            "min {:.3} s, median {:.3} s, max {:.3} s over {} runs",
            secs(*min),
            secs(times[times.len() / 2]),
            secs(*max),
            times.len()
        );
    }
    ExitCode::SUCCESS
}
