//! `meshctl proxy-status [PROXY]` (alias `ps`): whether each proxy has what meshd sent it.
//!
//! Without a proxy: a table from meshd's `/debug/syncz`, one row per connected proxy, with
//! the state of CDS, LDS, EDS and RDS (`SYNCED (age)`, `STALE (age)`, `NOT SENT`,
//! `ERROR (age)` for a NACK), the serving meshd and the proxy's version; STALE and ERROR
//! rows are explained below the table (nonce sent versus acked, the last NACK message).
//! With a proxy: [`diff`] compares what meshd sends with the proxy's own config dump.
//!
//! Exit codes (for CI gates): 0 every proxy SYNCED (NOT SENT is fine: the proxy did not ask
//! for that type) or, with a proxy, every section matches; [`OUT_OF_SYNC`] (79, as
//! `analyze` uses for findings) when a proxy is STALE or ERROR, or a section differs;
//! [`UNAVAILABLE`] (69) when meshd or the proxy cannot be reached or the proxy is unknown;
//! 64 for bad usage. istioctl always exits 0 here, which makes it useless as a CI check.

pub mod diff;
pub mod http;
pub mod syncz;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use crate::args::DataFormat;
use crate::exit;
use crate::output::to_yaml;
use syncz::{COLUMNS, NackEntry, ProxyEntry, State};

/// Exit code: a proxy is STALE or ERROR, or its config differs from meshd's.
pub const OUT_OF_SYNC: u8 = exit::FINDINGS;
/// Exit code: meshd or the proxy could not be reached, or the proxy is not connected.
pub const UNAVAILABLE: u8 = 69;

/// meshd's debug API when `--controlplane` is not given.
pub const DEFAULT_CONTROLPLANE: &str = "http://127.0.0.1:15014";

/// `proxy-status --help` examples.
pub const EXAMPLES: &str = "\
Examples:
  # Every proxy connected to the local meshd
  meshctl proxy-status

  # meshd's config for one proxy against the proxy's own config dump
  meshctl proxy-status productpage-v1.bookinfo

  # Another meshd, as JSON; exit 79 unless every proxy is SYNCED
  meshctl ps --controlplane http://10.0.0.5:15014 -o json

  # A CI gate: allow up to 30s for pushes in flight to be acknowledged
  meshctl ps --wait 30s

  # In a cluster: meshd and the proxy's pod through port-forwards
  meshctl ps --use-kube reviews-v1-5b4f.bookinfo

Exit codes: 0 all SYNCED (or, for one proxy, all sections match), 79 a proxy STALE or
ERROR (or a section differs), 69 meshd or the proxy unreachable, 64 bad usage.";

/// How often `--wait` polls.
pub const POLL: Duration = Duration::from_millis(250);

/// How long one request to meshd or a proxy may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Args)]
pub struct ProxyStatusArgs {
    /// One proxy (NAME.NAMESPACE or its node id): diff meshd's config for it against the
    /// proxy's own config dump.
    #[arg(value_name = "PROXY")]
    pub proxy: Option<String>,

    /// meshd's debug API.
    #[arg(long, value_name = "URL", default_value = DEFAULT_CONTROLPLANE)]
    pub controlplane: String,

    /// The proxy's admin address for the diff (default: its IP from the node id, port
    /// 15000, as in local mode).
    #[arg(long, value_name = "ADDR", requires = "proxy")]
    pub admin: Option<SocketAddr>,

    /// Poll until every proxy is SYNCED (or every section matches), up to this long
    /// (`10s`, `1m`), before reporting: a CI gate that tolerates pushes in flight.
    #[arg(long, value_name = "DURATION", value_parser = crate::demo::parse_duration)]
    pub wait: Option<Duration>,

    /// Output format (default: a table, or unified diffs for one proxy).
    #[arg(short, long, value_enum)]
    pub output: Option<DataFormat>,

    /// Reach meshd (a Ready pod behind its Service in --istio-namespace) and, for a diff,
    /// the proxy's pod through the Kubernetes API server (port-forward) instead of local
    /// addresses.
    #[arg(long)]
    pub use_kube: bool,

    /// With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through
    /// the API server's proxy subresource, for clusters where websocket upgrades are blocked).
    #[arg(long, value_enum, default_value_t, requires = "use_kube")]
    pub kube_transport: crate::cluster::forward::Transport,

    /// meshd's namespace, with --use-kube.
    #[arg(short = 'i', long = "istio-namespace", default_value = "istio-system")]
    pub istio_namespace: String,

    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

/// With `--use-kube`: the same arguments pointing at local forwards (kept alive in
/// `relays`): meshd's debug port through a Ready pod behind the meshd Service, and for a
/// diff the proxy's admin port on its pod (NAME.NAMESPACE).
fn through_cluster(
    args: &ProxyStatusArgs,
    relays: &mut Vec<crate::cluster::forward::Forward>,
) -> anyhow::Result<ProxyStatusArgs> {
    use crate::cluster::forward::{Forward, Upstream};
    let local: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut out = args.clone();
    let meshd_service = Upstream::Service {
        namespace: args.istio_namespace.clone(),
        name: "meshd".into(),
    };
    let meshd = Forward::start(
        &args.cluster,
        &meshd_service,
        15014,
        args.kube_transport,
        local,
    )
    .with_context(|| format!("meshd's debug API ({meshd_service} port 15014)"))?;
    out.controlplane = meshd.url();
    relays.push(meshd);
    if let (Some(proxy), None) = (&args.proxy, args.admin) {
        // NAME.NAMESPACE, or a node id carrying it (`sidecar~IP~NAME.NS~...`).
        let name_ns = proxy.split('~').nth(2).unwrap_or(proxy);
        if let Some((pod, ns)) = name_ns.rsplit_once('.') {
            let pod = Upstream::Pod {
                namespace: ns.to_owned(),
                name: pod.to_owned(),
            };
            let admin = Forward::start(&args.cluster, &pod, 15000, args.kube_transport, local)
                .with_context(|| format!("the proxy's admin API ({pod} port 15000)"))?;
            out.admin = Some(admin.addr);
            relays.push(admin);
        }
    }
    Ok(out)
}

/// One row, as `-o json|yaml` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// NAME.NAMESPACE.
    pub name: String,
    /// The node id.
    pub proxy: String,
    pub cluster: String,
    /// Keyed `cds`, `lds`, `eds`, `rds`.
    pub types: std::collections::BTreeMap<String, TypeRow>,
    pub control_plane: String,
    pub version: String,
}

/// One xDS type of one row.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeRow {
    pub state: State,
    /// Seconds the state has held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    pub version_sent: Option<String>,
    pub nonce_sent: Option<String>,
    pub version_acked: Option<String>,
    pub nonce_acked: Option<String>,
    pub last_nack: Option<NackEntry>,
    /// The text of the table cell (`SYNCED (12s)`).
    pub display: String,
}

/// Runs the command; returns the exit code.
pub fn run(args: &ProxyStatusArgs) -> u8 {
    let mut relays = Vec::new();
    let relayed;
    let args = if args.use_kube {
        match through_cluster(args, &mut relays) {
            Ok(a) => {
                relayed = a;
                &relayed
            }
            Err(e) => {
                eprintln!("error: --use-kube: {e:#}");
                return UNAVAILABLE;
            }
        }
    } else {
        args
    };
    let outcome = http::block_on(async {
        match &args.proxy {
            None => table(args).await,
            Some(p) => diff::run(args, p).await,
        }
    });
    match outcome.and_then(|r| r) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            UNAVAILABLE
        }
    }
}

/// Reads `/debug/syncz` from meshd at `controlplane`.
pub async fn fetch(controlplane: &str) -> anyhow::Result<Vec<ProxyEntry>> {
    let base = controlplane.trim_end_matches('/');
    let url = format!("{base}/debug/syncz");
    let resp = http::get(&url, REQUEST_TIMEOUT).await.with_context(|| {
        format!("cannot reach meshd's debug API at {base} (is meshd running? --controlplane URL)")
    })?;
    if resp.status != 200 {
        bail!(
            "{url} answered {}: {}",
            resp.status,
            String::from_utf8_lossy(&resp.body).trim()
        );
    }
    serde_json::from_slice(&resp.body).with_context(|| format!("{url} is not meshd's syncz"))
}

/// The rows of the table, sorted by name, at `now`.
pub fn rows(entries: &[ProxyEntry], now: SystemTime) -> Vec<Row> {
    let mut rows: Vec<Row> = entries
        .iter()
        .map(|e| Row {
            name: display_name(e),
            proxy: e.proxy.clone(),
            cluster: e
                .cluster_id
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "Kubernetes".to_owned()),
            types: COLUMNS
                .iter()
                .map(|(_, key)| {
                    let t = e.types.get(*key).cloned().unwrap_or_default();
                    let row = TypeRow {
                        state: t.state(),
                        age_seconds: t.age(now).map(|a| a.as_secs()),
                        version_sent: t.version_sent.clone(),
                        nonce_sent: t.nonce_sent.clone(),
                        version_acked: t.version_acked.clone(),
                        nonce_acked: t.nonce_acked.clone(),
                        last_nack: t.last_nack.clone(),
                        display: t.cell(now),
                    };
                    ((*key).to_owned(), row)
                })
                .collect(),
            control_plane: e.control_plane.clone().unwrap_or_default(),
            version: e.proxy_version.clone().unwrap_or_default(),
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name).then(a.proxy.cmp(&b.proxy)));
    rows
}

/// NAME.NAMESPACE from the node id (`sidecar~IP~NAME.NS~...`), else from syncz's fields.
pub fn display_name(e: &ProxyEntry) -> String {
    match e.proxy.split('~').nth(2) {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ if !e.workload.is_empty() => format!("{}.{}", e.workload, e.namespace),
        _ => e.proxy.clone(),
    }
}

/// Whether any row is STALE or ERROR.
pub fn out_of_sync(rows: &[Row]) -> bool {
    rows.iter()
        .any(|r| r.types.values().any(|t| t.state.is_problem()))
}

/// The table, as istioctl prints it (columns separated by spaces, no borders).
pub fn render_table(rows: &[Row]) -> String {
    let mut lines: Vec<Vec<String>> = vec![
        [
            "NAME",
            "CLUSTER",
            "CDS",
            "LDS",
            "EDS",
            "RDS",
            "CONTROL PLANE",
            "VERSION",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for r in rows {
        let mut line = vec![r.name.clone(), r.cluster.clone()];
        for (_, key) in COLUMNS {
            line.push(
                r.types
                    .get(key)
                    .map(|t| t.display.clone())
                    .unwrap_or_default(),
            );
        }
        line.push(r.control_plane.clone());
        line.push(r.version.clone());
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let mut text = String::new();
        for (i, cell) in l.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < l.len() {
                let pad = widths[i] - cell.chars().count() + 3;
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// The explanation of STALE and ERROR rows: nonce sent versus acked, the last NACK.
pub fn render_problems(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        for (label, key) in COLUMNS {
            let Some(t) = r.types.get(key).filter(|t| t.state.is_problem()) else {
                continue;
            };
            let or_none = |s: &Option<String>| s.clone().unwrap_or_else(|| "none".to_owned());
            out.push_str(&format!(
                "{} {label} {}: sent version {} nonce {}, acked version {} nonce {}\n",
                r.name,
                t.state.label(),
                or_none(&t.version_sent),
                or_none(&t.nonce_sent),
                or_none(&t.version_acked),
                or_none(&t.nonce_acked),
            ));
            if let Some(n) = &t.last_nack {
                out.push_str(&format!(
                    "    last NACK (nonce {}{}, {}): {}\n",
                    n.nonce,
                    n.version
                        .as_ref()
                        .map(|v| format!(", version {v}"))
                        .unwrap_or_default(),
                    n.time,
                    n.detail.trim()
                ));
            }
        }
    }
    out
}

async fn table(args: &ProxyStatusArgs) -> anyhow::Result<u8> {
    let deadline = args.wait.map(|w| std::time::Instant::now() + w);
    let rows = loop {
        let entries = fetch(&args.controlplane).await?;
        let rows = rows(&entries, SystemTime::now());
        match deadline {
            Some(d) if out_of_sync(&rows) && std::time::Instant::now() < d => {
                tokio::time::sleep(POLL).await;
            }
            _ => break rows,
        }
    };
    match args.output {
        Some(DataFormat::Json) => {
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        Some(DataFormat::Yaml) => print!("{}", to_yaml(&rows)),
        None => {
            if rows.is_empty() {
                eprintln!("no proxies connected to meshd at {}", args.controlplane);
            } else {
                print!("{}", render_table(&rows));
                let problems = render_problems(&rows);
                if !problems.is_empty() {
                    print!("\n{problems}");
                }
            }
        }
    }
    Ok(if out_of_sync(&rows) {
        OUT_OF_SYNC
    } else {
        exit::OK
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use syncz::parse_rfc3339;

    fn sample() -> Vec<ProxyEntry> {
        serde_json::from_value(serde_json::json!([
            {
                "proxy": "sidecar~127.0.0.12~reviews-v1.bookinfo~bookinfo.svc.cluster.local",
                "connectionId": 2,
                "namespace": "bookinfo",
                "workload": "reviews-v1",
                "proxyVersion": "envoy 1.40.0",
                "controlPlane": "meshd-7.host",
                "types": {
                    "cds": {"state": "SYNCED", "nonceSent": "5", "nonceAcked": "5",
                            "versionSent": "1", "versionAcked": "1",
                            "ackedTime": "2026-11-24T10:00:00.000Z"},
                    "eds": {"state": "STALE", "nonceSent": "9", "nonceAcked": "6",
                            "versionSent": "2", "versionAcked": "1",
                            "sentTime": "2026-11-24T10:00:08.000Z"},
                    "lds": {"state": "NACKED", "nonceSent": "7", "nonceAcked": "3",
                            "versionSent": "2", "versionAcked": "1",
                            "lastNack": {"version": "2", "nonce": "7", "detail": "bad listener",
                                         "time": "2026-11-24T10:00:09.000Z"}},
                    "rds": {"state": "NOT_SENT"}
                }
            },
            {
                "proxy": "sidecar~127.0.0.11~details-v1.bookinfo~bookinfo.svc.cluster.local",
                "clusterId": "east",
                "types": {"cds": {"state": "SYNCED", "ackedTime": "2026-11-24T09:59:00Z"}}
            }
        ]))
        .unwrap()
    }

    #[test]
    fn the_table_shows_each_state_and_explains_problems() {
        let now = parse_rfc3339("2026-11-24T10:00:12Z").unwrap();
        let rows = rows(&sample(), now);
        let table = render_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME "), "{table}");
        assert!(lines[0].ends_with("CONTROL PLANE   VERSION"), "{table}");
        assert!(
            lines[1].starts_with("details-v1.bookinfo   east "),
            "{table}"
        );
        assert!(lines[1].contains("SYNCED (1m12s)"), "{table}");
        assert!(lines[1].contains("NOT SENT"), "{table}");
        assert!(
            lines[2].starts_with("reviews-v1.bookinfo   Kubernetes "),
            "{table}"
        );
        for cell in [
            "SYNCED (12s)",
            "ERROR (3s)",
            "STALE (4s)",
            "NOT SENT",
            "meshd-7.host",
            "envoy 1.40.0",
        ] {
            assert!(lines[2].contains(cell), "{cell} missing: {table}");
        }
        // CDS, LDS, EDS, RDS order.
        let r = lines[2];
        assert!(r.find("SYNCED").unwrap() < r.find("ERROR").unwrap());
        assert!(r.find("ERROR").unwrap() < r.find("STALE").unwrap());
        let problems = render_problems(&rows);
        assert_eq!(
            problems,
            "reviews-v1.bookinfo LDS ERROR: sent version 2 nonce 7, acked version 1 nonce 3\n\
             \x20   last NACK (nonce 7, version 2, 2026-11-24T10:00:09.000Z): bad listener\n\
             reviews-v1.bookinfo EDS STALE: sent version 2 nonce 9, acked version 1 nonce 6\n"
        );
        assert!(out_of_sync(&rows));
        assert!(!out_of_sync(&rows[..1]));
    }

    #[test]
    fn json_rows_carry_states_and_nacks() {
        let now = parse_rfc3339("2026-11-24T10:00:12Z").unwrap();
        let v = serde_json::to_value(rows(&sample(), now)).unwrap();
        assert_eq!(v[1]["name"], "reviews-v1.bookinfo");
        assert_eq!(v[1]["types"]["lds"]["state"], "ERROR");
        assert_eq!(v[1]["types"]["lds"]["lastNack"]["detail"], "bad listener");
        assert_eq!(v[1]["types"]["eds"]["state"], "STALE");
        assert_eq!(v[1]["types"]["eds"]["ageSeconds"], 4);
        assert_eq!(v[1]["types"]["rds"]["state"], "NOT_SENT");
        assert_eq!(v[0]["cluster"], "east");
    }
}
