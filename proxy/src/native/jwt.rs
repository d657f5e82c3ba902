//! JWT authentication, as Envoy's `envoy.filters.http.jwt_authn` does it: a [`JwtFilter`]
//! is converted (TryFrom) from the filter's `JwtAuthentication` config and run per request.
//!
//! Tokens are read where a provider says (`from_headers` with value prefixes,
//! `from_params`, `from_cookies`; by default `Authorization: Bearer` and the
//! `access_token` parameter), verified (RS256/384/512, PS256/384/512, ES256/384 signatures
//! with `ring` against an inline JWKS or one fetched through the named cluster and cached
//! for `cache_duration`), and checked (`iss`, `aud`, `exp`/`nbf` with the clock skew). The
//! first rule whose match fits the request gives the requirement tree (`provider_name`,
//! `provider_and_audiences`, `requires_any`, `requires_all`, `allow_missing`,
//! `allow_missing_or_failed`). A request that fails it gets 401 (403 when only the
//! audiences are wrong) with Envoy's body (`Jwt is missing`, `Jwt verification fails`...)
//! and `www-authenticate` (checked against Envoy 1.40).
//! A verified token's payload goes into the dynamic metadata (`payload_in_metadata`, with
//! `space_delimited_claims` split into lists) for RBAC, into `forward_payload_header` (the
//! token's own base64url payload, padded when `pad_forward_payload_header`) and
//! `claim_to_headers` (nested claims named `a.b`); the token is removed from its header
//! unless `forward` is set. Performance knobs are ignored (`jwt_cache_config`: every token
//! is verified; `async_fetch`, the fetch `retry_policy`: a JWKS is fetched on first use
//! and again once `cache_duration` has passed); `clear_route_cache` needs nothing, as the
//! route is chosen after authentication.
//!
//! Refused (the listener is NACKed): `subjects`, `max_lifetime`, `require_expiration`,
//! `header_in_metadata`, `failed_status_in_metadata`, filter-state rules, rule matches
//! other than a path prefix or exact path, JWKS from files, remote JWKS over TLS-only
//! clusters are fetched in plain HTTP (the native engine has no upstream TLS yet).
//! The remote JWKS cache lives with the config generation: a new LDS push refetches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{data_source, http_uri};
use envoy_types::pb::envoy::config::route::v3::{RouteMatch, route_match};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider, JwtRequirement, jwt_provider, jwt_requirement, requirement_rule,
};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use prost::Message;
use ring::signature;
use serde_json::Value;

use super::config::Config;
use super::rbac::Metadata;

/// Why a JWT config cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("jwt_authn: {0}")]
pub struct JwtConfigError(pub String);

fn cerr(s: impl Into<String>) -> JwtConfigError {
    JwtConfigError(s.into())
}

/// Why a request fails authentication, with Envoy's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtStatus {
    Missed,
    Expired,
    NotYetValid,
    BadFormat,
    HeaderBadBase64,
    HeaderBadJson,
    HeaderBadAlg,
    HeaderNotImplementedAlg,
    PayloadBadBase64,
    PayloadBadJson,
    SignatureBadBase64,
    UnknownIssuer,
    AudienceNotAllowed,
    KidAlgMismatch,
    VerificationFail,
    JwksFetchFail,
}

impl JwtStatus {
    /// The status code of the refusal: 403 for a token whose audiences are not allowed,
    /// else 401 (as Envoy answers).
    pub fn code(self) -> u16 {
        if self == JwtStatus::AudienceNotAllowed {
            403
        } else {
            401
        }
    }

    /// Envoy's text (the 401 body).
    pub fn message(self) -> &'static str {
        match self {
            JwtStatus::Missed => "Jwt is missing",
            JwtStatus::Expired => "Jwt is expired",
            JwtStatus::NotYetValid => "Jwt not yet valid",
            JwtStatus::BadFormat => {
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
            }
            JwtStatus::HeaderBadBase64 => "Jwt header is an invalid Base64url encoded",
            JwtStatus::HeaderBadJson => "Jwt header is an invalid JSON",
            JwtStatus::HeaderBadAlg => "Jwt header [alg] field is required and must be a string",
            JwtStatus::HeaderNotImplementedAlg => "Jwt header [alg] is not supported",
            JwtStatus::PayloadBadBase64 => "Jwt payload is an invalid Base64url encoded",
            JwtStatus::PayloadBadJson => "Jwt payload is an invalid JSON",
            JwtStatus::SignatureBadBase64 => "Jwt signature is an invalid Base64url encoded",
            JwtStatus::UnknownIssuer => "Jwt issuer is not configured",
            JwtStatus::AudienceNotAllowed => "Audiences in Jwt are not allowed",
            JwtStatus::KidAlgMismatch => "Jwks doesn't have key to match kid or alg from Jwt",
            JwtStatus::VerificationFail => "Jwt verification fails",
            JwtStatus::JwksFetchFail => "Jwks remote fetch is failed",
        }
    }
}

// ---- Keys ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point (0x04 || x || y) and its curve's name.
    Ec {
        point: Vec<u8>,
        crv: String,
    },
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    key: KeyMaterial,
}

/// A parsed JWKS.
#[derive(Debug, Clone, Default)]
pub struct Keys(Vec<Jwk>);

fn b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .or_else(|| STANDARD_NO_PAD.decode(s).ok())
}

impl Keys {
    /// Parses a JWKS document; keys of unknown types are skipped, none usable is an error.
    pub fn parse(text: &str) -> Result<Keys, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let keys = v
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("JWKS has no keys array")?;
        let mut out = Vec::new();
        for k in keys {
            let s = |f: &str| k.get(f).and_then(Value::as_str);
            let key = match s("kty") {
                Some("RSA") => match (s("n").and_then(b64), s("e").and_then(b64)) {
                    (Some(n), Some(e)) => KeyMaterial::Rsa { n, e },
                    _ => continue,
                },
                Some("EC") => match (s("x").and_then(b64), s("y").and_then(b64), s("crv")) {
                    (Some(x), Some(y), Some(crv)) => {
                        let mut point = vec![4u8];
                        point.extend(x);
                        point.extend(y);
                        KeyMaterial::Ec {
                            point,
                            crv: crv.to_owned(),
                        }
                    }
                    _ => continue,
                },
                _ => continue,
            };
            out.push(Jwk {
                kid: s("kid").map(str::to_owned),
                alg: s("alg").map(str::to_owned),
                key,
            });
        }
        if out.is_empty() {
            return Err("JWKS has no usable RSA or EC key".to_owned());
        }
        Ok(Keys(out))
    }
}

fn alg_supported(alg: &str) -> bool {
    matches!(
        alg,
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384"
    )
}

/// Whether `key` fits `alg`, and the signature checks out.
fn verify_with(key: &Jwk, alg: &str, msg: &[u8], sig: &[u8]) -> Option<bool> {
    if key.alg.as_deref().is_some_and(|a| a != alg) {
        return None;
    }
    match &key.key {
        KeyMaterial::Rsa { n, e } => {
            let params: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return None,
            };
            let pk = signature::RsaPublicKeyComponents { n, e };
            Some(pk.verify(params, msg, sig).is_ok())
        }
        KeyMaterial::Ec { point, crv } => {
            let params: &signature::EcdsaVerificationAlgorithm = match (alg, crv.as_str()) {
                ("ES256", "P-256") => &signature::ECDSA_P256_SHA256_FIXED,
                ("ES384", "P-384") => &signature::ECDSA_P384_SHA384_FIXED,
                _ => return None,
            };
            Some(
                signature::UnparsedPublicKey::new(params, point)
                    .verify(msg, sig)
                    .is_ok(),
            )
        }
    }
}

// ---- Tokens -------------------------------------------------------------------------

/// A decoded (not yet verified) token.
#[derive(Debug)]
pub struct Jwt {
    alg: String,
    kid: Option<String>,
    pub payload: serde_json::Map<String, Value>,
    /// The payload as it came, base64url.
    pub payload_b64: String,
    signed: String,
    signature: Vec<u8>,
}

impl Jwt {
    pub fn parse(token: &str) -> Result<Jwt, JwtStatus> {
        let parts: Vec<&str> = token.split('.').collect();
        let [h, p, s] = parts.as_slice() else {
            return Err(JwtStatus::BadFormat);
        };
        let header: Value = serde_json::from_slice(&b64(h).ok_or(JwtStatus::HeaderBadBase64)?)
            .map_err(|_| JwtStatus::HeaderBadJson)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JwtStatus::HeaderBadAlg)?;
        if !alg_supported(alg) {
            return Err(JwtStatus::HeaderNotImplementedAlg);
        }
        let payload =
            match serde_json::from_slice::<Value>(&b64(p).ok_or(JwtStatus::PayloadBadBase64)?) {
                Ok(Value::Object(m)) => m,
                _ => return Err(JwtStatus::PayloadBadJson),
            };
        let signature = b64(s).ok_or(JwtStatus::SignatureBadBase64)?;
        Ok(Jwt {
            alg: alg.to_owned(),
            kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
            payload,
            payload_b64: (*p).to_owned(),
            signed: format!("{h}.{p}"),
            signature,
        })
    }

    fn claim_str(&self, name: &str) -> Option<&str> {
        self.payload.get(name).and_then(Value::as_str)
    }

    /// Checks the signature against the keys.
    pub fn verify(&self, keys: &Keys) -> Result<(), JwtStatus> {
        let mut tried = false;
        for k in &keys.0 {
            if let (Some(want), Some(have)) = (&self.kid, &k.kid)
                && want != have
            {
                continue;
            }
            match verify_with(k, &self.alg, self.signed.as_bytes(), &self.signature) {
                Some(true) => return Ok(()),
                Some(false) => tried = true,
                None => {}
            }
        }
        Err(if tried {
            JwtStatus::VerificationFail
        } else {
            JwtStatus::KidAlgMismatch
        })
    }
}

// ---- Providers ----------------------------------------------------------------------

/// Where a token is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Header { name: HeaderName, prefix: String },
    Param(String),
    Cookie(String),
}

#[derive(Debug)]
enum JwksSource {
    Local(Arc<Keys>),
    Remote {
        cluster: String,
        /// `host[:port]` and path of the URI.
        authority: String,
        path: String,
        timeout: Duration,
        cache_for: Duration,
        cache: std::sync::Mutex<Option<(Instant, Arc<Keys>)>>,
    },
}

#[derive(Debug)]
pub struct Provider {
    name: String,
    issuer: String,
    audiences: Vec<String>,
    forward: bool,
    locations: Vec<Location>,
    forward_payload_header: Option<HeaderName>,
    pad_forward_payload_header: bool,
    payload_in_metadata: String,
    space_delimited: Vec<String>,
    claim_to_headers: Vec<(HeaderName, String)>,
    clock_skew: u64,
    jwks: JwksSource,
}

impl TryFrom<(&String, &JwtProvider)> for Provider {
    type Error = JwtConfigError;

    fn try_from((name, p): (&String, &JwtProvider)) -> Result<Provider, JwtConfigError> {
        let unsupported = |what: &str| cerr(format!("provider {name:?}: {what} is not supported"));
        if p.subjects.is_some() {
            return Err(unsupported("subjects"));
        }
        if p.max_lifetime.is_some() {
            return Err(unsupported("max_lifetime"));
        }
        if p.require_expiration {
            return Err(unsupported("require_expiration"));
        }
        if !p.header_in_metadata.is_empty() {
            return Err(unsupported("header_in_metadata"));
        }
        if !p.failed_status_in_metadata.is_empty() {
            return Err(unsupported("failed_status_in_metadata"));
        }
        let header = |h: &str| {
            HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                .map_err(|_| cerr(format!("provider {name:?}: bad header name {h:?}")))
        };
        let mut locations = Vec::new();
        for h in &p.from_headers {
            locations.push(Location::Header {
                name: header(&h.name)?,
                prefix: h.value_prefix.clone(),
            });
        }
        locations.extend(p.from_params.iter().cloned().map(Location::Param));
        locations.extend(p.from_cookies.iter().cloned().map(Location::Cookie));
        if locations.is_empty() {
            locations.push(Location::Header {
                name: hyper::header::AUTHORIZATION,
                prefix: "Bearer ".to_owned(),
            });
            locations.push(Location::Param("access_token".to_owned()));
        }
        let jwks = match &p.jwks_source_specifier {
            Some(jwt_provider::JwksSourceSpecifier::LocalJwks(ds)) => {
                let text = match &ds.specifier {
                    Some(data_source::Specifier::InlineString(s)) => s.clone(),
                    Some(data_source::Specifier::InlineBytes(b)) => {
                        String::from_utf8_lossy(b).into_owned()
                    }
                    _ => return Err(unsupported("a local JWKS other than inline")),
                };
                let keys =
                    Keys::parse(&text).map_err(|e| cerr(format!("provider {name:?}: {e}")))?;
                JwksSource::Local(Arc::new(keys))
            }
            Some(jwt_provider::JwksSourceSpecifier::RemoteJwks(r)) => {
                let u = r
                    .http_uri
                    .as_ref()
                    .ok_or_else(|| cerr(format!("provider {name:?}: remote JWKS without a URI")))?;
                let Some(http_uri::HttpUpstreamType::Cluster(cluster)) = &u.http_upstream_type
                else {
                    return Err(unsupported("a remote JWKS without a cluster"));
                };
                let rest = u
                    .uri
                    .strip_prefix("http://")
                    .or_else(|| u.uri.strip_prefix("https://"))
                    .ok_or_else(|| cerr(format!("provider {name:?}: bad JWKS URI {:?}", u.uri)))?;
                let (authority, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                JwksSource::Remote {
                    cluster: cluster.clone(),
                    authority: authority.to_owned(),
                    path: path.to_owned(),
                    timeout: super::route::optional_duration(u.timeout.as_ref())
                        .unwrap_or(Duration::from_secs(1)),
                    cache_for: super::route::optional_duration(r.cache_duration.as_ref())
                        .unwrap_or(Duration::from_secs(600)),
                    cache: std::sync::Mutex::new(None),
                }
            }
            None => return Err(cerr(format!("provider {name:?}: no JWKS"))),
        };
        Ok(Provider {
            name: name.clone(),
            issuer: p.issuer.clone(),
            audiences: p.audiences.clone(),
            forward: p.forward,
            locations,
            forward_payload_header: if p.forward_payload_header.is_empty() {
                None
            } else {
                Some(header(&p.forward_payload_header)?)
            },
            pad_forward_payload_header: p.pad_forward_payload_header,
            payload_in_metadata: p.payload_in_metadata.clone(),
            space_delimited: p
                .normalize_payload_in_metadata
                .as_ref()
                .map(|n| n.space_delimited_claims.clone())
                .unwrap_or_default(),
            claim_to_headers: p
                .claim_to_headers
                .iter()
                .map(|c| Ok((header(&c.header_name)?, c.claim_name.clone())))
                .collect::<Result<_, JwtConfigError>>()?,
            clock_skew: if p.clock_skew_seconds == 0 {
                60
            } else {
                u64::from(p.clock_skew_seconds)
            },
            jwks,
        })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Provider {
    /// Tokens this provider reads from the request, with where each came from.
    fn extract(&self, headers: &HeaderMap, query: Option<&str>) -> Vec<(Location, String)> {
        let mut out = Vec::new();
        for loc in &self.locations {
            match loc {
                Location::Header { name, prefix } => {
                    for v in headers.get_all(name) {
                        let Ok(v) = v.to_str() else { continue };
                        // The prefix is matched case-sensitively, as Envoy 1.40 does
                        // (`bearer x` is not a token for `Bearer `).
                        let tok = if prefix.is_empty() {
                            Some(v)
                        } else {
                            v.strip_prefix(prefix.as_str())
                        };
                        if let Some(t) = tok.map(str::trim).filter(|t| !t.is_empty()) {
                            out.push((loc.clone(), t.to_owned()));
                        }
                    }
                }
                Location::Param(p) => {
                    for pair in query.unwrap_or("").split('&') {
                        if let Some((k, v)) = pair.split_once('=')
                            && k == p
                            && !v.is_empty()
                        {
                            out.push((loc.clone(), v.to_owned()));
                        }
                    }
                }
                Location::Cookie(c) => {
                    for v in headers.get_all(hyper::header::COOKIE) {
                        let Ok(v) = v.to_str() else { continue };
                        for kv in v.split(';') {
                            if let Some((k, val)) = kv.trim().split_once('=')
                                && k == c
                                && !val.is_empty()
                            {
                                out.push((loc.clone(), val.to_owned()));
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The claims checks (issuer, time, audiences), before the signature.
    fn check_claims(&self, jwt: &Jwt, audiences: &[String]) -> Result<(), JwtStatus> {
        if !self.issuer.is_empty() && jwt.claim_str("iss") != Some(self.issuer.as_str()) {
            return Err(JwtStatus::UnknownIssuer);
        }
        let now = now_secs();
        let num = |k: &str| jwt.payload.get(k).and_then(Value::as_f64);
        #[allow(clippy::cast_precision_loss)]
        let (lo, hi) = (
            now.saturating_sub(self.clock_skew) as f64,
            (now + self.clock_skew) as f64,
        );
        if num("nbf").is_some_and(|nbf| nbf > hi) {
            return Err(JwtStatus::NotYetValid);
        }
        if num("exp").is_some_and(|exp| exp != 0.0 && exp < lo) {
            return Err(JwtStatus::Expired);
        }
        let allowed = if audiences.is_empty() {
            &self.audiences
        } else {
            audiences
        };
        if !allowed.is_empty() {
            let norm = |a: &str| {
                a.strip_prefix("http://")
                    .or_else(|| a.strip_prefix("https://"))
                    .unwrap_or(a)
                    .trim_end_matches('/')
                    .to_owned()
            };
            let have: Vec<String> = match jwt.payload.get("aud") {
                Some(Value::String(s)) => vec![norm(s)],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(norm).collect(),
                _ => Vec::new(),
            };
            if !allowed.iter().any(|a| have.contains(&norm(a))) {
                return Err(JwtStatus::AudienceNotAllowed);
            }
        }
        Ok(())
    }

    async fn keys(&self, config: &Config) -> Result<Arc<Keys>, JwtStatus> {
        match &self.jwks {
            JwksSource::Local(k) => Ok(k.clone()),
            JwksSource::Remote {
                cluster,
                authority,
                path,
                timeout,
                cache_for,
                cache,
            } => {
                if let Ok(c) = cache.lock()
                    && let Some((at, k)) = c.as_ref()
                    && at.elapsed() < *cache_for
                {
                    return Ok(k.clone());
                }
                let keys = tokio::time::timeout(*timeout, fetch(config, cluster, authority, path))
                    .await
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|r| r)
                    .map_err(|e| {
                        tracing::warn!(jwt.provider = %self.name, jwks.cluster = %cluster, error = %e, "JWKS fetch failed");
                        JwtStatus::JwksFetchFail
                    })?;
                let keys = Arc::new(keys);
                if let Ok(mut c) = cache.lock() {
                    *c = Some((Instant::now(), keys.clone()));
                }
                Ok(keys)
            }
        }
    }

    /// Verifies one token fully.
    async fn verify(
        &self,
        token: &str,
        audiences: &[String],
        config: &Config,
    ) -> Result<Jwt, JwtStatus> {
        let jwt = Jwt::parse(token)?;
        self.check_claims(&jwt, audiences)?;
        let keys = self.keys(config).await?;
        jwt.verify(&keys)?;
        Ok(jwt)
    }

    /// The payload as it goes into the metadata.
    fn metadata_payload(&self, jwt: &Jwt) -> Value {
        let mut m = jwt.payload.clone();
        for claim in &self.space_delimited {
            if let Some(Value::String(s)) = m.get(claim) {
                let list = s
                    .split(' ')
                    .filter(|x| !x.is_empty())
                    .map(|x| Value::String(x.to_owned()))
                    .collect();
                m.insert(claim.clone(), Value::Array(list));
            }
        }
        Value::Object(m)
    }
}

/// GETs a JWKS through a cluster.
async fn fetch(
    config: &Config,
    cluster: &str,
    authority: &str,
    path: &str,
) -> Result<Keys, String> {
    let c = config
        .clusters
        .get(cluster)
        .ok_or_else(|| format!("no cluster {cluster:?}"))?;
    let idx = c.choose(None, &[]).ok_or("no healthy upstream")?;
    let host = &c.hosts[idx].addr;
    let req = hyper::Request::get(format!("http://{host}{path}"))
        .header(hyper::header::HOST, authority)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = c
        .shared
        .send(host, req, false)
        .await
        .map_err(|e| format!("{e:?}"))?;
    if resp.status() != hyper::StatusCode::OK {
        return Err(format!("status {}", resp.status()));
    }
    let body = http_body_util::Limited::new(resp.into_body(), 1024 * 1024)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Keys::parse(&String::from_utf8_lossy(&body))
}

// ---- Requirements -------------------------------------------------------------------

#[derive(Debug)]
enum Requirement {
    Provider(String, Vec<String>),
    Any(Vec<Requirement>),
    All(Vec<Requirement>),
    AllowMissing,
    AllowMissingOrFailed,
}

impl Requirement {
    fn from_pb(
        r: &JwtRequirement,
        providers: &HashMap<String, Arc<Provider>>,
    ) -> Result<Requirement, JwtConfigError> {
        use jwt_requirement::RequiresType as T;
        let known = |n: &String| {
            if providers.contains_key(n) {
                Ok(())
            } else {
                Err(cerr(format!("requirement names unknown provider {n:?}")))
            }
        };
        Ok(match &r.requires_type {
            Some(T::ProviderName(n)) => {
                known(n)?;
                Requirement::Provider(n.clone(), Vec::new())
            }
            Some(T::ProviderAndAudiences(p)) => {
                known(&p.provider_name)?;
                Requirement::Provider(p.provider_name.clone(), p.audiences.clone())
            }
            Some(T::RequiresAny(l)) => Requirement::Any(
                l.requirements
                    .iter()
                    .map(|x| Requirement::from_pb(x, providers))
                    .collect::<Result<_, _>>()?,
            ),
            Some(T::RequiresAll(l)) => Requirement::All(
                l.requirements
                    .iter()
                    .map(|x| Requirement::from_pb(x, providers))
                    .collect::<Result<_, _>>()?,
            ),
            Some(T::AllowMissing(_)) => Requirement::AllowMissing,
            Some(T::AllowMissingOrFailed(_)) => Requirement::AllowMissingOrFailed,
            Some(T::ExtractOnlyWithoutValidation(_)) => {
                return Err(cerr("extract_only_without_validation is not supported"));
            }
            None => Requirement::AllowMissingOrFailed,
        })
    }
}

#[derive(Debug)]
enum PathRule {
    Prefix(String),
    Exact(String),
}

#[derive(Debug)]
struct Rule {
    path: PathRule,
    case_sensitive: bool,
    requirement: Option<Requirement>,
}

fn rule_match(m: &RouteMatch) -> Result<(PathRule, bool), JwtConfigError> {
    if !m.headers.is_empty() || !m.query_parameters.is_empty() || m.runtime_fraction.is_some() {
        return Err(cerr(
            "rule matches on headers, parameters or fractions are not supported",
        ));
    }
    let path = match &m.path_specifier {
        Some(route_match::PathSpecifier::Prefix(p)) => PathRule::Prefix(p.clone()),
        Some(route_match::PathSpecifier::Path(p)) => PathRule::Exact(p.clone()),
        _ => {
            return Err(cerr(
                "rule matches other than prefix or path are not supported",
            ));
        }
    };
    Ok((path, m.case_sensitive.as_ref().is_none_or(|b| b.value)))
}

/// A verified token and what it means for the request.
struct Verified {
    provider: Arc<Provider>,
    location: Location,
    jwt: Jwt,
}

/// The jwt_authn filter.
#[derive(Debug)]
pub struct JwtFilter {
    providers: HashMap<String, Arc<Provider>>,
    rules: Vec<Rule>,
    bypass_cors_preflight: bool,
}

impl TryFrom<&JwtAuthentication> for JwtFilter {
    type Error = JwtConfigError;

    fn try_from(a: &JwtAuthentication) -> Result<JwtFilter, JwtConfigError> {
        if a.filter_state_rules.is_some() {
            return Err(cerr("filter_state_rules are not supported"));
        }
        let providers: HashMap<String, Arc<Provider>> = a
            .providers
            .iter()
            .map(|(n, p)| Ok((n.clone(), Arc::new(Provider::try_from((n, p))?))))
            .collect::<Result<_, JwtConfigError>>()?;
        let mut rules = Vec::new();
        for r in &a.rules {
            let (path, case_sensitive) = match &r.r#match {
                Some(m) => rule_match(m)?,
                None => return Err(cerr("a rule without a match")),
            };
            let requirement = match &r.requirement_type {
                Some(requirement_rule::RequirementType::Requires(req)) => {
                    Some(Requirement::from_pb(req, &providers)?)
                }
                Some(requirement_rule::RequirementType::RequirementName(n)) => {
                    let req = a
                        .requirement_map
                        .get(n)
                        .ok_or_else(|| cerr(format!("no requirement named {n:?}")))?;
                    Some(Requirement::from_pb(req, &providers)?)
                }
                None => None,
            };
            rules.push(Rule {
                path,
                case_sensitive,
                requirement,
            });
        }
        Ok(JwtFilter {
            providers,
            rules,
            bypass_cors_preflight: a.bypass_cors_preflight,
        })
    }
}

impl JwtFilter {
    /// Decodes the filter's typed config.
    pub fn from_any(bytes: &[u8]) -> Result<JwtFilter, JwtConfigError> {
        let a = JwtAuthentication::decode(bytes).map_err(|e| cerr(format!("bad config: {e}")))?;
        JwtFilter::try_from(&a)
    }

    fn requirement(&self, path: &str) -> Option<&Requirement> {
        self.rules
            .iter()
            .find(|r| {
                let folded;
                let (p, path) = match &r.path {
                    PathRule::Prefix(p) | PathRule::Exact(p) if !r.case_sensitive => {
                        folded = path.to_ascii_lowercase();
                        (p.to_ascii_lowercase(), folded.as_str())
                    }
                    PathRule::Prefix(p) | PathRule::Exact(p) => (p.clone(), path),
                };
                match r.path {
                    PathRule::Prefix(_) => path.starts_with(&p),
                    PathRule::Exact(_) => path == p,
                }
            })
            .and_then(|r| r.requirement.as_ref())
    }

    /// Authenticates a request: on success the headers are rewritten (token stripped,
    /// payload and claim headers added) and the payloads written into `metadata`.
    pub async fn run(
        &self,
        method: &hyper::Method,
        path: &str,
        query: Option<&str>,
        headers: &mut HeaderMap,
        metadata: &mut Metadata,
        config: &Config,
    ) -> Result<(), JwtStatus> {
        if self.bypass_cors_preflight
            && method == hyper::Method::OPTIONS
            && headers.contains_key(hyper::header::ORIGIN)
            && headers.contains_key(hyper::header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return Ok(());
        }
        let Some(req) = self.requirement(path) else {
            return Ok(());
        };
        let mut verified = Vec::new();
        self.eval(req, headers, query, config, &mut verified)
            .await?;
        for v in verified {
            let p = &v.provider;
            if !p.payload_in_metadata.is_empty() {
                let entry = metadata
                    .entry(super::authz::JWT_AUTHN.to_owned())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(p.payload_in_metadata.clone(), p.metadata_payload(&v.jwt));
                }
            }
            if let Some(h) = &p.forward_payload_header {
                let mut b64 = v.jwt.payload_b64.trim_end_matches('=').to_owned();
                if p.pad_forward_payload_header {
                    while b64.len() % 4 != 0 {
                        b64.push('=');
                    }
                }
                if let Ok(val) = HeaderValue::from_str(&b64) {
                    headers.insert(h.clone(), val);
                }
            }
            for (h, claim) in &p.claim_to_headers {
                // A nested claim is named with dots (`a.b`), as Envoy reads it.
                let mut found = v.jwt.payload.get(claim);
                if found.is_none() {
                    let mut parts = claim.split('.');
                    found = parts.next().and_then(|first| v.jwt.payload.get(first));
                    for k in parts {
                        found = found.and_then(|x| x.get(k));
                    }
                }
                let val = match found {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(Value::Bool(b)) => Some(b.to_string()),
                    _ => None,
                };
                if let Some(val) = val.and_then(|s| HeaderValue::from_str(&s).ok()) {
                    headers.insert(h.clone(), val);
                }
            }
            if !p.forward
                && let Location::Header { name, .. } = &v.location
            {
                headers.remove(name);
            }
        }
        Ok(())
    }

    /// Every provider's tokens in the request.
    fn all_tokens(&self, headers: &HeaderMap, query: Option<&str>) -> Vec<(Location, String)> {
        let mut names: Vec<&String> = self.providers.keys().collect();
        names.sort();
        let mut out: Vec<(Location, String)> = Vec::new();
        for n in names {
            if let Some(p) = self.providers.get(n) {
                for t in p.extract(headers, query) {
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
        }
        out
    }

    /// Verifies a token found by location with the provider of its issuer.
    async fn verify_any_provider(
        &self,
        loc: &Location,
        token: &str,
        config: &Config,
    ) -> Result<Verified, JwtStatus> {
        let jwt = Jwt::parse(token)?;
        let iss = jwt.claim_str("iss").unwrap_or_default().to_owned();
        let mut names: Vec<&String> = self.providers.keys().collect();
        names.sort();
        let provider = names
            .into_iter()
            .filter_map(|n| self.providers.get(n))
            .find(|p| (p.issuer.is_empty() || p.issuer == iss) && p.locations.contains(loc))
            .ok_or(JwtStatus::UnknownIssuer)?;
        let jwt = provider.verify(token, &[], config).await?;
        Ok(Verified {
            provider: provider.clone(),
            location: loc.clone(),
            jwt,
        })
    }

    fn eval<'a>(
        &'a self,
        req: &'a Requirement,
        headers: &'a HeaderMap,
        query: Option<&'a str>,
        config: &'a Config,
        verified: &'a mut Vec<Verified>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), JwtStatus>> + Send + 'a>>
    {
        Box::pin(async move {
            match req {
                Requirement::Provider(name, auds) => {
                    let p = self.providers.get(name).ok_or(JwtStatus::Missed)?;
                    let tokens = p.extract(headers, query);
                    let Some((loc, tok)) = tokens.into_iter().next() else {
                        return Err(JwtStatus::Missed);
                    };
                    let jwt = p.verify(&tok, auds, config).await?;
                    verified.push(Verified {
                        provider: p.clone(),
                        location: loc,
                        jwt,
                    });
                    Ok(())
                }
                Requirement::AllowMissing | Requirement::AllowMissingOrFailed => {
                    let tolerant = matches!(req, Requirement::AllowMissingOrFailed);
                    for (loc, tok) in self.all_tokens(headers, query) {
                        match self.verify_any_provider(&loc, &tok, config).await {
                            Ok(v) => verified.push(v),
                            Err(_) if tolerant => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(())
                }
                Requirement::All(list) => {
                    for r in list {
                        self.eval(r, headers, query, config, verified).await?;
                    }
                    Ok(())
                }
                Requirement::Any(list) => {
                    let mut status = JwtStatus::Missed;
                    for r in list {
                        let mut mine = Vec::new();
                        match self.eval(r, headers, query, config, &mut mine).await {
                            Ok(()) => {
                                verified.extend(mine);
                                return Ok(());
                            }
                            // A real failure outranks a missing token or unknown issuer.
                            Err(e) => {
                                if matches!(status, JwtStatus::Missed | JwtStatus::UnknownIssuer) {
                                    status = e;
                                }
                            }
                        }
                    }
                    Err(status)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn bad_tokens_get_envoy_statuses() {
        assert_eq!(Jwt::parse("not-a-jwt").unwrap_err(), JwtStatus::BadFormat);
        assert_eq!(Jwt::parse("a.b.c.d").unwrap_err(), JwtStatus::BadFormat);
        assert_eq!(
            Jwt::parse("!!.e30.AA").unwrap_err(),
            JwtStatus::HeaderBadBase64
        );
        // {"alg":"none"}
        assert_eq!(
            Jwt::parse("eyJhbGciOiJub25lIn0.e30.AA").unwrap_err(),
            JwtStatus::HeaderNotImplementedAlg
        );
        // {"alg":"RS256"} . [] (not an object)
        assert_eq!(
            Jwt::parse("eyJhbGciOiJSUzI1NiJ9.W10.AA").unwrap_err(),
            JwtStatus::PayloadBadJson
        );
    }

    #[test]
    fn tokens_come_from_headers_params_and_cookies() {
        let jwks = r#"{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}"#;
        let local = Some(jwt_provider::JwksSourceSpecifier::LocalJwks(
            envoy_types::pb::envoy::config::core::v3::DataSource {
                specifier: Some(data_source::Specifier::InlineString(jwks.to_owned())),
                ..Default::default()
            },
        ));
        let name = "p".to_owned();
        let custom = Provider::try_from((
            &name,
            &JwtProvider {
                from_headers: vec![
                    envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::JwtHeader {
                        name: "X-Token".to_owned(),
                        value_prefix: "Tok ".to_owned(),
                    },
                ],
                from_params: vec!["jwt".to_owned()],
                from_cookies: vec!["session".to_owned()],
                jwks_source_specifier: local.clone(),
                ..Default::default()
            },
        ))
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-token", HeaderValue::from_static("Tok aaa"));
        h.insert(
            hyper::header::COOKIE,
            HeaderValue::from_static("a=1; session=ccc; b=2"),
        );
        h.insert(
            hyper::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer ignored"),
        );
        let got: Vec<String> = custom
            .extract(&h, Some("x=1&jwt=bbb"))
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(got, ["aaa", "bbb", "ccc"]);
        // A value without the prefix is not a token.
        h.insert("x-token", HeaderValue::from_static("Other aaa"));
        assert_eq!(custom.extract(&h, None).len(), 1);

        // The default: Authorization Bearer and the access_token parameter.
        let default = Provider::try_from((
            &name,
            &JwtProvider {
                jwks_source_specifier: local,
                ..Default::default()
            },
        ))
        .unwrap();
        let got: Vec<String> = default
            .extract(&h, Some("access_token=ddd"))
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(got, ["ignored", "ddd"]);
        h.insert(
            hyper::header::AUTHORIZATION,
            HeaderValue::from_static("bearer lower"),
        );
        assert!(
            default.extract(&h, None).is_empty(),
            "the prefix is case-sensitive"
        );
    }

    #[test]
    fn unsupported_provider_settings_are_refused() {
        let name = "p".to_owned();
        let e = Provider::try_from((
            &name,
            &JwtProvider {
                require_expiration: true,
                ..Default::default()
            },
        ))
        .unwrap_err();
        assert!(e.0.contains("require_expiration"), "{e}");
        let e = Provider::try_from((&name, &JwtProvider::default())).unwrap_err();
        assert!(e.0.contains("no JWKS"), "{e}");
    }

    #[test]
    fn jwks_parse_skips_unknown_keys() {
        assert!(Keys::parse(r#"{"keys":[{"kty":"oct","k":"AA"}]}"#).is_err());
        let k = Keys::parse(
            r#"{"keys":[{"kty":"oct","k":"AA"},{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}"#,
        )
        .unwrap();
        assert_eq!(k.0.len(), 1);
    }
}
