//! What `meshctl describe` finds out about a workload or a service, from a [`Store`]: the
//! services a workload serves and their ports, the DestinationRules for them (and the subsets
//! the workload is in), the VirtualServices that route to them (with each route's match), the
//! Gateways exposing them or selecting the workload, the Sidecar, the effective mTLS mode per
//! port from PeerAuthentications (Istio's precedence: workload, then namespace, then root
//! namespace), the AuthorizationPolicies, and the analyzer messages about any of those
//! objects. Pure: no I/O; rendering is in `describe.rs`.

use std::collections::{BTreeMap, BTreeSet};

use mesh_core::analysis::json::{arr_at, label_selector_matches, str_at, string_map_at, u64_at};
use mesh_core::analysis::{MeshConfig, Message, Store};
use mesh_core::host;
use mesh_core::resource::{Resource, groups};
use serde::Serialize;
use serde_json::Value;

use crate::output::MessageRecord;

/// Istio's mode when no PeerAuthentication says otherwise.
const DEFAULT_MTLS: &str = "PERMISSIVE";

/// An object, named as Istio names it in messages, and where it is defined.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub origin: String,
}

impl ObjectRef {
    fn of(r: &Resource) -> ObjectRef {
        ObjectRef {
            kind: r.kind.clone(),
            name: r.name.clone(),
            namespace: r.ns().to_owned(),
            origin: r.origin.to_string(),
        }
    }

    /// `Kind ns/name`, as analyzer messages name their origin.
    pub fn display(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// `describe pod|workload`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadReport {
    pub workload: ObjectRef,
    /// The controller a Pod was derived from (`Deployment ns/name`), for Pods meshctl made
    /// from a workload template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Container ports (Pods) or named ports (WorkloadEntries).
    pub ports: Vec<NamedPort>,
    pub services: Vec<ServiceUse>,
    /// Gateways whose selector picks this workload (it is a gateway).
    pub gateways: Vec<GatewayUse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<ObjectRef>,
    pub mtls: Mtls,
    pub authorization_policies: Vec<AuthzUse>,
    pub warnings: Vec<MessageRecord>,
}

/// `describe service`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReport {
    pub service: ServiceUse,
    pub workloads: Vec<WorkloadSummary>,
    /// A ServiceEntry's inline endpoints (`address` with its ports and labels).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    pub warnings: Vec<MessageRecord>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NamedPort {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub port: u16,
}

/// A port of a service.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub port: u16,
    pub protocol: String,
    /// The port on the workload (Kubernetes targetPort; a name when it names a container
    /// port that could not be resolved).
    pub target_port: String,
}

/// A service (Kubernetes Service or ServiceEntry) and the config that concerns it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceUse {
    pub service: ObjectRef,
    pub hosts: Vec<String>,
    pub ports: Vec<ServicePort>,
    pub destination_rules: Vec<DestinationRuleUse>,
    pub virtual_services: Vec<VirtualServiceUse>,
    /// Gateways through which a VirtualService routes to this service.
    pub exposed_on: Vec<GatewayUse>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleUse {
    pub rule: ObjectRef,
    pub host: String,
    /// Subsets whose labels the workload has (for `describe service`: every subset).
    pub matching_subsets: Vec<String>,
    pub other_subsets: Vec<String>,
    /// The top-level traffic policy's settings, in words (empty: none).
    pub traffic_policy: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceUse {
    pub virtual_service: ObjectRef,
    pub hosts: Vec<String>,
    /// `mesh` and/or gateway names.
    pub gateways: Vec<String>,
    pub routes: Vec<RouteUse>,
}

/// One route of a VirtualService that sends traffic to the service.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteUse {
    /// `http`, `tcp` or `tls`, with the route's index (`http[1]`) or name.
    pub route: String,
    /// The match, in words (`*` when the route matches everything).
    pub when: String,
    /// Destinations of this route on the service: `host subset v1 weight 80`.
    pub destinations: Vec<String>,
    /// Whether any of those destinations can pick the described workload (subset or not).
    pub reaches_workload: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayUse {
    pub gateway: ObjectRef,
    /// `PROTOCOL PORT hosts...` per server.
    pub servers: Vec<String>,
    /// The VirtualService binding it (for exposures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// The effective mutual TLS of a workload.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mtls {
    /// The workload-wide mode: `STRICT`, `PERMISSIVE` or `DISABLE`.
    pub mode: String,
    /// The policies that decide it, most specific first, with the level each applies at.
    pub policies: Vec<PolicyUse>,
    /// Ports whose mode differs from the workload's (a workload policy's `portLevelMtls`),
    /// and every port the workload serves.
    pub ports: BTreeMap<u16, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyUse {
    pub policy: ObjectRef,
    /// `workload`, `namespace` or `mesh`.
    pub level: String,
    /// The mode it sets (`UNSET` inherits).
    pub mode: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzUse {
    pub policy: ObjectRef,
    pub action: String,
    pub rules: usize,
    /// `workload` (selector), `namespace` or `mesh` (root namespace).
    pub scope: String,
}

/// A workload behind a service.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSummary {
    pub workload: ObjectRef,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// DestinationRule subsets it belongs to, as `rule/subset`.
    pub subsets: Vec<String>,
    pub mtls: String,
}

/// Why nothing could be described.
#[derive(Debug, PartialEq, Eq)]
pub enum DescribeError {
    NotFound {
        kind: &'static str,
        name: String,
        namespace: Option<String>,
    },
    Ambiguous {
        name: String,
        candidates: Vec<String>,
    },
}

impl std::fmt::Display for DescribeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DescribeError::NotFound {
                kind,
                name,
                namespace,
            } => {
                write!(f, "no {kind} {name:?}")?;
                if let Some(ns) = namespace {
                    write!(f, " in namespace {ns}")?;
                }
                write!(f, " in the config")
            }
            DescribeError::Ambiguous { name, candidates } => write!(
                f,
                "{name:?} is ambiguous: {}; give NAME.NAMESPACE or -n",
                candidates.join(", ")
            ),
        }
    }
}

impl std::error::Error for DescribeError {}

/// The store, mesh config and analyzer messages a report is built from.
pub struct Mesh<'a> {
    pub store: &'a Store,
    pub mesh: &'a MeshConfig,
    pub messages: &'a [Message],
}

/// A workload's labels: a Pod's metadata labels; a WorkloadEntry's metadata labels overlaid
/// with its `spec.labels` (as meshd's registry reads them).
fn labels_of(w: &Resource) -> BTreeMap<String, String> {
    let mut labels = w.labels.clone();
    if w.kind == "WorkloadEntry" {
        labels.extend(string_map_at(&w.json, "/spec/labels"));
    }
    labels
}

fn is_workload(r: &Resource) -> bool {
    r.is(groups::CORE, "Pod") || r.is(groups::NETWORKING, "WorkloadEntry")
}

/// Finds objects by `NAME[.NS]` (or NAME with `namespace`): an exact name first, then a
/// Pod derived from a controller of that name (`NAME-*`) or named `NAME-...`.
fn find<'s>(
    store: &'s Store,
    kind: &'static str,
    wanted: impl Fn(&Resource) -> bool,
    name: &str,
    namespace: Option<&str>,
) -> Result<&'s Resource, DescribeError> {
    let mut tries: Vec<(&str, Option<&str>)> = vec![(name, namespace)];
    if namespace.is_none()
        && let Some((n, ns)) = name.rsplit_once('.')
    {
        tries.push((n, Some(ns)));
    }
    for (n, ns) in &tries {
        let in_scope = |r: &&Resource| wanted(r) && ns.is_none_or(|ns| r.ns() == ns);
        let exact: Vec<&Resource> = store
            .all()
            .iter()
            .filter(in_scope)
            .filter(|r| r.name == *n)
            .collect();
        let found = if exact.is_empty() {
            let derived = format!("{n}-*");
            let prefix = format!("{n}-");
            let by_derived: Vec<&Resource> = store
                .all()
                .iter()
                .filter(in_scope)
                .filter(|r| r.name == derived)
                .collect();
            if by_derived.is_empty() {
                store
                    .all()
                    .iter()
                    .filter(in_scope)
                    .filter(|r| r.name.starts_with(&prefix))
                    .collect()
            } else {
                by_derived
            }
        } else {
            exact
        };
        match found.as_slice() {
            [] => continue,
            [one] => return Ok(one),
            many => {
                return Err(DescribeError::Ambiguous {
                    name: name.to_owned(),
                    candidates: many.iter().map(|r| r.display_name()).collect(),
                });
            }
        }
    }
    Err(DescribeError::NotFound {
        kind,
        name: name.to_owned(),
        namespace: namespace.map(str::to_owned),
    })
}

/// Describes a Pod or WorkloadEntry.
pub fn describe_workload(
    m: &Mesh<'_>,
    name: &str,
    namespace: Option<&str>,
) -> Result<WorkloadReport, DescribeError> {
    let w = find(m.store, "pod or workload", is_workload, name, namespace)?;
    let labels = labels_of(w);
    let is_pod = w.kind == "Pod";
    let service_account = if is_pod {
        str_at(&w.json, "/spec/serviceAccountName")
            .or_else(|| str_at(&w.json, "/spec/serviceAccount"))
    } else {
        str_at(&w.json, "/spec/serviceAccount")
    }
    .unwrap_or("default")
    .to_owned();
    let address = if is_pod {
        str_at(&w.json, "/status/podIP")
    } else {
        str_at(&w.json, "/spec/address")
    }
    .map(str::to_owned);
    let ports = workload_ports(w);

    let mut services = Vec::new();
    for svc in services_of(m.store, w) {
        services.push(service_use(m, svc, Some(w)));
    }
    let gateways: Vec<GatewayUse> = m
        .store
        .of(groups::NETWORKING, "Gateway")
        .filter(|g| {
            let selector = string_map_at(&g.json, "/spec/selector");
            !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .map(|g| GatewayUse {
            gateway: ObjectRef::of(g),
            servers: gateway_servers(g),
            via: None,
        })
        .collect();
    let sidecar = sidecar_for(m, w).map(ObjectRef::of);
    let mut served_ports: BTreeSet<u16> = ports.iter().map(|p| p.port).collect();
    for s in &services {
        for p in &s.ports {
            if let Ok(n) = p.target_port.parse() {
                served_ports.insert(n);
            }
        }
    }
    let mtls = mtls_for(m, w, &served_ports);
    let authorization_policies = authz_for(m, w);

    let mut involved: BTreeSet<String> = BTreeSet::new();
    involved.insert(w.display_name());
    let derived_from = w
        .annotations
        .get(mesh_core::analysis::store::DERIVED_FROM_ANNOTATION)
        .cloned();
    involved.extend(derived_from.clone());
    for s in &services {
        collect_involved(s, &mut involved);
    }
    for g in &gateways {
        involved.insert(g.gateway.display());
    }
    involved.extend(sidecar.iter().map(ObjectRef::display));
    involved.extend(mtls.policies.iter().map(|p| p.policy.display()));
    involved.extend(authorization_policies.iter().map(|a| a.policy.display()));

    Ok(WorkloadReport {
        workload: ObjectRef::of(w),
        derived_from,
        labels,
        service_account,
        address,
        ports,
        services,
        gateways,
        sidecar,
        mtls,
        authorization_policies,
        warnings: warnings(m, &involved),
    })
}

/// Describes a Kubernetes Service (or, failing that, a ServiceEntry).
pub fn describe_service(
    m: &Mesh<'_>,
    name: &str,
    namespace: Option<&str>,
) -> Result<ServiceReport, DescribeError> {
    let svc = find(
        m.store,
        "service",
        |r| r.is(groups::CORE, "Service"),
        name,
        namespace,
    )
    .or_else(|_| {
        find(
            m.store,
            "service",
            |r| r.is(groups::NETWORKING, "ServiceEntry"),
            name,
            namespace,
        )
    })?;
    let service = service_use(m, svc, None);
    let mut workloads = Vec::new();
    for w in m.store.all().iter().filter(|r| is_workload(r)) {
        if !services_of(m.store, w)
            .iter()
            .any(|s| std::ptr::eq(*s, svc))
        {
            continue;
        }
        let subsets = service
            .destination_rules
            .iter()
            .flat_map(|dr| {
                subsets_of(m.store, &dr.rule)
                    .into_iter()
                    .filter(|(_, sel)| sel.iter().all(|(k, v)| labels_of(w).get(k) == Some(v)))
                    .map(|(s, _)| format!("{}/{s}", dr.rule.name))
                    .collect::<Vec<_>>()
            })
            .collect();
        let ports: BTreeSet<u16> = workload_ports(w).iter().map(|p| p.port).collect();
        workloads.push(WorkloadSummary {
            workload: ObjectRef::of(w),
            labels: labels_of(w),
            address: str_at(&w.json, "/status/podIP")
                .or_else(|| str_at(&w.json, "/spec/address"))
                .map(str::to_owned),
            subsets,
            mtls: mtls_for(m, w, &ports).mode,
        });
    }
    let mut involved = BTreeSet::new();
    collect_involved(&service, &mut involved);
    for w in &workloads {
        involved.insert(w.workload.display());
    }
    let endpoints = arr_at(&svc.json, "/spec/endpoints")
        .iter()
        .filter_map(|e| {
            let mut text = str_at(e, "/address")?.to_owned();
            if let Some(Value::Object(ports)) = e.get("ports") {
                let ports: Vec<String> = ports.iter().map(|(n, p)| format!("{n}={p}")).collect();
                text.push_str(&format!(" ports {}", ports.join(",")));
            }
            let labels = string_map_at(e, "/labels");
            if !labels.is_empty() {
                text.push_str(&format!(
                    " ({})",
                    mesh_core::analysis::json::selector_text(&labels)
                ));
            }
            Some(text)
        })
        .collect();
    Ok(ServiceReport {
        service,
        workloads,
        endpoints,
        warnings: warnings(m, &involved),
    })
}

fn collect_involved(s: &ServiceUse, out: &mut BTreeSet<String>) {
    out.insert(s.service.display());
    out.extend(s.destination_rules.iter().map(|d| d.rule.display()));
    out.extend(
        s.virtual_services
            .iter()
            .map(|v| v.virtual_service.display()),
    );
    out.extend(s.exposed_on.iter().map(|g| g.gateway.display()));
}

/// Analyzer messages whose origin is one of `involved` (`Kind ns/name`).
fn warnings(m: &Mesh<'_>, involved: &BTreeSet<String>) -> Vec<MessageRecord> {
    m.messages
        .iter()
        .filter(|msg| {
            msg.origin
                .as_ref()
                .is_some_and(|o| involved.contains(&o.display_name()))
        })
        .map(MessageRecord::from_message)
        .collect()
}

/// Container ports of a Pod; the named ports of a WorkloadEntry.
fn workload_ports(w: &Resource) -> Vec<NamedPort> {
    let mut out = Vec::new();
    if w.kind == "Pod" {
        for c in arr_at(&w.json, "/spec/containers") {
            for p in arr_at(c, "/ports") {
                if let Some(port) = u64_at(p, "/containerPort").and_then(|n| u16::try_from(n).ok())
                {
                    out.push(NamedPort {
                        name: str_at(p, "/name").unwrap_or_default().to_owned(),
                        port,
                    });
                }
            }
        }
    } else if let Some(Value::Object(ports)) = w.json.pointer("/spec/ports") {
        for (name, port) in ports {
            if let Some(port) = port.as_u64().and_then(|n| u16::try_from(n).ok()) {
                out.push(NamedPort {
                    name: name.clone(),
                    port,
                });
            }
        }
    }
    out
}

/// Services in the workload's namespace selecting it, and ServiceEntries whose
/// `workloadSelector` picks it.
fn services_of<'s>(store: &'s Store, w: &Resource) -> Vec<&'s Resource> {
    store
        .all()
        .iter()
        .filter(|s| s.ns() == w.ns())
        .filter(|s| {
            let pointer = if s.is(groups::CORE, "Service") {
                "/spec/selector"
            } else if s.is(groups::NETWORKING, "ServiceEntry") {
                "/spec/workloadSelector/labels"
            } else {
                return false;
            };
            let selector = string_map_at(&s.json, pointer);
            !selector.is_empty() && selector.iter().all(|(k, v)| labels_of(w).get(k) == Some(v))
        })
        .collect()
}

fn service_hosts(svc: &Resource) -> Vec<String> {
    if svc.kind == "Service" {
        vec![host::service_fqdn(&svc.name, svc.ns())]
    } else {
        arr_at(&svc.json, "/spec/hosts")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    }
}

fn service_ports(svc: &Resource, w: Option<&Resource>) -> Vec<ServicePort> {
    arr_at(&svc.json, "/spec/ports")
        .iter()
        .filter_map(|p| {
            let port = u16::try_from(u64_at(p, "/port").or_else(|| u64_at(p, "/number"))?).ok()?;
            let name = str_at(p, "/name").unwrap_or_default().to_owned();
            let protocol = str_at(p, "/appProtocol")
                .or_else(|| str_at(p, "/protocol").filter(|_| svc.kind == "ServiceEntry"))
                .map(str::to_owned)
                .unwrap_or_else(|| protocol_from_name(&name));
            let target_port = match p.get("targetPort") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(named)) => w
                    .and_then(|w| {
                        workload_ports(w)
                            .into_iter()
                            .find(|wp| &wp.name == named)
                            .map(|wp| wp.port.to_string())
                    })
                    .unwrap_or_else(|| named.clone()),
                _ => port.to_string(),
            };
            Some(ServicePort {
                name,
                port,
                protocol,
                target_port,
            })
        })
        .collect()
}

/// Istio's protocol selection from a port name (`http-web` is HTTP); TCP otherwise.
fn protocol_from_name(name: &str) -> String {
    let prefix = name
        .split('-')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match prefix.as_str() {
        "http" => "HTTP",
        "http2" => "HTTP2",
        "https" => "HTTPS",
        "grpc" | "grpc-web" => "GRPC",
        "tls" => "TLS",
        "mongo" => "Mongo",
        "redis" => "Redis",
        "mysql" => "MySQL",
        _ => "TCP",
    }
    .to_owned()
}

fn service_use(m: &Mesh<'_>, svc: &Resource, w: Option<&Resource>) -> ServiceUse {
    let hosts = service_hosts(svc);
    let destination_rules = m
        .store
        .of(groups::NETWORKING, "DestinationRule")
        .filter_map(|dr| {
            let host = host::fqdn(str_at(&dr.json, "/spec/host")?, dr.ns());
            hosts
                .iter()
                .any(|h| host::matches(&host, h))
                .then_some((dr, host))
        })
        .map(|(dr, host)| {
            let r = ObjectRef::of(dr);
            let (mut matching, mut other) = (Vec::new(), Vec::new());
            for (subset, selector) in subsets_of(m.store, &r) {
                let member =
                    w.is_none_or(|w| selector.iter().all(|(k, v)| labels_of(w).get(k) == Some(v)));
                if member {
                    matching.push(subset)
                } else {
                    other.push(subset)
                }
            }
            DestinationRuleUse {
                rule: r,
                host,
                matching_subsets: matching,
                other_subsets: other,
                traffic_policy: policy_summary(dr.json.pointer("/spec/trafficPolicy")),
            }
        })
        .collect::<Vec<_>>();
    let subsets_of_workload: BTreeSet<String> = destination_rules
        .iter()
        .flat_map(|d| d.matching_subsets.iter().cloned())
        .collect();

    let mut virtual_services = Vec::new();
    let mut exposed_on = Vec::new();
    for vs in m.store.of(groups::NETWORKING, "VirtualService") {
        let vs_hosts: Vec<String> = arr_at(&vs.json, "/spec/hosts")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let mut gateways: Vec<String> = arr_at(&vs.json, "/spec/gateways")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        if gateways.is_empty() {
            gateways.push("mesh".to_owned());
        }
        let mut routes = Vec::new();
        for kind in ["http", "tcp", "tls"] {
            for (i, route) in arr_at(&vs.json, &format!("/spec/{kind}"))
                .iter()
                .enumerate()
            {
                let mut destinations = Vec::new();
                let mut reaches = false;
                for d in arr_at(route, "/route") {
                    let Some(dest_host) = str_at(d, "/destination/host") else {
                        continue;
                    };
                    let full = host::fqdn(dest_host, vs.ns());
                    if !hosts.iter().any(|h| host::matches(&full, h)) {
                        continue;
                    }
                    let subset = str_at(d, "/destination/subset");
                    reaches |=
                        w.is_none() || subset.is_none_or(|s| subsets_of_workload.contains(s));
                    let mut text = dest_host.to_owned();
                    if let Some(p) = u64_at(d, "/destination/port/number") {
                        text.push_str(&format!(":{p}"));
                    }
                    if let Some(s) = subset {
                        text.push_str(&format!(" subset {s}"));
                    }
                    if let Some(weight) = u64_at(d, "/weight") {
                        text.push_str(&format!(" weight {weight}%"));
                    }
                    destinations.push(text);
                }
                // Mirrors reach the service too.
                if let Some(mirror) = str_at(route, "/mirror/host")
                    && hosts
                        .iter()
                        .any(|h| host::matches(&host::fqdn(mirror, vs.ns()), h))
                {
                    destinations.push(format!("{mirror} (mirror)"));
                    reaches |= w.is_none()
                        || str_at(route, "/mirror/subset")
                            .is_none_or(|s| subsets_of_workload.contains(s));
                }
                if destinations.is_empty() {
                    continue;
                }
                let label = str_at(route, "/name")
                    .map_or_else(|| format!("{kind}[{i}]"), |n| format!("{kind}[{i}] {n}"));
                routes.push(RouteUse {
                    route: label,
                    when: match_summary(route),
                    destinations,
                    reaches_workload: reaches,
                });
            }
        }
        if routes.is_empty() {
            continue;
        }
        for g in gateways.iter().filter(|g| *g != "mesh") {
            let (gns, gname) = g.split_once('/').unwrap_or((vs.ns(), g));
            if let Some(gw) = m.store.get(groups::NETWORKING, "Gateway", gns, gname) {
                exposed_on.push(GatewayUse {
                    gateway: ObjectRef::of(gw),
                    servers: gateway_servers(gw),
                    via: Some(format!("VirtualService {}/{}", vs.ns(), vs.name)),
                });
            }
        }
        virtual_services.push(VirtualServiceUse {
            virtual_service: ObjectRef::of(vs),
            hosts: vs_hosts,
            gateways,
            routes,
        });
    }
    ServiceUse {
        service: ObjectRef::of(svc),
        hosts,
        ports: service_ports(svc, w),
        destination_rules,
        virtual_services,
        exposed_on,
    }
}

/// A DestinationRule's subsets and their labels.
fn subsets_of(store: &Store, dr: &ObjectRef) -> Vec<(String, BTreeMap<String, String>)> {
    let Some(r) = store.get(
        groups::NETWORKING,
        "DestinationRule",
        &dr.namespace,
        &dr.name,
    ) else {
        return Vec::new();
    };
    arr_at(&r.json, "/spec/subsets")
        .iter()
        .filter_map(|s| Some((str_at(s, "/name")?.to_owned(), string_map_at(s, "/labels"))))
        .collect()
}

/// A traffic policy in a few words per setting.
fn policy_summary(policy: Option<&Value>) -> Vec<String> {
    let Some(p) = policy else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(lb) = str_at(p, "/loadBalancer/simple") {
        out.push(format!("load balancer {lb}"));
    }
    if p.pointer("/loadBalancer/consistentHash").is_some() {
        out.push("consistent hash load balancing".to_owned());
    }
    if let Some(mode) = str_at(p, "/tls/mode") {
        out.push(format!("TLS {mode}"));
    }
    if p.get("connectionPool").is_some() {
        out.push("connection pool limits".to_owned());
    }
    if let Some(od) = p.get("outlierDetection") {
        let errors = u64_at(od, "/consecutive5xxErrors")
            .or_else(|| u64_at(od, "/consecutiveErrors"))
            .map(|n| format!(" after {n} 5xx"))
            .unwrap_or_default();
        out.push(format!("outlier detection{errors}"));
    }
    if p.get("portLevelSettings").is_some() {
        out.push("port-level settings".to_owned());
    }
    out
}

/// A route's match conditions in words: alternatives joined by ` OR `.
fn match_summary(route: &Value) -> String {
    let matches = arr_at(route, "/match");
    if matches.is_empty() {
        return "*".to_owned();
    }
    let string_match = |v: &Value| -> String {
        if let Some(s) = str_at(v, "/exact") {
            format!("={s}")
        } else if let Some(s) = str_at(v, "/prefix") {
            format!("={s}*")
        } else if let Some(s) = str_at(v, "/regex") {
            format!("~{s}")
        } else {
            " present".to_owned()
        }
    };
    matches
        .iter()
        .map(|m| {
            let mut parts = Vec::new();
            if let Some(uri) = m.get("uri") {
                parts.push(format!("uri{}", string_match(uri)));
            }
            if let Some(method) = m.get("method") {
                parts.push(format!("method{}", string_match(method)));
            }
            if let Some(authority) = m.get("authority") {
                parts.push(format!("authority{}", string_match(authority)));
            }
            for (key, label) in [("headers", "header"), ("queryParams", "query")] {
                if let Some(Value::Object(h)) = m.get(key) {
                    for (name, v) in h {
                        parts.push(format!("{label} {name}{}", string_match(v)));
                    }
                }
            }
            if let Some(port) = u64_at(m, "/port") {
                parts.push(format!("port {port}"));
            }
            let sni: Vec<&str> = arr_at(m, "/sniHosts")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            if !sni.is_empty() {
                parts.push(format!("sni {}", sni.join(",")));
            }
            let source = string_map_at(m, "/sourceLabels");
            if !source.is_empty() {
                parts.push(format!(
                    "from {}",
                    mesh_core::analysis::json::selector_text(&source)
                ));
            }
            let gws: Vec<&str> = arr_at(m, "/gateways")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            if !gws.is_empty() {
                parts.push(format!("via {}", gws.join(",")));
            }
            if parts.is_empty() {
                "*".to_owned()
            } else {
                parts.join(" AND ")
            }
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

fn gateway_servers(g: &Resource) -> Vec<String> {
    arr_at(&g.json, "/spec/servers")
        .iter()
        .map(|s| {
            let hosts: Vec<&str> = arr_at(s, "/hosts")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "{} {} {}",
                str_at(s, "/port/protocol").unwrap_or("?"),
                u64_at(s, "/port/number").map_or_else(|| "?".to_owned(), |n| n.to_string()),
                hosts.join(",")
            )
        })
        .collect()
}

/// Of several objects at one level of precedence, the one Istio uses: the oldest
/// (`metadata.creationTimestamp`; files without timestamps: the first loaded).
fn oldest<'s>(candidates: impl Iterator<Item = &'s Resource>) -> Option<&'s Resource> {
    candidates
        .enumerate()
        .min_by(|(i, a), (j, b)| {
            let created = |r: &Resource| {
                str_at(&r.json, "/metadata/creationTimestamp")
                    .unwrap_or_default()
                    .to_owned()
            };
            (created(a), i).cmp(&(created(b), j))
        })
        .map(|(_, r)| r)
}

/// The Sidecar that configures the workload: one in its namespace whose `workloadSelector`
/// picks it, else its namespace's default, else the root namespace's default.
fn sidecar_for<'s>(m: &Mesh<'s>, w: &Resource) -> Option<&'s Resource> {
    let root = m.mesh.root_namespace();
    let labels = labels_of(w);
    let sidecars: Vec<&Resource> = m.store.of(groups::NETWORKING, "Sidecar").collect();
    let selected = oldest(sidecars.iter().copied().filter(|s| {
        s.ns() == w.ns() && {
            let sel = string_map_at(&s.json, "/spec/workloadSelector/labels");
            !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
        }
    }));
    let default_in = |ns: &str| {
        oldest(
            sidecars
                .iter()
                .copied()
                .filter(|s| s.ns() == ns && s.json.pointer("/spec/workloadSelector").is_none()),
        )
    };
    selected
        .or_else(|| default_in(w.ns()))
        .or_else(|| default_in(root))
}

fn pa_selector(pa: &Resource) -> BTreeMap<String, String> {
    string_map_at(&pa.json, "/spec/selector/matchLabels")
}

/// The effective mTLS mode (Istio's rules): a workload policy (selector matching, in the
/// workload's namespace) over the namespace's policy (no selector) over the root
/// namespace's; `UNSET` inherits; at one level the oldest wins ([`oldest`]).
/// Port-level modes come only from the workload policy.
fn mtls_for(m: &Mesh<'_>, w: &Resource, ports: &BTreeSet<u16>) -> Mtls {
    let root = m.mesh.root_namespace();
    let labels = labels_of(w);
    let pas: Vec<&Resource> = m.store.of(groups::SECURITY, "PeerAuthentication").collect();
    let workload = oldest(pas.iter().copied().filter(|pa| {
        pa.ns() == w.ns() && {
            let sel = pa_selector(pa);
            !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
        }
    }));
    let namespace = oldest(
        pas.iter()
            .copied()
            .filter(|pa| pa.ns() == w.ns() && pa_selector(pa).is_empty()),
    );
    let mesh = oldest(
        pas.iter()
            .copied()
            .filter(|pa| pa.ns() == root && pa_selector(pa).is_empty()),
    );
    let mode_of = |pa: &Resource| {
        str_at(&pa.json, "/spec/mtls/mode")
            .unwrap_or("UNSET")
            .to_owned()
    };
    let mut mode = DEFAULT_MTLS.to_owned();
    let mut policies = Vec::new();
    for (level, pa) in [
        ("mesh", mesh),
        ("namespace", namespace),
        ("workload", workload),
    ] {
        let Some(pa) = pa else { continue };
        // A root-namespace policy is also the namespace policy of workloads in it.
        if level == "namespace" && mesh.is_some_and(|m| std::ptr::eq(m, pa)) {
            continue;
        }
        let set = mode_of(pa);
        if set != "UNSET" {
            mode.clone_from(&set);
        }
        policies.push(PolicyUse {
            policy: ObjectRef::of(pa),
            level: level.to_owned(),
            mode: set,
        });
    }
    policies.reverse();
    let mut port_modes: BTreeMap<u16, String> = ports.iter().map(|p| (*p, mode.clone())).collect();
    if let Some(pa) = workload
        && let Some(Value::Object(levels)) = pa.json.pointer("/spec/portLevelMtls")
    {
        for (port, v) in levels {
            let (Ok(port), Some(set)) = (port.parse::<u16>(), str_at(v, "/mode")) else {
                continue;
            };
            let effective = if set == "UNSET" {
                mode.clone()
            } else {
                set.to_owned()
            };
            port_modes.insert(port, effective);
        }
    }
    Mtls {
        mode,
        policies,
        ports: port_modes,
    }
}

/// AuthorizationPolicies that apply to the workload: in the root namespace (mesh-wide) or
/// its own namespace, with no selector or one that picks it. Policies with `targetRef(s)`
/// attach to gateways and waypoints, not sidecars, and are left out.
fn authz_for(m: &Mesh<'_>, w: &Resource) -> Vec<AuthzUse> {
    let root = m.mesh.root_namespace();
    m.store
        .of(groups::SECURITY, "AuthorizationPolicy")
        .filter(|ap| ap.ns() == w.ns() || ap.ns() == root)
        .filter(|ap| {
            ap.json.pointer("/spec/targetRef").is_none()
                && ap.json.pointer("/spec/targetRefs").is_none()
        })
        .filter(|ap| label_selector_matches(ap.json.pointer("/spec/selector"), &labels_of(w)))
        .map(|ap| AuthzUse {
            policy: ObjectRef::of(ap),
            action: str_at(&ap.json, "/spec/action")
                .unwrap_or("ALLOW")
                .to_owned(),
            rules: arr_at(&ap.json, "/spec/rules").len(),
            scope: if ap
                .json
                .pointer("/spec/selector")
                .is_some_and(|s| !s.is_null())
            {
                "workload"
            } else if ap.ns() == root {
                "mesh"
            } else {
                "namespace"
            }
            .to_owned(),
        })
        .collect()
}
