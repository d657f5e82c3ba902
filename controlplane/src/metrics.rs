//! meshd's Prometheus metrics.
//!
//! This module owns the metric names and their registry: xDS pushes by type, push latency
//! (from a config build to the response leaving meshd), connected proxies, NACKs by type,
//! the config version and rejected-object count, and whether this replica leads. Served as text on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The xDS type a metric is about (`cds`, `eds`, `lds`, `rds`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: String,
}

/// Every meshd metric.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub pushes: Family<TypeLabel, Counter>,
    pub nacks: Family<TypeLabel, Counter>,
    pub push_latency: Histogram,
    pub connected: Gauge,
    pub config_version: Gauge,
    pub config_rejected: Gauge,
    /// 1 while this replica leads (Kubernetes mode, [`crate::leader`]), else 0.
    pub leader: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("meshd");
        let pushes = Family::<TypeLabel, Counter>::default();
        let nacks = Family::<TypeLabel, Counter>::default();
        let push_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let connected = Gauge::default();
        let config_version = Gauge::default();
        let config_rejected = Gauge::default();
        let leader = Gauge::default();
        registry.register("xds_pushes", "xDS responses sent, by type", pushes.clone());
        registry.register(
            "xds_nacks",
            "xDS responses proxies rejected, by type",
            nacks.clone(),
        );
        registry.register(
            "xds_push_latency_seconds",
            "Time from a config build to a response carrying it leaving meshd",
            push_latency.clone(),
        );
        registry.register(
            "xds_connected_proxies",
            "Proxies connected over ADS",
            connected.clone(),
        );
        registry.register(
            "config_version",
            "The config version being served",
            config_version.clone(),
        );
        registry.register(
            "config_rejected_objects",
            "Objects in the config source that are not served",
            config_rejected.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica leads and writes to the cluster (Kubernetes mode), else 0",
            leader.clone(),
        );
        Metrics {
            registry,
            pushes,
            nacks,
            push_latency,
            connected,
            config_version,
            config_rejected,
            leader,
        }
    }

    /// Counts a response; `latency` (from the config build) when a config change caused it.
    pub fn push(&self, type_name: &str, latency: Option<Duration>) {
        self.pushes
            .get_or_create(&TypeLabel {
                r#type: type_name.to_owned(),
            })
            .inc();
        if let Some(l) = latency {
            self.push_latency.observe(l.as_secs_f64());
        }
    }

    pub fn nack(&self, type_name: &str) {
        self.nacks
            .get_or_create(&TypeLabel {
                r#type: type_name.to_owned(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_typed() {
        let m = Metrics::new();
        m.push("cds", Some(Duration::from_millis(3)));
        m.push("cds", None);
        m.nack("lds");
        m.connected.inc();
        let text = m.encode();
        assert!(
            text.contains("meshd_xds_pushes_total{type=\"cds\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("meshd_xds_nacks_total{type=\"lds\"} 1"),
            "{text}"
        );
        assert!(text.contains("meshd_xds_connected_proxies 1"), "{text}");
        assert!(
            text.contains("meshd_xds_push_latency_seconds_count 1"),
            "{text}"
        );
    }
}
