//! Test support shared by the cluster tests.

pub mod fake_api;
