//! Typed wire models of Istio's configuration kinds, and the typed parse of an object's spec.
//!
//! This module owns the shape of every Istio kind meshctl reads (`networking.istio.io` and
//! `security.istio.io`), field for field as Istio's API defines them, and the rules of the
//! wire format Istio itself accepts: camelCase field names (with the proto's snake_case names
//! as aliases), numbers given as numbers or numeric strings, enums by name or number, and
//! durations in Go's notation (`1.5s`, `100ms`, `1h`). Unknown fields are rejected so that
//! typos surface; a type error carries the path of the field (`spec.http[0].route[0].weight`)
//! and its line.
//!
//! Scalars follow proto3: an absent scalar is its zero value. Messages are `Option`s; lists
//! and maps are empty when absent. A few lists whose "present but empty" state Istio's
//! validation treats differently from "absent" are `Option<Vec<_>>`.

pub mod duration;
pub mod networking;
pub mod num;
pub mod security;

use serde::de::DeserializeOwned;

use crate::resource::Resource;

pub use duration::{Duration, parse_duration};

/// Why an object's spec does not fit its kind's schema.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    /// Where the problem is, from the object root (`spec.http[0].route[0].weight`).
    pub path: String,
    /// The line of that field (or of its nearest enclosing field that exists in the file).
    pub line: u32,
    /// What is wrong.
    pub message: String,
}

/// Parses the `spec` of `res` into the typed model `T`. An absent spec is an empty one.
pub fn parse_spec<T: DeserializeOwned>(res: &Resource) -> Result<T, SpecError> {
    let empty = serde_json::Value::Object(serde_json::Map::new());
    let spec = match res.spec() {
        serde_json::Value::Null => &empty,
        s => s,
    };
    parse_value(spec).map_err(|(path, message)| {
        let path = if path.is_empty() {
            "spec".to_owned()
        } else {
            format!("spec{path}")
        };
        SpecError {
            line: res.line_of(&path),
            path,
            message,
        }
    })
}

/// Parses a JSON value into `T`, returning the path (relative, starting with `.` or `[`) and
/// the message of the first error.
pub fn parse_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, (String, String)> {
    let value = without_nulls(value);
    serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = render_path(e.path());
        (path, e.into_inner().to_string())
    })
}

/// A copy of `value` without object members whose value is `null`: proto3 JSON reads a
/// `null` field as an absent one (`hosts:` with nothing after it).
fn without_nulls(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Renders a serde path the way field paths are written elsewhere: `.http[0].match[1]`,
/// with keys that contain path punctuation written as `["app.kubernetes.io/name"]`.
fn render_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if key.contains(['.', '[', ']', '"']) {
                    out.push_str(&format!("[\"{key}\"]"));
                } else {
                    out.push('.');
                    out.push_str(key);
                }
            }
            Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Declares an Istio enum: a Rust enum whose wire form is the proto name (`ISTIO_MUTUAL`)
/// or its number, the first variant being the zero value.
macro_rules! istio_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            #[default]
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every variant, in the proto's order (the index is the wire number).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The proto name of this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// The value with this proto name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($wire => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl $crate::schema::CrdSchema for $name {
            fn schema() -> serde_json::Value {
                $crate::schema::string_enum(&[$($wire),+])
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let names: &'static [&'static str] = &[$($wire),+];
                $crate::model::num::deserialize_enum(d, names, stringify!($name))
                    .map(|i| $name::ALL[i])
            }
        }
    };
}
pub(crate) use istio_enum;

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::networking::{DestinationRule, VirtualService};
    use super::*;
    use crate::source;

    fn load(yaml: &str) -> Resource {
        let loaded = source::load_bytes("test.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        loaded.resources.into_iter().next().expect("one object")
    }

    #[test]
    fn parses_a_virtual_service() {
        let res = load(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\nspec:\n  hosts: [a]\n  http:\n  - match:\n    - uri:\n        prefix: /x\n      port: \"8080\"\n    timeout: 1.5s\n    route:\n    - destination:\n        host: a\n      weight: 100\n",
        );
        let vs: VirtualService = parse_spec(&res).expect("valid");
        assert_eq!(vs.hosts, vec!["a"]);
        let route = &vs.http[0];
        assert_eq!(route.r#match[0].port, 8080);
        assert_eq!(
            route.timeout.map(|d| d.0),
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!(route.route[0].weight, 100);
    }

    #[test]
    fn type_errors_carry_path_and_line() {
        let res = load(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination:\n        host: a\n      weight: heavy\n",
        );
        let err = parse_spec::<VirtualService>(&res).expect_err("invalid");
        assert_eq!(err.path, "spec.http[0].route[0].weight");
        assert_eq!(err.line, 11);
    }

    #[test]
    fn unknown_fields_are_rejected_and_snake_case_accepted() {
        let res = load(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: a\nspec:\n  host: a\n  trafficPolicy:\n    loadBalancer:\n      simpel: ROUND_ROBIN\n",
        );
        let err = parse_spec::<DestinationRule>(&res).expect_err("typo");
        assert!(err.message.contains("simpel"), "{}", err.message);
        assert!(err.path.starts_with("spec.trafficPolicy.loadBalancer"));
        assert_eq!(err.line, 9);

        let res = load(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: a\nspec:\n  host: a\n  traffic_policy:\n    load_balancer:\n      simple: 2\n",
        );
        let dr: DestinationRule = parse_spec(&res).expect("aliases");
        let lb = dr.traffic_policy.and_then(|t| t.load_balancer).expect("lb");
        assert_eq!(lb.simple, Some(networking::SimpleLb::Random));
    }

    #[test]
    fn nulls_are_absent_and_numbers_may_be_strings() {
        let res = load(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\nspec:\n  hosts: [a]\n  gateways:\n  http:\n  - route:\n    - destination:\n        host: a\n      weight: \"50\"\n",
        );
        let vs: VirtualService = parse_spec(&res).expect("valid");
        assert!(vs.gateways.is_empty());
        assert_eq!(vs.http[0].route[0].weight, 50);

        let res = load(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\nspec:\n  http:\n  - route:\n    - weight: 99999999999\n",
        );
        let err = parse_spec::<VirtualService>(&res).expect_err("out of range");
        assert!(err.message.contains("out of range"), "{}", err.message);
    }

    #[test]
    fn bad_enum_names_are_errors() {
        let res = load(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: a\nspec:\n  host: a\n  trafficPolicy:\n    tls:\n      mode: MUTAL\n",
        );
        let err = parse_spec::<DestinationRule>(&res).expect_err("bad enum");
        assert_eq!(err.path, "spec.trafficPolicy.tls.mode");
        assert!(err.message.contains("MUTAL"));
    }
}
