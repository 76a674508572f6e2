//! `strata dev-cluster`: a local cluster of `strata serve` processes on 127.0.0.1, for
//! trying things out and for tests. N brokers with consecutive ports and data under one
//! folder run until Ctrl-C or SIGTERM; then each is stopped with SIGTERM, in order.
//!
//! With `--secure` the brokers speak only TLS, and the cluster starts with an
//! administrator whose client settings are written to the folder (see `secure`).

mod pki;
mod secure;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::admin_http::{ADMIN_PASSWORD_ENV, ADMIN_TOKEN_ENV, ADMIN_USER_ENV};
use super::command_config::SASL_PASSWORD_ENV;
use super::Outcome;
use secure::SecureCluster;

/// Node i's ports: Kafka on BASE+i-1, the others at these offsets from it.
const RAFT_PORT_OFFSET: u16 = 100;
const ADMIN_PORT_OFFSET: u16 = 200;
/// `--secure` only: the listener the administrator is made through.
const MTLS_PORT_OFFSET: u16 = 300;
/// How long `--secure` waits for the cluster to take its administrator.
const ADMIN_BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(60);
const ADMIN_BOOTSTRAP_RETRY: Duration = Duration::from_millis(500);
/// How often running brokers are checked for having exited.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long a broker may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `strata dev-cluster`: N brokers on 127.0.0.1 with consecutive ports, data under one
/// folder, until Ctrl-C or SIGTERM (then each is stopped with SIGTERM, in order).
#[derive(clap::Args, Debug)]
pub struct DevClusterArgs {
    /// Brokers to start (node ids 1..=N).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    nodes: u16,
    /// Folder for the brokers' data (`node-<id>/`) and logs (`node-<id>.log`).
    #[arg(long, default_value = "./strata-dev", value_name = "DIR")]
    dir: PathBuf,
    /// Node i listens for Kafka on BASE+i-1, for Raft on BASE+100+i-1 and for admin
    /// HTTP on BASE+200+i-1 (with --secure, for mutual TLS on BASE+300+i-1).
    #[arg(long, default_value_t = 19092, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1024..=65000))]
    base_port: u16,
    /// TLS everywhere: Kafka over SASL_SSL, Raft over mutual TLS, the admin port over
    /// HTTPS with credentials, ACLs on, and an administrator (`admin`, a super user)
    /// whose settings are written to DIR/client.properties and DIR/env.sh. The CA and
    /// certificates (DIR/tls/) and the password are made anew at each start.
    #[arg(long)]
    secure: bool,
}

/// The addresses of the dev cluster's nodes: per kind, consecutive ports from `base`
/// plus the kind's offset.
struct Ports {
    base: u16,
}

impl Ports {
    fn addr(&self, offset: u16, id: u16) -> String {
        format!("127.0.0.1:{}", self.base + offset + id - 1)
    }

    fn kafka(&self, id: u16) -> String {
        self.addr(0, id)
    }

    fn raft(&self, id: u16) -> String {
        self.addr(RAFT_PORT_OFFSET, id)
    }

    fn admin(&self, id: u16) -> String {
        self.addr(ADMIN_PORT_OFFSET, id)
    }

    fn mtls(&self, id: u16) -> String {
        self.addr(MTLS_PORT_OFFSET, id)
    }

    /// Every node's Kafka address, comma-separated.
    fn bootstrap(&self, nodes: u16) -> String {
        let all: Vec<String> = (1..=nodes).map(|id| self.kafka(id)).collect();
        all.join(",")
    }

    /// `--peers`: every node's Raft address, `1=H:P,2=H:P`.
    fn peers(&self, nodes: u16) -> String {
        let all: Vec<String> = (1..=nodes)
            .map(|id| format!("{id}={}", self.raft(id)))
            .collect();
        all.join(",")
    }
}

impl DevClusterArgs {
    pub fn run(self) -> Result<Outcome> {
        let exe = std::env::current_exe().context("finding the strata binary")?;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let ports = Ports {
            base: self.base_port,
        };
        let secure = if self.secure {
            Some(secure::prepare(&self.absolute_dir()?, self.nodes, &ports)?)
        } else {
            None
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        // Before any broker starts, so a signal from now on stops them all.
        let mut signals = {
            let _context = runtime.enter();
            Signals::new()?
        };
        let mut children: Vec<(u16, Child)> = Vec::new();
        for id in 1..=self.nodes {
            let spawned = self
                .serve_command(&exe, id, &ports, secure.as_ref())
                .and_then(|mut c| c.spawn().context("starting strata serve"));
            match spawned {
                Ok(child) => children.push((id, child)),
                Err(e) => {
                    stop_all(&mut children);
                    return Err(e);
                }
            }
        }
        let result =
            runtime.block_on(self.serve(&ports, secure.as_ref(), &mut children, &mut signals));
        stop_all(&mut children);
        result.map(|()| Outcome::Clean)
    }

    fn absolute_dir(&self) -> Result<PathBuf> {
        self.dir
            .canonicalize()
            .with_context(|| format!("resolving {}", self.dir.display()))
    }

    fn log_path(&self, id: u16) -> PathBuf {
        self.dir.join(format!("node-{id}.log"))
    }

    /// `strata serve` for node `id`, its output going to its log.
    fn serve_command(
        &self,
        exe: &Path,
        id: u16,
        ports: &Ports,
        secure: Option<&SecureCluster>,
    ) -> Result<Process> {
        let log_path = self.log_path(id);
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut command = Process::new(exe);
        // Brokers need no client secrets; an `env.sh` sourced earlier would otherwise
        // leave them in every broker's environment.
        for secret in [
            ADMIN_TOKEN_ENV,
            ADMIN_USER_ENV,
            ADMIN_PASSWORD_ENV,
            SASL_PASSWORD_ENV,
        ] {
            command.env_remove(secret);
        }
        command
            .arg("serve")
            .args(["--node-id", &id.to_string()])
            .args(["--raft-addr", &ports.raft(id)])
            .args(["--admin-addr", &ports.admin(id)])
            .args(["--peers", &ports.peers(self.nodes)])
            .arg("--data-dir")
            .arg(self.dir.join(format!("node-{id}")));
        match secure {
            // Its listeners are in the file.
            Some(secure) => command.arg("--config").arg(secure.node_config(id)),
            None => command.args(["--kafka-addr", &ports.kafka(id)]),
        };
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(command)
    }

    /// Says how to reach the cluster (with `--secure`, once it has its
    /// administrator), then watches the brokers until a signal.
    async fn serve(
        &self,
        ports: &Ports,
        secure: Option<&SecureCluster>,
        children: &mut Vec<(u16, Child)>,
        signals: &mut Signals,
    ) -> Result<()> {
        match secure {
            None => self.print_usage(ports),
            Some(secure) => {
                tokio::select! {
                    made = self.create_admin(secure, ports, children) => made?,
                    () = signals.recv() => return Ok(()),
                }
                secure.print_usage(self.nodes, ports);
            }
        }
        watch(children, signals).await
    }

    fn print_usage(&self, ports: &Ports) {
        eprintln!(
            "strata dev-cluster: {} brokers; Kafka bootstrap {}; admin http://{}/cluster; data and logs in {}",
            self.nodes,
            ports.bootstrap(self.nodes),
            ports.admin(1),
            self.dir.display()
        );
        eprintln!("  try: strata cluster status --admin {}", ports.admin(1));
    }

    /// Makes the administrator, retrying while the cluster starts; fails when a broker
    /// exits meanwhile or after [`ADMIN_BOOTSTRAP_TIMEOUT`].
    async fn create_admin(
        &self,
        secure: &SecureCluster,
        ports: &Ports,
        children: &mut Vec<(u16, Child)>,
    ) -> Result<()> {
        let deadline = Instant::now() + ADMIN_BOOTSTRAP_TIMEOUT;
        let bootstrap: Vec<String> = (1..=self.nodes).map(|id| ports.mtls(id)).collect();
        loop {
            let error = match secure.try_create_admin(&bootstrap.join(",")).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if let Some((id, status)) = reap_exited(children).into_iter().next() {
                bail!(
                    "broker {id} exited ({status}) while starting; see {}",
                    self.log_path(id).display()
                );
            }
            if Instant::now() >= deadline {
                return Err(error).context(format!(
                    "the cluster did not take its administrator within {} s (brokers' logs in {})",
                    ADMIN_BOOTSTRAP_TIMEOUT.as_secs(),
                    self.dir.display()
                ));
            }
            tokio::time::sleep(ADMIN_BOOTSTRAP_RETRY).await;
        }
    }
}

/// SIGTERM and SIGINT, the signals that stop the dev cluster.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers; needs a Tokio runtime context.
    fn new() -> Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("handling SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("handling SIGINT")?,
        })
    }

    /// Returns when either signal arrives.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Removes the brokers that exited from `children`: their ids and statuses.
fn reap_exited(children: &mut Vec<(u16, Child)>) -> Vec<(u16, ExitStatus)> {
    let mut exited = Vec::new();
    children.retain_mut(|(id, c)| match c.try_wait() {
        Ok(Some(status)) => {
            exited.push((*id, status));
            false
        }
        _ => true,
    });
    exited
}

/// Waits for SIGINT/SIGTERM. A broker that exits meanwhile (killed to watch a
/// failover, say) is reported and the others keep running; when none is left the
/// command ends with an error.
async fn watch(children: &mut Vec<(u16, Child)>, signals: &mut Signals) -> Result<()> {
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            () = signals.recv() => return Ok(()),
            _ = poll.tick() => {}
        }
        for (id, status) in reap_exited(children) {
            eprintln!("strata dev-cluster: broker {id} exited ({status}); the others keep running");
        }
        if children.is_empty() {
            bail!("every broker exited; see their logs");
        }
    }
}

/// SIGTERM to every broker still running, then waits for each ([`STOP_TIMEOUT`], then
/// SIGKILL).
fn stop_all(children: &mut Vec<(u16, Child)>) {
    for (_, c) in children.iter() {
        if let Ok(pid) = i32::try_from(c.id()) {
            // SAFETY: kill(2) with a pid we spawned and a valid signal number.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
    for (id, mut c) in children.drain(..) {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    eprintln!("strata dev-cluster: broker {id} did not stop; killing it");
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ports_are_consecutive_per_kind() {
        let ports = Ports { base: 19092 };
        assert_eq!(ports.kafka(1), "127.0.0.1:19092");
        assert_eq!(ports.raft(2), "127.0.0.1:19193");
        assert_eq!(ports.admin(3), "127.0.0.1:19294");
        assert_eq!(ports.mtls(1), "127.0.0.1:19392");
        assert_eq!(ports.bootstrap(2), "127.0.0.1:19092,127.0.0.1:19093");
        assert_eq!(ports.peers(2), "1=127.0.0.1:19192,2=127.0.0.1:19193");
    }
}
