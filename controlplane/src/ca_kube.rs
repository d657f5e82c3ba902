//! meshd's CA in Kubernetes mode: who a caller is, where the root lives, and the root
//! published for workloads.
//!
//! This module owns three things Istio's istiod does in a cluster:
//! - authenticating a certificate request by the caller's service-account token (a
//!   projected token with audience `istio-ca`, sent as `authorization: Bearer`): a
//!   TokenReview (authentication.k8s.io/v1) names the service account, and the CSR may only
//!   ask for that account's SPIFFE id ([`review_token`], [`ServiceAccount::owns`]);
//! - the root in a Secret, so a restarted meshd keeps it: Istio's plugged-in CA `cacerts`
//!   (`ca-cert.pem`, `ca-key.pem`, `root-cert.pem`, `cert-chain.pem`) when it exists,
//!   otherwise Istio's self-signed CA secret `istio-ca-secret` (`ca-cert.pem`,
//!   `ca-key.pem`), loaded, or created from a new root ([`prepare_root`]); the files are
//!   written into the CA directory and [`crate::ca::Ca::open`] reads them as usual;
//! - the trust bundle as ConfigMap `istio-ca-root-cert` (key `root-cert.pem`) in every
//!   namespace, which injected sidecars mount ([`keep_root_configmaps`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use mesh_core::identity::SpiffeId;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::ca::{CaError, CaOptions, ROOT_CERT_FILE, ROOT_KEY_FILE};
use crate::source::ConfigState;

/// The audience of the tokens the CA accepts (Istio's).
pub const AUDIENCE: &str = "istio-ca";
/// Istio's plugged-in CA secret.
pub const PLUGGED_SECRET: &str = "cacerts";
/// Istio's self-signed CA secret.
pub const SELF_SIGNED_SECRET: &str = "istio-ca-secret";
/// The ConfigMap holding the trust bundle in every namespace.
pub const ROOT_CONFIGMAP: &str = "istio-ca-root-cert";
/// Its key.
pub const ROOT_CONFIGMAP_KEY: &str = "root-cert.pem";
/// How long a TokenReview may take.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a replica that does not lead looks for the leader's CA Secret.
const SECRET_POLL: Duration = Duration::from_secs(1);
/// meshd's field manager for server-side apply.
const FIELD_MANAGER: &str = "meshd";

/// A Kubernetes service account, as a TokenReview names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccount {
    /// Reads `system:serviceaccount:NS:NAME`.
    pub fn from_username(user: &str) -> Option<ServiceAccount> {
        let rest = user.strip_prefix("system:serviceaccount:")?;
        let (ns, name) = rest.split_once(':')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then(|| ServiceAccount {
            namespace: ns.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Whether `id` is this account's identity (any trust domain: the CA checks that).
    pub fn owns(&self, id: &SpiffeId) -> bool {
        id.namespace == self.namespace && id.service_account == self.name
    }
}

impl std::fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// Why a caller's token was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("no bearer token (a projected service-account token with audience {AUDIENCE})")]
    Missing,
    #[error("the token was not accepted by the API server: {0}")]
    Rejected(String),
    #[error("the token is valid for audiences {0:?}, not {AUDIENCE}")]
    Audience(Vec<String>),
    #[error("the token belongs to {0}, not a service account")]
    NotServiceAccount(String),
    #[error("cannot review the token: {0}")]
    Review(String),
}

/// What a TokenReview's status says about the caller (split out so it is tested alone).
pub fn judge_review(review: &TokenReview) -> Result<ServiceAccount, TokenError> {
    let Some(status) = &review.status else {
        return Err(TokenError::Review("the TokenReview has no status".into()));
    };
    if status.authenticated != Some(true) {
        return Err(TokenError::Rejected(
            status
                .error
                .clone()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "not authenticated".into()),
        ));
    }
    // The API server answers with the audiences the token is valid for, among those
    // asked; an answer without ours means the token was not meant for the CA.
    if let Some(auds) = &status.audiences
        && !auds.iter().any(|a| a == AUDIENCE)
    {
        return Err(TokenError::Audience(auds.clone()));
    }
    let user = status
        .user
        .as_ref()
        .and_then(|u| u.username.clone())
        .unwrap_or_default();
    ServiceAccount::from_username(&user).ok_or(TokenError::NotServiceAccount(user))
}

/// Asks the API server who `token` belongs to (TokenReview, audience `istio-ca`).
pub async fn review_token(
    client: &kube::Client,
    token: &str,
) -> Result<ServiceAccount, TokenError> {
    let api: Api<TokenReview> = Api::all(client.clone());
    let review = TokenReview {
        metadata: ObjectMeta::default(),
        spec: TokenReviewSpec {
            audiences: Some(vec![AUDIENCE.to_owned()]),
            token: Some(token.to_owned()),
        },
        status: None,
    };
    let answer = tokio::time::timeout(REVIEW_TIMEOUT, api.create(&PostParams::default(), &review))
        .await
        .map_err(|_| TokenError::Review(format!("no answer within {REVIEW_TIMEOUT:?}")))?
        .map_err(|e| TokenError::Review(e.to_string()))?;
    judge_review(&answer)
}

/// Why the CA's root could not be had from the cluster.
#[derive(Debug, thiserror::Error)]
pub enum KubeCaError {
    #[error("Secret {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: &'static str,
        source: kube::Error,
    },
    #[error("Secret {namespace}/{name} has no {key}")]
    MissingKey {
        namespace: String,
        name: &'static str,
        key: &'static str,
    },
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// Where the root came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootSource {
    /// Secret `cacerts` (the user's CA; meshd signs with its intermediate).
    Plugged,
    /// Secret `istio-ca-secret`, as an earlier meshd stored it.
    Stored,
    /// A new root, now stored as `istio-ca-secret`.
    Created,
    /// A root of the CA directory that could not be stored (logged): a restarted meshd
    /// in a new pod will make another.
    Unstored,
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), CaError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CaError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)
}

fn secret_key<'a>(
    secret: &'a Secret,
    namespace: &str,
    name: &'static str,
    key: &'static str,
) -> Result<&'a [u8], KubeCaError> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.as_slice())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| KubeCaError::MissingKey {
            namespace: namespace.to_owned(),
            name,
            key,
        })
}

/// Makes the CA directory hold the cluster's root before [`crate::ca::Ca::open`]: from
/// `cacerts` (then `opts` points at its files), else from `istio-ca-secret`, else a new
/// root that is stored as `istio-ca-secret` by the leader (`leading`, from
/// [`crate::leader`]; a replica that does not lead waits up to `wait` for the leader's),
/// created, never overwritten: when another meshd stored one first, that one is used;
/// when it cannot be stored, meshd goes on with it and says so.
pub async fn prepare_root(
    client: &kube::Client,
    namespace: &str,
    opts: &mut CaOptions,
    leading: &mut watch::Receiver<bool>,
    wait: Duration,
) -> Result<RootSource, KubeCaError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api_err = |name: &'static str| {
        move |source| KubeCaError::Api {
            namespace: namespace.to_owned(),
            name,
            source,
        }
    };
    std::fs::create_dir_all(&opts.dir).map_err(|source| CaError::Io {
        path: opts.dir.clone(),
        source,
    })?;
    if let Some(plugged) = secrets
        .get_opt(PLUGGED_SECRET)
        .await
        .map_err(api_err(PLUGGED_SECRET))?
    {
        let dir = opts.dir.join(PLUGGED_SECRET);
        std::fs::create_dir_all(&dir).map_err(|source| CaError::Io {
            path: dir.clone(),
            source,
        })?;
        let key = |k| secret_key(&plugged, namespace, PLUGGED_SECRET, k);
        let (cert, ca_key, root) = (
            key("ca-cert.pem")?,
            key("ca-key.pem")?,
            key("root-cert.pem")?,
        );
        write_file(&dir.join("ca-cert.pem"), cert, false)?;
        write_file(&dir.join("ca-key.pem"), ca_key, true)?;
        write_file(&dir.join("root-cert.pem"), root, false)?;
        opts.root = Some((dir.join("ca-cert.pem"), dir.join("ca-key.pem")));
        opts.trust_root = Some(dir.join("root-cert.pem"));
        opts.chain = match key("cert-chain.pem") {
            Ok(chain) => {
                write_file(&dir.join("cert-chain.pem"), chain, false)?;
                Some(dir.join("cert-chain.pem"))
            }
            Err(_) => None,
        };
        return Ok(RootSource::Plugged);
    }
    let (cert_path, key_path) = (opts.dir.join(ROOT_CERT_FILE), opts.dir.join(ROOT_KEY_FILE));
    let write_stored = |s: &Secret| -> Result<(), KubeCaError> {
        let key = |k| secret_key(s, namespace, SELF_SIGNED_SECRET, k);
        write_file(&cert_path, key("ca-cert.pem")?, false)?;
        write_file(&key_path, key("ca-key.pem")?, true)?;
        Ok(())
    };
    // Only the leader creates the Secret: the others wait for it (at most `wait`, after
    // which they race to create it; the create is atomic and a loser reads the winner's).
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(stored) = secrets
            .get_opt(SELF_SIGNED_SECRET)
            .await
            .map_err(api_err(SELF_SIGNED_SECRET))?
        {
            write_stored(&stored)?;
            return Ok(RootSource::Stored);
        }
        if *leading.borrow_and_update() {
            break;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            warn!(
                secret = %format!("{namespace}/{SELF_SIGNED_SECRET}"),
                waited = ?wait,
                "no leader stored the CA root in time; storing one from this replica"
            );
            break;
        }
        info!(secret = %format!("{namespace}/{SELF_SIGNED_SECRET}"), "waiting for the leader to store the CA root");
        let changed = tokio::time::timeout(left.min(SECRET_POLL), leading.changed()).await;
        if let Ok(Err(_)) = changed {
            // The election ended (meshd is stopping): go on as the create race.
            break;
        }
    }
    // A new root (or the one this pod's CA directory already holds), then stored.
    crate::ca::Ca::open(opts)?;
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|source| CaError::Io {
            path: p.clone(),
            source,
        })
    };
    let data = BTreeMap::from([
        ("ca-cert.pem".to_owned(), ByteString(read(&cert_path)?)),
        ("ca-key.pem".to_owned(), ByteString(read(&key_path)?)),
    ]);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SELF_SIGNED_SECRET.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: Some("istio.io/ca-root".to_owned()),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(RootSource::Created),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Another meshd stored its root first: everyone uses that one.
            let stored = secrets
                .get(SELF_SIGNED_SECRET)
                .await
                .map_err(api_err(SELF_SIGNED_SECRET))?;
            write_stored(&stored)?;
            Ok(RootSource::Stored)
        }
        Err(e) => {
            warn!(
                secret = %format!("{namespace}/{SELF_SIGNED_SECRET}"),
                error = %e,
                "cannot store the CA root; a meshd in a new pod will make another"
            );
            Ok(RootSource::Unstored)
        }
    }
}

/// How the root ConfigMaps are kept.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// How often every namespace's ConfigMap is written again (one deleted or edited by
    /// hand comes back).
    pub recheck: Duration,
    /// Back-off after a failed write.
    pub retry: Duration,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            recheck: Duration::from_secs(300),
            retry: Duration::from_secs(5),
        }
    }
}

/// The ConfigMap `istio-ca-root-cert` of `namespace`.
pub fn root_configmap(namespace: &str, root_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(ROOT_CONFIGMAP.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "istio.io/config".to_owned(),
                "true".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            ROOT_CONFIGMAP_KEY.to_owned(),
            root_pem.to_owned(),
        )])),
        ..ConfigMap::default()
    }
}

/// Writes the root ConfigMap (server-side apply) into every namespace of the current
/// config, as namespaces appear, and all of them again every `recheck`, until `stop`;
/// only while this replica leads (`leading`, from [`crate::leader`]).
pub async fn keep_root_configmaps(
    client: kube::Client,
    root_pem: String,
    mut config: watch::Receiver<Arc<ConfigState>>,
    opts: PublishOptions,
    mut leading: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut written: BTreeSet<String> = BTreeSet::new();
    // Namespaces written once already: later re-writes are logged at debug only.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut last_full = tokio::time::Instant::now();
    loop {
        if !*leading.borrow() {
            // Another replica writes them meanwhile; a new leader writes every one.
            written.clear();
            if !crate::leader::wait_leading(&mut leading, &mut stop).await {
                return;
            }
            last_full = tokio::time::Instant::now();
        }
        if last_full.elapsed() >= opts.recheck {
            written.clear();
            last_full = tokio::time::Instant::now();
        }
        let namespaces: Vec<String> = {
            let c = config.borrow_and_update();
            c.store
                .of("", "Namespace")
                .map(|r| r.name.clone())
                .filter(|n| !written.contains(n))
                .collect()
        };
        let mut failed = false;
        for ns in namespaces {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
            let cm = root_configmap(&ns, &root_pem);
            match api
                .patch(
                    ROOT_CONFIGMAP,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&cm),
                )
                .await
            {
                Ok(_) => {
                    if seen.insert(ns.clone()) {
                        info!(namespace = %ns, "root certificate ConfigMap written");
                    } else {
                        debug!(namespace = %ns, "root certificate ConfigMap written again");
                    }
                    written.insert(ns);
                }
                Err(e) => {
                    warn!(namespace = %ns, error = %e, "cannot write the root certificate ConfigMap");
                    failed = true;
                }
            }
        }
        let pause = if failed { opts.retry } else { opts.recheck };
        tokio::select! {
            r = config.changed() => if r.is_err() { return },
            () = tokio::time::sleep(pause) => {}
            _ = leading.changed() => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};

    fn review(status: TokenReviewStatus) -> TokenReview {
        TokenReview {
            status: Some(status),
            ..TokenReview::default()
        }
    }

    #[test]
    fn usernames_of_service_accounts_are_read() {
        let sa = ServiceAccount::from_username("system:serviceaccount:shop:web").unwrap();
        assert_eq!(sa.namespace, "shop");
        assert_eq!(sa.name, "web");
        assert_eq!(sa.to_string(), "system:serviceaccount:shop:web");
        assert!(sa.owns(&SpiffeId::new("cluster.local", "shop", "web")));
        assert!(!sa.owns(&SpiffeId::new("cluster.local", "shop", "db")));
        assert!(!sa.owns(&SpiffeId::new("cluster.local", "web", "shop")));
        for bad in [
            "admin",
            "system:serviceaccount:shop",
            "system:serviceaccount::web",
            "system:serviceaccount:shop:web:x",
            "system:node:n1",
        ] {
            assert!(ServiceAccount::from_username(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn reviews_are_judged_on_authentication_audience_and_user() {
        let user = |u: &str| {
            Some(UserInfo {
                username: Some(u.to_owned()),
                ..UserInfo::default()
            })
        };
        let ok = review(TokenReviewStatus {
            authenticated: Some(true),
            audiences: Some(vec![AUDIENCE.into()]),
            user: user("system:serviceaccount:shop:web"),
            ..TokenReviewStatus::default()
        });
        assert_eq!(judge_review(&ok).unwrap().name, "web");
        let refused = review(TokenReviewStatus {
            authenticated: Some(false),
            error: Some("invalid bearer token".into()),
            ..TokenReviewStatus::default()
        });
        assert_eq!(
            judge_review(&refused),
            Err(TokenError::Rejected("invalid bearer token".into()))
        );
        let other_audience = review(TokenReviewStatus {
            authenticated: Some(true),
            audiences: Some(vec!["api".into()]),
            user: user("system:serviceaccount:shop:web"),
            ..TokenReviewStatus::default()
        });
        assert_eq!(
            judge_review(&other_audience),
            Err(TokenError::Audience(vec!["api".into()]))
        );
        let person = review(TokenReviewStatus {
            authenticated: Some(true),
            user: user("alice"),
            ..TokenReviewStatus::default()
        });
        assert_eq!(
            judge_review(&person),
            Err(TokenError::NotServiceAccount("alice".into()))
        );
        assert!(matches!(
            judge_review(&TokenReview::default()),
            Err(TokenError::Review(_))
        ));
    }

    #[test]
    fn the_root_configmap_has_istios_name_and_key() {
        let cm = root_configmap("shop", "PEM");
        assert_eq!(cm.metadata.name.as_deref(), Some("istio-ca-root-cert"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(cm.data.unwrap()["root-cert.pem"], "PEM");
    }
}
