//! The native data path in-process against traffic that misbehaves and traffic that is not
//! allowed: trace headers across two native sidecars (each its own proxy and config
//! store), slowloris clients cut off at the header timeout while others are served,
//! upstream resets and hangs and malformed requests answered as Envoy answers them, and
//! RBAC (HTTP 403, TCP connections closed) and jwt_authn (401) in front of the router.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, CidrRange, DataSource, SocketAddress, address, data_source, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, Rbac as RbacRules, permission, principal, rbac,
};
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, header_matcher,
    route, route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider, JwtRequirement, RequirementRule, jwt_provider, jwt_requirement,
    requirement_rule,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration, UInt32Value};
use mesh_proxy::native::Proxy;
use mesh_proxy::native::ads::ListenerSink;
use mesh_proxy::native::config::{Config, Store};
use mesh_proxy::native::listener::Listeners;
use prost::{Message, Name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

fn addr(a: SocketAddr) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: a.ip().to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                a.port(),
            ))),
            ..Default::default()
        })),
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn static_cluster(name: &str, to: SocketAddr) -> Cluster {
    Cluster {
        name: name.into(),
        connect_timeout: Some(PbDuration {
            seconds: 1,
            nanos: 0,
        }),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(addr(to)),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn route_to(prefix: &str, cluster: &str, timeout_ms: i32) -> Route {
    Route {
        name: prefix.into(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix(prefix.into())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.into())),
            timeout: Some(PbDuration {
                seconds: 0,
                nanos: timeout_ms * 1_000_000,
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn routes(name: &str, routes: Vec<Route>) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An HTTP listener: `filters` in front of the router, an optional header timeout.
fn http_listener(
    name: &str,
    at: SocketAddr,
    rds: &str,
    mut filters: Vec<HttpFilter>,
    headers_timeout: Option<Duration>,
) -> Listener {
    filters.push(HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(
            any(&Router::default()),
        )),
        ..Default::default()
    });
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            route_config_name: rds.into(),
            ..Default::default()
        })),
        http_filters: filters,
        request_headers_timeout: headers_timeout.map(|d| PbDuration {
            seconds: 0,
            nanos: i32::try_from(d.as_nanos()).unwrap(),
        }),
        ..Default::default()
    };
    Listener {
        name: name.into(),
        address: Some(addr(at)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn tcp_listener(name: &str, at: SocketAddr, cluster: &str, rbac: Option<NetworkRbac>) -> Listener {
    let t = TcpProxy {
        stat_prefix: name.into(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    };
    let mut filters: Vec<Filter> = rbac
        .iter()
        .map(|r| Filter {
            name: "envoy.filters.network.rbac".into(),
            config_type: Some(filter::ConfigType::TypedConfig(any(r))),
        })
        .collect();
    filters.push(Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&t))),
    });
    Listener {
        name: name.into(),
        address: Some(addr(at)),
        filter_chains: vec![FilterChain {
            filters,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A raw HTTP/1.1 upstream: `/headers` answers with the request head it got, `/reset`
/// closes without answering, `/hang` answers after 3 s, anything else 200 `ok`.
async fn upstream(l: TcpListener) {
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
            if path.starts_with("/reset") {
                return;
            }
            if path.starts_with("/headers") {
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{head}",
                    head.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
                return;
            }
            if path.starts_with("/hang") {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        });
    }
}

/// A TCP echo server.
async fn echo(l: TcpListener) {
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

async fn spawn_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(upstream(l));
    a
}

/// Sends raw bytes, returns everything read until the peer closes (bounded).
async fn exchange(to: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(to).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn get(to: SocketAddr, path: &str, extra: &str) -> String {
    exchange(
        to,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
}

/// One native proxy (its own store and listeners) running `config`.
fn start(config: Config, name: &str) -> (Arc<Store>, Listeners) {
    assert!(config.initialized());
    let store = Arc::new(Store::default());
    let (proxy, _quit) = Proxy::new(
        store.clone(),
        format!("sidecar~127.0.0.1~{name}.ns~ns.svc.cluster.local"),
        (name.into(), "ns".into()),
        false,
    );
    let mut listeners = Listeners::new(proxy);
    let mut config = config;
    assert_eq!(listeners.apply(&mut config), Vec::<String>::new());
    store.set(config);
    (store, listeners)
}

fn config(clusters: Vec<Cluster>, listeners: Vec<Listener>, rc: Vec<RouteConfiguration>) -> Config {
    Config::default()
        .with_clusters(clusters, "1")
        .ok()
        .unwrap()
        .with_listeners(listeners, "1")
        .ok()
        .unwrap()
        .with_routes(rc, "1")
        .ok()
        .unwrap()
}

fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_headers_cross_two_native_sidecars() {
    let up = spawn_upstream().await;
    // Sidecar B forwards to the app; sidecar A forwards to B.
    let (a_at, b_at) = (free_addr(), free_addr());
    let (_b_store, _b) = start(
        config(
            vec![static_cluster("app", up)],
            vec![http_listener("b", b_at, "rb", vec![], None)],
            vec![routes("rb", vec![route_to("/", "app", 0)])],
        ),
        "b",
    );
    let (_a_store, _a) = start(
        config(
            vec![static_cluster("to-b", b_at)],
            vec![http_listener("a", a_at, "ra", vec![], None)],
            vec![routes("ra", vec![route_to("/", "to-b", 0)])],
        ),
        "a",
    );

    let trace = [
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("x-b3-sampled", "1"),
        ("x-b3-flags", "1"),
        (
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        ),
        (
            "x-ot-span-context",
            "80f198ee56343ba8;e457b5a2e4d86bd1;05e3ac9a4f6e3b90;cs",
        ),
    ];
    let extra: String = trace.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let resp = get(a_at, "/headers", &extra).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let head = resp.split_once("\r\n\r\n").unwrap().1;
    for (k, v) in trace {
        assert_eq!(
            header_value(head, k).as_deref(),
            Some(v),
            "{k} did not reach the app unchanged: {head}"
        );
    }
    // No request id came in: the first sidecar made one (a UUID), the second kept it.
    let id = header_value(head, "x-request-id").expect("x-request-id");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(id.matches('-').count(), 4, "{id}");
    assert_eq!(head.matches("x-request-id").count(), 1, "{head}");

    // A request id that came in is kept end to end.
    let resp = get(a_at, "/headers", "x-request-id: 7f3c-given\r\n").await;
    let head = resp.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(
        header_value(head, "x-request-id").as_deref(),
        Some("7f3c-given")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_others_served() {
    let up = spawn_upstream().await;
    let at = free_addr();
    let (_store, _l) = start(
        config(
            vec![static_cluster("app", up)],
            vec![http_listener(
                "slow",
                at,
                "r",
                vec![],
                Some(Duration::from_millis(500)),
            )],
            vec![routes("r", vec![route_to("/", "app", 0)])],
        ),
        "s",
    );
    // Ten clients start a request and never finish its headers, trickling bytes.
    let start_t = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..10 {
        slow.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(at).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n")
                .await
                .unwrap();
            let mut buf = Vec::new();
            let read = async {
                for i in 0..100 {
                    // A header line a little at a time, never the blank line.
                    if s.write_all(format!("x-{i}: y\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let _ = s.read_to_end(&mut buf).await;
            };
            let closed = tokio::time::timeout(Duration::from_secs(8), read)
                .await
                .is_ok();
            (closed, String::from_utf8_lossy(&buf).into_owned())
        }));
    }
    // Meanwhile everybody else is served.
    for _ in 0..5 {
        let ok = get(at, "/x", "").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    }
    for t in slow {
        let (closed, got) = t.await.unwrap();
        assert!(closed, "a slow client was not cut off");
        assert!(
            got.is_empty() || got.starts_with("HTTP/1.1 408"),
            "a slow client got {got:?}"
        );
    }
    assert!(
        start_t.elapsed() < Duration::from_secs(8),
        "{:?}",
        start_t.elapsed()
    );
    // And afterwards too.
    assert!(get(at, "/x", "").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_hangs_and_malformed_requests_get_envoy_answers() {
    let up = spawn_upstream().await;
    let at = free_addr();
    let (_store, _l) = start(
        config(
            vec![static_cluster("app", up)],
            vec![http_listener("l", at, "r", vec![], None)],
            vec![routes(
                "r",
                vec![route_to("/hang", "app", 300), route_to("/", "app", 0)],
            )],
        ),
        "t",
    );
    // An upstream that resets (no retry policy): 503 with Envoy's text.
    let r = get(at, "/reset", "").await;
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(
        r.contains("upstream connect error or disconnect/reset before headers"),
        "{r}"
    );
    // An upstream that hangs: the route timeout answers 504.
    let t = Instant::now();
    let r = get(at, "/hang", "").await;
    assert!(r.starts_with("HTTP/1.1 504"), "{r}");
    assert!(r.contains("upstream request timeout"), "{r}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Malformed requests: 400, and the proxy keeps serving.
    for bad in [
        &b"GET / HTTP/1.1\r\nHost test\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET /x HTTP/9.9\r\nHost: test\r\n\r\n",
    ] {
        let r = exchange(at, bad).await;
        assert!(
            r.starts_with("HTTP/1.1 400"),
            "{}: {r}",
            String::from_utf8_lossy(bad)
        );
        assert!(
            !r.contains("ok"),
            "a malformed request reached the app: {r}"
        );
        assert!(get(at, "/x", "").await.starts_with("HTTP/1.1 200"));
    }
}

fn cidr(ip: &str, len: u32) -> CidrRange {
    CidrRange {
        address_prefix: ip.into(),
        prefix_len: Some(UInt32Value { value: len }),
    }
}

fn policy(permission: permission::Rule, principal: principal::Identifier) -> Policy {
    Policy {
        permissions: vec![Permission {
            rule: Some(permission),
        }],
        principals: vec![Principal {
            identifier: Some(principal),
        }],
        ..Default::default()
    }
}

fn rules(action: rbac::Action, policies: Vec<(&str, Policy)>) -> RbacRules {
    RbacRules {
        action: action as i32,
        policies: policies
            .into_iter()
            .map(|(n, p)| (n.to_owned(), p))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_refuses_requests_and_connections() {
    let up = spawn_upstream().await;
    let echo_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_at = echo_l.local_addr().unwrap();
    tokio::spawn(echo(echo_l));
    let (http_at, tcp_open, tcp_shut) = (free_addr(), free_addr(), free_addr());

    // HTTP: DENY x-user: mallory, then ALLOW GET only.
    let deny = HttpRbac {
        rules: Some(rules(
            rbac::Action::Deny,
            vec![(
                "no-mallory",
                policy(
                    permission::Rule::Any(true),
                    principal::Identifier::Header(HeaderMatcher {
                        name: "x-user".into(),
                        header_match_specifier: Some(
                            header_matcher::HeaderMatchSpecifier::StringMatch(StringMatcher {
                                match_pattern: Some(string_matcher::MatchPattern::Exact(
                                    "mallory".into(),
                                )),
                                ignore_case: false,
                            }),
                        ),
                        ..Default::default()
                    }),
                ),
            )],
        )),
        ..Default::default()
    };
    let allow = HttpRbac {
        rules: Some(rules(
            rbac::Action::Allow,
            vec![(
                "get-only",
                policy(
                    permission::Rule::Header(HeaderMatcher {
                        name: ":method".into(),
                        header_match_specifier: Some(
                            header_matcher::HeaderMatchSpecifier::StringMatch(StringMatcher {
                                match_pattern: Some(string_matcher::MatchPattern::Exact(
                                    "GET".into(),
                                )),
                                ignore_case: false,
                            }),
                        ),
                        ..Default::default()
                    }),
                    principal::Identifier::Any(true),
                ),
            )],
        )),
        ..Default::default()
    };
    let http_filter = |r: &HttpRbac| HttpFilter {
        name: "envoy.filters.http.rbac".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(r))),
        ..Default::default()
    };
    // TCP: one listener admits only 127.0.0.2 (the test connects from 127.0.0.1), the
    // other denies only 127.0.0.2.
    let only_2 = |action| NetworkRbac {
        stat_prefix: "tcp.".into(),
        rules: Some(rules(
            action,
            vec![(
                "ip",
                policy(
                    permission::Rule::Any(true),
                    principal::Identifier::DirectRemoteIp(cidr("127.0.0.2", 32)),
                ),
            )],
        )),
        ..Default::default()
    };
    let (store, _l) = start(
        config(
            vec![static_cluster("app", up), static_cluster("echo", echo_at)],
            vec![
                http_listener(
                    "h",
                    http_at,
                    "r",
                    vec![http_filter(&deny), http_filter(&allow)],
                    None,
                ),
                tcp_listener("shut", tcp_shut, "echo", Some(only_2(rbac::Action::Allow))),
                tcp_listener("open", tcp_open, "echo", Some(only_2(rbac::Action::Deny))),
            ],
            vec![routes("r", vec![route_to("/", "app", 0)])],
        ),
        "r",
    );

    let ok = get(http_at, "/x", "x-user: alice\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let denied = get(http_at, "/x", "x-user: mallory\r\n").await;
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(denied.ends_with("\r\n\r\nRBAC: access denied"), "{denied}");
    let post = exchange(
        http_at,
        b"POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 403"), "{post}");

    let mut s = TcpStream::connect(tcp_open).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping");

    // The decisions are counted under Envoy's stat names.
    let stats = mesh_proxy::native::rbac::stats(&store.current());
    for (name, value) in [
        ("http.h.rbac.allowed", 3),
        ("http.h.rbac.denied", 2),
        ("tcp.rbac.allowed", 1),
        ("tcp.rbac.denied", 0),
    ] {
        assert!(
            stats.contains(&(name.to_owned(), value)),
            "{name}: {value} not in {stats:?}"
        );
    }

    let mut s = TcpStream::connect(tcp_shut).await.unwrap();
    let _ = s.write_all(b"ping").await;
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("a refused connection is closed");
    assert!(r.is_err() || out.is_empty(), "{out:?}");
}

/// A P-256 key, its JWKS, and tokens it signs.
struct Signer {
    key: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl Signer {
    fn new() -> Signer {
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        Signer { key, rng }
    }

    fn jwks(&self) -> String {
        use base64::Engine as _;
        use ring::signature::KeyPair as _;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let p = self.key.public_key().as_ref();
        format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","x":"{}","y":"{}"}}]}}"#,
            b.encode(&p[1..33]),
            b.encode(&p[33..65])
        )
    }

    fn token(&self, claims: &serde_json::Value) -> String {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let h = b.encode(br#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#);
        let p = b.encode(claims.to_string());
        let sig = self
            .key
            .sign(&self.rng, format!("{h}.{p}").as_bytes())
            .unwrap();
        format!("{h}.{p}.{}", b.encode(sig.as_ref()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_authn_verifies_tokens_before_rbac() {
    let up = spawn_upstream().await;
    let at = free_addr();
    let signer = Signer::new();
    let other = Signer::new();
    let provider = JwtProvider {
        issuer: "issuer.test".into(),
        audiences: vec!["svc".into()],
        forward_payload_header: "x-jwt-payload".into(),
        payload_in_metadata: "payload".into(),
        claim_to_headers: vec![
            envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::JwtClaimToHeader {
                header_name: "x-sub".into(),
                claim_name: "sub".into(),
                ..Default::default()
            },
            envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::JwtClaimToHeader {
                header_name: "x-realm-role".into(),
                claim_name: "realm.role".into(),
                ..Default::default()
            },
        ],
        jwks_source_specifier: Some(jwt_provider::JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(data_source::Specifier::InlineString(signer.jwks())),
            ..Default::default()
        })),
        ..Default::default()
    };
    let req = |t| JwtRequirement {
        requires_type: Some(t),
    };
    let jwt = JwtAuthentication {
        providers: [("p".to_owned(), provider)].into_iter().collect(),
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            requirement_type: Some(requirement_rule::RequirementType::Requires(req(
                jwt_requirement::RequiresType::RequiresAny(
                    envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::JwtRequirementOrList {
                        requirements: vec![
                            req(jwt_requirement::RequiresType::ProviderName("p".into())),
                            req(jwt_requirement::RequiresType::AllowMissing(Default::default())),
                        ],
                    },
                ),
            ))),
        }],
        ..Default::default()
    };
    // RBAC: /admin needs the claim role: admin (from jwt_authn's metadata).
    let admin = HttpRbac {
        rules: Some(rules(
            rbac::Action::Deny,
            vec![(
                "admin-needs-role",
                Policy {
                    permissions: vec![Permission {
                        rule: Some(permission::Rule::UrlPath(
                            envoy_types::pb::envoy::r#type::matcher::v3::PathMatcher {
                                rule: Some(
                                    envoy_types::pb::envoy::r#type::matcher::v3::path_matcher::Rule::Path(
                                        StringMatcher {
                                            match_pattern: Some(
                                                string_matcher::MatchPattern::Prefix(
                                                    "/admin".into(),
                                                ),
                                            ),
                                            ignore_case: false,
                                        },
                                    ),
                                ),
                            },
                        )),
                    }],
                    principals: vec![Principal {
                        identifier: Some(principal::Identifier::NotId(Box::new(Principal {
                            identifier: Some(principal::Identifier::SourcedMetadata(
                                envoy_types::pb::envoy::config::rbac::v3::SourcedMetadata {
                                metadata_source: envoy_types::pb::envoy::config::rbac::v3::MetadataSource::Dynamic as i32,
                                metadata_matcher: Some(envoy_types::pb::envoy::r#type::matcher::v3::MetadataMatcher {
                                    filter: "envoy.filters.http.jwt_authn".into(),
                                    path: ["payload", "role"]
                                        .iter()
                                        .map(|k| envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::PathSegment {
                                            segment: Some(envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::path_segment::Segment::Key((*k).into())),
                                        })
                                        .collect(),
                                    value: Some(envoy_types::pb::envoy::r#type::matcher::v3::ValueMatcher {
                                        match_pattern: Some(envoy_types::pb::envoy::r#type::matcher::v3::value_matcher::MatchPattern::StringMatch(StringMatcher {
                                            match_pattern: Some(string_matcher::MatchPattern::Exact("admin".into())),
                                            ignore_case: false,
                                        })),
                                    }),
                                    invert: false,
                                }),
                                },
                            )),
                        }))),
                    }],
                    ..Default::default()
                },
            )],
        )),
        ..Default::default()
    };
    let filters = vec![
        HttpFilter {
            name: "envoy.filters.http.jwt_authn".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(any(&jwt))),
            ..Default::default()
        },
        HttpFilter {
            name: "envoy.filters.http.rbac".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(any(&admin))),
            ..Default::default()
        },
    ];
    let (_store, _l) = start(
        config(
            vec![static_cluster("app", up)],
            vec![http_listener("j", at, "r", filters, None)],
            vec![routes("r", vec![route_to("/", "app", 0)])],
        ),
        "j",
    );
    let far = 4_102_444_800u64; // 2100
    let good = signer.token(&serde_json::json!({"iss": "issuer.test", "sub": "a", "aud": "svc", "exp": far, "role": "admin", "realm": {"role": "ops"}}));
    let user = signer.token(
        &serde_json::json!({"iss": "issuer.test", "sub": "b", "aud": ["x", "svc"], "exp": far}),
    );
    let expired = signer
        .token(&serde_json::json!({"iss": "issuer.test", "aud": "svc", "exp": 1_000_000_000}));
    let early = signer.token(&serde_json::json!({"iss": "issuer.test", "aud": "svc", "nbf": far}));
    let wrong_aud =
        signer.token(&serde_json::json!({"iss": "issuer.test", "aud": "other", "exp": far}));
    let foreign = other.token(&serde_json::json!({"iss": "issuer.test", "aud": "svc", "exp": far}));
    let stranger = signer.token(&serde_json::json!({"iss": "other", "aud": "svc", "exp": far}));
    let bearer = |t: &str| format!("authorization: Bearer {t}\r\n");

    // No token: allowed by allow_missing, but RBAC keeps /admin.
    assert!(get(at, "/x", "").await.starts_with("HTTP/1.1 200"));
    let r = get(at, "/admin", "").await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    // A good token: forwarded payload, token stripped (forward is false), claims for RBAC.
    let r = get(at, "/headers", &bearer(&good)).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let head = r.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(
        header_value(head, "x-jwt-payload").as_deref(),
        good.split('.').nth(1)
    );
    assert!(header_value(head, "authorization").is_none(), "{head}");
    assert_eq!(header_value(head, "x-sub").as_deref(), Some("a"), "{head}");
    assert_eq!(
        header_value(head, "x-realm-role").as_deref(),
        Some("ops"),
        "{head}"
    );
    assert!(
        get(at, "/admin", &bearer(&good))
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert!(
        get(at, "/admin", &bearer(&user))
            .await
            .starts_with("HTTP/1.1 403")
    );
    assert!(
        get(at, "/x", &bearer(&user))
            .await
            .starts_with("HTTP/1.1 200")
    );
    // Bad tokens: 401 (403 for audiences) with Envoy's bodies.
    for (tok, code, body) in [
        (expired.as_str(), 401, "Jwt is expired"),
        (early.as_str(), 401, "Jwt not yet valid"),
        (wrong_aud.as_str(), 403, "Audiences in Jwt are not allowed"),
        (foreign.as_str(), 401, "Jwt verification fails"),
        (stranger.as_str(), 401, "Jwt issuer is not configured"),
        (
            "abc",
            401,
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
        ),
        ("a.b.c", 401, "Jwt header is an invalid Base64url encoded"),
        (
            "eyJhbGciOiJub25lIn0.e30.AA",
            401,
            "Jwt header [alg] is not supported",
        ),
    ] {
        let r = get(at, "/x", &bearer(tok)).await;
        assert!(r.starts_with(&format!("HTTP/1.1 {code}")), "{body}: {r}");
        assert!(r.ends_with(&format!("\r\n\r\n{body}")), "{body}: {r}");
        assert!(
            r.to_ascii_lowercase().contains(
                "www-authenticate: bearer realm=\"http://test/x\", error=\"invalid_token\""
            ),
            "{r}"
        );
    }
}

/// Serves `body` as JSON to every request, counting them.
async fn jwks_server(body: String, hits: Arc<std::sync::atomic::AtomicU32>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let body = body.clone();
            let hits = hits.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_jwks_is_fetched_through_its_cluster_and_cached() {
    let up = spawn_upstream().await;
    let signer = Signer::new();
    let hits = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let keys_at = jwks_server(signer.jwks(), hits.clone()).await;
    let at = free_addr();
    let remote = |cluster: &str| {
        JwtProvider {
        issuer: "issuer.test".into(),
        jwks_source_specifier: Some(jwt_provider::JwksSourceSpecifier::RemoteJwks(
            envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::RemoteJwks {
                http_uri: Some(envoy_types::pb::envoy::config::core::v3::HttpUri {
                    uri: "http://keys.test/jwks.json".into(),
                    timeout: Some(PbDuration {
                        seconds: 1,
                        nanos: 0,
                    }),
                    http_upstream_type: Some(
                        envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType::Cluster(
                            cluster.into(),
                        ),
                    ),
                }),
                cache_duration: Some(PbDuration {
                    seconds: 300,
                    nanos: 0,
                }),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
    };
    let rule = |prefix: &str, provider: &str| RequirementRule {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix(prefix.into())),
            ..Default::default()
        }),
        requirement_type: Some(requirement_rule::RequirementType::Requires(
            JwtRequirement {
                requires_type: Some(jwt_requirement::RequiresType::ProviderName(provider.into())),
            },
        )),
    };
    let jwt = JwtAuthentication {
        providers: [
            ("remote".to_owned(), remote("keys")),
            ("unreachable".to_owned(), remote("dead")),
        ]
        .into_iter()
        .collect(),
        rules: vec![rule("/dead", "unreachable"), rule("/", "remote")],
        ..Default::default()
    };
    let filters = vec![HttpFilter {
        name: "envoy.filters.http.jwt_authn".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&jwt))),
        ..Default::default()
    }];
    let (_store, _l) = start(
        config(
            vec![
                static_cluster("app", up),
                static_cluster("keys", keys_at),
                static_cluster("dead", free_addr()),
            ],
            vec![http_listener("j", at, "r", filters, None)],
            vec![routes("r", vec![route_to("/", "app", 0)])],
        ),
        "k",
    );
    let token = signer.token(&serde_json::json!({"iss": "issuer.test", "exp": 4_102_444_800u64}));
    let bearer = format!("authorization: Bearer {token}\r\n");
    let r = get(at, "/x", "").await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(r.ends_with("\r\n\r\nJwt is missing"), "{r}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    for _ in 0..3 {
        let r = get(at, "/x", &bearer).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the JWKS is fetched once and cached"
    );
    let r = get(at, "/dead", &bearer).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(r.ends_with("\r\n\r\nJwks remote fetch is failed"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_rules_and_log_policies_never_refuse() {
    let up = spawn_upstream().await;
    let at = free_addr();
    let everyone = || {
        vec![(
            "all",
            policy(
                permission::Rule::Any(true),
                principal::Identifier::Any(true),
            ),
        )]
    };
    // A dry-run DENY of everything (Istio's istio.io/dry-run), and an AUDIT (LOG) policy.
    let dry = HttpRbac {
        shadow_rules: Some(rules(rbac::Action::Deny, everyone())),
        shadow_rules_stat_prefix: "istio_dry_run_deny_".into(),
        ..Default::default()
    };
    let audit = HttpRbac {
        rules: Some(rules(rbac::Action::Log, everyone())),
        ..Default::default()
    };
    let f = |r: &HttpRbac| HttpFilter {
        name: "envoy.filters.http.rbac".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(r))),
        ..Default::default()
    };
    let (store, _l) = start(
        config(
            vec![static_cluster("app", up)],
            vec![http_listener("d", at, "r", vec![f(&dry), f(&audit)], None)],
            vec![routes("r", vec![route_to("/", "app", 0)])],
        ),
        "d",
    );
    for _ in 0..2 {
        let r = get(at, "/x", "").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    let stats = mesh_proxy::native::rbac::stats(&store.current());
    assert!(
        stats.contains(&(
            "http.d.rbac.istio_dry_run_deny_.shadow_denied".to_owned(),
            2
        )),
        "{stats:?}"
    );
    assert!(
        stats.contains(&("http.d.rbac.denied".to_owned(), 0)),
        "{stats:?}"
    );
    assert!(
        stats.contains(&("http.d.rbac.allowed".to_owned(), 2)),
        "{stats:?}"
    );
}
