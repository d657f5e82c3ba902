//! What the Kubernetes API server does with an object of a CRD whose schema is structural:
//! prune the fields the schema does not specify (and `null`s), then validate types, enums,
//! patterns, ranges, `required`, items and maps, int-or-string included. Test code, shared
//! by mesh-core's CRD schema test and the fake API server of meshctl's and meshd's tests
//! (included with `#[path]`); the caller supplies the pattern matcher (the fake has no regex
//! engine and skips patterns).

#![allow(dead_code)]

use serde_json::Value;

fn preserves(s: &Value) -> bool {
    s["x-kubernetes-preserve-unknown-fields"] == true
}

/// Drops the fields `schema` does not specify, recording their paths. At the root,
/// `apiVersion`, `kind` and `metadata` are the API server's own.
pub fn prune(schema: &Value, value: &mut Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            if let Some(extra) = schema.get("additionalProperties") {
                for (k, v) in map.iter_mut() {
                    prune(extra, v, &format!("{path}.{k}"), pruned);
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
                    pruned.push(format!("{path}.{k}"));
                }
                known || keep_unknown
            });
            for (k, v) in map.iter_mut() {
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    prune(s, v, &format!("{path}.{k}"), pruned);
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

/// Whether a string matches an OpenAPI `pattern`: `(pattern, text) -> matches`.
pub type PatternMatcher<'a> = &'a dyn Fn(&str, &str) -> bool;

/// Checks `value` against `schema`, pushing `path: problem` for each violation.
pub fn validate(
    schema: &Value,
    value: &Value,
    path: &str,
    matches: PatternMatcher<'_>,
    errs: &mut Vec<String>,
) {
    let int_or_string = schema["x-kubernetes-int-or-string"] == true;
    if int_or_string {
        if !(is_integer(value) || value.is_string()) {
            errs.push(format!(
                "{path}: must be an integer or a string, found {value}"
            ));
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
            errs.push(format!("{path}: must be of type {ty}, found {value}"));
            return;
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        errs.push(format!(
            "{path}: {value} is not one of {}",
            Value::from(values.clone())
        ));
    }
    if let (Some(p), Some(s)) = (
        schema.get("pattern").and_then(Value::as_str),
        value.as_str(),
    ) && !matches(p, s)
    {
        errs.push(format!("{path}: {s:?} does not match {p}"));
    }
    if let Some(n) = value.as_f64().filter(|_| value.is_number()) {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            errs.push(format!("{path}: {value} is below {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            errs.push(format!("{path}: {value} is above {max}"));
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in map {
                    if let Some(s) = props.get(k) {
                        validate(s, v, &format!("{path}.{k}"), matches, errs);
                    }
                }
            }
            if let Some(extra) = schema.get("additionalProperties") {
                for (k, v) in map {
                    validate(extra, v, &format!("{path}.{k}"), matches, errs);
                }
            }
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !r.as_str().is_some_and(|r| map.contains_key(r)) {
                    errs.push(format!("{path}: {r} is required"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    validate(s, v, &format!("{path}[{i}]"), matches, errs);
                }
            }
        }
        _ => {}
    }
}

/// Pruning then validation: the fields pruned and the errors.
pub fn admit(
    schema: &Value,
    object: &Value,
    matches: PatternMatcher<'_>,
) -> (Value, Vec<String>, Vec<String>) {
    let mut object = object.clone();
    let mut pruned = Vec::new();
    prune(schema, &mut object, "", &mut pruned);
    let mut errs = Vec::new();
    validate(schema, &object, "", matches, &mut errs);
    (object, pruned, errs)
}
