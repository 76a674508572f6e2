//! `--command-config FILE`: a client's security settings in a Java-properties file, as
//! Kafka's tools take them (`kafka-topics --command-config client.properties`), with
//! Kafka's and librdkafka's key names (`security.protocol`, `ssl.ca.location`,
//! `sasl.mechanism`, …; see `client::security`).
//!
//! The syntax is the common subset of Java properties: one `key=value`, `key: value`
//! or `key value` per line (the key ends at the first `=`, `:` or blank), both sides
//! trimmed, `#` and `!` starting comment lines, blank lines ignored. Line continuations
//! and escapes are not read. `sasl.password` may instead come from the environment
//! (`STRATA_SASL_PASSWORD`) so that it need not be in a file; the file's value wins,
//! unless it is empty.

use std::path::Path;

use anyhow::{bail, Context, Result};
use client::security::SASL_PASSWORD;
use client::{Security, SecurityConfig};

/// Environment variable holding `sasl.password` when the file has none.
pub const SASL_PASSWORD_ENV: &str = "STRATA_SASL_PASSWORD";

/// The security of the settings in `path`, checked and with their PEM files loaded.
/// Errors name the file, and the line and key at fault.
pub fn load(path: &Path) -> Result<Security> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --command-config {shown}"))?;
    let mut config = SecurityConfig::default();
    for (line, key, value) in properties(&text).with_context(|| shown.clone())? {
        config
            .set(key, value)
            .with_context(|| format!("{shown} line {line}"))?;
    }
    if config.sasl_password.as_deref().is_none_or(str::is_empty) {
        config.sasl_password = std::env::var(SASL_PASSWORD_ENV)
            .ok()
            .filter(|p| !p.is_empty());
    }
    if config.protocol.uses_sasl() && config.sasl_password.is_none() {
        bail!(
            "{shown}: security.protocol={} needs {SASL_PASSWORD}: set it in the file or in \
             {SASL_PASSWORD_ENV}",
            config.protocol
        );
    }
    config.build().with_context(|| shown)
}

/// `(line number, key, value)` of each setting in Java-properties `text`.
fn properties(text: &str) -> Result<Vec<(usize, &str, &str)>> {
    let mut settings = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        // The line itself is never shown: it may hold a password.
        let Some(at) = line.find(['=', ':', ' ', '\t']) else {
            bail!("line {}: expected key=value", index + 1);
        };
        let key = &line[..at];
        let rest = line[at..].trim_start();
        let value = rest.strip_prefix(['=', ':']).unwrap_or(rest).trim();
        if key.is_empty() {
            bail!("line {}: no key before the separator", index + 1);
        }
        settings.push((index + 1, key, value));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_lines_split_at_the_first_separator() {
        let text = "# a comment\n! another\n\n  security.protocol = SSL \n\
                    ssl.ca.location: /etc/ca.pem\nsasl.password=a=b:c\nempty=\n";
        assert_eq!(
            properties(text).unwrap(),
            vec![
                (4, "security.protocol", "SSL"),
                (5, "ssl.ca.location", "/etc/ca.pem"),
                (6, "sasl.password", "a=b:c"),
                (7, "empty", ""),
            ]
        );
        assert_eq!(
            properties("security.protocol SSL\nsasl.username : u\n").unwrap(),
            vec![(1, "security.protocol", "SSL"), (2, "sasl.username", "u")]
        );
        let e = properties("ok=1\nhunter2\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: expected key=value");
        assert!(properties("=x").is_err());
    }

    #[test]
    fn unknown_keys_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.properties");
        std::fs::write(
            &path,
            "security.protocol=PLAINTEXT\nbootstrap.servers=x:1\n",
        )
        .unwrap();
        let e = format!("{:#}", load(&path).unwrap_err());
        assert!(
            e.contains("client.properties line 2: bootstrap.servers: unknown setting"),
            "{e}"
        );
        std::fs::write(&path, "security.protocol=PLAINTEXT\n").unwrap();
        assert!(load(&path).is_ok());
        let e = format!("{:#}", load(&dir.path().join("missing")).unwrap_err());
        assert!(e.starts_with("reading --command-config"), "{e}");
    }
}
