//! Analysis: cross-resource checks that find config which is valid on its own but wrong
//! in context, reported with Istio's message codes.
//!
//! This module owns the message model ([`Message`], [`MessageType`], [`Level`]), the
//! analyzer registry, the [`Context`] analyzers read from and report into, and the policy
//! applied to their output (suppression, collapsing identical messages, thresholds).

pub mod analyzers;
pub mod catalog;
pub mod common;
pub mod json;
pub mod mesh;
pub mod store;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::resource::Resource;
pub use mesh::MeshConfig;
pub use store::Store;

/// Severity of a message, ordered from least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "Info",
            Level::Warning => "Warning",
            Level::Error => "Error",
        })
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Level::Info),
            "warning" | "warn" => Ok(Level::Warning),
            "error" => Ok(Level::Error),
            _ => Err(format!("unknown level {s:?} (use Info, Warning or Error)")),
        }
    }
}

/// One kind of message: Istio's code, name, level and Go-style template.
#[derive(Debug, PartialEq, Eq)]
pub struct MessageType {
    pub code: &'static str,
    pub name: &'static str,
    pub level: Level,
    pub template: &'static str,
    pub description: &'static str,
}

impl MessageType {
    /// Istio's documentation page for this message.
    pub fn documentation_url(&self) -> String {
        format!(
            "https://istio.io/latest/docs/reference/config/analysis/{}/",
            self.code.to_ascii_lowercase()
        )
    }

    pub fn by_code(code: &str) -> Option<&'static MessageType> {
        catalog::ALL.iter().copied().find(|m| m.code == code)
    }
}

/// The resource a message is about, and where it is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageOrigin {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub file: String,
    pub line: u32,
}

impl MessageOrigin {
    /// `Kind ns/name`, or `Kind name` for cluster-scoped objects.
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    /// `file:line`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub kind: &'static MessageType,
    pub text: String,
    pub origin: Option<MessageOrigin>,
    /// The analyzer that produced it.
    pub analyzer: &'static str,
}

impl Message {
    pub fn level(&self) -> Level {
        self.kind.level
    }
    pub fn code(&self) -> &'static str {
        self.kind.code
    }

    /// Istio's one-line form:
    /// `Error [IST0101] (VirtualService shop/pricing x.yaml:7) Referenced host not found: "p"`.
    pub fn to_log_line(&self) -> String {
        match &self.origin {
            Some(o) if o.line > 0 => format!(
                "{} [{}] ({} {}) {}",
                self.kind.level,
                self.kind.code,
                o.display_name(),
                o.reference(),
                self.text
            ),
            Some(o) => format!(
                "{} [{}] ({}) {}",
                self.kind.level,
                self.kind.code,
                o.display_name(),
                self.text
            ),
            None => format!("{} [{}] {}", self.kind.level, self.kind.code, self.text),
        }
    }
}

/// Renders a Go-style template (`%s`, `%q`, `%v`, `%d`, `%t`, `%%`) with display arguments.
pub fn render_template(template: &str, args: &[&dyn fmt::Display]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut args = args.iter();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => match args.next() {
                Some(a) => out.push_str(&go_quote(&a.to_string())),
                None => out.push_str("%!q(MISSING)"),
            },
            Some(verb) => match args.next() {
                Some(a) => out.push_str(&a.to_string()),
                None => {
                    out.push_str("%!");
                    out.push(verb);
                    out.push_str("(MISSING)");
                }
            },
            None => out.push('%'),
        }
    }
    out
}

fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// One analyzer: Istio's name for it, what it checks, the messages it may emit, and the check.
pub struct AnalyzerDef {
    pub name: &'static str,
    pub description: &'static str,
    pub messages: &'static [&'static MessageType],
    pub run: fn(&mut Context<'_>),
}

/// What an analyzer sees and reports into.
pub struct Context<'a> {
    pub store: &'a Store,
    pub mesh: &'a MeshConfig,
    analyzer: &'static str,
    out: Vec<Message>,
}

impl<'a> Context<'a> {
    pub fn new(store: &'a Store, mesh: &'a MeshConfig, analyzer: &'static str) -> Self {
        Context {
            store,
            mesh,
            analyzer,
            out: Vec::new(),
        }
    }

    /// Reports a message about `res`, pointing at the field `path` (`""` for the object).
    pub fn report(
        &mut self,
        kind: &'static MessageType,
        res: &Resource,
        path: &str,
        args: &[&dyn fmt::Display],
    ) {
        let origin = MessageOrigin {
            kind: res.kind.clone(),
            namespace: res.namespace.clone(),
            name: res.name.clone(),
            file: res.origin.file.to_string(),
            line: res.line_of(path),
        };
        self.out.push(Message {
            kind,
            text: render_template(kind.template, args),
            origin: Some(origin),
            analyzer: self.analyzer,
        });
    }

    /// Reports a message that is about no single resource.
    pub fn report_global(&mut self, kind: &'static MessageType, args: &[&dyn fmt::Display]) {
        self.out.push(Message {
            kind,
            text: render_template(kind.template, args),
            origin: None,
            analyzer: self.analyzer,
        });
    }

    pub fn into_messages(self) -> Vec<Message> {
        self.out
    }
}

/// Every analyzer meshctl has, in a stable order.
pub fn all_analyzers() -> Vec<&'static AnalyzerDef> {
    let mut all: Vec<&'static AnalyzerDef> = analyzers::ALL
        .iter()
        .flat_map(|group| group.iter())
        .collect();
    all.sort_by_key(|a| a.name);
    all
}

/// Looks an analyzer up by its Istio name (exact, or case-insensitively).
pub fn find_analyzer(name: &str) -> Option<&'static AnalyzerDef> {
    let all = all_analyzers();
    all.iter()
        .find(|a| a.name == name)
        .or_else(|| all.iter().find(|a| a.name.eq_ignore_ascii_case(name)))
        .copied()
}

/// Runs the given analyzers and returns their messages, identical ones collapsed, sorted by
/// file, line, code. Analyzers run one after another (they are cheap; the store is shared).
pub fn run(store: &Store, mesh: &MeshConfig, analyzers: &[&'static AnalyzerDef]) -> Vec<Message> {
    let mut all = Vec::new();
    for a in analyzers {
        let mut ctx = Context::new(store, mesh, a.name);
        (a.run)(&mut ctx);
        all.extend(ctx.into_messages());
    }
    collapse(all)
}

/// The store files-only analysis works on: every object read, the Pods that workload
/// controllers' templates describe (see [`Store::add_template_pods`]), and the default
/// ingress gateway unless the mesh config turns the ingress controller off.
pub fn files_store(resources: Vec<Resource>, mesh: &MeshConfig) -> Store {
    let mut store = Store::new(resources);
    store.add_template_pods();
    if !mesh.ingress_controller_off() {
        store.add_default_ingress_gateway();
    }
    store
}

/// Drops messages that say the same thing about the same resource at the same place.
pub fn collapse(mut messages: Vec<Message>) -> Vec<Message> {
    let mut seen = BTreeSet::new();
    messages.retain(|m| {
        seen.insert((
            m.kind.code,
            m.origin.as_ref().map(|o| (o.display_name(), o.reference())),
            m.text.clone(),
        ))
    });
    messages.sort_by(|a, b| {
        let ka = a.origin.as_ref().map(|o| (&o.file, o.line));
        let kb = b.origin.as_ref().map(|o| (&o.file, o.line));
        ka.cmp(&kb).then(a.kind.code.cmp(b.kind.code))
    });
    messages
}

/// A `--suppress 'CODE=Kind ns/name'` rule; `*` in either part matches any text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    pub code: String,
    pub resource: String,
}

impl FromStr for Suppression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (code, resource) = s.split_once('=').ok_or_else(|| {
            format!("suppression {s:?} must look like CODE=Kind ns/name (for example IST0102=Namespace frod)")
        })?;
        let code = code.trim();
        let resource = resource.trim();
        if code.is_empty() || resource.is_empty() {
            return Err(format!("suppression {s:?} has an empty code or resource"));
        }
        if !code.contains('*') && MessageType::by_code(code).is_none() {
            return Err(format!(
                "suppression {s:?}: {code} is not a known message code"
            ));
        }
        Ok(Suppression {
            code: code.to_owned(),
            resource: resource.to_owned(),
        })
    }
}

impl Suppression {
    pub fn matches(&self, m: &Message) -> bool {
        let Some(origin) = &m.origin else {
            return false;
        };
        glob_match(&self.code, m.kind.code) && glob_match(&self.resource, &origin.display_name())
    }
}

/// Matches text against a pattern where `*` stands for any run of characters. Written here
/// rather than taken from a crate because this is all the glob syntax suppressions need.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The annotation with which a resource suppresses messages about itself:
/// `galley.istio.io/analyze-suppress: "IST0102,IST0107"` (`*` for all).
pub const SUPPRESS_ANNOTATION: &str = "galley.istio.io/analyze-suppress";

/// Applies `--suppress` rules and the suppress annotation. Returns the kept messages and,
/// for each rule, whether it matched anything (so unmatched rules can be reported).
pub fn apply_suppressions(
    messages: Vec<Message>,
    rules: &[Suppression],
    store: &Store,
) -> (Vec<Message>, Vec<bool>) {
    let mut used = vec![false; rules.len()];
    let kept = messages
        .into_iter()
        .filter(|m| {
            let mut suppressed = false;
            for (i, r) in rules.iter().enumerate() {
                if r.matches(m) {
                    used[i] = true;
                    suppressed = true;
                }
            }
            if suppressed {
                return false;
            }
            if let Some(o) = &m.origin
                && let Some(res) = store.find_by_origin(o)
                && let Some(codes) = res.annotations.get(SUPPRESS_ANNOTATION)
            {
                return !codes
                    .split(',')
                    .map(str::trim)
                    .any(|c| c == "*" || c == m.kind.code);
            }
            true
        })
        .collect();
    (kept, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_like_go() {
        let t = "Referenced %s not found: %q";
        assert_eq!(
            render_template(t, &[&"host", &"a\"b"]),
            "Referenced host not found: \"a\\\"b\""
        );
        assert_eq!(render_template("%d%%", &[&5]), "5%");
        assert_eq!(render_template("%s", &[]), "%!s(MISSING)");
    }

    #[test]
    fn globs() {
        assert!(glob_match("IST01*", "IST0101"));
        assert!(glob_match("Namespace *", "Namespace frod"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("Namespace f*d", "Namespace frodo"));
        assert!(glob_match("a*b*c", "axxbyyc"));
    }

    #[test]
    fn suppression_syntax() {
        assert!("IST0102=Namespace frod".parse::<Suppression>().is_ok());
        assert!("IST9999=Namespace frod".parse::<Suppression>().is_err());
        assert!("nonsense".parse::<Suppression>().is_err());
    }

    #[test]
    fn every_catalog_code_is_unique() {
        let mut codes: Vec<_> = catalog::ALL.iter().map(|m| m.code).collect();
        let n = codes.len();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), n);
    }
}
