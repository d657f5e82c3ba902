//! Leader election among meshd replicas in a cluster, on a coordination.k8s.io/v1 Lease.
//!
//! Every replica serves (xDS, webhooks, CA signing); only the leader writes to the cluster
//! (the webhook caBundle, the root ConfigMaps, the CA Secret). This module owns who leads:
//! an [`Elector`] task per replica takes the Lease [`LEASE_NAME`] in meshd's namespace,
//! renews it every [`LeaderOptions::renew_period`], and says whether this replica leads as
//! a `watch<bool>`. The rules are client-go's:
//! - every write carries the resourceVersion read just before (optimistic concurrency): a
//!   409 Conflict means another replica wrote first, and this one does not lead;
//! - a Lease held by another is taken over only once it has not changed for its
//!   `leaseDurationSeconds`, timed on this replica's own clock from when it saw the change
//!   (no comparison of clocks across machines);
//! - a leader that cannot renew for two thirds of the duration stops leading before the
//!   others may take over; one that finds another holder (its Lease was taken) steps down;
//! - on a graceful stop the leader clears `holderIdentity`, so a successor takes over at
//!   its next try instead of waiting the full duration.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The Lease meshd replicas elect a leader on.
pub const LEASE_NAME: &str = "meshd-leader";
/// Istio's lease duration.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(30);

/// How one replica takes part in the election.
#[derive(Clone, Debug)]
pub struct LeaderOptions {
    /// The Lease's name and namespace.
    pub name: String,
    pub namespace: String,
    /// This replica's `holderIdentity`: the pod name.
    pub identity: String,
    /// How long a Lease that is not renewed stays held.
    pub lease_duration: Duration,
    /// How often the leader renews and the others try to take over.
    pub renew_period: Duration,
}

impl LeaderOptions {
    /// The Lease [`LEASE_NAME`] in `namespace`, held as [`identity`], with Istio's duration.
    pub fn new(namespace: &str) -> Self {
        LeaderOptions {
            name: LEASE_NAME.to_owned(),
            namespace: namespace.to_owned(),
            identity: identity(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_period: DEFAULT_LEASE_DURATION / 3,
        }
    }

    /// The same with another lease duration (renewing every third of it).
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.lease_duration = duration;
        self.renew_period = duration / 3;
        self
    }

    /// How long a leader goes on leading without a successful renewal.
    fn renew_deadline(&self) -> Duration {
        self.lease_duration * 2 / 3
    }
}

/// This replica's identity: `POD_NAME` (the downward API), else the host name, else
/// `meshd-PID`.
pub fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("meshd-{}", std::process::id()))
}

/// A running election; [`Elector::stop`] releases the Lease (dropped without it, the
/// election task is aborted and the Lease expires after its duration).
pub struct Elector {
    leading: watch::Receiver<bool>,
    holder: watch::Receiver<String>,
    /// Election rounds tried so far.
    rounds: watch::Receiver<u64>,
    lease: String,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    identity: String,
}

impl Drop for Elector {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Elector {
    /// Starts taking part in the election (must be called within a tokio runtime).
    pub fn start(client: kube::Client, opts: LeaderOptions) -> Elector {
        let (tx, leading) = watch::channel(false);
        let (holder_tx, holder) = watch::channel(String::new());
        let (rounds_tx, rounds) = watch::channel(0u64);
        let (stop, stop_rx) = watch::channel(false);
        let api: Api<Lease> = Api::namespaced(client, &opts.namespace);
        let identity = opts.identity.clone();
        let lease = format!("{}/{}", opts.namespace, opts.name);
        let channels = Channels {
            leading: tx,
            holder: holder_tx,
            rounds: rounds_tx,
        };
        let task = Some(tokio::spawn(run(api, opts, channels, stop_rx)));
        Elector {
            leading,
            holder,
            rounds,
            lease,
            stop,
            task,
            identity,
        }
    }

    /// Whether this replica leads, as it changes.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// This replica's `holderIdentity`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits (at most `bound`) until the first round of the election has been tried, so
    /// that whether this replica leads is known rather than not yet found out; whether it
    /// was within the bound.
    pub async fn first_round(&self, bound: Duration) -> bool {
        let mut rounds = self.rounds.clone();
        matches!(
            tokio::time::timeout(bound, rounds.wait_for(|n| *n > 0)).await,
            Ok(Ok(_))
        )
    }

    /// What `/debug/leader` shows.
    pub fn view(&self) -> LeaderView {
        LeaderView {
            lease: self.lease.clone(),
            identity: self.identity.clone(),
            leading: self.leading.clone(),
            holder: self.holder.clone(),
        }
    }

    /// Stops leading and, when this replica held the Lease, clears its holder; waits at
    /// most `bound` for that.
    pub async fn stop(mut self, bound: Duration) {
        self.stop.send_replace(true);
        let Some(task) = self.task.take() else {
            return;
        };
        if tokio::time::timeout(bound, task).await.is_err() {
            warn!(lease.holder = %self.identity, "the lease was not released in time");
        }
    }
}

/// The election as this replica sees it, for the debug API.
#[derive(Clone, Debug)]
pub struct LeaderView {
    /// `NAMESPACE/NAME` of the Lease.
    pub lease: String,
    /// This replica's `holderIdentity`.
    pub identity: String,
    pub leading: watch::Receiver<bool>,
    /// The holder this replica last saw (empty: none, or not known yet).
    pub holder: watch::Receiver<String>,
}

impl LeaderView {
    /// `{"lease", "identity", "leading", "holder"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let holder = self.holder.borrow().clone();
        serde_json::json!({
            "lease": self.lease,
            "identity": self.identity,
            "leading": *self.leading.borrow(),
            "holder": if holder.is_empty() { serde_json::Value::Null } else { holder.into() },
        })
    }
}

/// Waits until this replica leads (true), or until `stop` changes or either channel
/// closes (false).
pub async fn wait_leading(
    leading: &mut watch::Receiver<bool>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        r = leading.wait_for(|l| *l) => r.is_ok(),
        _ = stop.changed() => false,
    }
}

/// What one try found.
#[derive(Debug, PartialEq, Eq)]
enum Try {
    /// This replica holds the Lease (taken or renewed).
    Holds,
    /// Another holds it (or won the write).
    Other(String),
}

/// The last change of the Lease this replica saw: its resourceVersion and when.
type Observed = Option<(String, Instant)>;

/// What the election task says.
struct Channels {
    leading: watch::Sender<bool>,
    holder: watch::Sender<String>,
    rounds: watch::Sender<u64>,
}

async fn run(
    api: Api<Lease>,
    opts: LeaderOptions,
    channels: Channels,
    mut stop: watch::Receiver<bool>,
) {
    let Channels {
        leading,
        holder: seen_holder,
        rounds,
    } = channels;
    let mut observed: Observed = None;
    let mut renewed: Option<Instant> = None;
    let mut last_other: Option<String> = None;
    loop {
        let attempt = tokio::time::timeout(
            opts.renew_period.max(Duration::from_millis(100)),
            try_acquire_or_renew(&api, &opts, &mut observed),
        )
        .await;
        match attempt {
            Ok(Ok(Try::Holds)) => {
                renewed = Some(Instant::now());
                seen_holder.send_if_modified(|h| replace(h, &opts.identity));
                if !*leading.borrow() {
                    info!(lease.name = %opts.name, lease.holder = %opts.identity, "leading");
                    leading.send_replace(true);
                }
            }
            Ok(Ok(Try::Other(holder))) => {
                seen_holder.send_if_modified(|h| replace(h, &holder));
                if *leading.borrow() {
                    warn!(lease.name = %opts.name, lease.holder = %holder, "lease taken by another replica; no longer leading");
                    leading.send_replace(false);
                } else if last_other.as_deref() != Some(holder.as_str()) {
                    info!(lease.name = %opts.name, lease.holder = %holder, "another replica leads");
                }
                last_other = Some(holder);
            }
            Ok(Err(e)) => {
                warn!(lease.name = %opts.name, error = %e, "cannot take or renew the lease");
            }
            Err(_) => {
                warn!(lease.name = %opts.name, "the lease API did not answer in time");
            }
        }
        if *leading.borrow() && renewed.is_none_or(|r| r.elapsed() >= opts.renew_deadline()) {
            warn!(lease.name = %opts.name, deadline = ?opts.renew_deadline(), "lease not renewed in time; no longer leading");
            leading.send_replace(false);
        }
        rounds.send_modify(|n| *n += 1);
        tokio::select! {
            () = tokio::time::sleep(opts.renew_period) => {}
            _ = stop.changed() => break,
        }
    }
    seen_holder.send_if_modified(|h| replace(h, ""));
    if leading.send_replace(false) {
        let released = tokio::time::timeout(
            opts.renew_period.max(Duration::from_secs(1)),
            release(&api, &opts),
        )
        .await;
        match released {
            Ok(Ok(())) => info!(lease.name = %opts.name, "lease released"),
            Ok(Err(e)) => warn!(lease.name = %opts.name, error = %e, "cannot release the lease"),
            Err(_) => {
                warn!(lease.name = %opts.name, "the lease API did not answer the release in time")
            }
        }
    }
}

/// Sets `slot` to `value`; whether it changed.
fn replace(slot: &mut String, value: &str) -> bool {
    if slot == value {
        return false;
    }
    value.clone_into(slot);
    true
}

/// Whole seconds for `leaseDurationSeconds`, rounded up (others then wait at least as long
/// as this replica leads without renewing), at least 1.
fn secs(d: Duration) -> i32 {
    let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(whole.max(1)).unwrap_or(i32::MAX)
}

/// One round: create the Lease, renew it, or take it over when it is free or expired.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    opts: &LeaderOptions,
    observed: &mut Observed,
) -> Result<Try, kube::Error> {
    let now = MicroTime(Timestamp::now());
    let Some(mut lease) = api.get_opt(&opts.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(opts.name.clone()),
                namespace: Some(opts.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(opts.identity.clone()),
                lease_duration_seconds: Some(secs(opts.lease_duration)),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                *observed = created
                    .metadata
                    .resource_version
                    .map(|rv| (rv, Instant::now()));
                Ok(Try::Holds)
            }
            // Another replica created it first.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Try::Other(String::new())),
            Err(e) => Err(e),
        };
    };
    let rv = lease.metadata.resource_version.clone().unwrap_or_default();
    if observed.as_ref().map(|(seen, _)| seen) != Some(&rv) {
        *observed = Some((rv, Instant::now()));
    }
    let mut spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let mine = holder.as_deref() == Some(opts.identity.as_str());
    if let Some(other) = holder.as_ref().filter(|_| !mine) {
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(opts.lease_duration, Duration::from_secs);
        let unchanged_for = observed
            .as_ref()
            .map_or(Duration::ZERO, |(_, at)| at.elapsed());
        if unchanged_for < duration {
            return Ok(Try::Other(other.clone()));
        }
        info!(lease.name = %opts.name, lease.holder = %other, unchanged_for = ?unchanged_for, "taking over an expired lease");
    }
    if !mine {
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    }
    spec.holder_identity = Some(opts.identity.clone());
    spec.lease_duration_seconds = Some(secs(opts.lease_duration));
    spec.renew_time = Some(now);
    lease.spec = Some(spec);
    // The resourceVersion read above goes with the update: a 409 means someone else
    // wrote in between.
    match api
        .replace(&opts.name, &PostParams::default(), &lease)
        .await
    {
        Ok(stored) => {
            *observed = stored
                .metadata
                .resource_version
                .map(|rv| (rv, Instant::now()));
            Ok(Try::Holds)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            debug!(lease.name = %opts.name, "lease conflict: another replica wrote first");
            Ok(Try::Other(holder.unwrap_or_default()))
        }
        Err(e) => Err(e),
    }
}

/// Clears the holder when this replica still holds the Lease.
async fn release(api: &Api<Lease>, opts: &LeaderOptions) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&opts.name).await? else {
        return Ok(());
    };
    let mut spec = lease.spec.clone().unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(opts.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    lease.spec = Some(spec);
    match api
        .replace(&opts.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(()),
        // Someone else wrote it meanwhile: it is not ours to clear any more.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_renew_every_third_and_step_down_before_expiry() {
        let o = LeaderOptions::new("mesh").with_duration(Duration::from_secs(9));
        assert_eq!(o.renew_period, Duration::from_secs(3));
        assert_eq!(o.renew_deadline(), Duration::from_secs(6));
        assert!(o.renew_deadline() < o.lease_duration);
        assert_eq!(o.name, LEASE_NAME);
        assert_eq!(o.namespace, "mesh");
        assert_eq!(secs(Duration::from_millis(300)), 1);
        assert_eq!(secs(Duration::from_millis(1500)), 2);
        assert_eq!(secs(Duration::ZERO), 1);
        assert_eq!(secs(Duration::from_secs(30)), 30);
    }
}
