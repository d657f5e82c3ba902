//! The cluster, listener, route and endpoint views of a proxy's config: istioctl's columns,
//! filters and order, computed on the dump's JSON. Each view returns the filtered resources
//! (for `-o json|yaml`) and the table (for `-o short`).
//!
//! Istio names the DestinationRule or VirtualService behind a cluster or route in
//! `metadata.filter_metadata.istio.config`
//! (`/apis/networking.istio.io/VERSION/namespaces/NS/KIND/NAME`); where that is absent the
//! column shows `-`.

use std::cmp::Ordering;

use serde_json::Value;

use super::dump::{ConfigDump, array_at, at, str_at, strings_at, type_of, u64_at};
use super::table::Table;

const HCM_NAME: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY_NAME: &str = "envoy.filters.network.tcp_proxy";
const BLACKHOLE: &str = "BlackHoleCluster";
const PASSTHROUGH: &str = "PassthroughCluster";

/// `NAME.NAMESPACE` of the Istio config named in a resource's metadata, or `-`.
pub fn istio_config(resource: &Value) -> String {
    let Some(path) = str_at(
        resource,
        &["metadata", "filter_metadata", "istio", "config"],
    ) else {
        return "-".to_owned();
    };
    // ["", "apis", GROUP, VERSION, "namespaces", NS, KIND, NAME]
    let pieces: Vec<&str> = path.split('/').collect();
    if pieces.len() == 8 && pieces[1] == "apis" && pieces[4] == "namespaces" {
        format!("{}.{}", pieces[7], pieces[5])
    } else {
        "<unknown>".to_owned()
    }
}

// ---------------------------------------------------------------------------------------
// Clusters

/// `--fqdn --port --subset --direction` of `proxy-config cluster`.
#[derive(Clone, Debug, Default)]
pub struct ClusterFilter {
    pub fqdn: Option<String>,
    pub port: Option<u32>,
    pub subset: Option<String>,
    pub direction: Option<String>,
}

impl ClusterFilter {
    /// istioctl's test: substrings of the cluster name (the port as `|PORT|`).
    pub fn matches(&self, name: &str) -> bool {
        let has = |v: &Option<String>| v.as_deref().is_none_or(|s| name.contains(s));
        has(&self.fqdn)
            && has(&self.direction)
            && has(&self.subset)
            && self.port.is_none_or(|p| name.contains(&format!("|{p}|")))
    }
}

/// An Istio cluster name split: `DIRECTION|PORT|SUBSET|FQDN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubsetKey {
    pub direction: String,
    pub port: u32,
    pub subset: String,
    pub fqdn: String,
}

/// Splits `outbound|9080|v1|reviews.default.svc.cluster.local`; `None` for other names.
pub fn parse_subset_key(name: &str) -> Option<SubsetKey> {
    let parts: Vec<&str> = name.splitn(4, '|').collect();
    if parts.len() < 4 {
        return None;
    }
    Some(SubsetKey {
        direction: parts[0].to_owned(),
        port: parts[1].parse().unwrap_or(0),
        subset: parts[2].to_owned(),
        fqdn: parts[3].to_owned(),
    })
}

fn cluster_sort_key(name: &str) -> (String, String, u32, String) {
    match parse_subset_key(name) {
        Some(k) => (k.fqdn, k.subset, k.port, k.direction),
        None => (name.to_owned(), String::new(), 0, String::new()),
    }
}

/// The filtered clusters in istioctl's order (FQDN, subset, port, direction).
pub fn clusters<'a>(dump: &'a ConfigDump, filter: &ClusterFilter) -> Vec<&'a Value> {
    let mut out: Vec<&Value> = dump
        .clusters()
        .into_iter()
        .filter(|c| filter.matches(str_at(c, &["name"]).unwrap_or_default()))
        .collect();
    out.sort_by_cached_key(|c| cluster_sort_key(str_at(c, &["name"]).unwrap_or_default()));
    out
}

/// A cluster's discovery type (`STATIC` when unset, as protobuf's default), or the custom
/// cluster type's name.
fn cluster_type(c: &Value) -> String {
    match at(c, &["type"]) {
        Some(Value::String(t)) => return t.clone(),
        Some(Value::Number(n)) => return n.to_string(),
        _ => {}
    }
    if let Some(n) = str_at(c, &["cluster_type", "name"]) {
        return n.to_owned();
    }
    "STATIC".to_owned()
}

pub fn cluster_table(clusters: &[&Value]) -> Table {
    let mut t = Table::new(
        &[
            "SERVICE FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "DESTINATION RULE",
        ],
        5,
    );
    for c in clusters {
        let name = str_at(c, &["name"]).unwrap_or_default();
        let (fqdn, port, subset, direction) = match parse_subset_key(name) {
            Some(k) => (
                k.fqdn,
                k.port.to_string(),
                if k.subset.is_empty() {
                    "-".to_owned()
                } else {
                    k.subset
                },
                k.direction,
            ),
            None => (name.to_owned(), "-".into(), "-".into(), "-".into()),
        };
        t.push(vec![
            fqdn,
            port,
            subset,
            direction,
            cluster_type(c),
            istio_config(c),
        ]);
    }
    t
}

// ---------------------------------------------------------------------------------------
// Listeners

/// `--address --port --type` of `proxy-config listener`.
#[derive(Clone, Debug, Default)]
pub struct ListenerFilter {
    pub address: Option<String>,
    pub port: Option<u32>,
    pub kind: Option<String>,
}

impl ListenerFilter {
    pub fn matches(&self, l: &Value) -> bool {
        if let Some(a) = &self.address {
            let mut addrs = listener_additional_addresses(l);
            addrs.push(listener_address(l));
            if !addrs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                return false;
            }
        }
        if self.port.is_some_and(|p| listener_port(l) != p) {
            return false;
        }
        if let Some(k) = &self.kind
            && !listener_type(l).eq_ignore_ascii_case(k)
        {
            return false;
        }
        true
    }
}

fn socket_or_pipe(addr: &Value) -> String {
    str_at(addr, &["socket_address", "address"])
        .or_else(|| str_at(addr, &["pipe", "path"]))
        .or_else(|| str_at(addr, &["envoy_internal_address", "server_listener_name"]))
        .unwrap_or_default()
        .to_owned()
}

fn listener_address(l: &Value) -> String {
    at(l, &["address"]).map(socket_or_pipe).unwrap_or_default()
}

fn listener_additional_addresses(l: &Value) -> Vec<String> {
    array_at(l, &["additional_addresses"])
        .iter()
        .filter_map(|a| at(a, &["address"]).map(socket_or_pipe))
        .collect()
}

fn listener_port(l: &Value) -> u32 {
    u64_at(l, &["address", "socket_address", "port_value"])
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0)
}

fn filter_chains(l: &Value) -> Vec<&Value> {
    let mut chains: Vec<&Value> = array_at(l, &["filter_chains"]).iter().collect();
    if let Some(d) = at(l, &["default_filter_chain"]).filter(|v| v.is_object()) {
        chains.push(d);
    }
    chains
}

fn is_hcm(f: &Value) -> bool {
    str_at(f, &["name"]) == Some(HCM_NAME)
        || at(f, &["typed_config"]).is_some_and(|t| type_of(t).ends_with(".HttpConnectionManager"))
}

fn is_tcp_proxy(f: &Value) -> bool {
    str_at(f, &["name"]) == Some(TCP_PROXY_NAME)
        || at(f, &["typed_config"]).is_some_and(|t| type_of(t).ends_with(".TcpProxy"))
}

fn mentions_blackhole(f: &Value) -> bool {
    at(f, &["typed_config"]).is_some_and(|t| t.to_string().contains(BLACKHOLE))
}

/// istioctl's classification: HTTP, TCP, HTTP+TCP or UNKNOWN (TCP proxies to the
/// BlackHoleCluster do not count).
fn listener_type(l: &Value) -> &'static str {
    let (mut http, mut tcp) = (0, 0);
    for chain in filter_chains(l) {
        for f in array_at(chain, &["filters"]) {
            if is_hcm(f) {
                http += 1;
            } else if is_tcp_proxy(f) && !mentions_blackhole(f) {
                tcp += 1;
            }
        }
    }
    match (http > 0, tcp > 0) {
        (true, false) => "HTTP",
        (true, true) => "HTTP+TCP",
        (false, true) => "TCP",
        (false, false) => "UNKNOWN",
    }
}

/// The filtered listeners in istioctl's order (port, address, type).
pub fn listeners<'a>(dump: &'a ConfigDump, filter: &ListenerFilter) -> Vec<&'a Value> {
    let mut out: Vec<&Value> = dump
        .listeners()
        .into_iter()
        .filter(|l| filter.matches(l))
        .collect();
    out.sort_by_cached_key(|l| (listener_port(l), listener_address(l), listener_type(l)));
    out
}

/// ALPN lists istioctl names.
const ALPN_NAMES: &[(&str, &[&str])] = &[
    (
        "App: HTTP TLS",
        &[
            "http/1.0",
            "http/1.1",
            "h2c",
            "istio-http/1.0",
            "istio-http/1.1",
            "istio-h2",
        ],
    ),
    (
        "App: Istio HTTP Plain",
        &["istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"],
    ),
    ("App: TCP TLS", &["istio-peer-exchange", "istio"]),
    ("App: HTTP", &["http/1.0", "http/1.1", "h2c"]),
];

fn describe_chain_match(m: Option<&Value>) -> String {
    let empty = Value::Null;
    let m = m.unwrap_or(&empty);
    let mut parts = Vec::new();
    let sni = strings_at(m, &["server_names"]);
    if !sni.is_empty() {
        parts.push(format!("SNI: {}", sni.join(",")));
    }
    if let Some(t) = str_at(m, &["transport_protocol"]).filter(|s| !s.is_empty()) {
        parts.push(format!("Trans: {t}"));
    }
    let alpn = strings_at(m, &["application_protocols"]);
    if !alpn.is_empty() {
        match ALPN_NAMES.iter().find(|(_, list)| *list == alpn.as_slice()) {
            Some((name, _)) => parts.push((*name).to_owned()),
            None => parts.push(format!("App: {}", alpn.join(","))),
        }
    }
    let port = u64_at(m, &["destination_port"])
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let ranges: Vec<String> = array_at(m, &["prefix_ranges"])
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                str_at(r, &["address_prefix"]).unwrap_or_default(),
                u64_at(r, &["prefix_len"]).unwrap_or(0)
            )
        })
        .collect();
    if !ranges.is_empty() {
        parts.push(format!("Addr: {}{port}", ranges.join(",")));
    } else if !port.is_empty() {
        parts.push(format!("Addr: *{port}"));
    }
    if parts.is_empty() {
        "ALL".to_owned()
    } else {
        parts.join("; ")
    }
}

fn cluster_label(cluster: &str) -> String {
    if cluster.contains("Cluster") {
        cluster.to_owned()
    } else {
        format!("Cluster: {cluster}")
    }
}

/// Where a filter chain sends traffic, as istioctl's DESTINATION column says it.
fn describe_destination(chain: &Value) -> String {
    for f in array_at(chain, &["filters"]) {
        let cfg = at(f, &["typed_config"]);
        if is_hcm(f) {
            if let Some(rc) = cfg.and_then(|c| at(c, &["route_config"])) {
                return describe_inline_routes(rc);
            }
            if let Some(name) = cfg
                .and_then(|c| str_at(c, &["rds", "route_config_name"]))
                .filter(|s| !s.is_empty())
            {
                return format!("Route: {name}");
            }
            return "HTTP".to_owned();
        }
        if is_tcp_proxy(f) && !mentions_blackhole(f) {
            let cluster = cfg
                .and_then(|c| str_at(c, &["cluster"]))
                .unwrap_or_default();
            return cluster_label(cluster);
        }
    }
    "Non-HTTP/Non-TCP".to_owned()
}

fn describe_inline_routes(rc: &Value) -> String {
    let vhosts = array_at(rc, &["virtual_hosts"]);
    // One catch-all route to one cluster: just the cluster.
    if let [vh] = vhosts
        && strings_at(vh, &["domains"]) == ["*"]
        && let [r] = array_at(vh, &["routes"])
        && str_at(r, &["match", "prefix"]) == Some("/")
        && let Some(c) = str_at(r, &["route", "cluster"])
    {
        return cluster_label(c);
    }
    let described: Vec<String> = vhosts
        .iter()
        .map(|vh| {
            let domains = strings_at(vh, &["domains"]);
            let routes: Vec<String> = array_at(vh, &["routes"])
                .iter()
                .map(|r| describe_match(at(r, &["match"])))
                .collect();
            if domains == ["*"] {
                routes.join(", ")
            } else {
                format!("{} {}", domains.join("/"), routes.join(", "))
            }
        })
        .collect();
    format!("Inline Route: {}", described.join("; "))
}

pub fn listener_table(listeners: &[&Value]) -> Table {
    let mut t = Table::new(&["ADDRESSES", "PORT", "MATCH", "DESTINATION"], 1);
    for l in listeners {
        let mut addrs = vec![listener_address(l)];
        addrs.extend(listener_additional_addresses(l));
        let addrs = addrs.join(",");
        let port = listener_port(l).to_string();
        let mut rows: Vec<(String, String)> = filter_chains(l)
            .into_iter()
            .map(|c| {
                (
                    describe_chain_match(at(c, &["filter_chain_match"])),
                    describe_destination(c),
                )
            })
            .collect();
        // istioctl orders a listener's chains by destination, descending.
        rows.sort_by(|a, b| b.1.cmp(&a.1));
        for (m, d) in rows {
            t.push(vec![addrs.clone(), port.clone(), m, d]);
        }
    }
    t
}

// ---------------------------------------------------------------------------------------
// Routes

/// `--name` of `proxy-config route`.
#[derive(Clone, Debug, Default)]
pub struct RouteFilter {
    pub name: Option<String>,
}

fn route_order(a: &str, b: &str) -> Ordering {
    // Istio names route configs by port: numeric names first, by number.
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        _ => a.cmp(b),
    }
}

/// The filtered route configurations, numeric names (ports) first.
pub fn routes<'a>(dump: &'a ConfigDump, filter: &RouteFilter) -> Vec<&'a Value> {
    let mut out: Vec<&Value> = dump
        .routes()
        .into_iter()
        .filter(|r| {
            filter
                .name
                .as_deref()
                .is_none_or(|n| str_at(r, &["name"]).unwrap_or_default() == n)
        })
        .collect();
    out.sort_by(|a, b| {
        route_order(
            str_at(a, &["name"]).unwrap_or_default(),
            str_at(b, &["name"]).unwrap_or_default(),
        )
    });
    out
}

/// A route's match as istioctl shows it (headers and query parameters are not shown).
fn describe_match(m: Option<&Value>) -> String {
    let Some(m) = m else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(p) = str_at(m, &["prefix"]).filter(|s| !s.is_empty()) {
        parts.push(format!("{p}*"));
    }
    if let Some(p) = str_at(m, &["path_separated_prefix"]).filter(|s| !s.is_empty()) {
        parts.push(format!("PathPrefix:{p}"));
    }
    if let Some(p) = str_at(m, &["path"]).filter(|s| !s.is_empty()) {
        parts.push(p.to_owned());
    }
    if let Some(r) = str_at(m, &["safe_regex", "regex"]) {
        parts.push(format!("regex {r}"));
    }
    parts.join(" ")
}

/// istioctl's short form of a virtual host's domains: the ones without a port, without
/// the `.svc.cluster.local` / `.svc` spellings of a shorter one present, at most two.
pub fn describe_domains(domains: &[String]) -> String {
    match domains {
        [] => return String::new(),
        [one] => return one.clone(),
        _ => {}
    }
    let without_port: Vec<&str> = domains
        .iter()
        .map(String::as_str)
        .filter(|d| !d.contains(':') || (d.matches(':').count() > 2 && d.ends_with(']')))
        .collect();
    let shorter_exists = |d: &str| {
        [".svc.cluster.local", ".svc"].iter().any(|suffix| {
            d.strip_suffix(suffix)
                .is_some_and(|s| without_port.contains(&s))
        })
    };
    let kept: Vec<&str> = without_port
        .iter()
        .copied()
        .filter(|d| !shorter_exists(d))
        .collect();
    if kept.len() > 2 {
        format!("{} + {} more...", kept[..2].join(", "), kept.len() - 2)
    } else {
        kept.join(", ")
    }
}

fn is_passthrough(r: &Value) -> bool {
    str_at(r, &["route", "cluster"]) == Some(PASSTHROUGH)
}

pub fn route_table(routes: &[&Value]) -> Table {
    let mut t = Table::new(
        &["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"],
        5,
    );
    for rc in routes {
        let name = str_at(rc, &["name"]).unwrap_or_default();
        for vh in array_at(rc, &["virtual_hosts"]) {
            let vh_name = str_at(vh, &["name"]).unwrap_or_default();
            let domains = describe_domains(&strings_at(vh, &["domains"]));
            let vroutes = array_at(vh, &["routes"]);
            for r in vroutes.iter().filter(|r| !is_passthrough(r)) {
                t.push(vec![
                    name.to_owned(),
                    vh_name.to_owned(),
                    domains.clone(),
                    describe_match(at(r, &["match"])),
                    istio_config(r),
                ]);
            }
            if vroutes.is_empty() {
                t.push(vec![
                    name.to_owned(),
                    vh_name.to_owned(),
                    domains.clone(),
                    "/*".to_owned(),
                    "404".to_owned(),
                ]);
            }
        }
    }
    t
}

// ---------------------------------------------------------------------------------------
// Endpoints

/// `--address --port --cluster --status` of `proxy-config endpoint`.
#[derive(Clone, Debug, Default)]
pub struct EndpointFilter {
    pub address: Option<String>,
    pub port: Option<u32>,
    pub cluster: Option<String>,
    pub status: Option<String>,
}

/// One endpoint of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointRow {
    pub address: String,
    pub port: u32,
    pub cluster: String,
    pub status: String,
    /// `OK`/`FAILED` from `/clusters`; `-` from a config dump (no outlier state there).
    pub outlier: String,
}

impl EndpointRow {
    fn endpoint(&self) -> String {
        if self.port == 0 {
            self.address.clone()
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

impl EndpointFilter {
    pub fn matches(&self, e: &EndpointRow) -> bool {
        self.address
            .as_deref()
            .is_none_or(|a| e.address.eq_ignore_ascii_case(a))
            && self.port.is_none_or(|p| e.port == p)
            && self
                .cluster
                .as_deref()
                .is_none_or(|c| e.cluster.eq_ignore_ascii_case(c))
            && self
                .status
                .as_deref()
                .is_none_or(|s| e.status.eq_ignore_ascii_case(s))
    }
}

fn endpoint_address(addr: Option<&Value>) -> (String, u32) {
    let Some(addr) = addr else {
        return (String::new(), 0);
    };
    if let Some(a) = str_at(addr, &["socket_address", "address"]) {
        let port = u64_at(addr, &["socket_address", "port_value"])
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        return (a.to_owned(), port);
    }
    if let Some(p) = str_at(addr, &["pipe", "path"]) {
        return (format!("unix://{p}"), 0);
    }
    (String::new(), 0)
}

/// The endpoints in Envoy's `/clusters?format=json` answer (health as Envoy sees it).
pub fn endpoints_from_clusters(clusters: &Value) -> Vec<EndpointRow> {
    let mut out = Vec::new();
    for c in array_at(clusters, &["cluster_statuses"]) {
        let cluster = str_at(c, &["name"]).unwrap_or_default();
        for h in array_at(c, &["host_statuses"]) {
            let (address, port) = endpoint_address(at(h, &["address"]));
            let failed = at(h, &["health_status", "failed_outlier_check"])
                .and_then(Value::as_bool)
                .unwrap_or(false);
            out.push(EndpointRow {
                address,
                port,
                cluster: cluster.to_owned(),
                status: str_at(h, &["health_status", "eds_health_status"])
                    .unwrap_or("UNKNOWN")
                    .to_owned(),
                outlier: if failed { "FAILED" } else { "OK" }.to_owned(),
            });
        }
    }
    out
}

/// The endpoints in a dump's EndpointsConfigDump (health as the control plane sent it).
pub fn endpoints_from_dump(dump: &ConfigDump) -> Vec<EndpointRow> {
    let mut out = Vec::new();
    for cla in dump.endpoint_configs() {
        let cluster = str_at(cla, &["cluster_name"]).unwrap_or_default();
        for locality in array_at(cla, &["endpoints"]) {
            for e in array_at(locality, &["lb_endpoints"]) {
                let (address, port) = endpoint_address(at(e, &["endpoint", "address"]));
                out.push(EndpointRow {
                    address,
                    port,
                    cluster: cluster.to_owned(),
                    status: str_at(e, &["health_status"])
                        .unwrap_or("UNKNOWN")
                        .to_owned(),
                    outlier: "-".to_owned(),
                });
            }
        }
    }
    out
}

/// Filters and orders endpoints as istioctl does (address, port, cluster).
pub fn select_endpoints(mut rows: Vec<EndpointRow>, filter: &EndpointFilter) -> Vec<EndpointRow> {
    rows.retain(|e| filter.matches(e));
    rows.sort_by(|a, b| (&a.address, a.port, &a.cluster).cmp(&(&b.address, b.port, &b.cluster)));
    rows
}

pub fn endpoint_table(rows: &[EndpointRow]) -> Table {
    let mut t = Table::new(&["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"], 5);
    for e in rows {
        t.push(vec![
            e.endpoint(),
            e.status.clone(),
            e.outlier.clone(),
            e.cluster.clone(),
        ]);
    }
    t
}

/// The `/clusters` JSON narrowed to the clusters and hosts that pass the filter.
pub fn filter_clusters_json(clusters: &Value, filter: &EndpointFilter) -> Value {
    let kept: Vec<Value> = array_at(clusters, &["cluster_statuses"])
        .iter()
        .filter_map(|c| {
            let cluster = str_at(c, &["name"]).unwrap_or_default();
            let hosts: Vec<Value> = array_at(c, &["host_statuses"])
                .iter()
                .filter(|h| {
                    let one = endpoints_from_clusters(&serde_json::json!({
                        "cluster_statuses": [{"name": cluster, "host_statuses": [h]}]
                    }));
                    one.first().is_some_and(|e| filter.matches(e))
                })
                .cloned()
                .collect();
            if hosts.is_empty() {
                return None;
            }
            let mut c = c.clone();
            if let Some(o) = c.as_object_mut() {
                o.insert("host_statuses".to_owned(), Value::Array(hosts));
            }
            Some(c)
        })
        .collect();
    Value::Array(kept)
}

/// The dump's ClusterLoadAssignments narrowed to the endpoints that pass the filter.
pub fn filter_endpoint_configs(dump: &ConfigDump, filter: &EndpointFilter) -> Value {
    let kept: Vec<Value> = dump
        .endpoint_configs()
        .into_iter()
        .filter_map(|cla| {
            let cluster = str_at(cla, &["cluster_name"]).unwrap_or_default();
            let mut cla = cla.clone();
            let mut count = 0;
            if let Some(localities) = cla.get_mut("endpoints").and_then(Value::as_array_mut) {
                for l in localities.iter_mut() {
                    if let Some(eps) = l.get_mut("lb_endpoints").and_then(Value::as_array_mut) {
                        eps.retain(|e| {
                            let (address, port) = endpoint_address(at(e, &["endpoint", "address"]));
                            filter.matches(&EndpointRow {
                                address,
                                port,
                                cluster: cluster.to_owned(),
                                status: str_at(e, &["health_status"])
                                    .unwrap_or("UNKNOWN")
                                    .to_owned(),
                                outlier: "-".to_owned(),
                            })
                        });
                        count += eps.len();
                    }
                }
            }
            (count > 0).then_some(cla)
        })
        .collect();
    Value::Array(kept)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    #[test]
    fn subset_keys() {
        assert_eq!(
            parse_subset_key("outbound|9080|v1|reviews.default.svc.cluster.local").unwrap(),
            SubsetKey {
                direction: "outbound".into(),
                port: 9080,
                subset: "v1".into(),
                fqdn: "reviews.default.svc.cluster.local".into()
            }
        );
        assert_eq!(parse_subset_key("inbound|9080||").unwrap().fqdn, "");
        assert!(parse_subset_key("BlackHoleCluster").is_none());
    }

    #[test]
    fn cluster_filters_are_istioctls_substrings() {
        let f = ClusterFilter {
            port: Some(9080),
            subset: Some("v1".into()),
            ..Default::default()
        };
        assert!(f.matches("outbound|9080|v1|reviews.shop.svc.cluster.local"));
        assert!(!f.matches("outbound|9080|v3|reviews.shop.svc.cluster.local"));
        assert!(!f.matches("outbound|90800|v1|x"));
        assert!(ClusterFilter::default().matches("anything"));
    }

    #[test]
    fn istio_config_metadata() {
        let c = json!({"metadata": {"filter_metadata": {"istio": {"config":
            "/apis/networking.istio.io/v1/namespaces/shop/destination-rule/reviews"}}}});
        assert_eq!(istio_config(&c), "reviews.shop");
        assert_eq!(istio_config(&json!({})), "-");
        let odd = json!({"metadata": {"filter_metadata": {"istio": {"config": "x"}}}});
        assert_eq!(istio_config(&odd), "<unknown>");
    }

    #[test]
    fn domains_are_shortened_like_istioctl() {
        let d: Vec<String> = [
            "reviews.shop.svc.cluster.local",
            "reviews.shop.svc.cluster.local:9080",
            "reviews",
            "reviews:9080",
            "reviews.shop.svc",
            "reviews.shop.svc:9080",
            "reviews.shop",
            "reviews.shop:9080",
            "10.0.0.1",
            "10.0.0.1:9080",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(describe_domains(&d), "reviews, reviews.shop + 1 more...");
        assert_eq!(describe_domains(&["*".to_owned()]), "*");
        assert_eq!(describe_domains(&[]), "");
    }

    #[test]
    fn listener_matches_and_destinations() {
        let l = json!({
            "address": {"socket_address": {"address": "10.0.0.1", "port_value": 15006}},
            "filter_chains": [
                {"filter_chain_match": {"destination_port": 9080, "transport_protocol": "tls",
                                        "application_protocols": ["istio-peer-exchange", "istio"]},
                 "filters": [{"name": "envoy.filters.network.tcp_proxy",
                              "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                                               "cluster": "inbound|9080||"}}]},
                {"filter_chain_match": {"prefix_ranges": [{"address_prefix": "0.0.0.0", "prefix_len": 0}]},
                 "filters": [{"name": "envoy.filters.network.tcp_proxy",
                              "typed_config": {"cluster": "BlackHoleCluster"}}]},
                {"filters": [{"name": "some.http",
                              "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                               "rds": {"route_config_name": "9080"}}}]},
                {"filters": [{"name": "acme.unknown"}]}
            ]
        });
        assert_eq!(listener_type(&l), "HTTP+TCP");
        let t = listener_table(&[&l]).render();
        let lines: Vec<String> = t
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            lines,
            [
                "ADDRESSES PORT MATCH DESTINATION",
                "10.0.0.1 15006 ALL Route: 9080",
                "10.0.0.1 15006 Addr: 0.0.0.0/0 Non-HTTP/Non-TCP",
                "10.0.0.1 15006 ALL Non-HTTP/Non-TCP",
                "10.0.0.1 15006 Trans: tls; App: TCP TLS; Addr: *:9080 Cluster: inbound|9080||",
            ],
            "{t}"
        );
        let f = ListenerFilter {
            kind: Some("http+tcp".into()),
            port: Some(15006),
            address: Some("10.0.0.1".into()),
        };
        assert!(f.matches(&l));
        assert!(
            !ListenerFilter {
                port: Some(1),
                ..Default::default()
            }
            .matches(&l)
        );
    }

    #[test]
    fn inline_catch_all_route_names_the_cluster() {
        let rc = json!({"virtual_hosts": [{"domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "inbound|9080||"}}]}]});
        assert_eq!(describe_inline_routes(&rc), "Cluster: inbound|9080||");
        let rc = json!({"virtual_hosts": [{"domains": ["a", "b"], "routes": [
            {"match": {"path": "/x"}}, {"match": {"safe_regex": {"regex": "/y.*"}}}]}]});
        assert_eq!(
            describe_inline_routes(&rc),
            "Inline Route: a/b /x, regex /y.*"
        );
    }

    #[test]
    fn endpoint_rows_and_filters() {
        let clusters = json!({"cluster_statuses": [
            {"name": "outbound|9080|v1|r", "host_statuses": [
                {"address": {"socket_address": {"address": "10.0.0.2", "port_value": 9080}},
                 "health_status": {"eds_health_status": "HEALTHY"}},
                {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 9080}},
                 "health_status": {"eds_health_status": "UNHEALTHY", "failed_outlier_check": true}}]},
            {"name": "sds", "host_statuses": [{"address": {"pipe": {"path": "/sock"}}, "health_status": {}}]}
        ]});
        let rows = select_endpoints(
            endpoints_from_clusters(&clusters),
            &EndpointFilter::default(),
        );
        let t = endpoint_table(&rows).render();
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[1].starts_with("10.0.0.1:9080") && lines[1].contains("UNHEALTHY     FAILED"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("10.0.0.2:9080") && lines[2].contains("HEALTHY       OK"),
            "{t}"
        );
        assert!(
            lines[3].starts_with("unix:///sock") && lines[3].contains("UNKNOWN"),
            "{t}"
        );
        let f = EndpointFilter {
            status: Some("healthy".into()),
            ..Default::default()
        };
        assert_eq!(
            select_endpoints(endpoints_from_clusters(&clusters), &f).len(),
            1
        );
        let json = filter_clusters_json(&clusters, &f);
        assert_eq!(json.as_array().unwrap().len(), 1);
        assert_eq!(json[0]["host_statuses"].as_array().unwrap().len(), 1);
    }
}
