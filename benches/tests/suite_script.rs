//! Cheap checks of `benches/suite.sh` that CI can afford: the script parses (`bash -n`),
//! `--help` prints its usage without building or starting anything, and an unknown
//! argument is refused. The suite itself takes minutes and depends on the machine's load,
//! so CI never runs it; `benches/suite.sh --quick` is the manual smoke run.

use std::path::PathBuf;
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("suite.sh")
}

#[test]
fn suite_script_parses() {
    let status = Command::new("bash")
        .arg("-n")
        .arg(script())
        .status()
        .expect("bash is needed to check benches/suite.sh");
    assert!(status.success(), "bash -n benches/suite.sh: {status}");
}

#[test]
fn suite_help_and_bad_arguments_exit_before_any_work() {
    let help = Command::new("bash")
        .arg(script())
        .arg("--help")
        .output()
        .expect("bash is needed to run benches/suite.sh --help");
    assert!(help.status.success(), "--help: {}", help.status);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: benches/suite.sh [--quick]"), "{text}");

    let bad = Command::new("bash")
        .arg(script())
        .arg("--bogus")
        .output()
        .expect("bash is needed to run benches/suite.sh");
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown argument is a usage error"
    );
}
