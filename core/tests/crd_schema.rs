//! The CRD schemas as shipped (`testdata/manifests/minimal.yaml`, which `meshctl`'s manifest
//! test keeps equal to what `meshctl manifest generate` renders from `mesh_core::schema`):
//! - every version of every CRD is a Kubernetes *structural* schema (`structural::check`,
//!   the rules the API server enforces before it accepts a CRD);
//! - an OpenAPI validator doing what the API server does with an object (`openapi`: prune
//!   the fields the schema does not know, then check types, enums, patterns, ranges,
//!   required) accepts every Istio object of testdata/ and of the conformance data that
//!   meshctl's own validator accepts, keeping all its fields;
//! - it refuses wrong-typed objects, as meshctl does;
//! - a field meshctl does not model is not in the schema: the API server prunes it. The
//!   Istio fields of real samples we do not model are listed in `UNMODELLED`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mesh_core::resource::Resource;
use mesh_core::validate::{Severity, validate, validate_for_cluster};
use serde_json::{Value, json};

/// Structural-schema rules of Kubernetes (apiextensions.k8s.io/v1).
mod structural {
    use serde_json::Value;

    const KEYWORDS: &[&str] = &[
        "type",
        "format",
        "description",
        "title",
        "properties",
        "additionalProperties",
        "items",
        "required",
        "enum",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
        "default",
        "nullable",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "example",
        "externalDocs",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
    ];
    const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean"];
    /// Formats the API server knows (others are refused by recent API servers' ratcheting
    /// validation, or ignored by older ones: neither is what a schema means).
    const FORMATS: &[&str] = &[
        "int32",
        "int64",
        "float",
        "double",
        "byte",
        "binary",
        "date",
        "date-time",
        "duration",
        "password",
        "uri",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "cidr",
        "mac",
        "uuid",
    ];
    /// Set inside allOf/anyOf/oneOf/not only in the int-or-string forms.
    const NOT_IN_JUNCTORS: &[&str] = &[
        "description",
        "type",
        "default",
        "additionalProperties",
        "nullable",
    ];
    const JUNCTORS: &[&str] = &["allOf", "anyOf", "oneOf", "not"];

    /// Every way `root` (an `openAPIV3Schema`) breaks the rules, as `path: problem`.
    pub fn check(root: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        if root["type"] != "object" {
            errs.push("<root>: the root must be of type object".to_owned());
        }
        if let Some(meta) = root.pointer("/properties/metadata") {
            check_metadata(meta, &mut errs);
        }
        node(root, "<root>", false, &mut errs);
        errs
    }

    fn is_int_or_string_any_of(v: &Value) -> bool {
        *v == serde_json::json!([{"type": "integer"}, {"type": "string"}])
    }

    /// At the root, `metadata` may only restrict `name` and `generateName`.
    fn check_metadata(meta: &Value, errs: &mut Vec<String>) {
        let Some(m) = meta.as_object() else {
            errs.push("metadata: not a schema".to_owned());
            return;
        };
        for (k, v) in m {
            match k.as_str() {
                "type" if v == "object" => {}
                "properties" => {
                    for (field, s) in v.as_object().into_iter().flatten() {
                        if field != "name" && field != "generateName" {
                            errs.push(format!(
                                "metadata.{field}: only name and generateName may be restricted"
                            ));
                        } else if s.get("type").is_some_and(|t| t != "string") {
                            errs.push(format!("metadata.{field}: must be a string"));
                        }
                    }
                }
                other => errs.push(format!(
                    "metadata: {other} is not allowed (only restrictions of name and generateName)"
                )),
            }
        }
    }

    fn node(s: &Value, path: &str, in_junctor: bool, errs: &mut Vec<String>) {
        let Some(m) = s.as_object() else {
            errs.push(format!("{path}: a schema must be an object, found {s}"));
            return;
        };
        for k in m.keys() {
            if !KEYWORDS.contains(&k.as_str()) {
                // $ref, $defs, definitions, $schema, id, patternProperties, dependencies,
                // additionalItems and anything else Kubernetes does not take.
                errs.push(format!("{path}: {k} is not allowed in a structural schema"));
            }
        }
        let int_or_string = m.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        let preserve = m.get("x-kubernetes-preserve-unknown-fields");
        if preserve.is_some_and(|p| p != true) {
            errs.push(format!(
                "{path}: x-kubernetes-preserve-unknown-fields must be true or absent"
            ));
        }
        let preserve = preserve == Some(&Value::Bool(true));
        let ty = m.get("type").and_then(Value::as_str);
        if let Some(t) = m.get("type")
            && !t.as_str().is_some_and(|t| TYPES.contains(&t))
        {
            errs.push(format!("{path}: unknown type {t}"));
        }
        if in_junctor {
            for k in NOT_IN_JUNCTORS {
                if m.contains_key(*k) {
                    errs.push(format!(
                        "{path}: {k} is not allowed inside allOf/anyOf/oneOf/not"
                    ));
                }
            }
        } else if ty.is_none() && !int_or_string && !preserve {
            errs.push(format!("{path}: no type"));
        }
        if int_or_string {
            if ty.is_some() {
                errs.push(format!("{path}: int-or-string must not set a type"));
            }
            if let Some(any_of) = m.get("anyOf")
                && !is_int_or_string_any_of(any_of)
            {
                errs.push(format!(
                    "{path}: an int-or-string's anyOf must be [integer, string]"
                ));
            }
        }
        if preserve && ty.is_some_and(|t| t != "object") {
            errs.push(format!(
                "{path}: x-kubernetes-preserve-unknown-fields on a {} node",
                ty.unwrap_or_default()
            ));
        }
        if let Some(f) = m.get("format")
            && !f.as_str().is_some_and(|f| FORMATS.contains(&f))
        {
            errs.push(format!("{path}: unknown format {f}"));
        }
        for (k, allowed) in [
            ("x-kubernetes-list-type", "array"),
            ("x-kubernetes-list-map-keys", "array"),
            ("x-kubernetes-map-type", "object"),
            ("x-kubernetes-embedded-resource", "object"),
        ] {
            if m.contains_key(k) && ty != Some(allowed) {
                errs.push(format!("{path}: {k} belongs on a node of type {allowed}"));
            }
        }
        if m.contains_key("properties") && m.contains_key("additionalProperties") {
            errs.push(format!(
                "{path}: properties and additionalProperties are mutually exclusive"
            ));
        }
        if (m.contains_key("properties") || m.contains_key("additionalProperties"))
            && ty.is_some_and(|t| t != "object")
        {
            errs.push(format!(
                "{path}: properties on a {} node",
                ty.unwrap_or_default()
            ));
        }
        if m.get("uniqueItems") == Some(&Value::Bool(true)) {
            errs.push(format!("{path}: uniqueItems is not allowed"));
        }
        if let Some(props) = m.get("properties") {
            let Some(props) = props.as_object() else {
                errs.push(format!("{path}: properties must be an object"));
                return;
            };
            for (k, v) in props {
                node(v, &format!("{path}.{k}"), in_junctor, errs);
            }
            for r in m
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !r.as_str().is_some_and(|r| props.contains_key(r)) {
                    errs.push(format!("{path}: required {r} is not a property"));
                }
            }
        }
        match m.get("additionalProperties") {
            None => {}
            Some(Value::Object(_)) => node(
                &m["additionalProperties"],
                &format!("{path}.*"),
                in_junctor,
                errs,
            ),
            Some(other) => errs.push(format!(
                "{path}: additionalProperties must be a schema, found {other}"
            )),
        }
        match (ty, m.get("items")) {
            (Some("array"), Some(items @ Value::Object(_))) => {
                node(items, &format!("{path}[]"), in_junctor, errs)
            }
            (Some("array"), _) => errs.push(format!("{path}: an array needs one items schema")),
            (_, Some(_)) => errs.push(format!("{path}: items on a non-array")),
            _ => {}
        }
        if let Some(values) = m.get("enum") {
            let ok = values.as_array().is_some_and(|vs| {
                vs.iter().all(|v| match ty {
                    Some("string") => v.is_string(),
                    Some("integer") => v.is_i64() || v.is_u64(),
                    Some("number") => v.is_number(),
                    Some("boolean") => v.is_boolean(),
                    _ => true,
                })
            });
            if !ok {
                errs.push(format!("{path}: enum values must be of the node's type"));
            }
        }
        for j in JUNCTORS {
            let Some(sub) = m.get(*j) else { continue };
            if int_or_string && *j == "anyOf" && is_int_or_string_any_of(sub) {
                continue;
            }
            let subs: Vec<&Value> = match sub {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for (i, sub) in subs.into_iter().enumerate() {
                let p = format!("{path}.{j}[{i}]");
                // A field may be constrained inside a junctor only if it is specified outside.
                for k in sub
                    .get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|p| p.keys())
                {
                    if m.get("properties").and_then(|p| p.get(k)).is_none() {
                        errs.push(format!("{p}: {k} is not specified outside the {j}"));
                    }
                }
                node(sub, &p, true, errs);
            }
        }
    }
}

/// The API server's prune-then-validate, shared with the fake API server of meshctl's tests.
#[path = "support/openapi.rs"]
mod openapi;

/// Patterns as the API server checks them (RE2 syntax; the regex crate's is a superset of
/// what the schemas use). Every pattern of the schemas compiles.
fn pattern_matches(pattern: &str, text: &str) -> bool {
    regex::Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"));
    mesh_core::validate::admission::regex_matches(pattern, text)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `(group, kind) -> version -> openAPIV3Schema`, from the shipped manifest.
fn shipped_schemas() -> BTreeMap<(String, String), BTreeMap<String, Value>> {
    let path = repo().join("testdata/manifests/minimal.yaml");
    let text = std::fs::read(&path).unwrap();
    let loaded = mesh_core::source::load_bytes("minimal.yaml", &text);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let mut out = BTreeMap::new();
    for crd in loaded
        .resources
        .iter()
        .filter(|r| r.kind == "CustomResourceDefinition")
    {
        let spec = &crd.json["spec"];
        let key = (
            spec["group"].as_str().unwrap().to_owned(),
            spec["names"]["kind"].as_str().unwrap().to_owned(),
        );
        let versions = spec["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_owned(),
                    v["schema"]["openAPIV3Schema"].clone(),
                )
            })
            .collect();
        out.insert(key, versions);
    }
    out
}

#[test]
fn the_shipped_crds_are_the_model_schemas_for_every_kind_and_version() {
    let shipped = shipped_schemas();
    assert_eq!(shipped.len(), mesh_core::kinds::ISTIO_KINDS.len());
    for (group, kind, versions) in mesh_core::kinds::ISTIO_KINDS {
        let got = &shipped[&(group.to_string(), kind.to_string())];
        assert_eq!(got.keys().count(), versions.len(), "{kind}");
        for v in *versions {
            assert_eq!(
                got[*v],
                mesh_core::schema::crd_schema(group, kind),
                "{kind} {v}: regenerate the manifests (UPDATE_GOLDEN=1 cargo test -p meshctl --test manifest)"
            );
        }
    }
}

/// etcd refuses objects over 1.5 MiB (the CRD is one object, all its versions included).
#[test]
fn every_crd_fits_in_etcd() {
    let text = std::fs::read(repo().join("testdata/manifests/minimal.yaml")).unwrap();
    let loaded = mesh_core::source::load_bytes("minimal.yaml", &text);
    for crd in loaded
        .resources
        .iter()
        .filter(|r| r.kind == "CustomResourceDefinition")
    {
        let size = serde_json::to_vec(&*crd.json).unwrap().len();
        println!("{}: {size} bytes", crd.name);
        assert!(size < 1024 * 1024, "{}: {size} bytes", crd.name);
    }
}

#[test]
fn every_shipped_schema_is_structural() {
    let mut problems = Vec::new();
    let mut nodes = 0;
    for ((_, kind), versions) in shipped_schemas() {
        for (v, schema) in versions {
            nodes += count_nodes(&schema);
            problems.extend(
                structural::check(&schema)
                    .into_iter()
                    .map(|p| format!("{kind} {v}: {p}")),
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The schemas are full ones, not a few preserve-unknown-fields objects.
    assert!(nodes > 2000, "{nodes} schema nodes");
}

fn count_nodes(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(count_nodes).sum::<usize>(),
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        _ => 0,
    }
}

/// A change that breaks one structural rule.
type Breaker = Box<dyn Fn(&mut Value)>;

#[test]
fn the_structural_checker_finds_each_broken_rule() {
    let good = || mesh_core::schema::crd_schema("networking.istio.io", "VirtualService");
    assert_eq!(structural::check(&good()), Vec::<String>::new());
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "no type",
            Box::new(|s| {
                s["properties"]["spec"]["properties"]["hosts"]["items"]
                    .as_object_mut()
                    .unwrap()
                    .remove("type");
            }),
        ),
        (
            "$ref is not allowed",
            Box::new(|s| {
                s["properties"]["spec"]["properties"]["http"]["items"] =
                    json!({"$ref": "#/$defs/HttpRoute"});
            }),
        ),
        (
            "mutually exclusive",
            Box::new(|s| {
                s["properties"]["spec"]["additionalProperties"] = json!({"type": "string"});
            }),
        ),
        (
            "only name and generateName",
            Box::new(|s| {
                s["properties"]["metadata"] =
                    json!({"type": "object", "properties": {"labels": {"type": "object"}}});
            }),
        ),
        (
            "belongs on a node of type array",
            Box::new(|s| {
                s["properties"]["spec"]["x-kubernetes-list-type"] = json!("atomic");
            }),
        ),
        (
            "not allowed inside allOf/anyOf/oneOf/not",
            Box::new(|s| {
                s["properties"]["spec"]["oneOf"] =
                    json!([{"type": "object", "required": ["hosts"]}]);
            }),
        ),
        (
            "int-or-string must not set a type",
            Box::new(|s| {
                s["properties"]["spec"]["properties"]["http"]["items"]["properties"]["route"]["items"]
                    ["properties"]["weight"]["type"] = json!("integer");
            }),
        ),
        (
            "unknown format",
            Box::new(|s| {
                s["properties"]["spec"]["properties"]["hosts"]["items"]["format"] = json!("uint32");
            }),
        ),
        (
            "an array needs one items schema",
            Box::new(|s| {
                s["properties"]["spec"]["properties"]["hosts"]
                    .as_object_mut()
                    .unwrap()
                    .remove("items");
            }),
        ),
    ];
    for (needle, break_it) in cases {
        let mut s = good();
        break_it(&mut s);
        let problems = structural::check(&s);
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle}: {problems:?}"
        );
    }
}

/// Istio fields in real samples (testdata/ and the conformance data) that meshctl does not
/// model, as `Kind path`: the API server prunes them, and meshctl's validator refuses the
/// objects that carry them.
const UNMODELLED: &[&str] = &[
    // A misplaced key in an analyzer input (envoy-filter-add-operation.yaml): no Istio field.
    "EnvoyFilter spec.configPatches[0].match.app",
    // The EnvoyFilter API of Istio 1.0-1.3, removed since (analyzers/deprecation.yaml).
    "EnvoyFilter spec.filters",
    "EnvoyFilter spec.workloadLabels",
    // A typo kept on purpose (testdata/cli/invalid.yaml).
    "VirtualService spec.http[0].route[1].weigth",
];

/// What the CRD schema adds to meshctl's own findings on the samples meshctl refuses, as
/// `Kind severity path`: only what the typed validation does not say.
const ADDED_TO_REFUSED: &[&str] = &[
    // The typed parse stops at spec.workloadLabels (analyzers/deprecation.yaml).
    "EnvoyFilter Warning spec.filters",
    // The typed parse stops at the typo before it (testdata/cli/invalid.yaml).
    "VirtualService Error spec.http[0].timeout",
];

/// Every Istio object of testdata/ and of the conformance data.
fn samples() -> Vec<Resource> {
    let conformance = repo().join("../shared/conformance");
    assert!(
        conformance.is_dir(),
        "{}: the conformance data is missing",
        conformance.display()
    );
    let mut files = Vec::new();
    for dir in [repo().join("testdata"), conformance] {
        walk(&dir, &mut files);
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let loaded = mesh_core::source::load_bytes(&f.display().to_string(), &bytes);
        out.extend(
            loaded
                .resources
                .into_iter()
                .filter(|r| r.group.ends_with(".istio.io")),
        );
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

fn accepted_by_meshctl(r: &Resource) -> bool {
    validate(r).iter().all(|f| f.severity != Severity::Error)
}

#[test]
fn the_api_server_would_admit_every_object_meshctl_accepts_and_prune_nothing() {
    let schemas = shipped_schemas();
    let mut admitted = 0;
    let mut modelled = 0;
    let mut failures = Vec::new();
    let mut unmodelled = Vec::new();
    let mut added_to_refused = Vec::new();
    for r in samples() {
        let Some(schema) = schemas
            .get(&(r.group.clone(), r.kind.clone()))
            .and_then(|vs| vs.get(&r.version))
        else {
            continue;
        };
        let origin = format!("{} {} ({})", r.kind, r.name, r.origin);
        let (_, pruned, errs) = openapi::admit(schema, &r.json, &pattern_matches);
        if accepted_by_meshctl(&r) {
            admitted += 1;
            if mesh_core::schema::spec_schema(&r.group, &r.kind).is_some() {
                modelled += 1;
            }
            if !errs.is_empty() || !pruned.is_empty() {
                failures.push(format!("{origin}: errors {errs:?}, pruned {pruned:?}"));
            }
            // So `meshctl validate` says nothing more about it.
            let found = validate(&r);
            if validate_for_cluster(&r) != found {
                failures.push(format!("{origin}: validate_for_cluster adds findings"));
            }
        } else {
            let said = validate(&r).len();
            added_to_refused.extend(
                validate_for_cluster(&r)
                    .into_iter()
                    .skip(said)
                    .map(|f| format!("{} {} {}", r.kind, f.severity, f.path)),
            );
            unmodelled.extend(pruned.into_iter().map(|p| format!("{} {p}", r.kind)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        added_to_refused, ADDED_TO_REFUSED,
        "what meshctl validate adds to the objects it refuses"
    );
    unmodelled.sort();
    unmodelled.dedup();
    assert_eq!(
        unmodelled, UNMODELLED,
        "Istio fields meshctl does not model"
    );
    println!("{admitted} objects admitted ({modelled} of modelled kinds)");
    assert!(modelled > 200, "only {modelled} objects of modelled kinds");
}

/// Objects meshctl refuses for a wrong type or value; the API server refuses them too.
#[test]
fn wrong_typed_objects_are_refused_by_both() {
    let schemas = shipped_schemas();
    let cases = [
        (
            "a string where a number is",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n    mirrorPercentage: {value: half}\n",
            "spec.http[0].mirrorPercentage.value: must be of type number",
        ),
        (
            "a word where an integer is",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n      weight: heavy\n",
            "spec.http[0].route[0].weight: \"heavy\" does not match",
        ),
        (
            "an integer out of range",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a, port: {number: 4294967296}}\n",
            "spec.http[0].route[0].destination.port.number: 4294967296 is above",
        ),
        (
            "an unknown enum value",
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec:\n  host: a\n  trafficPolicy:\n    tls: {mode: MUTAL}\n",
            "spec.trafficPolicy.tls.mode: \"MUTAL\" is not one of",
        ),
        (
            "a bad duration",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n    timeout: 5 seconds\n",
            "spec.http[0].timeout: \"5 seconds\" does not match",
        ),
        (
            "a string where an object is",
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspec:\n  mtls: STRICT\n",
            "spec.mtls: must be of type object",
        ),
        (
            "a string where a boolean is",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a]\n  http:\n  - match:\n    - ignoreUriCase: \"yes\"\n    route:\n    - destination: {host: a}\n",
            "spec.http[0].match[0].ignoreUriCase: must be of type boolean",
        ),
        (
            "a map of numbers holding a word",
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a}\nspec:\n  address: 1.2.3.4\n  ports: {http: eighty}\n",
            "spec.ports.http: \"eighty\" does not match",
        ),
    ];
    for (what, yaml, needle) in cases {
        let loaded = mesh_core::source::load_bytes("wrong.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{what}: {:?}", loaded.errors);
        let r = &loaded.resources[0];
        assert!(!accepted_by_meshctl(r), "{what}: meshctl accepts it");
        let schema = &schemas[&(r.group.clone(), r.kind.clone())][&r.version];
        let (_, pruned, errs) = openapi::admit(schema, &r.json, &pattern_matches);
        assert!(pruned.is_empty(), "{what}: {pruned:?}");
        assert!(
            errs.iter().any(|e| e.starts_with(needle)),
            "{what}: {errs:?}"
        );
    }
}

/// The schema lists exactly what the model parses: a field the model lacks is pruned by the
/// API server (and refused by meshctl), a snake_case alias meshctl reads is pruned too (as
/// Istio's CRDs, which list the camelCase names only, prune it), and raw Envoy
/// configuration and unmodelled kinds are kept whole.
#[test]
fn fields_outside_the_model_are_pruned() {
    let schemas = shipped_schemas();
    let admit = |yaml: &str| {
        let loaded = mesh_core::source::load_bytes("x.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let r = loaded.resources.into_iter().next().unwrap();
        let schema = &schemas[&(r.group.clone(), r.kind.clone())][&r.version];
        let (kept, pruned, errs) = openapi::admit(schema, &r.json, &pattern_matches);
        assert!(errs.is_empty(), "{errs:?}");
        (accepted_by_meshctl(&r), kept, pruned)
    };

    let (ok, kept, pruned) = admit(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec:\n  host: a\n  trafficPolicy:\n    loadBalancer:\n      simple: ROUND_ROBIN\n      futureKnob: 3\n",
    );
    assert!(!ok, "meshctl refuses the unknown field");
    assert_eq!(pruned, ["spec.trafficPolicy.loadBalancer.futureKnob"]);
    assert_eq!(
        kept["spec"]["trafficPolicy"]["loadBalancer"],
        json!({"simple": "ROUND_ROBIN"})
    );

    let (ok, _, pruned) = admit(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec:\n  host: a\n  traffic_policy:\n    tls: {mode: ISTIO_MUTUAL}\n",
    );
    assert!(ok, "meshctl reads the proto's snake_case names");
    assert_eq!(pruned, ["spec.traffic_policy"]);

    let (ok, kept, pruned) = admit(
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: a}\nspec:\n  configPatches:\n  - applyTo: CLUSTER\n    patch:\n      operation: ADD\n      value:\n        name: x\n        connect_timeout: 1s\n        load_assignment: {cluster_name: x}\n",
    );
    assert!(ok);
    assert!(pruned.is_empty(), "{pruned:?}");
    assert_eq!(
        kept["spec"]["configPatches"][0]["patch"]["value"]["load_assignment"]["cluster_name"],
        "x"
    );

    let (_, kept, pruned) = admit(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: a}\nspec:\n  tracing:\n  - randomSamplingPercentage: 10\n",
    );
    assert!(pruned.is_empty(), "{pruned:?}");
    assert_eq!(kept["spec"]["tracing"][0]["randomSamplingPercentage"], 10);
}

/// Where meshctl's parser is more lenient than the schema (and than Istio's own CRDs, which
/// type these fields the same way): the API server refuses or drops what meshctl's typed
/// validation reads. `validate_for_cluster` (what `meshctl validate` runs) reports each at
/// its field and line: a refused value as an error, a dropped field as a warning naming the
/// CRD's camelCase field. This test pins both sides so a change on either shows up.
#[test]
fn where_the_parser_is_more_lenient_than_the_api_server() {
    let schemas = shipped_schemas();
    let cases = [
        (
            "an enum by number",
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec:\n  host: a\n  trafficPolicy:\n    loadBalancer:\n      simple: 2\n",
            "spec.trafficPolicy.loadBalancer.simple: must be of type string",
            8,
        ),
        (
            "a float as a numeric string (OpenAPI has no number-or-string)",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n    mirrorPercentage:\n      value: \"50\"\n",
            "spec.http[0].mirrorPercentage.value: must be of type number",
            10,
        ),
        (
            "a message as a list of its fields in order (serde's sequence form of a struct)",
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspec:\n  selector:\n    matchLabels: {app: a}\n  mtls: [STRICT]\n",
            "spec.mtls: must be of type object",
            7,
        ),
    ];
    for (what, yaml, needle, line) in cases {
        let loaded = mesh_core::source::load_bytes("lenient.yaml", yaml.as_bytes());
        let r = &loaded.resources[0];
        assert!(accepted_by_meshctl(r), "{what}: meshctl now refuses it");
        let schema = &schemas[&(r.group.clone(), r.kind.clone())][&r.version];
        let (_, _, errs) = openapi::admit(schema, &r.json, &pattern_matches);
        assert!(
            errs.iter().any(|e| e.starts_with(needle)),
            "{what}: {errs:?}"
        );
        let (path, problem) = needle.split_once(": ").unwrap();
        let found = validate_for_cluster(r);
        assert_eq!(found.len(), 1, "{what}: {found:?}");
        let f = &found[0];
        assert_eq!(f.severity, Severity::Error, "{what}: {f:?}");
        assert_eq!((f.path.as_str(), f.line), (path, line), "{what}: {f:?}");
        assert!(
            f.message.starts_with("the API server refuses the object: ")
                && f.message.contains(problem),
            "{what}: {f:?}"
        );
    }

    let loaded = mesh_core::source::load_bytes(
        "snake.yaml",
        b"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec:\n  host: a\n  traffic_policy:\n    tls: {mode: ISTIO_MUTUAL}\n  subsets:\n  - name: v1\n    labels: {version: v1}\n    traffic_policy:\n      connection_pool:\n        tcp: {max_connections: 5}\n",
    );
    let r = &loaded.resources[0];
    assert!(
        accepted_by_meshctl(r),
        "meshctl reads the proto's snake_case names"
    );
    let found: Vec<_> = validate_for_cluster(r)
        .into_iter()
        .map(|f| (f.severity, f.path, f.line, f.message))
        .collect();
    let dropped = |name: &str| {
        format!(
            "the API server drops this field (Istio's CRD names it {name}); the setting is lost in a cluster"
        )
    };
    // Inside a dropped field nothing more is said: the whole field is gone.
    assert_eq!(
        found,
        [
            (
                Severity::Warning,
                "spec.traffic_policy".to_owned(),
                6,
                dropped("trafficPolicy")
            ),
            (
                Severity::Warning,
                "spec.subsets[0].traffic_policy".to_owned(),
                11,
                dropped("trafficPolicy")
            ),
        ]
    );
}

/// A top-level key outside the API (a typo of `spec`) is dropped too: the object is stored
/// without its configuration. What the typed validation already reports is not repeated.
#[test]
fn validate_for_cluster_adds_only_what_the_typed_validation_does_not_say() {
    let load = |yaml: &str| {
        let loaded = mesh_core::source::load_bytes("x.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        loaded.resources.into_iter().next().unwrap()
    };
    let r = load(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspecs:\n  mtls: {mode: STRICT}\n",
    );
    let found = validate_for_cluster(&r);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].path.as_str(), found[0].line), ("specs", 4));
    assert!(
        found[0].message.contains("Istio's CRD has no such field"),
        "{found:?}"
    );

    // A rule's error about the whole spec does not hide a field inside it that is dropped.
    let r = load(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\nspec:\n  workload_selector:\n    labels: {app: a}\n",
    );
    let found = validate_for_cluster(&r);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        (found[0].severity, found[0].path.as_str()),
        (Severity::Error, "spec")
    );
    assert_eq!(
        (found[1].severity, found[1].path.as_str(), found[1].line),
        (Severity::Warning, "spec.workload_selector", 5)
    );
    assert!(
        found[1]
            .message
            .contains("Istio's CRD names it workloadSelector"),
        "{found:?}"
    );

    // An unknown field and a misspelt enum: meshctl's own errors, once each.
    for yaml in [
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec:\n  host: a\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN, futureKnob: 3}\n",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec:\n  host: a\n  trafficPolicy:\n    tls: {mode: MUTAL}\n",
    ] {
        let r = load(yaml);
        assert_eq!(validate_for_cluster(&r), validate(&r), "{yaml}");
    }
}
