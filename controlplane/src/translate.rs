//! The seam between meshd and the xDS translation.
//!
//! meshd serves whatever a [`Translator`] makes of the loaded config. The real one,
//! [`MeshTranslator`], is mesh-core's ([`Snapshot::build`], and [`Cache::generate`], which
//! gives what [`generate`] gives, encoded, with the part proxies share generated once);
//! tests plug in small hand-built translations through the same trait.

use mesh_core::analysis::{MeshConfig, Store};
use mesh_core::xds::cache::{Cache, EncodedConfig};
use mesh_core::xds::{ProxyConfig, ProxyInfo, Snapshot, generate};

/// Turns loaded objects into a snapshot, and a snapshot into one proxy's resources.
pub trait Translator: Send + Sync + 'static {
    /// Validates and indexes the loaded objects (see [`Snapshot::build`]).
    fn snapshot(&self, store: &Store, mesh: &MeshConfig) -> Snapshot;
    /// The resources one proxy receives (see [`generate`]).
    fn generate(&self, snapshot: &Snapshot, proxy: &ProxyInfo) -> ProxyConfig;
    /// The resources one proxy receives, encoded; `cache` belongs to `snapshot` (one per
    /// build) and holds what proxies share. By default [`Translator::generate`]'s output,
    /// encoded, with nothing shared.
    fn encoded(&self, snapshot: &Snapshot, cache: &Cache, proxy: &ProxyInfo) -> EncodedConfig {
        let _ = cache;
        EncodedConfig::unshared(&self.generate(snapshot, proxy))
    }
}

/// mesh-core's translation.
#[derive(Clone, Copy, Debug, Default)]
pub struct MeshTranslator;

impl Translator for MeshTranslator {
    fn snapshot(&self, store: &Store, mesh: &MeshConfig) -> Snapshot {
        Snapshot::build(store, mesh)
    }

    fn generate(&self, snapshot: &Snapshot, proxy: &ProxyInfo) -> ProxyConfig {
        generate(snapshot, proxy)
    }

    fn encoded(&self, snapshot: &Snapshot, cache: &Cache, proxy: &ProxyInfo) -> EncodedConfig {
        cache.generate(snapshot, proxy)
    }
}
