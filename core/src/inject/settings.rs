//! The injector's settings: what changes the sidecar the injector writes (images, ports,
//! capture defaults, policy, meshd's address). meshctl reads them from Istio's files
//! (`--injectConfigFile`, `--meshConfigFile`); meshd's webhook uses the defaults.

/// What the injector needs to know besides the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The sidecar's image (`values.global.proxy.image`, `hub`/`tag`).
    pub proxy_image: String,
    /// The init container's image (`values.global.proxy_init.image`; default: the sidecar's).
    pub init_image: String,
    /// The agent's status port (15020): probes are rewritten to it.
    pub status_port: u16,
    /// Defaults for the `traffic.sidecar.istio.io/*` annotations.
    pub include_ip_ranges: String,
    pub exclude_ip_ranges: String,
    pub include_inbound_ports: String,
    pub exclude_inbound_ports: String,
    pub exclude_outbound_ports: String,
    /// Kubernetes native sidecars (an init container that keeps running).
    pub native_sidecar: bool,
    /// Rewrite HTTP/TCP/gRPC probes to pass through the agent.
    pub rewrite_probes: bool,
    /// `enabled` or `disabled` (pods without an inject annotation are skipped when disabled).
    pub policy_enabled: bool,
    /// Where the sidecar reaches meshd.
    pub discovery_address: String,
    /// The mesh's interception mode (REDIRECT, TPROXY, NONE).
    pub interception_mode: String,
    /// Image pull secrets added to every injected pod.
    pub image_pull_secrets: Vec<String>,
    /// A CNI plugin installs the capture rules: the init step only checks them.
    pub cni: bool,
}

/// The default sidecar image.
pub const DEFAULT_IMAGE: &str = "ghcr.io/meshctl/mesh-proxy:latest";

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            proxy_image: DEFAULT_IMAGE.to_owned(),
            init_image: DEFAULT_IMAGE.to_owned(),
            status_port: 15020,
            include_ip_ranges: "*".to_owned(),
            exclude_ip_ranges: String::new(),
            include_inbound_ports: "*".to_owned(),
            exclude_inbound_ports: String::new(),
            exclude_outbound_ports: String::new(),
            native_sidecar: true,
            rewrite_probes: true,
            policy_enabled: true,
            discovery_address: "meshd.istio-system.svc:15010".to_owned(),
            interception_mode: "REDIRECT".to_owned(),
            image_pull_secrets: Vec::new(),
            cni: false,
        }
    }
}
