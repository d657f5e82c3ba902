//! `meshctl install`: applies the rendered manifest with server-side apply, component by
//! component in [`crate::manifest::render`]'s order, waits for the CRDs to be Established
//! before anything else, and for meshd's Deployment to be Available at the end.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use kube::Client;
use serde_json::Value as J;

use super::{ClusterArgs, FAILED, Resolver, apply, condition_true, describe, get, wait_for};
use crate::exit;
use crate::manifest::{self, RenderArgs, objects};

pub const EXAMPLES: &str = "Examples:
  meshctl install                                   # default profile, current kubeconfig context
  meshctl install --profile demo --context kind-mesh
  meshctl install --dry-run                         # the API server checks every object, nothing changes
  meshctl install --set meshd.replicas=2 --timeout 10m";

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub render: RenderArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Send every object as a server-side dry run: the API server validates it, nothing is
    /// stored, nothing is waited for.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for the CRDs and for meshd to become ready (30s, 5m, 1m30s).
    #[arg(long, default_value = "5m", value_parser = crate::demo::parse_duration)]
    pub timeout: Duration,
}

pub fn run(args: &InstallArgs) -> u8 {
    let values = match args.render.values() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let outcome = crate::proxy_status::http::block_on(async {
        let client = args.cluster.client().await?;
        install(
            &client,
            &values,
            args.dry_run,
            args.timeout,
            &mut std::io::stderr(),
        )
        .await
    });
    match outcome.and_then(|r| r) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e:#}");
            FAILED
        }
    }
}

/// Applies the installation and waits for it; progress lines go to `progress`.
pub async fn install(
    client: &Client,
    values: &manifest::Values,
    dry_run: bool,
    timeout: Duration,
    progress: &mut dyn Write,
) -> Result<()> {
    let mut resolver = Resolver::default();
    let suffix = if dry_run { " (dry run)" } else { "" };
    let components = manifest::render(values);
    let mut applied = 0usize;
    // A dry run cannot place objects in a namespace that does not exist yet (the server
    // refuses them); those are listed, not sent.
    let namespace_missing = dry_run
        && get(client, &mut resolver, &objects::namespace(values))
            .await?
            .is_none();
    for component in &components {
        for obj in &component.objects {
            if namespace_missing && obj["metadata"]["namespace"].is_string() {
                let _ = writeln!(
                    progress,
                    "- {} not sent: namespace {} does not exist yet",
                    describe(obj),
                    values.namespace
                );
                continue;
            }
            apply(client, &mut resolver, obj, dry_run).await?;
            applied += 1;
            let _ = writeln!(progress, "✔ {} applied{suffix}", describe(obj));
        }
        if component.name == "crds" && !dry_run {
            wait_established(client, &mut resolver, &component.objects, timeout).await?;
            let _ = writeln!(
                progress,
                "✔ {} CustomResourceDefinitions established",
                component.objects.len()
            );
        }
    }
    if dry_run {
        let _ = writeln!(
            progress,
            "✔ {applied} objects accepted by the API server (dry run: nothing was changed)"
        );
        return Ok(());
    }
    let _ = writeln!(
        progress,
        "… waiting up to {timeout:?} for Deployment {}/{} to be available",
        values.namespace,
        objects::MESHD
    );
    let replicas = wait_available(client, &mut resolver, values, timeout).await?;
    let _ = writeln!(
        progress,
        "✔ Deployment {}/{} available ({replicas} ready)",
        values.namespace,
        objects::MESHD
    );
    let _ = writeln!(
        progress,
        "✔ installed: {applied} objects, profile {}",
        values.profile
    );
    Ok(())
}

/// Waits until every CRD is Established, reading the ones still pending each round.
async fn wait_established(
    client: &Client,
    resolver: &mut Resolver,
    crds: &[J],
    timeout: Duration,
) -> Result<()> {
    let mut pending = Vec::new();
    for crd in crds {
        pending.push(resolver.api_for(client, crd).await?);
    }
    let pending = std::sync::Arc::new(tokio::sync::Mutex::new(pending));
    wait_for(timeout, Duration::from_millis(250), || {
        let pending = pending.clone();
        async move {
            let mut pending = pending.lock().await;
            let mut still = Vec::new();
            for (api, name) in pending.drain(..) {
                let found = api.get_opt(&name).await.map_err(|e| format!("{name}: {e}"));
                let established = match &found {
                    Ok(Some(o)) => {
                        serde_json::to_value(o).is_ok_and(|o| condition_true(&o, "Established"))
                    }
                    _ => false,
                };
                if !established {
                    still.push((api, name));
                }
            }
            let names: Vec<String> = still.iter().map(|(_, n)| n.clone()).collect();
            *pending = still;
            if names.is_empty() {
                Ok(())
            } else {
                Err(format!("not Established: {}", names.join(", ")))
            }
        }
    })
    .await
    .map_err(|state| anyhow!("CustomResourceDefinitions after {timeout:?}: {state}"))
}

async fn wait_available(
    client: &Client,
    resolver: &mut Resolver,
    values: &manifest::Values,
    timeout: Duration,
) -> Result<i64> {
    let deployment = objects::meshd_deployment(values);
    let (api, name) = resolver.api_for(client, &deployment).await?;
    wait_for(timeout, Duration::from_secs(1), || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let found = api.get_opt(&name).await.map_err(|e| format!("{e}"))?;
            let o = serde_json::to_value(found.ok_or("not found")?).map_err(|e| e.to_string())?;
            let ready = o
                .pointer("/status/availableReplicas")
                .and_then(J::as_i64)
                .unwrap_or(0);
            if condition_true(&o, "Available") && ready > 0 {
                Ok(ready)
            } else {
                let why = o
                    .pointer("/status/conditions")
                    .and_then(J::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|c| c["status"] != "True")
                    .filter_map(|c| c["message"].as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(if why.is_empty() {
                    format!("{ready} replicas available")
                } else {
                    format!("{ready} replicas available: {why}")
                })
            }
        }
    })
    .await
    .map_err(|state| {
        anyhow!(
            "Deployment {}/{} not available after {timeout:?} ({state})",
            values.namespace,
            objects::MESHD
        )
    })
    .context("waiting for meshd")
}
