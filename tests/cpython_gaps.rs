//! Behaviours CPython's `Lib/test/_test_multiprocessing.py` checks that the other
//! `cpython_*.rs` ports did not: mostly the "manager" and "threads" variants of the
//! synchronization tests (CPython runs `_TestLock` … `_TestBarrier` against a
//! `SyncManager`'s proxies and against `multiprocessing.dummy` too), and edge cases of
//! the pool, shared ctypes and shared memory APIs. Run under every start method where
//! processes are involved; every wait is bounded.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::managers::{BarrierProxy, ListProxy, SyncManager};
use mp::*;
use std::time::{Duration, Instant};

/// Bound on every wait that should succeed.
const LONG: Duration = Duration::from_secs(30);
/// CPython's `_TestBarrier.N`.
const N: usize = 5;

fn manager(ctx: Context) -> SyncManager {
    ctx.manager().unwrap()
}

/// CPython's `run_threads`: N-1 processes plus the caller run the same body.
fn run_parties(mk: impl Fn() -> Process, f: impl FnOnce()) {
    let ps: Vec<Process> = (0..N - 1).map(|_| mk()).collect();
    for p in &ps {
        p.start().unwrap();
    }
    f();
    for p in &ps {
        join_ok(p);
    }
}

// ------------------------------------------------- _TestBarrier, manager variant

#[mp::task]
fn mgr_reset_f(
    barrier: BarrierProxy,
    r1: ListProxy<bool>,
    r2: ListProxy<bool>,
    r3: ListProxy<bool>,
) {
    let i = barrier.wait().unwrap();
    if i == N / 2 {
        let t = Instant::now();
        while barrier.n_waiting().unwrap() < N - 1 {
            assert!(t.elapsed() < LONG, "the others never arrived");
            std::thread::sleep(Duration::from_millis(1));
        }
        barrier.reset().unwrap();
    } else {
        match barrier.wait() {
            Ok(_) => r1.append(true).unwrap(),
            Err(Error::BrokenBarrier) => r2.append(true).unwrap(),
            Err(e) => panic!("{e}"),
        }
    }
    // the barrier is usable again after the reset
    barrier.wait().unwrap();
    r3.append(true).unwrap();
}

/// `_TestBarrier.test_reset` on a manager's barrier: the parties waiting when the barrier
/// is reset get `BrokenBarrier` (they were released as if the round had completed).
#[test]
fn manager_barrier_reset_breaks_the_waiters() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let barrier = m.barrier_timeout(N, LONG).unwrap();
        let (r1, r2, r3) = (
            m.list(Vec::<bool>::new()).unwrap(),
            m.list(Vec::<bool>::new()).unwrap(),
            m.list(Vec::<bool>::new()).unwrap(),
        );
        let args = || (barrier.clone(), r1.clone(), r2.clone(), r3.clone());
        run_parties(
            || ctx.process(mgr_reset_f, args()),
            || {
                let (a, b, c, d) = args();
                mgr_reset_f(a, b, c, d)
            },
        );
        assert_eq!(r1.len().unwrap(), 0);
        assert_eq!(r2.len().unwrap(), N - 1);
        assert_eq!(r3.len().unwrap(), N);
    });
}

#[mp::task]
fn mgr_abort_f(barrier: BarrierProxy, r1: ListProxy<bool>, r2: ListProxy<bool>) {
    let run = || -> Result<()> {
        let i = barrier.wait()?;
        if i == N / 2 {
            // CPython raises RuntimeError here and the handler aborts
            barrier.abort()?;
            return Ok(());
        }
        barrier.wait()?;
        r1.append(true)
    };
    match run() {
        Ok(()) => {}
        Err(Error::BrokenBarrier) => r2.append(true).unwrap(),
        Err(e) => panic!("{e}"),
    }
}

#[mp::task]
fn mgr_abort_and_reset_f(
    barrier: BarrierProxy,
    barrier2: BarrierProxy,
    r1: ListProxy<bool>,
    r2: ListProxy<bool>,
    r3: ListProxy<bool>,
) {
    mgr_abort_f(barrier.clone(), r1, r2);
    if barrier2.wait().unwrap() == N / 2 {
        barrier.reset().unwrap();
    }
    barrier2.wait().unwrap();
    barrier.wait().unwrap();
    r3.append(true).unwrap();
}

/// `_TestBarrier.test_abort` and `test_abort_and_reset` on a manager's barrier.
#[test]
fn manager_barrier_abort_and_reset() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let barrier = m.barrier_timeout(N, LONG).unwrap();
        let barrier2 = m.barrier_timeout(N, LONG).unwrap();
        let list = || m.list(Vec::<bool>::new()).unwrap();
        let (r1, r2, r3) = (list(), list(), list());
        let args = || {
            (
                barrier.clone(),
                barrier2.clone(),
                r1.clone(),
                r2.clone(),
                r3.clone(),
            )
        };
        run_parties(
            || ctx.process(mgr_abort_and_reset_f, args()),
            || {
                let (a, b, c, d, e) = args();
                mgr_abort_and_reset_f(a, b, c, d, e)
            },
        );
        assert_eq!(r1.len().unwrap(), 0);
        assert_eq!(r2.len().unwrap(), N - 1);
        assert_eq!(r3.len().unwrap(), N);
        // test_abort alone: the barrier stays broken
        let b = m.barrier_timeout(1, LONG).unwrap();
        b.abort().unwrap();
        assert!(b.broken().unwrap());
        assert_eq!(b.n_waiting().unwrap(), 0);
        assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
    });
}

/// A broken barrier reports no waiters (threading's `n_waiting` is 0 unless filling),
/// and `test_single_thread` / `test_wait_return` on a manager's barrier.
#[test]
fn manager_barrier_single_party_and_n_waiting() {
    let m = Manager::new().unwrap();
    let b = m.barrier(1).unwrap();
    assert_eq!(b.wait().unwrap(), 0);
    assert_eq!(b.wait().unwrap(), 0);
    assert_eq!(b.parties().unwrap(), 1);
    let b = m.barrier(2).unwrap();
    let b2 = b.clone();
    let t = std::thread::spawn(move || b2.wait_timeout(LONG));
    let start = Instant::now();
    while b.n_waiting().unwrap() != 1 {
        assert!(start.elapsed() < LONG);
        std::thread::sleep(Duration::from_millis(2));
    }
    b.abort().unwrap();
    assert!(matches!(t.join().unwrap(), Err(Error::BrokenBarrier)));
    assert_eq!(b.n_waiting().unwrap(), 0);
    b.reset().unwrap();
    assert!(!b.broken().unwrap());
    let b2 = b.clone();
    let t = std::thread::spawn(move || b2.wait_timeout(LONG));
    let mine = b.wait_timeout(LONG).unwrap();
    let theirs = t.join().unwrap().unwrap();
    let mut both = [mine, theirs];
    both.sort();
    assert_eq!(both, [0, 1]);
}
