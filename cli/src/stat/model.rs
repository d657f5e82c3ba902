//! From the change in each proxy's metrics over a window to the rows `meshctl stat` shows.
//!
//! Two sources, chosen per proxy by what it emits:
//! - Istio's standard metrics (mesh-proxy, or an Envoy with Istio's stats filter):
//!   `istio_requests_total`, `istio_request_duration_milliseconds` buckets,
//!   `istio_request_bytes`/`istio_response_bytes` sums, `istio_tcp_received_bytes_total`/
//!   `istio_tcp_sent_bytes_total`. The workload view counts what the serving side reports
//!   (`reporter="destination"`, by destination workload); the route view what the calling
//!   side reports (`reporter="source"`, by source workload and `destination_service`).
//!   The mTLS share is the share of requests labelled
//!   `connection_security_policy="mutual_tls"` among those that carry the label.
//! - Envoy's own cluster stats (upstream Envoy has no Istio stats filter, so meshd cannot
//!   configure one): `inbound|PORT||` clusters give the workload view of the scraped proxy,
//!   `outbound|PORT|SUBSET|HOST` clusters its route view by HOST: `upstream_rq_xx` (count
//!   and success), `upstream_rq_time` buckets, `upstream_cx_tx_bytes_total` (in) and
//!   `upstream_cx_rx_bytes_total` (out). Envoy has no per-request security label, so its
//!   mTLS share counts connections, not requests: in the workload view the share of the
//!   connections opened in the window on the proxy's inbound listeners (those on the port
//!   of an `inbound|PORT||` cluster) that completed a TLS handshake (`listener.ADDR.
//!   ssl.handshake` over `listener.ADDR.downstream_cx_total`; meshd's inbound TLS chains
//!   require a client certificate, so each is mutual TLS), in the route view the share of
//!   the connections opened to the destination's clusters that were TLS (`ssl.handshake`
//!   over `upstream_cx_total`); unknown when no connection was opened in the window.
//!   A request Envoy answers itself (a fault abort) never reaches a cluster and is not
//!   counted. Envoy's default tags cut cluster names at the first dot; mesh-proxy's
//!   bootstrap adds Istio's `cluster_name` tag, which keeps `.svc.cluster.local` names
//!   whole ([`envoy_metric`] reads it first and puts the others back together).

use std::collections::BTreeMap;
use std::time::Duration;

use clap::ValueEnum;
use serde::Serialize;

use super::prom::{Buckets, Sample};

/// How rows are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// One row per serving workload.
    Workload,
    /// One row per calling workload and destination service.
    Route,
}

/// A scraped proxy: who it is and how its metrics changed over the window.
#[derive(Clone, Debug)]
pub struct Scrape {
    pub namespace: String,
    pub workload: String,
    pub samples: Vec<Sample>,
}

/// One row of `meshctl stat`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub workload: String,
    /// The destination service (`--by route`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Requests over the window.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// The share (0..1) of requests not answered 5xx; `null` without requests.
    pub success_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Bytes toward the destination (requests) over the window; `null` when not reported.
    pub bytes_in: Option<u64>,
    /// Bytes back (responses) over the window; `null` when not reported.
    pub bytes_out: Option<u64>,
    /// The share (0..1) of requests over mutual TLS; `null` when not reported.
    pub mtls_share: Option<f64>,
    /// `istio` (Istio's metrics) or `envoy` (Envoy's cluster stats).
    pub source: &'static str,
}

type Key = (String, String, Option<String>);

#[derive(Default)]
struct Acc {
    requests: f64,
    ok: f64,
    buckets: Buckets,
    bytes_in: Option<f64>,
    bytes_out: Option<f64>,
    mtls: f64,
    mtls_known: f64,
    source: &'static str,
}

fn add(slot: &mut Option<f64>, v: f64) {
    *slot = Some(slot.unwrap_or(0.0) + v);
}

/// Whether a proxy's metrics are Istio's.
fn emits_istio(samples: &[Sample]) -> bool {
    samples.iter().any(|s| s.name.starts_with("istio_"))
}

/// The rows with traffic in the window, sorted by namespace, workload and destination.
pub fn rows(scrapes: &[Scrape], by: By, window: Duration) -> Vec<Row> {
    let mut acc: BTreeMap<Key, Acc> = BTreeMap::new();
    for scrape in scrapes {
        if emits_istio(&scrape.samples) {
            istio(&scrape.samples, by, &mut acc);
        } else {
            envoy(scrape, by, &mut acc);
        }
    }
    let secs = window.as_secs_f64();
    // Envoy lists every cluster, used or not: a row needs traffic in the window.
    let busy = |a: &Acc| {
        a.requests > 0.0 || a.bytes_in.unwrap_or(0.0) > 0.0 || a.bytes_out.unwrap_or(0.0) > 0.0
    };
    acc.into_iter()
        .filter(|(_, a)| busy(a))
        .map(|((namespace, workload, destination), a)| {
            let round = |v: f64| v.round().max(0.0);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let int = |v: f64| round(v) as u64;
            Row {
                namespace,
                workload,
                destination,
                requests: int(a.requests),
                rps: if secs > 0.0 { a.requests / secs } else { 0.0 },
                success_rate: (a.requests > 0.0).then(|| a.ok / a.requests),
                p50_ms: a.buckets.quantile(0.5),
                p95_ms: a.buckets.quantile(0.95),
                p99_ms: a.buckets.quantile(0.99),
                bytes_in: a.bytes_in.map(int),
                bytes_out: a.bytes_out.map(int),
                mtls_share: (a.mtls_known > 0.0).then(|| (a.mtls / a.mtls_known).min(1.0)),
                source: a.source,
            }
        })
        .collect()
}

fn istio(samples: &[Sample], by: By, acc: &mut BTreeMap<Key, Acc>) {
    let reporter = match by {
        By::Workload => "destination",
        By::Route => "source",
    };
    for s in samples {
        if s.label("reporter") != reporter {
            continue;
        }
        let key = match by {
            By::Workload => (
                s.label("destination_workload_namespace").to_owned(),
                s.label("destination_workload").to_owned(),
                None,
            ),
            By::Route => (
                s.label("source_workload_namespace").to_owned(),
                s.label("source_workload").to_owned(),
                Some(s.label("destination_service").to_owned()),
            ),
        };
        let name = s.name.as_str();
        let known = [
            "istio_requests_total",
            "istio_request_duration_milliseconds_bucket",
            "istio_request_bytes_sum",
            "istio_response_bytes_sum",
            "istio_tcp_received_bytes_total",
            "istio_tcp_sent_bytes_total",
        ];
        if !known.contains(&name) {
            continue;
        }
        let a = acc.entry(key).or_default();
        a.source = "istio";
        match name {
            "istio_requests_total" => {
                a.requests += s.value;
                if !s.label("response_code").starts_with('5') {
                    a.ok += s.value;
                }
                match s.label("connection_security_policy") {
                    "mutual_tls" => {
                        a.mtls += s.value;
                        a.mtls_known += s.value;
                    }
                    "none" => a.mtls_known += s.value,
                    _ => {}
                }
            }
            "istio_request_duration_milliseconds_bucket" => a.buckets.add(s),
            "istio_request_bytes_sum" | "istio_tcp_received_bytes_total" => {
                add(&mut a.bytes_in, s.value);
            }
            _ => add(&mut a.bytes_out, s.value),
        }
    }
}

/// The destination of an Envoy cluster name in the requested view, `None` to skip it:
/// `Some(None)` for the proxy's own inbound clusters (workload view), `Some(Some(HOST))` for
/// outbound ones (route view).
fn envoy_cluster(name: &str, by: By) -> Option<Option<String>> {
    let mut parts = name.split('|');
    let direction = parts.next()?;
    let _port = parts.next()?;
    let _subset = parts.next()?;
    let host = parts.next()?;
    match (direction, by) {
        ("inbound", By::Workload) => Some(None),
        ("outbound", By::Route) => Some(Some(host.to_owned())),
        _ => None,
    }
}

/// The cluster stats read, by their name after the cluster.
const ENVOY_METRICS: [&str; 6] = [
    "upstream_rq_xx",
    "upstream_rq_time_bucket",
    "upstream_cx_tx_bytes_total",
    "upstream_cx_rx_bytes_total",
    "upstream_cx_total",
    "ssl_handshake",
];

/// The metric and the whole cluster name of an Envoy cluster stat. Envoy's default tag
/// extraction ends the `envoy_cluster_name` label at the cluster name's first dot and
/// leaves the rest in the metric name (`outbound|9080|v1|reviews` and
/// `envoy_cluster_bookinfo_svc_cluster_local_upstream_rq_xx`), so the name is put back
/// together. Istio's `cluster_name` tag (in mesh-proxy's bootstrap) keeps names ending in
/// `.svc.cluster.local` whole and is read first; other hosts are still cut and
/// re-assembled the same way. Stats of one kind of upstream only (`external_`, `internal_`) are left out:
/// the plain stat counts both.
fn envoy_metric(s: &Sample) -> Option<(&'static str, String)> {
    let rest = s.name.strip_prefix("envoy_cluster_")?;
    let metric = ENVOY_METRICS.into_iter().find(|m| rest.ends_with(m))?;
    let middle = &rest[..rest.len() - metric.len()];
    if !(middle.is_empty() || middle.ends_with('_'))
        || middle.ends_with("external_")
        || middle.ends_with("internal_")
    {
        return None;
    }
    // mesh-proxy's Envoy bootstrap adds Istio's `cluster_name` tag, which keeps
    // `.svc.cluster.local` names whole; other Envoys have only the default one.
    let label = match s.label("cluster_name") {
        "" => s.label("envoy_cluster_name"),
        whole => whole,
    };
    let cluster = if middle.is_empty() {
        label.to_owned()
    } else {
        format!("{label}.{}", middle.trim_end_matches('_').replace('_', "."))
    };
    Some((metric, cluster))
}

/// The port of an Envoy listener stat's `envoy_listener_address` (`127.0.0.11_9080`).
fn listener_port(s: &Sample) -> Option<u16> {
    let (_, port) = s.label("envoy_listener_address").rsplit_once('_')?;
    port.parse().ok()
}

fn envoy(scrape: &Scrape, by: By, acc: &mut BTreeMap<Key, Acc>) {
    if by == By::Workload {
        envoy_inbound_tls(scrape, acc);
    }
    for s in &scrape.samples {
        let Some((metric, cluster)) = envoy_metric(s) else {
            continue;
        };
        let Some(destination) = envoy_cluster(&cluster, by) else {
            continue;
        };
        let key = (
            scrape.namespace.clone(),
            scrape.workload.clone(),
            destination,
        );
        let a = acc.entry(key).or_default();
        a.source = "envoy";
        match metric {
            "upstream_rq_xx" => {
                a.requests += s.value;
                if s.label("envoy_response_code_class") != "5" {
                    a.ok += s.value;
                }
            }
            "upstream_rq_time_bucket" => a.buckets.add(s),
            "upstream_cx_tx_bytes_total" => add(&mut a.bytes_in, s.value),
            "upstream_cx_rx_bytes_total" => add(&mut a.bytes_out, s.value),
            // Outbound connections, and those of them over TLS: the route view's share.
            "upstream_cx_total" if by == By::Route => a.mtls_known += s.value,
            "ssl_handshake" if by == By::Route => a.mtls += s.value,
            _ => {}
        }
    }
}

/// The workload view's mTLS share of an Envoy proxy: connections opened on its inbound
/// listeners, and TLS handshakes completed there.
fn envoy_inbound_tls(scrape: &Scrape, acc: &mut BTreeMap<Key, Acc>) {
    let inbound: std::collections::BTreeSet<u16> = scrape
        .samples
        .iter()
        .filter_map(envoy_metric)
        .filter_map(|(_, cluster)| {
            let mut parts = cluster.split('|');
            match (parts.next(), parts.next()) {
                (Some("inbound"), Some(port)) => port.parse().ok(),
                _ => None,
            }
        })
        .collect();
    let (mut connections, mut handshakes) = (0.0, 0.0);
    for s in &scrape.samples {
        if !listener_port(s).is_some_and(|p| inbound.contains(&p)) {
            continue;
        }
        match s.name.as_str() {
            "envoy_listener_downstream_cx_total" => connections += s.value,
            "envoy_listener_ssl_handshake" => handshakes += s.value,
            _ => {}
        }
    }
    if connections > 0.0 {
        let key = (scrape.namespace.clone(), scrape.workload.clone(), None);
        let a = acc.entry(key).or_default();
        a.mtls += handshakes;
        a.mtls_known += connections;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::prom::{delta, parse};
    use super::*;

    const MESH_PROXY_BEFORE: &str = "\
# TYPE istio_requests counter
istio_requests_total{reporter=\"destination\",source_workload=\"client\",source_workload_namespace=\"shop\",destination_workload=\"reviews-v1\",destination_workload_namespace=\"shop\",destination_service=\"reviews.shop.svc.cluster.local\",request_protocol=\"http\",response_code=\"200\",response_flags=\"-\"} 10
# EOF
";

    const MESH_PROXY_AFTER: &str = "\
# TYPE istio_requests counter
istio_requests_total{reporter=\"destination\",source_workload=\"client\",source_workload_namespace=\"shop\",destination_workload=\"reviews-v1\",destination_workload_namespace=\"shop\",destination_service=\"reviews.shop.svc.cluster.local\",request_protocol=\"http\",response_code=\"200\",response_flags=\"-\"} 16
istio_requests_total{reporter=\"destination\",source_workload=\"client\",source_workload_namespace=\"shop\",destination_workload=\"reviews-v1\",destination_workload_namespace=\"shop\",destination_service=\"reviews.shop.svc.cluster.local\",request_protocol=\"http\",response_code=\"503\",response_flags=\"-\"} 2
istio_requests_total{reporter=\"source\",source_workload=\"reviews-v1\",source_workload_namespace=\"shop\",destination_workload=\"ratings-v1\",destination_workload_namespace=\"shop\",destination_service=\"ratings.shop.svc.cluster.local\",request_protocol=\"http\",response_code=\"200\",response_flags=\"-\"} 4
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{le=\"1.0\",reporter=\"destination\",destination_workload=\"reviews-v1\",destination_workload_namespace=\"shop\"} 4
istio_request_duration_milliseconds_bucket{le=\"5.0\",reporter=\"destination\",destination_workload=\"reviews-v1\",destination_workload_namespace=\"shop\"} 8
istio_request_duration_milliseconds_bucket{le=\"+Inf\",reporter=\"destination\",destination_workload=\"reviews-v1\",destination_workload_namespace=\"shop\"} 8
# EOF
";

    #[test]
    fn istio_metrics_give_counts_success_and_percentiles_per_workload_and_route() {
        let samples = delta(
            &parse(MESH_PROXY_BEFORE).unwrap(),
            &parse(MESH_PROXY_AFTER).unwrap(),
        );
        let scrape = Scrape {
            namespace: "shop".into(),
            workload: "reviews-v1".into(),
            samples,
        };
        let w = rows(
            std::slice::from_ref(&scrape),
            By::Workload,
            Duration::from_secs(2),
        );
        assert_eq!(w.len(), 1);
        let r = &w[0];
        assert_eq!(
            (r.namespace.as_str(), r.workload.as_str()),
            ("shop", "reviews-v1")
        );
        assert_eq!(r.requests, 8);
        assert_eq!(r.rps, 4.0);
        assert_eq!(r.success_rate, Some(0.75));
        assert_eq!(r.p50_ms, Some(1.0));
        // rank 7.92 of 8: in (1, 5], 3.92 of its 4.
        assert!((r.p99_ms.unwrap() - 4.92).abs() < 1e-9, "{:?}", r.p99_ms);
        assert_eq!(r.mtls_share, None);
        assert_eq!(r.bytes_in, None);
        assert_eq!(r.source, "istio");

        let routes = rows(&[scrape], By::Route, Duration::from_secs(2));
        assert_eq!(routes.len(), 1);
        assert_eq!(
            routes[0].destination.as_deref(),
            Some("ratings.shop.svc.cluster.local")
        );
        assert_eq!(routes[0].requests, 4);
        assert_eq!(routes[0].success_rate, Some(1.0));
        assert_eq!(routes[0].p50_ms, None);
    }

    #[test]
    fn mtls_share_and_bytes_come_from_istio_labels_and_sums() {
        let text = "\
istio_requests_total{reporter=\"destination\",destination_workload=\"a\",destination_workload_namespace=\"x\",response_code=\"200\",connection_security_policy=\"mutual_tls\"} 3
istio_requests_total{reporter=\"destination\",destination_workload=\"a\",destination_workload_namespace=\"x\",response_code=\"200\",connection_security_policy=\"none\"} 1
istio_request_bytes_sum{reporter=\"destination\",destination_workload=\"a\",destination_workload_namespace=\"x\"} 400
istio_response_bytes_sum{reporter=\"destination\",destination_workload=\"a\",destination_workload_namespace=\"x\"} 1200
";
        let scrape = Scrape {
            namespace: "x".into(),
            workload: "a".into(),
            samples: parse(text).unwrap(),
        };
        let r = &rows(&[scrape], By::Workload, Duration::from_secs(1))[0];
        assert_eq!(r.mtls_share, Some(0.75));
        assert_eq!((r.bytes_in, r.bytes_out), (Some(400), Some(1200)));
    }

    #[test]
    fn envoy_cluster_stats_give_the_same_rows() {
        let text = "\
envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"inbound|9080||\"} 9
envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",envoy_cluster_name=\"inbound|9080||\"} 1
envoy_cluster_shop_svc_cluster_local_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"outbound|9080|v1|ratings\"} 5
envoy_cluster_shop_svc_cluster_local_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"outbound|9080|v2|ratings\"} 5
envoy_cluster_shop_svc_cluster_local_external_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"outbound|9080|v2|ratings\"} 5
envoy_cluster_external_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"inbound|9080||\"} 9
envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"xds-grpc\"} 3
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"inbound|9080||\",le=\"10\"} 10
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"inbound|9080||\",le=\"+Inf\"} 10
envoy_cluster_upstream_cx_tx_bytes_total{envoy_cluster_name=\"inbound|9080||\"} 1000
envoy_cluster_upstream_cx_rx_bytes_total{envoy_cluster_name=\"inbound|9080||\"} 5000
envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"outbound|80||idle\"} 0
";
        let scrape = Scrape {
            namespace: "shop".into(),
            workload: "reviews-v1".into(),
            samples: parse(text).unwrap(),
        };
        let w = rows(
            std::slice::from_ref(&scrape),
            By::Workload,
            Duration::from_secs(2),
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].requests, 10);
        assert_eq!(w[0].success_rate, Some(0.9));
        assert_eq!(w[0].p50_ms, Some(5.0));
        assert_eq!((w[0].bytes_in, w[0].bytes_out), (Some(1000), Some(5000)));
        assert_eq!(w[0].source, "envoy");
        let r = rows(&[scrape], By::Route, Duration::from_secs(2));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].workload, "reviews-v1");
        assert_eq!(
            r[0].destination.as_deref(),
            Some("ratings.shop.svc.cluster.local")
        );
        assert_eq!(r[0].requests, 10);
    }

    #[test]
    fn envoy_mtls_share_counts_connections_on_inbound_listeners_and_to_clusters() {
        let text = "\
envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"inbound|9080||\"} 8
envoy_listener_downstream_cx_total{envoy_listener_address=\"127.0.0.31_9080\"} 4
envoy_listener_ssl_handshake{envoy_listener_address=\"127.0.0.31_9080\"} 3
envoy_listener_downstream_cx_total{envoy_listener_address=\"127.0.0.31_15001\"} 7
envoy_listener_downstream_cx_total{envoy_listener_address=\"127.0.0.31_15000\"} 2
envoy_cluster_shop_svc_cluster_local_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"outbound|9080||catalog\"} 7
envoy_cluster_shop_svc_cluster_local_upstream_cx_total{envoy_cluster_name=\"outbound|9080||catalog\"} 5
envoy_cluster_shop_svc_cluster_local_ssl_handshake{envoy_cluster_name=\"outbound|9080||catalog\"} 5
envoy_cluster_shop_svc_cluster_local_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"outbound|9080||plain\"} 2
envoy_cluster_shop_svc_cluster_local_upstream_cx_total{envoy_cluster_name=\"outbound|9080||plain\"} 1
envoy_cluster_shop_svc_cluster_local_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"outbound|9080||pooled\"} 2
";
        let scrape = Scrape {
            namespace: "shop".into(),
            workload: "orders-v1".into(),
            samples: parse(text).unwrap(),
        };
        let w = rows(
            std::slice::from_ref(&scrape),
            By::Workload,
            Duration::from_secs(1),
        );
        assert_eq!(w.len(), 1);
        // 3 of the 4 connections to 9080 were TLS; 15001 and 15000 are not inbound.
        assert_eq!(w[0].mtls_share, Some(0.75));
        assert_eq!(w[0].requests, 8);
        let r = rows(&[scrape], By::Route, Duration::from_secs(1));
        let share = |d: &str| {
            r.iter()
                .find(|r| r.destination.as_deref() == Some(d))
                .unwrap()
                .mtls_share
        };
        assert_eq!(share("catalog.shop.svc.cluster.local"), Some(1.0));
        assert_eq!(share("plain.shop.svc.cluster.local"), Some(0.0));
        // No connection opened in the window: unknown.
        assert_eq!(share("pooled.shop.svc.cluster.local"), None);
    }

    #[test]
    fn istio_cluster_name_tag_is_read_first() {
        let text = "\
envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"outbound|9080|v1|ratings\",cluster_name=\"outbound|9080|v1|ratings.shop.svc.cluster.local\"} 3
envoy_cluster_org_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"outbound|80||httpbin\",cluster_name=\"outbound|80||httpbin\"} 2
";
        let scrape = Scrape {
            namespace: "shop".into(),
            workload: "reviews-v1".into(),
            samples: parse(text).unwrap(),
        };
        let r = rows(&[scrape], By::Route, Duration::from_secs(1));
        let dests: Vec<(&str, u64)> = r
            .iter()
            .map(|r| (r.destination.as_deref().unwrap(), r.requests))
            .collect();
        assert_eq!(
            dests,
            [("httpbin.org", 2), ("ratings.shop.svc.cluster.local", 3)]
        );
    }
}
