//! Per-object validation with Istio's rules (being written).
