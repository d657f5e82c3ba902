//! Analyzers of Istio's `destinationrule` package: DestinationRules whose TLS settings skip
//! server certificate verification (IST0128, IST0129), whose host names no service
//! (IST0174), and whose subsets select no pod (IST0173).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::analysis::json::{arr_at, selector_matches, str_at, string_map_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::host::DEFAULT_DOMAIN;
use crate::resource::{Resource, groups};

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[
    AnalyzerDef {
        name: "destinationrule.CaCertificateAnalyzer",
        description: "Checks if caCertificates is set when TLS mode is SIMPLE/MUTUAL",
        messages: &[
            &catalog::NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
            &catalog::NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
        ],
        run: ca_certificates,
    },
    AnalyzerDef {
        name: "destinationrule.PodNotSelectedAnalyzer",
        description: "Checks if pods are selected by subsets in destination rules.",
        messages: &[
            &catalog::UNKNOWN_DESTINATION_RULE_HOST,
            &catalog::DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
        ],
        run: pod_not_selected,
    },
];

// ---------------------------------------------------------------------------------------
// CaCertificateAnalyzer

/// Whether TLS settings originate TLS (SIMPLE or MUTUAL) without a CA to check the server
/// against. A `credentialName` on a DestinationRule with a `workloadSelector` carries the
/// CA in the secret, so that combination verifies the server too.
fn skips_server_verification(tls: &Value, has_workload_selector: bool) -> Option<&str> {
    let mode = str_at(tls, "/mode")?;
    if mode != "SIMPLE" && mode != "MUTUAL" {
        return None;
    }
    let non_empty = |key: &str| str_at(tls, key).is_some_and(|s| !s.is_empty());
    if non_empty("/caCertificates") {
        return None;
    }
    if non_empty("/credentialName") && has_workload_selector {
        return None;
    }
    Some(mode)
}

/// A port selector as Istio prints it (the protobuf text form, `number:443`).
fn port_selector_text(port: Option<&Value>) -> String {
    match port.and_then(|p| p.get("number")) {
        Some(Value::Number(n)) => format!("number:{n}"),
        Some(Value::String(s)) => format!("number:{s}"),
        _ => String::new(),
    }
}

fn ca_certificates(ctx: &mut Context<'_>) {
    let store = ctx.store;
    for dr in store.of(groups::NETWORKING, "DestinationRule") {
        let spec = dr.spec();
        let ns = dr.ns();
        let full_name = dr.full_name();
        let host = str_at(spec, "/host").unwrap_or("");
        let has_selector = spec.get("workloadSelector").is_some_and(|v| !v.is_null());

        if let Some(tls) = spec.pointer("/trafficPolicy/tls")
            && let Some(mode) = skips_server_verification(tls, has_selector)
        {
            ctx.report(
                &catalog::NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
                dr,
                "spec.trafficPolicy.tls.caCertificates",
                &[&full_name, &ns, &mode, &host],
            );
        }

        for (i, p) in arr_at(spec, "/trafficPolicy/portLevelSettings")
            .iter()
            .enumerate()
        {
            let Some(tls) = p.get("tls") else {
                continue;
            };
            if let Some(mode) = skips_server_verification(tls, has_selector) {
                let port = port_selector_text(p.get("port"));
                ctx.report(
                    &catalog::NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
                    dr,
                    &format!("spec.trafficPolicy.portLevelSettings[{i}].tls.caCertificates"),
                    &[&full_name, &ns, &mode, &host, &port],
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// PodNotSelectedAnalyzer

/// Visibility scope meaning "every namespace".
const ALL_NAMESPACES: &str = "*";
/// The annotation with which a Service limits where it is visible.
const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// Node labels Istio copies onto an endpoint's labels (its locality), and the label it
/// sets to the node's name.
const TOPOLOGY_REGION: &str = "topology.kubernetes.io/region";
const TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
const TOPOLOGY_SUBZONE: &str = "topology.istio.io/subzone";
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// A host Istio's analysis knows, as seen from one scope: a ServiceEntry host, or a
/// Kubernetes Service turned into one (which selects no workloads of its own).
struct KnownHost {
    scope: String,
    fqdn: String,
    workload_selector: BTreeMap<String, String>,
}

/// Expands a host to a fully qualified name the way Istio's analyzers do: names that are
/// neither wildcards nor dotted get `.NS.svc.cluster.local`.
fn analysis_fqdn(host: &str, namespace: &str) -> String {
    if host.starts_with('*') || host.contains('.') {
        host.to_owned()
    } else {
        format!("{host}.{namespace}.svc.{DEFAULT_DOMAIN}")
    }
}

/// Every host of ServiceEntries and Services, keyed by the scope it is visible in. A later
/// entry with the same scope and host replaces an earlier one, Services after
/// ServiceEntries, as in Istio.
fn known_hosts(ctx: &Context<'_>) -> Vec<KnownHost> {
    let mut out: Vec<KnownHost> = Vec::new();
    let mut put = |scope: String, fqdn: String, workload_selector: BTreeMap<String, String>| {
        if let Some(existing) = out.iter_mut().find(|k| k.scope == scope && k.fqdn == fqdn) {
            existing.workload_selector = workload_selector;
        } else {
            out.push(KnownHost {
                scope,
                fqdn,
                workload_selector,
            });
        }
    };

    for se in ctx.store.of(groups::NETWORKING, "ServiceEntry") {
        let spec = se.spec();
        let ns = se.ns();
        let selector = string_map_at(spec, "/workloadSelector/labels");
        let export_to: Vec<&str> = arr_at(spec, "/exportTo")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for host in arr_at(spec, "/hosts").iter().filter_map(Value::as_str) {
            let fqdn = analysis_fqdn(host, ns);
            if export_to.is_empty() || export_to.contains(&ALL_NAMESPACES) {
                put(ALL_NAMESPACES.to_owned(), fqdn, selector.clone());
                continue;
            }
            for e in &export_to {
                let scope = if *e == "." { ns } else { e };
                put(scope.to_owned(), fqdn.clone(), selector.clone());
            }
        }
    }

    for svc in ctx.store.of(groups::CORE, "Service") {
        let ns = svc.ns();
        let fqdn = analysis_fqdn(&svc.name, ns);
        let scopes: Vec<String> = match svc.annotations.get(EXPORT_TO_ANNOTATION) {
            None => vec![ALL_NAMESPACES.to_owned()],
            Some(a) if a.is_empty() => vec![ALL_NAMESPACES.to_owned()],
            Some(a) => a
                .split(',')
                .map(|s| {
                    if s == "." {
                        ns.to_owned()
                    } else {
                        s.to_owned()
                    }
                })
                .collect(),
        };
        for scope in scopes {
            put(scope, fqdn.clone(), BTreeMap::new());
        }
    }
    out
}

/// The known host a DestinationRule in `source_ns` with `export_to` refers to: an exact
/// match visible everywhere, then one visible where the rule is exported, then a wildcard
/// host visible to the rule's namespace that covers it.
fn destination_host<'k>(
    known: &'k [KnownHost],
    source_ns: &str,
    export_to: &[&str],
    host: &str,
) -> Option<&'k KnownHost> {
    let fqdn = analysis_fqdn(host, source_ns);
    let exact = |scope: &str| known.iter().find(|k| k.scope == scope && k.fqdn == fqdn);
    if let Some(k) = exact(ALL_NAMESPACES) {
        return Some(k);
    }
    if export_to.is_empty() {
        if let Some(k) = exact(source_ns) {
            return Some(k);
        }
    } else {
        for e in export_to {
            let scope = if *e == "." { source_ns } else { e };
            if let Some(k) = exact(scope) {
                return Some(k);
            }
        }
    }
    let wanted = host.strip_prefix('*').unwrap_or(host);
    known.iter().find(|k| {
        let Some(suffix) = k.fqdn.strip_prefix('*') else {
            return false;
        };
        (k.scope == ALL_NAMESPACES || k.scope == source_ns) && wanted.ends_with(suffix)
    })
}

/// A pod's labels as its endpoint carries them: its own, plus the locality labels of the
/// node it runs on (only those with a value) and the node's name.
fn endpoint_labels(pod: &Resource, nodes: &BTreeMap<&str, &Resource>) -> BTreeMap<String, String> {
    let mut labels = pod.labels.clone();
    let Some(node_name) = str_at(&pod.json, "/spec/nodeName").filter(|n| !n.is_empty()) else {
        return labels;
    };
    let Some(node) = nodes.get(node_name) else {
        return labels;
    };
    for key in [TOPOLOGY_REGION, TOPOLOGY_ZONE, TOPOLOGY_SUBZONE] {
        if let Some(v) = node.labels.get(key).filter(|v| !v.is_empty()) {
            labels.insert(key.to_owned(), v.clone());
        }
    }
    labels.insert(HOSTNAME_LABEL.to_owned(), node_name.to_owned());
    labels
}

fn pod_not_selected(ctx: &mut Context<'_>) {
    let store = ctx.store;
    let known = known_hosts(ctx);
    let nodes: BTreeMap<&str, &Resource> = store
        .of(groups::CORE, "Node")
        .map(|n| (n.name.as_str(), n))
        .collect();
    // Endpoints a subset can select: Pods (with their node's topology labels) and, unlike
    // Istio's analyzer, WorkloadEntries (VMs and local-mode workloads), which are subset
    // members just as Pods are.
    let pod_labels: Vec<BTreeMap<String, String>> = store
        .of(groups::CORE, "Pod")
        .map(|p| endpoint_labels(p, &nodes))
        .chain(store.of(groups::NETWORKING, "WorkloadEntry").map(|we| {
            let mut labels = we.labels.clone();
            labels.extend(string_map_at(&we.json, "/spec/labels"));
            labels
        }))
        .collect();

    for dr in store.of(groups::NETWORKING, "DestinationRule") {
        let spec = dr.spec();
        let host = str_at(spec, "/host").unwrap_or("");
        let export_to: Vec<&str> = arr_at(spec, "/exportTo")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let Some(target) = destination_host(&known, dr.ns(), &export_to, host) else {
            ctx.report(
                &catalog::UNKNOWN_DESTINATION_RULE_HOST,
                dr,
                "spec.host",
                &[&host],
            );
            continue;
        };
        for (i, subset) in arr_at(spec, "/subsets").iter().enumerate() {
            let mut selector = target.workload_selector.clone();
            selector.extend(string_map_at(subset, "/labels"));
            if pod_labels.iter().any(|l| selector_matches(&selector, l)) {
                continue;
            }
            let name = str_at(subset, "/name").unwrap_or("");
            ctx.report(
                &catalog::DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                dr,
                &format!("spec.subsets[{i}].name"),
                &[&name],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Message;
    use crate::analysis::common::testing::run_named;

    fn run(name: &str, yaml: &str) -> Vec<Message> {
        run_named(ANALYZERS, name, yaml)
    }

    fn codes(messages: &[Message]) -> Vec<&'static str> {
        messages.iter().map(Message::code).collect()
    }

    #[test]
    fn credential_name_without_selector_still_warns_and_disable_mode_does_not() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a, namespace: shop}
spec:
  host: db.shop.svc.cluster.local
  trafficPolicy:
    tls: {mode: DISABLE}
    portLevelSettings:
    - port: {number: 5432}
      tls: {mode: ISTIO_MUTUAL}
    - port: {number: 5433}
      tls: {mode: MUTUAL, caCertificates: /etc/ca.pem}
"#;
        assert!(run("destinationrule.CaCertificateAnalyzer", yaml).is_empty());
    }

    #[test]
    fn port_level_message_names_the_port() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a, namespace: shop}
spec:
  host: db
  trafficPolicy:
    portLevelSettings:
    - port: {number: 5432}
      tls: {mode: SIMPLE}
"#;
        let m = run("destinationrule.CaCertificateAnalyzer", yaml);
        assert_eq!(codes(&m), ["IST0129"]);
        assert!(
            m[0].text.ends_with("for host: db at port number:5432"),
            "{}",
            m[0].text
        );
        assert!(
            m[0].text
                .starts_with("DestinationRule shop/a in namespace shop")
        );
    }

    const SERVICE_AND_POD: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web, version: v1}}
spec:
  containers: [{name: web, image: web}]
"#;

    #[test]
    fn short_host_and_matching_subset_are_fine() {
        let yaml = format!(
            "{SERVICE_AND_POD}---\n{}",
            r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  subsets:
  - name: v1
    labels: {version: v1}
  - name: all
"#
        );
        assert!(run("destinationrule.PodNotSelectedAnalyzer", &yaml).is_empty());
    }

    #[test]
    fn short_host_from_another_namespace_is_unknown() {
        let yaml = format!(
            "{SERVICE_AND_POD}---\n{}",
            r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: other}
spec:
  host: web
"#
        );
        let m = run("destinationrule.PodNotSelectedAnalyzer", &yaml);
        assert_eq!(codes(&m), ["IST0174"]);
    }

    #[test]
    fn wildcard_service_entry_covers_host_and_adds_its_selector() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: shop}
spec:
  hosts: ["*.example.com"]
  workloadSelector: {labels: {app: vm}}
  ports: [{number: 443, name: https, protocol: HTTPS}]
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: elsewhere, labels: {version: v1}}
spec:
  containers: [{name: c, image: c}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ext, namespace: shop}
spec:
  host: api.example.com
  subsets:
  - name: v1
    labels: {version: v1}
"#;
        let m = run("destinationrule.PodNotSelectedAnalyzer", yaml);
        assert_eq!(codes(&m), ["IST0173"]);
    }

    #[test]
    fn service_exported_only_to_its_namespace_is_unknown_elsewhere() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  annotations: {networking.istio.io/exportTo: "."}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: here, namespace: shop}
spec:
  host: web.shop.svc.cluster.local
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: there, namespace: other}
spec:
  host: web.shop.svc.cluster.local
"#;
        let m = run("destinationrule.PodNotSelectedAnalyzer", yaml);
        assert_eq!(codes(&m), ["IST0174"]);
        assert_eq!(
            m[0].origin.as_ref().map(|o| o.display_name()).as_deref(),
            Some("DestinationRule other/there")
        );
    }

    #[test]
    fn workload_entries_are_subset_members() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: shop}
spec:
  address: 127.0.0.52
  labels: {app: reviews, version: v2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v2, labels: {version: v2}}
  - {name: v9, labels: {version: v9}}
"#;
        let m = run("destinationrule.PodNotSelectedAnalyzer", yaml);
        let texts: Vec<&str> = m.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts.len(), 1, "{texts:?}");
        assert!(texts[0].contains("v9"), "{texts:?}");
    }
}
