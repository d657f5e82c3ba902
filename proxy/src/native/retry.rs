//! Retry policy: which outcomes of a try are retried (Envoy's `retry_on` conditions and
//! retriable status codes), how many times, how long each try may take, and the back-off
//! between tries (Envoy's: exponential from a 25 ms base, capped at ten times the base,
//! with full jitter).

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::RetryPolicy as PbRetry;

/// What one try came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryOutcome {
    /// The upstream answered with this status.
    Status(u16),
    /// No connection could be made.
    ConnectFailure,
    /// The connection was reset (or the stream refused) before response headers.
    Reset,
    /// The per-try timeout passed before response headers.
    Timeout,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub on_5xx: bool,
    pub on_gateway_error: bool,
    pub on_connect_failure: bool,
    pub on_reset: bool,
    pub on_refused_stream: bool,
    pub on_retriable_4xx: bool,
    pub on_retriable_status_codes: bool,
    pub status_codes: Vec<u16>,
    /// Prefer hosts not tried before (`previous_hosts` predicate).
    pub other_hosts: bool,
    pub base_interval: Duration,
    pub max_interval: Duration,
}

impl TryFrom<&PbRetry> for RetryPolicy {
    type Error = String;

    fn try_from(r: &PbRetry) -> Result<Self, String> {
        let mut p = RetryPolicy {
            num_retries: r.num_retries.as_ref().map_or(1, |n| n.value),
            per_try_timeout: super::route::optional_duration(r.per_try_timeout.as_ref()),
            on_5xx: false,
            on_gateway_error: false,
            on_connect_failure: false,
            on_reset: false,
            on_refused_stream: false,
            on_retriable_4xx: false,
            on_retriable_status_codes: false,
            status_codes: Vec::new(),
            other_hosts: false,
            base_interval: Duration::from_millis(25),
            max_interval: Duration::from_millis(250),
        };
        for cond in r
            .retry_on
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match cond {
                "5xx" => p.on_5xx = true,
                "gateway-error" => p.on_gateway_error = true,
                "connect-failure" => p.on_connect_failure = true,
                "reset" | "reset-before-request" => p.on_reset = true,
                "refused-stream" => p.on_refused_stream = true,
                "retriable-4xx" => p.on_retriable_4xx = true,
                "retriable-status-codes" => p.on_retriable_status_codes = true,
                // gRPC status conditions read the grpc-status of a response; HTTP/1
                // services never send one, and gRPC is not routed specially here.
                "cancelled"
                | "deadline-exceeded"
                | "internal"
                | "resource-exhausted"
                | "unavailable"
                | "envoy-ratelimited"
                | "retriable-headers"
                | "http3-post-connect-failure" => {}
                other => return Err(format!("unknown retry_on condition {other:?}")),
            }
        }
        for c in &r.retriable_status_codes {
            p.status_codes
                .push(u16::try_from(*c).map_err(|_| format!("bad retriable status code {c}"))?);
        }
        if !r.retriable_headers.is_empty() || !r.retriable_request_headers.is_empty() {
            return Err("retriable headers are not supported".to_owned());
        }
        for pred in &r.retry_host_predicate {
            match pred.name.as_str() {
                "envoy.retry_host_predicates.previous_hosts" => p.other_hosts = true,
                // Only meaningful with priorities and canaries, which are not served.
                "envoy.retry_host_predicates.omit_canary_hosts"
                | "envoy.retry_host_predicates.omit_host_metadata" => {}
                other => return Err(format!("unknown retry host predicate {other:?}")),
            }
        }
        if let Some(b) = &r.retry_back_off {
            if let Some(base) = super::route::optional_duration(b.base_interval.as_ref()) {
                p.base_interval = base;
                p.max_interval = base * 10;
            }
            if let Some(max) = super::route::optional_duration(b.max_interval.as_ref()) {
                p.max_interval = max;
            }
        }
        Ok(p)
    }
}

impl RetryPolicy {
    /// Whether a try that came to `outcome` is retried (attempts left aside).
    pub fn retries(&self, outcome: TryOutcome) -> bool {
        match outcome {
            TryOutcome::Status(s) => {
                (self.on_5xx && s >= 500)
                    || (self.on_gateway_error && matches!(s, 502..=504))
                    || (self.on_retriable_4xx && s == 409)
                    || (self.on_retriable_status_codes && self.status_codes.contains(&s))
            }
            TryOutcome::ConnectFailure => {
                self.on_connect_failure || self.on_5xx || self.on_gateway_error
            }
            TryOutcome::Reset => self.on_reset || self.on_5xx || self.on_gateway_error,
            TryOutcome::Timeout => self.on_5xx || self.on_gateway_error || self.on_reset,
        }
    }

    /// The pause before retry number `n` (1-based): a random time up to
    /// `base * (2^n - 1)`, capped.
    pub fn back_off(&self, n: u32) -> Duration {
        let factor = (1u64 << n.min(16)).saturating_sub(1);
        let max = self
            .base_interval
            .saturating_mul(u32::try_from(factor).unwrap_or(u32::MAX))
            .min(self.max_interval);
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(if ms == 0 { 0 } else { fastrand::u64(0..=ms) })
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::UInt32Value;

    fn policy(on: &str, codes: &[u32]) -> RetryPolicy {
        RetryPolicy::try_from(&PbRetry {
            retry_on: on.into(),
            num_retries: Some(UInt32Value { value: 3 }),
            retriable_status_codes: codes.to_vec(),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn conditions() {
        let p = policy("5xx", &[]);
        assert_eq!(p.num_retries, 3);
        assert!(p.retries(TryOutcome::Status(503)));
        assert!(p.retries(TryOutcome::Status(500)));
        assert!(!p.retries(TryOutcome::Status(404)));
        assert!(p.retries(TryOutcome::ConnectFailure));
        assert!(p.retries(TryOutcome::Timeout));

        let g = policy("gateway-error", &[]);
        assert!(g.retries(TryOutcome::Status(502)));
        assert!(!g.retries(TryOutcome::Status(500)));

        let c = policy("connect-failure,retriable-status-codes", &[503]);
        assert!(c.retries(TryOutcome::Status(503)));
        assert!(!c.retries(TryOutcome::Status(502)));
        assert!(c.retries(TryOutcome::ConnectFailure));
        assert!(!c.retries(TryOutcome::Reset));
        assert!(!c.retries(TryOutcome::Timeout));

        assert!(
            RetryPolicy::try_from(&PbRetry {
                retry_on: "sometimes".into(),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn back_off_is_bounded() {
        let p = policy("5xx", &[]);
        for n in 1..10 {
            assert!(p.back_off(n) <= Duration::from_millis(250));
        }
    }
}
