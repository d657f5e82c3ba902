//! The service registry: every service the mesh knows (Kubernetes Services, ServiceEntries)
//! with its ports and the endpoints that back it (Pods, WorkloadEntries, ServiceEntry
//! endpoints), and every workload (Pods with an IP, WorkloadEntries).
//!
//! Choices, where Istio leaves room or needs a cluster:
//! - A Kubernetes Service port's protocol comes from `appProtocol`, else from its name
//!   (`http`, `http-foo`, `http2`, `grpc`, `grpc-web`, `https`, `tls`, `tcp`, `mongo`,
//!   `mysql`, `redis`, `udp`, case-insensitive). A port neither names is `AUTO`: Istio would
//!   sniff the protocol; the translation treats `AUTO` ports as HTTP (HTTP/1.1 or HTTP/2 as
//!   the client speaks), so non-HTTP traffic must be declared with a `tcp-` name or
//!   `appProtocol`.
//! - Pods are endpoints only once they have `status.podIP` (and are not `Failed` or
//!   `Succeeded`); Pods derived from workload templates by analysis never have one.
//! - A WorkloadEntry's labels are its metadata labels overlaid with `spec.labels`.
//! - Kubernetes Services are exported to the namespaces in the annotation
//!   `networking.istio.io/exportTo` (default: everywhere).
//! - A ServiceEntry gives one registry service per host. Resolution `DNS` without endpoints
//!   resolves the host itself; `DNS_ROUND_ROBIN` is treated as `DNS`.
//! - Two definitions of the same host in the same namespace: the first (Kubernetes Services
//!   before ServiceEntries, then in load order) is kept and the later one is reported.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

use crate::analysis::json::{selector_matches, str_at, string_map_at, u64_at};
use crate::analysis::{MeshConfig, Store, store::is_derived};
use crate::model::networking::{self as net, Location, WorkloadEntry};
use crate::resource::{Resource, groups};

use super::{Rejected, Typed};

/// How a service's endpoints are found (ServiceEntry resolution; Kubernetes Services are
/// `Static`, with endpoints from Pods and WorkloadEntries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Resolution {
    /// Endpoints are known addresses (EDS).
    Static,
    /// Endpoints are DNS names Envoy resolves (STRICT_DNS).
    Dns,
    /// Traffic goes to the original destination (ORIGINAL_DST / passthrough).
    None,
}

/// One service port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServicePort {
    pub name: String,
    pub number: u16,
    /// Istio's protocol: HTTP, HTTP2, GRPC, HTTPS, TLS, TCP, ... (from the port name prefix,
    /// `appProtocol`, or the ServiceEntry port's protocol). `AUTO` when none says.
    pub protocol: String,
    /// The workload port behind it (Kubernetes targetPort when numeric).
    pub target_port: u16,
}

impl ServicePort {
    /// The key of this port in [`Endpoint::ports`]: its name, or its number for an unnamed
    /// port.
    pub fn key(&self) -> String {
        if self.name.is_empty() {
            self.number.to_string()
        } else {
            self.name.clone()
        }
    }

    /// Whether traffic on this port is HTTP (HTTP/1.1, HTTP/2, gRPC, or undeclared).
    pub fn is_http(&self) -> bool {
        is_http_protocol(&self.protocol)
    }
}

/// Whether a protocol name is one the HTTP connection manager handles.
pub fn is_http_protocol(protocol: &str) -> bool {
    matches!(
        protocol.to_ascii_uppercase().as_str(),
        "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" | "AUTO" | "HTTP_PROXY"
    )
}

/// Whether a protocol name is HTTP/2 only (upstream connections use HTTP/2).
pub fn is_http2_protocol(protocol: &str) -> bool {
    matches!(
        protocol.to_ascii_uppercase().as_str(),
        "HTTP2" | "GRPC" | "GRPC-WEB"
    )
}

/// One endpoint of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// An IP address, or a DNS name for DNS resolution.
    pub address: String,
    /// Service port key ([`ServicePort::key`]: the name, or the number of an unnamed port)
    /// -> endpoint port.
    pub ports: BTreeMap<String, u16>,
    pub labels: BTreeMap<String, String>,
    pub namespace: String,
    pub workload: String,
    pub service_account: String,
}

impl Endpoint {
    /// The endpoint port for a service port.
    pub fn port_for(&self, port: &ServicePort) -> u16 {
        self.ports
            .get(&port.key())
            .copied()
            .unwrap_or(port.target_port)
    }
}

/// A service as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Service {
    /// FQDN (`reviews.default.svc.cluster.local`) or the ServiceEntry host.
    pub hostname: String,
    pub namespace: String,
    pub ports: Vec<ServicePort>,
    pub endpoints: Vec<Endpoint>,
    pub resolution: Resolution,
    /// MESH_EXTERNAL ServiceEntries.
    pub mesh_external: bool,
    /// Namespaces the service is visible from (`*` for all).
    pub export_to: Vec<String>,
    /// VIPs (ServiceEntry addresses, Service clusterIP) when known.
    pub addresses: Vec<IpAddr>,
    /// The object it comes from: `Service NS/NAME` or `ServiceEntry NS/NAME` (Istio's
    /// registry turns both into the same thing; this says which one to edit).
    pub origin: String,
}

impl Service {
    /// Whether a proxy in `namespace` may see this service.
    pub fn visible_from(&self, namespace: &str) -> bool {
        self.export_to.iter().any(|e| e == "*" || e == namespace)
    }

    /// The port with this number.
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }
}

/// A workload: a Pod with an IP or a WorkloadEntry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// `Pod` or `WorkloadEntry`.
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// The workload's IP (or, for a WorkloadEntry, possibly a DNS name).
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// Named ports: a WorkloadEntry's `ports`, a Pod's named container ports.
    pub ports: BTreeMap<String, u16>,
}

/// All services, sorted by hostname (then namespace), and all workloads, sorted by
/// namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Registry {
    pub services: Vec<Service>,
    pub workloads: Vec<Workload>,
}

impl Registry {
    /// Services with this hostname (one per namespace that defines it).
    pub fn services_named<'r>(&'r self, hostname: &'r str) -> impl Iterator<Item = &'r Service> {
        self.services.iter().filter(move |s| s.hostname == hostname)
    }

    /// The workload with this IP address, if any (the first by namespace and name).
    pub fn workload_by_address(&self, address: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.address == address)
    }

    /// The workload with this namespace and name, if any.
    pub fn workload(&self, namespace: &str, name: &str) -> Option<&Workload> {
        self.workloads
            .iter()
            .find(|w| w.namespace == namespace && w.name == name)
    }
}

/// Istio's protocol for a port name (`http-web` -> HTTP) or an explicit protocol/appProtocol
/// value, or `None` when it names no known protocol.
pub fn parse_protocol(value: &str) -> Option<&'static str> {
    let v = value.to_ascii_lowercase();
    let p = match v.as_str() {
        "http" => "HTTP",
        "http2" => "HTTP2",
        "http_proxy" => "HTTP_PROXY",
        "grpc" => "GRPC",
        "grpc-web" => "GRPC-Web",
        "https" => "HTTPS",
        "tls" => "TLS",
        "tcp" => "TCP",
        "udp" => "UDP",
        "mongo" => "Mongo",
        "mysql" => "MySQL",
        "redis" => "Redis",
        // Kubernetes' standard application protocols.
        "kubernetes.io/h2c" => "HTTP2",
        "kubernetes.io/ws" => "HTTP",
        "kubernetes.io/wss" => "HTTPS",
        _ => return None,
    };
    Some(p)
}

/// The protocol of a Kubernetes Service port: `appProtocol`, else the name prefix, else
/// `AUTO`.
pub fn service_port_protocol(name: &str, app_protocol: Option<&str>) -> String {
    if let Some(p) = app_protocol.and_then(parse_protocol) {
        return p.to_owned();
    }
    let lower = name.to_ascii_lowercase();
    if lower == "grpc-web" || lower.starts_with("grpc-web-") {
        return "GRPC-Web".to_owned();
    }
    let prefix = lower.split('-').next().unwrap_or("");
    parse_protocol(prefix)
        .filter(|p| !p.starts_with("kubernetes"))
        .map_or_else(|| "AUTO".to_owned(), str::to_owned)
}

/// Namespaces an `exportTo` list exports to, with `.` resolved to the object's own
/// namespace and `~` to nothing; an empty list is `default`.
pub(crate) fn resolve_export_to(list: &[String], own: &str, default: &[String]) -> Vec<String> {
    let src: &[String] = if list.is_empty() { default } else { list };
    let mut out: Vec<String> = src
        .iter()
        .filter(|e| *e != "~")
        .map(|e| if e == "." { own.to_owned() } else { e.clone() })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The mesh's default `exportTo` for a kind's field (`defaultServiceExportTo`, ...), `*`
/// when unset.
pub(crate) fn mesh_default_export(mesh: &MeshConfig, field: &str) -> Vec<String> {
    let list: Vec<String> = mesh
        .json
        .get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() {
        vec!["*".to_owned()]
    } else {
        list
    }
}

fn port_u16(n: u64) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p != 0)
}

/// Builds the registry. `service_entries` and `workload_entries` are the valid ones (the
/// caller validated them); Services and Pods are read from the store. Conflicting
/// definitions are appended to `rejected`.
pub(crate) fn build(
    store: &Store,
    service_entries: &[Typed<net::ServiceEntry>],
    workload_entries: &[Typed<WorkloadEntry>],
    mesh: &MeshConfig,
    rejected: &mut Vec<Rejected>,
) -> Registry {
    let workloads = collect_workloads(store, workload_entries);
    let mut in_ns: HashMap<&str, Vec<&WorkloadSource>> = HashMap::new();
    for w in &workloads {
        in_ns.entry(w.0.namespace.as_str()).or_default().push(w);
    }
    let by_ns = |ns: &str| -> &[&WorkloadSource] { in_ns.get(ns).map_or(&[], Vec::as_slice) };
    let default_export = mesh_default_export(mesh, "defaultServiceExportTo");

    let mut services: Vec<Service> = Vec::new();
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut keep = |svc: Service, from: &Resource, rejected: &mut Vec<Rejected>| {
        let key = (svc.hostname.clone(), svc.namespace.clone());
        if let Some(first) = seen.get(&key) {
            rejected.push(Rejected {
                object: from.display_name(),
                origin: from.origin.to_string(),
                reason: format!(
                    "host {:?} is already defined in namespace {} by {first}; this definition is ignored",
                    svc.hostname, svc.namespace
                ),
            });
            return;
        }
        seen.insert(key, from.display_name());
        services.push(svc);
    };

    for r in store.of(groups::CORE, "Service") {
        if let Some(svc) = kube_service(r, by_ns(r.ns()), &default_export) {
            keep(svc, r, rejected);
        }
    }
    for se in service_entries {
        for svc in service_entry_services(se, by_ns(se.namespace()), &default_export) {
            keep(svc, &se.resource, rejected);
        }
    }
    services.sort_by(|a, b| {
        (a.hostname.as_str(), a.namespace.as_str())
            .cmp(&(b.hostname.as_str(), b.namespace.as_str()))
    });
    let mut workloads: Vec<Workload> = workloads.into_iter().map(|(w, _)| w).collect();
    workloads.sort_by(|a, b| {
        (a.namespace.as_str(), a.name.as_str(), a.kind.as_str()).cmp(&(
            b.namespace.as_str(),
            b.name.as_str(),
            b.kind.as_str(),
        ))
    });
    Registry {
        services,
        workloads,
    }
}

/// A workload together with what a Kubernetes Service needs to resolve named target ports.
type WorkloadSource = (Workload, WorkloadOrigin);

#[derive(Clone, Copy, PartialEq, Eq)]
enum WorkloadOrigin {
    Pod,
    Entry,
}

fn collect_workloads(
    store: &Store,
    workload_entries: &[Typed<WorkloadEntry>],
) -> Vec<WorkloadSource> {
    let mut out = Vec::new();
    for pod in store.of(groups::CORE, "Pod") {
        if is_derived(pod) {
            continue;
        }
        let Some(ip) = str_at(&pod.json, "/status/podIP").filter(|s| !s.is_empty()) else {
            continue;
        };
        if matches!(
            str_at(&pod.json, "/status/phase"),
            Some("Failed" | "Succeeded")
        ) {
            continue;
        }
        let mut ports = BTreeMap::new();
        for c in crate::analysis::json::arr_at(&pod.json, "/spec/containers") {
            for p in crate::analysis::json::arr_at(c, "/ports") {
                if let (Some(name), Some(n)) = (
                    p.get("name").and_then(Value::as_str),
                    u64_at(p, "/containerPort").and_then(port_u16),
                ) {
                    ports.insert(name.to_owned(), n);
                }
            }
        }
        let sa = str_at(&pod.json, "/spec/serviceAccountName")
            .or_else(|| str_at(&pod.json, "/spec/serviceAccount"))
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        out.push((
            Workload {
                kind: "Pod".to_owned(),
                name: pod.name.clone(),
                namespace: pod.ns().to_owned(),
                address: ip.to_owned(),
                labels: pod.labels.clone(),
                service_account: sa.to_owned(),
                ports,
            },
            WorkloadOrigin::Pod,
        ));
    }
    for we in workload_entries {
        if let Some(w) = workload_from_entry(&we.spec, &we.resource) {
            out.push((w, WorkloadOrigin::Entry));
        }
    }
    out
}

fn workload_from_entry(spec: &WorkloadEntry, res: &Resource) -> Option<Workload> {
    if spec.address.is_empty() || spec.address.starts_with("unix://") {
        return None;
    }
    let mut labels = res.labels.clone();
    labels.extend(spec.labels.clone());
    Some(Workload {
        kind: "WorkloadEntry".to_owned(),
        name: res.name.clone(),
        namespace: res.ns().to_owned(),
        address: spec.address.clone(),
        labels,
        service_account: if spec.service_account.is_empty() {
            "default".to_owned()
        } else {
            spec.service_account.clone()
        },
        ports: spec
            .ports
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), port_u16(u64::from(*v))?)))
            .collect(),
    })
}

/// A Kubernetes Service port with its raw targetPort (a number or a port name).
struct KubePort {
    port: ServicePort,
    target_name: Option<String>,
}

fn kube_service(
    r: &Resource,
    workloads: &[&WorkloadSource],
    default_export: &[String],
) -> Option<Service> {
    let ns = r.ns().to_owned();
    let spec = r.spec();
    let mut ports = Vec::new();
    for p in crate::analysis::json::arr_at(spec, "/ports") {
        if p.get("protocol").and_then(Value::as_str) == Some("UDP") {
            continue;
        }
        let Some(number) = u64_at(p, "/port").and_then(port_u16) else {
            continue;
        };
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let (target_port, target_name) = match p.get("targetPort") {
            Some(Value::String(s)) => match s.parse::<u64>().ok().and_then(port_u16) {
                Some(n) => (n, None),
                None => (number, Some(s.clone())),
            },
            Some(v) => (v.as_u64().and_then(port_u16).unwrap_or(number), None),
            None => (number, None),
        };
        let protocol = service_port_protocol(&name, p.get("appProtocol").and_then(Value::as_str));
        ports.push(KubePort {
            port: ServicePort {
                name,
                number,
                protocol,
                target_port,
            },
            target_name,
        });
    }
    let export_list: Vec<String> = r
        .annotations
        .get("networking.istio.io/exportTo")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let export_to = resolve_export_to(&export_list, &ns, default_export);
    let hostname = crate::host::service_fqdn(&r.name, &ns);
    let mut addresses = Vec::new();
    if let Some(ip) = str_at(spec, "/clusterIP").and_then(|s| s.parse::<IpAddr>().ok()) {
        addresses.push(ip);
    }

    if str_at(spec, "/type") == Some("ExternalName") {
        let external = str_at(spec, "/externalName").unwrap_or("").to_owned();
        let endpoints = if external.is_empty() {
            Vec::new()
        } else {
            vec![Endpoint {
                address: external,
                ports: ports
                    .iter()
                    .map(|p| (p.port.key(), p.port.number))
                    .collect(),
                labels: BTreeMap::new(),
                namespace: ns.clone(),
                workload: String::new(),
                service_account: String::new(),
            }]
        };
        return Some(Service {
            hostname,
            namespace: ns,
            ports: ports.into_iter().map(|p| p.port).collect(),
            endpoints,
            resolution: Resolution::Dns,
            mesh_external: false,
            export_to,
            addresses,
            origin: format!("Service {}/{}", r.ns(), r.name),
        });
    }

    let selector = string_map_at(spec, "/selector");
    let mut endpoints = Vec::new();
    if !selector.is_empty() {
        for (w, origin) in workloads {
            if w.namespace != ns || !selector_matches(&selector, &w.labels) {
                continue;
            }
            let mut eps = BTreeMap::new();
            for p in &ports {
                let port = match origin {
                    // A WorkloadEntry names its ports after the service's ports, or after a
                    // named targetPort.
                    WorkloadOrigin::Entry => match w
                        .ports
                        .get(&p.port.name)
                        .or_else(|| p.target_name.as_ref().and_then(|tn| w.ports.get(tn)))
                    {
                        Some(n) => *n,
                        None => p.port.target_port,
                    },
                    WorkloadOrigin::Pod => match &p.target_name {
                        Some(tn) => match w.ports.get(tn) {
                            Some(n) => *n,
                            // A named target port the Pod does not declare: no endpoint
                            // port for it (Kubernetes leaves it out of the endpoints too).
                            None => continue,
                        },
                        None => p.port.target_port,
                    },
                };
                eps.insert(p.port.key(), port);
            }
            endpoints.push(endpoint_of(w, eps));
        }
    }
    sort_endpoints(&mut endpoints);
    Some(Service {
        hostname,
        namespace: ns,
        ports: ports.into_iter().map(|p| p.port).collect(),
        endpoints,
        resolution: Resolution::Static,
        mesh_external: false,
        export_to,
        addresses,
        origin: format!("Service {}/{}", r.ns(), r.name),
    })
}

fn endpoint_of(w: &Workload, ports: BTreeMap<String, u16>) -> Endpoint {
    Endpoint {
        address: w.address.clone(),
        ports,
        labels: w.labels.clone(),
        namespace: w.namespace.clone(),
        workload: w.name.clone(),
        service_account: w.service_account.clone(),
    }
}

fn sort_endpoints(endpoints: &mut [Endpoint]) {
    endpoints.sort_by(|a, b| {
        (a.address.as_str(), a.workload.as_str()).cmp(&(b.address.as_str(), b.workload.as_str()))
    });
}

fn service_entry_services(
    se: &Typed<net::ServiceEntry>,
    workloads: &[&WorkloadSource],
    default_export: &[String],
) -> Vec<Service> {
    let spec = &se.spec;
    let ns = se.resource.ns().to_owned();
    let ports: Vec<ServicePort> = spec
        .ports
        .iter()
        .filter_map(|p| {
            let number = port_u16(u64::from(p.number))?;
            let protocol = if p.protocol.is_empty() {
                service_port_protocol(&p.name, None)
            } else {
                parse_protocol(&p.protocol)
                    .map_or_else(|| p.protocol.to_ascii_uppercase(), str::to_owned)
            };
            Some(ServicePort {
                name: p.name.clone(),
                number,
                protocol,
                target_port: port_u16(u64::from(p.target_port)).unwrap_or(number),
            })
        })
        .collect();
    let resolution = match spec.resolution {
        net::Resolution::None => Resolution::None,
        net::Resolution::Static => Resolution::Static,
        net::Resolution::Dns | net::Resolution::DnsRoundRobin => Resolution::Dns,
    };
    let export_to = resolve_export_to(&spec.export_to, &ns, default_export);
    let addresses: Vec<IpAddr> = spec
        .addresses
        .iter()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .collect();

    // Endpoints from the entry itself, or from the workloads it selects.
    let mut base_endpoints: Vec<Endpoint> = Vec::new();
    let entry_ports = |named: &BTreeMap<String, u16>| -> BTreeMap<String, u16> {
        ports
            .iter()
            .map(|p| {
                (
                    p.key(),
                    named.get(&p.name).copied().unwrap_or(p.target_port),
                )
            })
            .collect()
    };
    if let Some(eps) = &spec.endpoints {
        for ep in eps {
            if ep.address.is_empty() || ep.address.starts_with("unix://") {
                continue;
            }
            let named: BTreeMap<String, u16> = ep
                .ports
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), port_u16(u64::from(*v))?)))
                .collect();
            base_endpoints.push(Endpoint {
                address: ep.address.clone(),
                ports: entry_ports(&named),
                labels: ep.labels.clone(),
                namespace: ns.clone(),
                workload: String::new(),
                service_account: ep.service_account.clone(),
            });
        }
    } else if let Some(sel) = &spec.workload_selector {
        for (w, _) in workloads {
            if w.namespace == ns && selector_matches(&sel.labels, &w.labels) {
                base_endpoints.push(endpoint_of(w, entry_ports(&w.ports)));
            }
        }
    }

    let mut seen_hosts = BTreeSet::new();
    let mut out = Vec::new();
    for host in &spec.hosts {
        if !seen_hosts.insert(host.clone()) {
            continue;
        }
        let mut endpoints = base_endpoints.clone();
        if resolution == Resolution::Dns
            && spec.endpoints.is_none()
            && spec.workload_selector.is_none()
            && !crate::host::is_wildcard(host)
        {
            endpoints.push(Endpoint {
                address: host.clone(),
                ports: ports.iter().map(|p| (p.key(), p.target_port)).collect(),
                labels: BTreeMap::new(),
                namespace: ns.clone(),
                workload: String::new(),
                service_account: String::new(),
            });
        }
        sort_endpoints(&mut endpoints);
        out.push(Service {
            hostname: host.clone(),
            namespace: ns.clone(),
            ports: ports.clone(),
            endpoints,
            resolution,
            mesh_external: spec.location == Location::MeshExternal,
            export_to: export_to.clone(),
            addresses: addresses.clone(),
            origin: format!("ServiceEntry {}/{}", ns, se.resource.name),
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn protocols_from_names_and_app_protocol() {
        assert_eq!(service_port_protocol("http", None), "HTTP");
        assert_eq!(service_port_protocol("http-web", None), "HTTP");
        assert_eq!(service_port_protocol("HTTP2", None), "HTTP2");
        assert_eq!(service_port_protocol("grpc-web", None), "GRPC-Web");
        assert_eq!(service_port_protocol("grpc-api", None), "GRPC");
        assert_eq!(service_port_protocol("tcp-db", None), "TCP");
        assert_eq!(service_port_protocol("mongo", None), "Mongo");
        assert_eq!(service_port_protocol("https", None), "HTTPS");
        assert_eq!(service_port_protocol("web", None), "AUTO");
        assert_eq!(service_port_protocol("", None), "AUTO");
        assert_eq!(service_port_protocol("httpx", None), "AUTO");
        assert_eq!(service_port_protocol("web", Some("http2")), "HTTP2");
        assert_eq!(
            service_port_protocol("web", Some("kubernetes.io/h2c")),
            "HTTP2"
        );
        assert_eq!(service_port_protocol("tcp", Some("bogus")), "TCP");
    }

    #[test]
    fn export_to_resolution() {
        let star = vec!["*".to_owned()];
        assert_eq!(resolve_export_to(&[], "a", &star), vec!["*"]);
        assert_eq!(
            resolve_export_to(&[".".into(), "b".into()], "a", &star),
            vec!["a", "b"]
        );
        assert!(resolve_export_to(&["~".into()], "a", &star).is_empty());
    }
}
