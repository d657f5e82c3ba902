//! Analyzers of Istio's `authn` package: RequestAuthentication in a mesh whose istiod does
//! not restrict where JWKS URIs may be fetched from (IST0175).

use crate::analysis::json::{arr_at, str_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[AnalyzerDef {
    name: "authn.BlockedCIDRsAnalyzer",
    description: "Checks that BLOCKED_CIDRS_IN_JWKS_URIS is configured on istiod when \
                  RequestAuthentication resources exist",
    messages: &[&catalog::JWKS_URI_FETCH_UNRESTRICTED],
    run: blocked_cidrs,
}];

/// The istiod environment variable listing networks JWKS URIs must not resolve into.
const BLOCKED_CIDRS_ENV: &str = "BLOCKED_CIDRS_IN_JWKS_URIS";
/// How many RequestAuthentication names the message lists before summarising.
const MAX_NAMES_SHOWN: usize = 5;

/// `a, b, c`, or the first five and `, and N more`.
fn name_summary(names: &[String]) -> String {
    if names.len() <= MAX_NAMES_SHOWN {
        return names.join(", ");
    }
    format!(
        "{}, and {} more",
        names[..MAX_NAMES_SHOWN].join(", "),
        names.len() - MAX_NAMES_SHOWN
    )
}

/// Whether a container of the Deployment's pod template sets the variable to a non-empty
/// value.
fn sets_blocked_cidrs(deployment: &Resource) -> bool {
    arr_at(&deployment.json, "/spec/template/spec/containers")
        .iter()
        .flat_map(|c| arr_at(c, "/env"))
        .any(|e| {
            str_at(e, "/name") == Some(BLOCKED_CIDRS_ENV)
                && str_at(e, "/value").is_some_and(|v| !v.is_empty())
        })
}

/// The field to point at: the environment of istiod's `discovery` container (or of its
/// first container).
fn env_path(deployment: &Resource) -> String {
    let containers = arr_at(&deployment.json, "/spec/template/spec/containers");
    let i = containers
        .iter()
        .position(|c| str_at(c, "/name") == Some("discovery"))
        .unwrap_or(0);
    format!("spec.template.spec.containers[{i}].env")
}

fn blocked_cidrs(ctx: &mut Context<'_>) {
    let store = ctx.store;
    let names: Vec<String> = store
        .of(groups::SECURITY, "RequestAuthentication")
        .map(Resource::full_name)
        .collect();
    if names.is_empty() {
        return;
    }
    let summary = name_summary(&names);
    for d in store.of(groups::APPS, "Deployment") {
        if d.labels.get("app").is_none_or(|v| v != "istiod") || sets_blocked_cidrs(d) {
            continue;
        }
        ctx.report(
            &catalog::JWKS_URI_FETCH_UNRESTRICTED,
            d,
            &env_path(d),
            &[&names.len(), &summary],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Message;
    use crate::analysis::common::testing::run_named;

    fn run(yaml: &str) -> Vec<Message> {
        run_named(ANALYZERS, ANALYZERS[0].name, yaml)
    }

    #[test]
    fn summary_is_capped_at_five_names() {
        let names: Vec<String> = (1..=7).map(|i| format!("ns/ra{i}")).collect();
        assert_eq!(
            name_summary(&names),
            "ns/ra1, ns/ra2, ns/ra3, ns/ra4, ns/ra5, and 2 more"
        );
        assert_eq!(name_summary(&names[..2]), "ns/ra1, ns/ra2");
    }

    #[test]
    fn empty_value_does_not_count_and_other_deployments_are_ignored() {
        let yaml = r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec: {}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: istiod, namespace: istio-system, labels: {app: istiod}}
spec:
  template:
    spec:
      containers:
      - name: discovery
        image: pilot
        env: [{name: BLOCKED_CIDRS_IN_JWKS_URIS, value: ""}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  template:
    spec:
      containers: [{name: web, image: web}]
"#;
        let m = run(yaml);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].origin.as_ref().map(|o| o.display_name()).as_deref(),
            Some("Deployment istio-system/istiod")
        );
        assert!(
            m[0].text
                .contains("1 RequestAuthentication resource(s) exist (shop/jwt)")
        );
    }
}
