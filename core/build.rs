//! Copies the protobuf descriptors of envoy-types into `OUT_DIR`, for `mesh_core::xds::json`.
//!
//! envoy-types ships, beside its generated Rust code, the `FileDescriptorSet` it was generated
//! from (`src/generated/types.bin`: every Envoy, xDS, validate and well-known-type file). The
//! JSON mapping needs those descriptors at run time (field names, enum names, the types an
//! `Any` may hold), and using the very set the Rust types came from keeps the two in step, with
//! no protobuf compiler at build time.
//!
//! The crate's directory is found in Cargo's registry (`$CARGO_HOME/registry/src/*/`) at the
//! version the workspace's `Cargo.lock` pins; `MESH_ENVOY_TYPES_DIR` overrides the search (for
//! vendored sources).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

const CRATE: &str = "envoy-types";
const DESCRIPTORS: &str = "src/generated/types.bin";

fn main() -> Result<(), String> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MESH_ENVOY_TYPES_DIR");
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    let dir = match env::var_os("MESH_ENVOY_TYPES_DIR") {
        Some(d) => PathBuf::from(d),
        None => locate()?,
    };
    let src = dir.join(DESCRIPTORS);
    println!("cargo:rerun-if-changed={}", src.display());
    fs::copy(&src, out.join("envoy_descriptors.bin"))
        .map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
    Ok(())
}

/// The registry directory of the envoy-types version the lock file pins, or the newest 0.7
/// present when the pinned one is not unpacked.
fn locate() -> Result<PathBuf, String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let pinned = manifest.ancestors().find_map(|d| {
        let lock = d.join("Cargo.lock");
        println!("cargo:rerun-if-changed={}", lock.display());
        pinned_version(&lock)
    });
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set; set MESH_ENVOY_TYPES_DIR")?;
    let registries = cargo_home.join("registry").join("src");
    let mut found: Vec<(Vec<u64>, PathBuf)> = Vec::new();
    for registry in fs::read_dir(&registries)
        .map_err(|e| format!("{}: {e}; set MESH_ENVOY_TYPES_DIR", registries.display()))?
        .flatten()
    {
        for entry in fs::read_dir(registry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(version) = name.strip_prefix(&format!("{CRATE}-")) else {
                continue;
            };
            if !entry.path().join(DESCRIPTORS).is_file() {
                continue;
            }
            if pinned.as_deref() == Some(version) {
                return Ok(entry.path());
            }
            let parts: Option<Vec<u64>> = version.split('.').map(|p| p.parse().ok()).collect();
            if let Some(parts) = parts.filter(|p| p.first() == Some(&0) && p.get(1) == Some(&7)) {
                found.push((parts, entry.path()));
            }
        }
    }
    found.sort();
    match found.pop() {
        Some((_, dir)) => {
            println!(
                "cargo:warning=envoy-types {} not found unpacked; using descriptors from {}",
                pinned.unwrap_or_default(),
                dir.display()
            );
            Ok(dir)
        }
        None => Err(format!(
            "no {CRATE} 0.7 sources under {}; set MESH_ENVOY_TYPES_DIR to the crate's directory",
            registries.display()
        )),
    }
}

/// The version of envoy-types in a `Cargo.lock`, if the file exists and pins one.
fn pinned_version(lock: &Path) -> Option<String> {
    let text = fs::read_to_string(lock).ok()?;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{CRATE}\"") {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_owned());
        }
    }
    None
}
