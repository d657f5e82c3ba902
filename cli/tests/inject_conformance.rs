//! kube-inject against Istio's injection goldens (`../shared/conformance/istio/inject/`),
//! compared on the structural points of the conformance README: which objects get a sidecar
//! and which are skipped, the init container's redirect settings, probe rewriting
//! (rewritten probes and `ISTIO_KUBE_APP_PROBERS`), the `sidecar.istio.io/status`
//! containers, and that every object is kept in order. The cases and their settings follow
//! Istio's own test table (pkg/kube/inject/inject_test.go); the cases that do not agree are
//! listed once, in `KNOWN`, with the reason.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use meshctl::inject::{Settings, SettingsFiles, inject_text};
use serde_json::Value as J;

/// Cases that do not agree, with the reason. The test fails when one of them starts
/// agreeing (remove it here) or when a case not listed fails.
const KNOWN: &[(&str, &str)] = &[
    (
        "hello-tproxy.yaml.injected",
        "TPROXY interception mode: mesh-proxy init only builds REDIRECT rules",
    ),
    (
        "proxy-override-runas.yaml.tproxy.injected",
        "TPROXY interception mode: mesh-proxy init only builds REDIRECT rules",
    ),
    (
        "merge-probers.yaml.injected",
        "the input is already injected: meshctl refuses to inject twice, by design",
    ),
    (
        "custom-template.yaml.injected",
        "custom injection templates (IstioOperator sidecarInjectorWebhook.templates) are not supported",
    ),
    (
        "grpc-simple.yaml.injected",
        "the grpc-simple (proxyless gRPC) template is not supported",
    ),
    (
        "grpc-agent.yaml.injected",
        "the grpc-agent (proxyless gRPC) template is not supported",
    ),
    (
        "hello-openshift-tproxy.yaml.injected",
        "OpenShift with Istio CNI and TPROXY: no init container; not supported",
    ),
    (
        "cronjob.yaml.injected",
        "Istio writes a CronJob's sidecar.istio.io/status on the jobTemplate's metadata; meshctl writes it on the pod template, where pods carry it",
    ),
    (
        "sidecar-spire.yaml.injected",
        "the SPIRE template keeps a second istio-proxy container (status lists it in both places); not supported",
    ),
];

struct Case {
    input: String,
    want: String,
    /// An injector config: a file of the conformance directory, or inline values YAML.
    config: Option<Config>,
    /// Istio rejects the input with an error containing this text.
    error: Option<String>,
}

enum Config {
    File(&'static str),
    Values(&'static str),
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/istio/inject")
}

/// Istio's table: cases whose input, golden or settings differ from `X.yaml` ->
/// `X.yaml.injected` with defaults. Settings meshctl does not model (image pull policy,
/// drain duration, proxy metadata, tracing, hold-application) do not change the compared
/// points and are left out.
fn special_cases() -> Vec<Case> {
    let c = |input: &str, want: &str, config: Option<Config>| Case {
        input: input.to_owned(),
        want: want.to_owned(),
        config,
        error: None,
    };
    use Config::{File, Values};
    let cni = "components:\n  cni:\n    enabled: true\n";
    let status123 = "values:\n  global:\n    proxy:\n      statusPort: 123\n";
    vec![
        c("hello.yaml", "hello.yaml.cni.injected", Some(Values(cni))),
        c(
            "hello.yaml",
            "hello.yaml.proxyImageName.injected",
            Some(Values(
                "values:\n  global:\n    proxy:\n      image: proxyTest\n",
            )),
        ),
        c("hello.yaml", "hello-tproxy.yaml.injected", None),
        c("hello.yaml", "hello-always.yaml.injected", None),
        c("hello.yaml", "hello-never.yaml.injected", None),
        c(
            "traffic-params.yaml",
            "traffic-params.yaml.injected",
            Some(Values(
                "values:\n  global:\n    proxy:\n      includeIPRanges: 127.0.0.1/24,10.96.0.1/24\n      excludeIPRanges: 10.96.0.2/24,10.96.0.3/24\n      excludeInboundPorts: 4,5,6\n      statusPort: 0\n",
            )),
        ),
        c(
            "status_params.yaml",
            "status_params.yaml.injected",
            Some(Values(status123)),
        ),
        c(
            "kubevirtInterfaces.yaml",
            "kubevirtInterfaces.yaml.injected",
            Some(Values(status123)),
        ),
        c(
            "reroute-virtual-interfaces.yaml",
            "reroute-virtual-interfaces.yaml.injected",
            Some(Values(status123)),
        ),
        c(
            "hello.yaml",
            "hello-image-secrets-in-values.yaml.injected",
            Some(File("hello-image-secrets-in-values.iop.yaml")),
        ),
        c(
            "hello-image-pull-secret.yaml",
            "hello-multiple-image-secrets.yaml.injected",
            Some(File("hello-image-secrets-in-values.iop.yaml")),
        ),
        c(
            "hello.yaml",
            "hello-template-in-values.yaml.injected",
            Some(File("hello-template-in-values.iop.yaml")),
        ),
        c("hello.yaml", "hello-mount-mtls-certs.yaml.injected", None),
        c(
            "hello.yaml",
            "hello-cncf-networks.yaml.injected",
            Some(Values(cni)),
        ),
        c(
            "hello.yaml",
            "hello.proxyHoldsApplication.yaml.injected",
            None,
        ),
        c(
            "hello-probes.yaml",
            "hello-probes.proxyHoldsApplication.yaml.injected",
            None,
        ),
        c(
            "proxy-override-runas.yaml",
            "proxy-override-runas.yaml.cni.injected",
            Some(Values(cni)),
        ),
        c(
            "proxy-override-runas.yaml",
            "proxy-override-runas.yaml.tproxy.injected",
            None,
        ),
        c(
            "proxy-override-args.yaml",
            "proxy-override-args-native.yaml.injected",
            None,
        ),
        c(
            "custom-template.yaml",
            "custom-template.yaml.injected",
            Some(File("custom-template.iop.yaml")),
        ),
    ]
}

/// Cases found in the directory whose settings are not the defaults.
const CNI_CASES: &[&str] = &[
    "hello-existing-cncf-networks.yaml",
    "hello-existing-cncf-networks-json.yaml",
];

/// Istio's cases that only run its webhook, not kube-inject.
const WEBHOOK_ONLY: &[&str] = &[
    "hello-openshift.yaml",
    "hello-openshift-custom-injection.yaml",
];

fn cases() -> Vec<Case> {
    let mut cases = special_cases();
    let taken: BTreeSet<String> = cases.iter().map(|c| c.want.clone()).collect();
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if !name.ends_with(".yaml") || name.ends_with(".iop.yaml") {
            continue;
        }
        if WEBHOOK_ONLY.contains(&name.as_str()) {
            continue;
        }
        let input = name.clone();
        if let Some(key) = name
            .strip_prefix("traffic-annotations-bad-")
            .and_then(|r| r.strip_suffix(".yaml"))
        {
            cases.push(Case {
                input,
                want: name.clone(),
                config: None,
                error: Some(key.to_owned()),
            });
            continue;
        }
        let want = format!("{name}.injected");
        if taken.contains(&want) || !dir().join(&want).exists() {
            continue;
        }
        let config = CNI_CASES
            .contains(&input.as_str())
            .then_some(Config::Values("components:\n  cni:\n    enabled: true\n"));
        cases.push(Case {
            input,
            want,
            config,
            error: None,
        });
    }
    cases
}

/// Every object of a stream, List items flattened, with the pointer of its pod template.
fn objects(docs: &[J]) -> Vec<J> {
    fn walk(v: &J, out: &mut Vec<J>) {
        if v.get("kind").and_then(J::as_str) == Some("List")
            && let Some(items) = v.get("items").and_then(J::as_array)
        {
            for i in items {
                walk(i, out);
            }
            return;
        }
        out.push(v.clone());
    }
    let mut out = Vec::new();
    for d in docs {
        walk(d, &mut out);
    }
    out
}

fn template(obj: &J) -> Option<&J> {
    match obj.get("kind")?.as_str()? {
        "Pod" => Some(obj),
        "CronJob" => obj.pointer("/spec/jobTemplate/spec/template"),
        _ => obj.pointer("/spec/template"),
    }
}

fn containers(t: &J, list: &str) -> Vec<J> {
    t.pointer(&format!("/spec/{list}"))
        .and_then(J::as_array)
        .cloned()
        .unwrap_or_default()
}

fn named<'a>(list: &'a [J], name: &str) -> Option<&'a J> {
    list.iter()
        .find(|c| c.get("name").and_then(J::as_str) == Some(name))
}

fn items(s: &str) -> BTreeSet<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The redirect settings of an init container, Istio's (`istio-iptables -p ...`) or ours
/// (`mesh-proxy init --proxy-port ...`), in one vocabulary.
fn redirect(init: &J) -> BTreeMap<&'static str, String> {
    let args: Vec<String> = init
        .get("args")
        .and_then(J::as_array)
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut m = BTreeMap::new();
    m.insert("mode", "REDIRECT".to_owned());
    m.insert("exclude-outbound-ports", String::new());
    m.insert("kubevirt-interfaces", String::new());
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let key = match flag.as_str() {
            "-p" | "--proxy-port" => "proxy-port",
            "-z" | "--inbound-port" => "inbound-port",
            "-u" | "--proxy-uid" => "uid",
            "-m" => "mode",
            "-i" | "--include-outbound-ip-ranges" => "include-ranges",
            "-x" | "--exclude-outbound-ip-ranges" => "exclude-ranges",
            "-b" | "--include-inbound-ports" => "include-inbound",
            "-d" | "--exclude-inbound-ports" => "exclude-inbound",
            "-o" | "--exclude-outbound-ports" => "exclude-outbound-ports",
            "-k" | "--reroute-virtual-interfaces" => "kubevirt-interfaces",
            _ => continue,
        };
        let v = it.next().cloned().unwrap_or_default();
        let v = items(&v).into_iter().collect::<Vec<_>>().join(",");
        m.insert(key, v);
    }
    m
}

/// The structural points of one object.
fn points(obj: &J) -> J {
    let kind = obj.get("kind").cloned().unwrap_or(J::Null);
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(J::Null);
    let Some(t) = template(obj).filter(|t| t.get("spec").is_some()) else {
        return serde_json::json!({"kind": kind, "name": name});
    };
    let status = t
        .pointer("/metadata/annotations/sidecar.istio.io~1status")
        .and_then(J::as_str)
        .map(|s| serde_json::from_str::<J>(s).unwrap_or(J::Null));
    let inits = containers(t, "initContainers");
    let apps = containers(t, "containers");
    let proxy = named(&inits, "istio-proxy").or_else(|| named(&apps, "istio-proxy"));
    let injected = status.is_some() && proxy.is_some();
    if !injected {
        return serde_json::json!({"kind": kind, "name": name, "injected": false});
    }
    let status = status.unwrap_or(J::Null);
    let probers = proxy
        .and_then(|p| p.get("env"))
        .and_then(J::as_array)
        .and_then(|env| {
            env.iter()
                .find(|e| e.get("name").and_then(J::as_str) == Some("ISTIO_KUBE_APP_PROBERS"))
        })
        .and_then(|e| e.get("value").and_then(J::as_str))
        .map(|v| serde_json::from_str::<J>(v).unwrap_or(J::Null));
    let mut probes = BTreeMap::new();
    for c in &apps {
        let cname = c.get("name").and_then(J::as_str).unwrap_or("");
        if cname == "istio-proxy" {
            continue;
        }
        for field in ["readinessProbe", "livenessProbe", "startupProbe"] {
            if let Some(p) = c.get(field) {
                let handler: serde_json::Map<String, J> = p
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(k, _)| {
                                ["httpGet", "tcpSocket", "grpc", "exec"].contains(&k.as_str())
                            })
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                probes.insert(format!("{cname}.{field}"), J::Object(handler));
            }
        }
    }
    serde_json::json!({
        "kind": kind,
        "name": name,
        "injected": true,
        "redirect": named(&inits, "istio-init").map(|i| serde_json::to_value(redirect(i)).unwrap()),
        "probes": probes,
        "probers": probers,
        "status": {
            "initContainers": status.get("initContainers"),
            "containers": status.get("containers"),
            "imagePullSecrets": status.get("imagePullSecrets"),
        },
    })
}

fn settings_for(case: &Case) -> Settings {
    let mut s = Settings::default();
    match &case.config {
        None => {}
        Some(Config::File(f)) => s.apply_inject_config(&dir().join(f)).unwrap(),
        Some(Config::Values(v)) => {
            let path = std::env::temp_dir().join(format!(
                "meshctl-inject-{}-{}.yaml",
                std::process::id(),
                case.want
            ));
            std::fs::write(&path, v).unwrap();
            let r = s.apply_inject_config(&path);
            let _ = std::fs::remove_file(&path);
            r.unwrap();
        }
    }
    s
}

/// Runs one case: `None` when it agrees, else what differs.
fn run(case: &Case) -> Option<String> {
    let input = std::fs::read_to_string(dir().join(&case.input)).unwrap();
    let got = inject_text(&input, &case.input, &settings_for(case));
    if let Some(want) = &case.error {
        return match got {
            Err(e) if e.to_string().to_lowercase().contains(want.as_str()) => None,
            Err(e) => Some(format!("error {e} does not name {want}")),
            Ok(_) => Some(format!("expected an error naming {want}, got none")),
        };
    }
    let got = match got {
        Ok(g) => g,
        Err(e) => return Some(format!("error: {e}")),
    };
    let want_text = std::fs::read_to_string(dir().join(&case.want)).unwrap();
    let want_docs: Vec<J> = mesh_core::yaml::parse_documents(&want_text)
        .into_iter()
        .map(|d| d.result.unwrap().to_json())
        .collect();
    let ours: Vec<J> = objects(&got.documents).iter().map(points).collect();
    let theirs: Vec<J> = objects(&want_docs).iter().map(points).collect();
    if ours.len() != theirs.len() {
        return Some(format!(
            "{} objects, Istio has {}",
            ours.len(),
            theirs.len()
        ));
    }
    for (o, t) in ours.iter().zip(&theirs) {
        if o != t {
            return Some(format!("differs:\n    ours:  {o}\n    istio: {t}"));
        }
    }
    None
}

#[test]
fn kube_inject_agrees_with_istio_goldens() {
    if !dir().exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing",
            dir().display()
        );
        eprintln!("SKIPPED: {} is missing", dir().display());
        return;
    }
    let cases = cases();
    let known: BTreeMap<&str, &str> = KNOWN.iter().copied().collect();
    let mut agree = 0usize;
    let mut unexpected = Vec::new();
    let mut now_agree = Vec::new();
    for case in &cases {
        let result = run(case);
        match (&result, known.get(case.want.as_str())) {
            (None, None) => agree += 1,
            (None, Some(_)) => {
                agree += 1;
                now_agree.push(case.want.clone());
            }
            (Some(_), Some(_)) => {}
            (Some(why), None) => unexpected.push(format!("{}: {why}", case.want)),
        }
    }
    let total = cases.len();
    let pct = agree as f64 * 100.0 / total as f64;
    println!("inject conformance: {agree}/{total} cases agree ({pct:.1}%)");
    for (want, why) in KNOWN {
        println!("  KNOWN {want}: {why}");
    }
    for u in &unexpected {
        println!("  FAIL {u}");
    }
    assert!(
        unexpected.is_empty(),
        "cases that disagree and are not in KNOWN:\n{}",
        unexpected.join("\n")
    );
    assert!(
        now_agree.is_empty(),
        "cases in KNOWN that now agree (remove them): {now_agree:?}"
    );
    let listed: BTreeSet<&str> = cases.iter().map(|c| c.want.as_str()).collect();
    for (want, _) in KNOWN {
        assert!(
            listed.contains(want),
            "KNOWN names {want}, which is not a case"
        );
    }
    assert!(pct >= 90.0, "agreement {pct:.1}% is below 90%");
}
