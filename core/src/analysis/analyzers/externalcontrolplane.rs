//! Analyzers of Istio's `externalcontrolplane` package. (Being written.)

use crate::analysis::AnalyzerDef;

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[];
