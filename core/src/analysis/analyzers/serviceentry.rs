//! Analyzers of Istio's `serviceentry` package: ServiceEntries with TCP ports but no
//! addresses (IST0134), and ServiceEntries that give one host and port conflicting
//! protocols in the same visibility scope (IST0177).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use crate::analysis::json::{arr_at, str_at, u64_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[
    AnalyzerDef {
        name: "serviceentry.ProtocolAddressesAnalyzer",
        description: "Checks the validity of ServiceEntry",
        messages: &[&catalog::SERVICE_ENTRY_ADDRESSES_REQUIRED],
        run: protocol_addresses,
    },
    AnalyzerDef {
        name: "serviceentry.ConflictingServiceEntryProtocolAnalyzer",
        description: "Checks if multiple ServiceEntries define the same host and port with different protocols",
        messages: &[&catalog::CONFLICTING_SERVICE_ENTRY_PROTOCOL],
        run: conflicting_protocols,
    },
];

/// Visibility scope meaning "every namespace".
const ALL_NAMESPACES: &str = "*";

// ---------------------------------------------------------------------------------------
// ProtocolAddressesAnalyzer

/// Whether the mesh allocates addresses to ServiceEntries itself: DNS capture on, with
/// DNS auto-allocation or IP auto-allocation.
fn mesh_allocates_addresses(ctx: &Context<'_>) -> bool {
    let on = |key: &str| ctx.mesh.proxy_metadata(key) == Some("true");
    on("ISTIO_META_DNS_CAPTURE")
        && (on("ISTIO_META_DNS_AUTO_ALLOCATE") || on("PILOT_ENABLE_IP_AUTOALLOCATE"))
}

/// Whether the ServiceEntry already has addresses allocated in its status.
fn status_has_addresses(se: &Resource) -> bool {
    !arr_at(&se.json, "/status/addresses").is_empty()
}

fn protocol_addresses(ctx: &mut Context<'_>) {
    if mesh_allocates_addresses(ctx) {
        return;
    }
    let store = ctx.store;
    for se in store.of(groups::NETWORKING, "ServiceEntry") {
        let spec = se.spec();
        if !arr_at(spec, "/addresses").is_empty() || status_has_addresses(se) {
            continue;
        }
        for (i, port) in arr_at(spec, "/ports").iter().enumerate() {
            let protocol = str_at(port, "/protocol").unwrap_or("");
            if protocol.is_empty() || protocol.eq_ignore_ascii_case("TCP") {
                ctx.report(
                    &catalog::SERVICE_ENTRY_ADDRESSES_REQUIRED,
                    se,
                    &format!("spec.ports[{i}].name"),
                    &[],
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// ConflictingServiceEntryProtocolAnalyzer

/// The scopes a ServiceEntry is visible in: `*` when exported everywhere (no `exportTo`,
/// or `*` among them), otherwise each listed namespace (`.` being its own).
fn export_scopes(spec: &Value, namespace: &str) -> BTreeSet<String> {
    let export_to: Vec<&str> = arr_at(spec, "/exportTo")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if export_to.is_empty() || export_to.contains(&ALL_NAMESPACES) {
        return BTreeSet::from([ALL_NAMESPACES.to_owned()]);
    }
    export_to
        .into_iter()
        .map(|e| if e == "." { namespace } else { e }.to_owned())
        .collect()
}

/// One port of one ServiceEntry: its protocol as written, and the ServiceEntry.
struct PortUse<'r> {
    protocol: String,
    entry: &'r Resource,
}

fn conflicting_protocols(ctx: &mut Context<'_>) {
    let store = ctx.store;
    // (scope, host, port) -> uses, keys kept in the order first seen.
    let mut keys: Vec<(String, String, u64)> = Vec::new();
    let mut index: BTreeMap<(String, String, u64), Vec<PortUse<'_>>> = BTreeMap::new();
    for se in store.of(groups::NETWORKING, "ServiceEntry") {
        let spec = se.spec();
        for scope in export_scopes(spec, se.ns()) {
            for host in arr_at(spec, "/hosts").iter().filter_map(Value::as_str) {
                for port in arr_at(spec, "/ports") {
                    let number = u64_at(port, "/number").unwrap_or(0);
                    let key = (scope.clone(), host.to_owned(), number);
                    let uses = index.entry(key.clone()).or_insert_with(|| {
                        keys.push(key);
                        Vec::new()
                    });
                    uses.push(PortUse {
                        protocol: str_at(port, "/protocol").unwrap_or("").to_owned(),
                        entry: se,
                    });
                }
            }
        }
    }

    let mut reported: HashSet<(String, String)> = HashSet::new();
    for key in &keys {
        let (scope, host, port) = key;
        let mut uses: Vec<&PortUse<'_>> = index.get(key).into_iter().flatten().collect();
        if scope != ALL_NAMESPACES {
            let everywhere = (ALL_NAMESPACES.to_owned(), host.clone(), *port);
            uses.extend(index.get(&everywhere).into_iter().flatten());
        }
        let protocols: BTreeSet<String> = uses.iter().map(|u| u.protocol.to_uppercase()).collect();
        if protocols.len() < 2 {
            continue;
        }
        let names: BTreeSet<String> = uses.iter().map(|u| u.entry.full_name()).collect();
        let names = names.into_iter().collect::<Vec<_>>().join(", ");
        let protocols = protocols.into_iter().collect::<Vec<_>>().join(", ");
        for u in &uses {
            let id = (u.entry.ns().to_owned(), u.entry.name.clone());
            if !reported.insert(id) {
                continue;
            }
            ctx.report(
                &catalog::CONFLICTING_SERVICE_ENTRY_PROTOCOL,
                u.entry,
                "metadata.name",
                &[&names, host, port, &protocols],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{self, MeshConfig, Message};
    use crate::source;

    fn run(name: &str, yaml: &str, mesh: MeshConfig) -> Vec<Message> {
        let loaded = source::load_bytes("test.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let store = analysis::files_store(loaded.resources, &mesh);
        let defs: Vec<&AnalyzerDef> = ANALYZERS.iter().filter(|a| a.name == name).collect();
        assert_eq!(defs.len(), 1, "no analyzer {name}");
        analysis::run(&store, &mesh, &defs)
    }

    #[test]
    fn dns_capture_alone_does_not_allocate() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.example.com]
  ports:
  - {number: 5432, name: pg, protocol: TCP}
  - {number: 5433, name: pg2}
  - {number: 443, name: https, protocol: HTTPS}
"#;
        let mesh = MeshConfig::from_json(serde_json::json!({
            "defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}}
        }));
        let m = run("serviceentry.ProtocolAddressesAnalyzer", yaml, mesh);
        assert_eq!(m.len(), 2, "one message per TCP port: {m:?}");
        let auto = MeshConfig::from_json(serde_json::json!({
            "defaultConfig": {"proxyMetadata": {
                "ISTIO_META_DNS_CAPTURE": "true", "PILOT_ENABLE_IP_AUTOALLOCATE": "true"}}
        }));
        assert!(run("serviceentry.ProtocolAddressesAnalyzer", yaml, auto).is_empty());
    }

    #[test]
    fn protocol_case_does_not_make_a_conflict() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: shop}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: http}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: shop}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
"#;
        let name = "serviceentry.ConflictingServiceEntryProtocolAnalyzer";
        assert!(run(name, yaml, MeshConfig::default()).is_empty());
    }

    #[test]
    fn namespace_scoped_entry_conflicts_with_one_exported_everywhere() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: local, namespace: shop}
spec:
  hosts: [api.example.com]
  exportTo: ["."]
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: global, namespace: other}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: tcp, protocol: TCP}]
"#;
        let name = "serviceentry.ConflictingServiceEntryProtocolAnalyzer";
        let m = run(name, yaml, MeshConfig::default());
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].text,
            "Multiple ServiceEntries (other/global, shop/local) define the same host \
             \"api.example.com\" and port 80 with conflicting protocols (HTTP, TCP)."
        );
    }
}
