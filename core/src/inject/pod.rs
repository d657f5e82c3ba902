//! Injection of one pod template: whether it gets a sidecar (Istio's rules), the init
//! container that runs `mesh-proxy init` with the redirect settings of the
//! `traffic.sidecar.istio.io/*` annotations, the sidecar container running `mesh-proxy run`,
//! probe rewriting, and the `sidecar.istio.io/status` annotation.

use serde_json::{Map, Value as J, json};

use super::probes::{self, PROXY_NAME};
use super::settings::Settings;

/// The init container's name (Istio's, so tools that look for it still find it).
pub const INIT_NAME: &str = "istio-init";
/// The init container's name when a CNI plugin installs the rules and it only checks them.
pub const VALIDATION_NAME: &str = "istio-validation";
/// The annotation recording what was injected.
pub const STATUS_ANNOTATION: &str = "sidecar.istio.io/status";
/// The uid and gid the sidecar runs as; its own traffic is not captured.
pub const PROXY_UID: u32 = 1337;
/// Where the sidecar finds its projected service-account token (audience `istio-ca`),
/// which authenticates it to meshd's CA (Istio's path).
pub const TOKEN_DIR: &str = "/var/run/secrets/tokens";
/// Where the sidecar finds the mesh's trust bundle, ConfigMap `istio-ca-root-cert`
/// (Istio's path).
pub const ROOT_CERT_DIR: &str = "/var/run/secrets/istio";
/// The projected token's lifetime (Istio's: 12 hours; the kubelet renews it at 80%).
const TOKEN_SECONDS: u32 = 43200;

/// Namespaces Istio never injects into.
const IGNORED_NAMESPACES: [&str; 2] = ["kube-system", "kube-public"];

/// What happened to a pod template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Injected,
    /// Left unchanged, with the reason.
    Skipped(String),
}

/// Why a pod template cannot be injected; `field` is the path below the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodError {
    pub field: String,
    pub message: String,
}

/// The object owning the template, for names and the namespace.
pub struct Owner<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
}

fn annotation<'a>(meta: &'a J, key: &str) -> Option<&'a str> {
    meta.pointer("/annotations")?.get(key)?.as_str()
}

fn label<'a>(meta: &'a J, key: &str) -> Option<&'a str> {
    meta.pointer("/labels")?.get(key)?.as_str()
}

fn truthy(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "y" | "yes" | "enabled" | "on" => Some(true),
        "false" | "n" | "no" | "disabled" | "off" => Some(false),
        _ => None,
    }
}

fn ann_path(key: &str) -> String {
    format!("metadata.annotations[\"{key}\"]")
}

/// Validates a comma-separated list of ports (or `*` when `wildcard`), Istio's way.
fn check_ports(key: &str, v: &str, wildcard: bool) -> Result<(), PodError> {
    let v = v.trim();
    if wildcard && v == "*" {
        return Ok(());
    }
    for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if !matches!(p.parse::<u16>(), Ok(n) if n > 0) {
            return Err(PodError {
                field: ann_path(key),
                message: format!("{key}: {p:?} is not a port (1-65535)"),
            });
        }
    }
    Ok(())
}

/// Validates a comma-separated list of CIDRs (or `*` when `wildcard`).
fn check_cidrs(key: &str, v: &str, wildcard: bool) -> Result<(), PodError> {
    let v = v.trim();
    if wildcard && v == "*" {
        return Ok(());
    }
    for c in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if c.parse::<cidr_check::Cidr>().is_err() {
            return Err(PodError {
                field: ann_path(key),
                message: format!("{key}: {c:?} is not a CIDR (ADDR/LEN)"),
            });
        }
    }
    Ok(())
}

/// A CIDR check without a crate: an IPv4 or IPv6 address, a slash, a prefix length.
mod cidr_check {
    pub struct Cidr;
    impl std::str::FromStr for Cidr {
        type Err = ();
        fn from_str(s: &str) -> Result<Cidr, ()> {
            let (addr, len) = s.split_once('/').ok_or(())?;
            let addr: std::net::IpAddr = addr.parse().map_err(|_| ())?;
            let len: u8 = len.parse().map_err(|_| ())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(());
            }
            Ok(Cidr)
        }
    }
}

/// The redirect settings of one pod (annotation, else the injector's default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub include_ip_ranges: String,
    pub exclude_ip_ranges: String,
    pub include_inbound_ports: String,
    pub exclude_inbound_ports: String,
    pub exclude_outbound_ports: String,
    /// Interfaces whose traffic is rerouted as outbound (KubeVirt).
    pub reroute_interfaces: String,
}

fn redirect(meta: &J, settings: &Settings, status_port: u16) -> Result<Redirect, PodError> {
    let get = |key: &str, default: &str| -> String {
        annotation(meta, &format!("traffic.sidecar.istio.io/{key}"))
            .unwrap_or(default)
            .trim()
            .to_owned()
    };
    let r = Redirect {
        include_ip_ranges: get("includeOutboundIPRanges", &settings.include_ip_ranges),
        exclude_ip_ranges: get("excludeOutboundIPRanges", &settings.exclude_ip_ranges),
        include_inbound_ports: get("includeInboundPorts", &settings.include_inbound_ports),
        exclude_inbound_ports: get("excludeInboundPorts", &settings.exclude_inbound_ports),
        exclude_outbound_ports: get("excludeOutboundPorts", &settings.exclude_outbound_ports),
        reroute_interfaces: annotation(meta, "istio.io/reroute-virtual-interfaces")
            .or_else(|| annotation(meta, "traffic.sidecar.istio.io/kubevirtInterfaces"))
            .unwrap_or("")
            .trim()
            .to_owned(),
    };
    let k = |s: &str| format!("traffic.sidecar.istio.io/{s}");
    check_cidrs(&k("includeOutboundIPRanges"), &r.include_ip_ranges, true)?;
    check_cidrs(&k("excludeOutboundIPRanges"), &r.exclude_ip_ranges, false)?;
    check_ports(&k("includeInboundPorts"), &r.include_inbound_ports, true)?;
    check_ports(&k("excludeInboundPorts"), &r.exclude_inbound_ports, false)?;
    check_ports(&k("excludeOutboundPorts"), &r.exclude_outbound_ports, false)?;
    // The agent's own ports are never captured inbound (Prometheus, health, status).
    let mut excluded: Vec<String> = vec!["15090".into(), "15021".into()];
    excluded.extend(
        r.exclude_inbound_ports
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
    );
    if status_port != 0 {
        excluded.push(status_port.to_string());
    }
    let mut seen = std::collections::BTreeSet::new();
    excluded.retain(|p| seen.insert(p.clone()));
    Ok(Redirect {
        exclude_inbound_ports: excluded.join(","),
        ..r
    })
}

/// The init container: `mesh-proxy init` with the redirect settings as flags.
fn init_container(settings: &Settings, r: &Redirect, uid: u32) -> J {
    let mut args = vec![
        "init".to_owned(),
        "--proxy-port".into(),
        "15001".into(),
        "--inbound-port".into(),
        "15006".into(),
        "--proxy-uid".into(),
        uid.to_string(),
        "--include-outbound-ip-ranges".into(),
        r.include_ip_ranges.clone(),
        "--exclude-outbound-ip-ranges".into(),
        r.exclude_ip_ranges.clone(),
        "--include-inbound-ports".into(),
        r.include_inbound_ports.clone(),
        "--exclude-inbound-ports".into(),
        r.exclude_inbound_ports.clone(),
    ];
    if !r.exclude_outbound_ports.is_empty() {
        args.push("--exclude-outbound-ports".into());
        args.push(r.exclude_outbound_ports.clone());
    }
    if !r.reroute_interfaces.is_empty() {
        args.push("--reroute-virtual-interfaces".into());
        args.push(r.reroute_interfaces.clone());
    }
    let name = if settings.cni {
        // The CNI plugin installed the rules; this step checks they are there.
        args.insert(1, "--check".into());
        VALIDATION_NAME
    } else {
        INIT_NAME
    };
    json!({
        "name": name,
        "image": settings.init_image,
        "command": ["mesh-proxy"],
        "args": args,
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": false,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "runAsUser": 0,
        },
    })
}

fn field_env(name: &str, path: &str) -> J {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

/// What the sidecar container is built from.
struct SidecarSpec<'a> {
    image: &'a str,
    native: bool,
    gateway: bool,
    /// The pod template's labels, passed as `--label` (the proxy's node metadata).
    labels: Vec<(String, String)>,
}

/// The sidecar: `mesh-proxy run --engine envoy`, its identity from the downward API.
fn sidecar(settings: &Settings, spec: &SidecarSpec<'_>, probers: &Map<String, J>) -> J {
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("INSTANCE_IP", "status.podIP"),
        field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
    ];
    if !probers.is_empty() {
        env.push(json!({
            "name": "ISTIO_KUBE_APP_PROBERS",
            "value": J::Object(probers.clone()).to_string(),
        }));
    }
    let mut args: Vec<String> = [
        "run",
        "--engine",
        "envoy",
        "--workload",
        "$(POD_NAMESPACE)/$(POD_NAME)",
        "--ip",
        "$(INSTANCE_IP)",
        "--service-account",
        "$(SERVICE_ACCOUNT)",
        "--xds-address",
        &settings.discovery_address,
        "--ca-root-cert",
        &format!("{ROOT_CERT_DIR}/root-cert.pem"),
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    if spec.gateway {
        args.extend(["--proxy-type".to_owned(), "router".to_owned()]);
    }
    for (k, v) in &spec.labels {
        args.extend(["--label".to_owned(), format!("{k}={v}")]);
    }
    let mut c = json!({
        "name": PROXY_NAME,
        "image": spec.image,
        "command": ["mesh-proxy"],
        "args": args,
        "env": env,
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": 15021},
            "failureThreshold": 4, "periodSeconds": 15, "timeoutSeconds": 3,
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": true,
            "runAsUser": PROXY_UID,
        },
        "volumeMounts": [
            {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"},
            {"mountPath": TOKEN_DIR, "name": "istio-token"},
            {"mountPath": ROOT_CERT_DIR, "name": "istiod-ca-cert"},
        ],
    });
    if spec.native
        && let Some(o) = c.as_object_mut()
    {
        o.insert("restartPolicy".into(), json!("Always"));
    }
    c
}

/// Merges the user's own `istio-proxy` container over ours (their fields win, as in Istio's
/// strategic merge of the template with the pod).
fn merge_user_container(ours: &mut J, user: &J) {
    let (Some(o), Some(u)) = (ours.as_object_mut(), user.as_object()) else {
        return;
    };
    for (k, v) in u {
        if k == "image" && v.as_str() == Some("auto") {
            continue;
        }
        o.insert(k.clone(), v.clone());
    }
}

fn ensure_object<'a>(v: &'a mut J, key: &str) -> Option<&'a mut Map<String, J>> {
    let e = v.as_object_mut()?.entry(key).or_insert(J::Null);
    if !e.is_object() {
        *e = J::Object(Map::new());
    }
    e.as_object_mut()
}

fn ensure_list<'a>(v: &'a mut J, key: &str) -> Option<&'a mut Vec<J>> {
    let e = v.as_object_mut()?.entry(key).or_insert(J::Null);
    if !e.is_array() {
        *e = J::Array(Vec::new());
    }
    e.as_array_mut()
}

fn take_list(spec: &mut J, key: &str) -> Vec<J> {
    match spec.get_mut(key).map(J::take) {
        Some(J::Array(a)) => a,
        _ => Vec::new(),
    }
}

/// Injects the pod template (`meta`, `spec`) of `owner` in place.
pub fn inject(
    meta: &mut J,
    spec: &mut J,
    owner: &Owner<'_>,
    settings: &Settings,
) -> Result<Outcome, PodError> {
    if let Some(status) = annotation(meta, STATUS_ANNOTATION) {
        return Err(PodError {
            field: ann_path(STATUS_ANNOTATION),
            message: format!(
                "{} {}/{} already has a sidecar (sidecar.istio.io/status: {status}); \
                 injecting twice would add a second one. Inject the original manifest instead",
                owner.kind, owner.namespace, owner.name
            ),
        });
    }
    if spec.get("hostNetwork").and_then(J::as_bool) == Some(true) {
        return Ok(Outcome::Skipped("host networking is enabled".into()));
    }
    if IGNORED_NAMESPACES.contains(&owner.namespace) {
        return Ok(Outcome::Skipped(format!(
            "namespace {} is never injected",
            owner.namespace
        )));
    }
    let wanted = label(meta, "sidecar.istio.io/inject")
        .or_else(|| annotation(meta, "sidecar.istio.io/inject"))
        .and_then(truthy);
    match wanted {
        Some(false) => {
            return Ok(Outcome::Skipped("sidecar.istio.io/inject is false".into()));
        }
        None if !settings.policy_enabled => {
            return Ok(Outcome::Skipped(
                "the injection policy is disabled and the pod does not ask for it".into(),
            ));
        }
        _ => {}
    }

    let status_port = match annotation(meta, "status.sidecar.istio.io/port") {
        Some(p) => p.trim().parse::<u16>().map_err(|_| PodError {
            field: ann_path("status.sidecar.istio.io/port"),
            message: format!("status.sidecar.istio.io/port: {p:?} is not a port"),
        })?,
        None => settings.status_port,
    };
    let r = redirect(meta, settings, status_port)?;
    let templates = annotation(meta, "inject.istio.io/templates").unwrap_or("sidecar");
    let gateway = templates.split(',').any(|t| t.trim() == "gateway");
    let interception = annotation(meta, "sidecar.istio.io/interceptionMode")
        .unwrap_or(&settings.interception_mode)
        .to_ascii_uppercase();
    let capture = !gateway && interception != "NONE";
    let native = !gateway
        && annotation(meta, "sidecar.istio.io/nativeSidecar")
            .and_then(truthy)
            .unwrap_or(settings.native_sidecar);
    let rewrite = annotation(meta, "sidecar.istio.io/rewriteAppHTTPProbers")
        .and_then(truthy)
        .unwrap_or(settings.rewrite_probes)
        && status_port != 0
        && !gateway;
    let image = annotation(meta, "sidecar.istio.io/proxyImage")
        .unwrap_or(&settings.proxy_image)
        .to_owned();

    let mut containers = take_list(spec, "containers");
    let mut inits = take_list(spec, "initContainers");
    let probers = if rewrite {
        probes::rewrite(&mut containers, &mut inits, status_port)
    } else {
        Map::new()
    };
    let labels = meta
        .get("labels")
        .and_then(J::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let spec_of_sidecar = SidecarSpec {
        image: &image,
        native,
        gateway,
        labels,
    };
    let mut proxy = sidecar(settings, &spec_of_sidecar, &probers);
    // A container the user named istio-proxy is the sidecar's override.
    if let Some(i) = containers
        .iter()
        .position(|c| c.get("name").and_then(J::as_str) == Some(PROXY_NAME))
    {
        let user = containers.remove(i);
        merge_user_container(&mut proxy, &user);
    }

    let mut added_inits: Vec<String> = Vec::new();
    let mut added_containers: Vec<String> = Vec::new();
    let mut new_inits = Vec::new();
    if capture {
        // The proxy's uid, as the user may have overridden it, is the one not captured.
        let uid = proxy
            .pointer("/securityContext/runAsUser")
            .and_then(J::as_u64)
            .and_then(|u| u32::try_from(u).ok())
            .unwrap_or(PROXY_UID);
        let mut init = init_container(settings, &r, uid);
        // A container the user named istio-init overrides ours, field by field.
        if let Some(i) = inits
            .iter()
            .position(|c| c.get("name").and_then(J::as_str) == Some(INIT_NAME))
        {
            let user = inits.remove(i);
            merge_user_container(&mut init, &user);
        }
        let name = init
            .get("name")
            .and_then(J::as_str)
            .unwrap_or(INIT_NAME)
            .to_owned();
        new_inits.push(init);
        added_inits.push(name);
    }
    new_inits.append(&mut inits);
    if native {
        new_inits.push(proxy);
        added_inits.push(PROXY_NAME.to_owned());
    } else {
        containers.push(proxy);
        added_containers.push(PROXY_NAME.to_owned());
    }
    let first_app = containers
        .iter()
        .filter_map(|c| c.get("name").and_then(J::as_str))
        .find(|n| *n != PROXY_NAME)
        .map(str::to_owned);
    if let Some(o) = spec.as_object_mut() {
        o.insert("containers".into(), J::Array(containers));
        if !new_inits.is_empty() {
            o.insert("initContainers".into(), J::Array(new_inits));
        } else {
            o.remove("initContainers");
        }
    }
    // The proxy's scratch space, its CA token (projected, audience istio-ca) and the
    // trust bundle meshd publishes in every namespace, as Istio's template has them.
    if let Some(volumes) = ensure_list(spec, "volumes") {
        for (name, volume) in [
            ("istio-envoy", json!({"emptyDir": {"medium": "Memory"}})),
            (
                "istio-token",
                json!({"projected": {"sources": [{"serviceAccountToken": {
                    "audience": "istio-ca",
                    "expirationSeconds": TOKEN_SECONDS,
                    "path": "istio-token",
                }}]}}),
            ),
            (
                "istiod-ca-cert",
                json!({"configMap": {"name": "istio-ca-root-cert"}}),
            ),
        ] {
            if !volumes
                .iter()
                .any(|v| v.get("name").and_then(J::as_str) == Some(name))
            {
                let mut v = volume;
                v["name"] = json!(name);
                volumes.push(v);
            }
        }
    }
    if !settings.image_pull_secrets.is_empty()
        && let Some(secrets) = ensure_list(spec, "imagePullSecrets")
    {
        for s in &settings.image_pull_secrets {
            if !secrets
                .iter()
                .any(|x| x.get("name").and_then(J::as_str) == Some(s))
            {
                secrets.push(json!({ "name": s }));
            }
        }
    }

    let status = json!({
        "initContainers": if added_inits.is_empty() { J::Null } else { json!(added_inits) },
        "containers": if added_containers.is_empty() { J::Null } else { json!(added_containers) },
        "volumes": ["istio-envoy", "istio-token", "istiod-ca-cert"],
        "imagePullSecrets": if settings.image_pull_secrets.is_empty() { J::Null } else { json!(settings.image_pull_secrets) },
        "revision": "default",
    });
    if !meta.is_object() {
        *meta = J::Object(Map::new());
    }
    let Some(annotations) = ensure_object(meta, "annotations") else {
        return Ok(Outcome::Injected);
    };
    annotations.insert("istio.io/rev".into(), json!("default"));
    if let Some(app) = first_app {
        annotations
            .entry("kubectl.kubernetes.io/default-container")
            .or_insert(json!(app.clone()));
        annotations
            .entry("kubectl.kubernetes.io/default-logs-container")
            .or_insert(json!(app));
    }
    if !annotations.contains_key("prometheus.io/scrape") {
        annotations.insert("prometheus.io/path".into(), json!("/stats/prometheus"));
        annotations.insert("prometheus.io/port".into(), json!(status_port.to_string()));
        annotations.insert("prometheus.io/scrape".into(), json!("true"));
    }
    annotations.insert(STATUS_ANNOTATION.into(), json!(status.to_string()));
    let canonical = label(meta, "app.kubernetes.io/name")
        .or_else(|| label(meta, "app"))
        .unwrap_or(owner.name)
        .to_owned();
    let revision = label(meta, "app.kubernetes.io/version")
        .or_else(|| label(meta, "version"))
        .unwrap_or("latest")
        .to_owned();
    let Some(labels) = ensure_object(meta, "labels") else {
        return Ok(Outcome::Injected);
    };
    labels.insert("security.istio.io/tlsMode".into(), json!("istio"));
    labels
        .entry("service.istio.io/canonical-name")
        .or_insert(json!(canonical));
    labels
        .entry("service.istio.io/canonical-revision")
        .or_insert(json!(revision));
    Ok(Outcome::Injected)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pod(annotations: J, containers: J, inits: J) -> (J, J) {
        (
            json!({"name": "p", "annotations": annotations}),
            json!({"containers": containers, "initContainers": inits}),
        )
    }

    fn run(meta: &mut J, spec: &mut J, settings: &Settings) -> Outcome {
        let owner = Owner {
            kind: "Pod",
            name: "p",
            namespace: "shop",
        };
        inject(meta, spec, &owner, settings).unwrap()
    }

    fn names(spec: &J, list: &str) -> Vec<String> {
        spec[list]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn arg_after(c: &J, flag: &str) -> String {
        let args = c["args"].as_array().unwrap();
        let i = args.iter().position(|a| a == flag).unwrap();
        args[i + 1].as_str().unwrap().to_owned()
    }

    #[test]
    fn the_sidecar_gets_its_ca_token_and_the_trust_bundle() {
        let (mut meta, mut spec) =
            pod(json!({}), json!([{"name": "app", "image": "a"}]), json!([]));
        spec["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
        assert_eq!(
            run(&mut meta, &mut spec, &Settings::default()),
            Outcome::Injected
        );
        let volumes = spec["volumes"].as_array().unwrap();
        assert_eq!(
            names(&spec, "volumes"),
            ["data", "istio-envoy", "istio-token", "istiod-ca-cert"]
        );
        let token = &volumes[2]["projected"]["sources"][0]["serviceAccountToken"];
        assert_eq!(token["audience"], "istio-ca");
        assert_eq!(token["path"], "istio-token");
        assert_eq!(volumes[3]["configMap"]["name"], "istio-ca-root-cert");
        let proxy = spec["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == PROXY_NAME)
            .unwrap();
        let mounts: Vec<(String, String)> = proxy["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_owned(),
                    m["mountPath"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(mounts.contains(&("istio-token".into(), "/var/run/secrets/tokens".into())));
        assert!(mounts.contains(&("istiod-ca-cert".into(), "/var/run/secrets/istio".into())));
        assert_eq!(
            arg_after(proxy, "--ca-root-cert"),
            "/var/run/secrets/istio/root-cert.pem"
        );
        let status: J =
            serde_json::from_str(meta["annotations"][STATUS_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(
            status["volumes"],
            json!(["istio-envoy", "istio-token", "istiod-ca-cert"])
        );
    }

    #[test]
    fn native_sidecar_opt_out_puts_the_proxy_among_the_containers() {
        let (mut meta, mut spec) = pod(
            json!({"sidecar.istio.io/nativeSidecar": "false"}),
            json!([{"name": "app"}]),
            json!([{"name": "setup"}]),
        );
        assert_eq!(
            run(&mut meta, &mut spec, &Settings::default()),
            Outcome::Injected
        );
        assert_eq!(names(&spec, "initContainers"), ["istio-init", "setup"]);
        assert_eq!(names(&spec, "containers"), ["app", "istio-proxy"]);
        assert!(spec["containers"][1].get("restartPolicy").is_none());
        let status: J =
            serde_json::from_str(meta["annotations"][STATUS_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(status["initContainers"], json!(["istio-init"]));
        assert_eq!(status["containers"], json!(["istio-proxy"]));
    }

    #[test]
    fn the_sidecar_runs_mesh_proxy_with_the_pods_identity() {
        let (mut meta, mut spec) = pod(json!({}), json!([{"name": "app"}]), json!([]));
        meta["labels"] = json!({"app": "web", "version": "v2"});
        run(&mut meta, &mut spec, &Settings::default());
        let proxy = &spec["initContainers"][1];
        assert_eq!(proxy["command"], json!(["mesh-proxy"]));
        let args: Vec<&str> = proxy["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args[..3], ["run", "--engine", "envoy"]);
        assert_eq!(
            arg_after(proxy, "--workload"),
            "$(POD_NAMESPACE)/$(POD_NAME)"
        );
        assert_eq!(arg_after(proxy, "--ip"), "$(INSTANCE_IP)");
        let labels: Vec<&str> = args
            .windows(2)
            .filter(|w| w[0] == "--label")
            .map(|w| w[1])
            .collect();
        assert_eq!(labels, ["app=web", "version=v2"]);
    }

    #[test]
    fn gateways_get_no_capture_and_keep_their_container() {
        let (mut meta, mut spec) = pod(
            json!({"inject.istio.io/templates": "gateway"}),
            json!([{"name": "istio-proxy", "image": "auto", "ports": [{"containerPort": 8080}]}]),
            json!([]),
        );
        run(&mut meta, &mut spec, &Settings::default());
        assert!(spec.get("initContainers").is_none());
        assert_eq!(names(&spec, "containers"), ["istio-proxy"]);
        let proxy = &spec["containers"][0];
        // `image: auto` takes the injector's image; the user's other fields win.
        assert_eq!(proxy["image"], crate::inject::settings::DEFAULT_IMAGE);
        assert_eq!(proxy["ports"], json!([{"containerPort": 8080}]));
    }

    #[test]
    fn user_overrides_of_the_proxy_uid_and_init_container_win() {
        let (mut meta, mut spec) = pod(
            json!({}),
            json!([{"name": "app"}, {"name": "istio-proxy", "securityContext": {"runAsUser": 1234}}]),
            json!([]),
        );
        run(&mut meta, &mut spec, &Settings::default());
        assert_eq!(arg_after(&spec["initContainers"][0], "--proxy-uid"), "1234");

        let (mut meta, mut spec) = pod(
            json!({}),
            json!([{"name": "app"}]),
            json!([{"name": "istio-init", "image": "custom"}]),
        );
        run(&mut meta, &mut spec, &Settings::default());
        assert_eq!(
            names(&spec, "initContainers"),
            ["istio-init", "istio-proxy"]
        );
        assert_eq!(spec["initContainers"][0]["image"], "custom");
    }

    #[test]
    fn cni_only_checks_and_interception_none_skips_the_init_step() {
        let cni = Settings {
            cni: true,
            ..Settings::default()
        };
        let (mut meta, mut spec) = pod(json!({}), json!([{"name": "app"}]), json!([]));
        run(&mut meta, &mut spec, &cni);
        assert_eq!(
            names(&spec, "initContainers"),
            ["istio-validation", "istio-proxy"]
        );
        assert_eq!(spec["initContainers"][0]["args"][1], "--check");

        let (mut meta, mut spec) = pod(
            json!({"sidecar.istio.io/interceptionMode": "NONE"}),
            json!([{"name": "app"}]),
            json!([]),
        );
        run(&mut meta, &mut spec, &Settings::default());
        assert_eq!(names(&spec, "initContainers"), ["istio-proxy"]);
    }

    #[test]
    fn disabled_policy_injects_only_on_request() {
        let off = Settings {
            policy_enabled: false,
            ..Settings::default()
        };
        let (mut meta, mut spec) = pod(json!({}), json!([{"name": "app"}]), json!([]));
        assert!(matches!(
            run(&mut meta, &mut spec, &off),
            Outcome::Skipped(_)
        ));
        let (mut meta, mut spec) = pod(
            json!({"sidecar.istio.io/inject": "true"}),
            json!([{"name": "app"}]),
            json!([]),
        );
        assert_eq!(run(&mut meta, &mut spec, &off), Outcome::Injected);
    }

    #[test]
    fn status_port_annotation_moves_probes_and_exclusions() {
        let (mut meta, mut spec) = pod(
            json!({"status.sidecar.istio.io/port": "123",
                   "traffic.sidecar.istio.io/excludeInboundPorts": "4,123"}),
            json!([{"name": "app", "readinessProbe": {"httpGet": {"port": 80}}}]),
            json!([]),
        );
        run(&mut meta, &mut spec, &Settings::default());
        assert_eq!(
            arg_after(&spec["initContainers"][0], "--exclude-inbound-ports"),
            "15090,15021,4,123"
        );
        assert_eq!(
            spec["containers"][0]["readinessProbe"]["httpGet"]["port"],
            123
        );
        assert_eq!(meta["annotations"]["prometheus.io/port"], "123");
    }
}
