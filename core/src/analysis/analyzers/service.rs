//! The analyzer of Istio's `service` package: `service.PortNameAnalyzer` reports Service
//! ports whose protocol Istio cannot tell from the port's name (or `appProtocol`), so that
//! it falls back to protocol sniffing, and ExternalName Services whose ports cannot carry
//! plain TCP through the proxy.
//!
//! It also owns [`port_protocol`], Istio's reading of a Service port's protocol.

use serde_json::Value;

use crate::analysis::json::{arr_at, str_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

use super::annotations::in_ignored_namespace;

/// The label Istio puts on Services it deploys for Gateways and waypoints.
const GATEWAY_MANAGED_LABEL: &str = "gateway.istio.io/managed";

/// Values of [`GATEWAY_MANAGED_LABEL`] meaning Istio created the Service itself.
const ISTIO_GATEWAY_CONTROLLERS: &[&str] = &[
    "istio.io-gateway-controller",
    "istio.io-mesh-controller",
    "istio.io-eastwest-controller",
];

/// Ports whose protocol defaults to TCP when the name says nothing (SMTP, DNS, MySQL,
/// MongoDB): sniffing would break them.
const WELL_KNOWN_TCP_PORTS: &[u64] = &[25, 53, 3306, 27017];

/// A protocol as Istio reads it from a Service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortProtocol {
    Http,
    Http2,
    HttpProxy,
    Https,
    Grpc,
    GrpcWeb,
    Tcp,
    Tls,
    Udp,
    Sctp,
    Mongo,
    Redis,
    MySql,
    /// Nothing recognizable: Istio sniffs the protocol.
    Unsupported,
}

impl PortProtocol {
    /// Istio's names, case-insensitively (`http`, `grpc-web`, `mongo`, ...).
    pub fn parse(name: &str) -> PortProtocol {
        match name.to_ascii_lowercase().as_str() {
            "tcp" => PortProtocol::Tcp,
            "udp" => PortProtocol::Udp,
            "grpc" => PortProtocol::Grpc,
            "grpc-web" => PortProtocol::GrpcWeb,
            "http" => PortProtocol::Http,
            "http_proxy" => PortProtocol::HttpProxy,
            "http2" => PortProtocol::Http2,
            "https" => PortProtocol::Https,
            "tls" => PortProtocol::Tls,
            "mongo" => PortProtocol::Mongo,
            "redis" => PortProtocol::Redis,
            "mysql" => PortProtocol::MySql,
            _ => PortProtocol::Unsupported,
        }
    }
}

/// The protocol Istio gives a Service port: UDP and SCTP ports are taken as they are;
/// otherwise `appProtocol` (when set) or else the port name's prefix before the first `-`
/// decides, and well-known ports default to TCP.
pub fn port_protocol(
    port: u64,
    name: &str,
    protocol: &str,
    app_protocol: Option<&str>,
) -> PortProtocol {
    match protocol {
        "UDP" => return PortProtocol::Udp,
        "SCTP" => return PortProtocol::Sctp,
        _ => {}
    }
    let name = match app_protocol {
        Some("kubernetes.io/h2c") => return PortProtocol::Http2,
        Some("kubernetes.io/ws") => return PortProtocol::Http,
        Some("kubernetes.io/wss") => return PortProtocol::Https,
        Some(app) => app,
        None => name,
    };
    if name
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("grpc-web"))
    {
        return PortProtocol::GrpcWeb;
    }
    let prefix = name.split('-').next().unwrap_or(name);
    match PortProtocol::parse(prefix) {
        PortProtocol::Unsupported if WELL_KNOWN_TCP_PORTS.contains(&port) => PortProtocol::Tcp,
        p => p,
    }
}

/// Istio's own control-plane objects (labelled `istio` or `release: istio`).
fn is_istio_control_plane(r: &Resource) -> bool {
    r.labels.contains_key("istio") || r.labels.get("release").is_some_and(|v| v == "istio")
}

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[AnalyzerDef {
    name: "service.PortNameAnalyzer",
    description: "Checks the port names associated with each service",
    messages: &[
        &catalog::PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
        &catalog::EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME,
    ],
    run: analyze_port_names,
}];

fn analyze_port_names(ctx: &mut Context<'_>) {
    let store = ctx.store;
    for svc in store.of(groups::CORE, "Service") {
        if in_ignored_namespace(svc) || is_istio_control_plane(svc) {
            continue;
        }
        let managed_by_istio = svc
            .labels
            .get(GATEWAY_MANAGED_LABEL)
            .is_some_and(|v| ISTIO_GATEWAY_CONTROLLERS.contains(&v.as_str()));
        if managed_by_istio {
            continue;
        }
        let external_name = str_at(&svc.json, "/spec/type") == Some("ExternalName");
        for (i, port) in arr_at(&svc.json, "/spec/ports").iter().enumerate() {
            check_port(ctx, svc, i, port, external_name);
        }
    }
}

fn check_port(ctx: &mut Context<'_>, svc: &Resource, i: usize, port: &Value, external: bool) {
    let name = str_at(port, "/name").unwrap_or("");
    let number = port.get("port").and_then(Value::as_u64).unwrap_or(0);
    let protocol = str_at(port, "/protocol").unwrap_or("TCP");
    let app_protocol = str_at(port, "/appProtocol");
    let unsupported =
        port_protocol(number, name, protocol, app_protocol) == PortProtocol::Unsupported;
    let reported = unsupported || (external && name == "tcp");
    if !reported {
        return;
    }
    let path = format!("spec.ports[{i}].name");
    if external {
        ctx.report(
            &catalog::EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME,
            svc,
            &path,
            &[],
        );
    } else {
        let target = match port.get("targetPort") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => number.to_string(),
        };
        ctx.report(
            &catalog::PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
            svc,
            &path,
            &[&name, &number, &target],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyzers::annotations::test_support::run;

    #[test]
    fn ports_istio_can_classify_are_not_reported() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports:
  - {name: web, port: 80, appProtocol: http}
  - {name: dns, port: 53}
  - {name: stats, port: 9000, protocol: UDP}
  - {name: grpc-web-api, port: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: istiod, namespace: istio-system, labels: {app: istiod, istio: pilot}}
spec: {ports: [{name: foo, port: 15010}]}
"#;
        assert_eq!(run("service.PortNameAnalyzer", yaml), vec![]);
    }

    #[test]
    fn protocols_from_names() {
        assert_eq!(
            port_protocol(80, "http-web", "TCP", None),
            PortProtocol::Http
        );
        assert_eq!(
            port_protocol(80, "GRPC-Web-x", "TCP", None),
            PortProtocol::GrpcWeb
        );
        assert_eq!(
            port_protocol(80, "foo", "TCP", None),
            PortProtocol::Unsupported
        );
        assert_eq!(
            port_protocol(80, "", "TCP", None),
            PortProtocol::Unsupported
        );
        assert_eq!(port_protocol(80, "foo", "UDP", None), PortProtocol::Udp);
        assert_eq!(port_protocol(3306, "db", "TCP", None), PortProtocol::Tcp);
    }

    #[test]
    fn app_protocol_wins_over_name() {
        assert_eq!(
            port_protocol(80, "foo", "TCP", Some("http")),
            PortProtocol::Http
        );
        assert_eq!(
            port_protocol(80, "http", "TCP", Some("kubernetes.io/h2c")),
            PortProtocol::Http2
        );
        assert_eq!(
            port_protocol(80, "http", "TCP", Some("custom.io/x")),
            PortProtocol::Unsupported
        );
    }
}
