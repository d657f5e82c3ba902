//! Building a [`Snapshot`]: validation, typed parsing, and settling conflicts.
//!
//! - Every Istio object is validated with [`crate::validate::validate`]; one with an Error
//!   finding is left out and listed in `rejected` with its findings as the reason.
//! - EnvoyFilters are listed as not applied: meshd does not patch generated config.
//! - Two DestinationRules for the same host in the same namespace, neither with a
//!   `workloadSelector`: Istio merges them; meshd keeps the older one (load order) whole
//!   and rejects the newer one, so that what a proxy gets never depends on a merge.
//! - Two Sidecars without `workloadSelector` in one namespace: the older is used, the newer
//!   rejected (Istio's IST0110 conflict).
//! - Two VirtualServices for the mesh gateway in one namespace claiming the same host: the
//!   older routes it; the newer is listed (its other hosts still apply).
//! - Gateway servers that need Kubernetes secrets (`credentialName`) are listed as skipped.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::analysis::{MeshConfig, Store};
use crate::model::networking::{Sidecar, VirtualService};
use crate::model::parse_spec;
use crate::resource::{Resource, groups};
use crate::validate::{Severity, is_validated_kind, validate};

use super::{Rejected, Snapshot, Typed, registry};

fn reject(res: &Resource, reason: impl Into<String>) -> Rejected {
    Rejected {
        object: res.display_name(),
        origin: res.origin.to_string(),
        reason: reason.into(),
    }
}

pub(super) fn build(store: &Store, mesh: &MeshConfig) -> Snapshot {
    let mut snap = Snapshot {
        mesh: mesh.clone(),
        ..Snapshot::default()
    };
    for res in store.all() {
        if !is_validated_kind(&res.group, &res.kind) {
            continue;
        }
        let errors: Vec<String> = validate(res)
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| {
                if f.path.is_empty() {
                    f.message
                } else {
                    format!("{}: {}", f.path, f.message)
                }
            })
            .collect();
        if !errors.is_empty() {
            snap.rejected
                .push(reject(res, format!("invalid: {}", errors.join("; "))));
            continue;
        }
        let pushed = match (res.group.as_str(), res.kind.as_str()) {
            (groups::NETWORKING, "VirtualService") => push(&mut snap.virtual_services, res),
            (groups::NETWORKING, "DestinationRule") => push(&mut snap.destination_rules, res),
            (groups::NETWORKING, "Gateway") => push(&mut snap.gateways, res),
            (groups::NETWORKING, "Sidecar") => push(&mut snap.sidecars, res),
            (groups::NETWORKING, "ServiceEntry") => push(&mut snap.service_entries, res),
            (groups::NETWORKING, "WorkloadEntry") => push(&mut snap.workload_entries, res),
            (groups::SECURITY, "PeerAuthentication") => push(&mut snap.peer_authentications, res),
            (groups::SECURITY, "AuthorizationPolicy") => {
                push(&mut snap.authorization_policies, res)
            }
            (groups::SECURITY, "RequestAuthentication") => {
                push(&mut snap.request_authentications, res)
            }
            (groups::NETWORKING, "EnvoyFilter") => Err(
                "not applied: meshd does not patch generated config with EnvoyFilters".to_owned(),
            ),
            _ => Ok(()),
        };
        if let Err(reason) = pushed {
            snap.rejected.push(reject(res, reason));
        }
    }

    settle_destination_rules(&mut snap);
    settle_sidecars(&mut snap);
    note_virtual_service_conflicts(&mut snap);
    note_gateway_secrets(&mut snap);
    note_unenforced_policies(&mut snap);

    let mut rejected = std::mem::take(&mut snap.rejected);
    snap.registry = registry::build(
        store,
        &snap.service_entries,
        &snap.workload_entries,
        mesh,
        &mut rejected,
    );
    rejected.sort_by(|a, b| (&a.object, &a.reason).cmp(&(&b.object, &b.reason)));
    snap.rejected = rejected;
    snap
}

fn push<T: DeserializeOwned>(list: &mut Vec<Typed<T>>, res: &Resource) -> Result<(), String> {
    let spec = parse_spec::<T>(res).map_err(|e| format!("invalid: {e}"))?;
    list.push(Typed {
        resource: res.clone(),
        spec,
    });
    Ok(())
}

fn settle_destination_rules(snap: &mut Snapshot) {
    let mut first: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut kept = Vec::new();
    for dr in std::mem::take(&mut snap.destination_rules) {
        if dr.spec.workload_selector.is_some() {
            kept.push(dr);
            continue;
        }
        let host = crate::host::fqdn(&dr.spec.host, dr.namespace());
        let key = (dr.namespace().to_owned(), host.clone());
        if let Some(older) = first.get(&key) {
            snap.rejected.push(reject(
                &dr.resource,
                format!(
                    "conflict: {older} already sets the policy for host {host:?} in namespace {}; \
                     this DestinationRule is not used",
                    dr.namespace()
                ),
            ));
            continue;
        }
        first.insert(key, dr.display_name());
        kept.push(dr);
    }
    snap.destination_rules = kept;
}

fn settle_sidecars(snap: &mut Snapshot) {
    let mut first: BTreeMap<String, String> = BTreeMap::new();
    let mut kept: Vec<Typed<Sidecar>> = Vec::new();
    for sc in std::mem::take(&mut snap.sidecars) {
        let selects = sc
            .spec
            .workload_selector
            .as_ref()
            .is_some_and(|s| !s.labels.is_empty());
        if !selects {
            if let Some(older) = first.get(sc.namespace()) {
                snap.rejected.push(reject(
                    &sc.resource,
                    format!(
                        "conflict: {older} is already the namespace-wide Sidecar of {}; \
                         this Sidecar is not used",
                        sc.namespace()
                    ),
                ));
                continue;
            }
            first.insert(sc.namespace().to_owned(), sc.display_name());
        }
        kept.push(sc);
    }
    snap.sidecars = kept;
}

/// Whether a VirtualService applies to sidecars (the `mesh` gateway).
pub(super) fn binds_mesh(vs: &VirtualService) -> bool {
    vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh")
}

fn note_virtual_service_conflicts(snap: &mut Snapshot) {
    let mut claimed: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut notes = Vec::new();
    for vs in &snap.virtual_services {
        if !binds_mesh(&vs.spec) {
            continue;
        }
        for h in &vs.spec.hosts {
            let host = crate::host::fqdn(h, vs.namespace());
            let key = (vs.namespace().to_owned(), host.clone());
            match claimed.get(&key) {
                Some(older) if *older != vs.display_name() => notes.push(reject(
                    &vs.resource,
                    format!(
                        "conflict: {older} already routes host {host:?} for the mesh; \
                         this VirtualService's rules for it are not used"
                    ),
                )),
                Some(_) => {}
                None => {
                    claimed.insert(key, vs.display_name());
                }
            }
        }
    }
    snap.rejected.extend(notes);
}

fn note_gateway_secrets(snap: &mut Snapshot) {
    let mut notes = Vec::new();
    for gw in &snap.gateways {
        for (i, server) in gw.spec.servers.iter().enumerate() {
            if let Some(tls) = &server.tls
                && needs_secret(tls)
            {
                notes.push(reject(
                    &gw.resource,
                    format!(
                        "spec.servers[{i}]: not served: TLS credentials from Kubernetes \
                         secrets (credentialName) are not supported; use serverCertificate \
                         and privateKey files"
                    ),
                ));
            }
        }
    }
    snap.rejected.extend(notes);
}

/// Whether a Gateway server's TLS needs certificates meshd cannot serve.
pub(super) fn needs_secret(tls: &crate::model::networking::ServerTlsSettings) -> bool {
    use crate::model::networking::ServerTlsMode as M;
    match tls.mode {
        // ISTIO_MUTUAL uses the gateway's workload certificate (see `mtls.rs`).
        M::Passthrough | M::AutoPassthrough | M::IstioMutual => false,
        _ => {
            (!tls.credential_name.is_empty() || !tls.credential_names.is_empty())
                || (tls.server_certificate.is_empty() && tls.tls_certificates.is_empty())
        }
    }
}

/// AuthorizationPolicies meshd keeps but cannot enforce: CUSTOM (an external authorizer)
/// and those that select by `targetRef` (waypoints, Gateway API gateways).
fn note_unenforced_policies(snap: &mut Snapshot) {
    use crate::model::security::AuthorizationAction;
    let mut notes = Vec::new();
    for p in &snap.authorization_policies {
        if p.spec.action == AuthorizationAction::Custom {
            notes.push(reject(
                &p.resource,
                "not applied: CUSTOM policies need an external authorizer (ext_authz), which \
                 meshd does not configure",
            ));
        } else if p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty() {
            notes.push(reject(
                &p.resource,
                "not applied: targetRef selects waypoints or Gateway API gateways, which meshd \
                 does not serve; use selector",
            ));
        }
    }
    for r in &snap.request_authentications {
        if r.spec.target_ref.is_some() || !r.spec.target_refs.is_empty() {
            notes.push(reject(
                &r.resource,
                "not applied: targetRef selects waypoints or Gateway API gateways, which meshd \
                 does not serve; use selector",
            ));
        }
    }
    snap.rejected.extend(notes);
}
