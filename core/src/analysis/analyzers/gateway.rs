//! Analyzers of Istio's `gateway` package: checks of Istio `Gateway` objects
//! (networking.istio.io) against the workloads they select, the Services in front of those
//! workloads, the Secrets they take certificates from, and each other.
//!
//! This module owns:
//! - `gateway.IngressGatewayPortAnalyzer`: the selector finds a Pod (IST0101) and each server
//!   port is a target port of a Service selecting that Pod (IST0162);
//! - `gateway.SecretAnalyzer`: each `tls.credentialName` names an existing Secret in the
//!   namespace of the selected workload (IST0101) holding a usable certificate (IST0161);
//! - `gateway.ConflictingGatewayAnalyzer`: two Gateways on the same workload and port do not
//!   claim the same host (IST0145);
//! - `gateway.CertificateAnalyzer`: two Gateways on overlapping workloads do not serve the same
//!   certificate (IST0138);
//!
//! and the small decoders the Secret check needs (base64, PEM, enough DER to read an X.509
//! certificate's validity), written here because no crate for them is available.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::analysis::json::selector_text;
use crate::analysis::json::{arr_at, selector_matches, str_at, string_map_at, u64_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[
    AnalyzerDef {
        name: "gateway.IngressGatewayPortAnalyzer",
        description: "Checks a gateway's ports against the gateway's Kubernetes service ports",
        messages: &[
            &catalog::REFERENCED_RESOURCE_NOT_FOUND,
            &catalog::GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
        ],
        run: analyze_ports,
    },
    AnalyzerDef {
        name: "gateway.SecretAnalyzer",
        description: "Checks a gateway's referenced secrets for correctness",
        messages: &[
            &catalog::REFERENCED_RESOURCE_NOT_FOUND,
            &catalog::INVALID_GATEWAY_CREDENTIAL,
        ],
        run: analyze_secrets,
    },
    AnalyzerDef {
        name: "gateway.ConflictingGatewayAnalyzer",
        description: "Checks a gateway's selector, port number and hosts",
        messages: &[
            &catalog::REFERENCED_RESOURCE_NOT_FOUND,
            &catalog::CONFLICTING_GATEWAYS,
        ],
        run: analyze_conflicts,
    },
    AnalyzerDef {
        name: "gateway.CertificateAnalyzer",
        description: "Checks a gateway certificate",
        messages: &[&catalog::GATEWAY_DUPLICATE_CERTIFICATE],
        run: analyze_certificates,
    },
];

// ---------------------------------------------------------------------------------------------
// Shared reading of Gateways and Pods
// ---------------------------------------------------------------------------------------------

/// The Gateway's workload selector (`spec.selector`).
fn gateway_selector(gw: &Resource) -> BTreeMap<String, String> {
    string_map_at(&gw.json, "/spec/selector")
}

/// Reads back a selector printed by [`selector_string`]; pairs that are not `k=v` are dropped.
fn parse_selector_string(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|pair| {
            let mut parts = pair.split('=');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(k), Some(v), None) => Some((k.to_owned(), v.to_owned())),
                _ => None,
            }
        })
        .collect()
}

/// The field path of a selector's first label (in sorted order), where selector problems are
/// reported; the selector itself when it has no labels.
fn selector_path(selector: &BTreeMap<String, String>) -> String {
    match selector.keys().next() {
        Some(key) => format!("spec.selector[\"{key}\"]"),
        None => "spec.selector".to_owned(),
    }
}

/// The Gateway's servers (`spec.servers`).
fn servers(gw: &Resource) -> &[Value] {
    arr_at(&gw.json, "/spec/servers")
}

/// A server's port number; 0 when the server has no port or the port no number.
fn server_port_number(server: &Value) -> u64 {
    u64_at(server, "/port/number").unwrap_or(0)
}

/// A server's hosts.
fn server_hosts(server: &Value) -> Vec<&str> {
    arr_at(server, "/hosts")
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// Every Pod under analysis.
fn pods<'s>(ctx: &Context<'s>) -> impl Iterator<Item = &'s Resource> + 's {
    ctx.store.of(groups::CORE, "Pod")
}

/// Reports that nothing matches the Gateway's selector.
fn report_selector_not_found(ctx: &mut Context<'_>, gw: &Resource) {
    let selector = gateway_selector(gw);
    ctx.report(
        &catalog::REFERENCED_RESOURCE_NOT_FOUND,
        gw,
        &selector_path(&selector),
        &[&"selector", &selector_text(&selector)],
    );
}

// ---------------------------------------------------------------------------------------------
// gateway.IngressGatewayPortAnalyzer
// ---------------------------------------------------------------------------------------------

/// The ports a gateway server may listen on to be reached through a Service port: the port a
/// Service port delivers to on its Pods (a numeric `targetPort`, also written as a numeric
/// string; a named one counts as the Service port, as Istio reads it), and the Service port
/// itself, which Istio translates to that target port when a server names it.
fn service_port_listeners(port: &Value) -> Vec<u64> {
    let target = match port.get("targetPort") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        _ => None,
    };
    let service_port = u64_at(port, "/port");
    target
        .filter(|&t| t != 0)
        .into_iter()
        .chain(service_port)
        .collect()
}

fn analyze_ports(ctx: &mut Context<'_>) {
    let store = ctx.store;
    // Which Services select each Pod (Services only select Pods of their own namespace; a
    // Service without a selector is taken to select every Pod there, as Istio takes it).
    let all_pods: Vec<&Resource> = pods(ctx).collect();
    let mut services_of_pod: Vec<Vec<&Resource>> = vec![Vec::new(); all_pods.len()];
    for svc in store.of(groups::CORE, "Service") {
        let svc_selector = string_map_at(&svc.json, "/spec/selector");
        for (i, pod) in all_pods.iter().enumerate() {
            if pod.ns() == svc.ns() && selector_matches(&svc_selector, &pod.labels) {
                services_of_pod[i].push(svc);
            }
        }
    }

    for gw in store.of(groups::NETWORKING, "Gateway") {
        let selector = gateway_selector(gw);
        let mut selected_pods = 0usize;
        let mut offered_ports = BTreeSet::new();
        for (i, pod) in all_pods.iter().enumerate() {
            if !selector_matches(&selector, &pod.labels) {
                continue;
            }
            selected_pods += 1;
            for svc in &services_of_pod[i] {
                for port in arr_at(&svc.json, "/spec/ports") {
                    if str_at(port, "/protocol") == Some("TCP") {
                        offered_ports.extend(service_port_listeners(port));
                    }
                }
            }
        }

        if selected_pods == 0 {
            report_selector_not_found(ctx, gw);
            continue;
        }

        let selector_text = selector_text(&selector);
        for (i, server) in servers(gw).iter().enumerate() {
            if server.get("port").is_none() {
                continue;
            }
            let number = server_port_number(server);
            if !offered_ports.contains(&number) {
                ctx.report(
                    &catalog::GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
                    gw,
                    &format!("spec.servers[{i}].port.number"),
                    &[&number, &selector_text],
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// gateway.SecretAnalyzer
// ---------------------------------------------------------------------------------------------

/// The namespace of the workload a Gateway runs on: that of the first Pod its selector
/// matches (credentials are looked up there, not in the Gateway's own namespace).
fn workload_namespace<'s>(ctx: &Context<'s>, gw: &Resource) -> Option<&'s str> {
    let selector = gateway_selector(gw);
    pods(ctx)
        .find(|pod| selector_matches(&selector, &pod.labels))
        .map(Resource::ns)
}

fn analyze_secrets(ctx: &mut Context<'_>) {
    let store = ctx.store;
    for gw in store.of(groups::NETWORKING, "Gateway") {
        let Some(gw_ns) = workload_namespace(ctx, gw) else {
            report_selector_not_found(ctx, gw);
            continue;
        };
        for (i, server) in servers(gw).iter().enumerate() {
            let Some(credential) = str_at(server, "/tls/credentialName").filter(|c| !c.is_empty())
            else {
                continue;
            };
            // `ns/name` names a Secret of another namespace; a bare name is looked up in the
            // workload's namespace.
            let (ns, name) = credential.split_once('/').unwrap_or((gw_ns, credential));
            let path = format!("spec.servers[{i}].tls.credentialName");
            match store.get(groups::CORE, "Secret", ns, name) {
                None => ctx.report(
                    &catalog::REFERENCED_RESOURCE_NOT_FOUND,
                    gw,
                    &path,
                    &[&"credentialName", &credential],
                ),
                Some(secret) if !secret_holds_valid_certificate(secret, unix_now()) => ctx.report(
                    &catalog::INVALID_GATEWAY_CREDENTIAL,
                    gw,
                    &path,
                    &[&gw.name, &gw_ns],
                ),
                Some(_) => {}
            }
        }
    }
}

/// The current time in seconds since the Unix epoch.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The decoded entries of a Secret: `data` (base64) overlaid with `stringData` (plain), as
/// the API server would store them. An entry whose base64 does not decode is left out.
fn secret_entries(secret: &Resource) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Some(data) = secret.json.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            if let Some(bytes) = v.as_str().and_then(decode_base64) {
                out.insert(k.clone(), bytes);
            }
        }
    }
    if let Some(data) = secret.json.get("stringData").and_then(Value::as_object) {
        for (k, v) in data {
            if let Some(s) = v.as_str() {
                out.insert(k.clone(), s.as_bytes().to_vec());
            }
        }
    }
    out
}

/// The certificate chain a gateway would serve from a Secret: `cert` (with `key`) of a
/// generic Secret, or `tls.crt` (with `tls.key`) of a TLS Secret; both halves non-empty.
fn secret_certificate(entries: &BTreeMap<String, Vec<u8>>) -> Option<&[u8]> {
    let non_empty = |k: &str| entries.get(k).filter(|v| !v.is_empty());
    [("cert", "key"), ("tls.crt", "tls.key")]
        .iter()
        .find_map(|(cert, key)| non_empty(key).and(non_empty(cert)))
        .map(Vec::as_slice)
}

/// Whether a Secret holds what a gateway needs: a certificate and key under the expected
/// names, whose first PEM block is a DER certificate chain valid at `now` (Unix seconds).
fn secret_holds_valid_certificate(secret: &Resource, now: i64) -> bool {
    let entries = secret_entries(secret);
    let Some(cert) = secret_certificate(&entries) else {
        return false;
    };
    let Some(der) = first_pem_block(cert) else {
        return false;
    };
    match certificate_validities(&der) {
        Some(validities) => validities
            .iter()
            .all(|&(not_before, not_after)| not_before <= now && now <= not_after),
        None => false,
    }
}

/// Decodes standard base64 (padding optional; line breaks ignored).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let symbols: Vec<u8> = text
        .bytes()
        .filter(|c| !matches!(c, b'\r' | b'\n'))
        .collect();
    let unpadded = symbols
        .iter()
        .rposition(|&c| c != b'=')
        .map_or(0, |last| last + 1);
    let padding = symbols.len() - unpadded;
    if padding > 2 || (padding > 0 && !symbols.len().is_multiple_of(4)) {
        return None;
    }
    let body = &symbols[..unpadded];
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for chunk in body.chunks(4) {
        // Each symbol carries 6 bits; a chunk of n symbols carries n * 6 / 8 whole bytes.
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | value(c)?;
        }
        acc <<= 6 * (4 - chunk.len());
        let [_, b0, b1, b2] = acc.to_be_bytes();
        out.extend_from_slice(&[b0, b1, b2][..chunk.len() - 1]);
    }
    Some(out)
}

/// The bytes of the first well-formed PEM block (`-----BEGIN X-----` ... `-----END X-----`)
/// in `data`, whatever its type; headers (`Key: value` lines) are skipped.
fn first_pem_block(data: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(data);
    let mut rest: &str = &text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        rest = after;
        let line_end = after.find('\n')?;
        let Some(label) = after[..line_end].trim_end().strip_suffix("-----") else {
            continue;
        };
        let body_and_rest = &after[line_end + 1..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_and_rest.find(&end_marker) else {
            continue;
        };
        let body: String = body_and_rest[..end]
            .lines()
            .filter(|line| !line.contains(':'))
            .collect::<Vec<_>>()
            .concat();
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        if let Some(bytes) = decode_base64(&compact) {
            return Some(bytes);
        }
    }
    None
}

/// One DER element: its tag and contents, and what follows it.
fn der_element(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// An element that must carry `tag`.
fn der_expect(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, body, rest) = der_element(data)?;
    (t == tag).then_some((body, rest))
}

const DER_INTEGER: u8 = 0x02;
const DER_BIT_STRING: u8 = 0x03;
const DER_UTC_TIME: u8 = 0x17;
const DER_GENERALIZED_TIME: u8 = 0x18;
const DER_SEQUENCE: u8 = 0x30;
const DER_VERSION: u8 = 0xa0;

/// The validity windows (not-before, not-after, Unix seconds) of the concatenated DER
/// certificates in `der`; `None` when any of it is not a certificate.
fn certificate_validities(der: &[u8]) -> Option<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let (cert, after) = der_expect(rest, DER_SEQUENCE)?;
        rest = after;
        let (tbs, cert) = der_expect(cert, DER_SEQUENCE)?;
        let (_signature_algorithm, cert) = der_expect(cert, DER_SEQUENCE)?;
        let (_signature, cert) = der_expect(cert, DER_BIT_STRING)?;
        if !cert.is_empty() {
            return None;
        }
        let tbs = match der_element(tbs)? {
            (DER_VERSION, _, after) => after,
            _ => tbs,
        };
        let (_serial, tbs) = der_expect(tbs, DER_INTEGER)?;
        let (_algorithm, tbs) = der_expect(tbs, DER_SEQUENCE)?;
        let (_issuer, tbs) = der_expect(tbs, DER_SEQUENCE)?;
        let (validity, tbs) = der_expect(tbs, DER_SEQUENCE)?;
        let (_subject, tbs) = der_expect(tbs, DER_SEQUENCE)?;
        let (_public_key, _) = der_expect(tbs, DER_SEQUENCE)?;
        let (tag, not_before, validity) = der_element(validity)?;
        let not_before = der_time(tag, not_before)?;
        let (tag, not_after, _) = der_element(validity)?;
        let not_after = der_time(tag, not_after)?;
        out.push((not_before, not_after));
    }
    Some(out)
}

/// A UTCTime (`YYMMDDHHMM[SS]Z` or with a `±hhmm` offset; years 50–99 are 19xx) or
/// GeneralizedTime (`YYYYMMDDHHMMSS[.f]Z`) as Unix seconds.
fn der_time(tag: u8, body: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(body).ok()?;
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, zone) = text.split_at(digits_end);
    let num = |s: &str| s.parse::<i64>().ok();
    let (year, rest) = match tag {
        DER_UTC_TIME => {
            let yy = num(digits.get(..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        DER_GENERALIZED_TIME => (num(digits.get(..4)?)?, &digits[4..]),
        _ => return None,
    };
    let (month, day, hour, minute) = (
        num(rest.get(0..2)?)?,
        num(rest.get(2..4)?)?,
        num(rest.get(4..6)?)?,
        num(rest.get(6..8)?)?,
    );
    let second = match rest.len() {
        8 => 0,
        10 => num(&rest[8..10])?,
        _ => return None,
    };
    // Fractional seconds (GeneralizedTime) do not matter at this resolution.
    let zone = match zone.strip_prefix('.') {
        Some(frac) => frac.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => zone,
    };
    let offset = match zone {
        "Z" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let minutes = num(z.get(1..3)?)? * 60 + num(z.get(3..5)?)?;
            if z.starts_with('+') {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---------------------------------------------------------------------------------------------
// gateway.ConflictingGatewayAnalyzer
// ---------------------------------------------------------------------------------------------

/// Gateways grouped by selector and port: for each (selector text, port), the host → bind
/// map each Gateway declares there (its last server on that port wins, as in Istio).
type GatewaysBySelectorPort = BTreeMap<(String, u64), BTreeMap<String, BTreeMap<String, String>>>;

fn gateways_by_selector_port(ctx: &Context<'_>) -> GatewaysBySelectorPort {
    let mut out: GatewaysBySelectorPort = BTreeMap::new();
    for gw in ctx.store.of(groups::NETWORKING, "Gateway") {
        let selector = selector_text(&gateway_selector(gw));
        for server in servers(gw) {
            let bind = str_at(server, "/bind").unwrap_or("");
            let hosts = server_hosts(server)
                .into_iter()
                .map(|h| (h.to_owned(), bind.to_owned()))
                .collect();
            out.entry((selector.clone(), server_port_number(server)))
                .or_default()
                .insert(gw.full_name(), hosts);
        }
    }
    out
}

fn analyze_conflicts(ctx: &mut Context<'_>) {
    let groups_map = gateways_by_selector_port(ctx);
    let all_pods: Vec<&Resource> = pods(ctx).collect();
    for gw in ctx.store.of(groups::NETWORKING, "Gateway") {
        let selector = gateway_selector(gw);
        let selector_text = selector_text(&selector);
        let full_name = gw.full_name();

        // The groups on the same workload: the same selector, or one selector's text
        // containing the other's with a Pod that both select.
        let same_workload: Vec<(&(String, u64), _)> = groups_map
            .iter()
            .filter(|((other_text, _), _)| {
                if *other_text == selector_text {
                    return true;
                }
                if !other_text.contains(selector_text.as_str())
                    && !selector_text.contains(other_text.as_str())
                {
                    return false;
                }
                let other = parse_selector_string(other_text);
                all_pods.iter().any(|pod| {
                    selector_matches(&selector, &pod.labels)
                        && selector_matches(&other, &pod.labels)
                })
            })
            .collect();

        if !selector_text.is_empty() && same_workload.is_empty() {
            report_selector_not_found(ctx, gw);
            continue;
        }

        for (i, server) in servers(gw).iter().enumerate() {
            let port = server_port_number(server);
            let hosts = server_hosts(server);
            let bind = str_at(server, "/bind").unwrap_or("");
            let mut conflicting: Vec<&str> = same_workload
                .iter()
                .filter(|((_, p), _)| *p == port)
                .flat_map(|(_, gateways)| gateways.iter())
                .filter(|(name, known)| {
                    **name != full_name
                        && hosts
                            .iter()
                            .any(|h| known.get(*h).is_some_and(|b| b == bind))
                })
                .map(|(name, _)| name.as_str())
                .collect();
            if conflicting.is_empty() {
                continue;
            }
            conflicting.sort_unstable();
            ctx.report(
                &catalog::CONFLICTING_GATEWAYS,
                gw,
                &format!("spec.servers[{i}]"),
                &[
                    &conflicting.join(","),
                    &selector_text,
                    &port,
                    &hosts.join(","),
                ],
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// gateway.CertificateAnalyzer
// ---------------------------------------------------------------------------------------------

/// Whether every label of `a` is in `b` with the same value.
fn selector_subset(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    selector_matches(a, b)
}

/// Whether two servers' TLS settings serve the same certificate: the same credential name,
/// or (both without one) the same certificate and key files.
fn same_certificate(a: &Value, b: &Value) -> bool {
    let field = |tls: &Value, name: &str| {
        tls.get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (cred_a, cred_b) = (field(a, "credentialName"), field(b, "credentialName"));
    if !cred_a.is_empty() && !cred_b.is_empty() {
        return cred_a == cred_b;
    }
    if !cred_a.is_empty() || !cred_b.is_empty() {
        return false;
    }
    let (cert_a, cert_b) = (field(a, "serverCertificate"), field(b, "serverCertificate"));
    let (key_a, key_b) = (field(a, "privateKey"), field(b, "privateKey"));
    !cert_a.is_empty() && cert_a == cert_b && !key_a.is_empty() && key_a == key_b
}

fn analyze_certificates(ctx: &mut Context<'_>) {
    let gateways: Vec<&Resource> = ctx.store.of(groups::NETWORKING, "Gateway").collect();
    for current in &gateways {
        let selector = gateway_selector(current);
        // Gateways whose workloads include all of this one's: their selector contains this
        // selector (every Gateway, when this one selects everything). Istio does not limit
        // this to one namespace unless gateways are scoped to their namespace.
        for other in &gateways {
            if other.ns() == current.ns() && other.name == current.name {
                continue;
            }
            if !selector.is_empty() && !selector_subset(&selector, &gateway_selector(other)) {
                continue;
            }
            for server in servers(current) {
                for other_server in servers(other) {
                    let (Some(tls), Some(other_tls)) = (server.get("tls"), other_server.get("tls"))
                    else {
                        continue;
                    };
                    if tls.is_null() || other_tls.is_null() || !same_certificate(tls, other_tls) {
                        continue;
                    }
                    let names = format!("[{} {}]", current.full_name(), other.full_name());
                    ctx.report(
                        &catalog::GATEWAY_DUPLICATE_CERTIFICATE,
                        current,
                        "metadata.name",
                        &[&names],
                    );
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::analysis::Message;
    use crate::analysis::common::testing::run_named;

    fn run(name: &str, yaml: &str) -> Vec<Message> {
        run_named(ANALYZERS, name, yaml)
    }

    fn codes(messages: &[Message]) -> Vec<(&'static str, String)> {
        messages
            .iter()
            .map(|m| (m.code(), m.origin.as_ref().unwrap().display_name()))
            .collect()
    }

    const GW_443: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["a.example.com"]
    tls: {mode: SIMPLE, credentialName: cred}
"#;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("aGk").unwrap(), b"hi");
        assert_eq!(decode_base64("aGVsbG8=\n").unwrap(), b"hello");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("a*==").is_none());
    }

    #[test]
    fn der_times_read_both_encodings() {
        assert_eq!(der_time(DER_UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(
            der_time(DER_UTC_TIME, b"230314065541Z"),
            Some(1_678_776_941)
        );
        assert_eq!(
            der_time(DER_GENERALIZED_TIME, b"21220218061836Z"),
            Some(4_800_838_716)
        );
        assert_eq!(der_time(DER_UTC_TIME, b"700101010000+0100"), Some(0));
        assert!(der_time(DER_UTC_TIME, b"garbage").is_none());
        assert!(der_time(DER_UTC_TIME, "7001010000+1\u{e9}1".as_bytes()).is_none());
    }

    #[test]
    fn pem_needs_a_complete_block() {
        let pem = b"junk\n-----BEGIN CERTIFICATE-----\naGk=\n-----END CERTIFICATE-----\n";
        assert_eq!(first_pem_block(pem).unwrap(), b"hi");
        assert!(first_pem_block(b"-----BEGIN CERTIFICATE-----\naGk=\n").is_none());
        assert!(first_pem_block(b"hush hush hush\n").is_none());
        // Not DER: the block decodes but holds no certificate.
        assert!(certificate_validities(b"hi").is_none());
        assert_eq!(certificate_validities(b"").unwrap(), vec![]);
    }

    #[test]
    fn credential_in_another_namespace_than_the_workload_is_missing() {
        let yaml = format!(
            "{GW_443}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: cred, namespace: shop}}\n\
             data: {{cert: aGk=, key: aGk=}}\n"
        );
        let out = run("gateway.SecretAnalyzer", &yaml);
        assert_eq!(codes(&out), vec![("IST0101", "Gateway shop/gw".into())]);
        assert!(out[0].text.contains("credentialName"));
    }

    #[test]
    fn credential_with_explicit_namespace_is_looked_up_there() {
        let yaml = GW_443.replace("credentialName: cred", "credentialName: shop/cred")
            + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: cred, namespace: shop}\n\
               stringData: {key: k}\n";
        // Found (no IST0101), but holds no certificate: IST0161.
        let out = run("gateway.SecretAnalyzer", &yaml);
        assert_eq!(codes(&out), vec![("IST0161", "Gateway shop/gw".into())]);
        assert!(out[0].text.contains("Gateway gw in namespace istio-system"));
    }

    #[test]
    fn ports_reached_through_the_service_are_fine() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {app: gw}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*"]
  - port: {number: 443, name: https2, protocol: HTTPS}
    hosts: ["*"]
---
apiVersion: v1
kind: Pod
metadata: {name: gw-1, labels: {app: gw}}
---
apiVersion: v1
kind: Service
metadata: {name: gw}
spec:
  selector: {app: gw}
  ports:
  - {name: https, port: 443, targetPort: 8443}
"#;
        assert!(run("gateway.IngressGatewayPortAnalyzer", yaml).is_empty());
        // A UDP port does not carry a gateway server.
        let udp = yaml.replace("targetPort: 8443}", "targetPort: 8443, protocol: UDP}");
        let out = run("gateway.IngressGatewayPortAnalyzer", &udp);
        assert_eq!(out.len(), 2);
        assert!(out[0].text.contains("Pod selector app=gw"));
    }

    #[test]
    fn different_binds_or_hosts_do_not_conflict() {
        let gw = |name: &str, host: &str, bind: &str| {
            format!(
                "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\n\
                 spec:\n  selector: {{istio: ingressgateway}}\n  servers:\n\
                 \x20 - port: {{number: 80, name: http, protocol: HTTP}}\n\
                 \x20   bind: \"{bind}\"\n    hosts: [\"{host}\"]\n"
            )
        };
        let yaml = gw("a", "foo.com", "10.0.0.1") + &gw("b", "foo.com", "10.0.0.2");
        assert!(run("gateway.ConflictingGatewayAnalyzer", &yaml).is_empty());
        let yaml = gw("a", "foo.com", "") + &gw("b", "bar.com", "");
        assert!(run("gateway.ConflictingGatewayAnalyzer", &yaml).is_empty());
        let yaml = gw("a", "foo.com", "") + &gw("b", "foo.com", "") + &gw("c", "foo.com", "");
        let out = run("gateway.ConflictingGatewayAnalyzer", &yaml);
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[0].text,
            "Conflict with gateways default/b,default/c (workload selector istio=ingressgateway, port 80, hosts foo.com)."
        );
    }

    #[test]
    fn certificate_files_must_match_in_full() {
        let tls = |cert: &str, key: &str| serde_json::json!({"mode": "SIMPLE", "serverCertificate": cert, "privateKey": key});
        assert!(same_certificate(&tls("/c", "/k"), &tls("/c", "/k")));
        assert!(!same_certificate(&tls("/c", "/k"), &tls("/c", "/k2")));
        assert!(!same_certificate(&tls("/c", ""), &tls("/c", "")));
        let cred = serde_json::json!({"credentialName": "x"});
        assert!(!same_certificate(&cred, &tls("/c", "/k")));
        assert!(same_certificate(&cred, &cred));
    }

    #[test]
    fn duplicate_certificate_names_both_gateways() {
        let gw = |name: &str| GW_443.replace("name: gw,", &format!("name: {name},"));
        let out = run(
            "gateway.CertificateAnalyzer",
            &(gw("one") + "---\n" + &gw("two")),
        );
        assert_eq!(out.len(), 2);
        assert!(out.iter().any(|m| m.text.contains("[shop/one shop/two]")));
        // No TLS, no duplicate.
        let plain =
            |name: &str| gw(name).replace("    tls: {mode: SIMPLE, credentialName: cred}\n", "");
        let out = run(
            "gateway.CertificateAnalyzer",
            &(plain("one") + "---\n" + &plain("two")),
        );
        assert!(out.is_empty());
    }
}
