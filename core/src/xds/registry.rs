//! The service registry: every service the mesh knows (Kubernetes Services, ServiceEntries)
//! with its ports and the endpoints that back it (Pods, WorkloadEntries, ServiceEntry
//! endpoints).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

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
    /// `appProtocol`, or the ServiceEntry port's protocol).
    pub protocol: String,
    /// The workload port behind it (Kubernetes targetPort when numeric).
    pub target_port: u16,
}

/// One endpoint of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// An IP address, or a DNS name for DNS resolution.
    pub address: String,
    /// Service port name -> endpoint port.
    pub ports: BTreeMap<String, u16>,
    pub labels: BTreeMap<String, String>,
    pub namespace: String,
    pub workload: String,
    pub service_account: String,
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
}

/// All services, sorted by hostname.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Registry {
    pub services: Vec<Service>,
}
