//! meshd's certificate authority.
//!
//! This module owns the mesh's root of trust and what it signs: a self-signed root created
//! on first start in the CA directory (`root-cert.pem`, `root-key.pem`, mode 0600 for the
//! key) or supplied by the user (`--ca-cert/--ca-key`), workload certificates issued on CSR
//! for `spiffe://TRUST_DOMAIN/ns/NS/sa/SA` with a bounded lifetime, meshd's own serving
//! certificate for 15012, and the caller token of local mode (`token` in the CA directory,
//! readable by the user who runs meshd and the sidecars). The gRPC service is in
//! [`crate::ca_server`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
            trust_root: None,
            chain: None,
        }
    }
}

/// The CA: the root and what it signs with.
pub struct Ca {
    /// The trust bundle: the root (the signing certificate itself unless it is an
    /// intermediate).
    root_pem: String,
    /// What follows a certificate the CA issues: the intermediates (PEM) then the root.
    after_leaf: Vec<String>,
    issuer: Issuer<'static, KeyPair>,
    token: String,
    workload_ttl: Duration,
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

fn root_params() -> Result<CertificateParams, CaError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "meshctl");
    dn.push(DnType::CommonName, "meshd root CA");
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
            (pem, key)
        } else {
            let key = KeyPair::generate().map_err(|e| CaError::Sign(e.to_string()))?;
            let cert = root_params()?
                .self_signed(&key)
                .map_err(|e| CaError::Sign(e.to_string()))?;
            write_private(&key_path, &key.serialize_pem())?;
            std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
            (cert.pem(), key)
        };
        let root_der = pem_to_der(&root_pem).ok_or_else(|| CaError::Root {
            path: cert_path.clone(),
            reason: "no CERTIFICATE block".into(),
        })?;
        let issuer = Issuer::from_ca_cert_der(&root_der, key).map_err(|e| CaError::Root {
            path: cert_path.clone(),
            reason: e.to_string(),
        })?;
        let signing_pem = root_pem;
        let (root_pem, after_leaf) = match &opts.trust_root {
            None => (signing_pem.clone(), vec![signing_pem.clone()]),
            Some(path) => {
                let trust = std::fs::read_to_string(path).map_err(io(path))?;
                let roots = split_pem(&trust);
                let [root] = roots.as_slice() else {
                    return Err(CaError::Root {
                        path: path.clone(),
                        reason: format!("holds {} certificates, not one root", roots.len()),
                    });
                };
                let mut chain = match &opts.chain {
                    Some(c) => split_pem(&std::fs::read_to_string(c).map_err(io(c))?),
                    None => vec![
                        split_pem(&signing_pem)
                            .into_iter()
                            .next()
                            .unwrap_or_default(),
                    ],
                };
                if chain.last() != Some(root) {
                    chain.push(root.clone());
                }
                (root.clone(), chain)
            }
        };
        // A root the CA dir does not hold (user-supplied) is copied there, so sidecars
        // find the trust bundle in one place.
        if opts.root.is_some() {
            let copy = opts.dir.join(ROOT_CERT_FILE);
            if copy != cert_path {
                std::fs::write(&copy, &root_pem).map_err(io(&copy))?;
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
            root_pem,
            after_leaf,
            issuer,
            token,
            workload_ttl: opts.workload_ttl,
            dir: opts.dir.clone(),
        })
    }

    /// The trust bundle (the root, PEM).
    pub fn root_pem(&self) -> &str {
        &self.root_pem
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
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(|e| CaError::Sign(e.to_string()))?;
        let mut chain = vec![cert.pem()];
        chain.extend(self.after_leaf.iter().cloned());
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
        let cert = p
            .signed_by(&key, &self.issuer)
            .map_err(|e| CaError::Sign(e.to_string()))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.after_leaf.iter().filter_map(|p| pem_to_der(p)));
        Ok((chain, key))
    }
}

/// The first certificate of a PEM text, DER.
pub fn pem_to_der(pem: &str) -> Option<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .and_then(Result::ok)
}

/// The certificates of a PEM text, each as its own PEM block (normalised line ends).
pub fn split_pem(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        out.push(format!("{}\n", rest[start..end].trim()));
        rest = &rest[end..];
    }
    out
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
        let root = pem_to_der(ca.root_pem()).unwrap();
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
        let parts = split_pem(&two);
        assert_eq!(parts.len(), 2);
        assert_eq!(pem_to_der(&parts[0]), pem_to_der(ca.root_pem()));
        assert!(split_pem("no certificates").is_empty());
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
