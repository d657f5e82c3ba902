//! Deterministic protobuf encoding of generated resources.
//!
//! prost keeps protobuf maps in `HashMap`s, whose iteration (and so encoding) order varies
//! from one map to the next. A route with both a fault and a CORS policy would then encode
//! differently each time it is generated, and a control plane that detects changes by
//! digesting bytes would push it again for nothing. These functions encode map entries in
//! key order instead, using the rule that concatenated encodings of one message merge
//! (each map entry is encoded as a message holding only that entry). The bytes decode to
//! the same message as `encode_to_vec` gives.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::rbac::v3::Rbac as RbacRules;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::JwtAuthentication;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

/// `RouteConfiguration.virtual_hosts` and `VirtualHost.routes`.
const VIRTUAL_HOSTS_FIELD: u32 = 2;
const ROUTES_FIELD: u32 = 3;
/// `rules` and `shadow_rules` of both RBAC filters (HTTP and network).
const RBAC_RULES_FIELD: u32 = 1;
const RBAC_SHADOW_RULES_FIELD: u32 = 2;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        // Seven bits at a time, low first; the cast keeps the low byte by design.
        #[allow(clippy::cast_possible_truncation)]
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(v as u8);
}

/// Appends a length-delimited field.
fn field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    varint(u64::from(number << 3 | 2), out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Encodes `m` with the map `take` removes from it written entry by entry in key order, each
/// entry as a message `put` builds around it.
fn with_sorted_map<M, V>(
    m: &M,
    take: impl Fn(&mut M) -> std::collections::HashMap<String, V>,
    put: impl Fn(String, V) -> M,
) -> Vec<u8>
where
    M: Message + Clone,
{
    let mut base = m.clone();
    let map = take(&mut base);
    let mut out = base.encode_to_vec();
    let mut entries: Vec<(String, V)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in entries {
        out.extend(put(k, v).encode_to_vec());
    }
    out
}

fn route(r: &Route) -> Vec<u8> {
    with_sorted_map(
        r,
        |r| std::mem::take(&mut r.typed_per_filter_config),
        |k, v| Route {
            typed_per_filter_config: [(k, v)].into(),
            ..Default::default()
        },
    )
}

fn virtual_host(vh: &VirtualHost) -> Vec<u8> {
    let mut base = vh.clone();
    let routes = std::mem::take(&mut base.routes);
    let mut out = with_sorted_map(
        &base,
        |v| std::mem::take(&mut v.typed_per_filter_config),
        |k, v| VirtualHost {
            typed_per_filter_config: [(k, v)].into(),
            ..Default::default()
        },
    );
    for r in &routes {
        field(&mut out, ROUTES_FIELD, &route(r));
    }
    out
}

/// A route configuration, map entries in key order.
pub fn encode_route_configuration(rc: &RouteConfiguration) -> Vec<u8> {
    let mut base = rc.clone();
    let vhosts = std::mem::take(&mut base.virtual_hosts);
    let mut out = with_sorted_map(
        &base,
        |r| std::mem::take(&mut r.typed_per_filter_config),
        |k, v| RouteConfiguration {
            typed_per_filter_config: [(k, v)].into(),
            ..Default::default()
        },
    );
    for vh in &vhosts {
        field(&mut out, VIRTUAL_HOSTS_FIELD, &virtual_host(vh));
    }
    out
}

/// A cluster, `typed_extension_protocol_options` in key order.
pub fn encode_cluster(c: &Cluster) -> Vec<u8> {
    with_sorted_map(
        c,
        |c| std::mem::take(&mut c.typed_extension_protocol_options),
        |k, v| Cluster {
            typed_extension_protocol_options: [(k, v)].into(),
            ..Default::default()
        },
    )
}

/// A listener (the maps inside its filters' configs are encoded in order when the filters
/// are built: [`http_rbac_any`], [`network_rbac_any`], [`jwt_authn_any`]).
pub fn encode_listener(l: &Listener) -> Vec<u8> {
    l.encode_to_vec()
}

/// Endpoints (no maps).
pub fn encode_endpoints(e: &ClusterLoadAssignment) -> Vec<u8> {
    e.encode_to_vec()
}

/// RBAC rules, `policies` in key order.
fn rbac_rules(r: &RbacRules) -> Vec<u8> {
    with_sorted_map(
        r,
        |r| std::mem::take(&mut r.policies),
        |k, v| RbacRules {
            policies: [(k, v)].into(),
            ..Default::default()
        },
    )
}

/// `base` (with its rules taken out) followed by the rules, each in policy-name order.
fn with_rules<M: Message>(
    base: &M,
    rules: Option<&RbacRules>,
    shadow: Option<&RbacRules>,
) -> Vec<u8> {
    let mut out = base.encode_to_vec();
    if let Some(r) = rules {
        field(&mut out, RBAC_RULES_FIELD, &rbac_rules(r));
    }
    if let Some(r) = shadow {
        field(&mut out, RBAC_SHADOW_RULES_FIELD, &rbac_rules(r));
    }
    out
}

fn packed<M: Name>(value: Vec<u8>) -> Any {
    Any {
        type_url: M::type_url(),
        value,
    }
}

/// The HTTP RBAC filter's config as an `Any`, policies in name order.
pub(super) fn http_rbac_any(m: &HttpRbac) -> Any {
    let mut base = m.clone();
    let (rules, shadow) = (base.rules.take(), base.shadow_rules.take());
    packed::<HttpRbac>(with_rules(&base, rules.as_ref(), shadow.as_ref()))
}

/// The network RBAC filter's config as an `Any`, policies in name order.
pub(super) fn network_rbac_any(m: &NetworkRbac) -> Any {
    let mut base = m.clone();
    let (rules, shadow) = (base.rules.take(), base.shadow_rules.take());
    packed::<NetworkRbac>(with_rules(&base, rules.as_ref(), shadow.as_ref()))
}

/// The JWT filter's config as an `Any`, providers (and any requirement map) in name order.
pub(super) fn jwt_authn_any(m: &JwtAuthentication) -> Any {
    let mut base = m.clone();
    let requirement_map = std::mem::take(&mut base.requirement_map);
    let mut out = with_sorted_map(
        &base,
        |j| std::mem::take(&mut j.providers),
        |k, v| JwtAuthentication {
            providers: [(k, v)].into(),
            ..Default::default()
        },
    );
    let mut entries: Vec<_> = requirement_map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in entries {
        out.extend(
            JwtAuthentication {
                requirement_map: [(k, v)].into(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
    }
    packed::<JwtAuthentication>(out)
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::Any;

    fn any(url: &str, v: u8) -> Any {
        Any {
            type_url: url.to_owned(),
            value: vec![v],
        }
    }

    fn rc() -> RouteConfiguration {
        let mut r = Route {
            name: "r".into(),
            ..Default::default()
        };
        for (i, k) in ["z", "a", "m", "b", "q"].iter().enumerate() {
            r.typed_per_filter_config
                .insert((*k).to_owned(), any(k, u8::try_from(i).unwrap()));
        }
        RouteConfiguration {
            name: "rc".into(),
            virtual_hosts: vec![
                VirtualHost {
                    name: "one".into(),
                    domains: vec!["a".into()],
                    routes: vec![r.clone(), Route::default(), r],
                    ..Default::default()
                },
                VirtualHost {
                    name: "two".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn same_bytes_every_time_and_same_message() {
        let first = encode_route_configuration(&rc());
        for _ in 0..50 {
            assert_eq!(encode_route_configuration(&rc()), first);
        }
        assert_eq!(RouteConfiguration::decode(first.as_slice()).unwrap(), rc());
    }

    #[test]
    fn clusters_round_trip() {
        let mut c = Cluster {
            name: "c".into(),
            ..Default::default()
        };
        c.typed_extension_protocol_options
            .insert("x".into(), any("x", 1));
        c.typed_extension_protocol_options
            .insert("y".into(), any("y", 2));
        let bytes = encode_cluster(&c);
        assert_eq!(Cluster::decode(bytes.as_slice()).unwrap(), c);
        assert_eq!(encode_cluster(&c.clone()), bytes);
    }

    fn rules(names: &[&str]) -> RbacRules {
        use envoy_types::pb::envoy::config::rbac::v3::Policy;
        RbacRules {
            action: 1,
            policies: names
                .iter()
                .map(|n| ((*n).to_owned(), Policy::default()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn rbac_and_jwt_configs_encode_the_same_every_time() {
        use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::JwtProvider;
        let names = [
            "ns[a]-policy[p]-rule[0]",
            "ns[a]-policy[q]-rule[1]",
            "x",
            "b",
            "m",
        ];
        let http = || HttpRbac {
            rules: Some(rules(&names)),
            shadow_rules: Some(rules(&names[1..])),
            shadow_rules_stat_prefix: "istio_dry_run_allow_".into(),
            ..Default::default()
        };
        let first = http_rbac_any(&http());
        for _ in 0..50 {
            assert_eq!(http_rbac_any(&http()), first);
        }
        assert_eq!(first.type_url, HttpRbac::type_url());
        assert_eq!(HttpRbac::decode(first.value.as_slice()).unwrap(), http());

        let net = || NetworkRbac {
            rules: Some(rules(&names)),
            stat_prefix: "tcp.".into(),
            ..Default::default()
        };
        let first = network_rbac_any(&net());
        for _ in 0..50 {
            assert_eq!(network_rbac_any(&net()), first);
        }
        assert_eq!(NetworkRbac::decode(first.value.as_slice()).unwrap(), net());

        let jwt = || JwtAuthentication {
            providers: names
                .iter()
                .map(|n| {
                    let p = JwtProvider {
                        issuer: (*n).to_owned(),
                        ..Default::default()
                    };
                    ((*n).to_owned(), p)
                })
                .collect(),
            bypass_cors_preflight: true,
            ..Default::default()
        };
        let first = jwt_authn_any(&jwt());
        for _ in 0..50 {
            assert_eq!(jwt_authn_any(&jwt()), first);
        }
        assert_eq!(
            JwtAuthentication::decode(first.value.as_slice()).unwrap(),
            jwt()
        );
    }
}
