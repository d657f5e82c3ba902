//! `meshctl manifest generate`: the Kubernetes objects of a mesh installation, rendered from
//! a profile and `--set` overrides.
//!
//! This module owns what is installed and in which order ([`render`]): CRDs first (nothing
//! else can name an Istio kind before they exist), then the namespace, identity and RBAC,
//! mesh config, meshd, the webhook configurations (which point at meshd's Service), and
//! gateways. `meshctl install` applies the same list in the same order.

pub mod crds;
pub mod objects;
pub mod values;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::Value as J;

pub use values::{Profile, SetError, Values};

use crate::exit;

pub const EXAMPLES: &str = "Examples:
  meshctl manifest generate                          # default profile, to stdout
  meshctl manifest generate --profile demo -o out/   # one file per component
  meshctl manifest generate --set meshd.replicas=2 --set gateways.ingress.serviceType=NodePort";

#[derive(Debug, Args)]
pub struct ManifestArgs {
    #[command(subcommand)]
    pub command: ManifestCommand,
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Print the installation's Kubernetes objects (CRDs, RBAC, meshd, webhooks, gateways).
    #[command(after_help = EXAMPLES)]
    Generate(GenerateArgs),
}

/// What to render: shared by `manifest generate` and `install`.
#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// The installation profile.
    #[arg(long, value_enum, default_value_t = Profile::Default)]
    pub profile: Profile,
    /// Override a setting, KEY=VALUE (repeatable). Keys: namespace, hub, tag,
    /// meshd.replicas, meshd.resources.requests.cpu, meshd.resources.requests.memory,
    /// meshd.logLevel, webhooks.injection.enabled, webhooks.injection.failurePolicy,
    /// webhooks.validation.enabled,
    /// webhooks.validation.failurePolicy, gateways.ingress.enabled,
    /// gateways.ingress.serviceType, gateways.egress.enabled, gateways.replicas,
    /// meshConfig.accessLog.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl RenderArgs {
    /// The profile's values with every `--set` applied, in order.
    pub fn values(&self) -> Result<Values, SetError> {
        let mut values = Values::for_profile(self.profile);
        for s in &self.set {
            values.set(s)?;
        }
        Ok(values)
    }
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub render: RenderArgs,
    /// Write one file per component into this directory (created if missing) instead of
    /// printing one stream.
    #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
}

/// A part of the installation, applied as a unit (and written as one file by `-o DIR`).
#[derive(Debug, Clone)]
pub struct Component {
    pub name: &'static str,
    pub objects: Vec<J>,
}

/// The installation, in apply order.
pub fn render(values: &Values) -> Vec<Component> {
    let base = vec![
        objects::namespace(values),
        objects::service_account(values, objects::MESHD, "base"),
        objects::cluster_role(values),
        objects::cluster_role_binding(values),
        objects::role(values),
        objects::role_binding(values),
        objects::mesh_config(values),
    ];
    let mut base = base;
    let mut webhooks = Vec::new();
    if values.injection_webhook {
        base.push(objects::injector_config(values));
        webhooks.push(objects::injection_webhook(values));
    }
    if values.validation_webhook {
        webhooks.push(objects::validation_webhook(values));
    }
    let mut gateways = Vec::new();
    if values.ingress_gateway {
        gateways.extend(objects::gateway(
            values,
            "istio-ingressgateway",
            "ingressgateway",
            &values.ingress_service_type,
        ));
    }
    if values.egress_gateway {
        gateways.extend(objects::gateway(
            values,
            "istio-egressgateway",
            "egressgateway",
            "ClusterIP",
        ));
    }
    [
        Component {
            name: "crds",
            objects: crds::crds(values),
        },
        Component {
            name: "base",
            objects: base,
        },
        Component {
            name: "meshd",
            objects: vec![
                objects::meshd_service(values),
                objects::meshd_deployment(values),
            ],
        },
        Component {
            name: "webhooks",
            objects: webhooks,
        },
        Component {
            name: "gateways",
            objects: gateways,
        },
    ]
    .into_iter()
    .filter(|c| !c.objects.is_empty())
    .collect()
}

/// Objects as one multi-document YAML stream.
pub fn to_yaml<'a>(objects: impl IntoIterator<Item = &'a J>) -> String {
    let mut out = String::new();
    for (i, o) in objects.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&crate::output::to_yaml(o));
    }
    out
}

/// The whole installation as one stream.
pub fn generate(values: &Values) -> String {
    let components = render(values);
    to_yaml(components.iter().flat_map(|c| &c.objects))
}

/// Writes `NN-COMPONENT.yaml` files (numbered in apply order) and returns their paths.
pub fn write_dir(dir: &Path, values: &Values) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (i, c) in render(values).iter().enumerate() {
        let path = dir.join(format!("{:02}-{}.yaml", i + 1, c.name));
        std::fs::write(&path, to_yaml(&c.objects))?;
        written.push(path);
    }
    Ok(written)
}

pub fn run(args: &ManifestArgs) -> u8 {
    match &args.command {
        ManifestCommand::Generate(g) => generate_cmd(g),
    }
}

fn generate_cmd(args: &GenerateArgs) -> u8 {
    let values = match args.render.values() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    match &args.output_dir {
        None => {
            print!("{}", generate(&values));
            exit::OK
        }
        Some(dir) => match write_dir(dir, &values) {
            Ok(paths) => {
                for p in paths {
                    eprintln!("wrote {}", p.display());
                }
                exit::OK
            }
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", dir.display());
                exit::BAD_INPUT
            }
        },
    }
}
