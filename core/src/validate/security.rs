//! PeerAuthentication, RequestAuthentication and AuthorizationPolicy rules.

use super::Report;
use crate::model::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};

pub fn validate_peer_authn(_out: &mut Report<'_>, _spec: &PeerAuthentication) {}
pub fn validate_request_authn(_out: &mut Report<'_>, _spec: &RequestAuthentication) {}
pub fn validate_authz(_out: &mut Report<'_>, _spec: &AuthorizationPolicy) {}
