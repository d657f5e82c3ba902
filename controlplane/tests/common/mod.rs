//! Test helpers: a small hand-built translation, meshd in-process on ephemeral loopback
//! ports, a config directory, a raw HTTP client for the debug API, and Envoy discovery.
//!
//! The test translation stands in for mesh-core's until it is merged. It reads
//! ServiceEntries only: each host and port becomes an EDS cluster
//! `outbound|PORT||HOST` with its endpoints, a route config `PORT` with a virtual host for
//! the host, and a listener `0.0.0.0_PORT` (not bound, so tests never fight over ports)
//! whose HTTP connection manager takes that route config over RDS. A ServiceEntry whose
//! first host starts with `nack.` also gets a listener with an invalid address, which Envoy
//! rejects; one annotated `test.meshctl.dev/reject: REASON` is refused with that reason.
//! A `MESH_EXTERNAL` ServiceEntry's clusters get a 2 s connect timeout instead of 1 s (a
//! way for tests to modify a cluster in place).

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action,
    route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::google::protobuf::{BoolValue, Duration as PbDuration};
use envoy_types::util::pack_any;
use mesh_controlplane::source::WatchOptions;
use mesh_controlplane::{Meshd, Options, Translator};
use mesh_core::analysis::{MeshConfig, Store};
use mesh_core::xds::registry::{Endpoint, Resolution, Service, ServicePort};
use mesh_core::xds::{ProxyConfig, ProxyInfo, Registry, Rejected, Snapshot};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const REJECT_ANNOTATION: &str = "test.meshctl.dev/reject";

/// The hand-built translation described in the module docs.
pub struct TestTranslator;

impl Translator for TestTranslator {
    fn snapshot(&self, store: &Store, mesh: &MeshConfig) -> Snapshot {
        let mut rejected = Vec::new();
        let mut services = Vec::new();
        for r in store.of("networking.istio.io", "ServiceEntry") {
            if let Some(reason) = r.annotations.get(REJECT_ANNOTATION) {
                rejected.push(Rejected {
                    object: r.display_name(),
                    origin: r.origin.to_string(),
                    reason: reason.clone(),
                });
                continue;
            }
            let spec = r.spec();
            let Some(host) = spec["hosts"][0].as_str() else {
                continue;
            };
            let ports: Vec<ServicePort> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let number = u16::try_from(p["number"].as_u64()?).ok()?;
                    Some(ServicePort {
                        name: p["name"].as_str().unwrap_or("http").to_owned(),
                        number,
                        protocol: p["protocol"].as_str().unwrap_or("HTTP").to_owned(),
                        target_port: number,
                    })
                })
                .collect();
            let endpoints = spec["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    Some(Endpoint {
                        address: e["address"].as_str()?.to_owned(),
                        ports: ports
                            .iter()
                            .map(|p| {
                                let n = e["ports"][&p.name].as_u64().unwrap_or(u64::from(p.number));
                                (p.name.clone(), u16::try_from(n).unwrap_or(p.number))
                            })
                            .collect(),
                        labels: BTreeMap::new(),
                        namespace: r.ns().to_owned(),
                        workload: String::new(),
                        service_account: "default".into(),
                    })
                })
                .collect();
            services.push(Service {
                hostname: host.to_owned(),
                namespace: r.ns().to_owned(),
                ports,
                endpoints,
                resolution: Resolution::Static,
                mesh_external: spec["location"] == "MESH_EXTERNAL",
                export_to: vec!["*".into()],
                addresses: Vec::new(),
                origin: format!("ServiceEntry {}/{}", r.ns(), r.name),
            });
        }
        services.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        // The real translation adds fields to Snapshot; this keeps compiling when it does.
        #[allow(clippy::needless_update)]
        Snapshot {
            registry: Registry {
                services,
                ..Default::default()
            },
            mesh: MeshConfig::from_json(mesh.json.clone()),
            rejected,
            ..Snapshot::default()
        }
    }

    fn generate(&self, snapshot: &Snapshot, _proxy: &ProxyInfo) -> ProxyConfig {
        let mut out = ProxyConfig::default();
        let mut by_port: BTreeMap<u16, Vec<VirtualHost>> = BTreeMap::new();
        for s in &snapshot.registry.services {
            for p in &s.ports {
                let cluster = format!("outbound|{}||{}", p.number, s.hostname);
                out.clusters.push(Cluster {
                    name: cluster.clone(),
                    connect_timeout: Some(PbDuration {
                        seconds: if s.mesh_external { 2 } else { 1 },
                        nanos: 0,
                    }),
                    cluster_discovery_type: Some(ClusterDiscoveryType::Type(
                        DiscoveryType::Eds as i32,
                    )),
                    eds_cluster_config: Some(EdsClusterConfig {
                        eds_config: Some(ads()),
                        service_name: String::new(),
                    }),
                    ..Cluster::default()
                });
                out.endpoints.push(ClusterLoadAssignment {
                    cluster_name: cluster.clone(),
                    endpoints: vec![LocalityLbEndpoints {
                        lb_endpoints: s
                            .endpoints
                            .iter()
                            .map(|e| LbEndpoint {
                                host_identifier: Some(HostIdentifier::Endpoint(EnvoyEndpoint {
                                    address: Some(socket(
                                        &e.address,
                                        e.ports.get(&p.name).copied().unwrap_or(p.number),
                                    )),
                                    ..EnvoyEndpoint::default()
                                })),
                                ..LbEndpoint::default()
                            })
                            .collect(),
                        ..LocalityLbEndpoints::default()
                    }],
                    ..ClusterLoadAssignment::default()
                });
                by_port.entry(p.number).or_default().push(VirtualHost {
                    name: format!("{}:{}", s.hostname, p.number),
                    domains: vec![s.hostname.clone(), format!("{}:{}", s.hostname, p.number)],
                    routes: vec![Route {
                        r#match: Some(RouteMatch {
                            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                            ..RouteMatch::default()
                        }),
                        action: Some(route::Action::Route(RouteAction {
                            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                                cluster,
                            )),
                            ..RouteAction::default()
                        })),
                        ..Route::default()
                    }],
                    ..VirtualHost::default()
                });
            }
            if s.hostname.starts_with("nack.") {
                out.listeners.push(Listener {
                    name: format!("invalid_{}", s.hostname),
                    address: Some(socket("not-an-ip", 1)),
                    bind_to_port: Some(BoolValue { value: false }),
                    ..Listener::default()
                });
            }
        }
        for (port, vhosts) in by_port {
            out.listeners.push(http_listener(port));
            out.routes.push(RouteConfiguration {
                name: port.to_string(),
                virtual_hosts: vhosts,
                ..RouteConfiguration::default()
            });
        }
        out.clusters.sort_by(|a, b| a.name.cmp(&b.name));
        out.endpoints
            .sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
        out.listeners.sort_by(|a, b| a.name.cmp(&b.name));
        out.routes.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..ConfigSource::default()
    }
}

fn socket(address: &str, port: u16) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: address.to_owned(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..SocketAddress::default()
        })),
    }
}

fn http_listener(port: u16) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: format!("outbound_0.0.0.0_{port}"),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: port.to_string(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..HttpFilter::default()
        }],
        ..HttpConnectionManager::default()
    };
    Listener {
        name: format!("0.0.0.0_{port}"),
        address: Some(socket("0.0.0.0", port)),
        bind_to_port: Some(BoolValue { value: false }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..FilterChain::default()
        }],
        ..Listener::default()
    }
}

/// A ServiceEntry with one HTTP port and loopback endpoints.
pub fn service_entry(name: &str, host: &str, port: u16, endpoints: &[&str]) -> String {
    let eps: String = endpoints
        .iter()
        .map(|a| format!("  - address: {a}\n"))
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  hosts: [{host}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n  - number: {port}\n    name: http\n    protocol: HTTP\n  endpoints:\n{eps}"
    )
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "meshd-test-{}-{name}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file atomically (write, then rename), as config tools do.
    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.0.join(name)).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// meshd running in-process; shut down (and awaited) on drop of the handle's sender.
pub struct Running {
    pub xds: SocketAddr,
    pub debug: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<Result<(), mesh_controlplane::MeshdError>>>,
}

impl Running {
    /// Asks meshd to stop and waits (bounded) for it.
    pub async fn stop(mut self) -> Result<(), mesh_controlplane::MeshdError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("meshd did not stop within 10s")
            .unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

pub async fn start_meshd(dir: &Path, translator: Arc<dyn Translator>) -> Running {
    start_meshd_at(dir, translator, "127.0.0.1:0".parse().unwrap()).await
}

/// meshd with ADS on `xds` (the debug API on a free port).
pub async fn start_meshd_at(
    dir: &Path,
    translator: Arc<dyn Translator>,
    xds: SocketAddr,
) -> Running {
    let mut opts = Options::new(dir.to_owned(), xds, "127.0.0.1:0".parse().unwrap());
    opts.watch = WatchOptions::default();
    opts.grace = Duration::from_secs(3);
    let meshd = Meshd::bind(opts, translator).await.unwrap();
    let (xds, debug) = (meshd.xds_address(), meshd.debug_address());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(meshd.run(async {
        let _ = rx.await;
    }));
    Running {
        xds,
        debug,
        stop: Some(tx),
        task: Some(task),
    }
}

/// GET over a fresh connection: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: meshd\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf).into_owned())
    };
    let raw = tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("debug API did not answer in 5s")
        .expect("debug API request failed");
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

pub async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http_get(addr, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Polls `f` every 20 ms until it gives a value or `limit` passes.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Envoy, through mesh-core's shared lookup: `None` (with a loud "SKIPPED") when absent,
/// a failure when `CI` is set.
pub fn envoy_bin() -> Option<PathBuf> {
    mesh_core::envoy::locate_for_tests().expect("Envoy")
}

/// A bootstrap like `mesh-proxy bootstrap` writes (that crate is not a dependency of this
/// one), with the admin on an ephemeral port.
pub fn envoy_bootstrap(xds: SocketAddr, ns: &str, name: &str, ip: &str) -> Value {
    serde_json::json!({
        "node": {
            "id": format!("sidecar~{ip}~{name}.{ns}~{ns}.svc.cluster.local"),
            "cluster": format!("{name}.{ns}"),
            "metadata": {
                "NAMESPACE": ns, "WORKLOAD_NAME": name, "SERVICE_ACCOUNT": "default",
                "LABELS": {"app": name}, "LOCAL_MODE": "true",
            },
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC", "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": [{
            "name": "xds-grpc", "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                },
            },
            "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": xds.ip().to_string(), "port_value": xds.port()}},
            }}]}]},
        }]},
        "admin": {"address": {"socket_address": {"address": ip, "port_value": 0}}},
    })
}

/// Envoy running with a bootstrap; killed on drop.
pub struct Envoy {
    pub child: tokio::process::Child,
    pub admin: SocketAddr,
    _dir: TempDir,
}

pub async fn start_envoy(bin: &Path, bootstrap: &Value) -> Envoy {
    let dir = TempDir::new("envoy");
    let file = dir.path().join("bootstrap.json");
    std::fs::write(&file, serde_json::to_vec_pretty(bootstrap).unwrap()).unwrap();
    let admin_file = dir.path().join("admin-address");
    let child = tokio::process::Command::new(bin)
        .arg("-c")
        .arg(&file)
        .args([
            "--use-dynamic-base-id",
            "--concurrency",
            "1",
            "--log-level",
            "warning",
        ])
        .arg("--admin-address-path")
        .arg(&admin_file)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let admin = eventually("envoy admin address", Duration::from_secs(30), || {
        let f = admin_file.clone();
        async move {
            std::fs::read_to_string(&f)
                .ok()
                .and_then(|s| s.trim().parse::<SocketAddr>().ok())
        }
    })
    .await;
    Envoy {
        child,
        admin,
        _dir: dir,
    }
}

/// The syncz entry of the (single) proxy, if connected.
pub async fn syncz_entry(debug: SocketAddr) -> Option<Value> {
    let v = get_json(debug, "/debug/syncz").await;
    v.as_array()?.first().cloned()
}

/// Whether every type is SYNCED, and the versions acked by type.
pub fn all_synced(entry: &Value) -> bool {
    ["cds", "eds", "lds", "rds"]
        .iter()
        .all(|t| entry["types"][*t]["state"] == "SYNCED")
}
