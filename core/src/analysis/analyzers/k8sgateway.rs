//! Analyzers of Istio's `k8sgateway` package. (Being written.)

use crate::analysis::AnalyzerDef;

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[];
