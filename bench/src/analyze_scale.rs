//! analyze-scale: how long `meshctl analyze` takes on a generated mesh.
//!
//! Generates a mesh of N objects (default 10,000) spread over namespaces and files, then runs
//! the given meshctl binary on it several times (all analyzers, files-only mode) and prints
//! the wall-clock times and the number of messages found. A benchmark program, not a test:
//! run it on a release build, on an otherwise idle machine.
//!
//! Usage: analyze-scale [--objects N] [--runs R] [--meshctl PATH] [--keep DIR]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

struct Options {
    objects: usize,
    runs: usize,
    meshctl: PathBuf,
    keep: Option<PathBuf>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        objects: 10_000,
        runs: 5,
        meshctl: default_meshctl(),
        keep: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--objects" => o.objects = value()?.parse().map_err(|e| format!("--objects: {e}"))?,
            "--runs" => {
                o.runs = value()?
                    .parse::<usize>()
                    .map_err(|e| format!("--runs: {e}"))?
                    .max(1)
            }
            "--meshctl" => o.meshctl = PathBuf::from(value()?),
            "--keep" => o.keep = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                return Err(
                    "usage: analyze-scale [--objects N] [--runs R] [--meshctl PATH] [--keep DIR]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?}")),
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

/// One application: a Service, a ServiceAccount, two Deployments (v1, v2), a
/// VirtualService splitting traffic, a DestinationRule with subsets, an
/// AuthorizationPolicy and a PeerAuthentication: 8 objects.
fn app(i: usize, ns: &str) -> String {
    let next = format!("app{}", i + 1);
    let mut s = String::new();
    let _ = write!(
        s,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: app{i}\n  namespace: {ns}\nspec:\n  selector:\n    app: app{i}\n  ports:\n  - name: http\n    port: 8080\n---\n\
apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app{i}\n  namespace: {ns}\n---\n"
    );
    for v in ["v1", "v2"] {
        let _ = write!(
            s,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{i}-{v}\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels: {{app: app{i}, version: {v}}}\n  template:\n    metadata:\n      labels: {{app: app{i}, version: {v}}}\n    spec:\n      serviceAccountName: app{i}\n      containers:\n      - name: app\n        image: example/app:{v}\n        ports:\n        - containerPort: 8080\n---\n"
        );
    }
    let _ = write!(
        s,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: app{i}\n  namespace: {ns}\nspec:\n  hosts: [app{i}]\n  http:\n  - match:\n    - headers:\n        x-canary: {{exact: \"true\"}}\n    route:\n    - destination: {{host: app{i}, subset: v2}}\n  - route:\n    - destination: {{host: app{i}, subset: v1}}\n      weight: 90\n    - destination: {{host: app{i}, subset: v2}}\n      weight: 10\n    retries: {{attempts: 3, perTryTimeout: 2s}}\n    timeout: 10s\n---\n\
apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: app{i}\n  namespace: {ns}\nspec:\n  host: app{i}\n  trafficPolicy:\n    loadBalancer: {{simple: LEAST_REQUEST}}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n  - name: v2\n    labels: {{version: v2}}\n---\n\
apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: app{i}\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels: {{app: app{i}}}\n  rules:\n  - from:\n    - source:\n        principals: [\"cluster.local/ns/{ns}/sa/{next}\"]\n---\n\
apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: app{i}\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels: {{app: app{i}}}\n  mtls: {{mode: STRICT}}\n---\n"
    );
    s
}

/// Writes the mesh: 20 namespaces, one file per namespace. Returns the object count.
fn generate(dir: &Path, objects: usize) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let namespaces = 20;
    let apps = objects.div_ceil(8);
    let mut files: Vec<String> = vec![String::new(); namespaces];
    let mut count = 0;
    for (n, file) in files.iter_mut().enumerate() {
        let _ = write!(
            file,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns{n}\n  labels:\n    istio-injection: enabled\n---\n"
        );
        count += 1;
    }
    for i in 0..apps {
        let n = i % namespaces;
        files[n].push_str(&app(i, &format!("ns{n}")));
        count += 8;
    }
    for (n, text) in files.iter().enumerate() {
        std::fs::write(dir.join(format!("ns{n}.yaml")), text)?;
    }
    Ok(count)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    let dir = opts.keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("mesh-analyze-scale-{}", std::process::id()))
    });
    let count = match generate(&dir, opts.objects) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot write the mesh to {}: {e}", dir.display());
            return ExitCode::from(1);
        }
    };
    let bytes: u64 = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "mesh: {count} objects, {} KiB of YAML in {}",
        bytes / 1024,
        dir.display()
    );
    println!("meshctl: {}", opts.meshctl.display());

    let mut times: Vec<Duration> = Vec::new();
    let mut messages = 0;
    for run in 0..=opts.runs {
        let started = Instant::now();
        let out = Command::new(&opts.meshctl)
            .args(["analyze", "-o", "json", "--failure-threshold", "Error"])
            .arg(&dir)
            .stderr(Stdio::null())
            .output();
        let elapsed = started.elapsed();
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                eprintln!("cannot run {}: {e}", opts.meshctl.display());
                return ExitCode::from(1);
            }
        };
        if !matches!(out.status.code(), Some(0 | 79)) {
            eprintln!("meshctl analyze failed: {:?}", out.status);
            return ExitCode::from(1);
        }
        messages = String::from_utf8_lossy(&out.stdout)
            .matches("\"code\"")
            .count();
        if run == 0 {
            println!("warm-up run: {:.3} s", elapsed.as_secs_f64());
        } else {
            times.push(elapsed);
        }
    }
    times.sort();
    let secs = |d: Duration| d.as_secs_f64();
    let median = times[times.len() / 2];
    println!(
        "analyze, {} runs: min {:.3} s, median {:.3} s, max {:.3} s; {messages} messages",
        times.len(),
        secs(times[0]),
        secs(median),
        secs(times[times.len() - 1])
    );
    if opts.keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    ExitCode::SUCCESS
}
