//! A proxy's `/config_dump` (Envoy's `envoy.admin.v3.ConfigDump` JSON, which mesh-proxy
//! answers in the same shape) read as plain JSON: the sections found by their `@type`, and
//! the resources inside them. No protobuf: unknown `@type`s are kept and listed, missing
//! fields read as absent, nothing here fails on a dump's content beyond "not a config dump".

use serde_json::Value;

/// The `@type` suffixes of the sections meshctl reads; others are listed as unknown.
const KNOWN_SECTIONS: &[&str] = &[
    ".BootstrapConfigDump",
    ".ClustersConfigDump",
    ".ListenersConfigDump",
    ".ScopedRoutesConfigDump",
    ".RoutesConfigDump",
    ".SecretsConfigDump",
    ".EndpointsConfigDump",
];

/// A parsed config dump.
#[derive(Clone, Debug)]
pub struct ConfigDump {
    configs: Vec<Value>,
}

/// One secret with where Envoy keeps it.
#[derive(Clone, Debug)]
pub struct SecretEntry<'a> {
    pub name: String,
    /// `ACTIVE` or `WARMING`.
    pub status: &'static str,
    /// The `Secret` (absent for a warming secret Envoy has not received yet).
    pub secret: Option<&'a Value>,
    /// The whole entry, as the dump has it.
    pub raw: &'a Value,
}

impl ConfigDump {
    /// From a `/config_dump` answer: an object with a `configs` array.
    pub fn from_value(v: Value) -> Result<ConfigDump, String> {
        match v {
            Value::Object(mut o) => match o.remove("configs") {
                Some(Value::Array(configs)) => Ok(ConfigDump { configs }),
                Some(_) => Err("`configs` is not an array".to_owned()),
                None => Err(
                    "not a config dump (no `configs`; expected the JSON of /config_dump)"
                        .to_owned(),
                ),
            },
            _ => Err("not a config dump (expected a JSON object)".to_owned()),
        }
    }

    /// The sections, as the dump has them.
    pub fn sections(&self) -> &[Value] {
        &self.configs
    }

    /// The first section whose `@type` ends with `suffix` (e.g. `.ClustersConfigDump`).
    pub fn section(&self, suffix: &str) -> Option<&Value> {
        self.configs.iter().find(|c| type_of(c).ends_with(suffix))
    }

    /// `@type`s of sections meshctl does not read.
    pub fn unknown_sections(&self) -> Vec<String> {
        self.configs
            .iter()
            .map(|c| type_of(c).to_owned())
            .filter(|t| !KNOWN_SECTIONS.iter().any(|k| t.ends_with(k)))
            .map(|t| {
                if t.is_empty() {
                    "(no @type)".to_owned()
                } else {
                    t
                }
            })
            .collect()
    }

    /// Every active cluster: dynamic, then static.
    pub fn clusters(&self) -> Vec<&Value> {
        let Some(s) = self.section(".ClustersConfigDump") else {
            return Vec::new();
        };
        items(s, "dynamic_active_clusters", &["cluster"])
            .chain(items(s, "static_clusters", &["cluster"]))
            .collect()
    }

    /// Every active listener: dynamic (active state), then static.
    pub fn listeners(&self) -> Vec<&Value> {
        let Some(s) = self.section(".ListenersConfigDump") else {
            return Vec::new();
        };
        items(s, "dynamic_listeners", &["active_state", "listener"])
            .chain(items(s, "static_listeners", &["listener"]))
            .collect()
    }

    /// Every route configuration: dynamic, then static (inline ones of static listeners).
    pub fn routes(&self) -> Vec<&Value> {
        let Some(s) = self.section(".RoutesConfigDump") else {
            return Vec::new();
        };
        items(s, "dynamic_route_configs", &["route_config"])
            .chain(items(s, "static_route_configs", &["route_config"]))
            .collect()
    }

    /// Every ClusterLoadAssignment (only in `/config_dump?include_eds`).
    pub fn endpoint_configs(&self) -> Vec<&Value> {
        let Some(s) = self.section(".EndpointsConfigDump") else {
            return Vec::new();
        };
        items(s, "dynamic_endpoint_configs", &["endpoint_config"])
            .chain(items(s, "static_endpoint_configs", &["endpoint_config"]))
            .collect()
    }

    /// Every secret: static and dynamic active ones, then warming ones.
    pub fn secrets(&self) -> Vec<SecretEntry<'_>> {
        let Some(s) = self.section(".SecretsConfigDump") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, status) in [
            ("static_secrets", "ACTIVE"),
            ("dynamic_active_secrets", "ACTIVE"),
            ("dynamic_warming_secrets", "WARMING"),
        ] {
            for raw in s.get(key).and_then(Value::as_array).into_iter().flatten() {
                let secret = raw.get("secret").filter(|v| v.is_object());
                let name = str_at(raw, &["name"])
                    .or_else(|| secret.and_then(|v| str_at(v, &["name"])))
                    .unwrap_or_default()
                    .to_owned();
                out.push(SecretEntry {
                    name,
                    status,
                    secret,
                    raw,
                });
            }
        }
        out
    }

    /// The BootstrapConfigDump section.
    pub fn bootstrap(&self) -> Option<&Value> {
        self.section(".BootstrapConfigDump")
    }
}

/// `v["@type"]`, or "".
pub fn type_of(v: &Value) -> &str {
    v.get("@type").and_then(Value::as_str).unwrap_or_default()
}

fn items<'a>(
    section: &'a Value,
    key: &str,
    path: &'static [&'static str],
) -> impl Iterator<Item = &'a Value> {
    section
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(move |entry| at(entry, path).filter(|v| v.is_object()))
}

/// The value at a path of object keys.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The string at a path of object keys.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// The unsigned number at a path, written as a number or (64-bit protobuf) a string.
pub fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    match at(v, path)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        // A wrapper written as `{"value": N}`.
        Value::Object(o) => o.get("value").and_then(|v| u64_at(v, &[])),
        _ => None,
    }
}

/// The strings of an array at a path (non-strings skipped).
pub fn strings_at(v: &Value, path: &[&str]) -> Vec<String> {
    at(v, path)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The elements of an array at a path.
pub fn array_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    #[test]
    fn sections_are_found_by_type_and_unknown_ones_listed() {
        let d = ConfigDump::from_value(json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
             "static_clusters": [{"cluster": {"name": "a"}}, {"no_cluster": 1}],
             "dynamic_active_clusters": [{"cluster": {"name": "b"}}, {"cluster": "junk"}]},
            {"@type": "type.googleapis.com/acme.FancyDump", "x": 1},
            {"no_type": true}
        ]}))
        .unwrap();
        let names: Vec<_> = d
            .clusters()
            .iter()
            .map(|c| str_at(c, &["name"]).unwrap())
            .collect();
        assert_eq!(names, ["b", "a"]);
        assert!(d.listeners().is_empty() && d.routes().is_empty());
        assert_eq!(
            d.unknown_sections(),
            ["type.googleapis.com/acme.FancyDump", "(no @type)"]
        );
    }

    #[test]
    fn not_a_dump_is_an_error() {
        assert!(ConfigDump::from_value(json!([1])).is_err());
        assert!(ConfigDump::from_value(json!({"cluster_statuses": []})).is_err());
        assert!(ConfigDump::from_value(json!({"configs": {}})).is_err());
    }

    #[test]
    fn numbers_in_every_json_spelling() {
        let v = json!({"a": 5, "b": "6", "c": {"value": 7}, "d": "x"});
        assert_eq!(u64_at(&v, &["a"]), Some(5));
        assert_eq!(u64_at(&v, &["b"]), Some(6));
        assert_eq!(u64_at(&v, &["c"]), Some(7));
        assert_eq!(u64_at(&v, &["d"]), None);
        assert_eq!(u64_at(&v, &["e"]), None);
    }
}
