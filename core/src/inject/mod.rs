//! Sidecar injection as a pure transformation of a pod template: the sidecar container,
//! the init step, rewritten probes and the status annotation ([`pod`], [`probes`]), driven
//! by [`settings::Settings`]. `meshctl kube-inject` applies it to the pod templates of a
//! manifest; meshd's `/inject` webhook to the Pod of an AdmissionReview.

pub mod pod;
pub mod probes;
pub mod settings;
