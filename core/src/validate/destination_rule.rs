//! DestinationRule rules.

use super::Report;
use crate::model::networking::DestinationRule;

pub fn validate(_out: &mut Report<'_>, _spec: &DestinationRule) {}
