//! meshd's certificate authority.
//!
//! This module owns the mesh's root of trust and what it signs: a self-signed root created
//! on first start in the CA directory (`root-cert.pem`, `root-key.pem`, mode 0600 for the
//! key) or supplied by the user (`--ca-cert/--ca-key`), workload certificates issued on CSR
//! for `spiffe://TRUST_DOMAIN/ns/NS/sa/SA` with a bounded lifetime, meshd's own serving
//! certificate for 15012, and the caller token of local mode (`token` in the CA directory,
//! readable by the user who runs meshd and the sidecars). The gRPC service is in
//! [`crate::ca_server`]; replacing the root with an overlap is [`crate::ca_rotation`].
//!
//! `root-cert.pem` is the trust bundle sidecars read: the root meshd signs with first
//! (the one `root-key.pem` belongs to), then, during a root rotation, the other roots
//! still trusted. The signing root can be swapped while meshd runs ([`Ca::set_root`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use mesh_core::identity::SpiffeId;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The root certificate's file name in the CA directory.
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// The root key's file name in the CA directory.
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// The caller token's file name in the CA directory.
pub const TOKEN_FILE: &str = "token";
/// The default workload certificate lifetime (Istio's).
pub const DEFAULT_WORKLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
/// The root's lifetime when meshd creates it (Istio's self-signed root: 10 years).
const ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates are valid from a little before they are issued (clock skew).
const BACKDATE: Duration = Duration::from_secs(60);
/// The shortest lifetime meshd issues.
const MIN_TTL: Duration = Duration::from_secs(10);

/// Why the CA could not start or refused a request.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("CA directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CA root {path}: {reason}")]
    Root { path: PathBuf, reason: String },
    #[error("give both --ca-cert and --ca-key, or neither")]
    HalfRoot,
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("the CSR cannot be read: {0}")]
    Csr(String),
    #[error("the CSR must carry exactly one URI SAN, a SPIFFE id; it has {0}")]
    Sans(String),
    #[error("the CSR asks for {asked}, outside trust domain {trust_domain}")]
    TrustDomain { asked: String, trust_domain: String },
    #[error("no workload in the registry runs as {0}")]
    Unknown(String),
}

/// Where the CA keeps its files and which root it uses.
#[derive(Clone, Debug)]
pub struct CaOptions {
    /// Root (unless supplied), token.
    pub dir: PathBuf,
    /// A user-supplied root: certificate and key PEM files.
    pub root: Option<(PathBuf, PathBuf)>,
    /// The lifetime of workload certificates (a request may ask for less).
    pub workload_ttl: Duration,
    /// How long a replaced root stays trusted after meshd starts signing with the new one
    /// (None: the workload certificate lifetime, so every certificate the old root signed
    /// has expired when it is dropped).
    pub root_overlap: Option<Duration>,
    /// With `root`, when that certificate is an intermediate (Istio's plugged-in CA,
    /// `cacerts`): the root it chains to (`root-cert.pem`), which becomes the trust bundle.
    pub trust_root: Option<PathBuf>,
    /// With `trust_root`: the signing certificate's chain up to the root
    /// (`cert-chain.pem`), sent after every issued certificate; default: the signing
    /// certificate alone.
    pub chain: Option<PathBuf>,
}

impl CaOptions {
    pub fn new(dir: PathBuf) -> Self {
        CaOptions {
            dir,
            root: None,
            workload_ttl: DEFAULT_WORKLOAD_TTL,
            root_overlap: None,
            trust_root: None,
            chain: None,
        }
    }
}

/// What meshd signs with; swapped whole by a root rotation.
struct Signer {
    /// The trust bundle's root: the signing certificate itself unless it is an
    /// intermediate (`cacerts`).
    root_pem: String,
    /// What follows a certificate the CA issues: the intermediates (PEM) then the root.
    after_leaf: Vec<String>,
    issuer: Issuer<'static, KeyPair>,
}

/// The CA: the root and what it signs with.
pub struct Ca {
    /// Swapped whole by a root rotation; never held across an await.
    signer: RwLock<Arc<Signer>>,
    /// Bumped on every swap (the CA server rebuilds its serving certificate).
    generation: std::sync::atomic::AtomicU64,
    token: String,
    workload_ttl: Duration,
    root_overlap: Duration,
    dir: PathBuf,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("dir", &self.dir).finish()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), CaError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(text.as_bytes()).map_err(io(path))
}

/// A random hex string of `bytes` bytes from the ring provider's generator.
fn random_hex(bytes: usize) -> Result<String, CaError> {
    let mut buf = vec![0u8; bytes];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut buf)
        .map_err(|_| CaError::Sign("no randomness".into()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn serial() -> Result<SerialNumber, CaError> {
    let mut buf = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut buf)
        .map_err(|_| CaError::Sign("no randomness".into()))?;
    buf[0] &= 0x7f; // positive
    buf[0] |= 0x01; // no leading zero byte to strip
    Ok(SerialNumber::from_slice(&buf))
}

/// A self-signed root named `common_name`: its PEM and key.
pub(crate) fn new_root(common_name: &str) -> Result<(String, KeyPair), CaError> {
    let key = KeyPair::generate().map_err(|e| CaError::Sign(e.to_string()))?;
    let cert = root_params(common_name)?
        .self_signed(&key)
        .map_err(|e| CaError::Sign(e.to_string()))?;
    Ok((cert.pem(), key))
}

fn root_params(common_name: &str) -> Result<CertificateParams, CaError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "meshctl");
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemTime::now();
    p.not_before = (now - BACKDATE).into();
    p.not_after = (now + ROOT_TTL).into();
    p.serial_number = Some(serial()?);
    Ok(p)
}

impl Ca {
    /// Loads the root (the user's, else the CA directory's, else a new one written there)
    /// and the token (created when missing).
    pub fn open(opts: &CaOptions) -> Result<Ca, CaError> {
        std::fs::create_dir_all(&opts.dir).map_err(io(&opts.dir))?;
        let (cert_path, key_path) = match &opts.root {
            Some((c, k)) => (c.clone(), k.clone()),
            None => (opts.dir.join(ROOT_CERT_FILE), opts.dir.join(ROOT_KEY_FILE)),
        };
        let (root_pem, key) = if opts.root.is_some() || cert_path.exists() {
            let pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
            let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| CaError::Root {
                path: key_path.clone(),
                reason: e.to_string(),
            })?;
            // The bundle's root the key belongs to (the first one, unless meshd stopped
            // half-way through a rotation's switch).
            let root = pem_certificates(&pem)
                .into_iter()
                .find(|c| key_matches(c, &key))
                .unwrap_or(pem);
            (root, key)
        } else {
            let (pem, key) = new_root("meshd root CA")?;
            write_private(&key_path, &key.serialize_pem())?;
            std::fs::write(&cert_path, &pem).map_err(io(&cert_path))?;
            (pem, key)
        };
        let mut signer = signer(&root_pem, key, &cert_path)?;
        if let Some(path) = &opts.trust_root {
            // An intermediate (Istio's plugged-in CA): the root it chains to is the trust
            // bundle and every issued certificate is followed by the chain up to it.
            let trust = std::fs::read_to_string(path).map_err(io(path))?;
            let roots = pem_certificates(&trust);
            let [root] = roots.as_slice() else {
                return Err(CaError::Root {
                    path: path.clone(),
                    reason: format!("holds {} certificates, not one root", roots.len()),
                });
            };
            let mut chain = match &opts.chain {
                Some(c) => pem_certificates(&std::fs::read_to_string(c).map_err(io(c))?),
                None => vec![signer.root_pem.clone()],
            };
            if chain.last() != Some(root) {
                chain.push(root.clone());
            }
            signer.root_pem = root.clone();
            signer.after_leaf = chain;
        }
        // A root the CA dir does not hold (user-supplied) is put first in the dir's bundle,
        // so sidecars find the trust bundle in one place; the bundle's other roots are kept
        // only while a rotation's overlap runs.
        if opts.root.is_some() {
            let copy = opts.dir.join(ROOT_CERT_FILE);
            if copy != cert_path {
                let mut bundle = vec![signer.root_pem.clone()];
                if opts.dir.join(crate::ca_rotation::STATE_FILE).exists() {
                    let old = std::fs::read_to_string(&copy).unwrap_or_default();
                    bundle.extend(pem_certificates(&old));
                }
                write_atomic(&copy, &join_bundle(&bundle), false)?;
            }
        }
        let token_path = opts.dir.join(TOKEN_FILE);
        let token = match std::fs::read_to_string(&token_path) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => {
                let t = random_hex(32)?;
                write_private(&token_path, &t)?;
                t
            }
        };
        Ok(Ca {
            signer: RwLock::new(Arc::new(signer)),
            generation: std::sync::atomic::AtomicU64::new(0),
            token,
            workload_ttl: opts.workload_ttl,
            root_overlap: opts.root_overlap.unwrap_or(opts.workload_ttl),
            dir: opts.dir.clone(),
        })
    }

    fn signer(&self) -> Arc<Signer> {
        match self.signer.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Signs with `cert_pem` (a CA certificate) and its key `key_pem` from now on.
    pub fn set_root(&self, cert_pem: &str, key_pem: &str) -> Result<(), CaError> {
        let path = self.dir.join(crate::ca_rotation::NEXT_CERT_FILE);
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::Root {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let next = Arc::new(signer(cert_pem, key, &path)?);
        match self.signer.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Changes each time the signing root does.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How long a replaced root stays trusted by default.
    pub fn root_overlap(&self) -> Duration {
        self.root_overlap
    }

    /// The root meshd signs with, PEM.
    pub fn root_pem(&self) -> String {
        self.signer().root_pem.clone()
    }

    /// The token callers present in local mode (`authorization: Bearer TOKEN`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Signs a workload CSR. The CSR must name exactly one SPIFFE id in `trust_domain`, and
    /// `known` must accept it (meshd: a workload in the registry runs as it). The lifetime
    /// is `requested` capped at the CA's workload lifetime. Returns the chain, PEM: the
    /// workload's certificate, then the root.
    pub fn sign_workload(
        &self,
        csr_pem: &str,
        requested: Option<Duration>,
        trust_domain: &str,
        known: impl Fn(&SpiffeId) -> bool,
    ) -> Result<(SpiffeId, Vec<String>), CaError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::Csr(e.to_string()))?;
        let uris: Vec<&str> = csr
            .params
            .subject_alt_names
            .iter()
            .filter_map(|s| match s {
                SanType::URI(u) => Some(u.as_str()),
                _ => None,
            })
            .collect();
        let [uri] = uris.as_slice() else {
            return Err(CaError::Sans(format!("{} URI SANs", uris.len())));
        };
        let id: SpiffeId = uri.parse().map_err(|e| CaError::Sans(format!("{e}")))?;
        if id.trust_domain != trust_domain {
            return Err(CaError::TrustDomain {
                asked: id.to_string(),
                trust_domain: trust_domain.to_owned(),
            });
        }
        if !known(&id) {
            return Err(CaError::Unknown(id.to_string()));
        }
        let ttl = requested
            .filter(|d| !d.is_zero())
            .map_or(self.workload_ttl, |d| d.min(self.workload_ttl))
            .max(MIN_TTL);
        let now = SystemTime::now();
        let p = &mut csr.params;
        p.subject_alt_names = vec![SanType::URI(
            id.to_string()
                .try_into()
                .map_err(|e: rcgen::Error| CaError::Sign(e.to_string()))?,
        )];
        p.distinguished_name = DistinguishedName::new();
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.not_before = (now - BACKDATE.min(ttl / 4)).into();
        p.not_after = (now + ttl).into();
        p.serial_number = Some(serial()?);
        p.use_authority_key_identifier_extension = true;
        let signer = self.signer();
        let cert = csr
            .signed_by(&signer.issuer)
            .map_err(|e| CaError::Sign(e.to_string()))?;
        let mut chain = vec![cert.pem()];
        chain.extend(signer.after_leaf.iter().cloned());
        Ok((id, chain))
    }

    /// meshd's own certificate for 15012: IP SAN `ip` (clients dial the address) and the
    /// names Istio's clients expect, signed by the root; with its key.
    pub fn serving_identity(
        &self,
        ip: IpAddr,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CaError> {
        self.serving_identity_for(
            vec!["istiod.istio-system.svc".to_owned(), "localhost".to_owned()],
            &[ip],
        )
    }

    /// A serving certificate for DNS SANs `names` and IP SANs `ips`, signed by the root
    /// (the chain ends with the root); with its key.
    pub fn serving_identity_for(
        &self,
        names: Vec<String>,
        ips: &[IpAddr],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CaError> {
        let key = KeyPair::generate().map_err(|e| CaError::Sign(e.to_string()))?;
        let mut p = CertificateParams::new(names).map_err(|e| CaError::Sign(e.to_string()))?;
        p.subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "meshd");
        p.distinguished_name = dn;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = SystemTime::now();
        p.not_before = (now - BACKDATE).into();
        p.not_after = (now + ROOT_TTL / 10).into();
        p.serial_number = Some(serial()?);
        p.use_authority_key_identifier_extension = true;
        let signer = self.signer();
        let cert = p
            .signed_by(&key, &signer.issuer)
            .map_err(|e| CaError::Sign(e.to_string()))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut chain = vec![cert.der().clone()];
        chain.extend(signer.after_leaf.iter().filter_map(|p| pem_to_der(p)));
        Ok((chain, key))
    }
}

/// The signer of a root certificate (PEM, the first certificate of the text) and its key:
/// the certificate must be a CA and the key must be its key.
fn signer(root_pem: &str, key: KeyPair, path: &Path) -> Result<Signer, CaError> {
    let bad = |reason: String| CaError::Root {
        path: path.to_owned(),
        reason,
    };
    let root_der = pem_to_der(root_pem).ok_or_else(|| bad("no CERTIFICATE block".into()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&root_der).map_err(|e| bad(e.to_string()))?;
    if !cert.is_ca() {
        return Err(bad("not a CA certificate".into()));
    }
    if !key_matches(root_pem, &key) {
        return Err(bad("the key does not belong to the certificate".into()));
    }
    let root_pem = pem_certificates(root_pem)
        .into_iter()
        .next()
        .ok_or_else(|| bad("no CERTIFICATE block".into()))?;
    let issuer = Issuer::from_ca_cert_der(&root_der, key).map_err(|e| bad(e.to_string()))?;
    Ok(Signer {
        after_leaf: vec![root_pem.clone()],
        root_pem,
        issuer,
    })
}

/// Whether `key` is the key of the certificate `cert_pem`.
pub(crate) fn key_matches(cert_pem: &str, key: &KeyPair) -> bool {
    pem_to_der(cert_pem).is_some_and(|der| {
        x509_parser::parse_x509_certificate(&der).is_ok_and(|(_, c)| {
            c.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
        })
    })
}

/// Each certificate of a PEM text, as its own PEM block (newline-terminated).
pub fn pem_certificates(pem: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        out.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    out
}

/// PEM blocks joined into one bundle, each once, in order.
pub fn join_bundle(certs: &[String]) -> String {
    let mut seen = std::collections::HashSet::new();
    certs
        .iter()
        .map(|c| c.trim().to_owned() + "\n")
        .filter(|c| seen.insert(c.clone()))
        .collect()
}

/// Writes `text` to `path` through a temporary file and a rename, so a reader sees the
/// old or the new content, never a part; mode 0600 when `private`.
pub fn write_atomic(path: &Path, text: &str, private: bool) -> Result<(), CaError> {
    let tmp = path.with_extension("tmp");
    if private {
        write_private(&tmp, text)?;
    } else {
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The first certificate of a PEM text, DER.
pub fn pem_to_der(pem: &str) -> Option<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .and_then(Result::ok)
}

/// Whether a workload of the registry runs as `id` (its namespace and service account;
/// an unset service account is `default`).
pub fn registry_knows(registry: &mesh_core::xds::registry::Registry, id: &SpiffeId) -> bool {
    registry.workloads.iter().any(|w| {
        let sa = if w.service_account.is_empty() {
            "default"
        } else {
            &w.service_account
        };
        w.namespace == id.namespace && sa == id.service_account
    })
}

/// Shared handle.
pub type SharedCa = Arc<Ca>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("meshd-ca-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn csr(uri: &str) -> String {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn root_is_created_once_and_reused() {
        let dir = tmp("reuse");
        let a = Ca::open(&CaOptions::new(dir.clone())).unwrap();
        let b = Ca::open(&CaOptions::new(dir.clone())).unwrap();
        assert_eq!(a.root_pem(), b.root_pem());
        assert_eq!(a.token(), b.token());
        assert_eq!(a.token().len(), 64);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(ROOT_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn workload_certificates_carry_the_spiffe_id_and_lifetime() {
        let dir = tmp("issue");
        let ca = Ca::open(&CaOptions::new(dir.clone())).unwrap();
        let (id, chain) = ca
            .sign_workload(
                &csr("spiffe://cluster.local/ns/shop/sa/web"),
                Some(Duration::from_secs(3600)),
                "cluster.local",
                |_| true,
            )
            .unwrap();
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], ca.root_pem());
        let der = pem_to_der(&chain[0]).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let life = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert!((3600..=3600 + 60).contains(&life), "{life}");
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            format!("{:?}", san.value.general_names),
            "[URI(\"spiffe://cluster.local/ns/shop/sa/web\")]"
        );
        // Signed by the root.
        let root = pem_to_der(&ca.root_pem()).unwrap();
        let (_, root) = x509_parser::parse_x509_certificate(&root).unwrap();
        cert.verify_signature(Some(root.public_key())).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn foreign_trust_domains_unknown_identities_and_bad_sans_are_refused() {
        let dir = tmp("refuse");
        let ca = Ca::open(&CaOptions::new(dir.clone())).unwrap();
        let err = ca
            .sign_workload(
                &csr("spiffe://evil.org/ns/shop/sa/web"),
                None,
                "cluster.local",
                |_| true,
            )
            .unwrap_err();
        assert!(matches!(err, CaError::TrustDomain { .. }), "{err}");
        let err = ca
            .sign_workload(
                &csr("spiffe://cluster.local/ns/shop/sa/web"),
                None,
                "cluster.local",
                |_| false,
            )
            .unwrap_err();
        assert!(matches!(err, CaError::Unknown(_)), "{err}");
        let err = ca
            .sign_workload(&csr("https://x"), None, "cluster.local", |_| true)
            .unwrap_err();
        assert!(matches!(err, CaError::Sans(_)), "{err}");
        let err = ca
            .sign_workload("not a csr", None, "cluster.local", |_| true)
            .unwrap_err();
        assert!(matches!(err, CaError::Csr(_)), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pem_texts_split_into_certificates() {
        let dir = tmp("split");
        let ca = Ca::open(&CaOptions::new(dir.clone())).unwrap();
        let two = format!("junk\n{}\r\n{}", ca.root_pem(), ca.root_pem());
        let parts = pem_certificates(&two);
        assert_eq!(parts.len(), 2);
        assert_eq!(pem_to_der(&parts[0]), pem_to_der(&ca.root_pem()));
        assert!(pem_certificates("no certificates").is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_user_supplied_root_signs_and_is_copied_to_the_dir() {
        let src = tmp("user-src");
        let first = Ca::open(&CaOptions::new(src.clone())).unwrap();
        let dir = tmp("user");
        let mut opts = CaOptions::new(dir.clone());
        opts.root = Some((src.join(ROOT_CERT_FILE), src.join(ROOT_KEY_FILE)));
        let ca = Ca::open(&opts).unwrap();
        assert_eq!(ca.root_pem(), first.root_pem());
        assert_eq!(
            std::fs::read_to_string(dir.join(ROOT_CERT_FILE)).unwrap(),
            first.root_pem()
        );
        assert!(!dir.join(ROOT_KEY_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&src).unwrap();
    }
}
