//! Gateway rules.

use super::Report;
use crate::model::networking::Gateway;

pub fn validate(_out: &mut Report<'_>, _spec: &Gateway) {}
