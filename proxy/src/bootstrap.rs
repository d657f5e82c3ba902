//! The Envoy bootstrap for one workload's sidecar.
//!
//! This module owns the identity a proxy presents to meshd (node id
//! `sidecar~IP~NAME.NS~NS.svc.cluster.local` and the node metadata meshd reads:
//! `NAMESPACE`, `LABELS`, `SERVICE_ACCOUNT`, `WORKLOAD_NAME`, `LOCAL_MODE`) and the static
//! part of Envoy's configuration: ADS over gRPC to meshd through the `xds-grpc` cluster,
//! clusters and listeners from ADS, and the admin listener. meshd's address is an
//! [`XdsAddress`]: `IP:PORT`, or `HOST:PORT` (in a cluster, meshd's Service name) which the
//! bootstrap reaches through a STRICT_DNS cluster and the native engine resolves on every
//! connection attempt.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use mesh_core::xds::{ProxyInfo, ProxyKind};
use serde_json::{Value, json};

/// The name of the static cluster that reaches meshd.
pub const XDS_CLUSTER: &str = "xds-grpc";

/// The proxy admin port (DESIGN.md).
pub const DEFAULT_ADMIN_PORT: u16 = 15000;

/// Why a bootstrap cannot be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootstrapError {
    #[error("workload {0:?} is not NAMESPACE/NAME")]
    Workload(String),
    #[error("label {0:?} is not KEY=VALUE")]
    Label(String),
    #[error("xDS address {0:?} is not IP:PORT or HOST:PORT")]
    XdsAddress(String),
}

/// meshd's xDS address: an IP and port, or a host name and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XdsAddress {
    Ip(SocketAddr),
    Name { host: String, port: u16 },
}

impl XdsAddress {
    /// The port meshd's xDS server listens on.
    pub fn port(&self) -> u16 {
        match self {
            XdsAddress::Ip(a) => a.port(),
            XdsAddress::Name { port, .. } => *port,
        }
    }

    /// The same host with another port (meshd's CA beside its xDS server).
    pub fn with_port(&self, port: u16) -> XdsAddress {
        match self {
            XdsAddress::Ip(a) => XdsAddress::Ip(SocketAddr::new(a.ip(), port)),
            XdsAddress::Name { host, .. } => XdsAddress::Name {
                host: host.clone(),
                port,
            },
        }
    }

    /// The addresses to try, in the resolver's order (a name is looked up on each call,
    /// so a reconnect follows a Service that moved).
    pub async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            XdsAddress::Ip(a) => Ok(vec![*a]),
            XdsAddress::Name { host, port } => {
                let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), *port))
                    .await?
                    .collect();
                if found.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{host} has no addresses"),
                    ));
                }
                Ok(found)
            }
        }
    }

    /// As [`XdsAddress::resolve`], blocking (for start-up, outside a runtime).
    pub fn resolve_blocking(&self) -> std::io::Result<Vec<SocketAddr>> {
        use std::net::ToSocketAddrs;
        match self {
            XdsAddress::Ip(a) => Ok(vec![*a]),
            XdsAddress::Name { host, port } => {
                let found: Vec<SocketAddr> = (host.as_str(), *port).to_socket_addrs()?.collect();
                if found.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{host} has no addresses"),
                    ));
                }
                Ok(found)
            }
        }
    }
}

impl From<SocketAddr> for XdsAddress {
    fn from(a: SocketAddr) -> Self {
        XdsAddress::Ip(a)
    }
}

/// A DNS name: dot-separated labels of letters, digits and inner hyphens, not all digits
/// (so a malformed IPv4 address is not taken for a name).
fn is_host_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(label_ok)
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl std::str::FromStr for XdsAddress {
    type Err = BootstrapError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(XdsAddress::Ip(a));
        }
        let bad = || BootstrapError::XdsAddress(s.to_owned());
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if !is_host_name(host) {
            return Err(bad());
        }
        Ok(XdsAddress::Name {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl std::fmt::Display for XdsAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XdsAddress::Ip(a) => write!(f, "{a}"),
            XdsAddress::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// A workload as `NAMESPACE/NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
}

impl std::str::FromStr for Workload {
    type Err = BootstrapError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name))
                if !ns.is_empty()
                    && !name.is_empty()
                    && !name.contains('/')
                    && !ns.contains('.') =>
            {
                Ok(Workload {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(BootstrapError::Workload(s.to_owned())),
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Parses `KEY=VALUE`.
pub fn parse_label(s: &str) -> Result<(String, String), BootstrapError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(BootstrapError::Label(s.to_owned())),
    }
}

/// Everything a bootstrap depends on.
#[derive(Clone, Debug)]
pub struct BootstrapOptions {
    pub kind: ProxyKind,
    pub xds_address: XdsAddress,
    pub workload: Workload,
    pub ip: IpAddr,
    pub admin_port: u16,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
}

impl BootstrapOptions {
    /// The node id meshd parses (`sidecar~IP~NAME.NS~NS.svc.cluster.local`).
    pub fn node_id(&self) -> String {
        ProxyInfo::node_id(
            self.kind,
            self.ip,
            &self.workload.name,
            &self.workload.namespace,
        )
    }

    /// Local mode: the proxy runs beside its app on a loopback address.
    pub fn local_mode(&self) -> bool {
        self.ip.is_loopback()
    }

    /// The admin listener's address (`IP:admin_port`).
    pub fn admin_address(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.admin_port)
    }
}

/// Istio's stats tag regex for cluster names (its bootstrap's `cluster_name`): the name
/// up to the dot before the stat, with a `.NS.svc.cluster.local` host kept whole.
pub const CLUSTER_NAME_TAG: &str = r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)";

/// The bootstrap as Envoy's JSON.
pub fn bootstrap(opts: &BootstrapOptions) -> Value {
    let mut metadata = serde_json::Map::new();
    metadata.insert("NAMESPACE".into(), json!(opts.workload.namespace));
    metadata.insert("LABELS".into(), json!(opts.labels));
    metadata.insert("SERVICE_ACCOUNT".into(), json!(opts.service_account));
    metadata.insert("WORKLOAD_NAME".into(), json!(opts.workload.name));
    if opts.local_mode() {
        metadata.insert("LOCAL_MODE".into(), json!("true"));
    }
    let ads = json!({"ads": {}, "resource_api_version": "V3"});
    let mut xds_cluster = json!({
        "name": XDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {"interval": "30s", "timeout": "10s"},
                    },
                },
            },
        },
        "upstream_connection_options": {
            "tcp_keepalive": {"keepalive_time": 300},
        },
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": xds_socket_address(&opts.xds_address)}}]}],
        },
    });
    // A name (meshd's Service): Envoy resolves it and follows its changes, preferring IPv4
    // (a name with both families would otherwise also get hosts meshd may not listen on).
    if let XdsAddress::Name { .. } = opts.xds_address {
        xds_cluster["type"] = json!("STRICT_DNS");
        xds_cluster["dns_lookup_family"] = json!("V4_PREFERRED");
        xds_cluster["respect_dns_ttl"] = json!(true);
    }
    let mut out = json!({
        "node": {
            "id": opts.node_id(),
            "cluster": format!("{}.{}", opts.workload.name, opts.workload.namespace),
            "metadata": metadata,
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "cds_config": ads,
            "lds_config": ads,
        },
        "static_resources": {
            "clusters": [xds_cluster],
        },
        "admin": {
            "address": socket_address(opts.admin_address()),
        },
        // Istio's tag for cluster names: Envoy's default one ends the name at its first
        // dot, this one keeps `outbound|9080|v1|reviews.shop.svc.cluster.local` whole (as
        // the `cluster_name` label of the Prometheus output; `meshctl stat` reads it).
        "stats_config": {
            "stats_tags": [{
                "tag_name": "cluster_name",
                "regex": CLUSTER_NAME_TAG,
            }],
        },
    });
    // Local mode: connections leave from the workload's own loopback address, so the
    // server side sees which workload called (AuthorizationPolicy `ipBlocks`, `source.ip`)
    // rather than 127.0.0.1 for everyone.
    if opts.local_mode() {
        out["cluster_manager"] = json!({
            "upstream_bind_config": {
                "source_address": {"address": opts.ip.to_string(), "port_value": 0},
            },
        });
    }
    out
}

/// Node metadata saying the proxy holds a workload certificate and serves it over SDS
/// (`default`, `ROOTCA`), so meshd may give it mTLS listeners and clusters.
pub const MTLS_METADATA: &str = "MESH_MTLS";

/// Adds SDS to a bootstrap: the `sds-grpc` cluster on the Unix socket `path` (HTTP/2) and
/// the [`MTLS_METADATA`] node metadata.
pub fn add_sds(out: &mut Value, path: &std::path::Path) {
    out["node"]["metadata"][MTLS_METADATA] = json!("true");
    let cluster = json!({
        "name": crate::sds::SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            },
        },
        "load_assignment": {
            "cluster_name": crate::sds::SDS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": path.display().to_string()}}}}]}],
        },
    });
    if let Some(clusters) = out["static_resources"]["clusters"].as_array_mut() {
        clusters.push(cluster);
    }
}

fn xds_socket_address(addr: &XdsAddress) -> Value {
    match addr {
        XdsAddress::Ip(a) => socket_address(*a),
        XdsAddress::Name { host, port } => {
            json!({"socket_address": {"address": host, "port_value": port}})
        }
    }
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(ip: &str) -> BootstrapOptions {
        BootstrapOptions {
            kind: ProxyKind::Sidecar,
            xds_address: "127.0.0.1:15010".parse().unwrap(),
            workload: "shop/catalog-v1".parse().unwrap(),
            ip: ip.parse().unwrap(),
            admin_port: DEFAULT_ADMIN_PORT,
            service_account: "catalog".into(),
            labels: [("app".to_owned(), "catalog".to_owned())].into(),
        }
    }

    #[test]
    fn node_identity() {
        let b = bootstrap(&opts("127.0.0.2"));
        assert_eq!(
            b["node"]["id"],
            "sidecar~127.0.0.2~catalog-v1.shop~shop.svc.cluster.local"
        );
        let md = &b["node"]["metadata"];
        assert_eq!(md["NAMESPACE"], "shop");
        assert_eq!(md["WORKLOAD_NAME"], "catalog-v1");
        assert_eq!(md["SERVICE_ACCOUNT"], "catalog");
        assert_eq!(md["LABELS"]["app"], "catalog");
        assert_eq!(md["LOCAL_MODE"], "true");
        assert_eq!(
            b["admin"]["address"]["socket_address"]["address"],
            "127.0.0.2"
        );
        assert_eq!(b["admin"]["address"]["socket_address"]["port_value"], 15000);
    }

    #[test]
    fn node_id_round_trips_through_the_contract() {
        let o = opts("10.1.2.3");
        let info = ProxyInfo::from_node_id(&o.node_id()).unwrap();
        assert_eq!(info.namespace, "shop");
        assert_eq!(info.workload, "catalog-v1");
        assert!(!info.local_mode);
        assert!(
            bootstrap(&o)["node"]["metadata"]
                .get("LOCAL_MODE")
                .is_none()
        );
    }

    #[test]
    fn xds_cluster_points_at_meshd() {
        let b = bootstrap(&opts("127.0.0.2"));
        let c = &b["static_resources"]["clusters"][0];
        assert_eq!(c["name"], XDS_CLUSTER);
        assert_eq!(c["type"], "STATIC");
        let ep = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
        assert_eq!(ep["address"]["socket_address"]["port_value"], 15010);
        assert_eq!(
            b["dynamic_resources"]["ads_config"]["grpc_services"][0]["envoy_grpc"]["cluster_name"],
            XDS_CLUSTER
        );
    }

    #[test]
    fn xds_address_is_an_ip_or_a_host_name() {
        assert_eq!(
            "127.0.0.1:15010".parse::<XdsAddress>().unwrap(),
            XdsAddress::Ip("127.0.0.1:15010".parse().unwrap())
        );
        assert_eq!(
            "[::1]:15010".parse::<XdsAddress>().unwrap(),
            XdsAddress::Ip("[::1]:15010".parse().unwrap())
        );
        let name: XdsAddress = "meshd.istio-system.svc:15010".parse().unwrap();
        assert_eq!(
            name,
            XdsAddress::Name {
                host: "meshd.istio-system.svc".into(),
                port: 15010
            }
        );
        assert_eq!(name.to_string(), "meshd.istio-system.svc:15010");
        assert_eq!(
            name.with_port(15012).to_string(),
            "meshd.istio-system.svc:15012"
        );
        assert_eq!(
            "LocalHost:1".parse::<XdsAddress>().unwrap().to_string(),
            "localhost:1"
        );
        for bad in [
            "meshd",
            "meshd:",
            ":15010",
            "meshd:99999",
            "meshd:x",
            "-meshd:1",
            "me_shd:1",
            "a..b:1",
            "1.2.3:15010",
            "::1:15010",
            "http://meshd:15010",
        ] {
            assert!(bad.parse::<XdsAddress>().is_err(), "{bad} accepted");
        }
    }

    #[tokio::test]
    async fn a_name_resolves_and_an_ip_does_not_need_to() {
        let ip: XdsAddress = "10.9.8.7:15010".parse().unwrap();
        assert_eq!(
            ip.resolve().await.unwrap(),
            vec!["10.9.8.7:15010".parse().unwrap()]
        );
        let name: XdsAddress = "localhost:15010".parse().unwrap();
        let found = name.resolve().await.unwrap();
        assert!(
            found
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 15010),
            "{found:?}"
        );
        assert!(!found.is_empty());
        assert_eq!(name.resolve_blocking().unwrap().len(), found.len());
        let missing: XdsAddress = "no-such-host.invalid:15010".parse().unwrap();
        assert!(missing.resolve().await.is_err());
    }

    #[test]
    fn a_host_name_gets_a_strict_dns_cluster() {
        let mut o = opts("10.1.2.3");
        o.xds_address = "meshd.istio-system.svc:15010".parse().unwrap();
        let b = bootstrap(&o);
        let c = &b["static_resources"]["clusters"][0];
        assert_eq!(c["name"], XDS_CLUSTER);
        assert_eq!(c["type"], "STRICT_DNS");
        assert_eq!(c["dns_lookup_family"], "V4_PREFERRED");
        assert_eq!(c["respect_dns_ttl"], true);
        let sa = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
        assert_eq!(sa["address"], "meshd.istio-system.svc");
        assert_eq!(sa["port_value"], 15010);
        // The IP form stays STATIC with no DNS settings.
        let c = &bootstrap(&opts("10.1.2.3"))["static_resources"]["clusters"][0];
        assert_eq!(c["type"], "STATIC");
        assert!(c.get("dns_lookup_family").is_none());
        assert_eq!(
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
                ["address"],
            "127.0.0.1"
        );
    }

    #[test]
    fn local_mode_connects_from_the_workload_address() {
        let b = bootstrap(&opts("127.0.0.2"));
        assert_eq!(
            b["cluster_manager"]["upstream_bind_config"]["source_address"]["address"],
            "127.0.0.2"
        );
        let b = bootstrap(&opts("10.0.0.2"));
        assert!(b.get("cluster_manager").is_none());
    }

    #[test]
    fn sds_adds_the_pipe_cluster_and_the_mtls_flag() {
        let mut b = bootstrap(&opts("127.0.0.9"));
        add_sds(&mut b, std::path::Path::new("/tmp/x/sds.sock"));
        assert_eq!(b["node"]["metadata"][MTLS_METADATA], "true");
        let sds = &b["static_resources"]["clusters"][1];
        assert_eq!(sds["name"], "sds-grpc");
        assert_eq!(
            sds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]
                ["path"],
            "/tmp/x/sds.sock"
        );
    }

    #[test]
    fn cluster_names_keep_their_service_host_in_stats() {
        let b = bootstrap(&opts("127.0.0.2"));
        let tag = &b["stats_config"]["stats_tags"][0];
        assert_eq!(tag["tag_name"], "cluster_name");
        assert_eq!(tag["regex"], CLUSTER_NAME_TAG);
    }

    #[test]
    fn bad_inputs() {
        assert!("noslash".parse::<Workload>().is_err());
        assert!("/x".parse::<Workload>().is_err());
        assert!("a/b/c".parse::<Workload>().is_err());
        assert_eq!(parse_label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_label("=x").is_err());
        assert!(parse_label("x").is_err());
    }
}
