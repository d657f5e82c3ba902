//! Gateway: a load balancer at the edge of the mesh and the servers it exposes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::CrdSchema;

use super::Port;
use crate::model::istio_enum;

/// `networking.istio.io/Gateway` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Gateway {
    pub servers: Vec<Server>,
    pub selector: BTreeMap<String, String>,
}

/// One server of a gateway: a port, the hosts it serves, and TLS.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Server {
    pub port: Option<Port>,
    pub bind: String,
    pub hosts: Vec<String>,
    pub tls: Option<ServerTlsSettings>,
    #[serde(alias = "default_endpoint")]
    pub default_endpoint: String,
    pub name: String,
}

istio_enum! {
    /// TLS mode of a server.
    pub enum ServerTlsMode {
        Passthrough = "PASSTHROUGH",
        Simple = "SIMPLE",
        Mutual = "MUTUAL",
        AutoPassthrough = "AUTO_PASSTHROUGH",
        IstioMutual = "ISTIO_MUTUAL",
        OptionalMutual = "OPTIONAL_MUTUAL",
    }
}

istio_enum! {
    /// TLS protocol versions.
    pub enum TlsProtocol {
        TlsAuto = "TLS_AUTO",
        TlsV1_0 = "TLSV1_0",
        TlsV1_1 = "TLSV1_1",
        TlsV1_2 = "TLSV1_2",
        TlsV1_3 = "TLSV1_3",
    }
}

/// TLS settings of a server (Gateway, or a Sidecar ingress listener).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServerTlsSettings {
    #[serde(alias = "https_redirect")]
    pub https_redirect: bool,
    pub mode: ServerTlsMode,
    #[serde(alias = "server_certificate")]
    pub server_certificate: String,
    #[serde(alias = "private_key")]
    pub private_key: String,
    #[serde(alias = "ca_certificates")]
    pub ca_certificates: String,
    #[serde(alias = "ca_crl")]
    pub ca_crl: String,
    #[serde(alias = "credential_name")]
    pub credential_name: String,
    #[serde(alias = "credential_names")]
    pub credential_names: Vec<String>,
    #[serde(alias = "tls_certificates")]
    pub tls_certificates: Vec<TlsCertificate>,
    #[serde(alias = "subject_alt_names")]
    pub subject_alt_names: Vec<String>,
    #[serde(alias = "verify_certificate_spki")]
    pub verify_certificate_spki: Vec<String>,
    #[serde(alias = "verify_certificate_hash")]
    pub verify_certificate_hash: Vec<String>,
    #[serde(alias = "min_protocol_version")]
    pub min_protocol_version: TlsProtocol,
    #[serde(alias = "max_protocol_version")]
    pub max_protocol_version: TlsProtocol,
    #[serde(alias = "cipher_suites")]
    pub cipher_suites: Vec<String>,
}

/// One certificate of a server with several.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TlsCertificate {
    #[serde(alias = "server_certificate")]
    pub server_certificate: String,
    #[serde(alias = "private_key")]
    pub private_key: String,
    #[serde(alias = "ca_certificates")]
    pub ca_certificates: String,
}
