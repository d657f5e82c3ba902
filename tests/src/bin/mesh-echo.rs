//! mesh-echo: the scenarios' test application. Answers every request with a JSON description
//! of it (see `mesh_e2e::echo` for the behaviour controls and `/__stats`).
//!
//! Usage: `mesh-echo --listen 127.0.0.51:19080 --name reviews-v2` (loopback only, unless
//! `--in-netns` says it runs inside a test's own network namespace). Runs until SIGTERM or
//! SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, bail};

const USAGE: &str = "usage: mesh-echo --listen IP:PORT --name NAME [--in-netns]";

struct Args {
    listen: SocketAddr,
    name: String,
    /// Inside a network namespace of its own: any address may be served.
    in_netns: bool,
}

fn parse_args(args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut listen = None;
    let mut name = None;
    let mut in_netns = false;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                listen = Some(
                    v.parse::<SocketAddr>()
                        .with_context(|| format!("--listen {v:?} is not IP:PORT"))?,
                );
            }
            "--name" => name = Some(value()?),
            "--in-netns" => in_netns = true,
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(Args {
        listen: listen.with_context(|| format!("--listen is required\n{USAGE}"))?,
        name: name.with_context(|| format!("--name is required\n{USAGE}"))?,
        in_netns,
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let listener = if args.in_netns {
        mesh_e2e::echo::bind_in_namespace(args.listen).await?
    } else {
        mesh_e2e::echo::bind(args.listen).await?
    };
    eprintln!("mesh-echo {} listening on {}", args.name, args.listen);
    mesh_e2e::echo::serve(listener, args.name, shutdown_signal()).await;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mesh-echo: {e:#}");
            return ExitCode::from(64);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mesh-echo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mesh-echo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Args> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn flags() {
        let a = parse(&["--listen", "127.0.0.51:19080", "--name=reviews-v2"]).unwrap();
        assert_eq!(a.listen, "127.0.0.51:19080".parse().unwrap());
        assert_eq!(a.name, "reviews-v2");
        assert!(parse(&["--name", "x"]).is_err());
        assert!(parse(&["--listen", "nope", "--name", "x"]).is_err());
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
