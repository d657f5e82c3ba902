//! A fake Kubernetes API server for tests (test code only): a small hyper server on
//! 127.0.0.1 answering the real paths and verbs meshctl uses, with the API server's
//! behaviour where meshctl depends on it:
//! - discovery: `/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION` (APIResourceLists);
//! - `/version`;
//! - GET and DELETE of one object, 404 with a `Status` when it is absent;
//! - server-side apply: PATCH with `application/apply-patch+yaml` and a `fieldManager`
//!   (other PATCH types are refused, as a real server refuses an apply without them),
//!   and JSON merge patch (RFC 7386, `application/merge-patch+json`) of an existing object,
//!   `dryRun=All` validates without storing, namespaced objects need their namespace;
//! - CRDs become Established on the second read after they are applied; Deployments are
//!   Available or not as the test says;
//! - an applied Istio object whose CRD is stored goes through the CRD's schema as the API
//!   server's does (`mesh_core::validate::admission`, through `core/tests/support/openapi.rs`): unknown fields are pruned, and a body
//!   that fails the schema is refused with 422 Invalid (patterns are not checked here);
//! - LIST of a collection (in a namespace or across all), and WATCH from a
//!   resourceVersion with every later change and BOOKMARKs when asked;
//! - SelfSubjectAccessReview, denying the resources the test names;
//! - TokenReview: tokens the test registers map to a user and the audiences they are
//!   valid for; an unknown token, or one asked for an audience it lacks, is not
//!   authenticated (with the API server's error text);
//! - POST (create) into a collection, 409 AlreadyExists when the name is taken;
//! - PUT (update, replace) of an existing object with optimistic concurrency: the body's
//!   `metadata.resourceVersion` must be given (422 otherwise) and equal the stored one,
//!   else 409 Conflict with the API server's message; leader election relies on it;
//! - the proxy subresource: meshd's `/debug/syncz` through its Service, and whatever
//!   the test sets for a pod or service port;
//! - LIST with an equality `labelSelector` (`k=v,k2=v2`);
//! - the pod portforward verb: a websocket upgrade of
//!   `GET /api/v1/namespaces/NS/pods/NAME/portforward?ports=P` with subprotocol
//!   `v4.channel.k8s.io`, as the kubelet speaks it: each binary message starts with its
//!   channel (0 data, 1 error), both channels first carry the port (2 bytes, little
//!   endian), then the data channel is relayed to the local TCP address the test set for
//!   `NS/NAME:PORT`. When that cannot be reached, the kubelet's message goes on the error
//!   channel and the websocket closes; when the far end closes, so does the websocket.
//!
//! Every request is logged (method, path, query, content type, bearer token) for asserts.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value as J, json};

/// The API server's prune-then-validate (test code shared with mesh-core's CRD test).
#[path = "../../../core/tests/support/openapi.rs"]
mod openapi;

/// (group, version, kind, plural, namespaced)
const RESOURCES: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "Namespace", "namespaces", false),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "Pod", "pods", true),
    ("", "v1", "Secret", "secrets", true),
    ("apps", "v1", "Deployment", "deployments", true),
    ("coordination.k8s.io", "v1", "Lease", "leases", true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
    ),
    (
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "tokenreviews",
        false,
    ),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
    ),
    (
        "networking.istio.io",
        "v1",
        "VirtualService",
        "virtualservices",
        true,
    ),
    (
        "networking.istio.io",
        "v1",
        "DestinationRule",
        "destinationrules",
        true,
    ),
    ("networking.istio.io", "v1", "Gateway", "gateways", true),
    (
        "networking.istio.io",
        "v1",
        "ServiceEntry",
        "serviceentries",
        true,
    ),
    (
        "security.istio.io",
        "v1",
        "AuthorizationPolicy",
        "authorizationpolicies",
        true,
    ),
    (
        "security.istio.io",
        "v1",
        "PeerAuthentication",
        "peerauthentications",
        true,
    ),
];

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: String,
    pub token: Option<String>,
}

#[derive(Default)]
pub struct State {
    /// Stored objects by their URL path.
    pub objects: BTreeMap<String, J>,
    pub requests: Vec<Logged>,
    /// Resources (plural names) SelfSubjectAccessReview says no to; `pods/portforward`
    /// here also makes the portforward verb answer 403, as RBAC would.
    pub denied: BTreeSet<String>,
    /// Object paths whose next GET answers 404 once, as if they were created just after
    /// (another client racing this one).
    pub hide_next_get: BTreeSet<String>,
    /// TokenReview answers 500, as an API server that cannot reach its authenticator.
    pub fail_token_reviews: bool,
    /// TokenReview: token -> (username, audiences the token is valid for).
    pub tokens: BTreeMap<String, (String, Vec<String>)>,
    /// Whether applied Deployments report Available.
    pub deployments_available: bool,
    /// What meshd's `/debug/syncz` answers (through the service proxy).
    pub syncz: J,
    pub minor: String,
    /// Answers of the proxy subresource, by `PLURAL/NS/NAME:PORT/PATH`.
    pub proxied: BTreeMap<String, String>,
    /// Where the portforward verb relays, by `NS/POD:PORT` (unset: connection refused).
    pub forwards: BTreeMap<String, SocketAddr>,
    /// How many of the next watches answer `410 Gone` (an expired resourceVersion) once a
    /// change arrives, as a server that compacted its history does.
    pub expire_watches: u32,
    /// Reads of each CRD since it was applied (Established from the second).
    crd_reads: BTreeMap<String, u32>,
    resource_version: u64,
    /// Every change, for WATCH: (resourceVersion, object path, event type, object).
    events: Vec<(u64, String, &'static str, J)>,
    /// The latest resourceVersion, for watchers to wake on.
    notify: Option<tokio::sync::watch::Sender<u64>>,
}

impl State {
    /// Stores (or with `None` removes) an object, recording the change for watchers.
    fn record(&mut self, key: &str, obj: Option<J>) -> Option<J> {
        self.resource_version += 1;
        let rv = self.resource_version;
        let (kind, stored, old) = match obj {
            Some(mut o) => {
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                let old = self.objects.insert(key.to_owned(), o.clone());
                (if old.is_some() { "MODIFIED" } else { "ADDED" }, o, old)
            }
            None => match self.objects.remove(key) {
                Some(mut o) => {
                    o["metadata"]["resourceVersion"] = json!(rv.to_string());
                    ("DELETED", o, None)
                }
                None => return None,
            },
        };
        self.events.push((rv, key.to_owned(), kind, stored.clone()));
        if let Some(n) = &self.notify {
            n.send_replace(rv);
        }
        Some(old.unwrap_or(stored))
    }
}

/// The running fake; stops when dropped.
pub struct FakeApi {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl FakeApi {
    pub fn start() -> FakeApi {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(State {
            deployments_available: true,
            syncz: json!([]),
            minor: "33".into(),
            notify: Some(tokio::sync::watch::Sender::new(0)),
            ..State::default()
        }));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        FakeApi {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    /// A kubeconfig whose context `fake` points here (with a bearer token) and whose
    /// current context points at a closed port, so tests show `--context` is obeyed.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://{}
- name: closed
  cluster:
    server: http://127.0.0.1:9
contexts:
- name: fake
  context:
    cluster: fake
    user: tester
- name: closed
  context:
    cluster: closed
    user: tester
current-context: closed
users:
- name: tester
  user:
    token: fake-token
",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.with(|s| s.requests.clone())
    }

    pub fn object(&self, path: &str) -> Option<J> {
        self.with(|s| s.objects.get(path).cloned())
    }

    /// Stores an object as if someone had created it.
    pub fn put(&self, path: &str, obj: J) {
        self.with(|s| s.record(path, Some(obj)));
    }

    /// Registers a token TokenReview accepts for `user` and `audiences`.
    pub fn add_token(&self, token: &str, user: &str, audiences: &[&str]) {
        self.with(|s| {
            s.tokens.insert(
                token.to_owned(),
                (
                    user.to_owned(),
                    audiences.iter().map(|a| (*a).to_owned()).collect(),
                ),
            )
        });
    }

    /// Deletes an object as if someone had (watchers see it).
    pub fn remove(&self, path: &str) {
        self.with(|s| s.record(path, None));
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn respond(code: StatusCode, body: &J) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *r.status_mut() = code;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    respond(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
        }),
    )
}

fn resource_list(group: &str, version: &str) -> Option<J> {
    let resources: Vec<J> = RESOURCES
        .iter()
        .filter(|(g, v, ..)| *g == group && *v == version)
        .map(|(_, _, kind, plural, namespaced)| {
            json!({
                "name": plural, "singularName": kind.to_lowercase(), "namespaced": namespaced,
                "kind": kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            })
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// Where a URL points: the group version, the namespace, the resource, the name, and
/// anything after the name (a subresource such as `proxy/...`).
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    rest: Vec<String>,
}

fn parse_target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), (*v).to_owned(), rest),
        ["apis", g, v, rest @ ..] => ((*g).to_owned(), (*v).to_owned(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] => {
            (Some((*ns).to_owned()), [&[*plural][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    let plural = rest.first().map(|p| (*p).to_owned()).unwrap_or_default();
    Some(Target {
        group,
        version,
        namespace,
        plural,
        name: rest.get(1).map(|s| (*s).to_owned()),
        rest: rest.iter().skip(2).map(|s| (*s).to_owned()).collect(),
    })
}

fn object_path(t: &Target, name: &str) -> String {
    let base = if t.group.is_empty() {
        format!("/api/{}", t.version)
    } else {
        format!("/apis/{}/{}", t.group, t.version)
    };
    match &t.namespace {
        Some(ns) => format!("{base}/namespaces/{ns}/{}/{name}", t.plural),
        None => format!("{base}/{}/{name}", t.plural),
    }
}

/// The query parameters, percent-decoded.
fn parse_query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), percent_decode(v)),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap() * 16 + hex(l).unwrap()) as u8);
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `obj`'s labels satisfy an equality selector (`k=v,k2==v2,k3!=v3`).
fn labels_match(obj: &J, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|r| !r.is_empty())
        .all(|requirement| {
            let label = |k: &str| {
                obj["metadata"]["labels"][k.trim()]
                    .as_str()
                    .map(str::to_owned)
            };
            if let Some((k, v)) = requirement.split_once("!=") {
                label(k).as_deref() != Some(v.trim())
            } else if let Some((k, v)) = requirement
                .split_once("==")
                .or_else(|| requirement.split_once('='))
            {
                label(k).as_deref() == Some(v.trim())
            } else {
                label(requirement).is_some()
            }
        })
}

async fn handle(state: &Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = parse_query(&req);
    if path.ends_with("/portforward") {
        return portforward(state, req, path, query);
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let token = header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut s = state.lock().unwrap();
    s.requests.push(Logged {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        content_type: content_type.clone(),
        token,
    });

    match (method.as_str(), path.as_str()) {
        ("GET", "/version") => {
            return respond(
                StatusCode::OK,
                &json!({"major": "1", "minor": s.minor, "gitVersion": format!("v1.{}.0", s.minor),
                        "gitCommit": "fake", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                        "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
            );
        }
        ("GET", "/api") => {
            return respond(
                StatusCode::OK,
                &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            );
        }
        ("GET", "/apis") => {
            let groups: BTreeSet<&str> = RESOURCES
                .iter()
                .map(|r| r.0)
                .filter(|g| !g.is_empty())
                .collect();
            let groups: Vec<J> = groups
                .iter()
                .map(|g| {
                    let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                    json!({"name": g, "versions": [gv], "preferredVersion": gv})
                })
                .collect();
            return respond(
                StatusCode::OK,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            );
        }
        _ => {}
    }
    let Some(t) = parse_target(&path) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("no route for {path}"),
        );
    };
    if t.plural.is_empty() {
        // Discovery of a group version.
        return match resource_list(&t.group, &t.version) {
            Some(list) => respond(StatusCode::OK, &list),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            ),
        };
    }
    let Some(&(_, _, kind, _, namespaced)) = RESOURCES
        .iter()
        .find(|r| r.0 == t.group && r.1 == t.version && r.3 == t.plural)
    else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
        );
    };

    // The proxy subresource: answers the test set, by `PLURAL/NS/NAME:PORT/PATH`.
    if t.rest.first().map(String::as_str) == Some("proxy") {
        let key = format!(
            "{}/{}/{}/{}",
            t.plural,
            t.namespace.as_deref().unwrap_or_default(),
            t.name.as_deref().unwrap_or_default(),
            t.rest[1..].join("/")
        );
        if let Some(body) = s.proxied.get(&key) {
            let mut r = Response::new(Full::new(Bytes::from(body.clone())).boxed());
            r.headers_mut().insert(
                "content-type",
                hyper::header::HeaderValue::from_static("application/json"),
            );
            return r;
        }
    }
    // The service proxy to meshd's debug API.
    if t.plural == "services" && t.rest.first().map(String::as_str) == Some("proxy") {
        let port_ok = t.name.as_deref().is_some_and(|n| n.ends_with(":15014"));
        if method == "GET" && port_ok && t.rest[1..].join("/") == "debug/syncz" {
            return respond(StatusCode::OK, &s.syncz);
        }
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "no endpoints available for service",
        );
    }

    if kind == "SelfSubjectAccessReview" {
        if method != "POST" {
            return status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "create only",
            );
        }
        let mut review: J = serde_json::from_slice(&body).unwrap_or_default();
        let resource = review
            .pointer("/spec/resourceAttributes/resource")
            .and_then(J::as_str)
            .unwrap_or_default()
            .to_owned();
        let allowed = !s.denied.contains(&resource);
        review["status"] = if allowed {
            json!({"allowed": true, "reason": "fake: allowed"})
        } else {
            json!({"allowed": false, "reason": format!("fake: {resource} denied")})
        };
        return respond(StatusCode::CREATED, &review);
    }

    if kind == "TokenReview" {
        if method != "POST" {
            return status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "create only",
            );
        }
        if s.fail_token_reviews {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "fake: the token authenticator is unavailable",
            );
        }
        let mut review: J = serde_json::from_slice(&body).unwrap_or_default();
        let token = review
            .pointer("/spec/token")
            .and_then(J::as_str)
            .unwrap_or_default();
        let asked: Vec<String> = review
            .pointer("/spec/audiences")
            .and_then(J::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        review["status"] = match s.tokens.get(token) {
            None => json!({"authenticated": false, "error": "[invalid bearer token, unknown]"}),
            Some((user, valid)) => {
                let granted: Vec<&String> = if asked.is_empty() {
                    valid.iter().collect()
                } else {
                    asked.iter().filter(|a| valid.contains(a)).collect()
                };
                if granted.is_empty() {
                    json!({"authenticated": false, "error": format!(
                        "[invalid bearer token, token audiences {valid:?} is invalid for the target audiences {asked:?}, unknown]")})
                } else {
                    let groups = if user.starts_with("system:serviceaccount:") {
                        json!(["system:serviceaccounts", "system:authenticated"])
                    } else {
                        json!(["system:authenticated"])
                    };
                    json!({"authenticated": true, "audiences": granted,
                           "user": {"username": user, "uid": format!("uid-{user}"), "groups": groups}})
                }
            }
        };
        return respond(StatusCode::CREATED, &review);
    }

    let Some(name) = t.name.clone() else {
        if method == "POST" {
            let Ok(mut obj) = serde_json::from_slice::<J>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "body is not JSON");
            };
            let Some(name) = obj["metadata"]["name"].as_str().map(str::to_owned) else {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "metadata.name is required",
                );
            };
            if namespaced != t.namespace.is_some() {
                return status(StatusCode::NOT_FOUND, "NotFound", "scope mismatch");
            }
            if let Some(ns) = &t.namespace
                && !s.objects.contains_key(&format!("/api/v1/namespaces/{ns}"))
            {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("namespaces \"{ns}\" not found"),
                );
            }
            let key = object_path(&t, &name);
            if s.objects.contains_key(&key) {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    &format!("{} \"{name}\" already exists", t.plural),
                );
            }
            obj["metadata"]["uid"] = json!(format!("uid-{}", s.resource_version + 1));
            obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            s.record(&key, Some(obj.clone()));
            let stored = s.objects.get(&key).cloned().unwrap_or(obj);
            return respond(StatusCode::CREATED, &stored);
        }
        if method != "GET" {
            return status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "collections: GET only",
            );
        }
        let (group, version, plural, namespace) = (
            t.group.clone(),
            t.version.clone(),
            t.plural.clone(),
            t.namespace.clone(),
        );
        let in_collection = move |key: &str| {
            parse_target(key).is_some_and(|o| {
                o.group == group
                    && o.version == version
                    && o.plural == plural
                    && (namespace.is_none() || o.namespace == namespace)
            })
        };
        let api_version = if t.group.is_empty() {
            t.version.clone()
        } else {
            format!("{}/{}", t.group, t.version)
        };
        if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
            let from: u64 = query
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let bookmarks = query.get("allowWatchBookmarks").map(String::as_str) == Some("true");
            let mut woken = s.notify.as_ref().map(|n| n.subscribe());
            let state = state.clone();
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
            let kind = kind.to_owned();
            tokio::spawn(async move {
                let mut sent = from;
                loop {
                    let expired = {
                        let mut s = state.lock().unwrap();
                        let fresh = s
                            .events
                            .iter()
                            .any(|(rv, key, ..)| *rv > sent && in_collection(key));
                        let expire = fresh && s.expire_watches > 0;
                        if expire {
                            s.expire_watches -= 1;
                        }
                        expire
                    };
                    if expired {
                        let line = json!({"type": "ERROR", "object": {
                            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": "too old resource version", "reason": "Expired", "code": 410}})
                        .to_string()
                            + "\n";
                        let _ = tx.send(Ok(Frame::data(Bytes::from(line)))).await;
                        return;
                    }
                    let batch: Vec<(u64, &'static str, J)> = {
                        let s = state.lock().unwrap();
                        s.events
                            .iter()
                            .filter(|(rv, key, ..)| *rv > sent && in_collection(key))
                            .map(|(rv, _, ty, o)| (*rv, *ty, o.clone()))
                            .collect()
                    };
                    for (rv, ty, o) in batch {
                        sent = rv;
                        let line = json!({"type": ty, "object": o}).to_string() + "\n";
                        if tx.send(Ok(Frame::data(Bytes::from(line)))).await.is_err() {
                            return;
                        }
                    }
                    if bookmarks {
                        let rv = state.lock().unwrap().resource_version;
                        let line = json!({"type": "BOOKMARK", "object": {
                            "apiVersion": api_version, "kind": kind,
                            "metadata": {"resourceVersion": rv.to_string()}}})
                        .to_string()
                            + "\n";
                        if tx.send(Ok(Frame::data(Bytes::from(line)))).await.is_err() {
                            return;
                        }
                    }
                    match woken.as_mut() {
                        Some(w) => {
                            if w.changed().await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    }
                }
            });
            let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
            let mut r = Response::new(BodyExt::boxed(body));
            r.headers_mut().insert(
                "content-type",
                hyper::header::HeaderValue::from_static("application/json"),
            );
            return r;
        }
        let selector = query.get("labelSelector").cloned().unwrap_or_default();
        let items: Vec<J> = s
            .objects
            .iter()
            .filter(|(key, o)| in_collection(key) && labels_match(o, &selector))
            .map(|(_, o)| {
                // As a real server lists them: items carry no apiVersion or kind.
                let mut o = o.clone();
                if let Some(m) = o.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                o
            })
            .collect();
        return respond(
            StatusCode::OK,
            &json!({"apiVersion": api_version, "kind": format!("{kind}List"),
                    "metadata": {"resourceVersion": s.resource_version.to_string()}, "items": items}),
        );
    };

    if namespaced != t.namespace.is_some() {
        return status(StatusCode::NOT_FOUND, "NotFound", "scope mismatch");
    }
    let key = object_path(&t, &name);
    match method.as_str() {
        "GET" => {
            let hidden = s.hide_next_get.remove(&key);
            let Some(mut obj) = s.objects.get(&key).cloned().filter(|_| !hidden) else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("{} \"{name}\" not found", t.plural),
                );
            };
            if kind == "CustomResourceDefinition" {
                let reads = s.crd_reads.entry(key.clone()).or_insert(0);
                *reads += 1;
                if *reads >= 2 {
                    obj["status"] = json!({"conditions": [
                        {"type": "NamesAccepted", "status": "True"},
                        {"type": "Established", "status": "True"},
                    ]});
                    s.objects.insert(key, obj.clone());
                }
            }
            respond(StatusCode::OK, &obj)
        }
        "DELETE" => match s.record(&key, None) {
            Some(obj) => respond(StatusCode::OK, &obj),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("{} \"{name}\" not found", t.plural),
            ),
        },
        "PUT" => {
            let Some(current) = s.objects.get(&key).cloned() else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("{} \"{name}\" not found", t.plural),
                );
            };
            let Ok(mut obj) = serde_json::from_slice::<J>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "body is not JSON");
            };
            if obj["metadata"]["name"] != name.as_str() {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the name of the object does not match the name on the URL",
                );
            }
            let Some(sent) = obj["metadata"]["resourceVersion"]
                .as_str()
                .filter(|v| !v.is_empty())
            else {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    &format!(
                        "{kind}.{} \"{name}\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                        t.group
                    ),
                );
            };
            if current["metadata"]["resourceVersion"].as_str() != Some(sent) {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {}.{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                        t.plural, t.group
                    ),
                );
            }
            obj["metadata"]["uid"] = current["metadata"]["uid"].clone();
            obj["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"].clone();
            s.record(&key, Some(obj));
            let stored = s.objects.get(&key).cloned().unwrap_or(J::Null);
            respond(StatusCode::OK, &stored)
        }
        "PATCH" if content_type == "application/merge-patch+json" => {
            let Some(mut obj) = s.objects.get(&key).cloned() else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("{} \"{name}\" not found", t.plural),
                );
            };
            let Ok(patch) = serde_json::from_slice::<J>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "body is not JSON");
            };
            merge_patch(&mut obj, &patch);
            s.record(&key, Some(obj.clone()));
            respond(StatusCode::OK, &obj)
        }
        "PATCH" => {
            if content_type != "application/apply-patch+yaml" {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    "this fake takes server-side apply only",
                );
            }
            if query.get("fieldManager").is_none_or(String::is_empty) {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "PATCH, application/apply-patch+yaml: fieldManager is required",
                );
            }
            let Ok(mut obj) = serde_json::from_slice::<J>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "body is not JSON");
            };
            if obj["kind"] != kind || obj["metadata"]["name"] != name.as_str() {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "kind or name does not match the URL",
                );
            }
            if let Some(ns) = &t.namespace {
                let ns_key = format!("/api/v1/namespaces/{ns}");
                if !s.objects.contains_key(&ns_key) {
                    return status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        &format!("namespaces \"{ns}\" not found"),
                    );
                }
            }
            if let Err(problems) = admit_by_crd(&s.objects, &t, &mut obj) {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    &format!(
                        "{kind}.{} \"{name}\" is invalid: {}",
                        t.group,
                        problems
                            .iter()
                            .map(|p| p.trim_start_matches('.'))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            let created = s
                .objects
                .get(&key)
                .map(|o| o["metadata"]["creationTimestamp"].clone());
            obj["metadata"]["uid"] = json!(format!("uid-{}", s.resource_version + 1));
            obj["metadata"]["creationTimestamp"] = created.unwrap_or(json!("2026-01-01T00:00:00Z"));
            obj["metadata"]["managedFields"] =
                json!([{"manager": query["fieldManager"], "operation": "Apply"}]);
            if kind == "Deployment" {
                let replicas = obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
                obj["status"] = if s.deployments_available {
                    json!({"availableReplicas": replicas, "readyReplicas": replicas, "conditions": [
                        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]})
                } else {
                    json!({"conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                        "message": "Deployment does not have minimum availability."}]})
                };
            }
            if query.get("dryRun").map(String::as_str) != Some("All") {
                s.crd_reads.remove(&key);
                s.record(&key, Some(obj.clone()));
            }
            respond(StatusCode::OK, &obj)
        }
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", &method),
    }
}

/// For an object of a group whose CRD is stored: prunes what the served version's schema
/// does not specify and validates the rest (patterns aside), as the API server does.
fn admit_by_crd(objects: &BTreeMap<String, J>, t: &Target, obj: &mut J) -> Result<(), Vec<String>> {
    let crd_key = format!(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{}.{}",
        t.plural, t.group
    );
    let Some(crd) = objects.get(&crd_key) else {
        return Ok(());
    };
    let Some(schema) = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == t.version.as_str())
        .map(|v| &v["schema"]["openAPIV3Schema"])
    else {
        return Err(vec![format!("version {} is not served", t.version)]);
    };
    let (pruned, _, problems) = openapi::admit(schema, obj, &|_, _| true);
    if !problems.is_empty() {
        return Err(problems);
    }
    *obj = pruned;
    Ok(())
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut J, patch: &J) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(J::Null), v);
                }
            }
        }
        (_, Some(_)) => {
            *target = json!({});
            merge_patch(target, patch);
        }
        _ => *target = patch.clone(),
    }
}

/// The portforward verb (see the module docs).
fn portforward(
    state: &Arc<Mutex<State>>,
    mut req: Request<Incoming>,
    path: String,
    query: BTreeMap<String, String>,
) -> Response<Body> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut s = state.lock().unwrap();
    s.requests.push(Logged {
        method: req.method().as_str().to_owned(),
        path: path.clone(),
        query: query.clone(),
        content_type: header("content-type").unwrap_or_default(),
        token: header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned)),
    });
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["api", "v1", "namespaces", ns, "pods", name, "portforward"] = segs.as_slice() else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("no route for {path}"),
        );
    };
    let (ns, name) = ((*ns).to_owned(), (*name).to_owned());
    // kubectl and kube-rs send GET (the API server also takes POST for SPDY).
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::POST {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            req.method().as_str(),
        );
    }
    if s.denied.contains("pods/portforward") {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "pods \"{name}\" is forbidden: User \"tester\" cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"{ns}\""
            ),
        );
    }
    let Some(pod) = s
        .objects
        .get(&format!("/api/v1/namespaces/{ns}/pods/{name}"))
    else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pods \"{name}\" not found"),
        );
    };
    let phase = pod["status"]["phase"]
        .as_str()
        .unwrap_or("Unknown")
        .to_owned();
    if phase != "Running" {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("pod {name} is not running (phase {phase})"),
        );
    }
    let ports: Vec<&str> = query
        .get("ports")
        .map(|p| p.split(',').collect())
        .unwrap_or_default();
    let Some(Ok(port)) = ports.first().map(|p| p.parse::<u16>()) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "query parameter \"ports\" is required",
        );
    };
    if ports.len() != 1 {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "this fake forwards one port per request",
        );
    }
    let upgrade = header("upgrade").unwrap_or_default();
    let protocols = header("sec-websocket-protocol").unwrap_or_default();
    let Some(key) = header("sec-websocket-key") else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "not a websocket upgrade",
        );
    };
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Upgrade: websocket is required (SPDY is not served here)",
        );
    }
    if !protocols
        .split(',')
        .any(|p| p.trim() == "v4.channel.k8s.io")
    {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("unsupported subprotocols {protocols:?}"),
        );
    }
    let target = s.forwards.get(&format!("{ns}/{name}:{port}")).copied();
    drop(s);

    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        relay_websocket(ws, &ns, &name, port, target).await;
    });
    let mut r = Response::new(Full::new(Bytes::new()).boxed());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        "upgrade",
        hyper::header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        "connection",
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        "sec-websocket-accept",
        hyper::header::HeaderValue::from_str(&derive_accept_key(key.as_bytes())).unwrap(),
    );
    h.insert(
        "sec-websocket-protocol",
        hyper::header::HeaderValue::from_static("v4.channel.k8s.io"),
    );
    r
}

async fn relay_websocket<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    ns: &str,
    name: &str,
    port: u16,
    target: Option<SocketAddr>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;

    let (mut sink, mut from_client) = ws.split();
    let [lo, hi] = port.to_le_bytes();
    for channel in [0u8, 1] {
        if sink
            .send(Message::binary(vec![channel, lo, hi]))
            .await
            .is_err()
        {
            return;
        }
    }
    let connected = match target {
        Some(addr) => tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| match e.kind() {
                // Go's words, as the kubelet reports them.
                std::io::ErrorKind::ConnectionRefused => {
                    format!("dial tcp4 {addr}: connect: connection refused")
                }
                _ => format!("dial tcp4 {addr}: {e}"),
            }),
        None => Err(format!(
            "dial tcp4 127.0.0.1:{port}: connect: connection refused"
        )),
    };
    let tcp = match connected {
        Ok(tcp) => tcp,
        Err(reason) => {
            // The kubelet's words, then the connection ends.
            let message = format!(
                "error forwarding port {port} to pod {name}, uid : failed to connect to localhost:{port} inside namespace \"{ns}\", IPv4: {reason}"
            );
            let mut frame = vec![1u8];
            frame.extend_from_slice(message.as_bytes());
            let _ = sink.send(Message::binary(frame)).await;
            let _ = sink.send(Message::Close(None)).await;
            // A well-behaved server waits (bounded) for the client's close before dropping
            // the connection: data the client sends meanwhile must not reset it.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while let Some(Ok(m)) = from_client.next().await {
                    if m.is_close() {
                        break;
                    }
                }
            })
            .await;
            return;
        }
    };
    let (mut tcp_read, mut tcp_write) = tcp.into_split();
    let to_pod = async {
        while let Some(Ok(message)) = from_client.next().await {
            match message {
                Message::Binary(b) if b.first() == Some(&0) => {
                    let written = tcp_write.write_all(&b[1..]).await;
                    if written.is_err() {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = tcp_write.shutdown().await;
    };
    let from_pod = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match tcp_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut frame = Vec::with_capacity(n + 1);
                    frame.push(0u8);
                    frame.extend_from_slice(&buf[..n]);
                    if sink.send(Message::binary(frame)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    };
    // Either end finishing ends the stream, as the kubelet's v4 websocket does.
    tokio::select! {
        _ = to_pod => {}
        _ = from_pod => {}
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(m)) = from_client.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
}
