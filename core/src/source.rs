//! Reading objects from files, directories and stdin.
//!
//! This module owns turning bytes into [`Resource`]s: multi-document streams, `List` kinds,
//! recursive directories, and every way input can be bad (unreadable, binary, malformed,
//! missing identity). A bad document becomes a [`LoadError`] with `file:line`; it never stops
//! the rest of the input from loading.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::kinds;
use crate::resource::{Origin, Resource, is_cluster_scoped, split_api_version};
use crate::yaml::{self, Node, Value};

/// Files larger than this are refused rather than read into memory.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A problem with the input itself (as opposed to a finding about valid config).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LoadError {
    pub file: Arc<str>,
    pub line: u32,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// Everything read from a set of inputs.
#[derive(Debug, Default)]
pub struct Loaded {
    pub resources: Vec<Resource>,
    pub errors: Vec<LoadError>,
    /// Objects read but of kinds meshctl does not model (kept for analyzers, noted for users).
    pub files_read: usize,
}

impl Loaded {
    pub fn extend(&mut self, other: Loaded) {
        self.resources.extend(other.resources);
        self.errors.extend(other.errors);
        self.files_read += other.files_read;
    }
}

/// Reads every path: `-` is stdin, a directory is walked (recursively when asked) for
/// `.yaml`, `.yml` and `.json` files in name order, anything else is read as a file.
/// Files are parsed on all cores; the result keeps the order of the inputs.
pub fn load_paths(paths: &[PathBuf], recursive: bool) -> Loaded {
    enum Input {
        Stdin,
        File(PathBuf),
        Failed(LoadError),
    }
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                let mut files = Vec::new();
                if let Err(e) = walk(path, recursive, &mut files) {
                    inputs.push(Input::Failed(LoadError {
                        file: Arc::from(path.display().to_string()),
                        line: 0,
                        message: format!("cannot read directory: {e}"),
                    }));
                }
                files.sort();
                inputs.extend(files.into_iter().map(Input::File));
            }
            Ok(_) => inputs.push(Input::File(path.clone())),
            Err(e) => inputs.push(Input::Failed(LoadError {
                file: Arc::from(path.display().to_string()),
                line: 0,
                message: format!("cannot read: {e}"),
            })),
        }
    }
    let read_one = |input: &Input| -> Loaded {
        match input {
            Input::Stdin => {
                let mut buf = Vec::new();
                match std::io::stdin().lock().read_to_end(&mut buf) {
                    Ok(_) => load_bytes("-", &buf),
                    Err(e) => Loaded {
                        errors: vec![LoadError {
                            file: Arc::from("-"),
                            line: 0,
                            message: format!("cannot read stdin: {e}"),
                        }],
                        ..Loaded::default()
                    },
                }
            }
            Input::File(p) => load_file(p),
            Input::Failed(e) => Loaded {
                errors: vec![e.clone()],
                ..Loaded::default()
            },
        }
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(inputs.len().max(1));
    let mut results: Vec<Option<Loaded>> = (0..inputs.len()).map(|_| None).collect();
    if workers <= 1 {
        for (slot, input) in results.iter_mut().zip(&inputs) {
            *slot = Some(read_one(input));
        }
    } else {
        // Worker w takes inputs w, w + workers, ...: cheap balancing for similar-sized files.
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let inputs = &inputs;
                    let read_one = &read_one;
                    scope.spawn(move || {
                        inputs
                            .iter()
                            .enumerate()
                            .skip(w)
                            .step_by(workers)
                            .map(|(i, input)| (i, read_one(input)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                // A worker cannot panic short of a bug; its inputs are then read here instead.
                if let Ok(done) = h.join() {
                    for (i, l) in done {
                        results[i] = Some(l);
                    }
                }
            }
        });
    }
    let mut out = Loaded::default();
    for (slot, input) in results.into_iter().zip(&inputs) {
        out.extend(slot.unwrap_or_else(|| read_one(input)));
    }
    out
}

fn walk(dir: &Path, recursive: bool, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            if recursive {
                walk(&path, recursive, files)?;
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

/// Reads one file.
pub fn load_file(path: &Path) -> Loaded {
    let name = path.display().to_string();
    let fail = |message: String| Loaded {
        errors: vec![LoadError {
            file: Arc::from(name.as_str()),
            line: 0,
            message,
        }],
        ..Loaded::default()
    };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            return fail(format!(
                "file is {} bytes, larger than the {} byte limit",
                m.len(),
                MAX_FILE_BYTES
            ));
        }
        Err(e) => return fail(format!("cannot read: {e}")),
        _ => {}
    }
    match std::fs::read(path) {
        Ok(bytes) => load_bytes(&name, &bytes),
        Err(e) => fail(format!("cannot read: {e}")),
    }
}

/// Parses bytes read from `file`.
pub fn load_bytes(file: &str, bytes: &[u8]) -> Loaded {
    let file: Arc<str> = Arc::from(file);
    let mut out = Loaded {
        files_read: 1,
        ..Loaded::default()
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // Binary data: a NUL byte, or control characters YAML forbids (anything below 0x20
    // other than tab, newline and carriage return).
    if let Some(pos) = bytes
        .iter()
        .position(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
    {
        let line = 1 + bytes[..pos].iter().filter(|&&b| b == b'\n').count() as u32;
        out.errors.push(LoadError {
            file,
            line,
            message: "not a text file (contains binary control characters); expected YAML or JSON"
                .into(),
        });
        return out;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = 1 + valid.iter().filter(|&&b| b == b'\n').count() as u32;
            out.errors.push(LoadError {
                file,
                line,
                message: "not valid UTF-8 text; expected YAML or JSON".into(),
            });
            return out;
        }
    };
    // YAML treats CR, LF and CRLF alike as line breaks; so does every line number we print.
    if text.contains('\r') {
        let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
        load_text(file, &normalized, &mut out);
    } else {
        load_text(file, text, &mut out);
    }
    out
}

fn load_text(file: Arc<str>, text: &str, out: &mut Loaded) {
    for doc in yaml::parse_documents(text) {
        match doc.result {
            Ok(node) => {
                let node = Arc::new(node);
                objects_from(&file, &node, out);
            }
            Err(e) => out.errors.push(LoadError {
                file: file.clone(),
                line: e.line,
                message: format!("invalid YAML: {}", e.message),
            }),
        }
    }
}

/// Turns one document into resources (several for a `List`).
fn objects_from(file: &Arc<str>, node: &Arc<Node>, out: &mut Loaded) {
    let err = |line: u32, message: String| LoadError {
        file: file.clone(),
        line,
        message,
    };
    let Value::Map(_) = &node.value else {
        out.errors.push(err(
            node.line,
            "document is not an object (expected a mapping with apiVersion, kind and metadata)"
                .into(),
        ));
        return;
    };
    let kind = node.get("kind").and_then(Node::as_str);
    let api_version = node.get("apiVersion").and_then(Node::as_str);
    let (Some(kind), Some(api_version)) = (kind, api_version) else {
        let missing = match (kind, api_version) {
            (None, None) => "apiVersion and kind",
            (None, _) => "kind",
            _ => "apiVersion",
        };
        out.errors.push(err(
            node.line,
            format!("object has no {missing} (every object needs apiVersion and kind)"),
        ));
        return;
    };
    if kind == "List" || (kind.ends_with("List") && node.get("items").is_some()) {
        match node.get("items").map(|n| &n.value) {
            Some(Value::Seq(items)) => {
                for item in items {
                    objects_from(file, &Arc::new(item.clone()), out);
                }
            }
            Some(Value::Null) | None => {}
            Some(_) => out.errors.push(err(
                node.line_of("items"),
                format!("{kind}: items must be a list"),
            )),
        }
        return;
    }
    let (group, version) = split_api_version(api_version);
    if let Err(why) = kinds::check_known(group, version, kind) {
        out.errors.push(err(node.line_of("kind"), why));
        return;
    }
    let meta = node.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Node::as_str);
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        out.errors.push(err(
            node.line_of("metadata"),
            format!("{kind} has no metadata.name"),
        ));
        return;
    };
    let given_ns = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Node::as_str)
        .filter(|n| !n.is_empty());
    let namespace = if is_cluster_scoped(group, kind) {
        None
    } else {
        Some(given_ns.unwrap_or("default").to_owned())
    };
    let mut errors = Vec::new();
    let labels = string_map(meta, "labels", &mut errors);
    let annotations = string_map(meta, "annotations", &mut errors);
    for (line, message) in errors {
        out.errors
            .push(err(line, format!("{kind} {name}: {message}")));
    }
    let mut json = node.to_json();
    kinds::apply_defaults(group, kind, &mut json);
    out.resources.push(Resource {
        api_version: api_version.to_owned(),
        group: group.to_owned(),
        version: version.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        namespace,
        namespace_given: given_ns.is_some(),
        labels,
        annotations,
        origin: Origin {
            file: file.clone(),
            line: node.line,
        },
        node: node.clone(),
        json: Arc::new(json),
    });
}

/// Reads `metadata.labels` or `metadata.annotations`; values must be strings (as the API
/// server insists), but numbers and booleans are kept as their text with an error noted.
fn string_map(
    meta: Option<&Node>,
    field: &str,
    errors: &mut Vec<(u32, String)>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(node) = meta.and_then(|m| m.get(field)) else {
        return out;
    };
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let text = match &v.value {
                    Value::Str(s) => s.clone(),
                    Value::Null => String::new(),
                    Value::Bool(b) => {
                        errors.push((k.line, format!("metadata.{field}.{}: value must be a string, got boolean (quote it)", k.name)));
                        b.to_string()
                    }
                    Value::Int(i) => {
                        errors.push((k.line, format!("metadata.{field}.{}: value must be a string, got number (quote it)", k.name)));
                        i.to_string()
                    }
                    Value::Float(f) => {
                        errors.push((k.line, format!("metadata.{field}.{}: value must be a string, got number (quote it)", k.name)));
                        f.to_string()
                    }
                    _ => {
                        errors.push((
                            k.line,
                            format!("metadata.{field}.{}: value must be a string", k.name),
                        ));
                        continue;
                    }
                };
                out.insert(k.name.clone(), text);
            }
        }
        Value::Null => {}
        _ => errors.push((
            node.line,
            format!("metadata.{field} must be a map of strings"),
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_defaults() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: a\n  spec:\n    ports:\n    - port: 80\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: shop\n";
        let l = load_bytes("x.yaml", text.as_bytes());
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(l.resources.len(), 2);
        let svc = &l.resources[0];
        assert_eq!(svc.display_name(), "Service default/a");
        assert_eq!(svc.origin.line, 4);
        assert_eq!(svc.json["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(svc.json["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(l.resources[1].display_name(), "Namespace shop");
    }

    #[test]
    fn bad_input_is_reported_with_lines_and_neighbours_survive() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: ok\n---\n- just\n- a list\n---\nkind: Service\nmetadata: {name: x}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualSrvice\nmetadata: {name: y}\n";
        let l = load_bytes("f.yaml", text.as_bytes());
        assert_eq!(l.resources.len(), 1);
        let errs: Vec<String> = l.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            errs[0].starts_with("f.yaml:6: document is not an object"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("f.yaml:9: object has no apiVersion"),
            "{errs:?}"
        );
        assert!(errs[2].starts_with("f.yaml:13: unknown kind"), "{errs:?}");
    }

    #[test]
    fn cr_and_crlf_line_breaks_count_like_lf() {
        let lf = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n  labels: [\n";
        for text in [
            lf.to_owned(),
            lf.replace('\n', "\r\n"),
            lf.replace('\n', "\r"),
        ] {
            let l = load_bytes("x.yaml", text.as_bytes());
            assert_eq!(l.resources.len(), 1, "{text:?}");
            assert_eq!(l.resources[0].line_of("metadata.name"), 4);
            assert_eq!(l.errors.len(), 1);
            assert!((9..=11).contains(&l.errors[0].line), "{:?}", l.errors);
        }
    }

    #[test]
    fn binary_and_invalid_utf8() {
        let l = load_bytes("b.bin", b"abc\n\x00\x01");
        assert_eq!(l.errors[0].line, 2);
        let l = load_bytes("c.yaml", b"a: \xff\xfe");
        assert!(l.errors[0].message.contains("UTF-8"));
    }
}
