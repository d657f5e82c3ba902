//! mesh-core: the config model, loading, validation and analysis shared by meshctl, meshd
//! and mesh-proxy.
//!
//! Pure and deterministic: no sockets, no async runtime, no Kubernetes client. Data flows
//! bytes -> [`yaml`] (positioned tree) -> [`source`] ([`resource::Resource`]s with origins)
//! -> [`model`] (typed Istio specs) -> [`validate`] (per-object rules) and [`analysis`]
//! (cross-object rules with Istio's message codes).

pub mod analysis;
pub mod envoy;
pub mod host;
pub mod identity;
pub mod inject;
pub mod kinds;
pub mod model;
pub mod parent;
pub mod resource;
pub mod schema;
pub mod source;
pub mod validate;
pub mod xds;
pub mod yaml;
