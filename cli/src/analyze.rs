//! `meshctl analyze`: files-only analysis with Istio's analyzers.

use std::io::{IsTerminal, Write};

use mesh_core::analysis::{self, AnalyzerDef, Level, MeshConfig, Message, Suppression};
use mesh_core::source;

use crate::args::{AnalyzeArgs, AnalyzeFormat, ColorMode};
use crate::exit;
use crate::output;

/// Runs the command; returns the exit code.
pub fn run(args: &AnalyzeArgs) -> u8 {
    if args.list_analyzers {
        return list_analyzers(args.output);
    }
    if args.files.is_empty() && !args.use_kube {
        eprintln!(
            "Error: nothing to analyze: give files, directories or - for stdin, or --use-kube to analyze a cluster\n\nFor example: meshctl analyze testdata/bookinfo/"
        );
        return exit::USAGE;
    }
    let analyzers = match select_analyzers(&args.analyzer) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("Error: {msg}");
            return exit::USAGE;
        }
    };
    let mut suppressions = Vec::new();
    for s in &args.suppress {
        match s.parse::<Suppression>() {
            Ok(s) => suppressions.push(s),
            Err(msg) => {
                eprintln!("Error: {msg}");
                return exit::USAGE;
            }
        }
    }

    let mut bad_input = false;
    let mesh = match &args.mesh_config_file {
        Some(path) => match MeshConfig::from_file(path) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("Error: {e}");
                return exit::BAD_INPUT;
            }
        },
        None => None,
    };

    // With --use-kube: the cluster's objects, and the namespace reported by default (the
    // context's, as istioctl does; -A for all).
    let cluster = if args.use_kube {
        match crate::proxy_status::http::block_on(cluster_state(&args.cluster)) {
            Ok(Ok(c)) => Some(c),
            Ok(Err(e)) | Err(e) => {
                eprintln!("Error: --use-kube: {e:#}");
                return crate::cluster::FAILED;
            }
        }
    } else {
        None
    };
    let mut loaded = if args.files.is_empty() {
        source::Loaded::default()
    } else {
        source::load_paths(&args.files, args.recursive)
    };
    for e in &loaded.errors {
        eprintln!("Error: {e}");
        bad_input = true;
    }
    let objects = loaded.resources.len();
    let mut report_namespace = args.namespace.clone();
    if let Some((fetched, context_namespace)) = cluster {
        for w in &fetched.warnings {
            eprintln!("Warning: {w}");
        }
        loaded.resources = overlay(fetched.loaded.resources, loaded.resources);
        if report_namespace.is_none() && !args.all_namespaces {
            report_namespace = Some(context_namespace);
        }
    } else if loaded.files_read == 0 && loaded.errors.is_empty() {
        // Most likely a wrong path or a forgotten --recursive: passing CI on nothing is worse.
        eprintln!(
            "Error: no YAML or JSON files found in {} (directories are read for .yaml, .yml and .json files)",
            args.files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return exit::BAD_INPUT;
    }
    // Mesh config: the flag, else a ConfigMap `istio` in the files, else defaults.
    let mut mesh = mesh
        .or_else(|| MeshConfig::from_configmap(&loaded.resources, "istio-system"))
        .unwrap_or_default();
    if let Some(path) = &args.mesh_networks_file {
        mesh = match mesh.with_networks_file(path) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("Error: {e}");
                return exit::BAD_INPUT;
            }
        };
    }
    let store = analysis::files_store(loaded.resources, &mesh);
    for (old, new) in store.replaced() {
        eprintln!(
            "Warning: {} is defined twice: {old} is replaced by {} (only the last one takes effect)",
            new.display_name(),
            new.origin
        );
    }
    let messages = analysis::run(&store, &mesh, &analyzers);
    let (messages, used) = analysis::apply_suppressions(messages, &suppressions, &store);
    for (rule, used) in args.suppress.iter().zip(used) {
        if !used {
            eprintln!("Warning: suppression {rule:?} matched no message");
        }
    }
    let messages: Vec<Message> = messages
        .into_iter()
        .filter(|m| in_namespace(m, report_namespace.as_deref()))
        .collect();

    let failing = messages.iter().any(|m| m.level() >= args.failure_threshold);
    let shown: Vec<&Message> = messages
        .iter()
        .filter(|m| m.level() >= args.output_threshold)
        .collect();

    let color = match args.color {
        ColorMode::Always => true,
        ColorMode::Never => false,
        ColorMode::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let text = match args.output {
        AnalyzeFormat::Log => output::log(&shown, color, args.verbose),
        AnalyzeFormat::Json => output::json(&shown),
        AnalyzeFormat::Yaml => output::yaml(&shown),
        AnalyzeFormat::Sarif => output::sarif(&shown, &analyzers),
        AnalyzeFormat::Github => output::github(&shown),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();

    let files = loaded.files_read;
    if shown.is_empty() && args.output == AnalyzeFormat::Log {
        let scope = match &args.namespace {
            Some(ns) => format!("namespace {ns}"),
            None => "all namespaces".to_owned(),
        };
        eprintln!(
            "\u{2714} No validation issues found when analyzing {scope} ({objects} objects in {files} files)."
        );
    } else if !shown.is_empty() {
        let count = |l: Level| messages.iter().filter(|m| m.level() == l).count();
        eprintln!(
            "Analyzed {objects} objects in {files} files: {} errors, {} warnings, {} info.",
            count(Level::Error),
            count(Level::Warning),
            count(Level::Info)
        );
    }
    if bad_input {
        exit::BAD_INPUT
    } else if failing {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

/// Messages about objects in the namespace (cluster-scoped objects and global messages are
/// always kept).
fn in_namespace(m: &Message, namespace: Option<&str>) -> bool {
    let Some(ns) = namespace else {
        return true;
    };
    match m.origin.as_ref().and_then(|o| o.namespace.as_deref()) {
        Some(mns) => mns == ns,
        None => true,
    }
}

fn select_analyzers(names: &[String]) -> Result<Vec<&'static AnalyzerDef>, String> {
    if names.is_empty() {
        return Ok(analysis::all_analyzers());
    }
    names
        .iter()
        .map(|n| {
            analysis::find_analyzer(n).ok_or_else(|| {
                format!("unknown analyzer {n:?} (see meshctl analyze --list-analyzers)")
            })
        })
        .collect()
}

fn list_analyzers(format: AnalyzeFormat) -> u8 {
    let all = analysis::all_analyzers();
    let mut out = std::io::stdout().lock();
    match format {
        AnalyzeFormat::Json | AnalyzeFormat::Yaml => {
            let list: Vec<serde_json::Value> = all
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "name": a.name,
                        "description": a.description,
                        "codes": a.messages.iter().map(|m| m.code).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let text = if format == AnalyzeFormat::Json {
                serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
            } else {
                output::to_yaml(&list)
            };
            let _ = out.write_all(text.as_bytes());
        }
        _ => {
            let width = all.iter().map(|a| a.name.len()).max().unwrap_or(4);
            let _ = writeln!(out, "{:width$}  {:<23}  DESCRIPTION", "NAME", "CODES");
            for a in &all {
                let codes: Vec<&str> = a.messages.iter().map(|m| m.code).collect();
                let _ = writeln!(
                    out,
                    "{:width$}  {:<23}  {}",
                    a.name,
                    codes.join(","),
                    a.description
                );
            }
        }
    }
    exit::OK
}

/// The cluster's objects and the kubeconfig context's namespace.
async fn cluster_state(
    cluster: &crate::cluster::ClusterArgs,
) -> anyhow::Result<(crate::cluster::fetch::Fetched, String)> {
    let client = cluster.client().await?;
    let namespace = client.default_namespace().to_owned();
    // Fail early and clearly when the cluster cannot be reached at all.
    client
        .apiserver_version()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the cluster: {e}"))?;
    Ok((
        crate::cluster::fetch::cluster_objects(&client).await,
        namespace,
    ))
}

/// Files overlaid on the cluster: a file's object replaces the cluster's object of the same
/// kind, namespace and name; the rest of the cluster stays.
pub fn overlay(
    cluster: Vec<mesh_core::resource::Resource>,
    files: Vec<mesh_core::resource::Resource>,
) -> Vec<mesh_core::resource::Resource> {
    let key = |r: &mesh_core::resource::Resource| {
        (
            r.group.clone(),
            r.kind.clone(),
            r.namespace.clone(),
            r.name.clone(),
        )
    };
    let from_files: std::collections::BTreeSet<_> = files.iter().map(key).collect();
    cluster
        .into_iter()
        .filter(|r| !from_files.contains(&key(r)))
        .chain(files)
        .collect()
}
