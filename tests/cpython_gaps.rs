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

// ------------------------- _TestLock, _TestSemaphore, _TestEvent: manager variant

/// `_TestLock.test_lock`, `test_rlock`, `test_lock_context` on a manager's proxies.
#[test]
fn manager_lock_and_rlock() {
    let m = Manager::new().unwrap();
    let lock = m.lock().unwrap();
    assert!(lock.acquire().unwrap());
    assert!(!lock.try_acquire().unwrap());
    lock.release().unwrap();
    assert!(lock.release().is_err());
    let rlock = m.rlock().unwrap();
    for _ in 0..3 {
        assert!(rlock.acquire().unwrap());
    }
    for _ in 0..3 {
        rlock.release().unwrap();
    }
    assert!(rlock.release().is_err());
    {
        let _g = lock.lock().unwrap();
        assert!(!lock.try_acquire().unwrap());
    }
    assert!(lock.try_acquire().unwrap());
    lock.release().unwrap();
    // an RLock held by one client thread is not the other's
    assert!(rlock.acquire().unwrap());
    let r2 = rlock.clone();
    let other = std::thread::spawn(move || (r2.try_acquire().unwrap(), r2.release().is_err()));
    assert_eq!(other.join().unwrap(), (false, true));
    rlock.release().unwrap();
}

/// `_TestSemaphore.test_semaphore` / `test_bounded_semaphore` on a manager's proxies
/// (CPython's `get_value` helper reads the value where the proxy can).
#[test]
fn manager_semaphores() {
    let m = Manager::new().unwrap();
    let check = |sem: &mp::managers::SemaphoreProxy| {
        assert_eq!(sem.get_value().unwrap(), 2);
        assert!(sem.acquire().unwrap());
        assert_eq!(sem.get_value().unwrap(), 1);
        assert!(sem.acquire().unwrap());
        assert_eq!(sem.get_value().unwrap(), 0);
        assert!(!sem.try_acquire().unwrap());
        assert_eq!(sem.get_value().unwrap(), 0);
        sem.release().unwrap();
        assert_eq!(sem.get_value().unwrap(), 1);
        sem.release().unwrap();
        assert_eq!(sem.get_value().unwrap(), 2);
    };
    let sem = m.semaphore(2).unwrap();
    check(&sem);
    sem.release().unwrap();
    assert_eq!(sem.get_value().unwrap(), 3);
    sem.release().unwrap();
    assert_eq!(sem.get_value().unwrap(), 4);
    let bsem = m.bounded_semaphore(2).unwrap();
    check(&bsem);
    assert!(matches!(bsem.release(), Err(Error::InvalidState(_))));
    assert_eq!(bsem.get_value().unwrap(), 2);
    // timeouts of a zero semaphore
    let sem = m.semaphore(0).unwrap();
    let (r, took) = timed(|| sem.acquire_timeout(TIMEOUT2).unwrap());
    assert!(!r);
    almost(took, TIMEOUT2);
    let (r, took) = timed(|| sem.acquire_timeout(Duration::ZERO).unwrap());
    assert!(!r);
    assert!(took < Duration::from_secs(1));
}

#[mp::task]
fn mgr_event_f(event: mp::managers::EventProxy) {
    std::thread::sleep(TIMEOUT2);
    event.set().unwrap();
}

/// `_TestEvent.test_event` on a manager's event: `wait` returns the flag.
#[test]
fn manager_event() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let event = m.event().unwrap();
        assert!(!event.is_set().unwrap());
        let (r, took) = timed(|| event.wait(Some(Duration::ZERO)).unwrap());
        assert!(!r);
        assert!(took < Duration::from_secs(1));
        let (r, took) = timed(|| event.wait(Some(TIMEOUT1)).unwrap());
        assert!(!r);
        almost(took, TIMEOUT1);
        event.set().unwrap();
        assert!(event.is_set().unwrap());
        assert!(event.wait(None).unwrap());
        assert!(event.wait(Some(TIMEOUT1)).unwrap());
        event.clear().unwrap();
        let p = ctx.process(mgr_event_f, (event.clone(),));
        p.start().unwrap();
        assert!(event.wait(Some(LONG)).unwrap());
        join_ok(&p);
    });
}

// ----------------------------------------------- _TestCondition: manager variant

#[mp::task]
fn mgr_cond_f(
    cond: mp::managers::ConditionProxy,
    sleeping: mp::managers::SemaphoreProxy,
    woken: mp::managers::SemaphoreProxy,
    timeout: Option<Duration>,
) {
    cond.acquire().unwrap();
    sleeping.release().unwrap();
    cond.wait(timeout).unwrap();
    woken.release().unwrap();
    cond.release().unwrap();
}

/// `_TestCondition.test_notify` / `test_notify_all` / `test_notify_n` on a manager's
/// condition, with a process and a thread sleeping on it.
#[test]
fn manager_condition_notify() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let cond = m.condition(None).unwrap();
        let sleeping = m.semaphore(0).unwrap();
        let woken = m.semaphore(0).unwrap();
        let mut procs = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..3 {
            let p = ctx.process(
                mgr_cond_f,
                (cond.clone(), sleeping.clone(), woken.clone(), None),
            );
            p.start().unwrap();
            procs.push(p);
            let (c, s, w) = (cond.clone(), sleeping.clone(), woken.clone());
            threads.push(std::thread::spawn(move || mgr_cond_f(c, s, w, None)));
        }
        for _ in 0..6 {
            assert!(sleeping.acquire_timeout(LONG).unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(woken.get_value().unwrap(), 0);
        // wake one
        cond.acquire().unwrap();
        cond.notify(1).unwrap();
        cond.release().unwrap();
        reaches(|| woken.get_value().unwrap(), 1);
        // wake two more
        cond.acquire().unwrap();
        cond.notify(2).unwrap();
        cond.release().unwrap();
        reaches(|| woken.get_value().unwrap(), 3);
        // notify with nobody left over-notifies nothing; then wake the rest
        cond.acquire().unwrap();
        cond.notify_all().unwrap();
        cond.release().unwrap();
        reaches(|| woken.get_value().unwrap(), 6);
        for p in &procs {
            join_ok(p);
        }
        for t in threads {
            t.join().unwrap();
        }
        // notify and wait without the lock are errors (RuntimeError in Python)
        assert!(cond.notify(1).is_err());
        assert!(cond.wait(Some(Duration::ZERO)).is_err());
    });
}

#[mp::task]
fn mgr_waitfor_f(cond: mp::managers::ConditionProxy, state: mp::managers::ValueProxy<i32>) {
    cond.acquire().unwrap();
    let ok = cond
        .wait_for(|| state.get().unwrap() == 4, Some(LONG))
        .unwrap();
    assert!(ok);
    assert_eq!(state.get().unwrap(), 4);
    cond.release().unwrap();
}

#[mp::task]
fn mgr_waitfor_timeout_f(
    cond: mp::managers::ConditionProxy,
    state: mp::managers::ValueProxy<i32>,
    success: mp::managers::ValueProxy<bool>,
    sem: mp::managers::SemaphoreProxy,
) {
    sem.release().unwrap();
    cond.acquire().unwrap();
    let t = Instant::now();
    let r = cond
        .wait_for(|| state.get().unwrap() == 4, Some(TIMEOUT1))
        .unwrap();
    let took = t.elapsed();
    if !r && took + Duration::from_millis(5) >= TIMEOUT1 && took < Duration::from_secs(5) {
        success.set(true).unwrap();
    }
    cond.release().unwrap();
}

/// `_TestCondition.test_waitfor`, `test_waitfor_timeout` and `test_wait_result` on a
/// manager's condition.
#[test]
fn manager_condition_wait_for_and_wait_result() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let cond = m.condition(None).unwrap();
        let state = m.value(0i32).unwrap();
        cond.acquire().unwrap();
        assert!(cond.wait_for(|| state.get().unwrap() == 0, None).unwrap());
        assert!(!cond.wait_for(|| false, Some(Duration::ZERO)).unwrap());
        let (r, took) = timed(|| cond.wait_for(|| false, Some(TIMEOUT1)).unwrap());
        assert!(!r);
        almost(took, TIMEOUT1);
        cond.release().unwrap();
        let p = ctx.process(mgr_waitfor_f, (cond.clone(), state.clone()));
        p.start().unwrap();
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(10));
            cond.acquire().unwrap();
            state.set(state.get().unwrap() + 1).unwrap();
            cond.notify(1).unwrap();
            cond.release().unwrap();
        }
        join_ok(&p);

        let state = m.value(0i32).unwrap();
        let success = m.value(false).unwrap();
        let sem = m.semaphore(0).unwrap();
        let p = ctx.process(
            mgr_waitfor_timeout_f,
            (cond.clone(), state.clone(), success.clone(), sem.clone()),
        );
        p.start().unwrap();
        assert!(sem.acquire_timeout(LONG).unwrap());
        // notify without ever satisfying the predicate
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(10));
            cond.acquire().unwrap();
            cond.notify(1).unwrap();
            cond.release().unwrap();
        }
        join_ok(&p);
        assert!(success.get().unwrap());

        // test_wait_result: wait returns false on timeout, true when notified
        cond.acquire().unwrap();
        assert!(!cond.wait(Some(Duration::ZERO)).unwrap());
        assert!(!cond.wait(Some(TIMEOUT1)).unwrap());
        let c2 = cond.clone();
        let t = std::thread::spawn(move || {
            c2.acquire().unwrap();
            c2.notify(1).unwrap();
            c2.release().unwrap();
        });
        assert!(cond.wait(Some(LONG)).unwrap());
        cond.release().unwrap();
        t.join().unwrap();
    });
}

// ------------------------------------------------------------------- _TestPool

#[mp::task]
fn sqr(x: i64) -> i64 {
    x * x
}

#[mp::task]
fn mul(x: i64, y: i64) -> i64 {
    x * y
}

#[mp::task]
fn sqr_after(x: i64, ms: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(ms));
    x * x
}

#[mp::task]
fn fail_on(x: i64, bad: i64) -> i64 {
    if x == bad {
        panic!("SayWhenError: {x}");
    }
    x * x
}

fn squares(r: std::ops::Range<i64>) -> Vec<i64> {
    r.map(|x| x * x).collect()
}

/// Chunk sizes larger than the input, equal to it, and not dividing it: every result
/// once, in order, for `map`, `starmap`, `imap` and `imap_unordered`.
#[test]
fn pool_chunksize_edges() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        for cs in [1, 2, 3, 7, 10, 11, 1000] {
            assert_eq!(pool.map_chunked(sqr, 0..10, cs).unwrap(), squares(0..10));
            assert_eq!(
                pool.map_async_chunked(sqr, 0..10, cs)
                    .get_timeout(LONG)
                    .unwrap(),
                squares(0..10)
            );
            let pairs: Vec<(i64, i64)> = (0..10).map(|i| (i, i + 1)).collect();
            let want: Vec<i64> = pairs.iter().map(|(a, b)| a * b).collect();
            assert_eq!(pool.starmap_chunked(mul, pairs, cs).unwrap(), want);
            let got: Vec<i64> = pool
                .imap_chunked(sqr, 0..10, cs)
                .map(|r| r.unwrap())
                .collect();
            assert_eq!(got, squares(0..10));
            let mut got: Vec<i64> = pool
                .imap_unordered_chunked(sqr, 0..10, cs)
                .map(|r| r.unwrap())
                .collect();
            got.sort();
            assert_eq!(got, squares(0..10));
        }
        // empty inputs, with a chunk size too (test_map_chunksize, test_empty_iterable)
        let empty = Vec::<i64>::new;
        assert_eq!(pool.map_chunked(sqr, empty(), 1).unwrap(), empty());
        assert_eq!(
            pool.map_async_chunked(sqr, empty(), 1)
                .get_timeout(TIMEOUT1 * 10)
                .unwrap(),
            empty()
        );
        assert_eq!(
            pool.starmap(mul, Vec::<(i64, i64)>::new()).unwrap(),
            empty()
        );
        assert_eq!(
            pool.starmap_async(mul, Vec::<(i64, i64)>::new())
                .get_timeout(LONG)
                .unwrap(),
            empty()
        );
        assert_eq!(pool.imap_chunked(sqr, empty(), 5).count(), 0);
        assert_eq!(pool.imap_unordered_chunked(sqr, empty(), 5).count(), 0);
    });
}

/// `imap` keeps input order whatever order the results finish in, `next_timeout`
/// raises `TimeoutError` without losing the item, and an exhausted iterator stays
/// exhausted (StopIteration again).
#[test]
fn pool_imap_order_timeout_and_exhaustion() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(3)).unwrap();
        let items: Vec<(i64, u64)> = vec![(0, 300), (1, 0), (2, 100), (3, 0)];
        let mut it = pool.imap(sqr_after_pair, items);
        match it.next_timeout(Duration::from_millis(20)) {
            Some(Err(Error::Timeout)) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        let got: Vec<i64> = it.by_ref().map(|r| r.unwrap()).collect();
        assert_eq!(got, vec![0, 1, 4, 9]);
        assert!(it.next().is_none());
        assert!(it.next().is_none());
        assert!(it.next_timeout(Duration::from_millis(10)).is_none());
        // a failing item fails only itself; later items still arrive in order
        let got: Vec<Result<i64>> = pool.imap(fail_on_pair, (0..6).map(|x| (x, 3))).collect();
        for (i, r) in got.iter().enumerate() {
            if i == 3 {
                assert!(matches!(r, Err(Error::TaskPanicked { .. })), "{r:?}");
            } else {
                assert_eq!(*r.as_ref().unwrap(), (i * i) as i64);
            }
        }
        // map fails as a whole with the failing item's error
        match pool.starmap(fail_on, (0..6).map(|x| (x, 3))) {
            Err(Error::TaskPanicked { message, .. }) => {
                assert!(message.contains("SayWhenError: 3"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    });
}

#[mp::task]
fn sqr_after_pair(p: (i64, u64)) -> i64 {
    sqr_after(p.0, p.1)
}

#[mp::task]
fn fail_on_pair(p: (i64, i64)) -> i64 {
    fail_on(p.0, p.1)
}

/// `AsyncResult`: `ready`, `successful` (ValueError before ready), `wait_timeout`'s
/// return, `get` repeatable, callbacks see the value or the error.
#[test]
fn pool_async_result_states() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let r = pool.apply_async(sqr_after, (7, 300));
        assert!(!r.ready());
        assert!(matches!(r.successful(), Err(Error::InvalidState(_))));
        assert!(!r.wait_timeout(Duration::from_millis(10)));
        assert!(matches!(
            r.get_timeout(Duration::from_millis(10)),
            Err(Error::Timeout)
        ));
        assert!(r.wait_timeout(LONG));
        assert!(r.ready());
        assert!(r.successful().unwrap());
        assert_eq!(r.get().unwrap(), 49);
        // (a second get of a value is InvalidState: the value moved to the first caller)
        assert!(r.successful().unwrap());
        let bad = pool.apply_async(fail_on, (3, 3));
        bad.wait();
        assert!(bad.ready());
        assert!(!bad.successful().unwrap());
        // Python re-raises a failed result's error on every get
        for _ in 0..3 {
            let e = bad.get_timeout(LONG);
            assert!(matches!(e, Err(Error::TaskPanicked { .. })), "{e:?}");
        }
        // map_async's callbacks get the whole list or the error
        let (tx, rx) = std::sync::mpsc::channel();
        let tx2 = tx.clone();
        let m = pool.map_async_with(
            sqr,
            0..5,
            move |v| tx.send(Ok(v.clone())).unwrap(),
            move |e| tx2.send(Err(e.to_string())).unwrap(),
        );
        assert_eq!(m.get_timeout(LONG).unwrap(), squares(0..5));
        assert_eq!(rx.recv_timeout(LONG).unwrap(), Ok(squares(0..5)));
        let (tx, rx) = std::sync::mpsc::channel();
        let tx2 = tx.clone();
        let r = pool.apply_async_with(
            sqr,
            (9,),
            move |v| tx.send(Ok(*v)).unwrap(),
            move |e| tx2.send(Err(e.to_string())).unwrap(),
        );
        assert_eq!(r.get_timeout(LONG).unwrap(), 81);
        assert_eq!(rx.recv_timeout(LONG).unwrap(), Ok(81));
    });
}

/// After `close()` (and after `terminate()`) new work is refused with ValueError("Pool
/// not running"), through `get()` for the async forms; `close`, `terminate` and `join`
/// may be repeated; work queued before `close` still completes.
#[test]
fn pool_after_close_and_terminate() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let queued: Vec<_> = (0..6)
            .map(|i| pool.apply_async(sqr_after, (i, 50)))
            .collect();
        pool.close().unwrap();
        pool.close().unwrap();
        let refused = pool.apply_async(sqr, (2,)).get_timeout(LONG);
        assert!(
            matches!(refused, Err(Error::InvalidState(_))),
            "{refused:?}"
        );
        assert!(matches!(pool.map(sqr, 0..3), Err(Error::InvalidState(_))));
        assert!(matches!(
            pool.starmap(mul, vec![(1, 2)]),
            Err(Error::InvalidState(_))
        ));
        let first = pool.imap_unordered(sqr, 0..3).next();
        assert!(
            matches!(first, Some(Err(Error::InvalidState(_)))),
            "{first:?}"
        );
        within(LONG, "join after close", {
            let pool = std::sync::Arc::new(pool);
            let p = pool.clone();
            move || {
                p.join().unwrap();
                p.join().unwrap();
                p.terminate().unwrap();
            }
        });
        for (i, r) in queued.iter().enumerate() {
            assert_eq!(r.get_timeout(LONG).unwrap(), (i * i) as i64);
        }

        let pool = ctx.pool(Some(2)).unwrap();
        let pending = pool.apply_async(sqr_after, (1, 60_000));
        let (r, took) = timed(|| {
            pool.terminate()?;
            pool.terminate()?;
            pool.join()
        });
        r.unwrap();
        assert!(took < Duration::from_secs(10), "{took:?}");
        // the task that was running does not hang its result
        assert!(pending.get_timeout(LONG).is_err());
        assert!(pool.close().is_ok() || pool.close().is_err());
        assert!(matches!(pool.apply(sqr, (1,)), Err(Error::InvalidState(_))));
    });
}

/// Dropping a pool (CPython's `with Pool() as p:` exit) while work is outstanding
/// terminates it without hanging; its results report an error instead of blocking.
#[test]
fn pool_drop_with_outstanding_work() {
    for_each_method(|ctx| {
        let (r, took) = timed(|| {
            let pool = ctx.pool(Some(2)).unwrap();
            let r = pool.map_async_chunked(sqr_after_pair, vec![(1i64, 60_000u64); 50], 1);
            drop(pool);
            r
        });
        assert!(took < Duration::from_secs(10), "{took:?}");
        assert!(r.get_timeout(LONG).is_err());
    });
}

/// `maxtasksperchild=1` with `map`/`imap` over many items: each worker runs one chunk
/// and is replaced, and nothing is lost.
#[test]
fn pool_maxtasksperchild_one_with_map() {
    for_each_method(|ctx| {
        let pool = ctx
            .pool_builder()
            .processes(2)
            .maxtasksperchild(1)
            .build()
            .unwrap();
        assert_eq!(pool.map_chunked(sqr, 0..12, 1).unwrap(), squares(0..12));
        let got: Vec<i64> = pool.imap(sqr, 0..12).map(|r| r.unwrap()).collect();
        assert_eq!(got, squares(0..12));
        pool.close().unwrap();
        within(LONG, "join", move || pool.join().unwrap());
    });
}

// ------------------------------------------- _TestValue, _TestArray, _TestSharedCTypes

/// Zero-length arrays, indexes out of range (IndexError), the C-string view of a
/// `c_char` array (`.value` stops at the first NUL, a too long value is ValueError, a
/// value of exactly the array's length needs no terminator).
#[test]
fn array_edges() {
    let a: Array<i32> = Array::new(0).unwrap();
    assert_eq!(a.len(), 0);
    assert!(a.is_empty());
    assert!(a.to_vec().is_empty());
    assert!(a.get(0).is_err());
    assert!(a.set(0, 1).is_err());
    let r: RawArray<f64> = RawArray::new(0).unwrap();
    assert!(r.to_vec().is_empty());
    let a = Array::from_slice(&[1i64, 2, 3]).unwrap();
    assert!(a.get(3).is_err());
    assert!(a.set(3, 0).is_err());
    assert_eq!(a.to_vec(), vec![1, 2, 3]);

    let s: Array<u8> = Array::new(5).unwrap();
    assert_eq!(s.value(), b"");
    s.set_value(b"hello").unwrap();
    assert_eq!(s.value(), b"hello");
    assert_eq!(s.raw(), b"hello");
    s.set_value(b"hi").unwrap();
    assert_eq!(s.value(), b"hi");
    assert_eq!(&s.raw()[..3], b"hi\0");
    assert!(s.set_value(b"toolong").is_err());
    assert_eq!(s.value(), b"hi");
    let raw: RawArray<u8> = RawArray::from_slice(b"abc\0ef").unwrap();
    assert_eq!(raw.value(), b"abc");
    assert_eq!(raw.raw(), b"abc\0ef");
}

/// `Value(..., lock=lock)` / `Array(..., lock=lock)`: `get_lock()` is that very lock
/// (held through one, held through the other), a plain `Lock` works as well as an
/// `RLock`, and `copy` / `synchronized` behave as `sharedctypes.copy` /
/// `sharedctypes.synchronized` (a copy is independent, a synchronized wrapper shares
/// the raw object's memory).
#[test]
fn value_and_array_locks_copy_synchronized() {
    let lock = Lock::new().unwrap();
    let v = Value::with_lock(5i32, lock.clone()).unwrap();
    assert!(v.get_lock().acquire_timeout(Duration::ZERO));
    assert!(!lock.try_acquire());
    v.get_lock().release().unwrap();
    assert!(lock.try_acquire());
    lock.release().unwrap();
    *v.lock() += 1;
    assert_eq!(v.get(), 6);
    assert!(!lock.is_locked());

    let rlock = RLock::new().unwrap();
    let arr = Array::from_slice_with_lock(&[1.5f64, 2.5], rlock.clone()).unwrap();
    {
        let g = arr.lock();
        assert_eq!(&*g, &[1.5, 2.5]);
        // the guard holds the given RLock
        let r2 = rlock.clone();
        let other = std::thread::spawn(move || r2.try_acquire());
        assert!(!other.join().unwrap());
    }
    assert!(rlock.try_acquire());
    rlock.release().unwrap();

    let raw = RawValue::new(7u64).unwrap();
    let synced = sharedctypes::synchronized(raw.clone(), None).unwrap();
    synced.set(8);
    assert_eq!(raw.get(), 8);
    let copied = sharedctypes::copy(&raw).unwrap();
    copied.set(9);
    assert_eq!(raw.get(), 8);
    assert_eq!(copied.get(), 9);

    let raw_arr = RawArray::from_slice(&[1u16, 2, 3]).unwrap();
    let copied = sharedctypes::copy(&raw_arr).unwrap();
    copied.set(0, 100).unwrap();
    assert_eq!(raw_arr.to_vec(), vec![1, 2, 3]);
    assert_eq!(copied.to_vec(), vec![100, 2, 3]);
    let synced =
        sharedctypes::synchronized(raw_arr.clone(), Some(Lock::new().unwrap().into())).unwrap();
    synced.set(2, 30).unwrap();
    assert_eq!(raw_arr.to_vec(), vec![1, 2, 30]);
    assert!(synced.get_lock().release().is_err());
}

#[mp::task]
fn bump_under_given_lock(v: Value<i64>, lock: Lock, n: u32) {
    for _ in 0..n {
        let _g = lock.lock();
        v.get_obj().set(v.get_obj().get() + 1);
    }
}

/// A `Value` built on a caller's lock, shared with children that use that lock
/// directly: no lost updates (`Value(typecode, v, lock=lock)` in the docs).
#[test]
fn value_with_a_shared_lock_across_processes() {
    for_each_method(|ctx| {
        let lock = ctx.lock().unwrap();
        let v = Value::with_lock(0i64, lock.clone()).unwrap();
        let ps: Vec<Process> = (0..3)
            .map(|_| ctx.process(bump_under_given_lock, (v.clone(), lock.clone(), 200)))
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        for _ in 0..200 {
            *v.lock() += 1;
        }
        for p in &ps {
            join_ok(p);
        }
        assert_eq!(v.get(), 800);
    });
}

// ---------------------------------------------------------------- _TestSharedMemory

/// Sizes and lengths as CPython reports them, `close()` twice, an attached handle's
/// size, and `ShareableList` storage: each `str`/`bytes` slot is a multiple of 8 bytes
/// with room to grow to it, trailing NULs are not part of the value, and typed lists
/// refuse a slot of another type.
#[test]
fn shared_memory_and_shareable_list_edges() {
    let shm = SharedMemory::create(None, 512).unwrap();
    let other = SharedMemory::attach(shm.name()).unwrap();
    assert_eq!(other.size(), shm.size());
    other.close().unwrap();
    other.close().unwrap();
    shm.unlink().unwrap();

    let items = vec![
        shared_memory::Item::Str(String::new()),
        shared_memory::Item::Str("12345678".into()),
        shared_memory::Item::Bytes(Vec::new()),
        shared_memory::Item::Bytes(b"12345678".to_vec()),
        shared_memory::Item::Float(1.5),
        shared_memory::Item::None,
        shared_memory::Item::Bool(true),
        shared_memory::Item::Int(-1),
    ];
    let sl = ShareableList::new(&items).unwrap();
    assert_eq!(sl.format(), "8s16s8s16sdxxxxxx?xxxxxxxx?q");
    for (i, it) in items.iter().enumerate() {
        assert_eq!(&sl.get(i).unwrap(), it);
    }
    // "" got 8 bytes of room, "12345678" 16
    sl.set(0, shared_memory::Item::Str("abcdefgh".into()))
        .unwrap();
    assert!(sl
        .set(0, shared_memory::Item::Str("abcdefghi".into()))
        .is_err());
    sl.set(1, shared_memory::Item::Str("x".repeat(16))).unwrap();
    assert!(sl.set(1, shared_memory::Item::Str("x".repeat(17))).is_err());
    assert_eq!(sl.get(1).unwrap(), shared_memory::Item::Str("x".repeat(16)));
    // a slot may change type (int → str within 8 bytes, str → int)
    sl.set(7, shared_memory::Item::Str("seven".into())).unwrap();
    assert_eq!(sl.get(7).unwrap(), shared_memory::Item::Str("seven".into()));
    sl.set(0, shared_memory::Item::Int(3)).unwrap();
    assert_eq!(sl.get(0).unwrap(), shared_memory::Item::Int(3));
    assert_eq!(sl.count(&shared_memory::Item::None).unwrap(), 1);
    assert_eq!(sl.index(&shared_memory::Item::Bool(true)).unwrap(), 6);
    sl.shm().unlink().unwrap();

    // trailing NULs are stripped on read, as CPython's rstrip(b'\x00')
    let sl = ShareableList::new(&[b"ab\0".to_vec()]).unwrap();
    assert_eq!(sl.get(0).unwrap(), b"ab".to_vec());
    sl.shm().unlink().unwrap();

    // a typed view of a slot of another type is an error, not a wrong value
    let mixed = ShareableList::new(&[
        shared_memory::Item::Int(1),
        shared_memory::Item::Str("s".into()),
    ])
    .unwrap();
    let ints: ShareableList<i64> = ShareableList::attach(mixed.shm().name()).unwrap();
    assert_eq!(ints.get(0).unwrap(), 1);
    assert!(ints.get(1).is_err());
    let strs: ShareableList<String> = ShareableList::attach(mixed.shm().name()).unwrap();
    assert!(strs.get(0).is_err());
    assert_eq!(strs.get(1).unwrap(), "s");
    mixed.shm().unlink().unwrap();

    // Option<T> items hold None
    let opt = ShareableList::new(&[Some(1i64), None, Some(3)]).unwrap();
    assert_eq!(opt.get(1).unwrap(), None);
    opt.set(1, Some(2)).unwrap();
    assert_eq!(opt.to_vec().unwrap(), vec![Some(1), Some(2), Some(3)]);
    opt.shm().unlink().unwrap();
}

// ------------------------------------------ TestSyncManagerTypes, _TestContainers

#[mp::task]
fn smt_event(o: mp::managers::EventProxy) {
    assert!(o.is_set().unwrap());
    assert!(o.wait(None).unwrap());
    o.clear().unwrap();
    assert!(!o.wait(Some(Duration::from_millis(1))).unwrap());
}

#[mp::task]
fn smt_lock(o: mp::managers::LockProxy) {
    assert!(o.acquire().unwrap());
    assert!(o.locked().unwrap());
}

#[mp::task]
fn smt_rlock(o: mp::managers::RLockProxy) {
    assert!(o.acquire().unwrap());
    assert!(o.locked().unwrap());
    o.release().unwrap();
    assert!(!o.locked().unwrap());
}

#[mp::task]
fn smt_semaphore(o: mp::managers::SemaphoreProxy) {
    assert!(o.acquire().unwrap());
}

#[mp::task]
fn smt_condition(o: mp::managers::ConditionProxy) {
    assert!(o.acquire().unwrap());
    o.release().unwrap();
}

#[mp::task]
fn smt_barrier(o: BarrierProxy) {
    assert_eq!(o.parties().unwrap(), 5);
    o.reset().unwrap();
}

#[mp::task]
fn smt_queue(o: mp::managers::QueueProxy<i32>) {
    assert_eq!(o.qsize().unwrap(), 2);
    assert!(o.full().unwrap());
    assert!(!o.empty().unwrap());
    assert_eq!(o.get().unwrap(), 5);
    assert!(!o.empty().unwrap());
    assert_eq!(o.get().unwrap(), 6);
    assert!(o.empty().unwrap());
}

#[mp::task]
fn smt_joinable_queue(o: mp::managers::JoinableQueueProxy<i32>) {
    assert_eq!(o.qsize().unwrap(), 2);
    assert!(o.full().unwrap());
    assert_eq!(o.get().unwrap(), 5);
    assert_eq!(o.get().unwrap(), 6);
    assert!(o.empty().unwrap());
}

#[mp::task]
fn smt_list(o: ListProxy<i32>) {
    assert_eq!(o.get(0).unwrap(), 5);
    assert_eq!(o.count(5).unwrap(), 1);
    assert_eq!(o.index(5).unwrap(), 0);
    o.sort().unwrap();
    o.reverse().unwrap();
    assert_eq!(o.to_vec().unwrap(), vec![5]);
    assert_eq!(o.len().unwrap(), 1);
    assert_eq!(o.pop_at(0).unwrap(), 5);
}

#[mp::task]
fn smt_dict(o: mp::managers::DictProxy<String, i32>) {
    assert_eq!(o.len().unwrap(), 1);
    assert_eq!(o.get_item("foo".to_string()).unwrap(), 5);
    assert_eq!(o.get("foo".to_string()).unwrap(), Some(5));
    assert_eq!(o.items().unwrap(), vec![("foo".to_string(), 5)]);
    assert_eq!(o.keys().unwrap(), vec!["foo".to_string()]);
    assert_eq!(o.values().unwrap(), vec![5]);
    assert_eq!(o.to_map().unwrap().len(), 1);
    let copy: std::collections::HashMap<String, i32> = o.call_method("copy", ()).unwrap();
    assert_eq!(copy.get("foo"), Some(&5));
    assert_eq!(o.popitem().unwrap(), ("foo".to_string(), 5));
}

#[mp::task]
fn smt_value(o: mp::managers::ValueProxy<i32>) {
    assert_eq!(o.get().unwrap(), 1);
    o.set(2).unwrap();
}

#[mp::task]
fn smt_array(o: mp::managers::ArrayProxy<i32>) {
    assert_eq!(o.get(0).unwrap(), 0);
    assert_eq!(o.get(1).unwrap(), 1);
    assert_eq!(o.len().unwrap(), 2);
    assert_eq!(o.to_vec().unwrap(), vec![0, 1]);
}

#[mp::task]
fn smt_namespace(o: mp::managers::NamespaceProxy) {
    assert_eq!(o.get::<i32>("x").unwrap(), 0);
    assert_eq!(o.get::<i32>("y").unwrap(), 1);
}

/// CPython's `TestSyncManagerTypes`: each shared type, created in the parent, read and
/// changed by a child, the change seen back in the parent.
#[test]
fn sync_manager_types() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let run = |p: Process| {
            p.start().unwrap();
            join_ok(&p);
        };
        let o = m.event().unwrap();
        o.set().unwrap();
        run(ctx.process(smt_event, (o.clone(),)));
        assert!(!o.is_set().unwrap());

        // a Lock acquired by a child may be released by the parent, once
        let o = m.lock().unwrap();
        run(ctx.process(smt_lock, (o.clone(),)));
        assert!(o.locked().unwrap());
        o.release().unwrap();
        assert!(!o.locked().unwrap());
        assert!(o.release().is_err());

        let o = m.rlock().unwrap();
        run(ctx.process(smt_rlock, (o.clone(),)));
        assert!(o.try_acquire().unwrap());
        o.release().unwrap();

        for o in [m.semaphore(1).unwrap(), m.bounded_semaphore(1).unwrap()] {
            run(ctx.process(smt_semaphore, (o.clone(),)));
            assert_eq!(o.get_value().unwrap(), 0);
            o.release().unwrap();
            assert_eq!(o.get_value().unwrap(), 1);
        }

        let o = m.condition(None).unwrap();
        run(ctx.process(smt_condition, (o.clone(),)));

        let o = m.barrier(5).unwrap();
        run(ctx.process(smt_barrier, (o.clone(),)));

        let o = m.queue::<i32>(2).unwrap();
        o.put(5).unwrap();
        o.put(6).unwrap();
        run(ctx.process(smt_queue, (o.clone(),)));
        assert!(o.empty().unwrap());
        assert!(!o.full().unwrap());

        let o = m.joinable_queue::<i32>(2).unwrap();
        o.put(5).unwrap();
        o.put(6).unwrap();
        run(ctx.process(smt_joinable_queue, (o.clone(),)));
        assert!(o.empty().unwrap());
        assert!(!o.full().unwrap());

        let o = m.list(Vec::<i32>::new()).unwrap();
        o.append(5).unwrap();
        run(ctx.process(smt_list, (o.clone(),)));
        assert!(o.is_empty().unwrap());
        assert_eq!(o.len().unwrap(), 0);

        let o = m.dict::<String, i32>().unwrap();
        o.insert("foo".into(), 5).unwrap();
        run(ctx.process(smt_dict, (o.clone(),)));
        assert!(o.is_empty().unwrap());
        assert!(matches!(o.popitem(), Err(Error::Remote { kind, .. }) if kind == "KeyError"));
        o.insert("a".into(), 1).unwrap();
        o.insert("b".into(), 2).unwrap();
        assert_eq!(o.popitem().unwrap(), ("b".to_string(), 2));

        let o = m.value(1i32).unwrap();
        run(ctx.process(smt_value, (o.clone(),)));
        assert_eq!(o.get().unwrap(), 2);

        let o = m.array(vec![0i32, 1]).unwrap();
        run(ctx.process(smt_array, (o.clone(),)));

        let o = m.namespace().unwrap();
        o.set("x", 0).unwrap();
        o.set("y", 1).unwrap();
        run(ctx.process(smt_namespace, (o.clone(),)));
    });
}

/// `_TestContainers.test_nested_queue`, `test_namespace` (repr sorted, `_`-names
/// hidden, `del`), a list that holds itself (`b.append(b)`), and slices as Python's
/// `b[2:10]`.
#[test]
fn containers_nested_queue_namespace_self_reference() {
    let m = Manager::new().unwrap();
    let a = m.list(Vec::<mp::managers::QueueProxy<i32>>::new()).unwrap();
    a.append(m.queue::<i32>(0).unwrap()).unwrap();
    a.get(0).unwrap().put(123).unwrap();
    assert_eq!(a.get(0).unwrap().get_timeout(LONG).unwrap(), 123);
    let b = m.dict::<i32, mp::managers::QueueProxy<i32>>().unwrap();
    b.insert(0, m.queue::<i32>(0).unwrap()).unwrap();
    b.get_item(0).unwrap().put(456).unwrap();
    assert_eq!(b.get_item(0).unwrap().get_timeout(LONG).unwrap(), 456);

    let n = m.namespace().unwrap();
    n.set("name", "Bob").unwrap();
    n.set("job", "Builder").unwrap();
    n.set("_hidden", "hidden").unwrap();
    assert_eq!(n.get::<String>("name").unwrap(), "Bob");
    assert_eq!(n.get::<String>("job").unwrap(), "Builder");
    assert_eq!(n.to_string(), "Namespace(job='Builder', name='Bob')");
    n.remove("job").unwrap();
    assert_eq!(n.to_string(), "Namespace(name='Bob')");
    assert!(n.contains("name").unwrap());
    assert!(!n.contains("job").unwrap());

    let l = m.list((0..5).collect::<Vec<i64>>()).unwrap();
    assert_eq!(l.slice(2..10).unwrap(), vec![2, 3, 4]);
    assert_eq!(l.slice(..).unwrap(), vec![0, 1, 2, 3, 4]);
    assert_eq!(l.slice(7..).unwrap(), Vec::<i64>::new());

    let before = m.number_of_objects().unwrap();
    let selfish = m.list(Vec::<mp::managers::Value>::new()).unwrap();
    selfish
        .append(mp::managers::to_value(&selfish).unwrap())
        .unwrap();
    assert_eq!(selfish.len().unwrap(), 1);
    drop(selfish);
    // the server keeps serving (CPython leaks the cycle too)
    assert!(m.number_of_objects().unwrap() >= before);
    assert_eq!(l.len().unwrap(), 5);
}

// ------------------------------------------------- _TestPool, "threads" variant

/// CPython runs `_TestPool` on `multiprocessing.dummy.Pool` too: the same edge cases
/// on the thread pool (closures accepted there).
#[test]
fn thread_pool_edges() {
    assert!(matches!(
        mp::dummy::Pool::new(Some(0)),
        Err(Error::InvalidState(_))
    ));
    let pool = mp::dummy::Pool::new(Some(3)).unwrap();
    assert_eq!(pool.processes(), 3);
    for cs in [1, 3, 7, 10, 1000] {
        assert_eq!(pool.map_chunked(sqr, 0..10, cs).unwrap(), squares(0..10));
        let got: Vec<i64> = pool
            .imap_chunked(sqr, 0..10, cs)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(got, squares(0..10));
        let mut got: Vec<i64> = pool
            .imap_unordered_chunked(sqr, 0..10, cs)
            .map(|r| r.unwrap())
            .collect();
        got.sort();
        assert_eq!(got, squares(0..10));
    }
    assert!(pool.map_chunked(sqr, 0..3, 0).is_err());
    assert_eq!(pool.map(sqr, Vec::<i64>::new()).unwrap(), Vec::<i64>::new());
    assert_eq!(pool.imap(sqr, Vec::<i64>::new()).count(), 0);
    assert_eq!(pool.imap_unordered(sqr, Vec::<i64>::new()).count(), 0);
    assert_eq!(
        pool.map_async(sqr, Vec::<i64>::new())
            .get_timeout(LONG)
            .unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(
        pool.starmap(mul, vec![(2, 3), (4, 5)]).unwrap(),
        vec![6, 20]
    );
    // closures, panics, callbacks
    let k = 10;
    assert_eq!(pool.apply(move |x: i64| x + k, (5,)).unwrap(), 15);
    let r = pool.apply(|| -> i64 { panic!("RuntimeError: foo") }, ());
    match r {
        Err(Error::TaskPanicked { message, .. }) => assert!(message.contains("foo"), "{message}"),
        other => panic!("{other:?}"),
    }
    // test_async_timeout
    let event = mp::dummy::Event::new().unwrap();
    let ev = event.clone();
    let slow = pool.apply_async(
        move || {
            ev.wait(Some(LONG));
            36i64
        },
        (),
    );
    let (got, took) = timed(|| slow.get_timeout(TIMEOUT2));
    assert!(matches!(got, Err(Error::Timeout)));
    almost(took, TIMEOUT2);
    event.set();
    assert_eq!(slow.get_timeout(LONG).unwrap(), 36);
    let mut it = pool.imap(sqr_after_pair, vec![(3i64, 200u64)]);
    assert!(matches!(
        it.next_timeout(Duration::from_millis(10)),
        Some(Err(Error::Timeout))
    ));
    assert_eq!(it.next().unwrap().unwrap(), 9);
    assert!(it.next().is_none());
    // test_context: once terminated, new work is refused
    pool.terminate().unwrap();
    pool.join().unwrap();
    assert!(matches!(
        pool.map_async(sqr, 0..3).get_timeout(LONG),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(pool.apply(sqr, (1,)), Err(Error::InvalidState(_))));
    assert!(matches!(
        pool.imap(sqr, 0..3).next(),
        Some(Err(Error::InvalidState(_)))
    ));
    // join before close is an error; close then join finishes queued work
    let pool = mp::dummy::Pool::new(Some(1)).unwrap();
    assert!(pool.join().is_err());
    let queued: Vec<_> = (0..4)
        .map(|i| pool.apply_async(sqr_after, (i, 20)))
        .collect();
    pool.close().unwrap();
    assert!(pool.apply_async(sqr, (1,)).get_timeout(LONG).is_err());
    pool.join().unwrap();
    for (i, r) in queued.iter().enumerate() {
        assert_eq!(r.get_timeout(LONG).unwrap(), (i * i) as i64);
    }
}

/// CPython's `exception_throwing_generator`: the nearest Rust is an input iterator
/// that panics after `when` items.
struct SayWhen {
    i: i64,
    total: i64,
    when: i64,
}

impl Iterator for SayWhen {
    type Item = i64;
    fn next(&mut self) -> Option<i64> {
        if self.i == self.when {
            panic!("SayWhenError: Somebody said when");
        }
        if self.i >= self.total {
            return None;
        }
        self.i += 1;
        Some(self.i - 1)
    }
}

fn say_when(total: i64, when: i64) -> SayWhen {
    SayWhen { i: 0, total, when }
}

/// `test_imap_handle_iterable_exception` / `test_imap_unordered_handle_iterable_exception`
/// / `test_map_handle_iterable_exception`: the whole chunks before the failure arrive,
/// then the failure is reported as an error and the iteration ends; `map` fails as a
/// whole; nothing hangs, and the pool stays usable.
#[test]
fn pool_imap_input_that_panics() {
    // (total, when, chunksize, results before the error)
    const CASES: [(i64, i64, usize, i64); 4] =
        [(1, 0, 1, 0), (10, 3, 1, 3), (20, 7, 2, 6), (20, 7, 4, 4)];
    fn check(got: &[Result<i64>], before: i64) {
        let ok: Vec<i64> = got
            .iter()
            .take_while(|r| r.is_ok())
            .map(|r| *r.as_ref().unwrap())
            .collect();
        assert_eq!(ok, squares(0..before), "{got:?}");
        assert_eq!(got.len() as i64, before + 1, "{got:?}");
        match &got[before as usize] {
            Err(Error::TaskPanicked { message, .. }) => {
                assert!(message.contains("SayWhenError"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
    for_each_method(|ctx| {
        let pool = std::sync::Arc::new(ctx.pool(Some(2)).unwrap());
        for (total, when, chunk, before) in CASES {
            let p = pool.clone();
            let got: Vec<Result<i64>> = within(LONG, "imap over a panicking input", move || {
                p.imap_chunked(sqr, say_when(total, when), chunk).collect()
            });
            check(&got, before);
            let p = pool.clone();
            let got: Vec<Result<i64>> =
                within(LONG, "imap_unordered over a panicking input", move || {
                    p.imap_unordered_chunked(sqr, say_when(total, when), chunk)
                        .collect()
                });
            assert_eq!(got.iter().filter(|r| r.is_err()).count(), 1, "{got:?}");
            assert_eq!(got.len() as i64, before + 1, "{got:?}");
            let r = pool.map_chunked(sqr, say_when(total, when), 1);
            assert!(matches!(r, Err(Error::TaskPanicked { .. })), "{r:?}");
        }
        assert_eq!(pool.map(sqr, 0..4).unwrap(), squares(0..4));
    });
    let pool = std::sync::Arc::new(mp::dummy::Pool::new(Some(2)).unwrap());
    for (total, when, chunk, before) in CASES {
        let p = pool.clone();
        let got: Vec<Result<i64>> = within(LONG, "thread imap over a panicking input", move || {
            p.imap_chunked(sqr, say_when(total, when), chunk).collect()
        });
        check(&got, before);
        assert!(pool.map_chunked(sqr, say_when(total, when), 1).is_err());
    }
    pool.close().unwrap();
    let p = pool.clone();
    within(LONG, "thread pool join after a failed feeder", move || {
        p.join().unwrap()
    });
}

/// `close()` stops new submissions only: an `imap` started before it keeps pulling its
/// input and every item arrives (CPython's task handler drains the queued task
/// generators before it stops); `join()` then returns.
#[test]
fn pool_close_lets_a_running_imap_finish() {
    for_each_method(|ctx| {
        let pool = std::sync::Arc::new(ctx.pool(Some(2)).unwrap());
        let it = pool.imap(sqr_after_pair, (0..60i64).map(|i| (i, 2u64)));
        let unordered = pool.imap_unordered_chunked(sqr, 0..500i64, 3);
        let m = pool.map_async_chunked(sqr, 0..300i64, 1);
        pool.close().unwrap();
        let got: Vec<i64> = within(LONG, "imap after close", move || {
            it.map(|r| r.unwrap()).collect()
        });
        assert_eq!(got, squares(0..60));
        let mut got: Vec<i64> = unordered.map(|r| r.unwrap()).collect();
        got.sort();
        assert_eq!(got, squares(0..500));
        assert_eq!(m.get_timeout(LONG).unwrap(), squares(0..300));
        let p = pool.clone();
        within(LONG, "join", move || p.join().unwrap());
    });
    let pool = std::sync::Arc::new(mp::dummy::Pool::new(Some(2)).unwrap());
    let it = pool.imap(sqr_after_pair, (0..30i64).map(|i| (i, 2u64)));
    pool.close().unwrap();
    let got: Vec<i64> = within(LONG, "thread imap after close", move || {
        it.map(|r| r.unwrap()).collect()
    });
    assert_eq!(got, squares(0..30));
    let p = pool.clone();
    within(LONG, "thread join", move || p.join().unwrap());
}

// ------------------------------------------------------------- _TestManagerRestart

#[mp::task]
fn put_hello(address: mp::connection::Address, authkey: Vec<u8>) {
    let m = SyncManager::new(address, authkey);
    m.connect().unwrap();
    let ns = m.namespace().unwrap();
    drop(ns);
    let q = m.queue::<String>(0).unwrap();
    q.put("hello world".into()).unwrap();
    // a connected handle's drop leaves the server (and the queue) alone
    std::mem::forget(q);
}

/// `test_rapid_restart`: a manager asked for port 0 reports the port it got (from
/// `get_server()` and after `start()`), a child connects to it, and a new manager can
/// start on the address the old one used right after it shut down.
#[test]
fn manager_port_zero_and_rapid_restart() {
    for_each_method(|ctx| {
        let key = b"rapid restart".to_vec();
        let any = mp::connection::Address::Inet("127.0.0.1".into(), 0);
        let m = SyncManager::with_context(any.clone(), key.clone(), ctx);
        let server = m.get_server().unwrap();
        let addr = server.address();
        match &addr {
            mp::connection::Address::Inet(_, port) => assert_ne!(*port, 0, "{addr:?}"),
            other => panic!("{other:?}"),
        }
        drop(server);
        m.start().unwrap();
        let started = m.address();
        match &started {
            mp::connection::Address::Inet(_, port) => assert_ne!(*port, 0, "{started:?}"),
            other => panic!("{other:?}"),
        }
        let n = m.number_of_objects().unwrap();
        let p = ctx.process(put_hello, (started.clone(), key.clone()));
        p.start().unwrap();
        join_ok(&p);
        assert!(m.number_of_objects().unwrap() > n);
        m.shutdown().unwrap();
        let again = SyncManager::with_context(started, key.clone(), ctx);
        again.start().unwrap();
        let l = again.list(vec![1, 2]).unwrap();
        assert_eq!(l.len().unwrap(), 2);
        again.shutdown().unwrap();
    });
}

// ------------------------------------------------------ _TestLock (CPython 3.13+)

/// What CPython's repr calls the calling thread: its process's name, plus
/// `|thread` outside the main thread (tests run on libtest's named threads).
fn me() -> String {
    let name = current_process().name();
    if std::thread::current().name() == Some("main") {
        name
    } else {
        format!("{name}|{}", std::thread::current().name().unwrap())
    }
}

#[mp::task]
fn repr_after_acquire(lock: Lock, out: ListProxy<String>) {
    lock.acquire();
    out.append(format!("{lock:?}")).unwrap();
}

#[mp::task]
fn repr_after_acquire_release(lock: RLock, out: ListProxy<String>) {
    lock.acquire();
    out.append(format!("{lock:?}")).unwrap();
    lock.release().unwrap();
}

#[mp::task]
fn hold_rlock(lock: RLock) {
    lock.acquire();
}

#[mp::task]
fn hold_lock_then_wait(lock: Lock, event: Event) {
    lock.acquire();
    event.set();
    std::thread::sleep(Duration::from_secs(30));
}

#[mp::task]
fn locked_in_child(lock: AnyLock, event: Event, res: Value<bool>) {
    lock.acquire();
    res.set(match &lock {
        AnyLock::Lock(l) => l.locked(),
        AnyLock::RLock(r) => r.locked(),
    });
    event.set();
}

/// `test_repr_lock`, `test_repr_rlock`, `test_lock_locked_2processes`,
/// `test_rlock_locked_2processes` and `locked()` in `test_lock` / `test_rlock`.
#[test]
fn lock_repr_and_locked() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let lock = ctx.lock().unwrap();
        assert_eq!(format!("{lock:?}"), "<Lock(owner=None)>");
        assert!(!lock.locked());
        lock.acquire();
        assert!(lock.locked());
        assert_eq!(format!("{lock:?}"), format!("<Lock(owner={})>", me()));
        lock.release().unwrap();
        let l2 = lock.clone();
        let t = std::thread::Builder::new()
            .name("T1".into())
            .spawn(move || {
                l2.acquire();
                format!("{l2:?}")
            })
            .unwrap();
        let seen = t.join().unwrap();
        assert_eq!(
            seen,
            format!("<Lock(owner={}|T1)>", current_process().name())
        );
        assert_eq!(format!("{lock:?}"), "<Lock(owner=SomeOtherThread)>");
        lock.release().unwrap();
        let out = m.list(Vec::<String>::new()).unwrap();
        let p = ctx
            .process(repr_after_acquire, (lock.clone(), out.clone()))
            .with_name("P1");
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(out.get(0).unwrap(), "<Lock(owner=P1)>");
        assert_eq!(format!("{lock:?}"), "<Lock(owner=SomeOtherProcess)>");
        let lock = ctx.lock().unwrap();
        let event = ctx.event().unwrap();
        let p = ctx
            .process(hold_lock_then_wait, (lock.clone(), event.clone()))
            .with_name("P2");
        p.start().unwrap();
        assert!(event.wait(Some(LONG)));
        assert_eq!(format!("{lock:?}"), "<Lock(owner=SomeOtherProcess)>");
        p.terminate().unwrap();
        p.join_timeout(LONG).unwrap();

        let rlock = ctx.rlock().unwrap();
        assert_eq!(format!("{rlock:?}"), "<RLock(None, 0)>");
        assert!(!rlock.locked());
        for _ in 0..3 {
            rlock.acquire();
        }
        assert!(rlock.locked());
        assert_eq!(format!("{rlock:?}"), format!("<RLock({}, 3)>", me()));
        for _ in 0..3 {
            rlock.release().unwrap();
        }
        assert!(!rlock.locked());
        let r2 = rlock.clone();
        let t = std::thread::Builder::new()
            .name("T2".into())
            .spawn(move || {
                r2.acquire();
                r2.acquire();
                let s = format!("{r2:?}");
                r2.release().unwrap();
                s
            })
            .unwrap();
        assert_eq!(
            t.join().unwrap(),
            format!("<RLock({}|T2, 2)>", current_process().name())
        );
        assert_eq!(format!("{rlock:?}"), "<RLock(SomeOtherThread, nonzero)>");
        let out = m.list(Vec::<String>::new()).unwrap();
        let other = ctx.rlock().unwrap();
        let p = ctx
            .process(repr_after_acquire_release, (other.clone(), out.clone()))
            .with_name("P1");
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(out.get(0).unwrap(), "<RLock(P1, 1)>");
        let held = ctx.rlock().unwrap();
        let p = ctx.process(hold_rlock, (held.clone(),));
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(format!("{held:?}"), "<RLock(SomeOtherProcess, nonzero)>");

        for lock in [
            AnyLock::from(ctx.lock().unwrap()),
            ctx.rlock().unwrap().into(),
        ] {
            let event = ctx.event().unwrap();
            let res = ctx.value(false).unwrap();
            let p = ctx.process(locked_in_child, (lock.clone(), event.clone(), res.clone()));
            p.start().unwrap();
            assert!(event.wait(Some(LONG)));
            match &lock {
                AnyLock::Lock(l) => assert!(l.locked()),
                AnyLock::RLock(r) => assert!(r.locked()),
            }
            assert!(res.get());
            join_ok(&p);
        }
    });
}

/// `test_shared_memory_ShareableList_pickling`: a list of ints takes strings of up to 8
/// bytes in place (`sl[3] = "newvalue"`), seen through every handle; other 8-byte
/// types swap in too.
#[test]
fn shareable_list_int_slots_take_short_strings() {
    use shared_memory::Item;
    let sl = ShareableList::new(&(0..10).map(Item::Int).collect::<Vec<_>>()).unwrap();
    let other: ShareableList<Item> = ShareableList::attach(sl.shm().name()).unwrap();
    assert_eq!(other.get(9).unwrap(), Item::Int(9));
    other.set(4, Item::Str("changed".into())).unwrap();
    assert_eq!(sl.get(4).unwrap(), Item::Str("changed".into()));
    sl.set(3, Item::Str("newvalue".into())).unwrap();
    assert_eq!(other.get(3).unwrap(), Item::Str("newvalue".into()));
    assert!(sl.set(3, Item::Str("newvalue!".into())).is_err());
    sl.set(5, Item::Float(2.5)).unwrap();
    sl.set(6, Item::Bool(false)).unwrap();
    sl.set(7, Item::None).unwrap();
    sl.set(8, Item::Bytes(b"8 bytes!".to_vec())).unwrap();
    assert_eq!(
        other.items().unwrap(),
        vec![
            Item::Int(0),
            Item::Int(1),
            Item::Int(2),
            Item::Str("newvalue".into()),
            Item::Str("changed".into()),
            Item::Float(2.5),
            Item::Bool(false),
            Item::None,
            Item::Bytes(b"8 bytes!".to_vec()),
            Item::Int(9),
        ]
    );
    assert_eq!(sl.format(), other.format());
    sl.shm().unlink().unwrap();
}

/// The docs' "Proxy objects" and ShareableList reprs: a proxy inside a list shows as
/// its repr in the list's `Display`, a `ShareableList`'s `Debug` is
/// `ShareableList([0, 1, 2, 3, 4], name='…')`.
#[test]
fn docs_reprs() {
    let m = Manager::new().unwrap();
    let l = m
        .list((0..10).map(|i| i * i).collect::<Vec<i64>>())
        .unwrap();
    assert_eq!(l.to_string(), "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]");
    assert!(format!("{l:?}").starts_with("<ListProxy typeid 'list' at 0x"));
    assert_eq!(l.get(4).unwrap(), 16);
    assert_eq!(l.slice(2..5).unwrap(), vec![4, 9, 16]);
    let a = m.list(Vec::<ListProxy<String>>::new()).unwrap();
    let b = m.list(Vec::<String>::new()).unwrap();
    a.append(b.clone()).unwrap();
    let shown = a.to_string();
    assert!(shown.starts_with("[<ListProxy"), "{shown}");
    assert!(shown.contains("typeid 'list' at 0x"), "{shown}");
    assert_eq!(b.to_string(), "[]");
    b.append("hello".into()).unwrap();
    assert_eq!(a.get(0).unwrap().to_string(), "['hello']");
    let e = m.event().unwrap();
    assert!(
        format!("{e:?}").starts_with("<EventProxy typeid 'Event' at 0x"),
        "{e:?}"
    );

    let sl = ShareableList::new(&(0..5i64).collect::<Vec<_>>()).unwrap();
    let c: ShareableList<i64> = ShareableList::attach(sl.shm().name()).unwrap();
    assert_eq!(
        format!("{c:?}"),
        format!("ShareableList([0, 1, 2, 3, 4], name='{}')", sl.shm().name())
    );
    c.set(4, -999).unwrap();
    assert_eq!(sl.get(4).unwrap(), -999);
    sl.shm().unlink().unwrap();
    // the docs' trailing-NUL note
    let demo = ShareableList::new(&[
        shared_memory::Item::Str("?\0".into()),
        shared_memory::Item::Bytes(b"\x03\x02\x01\0\0\0".to_vec()),
    ])
    .unwrap();
    assert_eq!(demo.get(0).unwrap(), shared_memory::Item::Str("?".into()));
    assert_eq!(
        demo.get(1).unwrap(),
        shared_memory::Item::Bytes(b"\x03\x02\x01".to_vec())
    );
    demo.shm().unlink().unwrap();
}

/// Python's list and queue semantics through proxies: `insert` clamps its index,
/// negative indexes count from the end, `del l[i]`, queue `Empty`/`Full` after their
/// timeouts, `task_done` past the items put is ValueError, an array proxy's index out
/// of range is IndexError.
#[test]
fn proxy_python_semantics() {
    let m = Manager::new().unwrap();
    let l = m.list(vec![1i64, 2, 3]).unwrap();
    l.insert(100, 4).unwrap();
    l.insert(-100, 0).unwrap();
    assert_eq!(l.to_vec().unwrap(), vec![0, 1, 2, 3, 4]);
    l.insert(-1, 9).unwrap();
    assert_eq!(l.to_vec().unwrap(), vec![0, 1, 2, 3, 9, 4]);
    assert_eq!(l.pop_at(-2).unwrap(), 9);
    assert_eq!(l.get(-5).unwrap(), 0);
    assert!(l.get(-6).is_err());
    l.set(-1, 40).unwrap();
    l.delete(0).unwrap();
    assert_eq!(l.to_vec().unwrap(), vec![1, 2, 3, 40]);
    assert!(matches!(l.set(4, 0), Err(Error::Remote { kind, .. }) if kind == "IndexError"));
    assert!(matches!(l.delete(9), Err(Error::Remote { kind, .. }) if kind == "IndexError"));
    l.sort_reverse().unwrap();
    assert_eq!(l.to_vec().unwrap(), vec![40, 3, 2, 1]);

    let q = m.queue::<i32>(1).unwrap();
    let (r, took) = timed(|| q.get_timeout(TIMEOUT1));
    assert!(matches!(r, Err(Error::Empty)), "{r:?}");
    almost(took, TIMEOUT1);
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    q.put(1).unwrap();
    assert!(matches!(q.try_put(2), Err(Error::Full)));
    let (r, took) = timed(|| q.put_timeout(2, TIMEOUT1));
    assert!(matches!(r, Err(Error::Full)), "{r:?}");
    almost(took, TIMEOUT1);
    assert_eq!(q.get().unwrap(), 1);

    let jq = m.joinable_queue::<i32>(0).unwrap();
    jq.put(1).unwrap();
    assert_eq!(jq.get().unwrap(), 1);
    jq.task_done().unwrap();
    assert!(jq.task_done().is_err());
    within(LONG, "join with nothing left", move || jq.join().unwrap());

    let a = m.array(vec![1.5f64, 2.5]).unwrap();
    assert!(matches!(a.get(2), Err(Error::Remote { kind, .. }) if kind == "IndexError"));
    assert_eq!(a.get(-1).unwrap(), 2.5);
    a.set(0, 0.5).unwrap();
    assert_eq!(a.to_vec().unwrap(), vec![0.5, 2.5]);
}

#[mp::task]
fn take_and_notify(cond: Condition, flag: Value<bool>) {
    let _g = cond.lock();
    flag.set(true);
    cond.notify_all().unwrap();
}

/// `Condition.wait` on an `RLock` taken several times releases it completely (another
/// process gets it meanwhile) and restores the depth; `wait_for` whose predicate is
/// already true returns at once without releasing.
#[test]
fn condition_wait_releases_a_recursive_lock_completely() {
    for_each_method(|ctx| {
        let rlock = ctx.rlock().unwrap();
        let cond = ctx.condition(Some(rlock.clone().into())).unwrap();
        let flag = ctx.value(false).unwrap();
        rlock.acquire();
        rlock.acquire();
        cond.acquire();
        assert_eq!(rlock.recursion_count(), 3);
        let p = ctx.process(take_and_notify, (cond.clone(), flag.clone()));
        p.start().unwrap();
        let ok = cond.wait_for(|| flag.get(), Some(LONG));
        assert!(ok);
        assert_eq!(rlock.recursion_count(), 3);
        assert!(rlock.is_owned());
        let (r, took) = timed(|| cond.wait_for(|| true, Some(LONG)));
        assert!(r);
        assert!(took < Duration::from_secs(1));
        for _ in 0..3 {
            rlock.release().unwrap();
        }
        assert!(rlock.release().is_err());
        join_ok(&p);
    });
}

#[mp::task]
fn mgr_timeout_f(barrier: BarrierProxy, results: ListProxy<bool>, default: bool) {
    let i = barrier.wait_timeout(LONG).unwrap();
    if i == N / 2 {
        // one party is late
        std::thread::sleep(Duration::from_millis(800));
    }
    let r = if default {
        barrier.wait()
    } else {
        barrier.wait_timeout(Duration::from_millis(400))
    };
    if let Err(Error::BrokenBarrier) = r {
        results.append(true).unwrap();
    }
}

/// `_TestBarrier.test_timeout` and `test_default_timeout` on a manager's barrier: the
/// timeout breaks the barrier for every party, the late one included.
#[test]
fn manager_barrier_timeouts() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        for default in [false, true] {
            let barrier = if default {
                m.barrier_timeout(N, Duration::from_millis(400)).unwrap()
            } else {
                m.barrier_timeout(N, LONG).unwrap()
            };
            let results = m.list(Vec::<bool>::new()).unwrap();
            run_parties(
                || ctx.process(mgr_timeout_f, (barrier.clone(), results.clone(), default)),
                || mgr_timeout_f(barrier.clone(), results.clone(), default),
            );
            assert_eq!(results.len().unwrap(), N, "default timeout: {default}");
            assert!(barrier.broken().unwrap());
        }
    });
}

/// Callbacks of every job run in the pool's one result-handling thread (not the
/// caller's), as CPython's `_handle_results` thread, for both pools.
#[test]
fn callbacks_run_in_one_result_thread() {
    use std::sync::{Arc, Mutex};
    let ids: Arc<Mutex<Vec<std::thread::ThreadId>>> = Arc::default();
    let pool = Pool::new(Some(2)).unwrap();
    let mut results = Vec::new();
    for i in 0..6 {
        let (a, b) = (ids.clone(), ids.clone());
        results.push(pool.apply_async_with(
            fail_on,
            (i, 3),
            move |_| a.lock().unwrap().push(std::thread::current().id()),
            move |_| b.lock().unwrap().push(std::thread::current().id()),
        ));
    }
    let a = ids.clone();
    let m = pool.map_async_with(
        sqr,
        0..4,
        move |_| a.lock().unwrap().push(std::thread::current().id()),
        |_| {},
    );
    for r in &results {
        r.wait_timeout(LONG);
    }
    m.get_timeout(LONG).unwrap();
    let seen = ids.lock().unwrap().clone();
    assert_eq!(seen.len(), 7);
    assert!(seen.iter().all(|t| *t == seen[0]), "{seen:?}");
    assert_ne!(seen[0], std::thread::current().id());

    let ids: Arc<Mutex<Vec<std::thread::ThreadId>>> = Arc::default();
    let tp = mp::dummy::Pool::new(Some(3)).unwrap();
    let rs: Vec<_> = (0..6)
        .map(|i| {
            let a = ids.clone();
            tp.apply_async_with(
                move |x: i64| x + i,
                (1,),
                move |_| a.lock().unwrap().push(std::thread::current().id()),
                |_| {},
            )
        })
        .collect();
    for r in &rs {
        r.get_timeout(LONG).unwrap();
    }
    let seen = ids.lock().unwrap().clone();
    assert_eq!(seen.len(), 6);
    assert!(seen.iter().all(|t| *t == seen[0]), "{seen:?}");
}

/// Leaving an `imap` over an endless input early (`break` out of the loop) leaves the
/// pool usable, and `close()` + `join()` then return (nothing keeps feeding).
#[test]
fn abandoned_imap_does_not_hold_the_pool() {
    for_each_method(|ctx| {
        let pool = std::sync::Arc::new(ctx.pool(Some(2)).unwrap());
        let firsts: Vec<i64> = pool.imap(sqr, 0i64..).take(3).map(|r| r.unwrap()).collect();
        assert_eq!(firsts, vec![0, 1, 4]);
        let mut it = pool.imap_unordered_chunked(sqr, 0i64.., 7);
        assert!(it.next().unwrap().is_ok());
        drop(it);
        assert_eq!(pool.map(sqr, 0..5).unwrap(), squares(0..5));
        pool.close().unwrap();
        let p = pool.clone();
        within(LONG, "join after abandoned imaps", move || {
            p.join().unwrap()
        });
    });
    let pool = std::sync::Arc::new(mp::dummy::Pool::new(Some(2)).unwrap());
    let firsts: Vec<i64> = pool.imap(sqr, 0i64..).take(3).map(|r| r.unwrap()).collect();
    assert_eq!(firsts, vec![0, 1, 4]);
    pool.close().unwrap();
    let p = pool.clone();
    within(LONG, "thread join after an abandoned imap", move || {
        p.join().unwrap()
    });
}

#[mp::task]
fn fail_or_mark(x: i64, marks: Array<u8>) -> i64 {
    if x == 0 {
        panic!("ValueError: {x}");
    }
    std::thread::sleep(Duration::from_millis(300));
    marks.set(x as usize, 1).unwrap();
    x
}

/// `test_map_no_failfast` (bpo-23992): a failed `map` is only ready once every one of
/// its tasks is done (CPython's `MapResult` waits for all before it reports the first
/// error), so when `map` returns its error no task of it is still running.
#[test]
fn map_reports_its_error_after_every_task_is_done() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(3)).unwrap();
        let marks: Array<u8> = Array::new(3).unwrap();
        let r = pool.starmap_chunked(fail_or_mark, (0..3).map(|x| (x, marks.clone())), 1);
        assert!(matches!(r, Err(Error::TaskPanicked { .. })), "{r:?}");
        assert_eq!(
            marks.to_vec(),
            vec![0, 1, 1],
            "map returned while tasks still ran"
        );
        let marks: Array<u8> = Array::new(3).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let m = pool.map_async_with(
            fail_or_mark_pair,
            (0..3).map(|x| (x, marks.clone())),
            |_| panic!("no success callback"),
            move |e| tx.send(e.to_string()).unwrap(),
        );
        assert!(matches!(
            m.get_timeout(Duration::from_millis(100)),
            Err(Error::Timeout)
        ));
        assert!(!m.ready());
        assert!(m.get_timeout(LONG).is_err());
        assert_eq!(marks.to_vec(), vec![0, 1, 1]);
        assert!(rx.recv_timeout(LONG).unwrap().contains("ValueError"));
        assert!(rx.try_recv().is_err(), "the error callback runs once");
    });
}

#[mp::task]
fn fail_or_mark_pair(p: (i64, Array<u8>)) -> i64 {
    fail_or_mark(p.0, p.1)
}

/// `TestResourceTracker.test_too_long_name_resource`: a name the OS refuses is an
/// error (no panic), as is the empty name (CPython: `shm_open("/")` fails).
#[test]
fn shared_memory_name_edges() {
    let long = "a".repeat(300);
    assert!(SharedMemory::create(Some(&long), 10).is_err());
    assert!(SharedMemory::attach(&long).is_err());
    assert!(SharedMemory::create(Some(""), 10).is_err());
    assert!(SharedMemory::attach("").is_err());
}

// ------------------------------------------------- _TestQueue, manager variant

#[mp::task]
fn mq_put_f(
    queue: mp::managers::QueueProxy<i32>,
    child_can_start: mp::managers::EventProxy,
    parent_can_continue: mp::managers::EventProxy,
) {
    assert!(child_can_start.wait(Some(LONG)).unwrap());
    for _ in 0..6 {
        queue.get_timeout(LONG).unwrap();
    }
    parent_can_continue.set().unwrap();
}

#[mp::task]
fn mq_get_f(
    queue: mp::managers::QueueProxy<i32>,
    child_can_start: mp::managers::EventProxy,
    parent_can_continue: mp::managers::EventProxy,
) {
    assert!(child_can_start.wait(Some(LONG)).unwrap());
    for i in 2..6 {
        queue.put(i).unwrap();
    }
    parent_can_continue.set().unwrap();
}

#[mp::task]
fn mq_task_done_f(q: mp::managers::JoinableQueueProxy<Option<i32>>) {
    while let Some(_x) = q.get_timeout(LONG).unwrap() {
        std::thread::sleep(Duration::from_millis(20));
        q.task_done().unwrap();
    }
}

/// `_TestQueue.test_put`, `test_get`, `test_qsize`, `test_task_done` on a manager's
/// queues: full/empty states, `Full`/`Empty` at once for the non-blocking forms and
/// after the timeout for the blocking ones, items from a child, `join` after
/// `task_done` from several children.
#[test]
fn manager_queues_like_test_queue() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let queue = m.queue::<i32>(6).unwrap();
        let (start, cont) = (m.event().unwrap(), m.event().unwrap());
        let p = ctx.process(mq_put_f, (queue.clone(), start.clone(), cont.clone()));
        p.start().unwrap();
        assert!(queue.empty().unwrap());
        assert!(!queue.full().unwrap());
        for i in 1..=5 {
            queue.put(i).unwrap();
        }
        queue.try_put(6).unwrap();
        assert!(!queue.empty().unwrap());
        assert!(queue.full().unwrap());
        let (r, took) = timed(|| queue.try_put(7));
        assert!(matches!(r, Err(Error::Full)));
        assert!(took < Duration::from_secs(1));
        let (r, took) = timed(|| queue.put_timeout(7, TIMEOUT1));
        assert!(matches!(r, Err(Error::Full)));
        almost(took, TIMEOUT1);
        let (r, took) = timed(|| queue.put_timeout(7, Duration::ZERO));
        assert!(matches!(r, Err(Error::Full)));
        assert!(took < Duration::from_secs(1));
        start.set().unwrap();
        assert!(cont.wait(Some(LONG)).unwrap());
        assert!(queue.empty().unwrap());
        assert!(!queue.full().unwrap());
        join_ok(&p);

        let queue = m.queue::<i32>(0).unwrap();
        let (start, cont) = (m.event().unwrap(), m.event().unwrap());
        let p = ctx.process(mq_get_f, (queue.clone(), start.clone(), cont.clone()));
        p.start().unwrap();
        assert!(queue.empty().unwrap());
        start.set().unwrap();
        assert!(cont.wait(Some(LONG)).unwrap());
        assert!(!queue.empty().unwrap());
        assert_eq!(queue.get().unwrap(), 2);
        assert_eq!(queue.get_timeout(LONG).unwrap(), 3);
        assert_eq!(queue.get_timeout(Duration::from_secs(1)).unwrap(), 4);
        assert_eq!(queue.try_get().unwrap(), 5);
        assert!(queue.empty().unwrap());
        let (r, took) = timed(|| queue.try_get());
        assert!(matches!(r, Err(Error::Empty)));
        assert!(took < Duration::from_secs(1));
        let (r, took) = timed(|| queue.get_timeout(TIMEOUT3));
        assert!(matches!(r, Err(Error::Empty)));
        almost(took, TIMEOUT3);
        join_ok(&p);

        let q = m.queue::<i32>(0).unwrap();
        assert_eq!(q.qsize().unwrap(), 0);
        q.put(1).unwrap();
        assert_eq!(q.qsize().unwrap(), 1);
        q.put(5).unwrap();
        assert_eq!(q.qsize().unwrap(), 2);
        q.get().unwrap();
        assert_eq!(q.qsize().unwrap(), 1);
        q.get().unwrap();
        assert_eq!(q.qsize().unwrap(), 0);

        let jq = m.joinable_queue::<Option<i32>>(0).unwrap();
        let workers: Vec<Process> = (0..4)
            .map(|_| ctx.process(mq_task_done_f, (jq.clone(),)))
            .collect();
        for w in &workers {
            w.start().unwrap();
        }
        for i in 0..10 {
            jq.put(Some(i)).unwrap();
        }
        assert!(jq.join_timeout(LONG).unwrap());
        for _ in &workers {
            jq.put(None).unwrap();
        }
        for w in &workers {
            join_ok(w);
        }
    });
}

#[mp::task]
fn mgr_multipass(barrier: BarrierProxy, r0: ListProxy<bool>, r1: ListProxy<bool>, n: usize) {
    let m = barrier.parties().unwrap();
    assert_eq!(m, N);
    for i in 0..n {
        r0.append(true).unwrap();
        assert_eq!(r1.len().unwrap(), i * m);
        barrier.wait().unwrap();
        r1.append(true).unwrap();
        assert_eq!(r0.len().unwrap(), (i + 1) * m);
        barrier.wait().unwrap();
    }
    assert_eq!(barrier.n_waiting().unwrap(), 0);
    assert!(!barrier.broken().unwrap());
}

/// `_TestBarrier.test_barrier_10` and `test_wait_return` on a manager's barrier: ten
/// rounds in lockstep (a party of the next round cannot slip into the current one).
#[test]
fn manager_barrier_lockstep_rounds() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let barrier = m.barrier_timeout(N, LONG).unwrap();
        let (r0, r1) = (
            m.list(Vec::<bool>::new()).unwrap(),
            m.list(Vec::<bool>::new()).unwrap(),
        );
        run_parties(
            || ctx.process(mgr_multipass, (barrier.clone(), r0.clone(), r1.clone(), 10)),
            || mgr_multipass(barrier.clone(), r0.clone(), r1.clone(), 10),
        );
        assert_eq!(r0.len().unwrap(), 10 * N);
    });
}

/// Dropping a `SharedMemory` or `ShareableList` handle closes it but does not unlink the
/// segment (CPython: only `unlink()` or the resource tracker at exit removes it), so
/// another attach by name still works.
#[test]
fn dropping_a_handle_does_not_unlink() {
    let name = {
        let mut shm = SharedMemory::create(None, 64).unwrap();
        shm.buf_mut()[0] = 7;
        shm.name().to_string()
    };
    let again = SharedMemory::attach(&name).unwrap();
    assert_eq!(again.buf()[0], 7);
    again.unlink().unwrap();
    let name = {
        let sl = ShareableList::new(&[1i64, 2, 3]).unwrap();
        sl.shm().name().to_string()
    };
    let sl: ShareableList<i64> = ShareableList::attach(&name).unwrap();
    assert_eq!(sl.to_vec().unwrap(), vec![1, 2, 3]);
    sl.shm().unlink().unwrap();
}

/// `terminate()` while an `imap` and a `map_async` are in flight: the iterator ends
/// (its remaining items fail) and the result reports an error, within a bound; an item
/// already ready is still returned by `next_timeout(ZERO)`.
#[test]
fn terminate_ends_running_imaps() {
    for_each_method(|ctx| {
        let pool = std::sync::Arc::new(ctx.pool(Some(2)).unwrap());
        let mut it = pool.imap(
            sqr_after_pair,
            vec![(1i64, 0u64), (2, 60_000), (3, 60_000), (4, 0)],
        );
        let first = it.next_timeout(LONG);
        assert!(matches!(first, Some(Ok(1))), "{first:?}");
        let m = pool.map_async_chunked(sqr_after_pair, vec![(5i64, 60_000u64); 4], 1);
        let p = pool.clone();
        within(LONG, "terminate", move || p.terminate().unwrap());
        let rest: Vec<Result<i64>> = within(LONG, "imap after terminate", move || it.collect());
        assert!(
            !rest.is_empty() && rest.iter().all(|r| r.is_err()),
            "{rest:?}"
        );
        assert!(m.get_timeout(LONG).is_err());

        let pool = ctx.pool(Some(1)).unwrap();
        let mut it = pool.imap(sqr, vec![3i64]);
        assert!(it.next_timeout(LONG).is_some());
        // a non-blocking next: Timeout until the item is ready, then the item
        let mut it2 = pool.imap(sqr, vec![4i64]);
        let t = Instant::now();
        let r = loop {
            match it2.next_timeout(Duration::ZERO) {
                Some(Err(Error::Timeout)) if t.elapsed() < LONG => std::thread::yield_now(),
                other => break other,
            }
        };
        assert!(matches!(r, Some(Ok(16))), "{r:?}");
        assert!(it.next_timeout(Duration::ZERO).is_none());
    });
}

#[mp::task]
fn append_from_child(l: ListProxy<i64>, x: i64) {
    l.append(x).unwrap();
}

/// A proxy of a manager started with its own authkey works in a child it is passed to
/// (CPython pickles the authkey into a proxy while spawning a child).
#[test]
fn proxies_of_a_custom_authkey_manager_work_in_children() {
    for_each_method(|ctx| {
        let m = SyncManager::with_context(None, b"my own key".to_vec(), ctx);
        m.start().unwrap();
        let l = m.list(Vec::<i64>::new()).unwrap();
        let p = ctx.process(append_from_child, (l.clone(), 5));
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(l.to_vec().unwrap(), vec![5]);
        m.shutdown().unwrap();
    });
}

#[mp::task]
fn append_pair(p: (ListProxy<i64>, i64)) -> i64 {
    p.0.append(p.1).unwrap();
    p.1
}

/// Proxies in pool task arguments (CPython pickles them like any argument): every
/// worker reaches the manager; the referent survives the workers' copies.
#[test]
fn proxies_in_pool_tasks() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let l = m.list(Vec::<i64>::new()).unwrap();
        let pool = ctx.pool(Some(2)).unwrap();
        let got = pool
            .map_chunked(append_pair, (0..20).map(|i| (l.clone(), i)), 3)
            .unwrap();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
        let mut all = l.to_vec().unwrap();
        all.sort();
        assert_eq!(all, (0..20).collect::<Vec<_>>());
        drop(pool);
        assert_eq!(l.len().unwrap(), 20);
    });
}

#[mp::task]
fn exploding_action() {
    panic!("RuntimeError in the barrier's action");
}

#[mp::task]
fn expect_broken(barrier: Barrier, broken: Value<i32>) {
    if let Err(Error::BrokenBarrier) = barrier.wait() {
        *broken.lock() += 1;
    }
}

/// threading's `test_action_exception` (multiprocessing's Barrier is threading's
/// algorithm): an action that fails breaks the barrier for every party, the one that
/// ran it included; `reset` makes it usable again.
#[test]
fn barrier_action_that_panics_breaks_it() {
    for_each_method(|ctx| {
        let barrier = ctx.barrier(N, Some(exploding_action), Some(LONG)).unwrap();
        let broken = ctx.value(0i32).unwrap();
        run_parties(
            || ctx.process(expect_broken, (barrier.clone(), broken.clone())),
            || expect_broken(barrier.clone(), broken.clone()),
        );
        assert_eq!(broken.get() as usize, N);
        assert!(barrier.broken());
        barrier.reset();
        assert!(!barrier.broken());
        assert_eq!(barrier.n_waiting(), 0);
    });
}
