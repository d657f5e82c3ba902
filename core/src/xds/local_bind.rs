//! Local mode: which clusters keep the workload's own source address.
//!
//! mesh-proxy's local-mode bootstrap binds every upstream connection to the workload's
//! loopback address (`cluster_manager.upstream_bind_config`), so a server sees which
//! workload called (AuthorizationPolicy `ipBlocks`, `source.ip`). A connection from a
//! loopback address cannot leave the machine, though: this module gives every cluster
//! that may reach a non-loopback address (the dynamic forward proxy behind
//! `PassthroughCluster`, original-destination clusters, DNS names other than `localhost`,
//! endpoints outside 127.0.0.0/8 and ::1) its own bind to the unspecified address, which
//! lets the kernel pick the source as usual. The override is the same for every proxy, so
//! identical clusters stay identical across proxies.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, BindConfig, SocketAddress, address, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};

use super::ProxyConfig;

/// Whether an endpoint address stays on this machine.
fn on_host(a: &Address) -> bool {
    match &a.address {
        Some(address::Address::SocketAddress(s)) => match s.address.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => s.address == "localhost",
        },
        // Unix sockets and internal addresses never leave the machine.
        _ => true,
    }
}

fn all_on_host(cla: &ClusterLoadAssignment) -> bool {
    cla.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .all(|e| match &e.host_identifier {
            Some(lb_endpoint::HostIdentifier::Endpoint(ep)) => {
                ep.address.as_ref().is_none_or(on_host)
            }
            _ => true,
        })
}

fn may_leave_host(c: &Cluster, endpoints: &[ClusterLoadAssignment]) -> bool {
    match &c.cluster_discovery_type {
        Some(cluster::ClusterDiscoveryType::ClusterType(_)) => return true,
        Some(cluster::ClusterDiscoveryType::Type(t))
            if *t == cluster::DiscoveryType::OriginalDst as i32 =>
        {
            return true;
        }
        _ => {}
    }
    if let Some(cla) = &c.load_assignment {
        return !all_on_host(cla);
    }
    endpoints
        .iter()
        .find(|e| e.cluster_name == c.name)
        .is_some_and(|cla| !all_on_host(cla))
}

/// Gives the clusters that may leave the machine a bind to the unspecified address (see
/// the module docs). Clusters that set their own bind keep it.
pub(super) fn unbind_off_host_clusters(out: &mut ProxyConfig) {
    let ProxyConfig {
        clusters,
        endpoints,
        ..
    } = out;
    for c in clusters.iter_mut() {
        if c.upstream_bind_config.is_none() && may_leave_host(c, endpoints) {
            c.upstream_bind_config = Some(BindConfig {
                source_address: Some(SocketAddress {
                    address: "0.0.0.0".to_owned(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(0)),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
}
