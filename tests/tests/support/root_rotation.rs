//! Shared by the mTLS e2e tests of both engines (`mtls.rs`, `mtls_native.rs`): the root
//! rotation under load, and certificates a sidecar must refuse (expired, foreign trust
//! domain, signed by a root that was rotated out), made here with rcgen from the CA
//! directory's key and presented by a small rustls client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mesh_e2e::client::{self, HttpRequest, Via};
use mesh_e2e::scenario::LoadedScenario;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::{secrets, serial_of};

/// The client's identity in the scenario (catalog's AuthorizationPolicy allows it).
pub const CLIENT_ID: &str = "spiffe://cluster.local/ns/shop/sa/client";

/// The CA directory the runner gives meshd for scenario `s`.
pub fn ca_dir(log_root: &Path, s: &LoadedScenario) -> PathBuf {
    log_root.join(&s.name).join("ca")
}

/// A client certificate and its key.
pub struct Forged {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A certificate for `id`, valid from `not_before` to `not_after`, signed by the root
/// `root_pem` (its first certificate) whose key is `root_key_pem`.
pub fn forge(
    root_pem: &str,
    root_key_pem: &str,
    id: &str,
    not_before: SystemTime,
    not_after: SystemTime,
) -> anyhow::Result<Forged> {
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(root_pem, rcgen::KeyPair::from_pem(root_key_pem)?)?;
    let key = rcgen::KeyPair::generate()?;
    let mut p = rcgen::CertificateParams::default();
    p.subject_alt_names = vec![rcgen::SanType::URI(id.try_into()?)];
    p.not_before = not_before.into();
    p.not_after = not_after.into();
    p.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Forged {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    })
}

/// A certificate for `id` from the CA directory's current root, valid now.
pub fn forge_current(
    ca_dir: &Path,
    id: &str,
    valid: std::ops::Range<SystemTime>,
) -> anyhow::Result<Forged> {
    let root = std::fs::read_to_string(ca_dir.join("root-cert.pem"))?;
    let key = std::fs::read_to_string(ca_dir.join("root-key.pem"))?;
    forge(&root, &key, id, valid.start, valid.end)
}

/// The test client does not check the sidecar's certificate: it is here to be judged.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What became of a request over mTLS: the local address it came from, and the HTTP
/// status or why there was none.
pub struct Outcome {
    pub from: SocketAddr,
    pub result: Result<u16, String>,
}

/// `GET http://host/path` over mTLS to `addr`, presenting `who`; every step bounded.
pub async fn mtls_get(
    addr: SocketAddr,
    who: &Forged,
    host: &str,
    path: &str,
) -> anyhow::Result<Outcome> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_client_auth_cert(who.chain.clone(), who.key.clone_key())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let step = Duration::from_secs(5);
    let tcp = tokio::time::timeout(step, tokio::net::TcpStream::connect(addr)).await??;
    let from = tcp.local_addr()?;
    let result = async {
        let mut tls = tokio::time::timeout(
            step,
            tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(ServerName::IpAddress(addr.ip().into()), tcp),
        )
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| format!("handshake: {e}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        tls.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + step;
        let read_error = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, tls.read(&mut buf)).await {
                Ok(Ok(0)) => break None,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => break Some(e.to_string()),
                Err(_) => break Some("no answer in time".to_owned()),
            }
        };
        let text = String::from_utf8_lossy(&got);
        match text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
        {
            Some(status) => Ok(status),
            None => Err(read_error.unwrap_or_else(|| "closed without an answer".to_owned())),
        }
    }
    .await;
    Ok(Outcome { from, result })
}

/// Standard base64 (Envoy's `inline_bytes` in JSON).
fn base64(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

/// The workload certificate chain (PEM) a proxy's admin `/config_dump` shows as `default`.
async fn default_chain(admin: &str) -> anyhow::Result<String> {
    let r = client::send(
        &HttpRequest::get(&format!("http://{admin}/config_dump")),
        Via::Direct(admin.parse()?),
        Duration::from_secs(5),
    )
    .await?;
    let dump: serde_json::Value = serde_json::from_slice(&r.body)?;
    for config in dump["configs"].as_array().into_iter().flatten() {
        for s in config["dynamic_active_secrets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if s["name"] == "default" {
                let chain = &s["secret"]["tls_certificate"]["certificate_chain"];
                if let Some(text) = chain["inline_string"].as_str() {
                    return Ok(text.to_owned());
                }
                if let Some(b) = chain["inline_bytes"].as_str() {
                    return Ok(String::from_utf8(base64(b))?);
                }
            }
        }
    }
    anyhow::bail!("{admin}: no `default` secret in /config_dump")
}

/// Whether the first certificate of `leaf_pem` is signed by the first of `root_pem`.
fn signed_by(leaf_pem: &str, root_pem: &str) -> anyhow::Result<bool> {
    use rustls::pki_types::pem::PemObject;
    let leaf = CertificateDer::from_pem_slice(leaf_pem.as_bytes())?;
    let root = CertificateDer::from_pem_slice(root_pem.as_bytes())?;
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf)?;
    let (_, root) = x509_parser::parse_x509_certificate(&root)?;
    Ok(leaf.verify_signature(Some(root.public_key())).is_ok())
}

/// The serials of a sidecar's `ROOTCA` rows (`meshctl proxy-config secret`).
async fn roots_of(admin: &str) -> anyhow::Result<Vec<String>> {
    Ok(secrets(admin)
        .await?
        .into_iter()
        .filter(|(n, _)| n == "ROOTCA")
        .map(|(_, s)| s)
        .collect())
}

/// A certificate's serial as meshctl shows it (hex, no leading zeros).
fn serial_hex(pem: &str) -> anyhow::Result<String> {
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(pem.as_bytes())?;
    let (_, c) = x509_parser::parse_x509_certificate(&der)?;
    let hex: String = c.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
    Ok(hex.trim_start_matches('0').to_owned())
}

/// The root rotation under load. While the client's sidecar sends requests to STRICT
/// catalog (a new connection each time where the scenario says so), `meshd ca rotate-root
/// --overlap 8s` replaces the root: both sidecars must show both roots in `ROOTCA` and a
/// new `default` certificate (the lifetime is 24 h: only the rotation can make them ask),
/// a certificate of the old root is still accepted during the overlap, then both show
/// only the new root. No request may fail; afterwards both workload certificates are
/// signed by the new root and a certificate of the old root is refused.
pub async fn root_rotation_under_load(
    s: LoadedScenario,
    meshd: PathBuf,
    ca_dir: PathBuf,
) -> anyhow::Result<Vec<String>> {
    let mut f = Vec::new();
    let client_w = s.workload("client").unwrap();
    let catalog_w = s.workload("catalog-v1").unwrap();
    let catalog_in: SocketAddr = format!("{}:9080", catalog_w.ip).parse()?;
    let admins = [
        client_w.admin_addr().unwrap().to_string(),
        catalog_w.admin_addr().unwrap().to_string(),
    ];
    let old_root = std::fs::read_to_string(ca_dir.join("root-cert.pem"))?;
    let old_key = std::fs::read_to_string(ca_dir.join("root-key.pem"))?;
    let old_serial = serial_hex(&old_root)?;
    let mut first_default = Vec::new();
    for a in &admins {
        let rows = secrets(a).await?;
        anyhow::ensure!(
            roots_of(a).await? == vec![old_serial.clone()],
            "{a}: ROOTCA should hold the one root {old_serial} before the rotation: {rows:?}"
        );
        first_default.push(serial_of(&rows, "default"));
    }

    // The load, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let via = Via::Proxy(client_w.outbound_addr());
        tokio::spawn(async move {
            let req = HttpRequest::get("http://catalog.shop:9080/items");
            let (mut ok, mut failed) = (0u32, Vec::<String>::new());
            while !stop.load(Ordering::SeqCst) {
                match client::send(&req, via, Duration::from_secs(5)).await {
                    Ok(r) if r.status == 200 => ok += 1,
                    Ok(r) => failed.push(format!("status {} {:?}", r.status, r.body_text())),
                    Err(e) => failed.push(format!("{e:#}")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let out = tokio::process::Command::new(&meshd)
        .args(["ca", "rotate-root", "--overlap", "8s", "--ca-dir"])
        .arg(&ca_dir)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "meshd ca rotate-root failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());

    // The overlap: both roots trusted, new certificates issued.
    let old_client = forge(
        &old_root,
        &old_key,
        CLIENT_ID,
        SystemTime::now() - Duration::from_secs(60),
        SystemTime::now() + Duration::from_secs(3600),
    )?;
    let mut renewed = [false, false];
    let mut both_roots: [Vec<String>; 2] = Default::default();
    let deadline = Instant::now() + Duration::from_secs(15);
    while renewed.contains(&false) && Instant::now() < deadline {
        for (i, a) in admins.iter().enumerate() {
            let rows = secrets(a).await?;
            let roots: Vec<String> = rows
                .iter()
                .filter(|(n, _)| n == "ROOTCA")
                .map(|(_, s)| s.clone())
                .collect();
            if roots.len() == 2 {
                both_roots[i] = roots;
                if serial_of(&rows, "default") != first_default[i] {
                    renewed[i] = true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{:.1} s after rotate-root: ROOTCA {both_roots:?}, renewed {renewed:?}",
        started.elapsed().as_secs_f64()
    );
    for (i, a) in admins.iter().enumerate() {
        if !both_roots[i].contains(&old_serial) || both_roots[i].len() != 2 {
            f.push(format!(
                "{a}: ROOTCA never showed both roots during the overlap: {:?}",
                both_roots[i]
            ));
        }
        if !renewed[i] {
            f.push(format!(
                "{a}: no new workload certificate after the rotation"
            ));
        }
    }
    let during = mtls_get(catalog_in, &old_client, "catalog.shop:9080", "/items").await?;
    eprintln!(
        "old root's certificate during the overlap: {:?}",
        during.result
    );
    if during.result != Ok(200) {
        f.push(format!(
            "during the overlap a certificate of the old root should still be accepted: {:?}",
            during.result
        ));
    }

    // The end of the overlap: only the new root.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = Vec::new();
    let mut dropped = [false, false];
    while dropped.contains(&false) && Instant::now() < deadline {
        for (i, a) in admins.iter().enumerate() {
            let roots = roots_of(a).await?;
            dropped[i] = roots.len() == 1 && roots[0] != old_serial;
            last.push((a.clone(), roots));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{:.1} s after rotate-root: old root dropped {dropped:?}",
        started.elapsed().as_secs_f64()
    );
    if dropped.contains(&false) {
        f.push(format!(
            "the old root was not dropped from ROOTCA after the overlap: {:?}",
            last.iter().rev().take(2).collect::<Vec<_>>()
        ));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = load.await?;
    eprintln!("{ok} requests during the rotation, {} failed", failed.len());
    if !failed.is_empty() {
        f.push(format!(
            "{} of {} requests failed during the root rotation, first: {}",
            failed.len(),
            ok as usize + failed.len(),
            failed[0]
        ));
    }
    if ok < 50 {
        f.push(format!("only {ok} requests ran during the rotation"));
    }

    // Afterwards: certificates from the new root; the old root's refused.
    let new_root = std::fs::read_to_string(ca_dir.join("root-cert.pem"))?;
    if serial_hex(&new_root)? == old_serial {
        f.push("the CA directory still holds the old root".to_owned());
    }
    for a in &admins {
        let chain = default_chain(a).await?;
        if !signed_by(&chain, &new_root)? {
            f.push(format!(
                "{a}: the workload certificate is not signed by the new root"
            ));
        }
    }
    let after = mtls_get(catalog_in, &old_client, "catalog.shop:9080", "/items").await?;
    eprintln!(
        "old root's certificate after the overlap: {:?}",
        after.result
    );
    if after.result.is_ok() {
        f.push(format!(
            "after the overlap a certificate of the old root was accepted: {:?}",
            after.result
        ));
    }
    Ok(f)
}

/// Waits (at most 10 s) for a line of `log` that contains every one of `words`.
pub async fn log_line(log: &Path, words: &[&str]) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| {
            words
                .iter()
                .all(|w| l.to_lowercase().contains(&w.to_lowercase()))
        }) {
            return Some(l.to_owned());
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// STRICT catalog takes a valid certificate of the mesh (the control: the client works)
/// and refuses an expired one (signed by the mesh root, notAfter an hour ago) and one of
/// trust domain `evil.org` (signed by the mesh root) in the handshake, each with a line of
/// catalog's sidecar log (`server_log`) holding the client's port and why: `expired`, and
/// every one of `foreign_reason`.
pub async fn bad_certificates_refused(
    s: LoadedScenario,
    ca_dir: PathBuf,
    server_log: PathBuf,
    foreign_reason: &[&str],
) -> anyhow::Result<Vec<String>> {
    let mut f = Vec::new();
    let catalog_in: SocketAddr =
        format!("{}:9080", s.workload("catalog-v1").unwrap().ip).parse()?;
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let valid = forge_current(&ca_dir, CLIENT_ID, now - hour..now + hour)?;
    let good = mtls_get(catalog_in, &valid, "catalog.shop:9080", "/items").await?;
    if good.result != Ok(200) {
        f.push(format!("a valid mesh certificate got {:?}", good.result));
    }
    let cases = [
        (
            "an expired certificate",
            CLIENT_ID,
            now - 2 * hour..now - hour,
            vec!["expired"],
        ),
        (
            "a certificate of trust domain evil.org",
            "spiffe://evil.org/ns/shop/sa/client",
            now - hour..now + hour,
            foreign_reason.to_vec(),
        ),
    ];
    for (what, id, valid, reason) in cases {
        let cert = forge_current(&ca_dir, id, valid)?;
        let got = mtls_get(catalog_in, &cert, "catalog.shop:9080", "/items").await?;
        eprintln!("{what} from {}: {:?}", got.from, got.result);
        if got.result.is_ok() {
            f.push(format!("{what} passed the handshake: {:?}", got.result));
        }
        let port = got.from.port().to_string();
        let mut words = reason.clone();
        words.push(&port);
        match log_line(&server_log, &words).await {
            Some(l) => eprintln!("catalog's log: {l}"),
            None => f.push(format!(
                "catalog's log ({}) has no line with {words:?} for {what}",
                server_log.display()
            )),
        }
    }
    Ok(f)
}
