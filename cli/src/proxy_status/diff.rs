//! `meshctl proxy-status PROXY`: what meshd sends a proxy against what the proxy holds.
//!
//! Reads meshd's `/debug/config_dump?proxyID=` and the proxy's admin `/config_dump` (both in
//! Envoy's config dump shape), reduces each with [`mesh_core::xds::json::comparable`] (only
//! the dynamic resources, sorted by name, without versions, update times and what Envoy adds
//! on its own), renders each resource entry as JSON with sorted keys, and prints, per
//! section (Clusters, Listeners, Routes), a unified diff of each resource that differs,
//! headed by its name, or `Clusters Match` when all are equal, as istioctl does. Entries keep their state, so a cluster
//! still warming or a listener in error shows as a difference. A meshd that serves only
//! resource names (before Envoy-shaped dumps) is compared by names, and the output says so.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use mesh_core::xds::json;
use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;

use super::{OUT_OF_SYNC, ProxyStatusArgs, UNAVAILABLE, display_name, fetch, http};
use crate::args::DataFormat;
use crate::exit;
use crate::output::to_yaml;

/// The proxy's admin port in local mode.
pub const ADMIN_PORT: u16 = 15000;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The sections compared, in istioctl's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Clusters,
    Listeners,
    Routes,
}

impl Section {
    pub const ALL: [Section; 3] = [Section::Clusters, Section::Listeners, Section::Routes];

    pub fn title(self) -> &'static str {
        match self {
            Section::Clusters => "Clusters",
            Section::Listeners => "Listeners",
            Section::Routes => "Routes",
        }
    }

    /// The `@type` of the section's entry in Envoy's config dump.
    fn dump_type(self) -> &'static str {
        match self {
            Section::Clusters => "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            Section::Listeners => "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            Section::Routes => "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
        }
    }

    /// The lists of the section's entry in Envoy's config dump.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Section::Clusters => &["dynamic_active_clusters", "dynamic_warming_clusters"],
            Section::Listeners => &["dynamic_listeners"],
            Section::Routes => &["dynamic_route_configs"],
        }
    }

    /// The key of meshd's names-only dump (`resources.cds`).
    fn short(self) -> &'static str {
        match self {
            Section::Clusters => "cds",
            Section::Listeners => "lds",
            Section::Routes => "rds",
        }
    }
}

/// One section's comparison.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SectionDiff {
    pub section: &'static str,
    #[serde(rename = "match")]
    pub matches: bool,
    /// The unified diff, empty when the section matches.
    pub diff: String,
}

/// The whole comparison.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDiff {
    pub proxy: String,
    pub admin: String,
    /// `full` (whole resources) or `names` (meshd served names only).
    pub compared: &'static str,
    pub sections: Vec<SectionDiff>,
}

/// The resources of one section of an Envoy-shaped config dump, by name, each as JSON
/// with sorted keys; `None` when the dump has no `configs`.
pub fn envoy_section(dump: &Value, section: Section) -> Option<Vec<(String, String)>> {
    let configs = dump.get("configs")?.as_array()?;
    let mut out = Vec::new();
    for c in configs
        .iter()
        .filter(|c| c.get("@type").and_then(Value::as_str) == Some(section.dump_type()))
    {
        let items: Vec<&Value> = match section {
            Section::Clusters => array(c, "dynamic_active_clusters")
                .filter_map(|e| e.get("cluster"))
                .collect(),
            Section::Listeners => array(c, "dynamic_listeners")
                .filter_map(|e| e.get("active_state").and_then(|s| s.get("listener")))
                .collect(),
            Section::Routes => array(c, "dynamic_route_configs")
                .filter_map(|e| e.get("route_config"))
                .collect(),
        };
        for item in items {
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            out.push((name, canonical(item)));
        }
    }
    out.sort();
    Some(out)
}

fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// Pretty JSON with object keys sorted at every level, so that field order never shows as
/// a difference.
pub fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string_pretty(&sorted(v)).unwrap_or_default()
}

/// One section of a [`comparable`](mesh_core::xds::json::comparable) dump, by resource
/// name: the list it is in (`dynamic_active_clusters`, `dynamic_warming_clusters`, ...) on
/// a line, then the entry as JSON with sorted keys (twice for a cluster both active and
/// warming).
pub fn section_entries(comparable: &Value, section: Section) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let configs = comparable
        .get("configs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for c in configs.filter(|c| c.get("@type").and_then(Value::as_str) == Some(section.dump_type()))
    {
        for key in section.keys() {
            for item in array(c, key) {
                let name = ["/name", "/cluster/name", "/route_config/name"]
                    .iter()
                    .find_map(|p| item.pointer(p).and_then(Value::as_str))
                    .unwrap_or_default();
                out.entry(name.to_owned())
                    .or_default()
                    .push_str(&format!("{key}\n{}\n", canonical(item)));
            }
        }
    }
    out
}

/// A unified diff per resource that differs, headed by the section and resource name.
fn entry_diffs(
    section: Section,
    ours: &BTreeMap<String, String>,
    theirs: &BTreeMap<String, String>,
) -> String {
    let names: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    let mut out = String::new();
    for name in names {
        let a = ours.get(name).map(String::as_str).unwrap_or_default();
        let b = theirs.get(name).map(String::as_str).unwrap_or_default();
        if a == b {
            continue;
        }
        let missing = |side: &str, text: &str| {
            if text.is_empty() {
                format!(" (absent from {side})")
            } else {
                String::new()
            }
        };
        out.push_str(
            &TextDiff::from_lines(a, b)
                .unified_diff()
                .context_radius(3)
                .header(
                    &format!("meshd {} {name}{}", section.title(), missing("meshd", a)),
                    &format!(
                        "proxy {} {name}{}",
                        section.title(),
                        missing("the proxy", b)
                    ),
                )
                .to_string(),
        );
    }
    out
}

/// Compares meshd's dump with the proxy's, section by section.
pub fn compare(proxy: &str, admin: &str, meshd: &Value, envoy: &Value) -> ConfigDiff {
    let full = meshd.get("configs").is_some();
    let (ours_full, theirs_full) = (json::comparable(meshd), json::comparable(envoy));
    let sections = Section::ALL
        .into_iter()
        .map(|s| {
            if full {
                let diff = entry_diffs(
                    s,
                    &section_entries(&ours_full, s),
                    &section_entries(&theirs_full, s),
                );
                return SectionDiff {
                    section: s.title(),
                    matches: diff.is_empty(),
                    diff,
                };
            }
            let (a, b) = {
                let theirs = envoy_section(envoy, s).unwrap_or_default();
                let names = meshd
                    .pointer(&format!("/resources/{}", s.short()))
                    .and_then(Value::as_array)
                    .map(|a| {
                        let mut n: Vec<(String, String)> = a
                            .iter()
                            .filter_map(Value::as_str)
                            .map(|n| (n.to_owned(), format!("{n:?}")))
                            .collect();
                        n.sort();
                        n
                    })
                    .unwrap_or_default();
                let theirs: Vec<(String, String)> = theirs
                    .into_iter()
                    .map(|(n, _)| (n.clone(), format!("{n:?}")))
                    .collect();
                let text = |items: &[(String, String)]| {
                    items
                        .iter()
                        .map(|(_, j)| format!("{j}\n"))
                        .collect::<String>()
                };
                (text(&names), text(&theirs))
            };
            let matches = a == b;
            let diff = if matches {
                String::new()
            } else {
                TextDiff::from_lines(&a, &b)
                    .unified_diff()
                    .context_radius(3)
                    .header(
                        &format!("meshd {}", s.title()),
                        &format!("proxy {}", s.title()),
                    )
                    .to_string()
            };
            SectionDiff {
                section: s.title(),
                matches,
                diff,
            }
        })
        .collect();
    ConfigDiff {
        proxy: proxy.to_owned(),
        admin: admin.to_owned(),
        compared: if full { "full" } else { "names" },
        sections,
    }
}

/// The human rendering: a unified diff per differing section, `X Match` otherwise.
pub fn render(d: &ConfigDiff) -> String {
    let mut out = String::new();
    if d.compared == "names" {
        out.push_str(
            "note: meshd serves resource names only in /debug/config_dump; comparing names\n",
        );
    }
    for s in &d.sections {
        if s.matches {
            out.push_str(&format!("{} Match\n", s.section));
        } else {
            out.push_str(&s.diff);
            if !s.diff.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

/// Runs the diff for `proxy`; returns the exit code.
pub async fn run(args: &ProxyStatusArgs, proxy: &str) -> anyhow::Result<u8> {
    let entries = fetch(&args.controlplane).await?;
    let found = entries
        .iter()
        .filter(|e| e.proxy == proxy || display_name(e) == proxy)
        .max_by_key(|e| e.connection_id);
    let node_id = match (found, &args.admin) {
        (Some(e), _) => e.proxy.clone(),
        (None, Some(_)) => proxy.to_owned(),
        (None, None) => {
            let known: Vec<String> = entries.iter().map(display_name).collect();
            eprintln!(
                "error: no proxy {proxy:?} is connected to meshd at {} (connected: {})",
                args.controlplane,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            );
            return Ok(UNAVAILABLE);
        }
    };
    let admin = match args.admin {
        Some(a) => a,
        None => SocketAddr::new(ip_of(&node_id)?, ADMIN_PORT),
    };
    let base = args.controlplane.trim_end_matches('/');
    let url = format!(
        "{base}/debug/config_dump?proxyID={}",
        http::encode_query(&node_id)
    );
    let deadline = args.wait.map(|w| std::time::Instant::now() + w);
    let d = loop {
        let d = fetch_and_compare(&url, &node_id, admin).await?;
        match deadline {
            Some(t) if !d.sections.iter().all(|s| s.matches) && std::time::Instant::now() < t => {
                tokio::time::sleep(super::POLL).await;
            }
            _ => break d,
        }
    };
    match args.output {
        Some(DataFormat::Json) => println!("{}", serde_json::to_string_pretty(&d)?),
        Some(DataFormat::Yaml) => print!("{}", to_yaml(&d)),
        None => print!("{}", render(&d)),
    }
    Ok(if d.sections.iter().all(|s| s.matches) {
        exit::OK
    } else {
        OUT_OF_SYNC
    })
}

/// One comparison: meshd's dump at `url` against the proxy's at `admin`.
async fn fetch_and_compare(
    url: &str,
    node_id: &str,
    admin: SocketAddr,
) -> anyhow::Result<ConfigDiff> {
    let resp = http::get(url, TIMEOUT).await?;
    if resp.status != 200 {
        bail!(
            "{url} answered {}: {}",
            resp.status,
            String::from_utf8_lossy(&resp.body).trim()
        );
    }
    let meshd = resp.json("meshd's config_dump")?;
    let admin_url = format!("http://{admin}/config_dump");
    let resp = http::get(&admin_url, TIMEOUT).await.with_context(|| {
        format!("cannot reach the proxy's admin API at {admin} (use --admin ADDR)")
    })?;
    if resp.status != 200 {
        bail!("{admin_url} answered {}", resp.status);
    }
    let envoy = resp.json("the proxy's /config_dump")?;
    Ok(compare(node_id, &admin.to_string(), &meshd, &envoy))
}

/// The IP of a node id `TYPE~IP~NAME.NS~DOMAIN`.
fn ip_of(node_id: &str) -> anyhow::Result<IpAddr> {
    node_id
        .split('~')
        .nth(1)
        .and_then(|ip| ip.parse().ok())
        .with_context(|| format!("{node_id:?} is not a node id with an IP; give --admin ADDR"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn dump(clusters: Value, listeners: Value, routes: Value) -> Value {
        json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {}},
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
             "static_clusters": [{"cluster": {"name": "xds-grpc"}}],
             "dynamic_active_clusters": clusters},
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
             "dynamic_listeners": listeners},
            {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
             "dynamic_route_configs": routes},
        ]})
    }

    #[test]
    fn equal_dumps_match_whatever_the_key_order_and_versions() {
        let ours = dump(
            json!([{"version_info": "3", "cluster": {"name": "b", "type": "EDS", "lb_policy": "LEAST_REQUEST"}},
                   {"version_info": "3", "cluster": {"name": "a"}}]),
            json!([{"name": "l", "active_state": {"version_info": "3", "listener": {"name": "l"}}}]),
            json!([{"version_info": "3", "route_config": {"name": "15001"}}]),
        );
        let theirs = dump(
            json!([{"version_info": "2", "last_updated": "x", "cluster": {"name": "a"}},
                   {"cluster": {"lb_policy": "LEAST_REQUEST", "name": "b", "type": "EDS"}}]),
            json!([{"name": "l", "active_state": {"listener": {"name": "l"}}}]),
            json!([{"route_config": {"name": "15001"}}]),
        );
        let d = compare("p", "a", &ours, &theirs);
        assert_eq!(d.compared, "full");
        assert_eq!(
            render(&d),
            "Clusters Match\nListeners Match\nRoutes Match\n"
        );
    }

    #[test]
    fn a_difference_is_a_unified_diff_of_that_section() {
        let ours = dump(
            json!([{"cluster": {"name": "a", "connect_timeout": "10s"}}]),
            json!([]),
            json!([{"route_config": {"name": "15001"}}]),
        );
        let theirs = dump(
            json!([{"cluster": {"name": "a", "connect_timeout": "5s"}}]),
            json!([{"name": "l", "active_state": {"listener": {"name": "l"}}}]),
            json!([{"route_config": {"name": "15001"}}]),
        );
        let d = compare("p", "a", &ours, &theirs);
        let text = render(&d);
        assert!(
            text.contains("--- meshd Clusters a\n+++ proxy Clusters a\n"),
            "{text}"
        );
        let line = |sign: char, needle: &str| {
            text.lines()
                .any(|l| l.starts_with(sign) && l.contains(needle))
        };
        assert!(line('-', "\"connect_timeout\": \"10s\""), "{text}");
        assert!(line('+', "\"connect_timeout\": \"5s\""), "{text}");
        assert!(
            text.contains("--- meshd Listeners l (absent from meshd)\n+++ proxy Listeners l\n"),
            "{text}"
        );
        assert!(text.ends_with("Routes Match\n"), "{text}");
        assert!(!d.sections[0].matches && !d.sections[1].matches && d.sections[2].matches);
    }

    #[test]
    fn a_names_only_meshd_is_compared_by_names() {
        let ours = json!({"proxy": "p", "resources": {"cds": ["a", "b"], "lds": ["l"], "rds": []}});
        let theirs = dump(
            json!([{"cluster": {"name": "a"}}, {"cluster": {"name": "b"}}]),
            json!([{"name": "l", "active_state": {"listener": {"name": "l"}}}]),
            json!([{"route_config": {"name": "15001"}}]),
        );
        let d = compare("p", "a", &ours, &theirs);
        assert_eq!(d.compared, "names");
        let text = render(&d);
        assert!(text.contains("Clusters Match\nListeners Match\n"), "{text}");
        assert!(text.contains("+\"15001\""), "{text}");
    }

    /// A real Envoy 1.40 dump (captured by mesh-e2e's config_dump test).
    fn real_dump() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/envoy-dumps/header-routing-client.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn a_real_dump_matches_itself_and_shows_warming_clusters_and_listener_errors() {
        let envoy = real_dump();
        let d = compare("p", "a", &envoy, &envoy);
        assert_eq!(d.compared, "full");
        assert_eq!(
            render(&d),
            "Clusters Match\nListeners Match\nRoutes Match\n"
        );

        // The proxy still warms one cluster, and rejected a listener update.
        let mut warming = envoy.clone();
        let configs = warming["configs"].as_array_mut().unwrap();
        let clusters = configs
            .iter_mut()
            .find(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.ClustersConfigDump")
            .unwrap();
        let moved = clusters["dynamic_active_clusters"]
            .as_array_mut()
            .unwrap()
            .pop()
            .unwrap();
        let name = moved["cluster"]["name"].as_str().unwrap().to_owned();
        clusters["dynamic_warming_clusters"] = json!([moved]);
        let listeners = configs
            .iter_mut()
            .find(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.ListenersConfigDump")
            .unwrap();
        let first = &mut listeners["dynamic_listeners"][0];
        let lname = first["name"].as_str().unwrap().to_owned();
        first["error_state"] = json!({"details": "cannot bind", "failed_configuration": {}});
        let d = compare("p", "a", &envoy, &warming);
        let text = render(&d);
        assert!(
            text.contains(&format!(
                "--- meshd Clusters {name}\n+++ proxy Clusters {name}\n@@ -1,4 +1,4 @@\n\
                 -dynamic_active_clusters\n+dynamic_warming_clusters\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("--- meshd Listeners {lname}\n")),
            "{text}"
        );
        assert!(
            text.contains("+    \"details\": \"cannot bind\","),
            "{text}"
        );
        assert_eq!(
            text.matches("--- meshd").count(),
            2,
            "only what differs: {text}"
        );
        assert!(text.ends_with("Routes Match\n"), "{text}");
    }

    #[test]
    fn node_ids_give_the_admin_ip() {
        assert_eq!(
            ip_of("sidecar~127.0.0.12~a.b~b.svc.cluster.local").unwrap(),
            "127.0.0.12".parse::<IpAddr>().unwrap()
        );
        assert!(ip_of("reviews-v1.bookinfo").is_err());
    }
}
