//! Replacing the CA's root with an overlap, without a failed handshake.
//!
//! This module owns the root rotation: staging a next root in the CA directory
//! (`meshd ca rotate-root`, [`stage`]) and the three steps meshd takes once it sees one
//! ([`step`], polled every second by [`keep`]):
//!
//! 1. *trust*: the next root is appended to the trust bundle `root-cert.pem` while meshd
//!    still signs with the current root. Sidecars watch the bundle (every second) and load
//!    it into their trust (Envoy: SDS `ROOTCA`; the native engine: its verifiers) without a
//!    new certificate.
//! 2. *switch*, [`TRUST_PROPAGATION`] later (every sidecar now trusts both roots): meshd
//!    signs with the next root (workload certificates and its own 15012 certificate), the
//!    next key becomes `root-key.pem` and the next root moves first in the bundle. A
//!    sidecar that sees the bundle's first root change asks for a new certificate at once,
//!    not at 80% of its lifetime.
//! 3. *drop*, after the overlap (`meshd --root-overlap`, or the rotation's own
//!    `--overlap`; default the workload certificate lifetime, so every certificate the old
//!    root signed has expired): the old root leaves the bundle, and a certificate it signed
//!    is refused from then on.
//!
//! The step in progress is kept in the file `root-rotation` (`switch-at`/`overlap` or
//! `drop-at`, seconds), so a restarted meshd carries on where it stopped. Istio differs:
//! istiod's self-signed root rotator re-signs the root with the *same* key (old
//! certificates still verify, nothing is dropped), and a plugged-in root is rotated by the
//! operator in three rollouts of `cacerts` (`root-cert.pem` holding both roots with
//! `ISTIO_MULTIROOT_MESH`, then signing with the new one, then removing the old one) with
//! proxies picking the bundle up through the mesh config; meshd runs those three steps
//! itself from one command, and its sidecars re-request their certificates on their own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::KeyPair;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::ca::{
    Ca, CaError, ROOT_CERT_FILE, ROOT_KEY_FILE, join_bundle, key_matches, new_root,
    pem_certificates, write_atomic,
};

/// The staged next root's certificate.
pub const NEXT_CERT_FILE: &str = "next-root-cert.pem";
/// The staged next root's key.
pub const NEXT_KEY_FILE: &str = "next-root-key.pem";
/// The staged rotation's overlap, seconds (optional).
pub const NEXT_OVERLAP_FILE: &str = "next-root-overlap";
/// The rotation in progress.
pub const STATE_FILE: &str = "root-rotation";
/// How long the next root is trusted before meshd signs with it: sidecars read the
/// bundle every second, so every one trusts both roots by then.
pub const TRUST_PROPAGATION: Duration = Duration::from_secs(5);
/// How often meshd looks at the CA directory.
pub const POLL: Duration = Duration::from_secs(1);

/// Where a rotation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Both roots trusted, the current one signing; the next one signs from `switch_at`.
    Trusting {
        switch_at: SystemTime,
        overlap: Duration,
    },
    /// The new root signs; the old one is trusted until `drop_at`.
    Overlap { drop_at: SystemTime },
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Phase {
    fn render(&self) -> String {
        match self {
            Phase::Trusting { switch_at, overlap } => format!(
                "switch-at {}\noverlap {}\n",
                secs(*switch_at),
                overlap.as_secs()
            ),
            Phase::Overlap { drop_at } => format!("drop-at {}\n", secs(*drop_at)),
        }
    }

    fn parse(text: &str) -> Option<Phase> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
        };
        if let Some(d) = get("drop-at ") {
            return Some(Phase::Overlap { drop_at: at(d) });
        }
        Some(Phase::Trusting {
            switch_at: at(get("switch-at ")?),
            overlap: Duration::from_secs(get("overlap ")?),
        })
    }
}

/// The rotation in progress in `dir`, if any.
pub fn phase(dir: &Path) -> Result<Option<Phase>, CaError> {
    let path = dir.join(STATE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => Phase::parse(&t).map(Some).ok_or_else(|| CaError::Root {
            path,
            reason: "unreadable rotation state".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// A certificate's serial, hex, for logs.
pub fn serial_of(pem: &str) -> String {
    crate::ca::pem_to_der(pem)
        .and_then(|der| {
            x509_parser::parse_x509_certificate(&der)
                .ok()
                .map(|(_, c)| c.raw_serial_as_string().replace(':', ""))
        })
        .unwrap_or_default()
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(io(path))
}

/// Checks that `cert_pem` is a CA certificate and `key_pem` its key.
fn check_root(cert_pem: &str, key_pem: &str, path: &Path) -> Result<(), CaError> {
    let bad = |reason: String| CaError::Root {
        path: path.to_owned(),
        reason,
    };
    let key = KeyPair::from_pem(key_pem).map_err(|e| bad(format!("key: {e}")))?;
    let der = crate::ca::pem_to_der(cert_pem).ok_or_else(|| bad("no CERTIFICATE block".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| bad(e.to_string()))?;
    if !cert.is_ca() {
        return Err(bad("not a CA certificate".into()));
    }
    if !key_matches(cert_pem, &key) {
        return Err(bad("the key does not belong to the certificate".into()));
    }
    Ok(())
}

/// What [`stage`] put in place.
#[derive(Debug)]
pub struct Staged {
    /// The next root's serial, hex.
    pub serial: String,
    pub cert: PathBuf,
}

/// Stages a next root in the CA directory `dir` for a running (or the next) meshd: the
/// given certificate and key (PEM files), else a new self-signed root; with the overlap
/// for this rotation when given. Refused while a rotation is in progress or when `dir`
/// holds no CA.
pub fn stage(
    dir: &Path,
    supplied: Option<(PathBuf, PathBuf)>,
    overlap: Option<Duration>,
) -> Result<Staged, CaError> {
    let bundle = dir.join(ROOT_CERT_FILE);
    if !bundle.exists() {
        return Err(CaError::Root {
            path: bundle,
            reason: "no CA here yet (meshd creates its root on first start with --ca-dir)".into(),
        });
    }
    let busy = match phase(dir)? {
        Some(Phase::Overlap { drop_at }) => Some(format!(
            "the last rotation's overlap runs until {} (unix seconds)",
            secs(drop_at)
        )),
        Some(Phase::Trusting { .. }) => Some("a rotation is in progress".to_owned()),
        None if dir.join(NEXT_CERT_FILE).exists() => {
            Some(format!("a next root is already staged ({NEXT_CERT_FILE})"))
        }
        None => None,
    };
    if let Some(reason) = busy {
        return Err(CaError::Root {
            path: dir.join(STATE_FILE),
            reason,
        });
    }
    let (cert_pem, key_pem) = match &supplied {
        Some((c, k)) => {
            let (cert, key) = (read(c)?, read(k)?);
            check_root(&cert, &key, c)?;
            (cert, key)
        }
        None => {
            let name = format!("meshd root CA {}", secs(SystemTime::now()));
            let (cert, key) = new_root(&name)?;
            (cert, key.serialize_pem())
        }
    };
    let current = read(&bundle)?;
    if pem_certificates(&current)
        .iter()
        .any(|c| pem_certificates(&cert_pem).first() == Some(c))
    {
        return Err(CaError::Root {
            path: bundle,
            reason: "that root is already in the trust bundle".into(),
        });
    }
    // The key and the overlap first: meshd starts on the certificate's appearance.
    write_atomic(&dir.join(NEXT_KEY_FILE), &key_pem, true)?;
    let overlap_path = dir.join(NEXT_OVERLAP_FILE);
    match overlap {
        Some(o) => write_atomic(&overlap_path, &format!("{}\n", o.as_secs()), false)?,
        None => {
            let _ = std::fs::remove_file(&overlap_path);
        }
    }
    let cert = dir.join(NEXT_CERT_FILE);
    write_atomic(&cert, &cert_pem, false)?;
    Ok(Staged {
        serial: serial_of(&cert_pem),
        cert,
    })
}

/// Advances the rotation in the CA's directory as of `now`; returns what was done.
pub fn step(ca: &Ca, now: SystemTime) -> Result<Option<String>, CaError> {
    let dir = ca.dir();
    let bundle_path = dir.join(ROOT_CERT_FILE);
    let next_cert = dir.join(NEXT_CERT_FILE);
    let next_key = dir.join(NEXT_KEY_FILE);
    let state = dir.join(STATE_FILE);
    let staged = next_cert.exists();
    match (phase(dir)?, staged) {
        (None, true) => {
            let checked = read(&next_cert).and_then(|cert| {
                let key = read(&next_key)?;
                check_root(&cert, &key, &next_cert)?;
                Ok(cert)
            });
            let cert = match checked {
                Ok(cert) => cert,
                Err(e) => {
                    // Set aside so it is not tried again every second.
                    let _ = std::fs::rename(&next_cert, next_cert.with_extension("pem.rejected"));
                    return Err(e);
                }
            };
            let overlap = std::fs::read_to_string(dir.join(NEXT_OVERLAP_FILE))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .map_or(ca.root_overlap(), Duration::from_secs);
            let mut roots = pem_certificates(&read(&bundle_path)?);
            roots.extend(pem_certificates(&cert));
            write_atomic(&bundle_path, &join_bundle(&roots), false)?;
            let phase = Phase::Trusting {
                switch_at: now + TRUST_PROPAGATION,
                overlap,
            };
            write_atomic(&state, &phase.render(), false)?;
            Ok(Some(format!(
                "root rotation: root {} is trusted beside {}; meshd signs with it in {:?}, \
                 and the old root is dropped {:?} after that",
                serial_of(&cert),
                serial_of(&ca.root_pem()),
                TRUST_PROPAGATION,
                overlap
            )))
        }
        (Some(Phase::Trusting { switch_at, overlap }), true) if now >= switch_at => {
            let cert = read(&next_cert)?;
            let key = read(&next_key)?;
            let old = ca.root_pem();
            ca.set_root(&cert, &key)?;
            write_atomic(&dir.join(ROOT_KEY_FILE), &key, true)?;
            let mut roots = pem_certificates(&cert);
            roots.extend(pem_certificates(&read(&bundle_path)?));
            write_atomic(&bundle_path, &join_bundle(&roots), false)?;
            for f in [&next_cert, &next_key, &dir.join(NEXT_OVERLAP_FILE)] {
                let _ = std::fs::remove_file(f);
            }
            let phase = Phase::Overlap {
                drop_at: now + overlap,
            };
            write_atomic(&state, &phase.render(), false)?;
            Ok(Some(format!(
                "root rotation: signing with root {}; root {} stays trusted for {overlap:?}",
                serial_of(&cert),
                serial_of(&old)
            )))
        }
        (Some(Phase::Trusting { .. }), false) => {
            // The staged root was taken away before meshd signed with it: cancelled.
            write_atomic(&bundle_path, &ca.root_pem(), false)?;
            std::fs::remove_file(&state).map_err(io(&state))?;
            Ok(Some(
                "root rotation cancelled (the next root was removed); the bundle holds the \
                 signing root only"
                    .to_owned(),
            ))
        }
        (Some(Phase::Overlap { drop_at }), _) if now >= drop_at => {
            let root = ca.root_pem();
            let dropped: Vec<String> = pem_certificates(&read(&bundle_path)?)
                .iter()
                .filter(|c| **c != root)
                .map(|c| serial_of(c))
                .collect();
            write_atomic(&bundle_path, &root, false)?;
            std::fs::remove_file(&state).map_err(io(&state))?;
            Ok(Some(format!(
                "root rotation done: the overlap is over, root(s) {} left the trust bundle; \
                 only root {} is trusted",
                dropped.join(", "),
                serial_of(&root)
            )))
        }
        _ => Ok(None),
    }
}

/// Runs [`step`] every [`POLL`] until `stop` turns true, logging what it does.
pub async fn keep(ca: Arc<Ca>, mut stop: watch::Receiver<bool>) {
    loop {
        match step(&ca, SystemTime::now()) {
            Ok(Some(done)) => info!(ca.dir = %ca.dir().display(), "{done}"),
            Ok(None) => {}
            Err(e) => warn!(ca.dir = %ca.dir().display(), error = %e, "root rotation step failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::ca::CaOptions;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("meshd-rot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn bundle(dir: &Path) -> Vec<String> {
        pem_certificates(&std::fs::read_to_string(dir.join(ROOT_CERT_FILE)).unwrap())
    }

    fn csr() -> String {
        let key = KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.subject_alt_names = vec![rcgen::SanType::URI(
            "spiffe://cluster.local/ns/a/sa/b".try_into().unwrap(),
        )];
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    /// Whether the leaf `pem` is signed by the root `root_pem`.
    fn signed_by(pem: &str, root_pem: &str) -> bool {
        let der = crate::ca::pem_to_der(pem).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&der).unwrap();
        let rder = crate::ca::pem_to_der(root_pem).unwrap();
        let (_, root) = x509_parser::parse_x509_certificate(&rder).unwrap();
        leaf.verify_signature(Some(root.public_key())).is_ok()
    }

    #[test]
    fn a_staged_root_is_trusted_then_signs_then_the_old_one_is_dropped() {
        let dir = tmp("steps");
        let mut opts = CaOptions::new(dir.clone());
        opts.root_overlap = Some(Duration::from_secs(60));
        let ca = Ca::open(&opts).unwrap();
        let old = ca.root_pem();
        let t0 = SystemTime::now();
        assert_eq!(step(&ca, t0).unwrap(), None);
        let staged = stage(&dir, None, None).unwrap();
        let next = std::fs::read_to_string(&staged.cert).unwrap();
        // A second rotation waits for this one.
        assert!(stage(&dir, None, None).is_err());

        // 1. trust: both roots in the bundle, the old one first and still signing.
        let done = step(&ca, t0).unwrap().unwrap();
        assert!(done.contains("trusted beside"), "{done}");
        assert_eq!(bundle(&dir), vec![old.clone(), next.clone()]);
        let (_, chain) = ca
            .sign_workload(&csr(), None, "cluster.local", |_| true)
            .unwrap();
        assert!(signed_by(&chain[0], &old));
        assert_eq!(step(&ca, t0 + Duration::from_secs(1)).unwrap(), None);

        // 2. switch: the new root signs and comes first; its key is root-key.pem.
        let gen0 = ca.generation();
        let done = step(&ca, t0 + TRUST_PROPAGATION).unwrap().unwrap();
        assert!(done.contains("stays trusted for 60s"), "{done}");
        assert_eq!(bundle(&dir), vec![next.clone(), old.clone()]);
        assert_ne!(ca.generation(), gen0);
        let (_, chain) = ca
            .sign_workload(&csr(), None, "cluster.local", |_| true)
            .unwrap();
        assert!(signed_by(&chain[0], &next));
        assert_eq!(chain[1], next);
        assert!(!dir.join(NEXT_CERT_FILE).exists());
        // A restarted meshd signs with the new root and keeps the overlap.
        let reopened = Ca::open(&opts).unwrap();
        assert_eq!(reopened.root_pem(), next);
        assert_eq!(bundle(&dir).len(), 2);

        // 3. drop, once the overlap is over.
        let t2 = t0 + TRUST_PROPAGATION;
        assert_eq!(step(&ca, t2 + Duration::from_secs(59)).unwrap(), None);
        let done = step(&ca, t2 + Duration::from_secs(60)).unwrap().unwrap();
        assert!(done.contains("left the trust bundle"), "{done}");
        assert_eq!(bundle(&dir), vec![next.clone()]);
        assert!(!dir.join(STATE_FILE).exists());
        assert_eq!(step(&ca, t2 + Duration::from_secs(3600)).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_supplied_root_needs_its_own_key_and_a_rotation_may_set_its_overlap() {
        let dir = tmp("supplied");
        let ca = Ca::open(&CaOptions::new(dir.clone())).unwrap();
        let other = tmp("supplied-src");
        std::fs::create_dir_all(&other).unwrap();
        let (cert, key) = new_root("operator root").unwrap();
        let (_, wrong) = new_root("another").unwrap();
        std::fs::write(other.join("c.pem"), &cert).unwrap();
        std::fs::write(other.join("k.pem"), wrong.serialize_pem()).unwrap();
        let err = stage(&dir, Some((other.join("c.pem"), other.join("k.pem"))), None).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
        std::fs::write(other.join("k.pem"), key.serialize_pem()).unwrap();
        stage(
            &dir,
            Some((other.join("c.pem"), other.join("k.pem"))),
            Some(Duration::from_secs(7)),
        )
        .unwrap();
        let t0 = SystemTime::now();
        step(&ca, t0).unwrap().unwrap();
        let done = step(&ca, t0 + TRUST_PROPAGATION).unwrap().unwrap();
        assert!(done.contains("for 7s"), "{done}");
        assert_eq!(ca.root_pem(), pem_certificates(&cert)[0]);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&other).unwrap();
    }

    #[test]
    fn writing_drop_at_0_ends_the_overlap_at_the_next_step() {
        let dir = tmp("early");
        let ca = Ca::open(&CaOptions::new(dir.clone())).unwrap();
        stage(&dir, None, None).unwrap();
        let t0 = SystemTime::now();
        step(&ca, t0).unwrap().unwrap();
        step(&ca, t0 + TRUST_PROPAGATION).unwrap().unwrap();
        // The default overlap is the workload lifetime (24 h).
        assert_eq!(step(&ca, t0 + Duration::from_secs(3600)).unwrap(), None);
        std::fs::write(dir.join(STATE_FILE), "drop-at 0\n").unwrap();
        let done = step(&ca, t0 + Duration::from_secs(3601)).unwrap().unwrap();
        assert!(done.contains("left the trust bundle"), "{done}");
        assert_eq!(bundle(&dir), vec![ca.root_pem()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_ca_no_staging_and_removing_the_staged_root_cancels() {
        let dir = tmp("cancel");
        assert!(stage(&dir, None, None).is_err());
        let ca = Ca::open(&CaOptions::new(dir.clone())).unwrap();
        let old = ca.root_pem();
        let staged = stage(&dir, None, None).unwrap();
        step(&ca, SystemTime::now()).unwrap().unwrap();
        assert_eq!(bundle(&dir).len(), 2);
        std::fs::remove_file(&staged.cert).unwrap();
        let done = step(&ca, SystemTime::now()).unwrap().unwrap();
        assert!(done.contains("cancelled"), "{done}");
        assert_eq!(bundle(&dir), vec![old]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
