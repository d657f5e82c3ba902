//! ServiceEntry, WorkloadEntry and WorkloadGroup rules.

use super::Report;
use crate::model::networking::{ServiceEntry, WorkloadEntry, WorkloadGroup};

pub fn validate(_out: &mut Report<'_>, _spec: &ServiceEntry) {}
pub fn validate_workload_entry(_out: &mut Report<'_>, _spec: &WorkloadEntry) {}
pub fn validate_workload_group(_out: &mut Report<'_>, _spec: &WorkloadGroup) {}
