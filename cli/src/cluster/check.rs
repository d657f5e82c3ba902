//! `meshctl check`: whether a cluster can take an installation (`--pre-install`: API
//! server version, permission to create every kind the manifest holds, asked with
//! SelfSubjectAccessReviews) or whether an installation works (meshd available, CRDs
//! established, webhook configurations present with a CA bundle, the CA root kept in a
//! Secret and published as `istio-ca-root-cert`, every proxy in sync per meshd's
//! `/debug/syncz`, read through a port-forward to a Ready meshd pod as `proxy-status
//! --use-kube` does, or through the API server's service proxy with `--kube-transport
//! api-proxy`).

use std::collections::BTreeSet;
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::Args;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};
use serde::Serialize;
use serde_json::Value as J;

use super::forward::{Forward, Transport, Upstream};
use super::{ClusterArgs, FAILED, Resolver, condition_true, describe, get};
use crate::args::DataFormat;
use crate::exit;
use crate::manifest::{self, Profile, Values, objects};
use crate::proxy_status::{self, syncz::ProxyEntry};

/// The oldest Kubernetes minor version meshctl installs on (1.x).
pub const MIN_MINOR: u32 = 28;

pub const EXAMPLES: &str = "Examples:
  meshctl check --pre-install        # can this cluster and this user install the mesh?
  meshctl check                      # is the installation healthy, are proxies in sync?
  meshctl check -o json";

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Check the cluster before installing: version and permissions.
    #[arg(long)]
    pub pre_install: bool,
    /// The control plane's namespace.
    #[arg(short = 'i', long = "istio-namespace", default_value = "istio-system")]
    pub namespace: String,
    /// Output format (default: one line per check).
    #[arg(short, long, value_enum)]
    pub output: Option<DataFormat>,
    /// How meshd's debug API is reached for the proxies check: port-forward to a Ready
    /// meshd pod (the default, as kubectl), or api-proxy (HTTP through the API server's
    /// service proxy, for clusters where websocket upgrades are blocked).
    #[arg(long, value_enum, default_value_t)]
    pub kube_transport: Transport,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    pub check: String,
    pub ok: bool,
    pub message: String,
}

impl Finding {
    fn new(check: &str, ok: bool, message: impl Into<String>) -> Finding {
        Finding {
            check: check.to_owned(),
            ok,
            message: message.into(),
        }
    }
}

pub fn run(args: &CheckArgs) -> u8 {
    let mut values = Values::for_profile(Profile::Default);
    if let Err(e) = values.set(&format!("namespace={}", args.namespace)) {
        eprintln!("error: --istio-namespace: {e}");
        return exit::USAGE;
    }
    let outcome = crate::proxy_status::http::block_on(async {
        let client = args.cluster.client().await?;
        if args.pre_install {
            pre_install(&client, &values).await
        } else {
            post_install(&client, &values, &args.cluster, args.kube_transport).await
        }
    });
    let findings = match outcome.and_then(|r| r) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e:#}");
            return FAILED;
        }
    };
    match args.output {
        Some(DataFormat::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&findings).unwrap_or_default()
        ),
        Some(DataFormat::Yaml) => print!("{}", crate::output::to_yaml(&findings)),
        None => print!("{}", render(&findings)),
    }
    if findings.iter().all(|f| f.ok) {
        exit::OK
    } else {
        exit::FINDINGS
    }
}

/// One line per check: `✔ check: message` or `✘ check: message`.
pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let mark = if f.ok { "✔" } else { "✘" };
        out.push_str(&format!("{mark} {}: {}\n", f.check, f.message));
    }
    let failed = findings.iter().filter(|f| !f.ok).count();
    if failed == 0 {
        out.push_str("No problems found.\n");
    } else {
        out.push_str(&format!("{failed} check(s) failed.\n"));
    }
    out
}

/// `"33+"` -> 33 (managed clusters add suffixes).
fn minor(text: &str) -> Option<u32> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Version and permissions.
pub async fn pre_install(client: &Client, values: &Values) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let info = client
        .apiserver_version()
        .await
        .context("asking the API server for its version")?;
    let version_ok = info.major == "1" && minor(&info.minor).is_some_and(|m| m >= MIN_MINOR);
    findings.push(Finding::new(
        "kubernetes version",
        version_ok,
        if version_ok {
            format!("{} (1.{MIN_MINOR} or later needed)", info.git_version)
        } else {
            format!(
                "{} is older than 1.{MIN_MINOR}, the oldest version supported",
                info.git_version
            )
        },
    ));

    // Every kind the fullest installation creates, asked once per (group, resource, namespace).
    let mut all = Values::for_profile(Profile::Demo);
    all.namespace = values.namespace.clone();
    let mut resolver = Resolver::default();
    let mut asked = BTreeSet::new();
    let ssar: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    for obj in manifest::render(&all).iter().flat_map(|c| &c.objects) {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let (ar, _) = resolver.resolve(client, api_version, kind).await?;
        let namespace = obj["metadata"]["namespace"].as_str().map(str::to_owned);
        if !asked.insert((ar.group.clone(), ar.plural.clone(), namespace.clone())) {
            continue;
        }
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(ar.group.clone()),
                    resource: Some(ar.plural.clone()),
                    verb: Some("create".into()),
                    namespace: namespace.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer = ssar
            .create(&PostParams::default(), &review)
            .await
            .context("asking SelfSubjectAccessReview")?;
        let allowed = answer.status.as_ref().is_some_and(|s| s.allowed);
        let group = if ar.group.is_empty() {
            "core"
        } else {
            &ar.group
        };
        let scope = match &namespace {
            Some(ns) => format!(" in namespace {ns}"),
            None => String::new(),
        };
        let reason = answer
            .status
            .as_ref()
            .and_then(|s| s.reason.clone())
            .filter(|r| !r.is_empty())
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        findings.push(Finding::new(
            "permission",
            allowed,
            if allowed {
                format!("can create {} ({group}){scope}", ar.plural)
            } else {
                format!("cannot create {} ({group}){scope}{reason}", ar.plural)
            },
        ));
    }
    Ok(findings)
}

/// meshd, CRDs, webhooks, proxies (meshd's debug API reached over `transport`).
pub async fn post_install(
    client: &Client,
    values: &Values,
    cluster: &ClusterArgs,
    transport: Transport,
) -> Result<Vec<Finding>> {
    let mut resolver = Resolver::default();
    let mut findings = Vec::new();

    let deployment = objects::meshd_deployment(values);
    let meshd = get(client, &mut resolver, &deployment).await?;
    let meshd_ok = match &meshd {
        None => {
            findings.push(Finding::new(
                "meshd",
                false,
                format!(
                    "{} not found: is the mesh installed?",
                    describe(&deployment)
                ),
            ));
            false
        }
        Some(d) => {
            let ready = d
                .pointer("/status/availableReplicas")
                .and_then(J::as_i64)
                .unwrap_or(0);
            let wanted = d.pointer("/spec/replicas").and_then(J::as_i64).unwrap_or(1);
            let ok = condition_true(d, "Available") && ready > 0;
            findings.push(Finding::new(
                "meshd",
                ok,
                format!(
                    "{} {ready}/{wanted} replicas available",
                    describe(&deployment)
                ),
            ));
            ok
        }
    };

    let crds = crate::manifest::crds::crds(values);
    let mut missing = Vec::new();
    for crd in &crds {
        match get(client, &mut resolver, crd).await? {
            Some(o) if condition_true(&o, "Established") => {}
            Some(_) => missing.push(format!(
                "{} (not Established)",
                crd["metadata"]["name"].as_str().unwrap_or("?")
            )),
            None => missing.push(format!(
                "{} (missing)",
                crd["metadata"]["name"].as_str().unwrap_or("?")
            )),
        }
    }
    findings.push(Finding::new(
        "crds",
        missing.is_empty(),
        if missing.is_empty() {
            format!("{} CustomResourceDefinitions established", crds.len())
        } else {
            missing.join(", ")
        },
    ));

    for (check, obj) in [
        ("injection webhook", objects::injection_webhook(values)),
        ("validation webhook", objects::validation_webhook(values)),
    ] {
        findings.push(match get(client, &mut resolver, &obj).await? {
            None => Finding::new(check, false, format!("{} not found", describe(&obj))),
            Some(found) => {
                let hooks = found["webhooks"].as_array().cloned().unwrap_or_default();
                let unset: Vec<&str> = hooks
                    .iter()
                    .filter(|h| {
                        h.pointer("/clientConfig/caBundle")
                            .and_then(J::as_str)
                            .is_none_or(str::is_empty)
                    })
                    .filter_map(|h| h["name"].as_str())
                    .collect();
                if hooks.is_empty() {
                    Finding::new(check, false, format!("{} has no webhooks", describe(&obj)))
                } else if unset.is_empty() {
                    Finding::new(
                        check,
                        true,
                        format!(
                            "{} CA bundle set on {} webhook(s)",
                            describe(&obj),
                            hooks.len()
                        ),
                    )
                } else {
                    Finding::new(
                        check,
                        false,
                        format!(
                            "{}: no CA bundle on {} (meshd sets it once it is running)",
                            describe(&obj),
                            unset.join(", ")
                        ),
                    )
                }
            }
        });
    }

    findings.push(ca_root(client, &mut resolver, values).await?);

    if meshd_ok {
        findings.push(proxies(cluster, values, transport).await);
    } else {
        findings.push(Finding::new(
            "proxies",
            false,
            "not checked: meshd is not available",
        ));
    }
    Ok(findings)
}

/// The CA's root: kept in Secret `cacerts` (the user's) or `istio-ca-secret` (meshd's own)
/// in meshd's namespace, and the same root published there as ConfigMap
/// `istio-ca-root-cert` (what sidecars mount).
async fn ca_root(client: &Client, resolver: &mut Resolver, values: &Values) -> Result<Finding> {
    let ns = values.namespace.as_str();
    let object = |kind: &str, name: &str| serde_json::json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns}});
    let decoded = |secret: &J, key: &str| -> Option<String> {
        let bytes: k8s_openapi::ByteString =
            serde_json::from_value(secret.pointer(&format!("/data/{key}"))?.clone()).ok()?;
        String::from_utf8(bytes.0).ok()
    };
    let (name, root) = match get(client, resolver, &object("Secret", "cacerts")).await? {
        Some(plugged) => ("cacerts", decoded(&plugged, "root-cert.pem")),
        None => match get(client, resolver, &object("Secret", "istio-ca-secret")).await? {
            Some(own) => ("istio-ca-secret", decoded(&own, "ca-cert.pem")),
            None => {
                return Ok(Finding::new(
                    "ca root",
                    false,
                    format!(
                        "no Secret cacerts or istio-ca-secret in {ns}: meshd stores its root once it runs"
                    ),
                ));
            }
        },
    };
    let Some(root) = root.filter(|r| r.contains("BEGIN CERTIFICATE")) else {
        return Ok(Finding::new(
            "ca root",
            false,
            format!("Secret {ns}/{name} holds no root certificate"),
        ));
    };
    let published = get(client, resolver, &object("ConfigMap", "istio-ca-root-cert"))
        .await?
        .and_then(|cm| {
            cm.pointer("/data/root-cert.pem")
                .and_then(J::as_str)
                .map(str::to_owned)
        });
    Ok(match published {
        Some(p) if p.trim() == root.trim() => Finding::new(
            "ca root",
            true,
            format!("root kept in Secret {ns}/{name}, published as ConfigMap istio-ca-root-cert"),
        ),
        Some(_) => Finding::new(
            "ca root",
            false,
            format!(
                "ConfigMap {ns}/istio-ca-root-cert differs from the root in Secret {ns}/{name}"
            ),
        ),
        None => Finding::new(
            "ca root",
            false,
            format!(
                "root kept in Secret {ns}/{name}, but ConfigMap {ns}/istio-ca-root-cert is missing"
            ),
        ),
    })
}

/// meshd's `/debug/syncz` through a [`Forward`] to its Service's port 15014: a Ready pod
/// behind it over port-forward, or the Service through the API server's proxy.
async fn proxies(cluster: &ClusterArgs, values: &Values, transport: Transport) -> Finding {
    let upstream = Upstream::Service {
        namespace: values.namespace.clone(),
        name: objects::MESHD.to_owned(),
    };
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // Forward::start runs its own runtime, so it is started off this one.
    let (cluster, to) = (cluster.clone(), upstream.clone());
    let started =
        tokio::task::spawn_blocking(move || Forward::start(&cluster, &to, 15014, transport, local))
            .await;
    let forward = match started {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            return Finding::new(
                "proxies",
                false,
                format!("reaching meshd's debug API ({upstream} port 15014): {e:#}"),
            );
        }
        Err(e) => return Finding::new("proxies", false, e.to_string()),
    };
    let fetched = proxy_status::fetch(&forward.url()).await;
    drop(forward);
    let entries: Vec<ProxyEntry> = match fetched {
        Ok(e) => e,
        Err(e) => {
            return Finding::new(
                "proxies",
                false,
                format!("reading meshd's /debug/syncz: {e:#}"),
            );
        }
    };
    let rows = proxy_status::rows(&entries, SystemTime::now());
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| r.types.values().any(|t| t.state.is_problem()))
        .map(|r| {
            let states: Vec<String> = r
                .types
                .iter()
                .filter(|(_, t)| t.state.is_problem())
                .map(|(k, t)| format!("{} {}", k.to_uppercase(), t.state.label()))
                .collect();
            format!("{} ({})", r.name, states.join(", "))
        })
        .collect();
    if bad.is_empty() {
        Finding::new(
            "proxies",
            true,
            format!("{} proxies connected, all in sync", rows.len()),
        )
    } else {
        Finding::new(
            "proxies",
            false,
            format!(
                "{} of {} proxies out of sync: {}",
                bad.len(),
                rows.len(),
                bad.join("; ")
            ),
        )
    }
}
