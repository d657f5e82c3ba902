//! DestinationRule rules: host, traffic policies (load balancer, connection pool, outlier
//! detection, TLS, port-level settings, tunnel), subsets, exportTo and selector. The
//! connection pool and TLS checks are shared with Sidecar.

use std::collections::BTreeSet;

use super::Report;
use super::common::*;
use super::virtual_service::validate_subset_name;
use crate::model::networking::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, DestinationRule, H2UpgradePolicy,
    LoadBalancerSettings, LocalityLoadBalancerSetting, OutlierDetection, PortTrafficPolicy,
    TrafficPolicy, TunnelSettings,
};

pub fn validate(out: &mut Report<'_>, dr: &DestinationRule) {
    out.check("spec.host", validate_wildcard_domain(&dr.host));
    if let Some(tp) = &dr.traffic_policy {
        validate_traffic_policy(out, "spec.trafficPolicy", tp);
    }
    let mut names = BTreeSet::new();
    for (i, subset) in dr.subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        if !names.insert(subset.name.as_str()) {
            out.error(&path, format!("duplicate subset names: {}", subset.name));
        }
        out.check(&format!("{path}.name"), validate_subset_name(&subset.name));
        out.check_all(&format!("{path}.labels"), validate_labels(&subset.labels));
        if let Some(tp) = &subset.traffic_policy {
            validate_traffic_policy(out, &format!("{path}.trafficPolicy"), tp);
        }
    }
    let ns = out.namespace().to_owned();
    out.check_all(
        "spec.exportTo",
        validate_export_to(&ns, &dr.export_to, false, dr.workload_selector.is_some()),
    );
    let (errs, warning) = validate_match_labels_selector(dr.workload_selector.as_ref());
    out.check_all("spec.workloadSelector", errs);
    if let Some(w) = warning {
        out.warn("spec.workloadSelector", w);
    }
}

fn validate_traffic_policy(out: &mut Report<'_>, path: &str, tp: &TrafficPolicy) {
    if tp.outlier_detection.is_none()
        && tp.connection_pool.is_none()
        && tp.load_balancer.is_none()
        && tp.tls.is_none()
        && tp.port_level_settings.is_empty()
        && tp.tunnel.is_none()
        && tp.proxy_protocol.is_none()
    {
        out.error(path, "traffic policy must have at least one field");
        return;
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        out.error(path, "tunnel and proxyProtocol must not be set together");
        return;
    }
    if let Some(o) = &tp.outlier_detection {
        validate_outlier_detection(out, &format!("{path}.outlierDetection"), o);
    }
    if let Some(cp) = &tp.connection_pool {
        validate_connection_pool(out, &format!("{path}.connectionPool"), cp);
    }
    if let Some(lb) = &tp.load_balancer {
        validate_load_balancer(
            out,
            &format!("{path}.loadBalancer"),
            lb,
            tp.outlier_detection.as_ref(),
        );
    }
    if let Some(tls) = &tp.tls {
        validate_client_tls(out, &format!("{path}.tls"), tls);
    }
    for (i, p) in tp.port_level_settings.iter().enumerate() {
        validate_port_policy(out, &format!("{path}.portLevelSettings[{i}]"), p);
    }
    if let Some(t) = &tp.tunnel {
        validate_tunnel(out, &format!("{path}.tunnel"), t);
    }
}

fn validate_port_policy(out: &mut Report<'_>, path: &str, p: &PortTrafficPolicy) {
    if p.port.is_none() {
        out.error(path, "portTrafficPolicy must have valid port");
    }
    if p.outlier_detection.is_none()
        && p.connection_pool.is_none()
        && p.load_balancer.is_none()
        && p.tls.is_none()
    {
        out.error(path, "port traffic policy must have at least one field");
        return;
    }
    if let Some(o) = &p.outlier_detection {
        validate_outlier_detection(out, &format!("{path}.outlierDetection"), o);
    }
    if let Some(cp) = &p.connection_pool {
        validate_connection_pool(out, &format!("{path}.connectionPool"), cp);
    }
    if let Some(lb) = &p.load_balancer {
        validate_load_balancer(
            out,
            &format!("{path}.loadBalancer"),
            lb,
            p.outlier_detection.as_ref(),
        );
    }
    if let Some(tls) = &p.tls {
        validate_client_tls(out, &format!("{path}.tls"), tls);
    }
}

fn validate_tunnel(out: &mut Report<'_>, path: &str, t: &TunnelSettings) {
    if !t.protocol.is_empty() && t.protocol != "CONNECT" && t.protocol != "POST" {
        out.error(
            &format!("{path}.protocol"),
            "tunnel protocol must be \"CONNECT\" or \"POST\"",
        );
    }
    if let (Err(fqdn), Err(ip)) = (validate_fqdn(&t.target_host), validate_ip(&t.target_host)) {
        out.error(
            &format!("{path}.targetHost"),
            format!("tunnel target host must be valid FQDN or IP address: {fqdn}; {ip}"),
        );
    }
    if let Err(e) = validate_port(i64::from(t.target_port)) {
        out.error(
            &format!("{path}.targetPort"),
            format!("tunnel target port is invalid: {e}"),
        );
    }
}

fn validate_percent(v: i32) -> Result<(), String> {
    if !(0..=100).contains(&v) {
        return Err(format!("percentage {v} is not in range 0..100"));
    }
    Ok(())
}

fn validate_outlier_detection(out: &mut Report<'_>, path: &str, o: &OutlierDetection) {
    if let Some(d) = o.base_ejection_time {
        out.check(&format!("{path}.baseEjectionTime"), validate_duration(d));
    }
    if o.consecutive_errors != 0 {
        out.warn(
            &format!("{path}.consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    if !o.split_external_local_origin_errors && o.consecutive_local_origin_failures.unwrap_or(0) > 0
    {
        out.error(
            &format!("{path}.consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    if let Some(d) = o.interval {
        out.check(&format!("{path}.interval"), validate_duration(d));
    }
    out.check(
        &format!("{path}.maxEjectionPercent"),
        validate_percent(o.max_ejection_percent),
    );
    out.check(
        &format!("{path}.minHealthPercent"),
        validate_percent(o.min_health_percent),
    );
}

/// Connection pool limits (DestinationRule, and Sidecar inbound pools).
pub(super) fn validate_connection_pool(
    out: &mut Report<'_>,
    path: &str,
    cp: &ConnectionPoolSettings,
) {
    if cp.http.is_none() && cp.tcp.is_none() {
        out.error(path, "connection pool must have at least one field");
        return;
    }
    if let Some(h) = &cp.http {
        let p = format!("{path}.http");
        for (field, value, what) in [
            (
                "http1MaxPendingRequests",
                h.http1_max_pending_requests,
                "http1 max pending requests",
            ),
            (
                "http2MaxRequests",
                h.http2_max_requests,
                "http2 max requests",
            ),
            (
                "maxRequestsPerConnection",
                h.max_requests_per_connection,
                "max requests per connection",
            ),
            ("maxRetries", h.max_retries, "max retries"),
            (
                "maxConcurrentStreams",
                h.max_concurrent_streams,
                "max concurrent streams",
            ),
        ] {
            if value < 0 {
                out.error(
                    &format!("{p}.{field}"),
                    format!("{what} must be non-negative"),
                );
            }
        }
        if let Some(d) = h.idle_timeout {
            out.check(&format!("{p}.idleTimeout"), validate_duration(d));
        }
        if h.h2_upgrade_policy == H2UpgradePolicy::Upgrade && h.use_client_protocol {
            out.error(
                &format!("{p}.useClientProtocol"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
    }
    if let Some(t) = &cp.tcp {
        let p = format!("{path}.tcp");
        if t.max_connections < 0 {
            out.error(
                &format!("{p}.maxConnections"),
                "max connections must be non-negative",
            );
        }
        if let Some(d) = t.connect_timeout {
            out.check(&format!("{p}.connectTimeout"), validate_duration(d));
        }
        if let Some(d) = t.max_connection_duration {
            out.check(&format!("{p}.maxConnectionDuration"), validate_duration(d));
        }
        // Zero turns the idle timeout off.
        if let Some(d) = t.idle_timeout
            && d.0.as_millis() != 0
        {
            out.check(&format!("{p}.idleTimeout"), validate_duration(d));
        }
        if let Some(ka) = &t.tcp_keepalive {
            if let Some(d) = ka.time {
                out.check(&format!("{p}.tcpKeepalive.time"), validate_duration(d));
            }
            if let Some(d) = ka.interval {
                out.check(&format!("{p}.tcpKeepalive.interval"), validate_duration(d));
            }
        }
    }
}

/// Envoy's primality test for Maglev table sizes.
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let mut f = 3u64;
    while f.saturating_mul(f) <= x {
        if x.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

fn validate_load_balancer(
    out: &mut Report<'_>,
    path: &str,
    lb: &LoadBalancerSettings,
    outlier: Option<&OutlierDetection>,
) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        out.error(path, "only one of simple or consistentHash may be set");
    }
    if let Some(ch) = &lb.consistent_hash {
        let p = format!("{path}.consistentHash");
        let keys = [
            ch.http_header_name.is_some(),
            ch.http_cookie.is_some(),
            ch.use_source_ip.is_some(),
            ch.http_query_parameter_name.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if keys > 1 {
            out.error(
                &p,
                "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set",
            );
        }
        if ch.ring_hash.is_some() && ch.maglev.is_some() {
            out.error(&p, "only one of ringHash or maglev may be set");
        }
        if let Some(c) = &ch.http_cookie
            && c.name.is_empty()
        {
            out.error(&format!("{p}.httpCookie"), "name required for HttpCookie");
        }
        if ch.minimum_ring_size != 0 {
            out.warn(
                &format!("{p}.minimumRingSize"),
                "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
            );
            if ch.ring_hash.is_some() || ch.maglev.is_some() {
                out.error(
                    &p,
                    "only one of MinimumRingSize or Maglev/Ringhash can be specified",
                );
            }
        }
        if let Some(m) = &ch.maglev {
            let mp = format!("{p}.maglev.tableSize");
            if m.table_size == 0 {
                out.error(&mp, "tableSize must be set for maglev");
            }
            if m.table_size >= 5_000_011 {
                out.error(&mp, "tableSize must be less than 5000011 for maglev");
            }
            if !is_prime(m.table_size) {
                out.error(&mp, "tableSize must be a prime number for maglev");
            }
        }
    }
    if let Some(l) = &lb.locality_lb_setting {
        validate_locality_lb(out, &format!("{path}.localityLbSetting"), l, outlier);
    }
    if let Some(w) = &lb.warmup {
        let p = format!("{path}.warmup");
        match w.duration {
            None => out.error(&p, "duration is required"),
            Some(d) => out.check(&format!("{p}.duration"), validate_duration(d)),
        }
        if w.minimum_percent.unwrap_or(0.0) > 100.0 {
            out.error(
                &format!("{p}.minimumPercent"),
                "minimumPercent value should be less than or equal to 100",
            );
        }
        if let Some(a) = w.aggression
            && a < 1.0
        {
            out.error(
                &format!("{p}.aggression"),
                "aggression should be greater than or equal to 1",
            );
        }
    }
}

fn validate_locality_lb(
    out: &mut Report<'_>,
    path: &str,
    lb: &LocalityLoadBalancerSetting,
    outlier: Option<&OutlierDetection>,
) {
    if !lb.distribute.is_empty() && !lb.failover.is_empty() {
        out.error(
            path,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
        return;
    }
    if !lb.failover.is_empty() {
        for label in &lb.failover_priority {
            if matches!(
                label.as_str(),
                "topology.kubernetes.io/region"
                    | "topology.kubernetes.io/zone"
                    | "topology.istio.io/subzone"
            ) {
                out.error(
                    &format!("{path}.failoverPriority"),
                    format!(
                        "can not simultaneously set 'failover' and topology label '{label}' in 'failover_priority'"
                    ),
                );
                return;
            }
        }
    }
    let mut sources = Vec::new();
    for (i, d) in lb.distribute.iter().enumerate() {
        let p = format!("{path}.distribute[{i}]");
        sources.push(d.from.clone());
        let mut total: u64 = 0;
        for w in d.to.values() {
            if *w == 0 || *w > 100 {
                out.error(&p, "locality weight must be in range [1, 100]");
                return;
            }
            total += u64::from(*w);
        }
        if total != 100 {
            out.error(&p, format!("total locality weight {total} != 100"));
            return;
        }
        let dests: Vec<String> = d.to.keys().cloned().collect();
        out.check(&p, validate_localities(&dests));
    }
    out.check(&format!("{path}.distribute"), validate_localities(&sources));
    if (!lb.failover.is_empty() || !lb.failover_priority.is_empty()) && outlier.is_none() {
        out.warn(
            path,
            "outlier detection policy must be provided for failover",
        );
    }
    for (i, f) in lb.failover.iter().enumerate() {
        let p = format!("{path}.failover[{i}]");
        if f.from == f.to {
            out.error(
                &p,
                "locality lb failover settings must specify different regions",
            );
        }
        if f.from.contains('/') || f.to.contains('/') {
            out.error(&p, "locality lb failover only specify region");
        }
        if f.from.contains('*') || f.to.contains('*') {
            out.error(
                &p,
                "locality lb failover region should not contain '*' wildcard",
            );
        }
    }
}

/// Localities (`region/zone/subzone`, with a trailing `*` wildcard) must not overlap.
fn validate_localities(localities: &[String]) -> Result<(), String> {
    use std::collections::BTreeMap;
    // region -> zone -> subzones; "*" stands for "all".
    let mut seen: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let overlap = |l: &str| format!("locality {l} overlap with previous specified ones");
    for l in localities {
        let stars = l.matches('*').count();
        if stars > 1 || (stars == 1 && !l.ends_with('*')) {
            return Err(format!(
                "locality {l} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        if seen.contains_key("*") {
            return Err(overlap(l));
        }
        let items: Vec<&str> = l.splitn(3, '/').collect();
        if items.iter().any(|i| i.is_empty()) {
            return Err(format!(
                "locality {l} must not contain empty region/zone/subzone info"
            ));
        }
        let region = items[0].to_owned();
        match items.len() {
            1 => {
                if seen.contains_key(&region) {
                    return Err(overlap(l));
                }
                seen.insert(region, [("*".to_owned(), ["*".to_owned()].into())].into());
            }
            2 => {
                let zone = items[1].to_owned();
                let zones = seen.entry(region).or_default();
                if zones.contains_key("*") || zones.contains_key(&zone) {
                    return Err(overlap(l));
                }
                zones.insert(zone, ["*".to_owned()].into());
            }
            _ => {
                let zone = items[1].to_owned();
                let sub = items[2].to_owned();
                let zones = seen.entry(region).or_default();
                if zones.contains_key("*") {
                    return Err(overlap(l));
                }
                let subs = zones.entry(zone).or_default();
                if subs.contains("*") || subs.contains(&sub) {
                    return Err(overlap(l));
                }
                subs.insert(sub);
            }
        }
    }
    Ok(())
}

/// TLS towards a destination.
fn validate_client_tls(out: &mut Report<'_>, path: &str, tls: &ClientTlsSettings) {
    let ns = out.namespace().to_owned();
    if let Some(rest) = tls.credential_name.strip_prefix("configmap://") {
        let target_ns = match rest.split_once('/') {
            Some((n, _)) => n,
            None => ns.as_str(),
        };
        if rest.is_empty() || rest.ends_with('/') {
            out.error(
                &format!("{path}.credentialName"),
                "invalid configmap:// credentialName: resource name is empty",
            );
        } else if target_ns != ns || ns.is_empty() {
            out.error(
                &format!("{path}.credentialName"),
                format!(
                    "invalid configmap:// credentialName: namespace must match the configuration namespace {ns:?}"
                ),
            );
        }
    }
    if tls.insecure_skip_verify == Some(true) {
        if tls.mode == ClientTlsMode::Simple
            && (!tls.ca_certificates.is_empty()
                || !tls.credential_name.is_empty()
                || tls.subject_alt_names.is_some())
        {
            out.error(
                path,
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
        if tls.mode == ClientTlsMode::Mutual
            && (!tls.ca_certificates.is_empty() || tls.subject_alt_names.is_some())
        {
            out.error(
                path,
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
    }
    if matches!(tls.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual)
        && !tls.credential_name.is_empty()
    {
        if !tls.client_certificate.is_empty()
            || !tls.ca_certificates.is_empty()
            || !tls.private_key.is_empty()
            || !tls.ca_crl.is_empty()
        {
            out.error(
                path,
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            );
        }
        return;
    }
    if tls.mode == ClientTlsMode::Mutual {
        if tls.client_certificate.is_empty() {
            out.error(path, "client certificate required for mutual tls");
        }
        if tls.private_key.is_empty() {
            out.error(path, "private key required for mutual tls");
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn host_and_subsets() {
        accepts(
            "DestinationRule",
            "host: reviews\nsubsets:\n- name: v1\n  labels: {version: v1}\n",
        );
        rejects("DestinationRule", "host: \"a..b\"\n", "invalid");
        rejects(
            "DestinationRule",
            "host: a\nsubsets:\n- name: v1\n- name: v1\n",
            "duplicate subset names",
        );
        rejects(
            "DestinationRule",
            "host: a\nsubsets:\n- labels: {version: v1}\n",
            "subset name cannot be empty",
        );
        rejects(
            "DestinationRule",
            "host: a\nsubsets:\n- name: v1\n  labels: {\"-v\": x}\n",
            "invalid tag key",
        );
    }

    #[test]
    fn traffic_policy_shape() {
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy: {}\n",
            "at least one field",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  tunnel: {targetHost: a.com, targetPort: 8080}\n  proxyProtocol: {version: V2}\n",
            "must not be set together",
        );
        accepts(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  tunnel: {protocol: CONNECT, targetHost: a.com, targetPort: 8080}\n",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  tunnel: {protocol: GET, targetHost: a.com, targetPort: 8080}\n",
            "tunnel protocol",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 80}\n",
            "port traffic policy must have at least one field",
        );
    }

    #[test]
    fn load_balancer() {
        accepts(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  loadBalancer: {simple: LEAST_REQUEST}\n",
        );
        accepts(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  loadBalancer:\n    consistentHash:\n      httpCookie: {name: user, ttl: 0s}\n      maglev: {tableSize: 65537}\n",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  loadBalancer:\n    consistentHash:\n      httpCookie: {ttl: 10s}\n",
            "name required for HttpCookie",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  loadBalancer:\n    consistentHash:\n      useSourceIp: true\n      maglev: {tableSize: 1000}\n",
            "prime",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  loadBalancer:\n    warmup: {minimumPercent: 10}\n",
            "duration is required",
        );
        accepts(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  loadBalancer:\n    warmup: {duration: 60s, aggression: 2}\n",
        );
    }

    #[test]
    fn locality() {
        accepts(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  outlierDetection: {consecutive5xxErrors: 3}\n  loadBalancer:\n    localityLbSetting:\n      distribute:\n      - from: us-west/zone1/*\n        to: {\"us-west/zone1/*\": 80, \"us-west/zone2/*\": 20}\n",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  loadBalancer:\n    localityLbSetting:\n      distribute:\n      - from: us-west/*\n        to: {\"us-west/zone1/*\": 80}\n",
            "total locality weight 80 != 100",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  loadBalancer:\n    localityLbSetting:\n      failover:\n      - from: us-east\n        to: us-east\n",
            "different regions",
        );
        warns(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  loadBalancer:\n    localityLbSetting:\n      failover:\n      - from: us-east\n        to: us-west\n",
            "outlier detection policy must be provided",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  loadBalancer:\n    localityLbSetting:\n      distribute:\n      - from: \"*/a\"\n        to: {r: 100}\n",
            "wildcard",
        );
    }

    #[test]
    fn outlier_detection_and_pools() {
        accepts(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  outlierDetection: {consecutive5xxErrors: 7, interval: 5m, baseEjectionTime: 15m, maxEjectionPercent: 100}\n",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  outlierDetection: {maxEjectionPercent: 101}\n",
            "percentage 101",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  outlierDetection: {consecutiveLocalOriginFailures: 2}\n",
            "split external local origin errors",
        );
        warns(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  outlierDetection: {consecutiveErrors: 2}\n",
            "deprecated",
        );
        accepts(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  connectionPool:\n    tcp: {maxConnections: 100, connectTimeout: 30ms, idleTimeout: 0s}\n    http: {http2MaxRequests: 1000, maxRequestsPerConnection: 10}\n",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  connectionPool: {}\n",
            "connection pool must have at least one field",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  connectionPool:\n    tcp: {maxConnections: -1}\n",
            "non-negative",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  connectionPool:\n    http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}\n",
            "use client protocol",
        );
    }

    #[test]
    fn client_tls() {
        accepts(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  tls: {mode: ISTIO_MUTUAL}\n",
        );
        accepts(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  tls: {mode: MUTUAL, credentialName: cred}\n",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  tls: {mode: MUTUAL}\n",
            "client certificate required",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  tls: {mode: SIMPLE, credentialName: c, caCertificates: /x}\n",
            "If credentialName is set",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /x}\n",
            "InsecureSkipVerify",
        );
        rejects(
            "DestinationRule",
            "host: a\ntrafficPolicy:\n  tls: {mode: SIMPLE, credentialName: \"configmap://other/c\"}\n",
            "namespace must match",
        );
    }

    #[test]
    fn export_to_and_selector() {
        accepts(
            "DestinationRule",
            "host: a\nexportTo: [\".\"]\nworkloadSelector:\n  matchLabels: {app: a}\n",
        );
        rejects(
            "DestinationRule",
            "host: a\nexportTo: [other]\nworkloadSelector:\n  matchLabels: {app: a}\n",
            "beyond current namespace",
        );
        warns(
            "DestinationRule",
            "host: a\nworkloadSelector: {}\n",
            "without labels",
        );
    }

    #[test]
    fn primes() {
        assert!(is_prime(65537) && is_prime(2) && !is_prime(1000) && !is_prime(9));
    }
}
