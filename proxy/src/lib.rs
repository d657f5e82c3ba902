//! mesh-proxy, the meshctl sidecar proxy, as a library.
//!
//! This crate owns the proxy side of the mesh. Today that is the agent mode: writing an
//! Envoy bootstrap for one workload ([`bootstrap`]) and running Envoy under supervision
//! ([`agent`]), and the init step that installs a pod's traffic-capture rules ([`init`]).
//! The native data path (`--engine native`) is not built yet.

pub mod agent;
pub mod bootstrap;
pub mod init;
