//! EnvoyFilter rules.

use super::Report;
use crate::model::networking::EnvoyFilter;

pub fn validate(_out: &mut Report<'_>, _spec: &EnvoyFilter) {}
