//! The commands that talk to a Kubernetes API server: `install`, `uninstall`, `check` and
//! `dashboard` (and the port-forward proxy-status and proxy-config use with `--use-kube`).
//!
//! This module owns the connection (kubeconfig with `--kubeconfig`/`--context`, else
//! `KUBECONFIG` or `~/.kube/config`, else the in-cluster service account, all through
//! kube's `Config`) and the generic object operations the commands share: discovery of a
//! kind's resource, server-side apply, delete, and bounded polling.

pub mod check;
pub mod dashboard;
pub mod fetch;
pub mod forward;
pub mod install;
pub mod uninstall;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope};
use kube::{Client, Config};
use serde_json::Value as J;

/// The field manager meshctl's server-side applies are recorded under.
pub const FIELD_MANAGER: &str = "meshctl";

/// Exit code when the cluster could not be reached or an operation failed.
pub const FAILED: u8 = 1;

/// How to reach the cluster.
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterArgs {
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current-context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl ClusterArgs {
    /// A client for the chosen cluster.
    pub async fn client(&self) -> Result<Client> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .with_context(|| format!("kubeconfig {}", path.display()))?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .context("loading kubeconfig")?,
            (None, None) => Config::infer()
                .await
                .context("no kubeconfig found and not running in a cluster")?,
        };
        Client::try_from(config).context("building the Kubernetes client")
    }
}

/// A kind's resource as the API server serves it, looked up once per kind.
#[derive(Default)]
pub struct Resolver {
    cache: HashMap<(String, String), (ApiResource, ApiCapabilities)>,
}

impl Resolver {
    /// The resource serving `apiVersion`/`kind` (discovery of that group version only).
    pub async fn resolve(
        &mut self,
        client: &Client,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities)> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found = kube::discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("the cluster does not serve {kind} ({api_version})"))?;
        self.cache.insert(key, found.clone());
        Ok(found)
    }

    /// An API handle for `obj` (namespaced or cluster-wide, as the server says).
    pub async fn api_for(
        &mut self,
        client: &Client,
        obj: &J,
    ) -> Result<(Api<DynamicObject>, String)> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"]
            .as_str()
            .ok_or_else(|| anyhow!("{kind} without metadata.name"))?
            .to_owned();
        let (ar, caps) = self.resolve(client, api_version, kind).await?;
        let api = match (caps.scope, obj["metadata"]["namespace"].as_str()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            (Scope::Namespaced, None) => bail!("{kind} {name} has no namespace"),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
        };
        Ok((api, name))
    }
}

/// `Kind ns/name` or `Kind name`, for progress lines.
pub fn describe(obj: &J) -> String {
    let kind = obj["kind"].as_str().unwrap_or("?");
    let name = obj["metadata"]["name"].as_str().unwrap_or("?");
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Server-side apply of one object under meshctl's field manager (forcing conflicts, as
/// an installer owns the fields it sets).
pub async fn apply(
    client: &Client,
    resolver: &mut Resolver,
    obj: &J,
    dry_run: bool,
) -> Result<DynamicObject> {
    let (api, name) = resolver.api_for(client, obj).await?;
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    api.patch(&name, &params, &Patch::Apply(obj))
        .await
        .with_context(|| format!("applying {}", describe(obj)))
}

/// What a delete found.
#[derive(Debug, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    NotFound,
}

/// Deletes one object; an object already gone is not an error.
pub async fn delete(
    client: &Client,
    resolver: &mut Resolver,
    obj: &J,
    dry_run: bool,
) -> Result<Deleted> {
    let (api, name) = match resolver.api_for(client, obj).await {
        Ok(found) => found,
        // A kind the cluster no longer serves (its CRD is gone): nothing of it is left.
        Err(e) if is_missing_kind(&e) => return Ok(Deleted::NotFound),
        Err(e) => return Err(e),
    };
    let params = DeleteParams {
        dry_run,
        ..DeleteParams::background()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(Deleted::Deleted),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(Deleted::NotFound),
        Err(e) => Err(e).with_context(|| format!("deleting {}", describe(obj))),
    }
}

fn is_missing_kind(e: &anyhow::Error) -> bool {
    e.chain().any(|c| match c.downcast_ref::<kube::Error>() {
        Some(kube::Error::Discovery(_)) => true,
        Some(kube::Error::Api(s)) => s.is_not_found(),
        _ => false,
    })
}

/// Gets an object, `None` when it does not exist.
pub async fn get(client: &Client, resolver: &mut Resolver, obj: &J) -> Result<Option<J>> {
    let (api, name) = resolver.api_for(client, obj).await?;
    match api.get_opt(&name).await {
        Ok(found) => Ok(found.map(|o| serde_json::to_value(o).unwrap_or_default())),
        Err(e) => Err(e).with_context(|| format!("reading {}", describe(obj))),
    }
}

/// Whether `obj.status.conditions` has `type` with status `True`.
pub fn condition_true(obj: &J, kind: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(J::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        })
}

/// Polls `probe` every `every` until it succeeds; after `timeout`, fails with the last
/// state `probe` described.
pub async fn wait_for<T, F, Fut>(
    timeout: Duration,
    every: Duration,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return Ok(v),
            Err(state) if Instant::now() >= deadline => return Err(state),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}
