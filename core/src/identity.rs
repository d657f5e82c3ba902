//! Workload identities and the CA's wire API.
//!
//! This module owns [`SpiffeId`] (`spiffe://TRUST_DOMAIN/ns/NS/sa/SA`, the identity a
//! workload certificate carries as its URI SAN) and the messages of Istio's CA service
//! (`istio.v1.auth.IstioCertificateService/CreateCertificate`), which meshd serves on 15012
//! and mesh-proxy's agent calls. The messages are declared here with prost's derive, field
//! numbers as in Istio's `security/v1alpha1/ca.proto`, so the control plane and the proxy
//! share one definition without a protobuf compiler.

use std::fmt;
use std::str::FromStr;

/// The trust domain when the mesh config names none.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The gRPC path of Istio's CA method.
pub const CREATE_CERTIFICATE_PATH: &str =
    "/istio.v1.auth.IstioCertificateService/CreateCertificate";

/// The SDS resource name of a workload's own certificate and key (as Istio names it).
pub const SDS_DEFAULT: &str = "default";
/// The SDS resource name of the trust bundle (as Istio names it).
pub const SDS_ROOTCA: &str = "ROOTCA";

/// A workload identity, `spiffe://TRUST_DOMAIN/ns/NS/sa/SA`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

/// Why a string is not a workload SPIFFE id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT")]
pub struct SpiffeIdError(pub String);

impl SpiffeId {
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Self {
        SpiffeId {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SpiffeIdError(s.to_owned());
        let rest = s.strip_prefix("spiffe://").ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [td, "ns", ns, "sa", sa]
                if [td, ns, sa].iter().all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
                }) =>
            {
                Ok(SpiffeId::new(td, ns, sa))
            }
            _ => Err(bad()),
        }
    }
}

/// `istio.v1.auth.IstioCertificateRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateRequest {
    /// PEM-encoded certificate signing request.
    #[prost(string, tag = "1")]
    pub csr: String,
    /// Requested lifetime in seconds (0 or less: the CA's default).
    #[prost(int64, tag = "3")]
    pub validity_duration: i64,
}

/// `istio.v1.auth.IstioCertificateResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateResponse {
    /// PEM certificates: the workload's first, the root last.
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_round_trip_and_refuse_other_shapes() {
        let id: SpiffeId = "spiffe://cluster.local/ns/shop/sa/web".parse().unwrap();
        assert_eq!(id, SpiffeId::new("cluster.local", "shop", "web"));
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
        for bad in [
            "spiffe://cluster.local/ns/shop",
            "spiffe://cluster.local/ns//sa/web",
            "https://cluster.local/ns/shop/sa/web",
            "spiffe://cluster.local/sa/web/ns/shop",
            "spiffe://cluster.local/ns/shop/sa/web/extra",
            "spiffe://a b/ns/shop/sa/web",
        ] {
            assert!(bad.parse::<SpiffeId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ca_messages_use_istios_field_numbers() {
        use prost::Message;
        let req = IstioCertificateRequest {
            csr: "x".into(),
            validity_duration: 60,
        };
        // field 1 (string, wire type 2) then field 3 (varint, wire type 0).
        assert_eq!(req.encode_to_vec(), vec![0x0a, 1, b'x', 0x18, 60]);
        let resp = IstioCertificateResponse {
            cert_chain: vec!["a".into(), "b".into()],
        };
        assert_eq!(resp.encode_to_vec(), vec![0x0a, 1, b'a', 0x0a, 1, b'b']);
    }
}
