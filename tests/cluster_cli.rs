//! Three `strata serve` processes forming a cluster on loopback ports, driven through
//! the `strata` CLI: a replicated topic takes acks=all writes, its leader is killed
//! with SIGKILL, writes go on through the new leader, the killed broker comes back and
//! catches up, nothing acknowledged is lost, and every replica ends byte-identical; a
//! consumer group's committed offsets survive the loss of its coordinator's broker.
//! Plus the cluster flags' refusals, a one-broker cluster's stop, and `/health` before
//! a node is registered.

mod common;

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::{free_port, http_get, run_against, wait_with_deadline, DEADLINE};
use common::{path_str, segment_logs, strata, Run};

struct Node {
    id: u16,
    kafka: String,
    admin: String,
    raft: String,
    data: PathBuf,
    child: Option<Child>,
}

struct Cluster {
    nodes: Vec<Node>,
    peers: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes started at once.
    fn start(n: u16) -> Cluster {
        let mut cluster = Cluster::new(n);
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i);
        }
        cluster
    }

    /// `n` nodes' addresses, directories and configuration; none started.
    fn new(n: u16) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes: Vec<Node> = (1..=n)
            .map(|id| Node {
                id,
                kafka: format!("127.0.0.1:{}", free_port()),
                admin: format!("127.0.0.1:{}", free_port()),
                raft: format!("127.0.0.1:{}", free_port()),
                data: dir.path().join(format!("node-{id}")),
                child: None,
            })
            .collect();
        let peers = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.raft))
            .collect::<Vec<_>>()
            .join(",");
        // Tiny controller checkpoints and segments, so every test here also runs the
        // checkpoint path (docs/cluster.md, "The controller").
        std::fs::write(
            dir.path().join("cluster.toml"),
            "\"metadata.snapshot.records\" = 20\n\"metadata.log.segment.bytes\" = 4096\n",
        )
        .expect("write cluster.toml");
        Cluster { nodes, peers, dir }
    }

    fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node-{}.log", i + 1)))
            .expect("log file");
        let n = &mut self.nodes[i];
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["serve", "--node-id", &n.id.to_string()])
            .args(["--kafka-addr", &n.kafka, "--admin-addr", &n.admin])
            .args(["--raft-addr", &n.raft, "--peers", &self.peers])
            .args(["--data-dir", path_str(&n.data)])
            .args(["--config", path_str(&self.dir.path().join("cluster.toml"))])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start strata serve");
        n.child = Some(child);
    }

    fn kill(&mut self, id: u16) {
        let n = &mut self.nodes[usize::from(id) - 1];
        if let Some(mut c) = n.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reap");
        }
    }

    /// SIGTERM to every node; each must exit 0.
    fn stop_all(&mut self) {
        for n in &mut self.nodes {
            if let Some(c) = &n.child {
                let _ = Command::new("kill")
                    .args(["-TERM", &c.id().to_string()])
                    .status();
            }
        }
        for n in &mut self.nodes {
            if let Some(c) = n.child.take() {
                let out = wait_with_deadline(c, &["serve"]);
                assert!(
                    out.status.success(),
                    "node {} stopped with {}",
                    n.id,
                    out.status
                );
            }
        }
    }

    fn brokers(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.kafka.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `strata ARGS` against the live brokers, with `stdin`.
    fn run(&self, args: &[&str], stdin: &str) -> Run {
        run_against(&self.brokers(), args, stdin)
    }

    fn logs(&self) -> String {
        (1..=self.nodes.len())
            .map(|i| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("node-{i}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                format!(
                    "--- node {i} ---\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Polls `ok` until it holds, failing with the nodes' logs past [`DEADLINE`].
    fn wait_for(&self, what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "{what}: timed out\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Cluster {
    /// Three brokers, all registered, and `topic` created with `partitions`, RF 3.
    fn ready_with_topic(topic: &str, partitions: &str) -> Cluster {
        let c = Cluster::start(3);
        let admin = c.nodes[0].admin.clone();
        c.wait_for("three brokers registered", || {
            let run = strata(&["cluster", "status", "--admin", &admin]);
            run.code == Some(0) && run.stdout.matches(" up ").count() == 3
        });
        let created = c.run(
            &[
                "topic",
                "create",
                topic,
                "--partitions",
                partitions,
                "--replication-factor",
                "3",
            ],
            "",
        );
        assert_eq!(created.code, Some(0), "{}", created.stderr);
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The leader of `topic`'s partition `p` per `strata topic describe`.
/// Sends one CreateTopics (v5) for a topic with the default replication factor, one
/// with 2 and one with 2 validated only; the replication factor each result reports.
fn created_replication_factors(brokers: &str) -> Vec<(String, i16)> {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let topic = |name: &str, factor: i16| {
        CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_num_partitions(1)
            .with_replication_factor(factor)
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let cluster = client::Cluster::connect(client::ClientConfig::new(brokers))
            .await
            .expect("connected");
        let send = |topics: Vec<CreatableTopic>, validate_only: bool| {
            let request = CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_validate_only(validate_only)
                .with_topics(topics);
            let cluster = cluster.clone();
            async move { cluster.send_controller(&request).await.expect("answered") }
        };
        let created = send(vec![topic("rf-default", -1), topic("rf-two", 2)], false).await;
        let validated = send(vec![topic("rf-two-validated", 2)], true).await;
        created
            .topics
            .iter()
            .chain(&validated.topics)
            .map(|t| {
                assert_eq!(t.error_code, 0, "{t:?}");
                (t.name.0.to_string(), t.replication_factor)
            })
            .collect()
    })
}

fn leader_of(c: &Cluster, topic: &str, p: u32) -> Option<u16> {
    let run = c.run(&["topic", "describe", topic], "");
    let want = format!("Partition: {p}\t");
    run.stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&want))
        .and_then(|l| l.split("Leader: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse().ok())
}

/// Each partition's (high watermark, last index) per node, from `strata cluster status
/// --json` (every node's own `/cluster`).
fn replica_positions(admin: &str) -> Option<Vec<(String, u64, u64)>> {
    let run = strata(&["cluster", "status", "--json", "--admin", admin]);
    if run.code != Some(0) {
        return None;
    }
    let all: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
    let mut out = Vec::new();
    for (node, view) in all.as_object()? {
        let parts = view.get("partitions")?.as_array()?;
        for p in parts {
            out.push((
                format!("{node}/{}-{}", p["topic"].as_str()?, p["partition"]),
                p["high_watermark"].as_u64()?,
                p["last_index"].as_u64()?,
            ));
        }
    }
    Some(out)
}

fn segment_bytes(dir: &Path) -> Vec<u8> {
    segment_logs(dir)
        .iter()
        .flat_map(|p| std::fs::read(p).expect("read segment"))
        .collect()
}

#[test]
fn a_replicated_topic_survives_its_leader_being_killed() {
    let mut c = Cluster::ready_with_topic("ev", "3");
    let admin = c.nodes[0].admin.clone();
    assert_eq!(
        created_replication_factors(&c.brokers()),
        [("rf-default", 3), ("rf-two", 2), ("rf-two-validated", 2)]
            .map(|(t, f)| (t.to_string(), f)),
        "CreateTopics reports the factor each topic got (or would get)"
    );
    c.wait_for("every partition has a leader", || {
        (0..3).all(|p| leader_of(&c, "ev", p).is_some())
    });

    let first: String = (1..=300).map(|i| format!("{i}\n")).collect();
    let run = c.run(&["produce", "ev", "--acks", "all"], &first);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("300 records acknowledged"),
        "{}",
        run.stderr
    );

    // SIGKILL the leader of partition 0; the others elect and keep taking writes.
    let victim = leader_of(&c, "ev", 0).expect("a leader");
    c.kill(victim);
    c.wait_for("a new leader for partition 0", || {
        leader_of(&c, "ev", 0).is_some_and(|l| l != victim)
    });
    // Metadata names the dead broker's replicas offline (Kafka's offline_replicas).
    let offline = format!("Offline: {victim}\t");
    c.wait_for("the killed broker's replicas are offline", || {
        let run = c.run(&["topic", "describe", "ev"], "");
        run.stdout.lines().filter(|l| l.contains(&offline)).count() == 3
    });
    let second: String = (301..=600).map(|i| format!("{i}\n")).collect();
    let run = c.run(&["produce", "ev", "--acks", "all"], &second);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stderr, c.logs());
    assert!(
        run.stderr.contains("300 records acknowledged"),
        "{}",
        run.stderr
    );

    // The killed broker returns and catches up: every replica at the same place.
    c.spawn(usize::from(victim) - 1);
    c.wait_for("no replica is offline once it is back", || {
        let run = c.run(&["topic", "describe", "ev"], "");
        run.code == Some(0) && !run.stdout.contains("Offline:")
    });
    c.wait_for("all replicas converge", || {
        let Some(pos) = replica_positions(&admin) else {
            return false;
        };
        let mut by_partition = std::collections::BTreeMap::<String, BTreeSet<(u64, u64)>>::new();
        for (key, hw, last) in &pos {
            let partition = key.split('/').nth(1).unwrap_or_default().to_string();
            by_partition
                .entry(partition)
                .or_default()
                .insert((*hw, *last));
        }
        let ev: Vec<_> = by_partition
            .iter()
            .filter(|(k, _)| k.starts_with("ev-"))
            .collect();
        let replicas = pos.iter().filter(|(k, _, _)| k.contains("/ev-")).count();
        replicas == 9 && ev.iter().all(|(_, s)| s.len() == 1)
    });

    // Nothing acknowledged is missing or doubled.
    let run = c.run(
        &[
            "consume", "ev", "--from", "earliest", "--count", "600", "--format", "{value}",
        ],
        "",
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let mut values: Vec<u32> = run
        .stdout
        .lines()
        .map(|l| l.parse().expect("a number"))
        .collect();
    values.sort_unstable();
    assert_eq!(values, (1..=600).collect::<Vec<_>>());

    // Clean stop, then every replica of a partition holds the same bytes and verifies.
    c.stop_all();
    let mut total_bytes = 0;
    for p in 0..3 {
        let dirs: Vec<PathBuf> = c
            .nodes
            .iter()
            .map(|n| n.data.join(format!("ev-{p}")))
            .collect();
        let first = segment_bytes(&dirs[0]);
        total_bytes += first.len();
        for d in &dirs[1..] {
            assert!(segment_bytes(d) == first, "ev-{p}: replicas differ");
        }
        for d in &dirs {
            let run = strata(&["log", "verify", path_str(d)]);
            assert_eq!(run.code, Some(0), "{}: {}", d.display(), run.stdout);
        }
    }
    // The producer may leave a partition empty (keyless records), never all of them.
    assert!(total_bytes > 0);
}

/// Java's `String.hashCode`, as Kafka places a group on `__consumer_offsets`.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The leader of a partition per the `placement` of a node's `/cluster` (the
/// controller's latest leader record).
fn placed_leader(admin: &str, topic: &str, partition: u64) -> Option<u16> {
    let run = strata(&["cluster", "status", "--json", "--admin", admin]);
    let all: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
    all.as_object()?.values().find_map(|view| {
        view.get("partitions")?.as_array()?.iter().find_map(|p| {
            let mine = p["topic"] == topic
                && p["partition"].as_u64() == Some(partition)
                && p["leader"] == view["node_id"];
            mine.then(|| p["leader"].as_u64().map(|l| l as u16))
                .flatten()
        })
    })
}

#[test]
fn committed_offsets_survive_the_coordinators_broker() {
    let mut c = Cluster::ready_with_topic("orders", "2");
    let admin = c.nodes[0].admin.clone();
    let lines: String = (1..=400).map(|i| format!("{i}\n")).collect();
    let run = c.run(&["produce", "orders", "--acks", "all"], &lines);
    assert_eq!(run.code, Some(0), "{}", run.stderr);

    // A member reads 150 records and commits exactly those as it leaves.
    let args = [
        "consume", "orders", "--group", "billing", "--from", "earliest", "--count", "150",
        "--format", "{value}",
    ];
    let first = c.run(&args, "");
    assert_eq!(first.code, Some(0), "{}\n{}", first.stderr, c.logs());
    // SIGKILL the broker coordinating the group: the leader of its partition.
    let partition = u64::from(java_hash("billing").unsigned_abs() % 16);
    let mut coordinator = None;
    c.wait_for("the group's coordinator is known", || {
        coordinator = placed_leader(&admin, "__consumer_offsets", partition);
        coordinator.is_some()
    });
    let victim = coordinator.expect("a coordinator");
    c.kill(victim);
    let survivor = c
        .nodes
        .iter()
        .find(|n| n.child.is_some())
        .expect("a live node");
    let survivor_admin = survivor.admin.clone();
    c.wait_for("a new leader for the group's partition", || {
        placed_leader(&survivor_admin, "__consumer_offsets", partition).is_some_and(|l| l != victim)
    });
    // The next member resumes after what was committed: together the two runs read
    // every record exactly once.
    let second = c.run(&[&args[..7], &["250"], &args[8..]].concat(), "");
    assert_eq!(second.code, Some(0), "{}\n{}", second.stderr, c.logs());
    let mut values: Vec<u32> = first
        .stdout
        .lines()
        .chain(second.stdout.lines())
        .map(|l| l.parse().expect("a number"))
        .collect();
    values.sort_unstable();
    assert_eq!(values, (1..=400).collect::<Vec<_>>());
}

/// The base offsets of the controller log's segments on `node`.
fn controller_segments(node: &Node) -> Vec<u64> {
    segment_logs(&node.data.join("cluster-controller"))
        .iter()
        .filter_map(|p| p.file_stem()?.to_str()?.parse().ok())
        .collect()
}

/// The topics `node`'s own `/cluster` places.
fn placed_topics(node: &Node) -> Option<BTreeSet<String>> {
    let run = strata(&["cluster", "status", "--json", "--admin", &node.admin]);
    let all: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
    let view = all.as_object()?.get(&node.id.to_string())?;
    Some(
        view.get("placement")?
            .as_array()?
            .iter()
            .filter_map(|p| Some(p["topic"].as_str()?.to_string()))
            .collect(),
    )
}

#[test]
fn a_broker_behind_the_controllers_checkpoints_catches_up_from_one() {
    let mut c = Cluster::ready_with_topic("keep", "1");
    let run = c.run(&["topic", "create", "gone", "--partitions", "2"], "");
    assert_eq!(run.code, Some(0), "{}\n{}", run.stderr, c.logs());
    let gone_dirs = |n: &Node| {
        (0..2)
            .filter(|p| n.data.join(format!("gone-{p}")).exists())
            .count()
    };
    c.wait_for("node 3 holds replicas of gone", || {
        gone_dirs(&c.nodes[2]) == 2
    });

    // Node 3 misses a deletion and enough records for several checkpoints (every 20
    // records, 4 KiB segments): the others drop the log it would need.
    c.kill(3);
    let run = c.run(&["topic", "delete", "gone"], "");
    assert_eq!(run.code, Some(0), "{}\n{}", run.stderr, c.logs());
    let dump = strata(&[
        "log",
        "dump",
        path_str(&c.nodes[2].data.join("cluster-controller")),
    ]);
    let behind: u64 = dump
        .stdout
        .rsplit("..=")
        .next()
        .and_then(|tail| tail.split(';').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("node 3's controller log end in {}", dump.stdout));
    let trimmed_past_node3 = || {
        c.nodes[..2].iter().all(|n| {
            controller_segments(n)
                .first()
                .is_some_and(|&b| b > behind + 1)
        })
    };
    let mut want: BTreeSet<String> = ["keep", "__consumer_offsets"].map(String::from).into();
    let mut last = String::new();
    for i in 0..60 {
        last = format!("t{i}");
        let run = c.run(&["topic", "create", &last, "--partitions", "2"], "");
        assert_eq!(run.code, Some(0), "{}\n{}", run.stderr, c.logs());
        want.insert(last.clone());
        if i >= 3 && trimmed_past_node3() {
            break;
        }
    }
    c.wait_for(
        "the live nodes dropped every entry node 3 lacks",
        trimmed_past_node3,
    );
    // Restart them: their transports still queue appends for node 3 sent before the
    // trim, which would let it catch up without the checkpoint this test is about.
    c.stop_all();
    c.spawn(0);
    c.spawn(1);

    // Back, it rebuilds the metadata from a checkpoint, removes what was deleted
    // meanwhile, and serves the topics created meanwhile.
    c.spawn(2);
    c.wait_for("node 3 places exactly the live topics", || {
        placed_topics(&c.nodes[2]).is_some_and(|t| t == want)
    });
    c.wait_for("node 3 removed gone's replicas", || {
        gone_dirs(&c.nodes[2]) == 0
    });
    let log3 = std::fs::read_to_string(c.dir.path().join("node-3.log")).unwrap_or_default();
    assert!(
        log3.contains("controller log restarted at a checkpoint"),
        "node 3 caught up without a snapshot\n{}",
        c.logs()
    );
    for node in &c.nodes {
        assert_eq!(
            placed_topics(node).as_ref(),
            Some(&want),
            "node {}",
            node.id
        );
    }
    let line = "after the checkpoint\n";
    let node3 = c.nodes[2].kafka.clone();
    let run = run_against(&node3, &["produce", &last, "--acks", "all"], line);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stderr, c.logs());
    // A restart replays from the checkpoint at its log start.
    c.stop_all();
    for i in 0..3 {
        c.spawn(i);
    }
    c.wait_for("every node places the same topics after a restart", || {
        c.nodes
            .iter()
            .all(|n| placed_topics(n).is_some_and(|t| t == want))
    });
    c.wait_for("every partition has a leader", || {
        (0..2).all(|p| leader_of(&c, &last, p).is_some())
    });
    let run = c.run(
        &[
            "consume", &last, "--from", "earliest", "--count", "1", "--format", "{value}",
        ],
        "",
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stderr, c.logs());
    assert_eq!(run.stdout.trim(), "after the checkpoint");
}

#[test]
fn half_a_cluster_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = path_str(dir.path());
    let raft = format!("127.0.0.1:{}", free_port());
    for (args, says) in [
        (
            vec!["--node-id", "1", "--peers", "1=127.0.0.1:1,2=127.0.0.1:2"],
            "raft-addr",
        ),
        (vec!["--node-id", "0"], "a node id (1 or more)"),
        (
            vec![
                "--node-id",
                "2",
                "--raft-addr",
                raft.as_str(),
                "--peers",
                "1=127.0.0.1:1",
            ],
            "does not list this node",
        ),
        (vec!["--peers", "1=nohost"], "HOST:PORT"),
    ] {
        let mut all = vec!["serve", "--data-dir", data, "--kafka-addr", "127.0.0.1:0"];
        all.extend(["--admin-addr", "127.0.0.1:0"]);
        all.extend(args.iter().copied());
        let run = strata(&all);
        assert_eq!(run.code, Some(2), "{all:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{all:?}: {}", run.stderr);
    }
}

#[test]
fn a_one_voter_cluster_stops_without_waiting_for_a_handover_and_seals_its_logs() {
    // Every group of a one-broker cluster has a single voter: a graceful stop has no
    // one to hand leadership to, so it must not wait out the handover timeout and then
    // warn that it stopped while leading.
    let mut c = Cluster::start(1);
    let admin = c.nodes[0].admin.clone();
    c.wait_for("the broker registered", || {
        let run = strata(&["cluster", "status", "--admin", &admin]);
        run.code == Some(0) && run.stdout.contains(" up ")
    });
    let created = c.run(&["topic", "create", "solo", "--partitions", "2"], "");
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    c.wait_for("both partitions led", || {
        (0..2).all(|p| leader_of(&c, "solo", p) == Some(1))
    });
    c.stop_all();
    let log = std::fs::read_to_string(c.dir.path().join("node-1.log")).expect("node log");
    assert!(
        log.contains("all partitions flushed and closed cleanly"),
        "{log}"
    );
    assert!(!log.contains("while still leading"), "{log}");
    // Every log was sealed once the Raft node had stopped: the next start skips the
    // recovery scan of its active segments.
    for dir in ["solo-0", "solo-1", "cluster-controller"] {
        let marker = c.nodes[0].data.join(dir).join(".clean_shutdown");
        assert!(marker.exists(), "{} missing", marker.display());
    }
    c.spawn(0);
    c.wait_for("both partitions led again", || {
        (0..2).all(|p| leader_of(&c, "solo", p) == Some(1))
    });
}

#[test]
fn a_node_is_starting_until_the_controller_has_its_registration() {
    // `/health` 200 must mean the node can be used: registered with the controller, so
    // a topic whose replication factor counts it is created at once. Alone, node 1 of
    // two has no controller quorum and cannot register.
    let mut c = Cluster::new(2);
    c.spawn(0);
    let admin = c.nodes[0].admin.clone();
    c.wait_for("node 1's admin port", || TcpStream::connect(&admin).is_ok());
    let alone = http_get(&admin, "/health");
    assert!(alone.starts_with("HTTP/1.1 503"), "{alone}");
    assert!(
        alone.contains("starting\nnot yet registered with the controller"),
        "{alone}"
    );
    c.spawn(1);
    for n in &c.nodes {
        c.wait_for("both nodes healthy", || {
            TcpStream::connect(&n.admin).is_ok()
                && http_get(&n.admin, "/health").starts_with("HTTP/1.1 200")
        });
    }
    let created = c.run(
        &["topic", "create", "pair", "--replication-factor", "2"],
        "",
    );
    assert_eq!(created.code, Some(0), "{}", created.stderr);
}
