//! The proxy's metrics: Istio's standard metrics for Prometheus (`istio_requests_total`,
//! `istio_request_duration_milliseconds`, `istio_tcp_sent_bytes_total`,
//! `istio_tcp_received_bytes_total`, `istio_tcp_connections_opened_total`,
//! `istio_tcp_connections_closed_total`, labelled as Istio labels them) and the
//! listener-level counters `/stats` shows in Envoy's naming.
//!
//! Peer identity: the outbound side sends its node id in `x-envoy-peer-metadata-id`; the
//! inbound side reads it (source labels), removes it before the app sees the request, and
//! answers with its own id in the same response header, which the outbound side reads
//! (destination labels) and removes. Without a peer the labels say `unknown`, as Istio's do.
//!
//! `connection_security_policy` follows Istio, on requests and TCP connections alike: on the
//! destination side `mutual_tls` when the request or connection came on TLS whose client
//! certificate was verified, else `none`; on the source side `unknown` (the client cannot
//! tell what the server enforced).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The header that carries a proxy's node id to its peer.
pub const PEER_ID_HEADER: &str = "x-envoy-peer-metadata-id";

/// Istio's request metric labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub reporter: String,
    pub source_workload: String,
    pub source_workload_namespace: String,
    pub destination_workload: String,
    pub destination_workload_namespace: String,
    pub destination_service: String,
    pub request_protocol: String,
    pub response_code: String,
    pub response_flags: String,
    pub connection_security_policy: String,
}

/// How the connection a request came on was secured, as the destination sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConnectionSecurity {
    /// Plaintext, or TLS without a verified client certificate.
    #[default]
    None,
    /// TLS with a client certificate the proxy verified (mutual TLS).
    MutualTls,
}

impl ConnectionSecurity {
    /// Istio's `connection_security_policy` value for a request reported by `reporter`
    /// (`source` or `destination`).
    pub fn label(self, reporter: &str) -> &'static str {
        match (reporter, self) {
            ("destination", ConnectionSecurity::MutualTls) => "mutual_tls",
            ("destination", ConnectionSecurity::None) => "none",
            _ => "unknown",
        }
    }
}

/// Istio's TCP metric labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TcpLabels {
    pub reporter: String,
    pub source_workload: String,
    pub source_workload_namespace: String,
    pub destination_workload: String,
    pub destination_workload_namespace: String,
    pub destination_service: String,
    pub connection_security_policy: String,
}

impl TcpLabels {
    /// The labels of one proxied connection reported by `reporter` (`source` on outbound
    /// listeners, `destination` on inbound ones) of workload `me` `(name, namespace)`, sent
    /// to `cluster` (`outbound|PORT|SUBSET|HOST` names the service), secured as `security`.
    pub fn connection(
        reporter: &str,
        me: (String, String),
        cluster: &str,
        security: ConnectionSecurity,
    ) -> TcpLabels {
        let unknown = || "unknown".to_owned();
        let (workload, namespace) = me;
        let connection_security_policy = security.label(reporter).to_owned();
        if reporter == "source" {
            TcpLabels {
                reporter: reporter.to_owned(),
                source_workload: workload,
                source_workload_namespace: namespace,
                destination_workload: unknown(),
                destination_workload_namespace: unknown(),
                destination_service: cluster
                    .split('|')
                    .nth(3)
                    .filter(|s| !s.is_empty())
                    .map_or_else(unknown, str::to_owned),
                connection_security_policy,
            }
        } else {
            TcpLabels {
                reporter: reporter.to_owned(),
                source_workload: unknown(),
                source_workload_namespace: unknown(),
                destination_workload: workload,
                destination_workload_namespace: namespace,
                destination_service: unknown(),
                connection_security_policy,
            }
        }
    }
}

/// A workload as a node id names it: `(name, namespace)`.
pub fn peer_from_node_id(id: &str) -> Option<(String, String)> {
    let info = mesh_core::xds::ProxyInfo::from_node_id(id).ok()?;
    Some((info.workload, info.namespace))
}

fn histogram() -> Histogram {
    Histogram::new([
        0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
        30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
    ])
}

/// Counts a request as active while it lives (a cancelled request included).
pub struct ActiveRequest<'a>(&'a AtomicU64);

impl<'a> ActiveRequest<'a> {
    pub fn new(counter: &'a AtomicU64) -> ActiveRequest<'a> {
        counter.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(counter)
    }
}

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every metric of the proxy.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
    pub tcp_sent: Family<TcpLabels, Counter>,
    pub tcp_received: Family<TcpLabels, Counter>,
    pub tcp_opened: Family<TcpLabels, Counter>,
    pub tcp_closed: Family<TcpLabels, Counter>,
    pub downstream_cx_total: AtomicU64,
    pub downstream_cx_active: AtomicU64,
    pub downstream_rq_total: AtomicU64,
    /// Requests being served now.
    pub downstream_rq_active: AtomicU64,
    /// By class: 1xx .. 5xx.
    pub downstream_rq_xx: [AtomicU64; 5],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations =
            Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let tcp_sent = Family::<TcpLabels, Counter>::default();
        let tcp_received = Family::<TcpLabels, Counter>::default();
        let tcp_opened = Family::<TcpLabels, Counter>::default();
        let tcp_closed = Family::<TcpLabels, Counter>::default();
        registry.register("istio_requests", "Requests handled", requests.clone());
        registry.register(
            "istio_request_duration_milliseconds",
            "Request durations",
            durations.clone(),
        );
        registry.register(
            "istio_tcp_sent_bytes",
            "Bytes sent to the downstream on TCP connections",
            tcp_sent.clone(),
        );
        registry.register(
            "istio_tcp_received_bytes",
            "Bytes received from the downstream on TCP connections",
            tcp_received.clone(),
        );
        registry.register(
            "istio_tcp_connections_opened",
            "TCP connections opened",
            tcp_opened.clone(),
        );
        registry.register(
            "istio_tcp_connections_closed",
            "TCP connections closed",
            tcp_closed.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            tcp_sent,
            tcp_received,
            tcp_opened,
            tcp_closed,
            downstream_cx_total: AtomicU64::new(0),
            downstream_cx_active: AtomicU64::new(0),
            downstream_rq_total: AtomicU64::new(0),
            downstream_rq_active: AtomicU64::new(0),
            downstream_rq_xx: Default::default(),
        }
    }

    /// Counts one request.
    pub fn request(&self, labels: &RequestLabels, status: u16, elapsed: Duration) {
        self.downstream_rq_total.fetch_add(1, Ordering::Relaxed);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.downstream_rq_xx[class].fetch_add(1, Ordering::Relaxed);
        self.requests.get_or_create(labels).inc();
        #[allow(clippy::cast_precision_loss)]
        let ms = elapsed.as_micros() as f64 / 1000.0;
        self.durations.get_or_create(labels).observe(ms);
    }

    /// The Prometheus text exposition.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn istio_names_and_labels() {
        let m = Metrics::new();
        let l = RequestLabels {
            reporter: "source".into(),
            source_workload: "client".into(),
            source_workload_namespace: "shop".into(),
            destination_workload: "reviews-v1".into(),
            destination_workload_namespace: "shop".into(),
            destination_service: "reviews.shop.svc.cluster.local".into(),
            request_protocol: "http".into(),
            response_code: "200".into(),
            response_flags: "-".into(),
            connection_security_policy: ConnectionSecurity::None.label("source").into(),
        };
        m.request(&l, 200, Duration::from_millis(3));
        m.request(&l, 200, Duration::from_millis(3));
        let text = m.prometheus();
        assert!(text.contains("istio_requests_total{"), "{text}");
        assert!(text.contains("response_code=\"200\""), "{text}");
        assert!(
            text.contains("destination_workload=\"reviews-v1\""),
            "{text}"
        );
        assert!(text.contains("} 2"), "{text}");
        assert!(
            text.contains("connection_security_policy=\"unknown\""),
            "{text}"
        );
        assert!(
            text.contains("istio_request_duration_milliseconds_bucket{"),
            "{text}"
        );
        let me = || ("reviews-v1".to_owned(), "shop".to_owned());
        let inbound = TcpLabels::connection(
            "destination",
            me(),
            "inbound|9080||",
            ConnectionSecurity::MutualTls,
        );
        assert_eq!(inbound.connection_security_policy, "mutual_tls");
        assert_eq!(inbound.destination_workload, "reviews-v1");
        assert_eq!(inbound.source_workload, "unknown");
        let plain = TcpLabels::connection(
            "destination",
            me(),
            "inbound|9080||",
            ConnectionSecurity::None,
        );
        assert_eq!(plain.connection_security_policy, "none");
        let outbound = TcpLabels::connection(
            "source",
            me(),
            "outbound|3306||db.shop.svc.cluster.local",
            ConnectionSecurity::MutualTls,
        );
        assert_eq!(outbound.connection_security_policy, "unknown");
        assert_eq!(outbound.destination_service, "db.shop.svc.cluster.local");
        assert_eq!(outbound.source_workload, "reviews-v1");
        m.tcp_opened.get_or_create(&inbound).inc();
        let text = m.prometheus();
        assert!(
            text.lines()
                .any(|l| l.starts_with("istio_tcp_connections_opened_total{")
                    && l.contains("connection_security_policy=\"mutual_tls\"")),
            "{text}"
        );
        assert_eq!(
            peer_from_node_id("sidecar~127.0.0.2~reviews-v1.shop~shop.svc.cluster.local"),
            Some(("reviews-v1".into(), "shop".into()))
        );
    }

    #[test]
    fn connection_security_is_known_only_to_the_destination() {
        assert_eq!(
            ConnectionSecurity::MutualTls.label("destination"),
            "mutual_tls"
        );
        assert_eq!(ConnectionSecurity::None.label("destination"), "none");
        assert_eq!(ConnectionSecurity::MutualTls.label("source"), "unknown");
        assert_eq!(ConnectionSecurity::default(), ConnectionSecurity::None);
    }
}
