//! `meshctl validate`: per-object validation with Istio's rules, and what the Kubernetes API
//! server would refuse or drop with Istio's CRD schemas.

use std::io::Write;

use mesh_core::source;
use mesh_core::validate::{self, Severity};
use serde::Serialize;

use crate::args::{DataFormat, ValidateArgs};
use crate::exit;
use crate::output::to_yaml;

/// One problem, as `-o json|yaml` prints it.
#[derive(Debug, Serialize)]
struct Problem {
    file: String,
    line: u32,
    severity: &'static str,
    /// `Kind ns/name`, empty when the document never became an object.
    object: String,
    /// Field path, empty for problems with the document itself.
    path: String,
    message: String,
}

/// Runs the command; returns the exit code.
pub fn run(args: &ValidateArgs) -> u8 {
    let loaded = source::load_paths(&args.files, args.recursive);
    let mut problems: Vec<Problem> = loaded
        .errors
        .iter()
        .map(|e| Problem {
            file: e.file.to_string(),
            line: e.line,
            severity: "error",
            object: String::new(),
            path: String::new(),
            message: e.message.clone(),
        })
        .collect();
    let unreadable = !problems.is_empty();
    for res in &loaded.resources {
        for f in validate::validate_for_cluster(res) {
            problems.push(Problem {
                file: res.origin.file.to_string(),
                line: f.line,
                severity: match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                object: res.display_name(),
                path: f.path,
                message: f.message,
            });
        }
    }
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));

    let mut out = std::io::stdout().lock();
    match args.output {
        Some(DataFormat::Json) => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&problems).unwrap_or_default()
            );
        }
        Some(DataFormat::Yaml) => {
            let _ = out.write_all(to_yaml(&problems).as_bytes());
        }
        None => {
            for p in &problems {
                let mut line = format!("{}:{}: {}: ", p.file, p.line, p.severity);
                if !p.object.is_empty() {
                    line.push_str(&p.object);
                    line.push_str(": ");
                }
                if !p.path.is_empty() {
                    line.push_str(&p.path);
                    line.push_str(": ");
                }
                line.push_str(&p.message);
                let _ = writeln!(out, "{line}");
            }
        }
    }
    let _ = out.flush();

    let errors = problems.iter().filter(|p| p.severity == "error").count();
    let warnings = problems.len() - errors;
    let objects = loaded.resources.len();
    if problems.is_empty() {
        eprintln!(
            "\u{2714} {objects} objects in {} files are valid.",
            loaded.files_read
        );
    } else {
        eprintln!(
            "{objects} objects in {} files: {errors} errors, {warnings} warnings.",
            loaded.files_read
        );
    }
    if unreadable {
        exit::BAD_INPUT
    } else if errors > 0 || (args.strict && warnings > 0) {
        exit::FINDINGS
    } else {
        exit::OK
    }
}
