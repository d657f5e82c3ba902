//! Sidecar rules.

use super::Report;
use crate::model::networking::Sidecar;

pub fn validate(_out: &mut Report<'_>, _spec: &Sidecar) {}
