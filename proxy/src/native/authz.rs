//! The authorization step of an HTTP request: the listener's authorization filters
//! (jwt_authn, RBAC) run in chain order before routing, sharing the request's dynamic
//! metadata; the first that refuses answers (401 from jwt_authn, 403
//! `RBAC: access denied` from RBAC), as Envoy's filter chain does. meshd always puts these
//! filters first in the chain; the native engine runs them before fault, CORS and routing
//! wherever they stand.

use std::sync::Arc;

use hyper::Request;
use hyper::Response;
use hyper::body::Incoming;

use super::config::{Config, HttpAuthz, HttpSpec};
use super::http::{Body, Conn, Outcome, local};
use super::rbac::{DENIED_BODY, Metadata, Subject};
use super::route::RequestView;

/// The jwt_authn filter's name: the metadata namespace of verified payloads.
pub const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";

/// Runs the authorization filters; `Err` carries the refusal to send.
pub(super) async fn check(
    req: &mut Request<Incoming>,
    http: &HttpSpec,
    conn: &Conn,
    config: &Arc<Config>,
    out: &mut Outcome,
) -> Result<(), Response<Body>> {
    let mut metadata = Metadata::new();
    for f in &http.authz {
        match f {
            HttpAuthz::Jwt(jwt) => {
                let method = req.method().clone();
                let path = req.uri().path().to_owned();
                let query = req.uri().query().map(str::to_owned);
                if let Err(status) = jwt
                    .run(
                        &method,
                        &path,
                        query.as_deref(),
                        req.headers_mut(),
                        &mut metadata,
                        config,
                    )
                    .await
                {
                    tracing::debug!(client.addr = %conn.peer, jwt.status = status.message(), "jwt_authn: request refused");
                    let mut r = local(status.code(), status.message());
                    let scheme = req.uri().scheme_str().unwrap_or("http");
                    let mut realm = format!("Bearer realm=\"{scheme}://{}{path}\"", authority(req));
                    if status != super::jwt::JwtStatus::Missed {
                        realm.push_str(", error=\"invalid_token\"");
                    }
                    if let Ok(v) = hyper::header::HeaderValue::from_str(&realm) {
                        r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
                    }
                    return Err(r);
                }
            }
            HttpAuthz::Rbac(rbac) => {
                let authority = authority(req);
                let path = req.uri().path();
                let view = RequestView {
                    method: req.method().as_str(),
                    authority: &authority,
                    path,
                    query: req.uri().query(),
                    scheme: req.uri().scheme_str().unwrap_or("http"),
                    headers: req.headers(),
                };
                let subject = Subject {
                    request: Some(&view),
                    peer: conn.peer,
                    local: conn.listener.addr,
                    trust_xff: !http.use_remote_address,
                    metadata: &metadata,
                    principal: conn
                        .tls
                        .as_ref()
                        .and_then(|t| t.peer.as_ref())
                        .map(ToString::to_string),
                    sni: conn.tls.as_ref().and_then(|t| t.sni.clone()),
                };
                if !rbac.check(&subject) {
                    out.flags.push("RBAC");
                    return Err(local(403, DENIED_BODY));
                }
            }
        }
    }
    Ok(())
}

fn authority(req: &Request<Incoming>) -> String {
    if let Some(a) = req.uri().authority() {
        return a.as_str().to_owned();
    }
    req.headers()
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
