//! `strata dev-cluster --secure`: the files that make a dev cluster's brokers secure,
//! and the administrator it starts with.
//!
//! Guarantees:
//! - Kafka clients reach the brokers over SASL_SSL (SCRAM) only; no port speaks
//!   plaintext. The Raft ports run mutual TLS with `cluster.id` `strata-dev`; the admin
//!   ports HTTPS with `admin.api.require.auth`; the StandardAuthorizer checks every
//!   request.
//! - The administrator is the SCRAM user `admin`, a super user, with a random password
//!   that is written only to `client.properties` and `env.sh` (mode 0600) and never
//!   put on a command line or printed.
//! - The user is made at start over a second listener per broker, `MTLS` (SSL with a
//!   client certificate from the dev CA required), by the administrator certificate
//!   that `super.users` names from the start: the bootstrap authorization.md
//!   documents, without a plaintext port or a restart. The listener stays: only
//!   holders of a certificate from the dev CA (whose key is never written) get in.
//! - Certificates and the password are made anew at each start, so a stopped
//!   cluster's `client.properties` no longer works after the next start.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use client::{Admin, ClientConfig, Cluster, SaslMechanism, SecurityConfig};

use super::pki::{self, ADMIN_COMMON_NAME};
use super::Ports;
use crate::cli::admin_http::{ADMIN_CA_ENV, ADMIN_ENV, ADMIN_PASSWORD_ENV, ADMIN_USER_ENV};

/// The administrator's SCRAM user name.
const ADMIN_USER: &str = "admin";
const ADMIN_MECHANISM: SaslMechanism = SaslMechanism::ScramSha512;
/// Kafka's default PBKDF2 iterations for a SCRAM credential.
const ADMIN_ITERATIONS: u32 = 4096;
/// Random bytes of the administrator's password (base64url: 32 characters).
const PASSWORD_BYTES: usize = 24;
const CLUSTER_ID: &str = "strata-dev";
/// The name of the mutual-TLS listener through which the administrator is made.
const MTLS_LISTENER: &str = "MTLS";
/// One attempt to make the administrator; the caller retries until the cluster is up.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The files of a secure dev cluster, and the administrator's password.
pub(super) struct SecureCluster {
    dir: PathBuf,
    ca: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    password: String,
}

/// Writes the certificates, each broker's configuration (`node-<id>.toml`),
/// `client.properties` and `env.sh` into `dir` (absolute), replacing earlier ones.
pub(super) fn prepare(dir: &Path, nodes: u16, ports: &Ports) -> Result<SecureCluster> {
    let tls = dir.join("tls");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&tls)
        .with_context(|| format!("creating {}", tls.display()))?;
    // A folder left by an earlier start keeps its mode unless told.
    std::fs::set_permissions(&tls, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the permissions of {}", tls.display()))?;
    let made = pki::generate(nodes, SystemTime::now())?;
    let cluster = SecureCluster {
        dir: dir.to_path_buf(),
        ca: tls.join("ca.pem"),
        admin_cert: tls.join("admin.cert.pem"),
        admin_key: tls.join("admin.key.pem"),
        password: new_password()?,
    };
    write_file(&cluster.ca, &made.ca_pem, 0o644)?;
    write_file(&cluster.admin_cert, &made.admin_cert_pem, 0o644)?;
    write_file(&cluster.admin_key, &made.admin_key_pem, 0o600)?;
    for (id, keystore) in (1..=nodes).zip(&made.broker_keystores) {
        let path = cluster.keystore(id);
        write_file(&path, keystore, 0o600)?;
        let config = node_config(id, ports, &path, &cluster.ca);
        write_file(&cluster.node_config(id), &config, 0o644)?;
    }
    let properties = client_properties(&cluster.password, &cluster.ca);
    write_file(&cluster.client_properties(), &properties, 0o600)?;
    let env = env_script(&cluster, nodes, ports);
    write_file(&cluster.env_script(), &env, 0o600)?;
    Ok(cluster)
}

impl SecureCluster {
    /// Broker `id`'s configuration file, for `strata serve --config`.
    pub(super) fn node_config(&self, id: u16) -> PathBuf {
        self.dir.join(format!("node-{id}.toml"))
    }

    fn keystore(&self, id: u16) -> PathBuf {
        self.dir.join("tls").join(format!("node-{id}.keystore.pem"))
    }

    fn client_properties(&self) -> PathBuf {
        self.dir.join("client.properties")
    }

    fn env_script(&self) -> PathBuf {
        self.dir.join("env.sh")
    }

    /// One attempt to give the administrator its password, over the MTLS listener of
    /// `mtls_bootstrap` with the administrator certificate. Fails while the cluster
    /// is still starting (no listener yet, no controller); the caller retries.
    pub(super) async fn try_create_admin(&self, mtls_bootstrap: &str) -> Result<()> {
        let (ca, cert, key) = (
            path_text(&self.ca),
            path_text(&self.admin_cert),
            path_text(&self.admin_key),
        );
        let mut config = ClientConfig::new(mtls_bootstrap);
        config.connection.security = SecurityConfig::from_properties([
            ("security.protocol", "SSL"),
            ("ssl.ca.location", ca.as_str()),
            ("ssl.certificate.location", cert.as_str()),
            ("ssl.key.location", key.as_str()),
        ])?
        .build()?;
        let attempt = async {
            let admin = Admin::new(Cluster::connect(config).await?);
            admin
                .set_user_scram_credential(
                    ADMIN_USER,
                    ADMIN_MECHANISM,
                    ADMIN_ITERATIONS,
                    &self.password,
                )
                .await
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
            .await
            .context(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()))??;
        Ok(())
    }

    /// How to reach the cluster, on stderr; the password is not printed.
    pub(super) fn print_usage(&self, nodes: u16, ports: &Ports) {
        let properties = self.client_properties();
        eprintln!(
            "strata dev-cluster: {nodes} secure brokers (Kafka over SASL_SSL, Raft over \
             mutual TLS, admin over HTTPS); Kafka bootstrap {}; admin {}; data, logs, \
             certificates and credentials in {}",
            ports.bootstrap(nodes),
            admin_url(ports),
            self.dir.display()
        );
        eprintln!(
            "  user {ADMIN_USER} is a super user; its password is in {} (mode 0600)",
            properties.display()
        );
        eprintln!(
            "  try: strata topic list --brokers {} --command-config {}",
            ports.kafka(1),
            properties.display()
        );
        eprintln!(
            "       strata cluster status --admin {} --admin-ca {}   (with {ADMIN_USER_ENV} \
             and {ADMIN_PASSWORD_ENV} set)",
            admin_url(ports),
            self.ca.display()
        );
        eprintln!(
            "  or:  . {}   (sets STRATA_BROKERS, STRATA_COMMAND_CONFIG, {ADMIN_ENV}, \
             {ADMIN_CA_ENV}, {ADMIN_USER_ENV}, {ADMIN_PASSWORD_ENV}); then strata topic list, \
             strata cluster status",
            self.env_script().display()
        );
    }
}

/// The first broker's admin port, as `--admin` takes it.
fn admin_url(ports: &Ports) -> String {
    format!("https://{}", ports.admin(1))
}

/// A random password of [`PASSWORD_BYTES`] from the operating system, base64url.
fn new_password() -> Result<String> {
    use base64::Engine as _;
    let mut bytes = [0u8; PASSWORD_BYTES];
    getrandom::getrandom(&mut bytes).context("reading random bytes for the password")?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Broker `id`'s settings (TOML): its listeners and TLS, the Raft and admin ports'
/// TLS, the authorizer and its super users. The flags `dev-cluster` passes add the
/// node id, data directory, Raft peers and admin address.
fn node_config(id: u16, ports: &Ports, keystore: &Path, ca: &Path) -> String {
    let listeners = format!(
        "SASL_SSL://{},{MTLS_LISTENER}://{}",
        ports.kafka(id),
        ports.mtls(id)
    );
    let protocols = format!("SASL_SSL:SASL_SSL,{MTLS_LISTENER}:SSL,RAFT:SSL,ADMIN:SSL");
    let mtls_auth = format!(
        "listener.name.{}.ssl.client.auth",
        MTLS_LISTENER.to_lowercase()
    );
    let super_users = format!("User:{ADMIN_USER};User:CN={ADMIN_COMMON_NAME}");
    let (keystore, ca) = (path_text(keystore), path_text(ca));
    let settings = [
        ("listeners", listeners.as_str()),
        ("listener.security.protocol.map", protocols.as_str()),
        ("ssl.keystore.location", keystore.as_str()),
        ("ssl.truststore.location", ca.as_str()),
        (mtls_auth.as_str(), "required"),
        ("cluster.id", CLUSTER_ID),
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", super_users.as_str()),
    ];
    let mut text = String::from(
        "# Written by `strata dev-cluster --secure` at each start: edits are lost.\n\
         \"admin.api.require.auth\" = true\n",
    );
    for (key, value) in settings {
        text.push_str(&format!("{} = {}\n", toml_string(key), toml_string(value)));
    }
    text
}

/// The administrator's client settings, for `--command-config` (Kafka's names).
fn client_properties(password: &str, ca: &Path) -> String {
    format!(
        "# Written by `strata dev-cluster --secure`: the administrator ({ADMIN_USER}, a super \
         user)\n# over SASL_SSL, for --command-config. Regenerated at each start.\n\
         security.protocol=SASL_SSL\n\
         sasl.mechanism={}\n\
         sasl.username={ADMIN_USER}\n\
         sasl.password={password}\n\
         ssl.ca.location={}\n",
        ADMIN_MECHANISM.name(),
        path_text(ca)
    )
}

/// A shell script to source: the CLI's environment for this cluster.
fn env_script(cluster: &SecureCluster, nodes: u16, ports: &Ports) -> String {
    let vars = [
        ("STRATA_BROKERS", ports.bootstrap(nodes)),
        (
            "STRATA_COMMAND_CONFIG",
            path_text(&cluster.client_properties()),
        ),
        (ADMIN_ENV, admin_url(ports)),
        (ADMIN_CA_ENV, path_text(&cluster.ca)),
        (ADMIN_USER_ENV, ADMIN_USER.to_string()),
        (ADMIN_PASSWORD_ENV, cluster.password.clone()),
    ];
    let mut text = String::from(
        "# Written by `strata dev-cluster --secure`; `. env.sh` points the strata CLI at\n\
         # this dev cluster as its administrator. Regenerated at each start.\n",
    );
    for (name, value) in vars {
        text.push_str(&format!("export {name}={}\n", shell_quote(&value)));
    }
    text
}

/// `text` as one POSIX shell word: single-quoted, each `'` written `'\''`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text` as a TOML basic string. JSON's string escapes are all valid in TOML.
fn toml_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// Writes `text` to `path` with permissions `mode`, set before the text is written:
/// into a new file beside it (created exclusively, so never through a link someone
/// planted), then renamed over `path` (which replaces a link, not what it points to).
fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let shown = path.display();
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    let fresh = PathBuf::from(name);
    // Left by an earlier start that died here; removing a link removes only the link.
    let _ = std::fs::remove_file(&fresh);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&fresh)
        .with_context(|| format!("creating {}", fresh.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the permissions of {shown}"))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {shown}"))?;
    std::fs::rename(&fresh, path).with_context(|| format!("replacing {shown}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(dir: &Path) -> SecureCluster {
        SecureCluster {
            dir: dir.to_path_buf(),
            ca: dir.join("tls/ca.pem"),
            admin_cert: dir.join("tls/admin.cert.pem"),
            admin_key: dir.join("tls/admin.key.pem"),
            password: "pw".into(),
        }
    }

    #[test]
    fn broker_configs_parse_and_open_no_plaintext_port() {
        let text = node_config(
            2,
            &Ports { base: 19092 },
            Path::new("/d/tls/node-2.keystore.pem"),
            Path::new("/d/tls/ca \"x\".pem"),
        );
        let table: toml::Table = text.parse().unwrap();
        let get = |k: &str| table[k].as_str().unwrap().to_string();
        assert_eq!(
            get("listeners"),
            "SASL_SSL://127.0.0.1:19093,MTLS://127.0.0.1:19393"
        );
        assert!(!get("listener.security.protocol.map").contains("PLAINTEXT"));
        assert_eq!(get("ssl.truststore.location"), "/d/tls/ca \"x\".pem");
        assert_eq!(get("listener.name.mtls.ssl.client.auth"), "required");
        assert_eq!(get("super.users"), "User:admin;User:CN=strata-dev-admin");
        assert_eq!(table["admin.api.require.auth"].as_bool(), Some(true));
    }

    #[test]
    fn client_properties_name_the_administrator_and_the_ca() {
        let text = client_properties("s3cret", Path::new("/d/tls/ca.pem"));
        for line in [
            "security.protocol=SASL_SSL",
            "sasl.mechanism=SCRAM-SHA-512",
            "sasl.username=admin",
            "sasl.password=s3cret",
            "ssl.ca.location=/d/tls/ca.pem",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn the_env_script_quotes_every_value() {
        let text = env_script(&cluster(Path::new("/it's")), 2, &Ports { base: 19092 });
        assert!(text.contains("export STRATA_BROKERS='127.0.0.1:19092,127.0.0.1:19093'\n"));
        assert!(text.contains("export STRATA_ADMIN='https://127.0.0.1:19292'\n"));
        assert!(text.contains("export STRATA_ADMIN_CA='/it'\\''s/tls/ca.pem'\n"));
        assert!(text.contains("export STRATA_ADMIN_PASSWORD='pw'\n"));
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn passwords_are_random_and_property_safe() {
        let (a, b) = (new_password().unwrap(), new_password().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn secrets_are_written_for_the_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_file(&path, "new", 0o600).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let path = dir.path().join("env.sh");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_file(&path, "secret", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
}
