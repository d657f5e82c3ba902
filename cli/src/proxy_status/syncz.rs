//! meshd's `/debug/syncz` as proxy-status reads it, and how one xDS type's state is shown:
//! `SYNCED (12s)`, `STALE (4s)`, `NOT SENT`, `ERROR (3s)`.
//!
//! The wire structs mirror `mesh_controlplane::status` (camelCase JSON) but every field is
//! optional, so an older or newer meshd still gives a table.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The xDS types in proxy-status's column order, with their syncz keys.
pub const COLUMNS: [(&str, &str); 4] = [
    ("CDS", "cds"),
    ("LDS", "lds"),
    ("EDS", "eds"),
    ("RDS", "rds"),
];

/// One proxy in `/debug/syncz`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProxyEntry {
    pub proxy: String,
    pub connection_id: u64,
    pub namespace: String,
    pub workload: String,
    pub ip: String,
    pub proxy_version: Option<String>,
    pub cluster_id: Option<String>,
    pub control_plane: Option<String>,
    pub connected_time: Option<String>,
    pub types: BTreeMap<String, TypeEntry>,
}

/// One xDS type of one proxy.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TypeEntry {
    pub state: String,
    pub version_sent: Option<String>,
    pub nonce_sent: Option<String>,
    pub sent_time: Option<String>,
    pub resources_sent: usize,
    pub version_acked: Option<String>,
    pub nonce_acked: Option<String>,
    pub acked_time: Option<String>,
    pub last_nack: Option<NackEntry>,
}

/// A rejection.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NackEntry {
    pub version: Option<String>,
    pub nonce: String,
    pub detail: String,
    pub time: String,
}

/// Where one type stands, as proxy-status says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// The last response was ACKed.
    Synced,
    /// Nothing sent for this type (the proxy did not ask, or there is nothing to send).
    NotSent,
    /// Sent, not answered yet.
    Stale,
    /// The last response was rejected (NACK).
    Error,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Synced => "SYNCED",
            State::NotSent => "NOT SENT",
            State::Stale => "STALE",
            State::Error => "ERROR",
        }
    }

    /// Whether this state fails `proxy-status` (STALE or ERROR).
    pub fn is_problem(self) -> bool {
        matches!(self, State::Stale | State::Error)
    }
}

impl TypeEntry {
    /// meshd's state (`SYNCED`, `STALE`, `NACKED`, `NOT_SENT`), recomputed from the nonces
    /// when meshd did not say.
    pub fn state(&self) -> State {
        match self.state.as_str() {
            "SYNCED" => State::Synced,
            "STALE" => State::Stale,
            "NACKED" => State::Error,
            "NOT_SENT" => State::NotSent,
            _ => match &self.nonce_sent {
                None => State::NotSent,
                Some(sent) if self.last_nack.as_ref().is_some_and(|n| &n.nonce == sent) => {
                    State::Error
                }
                Some(sent) if self.nonce_acked.as_ref() == Some(sent) => State::Synced,
                Some(_) => State::Stale,
            },
        }
    }

    /// The time the state dates from: the ACK for SYNCED, the NACK for ERROR, the send for
    /// STALE.
    pub fn since(&self) -> Option<&str> {
        match self.state() {
            State::Synced => self.acked_time.as_deref().or(self.sent_time.as_deref()),
            State::Error => self.last_nack.as_ref().map(|n| n.time.as_str()),
            State::Stale => self.sent_time.as_deref(),
            State::NotSent => None,
        }
    }

    /// How long the state has held at `now`.
    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        let since = parse_rfc3339(self.since()?)?;
        Some(now.duration_since(since).unwrap_or_default())
    }

    /// `SYNCED (12s)`, `NOT SENT`, ...
    pub fn cell(&self, now: SystemTime) -> String {
        let state = self.state();
        match (state, self.age(now)) {
            (State::NotSent, _) | (_, None) => state.label().to_owned(),
            (_, Some(age)) => format!("{} ({})", state.label(), human_age(age)),
        }
    }
}

/// A duration as kubectl prints ages: `45s`, `4m3s`, `2h5m`, `3d4h`.
pub fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` (what meshd writes) into a time.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(9).collect();
        let n: u32 = digits.parse().ok()?;
        n * 10u32.pow(9 - u32::try_from(digits.len()).ok()?)
    };
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let secs = days * 86_400 + h * 3600 + min * 60 + sec;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc3339_round_trips_meshd_times() {
        let t = parse_rfc3339("2026-11-29T18:32:09.123Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap(),
            Duration::from_millis(1_795_977_129_123)
        );
        let leap = parse_rfc3339("2000-02-29T00:00:00Z").unwrap();
        assert_eq!(
            leap.duration_since(SystemTime::UNIX_EPOCH).unwrap(),
            Duration::from_secs(951_782_400)
        );
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:00.000Z"),
            Some(SystemTime::UNIX_EPOCH)
        );
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_age(Duration::from_secs(12)), "12s");
        assert_eq!(human_age(Duration::from_secs(243)), "4m3s");
        assert_eq!(human_age(Duration::from_secs(7500)), "2h5m");
        assert_eq!(
            human_age(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d4h"
        );
    }

    #[test]
    fn cells_show_state_and_age() {
        let now = parse_rfc3339("2026-11-24T10:00:12Z").unwrap();
        let mut t = TypeEntry {
            state: "SYNCED".into(),
            nonce_sent: Some("4".into()),
            sent_time: Some("2026-11-24T09:59:59Z".into()),
            nonce_acked: Some("4".into()),
            acked_time: Some("2026-11-24T10:00:00Z".into()),
            ..TypeEntry::default()
        };
        assert_eq!(t.cell(now), "SYNCED (12s)");
        t.state = "STALE".into();
        assert_eq!(t.cell(now), "STALE (13s)");
        t.state = "NACKED".into();
        t.last_nack = Some(NackEntry {
            nonce: "4".into(),
            detail: "bad".into(),
            time: "2026-11-24T10:00:09Z".into(),
            ..NackEntry::default()
        });
        assert_eq!(t.cell(now), "ERROR (3s)");
        assert_eq!(TypeEntry::default().cell(now), "NOT SENT");
        // No state from meshd: derived from the nonces.
        t.state = String::new();
        assert_eq!(t.state(), State::Error);
        t.last_nack = None;
        assert_eq!(t.state(), State::Synced);
        t.nonce_sent = Some("5".into());
        assert_eq!(t.state(), State::Stale);
    }
}
