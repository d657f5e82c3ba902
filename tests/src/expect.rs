//! Checking what came back against a step's expectations. Each check returns every failure
//! as a sentence that says what was expected and what was seen, so one run shows all that
//! is wrong with a scenario.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::client::HttpResponse;
use crate::echo::{EchoReply, EchoStats};
use crate::scenario::{Count, Expect, Split};

/// The echo reply in a response body, when the app (not a proxy) answered.
pub fn echo_reply(resp: &HttpResponse) -> Option<EchoReply> {
    serde_json::from_slice::<EchoReply>(&resp.body)
        .ok()
        .filter(|r| !r.name.is_empty())
}

/// A short description of a response for failure messages.
pub fn describe(resp: &HttpResponse) -> String {
    let body = resp.body_text();
    let body = if body.chars().count() > 300 {
        format!("{}...", body.chars().take(300).collect::<String>())
    } else {
        body
    };
    format!(
        "status {} after {} ms, body {:?}",
        resp.status,
        resp.elapsed.as_millis(),
        body
    )
}

/// Checks one response.
pub fn check_response(expect: &Expect, resp: &HttpResponse) -> Vec<String> {
    let mut out = Vec::new();
    let echo = echo_reply(resp);
    if let Some(s) = expect.status
        && resp.status != s
    {
        out.push(format!("expected status {s}, got {}", resp.status));
    }
    if !expect.status_in.is_empty() && !expect.status_in.contains(&resp.status) {
        out.push(format!(
            "expected a status in {:?}, got {}",
            expect.status_in, resp.status
        ));
    }
    if let Some(served) = expect.served_by_app {
        match (&echo, served) {
            (None, true) => out.push("expected an answer from an app, got none".to_owned()),
            (Some(r), false) => out.push(format!(
                "expected the proxy to answer by itself, but app {:?} answered",
                r.name
            )),
            _ => {}
        }
    }
    let app_fields_wanted = expect.name.is_some()
        || expect.path.is_some()
        || expect.query.is_some()
        || expect.host.is_some()
        || !expect.headers.is_empty()
        || !expect.headers_absent.is_empty()
        || expect.attempt.is_some();
    match &echo {
        None if app_fields_wanted => {
            out.push("expected an answer from an app, got none".to_owned());
        }
        None => {}
        Some(r) => {
            if let Some(n) = &expect.name
                && &r.name != n
            {
                out.push(format!("expected app {n:?} to answer, got {:?}", r.name));
            }
            if let Some(p) = &expect.path
                && &r.path != p
            {
                out.push(format!(
                    "expected the app to receive path {p:?}, got {:?}",
                    r.path
                ));
            }
            if let Some(q) = &expect.query
                && &r.query != q
            {
                out.push(format!(
                    "expected the app to receive query {q:?}, got {:?}",
                    r.query
                ));
            }
            if let Some(h) = &expect.host
                && !h.matches(&r.host)
            {
                out.push(format!(
                    "expected the app to receive host {h}, got {:?}",
                    r.host
                ));
            }
            for (name, m) in &expect.headers {
                match r.headers.get(&name.to_ascii_lowercase()) {
                    Some(v) if m.matches(v) => {}
                    Some(v) => out.push(format!(
                        "expected the app to receive header {name} {m}, got {v:?}"
                    )),
                    None => out.push(format!(
                        "expected the app to receive header {name} {m}, it had none"
                    )),
                }
            }
            for name in &expect.headers_absent {
                if let Some(v) = r.headers.get(&name.to_ascii_lowercase()) {
                    out.push(format!(
                        "expected the app not to receive header {name}, it got {v:?}"
                    ));
                }
            }
            if let Some(a) = expect.attempt
                && r.attempt != Some(a)
            {
                out.push(format!(
                    "expected the app to answer on attempt {a}, it was attempt {:?}",
                    r.attempt
                ));
            }
        }
    }
    if let (Some(n), Some(r)) = (&expect.not_name, &echo)
        && &r.name == n
    {
        out.push(format!("expected any app but {n:?} to answer"));
    }
    for (name, m) in &expect.response_headers {
        match resp.header(name) {
            Some(v) if m.matches(v) => {}
            Some(v) => out.push(format!("expected response header {name} {m}, got {v:?}")),
            None => out.push(format!(
                "expected response header {name} {m}, there was none"
            )),
        }
    }
    for name in &expect.response_headers_absent {
        if let Some(v) = resp.header(name) {
            out.push(format!("expected no response header {name}, got {v:?}"));
        }
    }
    if let Some(b) = &expect.body {
        let text = resp.body_text();
        if !b.matches(&text) {
            out.push(format!("expected a body {b}, got {text:?}"));
        }
    }
    if let Some(min) = expect.min_duration_ms
        && resp.elapsed < Duration::from_millis(min)
    {
        out.push(format!(
            "expected the response to take at least {min} ms, it took {} ms",
            resp.elapsed.as_millis()
        ));
    }
    if let Some(max) = expect.max_duration_ms
        && resp.elapsed > Duration::from_millis(max)
    {
        out.push(format!(
            "expected the response within {max} ms, it took {} ms",
            resp.elapsed.as_millis()
        ));
    }
    out
}

/// Who answered each response: the app's name, or `status N (no app)`.
pub fn answered_by(resp: &HttpResponse) -> String {
    match echo_reply(resp) {
        Some(r) => r.name,
        None => format!("status {} (no app)", resp.status),
    }
}

/// How many responses each app (or `status N (no app)`) gave.
pub fn tally(resps: &[HttpResponse]) -> BTreeMap<String, u32> {
    let mut t = BTreeMap::new();
    for r in resps {
        *t.entry(answered_by(r)).or_insert(0) += 1;
    }
    t
}

/// Checks the distribution of answers.
pub fn check_split(split: &Split, resps: &[HttpResponse]) -> Vec<String> {
    let mut out = Vec::new();
    if resps.is_empty() {
        return vec!["no responses to check the split on".to_owned()];
    }
    let n = resps.len() as f64;
    let tally = tally(resps);
    let seen = tally
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    for (name, count) in &tally {
        if !split.weights.contains_key(name) {
            out.push(format!(
                "{count} of {} responses came from {name}, which the split does not name (seen: {seen})",
                resps.len()
            ));
        }
    }
    for (name, weight) in &split.weights {
        let got = f64::from(tally.get(name).copied().unwrap_or(0)) * 100.0 / n;
        if (got - weight).abs() > split.tolerance {
            out.push(format!(
                "expected {name} to answer {weight}% ± {}, it answered {got:.1}% (seen: {seen})",
                split.tolerance
            ));
        }
    }
    out
}

/// Checks that one app answered every response.
pub fn check_same_backend(resps: &[HttpResponse]) -> Vec<String> {
    let tally = tally(resps);
    if tally.len() == 1 && tally.keys().all(|k| !k.ends_with("(no app)")) {
        Vec::new()
    } else {
        vec![format!(
            "expected one app to answer every request, seen: {}",
            tally
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )]
    }
}

/// The requests an app saw between two snapshots of its counters.
pub fn delta(before: &EchoStats, after: &EchoStats) -> u64 {
    after.total.saturating_sub(before.total)
}

/// Checks one app's request count for a step.
pub fn check_count(workload: &str, expected: Count, seen: u64) -> Option<String> {
    if expected.holds(seen) {
        None
    } else {
        Some(format!(
            "expected {workload} to see {expected} requests, it saw {seen}"
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::scenario::{Matcher, MatcherParts};
    use bytes::Bytes;

    fn echo(name: &str, status: u16, ms: u64) -> HttpResponse {
        let reply = EchoReply {
            name: name.into(),
            method: "GET".into(),
            path: "/v2/items".into(),
            query: "a=1".into(),
            headers: [("x-added".to_owned(), "yes".to_owned())].into(),
            host: "reviews.shop:9080".into(),
            attempt: Some(3),
            key: Some("k".into()),
            ..EchoReply::default()
        };
        HttpResponse {
            status,
            headers: vec![("x-resp".into(), "mesh".into())],
            body: Bytes::from(serde_json::to_vec(&reply).unwrap()),
            elapsed: Duration::from_millis(ms),
        }
    }

    fn plain(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("location".into(), "http://details.shop:9080/d/1".into())],
            body: Bytes::from(body.to_owned()),
            elapsed: Duration::from_millis(5),
        }
    }

    fn expect(yaml: &str) -> Expect {
        crate::scenario::from_yaml(yaml).unwrap()
    }

    #[test]
    fn a_matching_echo_reply_passes() {
        let e = expect(
            "{status: 200, name: v2, path: /v2/items, query: a=1, host: reviews.shop:9080, \
             headers: {X-Added: yes}, headers_absent: [x-secret], attempt: 3, \
             response_headers: {x-resp: mesh}, min_duration_ms: 10, max_duration_ms: 100, \
             served_by_app: true, not_name: v1}",
        );
        assert_eq!(
            check_response(&e, &echo("v2", 200, 50)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_mismatch_is_reported() {
        let e = expect(
            "{status: 200, name: v1, path: /x, headers: {x-added: no, x-other: a}, \
             headers_absent: [x-added], attempt: 1, response_headers: {x-missing: a}, \
             response_headers_absent: [x-resp], max_duration_ms: 10}",
        );
        let f = check_response(&e, &echo("v2", 503, 50));
        assert_eq!(f.len(), 10, "{f:#?}");
        assert!(f[0].contains("expected status 200, got 503"));
        assert!(f.iter().any(|m| m.contains("within 10 ms, it took 50 ms")));
    }

    #[test]
    fn proxy_made_responses() {
        let e = expect(
            "{status: 301, served_by_app: false, response_headers: {location: {prefix: 'http://details.shop', suffix: /d/1}}}",
        );
        assert_eq!(check_response(&e, &plain(301, "")), Vec::<String>::new());
        let e = expect("{name: v1}");
        assert_eq!(
            check_response(&e, &plain(502, "")),
            vec!["expected an answer from an app, got none".to_owned()]
        );
        let e = expect("{body: {contains: maintenance}}");
        assert!(check_response(&e, &plain(503, "down for maintenance")).is_empty());
        let e = Expect {
            body: Some(Matcher::Parts(MatcherParts {
                exact: Some("x".into()),
                ..MatcherParts::default()
            })),
            ..Expect::default()
        };
        assert_eq!(check_response(&e, &plain(200, "y")).len(), 1);
    }

    #[test]
    fn splits_within_tolerance_pass_and_others_fail() {
        let split: Split =
            crate::scenario::from_yaml("{v1: 80, v3: 20, tolerance: 10, n: 10}").unwrap();
        let mut resps: Vec<_> = (0..7).map(|_| echo("v1", 200, 1)).collect();
        resps.extend((0..3).map(|_| echo("v3", 200, 1)));
        assert_eq!(check_split(&split, &resps), Vec::<String>::new());

        resps[0] = echo("v3", 200, 1); // 60/40
        resps[1] = plain(503, "no healthy upstream");
        let f = check_split(&split, &resps);
        assert_eq!(f.len(), 3, "{f:#?}");
        assert!(f.iter().any(|m| m.contains("status 503 (no app)")));
    }

    #[test]
    fn same_backend() {
        let a = vec![echo("v1", 200, 1), echo("v1", 200, 1)];
        assert!(check_same_backend(&a).is_empty());
        let b = vec![echo("v1", 200, 1), echo("v2", 200, 1)];
        assert_eq!(check_same_backend(&b).len(), 1);
        assert_eq!(check_same_backend(&[plain(503, "")]).len(), 1);
    }

    #[test]
    fn counts() {
        let before = EchoStats {
            total: 4,
            ..EchoStats::default()
        };
        let after = EchoStats {
            total: 7,
            ..EchoStats::default()
        };
        assert_eq!(delta(&before, &after), 3);
        assert_eq!(check_count("r", Count::Exact(3), 3), None);
        assert_eq!(
            check_count("r", Count::Exact(3), 4).unwrap(),
            "expected r to see exactly 3 requests, it saw 4"
        );
    }
}
