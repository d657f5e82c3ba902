//! Typed wire models of Istio's configuration kinds (being written).
