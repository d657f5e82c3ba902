//! Analyzers of Istio's `injection` package. (Being written.)

use crate::analysis::AnalyzerDef;

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[];
