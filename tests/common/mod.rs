//! Helpers shared by the integration tests (`mod common;` in a test file).
#![allow(dead_code)] // each test file uses a subset

use mp::{Context, Process};
use std::time::{Duration, Instant};

/// How long a test waits for a child before it fails (instead of hanging).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A context per start method, the default first.
pub fn contexts() -> Vec<Context> {
    mp::get_all_start_methods()
        .into_iter()
        .map(|m| mp::get_context(Some(m)).unwrap())
        .collect()
}

/// Runs `f` under every start method (the start-method test matrix).
pub fn for_each_method(f: impl Fn(Context)) {
    for ctx in contexts() {
        eprintln!("start method {}", ctx.get_start_method());
        f(ctx);
    }
}

/// Joins `p` within [`JOIN_TIMEOUT`] and checks it exited with 0.
pub fn join_ok(p: &Process) {
    p.join_timeout(JOIN_TIMEOUT).unwrap();
    assert_eq!(p.exitcode(), Some(0), "{p:?}");
}

/// `f()` and how long it took.
pub fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// CPython's TIMEOUT1/2/3, scaled down; only lower bounds and generous upper bounds are
/// checked.
pub const TIMEOUT1: Duration = Duration::from_millis(100);
pub const TIMEOUT2: Duration = Duration::from_millis(120);
pub const TIMEOUT3: Duration = Duration::from_millis(150);

/// CPython's assertTimingAlmostEqual, with slack for a loaded 2-core machine.
pub fn almost(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed + Duration::from_millis(5) >= expected,
        "{elapsed:?} < {expected:?}"
    );
    assert!(
        elapsed <= expected + Duration::from_millis(1500),
        "{elapsed:?} >> {expected:?}"
    );
}

/// Runs `f` on a helper thread and fails the test if it has not returned within `bound`
/// (so an operation that hangs makes the test fail, not the test run hang).
pub fn within<R: Send + 'static>(
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

/// Polls `f` until it returns `v` (CPython's assertReachesEventually), for at most 30 s.
pub fn reaches(f: impl Fn() -> u32, v: u32) {
    let t = Instant::now();
    while f() != v {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "stuck at {} != {v}",
            f()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
