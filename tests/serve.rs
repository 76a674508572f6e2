//! `strata serve` as a process: it reports where it listens, answers `/health`, refuses
//! a second broker on the same data directory and bad settings with exit status 2, and
//! stops on SIGTERM or SIGINT with exit status 0 after writing clean-shutdown markers.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::broker::http_get;
use common::{path_str, strata};

/// How long a broker may take to start or stop on a slow CI machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// A running `strata serve`, with the addresses its banner reported.
struct Broker {
    child: Child,
    kafka: String,
    admin: String,
    stderr: mpsc::Receiver<String>,
}

fn start(data_dir: &Path, extra: &[&str]) -> Broker {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--data-dir", path_str(data_dir)])
        .args(["--kafka-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args(extra)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strata serve");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    match banner(&rx) {
        Ok((kafka, admin)) => Broker {
            child,
            kafka,
            admin,
            stderr: rx,
        },
        Err(why) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strata serve did not start: {why}");
        }
    }
}

/// Reads stderr lines until the banner; the Kafka and admin addresses it names.
fn banner(rx: &mpsc::Receiver<String>) -> Result<(String, String), String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .map_err(|e| format!("no banner: {e}"))?;
        if line.contains("panicked") {
            return Err(line);
        }
        // "strata 0.1.0 serving Kafka on 127.0.0.1:PORT, admin on http://127.0.0.1:PORT, data in …"
        if let Some((_, rest)) = line.split_once("serving Kafka on ") {
            let kafka = rest.split(',').next().unwrap_or_default().to_string();
            let admin = rest
                .split("admin on http://")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .ok_or_else(|| format!("banner without an admin address: {line}"))?
                .to_string();
            return Ok((kafka, admin));
        }
    }
}

impl Broker {
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; its status code and the rest of its stderr.
    fn wait(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "strata serve did not exit in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let rest: Vec<String> = self.stderr.try_iter().collect();
        (status.code(), rest.join("\n"))
    }
}

#[test]
fn serve_answers_health_and_stops_cleanly_on_sigterm_and_sigint() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    for signal in ["TERM", "INT"] {
        let broker = start(&data, &[]);
        TcpStream::connect(&broker.kafka).expect("the Kafka port accepts connections");
        let health = http_get(&broker.admin, "/health");
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let metrics = http_get(&broker.admin, "/metrics");
        assert!(
            metrics.contains("strata_kafka_connections_open"),
            "{metrics}"
        );

        // A second broker on the same directory is refused while the first runs.
        let second = strata(&[
            "serve",
            "--data-dir",
            path_str(&data),
            "--kafka-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ]);
        assert_eq!(second.code, Some(2), "{}", second.stderr);
        assert!(second.stderr.contains("in use"), "{}", second.stderr);

        broker.signal(signal);
        let (code, stderr) = broker.wait();
        assert_eq!(code, Some(0), "SIG{signal}: {stderr}");
        assert!(stderr.contains("closed cleanly"), "SIG{signal}: {stderr}");
    }
    assert!(data.join("node.identity").exists());
}

#[test]
fn bad_settings_are_refused_with_status_2_and_a_message() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let config = tmp.path().join("strata.toml");
    std::fs::write(&config, "data-dirr = \"x\"\n").expect("write the config");
    let cases: [(&[&str], &str); 5] = [
        (
            &["--config", path_str(&config)],
            "unknown setting \"data-dirr\"",
        ),
        (&["--num-partitions", "0"], "num.partitions"),
        (&["--kafka-addr", "no-port"], "kafka-addr"),
        (&["--retention-ms", "-7"], "retention.ms"),
        (
            &["--config", "/nonexistent/strata.toml"],
            "/nonexistent/strata.toml",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec![
            "serve",
            "--data-dir",
            path_str(&data),
            "--admin-addr",
            "127.0.0.1:0",
        ];
        all.extend_from_slice(args);
        let run = strata(&all);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn a_config_file_supplies_the_data_dir_and_log_level() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("from-file");
    let config = tmp.path().join("strata.toml");
    std::fs::write(
        &config,
        format!(
            "data-dir = \"{}\"\nnum.partitions = 4\nlog-level = \"warn\"\n",
            path_str(&data)
        ),
    )
    .expect("write the config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--config", path_str(&config)])
        .args(["--kafka-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strata serve");
    // The data directory named in the file is created (and locked) once serving.
    let deadline = Instant::now() + DEADLINE;
    while !data.join("node.identity").exists() {
        assert!(
            Instant::now() < deadline,
            "the file's data-dir was not used"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    let status = child.wait().expect("wait for strata");
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    // log-level = "warn" from the file: no INFO lines.
    assert!(!stderr.contains(" INFO "), "{stderr}");
}
