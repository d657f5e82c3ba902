//! Analyzers of Istio's `destinationrule` package. (Being written.)

use crate::analysis::AnalyzerDef;

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[];
