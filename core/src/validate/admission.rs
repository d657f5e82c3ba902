//! What the Kubernetes API server does with an Istio object before it stores it, and what
//! `meshctl validate` reports about it.
//!
//! This module owns the API server's handling of a custom resource whose CRD schema is
//! structural (the schemas [`crate::schema`] generates): first it *prunes* every field the
//! schema does not specify (and every `null`), silently; then it *validates* what is left
//! (types, int-or-string, enums, patterns, ranges, `required`, array items, map values) and
//! refuses the object on any violation. [`admit`] is that algorithm on JSON, shared with the
//! fake API server of the tests.
//!
//! meshctl's parser reads Istio's wire format the way Istio's protojson parser does, which
//! is more lenient than the CRD: snake_case proto names (`traffic_policy`), enums by number,
//! numbers as strings, messages as lists. [`findings`] runs an object through its kind's
//! schema and turns what the API server would refuse into errors and what it would drop into
//! warnings, leaving out what the typed validation already reported.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::Value;

use super::{Finding, Severity};
use crate::resource::Resource;

/// Whether a string matches an OpenAPI `pattern`: `(pattern, text) -> matches`.
pub type PatternMatcher<'a> = &'a dyn Fn(&str, &str) -> bool;

/// A field the API server drops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrunedField {
    /// Its path (`spec.traffic_policy`).
    pub path: String,
    /// The property of the same object the schema lists under the field's camelCase name,
    /// when the field is a snake_case spelling of one (`trafficPolicy`).
    pub known_as: Option<String>,
}

/// A value the API server refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaViolation {
    /// The field's path (`spec.http[0].timeout`), `""` for the object.
    pub path: String,
    /// What is wrong (`must be of type number, found "50"`).
    pub message: String,
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The outcome of [`admit`].
#[derive(Clone, Debug, PartialEq)]
pub struct Admission {
    /// The object as the API server would store it (pruned).
    pub object: Value,
    /// The fields pruned, in document order.
    pub pruned: Vec<PrunedField>,
    /// Why the API server refuses the object; empty when it admits it.
    pub violations: Vec<SchemaViolation>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn preserves(s: &Value) -> bool {
    s["x-kubernetes-preserve-unknown-fields"] == true
}

/// The camelCase form of a snake_case name (`traffic_policy` -> `trafficPolicy`); `None`
/// for a name with no underscore.
fn camel_case(name: &str) -> Option<String> {
    if !name.contains('_') {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Drops the fields `schema` does not specify (and `null`s), recording them. At the root,
/// `apiVersion`, `kind` and `metadata` are the API server's own.
pub fn prune(schema: &Value, value: &mut Value, path: &str, pruned: &mut Vec<PrunedField>) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            if let Some(extra) = schema.get("additionalProperties") {
                for (k, v) in map.iter_mut() {
                    prune(extra, v, &join(path, k), pruned);
                }
                return;
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let keep_unknown = preserves(schema);
            let root = path.is_empty();
            map.retain(|k, _| {
                let known = props.is_some_and(|p| p.contains_key(k))
                    || (root && ["apiVersion", "kind", "metadata"].contains(&k.as_str()));
                if !known && !keep_unknown {
                    let known_as =
                        camel_case(k).filter(|c| props.is_some_and(|p| p.contains_key(c)));
                    pruned.push(PrunedField {
                        path: join(path, k),
                        known_as,
                    });
                }
                known || keep_unknown
            });
            for (k, v) in map.iter_mut() {
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    prune(s, v, &join(path, k), pruned);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter_mut().enumerate() {
                    prune(s, v, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

fn is_integer(v: &Value) -> bool {
    v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
}

/// Checks `value` against `schema`, recording each violation.
pub fn check(
    schema: &Value,
    value: &Value,
    path: &str,
    matches: PatternMatcher<'_>,
    out: &mut Vec<SchemaViolation>,
) {
    let mut violation = |message: String| {
        out.push(SchemaViolation {
            path: path.to_owned(),
            message,
        })
    };
    if schema["x-kubernetes-int-or-string"] == true {
        if !(is_integer(value) || value.is_string()) {
            violation(format!("must be an integer or a string, found {value}"));
            return;
        }
    } else if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => is_integer(value),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => false,
        };
        if !ok {
            violation(format!("must be of type {ty}, found {value}"));
            return;
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        violation(format!(
            "{value} is not one of {}",
            Value::from(values.clone())
        ));
    }
    if let (Some(p), Some(s)) = (
        schema.get("pattern").and_then(Value::as_str),
        value.as_str(),
    ) && !matches(p, s)
    {
        violation(match p {
            crate::schema::DURATION_PATTERN => format!(
                "{s:?} does not match the duration pattern (Go's notation: 1.5s, 100ms, 1h30m)"
            ),
            crate::schema::NUMERIC_STRING_PATTERN => {
                format!("{s:?} does not match the integer pattern (an integer as a string)")
            }
            _ => format!("{s:?} does not match {p}"),
        });
    }
    if let Some(n) = value.as_f64().filter(|_| value.is_number()) {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            violation(format!("{value} is below {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            violation(format!("{value} is above {max}"));
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in map {
                    if let Some(s) = props.get(k) {
                        check(s, v, &join(path, k), matches, out);
                    }
                }
            }
            if let Some(extra) = schema.get("additionalProperties") {
                for (k, v) in map {
                    check(extra, v, &join(path, k), matches, out);
                }
            }
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !r.as_str().is_some_and(|r| map.contains_key(r)) {
                    out.push(SchemaViolation {
                        path: path.to_owned(),
                        message: format!("{r} is required"),
                    });
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check(s, v, &format!("{path}[{i}]"), matches, out);
                }
            }
        }
        _ => {}
    }
}

/// Pruning then validation of `object` against an `openAPIV3Schema`.
pub fn admit(schema: &Value, object: &Value, matches: PatternMatcher<'_>) -> Admission {
    let mut object = object.clone();
    let mut pruned = Vec::new();
    prune(schema, &mut object, "", &mut pruned);
    let mut violations = Vec::new();
    check(schema, &object, "", matches, &mut violations);
    Admission {
        object,
        pruned,
        violations,
    }
}

/// Whether `text` matches `pattern` as the API server checks it (RE2 syntax; the regex
/// crate's is a superset of what the generated schemas use). Compiled patterns are kept; a
/// pattern that does not compile cannot be checked and matches everything.
pub fn regex_matches(pattern: &str, text: &str) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let re = cache
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).ok());
    re.as_ref().is_none_or(|re| re.is_match(text))
}

/// The `openAPIV3Schema` of each modelled Istio kind, generated once.
fn schema_of(group: &str, kind: &str) -> Option<&'static Value> {
    static SCHEMAS: OnceLock<Vec<(&'static str, &'static str, Value)>> = OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            crate::kinds::ISTIO_KINDS
                .iter()
                .filter(|(g, k, _)| crate::schema::spec_schema(g, k).is_some())
                .map(|(g, k, _)| (*g, *k, crate::schema::crd_schema(g, k)))
                .collect()
        })
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
        .map(|(_, _, schema)| schema)
}

/// Whether `inner` is `outer` or a field inside it (`spec.a` and `spec.a[0].b`).
fn within(inner: &str, outer: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// What the API server would do with `res` that `already` (the typed validation's findings)
/// does not say: a value it refuses is an error, a field it drops a warning. Kinds mesh-core
/// does not model get none (their CRD keeps `spec` as written).
pub fn findings(res: &Resource, already: &[Finding]) -> Vec<Finding> {
    let Some(schema) = schema_of(&res.group, &res.kind) else {
        return Vec::new();
    };
    let admission = admit(schema, &res.json, &regex_matches);
    // An error about the field, or about a field inside it (a wrong type meshctl reports at
    // the value where the schema says which of an object's fields is required).
    let reported = |path: &str| {
        already
            .iter()
            .any(|f| f.severity == Severity::Error && within(&f.path, path))
    };
    let mut out = Vec::new();
    for p in admission.pruned {
        if reported(&p.path) {
            continue;
        }
        let why = match &p.known_as {
            Some(name) => format!("Istio's CRD names it {name}"),
            None => "Istio's CRD has no such field".to_owned(),
        };
        out.push(Finding {
            severity: Severity::Warning,
            line: res.line_of(&p.path),
            message: format!(
                "the API server drops this field ({why}); the setting is lost in a cluster"
            ),
            path: p.path,
        });
    }
    for v in admission.violations {
        if reported(&v.path) {
            continue;
        }
        out.push(Finding {
            severity: Severity::Error,
            line: res.line_of(&v.path),
            message: format!("the API server refuses the object: {}", v.message),
            path: v.path,
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_of_proto_names() {
        assert_eq!(
            camel_case("traffic_policy").as_deref(),
            Some("trafficPolicy")
        );
        assert_eq!(
            camel_case("connection_pool_settings").as_deref(),
            Some("connectionPoolSettings")
        );
        assert_eq!(camel_case("hosts"), None);
    }

    #[test]
    fn paths_within_paths() {
        assert!(within("spec.a", "spec.a"));
        assert!(within("spec.a.b", "spec.a"));
        assert!(within("spec.a[0].b", "spec.a"));
        assert!(!within("spec.a", "spec.a.b"));
        assert!(!within("spec.ab", "spec.a"));
        assert!(!within("spec.a.b", "spec.a.c"));
    }

    #[test]
    fn patterns_are_checked_and_bad_patterns_do_not_panic() {
        assert!(regex_matches("^[0-9]+s$", "5s"));
        assert!(!regex_matches("^[0-9]+s$", "5 seconds"));
        assert!(regex_matches("(", "anything"));
    }
}
