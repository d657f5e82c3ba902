//! The analyzers, one module per Istio analyzer package. Each module exports ANALYZERS.

pub mod annotations;
pub mod authn;
pub mod authz;
pub mod conditions;
pub mod deployment;
pub mod deprecation;
pub mod destinationrule;
pub mod envoyfilter;
pub mod externalcontrolplane;
pub mod gateway;
pub mod injection;
pub mod k8sgateway;
pub mod maturity;
pub mod multicluster;
pub mod schema;
pub mod service;
pub mod serviceentry;
pub mod sidecar;
pub mod telemetry;
pub mod virtualservice;
pub mod webhook;

use super::AnalyzerDef;

/// Every module's analyzers.
pub const ALL: &[&[AnalyzerDef]] = &[
    annotations::ANALYZERS,
    authn::ANALYZERS,
    authz::ANALYZERS,
    conditions::ANALYZERS,
    deployment::ANALYZERS,
    deprecation::ANALYZERS,
    destinationrule::ANALYZERS,
    envoyfilter::ANALYZERS,
    externalcontrolplane::ANALYZERS,
    gateway::ANALYZERS,
    injection::ANALYZERS,
    k8sgateway::ANALYZERS,
    maturity::ANALYZERS,
    multicluster::ANALYZERS,
    schema::ANALYZERS,
    service::ANALYZERS,
    serviceentry::ANALYZERS,
    sidecar::ANALYZERS,
    telemetry::ANALYZERS,
    virtualservice::ANALYZERS,
    webhook::ANALYZERS,
];
