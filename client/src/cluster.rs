//! A client's view of a cluster: bootstrap addresses, the latest metadata, and one
//! shared connection per broker node id (so a multi-node cluster needs no change here).
//!
//! Requests on a shared connection are serialised; long-polling consumers open their
//! own connection with [`Cluster::connect_node`] so they never hold up others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex;
use tracing::debug;

use crate::connection::{Connection, ConnectionConfig, Request};
use crate::error::{Error, Result};
use crate::metadata::Metadata;

/// How to reach a cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of one or more brokers; the first that answers is used to discover
    /// the rest.
    pub bootstrap_servers: Vec<String>,
    /// Connection settings shared by every connection.
    pub connection: ConnectionConfig,
}

impl ClientConfig {
    /// A configuration for a comma-separated `host:port` list, defaults otherwise.
    pub fn new(bootstrap_servers: &str) -> ClientConfig {
        ClientConfig {
            bootstrap_servers: bootstrap_servers
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            connection: ConnectionConfig::default(),
        }
    }
}

/// A shared connection.
pub type Shared = Arc<Mutex<Connection>>;

/// Cluster metadata plus a connection pool keyed by node id. Cheap to share: wrap it in
/// an `Arc` and hand it to an [`crate::Admin`], a [`crate::Producer`] and consumers.
#[derive(Debug)]
pub struct Cluster {
    config: ClientConfig,
    metadata: SyncMutex<Arc<Metadata>>,
    nodes: Mutex<HashMap<i32, Shared>>,
    bootstrap: Mutex<Option<Shared>>,
}

impl Cluster {
    /// Connects to the first reachable bootstrap server and loads metadata for all
    /// topics. Fails if no bootstrap server answers.
    pub async fn connect(config: ClientConfig) -> Result<Arc<Cluster>> {
        if config.bootstrap_servers.is_empty() {
            return Err(Error::InvalidArgument("no bootstrap servers".into()));
        }
        let cluster = Arc::new(Cluster {
            config,
            metadata: SyncMutex::new(Arc::new(Metadata::default())),
            nodes: Mutex::new(HashMap::new()),
            bootstrap: Mutex::new(None),
        });
        cluster.refresh_metadata(None, false).await?;
        Ok(cluster)
    }

    /// The configuration this cluster view was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The latest metadata snapshot (possibly stale; refresh on leader errors).
    pub fn metadata(&self) -> Arc<Metadata> {
        match self.metadata.lock() {
            Ok(m) => Arc::clone(&m),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Asks the cluster for metadata of `topics` (all topics when `None`) and merges it
    /// into the snapshot. With `allow_auto_create`, brokers that auto-create topics
    /// create the named ones.
    pub async fn refresh_metadata(
        &self,
        topics: Option<&[String]>,
        allow_auto_create: bool,
    ) -> Result<Arc<Metadata>> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_create);
        let response = self.send_any(&request).await?;
        let newer = Metadata::from_response(&response);
        let mut guard = match self.metadata.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut merged = (**guard).clone();
        if topics.is_none() {
            merged = newer;
        } else {
            merged.merge(newer);
        }
        *guard = Arc::new(merged);
        Ok(Arc::clone(&guard))
    }

    /// Sends `request` to any broker: the bootstrap connection, reopened (trying each
    /// bootstrap server, then each known broker) if it broke.
    pub async fn send_any<R: Request>(&self, request: &R) -> Result<R::Response> {
        let conn = self.any_connection().await?;
        let mut guard = conn.lock().await;
        let result = guard.send(request).await;
        if guard.is_broken() {
            drop(guard);
            *self.bootstrap.lock().await = None;
        }
        result
    }

    /// As [`Cluster::send_any`], for requests whose fields depend on the version:
    /// `build` gets the version negotiated with the broker that will receive it.
    pub async fn send_any_with<R: Request>(
        &self,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response> {
        let conn = self.any_connection().await?;
        let mut guard = conn.lock().await;
        let result = send_built(&mut guard, build).await;
        if guard.is_broken() {
            drop(guard);
            *self.bootstrap.lock().await = None;
        }
        result
    }

    /// As [`Cluster::send_node`], for requests whose fields depend on the version:
    /// `build` gets the version negotiated with `node`.
    pub async fn send_node_with<R: Request>(
        &self,
        node: i32,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response> {
        let conn = self.node_connection(node).await?;
        let mut guard = conn.lock().await;
        let result = send_built(&mut guard, build).await;
        if guard.is_broken() {
            drop(guard);
            self.nodes.lock().await.remove(&node);
        }
        result
    }

    /// Sends `request` to the controller if metadata names one it can reach, else to
    /// any broker. Admin requests (create/delete topics, configs) go here. A controller
    /// that cannot be reached may just have died: any Strata broker hands admin
    /// requests to the current controller, and a Kafka broker answers NOT_CONTROLLER.
    pub async fn send_controller<R: Request>(&self, request: &R) -> Result<R::Response> {
        match self.reachable_controller().await {
            Some(node) => self.send_node(node, request).await,
            None => self.send_any(request).await,
        }
    }

    /// The shared connection [`Cluster::send_controller`] would use.
    pub async fn controller_connection(&self) -> Result<Shared> {
        match self.reachable_controller().await {
            Some(node) => self.node_connection(node).await,
            None => self.any_connection().await,
        }
    }

    /// The controller, if the metadata names one and a connection to it opens.
    async fn reachable_controller(&self) -> Option<i32> {
        let node = self.controller()?;
        match self.node_connection(node).await {
            Ok(_) => Some(node),
            Err(e) => {
                tracing::debug!(node, error = %e, "controller unreachable; asking any broker");
                None
            }
        }
    }

    /// The controller's node id, when the metadata names one it also lists.
    fn controller(&self) -> Option<i32> {
        let metadata = self.metadata();
        metadata
            .controller_id
            .filter(|node| metadata.brokers.contains_key(node))
    }

    /// Sends `request` on the shared connection to broker `node`, connecting first if
    /// needed; a connection that breaks is dropped from the pool.
    pub async fn send_node<R: Request>(&self, node: i32, request: &R) -> Result<R::Response> {
        let conn = self.node_connection(node).await?;
        let mut guard = conn.lock().await;
        let result = guard.send(request).await;
        if guard.is_broken() {
            drop(guard);
            self.nodes.lock().await.remove(&node);
        }
        result
    }

    /// The shared connection to `node`.
    pub async fn node_connection(&self, node: i32) -> Result<Shared> {
        let mut nodes = self.nodes.lock().await;
        if let Some(conn) = nodes.get(&node) {
            if !is_broken(conn) {
                return Ok(Arc::clone(conn));
            }
        }
        let conn = Arc::new(Mutex::new(self.connect_node(node).await?));
        nodes.insert(node, Arc::clone(&conn));
        Ok(conn)
    }

    /// A new connection of the caller's own to broker `node`, at the address the
    /// metadata advertises.
    pub async fn connect_node(&self, node: i32) -> Result<Connection> {
        let addr = self
            .metadata()
            .brokers
            .get(&node)
            .map(|b| b.addr())
            .ok_or_else(|| Error::Connect {
                addr: format!("node {node}"),
                reason: "the cluster metadata does not list this broker".into(),
            })?;
        Connection::connect(&addr, self.config.connection.clone()).await
    }

    /// The request timeout every connection uses.
    pub fn request_timeout(&self) -> Duration {
        self.config.connection.request_timeout
    }

    async fn any_connection(&self) -> Result<Shared> {
        let mut bootstrap = self.bootstrap.lock().await;
        if let Some(conn) = bootstrap.as_ref() {
            if !is_broken(conn) {
                return Ok(Arc::clone(conn));
            }
        }
        let known: Vec<String> = self.metadata().brokers.values().map(|b| b.addr()).collect();
        let mut last_error = None;
        for addr in self.config.bootstrap_servers.iter().chain(known.iter()) {
            match Connection::connect(addr, self.config.connection.clone()).await {
                Ok(conn) => {
                    let conn = Arc::new(Mutex::new(conn));
                    *bootstrap = Some(Arc::clone(&conn));
                    return Ok(conn);
                }
                Err(e) => {
                    debug!(addr = %addr, error = %e, "bootstrap server unreachable");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::InvalidArgument("no bootstrap servers".into())))
    }
}

/// Builds a request for the version `conn` negotiated for `R` and sends it.
async fn send_built<R: Request>(
    conn: &mut Connection,
    build: impl FnOnce(i16) -> R,
) -> Result<R::Response> {
    let timeout = conn.request_timeout();
    conn.send_built(build, timeout).await
}

/// Whether a pooled connection is known to be broken. One in use (locked) is assumed
/// healthy: its user finds out and drops it from the pool.
fn is_broken(conn: &Shared) -> bool {
    conn.try_lock().map(|c| c.is_broken()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_lists_split_on_commas() {
        let c = ClientConfig::new(" a:1, b:2 ,,");
        assert_eq!(c.bootstrap_servers, vec!["a:1", "b:2"]);
    }

    #[tokio::test]
    async fn unreachable_bootstrap_is_a_connect_error() {
        // A bound socket that never listens holds the port for the whole test, so the
        // connection is refused (a released port could be taken by another listener).
        let held = tokio::net::TcpSocket::new_v4().unwrap();
        held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = held.local_addr().unwrap().to_string();
        let err = Cluster::connect(ClientConfig::new(&addr))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err}");
        assert!(err.is_retriable());
    }
}
