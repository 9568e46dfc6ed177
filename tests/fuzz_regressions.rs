//! The fuzzers' findings, replayed in the normal suite (issue 13; the targets are in
//! `fuzz/`, run with `.ci/fuzz SECONDS`). Every input goes through the same entry point
//! its fuzz target calls (`mp::__fuzz::<target>`), which drives the real decoder:
//! a `Connection` over a socketpair, the handshake, a pool worker's loop, a manager
//! server and client, a queue ring's shared memory, a `ShareableList` segment.
//!
//! Per target: the well-formed seeds (`mp::__fuzz::seeds`), then every file of
//! `tests/fuzz/<target>/` (crashers and a few interesting corpus inputs, named after
//! what they found). Passing means: no panic, no hang (each input is bounded by a
//! watchdog thread), whatever the bytes.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// Runs `f(input)` on a thread and fails if it does not finish within 20 s.
fn bounded(target: &str, what: &str, f: fn(&[u8]), input: Vec<u8>) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        f(&input);
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => t.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let p = t.join().unwrap_err();
            panic!("{target}: {what} panicked: {p:?}")
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{target}: {what} hangs"),
    }
}

fn replay(target: &str) {
    let f = mp::__fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .map(|(_, f)| *f)
        .expect("a fuzz target of that name");
    let seeds = mp::__fuzz::seeds(target);
    assert!(!seeds.is_empty(), "{target} has seeds");
    for (i, s) in seeds.into_iter().enumerate() {
        bounded(target, &format!("seed {i}"), f, s);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(target);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for p in files {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            bounded(target, &name, f, std::fs::read(&p).unwrap());
        }
    }
}

#[test]
fn every_target_has_a_regression_test() {
    let src = include_str!("fuzz_regressions.rs");
    for (name, _) in mp::__fuzz::TARGETS {
        assert!(
            src.contains(&format!("replay(\"{name}\")")),
            "{name} is not replayed"
        );
        let target = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        assert!(target.exists(), "fuzz/fuzz_targets/{name}.rs is missing");
    }
}

#[test]
fn frame() {
    replay("frame");
}

#[test]
fn handshake_server() {
    replay("handshake_server");
}

#[test]
fn handshake_client() {
    replay("handshake_client");
}

#[test]
fn child_payload() {
    replay("child_payload");
}

#[test]
fn pool_worker() {
    replay("pool_worker");
}

#[test]
fn pool_result() {
    replay("pool_result");
}

#[test]
fn manager_server() {
    replay("manager_server");
}

#[test]
fn manager_client() {
    replay("manager_client");
}

#[test]
fn queue_ring() {
    replay("queue_ring");
}

#[test]
fn shareable_list() {
    replay("shareable_list");
}
