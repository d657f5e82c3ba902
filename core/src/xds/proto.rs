//! Small builders for the protobuf values the translation writes over and over: `Any`,
//! durations, wrappers, addresses, the ADS config source, string matchers, Istio's config
//! metadata.

use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, Metadata, SocketAddress, address,
    config_source, socket_address,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::{
    Any, BoolValue, Duration, Struct, UInt32Value, UInt64Value, Value, value,
};
use prost::{Message, Name};

use crate::model::networking::{StringMatch, StringMatchKind};

/// Packs a message into an `Any` with its type URL.
pub(super) fn any<T: Message + Name>(m: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: m.encode_to_vec(),
    }
}

pub(super) fn duration(d: std::time::Duration) -> Duration {
    Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub(super) fn zero_duration() -> Duration {
    Duration {
        seconds: 0,
        nanos: 0,
    }
}

pub(super) fn u32v(v: u32) -> UInt32Value {
    UInt32Value { value: v }
}

pub(super) fn u64v(v: u64) -> UInt64Value {
    UInt64Value { value: v }
}

pub(super) fn boolv(v: bool) -> BoolValue {
    BoolValue { value: v }
}

/// `address:port` over TCP.
pub(super) fn socket(address: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// A Unix domain socket path.
pub(super) fn pipe(path: &str) -> Address {
    Address {
        address: Some(address::Address::Pipe(
            envoy_types::pb::envoy::config::core::v3::Pipe {
                path: path.to_owned(),
                mode: 0,
            },
        )),
    }
}

/// Resources fetched over the aggregated discovery stream (ADS), v3.
pub(super) fn ads() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        resource_api_version: ApiVersion::V3 as i32,
        ..Default::default()
    }
}

/// A regex matcher (RE2, Envoy's only engine).
pub(super) fn regex(re: &str) -> RegexMatcher {
    RegexMatcher {
        regex: re.to_owned(),
        ..Default::default()
    }
}

/// Istio's StringMatch as Envoy's StringMatcher. An empty prefix (which Envoy refuses)
/// becomes a match-anything regex. `None` when no alternative is set.
pub(super) fn string_matcher(m: &StringMatch) -> Option<StringMatcher> {
    let pattern = match m.kind() {
        StringMatchKind::Exact(s) => string_matcher::MatchPattern::Exact(s.to_owned()),
        StringMatchKind::Prefix("") => string_matcher::MatchPattern::SafeRegex(regex(".*")),
        StringMatchKind::Prefix(s) => string_matcher::MatchPattern::Prefix(s.to_owned()),
        StringMatchKind::Regex(s) => string_matcher::MatchPattern::SafeRegex(regex(s)),
        StringMatchKind::Unset => return None,
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

pub(super) fn exact_matcher(s: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(s.to_owned())),
        ignore_case: false,
    }
}

/// A percentage (0-100, fractional) as a per-million fraction, as Istio writes it.
pub(super) fn prefix_matcher(s: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Prefix(s.to_owned())),
        ..Default::default()
    }
}

pub(super) fn percent_million(value: f64) -> FractionalPercent {
    let clamped = value.clamp(0.0, 100.0);
    // In range by the clamp: at most 1_000_000.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let numerator = (clamped * 10_000.0).round() as u32;
    FractionalPercent {
        numerator,
        denominator: fractional_percent::DenominatorType::Million as i32,
    }
}

/// An integer percentage as a per-hundred fraction.
pub(super) fn percent_hundred(value: u32) -> FractionalPercent {
    FractionalPercent {
        numerator: value.min(100),
        denominator: fractional_percent::DenominatorType::Hundred as i32,
    }
}

/// Istio's config metadata (`filter_metadata.istio.config`): the path of the Istio object a
/// cluster or route was built from, `/apis/networking.istio.io/v1alpha3/namespaces/NS/KIND/NAME`
/// with KIND `destination-rule` or `virtual-service`. Envoy echoes it in `/config_dump`, where
/// `meshctl proxy-config` (and istioctl) read it for the DESTINATION RULE and VIRTUAL SERVICE
/// columns. Istio spells the version `v1alpha3` whatever version the object used, and
/// istioctl only recognises that spelling.
pub(super) fn istio_config_metadata(kind: &str, namespace: &str, name: &str) -> Metadata {
    let path = format!("/apis/networking.istio.io/v1alpha3/namespaces/{namespace}/{kind}/{name}");
    let mut fields = std::collections::HashMap::new();
    fields.insert(
        "config".to_owned(),
        Value {
            kind: Some(value::Kind::StringValue(path)),
        },
    );
    let mut filter_metadata = std::collections::HashMap::new();
    filter_metadata.insert("istio".to_owned(), Struct { fields });
    Metadata {
        filter_metadata,
        ..Default::default()
    }
}
