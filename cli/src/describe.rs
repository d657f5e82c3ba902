//! `meshctl describe pod|workload|service NAME[.NS]`: what config applies to a workload or a
//! service, read from files (`-f`, analyze's loader and store, derived Pods included) or
//! from a running meshd (`--controlplane`, its `/debug/resourcesz`). The findings are built
//! in [`crate::describe_model`]; this module loads, renders (text like `istioctl x describe`,
//! or `-o json|yaml`) and maps the outcome to an exit code.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use mesh_core::analysis::{self, MeshConfig, Store};
use mesh_core::resource::{Origin, Resource};
use mesh_core::source;
use serde_json::Value;

use crate::args::DataFormat;
use crate::describe_model::{self as model, Mesh, ServiceUse, WorkloadReport};
use crate::exit;
use crate::output;

/// The debug address meshd listens on by default.
pub const DEFAULT_CONTROLPLANE: &str = "http://127.0.0.1:15014";

#[derive(Debug, Args)]
pub struct DescribeArgs {
    #[command(subcommand)]
    pub target: DescribeTarget,
}

#[derive(Debug, Subcommand)]
pub enum DescribeTarget {
    /// A Pod or WorkloadEntry (Pods derived from Deployments are named `DEPLOYMENT-*`; the
    /// Deployment's name finds them): its services, routes, subsets, policies, warnings.
    #[command(visible_aliases = ["po", "workload"])]
    Pod(TargetArgs),
    /// A Service (or ServiceEntry): its ports, workloads, DestinationRules, routes,
    /// gateways, warnings.
    #[command(visible_alias = "svc")]
    Service(TargetArgs),
    /// A Gateway: its servers, the VirtualServices that bind to them (where), and those
    /// that do not, with the reason (gateways list, exportTo, host or namespace mismatch).
    #[command(visible_alias = "gw")]
    Gateway(TargetArgs),
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// NAME, or NAME.NAMESPACE.
    #[arg(value_name = "NAME[.NS]")]
    pub name: String,

    /// The namespace (default: whichever namespace has an object of that name).
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Read the config from files or directories (`-` reads stdin) instead of meshd.
    /// Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<PathBuf>,

    /// meshd's debug address, where the config is read from when no files are given.
    #[arg(long, value_name = "URL", default_value = DEFAULT_CONTROLPLANE)]
    pub controlplane: String,

    /// Output format (default: text).
    #[arg(short, long, value_enum)]
    pub output: Option<DataFormat>,
}

/// Runs the command; returns the exit code.
pub fn run(args: &DescribeArgs) -> u8 {
    let (t, is_service) = match &args.target {
        DescribeTarget::Pod(t) => (t, false),
        DescribeTarget::Service(t) => (t, true),
        DescribeTarget::Gateway(t) => return run_gateway(t),
    };
    let (store, mesh) = match load(t) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("Error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let messages = analysis::run(&store, &mesh, &analysis::all_analyzers());
    let m = Mesh {
        store: &store,
        mesh: &mesh,
        messages: &messages,
    };
    let ns = t.namespace.as_deref();
    let rendered = if is_service {
        model::describe_service(&m, &t.name, ns).map(|r| render(t.output, &r, || service_text(&r)))
    } else {
        model::describe_workload(&m, &t.name, ns)
            .map(|r| render(t.output, &r, || workload_text(&r)))
    };
    emit(rendered.map_err(|e| e.to_string()))
}

/// `describe gateway`: the bindings as the gateway translation makes them (meshd's store:
/// the objects as loaded).
fn run_gateway(t: &TargetArgs) -> u8 {
    let (resources, mesh) = match load_resources(&t.files, &t.controlplane) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("Error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let snap = mesh_core::xds::Snapshot::build(&Store::new(resources), &mesh);
    let (name, ns) = match (t.name.rsplit_once('.'), &t.namespace) {
        (_, Some(ns)) => (t.name.as_str(), Some(ns.as_str())),
        (Some((n, ns)), None) => (n, Some(ns)),
        (None, None) => (t.name.as_str(), None),
    };
    let found: Vec<&str> = snap
        .gateways
        .iter()
        .filter(|g| g.name() == name && ns.is_none_or(|ns| g.namespace() == ns))
        .map(|g| g.namespace())
        .collect();
    let rendered = match found.as_slice() {
        [ns] => mesh_core::xds::binding::gateway_bindings(&snap, ns, name)
            .map(|b| render(t.output, &b, || gateway_text(&b)))
            .ok_or_else(|| format!("no Gateway {ns}/{name}")),
        [] => Err(format!(
            "no Gateway {name:?}{}",
            ns.map(|ns| format!(" in namespace {ns}"))
                .unwrap_or_default()
        )),
        several => Err(format!(
            "Gateway {name:?} is in several namespaces ({}); name one with NAME.NS or -n",
            several.join(", ")
        )),
    };
    emit(rendered)
}

fn gateway_text(b: &mesh_core::xds::binding::GatewayBindings) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Gateway: {}", b.gateway);
    let _ = writeln!(o, "   Selector: {}", labels(&b.selector));
    let _ = writeln!(o, "   Servers:");
    for s in &b.servers {
        let tls = s
            .tls
            .as_ref()
            .map(|m| format!(", TLS {m}"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "      {}/{} ({}{tls}): {}",
            s.port,
            s.protocol,
            s.name,
            s.hosts.join(", ")
        );
    }
    if b.virtual_services.is_empty() {
        let _ = writeln!(o, "   VirtualServices: none binds or nearly does");
        return o;
    }
    let _ = writeln!(o, "   VirtualServices:");
    for v in &b.virtual_services {
        if v.binds {
            let at: Vec<String> = v
                .bound
                .iter()
                .map(|b| format!("{} on {}", b.host, b.port))
                .collect();
            let _ = writeln!(o, "      {}: binds ({})", v.virtual_service, at.join(", "));
        } else {
            let _ = writeln!(
                o,
                "      {}: does not bind: {}",
                v.virtual_service, v.reason
            );
        }
    }
    o
}

/// Prints a rendering (exit 0), or the error about what was asked for (exit 64).
pub(crate) fn emit(rendered: Result<String, String>) -> u8 {
    match rendered {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            exit::OK
        }
        Err(e) => {
            eprintln!("Error: {e}");
            exit::USAGE
        }
    }
}

pub(crate) fn render<T: serde::Serialize>(
    format: Option<DataFormat>,
    report: &T,
    text: impl FnOnce() -> String,
) -> String {
    match format {
        Some(DataFormat::Json) => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Some(DataFormat::Yaml) => output::to_yaml(report),
        None => text(),
    }
}

/// The objects to describe from, as analyze sees them (derived Pods, the default ingress
/// gateway), and the mesh config (the `istio` ConfigMap among them, else defaults).
fn load(t: &TargetArgs) -> Result<(Store, MeshConfig), String> {
    let (resources, mesh) = load_resources(&t.files, &t.controlplane)?;
    Ok((analysis::files_store(resources, &mesh), mesh))
}

/// The objects in `files` (meshd's at `controlplane` when there are none) and the mesh
/// config (the `istio` ConfigMap among them, else defaults).
pub(crate) fn load_resources(
    files: &[PathBuf],
    controlplane: &str,
) -> Result<(Vec<Resource>, MeshConfig), String> {
    let resources = if files.is_empty() {
        from_controlplane(controlplane)?
    } else {
        let loaded = source::load_paths(files, true);
        if let Some(e) = loaded.errors.first() {
            return Err(e.to_string());
        }
        if loaded.files_read == 0 {
            return Err(format!(
                "no YAML or JSON files found in {}",
                files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        loaded.resources
    };
    let mesh = MeshConfig::from_configmap(&resources, "istio-system").unwrap_or_default();
    Ok((resources, mesh))
}

/// Every object meshd loaded (`/debug/resourcesz`), each keeping its origin. Field lines
/// are not served: references point at each object's first line.
pub(crate) fn from_controlplane(url: &str) -> Result<Vec<Resource>, String> {
    let body = http_get(url, "/debug/resourcesz", Duration::from_secs(10)).map_err(|e| {
        format!(
            "reading the config from meshd at {url}: {e} (is meshd running? or give files with -f)"
        )
    })?;
    let doc: Value = serde_json::from_str(&body)
        .map_err(|e| format!("{url}/debug/resourcesz is not JSON: {e}"))?;
    let mut out = Vec::new();
    for item in doc["resources"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let origin = item["origin"].as_str().unwrap_or("meshd:0");
        let (file, line) = origin
            .rsplit_once(':')
            .and_then(|(f, l)| Some((f, l.parse::<u32>().ok()?)))
            .unwrap_or((origin, 0));
        let text = item["object"].to_string();
        let loaded = source::load_bytes(file, text.as_bytes());
        for mut r in loaded.resources {
            r.origin = Origin {
                file: Arc::from(file),
                line,
            };
            let mut node = analysis::store::node_from_json(&r.json);
            node.line = line;
            r.node = Arc::new(node);
            out.push(r);
        }
    }
    Ok(out)
}

/// A plain HTTP/1.1 GET (meshd's debug API serves plaintext HTTP on loopback).
pub(crate) fn http_get(base: &str, path: &str, timeout: Duration) -> Result<String, String> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// URLs are supported".to_owned())?;
    let authority = rest.split('/').next().unwrap_or_default();
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "malformed HTTP response".to_owned())?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(format!("GET {path}: status {status}"));
    }
    if head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    }) {
        return Err(format!("GET {path}: chunked responses are not supported"));
    }
    Ok(body.to_owned())
}

const RULE: &str = "--------------------";

fn workload_text(r: &WorkloadReport) -> String {
    let mut o = String::new();
    let w = &r.workload;
    let _ = writeln!(o, "{}: {}.{} ({})", w.kind, w.name, w.namespace, w.origin);
    if let Some(d) = &r.derived_from {
        let _ = writeln!(o, "   From: {d}");
    }
    let _ = writeln!(o, "   Labels: {}", labels(&r.labels));
    let _ = writeln!(o, "   Service account: {}", r.service_account);
    if let Some(a) = &r.address {
        let _ = writeln!(o, "   Address: {a}");
    }
    if !r.ports.is_empty() {
        let ports: Vec<String> = r
            .ports
            .iter()
            .map(|p| {
                if p.name.is_empty() {
                    p.port.to_string()
                } else {
                    format!("{} ({})", p.port, p.name)
                }
            })
            .collect();
        let _ = writeln!(o, "   Ports: {}", ports.join(", "));
    }
    if r.services.is_empty() {
        let _ = writeln!(o, "{RULE}\nNo service selects this workload.");
    }
    for s in &r.services {
        let _ = writeln!(o, "{RULE}");
        service_section(&mut o, s, true);
    }
    let _ = writeln!(o, "{RULE}");
    for g in &r.gateways {
        let _ = writeln!(
            o,
            "Gateway: {} selects this workload: {}",
            g.gateway.display(),
            g.servers.join("; ")
        );
    }
    match &r.sidecar {
        Some(s) => {
            let _ = writeln!(o, "Sidecar: {} ({})", s.display(), s.origin);
        }
        None => {
            let _ = writeln!(o, "Sidecar: none (every service in the mesh is visible)");
        }
    }
    let _ = writeln!(o, "Effective PeerAuthentication:");
    let _ = writeln!(o, "   Workload mTLS mode: {}", r.mtls.mode);
    if r.mtls.policies.is_empty() {
        let _ = writeln!(o, "   No PeerAuthentication applies (Istio's default)");
    }
    for p in &r.mtls.policies {
        let _ = writeln!(
            o,
            "   Applied: {} ({} level): {}",
            p.policy.display(),
            p.level,
            p.mode
        );
    }
    for (port, mode) in &r.mtls.ports {
        let _ = writeln!(o, "   Port {port}: {mode}");
    }
    if r.authorization_policies.is_empty() {
        let _ = writeln!(o, "AuthorizationPolicies: none (all requests allowed)");
    } else {
        let _ = writeln!(o, "AuthorizationPolicies:");
        for a in &r.authorization_policies {
            let _ = writeln!(
                o,
                "   {}: {}, {} rule{} ({})",
                a.policy.display(),
                a.action,
                a.rules,
                if a.rules == 1 { "" } else { "s" },
                a.scope
            );
        }
    }
    warnings_text(&mut o, &r.warnings);
    o
}

fn service_text(r: &model::ServiceReport) -> String {
    let mut o = String::new();
    service_section(&mut o, &r.service, false);
    let _ = writeln!(o, "{RULE}");
    if !r.endpoints.is_empty() {
        let _ = writeln!(o, "Endpoints: {}", r.endpoints.join("; "));
    }
    if r.workloads.is_empty() && r.endpoints.is_empty() {
        let _ = writeln!(
            o,
            "No workloads: the selector picks no Pod or WorkloadEntry."
        );
    } else if !r.workloads.is_empty() {
        let _ = writeln!(o, "Workloads:");
        for w in &r.workloads {
            let subsets = if w.subsets.is_empty() {
                String::new()
            } else {
                format!(", subsets {}", w.subsets.join(","))
            };
            let addr = w
                .address
                .as_ref()
                .map(|a| format!(" {a}"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "   {}{addr} ({}), mTLS {}{subsets}",
                w.workload.display(),
                labels(&w.labels),
                w.mtls
            );
        }
    }
    warnings_text(&mut o, &r.warnings);
    o
}

fn service_section(o: &mut String, s: &ServiceUse, for_workload: bool) {
    let svc = &s.service;
    let _ = writeln!(
        o,
        "{}: {}.{} ({})",
        svc.kind, svc.name, svc.namespace, svc.origin
    );
    let _ = writeln!(o, "   Hosts: {}", s.hosts.join(", "));
    for p in &s.ports {
        let name = if p.name.is_empty() {
            String::new()
        } else {
            format!("{} ", p.name)
        };
        let _ = writeln!(
            o,
            "   Port: {name}{}/{} targets workload port {}",
            p.port, p.protocol, p.target_port
        );
    }
    for dr in &s.destination_rules {
        let _ = writeln!(
            o,
            "DestinationRule: {} for {:?} ({})",
            dr.rule.display(),
            dr.host,
            dr.rule.origin
        );
        if for_workload {
            if !dr.matching_subsets.is_empty() || !dr.other_subsets.is_empty() {
                let _ = writeln!(o, "   Matching subsets: {}", or_none(&dr.matching_subsets));
                if !dr.other_subsets.is_empty() {
                    let _ = writeln!(
                        o,
                        "      (Non-matching subsets {})",
                        dr.other_subsets.join(",")
                    );
                }
            }
        } else if !dr.matching_subsets.is_empty() {
            let _ = writeln!(o, "   Subsets: {}", dr.matching_subsets.join(", "));
        }
        if dr.traffic_policy.is_empty() {
            let _ = writeln!(o, "   No traffic policy");
        } else {
            let _ = writeln!(o, "   Traffic policy: {}", dr.traffic_policy.join(", "));
        }
    }
    if s.destination_rules.is_empty() {
        let _ = writeln!(o, "DestinationRule: none");
    }
    for vs in &s.virtual_services {
        let _ = writeln!(
            o,
            "VirtualService: {} (hosts {}; gateways {}) ({})",
            vs.virtual_service.display(),
            vs.hosts.join(","),
            vs.gateways.join(","),
            vs.virtual_service.origin
        );
        for route in &vs.routes {
            let reach = if for_workload && !route.reaches_workload {
                "  (not to this workload)"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "   {}: when {} -> {}{reach}",
                route.route,
                route.when,
                route.destinations.join(", ")
            );
        }
    }
    if s.virtual_services.is_empty() {
        let _ = writeln!(
            o,
            "VirtualService: none (default routing: every endpoint, round robin)"
        );
    }
    for g in &s.exposed_on {
        let _ = writeln!(
            o,
            "Exposed on: {} ({}){}",
            g.gateway.display(),
            g.servers.join("; "),
            g.via
                .as_ref()
                .map(|v| format!(" via {v}"))
                .unwrap_or_default()
        );
    }
}

fn warnings_text(o: &mut String, warnings: &[output::MessageRecord]) {
    if warnings.is_empty() {
        return;
    }
    let _ = writeln!(o, "{RULE}\nAnalyzer messages:");
    for w in warnings {
        let reference = if w.reference.is_empty() {
            String::new()
        } else {
            format!(" {}", w.reference)
        };
        let _ = writeln!(
            o,
            "   {} [{}] ({}{reference}) {}",
            w.level, w.code, w.origin, w.message
        );
    }
}

fn labels(l: &std::collections::BTreeMap<String, String>) -> String {
    if l.is_empty() {
        "(none)".to_owned()
    } else {
        mesh_core::analysis::json::selector_text(l)
    }
}

fn or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".to_owned()
    } else {
        v.join(",")
    }
}
