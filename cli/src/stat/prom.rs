//! Prometheus text exposition as `meshctl stat` reads it, and the arithmetic on it: parsing
//! samples (both the classic text format Envoy writes and the OpenMetrics text mesh-proxy's
//! prometheus-client writes), the difference of two scrapes, and quantiles from cumulative
//! histogram buckets interpolated as Prometheus' `histogram_quantile` does.

use std::collections::BTreeMap;

/// One sample: metric name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// A label's value, empty when absent.
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// A line that is not a sample.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// Every sample of an exposition (comments, `# EOF` and blank lines skipped; a timestamp
/// after the value ignored).
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason: &str| ParseError {
            line: i + 1,
            reason: reason.to_owned(),
        };
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .ok_or_else(|| err("a name without a value"))?;
        let name = &line[..name_end];
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            let (parsed, after) = parse_labels(body).map_err(|r| err(&r))?;
            labels = parsed;
            rest = after;
        }
        let value = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| err("no value"))?;
        let value = parse_value(value).ok_or_else(|| err(&format!("bad value {value:?}")))?;
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(out)
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// `k="v",...}` and what follows the closing brace.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("a label without a value")?;
        let key = s[..eq].trim().to_owned();
        let body = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("a label value without quotes")?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("an unterminated label value".to_owned()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("an unterminated label value".to_owned()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.insert(key, value);
        s = &body[end + 1..];
    }
}

/// What happened between two scrapes of one proxy: each series of `after` minus the same
/// series in `before` (a series that went down was reset: its whole `after` value counts;
/// a series new in `after` counts whole).
pub fn delta(before: &[Sample], after: &[Sample]) -> Vec<Sample> {
    let old: BTreeMap<(&str, &BTreeMap<String, String>), f64> = before
        .iter()
        .map(|s| ((s.name.as_str(), &s.labels), s.value))
        .collect();
    after
        .iter()
        .map(|s| {
            let was = old.get(&(s.name.as_str(), &s.labels)).copied();
            let value = match was {
                Some(v) if v <= s.value => s.value - v,
                _ => s.value,
            };
            Sample { value, ..s.clone() }
        })
        .collect()
}

/// Cumulative histogram buckets: upper bound (`le`) and count, summed over series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets(pub BTreeMap<Le, f64>);

/// A bucket bound, ordered as a number (`+Inf` last).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Le(pub f64);

impl Eq for Le {}

impl PartialOrd for Le {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Le {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Buckets {
    /// Adds one `_bucket` sample.
    pub fn add(&mut self, s: &Sample) {
        if let Some(le) = parse_value(s.label("le")) {
            *self.0.entry(Le(le)).or_default() += s.value;
        }
    }

    /// How many observations (the `+Inf` bucket).
    pub fn count(&self) -> f64 {
        self.0.get(&Le(f64::INFINITY)).copied().unwrap_or(0.0)
    }

    /// The `q` quantile (0..=1) as Prometheus' `histogram_quantile` computes it: the bucket
    /// holding the rank, linear interpolation inside it (from 0 for the first bucket); a
    /// rank in the `+Inf` bucket gives the highest finite bound. `None` without
    /// observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total;
        let mut lower = 0.0;
        let mut below = 0.0;
        for (&Le(upper), &count) in &self.0 {
            if count >= rank {
                if upper.is_infinite() {
                    return Some(lower);
                }
                if upper <= 0.0 {
                    return Some(upper);
                }
                let inside = count - below;
                if inside <= 0.0 {
                    return Some(upper);
                }
                return Some(lower + (upper - lower) * ((rank - below) / inside));
            }
            lower = upper;
            below = count;
        }
        Some(lower)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn both_text_formats_parse() {
        let envoy = "# TYPE envoy_cluster_upstream_rq_xx counter\n\
            envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"outbound|80||a.x.svc.cluster.local\"} 7\n\
            envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"c\",le=\"+Inf\"} 3\n";
        let s = parse(envoy).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].label("envoy_cluster_name"),
            "outbound|80||a.x.svc.cluster.local"
        );
        assert_eq!(s[0].value, 7.0);
        assert!(s[1].label("le") == "+Inf" && s[1].value == 3.0);

        let open = "# HELP istio_requests Requests handled.\n# TYPE istio_requests counter\n\
            istio_requests_total{reporter=\"destination\",response_code=\"503\",x=\"a\\\"b\\\\c\"} 2\n# EOF\n";
        let s = parse(open).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "istio_requests_total");
        assert_eq!(s[0].label("x"), "a\"b\\c");
        assert_eq!(s[0].label("missing"), "");
        assert!(parse("x{a=\"b} 1").is_err());
        assert!(parse("x{a=\"b\"} one").is_err());
    }

    #[test]
    fn delta_subtracts_and_treats_a_drop_as_a_reset() {
        let before = parse("a{k=\"1\"} 5\nb 10\n").unwrap();
        let after = parse("a{k=\"1\"} 8\nb 4\nc 2\n").unwrap();
        let d: Vec<f64> = delta(&before, &after).iter().map(|s| s.value).collect();
        assert_eq!(d, [3.0, 4.0, 2.0]);
    }

    fn buckets(pairs: &[(f64, f64)]) -> Buckets {
        Buckets(pairs.iter().map(|&(le, c)| (Le(le), c)).collect())
    }

    #[test]
    fn quantiles_interpolate_as_histogram_quantile() {
        // 10 observations: 4 in (0, 1], 4 in (1, 5], 2 in (5, 10].
        let b = buckets(&[(1.0, 4.0), (5.0, 8.0), (10.0, 10.0), (f64::INFINITY, 10.0)]);
        assert_eq!(b.count(), 10.0);
        // rank 5: bucket (1, 5], 1 of 4 in: 1 + 4 * 0.25.
        assert_eq!(b.quantile(0.5), Some(2.0));
        // rank 9.5: bucket (5, 10], 1.5 of 2: 5 + 5 * 0.75.
        assert_eq!(b.quantile(0.95), Some(8.75));
        // rank 2: first bucket, from 0.
        assert_eq!(b.quantile(0.2), Some(0.5));
        // A rank in +Inf gives the highest finite bound.
        let tail = buckets(&[(1.0, 1.0), (5.0, 1.0), (f64::INFINITY, 4.0)]);
        assert_eq!(tail.quantile(0.99), Some(5.0));
        assert_eq!(Buckets::default().quantile(0.5), None);
    }
}
