//! Which VirtualServices bind to a Gateway's servers, and why the others do not: the rules
//! the gateway translation ([`super::gateway`]) applies, said in words for `meshctl
//! describe gateway`. A VirtualService binds to a server when it is exported to the
//! Gateway's namespace, its `gateways` name the Gateway (`NAME` in its own namespace, or
//! `NS/NAME`), and one of its hosts and one of the server's hosts have a host in common,
//! the server host's namespace part (`NS/`, `./`, `*/`) admitting the VirtualService's
//! namespace. VirtualServices that fail only some of these are listed with the reason;
//! ones that share nothing with the Gateway are left out.

use std::collections::BTreeMap;

use serde::Serialize;

use super::registry::{mesh_default_export, resolve_export_to};
use super::scope::vs_gateways;
use super::{Snapshot, Typed, gateway};
use crate::host;
use crate::model::networking::{Gateway, VirtualService};

/// One server of the Gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    pub port: u32,
    pub protocol: String,
    pub name: String,
    pub hosts: Vec<String>,
    /// The server's TLS mode, when it has TLS settings.
    pub tls: Option<String>,
}

/// Where a VirtualService binds: a server port and the host it serves there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bound {
    pub port: u32,
    pub host: String,
}

/// One VirtualService against the Gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VsBinding {
    /// `NS/NAME`.
    pub virtual_service: String,
    pub binds: bool,
    /// Where it binds.
    pub bound: Vec<Bound>,
    /// Why it does not bind (empty when it does).
    pub reason: String,
}

/// A Gateway's servers and the VirtualServices that bind, or nearly do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayBindings {
    /// `NS/NAME`.
    pub gateway: String,
    pub selector: BTreeMap<String, String>,
    pub servers: Vec<ServerView>,
    pub virtual_services: Vec<VsBinding>,
}

/// The bindings of Gateway `ns/name`, or `None` when the snapshot has no such Gateway.
pub fn gateway_bindings(snap: &Snapshot, ns: &str, name: &str) -> Option<GatewayBindings> {
    let gw = snap
        .gateways
        .iter()
        .find(|g| g.namespace() == ns && g.name() == name)?;
    let full = format!("{ns}/{name}");
    let servers: Vec<ServerView> = gw
        .spec
        .servers
        .iter()
        .map(|s| ServerView {
            port: s.port.as_ref().map_or(0, |p| p.number),
            protocol: s
                .port
                .as_ref()
                .map(|p| p.protocol.to_ascii_uppercase())
                .unwrap_or_default(),
            name: s.port.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
            hosts: s.hosts.clone(),
            tls: s.tls.as_ref().map(|t| t.mode.to_string()),
        })
        .collect();
    let default_export = mesh_default_export(&snap.mesh, "defaultVirtualServiceExportTo");
    let mut out = Vec::new();
    for vs in &snap.virtual_services {
        if let Some(b) = explain(gw, &full, vs, &default_export) {
            out.push(b);
        }
    }
    out.sort_by(|a, b| {
        b.binds
            .cmp(&a.binds)
            .then(a.virtual_service.cmp(&b.virtual_service))
    });
    Some(GatewayBindings {
        gateway: full,
        selector: gw.spec.selector.clone(),
        servers,
        virtual_services: out,
    })
}

/// `(server port, host)` pairs a VirtualService's hosts share with the servers, with or
/// without the server hosts' namespace restriction.
fn overlaps(
    gw: &Typed<Gateway>,
    vs: &Typed<VirtualService>,
    mind_namespace: bool,
) -> Vec<(u32, String)> {
    let mut out: Vec<(u32, String)> = Vec::new();
    for s in &gw.spec.servers {
        let port = s.port.as_ref().map_or(0, |p| p.number);
        for vh in &vs.spec.hosts {
            let vh = host::fqdn(vh, vs.namespace());
            for sh in &s.hosts {
                let sh = if mind_namespace {
                    sh.clone()
                } else {
                    format!("*/{}", host::split_namespaced(sh).1)
                };
                if let Some(h) = gateway::common_host(&sh, gw.namespace(), vs.namespace(), &vh)
                    && !out.contains(&(port, h.clone()))
                {
                    out.push((port, h));
                }
            }
        }
    }
    out
}

fn explain(
    gw: &Typed<Gateway>,
    full: &str,
    vs: &Typed<VirtualService>,
    default_export: &[String],
) -> Option<VsBinding> {
    let names = vs_gateways(vs);
    let names_it = names.iter().any(|g| g == full);
    let bound = overlaps(gw, vs, true);
    let loose = overlaps(gw, vs, false);
    // Nothing in common with this Gateway: not worth a line.
    if !names_it && loose.is_empty() {
        return None;
    }
    let exported = resolve_export_to(&vs.spec.export_to, vs.namespace(), default_export);
    let visible = exported.iter().any(|e| e == "*" || e == gw.namespace());
    let hosts = || vs.spec.hosts.join(", ");
    let reason = if !names_it {
        if vs.spec.gateways.is_empty() {
            format!("its gateways are empty, so it applies to sidecars only (mesh), not to {full}")
        } else {
            format!(
                "its gateways [{}] do not name {full}",
                vs.spec.gateways.join(", ")
            )
        }
    } else if !visible {
        format!(
            "it is exported to [{}], not to the Gateway's namespace {}",
            exported.join(", "),
            gw.namespace()
        )
    } else if bound.is_empty() && !loose.is_empty() {
        format!(
            "its hosts [{}] match server hosts only in name: their namespace part does not \
             admit VirtualServices of namespace {}",
            hosts(),
            vs.namespace()
        )
    } else if bound.is_empty() {
        format!("none of its hosts [{}] match a server host", hosts())
    } else {
        String::new()
    };
    let binds = reason.is_empty();
    Some(VsBinding {
        virtual_service: format!("{}/{}", vs.namespace(), vs.name()),
        binds,
        bound: if binds {
            bound
                .into_iter()
                .map(|(port, host)| Bound { port, host })
                .collect()
        } else {
            Vec::new()
        },
        reason,
    })
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::analysis::{MeshConfig, Store};

    fn snap(yaml: &str) -> Snapshot {
        let loaded = crate::source::load_bytes("mesh.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        Snapshot::build(&Store::new(loaded.resources), &MeshConfig::default())
    }

    const GW: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [\"shop/*.example.com\", \"./admin.example.com\"]
---
";

    fn vs(name: &str, ns: &str, hosts: &str, gateways: &str, extra: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: {hosts}
  gateways: {gateways}
  {extra}
  http: [{{route: [{{destination: {{host: backend.{ns}.svc.cluster.local}}}}]}}]
---
"
        )
    }

    #[test]
    fn bindings_and_the_reasons_for_near_misses() {
        let yaml = [
            GW,
            &vs("store", "shop", "[store.example.com]", "[edge/web]", ""),
            &vs("admin", "edge", "[admin.example.com]", "[web]", ""),
            &vs("wrong-ns", "blog", "[blog.example.com]", "[edge/web]", ""),
            &vs("no-gw", "shop", "[cart.example.com]", "[]", ""),
            &vs("other-gw", "shop", "[pay.example.com]", "[edge/other]", ""),
            &vs(
                "hidden",
                "shop",
                "[hidden.example.com]",
                "[edge/web]",
                "exportTo: [\".\"]",
            ),
            &vs("unrelated", "shop", "[x.internal]", "[mesh]", ""),
        ]
        .concat();
        let s = snap(&yaml);
        let b = gateway_bindings(&s, "edge", "web").unwrap();
        assert_eq!(b.servers.len(), 1);
        assert_eq!(b.servers[0].hosts.len(), 2);
        let by: BTreeMap<&str, &VsBinding> = b
            .virtual_services
            .iter()
            .map(|v| (v.virtual_service.as_str(), v))
            .collect();
        assert!(by["shop/store"].binds, "{:?}", by["shop/store"]);
        assert_eq!(
            by["shop/store"].bound,
            [Bound {
                port: 80,
                host: "store.example.com".to_owned()
            }]
        );
        assert!(by["edge/admin"].binds, "{:?}", by["edge/admin"]);
        assert!(
            by["blog/wrong-ns"]
                .reason
                .contains("namespace part does not admit"),
            "{:?}",
            by["blog/wrong-ns"]
        );
        assert!(
            by["shop/no-gw"].reason.contains("sidecars only (mesh)"),
            "{:?}",
            by["shop/no-gw"]
        );
        assert!(
            by["shop/other-gw"]
                .reason
                .contains("gateways [edge/other] do not name edge/web"),
            "{:?}",
            by["shop/other-gw"]
        );
        assert!(
            by["shop/hidden"].reason.contains("exported to [shop]"),
            "{:?}",
            by["shop/hidden"]
        );
        assert!(!by.contains_key("shop/unrelated"));
        // Binding ones come first.
        assert!(b.virtual_services[0].binds && b.virtual_services[1].binds);
        assert!(gateway_bindings(&s, "edge", "nope").is_none());

        // The translation agrees: the gateway's routes serve exactly the bound hosts.
        let mut p = crate::xds::ProxyInfo::from_node_id(&crate::xds::ProxyInfo::node_id(
            crate::xds::ProxyKind::Gateway,
            "127.0.0.9".parse().unwrap(),
            "ingress",
            "edge",
        ))
        .unwrap();
        p.labels = BTreeMap::from([("istio".to_owned(), "ingressgateway".to_owned())]);
        let cfg = crate::xds::generate(&s, &p);
        let mut served: Vec<String> = cfg
            .routes
            .iter()
            .flat_map(|r| &r.virtual_hosts)
            .flat_map(|vh| &vh.domains)
            .filter(|d| d.ends_with(".example.com"))
            .cloned()
            .collect();
        served.sort();
        served.dedup();
        assert_eq!(served, ["admin.example.com", "store.example.com"]);
    }
}
