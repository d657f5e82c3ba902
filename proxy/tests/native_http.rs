//! The native data path in-process, without meshd: listeners and clusters built from
//! envoy-types messages the way meshd writes them, a raw upstream that misbehaves on
//! request, and clients that do too. Each case checks Envoy's answer: route timeouts (504),
//! resets retried then 503, refused connections (503), circuit-breaker overflow (503 with
//! `x-envoy-overloaded`), oversized headers (431), TCP proxying, CONNECT tunnels, websocket
//! upgrades, and that a
//! request in flight finishes on its config while a new one is swapped in; HTTP/2 upstreams
//! get the request's `:authority`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, circuit_breakers::Thresholds, cluster,
};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route,
    route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
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

fn static_cluster(name: &str, to: SocketAddr, max_requests: Option<u32>) -> Cluster {
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
        circuit_breakers: max_requests.map(|m| CircuitBreakers {
            thresholds: vec![Thresholds {
                max_requests: Some(UInt32Value { value: m }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn route_to(prefix: &str, cluster: &str, timeout_ms: i32, retry_on: Option<&str>) -> Route {
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
            retry_policy: retry_on.map(|on| RetryPolicy {
                retry_on: on.into(),
                num_retries: Some(UInt32Value { value: 2 }),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn connect_route(cluster: &str) -> Route {
    Route {
        name: "connect".into(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::ConnectMatcher(
                route_match::ConnectMatcher {},
            )),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.into())),
            upgrade_configs: vec![route_action::UpgradeConfig {
                upgrade_type: "CONNECT".into(),
                ..Default::default()
            }],
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn http_listener(name: &str, at: SocketAddr, rds: &str) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            route_config_name: rds.into(),
            ..Default::default()
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(
                any(&Router::default()),
            )),
            ..Default::default()
        }],
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

fn tcp_listener(name: &str, at: SocketAddr, cluster: &str) -> Listener {
    let t = TcpProxy {
        stat_prefix: name.into(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    };
    Listener {
        name: name.into(),
        address: Some(addr(at)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.tcp_proxy".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(&t))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A raw HTTP/1.1 upstream: `/hang` answers after 3 s, `/reset` closes without answering,
/// `/ws` with `Upgrade: websocket` switches protocols and echoes, `/headers` answers with
/// the request head it got, anything else answers 200
/// `ok`. Counts resets.
async fn upstream(l: TcpListener, resets: Arc<AtomicU32>) {
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        let resets = resets.clone();
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
                resets.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if path.starts_with("/ws") && head.to_ascii_lowercase().contains("upgrade: websocket") {
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")
                    .await;
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
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
            if path.contains("hang") {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        });
    }
}

/// An h2c upstream answering with the `:authority` it was sent and its protocol.
async fn h2_upstream(l: TcpListener) {
    loop {
        let Ok((sock, _)) = l.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(
                |req: hyper::Request<hyper::body::Incoming>| async move {
                    let body = format!(
                        "{:?} {}",
                        req.version(),
                        req.uri()
                            .authority()
                            .map(|a| a.to_string())
                            .unwrap_or_default()
                    );
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from(body)),
                    ))
                },
            );
            let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
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

/// Sends raw bytes, returns everything read until the peer closes (bounded).
async fn exchange(to: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(to).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn get(to: SocketAddr, path: &str) -> String {
    exchange(
        to,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}

struct Setup {
    http: SocketAddr,
    tcp: SocketAddr,
    resets: Arc<AtomicU32>,
    store: Arc<Store>,
    _listeners: Listeners,
}

async fn setup() -> Setup {
    let up_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = up_l.local_addr().unwrap();
    let resets = Arc::new(AtomicU32::new(0));
    tokio::spawn(upstream(up_l, resets.clone()));
    let echo_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo_l.local_addr().unwrap();
    tokio::spawn(echo(echo_l));
    let dead = free_addr();
    let h2_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h2_addr = h2_l.local_addr().unwrap();
    tokio::spawn(h2_upstream(h2_l));
    let mut h2_cluster = static_cluster("h2", h2_addr, None);
    h2_cluster.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
        any(&HttpProtocolOptions {
            upstream_protocol_options: Some(
                http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                    http_protocol_options::ExplicitHttpConfig {
                        protocol_config: Some(
                            http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                                Default::default(),
                            ),
                        ),
                    },
                ),
            ),
            ..Default::default()
        }),
    );

    let (http, tcp) = (free_addr(), free_addr());
    let config = Config::default()
        .with_clusters(
            vec![
                static_cluster("up", up, None),
                static_cluster("limited", up, Some(1)),
                static_cluster("dead", dead, None),
                static_cluster("echo", echo_addr, None),
                h2_cluster,
            ],
            "1",
        )
        .ok()
        .unwrap()
        .with_listeners(
            vec![
                http_listener("http", http, "r"),
                tcp_listener("tcp", tcp, "echo"),
            ],
            "1",
        )
        .ok()
        .unwrap()
        .with_routes(
            vec![RouteConfiguration {
                name: "r".into(),
                virtual_hosts: vec![VirtualHost {
                    name: "all".into(),
                    domains: vec!["*".into()],
                    routes: vec![
                        connect_route("echo"),
                        route_to("/hang", "up", 300, None),
                        route_to("/reset", "up", 0, Some("reset")),
                        route_to("/refused", "dead", 0, None),
                        route_to("/limited", "limited", 0, None),
                        route_to("/h2", "h2", 0, None),
                        route_to("/", "up", 0, None),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            "1",
        )
        .ok()
        .unwrap();
    assert!(config.initialized());
    let store = Arc::new(Store::default());
    let (proxy, _quit) = Proxy::new(
        store.clone(),
        "sidecar~127.0.0.1~t.ns~ns.svc.cluster.local".into(),
        ("t".into(), "ns".into()),
        false,
    );
    let mut listeners = Listeners::new(proxy);
    let mut config = config;
    assert_eq!(listeners.apply(&mut config), Vec::<String>::new());
    store.set(config);
    Setup {
        http,
        tcp,
        resets,
        store,
        _listeners: listeners,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_answers_for_bad_upstreams_and_clients() {
    let s = setup().await;

    let ok = get(s.http, "/x").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("server: envoy"), "{ok}");
    assert!(ok.contains("x-envoy-upstream-service-time"), "{ok}");

    // Trace headers pass through; a request id is added when there is none.
    let h = exchange(
        s.http,
        b"GET /headers HTTP/1.1\r\nHost: test\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nx-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7\r\nx-b3-spanid: e457b5a2e4d86bd1\r\nConnection: close\r\n\r\n",
    )
    .await
    .to_ascii_lowercase();
    assert!(
        h.contains("traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        "{h}"
    );
    assert!(
        h.contains("x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7"),
        "{h}"
    );
    assert!(h.contains("x-b3-spanid: e457b5a2e4d86bd1"), "{h}");
    assert!(h.contains("x-request-id: "), "{h}");
    assert!(h.contains("x-forwarded-proto: http"), "{h}");
    let kept = exchange(
        s.http,
        b"GET /headers HTTP/1.1\r\nHost: test\r\nx-request-id: abc-123\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(kept.contains("x-request-id: abc-123"), "{kept}");

    // An HTTP/2 upstream gets the request's authority, not the host's address.
    for _ in 0..2 {
        let h2 = exchange(
            s.http,
            b"GET /h2 HTTP/1.1\r\nHost: reviews.shop:9080\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(h2.starts_with("HTTP/1.1 200"), "{h2}");
        assert!(h2.ends_with("HTTP/2.0 reviews.shop:9080"), "{h2}");
    }

    // A hanging upstream: the route timeout answers 504.
    let start = Instant::now();
    let hang = get(s.http, "/hang").await;
    assert!(hang.starts_with("HTTP/1.1 504"), "{hang}");
    assert!(hang.contains("upstream request timeout"), "{hang}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );

    // Resets are retried (2 retries), then 503.
    let reset = get(s.http, "/reset").await;
    assert!(reset.starts_with("HTTP/1.1 503"), "{reset}");
    assert_eq!(s.resets.load(Ordering::SeqCst), 3);

    // Nobody listening: 503 with Envoy's connection-failure text.
    let refused = get(s.http, "/refused").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("connection failure"), "{refused}");

    // One request at a time: the second overflows.
    let http = s.http;
    let first = tokio::spawn(async move { get(http, "/limited/hang").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = get(s.http, "/limited").await;
    assert!(second.starts_with("HTTP/1.1 503"), "{second}");
    assert!(second.contains("x-envoy-overloaded: true"), "{second}");
    assert!(first.await.unwrap().starts_with("HTTP/1.1 200"));

    // Oversized request headers are refused and the proxy keeps serving.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: test\r\nx-big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let r = exchange(s.http, big.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    assert!(get(s.http, "/x").await.starts_with("HTTP/1.1 200"));

    // A garbage request gets 400, and the proxy keeps serving.
    let r = exchange(s.http, b"NOT HTTP\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(get(s.http, "/x").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_proxy_and_connect_tunnels_splice_bytes() {
    let s = setup().await;
    let mut c = TcpStream::connect(s.tcp).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"hello");

    let mut t = TcpStream::connect(s.http).await.unwrap();
    t.write_all(b"CONNECT echo.test:7 HTTP/1.1\r\nHost: echo.test:7\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(Duration::from_secs(5), t.read_exact(&mut byte))
            .await
            .unwrap()
            .unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    t.write_all(b"tunnel").await.unwrap();
    let mut buf = [0u8; 6];
    tokio::time::timeout(Duration::from_secs(5), t.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"tunnel");

    // A websocket upgrade is passed on and spliced after 101.
    let mut w = TcpStream::connect(s.http).await.unwrap();
    w.write_all(
        b"GET /ws HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(Duration::from_secs(5), w.read_exact(&mut byte))
            .await
            .unwrap()
            .unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    w.write_all(b"frame").await.unwrap();
    let mut buf = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), w.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_keeps_its_config() {
    let s = setup().await;
    let http = s.http;
    // Starts on a config whose /hang route times out at 300 ms ...
    let in_flight = tokio::spawn(async move { get(http, "/hang").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ... and a new generation without that route is swapped in meanwhile.
    let next = s
        .store
        .current()
        .with_routes(
            vec![RouteConfiguration {
                name: "r".into(),
                virtual_hosts: vec![VirtualHost {
                    name: "all".into(),
                    domains: vec!["*".into()],
                    routes: vec![route_to("/other", "up", 0, None)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            "2",
        )
        .ok()
        .unwrap();
    s.store.set(next);
    let r = in_flight.await.unwrap();
    assert!(r.starts_with("HTTP/1.1 504"), "{r}");
    // New requests see the new generation: no route for /hang any more.
    let nr = get(s.http, "/hang").await;
    assert!(nr.starts_with("HTTP/1.1 404"), "{nr}");
}
