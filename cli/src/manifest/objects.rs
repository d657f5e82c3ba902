//! The control plane's objects other than CRDs: namespace, service account, RBAC, mesh
//! config, meshd's Deployment and Service, the webhook configurations, and gateways.
//!
//! Names and labels follow Istio where tools and users look for them (`istio: pilot`,
//! `istio: ingressgateway`, the `istio` mesh-config ConfigMap, the injection webhook's
//! selectors); meshd's own objects are named `meshd`.

use serde_json::{Value as J, json};

use super::values::Values;

/// The name of meshd's Deployment, Service and ServiceAccount.
pub const MESHD: &str = "meshd";
/// The injection webhook configuration's name (Istio's).
pub const INJECTOR: &str = "istio-sidecar-injector";
/// meshd's CA directory in its pod (an emptyDir).
pub const MESHD_CA_DIR: &str = "/var/run/meshd/ca";
/// meshd's ports (DESIGN.md): xDS plaintext, xDS mTLS + CA, debug/metrics, webhooks.
pub const MESHD_PORTS: [(&str, u16); 4] = [
    ("grpc-xds", 15010),
    ("tls-xds", 15012),
    ("http-monitoring", 15014),
    ("https-webhook", 15017),
];

/// The labels every object carries; `component` says which part of the install it is.
pub fn labels(values: &Values, component: &str) -> J {
    json!({
        "app.kubernetes.io/part-of": "meshctl",
        "app.kubernetes.io/managed-by": "meshctl",
        "app.kubernetes.io/component": component,
        "install.meshctl.io/profile": values.profile.to_string(),
    })
}

/// The validation webhook configuration's name (Istio's, per namespace).
pub fn validator_name(values: &Values) -> String {
    format!("istio-validator-{}", values.namespace)
}

fn cluster_role_name(values: &Values) -> String {
    format!("meshd-{}", values.namespace)
}

pub fn namespace(values: &Values) -> J {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": values.namespace, "labels": labels(values, "base")},
    })
}

pub fn service_account(values: &Values, name: &str, component: &str) -> J {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": values.namespace, "labels": labels(values, component)},
    })
}

/// What meshd reads and writes cluster-wide: the Istio kinds, the registry (Services,
/// EndpointSlices, Pods, Namespaces, Nodes), mesh config, the webhook configurations whose
/// CA bundle it sets, and TokenReviews for 15012's client authentication.
pub fn cluster_role(values: &Values) -> J {
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| json!({"apiGroups": groups, "resources": resources, "verbs": verbs});
    let read = ["get", "list", "watch"];
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": cluster_role_name(values), "labels": labels(values, "base")},
        "rules": [
            rule(
                &["networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io"],
                &["*"],
                &read,
            ),
            rule(
                &["networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io"],
                &["*/status"],
                &["get", "update", "patch"],
            ),
            rule(&[""], &["services", "pods", "namespaces", "nodes", "endpoints"], &read),
            rule(&["discovery.k8s.io"], &["endpointslices"], &read),
            rule(&[""], &["configmaps"], &["get", "list", "watch", "create", "update", "patch"]),
            rule(&["apiextensions.k8s.io"], &["customresourcedefinitions"], &read),
            rule(
                &["admissionregistration.k8s.io"],
                &["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
                &["get", "list", "watch", "update", "patch"],
            ),
            rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            rule(&["authorization.k8s.io"], &["subjectaccessreviews"], &["create"]),
        ],
    })
}

pub fn cluster_role_binding(values: &Values) -> J {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": cluster_role_name(values), "labels": labels(values, "base")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role_name(values)},
        "subjects": [{"kind": "ServiceAccount", "name": MESHD, "namespace": values.namespace}],
    })
}

/// In its own namespace only: the CA's secret and leader-election leases.
pub fn role(values: &Values) -> J {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": MESHD, "namespace": values.namespace, "labels": labels(values, "base")},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "create", "update", "delete"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
        ],
    })
}

pub fn role_binding(values: &Values) -> J {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": MESHD, "namespace": values.namespace, "labels": labels(values, "base")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": MESHD},
        "subjects": [{"kind": "ServiceAccount", "name": MESHD, "namespace": values.namespace}],
    })
}

/// The mesh config, in the `istio` ConfigMap where Istio keeps it.
pub fn mesh_config(values: &Values) -> J {
    let mut mesh = format!(
        "defaultConfig:\n  discoveryAddress: {MESHD}.{}.svc:15012\nrootNamespace: {}\ntrustDomain: cluster.local\n",
        values.namespace, values.namespace
    );
    if values.access_log {
        mesh.push_str("accessLogFile: /dev/stdout\n");
    }
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": values.namespace, "labels": labels(values, "base")},
        "data": {"mesh": mesh},
    })
}

/// Istio's injector ConfigMap, which meshd's injection webhook follows: `values` (JSON:
/// the sidecar image as `global.hub`, `global.tag`, `global.proxy.image`) and `config`
/// (YAML: `policy`).
pub fn injector_config(values: &Values) -> J {
    let injector_values = json!({
        "global": {
            "hub": values.hub,
            "tag": values.tag,
            "proxy": {
                "image": values.proxy_image,
                "autoInject": if values.auto_inject { "enabled" } else { "disabled" },
            },
        },
    });
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": INJECTOR, "namespace": values.namespace, "labels": labels(values, "webhooks")},
        "data": {
            "values": injector_values.to_string(),
            "config": format!("policy: {}\n", if values.auto_inject { "enabled" } else { "disabled" }),
        },
    })
}

/// meshd's environment: the pod's identity, and its log filter.
fn meshd_env(values: &Values) -> J {
    let mut env = pod_env();
    if let Some(list) = env.as_array_mut() {
        list.push(json!({"name": "RUST_LOG", "value": values.meshd_log_level}));
    }
    env
}

fn pod_env() -> J {
    let field = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}});
    json!([
        field("POD_NAME", "metadata.name"),
        field("POD_NAMESPACE", "metadata.namespace"),
        field("INSTANCE_IP", "status.podIP"),
        field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
    ])
}

fn restricted_security_context() -> J {
    json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "runAsUser": 1337,
        "runAsGroup": 1337,
    })
}

pub fn meshd_deployment(values: &Values) -> J {
    let selector = json!({"app": MESHD, "istio": "pilot"});
    let ports: Vec<J> = MESHD_PORTS
        .iter()
        .map(|(name, port)| json!({"name": name, "containerPort": port, "protocol": "TCP"}))
        .collect();
    let mut pod_labels = labels(values, "meshd");
    if let (Some(l), Some(s)) = (pod_labels.as_object_mut(), selector.as_object()) {
        l.extend(s.clone());
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": MESHD, "namespace": values.namespace, "labels": labels(values, "meshd")},
        "spec": {
            "replicas": values.meshd_replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {"sidecar.istio.io/inject": "false"},
                },
                "spec": {
                    "serviceAccountName": MESHD,
                    "containers": [{
                        "name": MESHD,
                        "image": values.image("meshd"),
                        "args": [
                            "--kube",
                            "--xds-address=0.0.0.0:15010",
                            "--debug-address=0.0.0.0:15014",
                            format!("--ca-dir={MESHD_CA_DIR}"),
                        ],
                        "env": meshd_env(values),
                        // The root filesystem is read-only: the CA's files live on an
                        // emptyDir; the root itself is kept in Secret istio-ca-secret (or
                        // taken from cacerts), so a new pod keeps it. meshd writes it into
                        // the webhook configurations' caBundle and, as ConfigMap
                        // istio-ca-root-cert, into every namespace.
                        "volumeMounts": [{"name": "meshd-ca", "mountPath": MESHD_CA_DIR}],
                        "ports": ports,
                        "readinessProbe": {
                            "httpGet": {"path": "/ready", "port": 15014},
                            "initialDelaySeconds": 1,
                            "periodSeconds": 3,
                            "timeoutSeconds": 5,
                        },
                        "resources": {"requests": {"cpu": values.meshd_cpu, "memory": values.meshd_memory}},
                        "securityContext": restricted_security_context(),
                    }],
                    "volumes": [{"name": "meshd-ca", "emptyDir": {}}],
                },
            },
        },
    })
}

pub fn meshd_service(values: &Values) -> J {
    let ports: Vec<J> = MESHD_PORTS
        .iter()
        .map(|(name, port)| json!({"name": name, "port": port, "targetPort": port, "protocol": "TCP"}))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": MESHD, "namespace": values.namespace, "labels": labels(values, "meshd")},
        "spec": {"type": "ClusterIP", "selector": {"app": MESHD, "istio": "pilot"}, "ports": ports},
    })
}

fn webhook_client(values: &Values, path: &str) -> J {
    json!({"service": {"name": MESHD, "namespace": values.namespace, "path": path, "port": 15017}})
}

/// Istio's four injection webhooks: by namespace label (`istio-injection=enabled`) or
/// revision (`istio.io/rev=default`), and by pod label where the namespace has neither;
/// `sidecar.istio.io/inject=false` on a pod always wins.
pub fn injection_webhook(values: &Values) -> J {
    let expr = |key: &str, op: &str, vals: &[&str]| {
        let mut e = json!({"key": key, "operator": op});
        if !vals.is_empty() {
            e["values"] = json!(vals);
        }
        e
    };
    let not_false = expr("sidecar.istio.io/inject", "NotIn", &["false"]);
    let hook = |name: &str, ns: Vec<J>, obj: Vec<J>| {
        json!({
            "name": name,
            "admissionReviewVersions": ["v1"],
            "clientConfig": webhook_client(values, "/inject"),
            "failurePolicy": values.injection_failure_policy,
            "matchPolicy": "Equivalent",
            "namespaceSelector": {"matchExpressions": ns},
            "objectSelector": {"matchExpressions": obj},
            "reinvocationPolicy": "Never",
            "rules": [{
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
                "scope": "*",
            }],
            "sideEffects": "None",
            "timeoutSeconds": 10,
        })
    };
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": INJECTOR, "labels": labels(values, "webhooks")},
        "webhooks": [
            hook(
                "rev.namespace.sidecar-injector.istio.io",
                vec![expr("istio.io/rev", "In", &["default"]), expr("istio-injection", "DoesNotExist", &[])],
                vec![not_false.clone()],
            ),
            hook(
                "rev.object.sidecar-injector.istio.io",
                vec![expr("istio.io/rev", "DoesNotExist", &[]), expr("istio-injection", "DoesNotExist", &[])],
                vec![not_false.clone(), expr("istio.io/rev", "In", &["default"])],
            ),
            hook(
                "namespace.sidecar-injector.istio.io",
                vec![expr("istio-injection", "In", &["enabled"])],
                vec![not_false],
            ),
            hook(
                "object.sidecar-injector.istio.io",
                vec![expr("istio-injection", "DoesNotExist", &[]), expr("istio.io/rev", "DoesNotExist", &[])],
                vec![expr("sidecar.istio.io/inject", "In", &["true"]), expr("istio.io/rev", "DoesNotExist", &[])],
            ),
        ],
    })
}

/// Every Istio group's CREATE and UPDATE go through mesh-core's validator.
pub fn validation_webhook(values: &Values) -> J {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": validator_name(values), "labels": labels(values, "webhooks")},
        "webhooks": [{
            "name": "rev.validation.istio.io",
            "admissionReviewVersions": ["v1"],
            "clientConfig": webhook_client(values, "/validate"),
            "failurePolicy": values.validation_failure_policy,
            "matchPolicy": "Equivalent",
            "rules": [{
                "apiGroups": ["networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io"],
                "apiVersions": ["*"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["*"],
                "scope": "*",
            }],
            "sideEffects": "None",
            "timeoutSeconds": 10,
        }],
    })
}

/// A standalone gateway: mesh-proxy as a `router` with Istio's labels, so Gateway
/// selectors written for Istio (`istio: ingressgateway`) pick it.
pub fn gateway(values: &Values, name: &str, istio_label: &str, service_type: &str) -> [J; 3] {
    let sa = format!("{name}-service-account");
    let selector = json!({"app": name, "istio": istio_label});
    let mut pod_labels = labels(values, "gateways");
    if let (Some(l), Some(s)) = (pod_labels.as_object_mut(), selector.as_object()) {
        l.extend(s.clone());
    }
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": values.namespace, "labels": labels(values, "gateways")},
        "spec": {
            "replicas": values.gateway_replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": {
                    "serviceAccountName": sa,
                    "containers": [{
                        "name": "mesh-proxy",
                        "image": values.image("mesh-proxy"),
                        "args": [
                            "run",
                            "--proxy-type=router",
                            format!("--xds-address={MESHD}.{}.svc:15010", values.namespace),
                            "--workload=$(POD_NAMESPACE)/$(POD_NAME)",
                            "--ip=$(INSTANCE_IP)",
                            "--service-account=$(SERVICE_ACCOUNT)",
                            format!("--label=app={name}"),
                            format!("--label=istio={istio_label}"),
                        ],
                        "env": pod_env(),
                        "ports": [
                            {"name": "http2", "containerPort": 8080, "protocol": "TCP"},
                            {"name": "https", "containerPort": 8443, "protocol": "TCP"},
                            {"name": "status-port", "containerPort": 15021, "protocol": "TCP"},
                        ],
                        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 2},
                        "securityContext": restricted_security_context(),
                    }],
                },
            },
        },
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": values.namespace, "labels": labels(values, "gateways")},
        "spec": {
            "type": service_type,
            "selector": selector,
            "ports": [
                {"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"},
                {"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
            ],
        },
    });
    [
        service_account(values, &sa, "gateways"),
        deployment,
        service,
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::manifest::values::Profile;
    use mesh_core::inject::settings::Settings;

    #[test]
    fn the_injector_configmap_gives_meshd_the_set_image_and_policy() {
        let mut v = Values::for_profile(Profile::Default);
        v.set("hub=registry.example/mesh").unwrap();
        v.set("tag=2.0").unwrap();
        let mut s = Settings::default();
        s.apply_injector_configmap(&injector_config(&v)).unwrap();
        assert_eq!(s.proxy_image, "registry.example/mesh/mesh-proxy:2.0");
        assert!(s.policy_enabled);
        v.set("global.proxy.image=other.io/proxy:9").unwrap();
        v.set("global.proxy.autoInject=disabled").unwrap();
        let cm = injector_config(&v);
        assert_eq!(cm["metadata"]["name"], "istio-sidecar-injector");
        let mut s = Settings::default();
        s.apply_injector_configmap(&cm).unwrap();
        assert_eq!(s.proxy_image, "other.io/proxy:9");
        assert!(!s.policy_enabled);
        assert!(v.set("global.proxy.autoInject=maybe").is_err());
    }
}
