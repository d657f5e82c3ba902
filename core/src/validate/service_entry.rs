//! ServiceEntry, WorkloadEntry and WorkloadGroup rules: hosts, addresses, ports, resolution
//! modes and the endpoints each allows, endpoint addresses and ports, probes.

use std::collections::BTreeSet;

use super::Report;
use super::common::*;
use crate::model::networking::{
    ReadinessProbe, Resolution, ServiceEntry, WorkloadEntry, WorkloadGroup,
};

const UNIX_PREFIX: &str = "unix://";

/// The label with which a ServiceEntry opts out of automatic address allocation.
const AUTO_ALLOCATE_LABEL: &str = "networking.istio.io/enable-autoallocate-ip";

pub fn validate(out: &mut Report<'_>, se: &ServiceEntry) {
    if let Some(sel) = &se.workload_selector {
        let errs = selector_label_errors(&sel.labels);
        if !errs.is_empty() {
            out.check_all("spec.workloadSelector", errs);
            return;
        }
        if sel.labels.is_empty() {
            out.warn(
                "spec.workloadSelector",
                "service entry: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
    }
    if se.workload_selector.is_some() && se.endpoints.is_some() {
        out.error(
            "spec",
            "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        );
    }
    if se.hosts.is_empty() {
        out.error("spec.hosts", "service entry must have at least one host");
    }
    for (i, h) in se.hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        if h == "*" {
            out.error(&path, format!("invalid host {h}"));
        } else {
            out.check(&path, validate_wildcard_domain(h));
            if let Err(w) = validate_partial_wildcard(h) {
                out.warn(&path, w);
            }
        }
    }
    let mut cidr_found = false;
    for (i, a) in se.addresses.iter().enumerate() {
        cidr_found |= a.contains('/');
        out.check(&format!("spec.addresses[{i}]"), validate_ip_subnet(a));
    }
    if cidr_found && !matches!(se.resolution, Resolution::None | Resolution::Static) {
        out.error(
            "spec.addresses",
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }

    let auto_allocation = out
        .res
        .labels
        .get(AUTO_ALLOCATE_LABEL)
        .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, p) in se.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        if !names.insert(p.name.as_str()) {
            out.error(
                &path,
                format!("service entry port name {:?} already defined", p.name),
            );
        }
        if !numbers.insert(p.number) {
            out.error(
                &path,
                format!("service entry port {} already defined", p.number),
            );
        }
        if p.target_port != 0 {
            out.check(
                &format!("{path}.targetPort"),
                validate_port(i64::from(p.target_port)),
            );
        }
        if se.addresses.is_empty()
            && !auto_allocation
            && (p.protocol.is_empty() || p.protocol == "TCP")
        {
            out.warn(
                &path,
                "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled",
            );
        }
        out.check(&format!("{path}.name"), validate_port_name(&p.name));
        out.check(&format!("{path}.protocol"), validate_protocol(&p.protocol));
        out.check(
            &format!("{path}.number"),
            validate_port(i64::from(p.number)),
        );
    }

    let endpoints = se.endpoints.as_deref().unwrap_or(&[]);
    match se.resolution {
        Resolution::None => {
            if !endpoints.is_empty() {
                out.error(
                    "spec.endpoints",
                    "no endpoints should be provided for resolution type none",
                );
            }
            if se.workload_selector.is_some() {
                out.warn(
                    "spec.workloadSelector",
                    "workloadSelector should not be set when resolution mode is NONE",
                );
            }
        }
        Resolution::Static => {
            for (i, ep) in endpoints.iter().enumerate() {
                check_workload_entry(
                    out,
                    &format!("spec.endpoints[{i}]"),
                    ep,
                    Some(&names),
                    false,
                );
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if endpoints.is_empty() {
                for (i, h) in se.hosts.iter().enumerate() {
                    if validate_fqdn(h).is_err() {
                        out.error(
                            &format!("spec.hosts[{i}]"),
                            format!(
                                "hosts must be FQDN if no endpoints are provided for resolution mode {}",
                                se.resolution
                            ),
                        );
                    }
                }
            }
            if se.resolution == Resolution::DnsRoundRobin && endpoints.len() > 1 {
                out.error(
                    "spec.endpoints",
                    format!(
                        "there must only be 0 or 1 endpoint for resolution mode {}",
                        se.resolution
                    ),
                );
            }
            for (i, ep) in endpoints.iter().enumerate() {
                let path = format!("spec.endpoints[{i}]");
                if !is_ip(&ep.address) && validate_fqdn(&ep.address).is_err() {
                    out.error(
                        &format!("{path}.address"),
                        format!(
                            "endpoint address {:?} is not a valid FQDN or an IP address",
                            ep.address
                        ),
                    );
                }
                out.check_all(&format!("{path}.labels"), validate_labels(&ep.labels));
                for (name, port) in &ep.ports {
                    let ppath = format!("{path}.ports.{name}");
                    if !names.contains(name.as_str()) {
                        out.error(
                            &ppath,
                            format!("endpoint port {port} is not defined by the service entry"),
                        );
                    }
                    out.check(&ppath, validate_port_name(name));
                    out.check(&ppath, validate_port(i64::from(*port)));
                }
            }
            if !se.addresses.is_empty()
                && se.hosts.len() > 1
                && se
                    .ports
                    .iter()
                    .any(|p| Protocol::parse(&p.protocol).is_tcp())
            {
                out.warn(
                    "spec.hosts",
                    "service entry can not have more than one host specified simultaneously with address and tcp port",
                );
            }
        }
    }

    // Several hosts on plain TCP cannot be told apart, unless the hosts are ignored (NONE).
    if se.resolution != Resolution::None
        && se.hosts.len() > 1
        && let Some(i) = se.ports.iter().position(|p| {
            let proto = Protocol::parse(&p.protocol);
            !proto.is_http() && !proto.is_tls()
        })
    {
        out.error(
            &format!("spec.ports[{i}]"),
            "multiple hosts provided with non-HTTP, non-TLS ports",
        );
    }

    let ns = out.namespace().to_owned();
    out.check_all(
        "spec.exportTo",
        validate_export_to(&ns, &se.export_to, true, false),
    );
}

pub fn validate_workload_entry(out: &mut Report<'_>, we: &WorkloadEntry) {
    check_workload_entry(out, "spec", we, None, true);
}

/// A workload's address, ports and labels. `service_ports` are the port names of the
/// ServiceEntry it is an endpoint of; standalone WorkloadEntries may have FQDN addresses.
fn check_workload_entry(
    out: &mut Report<'_>,
    path: &str,
    we: &WorkloadEntry,
    service_ports: Option<&BTreeSet<&str>>,
    allow_fqdn: bool,
) {
    let addr = we.address.as_str();
    let apath = format!("{path}.address");
    if addr.is_empty() {
        if we.network.is_empty() {
            out.error(path, "address is required");
            return;
        }
        out.warn(
            path,
            format!("address is unset with network {:?}", we.network),
        );
    }
    let mut unix = false;
    if let Some(uds) = addr.strip_prefix(UNIX_PREFIX) {
        unix = true;
        out.check(&apath, validate_unix_address(uds));
        if !we.ports.is_empty() {
            out.error(
                &format!("{path}.ports"),
                format!("unix endpoint {addr} must not include ports"),
            );
        }
    } else if !addr.is_empty() && !is_ip(addr) {
        if !allow_fqdn {
            out.error(
                &apath,
                format!("endpoint address {addr:?} is not a valid IP address"),
            );
        } else if validate_fqdn(addr).is_err() {
            out.error(
                &apath,
                format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
            );
        }
    }
    for (name, port) in &we.ports {
        let ppath = format!("{path}.ports.{name}");
        if let Some(sp) = service_ports
            && !sp.contains(name.as_str())
        {
            out.error(
                &ppath,
                format!("endpoint port {port} is not defined by the service entry"),
            );
        }
        out.check(&ppath, validate_port_name(name));
        out.check(&ppath, validate_port(i64::from(*port)));
    }
    out.check_all(&format!("{path}.labels"), validate_labels(&we.labels));
    if unix
        && let Some(sp) = service_ports
        && sp.len() != 1
    {
        out.error(path, "exactly 1 service port required for unix endpoints");
    }
}

pub fn validate_workload_group(out: &mut Report<'_>, wg: &WorkloadGroup) {
    if wg.template.is_none() {
        out.error("spec", "template is required");
        return;
    }
    if let Some(md) = &wg.metadata {
        let errs = validate_labels(&md.labels);
        if !errs.is_empty() {
            out.error(
                "spec.metadata.labels",
                format!("invalid labels: {}", errs.join("; ")),
            );
            return;
        }
    }
    if let Some(probe) = &wg.probe {
        validate_probe(out, "spec.probe", probe);
    }
}

fn validate_probe(out: &mut Report<'_>, path: &str, p: &ReadinessProbe) {
    for (field, value) in [
        ("periodSeconds", p.period_seconds),
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if value < 0 {
            out.error(
                &format!("{path}.{field}"),
                format!("{field} must be non-negative"),
            );
        }
    }
    let methods = [
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.exec.is_some(),
        p.grpc.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if methods > 1 {
        out.error(
            path,
            "only one of httpGet, tcpSocket, exec or grpc may be set",
        );
    }
    if let Some(h) = &p.http_get {
        let hp = format!("{path}.httpGet");
        out.check(&format!("{hp}.port"), validate_port(i64::from(h.port)));
        if !h.scheme.is_empty() && h.scheme != "HTTP" && h.scheme != "HTTPS" {
            out.error(
                &format!("{hp}.scheme"),
                "httpGet.scheme must be one of \"HTTPS\", \"HTTP\"",
            );
        }
        for (i, header) in h.http_headers.iter().enumerate() {
            out.check(
                &format!("{hp}.httpHeaders[{i}].name"),
                validate_strict_header_name(&header.name),
            );
        }
    } else if let Some(t) = &p.tcp_socket {
        out.check(
            &format!("{path}.tcpSocket.port"),
            validate_port(i64::from(t.port)),
        );
    } else if let Some(e) = &p.exec {
        if e.command.is_empty() {
            out.error(&format!("{path}.exec"), "exec.command is required");
        }
    } else if p.grpc.is_none() {
        out.error(path, "unknown health check method <nil>");
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn hosts_and_addresses() {
        accepts(
            "ServiceEntry",
            "hosts: [api.example.com]\nports:\n- {number: 443, name: https, protocol: HTTPS}\nresolution: DNS\n",
        );
        rejects(
            "ServiceEntry",
            "ports:\n- {number: 443, name: https, protocol: HTTPS}\n",
            "at least one host",
        );
        rejects("ServiceEntry", "hosts: [\"*\"]\n", "invalid host *");
        warns(
            "ServiceEntry",
            "hosts: [\"a*.example.com\"]\nresolution: NONE\n",
            "partial wildcard",
        );
        rejects(
            "ServiceEntry",
            "hosts: [a.com]\naddresses: [10.0.0.0/8]\nresolution: DNS\n",
            "CIDR addresses are allowed only",
        );
        accepts(
            "ServiceEntry",
            "hosts: [a.com]\naddresses: [10.0.0.0/8]\nresolution: NONE\n",
        );
        rejects(
            "ServiceEntry",
            "hosts: [a.com]\naddresses: [not-ip]\n",
            "not a valid IP",
        );
    }

    #[test]
    fn ports() {
        rejects(
            "ServiceEntry",
            "hosts: [a.com]\nports:\n- {number: 80, name: http, protocol: HTTP}\n- {number: 80, name: http2, protocol: HTTP}\n",
            "already defined",
        );
        rejects(
            "ServiceEntry",
            "hosts: [a.com]\nports:\n- {number: 80, name: http, protocol: HTTPX}\n",
            "unsupported protocol",
        );
        rejects(
            "ServiceEntry",
            "hosts: [a.com]\nports:\n- {number: 80, name: Bad_Name, protocol: HTTP}\n",
            "invalid port name",
        );
        accepts(
            "ServiceEntry",
            "hosts: [a.com]\nports:\n- {number: 3306, name: tcp, protocol: TCP}\nresolution: DNS\n",
        );
    }

    #[test]
    fn resolution_modes() {
        rejects(
            "ServiceEntry",
            "hosts: [\"*.example.com\"]\nports:\n- {number: 443, name: tls, protocol: TLS}\nresolution: DNS\n",
            "hosts must be FQDN",
        );
        accepts(
            "ServiceEntry",
            "hosts: [\"*.example.com\"]\nports:\n- {number: 443, name: tls, protocol: TLS}\nresolution: NONE\n",
        );
        rejects(
            "ServiceEntry",
            "hosts: [a.com]\nresolution: NONE\nendpoints:\n- address: 1.1.1.1\n",
            "no endpoints should be provided",
        );
        accepts(
            "ServiceEntry",
            "hosts: [a.com]\nports:\n- {number: 80, name: http, protocol: HTTP}\nresolution: STATIC\nendpoints:\n- address: 1.1.1.1\n  ports: {http: 8080}\n",
        );
        rejects(
            "ServiceEntry",
            "hosts: [a.com]\nports:\n- {number: 80, name: http, protocol: HTTP}\nresolution: STATIC\nendpoints:\n- address: foo.com\n",
            "not a valid IP address",
        );
        rejects(
            "ServiceEntry",
            "hosts: [a.com]\nports:\n- {number: 80, name: http, protocol: HTTP}\nresolution: STATIC\nendpoints:\n- address: 1.1.1.1\n  ports: {grpc: 8080}\n",
            "not defined by the service entry",
        );
        rejects(
            "ServiceEntry",
            "hosts: [a.com]\nresolution: DNS_ROUND_ROBIN\nendpoints:\n- address: a.com\n- address: b.com\n",
            "0 or 1 endpoint",
        );
        accepts(
            "ServiceEntry",
            "hosts: [a.com]\nresolution: DNS\nendpoints:\n- address: b.example.com\n",
        );
        rejects(
            "ServiceEntry",
            "hosts: [a.com, b.com]\nports:\n- {number: 3306, name: tcp, protocol: TCP}\nresolution: DNS\n",
            "multiple hosts provided with non-HTTP",
        );
        rejects(
            "ServiceEntry",
            "hosts: [a.com]\nworkloadSelector:\n  labels: {app: a}\nendpoints: []\nresolution: STATIC\n",
            "only one of WorkloadSelector or Endpoints",
        );
    }

    #[test]
    fn workload_entries() {
        accepts(
            "WorkloadEntry",
            "address: 10.0.0.1\nports: {http: 8080}\nlabels: {app: a}\n",
        );
        accepts("WorkloadEntry", "address: vm.example.com\n");
        rejects("WorkloadEntry", "labels: {app: a}\n", "address is required");
        warns("WorkloadEntry", "network: net1\n", "address is unset");
        rejects(
            "WorkloadEntry",
            "address: \"bad address\"\n",
            "not a valid FQDN or an IP address",
        );
        rejects(
            "WorkloadEntry",
            "address: unix:///sock\nports: {http: 80}\n",
            "must not include ports",
        );
        rejects(
            "WorkloadEntry",
            "address: 10.0.0.1\nports: {http: 0}\n",
            "port number 0",
        );
    }

    #[test]
    fn workload_groups() {
        accepts(
            "WorkloadGroup",
            "metadata:\n  labels: {app: a}\ntemplate:\n  serviceAccount: sa\nprobe:\n  httpGet: {port: 8080, path: /ready}\n",
        );
        rejects(
            "WorkloadGroup",
            "metadata:\n  labels: {app: a}\n",
            "template is required",
        );
        rejects(
            "WorkloadGroup",
            "template: {}\nprobe:\n  periodSeconds: -1\n  tcpSocket: {port: 80}\n",
            "non-negative",
        );
        rejects(
            "WorkloadGroup",
            "template: {}\nprobe:\n  exec: {}\n",
            "exec.command is required",
        );
        rejects(
            "WorkloadGroup",
            "template: {}\nprobe:\n  httpGet: {port: 80, scheme: FTP}\n",
            "scheme",
        );
    }
}
