//! Small helpers for reading fields of objects as JSON, for analyzers of kinds that have no
//! typed model (webhooks, CRDs, Gateway API, Telemetry) and for quick looks at typed ones.

use std::collections::BTreeMap;

use serde_json::Value;

/// The string at a JSON pointer (`/spec/host`).
pub fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The array at a JSON pointer, or an empty slice.
pub fn arr_at<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The strings of the array at a JSON pointer (non-strings skipped).
pub fn strs_at<'a>(v: &'a Value, pointer: &str) -> Vec<&'a str> {
    arr_at(v, pointer)
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// A map of strings at a JSON pointer (labels, selectors); non-string values are skipped.
pub fn string_map_at(v: &Value, pointer: &str) -> BTreeMap<String, String> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// A number at a JSON pointer, whether written as a number or a numeric string.
pub fn u64_at(v: &Value, pointer: &str) -> Option<u64> {
    match v.pointer(pointer)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Whether every `selector` label is on `labels` with the same value (an empty selector
/// selects everything, as Kubernetes' label selectors do).
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
