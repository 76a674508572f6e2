//! Who may use the admin HTTP port (`admin-addr`).
//!
//! With `admin.api.require.auth = true` every endpoint but `/health` (and `/metrics`
//! when `admin.api.public.metrics = true`) needs HTTP Basic credentials of a SCRAM user
//! or the bearer token of `admin.api.token.file`, and the changes (`POST`) need a
//! super user or the token. Its TLS is the `ADMIN` entry of
//! `listener.security.protocol.map` with `listener.name.admin.ssl.*`.

use std::path::PathBuf;

/// The admin port's access settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminApiSettings {
    /// `admin.api.require.auth`.
    pub require_auth: bool,
    /// `admin.api.public.metrics`: `/metrics` answers without credentials.
    pub public_metrics: bool,
    /// `admin.api.token.file`: a file holding the bearer token (its first line).
    pub token_file: Option<PathBuf>,
}

impl AdminApiSettings {
    /// Sets `key` when it is one of these settings: `None` when it is not.
    pub fn set(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
        let flag = |v: &str| {
            v.trim()
                .parse::<bool>()
                .map_err(|_| format!("{key}: {value:?} is not true or false"))
        };
        let outcome = match key {
            "admin.api.require.auth" => flag(value).map(|b| self.require_auth = b),
            "admin.api.public.metrics" => flag(value).map(|b| self.public_metrics = b),
            "admin.api.token.file" if value.trim().is_empty() => {
                Err(format!("{key}: a file path is needed"))
            }
            "admin.api.token.file" => {
                self.token_file = Some(PathBuf::from(value.trim()));
                Ok(())
            }
            _ => return None,
        };
        Some(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_settings_parse_with_kafka_names() {
        let mut s = AdminApiSettings::default();
        for (k, v) in [
            ("admin.api.require.auth", "true"),
            ("admin.api.public.metrics", "true"),
            ("admin.api.token.file", "/etc/strata/token"),
        ] {
            s.set(k, v).expect("an admin key").expect("a valid value");
        }
        assert!(s.require_auth && s.public_metrics);
        assert!(s.set("admin.api.require.auth", "yes").unwrap().is_err());
        assert!(s.set("admin.api.token.file", " ").unwrap().is_err());
        assert!(s.set("admin.other", "x").is_none());
    }
}
