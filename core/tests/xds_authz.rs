//! AuthorizationPolicy and RequestAuthentication translation: which policies apply to which
//! proxy, the filter order Istio uses, Istio's policy names, the TCP rules, and that Envoy
//! accepts all of it (`envoy --mode validate`) in local mode, Kubernetes mode and on a
//! gateway. Behaviour with real traffic is in the scenarios `testdata/scenarios/authz-*`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod xds_support;

use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener, filter};
use envoy_types::pb::envoy::config::rbac::v3::{Rbac, rbac};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::JwtAuthentication;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use mesh_core::xds::{ProxyConfig, ProxyKind, Snapshot, generate};
use prost::Message;
use xds_support::*;

const FIXTURE: &[&str] = &["core/tests/xds/authz"];

fn typed(f: &Filter) -> &[u8] {
    match &f.config_type {
        Some(filter::ConfigType::TypedConfig(a)) => &a.value,
        _ => panic!("filter {} has no typed config", f.name),
    }
}

fn http_typed(f: &HttpFilter) -> &[u8] {
    match &f.config_type {
        Some(http_filter::ConfigType::TypedConfig(a)) => &a.value,
        _ => panic!("filter {} has no typed config", f.name),
    }
}

fn listener<'a>(cfg: &'a ProxyConfig, name: &str) -> &'a Listener {
    cfg.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}"))
}

fn hcm(l: &Listener) -> HttpConnectionManager {
    let f = l.filter_chains[0]
        .filters
        .iter()
        .find(|f| f.name == "envoy.filters.network.http_connection_manager")
        .expect("hcm");
    HttpConnectionManager::decode(typed(f)).unwrap()
}

fn http_rbac(f: &HttpFilter) -> Rbac {
    HttpRbac::decode(http_typed(f)).unwrap().rules.unwrap()
}

fn names(r: &Rbac) -> Vec<String> {
    let mut v: Vec<String> = r.policies.keys().cloned().collect();
    v.sort();
    v
}

fn setup() -> Snapshot {
    snapshot(FIXTURE)
}

#[test]
fn inbound_http_filters_in_istios_order_with_istios_names() {
    let snap = setup();
    let p = proxy(&snap, ProxyKind::Sidecar, "shop", "catalog-local");
    let cfg = generate(&snap, &p);
    let m = hcm(listener(&cfg, "127.79.0.21_9080"));
    let order: Vec<&str> = m.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "envoy.filters.http.jwt_authn",
            "envoy.filters.http.rbac",
            "envoy.filters.http.rbac",
            "envoy.filters.http.rbac",
            "envoy.filters.http.router"
        ]
    );
    let deny = http_rbac(&m.http_filters[1]);
    assert_eq!(deny.action, rbac::Action::Deny as i32);
    assert_eq!(
        names(&deny),
        [
            "ns[istio-system]-policy[mesh-deny]-rule[0]",
            "ns[shop]-policy[catalog-deny]-rule[0]"
        ]
    );
    let allow = http_rbac(&m.http_filters[2]);
    assert_eq!(allow.action, rbac::Action::Allow as i32);
    // rule[3] uses a condition key meshd does not translate: left out of the ALLOW.
    assert_eq!(
        names(&allow),
        [
            "ns[shop]-policy[catalog-allow]-rule[0]",
            "ns[shop]-policy[catalog-allow]-rule[1]",
            "ns[shop]-policy[catalog-allow]-rule[2]"
        ]
    );
    let audit = http_rbac(&m.http_filters[3]);
    assert_eq!(audit.action, rbac::Action::Log as i32);
    assert_eq!(audit.policies.len(), 2);

    // requestPrincipals ISS/SUB: the verified payload's iss and sub (Istio's metadata
    // matchers on envoy.filters.http.jwt_authn / payload).
    let rule0 = format!(
        "{:?}",
        allow.policies["ns[shop]-policy[catalog-allow]-rule[0]"]
    );
    for needle in [
        "envoy.filters.http.jwt_authn",
        "Key(\"payload\")",
        "Key(\"iss\")",
        "Exact(\"issuer.example\")",
        "Exact(\"alice\")",
        "Key(\"realm\")",
        "Key(\"role\")",
        "spiffe://cluster.local/ns/shop/sa/client",
        ".*/ns/kube-.*/.*",
        "UriTemplate(",
        "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
        "(?i)catalog\\\\.shop\\\\.svc\\\\.cluster\\\\.local(:[0-9]+)?",
    ] {
        assert!(rule0.contains(needle), "{needle} not in {rule0}");
    }

    let jwt = JwtAuthentication::decode(http_typed(&m.http_filters[0])).unwrap();
    let mut providers: Vec<_> = jwt.providers.keys().cloned().collect();
    providers.sort();
    assert_eq!(providers, ["origins-0", "origins-1"]);
    let p0 = &jwt.providers["origins-0"];
    assert_eq!(p0.issuer, "issuer.example");
    assert!(p0.forward);
    assert_eq!(p0.forward_payload_header, "x-payload");
    assert_eq!(p0.from_headers[0].value_prefix, "Bearer ");
    assert_eq!(p0.payload_in_metadata, mesh_core::xds::JWT_PAYLOAD_KEY);
    // A missing token passes (allow_missing); a bad one fails.
    let rule = format!("{:?}", jwt.rules[0]);
    assert!(rule.contains("AllowMissing"), "{rule}");
}

#[test]
fn tcp_ports_get_network_rbac_with_http_rules_dropped_or_narrowed() {
    let snap = setup();
    let p = proxy(&snap, ProxyKind::Sidecar, "shop", "catalog-local");
    let cfg = generate(&snap, &p);
    let l = listener(&cfg, "127.79.0.21_5432");
    let filters = &l.filter_chains[0].filters;
    let order: Vec<&str> = filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "envoy.filters.network.rbac",
            "envoy.filters.network.rbac",
            "envoy.filters.network.rbac",
            "envoy.filters.network.tcp_proxy"
        ]
    );
    let rules: Vec<Rbac> = filters[..3]
        .iter()
        .map(|f| {
            let n = NetworkRbac::decode(typed(f)).unwrap();
            assert_eq!(n.stat_prefix, "tcp.");
            n.rules.unwrap()
        })
        .collect();
    // DENY keeps its rules, HTTP-only conditions taken out: mesh-deny (only a header)
    // denies every TCP connection, as Istio's does; catalog-deny keeps notNamespaces.
    assert_eq!(rules[0].action, rbac::Action::Deny as i32);
    let mesh_deny = &rules[0].policies["ns[istio-system]-policy[mesh-deny]-rule[0]"];
    assert_eq!(
        format!("{:?}", mesh_deny.principals),
        "[Principal { identifier: Some(Any(true)) }]"
    );
    let catalog_deny = format!(
        "{:?}",
        rules[0].policies["ns[shop]-policy[catalog-deny]-rule[0]"]
    );
    assert!(catalog_deny.contains("/ns/shop/"), "{catalog_deny}");
    assert!(!catalog_deny.contains(":method"), "{catalog_deny}");
    // ALLOW drops rules with HTTP fields: rule 0 goes, the port rule and allow-all stay.
    assert_eq!(
        names(&rules[1]),
        [
            "ns[shop]-policy[catalog-allow]-rule[1]",
            "ns[shop]-policy[catalog-allow]-rule[2]"
        ]
    );
    // AUDIT widens like DENY: the path rule stays, without its path (it logs every
    // connection).
    assert_eq!(
        names(&rules[2]),
        [
            "ns[shop]-policy[catalog-audit]-rule[0]",
            "ns[shop]-policy[catalog-audit]-rule[1]"
        ]
    );
    let audit0 = format!(
        "{:?}",
        rules[2].policies["ns[shop]-policy[catalog-audit]-rule[0]"].permissions
    );
    assert_eq!(audit0, "[Permission { rule: Some(Any(true)) }]");
}

#[test]
fn which_policies_apply() {
    let snap = setup();
    // other/plain: the root namespace's DENY and its own allow-nothing (an ALLOW filter
    // with no policies denies everything); none of shop's.
    let p = proxy(&snap, ProxyKind::Sidecar, "other", "plain");
    let cfg = generate(&snap, &p);
    let m = hcm(listener(&cfg, "127.79.0.30_8000"));
    let order: Vec<&str> = m.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "envoy.filters.http.rbac",
            "envoy.filters.http.rbac",
            "envoy.filters.http.router"
        ]
    );
    assert_eq!(
        names(&http_rbac(&m.http_filters[0])),
        ["ns[istio-system]-policy[mesh-deny]-rule[0]"]
    );
    // The dry-run DENY is in the DENY filter's shadow rules, with Istio's stat prefix.
    let deny = HttpRbac::decode(http_typed(&m.http_filters[0])).unwrap();
    assert_eq!(deny.shadow_rules_stat_prefix, "istio_dry_run_deny_");
    assert_eq!(
        names(deny.shadow_rules.as_ref().unwrap()),
        ["ns[other]-policy[trial-deny]-rule[0]"]
    );
    let allow = http_rbac(&m.http_filters[1]);
    assert_eq!(allow.action, rbac::Action::Allow as i32);
    assert!(allow.policies.is_empty());

    // CUSTOM is listed as not applied and never reaches a proxy.
    assert!(
        snap.rejected
            .iter()
            .any(|r| r.object == "AuthorizationPolicy shop/ext" && r.reason.contains("CUSTOM")),
        "{:?}",
        snap.rejected
    );
}

#[test]
fn gateways_get_the_policies_that_select_them() {
    let snap = setup();
    let p = proxy(&snap, ProxyKind::Gateway, "istio-system", "ingressgateway");
    let cfg = generate(&snap, &p);
    let m = hcm(listener(&cfg, "127.79.0.5_8080"));
    let order: Vec<&str> = m.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        order[..2],
        ["envoy.filters.http.rbac", "envoy.filters.http.rbac"]
    );
    assert_eq!(
        names(&http_rbac(&m.http_filters[1])),
        ["ns[istio-system]-policy[gateway-allow]-rule[0]"]
    );
    assert_eq!(order.last(), Some(&"envoy.filters.http.router"));
    // A TCP server: network RBAC before the TCP proxy. gateway-allow names hosts (HTTP
    // only), so its ALLOW keeps no rule there and refuses every connection.
    let l = listener(&cfg, "127.79.0.5_5433");
    let names: Vec<&str> = l.filter_chains[0]
        .filters
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "envoy.filters.network.rbac",
            "envoy.filters.network.rbac",
            "envoy.filters.network.tcp_proxy"
        ]
    );
    let allow = NetworkRbac::decode(typed(&l.filter_chains[0].filters[1]))
        .unwrap()
        .rules
        .unwrap();
    assert_eq!(allow.action, rbac::Action::Allow as i32);
    assert!(allow.policies.is_empty());
}

#[test]
fn jwks_uri_gets_a_cluster() {
    let snap = setup();
    let p = proxy(&snap, ProxyKind::Sidecar, "shop", "catalog-local");
    let cfg = generate(&snap, &p);
    let c = cfg
        .clusters
        .iter()
        .find(|c| c.name == "outbound|8443||localhost")
        .expect("jwks cluster");
    assert!(c.load_assignment.is_some());
    // Local mode: a loopback cluster keeps the bootstrap's bind to the workload address;
    // the passthrough, which may leave the machine, binds to the unspecified address.
    assert!(c.upstream_bind_config.is_none());
    let pass = cfg
        .clusters
        .iter()
        .find(|c| c.name == "PassthroughCluster")
        .expect("passthrough");
    let bind = pass.upstream_bind_config.as_ref().expect("bind");
    assert_eq!(bind.source_address.as_ref().unwrap().address, "0.0.0.0");
}

#[test]
fn envoy_accepts_authorization_config() {
    let Some(envoy) = envoy_bin() else { return };
    let snap = setup();
    let mut failures = Vec::new();
    for (kind, ns, name) in [
        (ProxyKind::Sidecar, "shop", "catalog-local"),
        (ProxyKind::Sidecar, "shop", "catalog-kube"),
        (ProxyKind::Sidecar, "other", "plain"),
        (ProxyKind::Gateway, "istio-system", "ingressgateway"),
    ] {
        let p = proxy(&snap, kind, ns, name);
        let cfg = generate(&snap, &p);
        if let Err(e) = envoy_validate(&envoy, &cfg, &p.id) {
            failures.push(format!("{}:\n{e}", p.id));
        }
    }
    assert!(
        failures.is_empty(),
        "Envoy rejected:\n{}",
        failures.join("\n\n")
    );
}

/// An Envoy process, killed on drop.
struct EnvoyProcess(std::process::Child);

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP server that answers its name to every connection's first byte, until dropped.
struct Greeter(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Greeter {
    fn start(addr: &str, name: &'static str) -> Greeter {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        l.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        // Client speaks first (Envoy's network RBAC decides on the
                        // first byte from downstream); then the app answers.
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                        let mut b = [0u8; 1];
                        if matches!(s.read(&mut b), Ok(1)) {
                            let _ = s.write_all(name.as_bytes());
                        }
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        Greeter(stop)
    }
}

impl Drop for Greeter {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What a client that sends one byte reads from `addr` before the connection closes
/// (bounded).
fn read_all(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let _ = s.write_all(b"?");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn wait_listening(addr: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let sa: std::net::SocketAddr = addr.parse().unwrap();
    while std::net::TcpStream::connect_timeout(&sa, std::time::Duration::from_millis(200)).is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {addr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

const TCP_MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec:
  selector: {app: db}
  ports:
  - {name: tcp-db, port: 5432}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-open, namespace: data, labels: {app: db, door: open}}
spec: {address: 127.79.1.21}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-shut, namespace: data, labels: {app: db, door: shut}}
spec: {address: 127.79.1.22}
---
# Callers from 127.0.0.1 on port 5432 may connect to db-open.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: open, namespace: data}
spec:
  selector: {matchLabels: {door: open}}
  rules:
  - from: [{source: {ipBlocks: ["127.0.0.1/32"]}}]
    to: [{operation: {ports: ["5432"]}}]
---
# A DENY with only HTTP fields denies every TCP connection (Istio's rule).
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: shut, namespace: data}
spec:
  selector: {matchLabels: {door: shut}}
  action: DENY
  rules:
  - to: [{operation: {methods: ["POST"]}}]
"#;

#[test]
fn envoy_enforces_network_rbac_on_tcp_ports() {
    let Some(envoy) = envoy_bin() else { return };
    let snap = snapshot_of(TCP_MESH);
    let _open_app = Greeter::start("127.79.1.21:15432", "db-open");
    let _shut_app = Greeter::start("127.79.1.22:15432", "db-shut");
    let dir = std::env::temp_dir().join(format!("mesh-xds-authz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut procs = Vec::new();
    for name in ["db-open", "db-shut"] {
        let p = proxy(&snap, ProxyKind::Sidecar, "data", name);
        let cfg = generate(&snap, &p);
        let file = dir.join(format!("{name}.pb"));
        std::fs::write(&file, to_bootstrap(&cfg).encode_to_vec()).unwrap();
        let child = std::process::Command::new(&envoy)
            .args([
                "-c",
                file.to_str().unwrap(),
                "--use-dynamic-base-id",
                "--log-level",
                "error",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start envoy");
        procs.push(EnvoyProcess(child));
    }
    wait_listening("127.79.1.21:5432");
    wait_listening("127.79.1.22:5432");
    // The test connects from 127.0.0.1: allowed through to the app on db-open...
    assert_eq!(read_all("127.79.1.21:5432"), "db-open");
    // ...and closed by the DENY before reaching the app on db-shut.
    assert_eq!(read_all("127.79.1.22:5432"), "");
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
}
