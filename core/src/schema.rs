//! OpenAPI v3 schemas of the Istio kinds, generated from the wire model (`crate::model`), for
//! the CustomResourceDefinitions `meshctl manifest generate` emits.
//!
//! This module owns the mapping from model types to Kubernetes *structural* schemas: every
//! node has a `type` (or is int-or-string), objects list `properties` or `additionalProperties`
//! (never both), nothing is referenced (`$ref`) and nothing is combined (`oneOf`/`anyOf`
//! appear only in the int-or-string form Kubernetes prescribes). Struct schemas come from
//! `#[derive(CrdSchema)]` (`mesh-core-derive`), which reads the serde attributes the parser
//! itself uses; scalars follow Istio's wire format as `crate::model` reads it:
//! - integers read by `num::int` (a number or a numeric string) are
//!   `x-kubernetes-int-or-string` with the type's range and a numeric-string pattern;
//! - floats are `number`s; enums are `string`s with their proto names;
//! - durations are `string`s in Go's notation (a pattern);
//! - maps are objects with `additionalProperties`; raw Envoy configuration (EnvoyFilter
//!   patch values, Istio's `Struct`) keeps its fields (`x-kubernetes-preserve-unknown-fields`).
//!
//! Properties are not marked `nullable`: the API server drops a `null` field of such a
//! schema, which is what the parser does too (a `null` field is an absent one).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

pub use mesh_core_derive::CrdSchema;

use crate::model::{self, networking, security};
use crate::resource::groups;

/// A type with an OpenAPI v3 structural schema.
pub trait CrdSchema {
    /// The schema of a value of this type.
    fn schema() -> Value;
}

/// A Go duration as `crate::model::parse_duration` reads it: `0`, or one or more decimal
/// numbers (with an optional fraction) each with a unit.
pub const DURATION_PATTERN: &str =
    r"^\+?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$";

/// An integer written as a string, as `num::int` reads it.
pub const NUMERIC_STRING_PATTERN: &str = r"^\s*[-+]?[0-9]+\s*$";

/// The schema of the `spec` of an Istio kind, for the kinds mesh-core models (the kinds
/// `crate::validate` checks); `None` for the others.
pub fn spec_schema(group: &str, kind: &str) -> Option<Value> {
    let schema = match (group, kind) {
        (groups::NETWORKING, "VirtualService") => networking::VirtualService::schema(),
        (groups::NETWORKING, "DestinationRule") => networking::DestinationRule::schema(),
        (groups::NETWORKING, "Gateway") => networking::Gateway::schema(),
        (groups::NETWORKING, "ServiceEntry") => networking::ServiceEntry::schema(),
        (groups::NETWORKING, "Sidecar") => networking::Sidecar::schema(),
        (groups::NETWORKING, "WorkloadEntry") => networking::WorkloadEntry::schema(),
        (groups::NETWORKING, "WorkloadGroup") => networking::WorkloadGroup::schema(),
        (groups::NETWORKING, "EnvoyFilter") => networking::EnvoyFilter::schema(),
        (groups::SECURITY, "PeerAuthentication") => security::PeerAuthentication::schema(),
        (groups::SECURITY, "RequestAuthentication") => security::RequestAuthentication::schema(),
        (groups::SECURITY, "AuthorizationPolicy") => security::AuthorizationPolicy::schema(),
        _ => return None,
    };
    Some(schema)
}

/// The `openAPIV3Schema` of an Istio kind's CRD: the model's `spec` schema, and a `status`
/// kept as it is. Istio's kinds are the same at every version they are served at, so every
/// version gets this schema. Kinds mesh-core does not model keep their `spec` as written.
pub fn crd_schema(group: &str, kind: &str) -> Value {
    let spec = spec_schema(group, kind).unwrap_or_else(|| {
        described(
            preserve_unknown_fields(),
            Some(&format!(
                "The {kind}'s configuration (Istio's {group} API), kept as written: meshctl does not model this kind."
            )),
        )
    });
    json!({
        "type": "object",
        "properties": {
            "spec": spec,
            "status": preserve_unknown_fields(),
        },
    })
}

/// An object whose fields are kept as they are.
pub fn preserve_unknown_fields() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// An object with these properties (used by the derive).
pub fn object(
    properties: Map<String, Value>,
    required: &[&str],
    description: Option<&str>,
) -> Value {
    let mut schema = Map::new();
    if let Some(d) = description {
        schema.insert("description".into(), d.into());
    }
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    Value::Object(schema)
}

/// `schema` with `description` (a field's own description wins over its type's).
pub fn described(mut schema: Value, description: Option<&str>) -> Value {
    if let (Some(d), Value::Object(m)) = (description, &mut schema) {
        // Keep `description` first, as the rest of the schema reads.
        let rest = std::mem::take(m);
        m.insert("description".into(), d.into());
        m.extend(rest.into_iter().filter(|(k, _)| k != "description"));
    }
    schema
}

/// A string that is one of `names` (an Istio enum by its proto names).
pub fn string_enum(names: &[&str]) -> Value {
    json!({"type": "string", "enum": names})
}

/// An integer in `[min, max]`, or a string holding one.
pub fn int_or_string(min: i128, max: i128) -> Value {
    let mut schema = json!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": NUMERIC_STRING_PATTERN,
    });
    add_bounds(&mut schema, min, max);
    schema
}

/// The largest integer a float64 holds exactly: Kubernetes keeps `minimum` and `maximum` as
/// float64, so bounds beyond it (those of 64-bit integers) are left out rather than rounded.
const EXACT_IN_F64: i128 = 1 << 53;

fn add_bounds(schema: &mut Value, min: i128, max: i128) {
    for (key, v) in [("minimum", min), ("maximum", max)] {
        if let (Ok(v), true) = (i64::try_from(v), v.abs() <= EXACT_IN_F64) {
            schema[key] = json!(v);
        }
    }
}

/// The range of an integer field (and of the integers inside an optional or map field).
pub trait IntRange {
    const MIN: i128;
    const MAX: i128;
}

macro_rules! int_range {
    ($($t:ty => $format:expr),*) => {$(
        impl IntRange for $t {
            const MIN: i128 = <$t>::MIN as i128;
            const MAX: i128 = <$t>::MAX as i128;
        }
        impl CrdSchema for $t {
            fn schema() -> Value {
                let mut schema = json!({"type": "integer"});
                let format: Option<&str> = $format;
                if let Some(format) = format {
                    schema["format"] = json!(format);
                }
                add_bounds(&mut schema, <$t as IntRange>::MIN, <$t as IntRange>::MAX);
                schema
            }
        }
    )*};
}
// Kubernetes knows the int32 and int64 formats only; unsigned ranges are told by `minimum`.
int_range!(u32 => None, i32 => Some("int32"), u64 => None, i64 => Some("int64"));

impl<T: IntRange> IntRange for Option<T> {
    const MIN: i128 = T::MIN;
    const MAX: i128 = T::MAX;
}

impl<T: IntRange> IntRange for BTreeMap<String, T> {
    const MIN: i128 = T::MIN;
    const MAX: i128 = T::MAX;
}

/// Schemas of the fields read with `#[serde(deserialize_with = "...")]`, one function per
/// deserializer of `crate::model::num`, named alike: the derive calls the function with the
/// deserializer's name, so a deserializer without one here does not compile.
pub mod deserialize_with {
    use serde_json::{Value, json};

    use super::{IntRange, int_or_string};

    /// `num::int`: a number or a numeric string.
    pub fn int<T: IntRange>() -> Value {
        int_or_string(T::MIN, T::MAX)
    }

    /// `num::opt_int`: as `int`; absent is `None`.
    pub fn opt_int<T: IntRange>() -> Value {
        int_or_string(T::MIN, T::MAX)
    }

    /// `num::map_int`: a map of names to integers.
    pub fn map_int<T: IntRange>() -> Value {
        json!({"type": "object", "additionalProperties": int_or_string(T::MIN, T::MAX)})
    }

    /// `num::float`. The parser also takes a numeric string; the API server does not (as
    /// with Istio's CRDs): OpenAPI has no number-or-string.
    pub fn float<T>() -> Value {
        json!({"type": "number", "format": "double"})
    }

    /// `num::opt_float`: as `float`.
    pub fn opt_float<T>() -> Value {
        float::<T>()
    }
}

impl CrdSchema for String {
    fn schema() -> Value {
        json!({"type": "string"})
    }
}

impl CrdSchema for bool {
    fn schema() -> Value {
        json!({"type": "boolean"})
    }
}

impl CrdSchema for f64 {
    fn schema() -> Value {
        json!({"type": "number", "format": "double"})
    }
}

impl CrdSchema for model::Duration {
    fn schema() -> Value {
        json!({"type": "string", "pattern": DURATION_PATTERN})
    }
}

/// Raw configuration (Istio's `google.protobuf.Struct`): kept as it is.
impl CrdSchema for Value {
    fn schema() -> Value {
        preserve_unknown_fields()
    }
}

impl<T: CrdSchema> CrdSchema for Option<T> {
    fn schema() -> Value {
        T::schema()
    }
}

impl<T: CrdSchema> CrdSchema for Vec<T> {
    fn schema() -> Value {
        json!({"type": "array", "items": T::schema()})
    }
}

/// Map keys: JSON object keys are strings, whatever the key type reads them as.
pub trait MapKey {}
impl MapKey for String {}
impl MapKey for u32 {}

impl<K: MapKey, V: CrdSchema> CrdSchema for BTreeMap<K, V> {
    fn schema() -> Value {
        json!({"type": "object", "additionalProperties": V::schema()})
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::kinds::ISTIO_KINDS;

    #[test]
    fn every_validated_kind_has_a_schema_and_no_other() {
        for (group, kind, _) in ISTIO_KINDS {
            assert_eq!(
                spec_schema(group, kind).is_some(),
                crate::validate::is_validated_kind(group, kind),
                "{kind}"
            );
        }
    }

    #[test]
    fn fields_follow_the_serde_attributes() {
        let vs = spec_schema(groups::NETWORKING, "VirtualService").unwrap();
        let route = &vs["properties"]["http"]["items"];
        assert_eq!(route["type"], "object");
        // `r#match` renamed to `match`; camelCase names; no aliases.
        assert!(route["properties"]["match"].is_object());
        assert!(route["properties"]["mirrorPercentage"].is_object());
        assert!(route["properties"].get("mirror_percentage").is_none());
        // num::int: int-or-string with the range of the Rust type.
        let weight = &route["properties"]["route"]["items"]["properties"]["weight"];
        assert_eq!(weight["x-kubernetes-int-or-string"], true);
        assert_eq!(weight["maximum"], i32::MAX);
        // Durations and docs.
        assert_eq!(route["properties"]["timeout"]["pattern"], DURATION_PATTERN);
        assert_eq!(
            vs["description"],
            "`networking.istio.io/VirtualService` spec."
        );
        // Everything defaults: nothing required.
        assert!(vs.get("required").is_none());

        let dr = spec_schema(groups::NETWORKING, "DestinationRule").unwrap();
        let tls = &dr["properties"]["trafficPolicy"]["properties"]["tls"]["properties"];
        assert_eq!(
            tls["mode"]["enum"],
            json!(["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"])
        );
        let ef = spec_schema(groups::NETWORKING, "EnvoyFilter").unwrap();
        let value = &ef["properties"]["configPatches"]["items"]["properties"]["patch"]["properties"]
            ["value"];
        assert_eq!(value["x-kubernetes-preserve-unknown-fields"], true);
        let pa = spec_schema(groups::SECURITY, "PeerAuthentication").unwrap();
        assert_eq!(
            pa["properties"]["portLevelMtls"]["additionalProperties"]["properties"]["mode"]["type"],
            "string"
        );
    }

    /// A struct exercising what the derive reads from serde's attributes.
    #[allow(dead_code)]
    #[derive(serde::Deserialize, CrdSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Probe {
        /// Needed: no default anywhere.
        needed_field: String,
        #[serde(default)]
        defaulted: bool,
        maybe: Option<model::Duration>,
        #[serde(rename = "match", default)]
        r#match: Vec<String>,
        #[serde(skip)]
        internal: u32,
        #[serde(default, deserialize_with = "crate::model::num::map_int")]
        ports: BTreeMap<String, u32>,
    }

    #[test]
    fn the_derive_reads_serde_attributes() {
        let s = Probe::schema();
        assert_eq!(
            s["description"],
            "A struct exercising what the derive reads from serde's attributes."
        );
        assert_eq!(s["required"], json!(["neededField"]));
        let props = s["properties"].as_object().unwrap();
        let names: Vec<&str> = props.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["neededField", "defaulted", "maybe", "match", "ports"]
        );
        assert_eq!(
            props["neededField"]["description"],
            "Needed: no default anywhere."
        );
        assert_eq!(props["maybe"]["pattern"], DURATION_PATTERN);
        assert_eq!(props["match"]["items"]["type"], "string");
        let port = &props["ports"]["additionalProperties"];
        assert_eq!(port["x-kubernetes-int-or-string"], true);
        assert_eq!(
            (port["minimum"].clone(), port["maximum"].clone()),
            (json!(0), json!(u32::MAX))
        );
        // Bounds a float64 cannot hold exactly are left out.
        assert_eq!(u64::schema(), json!({"type": "integer", "minimum": 0}));
    }

    #[test]
    fn the_duration_pattern_agrees_with_the_parser() {
        let re = regex::Regex::new(DURATION_PATTERN).unwrap();
        for text in [
            "1.5s",
            "100ms",
            "1h",
            "1h30m",
            "0",
            "0s",
            ".5s",
            "10us",
            "2µs",
            "+3s",
            "1.s",
            "",
            "1",
            "s",
            "1x",
            "-1s",
            "1 s",
            "ten seconds",
            "1.000000001s",
        ] {
            assert_eq!(
                re.is_match(text),
                model::parse_duration(text).is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_numeric_string_pattern_agrees_with_the_parser() {
        let re = regex::Regex::new(NUMERIC_STRING_PATTERN).unwrap();
        for text in [
            "8080", " 80 ", "+1", "-1", "", "80a", "1.5", "0x10", "eighty",
        ] {
            assert_eq!(
                re.is_match(text),
                text.trim().parse::<i128>().is_ok(),
                "{text:?}"
            );
        }
    }
}
