//! `proxy-config log`: a proxy's logger levels (Envoy's `POST /logging` answer, `active
//! loggers:` then `  NAME: LEVEL` lines), and changing them: `--level LEVEL` sets every
//! logger, `--level NAME:LEVEL,...` the named ones (one `POST /logging?NAME=LEVEL` each).

/// Envoy's levels (`warn` accepted as `warning`).
pub const LEVELS: &[&str] = &[
    "trace", "debug", "info", "warning", "error", "critical", "off",
];

/// One change `--level` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Every logger.
    All(String),
    /// One logger.
    One { logger: String, level: String },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::All(level) => write!(f, "level {level} for every logger"),
            Change::One { logger, level } => write!(f, "{logger}:{level}"),
        }
    }
}

impl Change {
    /// The admin path that makes the change.
    pub fn path(&self) -> String {
        match self {
            Change::All(level) => format!("/logging?level={level}"),
            Change::One { logger, level } => format!("/logging?{logger}={level}"),
        }
    }
}

fn level(s: &str) -> Result<String, String> {
    let l = s.trim().to_ascii_lowercase();
    let l = if l == "warn" { "warning".to_owned() } else { l };
    if LEVELS.contains(&l.as_str()) {
        Ok(l)
    } else {
        Err(format!(
            "unknown log level {s:?}; use one of {}",
            LEVELS.join(", ")
        ))
    }
}

/// Parses `--level`: `LEVEL` or `NAME:LEVEL[,NAME:LEVEL...]`.
pub fn parse_levels(spec: &str) -> Result<Vec<Change>, String> {
    if !spec.contains(':') {
        return Ok(vec![Change::All(level(spec)?)]);
    }
    spec.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (logger, l) = p
                .split_once(':')
                .ok_or_else(|| format!("{p:?}: expected NAME:LEVEL"))?;
            let logger = logger.trim();
            if logger.is_empty()
                || !logger
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
            {
                return Err(format!("{p:?}: {logger:?} is not a logger name"));
            }
            Ok(Change::One {
                logger: logger.to_owned(),
                level: level(l)?,
            })
        })
        .collect()
}

/// The `(logger, level)` pairs of Envoy's `/logging` answer, in its order.
pub fn parse_active(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| l.starts_with(' ') || l.starts_with('\t'))
        .filter_map(|l| {
            let (name, level) = l.trim().split_once(':')?;
            Some((name.trim().to_owned(), level.trim().to_owned()))
        })
        .filter(|(n, l)| !n.is_empty() && !l.is_empty())
        .collect()
}

/// The levels as Envoy prints them.
pub fn render(levels: &[(String, String)]) -> String {
    let mut out = String::from("active loggers:\n");
    for (n, l) in levels {
        out.push_str(&format!("  {n}: {l}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn level_specs() {
        assert_eq!(
            parse_levels("debug").unwrap(),
            [Change::All("debug".into())]
        );
        assert_eq!(
            parse_levels("http:warn,upstream:trace").unwrap(),
            [
                Change::One {
                    logger: "http".into(),
                    level: "warning".into()
                },
                Change::One {
                    logger: "upstream".into(),
                    level: "trace".into()
                }
            ]
        );
        assert_eq!(
            parse_levels("http:debug").unwrap()[0].path(),
            "/logging?http=debug"
        );
        assert!(parse_levels("loud").is_err());
        assert!(parse_levels("http:loud").is_err());
        assert!(parse_levels("a&b:debug").is_err());
    }

    #[test]
    fn envoy_answer() {
        let text = "active loggers:\n  admin: info\n  http: debug\n\n";
        let levels = parse_active(text);
        assert_eq!(
            levels,
            [
                ("admin".to_owned(), "info".to_owned()),
                ("http".to_owned(), "debug".to_owned())
            ]
        );
        assert_eq!(
            render(&levels),
            "active loggers:\n  admin: info\n  http: debug\n"
        );
    }
}
