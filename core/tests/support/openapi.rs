//! What the Kubernetes API server does with an object of a CRD whose schema is structural
//! (prune, then validate): a thin adapter over `mesh_core::validate::admission`, shared by
//! mesh-core's CRD schema test and the fake API server of meshctl's and meshd's tests
//! (included with `#[path]`); the caller supplies the pattern matcher.

#![allow(dead_code)]

use serde_json::Value;

pub use mesh_core::validate::admission::PatternMatcher;

/// Pruning then validation: the object as stored, the paths pruned and the errors
/// (`path: problem`).
pub fn admit(
    schema: &Value,
    object: &Value,
    matches: PatternMatcher<'_>,
) -> (Value, Vec<String>, Vec<String>) {
    let a = mesh_core::validate::admission::admit(schema, object, matches);
    (
        a.object,
        a.pruned.into_iter().map(|p| p.path).collect(),
        a.violations.iter().map(ToString::to_string).collect(),
    )
}
