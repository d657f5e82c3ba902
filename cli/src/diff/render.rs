//! Renderings of a [`Report`]: text for people (colour only on a terminal) and one JSON
//! document for tools.
//!
//! JSON shape (stable; fields are only ever added):
//! `{changed, objects: {added, changed, removed}, proxies: [{id, kind, namespace, workload,
//! status, clusters|listeners|routes|endpoints: {added: [NAME], removed: [NAME], changed:
//! [{name, diff}]}}], unchangedProxies, translationErrors: [{id, error}], analysis: {introduced, fixed}, rejected:
//! {introduced, fixed}}`, where analyzer messages have analyze's `-o json` shape and
//! refused objects are `{object, origin, reason}`.

use std::fmt::Write as _;

use super::compare::{Report, TypeDiff};

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// The report as one JSON document.
pub fn json(report: &Report) -> String {
    let mut v = serde_json::to_value(report).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("changed".to_owned(), report.changed().into());
    }
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

struct Paint {
    color: bool,
}

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}

/// The report as text.
pub fn text(report: &Report, color: bool) -> String {
    let p = Paint { color };
    let mut out = String::new();
    let o = &report.objects;
    let mut objects = Vec::new();
    for (verb, list) in [
        ("added", &o.added),
        ("changed", &o.changed),
        ("removed", &o.removed),
    ] {
        if !list.is_empty() {
            objects.push(format!("{verb}: {}", list.join(", ")));
        }
    }
    if objects.is_empty() {
        let _ = writeln!(out, "Objects: no change");
    } else {
        let _ = writeln!(out, "Objects {}", objects.join("; "));
    }

    for proxy in &report.proxies {
        let _ = writeln!(
            out,
            "\n{} ({} {}/{}{})",
            p.wrap(BOLD, &format!("Proxy {}", proxy.id)),
            proxy.kind,
            proxy.namespace,
            proxy.workload,
            match proxy.status {
                "added" => ", new: every resource is added",
                "removed" => ", gone: every resource is removed",
                _ => "",
            }
        );
        for (label, d) in [
            ("clusters", &proxy.clusters),
            ("listeners", &proxy.listeners),
            ("routes", &proxy.routes),
            ("endpoints", &proxy.endpoints),
        ] {
            type_section(&mut out, &p, label, d);
        }
    }
    let n = report.unchanged_proxies;
    let _ = writeln!(
        out,
        "\n{} {} unchanged.",
        n,
        if n == 1 { "proxy" } else { "proxies" }
    );

    let a = &report.analysis;
    if !a.introduced.is_empty() {
        let _ = writeln!(out, "\nAnalyzer messages the change introduces:");
        for m in &a.introduced {
            let _ = writeln!(
                out,
                "  {} {} [{}] ({}) {}",
                p.wrap(RED, "+"),
                m.level,
                m.code,
                m.origin,
                m.message
            );
        }
    }
    if !a.fixed.is_empty() {
        let _ = writeln!(out, "\nAnalyzer messages the change fixes:");
        for m in &a.fixed {
            let _ = writeln!(
                out,
                "  {} {} [{}] ({}) {}",
                p.wrap(GREEN, "-"),
                m.level,
                m.code,
                m.origin,
                m.message
            );
        }
    }
    let r = &report.rejected;
    if !r.introduced.is_empty() {
        let _ = writeln!(out, "\nObjects meshd would refuse after the change:");
        for x in &r.introduced {
            let _ = writeln!(
                out,
                "  {} {} ({}): {}",
                p.wrap(RED, "+"),
                x.object,
                x.origin,
                x.reason
            );
        }
    }
    if !r.fixed.is_empty() {
        let _ = writeln!(
            out,
            "\nObjects meshd refuses now and would serve after the change:"
        );
        for x in &r.fixed {
            let _ = writeln!(
                out,
                "  {} {} ({}): {}",
                p.wrap(GREEN, "-"),
                x.object,
                x.origin,
                x.reason
            );
        }
    }
    if !report.changed() {
        let _ = writeln!(out, "\nNothing would change.");
    }
    out
}

fn type_section(out: &mut String, p: &Paint, label: &str, d: &TypeDiff) {
    if d.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {label}:");
    for n in &d.added {
        let _ = writeln!(out, "    {} {n}", p.wrap(GREEN, "+"));
    }
    for n in &d.removed {
        let _ = writeln!(out, "    {} {n}", p.wrap(RED, "-"));
    }
    for c in &d.changed {
        let _ = writeln!(out, "    {} {}", p.wrap(YELLOW, "~"), c.name);
        for line in c.diff.lines() {
            let painted = if line.starts_with("@@") {
                p.wrap(CYAN, line)
            } else if line.starts_with('+') {
                p.wrap(GREEN, line)
            } else if line.starts_with('-') {
                p.wrap(RED, line)
            } else {
                line.to_owned()
            };
            let _ = writeln!(out, "      {painted}");
        }
    }
}
