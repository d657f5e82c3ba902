//! Gateway proxies: listeners per Gateway server port, route configs `http.PORT`, and the
//! VirtualServices bound to the gateway.

use super::scope::Scope;
use super::{ProxyConfig, ProxyInfo, Snapshot, cluster};

/// Everything a gateway receives.
pub(super) fn generate(snap: &Snapshot, proxy: &ProxyInfo) -> ProxyConfig {
    let scope = Scope::new(snap, proxy);
    let mut out = ProxyConfig::default();
    cluster::outbound(&scope, &mut out);
    cluster::special(&scope, &mut out);
    out
}
