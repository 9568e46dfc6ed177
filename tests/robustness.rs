//! Issue 9's regression tests for processes, queues and the sync primitives: each one
//! failed (or hung, bounded here so that it fails instead) before its fix. Every wait is
//! bounded; the scenarios run under every start method where the start method matters.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use std::time::Duration;

/// Bound on every wait that should succeed.
const LONG: Duration = Duration::from_secs(30);

/// Runs `f` on a helper thread and fails the test if it has not returned within `bound`
/// (so an operation that hangs makes the test fail, not the test run hang).
fn within<R: Send + 'static>(
    bound: Duration,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(bound) {
        Ok(r) => r,
        Err(_) => panic!("{what}: still blocked after {bound:?}"),
    }
}

#[mp::task]
fn quick() {}

// ------------------------------------------------- item 5: pidfd opened at start

#[test]
fn sentinel_and_signals_after_join() {
    for_each_method(|ctx| {
        let p = ctx.process(quick, ());
        p.start().unwrap();
        // a plain join (no timeout) reaps the child without ever needing its pidfd
        within(LONG, "join", {
            let p = p.clone();
            move || p.join().unwrap()
        });
        assert_eq!(p.exitcode(), Some(0));
        // the child is reaped: a pidfd opened only now would fail (ESRCH) or name
        // another process that reused the pid
        let fd = p.sentinel().expect("sentinel of a joined process");
        let ready = mp::connection::wait(&[&p], Some(Duration::from_secs(5))).unwrap();
        assert_eq!(
            ready,
            vec![0],
            "sentinel {fd} of an ended process is readable"
        );
        p.terminate().unwrap();
        p.kill().unwrap();
    });
}
