//! End-to-end tests for meshctl: the tools they need, and the tests themselves in `tests/`.
//!
//! - [`echo`]: the test application (binary `mesh-echo`) every scenario runs behind its
//!   sidecars.
//! - [`client`]: the HTTP client that sends scenario requests through a sidecar or to a
//!   gateway.
//! - [`scenario`]: the `testdata/scenarios/*/scenario.yaml` format and its consistency
//!   checks, and the local-mode address convention.
//! - [`expect`]: checking responses, splits and request counts.
//! - [`syncz`]: reading meshd's `/debug/syncz` (ACKs and NACKs per proxy).
//! - [`process`]: child-process guards, binary and Envoy discovery, bounded waits.
//! - [`runner`]: one scenario end to end through meshd and Envoy sidecars.

pub mod client;
pub mod echo;
pub mod expect;
pub mod process;
pub mod runner;
pub mod scenario;
pub mod syncz;
