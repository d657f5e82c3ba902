//! `meshctl uninstall`: deletes what `install` creates, in reverse order. Without
//! `--purge`, CRDs (and with them every Istio object users wrote) and the namespace stay.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use kube::Client;

use super::{ClusterArgs, Deleted, FAILED, Resolver, delete, describe};
use crate::exit;
use crate::manifest::{self, Profile, Values};

pub const EXAMPLES: &str = "Examples:
  meshctl uninstall                 # the control plane and gateways; CRDs and your config stay
  meshctl uninstall --purge         # everything, CRDs (and so every Istio object) included
  meshctl uninstall --dry-run";

#[derive(Debug, Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The namespace the control plane was installed in.
    #[arg(short = 'i', long = "istio-namespace", default_value = "istio-system")]
    pub namespace: String,
    /// Also delete the CRDs (every Istio object in the cluster goes with them) and the
    /// namespace.
    #[arg(long)]
    pub purge: bool,
    /// Send the deletes as a server-side dry run.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &UninstallArgs) -> u8 {
    let mut values = Values::for_profile(Profile::Demo);
    if let Err(e) = values.set(&format!("namespace={}", args.namespace)) {
        eprintln!("error: --istio-namespace: {e}");
        return exit::USAGE;
    }
    let outcome = crate::proxy_status::http::block_on(async {
        let client = args.cluster.client().await?;
        uninstall(
            &client,
            &values,
            args.purge,
            args.dry_run,
            &mut std::io::stderr(),
        )
        .await
    });
    match outcome.and_then(|r| r) {
        Ok(_) => exit::OK,
        Err(e) => {
            eprintln!("error: {e:#}");
            FAILED
        }
    }
}

/// Everything an installation in `values.namespace` can hold, whatever profile it used.
fn installable(values: &Values) -> Values {
    let mut all = values.clone();
    all.injection_webhook = true;
    all.validation_webhook = true;
    all.ingress_gateway = true;
    all.egress_gateway = true;
    all
}

/// Deletes in reverse apply order; returns how many objects were deleted.
pub async fn uninstall(
    client: &Client,
    values: &Values,
    purge: bool,
    dry_run: bool,
    progress: &mut dyn Write,
) -> Result<usize> {
    let mut resolver = Resolver::default();
    let suffix = if dry_run { " (dry run)" } else { "" };
    let mut deleted = 0;
    for component in manifest::render(&installable(values)).iter().rev() {
        if component.name == "crds" && !purge {
            let _ = writeln!(
                progress,
                "- kept {} CustomResourceDefinitions (--purge deletes them)",
                component.objects.len()
            );
            continue;
        }
        for obj in component.objects.iter().rev() {
            if obj["kind"] == "Namespace" && !purge {
                let _ = writeln!(progress, "- kept {} (--purge deletes it)", describe(obj));
                continue;
            }
            match delete(client, &mut resolver, obj, dry_run).await? {
                Deleted::Deleted => {
                    deleted += 1;
                    let _ = writeln!(progress, "✔ {} deleted{suffix}", describe(obj));
                }
                Deleted::NotFound => {
                    let _ = writeln!(progress, "- {} not found", describe(obj));
                }
            }
        }
    }
    let _ = writeln!(progress, "✔ uninstalled: {deleted} objects deleted{suffix}");
    Ok(deleted)
}
