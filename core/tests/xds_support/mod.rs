//! Shared helpers for the xDS translation tests: loading sample meshes, proxies of their
//! workloads, golden files, and turning a generated config into a static Envoy bootstrap.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::google::protobuf::Any;
use mesh_core::analysis::{MeshConfig, Store};
use mesh_core::xds::{ProxyConfig, ProxyInfo, ProxyKind, Snapshot};
use prost::Message;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Loads files and directories (relative to the workspace root) into a snapshot.
pub fn snapshot(paths: &[&str]) -> Snapshot {
    snapshot_with_mesh(paths, MeshConfig::default())
}

pub fn snapshot_with_mesh(paths: &[&str], mesh: MeshConfig) -> Snapshot {
    let root = repo_root();
    let paths: Vec<PathBuf> = paths.iter().map(|p| root.join(p)).collect();
    let loaded = mesh_core::source::load_paths(&paths, true);
    assert!(loaded.errors.is_empty(), "load errors: {:?}", loaded.errors);
    Snapshot::build(&Store::new(loaded.resources), &mesh)
}

/// Loads YAML text into a snapshot.
pub fn snapshot_of(yaml: &str) -> Snapshot {
    let loaded = mesh_core::source::load_bytes("test.yaml", yaml.as_bytes());
    assert!(loaded.errors.is_empty(), "load errors: {:?}", loaded.errors);
    Snapshot::build(&Store::new(loaded.resources), &MeshConfig::default())
}

/// The proxy of a workload in the registry.
pub fn proxy(snap: &Snapshot, kind: ProxyKind, ns: &str, name: &str) -> ProxyInfo {
    let w = snap
        .registry
        .workload(ns, name)
        .unwrap_or_else(|| panic!("no workload {ns}/{name}"));
    let ip = w.address.parse().expect("workload IP");
    let id = ProxyInfo::node_id(kind, ip, name, ns);
    let mut p = ProxyInfo::from_node_id(&id).expect("node id");
    p.labels = w.labels.clone();
    p.service_account = w.service_account.clone();
    p
}

// ---------------------------------------------------------------------------------------
// Golden files

/// Renders a config for a golden file: `{:#?}` with every `Any` decoded into its message
/// and fields at their proto3 default (unset) left out.
pub fn render(cfg: &ProxyConfig) -> String {
    let full = sort_maps(&decode_anys(&format!("{cfg:#?}")));
    let unset =
        regex::Regex::new(r#"^\s+[a-z_0-9]+: (None|\[\]|0|false|""|\{\}),$"#).expect("regex");
    let mut out: String = full
        .lines()
        .filter(|l| !unset.is_match(l))
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// Sorts the entries of every `{ "key": value, ... }` map in `{:#?}` output by key: prost's
/// maps are HashMaps, whose order varies from run to run.
fn sort_maps(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        out.push(line.to_owned());
        i += 1;
        let indent = line.len() - line.trim_start().len();
        let is_map = line.ends_with(": {")
            && lines.get(i).is_some_and(|n| {
                n.len() - n.trim_start().len() == indent + 4 && n.trim_start().starts_with('"')
            });
        if !is_map {
            continue;
        }
        let mut entries: Vec<Vec<String>> = Vec::new();
        while i < lines.len() {
            let l = lines[i];
            let li = l.len() - l.trim_start().len();
            if li <= indent {
                break;
            }
            if li == indent + 4 && l.trim_start().starts_with('"') {
                entries.push(Vec::new());
            }
            if let Some(e) = entries.last_mut() {
                e.push(l.to_owned());
            }
            i += 1;
        }
        let mut rendered: Vec<String> = entries
            .into_iter()
            .map(|e| sort_maps(&e.join("\n")))
            .collect();
        rendered.sort();
        out.extend(rendered);
    }
    let mut s = out.join("\n");
    if text.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn decode_anys(text: &str) -> String {
    let re = regex::Regex::new(
        r#"(?m)^(?P<indent> *)(?P<lead>[^\n]*?)Any \{\n *type_url: "(?P<url>[^"]+)",\n *value: \[(?P<bytes>[\d,\s]*)\],\n *\}"#,
    )
    .expect("regex");
    let mut out = String::new();
    let mut last = 0;
    for c in re.captures_iter(text) {
        let m = c.get(0).expect("match");
        out.push_str(&text[last..m.start()]);
        let indent = &c["indent"];
        let bytes: Vec<u8> = c["bytes"]
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("byte"))
            .collect();
        let decoded = decode(&c["url"], &bytes);
        let decoded = decode_anys(&decoded);
        let mut lines = decoded.lines();
        out.push_str(indent);
        out.push_str(&c["lead"]);
        out.push_str(&format!(
            "Any<{}> ",
            c["url"].trim_start_matches("type.googleapis.com/")
        ));
        if let Some(first) = lines.next() {
            out.push_str(first);
        }
        for l in lines {
            out.push('\n');
            out.push_str(indent);
            out.push_str(l);
        }
        last = m.end();
    }
    out.push_str(&text[last..]);
    out
}

fn decode(url: &str, bytes: &[u8]) -> String {
    use envoy_types::pb::envoy::extensions as ext;
    macro_rules! try_types {
        ($($t:ty),* $(,)?) => {
            $(
                if url == <$t as prost::Name>::type_url() {
                    return format!("{:#?}", <$t>::decode(bytes).expect("decodes"));
                }
            )*
        };
    }
    try_types!(
        HttpConnectionManager,
        ext::filters::http::router::v3::Router,
        ext::filters::http::cors::v3::Cors,
        ext::filters::http::cors::v3::CorsPolicy,
        ext::filters::http::fault::v3::HttpFault,
        ext::filters::http::dynamic_forward_proxy::v3::FilterConfig,
        ext::clusters::dynamic_forward_proxy::v3::ClusterConfig,
        ext::filters::network::tcp_proxy::v3::TcpProxy,
        ext::filters::listener::original_dst::v3::OriginalDst,
        ext::filters::listener::tls_inspector::v3::TlsInspector,
        ext::upstreams::http::v3::HttpProtocolOptions,
        ext::transport_sockets::tls::v3::UpstreamTlsContext,
        ext::transport_sockets::tls::v3::DownstreamTlsContext,
        ext::retry::host::previous_hosts::v3::PreviousHostsPredicate,
        ext::filters::http::rbac::v3::Rbac,
        ext::filters::network::rbac::v3::Rbac,
        ext::filters::http::jwt_authn::v3::JwtAuthentication,
    );
    panic!("golden rendering: unknown type {url}");
}

/// Compares `actual` with `core/tests/golden/NAME`; `UPDATE_GOLDEN=1` rewrites the file.
pub fn assert_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}:\n  golden: {a}\n  actual: {b}", i + 1))
            .collect();
        panic!(
            "{} differs from the generated config (golden {} lines, actual {} lines); \
             UPDATE_GOLDEN=1 rewrites it\n{}",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------
// Envoy

/// Envoy, through mesh-core's shared lookup: `None` (with a loud "SKIPPED") when absent,
/// a failure when `CI` is set.
pub fn envoy_bin() -> Option<PathBuf> {
    mesh_core::envoy::locate_for_tests().expect("Envoy")
}

/// The config as a static bootstrap: EDS clusters become STATIC with their endpoints
/// inline, RDS route configs are inlined into their connection managers.
pub fn to_bootstrap(cfg: &ProxyConfig) -> Bootstrap {
    let mut clusters: Vec<Cluster> = Vec::new();
    for c in &cfg.clusters {
        let mut c = c.clone();
        if c.eds_cluster_config.take().is_some() {
            c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Static as i32,
            ));
            c.load_assignment = Some(
                cfg.endpoints
                    .iter()
                    .find(|e| e.cluster_name == c.name)
                    .unwrap_or_else(|| panic!("no endpoints for EDS cluster {}", c.name))
                    .clone(),
            );
        }
        clusters.push(c);
    }
    let inline = |chain: &mut FilterChain| {
        for f in &mut chain.filters {
            let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
                continue;
            };
            if any.type_url != <HttpConnectionManager as prost::Name>::type_url() {
                continue;
            }
            let mut hcm = HttpConnectionManager::decode(any.value.as_slice()).expect("hcm");
            if let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = &hcm.route_specifier {
                let rc = cfg
                    .routes
                    .iter()
                    .find(|r| r.name == rds.route_config_name)
                    .unwrap_or_else(|| panic!("no route config {}", rds.route_config_name))
                    .clone();
                hcm.route_specifier =
                    Some(http_connection_manager::RouteSpecifier::RouteConfig(rc));
            }
            *any = Any {
                type_url: any.type_url.clone(),
                value: hcm.encode_to_vec(),
            };
        }
    };
    let mut listeners = cfg.listeners.clone();
    for l in &mut listeners {
        for chain in &mut l.filter_chains {
            inline(chain);
        }
        if let Some(chain) = &mut l.default_filter_chain {
            inline(chain);
        }
    }
    Bootstrap {
        static_resources: Some(bootstrap::StaticResources {
            listeners,
            clusters,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs `envoy --mode validate` on the config; `Err` carries Envoy's output.
pub fn envoy_validate(envoy: &Path, cfg: &ProxyConfig, label: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("mesh-xds-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join(format!("{}.pb", label.replace(['/', '~', ' '], "_")));
    let _ = std::fs::remove_file(&file);
    std::fs::write(&file, to_bootstrap(cfg).encode_to_vec()).expect("write bootstrap");
    let out = Command::new(envoy)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(&file)
        .arg("--log-level")
        .arg("warn")
        .output()
        .expect("run envoy");
    let _ = std::fs::remove_file(&file);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
