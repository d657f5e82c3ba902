//! `meshctl get services|workloads`: the effective service registry, as meshd builds it for
//! the data plane. Kubernetes Services and ServiceEntries both become services (Istio's
//! platform adapters turn every registry into ServiceEntries that no `kubectl get` shows);
//! Pods with an IP and WorkloadEntries become workloads, and the endpoints of a service are
//! the workloads it selects (a Deployment alone has no Pod IPs, so no endpoints). Read from files (`-f`, analyze's
//! loader) or from a running meshd (`--controlplane`, its loaded objects); the registry is
//! built with meshd's own code (`mesh_core::xds::Snapshot`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use mesh_core::analysis::Store;
use mesh_core::xds::Snapshot;
use mesh_core::xds::registry::{Registry, Resolution, Service, Workload};
use serde::Serialize;

use crate::args::DataFormat;
use crate::exit;
use crate::proxy_config::table::Table;

pub const EXAMPLES: &str = "Examples:
  # Every service the mesh knows, from Kubernetes Services and ServiceEntries alike
  meshctl get services -f testdata/bookinfo

  # One host, with its endpoints, as JSON
  meshctl get services reviews.bookinfo.svc.cluster.local -f testdata/bookinfo -o json

  # The workloads of a namespace, from a running meshd
  meshctl get workloads -n bookinfo --controlplane http://127.0.0.1:15014";

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(subcommand)]
    pub kind: GetKind,
}

#[derive(Debug, Subcommand)]
pub enum GetKind {
    /// Services: host, namespace, the object it comes from, ports, resolution, location,
    /// endpoints.
    #[command(visible_aliases = ["service", "svc"])]
    Services(GetTarget),
    /// Workloads (Pods with an IP, WorkloadEntries): name, namespace, kind, address,
    /// service account, labels.
    #[command(visible_aliases = ["workload", "wl"])]
    Workloads(GetTarget),
}

#[derive(Debug, Args)]
pub struct GetTarget {
    /// Only this one: a service's host (or its short name), a workload's name.
    pub name: Option<String>,

    /// Only this namespace.
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Read the config from files or directories (`-` reads stdin) instead of meshd.
    /// Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<PathBuf>,

    /// meshd's debug address, where the config is read from when no files are given.
    #[arg(long, value_name = "URL", default_value = crate::describe::DEFAULT_CONTROLPLANE)]
    pub controlplane: String,

    /// Output format (default: a table).
    #[arg(short, long, value_enum)]
    pub output: Option<DataFormat>,
}

/// Runs the command; returns the exit code.
pub fn run(args: &GetArgs) -> u8 {
    let t = match &args.kind {
        GetKind::Services(t) | GetKind::Workloads(t) => t,
    };
    // meshd's store: the objects as loaded, without analyze's assumed Pods and gateway.
    let registry = match crate::describe::load_resources(&t.files, &t.controlplane) {
        Ok((resources, mesh)) => Snapshot::build(&Store::new(resources), &mesh).registry,
        Err(e) => {
            eprintln!("Error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let rendered = match &args.kind {
        GetKind::Services(t) => {
            let rows = services(&registry, t);
            found(t, "service", rows.len())
                .map(|()| crate::describe::render(t.output, &rows, || services_table(&rows)))
        }
        GetKind::Workloads(t) => {
            let rows = workloads(&registry, t);
            found(t, "workload", rows.len())
                .map(|()| crate::describe::render(t.output, &rows, || workloads_table(&rows)))
        }
    };
    crate::describe::emit(rendered)
}

/// A named object that is not there is an error (exit 64), as `kubectl get` says; an empty
/// list is not.
fn found(t: &GetTarget, what: &str, n: usize) -> Result<(), String> {
    match (&t.name, n) {
        (Some(name), 0) => Err(format!(
            "no {what} {name:?}{}",
            t.namespace
                .as_ref()
                .map(|ns| format!(" in namespace {ns}"))
                .unwrap_or_default()
        )),
        _ => Ok(()),
    }
}

/// Whether a service is the one `name` asks for: its host, or the host's first label
/// (`reviews` for `reviews.bookinfo.svc.cluster.local`), or `NAME.NS`.
fn service_named(s: &Service, name: &str) -> bool {
    s.hostname == name
        || s.hostname.split('.').next() == Some(name)
        || format!(
            "{}.{}",
            s.hostname.split('.').next().unwrap_or(""),
            s.namespace
        ) == name
}

fn services<'r>(registry: &'r Registry, t: &GetTarget) -> Vec<ServiceRow<'r>> {
    registry
        .services
        .iter()
        .filter(|s| t.namespace.as_ref().is_none_or(|ns| &s.namespace == ns))
        .filter(|s| t.name.as_ref().is_none_or(|n| service_named(s, n)))
        .map(ServiceRow::from)
        .collect()
}

fn workloads<'r>(registry: &'r Registry, t: &GetTarget) -> Vec<&'r Workload> {
    registry
        .workloads
        .iter()
        .filter(|w| t.namespace.as_ref().is_none_or(|ns| &w.namespace == ns))
        .filter(|w| t.name.as_ref().is_none_or(|n| &w.name == n))
        .collect()
}

/// A service as `-o json|yaml` shows it: the registry's service in meshd's
/// `/debug/registryz` shape, plus its location as Istio spells it.
#[derive(Debug, Serialize)]
struct ServiceRow<'r> {
    #[serde(flatten)]
    service: &'r Service,
    location: &'static str,
}

/// A resolution as Istio spells it (the table's column).
fn resolution_name(r: Resolution) -> &'static str {
    match r {
        Resolution::Static => "STATIC",
        Resolution::Dns => "DNS",
        Resolution::None => "NONE",
    }
}

impl<'r> From<&'r Service> for ServiceRow<'r> {
    fn from(service: &'r Service) -> ServiceRow<'r> {
        ServiceRow {
            service,
            location: if service.mesh_external {
                "MESH_EXTERNAL"
            } else {
                "MESH_INTERNAL"
            },
        }
    }
}

fn services_table(rows: &[ServiceRow<'_>]) -> String {
    let mut t = Table::new(
        &[
            "HOST",
            "NAMESPACE",
            "FROM",
            "PORTS",
            "RESOLUTION",
            "LOCATION",
            "ENDPOINTS",
        ],
        2,
    );
    for r in rows {
        let s = r.service;
        let ports: Vec<String> = s
            .ports
            .iter()
            .map(|p| {
                let name = if p.name.is_empty() {
                    String::new()
                } else {
                    format!("{} ", p.name)
                };
                format!("{name}{}/{}", p.number, p.protocol)
            })
            .collect();
        let endpoints: Vec<String> = s.endpoints.iter().map(|e| e.address.clone()).collect();
        t.push(vec![
            s.hostname.clone(),
            s.namespace.clone(),
            s.origin.clone(),
            ports.join(", "),
            resolution_name(s.resolution).to_owned(),
            r.location.to_owned(),
            if endpoints.is_empty() {
                "-".to_owned()
            } else {
                endpoints.join(", ")
            },
        ]);
    }
    t.render()
}

fn workloads_table(rows: &[&Workload]) -> String {
    let mut t = Table::new(
        &[
            "NAME",
            "NAMESPACE",
            "KIND",
            "ADDRESS",
            "SERVICE ACCOUNT",
            "LABELS",
        ],
        2,
    );
    for w in rows {
        let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        t.push(vec![
            w.name.clone(),
            w.namespace.clone(),
            w.kind.clone(),
            if w.address.is_empty() {
                "-".to_owned()
            } else {
                w.address.clone()
            },
            w.service_account.clone(),
            labels.join(","),
        ]);
    }
    t.render()
}
