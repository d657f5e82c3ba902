//! mesh-proxy, the meshctl sidecar proxy, as a library.
//!
//! This crate owns the proxy side of the mesh. Today that is the agent mode: writing an
//! Envoy bootstrap for one workload ([`bootstrap`]) and running Envoy under supervision
//! ([`agent`]), the init step that installs a pod's traffic-capture rules ([`init`]), the
//! workload certificate from meshd's CA ([`identity`]) served to Envoy over SDS ([`sds`]) and
//! the rustls configurations for mTLS with it ([`mtls`]),
//! and the native data plane ([`native`], `--engine native`).

pub mod agent;
pub mod bootstrap;
pub mod identity;
pub mod init;
pub mod mtls;
pub mod native;
pub mod sds;
