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

/// A label selector as Kubernetes prints it: `a=1,b=2`, keys in order.
pub fn selector_text(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Evaluates a Kubernetes `LabelSelector` (`matchLabels` and `matchExpressions`) against
/// labels. An absent (or null) selector selects everything; a selector Kubernetes would
/// refuse (unknown operator, values where none belong or missing where required) selects
/// nothing.
pub fn label_selector_matches(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return true;
    };
    let match_labels = string_map_at(selector, "/matchLabels");
    if !match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
        return false;
    }
    arr_at(selector, "/matchExpressions")
        .iter()
        .all(|expr| expression_matches(expr, labels).unwrap_or(false))
}

/// One `matchExpressions` entry; `None` when the expression is malformed.
fn expression_matches(expr: &Value, labels: &BTreeMap<String, String>) -> Option<bool> {
    let key = str_at(expr, "/key")?;
    let values: Vec<&str> = arr_at(expr, "/values")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let value = labels.get(key).map(String::as_str);
    match str_at(expr, "/operator")? {
        "In" if !values.is_empty() => Some(value.is_some_and(|v| values.contains(&v))),
        "NotIn" if !values.is_empty() => Some(value.is_none_or(|v| !values.contains(&v))),
        "Exists" if values.is_empty() => Some(value.is_some()),
        "DoesNotExist" if values.is_empty() => Some(value.is_none()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_follow_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(label_selector_matches(None, &l));
        assert!(label_selector_matches(Some(&Value::Null), &l));
        let sel = serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "back"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        });
        assert!(label_selector_matches(Some(&sel), &l));
        let not_in = serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]});
        assert!(!label_selector_matches(Some(&not_in), &l));
        // Malformed: Exists with values, unknown operator, In without values.
        for bad in [
            serde_json::json!({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]}),
            serde_json::json!({"matchExpressions": [{"key": "app", "operator": "Like"}]}),
            serde_json::json!({"matchExpressions": [{"key": "app", "operator": "In"}]}),
        ] {
            assert!(!label_selector_matches(Some(&bad), &l), "{bad}");
        }
        assert_eq!(selector_text(&l), "app=web,tier=front");
    }
}
