//! Positioned YAML: a small document tree where every node knows its line and column.
//!
//! Parsing is serde-saphyr's (with its budgets against alias bombs and deep nesting);
//! this module only asks it for a `Spanned` value at every node, so that validation
//! and analysis can point at `file:line` for any field path, not just the object.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One YAML node with its position (1-based line and column; 0 when unknown).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub line: u32,
    pub col: u32,
    pub value: Value,
}

/// The value of a node. Mapping keys keep their own line.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key: always text (YAML keys that are numbers or booleans are spelled out).
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: u32,
}

/// A YAML syntax or budget problem, with the position the parser reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// One document of a multi-document stream: its first line and its tree, or why it failed.
#[derive(Debug)]
pub struct Document {
    pub start_line: u32,
    pub result: Result<Node, SyntaxError>,
}

impl Node {
    /// Looks up a child of a mapping by key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a scalar string node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The line of the field at `path` (`spec.http[0].route[1].weight`), falling back to the
    /// nearest ancestor that exists. For a mapping entry the key's line is used, which is where
    /// a person looks for the field.
    pub fn line_of(&self, path: &str) -> u32 {
        let mut node = self;
        let mut line = self.line;
        for seg in path_segments(path) {
            let next = match (&node.value, seg) {
                (Value::Map(entries), Segment::Key(k)) => entries
                    .iter()
                    .find(|(key, _)| key.name == k)
                    .map(|(key, v)| (key.line, v)),
                (Value::Seq(items), Segment::Index(i)) => items.get(i).map(|v| (v.line, v)),
                _ => None,
            };
            match next {
                Some((l, n)) => {
                    // Lines are 0 in trees that came from no file: keep the ancestor's.
                    if l > 0 {
                        line = l;
                    }
                    node = n;
                }
                None => break,
            }
        }
        line
    }

    /// Converts to JSON, the form typed models deserialize from. Non-finite floats become
    /// null (JSON cannot carry them, and no mesh field takes them).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `a.b[2].c` into segments. Keys containing dots can be written `a["x.y"]`.
fn path_segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix("[\"") {
            let end = r.find("\"]").unwrap_or(r.len());
            out.push(Segment::Key(&r[..end]));
            rest = r.get(end + 2..).unwrap_or("");
            continue;
        }
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            if let Ok(i) = r[..end].parse() {
                out.push(Segment::Index(i));
            }
            rest = r.get(end + 1..).unwrap_or("");
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        out.push(Segment::Key(&rest[..end]));
        rest = &rest[end..];
    }
    out
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            line: to_u32(s.referenced.line()),
            col: to_u32(s.referenced.column()),
            value: s.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(Key, Node)> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Node>()?;
            let name = key.value.0;
            // Later duplicates win, as Kubernetes' YAML decoder lets them.
            if let Some(existing) = entries.iter_mut().find(|(k, _)| k.name == name) {
                existing.1 = value;
                continue;
            }
            entries.push((
                Key {
                    name,
                    line: to_u32(key.referenced.line()),
                },
                value,
            ));
        }
        Ok(Value::Map(entries))
    }
}

/// A key spelled as text, whatever scalar type YAML gave it.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<KeyText, E> {
                Ok(KeyText(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
            fn visit_none<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<KeyText, A::Error> {
                Err(de::Error::custom("a sequence cannot be a mapping key here"))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<KeyText, A::Error> {
                Err(de::Error::custom("a mapping cannot be a mapping key here"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Limits that keep hostile input (alias bombs, huge or deeply nested documents) cheap.
fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_aliases = 1_000;
    budget.max_anchors = 10_000;
    budget.max_recorded_anchor_events = 100_000;
    budget.max_events = 2_000_000;
    budget.max_depth = 256;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // YAML 1.2 booleans only: `y`, `on` and `no` stay text (a label value `on` is a string).
    options.strict_booleans = true;
    options
}

/// Splits a stream into documents at `---` lines (column 0) and parses each one on its own,
/// so that a broken document does not hide its neighbours. Empty documents are dropped.
pub fn parse_documents(text: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut start = 0usize; // byte offset of the current chunk
    let mut start_line = 1u32;
    let mut offset = 0usize;
    for (line_no, line) in (1u32..).zip(text.split_inclusive('\n')) {
        let trimmed = line.trim_end_matches(['\n', '\r']);
        let is_marker = trimmed == "---"
            || trimmed.starts_with("--- ")
            || trimmed.starts_with("---\t")
            || trimmed == "...";
        if is_marker {
            push_chunk(&mut docs, &text[start..offset], start_line);
            // Content after `--- ` on the same line belongs to the next document.
            let after = trimmed.get(3..).unwrap_or("").trim_start();
            if trimmed.starts_with("---") && !after.is_empty() && !after.starts_with('#') {
                start = offset + line.len() - line.trim_start_matches("---").len();
                start_line = line_no;
            } else {
                start = offset + line.len();
                start_line = line_no + 1;
            }
        }
        offset += line.len();
    }
    push_chunk(&mut docs, &text[start..], start_line);
    docs
}

fn push_chunk(docs: &mut Vec<Document>, chunk: &str, start_line: u32) {
    if chunk
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.starts_with('%'))
    {
        return;
    }
    let shift = start_line.saturating_sub(1);
    let result = match serde_saphyr::from_str_with_options::<Option<Node>>(chunk, options()) {
        Ok(Some(mut node)) => {
            shift_lines(&mut node, shift);
            Ok(node)
        }
        Ok(None) => return,
        Err(e) => {
            let (line, col) = e
                .location()
                .map(|l| (to_u32(l.line()), to_u32(l.column())))
                .unwrap_or((0, 0));
            Err(SyntaxError {
                line: if line == 0 { start_line } else { line + shift },
                col,
                message: first_line(&e.without_snippet().to_string()),
            })
        }
    };
    docs.push(Document { start_line, result });
}

/// The first line of the parser's message, without its own `at line L, column C` (which
/// counts from the start of the document, not the file; callers print the file's line).
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    let line = match line.find(" at line ") {
        Some(i) if line[i..].contains(", column ") => line[..i].trim_end(),
        _ => line,
    };
    match line.strip_prefix("budget breached: ") {
        Some(what) => format!(
            "document exceeds the parser's safety limits (an alias bomb or an oversized document?): {what}"
        ),
        None => line.to_owned(),
    }
}

fn shift_lines(node: &mut Node, shift: u32) {
    if shift == 0 {
        return;
    }
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if n.line > 0 {
            n.line += shift;
        }
        match &mut n.value {
            Value::Seq(items) => stack.extend(items.iter_mut()),
            Value::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    if k.line > 0 {
                        k.line += shift;
                    }
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut docs = parse_documents(text);
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.remove(0).result.unwrap()
    }

    #[test]
    fn keeps_lines_of_keys_and_items() {
        let n = one(
            "kind: VirtualService\nspec:\n  hosts:\n  - a\n  - b\n  http:\n  - route:\n    - destination:\n        host: x\n",
        );
        assert_eq!(n.line_of("kind"), 1);
        assert_eq!(n.line_of("spec.hosts"), 3);
        assert_eq!(n.line_of("spec.hosts[1]"), 5);
        assert_eq!(n.line_of("spec.http[0].route[0].destination.host"), 9);
        // Missing fields fall back to the nearest ancestor.
        assert_eq!(n.line_of("spec.http[0].timeout"), 7);
    }

    #[test]
    fn documents_keep_absolute_lines_and_errors_do_not_hide_neighbours() {
        let text = "a: 1\n---\nb: [unclosed\n---\n# just a comment\n---\nc:\n  d: 2\n";
        let docs = parse_documents(text);
        assert_eq!(docs.len(), 3);
        assert!(docs[0].result.is_ok());
        let err = docs[1].result.as_ref().unwrap_err();
        assert!(err.line >= 3, "{err:?}");
        let c = docs[2].result.as_ref().unwrap();
        assert_eq!(c.line_of("c.d"), 8);
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='k' {
            text.push_str(&format!(
                "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = c;
        }
        let docs = parse_documents(&text);
        assert!(docs[0].result.is_err());
    }

    #[test]
    fn json_conversion_and_scalar_keys() {
        let n = one("1: true\nx: 1.5\ny: null\nz: \"s\"\n");
        assert_eq!(
            n.to_json(),
            serde_json::json!({"1": true, "x": 1.5, "y": null, "z": "s"})
        );
    }

    #[test]
    fn inline_document_after_marker() {
        let docs = parse_documents("--- {a: 1}\n--- {b: 2}\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].start_line, 2);
        assert_eq!(docs[1].result.as_ref().unwrap().line, 2);
    }
}
