//! A real `strata serve` on free loopback ports for black-box tests of the client
//! commands, and the helpers those tests share (running `strata` against it with a
//! deadline, times as ISO-8601).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use client::ClientConfig;

use super::{path_str, Run};

/// How long a broker may take to start, or a command to finish, on a slow CI machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A `strata serve` on free loopback ports, killed when dropped.
pub struct Broker {
    child: Child,
    pub kafka: String,
    _data: tempfile::TempDir,
}

/// A loopback port nothing listens on now, below Linux's ephemeral range (32768-60999):
/// a port from that range may be taken by some process's outgoing connection between
/// here and the broker binding it (seen once: a cluster node failed to bind its Raft
/// address). Ports are handed out in turn from a per-process start, so concurrent tests
/// never get the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..SPAN {
        let port = LOW + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        // LOW + SPAN < 65536, so the port fits.
        let port = u16::try_from(port).expect("below 32000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Broker {
        let data = tempfile::tempdir().expect("temp dir");
        let kafka = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["serve", "--data-dir", path_str(data.path())])
            .args(["--kafka-addr", &kafka, "--admin-addr", &admin])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start strata serve");
        let mut broker = Broker {
            child,
            kafka,
            _data: data,
        };
        broker.wait_until_listening();
        broker
    }

    /// Polls the Kafka port until it accepts a connection.
    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if TcpStream::connect(&self.kafka).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("strata serve exited early: {status}");
            }
            assert!(Instant::now() < deadline, "broker did not listen in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `strata ARGS` against this broker with `stdin`.
    pub fn run(&self, args: &[&str], stdin: &str) -> Run {
        run_against(&self.kafka, args, stdin)
    }

    /// As [`Broker::run`], asserting exit status 0.
    pub fn ok(&self, args: &[&str], stdin: &str) -> String {
        let run = self.run(args, stdin);
        assert_eq!(run.code, Some(0), "{args:?} failed: {}", run.stderr);
        run.stdout
    }

    pub fn cluster_config(&self) -> ClientConfig {
        ClientConfig::new(&self.kafka)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `strata ARGS` with `STRATA_BROKERS=brokers` and `stdin`, within [`DEADLINE`];
/// a panic in its output fails the test.
pub fn run_against(brokers: &str, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env("STRATA_BROKERS", brokers)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run strata");
    let mut input = child.stdin.take().expect("stdin is piped");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let out = wait_with_deadline(child, args);
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    run
}

/// Waits for `child` to exit, killing it past [`DEADLINE`] so a hung command fails the
/// test instead of hanging it.
pub fn wait_with_deadline(child: Child, args: &[&str]) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("wait for strata"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("strata {args:?} did not finish within {DEADLINE:?}");
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (years 1970..=9999), Howard Hinnant's
/// `civil_from_days`.
pub fn iso8601(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

/// The whole HTTP/1.1 answer (status line, headers, body) to `GET path` on `addr`.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::Read;
    let mut s = TcpStream::connect(addr).expect("connect to the admin port");
    s.set_read_timeout(Some(DEADLINE)).expect("set a timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the answer");
    out
}

/// A two-thread runtime for tests that drive the client library.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Creates `name` with `partitions` partitions and one replica.
pub async fn create_topic(cluster: &std::sync::Arc<client::Cluster>, name: &str, partitions: i32) {
    client::Admin::new(cluster.clone())
        .create_topic(&client::admin::NewTopic {
            name: name.into(),
            partitions,
            replication_factor: 1,
            configs: vec![],
        })
        .await
        .expect("create topic");
}
