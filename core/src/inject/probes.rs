//! Probe rewriting: the kubelet's HTTP, TCP and gRPC probes (and lifecycle hooks) of the app
//! containers are sent to the agent's status port, which runs the original check from inside
//! the pod. Without this, mutual TLS on the app's ports would fail the kubelet's plaintext
//! checks. The original checks go to the sidecar as `ISTIO_KUBE_APP_PROBERS`, a JSON map
//! from the rewritten path to the check, as Istio writes it.

use serde_json::{Map, Value as J, json};

/// The container name the sidecar takes.
pub const PROXY_NAME: &str = "istio-proxy";

/// The probes rewritten, with the path suffix each gets.
const PROBES: [(&str, &str); 3] = [
    ("readinessProbe", "readyz"),
    ("livenessProbe", "livez"),
    ("startupProbe", "startupz"),
];
const HOOKS: [(&str, &str); 2] = [("preStop", "prestopz"), ("postStart", "poststartz")];

/// Resolves a probe's port: a number, or a name among the container's ports.
fn resolve_port(container: &J, port: &J) -> Option<i64> {
    match port {
        J::Number(n) => n.as_i64(),
        J::String(s) => s.parse().ok().or_else(|| {
            container
                .get("ports")?
                .as_array()?
                .iter()
                .find(|p| p.get("name").and_then(J::as_str) == Some(s))?
                .get("containerPort")?
                .as_i64()
        }),
        _ => None,
    }
}

/// The check the agent runs in place of `handler` (an object with one of httpGet, tcpSocket,
/// grpc), or `None` when it is not rewritable.
fn prober(container: &J, handler: &J, timeout: Option<&J>) -> Option<J> {
    let mut out = Map::new();
    if let Some(get) = handler.get("httpGet") {
        let port = resolve_port(container, get.get("port")?)?;
        let mut g = Map::new();
        for key in ["path"] {
            if let Some(v) = get.get(key) {
                g.insert(key.into(), v.clone());
            }
        }
        g.insert("port".into(), json!(port));
        for key in ["host", "scheme", "httpHeaders"] {
            if let Some(v) = get.get(key) {
                g.insert(key.into(), v.clone());
            }
        }
        out.insert("httpGet".into(), J::Object(g));
    } else if let Some(tcp) = handler.get("tcpSocket") {
        let port = resolve_port(container, tcp.get("port")?)?;
        out.insert("tcpSocket".into(), json!({ "port": port }));
    } else if let Some(grpc) = handler.get("grpc") {
        let mut g = grpc.clone();
        if let Some(o) = g.as_object_mut() {
            o.insert(
                "port".into(),
                json!(resolve_port(container, grpc.get("port")?)?),
            );
        }
        out.insert("grpc".into(), g);
    } else {
        return None;
    }
    if let Some(t) = timeout {
        out.insert("timeoutSeconds".into(), t.clone());
    }
    Some(J::Object(out))
}

/// Replaces the handler of `probe` by an HTTP GET of `path` on the status port.
fn point_at_agent(probe: &mut Map<String, J>, path: &str, status_port: u16) {
    let had_scheme = probe
        .get("httpGet")
        .is_some_and(|g| g.get("scheme").is_some());
    for key in ["httpGet", "tcpSocket", "grpc"] {
        probe.remove(key);
    }
    let mut get = json!({ "path": path, "port": status_port });
    // The agent itself answers plain HTTP, whatever scheme the app's check uses.
    if had_scheme && let Some(g) = get.as_object_mut() {
        g.insert("scheme".into(), json!("HTTP"));
    }
    probe.insert("httpGet".into(), get);
}

/// Rewrites the probes and lifecycle hooks of every app container in `containers` (and of
/// the native sidecars among `inits`, which the kubelet probes too) and returns the original
/// checks (path -> check), sorted by path.
pub fn rewrite(containers: &mut [J], inits: &mut [J], status_port: u16) -> Map<String, J> {
    let mut probers = std::collections::BTreeMap::new();
    let native = inits
        .iter_mut()
        .filter(|c| c.get("restartPolicy").and_then(J::as_str) == Some("Always"));
    for c in containers.iter_mut().chain(native) {
        let name = c.get("name").and_then(J::as_str).unwrap_or("").to_owned();
        if name == PROXY_NAME {
            continue;
        }
        let snapshot = c.clone();
        for (field, suffix) in PROBES {
            let Some(J::Object(probe)) = c.get_mut(field) else {
                continue;
            };
            let original = J::Object(probe.clone());
            if let Some(check) = prober(&snapshot, &original, probe.get("timeoutSeconds")) {
                let path = format!("/app-health/{name}/{suffix}");
                point_at_agent(probe, &path, status_port);
                probers.insert(path, check);
            }
        }
        for (hook, suffix) in HOOKS {
            let Some(J::Object(handler)) = c.pointer_mut(&format!("/lifecycle/{hook}")) else {
                continue;
            };
            let original = J::Object(handler.clone());
            if let Some(check) = prober(&snapshot, &original, None) {
                let path = format!("/app-lifecycle/{name}/{suffix}");
                point_at_agent(handler, &path, status_port);
                probers.insert(path, check);
            }
        }
    }
    probers.into_iter().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn named_ports_resolve_and_probes_point_at_the_agent() {
        let mut containers = vec![json!({
            "name": "web",
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTPS"},
                               "timeoutSeconds": 3, "periodSeconds": 5},
            "livenessProbe": {"tcpSocket": {"port": 9000}},
            "startupProbe": {"exec": {"command": ["true"]}},
        })];
        let probers = rewrite(&mut containers, &mut [], 15020);
        assert_eq!(
            J::Object(probers),
            json!({
                "/app-health/web/livez": {"tcpSocket": {"port": 9000}},
                "/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTPS"},
                                           "timeoutSeconds": 3},
            })
        );
        let c = &containers[0];
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet": {"path": "/app-health/web/readyz", "port": 15020, "scheme": "HTTP"},
                   "timeoutSeconds": 3, "periodSeconds": 5})
        );
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"path": "/app-health/web/livez", "port": 15020}})
        );
        // exec probes run inside the container: untouched.
        assert_eq!(c["startupProbe"], json!({"exec": {"command": ["true"]}}));
    }

    #[test]
    fn the_proxy_and_unknown_port_names_are_left_alone() {
        let mut containers = vec![
            json!({"name": "istio-proxy", "readinessProbe": {"httpGet": {"port": 15021}}}),
            json!({"name": "app", "readinessProbe": {"httpGet": {"port": "nope"}}}),
        ];
        let before = containers.clone();
        assert!(rewrite(&mut containers, &mut [], 15020).is_empty());
        assert_eq!(containers, before);
    }
}
