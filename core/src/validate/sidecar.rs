//! Sidecar rules: selector, ingress and egress listeners (ports, binds, capture modes,
//! default endpoints, TLS, connection pools), egress hosts in `namespace/host` form, and the
//! outbound traffic policy.

use std::collections::{BTreeMap, BTreeSet};

use super::Report;
use super::common::*;
use super::destination_rule::validate_connection_pool;
use super::gateway::validate_server_tls;
use super::virtual_service::validate_destination;
use crate::model::networking::{
    CaptureMode, OutboundTrafficMode, OutboundTrafficPolicy, Port, ServerTlsMode, Sidecar,
};

const UNIX_PREFIX: &str = "unix://";

pub fn validate(out: &mut Report<'_>, sc: &Sidecar) {
    if let Some(sel) = &sc.workload_selector {
        let errs = selector_label_errors(&sel.labels);
        if !errs.is_empty() {
            // Istio stops at selector errors.
            out.check_all("spec.workloadSelector", errs);
            return;
        }
        if sel.labels.is_empty() {
            out.warn(
                "spec.workloadSelector",
                "sidecar: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
    }
    if sc.egress.is_empty()
        && sc.ingress.is_empty()
        && sc.outbound_traffic_policy.is_none()
        && sc.inbound_connection_pool.is_none()
    {
        out.error("spec", "sidecar: empty configuration provided");
        return;
    }

    let mut ports = BTreeSet::new();
    for (i, ing) in sc.ingress.iter().enumerate() {
        let path = format!("spec.ingress[{i}]");
        let Some(port) = &ing.port else {
            out.error(&path, "sidecar: port is required for ingress listeners");
            continue;
        };
        if port.target_port > 0 {
            out.error(
                &format!("{path}.port.targetPort"),
                "targetPort has no impact on Sidecars",
            );
        }
        validate_ingress_port_and_bind(out, &path, port, &ing.bind);
        if !ports.insert(port.number) {
            out.error(
                &format!("{path}.port"),
                "sidecar: ports on IP bound listeners must be unique",
            );
        }
        if !ing.default_endpoint.is_empty() {
            validate_default_endpoint(
                out,
                &format!("{path}.defaultEndpoint"),
                &ing.default_endpoint,
            );
        }
        if let Some(tls) = &ing.tls {
            let tpath = format!("{path}.tls");
            for (set, msg) in [
                (
                    !tls.subject_alt_names.is_empty(),
                    "sidecar: subjectAltNames is not supported in ingress tls",
                ),
                (
                    tls.https_redirect,
                    "sidecar: httpsRedirect is not supported",
                ),
                (
                    !tls.credential_name.is_empty(),
                    "sidecar: credentialName is not currently supported",
                ),
                (
                    !tls.credential_names.is_empty(),
                    "sidecar: credentialNames is not currently supported",
                ),
                (
                    !tls.tls_certificates.is_empty(),
                    "sidecar: tls_certificates is not currently supported",
                ),
            ] {
                if set {
                    out.error(&tpath, msg);
                }
            }
            if matches!(
                tls.mode,
                ServerTlsMode::IstioMutual | ServerTlsMode::AutoPassthrough
            ) {
                out.error(
                    &format!("{tpath}.mode"),
                    format!(
                        "configuration is invalid: cannot set mode to {} in sidecar ingress tls",
                        tls.mode
                    ),
                );
            }
            if !Protocol::parse(&port.protocol).is_tls() {
                out.error(
                    &tpath,
                    "server cannot have TLS settings for non HTTPS/TLS ports",
                );
            }
            validate_server_tls(out, &tpath, tls);
        }
        if let Some(cp) = &ing.connection_pool {
            validate_connection_pool(out, &format!("{path}.connectionPool"), cp);
            if cp.http.is_some() && !Protocol::parse(&port.protocol).is_http() {
                out.warn(
                    &format!("{path}.connectionPool.http"),
                    format!(
                        "sidecar: HTTP connection pool settings are configured for port {} ({:?}) but its protocol is not HTTP ({}); only TCP settings will apply",
                        port.number, port.name, port.protocol
                    ),
                );
            }
        }
    }
    if let Some(cp) = &sc.inbound_connection_pool {
        validate_connection_pool(out, "spec.inboundConnectionPool", cp);
    }

    let mut ports = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    let mut catch_all_found = false;
    let ns = out.namespace().to_owned();
    for (i, eg) in sc.egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        match &eg.port {
            None => {
                if catch_all_found {
                    out.error(
                        &path,
                        "sidecar: egress can have only one listener with empty port",
                    );
                    continue;
                }
                if i == sc.egress.len() - 1 {
                    catch_all_found = true;
                } else {
                    out.error(
                        &path,
                        "sidecar: the egress listener with empty port should be the last listener in the list",
                    );
                }
            }
            Some(port) => {
                if port.target_port > 0 {
                    out.error(
                        &format!("{path}.port.targetPort"),
                        "targetPort has no impact on Sidecars",
                    );
                }
                validate_egress_port_bind_capture(out, &path, port, &eg.bind, eg.capture_mode);
                if port.number == 0 {
                    if !sockets.insert(eg.bind.clone()) {
                        out.error(
                            &format!("{path}.bind"),
                            "sidecar: unix domain socket values for listeners must be unique",
                        );
                    }
                } else if !ports.insert(port.number) {
                    out.error(
                        &format!("{path}.port"),
                        "sidecar: ports on IP bound listeners must be unique",
                    );
                }
            }
        }
        if eg.hosts.is_empty() {
            out.error(
                &path,
                "sidecar: egress listener must contain at least one host",
            );
            continue;
        }
        let mut by_ns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (j, h) in eg.hosts.iter().enumerate() {
            let hpath = format!("{path}.hosts[{j}]");
            if let Some((hns, svc)) = h.split_once('/') {
                let hns = if hns == "." {
                    ns.clone()
                } else {
                    hns.to_owned()
                };
                let svcs = by_ns.entry(hns).or_default();
                let duplicate = if svc == "*" {
                    !svcs.is_empty()
                } else {
                    svcs.contains(svc) || svcs.contains("*")
                };
                if duplicate {
                    out.warn(&hpath, format!("duplicated egress host: {h}"));
                }
                svcs.insert(svc.to_owned());
            }
            out.check_all(&hpath, validate_namespace_slash_wildcard_hostname(h, false));
        }
        if by_ns.get("*").is_some_and(|s| s.contains("*")) && by_ns.len() != 1 {
            out.warn(
                &format!("{path}.hosts"),
                "`*/*` host select all resources, no other hosts can be added",
            );
        }
    }

    if let Some(tp) = &sc.outbound_traffic_policy {
        validate_outbound_policy(out, "spec.outboundTrafficPolicy", tp);
    }
}

fn validate_outbound_policy(out: &mut Report<'_>, path: &str, tp: &OutboundTrafficPolicy) {
    let Some(proxy) = &tp.egress_proxy else {
        return;
    };
    let ppath = format!("{path}.egressProxy");
    if tp.mode != OutboundTrafficMode::AllowAny {
        out.error(
            &ppath,
            "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
        );
        return;
    }
    out.check(&format!("{ppath}.host"), validate_fqdn(&proxy.host));
    if proxy.port.is_none() {
        out.error(&ppath, "sidecar: egress_proxy port must be non-nil");
        return;
    }
    validate_destination(out, &ppath, proxy);
}

fn validate_ingress_port_and_bind(out: &mut Report<'_>, path: &str, port: &Port, bind: &str) {
    if !port.name.is_empty() {
        out.check(&format!("{path}.port.name"), validate_port_name(&port.name));
    }
    out.check(
        &format!("{path}.port.protocol"),
        validate_protocol(&port.protocol),
    );
    out.check(
        &format!("{path}.port.number"),
        validate_port(i64::from(port.number)),
    );
    if !bind.is_empty() {
        out.check(&format!("{path}.bind"), validate_ip(bind));
    }
}

fn validate_egress_port_bind_capture(
    out: &mut Report<'_>,
    path: &str,
    port: &Port,
    bind: &str,
    capture: CaptureMode,
) {
    if !port.name.is_empty() {
        out.check(&format!("{path}.port.name"), validate_port_name(&port.name));
    }
    out.check(
        &format!("{path}.port.protocol"),
        validate_protocol(&port.protocol),
    );
    if port.number == 0 {
        match bind.strip_prefix(UNIX_PREFIX) {
            None => out.error(
                &format!("{path}.bind"),
                "sidecar: ports with 0 value must have a unix domain socket bind address",
            ),
            Some(uds) => out.check(&format!("{path}.bind"), validate_unix_address(uds)),
        }
        if !matches!(capture, CaptureMode::Default | CaptureMode::None) {
            out.error(
                &format!("{path}.captureMode"),
                "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
            );
        }
    } else {
        out.check(
            &format!("{path}.port.number"),
            validate_port(i64::from(port.number)),
        );
        if !bind.is_empty() {
            out.check(&format!("{path}.bind"), validate_ip(bind));
        }
    }
}

/// `127.0.0.1:port`, `0.0.0.0:port`, `[::1]:port`, `[::]:port`, `:port` or `unix://path`.
fn validate_default_endpoint(out: &mut Report<'_>, path: &str, endpoint: &str) {
    if let Some(uds) = endpoint.strip_prefix(UNIX_PREFIX) {
        out.check(path, validate_unix_address(uds));
        return;
    }
    let Some((host, port)) = split_host_port(endpoint) else {
        out.error(path, format!("address {endpoint}: missing port in address"));
        return;
    };
    if !host.is_empty() && !matches!(host, "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        out.error(
            path,
            "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset",
        );
    }
    match port.parse::<i64>() {
        Ok(p) => out.check(path, validate_port(p)),
        Err(e) => out.error(
            path,
            format!("sidecar: defaultEndpoint port ({port}) is not a number: {e}"),
        ),
    }
}

/// Splits `host:port` / `[v6]:port`.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn shape_and_selector() {
        rejects(
            "Sidecar",
            "workloadSelector:\n  labels: {app: a}\n",
            "empty configuration",
        );
        accepts(
            "Sidecar",
            "egress:\n- hosts: [\"./*\", \"istio-system/*\"]\n",
        );
        warns(
            "Sidecar",
            "workloadSelector: {}\negress:\n- hosts: [\"./*\"]\n",
            "without labels",
        );
        rejects(
            "Sidecar",
            "workloadSelector:\n  labels: {app: \"*\"}\negress:\n- hosts: [\"./*\"]\n",
            "wildcard is not supported",
        );
    }

    #[test]
    fn egress() {
        rejects(
            "Sidecar",
            "egress:\n- hosts: [a.example.com]\n",
            "namespace/dnsName",
        );
        rejects(
            "Sidecar",
            "egress:\n- hosts: [\"ns/short\"]\n",
            "short names",
        );
        rejects(
            "Sidecar",
            "egress:\n- hosts: [\"Bad_NS/a.com\"]\n",
            "invalid namespace value",
        );
        accepts("Sidecar", "egress:\n- hosts: [\"~/*\"]\n");
        rejects(
            "Sidecar",
            "egress:\n- hosts: [\"./*\"]\n- port: {number: 80, protocol: HTTP, name: http}\n  hosts: [\"./*\"]\n",
            "should be the last listener",
        );
        rejects(
            "Sidecar",
            "egress:\n- port: {number: 0, protocol: HTTP, name: uds}\n  hosts: [\"./*\"]\n",
            "unix domain socket bind address",
        );
        accepts(
            "Sidecar",
            "egress:\n- port: {number: 0, protocol: HTTP, name: uds}\n  bind: unix:///var/run/a.sock\n  hosts: [\"./*\"]\n",
        );
        rejects(
            "Sidecar",
            "egress:\n- port: {number: 0, protocol: HTTP, name: uds}\n  bind: unix:///var/run/a.sock\n  captureMode: IPTABLES\n  hosts: [\"./*\"]\n",
            "captureMode must be DEFAULT/NONE",
        );
        rejects(
            "Sidecar",
            "egress:\n- port: {number: 80, protocol: HTTP, name: a}\n  hosts: [\"./*\"]\n- port: {number: 80, protocol: HTTP, name: b}\n  hosts: [\"./*\"]\n",
            "must be unique",
        );
        warns(
            "Sidecar",
            "egress:\n- hosts: [\"ns/a.com\", \"ns/a.com\"]\n",
            "duplicated egress host",
        );
        warns(
            "Sidecar",
            "egress:\n- hosts: [\"*/*\", \"ns/a.com\"]\n",
            "select all resources",
        );
    }

    #[test]
    fn ingress() {
        accepts(
            "Sidecar",
            "ingress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  defaultEndpoint: 127.0.0.1:8080\n",
        );
        rejects(
            "Sidecar",
            "ingress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  defaultEndpoint: 10.0.0.1:8080\n",
            "defaultEndpoint must be of form",
        );
        rejects(
            "Sidecar",
            "ingress:\n- defaultEndpoint: 127.0.0.1:8080\n",
            "port is required",
        );
        rejects(
            "Sidecar",
            "ingress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k}\n",
            "non HTTPS/TLS ports",
        );
        rejects(
            "Sidecar",
            "ingress:\n- port: {number: 9443, protocol: HTTPS, name: https}\n  tls: {mode: ISTIO_MUTUAL}\n",
            "cannot set mode to ISTIO_MUTUAL",
        );
        warns(
            "Sidecar",
            "ingress:\n- port: {number: 9080, protocol: TCP, name: tcp}\n  connectionPool:\n    http: {maxRetries: 1}\n",
            "only TCP settings will apply",
        );
    }

    #[test]
    fn outbound_policy() {
        accepts(
            "Sidecar",
            "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n  egressProxy: {host: proxy.ns.svc.cluster.local, port: {number: 80}}\n",
        );
        rejects(
            "Sidecar",
            "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n  egressProxy: {host: proxy.ns.svc.cluster.local, port: {number: 80}}\n",
            "only with ALLOW_ANY",
        );
        rejects(
            "Sidecar",
            "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n  egressProxy: {host: proxy.ns.svc.cluster.local}\n",
            "port must be non-nil",
        );
    }
}
