//! Gateway rules: the gateway's name, servers (hosts, port, bind) and server TLS settings.
//! The TLS checks are shared with Sidecar ingress listeners.

use std::collections::BTreeSet;

use super::Report;
use super::common::*;
use crate::model::networking::{
    Gateway, Port, Server, ServerTlsMode, ServerTlsSettings, TlsProtocol,
};

const UNIX_PREFIX: &str = "unix://";

pub fn validate(out: &mut Report<'_>, gw: &Gateway) {
    let name = out.res.name.clone();
    if !is_dns1123_label(&name) {
        out.error("metadata.name", format!("invalid gateway name: {name:?}"));
    }
    if gw.servers.is_empty() {
        out.error("spec.servers", "gateway must have at least one server");
    }
    for (i, server) in gw.servers.iter().enumerate() {
        validate_server(out, &format!("spec.servers[{i}]"), server);
    }
    let mut port_names = BTreeSet::new();
    for (i, s) in gw.servers.iter().enumerate() {
        let Some(port) = &s.port else {
            continue;
        };
        let path = format!("spec.servers[{i}].port.name");
        if !port_names.insert(port.name.as_str()) {
            out.error(
                &path,
                format!(
                    "port names in servers must be unique: duplicate name {}",
                    port.name
                ),
            );
        }
        if !Protocol::parse(&port.protocol).is_http()
            && s.tls.as_ref().is_some_and(|t| t.https_redirect)
        {
            out.warn(
                &format!("spec.servers[{i}].tls.httpsRedirect"),
                "tls.httpsRedirect should only be used with http servers",
            );
        }
    }
}

fn validate_server(out: &mut Report<'_>, path: &str, server: &Server) {
    if server.hosts.is_empty() {
        out.error(path, "server config must contain at least one host");
    }
    for (i, h) in server.hosts.iter().enumerate() {
        out.check_all(
            &format!("{path}.hosts[{i}]"),
            validate_namespace_slash_wildcard_hostname(h, true),
        );
    }
    let before = out.error_count();
    validate_server_port(
        out,
        &format!("{path}.port"),
        server.port.as_ref(),
        &server.bind,
    );
    let port_ok = out.error_count() == before;
    validate_server_bind(
        out,
        &format!("{path}.bind"),
        server.port.as_ref(),
        &server.bind,
    );
    if let Some(tls) = &server.tls {
        validate_server_tls(out, &format!("{path}.tls"), tls);
    }
    if port_ok && let Some(port) = &server.port {
        let p = Protocol::parse(&port.protocol);
        match &server.tls {
            None if p.is_tls() => out.error(
                path,
                "server must have TLS settings for HTTPS/TLS protocols",
            ),
            Some(tls) if !p.is_tls() => {
                if p.is_http() {
                    let passthrough = matches!(
                        tls.mode,
                        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
                    );
                    if !passthrough
                        || !tls.ca_certificates.is_empty()
                        || !tls.private_key.is_empty()
                        || !tls.server_certificate.is_empty()
                    {
                        out.error(
                            &format!("{path}.tls"),
                            "server cannot have TLS settings for plain text HTTP ports",
                        );
                    }
                } else {
                    out.error(
                        &format!("{path}.tls"),
                        "server cannot have TLS settings for non HTTPS/TLS ports",
                    );
                }
            }
            _ => {}
        }
    }
}

fn validate_server_port(out: &mut Report<'_>, path: &str, port: Option<&Port>, bind: &str) {
    let Some(port) = port else {
        out.error(path, "port is required");
        return;
    };
    if Protocol::parse(&port.protocol) == Protocol::Unsupported {
        out.error(
            &format!("{path}.protocol"),
            format!(
                "invalid protocol {:?}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
                port.protocol
            ),
        );
    }
    if port.number > 0 || !bind.starts_with(UNIX_PREFIX) {
        out.check(
            &format!("{path}.number"),
            validate_port(i64::from(port.number)),
        );
    }
    if port.target_port > 0 {
        out.error(
            &format!("{path}.targetPort"),
            "targetPort has no impact on Gateways",
        );
    }
    if port.name.is_empty() {
        out.error(
            path,
            format!(
                "port name must be set: number:{} protocol:{:?}",
                port.number, port.protocol
            ),
        );
    }
}

fn validate_server_bind(out: &mut Report<'_>, path: &str, port: Option<&Port>, bind: &str) {
    if let Some(uds) = bind.strip_prefix(UNIX_PREFIX) {
        out.check(path, validate_unix_address(uds));
        if let Some(p) = port
            && p.number != 0
        {
            out.error(
                path,
                format!(
                    "port number must be 0 for unix domain socket: number:{}",
                    p.number
                ),
            );
        }
    } else if !bind.is_empty() {
        out.check(path, validate_ip(bind));
    }
}

/// Cipher suites Envoy's gateways accept by name.
const CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

fn is_valid_cipher_suite(cs: &str) -> bool {
    if cs.is_empty() || cs == "ALL" {
        return true;
    }
    // Expressions with operators (`-`, `+`, `!`) are left to Envoy.
    if !cs.chars().next().is_some_and(char::is_alphanumeric) {
        return true;
    }
    CIPHER_SUITES.contains(&cs)
}

/// TLS settings of a server (Gateway servers and Sidecar ingress listeners).
pub(super) fn validate_server_tls(out: &mut Report<'_>, path: &str, tls: &ServerTlsSettings) {
    if matches!(
        tls.min_protocol_version,
        TlsProtocol::TlsV1_0 | TlsProtocol::TlsV1_1
    ) && tls.cipher_suites.is_empty()
    {
        out.warn(
            path,
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
        );
    }
    let mut invalid = BTreeSet::new();
    let mut valid = BTreeSet::new();
    let mut duplicate = BTreeSet::new();
    for cs in &tls.cipher_suites {
        if !is_valid_cipher_suite(cs) {
            invalid.insert(cs.as_str());
        } else if !valid.insert(cs.as_str()) {
            duplicate.insert(cs.as_str());
        }
    }
    if !invalid.is_empty() {
        out.warn(
            &format!("{path}.cipherSuites"),
            format!(
                "ignoring invalid cipher suites: [{}]",
                invalid.into_iter().collect::<Vec<_>>().join(" ")
            ),
        );
    }
    if !duplicate.is_empty() {
        out.warn(
            &format!("{path}.cipherSuites"),
            format!(
                "ignoring duplicate cipher suites: [{}]",
                duplicate.into_iter().collect::<Vec<_>>().join(" ")
            ),
        );
    }

    if tls.mode == ServerTlsMode::IstioMutual {
        for (set, what) in [
            (!tls.server_certificate.is_empty(), "server certificate"),
            (!tls.private_key.is_empty(), "private key"),
            (!tls.ca_certificates.is_empty(), "CA bundle"),
            (!tls.tls_certificates.is_empty(), "tlsCertificates"),
            (!tls.credential_name.is_empty(), "credentialName"),
            (!tls.credential_names.is_empty(), "credentialNames"),
        ] {
            if set {
                out.error(
                    path,
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
                );
            }
        }
        return;
    }
    let has_certs = !tls.ca_crl.is_empty()
        || !tls.server_certificate.is_empty()
        || !tls.private_key.is_empty()
        || !tls.ca_certificates.is_empty()
        || !tls.tls_certificates.is_empty()
        || !tls.credential_name.is_empty()
        || !tls.credential_names.is_empty();
    if matches!(
        tls.mode,
        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
    ) && has_certs
    {
        out.warn(
            path,
            format!(
                "{} mode does not use certificates, they will be ignored",
                tls.mode
            ),
        );
    }
    let sources = [
        !tls.server_certificate.is_empty() && !tls.private_key.is_empty(),
        !tls.credential_name.is_empty(),
        !tls.credential_names.is_empty(),
        !tls.tls_certificates.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources > 1 {
        out.error(
            path,
            "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified",
        );
    }
    let terminating = matches!(
        tls.mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if terminating && (!tls.credential_name.is_empty() || !tls.credential_names.is_empty()) {
        // Credentials come from a secret: nothing else is required.
        return;
    }
    if terminating {
        let prefix = if tls.mode == ServerTlsMode::Simple {
            "SIMPLE TLS"
        } else {
            if tls.ca_certificates.is_empty() {
                out.error(path, "MUTUAL TLS requires a client CA bundle");
            }
            "MUTUAL TLS"
        };
        if tls.tls_certificates.len() > 2 {
            out.warn(
                path,
                format!("{prefix} can support up to 2 server certificates"),
            );
        }
        let certs: Vec<(&str, &str)> = if tls.tls_certificates.is_empty() {
            vec![(&tls.server_certificate, &tls.private_key)]
        } else {
            tls.tls_certificates
                .iter()
                .map(|c| (c.server_certificate.as_str(), c.private_key.as_str()))
                .collect()
        };
        for (cert, key) in certs {
            if cert.is_empty() {
                out.error(path, format!("{prefix} requires a server certificate"));
            }
            if key.is_empty() {
                out.error(path, format!("{prefix} requires a private key"));
            }
        }
    }
    if !tls.ca_crl.is_empty() {
        if !tls.credential_name.is_empty() {
            out.error(
                path,
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            );
        }
        if tls.mode == ServerTlsMode::Simple {
            out.error(path, "CRL is not supported with SIMPLE TLS");
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::testing::*;

    const SERVER: &str =
        "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"*\"]\n";

    #[test]
    fn servers() {
        accepts("Gateway", SERVER);
        accepts(
            "Gateway",
            "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"ns/*.example.com\", \"./a.example.com\"]\n",
        );
        rejects("Gateway", "servers: []\n", "at least one server");
        rejects(
            "Gateway",
            "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n",
            "at least one host",
        );
        rejects(
            "Gateway",
            "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [short]\n",
            "short names",
        );
        rejects(
            "Gateway",
            "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"a*.example.com\"]\n",
            "partial wildcard",
        );
        rejects(
            "Gateway",
            "servers:\n- port: {number: 80, name: http, protocol: HTTPX}\n  hosts: [\"*\"]\n",
            "invalid protocol",
        );
        rejects(
            "Gateway",
            "servers:\n- port: {number: 0, name: http, protocol: HTTP}\n  hosts: [\"*\"]\n",
            "port number 0",
        );
        rejects(
            "Gateway",
            "servers:\n- port: {number: 80, protocol: HTTP}\n  hosts: [\"*\"]\n",
            "port name must be set",
        );
        rejects(
            "Gateway",
            "servers:\n- port: {number: 80, name: a, protocol: HTTP}\n  hosts: [\"*\"]\n- port: {number: 81, name: a, protocol: HTTP}\n  hosts: [\"*\"]\n",
            "must be unique",
        );
        rejects(
            "Gateway",
            "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  bind: not-an-ip\n  hosts: [\"*\"]\n",
            "not a valid IP",
        );
    }

    #[test]
    fn tls() {
        accepts(
            "Gateway",
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [\"*\"]\n  tls: {mode: SIMPLE, credentialName: cert}\n",
        );
        accepts(
            "Gateway",
            "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"*\"]\n  tls: {httpsRedirect: true}\n",
        );
        rejects(
            "Gateway",
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [\"*\"]\n",
            "must have TLS settings",
        );
        rejects(
            "Gateway",
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [\"*\"]\n  tls: {mode: SIMPLE}\n",
            "requires a server certificate",
        );
        rejects(
            "Gateway",
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [\"*\"]\n  tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k}\n",
            "client CA bundle",
        );
        rejects(
            "Gateway",
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [\"*\"]\n  tls: {mode: ISTIO_MUTUAL, credentialName: c}\n",
            "ISTIO_MUTUAL TLS cannot have",
        );
        rejects(
            "Gateway",
            "servers:\n- port: {number: 80, name: tcp, protocol: TCP}\n  hosts: [\"*\"]\n  tls: {mode: SIMPLE, credentialName: c}\n",
            "non HTTPS/TLS ports",
        );
        warns(
            "Gateway",
            "servers:\n- port: {number: 443, name: tls, protocol: TLS}\n  hosts: [\"*\"]\n  tls: {mode: PASSTHROUGH, credentialName: c}\n",
            "does not use certificates",
        );
        warns(
            "Gateway",
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [\"*\"]\n  tls: {mode: SIMPLE, credentialName: c, cipherSuites: [NOPE]}\n",
            "invalid cipher suites",
        );
    }

    #[test]
    fn name() {
        let res = object(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: my.gateway\nspec:\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n",
        );
        assert!(
            errors(&res)
                .iter()
                .any(|e| e.contains("invalid gateway name"))
        );
    }
}
