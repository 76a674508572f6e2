//! Starting and stopping the broker: the data directory (locked against a second
//! broker), the topic registry, the Kafka and admin listeners, housekeeping, and an
//! orderly shutdown (stop accepting, finish in-flight requests, flush, write the
//! clean-shutdown markers).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::admin_http::AdminAuth;
use crate::cluster::metadata::Endpoint;
use crate::cluster::{Cluster, CONTROLLER_TIMEOUT};
use crate::config::listeners::Listener;
use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::group::Coordinator;
use crate::health::{self, TaskEnd};
use crate::identity::IdentityFile;
use crate::metrics::Metrics;
use crate::session::ListenerId;
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::tls::ListenerTls;
use crate::topics::Topics;
use crate::{admin_http, connection, convert, Broker, KafkaListener};
use replication::transport::per_address::PerAddress;

/// How long the controller leader waits for every peer to register before creating
/// `__consumer_offsets` with the brokers it has.
pub const OFFSETS_TOPIC_WAIT: Duration = Duration::from_secs(30);
/// How often a cluster node samples the followers of the groups it leads (ISR).
pub const ISR_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);
/// How long a cluster node's shutdown waits for its leaderships to move elsewhere.
pub const LEADERSHIP_HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for connections to finish their in-flight requests.
pub const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

const LOCK_FILE: &str = ".lock";
/// `/health` of a cluster node until the controller applied its registration.
const STARTING_UNREGISTERED: &str = "not yet registered with the controller (it needs a \
     quorum of the controller's voters; a node whose data directory was lost registers \
     once it has caught up)";

/// A started broker.
pub struct Running {
    /// Where the first Kafka listener is bound (useful with port 0).
    pub kafka_addr: SocketAddr,
    /// Every Kafka listener: its name and where it is bound.
    pub listeners: Vec<(String, SocketAddr)>,
    /// Where the admin HTTP listener is bound.
    pub admin_addr: SocketAddr,
    pub broker: Arc<Broker>,
    trigger: ShutdownTrigger,
    task: JoinHandle<Result<()>>,
}

impl Running {
    /// Begins an orderly shutdown.
    pub fn shutdown(&self) {
        self.trigger.trigger();
    }

    /// Resolves when the broker failed in a way it cannot recover from (see
    /// [`crate::health`]); the caller then shuts it down and exits non-zero, with
    /// [`Running::failure`] as the reason.
    pub fn failed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.broker.metrics.health.failed()
    }

    /// The failures recorded so far, one per line (`None` while healthy).
    pub fn failure(&self) -> Option<String> {
        match self.broker.metrics.health.status() {
            crate::health::Status::Unhealthy(reasons) => Some(reasons),
            crate::health::Status::Ok | crate::health::Status::Starting(_) => None,
        }
    }

    /// Waits until the broker has stopped; the error, if closing the logs failed.
    pub async fn wait(self) -> Result<()> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(BrokerError::Config(format!("broker task failed: {e}"))),
        }
    }
}

/// Locks the data directory for this process (released when the process exits, however
/// it exits).
fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| BrokerError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(BrokerError::Config(format!(
            "data directory {} is in use by another strata process",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(BrokerError::io(&path, e)),
    }
}

/// `host:port` → (host, port).
fn split_host_port(addr: &str) -> Result<(String, i32)> {
    let bad = || BrokerError::Config(format!("{addr:?} is not host:port"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), i32::from(port)))
}

async fn bind(what: &str, addr: &str) -> Result<TcpListener> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| BrokerError::Config(format!("{what} {addr:?}: {e}")))?
        .collect();
    let first = *resolved
        .first()
        .ok_or_else(|| BrokerError::Config(format!("{what} {addr:?} resolves to nothing")))?;
    TcpListener::bind(first)
        .await
        .map_err(|source| BrokerError::Bind {
            what: what.to_string(),
            addr: first,
            source,
        })
}

/// A Kafka listener, bound and ready to accept.
struct Accepting {
    listener: TcpListener,
    id: ListenerId,
    /// For an SSL listener.
    tls: Option<Arc<ListenerTls>>,
}

/// The admin port's TLS (`ADMIN:SSL`) and access rules, loaded at start.
fn admin_access(config: &BrokerConfig) -> Result<(Option<Arc<ListenerTls>>, Arc<AdminAuth>)> {
    let what = crate::config::listeners::ADMIN_LISTENER;
    let tls = match config.listeners.admin_tls().map_err(BrokerError::Config)? {
        Some(settings) => Some(Arc::new(
            ListenerTls::load(what, settings)
                .map_err(|e| BrokerError::Config(format!("the admin port's TLS: {e}")))?,
        )),
        None => None,
    };
    let auth = AdminAuth::load(&config.admin_api).map_err(BrokerError::Config)?;
    Ok((tls, Arc::new(auth)))
}

/// A TLS listener's `ssl.principal.mapping.rules` (checked when set, so parsing again
/// cannot fail; the error is kept for the record).
fn principal_rules(spec: &Listener) -> Result<crate::principal::PrincipalRules> {
    match &spec.tls {
        Some(tls) => crate::principal::PrincipalRules::parse(&tls.principal_rules)
            .map_err(BrokerError::Config),
        None => Ok(Default::default()),
    }
}

/// Binds every configured Kafka listener and loads the TLS files of the SSL ones.
async fn bind_listeners(specs: Vec<Listener>) -> Result<(Vec<Accepting>, Vec<KafkaListener>)> {
    let (mut accepting, mut described) = (Vec::new(), Vec::new());
    for spec in specs {
        let tls = match &spec.tls {
            Some(settings) => Some(Arc::new(
                ListenerTls::load(&spec.name, settings.clone())
                    .map_err(|e| BrokerError::Config(format!("listener {}: {e}", spec.name)))?,
            )),
            None => None,
        };
        let what = format!("listener {}", spec.name);
        let listener = bind(&what, &spec.bind).await?;
        let addr = local_addr(&what, &listener)?;
        let (host, port) = advertised(&spec, addr)?;
        described.push(KafkaListener {
            name: spec.name.clone(),
            protocol: spec.protocol,
            addr,
            advertised: Endpoint { host, port },
        });
        accepting.push(Accepting {
            listener,
            id: ListenerId {
                principal_rules: Arc::new(principal_rules(&spec)?),
                name: spec.name.into(),
                mechanisms: spec.sasl_mechanisms.into(),
            },
            tls,
        });
    }
    Ok((accepting, described))
}

/// Opens the data directory and starts serving. Returns once both listeners are bound.
pub async fn run(config: BrokerConfig) -> Result<Running> {
    let data_dir = config.data_dir.clone();
    let listeners = config.listeners.resolve().map_err(BrokerError::Config)?;
    std::fs::create_dir_all(&data_dir).map_err(|e| BrokerError::io(&data_dir, e))?;
    let lock = lock_data_dir(&data_dir)?;
    let settings = config.cluster()?;
    // A single broker's directory, written before every broker was a cluster node,
    // converts first.
    let conversion = convert::prepare(&data_dir, &settings, &config.topics)?;
    let identity = IdentityFile::open(&data_dir, config.node_id)?;
    let (accepting, listeners) = bind_listeners(listeners).await?;
    let admin = bind("admin-addr", &config.admin_addr).await?;
    let (admin_tls, admin_auth) = admin_access(&config)?;
    // `resolve` yields at least one listener: the shorthand when none is configured.
    let kafka_addr = listeners[0].addr;
    let admin_addr = local_addr("admin", &admin)?;
    let metrics = Arc::new(Metrics::new());
    let (trigger, shutdown) = shutdown::channel();
    let cluster = Cluster::start(settings, &data_dir, identity).await?;
    let topics = Topics::open(
        &data_dir,
        config.topics.clone(),
        metrics.clone(),
        cluster.in_sync_replicas(),
    )?;
    let audit_signer = match &config.audit_signing_key_file {
        Some(path) => Some(
            crate::audit_signer::AuditSigner::load(path)
                .map_err(|e| BrokerError::Config(e.to_string()))?,
        ),
        None => None,
    };
    let broker = Arc::new(Broker {
        audit_signer,
        audit_trail: crate::audit_trail::AuditTrail::new(config.audit_log.clone()),
        node_id: config.node_id,
        listeners,
        topics,
        cluster: cluster.clone(),
        metrics,
        groups: Arc::new(Coordinator::new(config.groups.clone())),
        txns: Arc::new(crate::txn::TxnCoordinator::new(config.txns.clone())),
        queued_request_bytes: Arc::new(tokio::sync::Semaphore::new(
            config.queued_max_request_bytes,
        )),
        disk: Default::default(),
        failed_logins: Default::default(),
        quotas: Default::default(),
        config,
    });
    for l in &broker.listeners {
        info!(listener = l.name, protocol = l.protocol.name(), addr = %l.addr, advertised = %format!("{}:{}", l.advertised.host, l.advertised.port), "kafka listener");
    }
    info!(%kafka_addr, %admin_addr, data_dir = %data_dir.display(), topics = broker.topics.all().len(), "strata broker serving");
    let started = start_cluster(&broker, &shutdown, admin_addr.to_string(), conversion).await;
    if let Err(e) = started {
        trigger.trigger();
        cluster.stop(SHUTDOWN_DRAIN_TIMEOUT).await;
        return Err(e);
    }
    let admin_task = tokio::spawn(admin_http::serve(
        admin,
        admin_tls.clone(),
        admin_auth,
        broker.clone(),
        shutdown.clone(),
    ));
    let housekeeping = tokio::spawn(housekeeping(broker.clone(), shutdown.clone()));
    spawn_broker_tasks(&broker, &shutdown);
    let tls = accepting
        .iter()
        .filter_map(|a| a.tls.clone())
        .chain(admin_tls)
        .map(crate::tls::Reloading::Listener)
        .chain(broker.cluster.raft_tls().map(crate::tls::Reloading::Raft))
        .collect();
    tokio::spawn(crate::tls::watch(
        tls,
        broker.metrics.clone(),
        shutdown.clone(),
    ));
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    let per_ip = PerAddress::new(broker.config.max_connections_per_ip);
    let acceptors = accepting
        .into_iter()
        .map(|a| {
            let (b, s) = (broker.clone(), shutdown.clone());
            tokio::spawn(accept_loop(a, b, s, slots.clone(), per_ip.clone()))
        })
        .collect();
    let stopping = Stopping {
        admin_task,
        housekeeping,
        _lock: lock,
    };
    let task = tokio::spawn(serve_until_stopped(
        acceptors,
        broker.clone(),
        slots,
        stopping,
    ));
    let listeners = broker
        .listeners
        .iter()
        .map(|l| (l.name.clone(), l.addr))
        .collect();
    Ok(Running {
        kafka_addr,
        listeners,
        admin_addr,
        broker,
        trigger,
        task,
    })
}

fn local_addr(what: &str, listener: &TcpListener) -> Result<SocketAddr> {
    listener
        .local_addr()
        .map_err(|e| BrokerError::Config(format!("{what} listener address: {e}")))
}

/// The host and port clients of a listener are told to connect to.
fn advertised(spec: &Listener, bound: SocketAddr) -> Result<(String, i32)> {
    match &spec.advertised {
        Some(a) => split_host_port(a),
        None if bound.ip().is_unspecified() => Err(BrokerError::Config(format!(
            "listener {} binds {bound}, a wildcard address; clients need a routable one: set \
             advertised.listeners (or advertised-kafka-addr with kafka-addr)",
            spec.name
        ))),
        None => Ok((bound.ip().to_string(), i32::from(bound.port()))),
    }
}

/// Starts this node's part of the cluster: the Raft node's supervision, the
/// controller (reconciling the topics), a pending conversion, ISR sampling, standing,
/// moves, the registration and the offsets topic. A cluster of one returns once it is
/// ready to serve; a node of a larger cluster at once (`/health` says `starting` until
/// it is registered). On an error the caller stops the cluster.
async fn start_cluster(
    broker: &Arc<Broker>,
    shutdown: &Shutdown,
    admin_addr: String,
    conversion: Option<convert::Pending>,
) -> Result<()> {
    let c = &broker.cluster;
    let m = &broker.metrics;
    if let Some(node_task) = c.take_node_task() {
        let metrics = m.clone();
        health::supervise("raft node", node_task, move |r| metrics.health.fail(r));
    }
    let b = broker.clone();
    let reconcile = move |change| {
        let b = b.clone();
        async move { b.cluster.reconcile(&b.topics, change).await }
    };
    spawn_supervised(m, "controller", c.clone().run(reconcile, shutdown.clone()));
    if let Some(pending) = conversion {
        convert::finish(c, &broker.config.data_dir, pending).await?;
    }
    let lag = broker.config.replica_lag_time_max;
    let isr = c
        .clone()
        .track_isr(ISR_SAMPLE_INTERVAL, lag, shutdown.clone());
    spawn_supervised(m, "ISR tracking", isr);
    spawn_supervised(
        m,
        "node standing",
        c.clone().track_standing(shutdown.clone()),
    );
    spawn_supervised(
        m,
        "partition moves",
        c.clone().drive_moves(shutdown.clone()),
    );
    // Until the controller applied this node's registration, topic creation may
    // not count it and clients may not find it in Metadata: not ready yet.
    m.health.set_starting(Some(STARTING_UNREGISTERED.into()));
    // `resolve` yields at least one listener: the first is the main address.
    let main = &broker.listeners[0].advertised;
    let endpoints = broker
        .listeners
        .iter()
        .map(|l| (l.name.clone(), l.advertised.clone()))
        .collect();
    let registered = c.clone().register(
        main.host.clone(),
        main.port,
        admin_addr,
        endpoints,
        shutdown.clone(),
    );
    let offsets_topic = ensure_offsets_topic(broker.clone(), c.clone(), shutdown.clone());
    if c.settings.peers.len() > 1 {
        spawn_supervised(m, "offsets topic", offsets_topic);
        let metrics = m.clone();
        spawn_supervised(m, "registration", async move {
            if registered.await {
                metrics.health.set_starting(None);
            }
        });
        return Ok(());
    }
    // A cluster of one registers with itself, creates its offsets topic and leads
    // every partition in milliseconds: it serves once all that is done.
    let ready = tokio::time::timeout(CONTROLLER_TIMEOUT, async {
        registered.await && {
            offsets_topic.await;
            coordinating_every_group(&broker.groups).await;
            true
        }
    });
    if !matches!(ready.await, Ok(true)) {
        return Err(BrokerError::Cluster(format!(
            "a one-node cluster was not ready within {CONTROLLER_TIMEOUT:?} (registered \
             with itself, {} created and loaded)",
            crate::topics::OFFSETS_TOPIC
        )));
    }
    m.health.set_starting(None);
    Ok(())
}

/// The broker's own background tasks: the group and transaction coordinators, the log
/// cleaner, the disk-space watch, the audit heads and the audit trail's writer.
fn spawn_broker_tasks(broker: &Arc<Broker>, shutdown: &Shutdown) {
    let m = &broker.metrics;
    let groups = broker.groups.clone().run(shutdown.clone());
    spawn_supervised(m, "group coordinator", groups);
    let txns = broker.txns.clone().run(broker.clone(), shutdown.clone());
    spawn_supervised(m, "transaction coordinator", txns);
    if let Some(calls) = broker.cluster.node.rpc().take_incoming() {
        let peers = crate::peers::serve(broker.clone(), calls, shutdown.clone());
        spawn_supervised(m, "calls from peers", peers);
    }
    let cleaner = run_cleaner(broker.clone(), shutdown.clone());
    spawn_supervised(m, "log cleaner", cleaner);
    let disk = crate::disk_space::watch(broker.clone(), shutdown.clone());
    spawn_supervised(m, "disk space", disk);
    let audit = crate::audit_heads::run(broker.clone(), shutdown.clone());
    spawn_supervised(m, "audit heads", audit);
    let events = broker.audit_trail.take_receiver();
    if let Some(events) = events.filter(|_| broker.audit_trail.config().enabled) {
        let trail = crate::audit_trail::run(broker.clone(), events, shutdown.clone());
        spawn_supervised(m, "audit trail", trail);
    }
}

/// Spawns a long-lived task whose panic or error fails the broker (`health`).
fn spawn_supervised<T: TaskEnd + Send + 'static>(
    metrics: &Arc<Metrics>,
    name: &'static str,
    task: impl std::future::Future<Output = T> + Send + 'static,
) {
    let metrics = metrics.clone();
    health::supervise(name, tokio::spawn(task), move |r| metrics.health.fail(r));
}

/// Hands the coordinator the `__consumer_offsets` partitions once the
/// topic exists. The controller leader creates it, once every peer registered (or
/// after [`OFFSETS_TOPIC_WAIT`], with the brokers there are), so it gets its full
/// replication factor on a cluster starting up.
async fn ensure_offsets_topic(broker: Arc<Broker>, c: Arc<Cluster>, mut shutdown: Shutdown) {
    let started = std::time::Instant::now();
    loop {
        if let Some(t) = broker.topics.get(crate::topics::OFFSETS_TOPIC) {
            broker.groups.set_partitions(t.partitions.clone());
            info!(
                partitions = t.partitions.len(),
                "consumer groups served from the replicated {}",
                crate::topics::OFFSETS_TOPIC
            );
            return;
        }
        let registered = c.state().brokers.len();
        let ready = registered >= c.settings.peers.len()
            || (registered > 0 && started.elapsed() >= OFFSETS_TOPIC_WAIT);
        if ready && c.controller_leader() == Some(c.node_id) {
            if let Err(e) = crate::group::create_offsets_topic(
                &broker.cluster,
                &broker.topics,
                broker.groups.config(),
            )
            .await
            {
                warn!(error = %e, "creating {} failed; retrying", crate::topics::OFFSETS_TOPIC);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// Waits until the coordinator has loaded every `__consumer_offsets` partition (each
/// replica leads within milliseconds of opening on a cluster of one).
async fn coordinating_every_group(groups: &Coordinator) {
    while !tokio::task::block_in_place(|| groups.load_led_partitions()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Accepts connections on one listener until shutdown, within `max.connections`
/// (`slots`, shared by every listener) and `max.connections.per.ip`.
async fn accept_loop(
    accepting: Accepting,
    broker: Arc<Broker>,
    mut shutdown: Shutdown,
    slots: Arc<Semaphore>,
    per_ip: PerAddress,
) {
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p,
            _ = shutdown.wait() => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            a = accepting.listener.accept() => a,
            _ = shutdown.wait() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(held) = per_ip.admit(peer.ip()) else {
                    broker.metrics.connections_refused.inc();
                    debug!(%peer, "closed at accept: max.connections.per.ip reached");
                    continue;
                };
                let (broker, shutdown) = (broker.clone(), shutdown.clone());
                let (id, tls) = (accepting.id.clone(), accepting.tls.clone());
                broker.metrics.connections_total.inc();
                broker.metrics.connections_open.inc();
                tokio::spawn(async move {
                    let b = broker.clone();
                    match tls {
                        Some(tls) => {
                            connection::serve_tls(stream, tls.acceptor(), id, b, shutdown).await
                        }
                        None => connection::serve(stream, id, b, shutdown).await,
                    }
                    broker.metrics.connections_open.dec();
                    drop(held);
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What the broker closes once it stops accepting.
struct Stopping {
    admin_task: JoinHandle<std::io::Result<()>>,
    housekeeping: JoinHandle<()>,
    /// The data directory's lock, released when the broker has stopped.
    _lock: std::fs::File,
}

/// Waits for the listeners to stop accepting (shutdown), then stops in order: hand
/// leaderships over, let connections finish, stop the cluster, close the logs.
async fn serve_until_stopped(
    acceptors: Vec<JoinHandle<()>>,
    broker: Arc<Broker>,
    slots: Arc<Semaphore>,
    stopping: Stopping,
) -> Result<()> {
    for a in acceptors {
        let _ = a.await;
    }
    info!("shutting down: handing leaderships over");
    broker
        .cluster
        .hand_over_leadership(LEADERSHIP_HANDOVER_TIMEOUT)
        .await;
    info!("shutting down: finishing in-flight requests");
    let max = broker.config.max_connections as u32;
    let drained = tokio::time::timeout(SHUTDOWN_DRAIN_TIMEOUT, slots.acquire_many(max)).await;
    if drained.is_err() {
        warn!("connections still busy after {SHUTDOWN_DRAIN_TIMEOUT:?}; closing the logs anyway");
    }
    let _ = stopping.housekeeping.await;
    // The admin server ends once its open requests finish; a client holding one open
    // does not hold up the shutdown.
    let mut admin_task = stopping.admin_task;
    match tokio::time::timeout(SHUTDOWN_DRAIN_TIMEOUT, &mut admin_task).await {
        Ok(Ok(Err(e))) => warn!(error = %e, "admin server"),
        Ok(Err(e)) => warn!(error = %e, "admin server task"),
        Ok(Ok(Ok(()))) => {}
        Err(_) => {
            warn!("admin connections still open after {SHUTDOWN_DRAIN_TIMEOUT:?}; closing them");
            admin_task.abort();
        }
    }
    broker.cluster.stop(SHUTDOWN_DRAIN_TIMEOUT).await;
    let closed = tokio::task::spawn_blocking(move || broker.topics.close_all()).await;
    match closed {
        Ok(Ok(())) => {
            info!("all partitions flushed and closed cleanly");
            Ok(())
        }
        Ok(Err(e)) => {
            error!(error = %e, "closing partitions");
            Err(e)
        }
        Err(e) => Err(BrokerError::Config(format!("close task failed: {e}"))),
    }
}

async fn housekeeping(broker: Arc<Broker>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(broker.config.retention_check_interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut scrub = crate::partition::AUDIT_SCRUB_BYTES_PER_PASS;
            for p in b.topics.partitions() {
                p.housekeeping();
                scrub = scrub.saturating_sub(p.scrub_audit(scrub));
            }
        })
        .await;
    }
}

/// The log cleaner: every `log.cleaner.backoff.ms`, one compaction pass over each
/// partition of a topic with `cleanup.policy` containing `compact`, one partition at a
/// time on a blocking thread, sharing one I/O throttle
/// (`log.cleaner.io.max.bytes.per.second`) so it cannot starve produce and fetch.
async fn run_cleaner(broker: Arc<Broker>, mut shutdown: Shutdown) {
    let settings = broker.config.cleaner.clone();
    if !settings.enabled {
        return;
    }
    let cleaner = Arc::new(log_store::Cleaner::new(log_store::CleanerConfig {
        dedupe_buffer_bytes: settings.dedupe_buffer_bytes,
        io_max_bytes_per_second: settings.io_max_bytes_per_second,
    }));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(settings.backoff) => {}
            _ = shutdown.wait() => return,
        }
        let held = held_by_all_replicas(&broker).await;
        let compacted = broker
            .topics
            .all()
            .into_iter()
            .filter(|t| t.config.cleanup_policy.contains("compact"))
            .flat_map(|t| t.partitions.clone());
        for p in compacted {
            if shutdown.is_triggered() {
                return;
            }
            let (c, partition) = (cleaner.clone(), p.clone());
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let held_by_all = held.get(&p.group()).copied();
            let result =
                tokio::task::spawn_blocking(move || partition.clean(&c, now_ms, held_by_all)).await;
            match result {
                Ok(Ok(Some(outcome))) => {
                    broker.metrics.record_cleaning(&outcome);
                    info!(
                        topic = p.topic(),
                        partition = p.index(),
                        ?outcome,
                        "log cleaned"
                    );
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    broker.metrics.cleaner_failures.inc();
                    warn!(
                        topic = p.topic(),
                        partition = p.index(),
                        error = e,
                        "log cleaning failed"
                    );
                }
                Err(e) => warn!(error = %e, "log cleaning task failed"),
            }
        }
    }
}

/// For each group this node leads: the Raft index every replica holds (the lowest
/// matched index of the others; the leader's last index when it has no others).
async fn held_by_all_replicas(broker: &Broker) -> std::collections::HashMap<u64, u64> {
    let c = &broker.cluster;
    c.node
        .status()
        .await
        .into_iter()
        .filter(|s| s.leader == c.node_id)
        .map(|s| {
            let held = s.matched.iter().map(|&(_, m)| m).min();
            (s.group, held.unwrap_or(s.last_index))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port("a.b:9092").unwrap(), ("a.b".into(), 9092));
        assert_eq!(split_host_port("[::1]:1").unwrap(), ("::1".into(), 1));
        for bad in ["nohost", ":9092", "h:99999", "h:x"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }
}
