//! Shared by the mTLS e2e tests (`mtls.rs` through Envoy, `mtls_native.rs` through native
//! sidecars): scenario copies on their own addresses, reading secrets with `meshctl
//! proxy-config secret`, the rotation-under-load check, and a second mesh with its own CA.
//! Each test binary uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mesh_e2e::client::{self, HttpRequest, Via};
use mesh_e2e::expect::echo_reply;
use mesh_e2e::process::{ChildGuard, wait_for_port, workspace_binary};
use mesh_e2e::scenario::{LoadedScenario, scenarios_root};

/// A copy of scenario `name` in directory `dir` (under the test's temporary directory) with
/// its `127.10.N.` addresses moved to `127.10.third.`.
pub fn relocated_to(name: &str, third: u8, dir: &str) -> LoadedScenario {
    let src = scenarios_root().join(name);
    let original = LoadedScenario::load(&src).unwrap();
    let from = {
        let ip = original.scenario.meshd_ip.to_string();
        let (prefix, _) = ip.rsplit_once('.').unwrap();
        format!("{prefix}.")
    };
    let to = format!("127.10.{third}.");
    let dst = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(dst.join("config")).unwrap();
    let copy = |from_path: &Path, to_path: &Path| {
        let text = std::fs::read_to_string(from_path).unwrap();
        std::fs::write(to_path, text.replace(&from, &to)).unwrap();
    };
    copy(&src.join("scenario.yaml"), &dst.join("scenario.yaml"));
    for entry in std::fs::read_dir(src.join("config")).unwrap() {
        let p = entry.unwrap().path();
        copy(&p, &dst.join("config").join(p.file_name().unwrap()));
    }
    let mut s = LoadedScenario::load(&dst).unwrap();
    s.name = format!("{name}-{third}");
    s
}

/// `meshctl proxy-config secret --admin ADDR`: (name, serial) of each row.
pub async fn secrets(admin: &str) -> anyhow::Result<Vec<(String, String)>> {
    let out = tokio::process::Command::new(workspace_binary("meshctl")?)
        .args(["proxy-config", "secret", "--admin", admin])
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "meshctl proxy-config secret failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = Vec::new();
    for line in stdout.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // RESOURCE NAME, TYPE (one or two words), STATUS, VALID CERT, SERIAL, ...
        let valid = cols.iter().position(|c| *c == "true" || *c == "false");
        if let (Some(name), Some(v)) = (cols.first(), valid) {
            anyhow::ensure!(cols[v] == "true", "certificate not valid now: {line}");
            rows.push((
                (*name).to_owned(),
                cols.get(v + 1).copied().unwrap_or_default().to_owned(),
            ));
        }
    }
    Ok(rows)
}

pub fn serial_of(rows: &[(String, String)], name: &str) -> Option<String> {
    rows.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone())
}

/// For 20 s, requests from the client's sidecar to STRICT catalog: every one must succeed
/// with the client's SPIFFE identity in x-forwarded-client-cert, catalog must see more than
/// one client certificate, and both sidecars' `default` secret must change serial while
/// `ROOTCA` stays. Returns the failures.
pub async fn rotation_under_load(s: LoadedScenario) -> anyhow::Result<Vec<String>> {
    let mut f = Vec::new();
    let client_w = s.workload("client").unwrap();
    let catalog_w = s.workload("catalog-v1").unwrap();
    let admins = [
        client_w.admin_addr().unwrap().to_string(),
        catalog_w.admin_addr().unwrap().to_string(),
    ];
    let mut first = Vec::new();
    for a in &admins {
        let rows = secrets(a).await?;
        let d = serial_of(&rows, "default");
        let r = serial_of(&rows, "ROOTCA");
        anyhow::ensure!(
            d.is_some() && r.is_some(),
            "{a}: default and ROOTCA expected in {rows:?}"
        );
        first.push((d, r));
    }
    let req = HttpRequest::get("http://catalog.shop:9080/items");
    let via = Via::Proxy(client_w.outbound_addr());
    let (mut ok, mut failed) = (0u32, Vec::new());
    let mut hashes = BTreeSet::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        match client::send(&req, via, Duration::from_secs(5)).await {
            Ok(r) if r.status == 200 => {
                ok += 1;
                let xfcc = echo_reply(&r)
                    .and_then(|e| e.headers.get("x-forwarded-client-cert").cloned())
                    .unwrap_or_default();
                if !xfcc.contains("URI=spiffe://cluster.local/ns/shop/sa/client") {
                    failed.push(format!("no client identity: {xfcc:?}"));
                }
                if let Some(h) = xfcc.split(';').find_map(|p| p.strip_prefix("Hash=")) {
                    hashes.insert(h.to_owned());
                }
            }
            Ok(r) => failed.push(format!("status {}", r.status)),
            Err(e) => failed.push(format!("{e:#}")),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "{ok} requests in 20 s, {} failed; client certificates seen by catalog: {}",
        failed.len(),
        hashes.len()
    );
    if !failed.is_empty() {
        f.push(format!(
            "{} of {} requests failed during rotation, first: {}",
            failed.len(),
            ok as usize + failed.len(),
            failed[0]
        ));
    }
    if hashes.len() < 2 {
        f.push(format!(
            "catalog saw {} client certificate(s); a rotated one was never presented",
            hashes.len()
        ));
    }
    for (a, (d0, r0)) in admins.iter().zip(first) {
        let rows = secrets(a).await?;
        let (d1, r1) = (serial_of(&rows, "default"), serial_of(&rows, "ROOTCA"));
        eprintln!("{a}: default {d0:?} -> {d1:?}, ROOTCA {r0:?} -> {r1:?}");
        if d1 == d0 {
            f.push(format!(
                "{a}: the workload certificate did not rotate ({d0:?})"
            ));
        }
        if r1 != r0 {
            f.push(format!("{a}: the trust bundle changed ({r0:?} -> {r1:?})"));
        }
    }
    Ok(f)
}

/// Another mesh beside scenario `s`: the same config with the client moved from `.10` to
/// `.12` of the scenario's `/24`, its own meshd and CA (another root) at `.2`, logs and CA
/// files in `log_dir`. Returns meshd's guard, once its CA port is up, and the identity
/// flags (with `--ca-dir`) of that mesh's client sidecar.
pub async fn foreign_mesh(
    s: &LoadedScenario,
    meshd_bin: &Path,
    log_dir: &Path,
) -> anyhow::Result<(ChildGuard, Vec<String>)> {
    let ip = s.scenario.meshd_ip.to_string();
    let (net, _) = ip
        .rsplit_once('.')
        .ok_or_else(|| anyhow::anyhow!("meshd_ip {ip} is not IPv4"))?;
    let at = |host: u8| format!("{net}.{host}");
    let _ = std::fs::remove_dir_all(log_dir);
    let config = log_dir.join("config");
    std::fs::create_dir_all(&config)?;
    for entry in std::fs::read_dir(&s.config_dir)? {
        let p = entry?.path();
        let text = std::fs::read_to_string(&p)?.replace(&at(10), &at(12));
        std::fs::write(config.join(p.file_name().unwrap()), text)?;
    }
    let xds = format!("{}:15010", at(2));
    let mut meshd = std::process::Command::new(meshd_bin);
    meshd
        .arg("--config-dir")
        .arg(&config)
        .args(["--xds-address", &xds])
        .args(["--debug-address", &format!("{}:15014", at(2))])
        .arg("--ca-dir")
        .arg(log_dir.join("ca"));
    let guard = ChildGuard::spawn("foreign meshd", meshd, &log_dir.join("meshd.log"))?;
    wait_for_port(format!("{}:15012", at(2)).parse()?, Duration::from_secs(20)).await?;
    let identity = [
        "--xds-address",
        &xds,
        "--workload",
        "shop/client",
        "--ip",
        &at(12),
        "--service-account",
        "client",
        "--label",
        "app=client",
        "--label",
        "security.istio.io/tlsMode=istio",
        "--ca-dir",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .chain([log_dir.join("ca").display().to_string()])
    .collect();
    Ok((guard, identity))
}

/// The DestinationRule that makes every request from the client a new mTLS handshake.
pub fn one_request_per_connection(s: &LoadedScenario) {
    std::fs::write(
        s.config_dir.join("one-request-per-connection.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {name: catalog, namespace: shop}\n\
         spec:\n  host: catalog.shop.svc.cluster.local\n  \
         trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 1}}}\n",
    )
    .unwrap();
}
