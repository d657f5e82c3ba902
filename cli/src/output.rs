//! Renderings of analysis messages: log lines, JSON, YAML, SARIF 2.1.0 and GitHub
//! workflow commands. Each returns the whole text for stdout.

use std::collections::BTreeMap;

use mesh_core::analysis::{AnalyzerDef, Level, Message};
use serde::Serialize;

/// The JSON/YAML shape of one message (DESIGN.md: analyze contract).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRecord {
    pub code: String,
    pub level: String,
    pub message: String,
    pub origin: String,
    pub reference: String,
    pub documentation_url: String,
}

impl MessageRecord {
    pub fn from_message(m: &Message) -> Self {
        MessageRecord {
            code: m.kind.code.to_owned(),
            level: m.kind.level.to_string(),
            message: m.text.clone(),
            origin: m
                .origin
                .as_ref()
                .map(|o| o.display_name())
                .unwrap_or_default(),
            reference: m
                .origin
                .as_ref()
                .filter(|o| o.line > 0)
                .map(|o| o.reference())
                .unwrap_or_default(),
            documentation_url: m.kind.documentation_url(),
        }
    }
}

/// Istio's log format, one message per line.
pub fn log(messages: &[&Message], color: bool, verbose: bool) -> String {
    let mut out = String::new();
    for m in messages {
        let line = m.to_log_line();
        if color {
            let code = match m.level() {
                Level::Error => "31",
                Level::Warning => "33",
                Level::Info => "36",
            };
            let level = m.level().to_string();
            out.push_str(&format!(
                "\x1b[{code}m{level}\x1b[0m{}",
                &line[level.len()..]
            ));
        } else {
            out.push_str(&line);
        }
        out.push('\n');
        if verbose {
            out.push_str(&format!(
                "    {} ({})\n",
                m.kind.description,
                m.kind.documentation_url()
            ));
        }
    }
    out
}

/// A JSON array of message records.
pub fn json(messages: &[&Message]) -> String {
    let records: Vec<MessageRecord> = messages
        .iter()
        .map(|m| MessageRecord::from_message(m))
        .collect();
    serde_json::to_string_pretty(&records).unwrap_or_else(|_| "[]".into()) + "\n"
}

/// The same array as YAML.
pub fn yaml(messages: &[&Message]) -> String {
    let records: Vec<MessageRecord> = messages
        .iter()
        .map(|m| MessageRecord::from_message(m))
        .collect();
    to_yaml(&records)
}

/// Serializes to YAML (an empty list prints as `[]`).
pub fn to_yaml<T: Serialize>(value: &T) -> String {
    match serde_saphyr::to_string(value) {
        Ok(s) if s.trim().is_empty() => "[]\n".into(),
        Ok(s) if s.ends_with('\n') => s,
        Ok(s) => s + "\n",
        Err(e) => format!("# cannot render YAML: {e}\n"),
    }
}

fn sarif_level(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "note",
    }
}

/// SARIF 2.1.0: one run, one rule per message code of the analyzers that ran, one result per
/// message with its file and line.
pub fn sarif(messages: &[&Message], analyzers: &[&AnalyzerDef]) -> String {
    let mut rules: BTreeMap<&str, &mesh_core::analysis::MessageType> = BTreeMap::new();
    for a in analyzers {
        for m in a.messages {
            rules.insert(m.code, m);
        }
    }
    for m in messages {
        rules.insert(m.kind.code, m.kind);
    }
    let index: BTreeMap<&str, usize> = rules.keys().enumerate().map(|(i, c)| (*c, i)).collect();
    let rule_list: Vec<serde_json::Value> = rules
        .values()
        .map(|m| {
            serde_json::json!({
                "id": m.code,
                "name": m.name,
                "shortDescription": {"text": m.description},
                "helpUri": m.documentation_url(),
                "defaultConfiguration": {"level": sarif_level(m.level)},
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let mut r = serde_json::json!({
                "ruleId": m.kind.code,
                "ruleIndex": index.get(m.kind.code).copied().unwrap_or(0),
                "level": sarif_level(m.level()),
                "message": {"text": m.text},
            });
            if let Some(o) = &m.origin {
                let mut phys = serde_json::json!({"artifactLocation": {"uri": sarif_uri(&o.file)}});
                if o.line > 0 {
                    phys["region"] = serde_json::json!({"startLine": o.line});
                }
                r["locations"] = serde_json::json!([{
                    "physicalLocation": phys,
                    "logicalLocations": [{"fullyQualifiedName": o.display_name(), "kind": "resource"}],
                }]);
            }
            r
        })
        .collect();
    let doc = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "meshctl",
                "informationUri": "https://istio.io/latest/docs/reference/config/analysis/",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rule_list,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// A relative path stays relative (code-scanning tools resolve it against the checkout);
/// backslashes become slashes.
fn sarif_uri(file: &str) -> String {
    let f = file.replace('\\', "/");
    f.strip_prefix("./").map(str::to_owned).unwrap_or(f)
}

/// GitHub Actions workflow commands: `::error file=F,line=L,title=IST0101::text`.
pub fn github(messages: &[&Message]) -> String {
    let mut out = String::new();
    for m in messages {
        let cmd = match m.level() {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "notice",
        };
        let mut props = Vec::new();
        if let Some(o) = &m.origin
            && !o.file.starts_with('(')
            && o.file != "-"
        {
            props.push(format!("file={}", escape_property(&o.file)));
            if o.line > 0 {
                props.push(format!("line={}", o.line));
            }
        }
        props.push(format!(
            "title={}",
            escape_property(&format!("{} {}", m.kind.code, m.kind.name))
        ));
        let text = match &m.origin {
            Some(o) => format!("{}: {}", o.display_name(), m.text),
            None => m.text.clone(),
        };
        out.push_str(&format!(
            "::{cmd} {}::{}\n",
            props.join(","),
            escape_data(&text)
        ));
    }
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::analysis::{MessageOrigin, catalog};

    fn msg() -> Message {
        Message {
            kind: &catalog::REFERENCED_RESOURCE_NOT_FOUND,
            text: "Referenced host not found: \"a,b\"".into(),
            origin: Some(MessageOrigin {
                kind: "VirtualService".into(),
                namespace: Some("shop".into()),
                name: "pricing".into(),
                file: "dir/x.yaml".into(),
                line: 7,
            }),
            analyzer: "test",
        }
    }

    #[test]
    fn log_line_matches_istio() {
        let m = msg();
        assert_eq!(
            log(&[&m], false, false),
            "Error [IST0101] (VirtualService shop/pricing dir/x.yaml:7) Referenced host not found: \"a,b\"\n"
        );
    }

    #[test]
    fn json_record_shape() {
        let m = msg();
        let v: serde_json::Value = serde_json::from_str(&json(&[&m])).unwrap();
        assert_eq!(v[0]["code"], "IST0101");
        assert_eq!(v[0]["origin"], "VirtualService shop/pricing");
        assert_eq!(v[0]["reference"], "dir/x.yaml:7");
        assert_eq!(
            v[0]["documentationUrl"],
            "https://istio.io/latest/docs/reference/config/analysis/ist0101/"
        );
        let keys: Vec<&String> = v[0].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "code",
                "level",
                "message",
                "origin",
                "reference",
                "documentationUrl"
            ]
        );
    }

    #[test]
    fn github_escapes_properties() {
        let m = msg();
        assert_eq!(
            github(&[&m]),
            "::error file=dir/x.yaml,line=7,title=IST0101 ReferencedResourceNotFound::VirtualService shop/pricing: Referenced host not found: \"a,b\"\n"
        );
    }

    #[test]
    fn sarif_has_rule_and_location() {
        let m = msg();
        let v: serde_json::Value = serde_json::from_str(&sarif(&[&m], &[])).unwrap();
        assert_eq!(v["version"], "2.1.0");
        let run = &v["runs"][0];
        assert_eq!(run["tool"]["driver"]["rules"][0]["id"], "IST0101");
        assert_eq!(run["results"][0]["level"], "error");
        assert_eq!(
            run["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"],
            7
        );
    }
}
