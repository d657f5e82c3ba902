//! Analyzers of Istio's `gateway` package. (Being written.)

use crate::analysis::AnalyzerDef;

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[];
