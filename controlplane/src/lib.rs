//! meshd, the meshctl control plane, as a library.
//!
//! This crate owns serving the mesh's config to proxies: the directory config source
//! ([`source`]), the seam to the xDS translation ([`translate`]), the ADS server ([`xds`]),
//! per-proxy sync status ([`status`]), the CA ([`ca`], served by [`ca_server`], callers' client certificates judged by [`ca_peer`], its root replaced by [`ca_rotation`], in a cluster [`ca_kube`]), leader election among replicas in a cluster ([`leader`]), the debug API ([`debug`]), metrics ([`metrics`]) and
//! the process lifecycle ([`server`]). The `meshd` binary is a thin wrapper over
//! [`server::Meshd`].

pub mod ca;
pub mod ca_kube;
pub mod ca_peer;
pub mod ca_rotation;
pub mod ca_server;
pub mod debug;
pub mod kube_source;
pub mod leader;
pub mod metrics;
pub mod server;
pub mod source;
pub mod status;
pub mod translate;
pub mod webhook;
pub mod webhook_inject;
pub mod webhook_tls;
pub mod xds;

pub use server::{Meshd, MeshdError, Options};
pub use translate::{MeshTranslator, Translator};
