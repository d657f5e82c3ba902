//! meshctl: the command-line front end. Thin over mesh-core: parse flags, call the
//! library, print in the requested format, map the outcome to an exit code.

pub mod analyze;
pub mod args;
pub mod cluster;
pub mod demo;
pub mod describe;
pub mod describe_model;
pub mod diff;
pub mod get;
pub mod inject;
pub mod manifest;
pub mod output;
pub mod proxy_config;
pub mod proxy_status;
pub mod stat;
pub mod validate;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

pub use args::Cli;
use args::Command;

/// Exit codes every command keeps (DESIGN.md: contracts).
pub mod exit {
    /// Nothing at or above the failure threshold.
    pub const OK: u8 = 0;
    /// Findings at or above the failure threshold.
    pub const FINDINGS: u8 = 79;
    /// Bad usage: unknown flags, bad values, nothing to do.
    pub const USAGE: u8 = 64;
    /// Input that could not be read or parsed.
    pub const BAD_INPUT: u8 = 65;
}

/// The clap command tree (for completions and docs).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs meshctl with the process arguments.
pub fn main_entry() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => exit::OK,
                _ => exit::USAGE,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    ExitCode::from(run(cli))
}

/// Runs a parsed command line and returns its exit code.
pub fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Analyze(a) => analyze::run(&a),
        Command::Validate(v) => validate::run(&v),
        Command::ProxyConfig(p) => proxy_config::run(&p),
        Command::ProxyStatus(p) => proxy_status::run(&p),
        Command::Demo(d) => demo::run(&d),
        Command::Describe(d) => describe::run(&d),
        Command::Get(g) => get::run(&g),
        Command::KubeInject(k) => inject::run(&k),
        Command::Diff(d) => diff::run(&d),
        Command::Manifest(m) => manifest::run(&m),
        Command::Install(i) => cluster::install::run(&i),
        Command::Uninstall(u) => cluster::uninstall::run(&u),
        Command::Check(c) => cluster::check::run(&c),
        Command::Dashboard(d) => cluster::dashboard::run(&d),
        Command::Stat(s) => stat::run_stat(&s),
        Command::Top(t) => stat::run_top(&t),
        Command::Completion { shell } => {
            let mut cmd = command();
            clap_complete::generate(shell, &mut cmd, "meshctl", &mut std::io::stdout());
            exit::OK
        }
        Command::Version { output } => {
            let version = env!("CARGO_PKG_VERSION");
            match output {
                Some(args::DataFormat::Json) => {
                    println!(
                        "{}",
                        serde_json::json!({"clientVersion": {"version": version}})
                    );
                }
                Some(args::DataFormat::Yaml) => println!("clientVersion:\n  version: {version}"),
                None => println!("meshctl {version}"),
            }
            exit::OK
        }
    }
}
