//! The principal of a TLS client certificate: `User:` and the certificate's subject as
//! an RFC 4514 string (`CN=alice,O=Example`: the last RDN first, as Java's RFC 2253
//! form that Kafka uses), rewritten by Kafka's `ssl.principal.mapping.rules`:
//!
//! ```text
//! RULE:^CN=(.*?),O=Example$/$1/L, DEFAULT
//! ```
//!
//! Rules are tried in order; the first whose pattern matches the whole subject gives
//! the name (its replacement, with `$1`… groups, lower- or upper-cased by a trailing
//! `L` or `U`); `DEFAULT` keeps the subject as it is. When no rule matches, the
//! connection is refused, as Kafka refuses it.

use regex::Regex;

/// One rule of `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
enum Rule {
    Default,
    Rewrite {
        pattern: Regex,
        replacement: String,
        case: Option<char>,
    },
}

/// Parsed `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
pub struct PrincipalRules(Vec<Rule>);

impl Default for PrincipalRules {
    fn default() -> Self {
        PrincipalRules(vec![Rule::Default])
    }
}

impl PrincipalRules {
    /// Parses the rules; the error says which part is wrong.
    pub fn parse(text: &str) -> Result<PrincipalRules, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim_start_matches([',', ' ', '\t', '\n']);
        while !rest.is_empty() {
            let (rule, after) = if let Some(after) = rest.strip_prefix("DEFAULT") {
                (Rule::Default, after)
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                rewrite(after)?
            } else {
                return Err(format!(
                    "ssl.principal.mapping.rules: expected RULE:pattern/replacement/[LU] or \
                     DEFAULT at {rest:?}"
                ));
            };
            rules.push(rule);
            let after = after.trim_start_matches([' ', '\t', '\n']);
            if !(after.is_empty() || after.starts_with(',')) {
                return Err(format!(
                    "ssl.principal.mapping.rules: a rule must end at a comma, found {after:?}"
                ));
            }
            rest = after.trim_start_matches([',', ' ', '\t', '\n']);
        }
        if rules.is_empty() {
            return Err("ssl.principal.mapping.rules names no rule".into());
        }
        Ok(PrincipalRules(rules))
    }

    /// The name a certificate subject maps to (`None`: no rule matches).
    pub fn apply(&self, subject: &str) -> Option<String> {
        self.0.iter().find_map(|rule| match rule {
            Rule::Default => Some(subject.to_string()),
            Rule::Rewrite {
                pattern,
                replacement,
                case,
            } => {
                if !pattern.is_match(subject) {
                    return None;
                }
                let name = pattern.replace(subject, replacement.as_str()).into_owned();
                Some(match case {
                    Some('L') => name.to_lowercase(),
                    Some('U') => name.to_uppercase(),
                    _ => name,
                })
            }
        })
    }
}

/// `pattern/replacement/[LU]` after `RULE:`; `\/` is a slash inside either part.
fn rewrite(text: &str) -> Result<(Rule, &str), String> {
    let (pattern, rest) = until_slash(text)?;
    let (replacement, rest) = until_slash(rest)?;
    let (case, rest) = match rest.chars().next() {
        Some(c @ ('L' | 'U')) => (Some(c), &rest[1..]),
        _ => (None, rest),
    };
    // Java's `matches()`: the pattern must cover the whole subject, whichever way.
    let pattern = Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("ssl.principal.mapping.rules: bad pattern {pattern:?}: {e}"))?;
    // Kafka's replacements use `$1`; so does `regex`, which also reads `$1x` as a
    // group named `1x`: braces keep the group number alone.
    let replacement = Regex::new(r"\$(\d+)")
        .map_err(|e| e.to_string())?
        .replace_all(&replacement, "$${$1}")
        .into_owned();
    let rule = Rule::Rewrite {
        pattern,
        replacement,
        case,
    };
    Ok((rule, rest))
}

/// The text up to the first unescaped `/`, unescaped, and what follows that slash.
fn until_slash(text: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if text[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Ok((out, &text[i + 1..])),
            c => out.push(c),
        }
    }
    Err(format!(
        "ssl.principal.mapping.rules: {text:?} lacks a closing '/'"
    ))
}

/// The subject of a DER certificate as an RFC 4514 string.
pub fn certificate_subject(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(cert.tbs_certificate.subject.to_string())
}

#[cfg(test)]
mod fuzzed {
    use proptest::prelude::*;

    use super::*;

    /// DER-ish input: a SEQUENCE header over arbitrary content, so the decoder gets
    /// past the first byte, or anything at all.
    fn der() -> impl Strategy<Value = Vec<u8>> {
        let body = proptest::collection::vec(any::<u8>(), 0..400);
        prop_oneof![
            body.clone(),
            body.prop_map(|b| {
                let mut out = vec![0x30, 0x82, (b.len() >> 8) as u8, b.len() as u8];
                out.extend(b);
                out
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A client certificate's bytes, as a client could send them: a subject or
        /// nothing, never a panic.
        #[test]
        fn any_certificate_bytes_give_a_subject_or_none(bytes in der()) {
            let _ = certificate_subject(&bytes);
        }

        /// Any subject text through the default and a custom rule set.
        #[test]
        fn any_subject_maps_or_is_refused(subject in ".{0,200}") {
            let rules = PrincipalRules::parse("RULE:^CN=([^,]*),.*$/$1/L,DEFAULT")
                .expect("the rule parses");
            let _ = rules.apply(&subject);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_map_subjects_as_kafka_does() {
        let rules = PrincipalRules::parse(
            r"RULE:^CN=(.*?),OU=Svc,O=Acme$/$1-svc/L, RULE:^CN=([^,]*),.*$/$1/U,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            rules.apply("CN=Alice,OU=Svc,O=Acme").as_deref(),
            Some("alice-svc")
        );
        assert_eq!(rules.apply("CN=bob,O=Other").as_deref(), Some("BOB"));
        assert_eq!(rules.apply("O=NoCn").as_deref(), Some("O=NoCn"));
        let strict = PrincipalRules::parse(r"RULE:^CN=(.*)$/$1/").unwrap();
        assert_eq!(strict.apply("CN=x,O=y").as_deref(), Some("x,O=y"));
        assert_eq!(strict.apply("O=y"), None);
        // Unanchored and lazy, the pattern still has to cover the whole subject.
        let lazy = PrincipalRules::parse(r"RULE:CN=(.*?)/$1/").unwrap();
        assert_eq!(lazy.apply("CN=x,O=y").as_deref(), Some("x,O=y"));
        let slash = PrincipalRules::parse(r"RULE:^CN=a\/b$/a\/b/").unwrap();
        assert_eq!(slash.apply("CN=a/b").as_deref(), Some("a/b"));
        assert_eq!(
            PrincipalRules::default().apply("CN=z").as_deref(),
            Some("CN=z")
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            "",
            "RULE:^x$",
            "RULE:^x$/y",
            "RULE:(/x/",
            "DEFAULTX",
            "NOPE",
            "RULE:a/b/Q",
        ] {
            assert!(PrincipalRules::parse(bad).is_err(), "{bad:?}");
        }
    }
}
