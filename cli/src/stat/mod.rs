//! `meshctl stat` and `meshctl top`: golden metrics (requests per second, success rate,
//! p50/p95/p99 latency, bytes, mTLS share) per workload or per route, straight from the
//! proxies' Prometheus endpoints, with no Prometheus server.
//!
//! Proxies are found as proxy-status finds them (meshd's `/debug/syncz`; each proxy's admin
//! API on WORKLOAD_IP:15000 in local mode) or given with `--proxy ADDR`. Each is scraped
//! (`/stats/prometheus` on the admin API, which both engines serve) twice, `--window`
//! apart; the rows come from the difference ([`model`] says which metrics of each engine).
//! `top` repeats that and redraws until Ctrl-C; `--once`, or output that is not a
//! terminal, prints one frame.
//!
//! This module owns the flags, finding and scraping the proxies, and printing.

pub mod model;
pub mod prom;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::args::DataFormat;
use crate::demo::parse_duration;
use crate::exit;
use crate::output::to_yaml;
use crate::proxy_config::source::admin_authority;
use crate::proxy_status::{self, http};
use model::{By, Row, Scrape};

/// Exit status when no proxy could be scraped.
pub const UNAVAILABLE: u8 = 69;

/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

pub const STAT_EXAMPLES: &str = "\
Examples:
  # Every workload of the mesh meshd serves, over 2 seconds
  meshctl stat

  # One workload (or service) in one namespace, per destination, over 10 seconds, as JSON
  meshctl stat reviews -n shop --by route --window 10s -o json

  # Given proxies (admin addresses), without meshd
  meshctl stat --proxy 127.0.0.11 --proxy 127.0.0.12:15000

Rows: RPS requests per second; SUCCESS share of requests not answered 5xx; P50/P95/P99
latency in ms from histogram buckets (as Prometheus' histogram_quantile); IN/OUT request
and response bytes; MTLS the mutual-TLS share (- when unknown): for mesh-proxy, of the
requests its inbound side served (workload view; its route view says -); for Envoy, of
the CONNECTIONS opened in the window (inbound listeners' TLS handshakes over their new
connections; per route, TLS handshakes over new connections to the destination), as
Envoy has no per-request security label. Envoy sidecars are read from their cluster
stats: Envoy publishes histograms at its stats flush (every 5 s), so use --window 5s or
more for their percentiles.

Exit codes: 0 done, 64 bad usage, 69 no proxy could be scraped.";

pub const TOP_EXAMPLES: &str = "\
Examples:
  # A refreshing view of every workload (Ctrl-C or q then Enter to stop)
  meshctl top

  # Per route, refreshed every 5 seconds
  meshctl top --by route --window 5s

  # One frame (what a non-terminal output gets)
  meshctl top --once";

#[derive(Debug, Args)]
pub struct StatArgs {
    /// A workload or service name: only its rows (a service matches as a destination,
    /// `name` or `name.namespace...`).
    #[arg(value_name = "WORKLOAD|SERVICE")]
    pub target: Option<String>,

    /// Only this namespace.
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,

    /// meshd's debug API, whose /debug/syncz lists the proxies to scrape.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:15014")]
    pub controlplane: String,

    /// Scrape these proxy admin addresses (`IP`, `IP:PORT`) instead of asking meshd.
    /// Repeatable.
    #[arg(long = "proxy", value_name = "ADDR", conflicts_with = "controlplane")]
    pub proxies: Vec<String>,

    /// The time between the two scrapes (`2s`, `500ms`, `1m`).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub window: Duration,

    /// One row per serving workload, or per calling workload and destination service.
    #[arg(long, value_enum, default_value_t = By::Workload)]
    pub by: By,

    /// Output format (default: a table).
    #[arg(short, long, value_enum)]
    pub output: Option<DataFormat>,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub stat: StatArgs,

    /// Print one frame and stop (the default when the output is not a terminal).
    #[arg(long)]
    pub once: bool,
}

/// What `stat -o json` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Seconds between the two scrapes, as measured.
    pub window_seconds: f64,
    /// How many proxies were scraped.
    pub proxies: usize,
    pub rows: Vec<Row>,
    /// Proxies that could not be scraped.
    pub errors: Vec<ScrapeError>,
}

#[derive(Debug, Serialize)]
pub struct ScrapeError {
    pub proxy: String,
    pub error: String,
}

/// A proxy to scrape.
#[derive(Clone, Debug)]
struct Target {
    admin: String,
    namespace: String,
    workload: String,
}

/// Runs `meshctl stat`.
pub fn run_stat(args: &StatArgs) -> u8 {
    match http::block_on(sample(args)) {
        Ok(Ok(report)) => print(args, &report),
        Ok(Err(e)) | Err(e) => {
            eprintln!("Error: {e:#}");
            UNAVAILABLE
        }
    }
}

/// Runs `meshctl top`.
pub fn run_top(args: &TopArgs) -> u8 {
    let terminal = std::io::stdout().is_terminal();
    if args.once || !terminal || args.stat.output.is_some() {
        return run_stat(&args.stat);
    }
    // `q` then Enter stops too (the terminal stays in line mode: no raw-mode dependency).
    let (quit_tx, quit_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.trim().eq_ignore_ascii_case("q") {
                let _ = quit_tx.send(());
                return;
            }
            line.clear();
        }
    });
    loop {
        let frame = match http::block_on(sample(&args.stat)) {
            Ok(Ok(report)) => format!(
                "meshctl top: {} proxies, {:.1} s window, {}\n\n{}",
                report.proxies,
                report.window_seconds,
                humantime_now(),
                table(&report, args.stat.by)
            ),
            Ok(Err(e)) | Err(e) => format!("meshctl top: {e:#}\n"),
        };
        let mut out = std::io::stdout().lock();
        // Clear the screen and home the cursor, then the frame.
        let _ = write!(out, "\x1b[2J\x1b[H{frame}");
        let _ = out.flush();
        if quit_rx.try_recv().is_ok() {
            return exit::OK;
        }
    }
}

/// The time of day, UTC, `HH:MM:SS`.
fn humantime_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        day / 3600,
        (day / 60) % 60,
        day % 60
    )
}

fn print(args: &StatArgs, report: &Report) -> u8 {
    for e in &report.errors {
        eprintln!("Warning: {}: {}", e.proxy, e.error);
    }
    let text = match args.output {
        Some(DataFormat::Json) => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Some(DataFormat::Yaml) => to_yaml(report),
        None => table(report, args.by),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    if report.proxies > 0 && report.errors.len() == report.proxies {
        UNAVAILABLE
    } else {
        exit::OK
    }
}

/// Finds the proxies, scrapes each twice a window apart, and computes the rows.
async fn sample(args: &StatArgs) -> anyhow::Result<Report> {
    let targets = targets(args).await?;
    let first_at = Instant::now();
    let first = scrape_all(&targets).await;
    tokio::time::sleep(args.window.saturating_sub(first_at.elapsed())).await;
    let second_at = Instant::now();
    let second = scrape_all(&targets).await;
    let window = second_at.duration_since(first_at);
    let mut scrapes = Vec::new();
    let mut errors = Vec::new();
    for ((t, a), b) in targets.iter().zip(first).zip(second) {
        match (a, b) {
            (Ok(a), Ok(b)) => scrapes.push(Scrape {
                namespace: t.namespace.clone(),
                workload: t.workload.clone(),
                samples: prom::delta(&a, &b),
            }),
            (Err(e), _) | (_, Err(e)) => errors.push(ScrapeError {
                proxy: t.admin.clone(),
                error: format!("{e:#}"),
            }),
        }
    }
    let rows = model::rows(&scrapes, args.by, window)
        .into_iter()
        .filter(|r| keep(args, r))
        .collect();
    Ok(Report {
        window_seconds: window.as_secs_f64(),
        proxies: targets.len(),
        rows,
        errors,
    })
}

/// Whether a row passes `-n` and the positional filter.
fn keep(args: &StatArgs, r: &Row) -> bool {
    if args.namespace.as_ref().is_some_and(|ns| *ns != r.namespace) {
        return false;
    }
    let Some(t) = &args.target else { return true };
    let service = |d: &str| {
        d == t
            || d.strip_prefix(t.as_str())
                .is_some_and(|s| s.starts_with('.'))
    };
    r.workload == *t || r.destination.as_deref().is_some_and(service)
}

async fn targets(args: &StatArgs) -> anyhow::Result<Vec<Target>> {
    if !args.proxies.is_empty() {
        let mut out = Vec::new();
        for p in &args.proxies {
            let admin = admin_authority(p);
            let (namespace, workload) = identity(&admin).await.unwrap_or_default();
            out.push(Target {
                workload: if workload.is_empty() {
                    admin.clone()
                } else {
                    workload
                },
                namespace,
                admin,
            });
        }
        return Ok(out);
    }
    let entries = proxy_status::fetch(&args.controlplane)
        .await
        .with_context(|| {
            format!(
                "listing the proxies connected to meshd at {}",
                args.controlplane
            )
        })?;
    let mut out = Vec::new();
    for e in entries {
        let info = mesh_core::xds::ProxyInfo::from_node_id(&e.proxy).ok();
        let ip = info
            .as_ref()
            .map(|i| i.ip.to_string())
            .unwrap_or_else(|| e.ip.clone());
        if ip.is_empty() {
            continue;
        }
        out.push(Target {
            admin: admin_authority(&ip),
            namespace: info
                .as_ref()
                .map_or_else(|| e.namespace.clone(), |i| i.namespace.clone()),
            workload: info.map_or_else(|| e.workload.clone(), |i| i.workload),
        });
    }
    Ok(out)
}

/// A proxy's namespace and workload from its node id (Envoy's `/server_info`).
async fn identity(admin: &str) -> Option<(String, String)> {
    let r = http::get(&format!("http://{admin}/server_info"), SCRAPE_TIMEOUT)
        .await
        .ok()?;
    let v = r.json("server_info").ok()?;
    let id = v.pointer("/node/id")?.as_str()?;
    let info = mesh_core::xds::ProxyInfo::from_node_id(id).ok()?;
    Some((info.namespace, info.workload))
}

async fn scrape_all(targets: &[Target]) -> Vec<anyhow::Result<Vec<prom::Sample>>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, t) in targets.iter().enumerate() {
        let admin = t.admin.clone();
        set.spawn(async move { (i, scrape(&admin).await) });
    }
    let mut out: Vec<anyhow::Result<Vec<prom::Sample>>> = targets
        .iter()
        .map(|_| Err(anyhow::anyhow!("not scraped")))
        .collect();
    while let Some(done) = set.join_next().await {
        if let Ok((i, r)) = done
            && let Some(slot) = out.get_mut(i)
        {
            *slot = r;
        }
    }
    out
}

async fn scrape(admin: &str) -> anyhow::Result<Vec<prom::Sample>> {
    let url = format!("http://{admin}/stats/prometheus");
    let r = http::get(&url, SCRAPE_TIMEOUT).await?;
    if r.status != 200 {
        anyhow::bail!("GET {url}: status {}", r.status);
    }
    let text = String::from_utf8_lossy(&r.body);
    prom::parse(&text).with_context(|| format!("{url} is not Prometheus text"))
}

/// The rows as a table.
pub fn table(report: &Report, by: By) -> String {
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or_else(|| "-".to_owned(), f);
    let ms = |v: f64| format!("{v:.1}ms");
    let mut lines: Vec<Vec<String>> = vec![];
    let mut header = vec!["NAMESPACE", "WORKLOAD"];
    if by == By::Route {
        header.push("DESTINATION");
    }
    header.extend([
        "REQUESTS", "RPS", "SUCCESS", "P50", "P95", "P99", "IN", "OUT", "MTLS",
    ]);
    lines.push(header.into_iter().map(str::to_owned).collect());
    for r in &report.rows {
        let mut l = vec![r.namespace.clone(), r.workload.clone()];
        if by == By::Route {
            l.push(r.destination.clone().unwrap_or_default());
        }
        l.extend([
            r.requests.to_string(),
            format!("{:.1}", r.rps),
            opt(r.success_rate, &|v| format!("{:.1}%", v * 100.0)),
            opt(r.p50_ms, &ms),
            opt(r.p95_ms, &ms),
            opt(r.p99_ms, &ms),
            r.bytes_in.map_or_else(|| "-".to_owned(), bytes),
            r.bytes_out.map_or_else(|| "-".to_owned(), bytes),
            opt(r.mtls_share, &|v| format!("{:.0}%", v * 100.0)),
        ]);
        lines.push(l);
    }
    if report.rows.is_empty() {
        let unreachable = match report.errors.len() {
            0 => String::new(),
            n => format!(" ({n} could not be scraped)"),
        };
        return format!(
            "No traffic seen in {:.1} s on {} proxies{unreachable}.\n",
            report.window_seconds, report.proxies
        );
    }
    let columns = lines.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| l.get(c).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Bytes with a binary unit.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn row(ns: &str, w: &str, d: Option<&str>) -> Row {
        Row {
            namespace: ns.into(),
            workload: w.into(),
            destination: d.map(str::to_owned),
            requests: 10,
            rps: 5.0,
            success_rate: Some(0.9),
            p50_ms: Some(1.5),
            p95_ms: None,
            p99_ms: None,
            bytes_in: Some(2048),
            bytes_out: None,
            mtls_share: None,
            source: "istio",
        }
    }

    fn args(target: Option<&str>, ns: Option<&str>) -> StatArgs {
        StatArgs {
            target: target.map(str::to_owned),
            namespace: ns.map(str::to_owned),
            controlplane: String::new(),
            proxies: vec![],
            window: Duration::from_secs(2),
            by: By::Workload,
            output: None,
        }
    }

    #[test]
    fn filters_by_workload_service_and_namespace() {
        let a = row("shop", "reviews-v1", Some("ratings.shop.svc.cluster.local"));
        assert!(keep(&args(None, None), &a));
        assert!(keep(&args(Some("reviews-v1"), Some("shop")), &a));
        assert!(keep(&args(Some("ratings"), None), &a));
        assert!(!keep(&args(Some("rating"), None), &a));
        assert!(!keep(&args(None, Some("other")), &a));
    }

    #[test]
    fn the_table_shows_each_row_with_units() {
        let report = Report {
            window_seconds: 2.0,
            proxies: 1,
            rows: vec![row("shop", "reviews-v1", None)],
            errors: vec![],
        };
        let t = table(&report, By::Workload);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE  WORKLOAD"), "{t}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "shop",
                "reviews-v1",
                "10",
                "5.0",
                "90.0%",
                "1.5ms",
                "-",
                "-",
                "2.0KiB",
                "-",
                "-"
            ]
        );
        let empty = Report {
            rows: vec![],
            ..report
        };
        assert!(table(&empty, By::Workload).starts_with("No traffic"));
    }
}
