//! The secret view: istioctl's RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER,
//! NOT AFTER, NOT BEFORE, read from a dump's SecretsConfigDump. A certificate chain shows
//! its leaf; a trust bundle (`ROOTCA`) shows one row per root, so both roots of a root
//! rotation's overlap are visible. The certificate's serial
//! number and validity come from its DER, read by the few lines below (base64, PEM, the
//! start of an X.509 TBSCertificate) rather than a parsing crate: meshctl needs three
//! fields and no verification.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::dump::{SecretEntry, at, str_at};
use super::table::Table;

/// What a certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Lower-case hex without leading zeros (as Go's `big.Int.Text(16)`).
    pub serial: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// The table, with validity judged at `now` (seconds since the epoch).
pub fn secret_table(secrets: &[SecretEntry<'_>], now: i64) -> Table {
    let mut t = Table::new(
        &[
            "RESOURCE NAME",
            "TYPE",
            "STATUS",
            "VALID CERT",
            "SERIAL NUMBER",
            "NOT AFTER",
            "NOT BEFORE",
        ],
        5,
    );
    for s in secrets {
        let (kind, pem) = match s.secret {
            Some(secret) => secret_material(secret),
            None => ("", None),
        };
        let mut certs: Vec<Option<CertInfo>> = match pem.as_deref() {
            Some(p) if kind == "CA" => all_certificates(p).into_iter().map(Some).collect(),
            Some(p) => vec![first_certificate(p)],
            None => Vec::new(),
        };
        if certs.is_empty() {
            certs.push(None);
        }
        for cert in certs {
            let valid = cert
                .as_ref()
                .is_some_and(|c| c.not_before <= now && now <= c.not_after);
            let mut row = vec![
                s.name.clone(),
                kind.to_owned(),
                s.status.to_owned(),
                valid.to_string(),
            ];
            if let Some(c) = cert {
                row.push(c.serial);
                row.push(rfc3339(c.not_after));
                row.push(rfc3339(c.not_before));
            }
            t.push(row);
        }
    }
    t
}

/// Now, in seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The secret's kind as istioctl names it and its PEM text, if inline.
fn secret_material(secret: &Value) -> (&'static str, Option<String>) {
    if let Some(tls) = at(secret, &["tls_certificate"]) {
        return ("Cert Chain", data_source(at(tls, &["certificate_chain"])));
    }
    if let Some(vc) = at(secret, &["validation_context"]) {
        return ("CA", data_source(at(vc, &["trusted_ca"])));
    }
    ("", None)
}

/// An Envoy DataSource's inline text: `inline_bytes` (base64 in JSON) or `inline_string`.
fn data_source(ds: Option<&Value>) -> Option<String> {
    let ds = ds?;
    if let Some(s) = str_at(ds, &["inline_string"]) {
        return Some(s.to_owned());
    }
    let bytes = base64_decode(str_at(ds, &["inline_bytes"])?)?;
    String::from_utf8(bytes).ok()
}

/// The first certificate of a PEM bundle.
pub fn first_certificate(pem: &str) -> Option<CertInfo> {
    all_certificates(pem).into_iter().next()
}

/// Every readable certificate of a PEM bundle, in order.
pub fn all_certificates(pem: &str) -> Vec<CertInfo> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(at) = rest.find(BEGIN) {
        let start = at + BEGIN.len();
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        if let Some(c) =
            base64_decode(&rest[start..start + len]).and_then(|d| parse_certificate(&d))
        {
            out.push(c);
        }
        rest = &rest[start + len + END.len()..];
    }
    out
}

/// Standard base64, whitespace ignored, padding optional.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            c if c.is_ascii_whitespace() => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// One DER element: tag and contents, and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Serial number and validity of an X.509 certificate in DER.
pub fn parse_certificate(der: &[u8]) -> Option<CertInfo> {
    const SEQUENCE: u8 = 0x30;
    let (tag, cert, _) = der_element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der_element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (mut tag, mut body, mut rest) = der_element(tbs)?;
    if tag == 0xa0 {
        // [0] version
        (tag, body, rest) = der_element(rest)?;
    }
    if tag != 0x02 {
        return None;
    }
    let serial = hex_serial(body);
    let (_, _, rest) = der_element(rest)?; // signature algorithm
    let (_, _, rest) = der_element(rest)?; // issuer
    let (tag, validity, _) = der_element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (t1, before, rest) = der_element(validity)?;
    let (t2, after, _) = der_element(rest)?;
    Some(CertInfo {
        serial,
        not_before: der_time(t1, before)?,
        not_after: der_time(t2, after)?,
    })
}

fn hex_serial(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// UTCTime (`YYMMDDHHMMSSZ`, 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn der_time(tag: u8, body: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(body).ok()?;
    let s = s.strip_suffix('Z')?;
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (year, rest) = match tag {
        0x17 if s.len() == 12 => {
            let yy = num(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        0x18 if s.len() == 14 => (num(0..4)?, 4),
        _ => return None,
    };
    let month = num(rest..rest + 2)?;
    let day = num(rest + 2..rest + 4)?;
    let hour = num(rest + 4..rest + 6)?;
    let min = num(rest + 6..rest + 8)?;
    let sec = num(rest + 8..rest + 10)?;
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVs\nbG8").unwrap(), b"hello");
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            der_time(0x17, b"230516013252Z").map(rfc3339).unwrap(),
            "2023-05-16T01:32:52Z"
        );
        assert_eq!(
            der_time(0x18, b"21200229235959Z").map(rfc3339).unwrap(),
            "2120-02-29T23:59:59Z"
        );
        assert!(der_time(0x17, b"2305160132Z").is_none());
    }

    #[test]
    fn serials_drop_leading_zeros() {
        assert_eq!(hex_serial(&[0x00, 0x19, 0x3a]), "193a");
        assert_eq!(hex_serial(&[0x00]), "0");
    }

    /// A minimal DER certificate: serial `serial`, validity 2023-05-16 to 2120-02-29.
    fn der(serial: u8) -> Vec<u8> {
        let mut tbs = vec![0x02, 0x01, serial, 0x30, 0x00, 0x30, 0x00];
        let before = b"230516013252Z";
        let after = b"21200229235959Z";
        let mut validity = vec![0x17, before.len() as u8];
        validity.extend_from_slice(before);
        validity.push(0x18);
        validity.push(after.len() as u8);
        validity.extend_from_slice(after);
        tbs.push(0x30);
        tbs.push(validity.len() as u8);
        tbs.extend(validity);
        let mut tbs_seq = vec![0x30, tbs.len() as u8];
        tbs_seq.extend(tbs);
        let mut cert = vec![0x30, tbs_seq.len() as u8];
        cert.extend(tbs_seq);
        cert
    }

    fn pem(der: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b64 = String::new();
        for chunk in der.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                b64.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n")
    }

    #[test]
    fn a_trust_bundle_shows_a_row_per_root_and_a_chain_its_leaf() {
        let bundle = format!("{}{}", pem(&der(0x0a)), pem(&der(0x0b)));
        let serials: Vec<String> = all_certificates(&bundle)
            .into_iter()
            .map(|c| c.serial)
            .collect();
        assert_eq!(serials, ["a", "b"]);
        assert_eq!(first_certificate(&bundle).unwrap().serial, "a");
        let ca =
            serde_json::json!({"validation_context": {"trusted_ca": {"inline_string": bundle}}});
        let chain = serde_json::json!({"tls_certificate": {"certificate_chain": {"inline_string": bundle}}});
        let entries = [
            SecretEntry {
                name: "default".into(),
                status: "ACTIVE",
                secret: Some(&chain),
                raw: &chain,
            },
            SecretEntry {
                name: "ROOTCA".into(),
                status: "ACTIVE",
                secret: Some(&ca),
                raw: &ca,
            },
        ];
        let out = secret_table(&entries, 1_800_000_000).render();
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(rows.len(), 3, "{out}");
        assert!(
            rows[0].starts_with("default") && rows[0].contains(" a "),
            "{out}"
        );
        assert!(
            rows[1].starts_with("ROOTCA") && rows[1].contains(" a "),
            "{out}"
        );
        assert!(
            rows[2].starts_with("ROOTCA") && rows[2].contains(" b "),
            "{out}"
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(parse_certificate(&[0x30, 0x03, 0x02, 0x01]).is_none());
        assert!(parse_certificate(&[]).is_none());
        assert!(first_certificate("no pem here").is_none());
    }
}
