//! Ports of CPython's `_TestLock`, `_TestSemaphore`, `_TestCondition`, `_TestEvent` and
//! `_TestBarrier` (Lib/test/_test_multiprocessing.py), written against API.md's names and
//! run under every start method with real processes.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::*;
use std::time::{Duration, Instant};

/// Bound on every wait that should succeed.
const LONG: Duration = Duration::from_secs(30);
/// CPython's DELTA: only used to check that something has *not* happened.
const DELTA: Duration = Duration::from_millis(100);

// ------------------------------------------------------------------------- _TestLock

#[test]
fn test_lock() {
    let lock = Lock::new().unwrap();
    assert!(lock.acquire());
    assert!(!lock.try_acquire());
    assert!(!lock.acquire_timeout(Duration::ZERO));
    lock.release().unwrap();
    assert!(matches!(lock.release(), Err(Error::InvalidState(_))));
}

#[test]
fn test_rlock() {
    let lock = RLock::new().unwrap();
    assert!(lock.acquire());
    assert!(lock.acquire());
    assert!(lock.acquire());
    lock.release().unwrap();
    lock.release().unwrap();
    lock.release().unwrap();
    assert!(matches!(lock.release(), Err(Error::InvalidState(_))));
}

#[test]
fn test_lock_context() {
    let lock = Lock::new().unwrap();
    {
        let _g = lock.lock();
        assert!(!lock.try_acquire());
    }
    assert!(lock.try_acquire());
    lock.release().unwrap();
    let r = RLock::new().unwrap();
    {
        let _g = r.lock();
        let _g2 = r.lock();
    }
    assert!(r.release().is_err());
}

#[mp::task]
fn release_lock(lock: Lock) {
    lock.release().unwrap();
}

#[mp::task]
fn release_rlock(lock: RLock) {
    // not the owner: refused, and still held by the parent
    assert!(matches!(lock.release(), Err(Error::InvalidState(_))));
    assert!(!lock.try_acquire());
}

#[test]
fn lock_released_by_other_process_rlock_not() {
    for_each_method(|ctx| {
        let lock = ctx.lock().unwrap();
        lock.acquire();
        let p = ctx.process(release_lock, (lock.clone(),));
        p.start().unwrap();
        join_ok(&p);
        assert!(lock.acquire_timeout(LONG));
        lock.release().unwrap();

        let r = ctx.rlock().unwrap();
        r.acquire();
        let p = ctx.process(release_rlock, (r.clone(),));
        p.start().unwrap();
        join_ok(&p);
        r.release().unwrap();
    });
}

// -------------------------------------------------------------------- _TestSemaphore

fn check_semaphore(sem: &Semaphore) {
    assert_eq!(sem.get_value(), 2);
    assert!(sem.acquire());
    assert_eq!(sem.get_value(), 1);
    assert!(sem.acquire());
    assert_eq!(sem.get_value(), 0);
    assert!(!sem.try_acquire());
    assert_eq!(sem.get_value(), 0);
    sem.release().unwrap();
    assert_eq!(sem.get_value(), 1);
    sem.release().unwrap();
    assert_eq!(sem.get_value(), 2);
}

#[test]
fn test_semaphore() {
    let sem = Semaphore::new(2).unwrap();
    check_semaphore(&sem);
    sem.release().unwrap();
    assert_eq!(sem.get_value(), 3);
    sem.release().unwrap();
    assert_eq!(sem.get_value(), 4);
}

#[test]
fn test_bounded_semaphore() {
    let sem = BoundedSemaphore::new(2).unwrap();
    check_semaphore(&sem);
    assert!(matches!(sem.release(), Err(Error::InvalidState(_))));
    assert_eq!(sem.get_value(), 2);
    {
        let _g = sem.lock();
        assert_eq!(sem.get_value(), 1);
    }
    assert_eq!(sem.get_value(), 2);
}

#[test]
fn test_semaphore_timeout() {
    let sem = Semaphore::new(0).unwrap();
    let (r, e) = timed(|| sem.try_acquire());
    assert!(!r);
    almost(e, Duration::ZERO);
    let (r, e) = timed(|| sem.acquire_timeout(Duration::ZERO));
    assert!(!r);
    almost(e, Duration::ZERO);
    let (r, e) = timed(|| sem.acquire_timeout(TIMEOUT2));
    assert!(!r);
    almost(e, TIMEOUT2);
    let (r, e) = timed(|| sem.acquire_timeout(TIMEOUT3));
    assert!(!r);
    almost(e, TIMEOUT3);
}

#[mp::task]
fn sem_release_later(sem: Semaphore) {
    std::thread::sleep(Duration::from_millis(50));
    sem.release().unwrap();
}

#[test]
fn semaphore_across_processes() {
    for_each_method(|ctx| {
        let sem = ctx.semaphore(0).unwrap();
        let p = ctx.process(sem_release_later, (sem.clone(),));
        p.start().unwrap();
        assert!(sem.acquire_timeout(LONG));
        join_ok(&p);
        assert_eq!(sem.get_value(), 0);
    });
}

// -------------------------------------------------------------------- _TestCondition

#[mp::task]
fn cond_f(cond: Condition, sleeping: Semaphore, woken: Semaphore, timeout: Option<Duration>) {
    cond.acquire();
    sleeping.release().unwrap();
    cond.wait(timeout);
    woken.release().unwrap();
    cond.release().unwrap();
}

fn start_cond_pair(
    ctx: &Context,
    cond: &Condition,
    sleeping: &Semaphore,
    woken: &Semaphore,
    timeout: Option<Duration>,
    procs: &mut Vec<Process>,
    threads: &mut Vec<std::thread::JoinHandle<()>>,
) {
    let p = ctx.process(
        cond_f,
        (cond.clone(), sleeping.clone(), woken.clone(), timeout),
    );
    p.start().unwrap();
    procs.push(p);
    let (c, s, w) = (cond.clone(), sleeping.clone(), woken.clone());
    threads.push(std::thread::spawn(move || cond_f(c, s, w, timeout)));
}

fn finish(procs: Vec<Process>, threads: Vec<std::thread::JoinHandle<()>>) {
    for p in &procs {
        join_ok(p);
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn test_notify() {
    for_each_method(|ctx| {
        let cond = ctx.condition(None).unwrap();
        let sleeping = ctx.semaphore(0).unwrap();
        let woken = ctx.semaphore(0).unwrap();
        let (mut ps, mut ts) = (vec![], vec![]);
        start_cond_pair(&ctx, &cond, &sleeping, &woken, None, &mut ps, &mut ts);

        // wait for both children to start sleeping
        assert!(sleeping.acquire_timeout(LONG));
        assert!(sleeping.acquire_timeout(LONG));

        std::thread::sleep(DELTA);
        assert_eq!(woken.get_value(), 0);

        cond.acquire();
        cond.notify(1).unwrap();
        cond.release().unwrap();
        reaches(|| woken.get_value(), 1);
        std::thread::sleep(DELTA);
        assert_eq!(woken.get_value(), 1);

        cond.acquire();
        cond.notify(1).unwrap();
        cond.release().unwrap();
        reaches(|| woken.get_value(), 2);
        finish(ps, ts);
    });
}

#[test]
fn test_notify_all() {
    for_each_method(|ctx| {
        let cond = ctx.condition(None).unwrap();
        let sleeping = ctx.semaphore(0).unwrap();
        let woken = ctx.semaphore(0).unwrap();
        let (mut ps, mut ts) = (vec![], vec![]);
        // some that time out
        for _ in 0..3 {
            start_cond_pair(
                &ctx,
                &cond,
                &sleeping,
                &woken,
                Some(TIMEOUT1),
                &mut ps,
                &mut ts,
            );
        }
        for _ in 0..6 {
            assert!(sleeping.acquire_timeout(LONG));
        }
        for _ in 0..6 {
            assert!(woken.acquire_timeout(LONG));
        }
        assert_eq!(woken.get_value(), 0);
        finish(ps, ts);

        let (mut ps, mut ts) = (vec![], vec![]);
        for _ in 0..3 {
            start_cond_pair(&ctx, &cond, &sleeping, &woken, None, &mut ps, &mut ts);
        }
        for _ in 0..6 {
            assert!(sleeping.acquire_timeout(LONG));
        }
        std::thread::sleep(DELTA);
        assert_eq!(woken.get_value(), 0);

        cond.acquire();
        cond.notify_all().unwrap();
        cond.release().unwrap();
        reaches(|| woken.get_value(), 6);
        finish(ps, ts);
    });
}

#[test]
fn test_notify_n() {
    for_each_method(|ctx| {
        let cond = ctx.condition(None).unwrap();
        let sleeping = ctx.semaphore(0).unwrap();
        let woken = ctx.semaphore(0).unwrap();
        let (mut ps, mut ts) = (vec![], vec![]);
        for _ in 0..3 {
            start_cond_pair(&ctx, &cond, &sleeping, &woken, None, &mut ps, &mut ts);
        }
        for _ in 0..6 {
            assert!(sleeping.acquire_timeout(LONG));
        }
        std::thread::sleep(DELTA);
        assert_eq!(woken.get_value(), 0);

        cond.acquire();
        cond.notify(2).unwrap();
        cond.release().unwrap();
        reaches(|| woken.get_value(), 2);
        std::thread::sleep(DELTA);
        assert_eq!(woken.get_value(), 2);

        cond.acquire();
        cond.notify(4).unwrap();
        cond.release().unwrap();
        reaches(|| woken.get_value(), 6);

        // doesn't do anything more
        cond.acquire();
        cond.notify(3).unwrap();
        cond.release().unwrap();
        assert_eq!(woken.get_value(), 6);
        finish(ps, ts);
    });
}

#[test]
fn test_condition_timeout() {
    let cond = Condition::new(None).unwrap();
    cond.acquire();
    let (res, e) = timed(|| cond.wait(Some(TIMEOUT1)));
    cond.release().unwrap();
    assert!(!res);
    almost(e, TIMEOUT1);
}

/// The two locks a `Condition` can sit on (CPython's tests use only the default
/// `RLock`; mp's Condition treats both, so each test below runs on both).
fn lock_kinds(ctx: &Context) -> [AnyLock; 2] {
    [ctx.lock().unwrap().into(), ctx.rlock().unwrap().into()]
}

/// Whether the calling thread could take `lock` now without blocking (and give it back).
fn acquirable(lock: &AnyLock) -> bool {
    let got = lock.try_acquire();
    if got {
        lock.release().unwrap();
    }
    got
}

#[test]
fn condition_on_given_lock() {
    for lock in lock_kinds(&Context::default()) {
        let reentrant = matches!(lock, AnyLock::RLock(_));
        let cond = Condition::new(Some(lock.clone())).unwrap();
        {
            let _g = cond.lock();
            // the condition's lock is `lock`: held (an RLock by this thread, so again)
            assert_eq!(acquirable(&lock), reentrant);
            if reentrant {
                let _g2 = cond.lock();
                assert!(!cond.wait(Some(Duration::from_millis(10))));
            } else {
                assert!(!cond.wait(Some(Duration::from_millis(10))));
            }
            // wait gave the lock back to us
            assert_eq!(acquirable(&lock), reentrant);
        }
        assert!(acquirable(&lock));
    }
}

#[test]
fn notify_on_either_lock_kind() {
    for_each_method(|ctx| {
        for lock in lock_kinds(&ctx) {
            let cond = ctx.condition(Some(lock)).unwrap();
            let sleeping = ctx.semaphore(0).unwrap();
            let woken = ctx.semaphore(0).unwrap();
            let (mut ps, mut ts) = (vec![], vec![]);
            start_cond_pair(&ctx, &cond, &sleeping, &woken, None, &mut ps, &mut ts);
            assert!(sleeping.acquire_timeout(LONG));
            assert!(sleeping.acquire_timeout(LONG));
            cond.acquire();
            cond.notify(1).unwrap();
            cond.release().unwrap();
            reaches(|| woken.get_value(), 1);
            cond.acquire();
            cond.notify_all().unwrap();
            cond.release().unwrap();
            reaches(|| woken.get_value(), 2);
            finish(ps, ts);
        }
    });
}

#[test]
fn notify_without_lock_is_an_error() {
    let cond = Condition::new(None).unwrap();
    assert!(cond.notify(1).is_err());
    assert!(cond.notify_all().is_err());
}

#[mp::task]
fn waitfor_f(cond: Condition, state: Value<i32>) {
    let _g = cond.lock();
    state.set(0);
    cond.notify(1).unwrap();
    let t = Instant::now();
    let result = cond.wait_for(|| state.get() == 4, Some(LONG));
    assert!(result && state.get() == 4);
    // four notifications 10 ms apart, not a timeout
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

/// A waiter that starts waiting right after a `notify` must not take the wake-up meant
/// for the one that was already waiting (CPython's notify waits for the woken).
#[test]
fn notify_is_not_stolen_by_a_later_waiter() {
    let cond = Condition::new(None).unwrap();
    let state = Value::new(-1i32).unwrap();
    let (c2, s2) = (cond.clone(), state.clone());
    let t = std::thread::spawn(move || waitfor_f(c2, s2));
    let t0 = Instant::now();
    {
        let _g = cond.lock();
        assert!(cond.wait_for(|| state.get() == 0, Some(LONG)));
    }
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(10));
        let _g = cond.lock();
        *state.lock() += 1;
        cond.notify(1).unwrap();
    }
    t.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

#[test]
fn test_waitfor() {
    for_each_method(|ctx| {
        let cond = ctx.condition(None).unwrap();
        let state = Value::new(-1i32).unwrap();
        let p = ctx.process(waitfor_f, (cond.clone(), state.clone()));
        p.start().unwrap();
        {
            let _g = cond.lock();
            let result = cond.wait_for(|| state.get() == 0, Some(LONG));
            assert!(result);
            assert_eq!(state.get(), 0);
        }
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(10));
            let _g = cond.lock();
            *state.lock() += 1;
            cond.notify(1).unwrap();
        }
        join_ok(&p);
    });
}

#[mp::task]
fn waitfor_timeout_f(cond: Condition, state: Value<i32>, success: Value<bool>, sem: Semaphore) {
    sem.release().unwrap();
    let _g = cond.lock();
    let expected = Duration::from_millis(100);
    let t = Instant::now();
    let result = cond.wait_for(|| state.get() == 4, Some(expected));
    if !result && t.elapsed() >= expected {
        success.set(true);
    }
}

#[test]
fn test_waitfor_timeout() {
    for_each_method(|ctx| {
        let cond = ctx.condition(None).unwrap();
        let state = Value::new(0i32).unwrap();
        let success = Value::new(false).unwrap();
        let sem = ctx.semaphore(0).unwrap();
        let p = ctx.process(
            waitfor_timeout_f,
            (cond.clone(), state.clone(), success.clone(), sem.clone()),
        );
        p.start().unwrap();
        assert!(sem.acquire_timeout(LONG));
        // only 3 increments: state == 4 is never reached
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(10));
            let _g = cond.lock();
            *state.lock() += 1;
            cond.notify(1).unwrap();
        }
        join_ok(&p);
        assert!(success.get());
    });
}

#[mp::task]
fn wait_result_f(c: Condition) {
    let _g = c.lock();
    c.notify(1).unwrap();
}

#[test]
fn test_wait_result() {
    for_each_method(|ctx| {
        let c = ctx.condition(None).unwrap();
        let _g = c.lock();
        assert!(!c.wait(Some(Duration::ZERO)));
        assert!(!c.wait(Some(Duration::from_millis(100))));
        let p = ctx.process(wait_result_f, (c.clone(),));
        p.start().unwrap();
        assert!(c.wait(Some(Duration::from_secs(60))));
        drop(_g);
        join_ok(&p);
    });
}

// ------------------------------------------------------------------------ _TestEvent

#[mp::task]
fn event_f(event: Event) {
    std::thread::sleep(TIMEOUT2);
    event.set();
}

#[test]
fn test_event() {
    for_each_method(|ctx| {
        let event = ctx.event().unwrap();
        assert!(!event.is_set());
        let (r, e) = timed(|| event.wait(Some(Duration::ZERO)));
        assert!(!r);
        almost(e, Duration::ZERO);
        let (r, e) = timed(|| event.wait(Some(TIMEOUT1)));
        assert!(!r);
        almost(e, TIMEOUT1);

        event.set();
        assert!(event.is_set());
        let (r, e) = timed(|| event.wait(None));
        assert!(r);
        almost(e, Duration::ZERO);
        let (r, e) = timed(|| event.wait(Some(TIMEOUT1)));
        assert!(r);
        almost(e, Duration::ZERO);

        event.clear();
        assert!(!event.is_set());
        let p = ctx.process(event_f, (event.clone(),));
        p.start().unwrap();
        assert!(event.wait(Some(LONG)));
        join_ok(&p);
    });
}

#[test]
fn test_event_repr() {
    let event = Event::new().unwrap();
    let re = |s: &str, state: &str| {
        assert!(s.starts_with("<Event at "), "{s}");
        assert!(s.ends_with(&format!(" {state}>")), "{s}");
    };
    re(&format!("{event:?}"), "unset");
    event.set();
    re(&format!("{event:?}"), "set");
    event.clear();
    re(&format!("{event:?}"), "unset");
}

// ---------------------------------------------------------------------- _TestBarrier

const N: usize = 5;

/// CPython's `run_threads`: N-1 processes plus the caller run `f`, all must succeed.
fn run_parties(ctx: &Context, mk: impl Fn() -> Process, f: impl FnOnce()) {
    let ps: Vec<Process> = (0..N - 1).map(|_| mk()).collect();
    for p in &ps {
        p.start().unwrap();
    }
    f();
    for p in &ps {
        join_ok(p);
    }
    let _ = ctx;
}

fn count() -> Value<i32> {
    Value::new(0i32).unwrap()
}

fn append(v: &Value<i32>) {
    *v.lock() += 1;
}

#[mp::task]
fn multipass(barrier: Barrier, r0: Value<i32>, r1: Value<i32>, n: usize) {
    let m = barrier.parties();
    assert_eq!(m, N);
    for i in 0..n {
        append(&r0);
        assert_eq!(r1.get() as usize, i * m);
        barrier.wait().unwrap();
        append(&r1);
        assert_eq!(r0.get() as usize, (i + 1) * m);
        barrier.wait().unwrap();
    }
    assert_eq!(barrier.n_waiting(), 0);
    assert!(!barrier.broken());
}

fn barrier_passes(passes: usize) {
    for_each_method(|ctx| {
        let barrier = ctx.barrier(N, None, Some(LONG)).unwrap();
        let (r0, r1) = (count(), count());
        run_parties(
            &ctx,
            || ctx.process(multipass, (barrier.clone(), r0.clone(), r1.clone(), passes)),
            || multipass(barrier.clone(), r0.clone(), r1.clone(), passes),
        );
        barrier.abort();
    });
}

#[test]
fn test_barrier() {
    barrier_passes(1);
}

#[test]
fn test_barrier_10() {
    barrier_passes(10);
}

#[mp::task]
fn wait_return_f(barrier: Barrier, queue: Queue<usize>) {
    let res = barrier.wait().unwrap();
    queue.put(res).unwrap();
}

#[test]
fn test_wait_return() {
    for_each_method(|ctx| {
        let barrier = Barrier::new(N, None, Some(LONG)).unwrap();
        let queue: Queue<usize> = Queue::new().unwrap();
        run_parties(
            &ctx,
            || ctx.process(wait_return_f, (barrier.clone(), queue.clone())),
            || wait_return_f(barrier.clone(), queue.clone()),
        );
        let mut results: Vec<usize> = (0..N).map(|_| queue.get_timeout(LONG).unwrap()).collect();
        assert_eq!(results.iter().filter(|&&r| r == 0).count(), 1);
        results.sort();
        assert_eq!(results, (0..N).collect::<Vec<_>>());
    });
}

/// The action has no arguments; it counts its runs in a named segment.
const ACTION_SHM: &str = "mp_portB_barrier_action";

#[mp::task]
fn barrier_action() {
    let mut shm = SharedMemory::attach(ACTION_SHM).unwrap();
    shm.buf_mut()[0] += 1;
}

#[mp::task]
fn action_f(barrier: Barrier) {
    barrier.wait().unwrap();
    let shm = SharedMemory::attach(ACTION_SHM).unwrap();
    assert_eq!(shm.buf()[0], 1);
}

#[test]
fn test_action() {
    for_each_method(|ctx| {
        let _ = SharedMemory::attach(ACTION_SHM).and_then(|s| s.unlink());
        let shm = SharedMemory::create(Some(ACTION_SHM), 8).unwrap();
        let barrier = Barrier::new(N, Some(barrier_action), Some(LONG)).unwrap();
        run_parties(
            &ctx,
            || ctx.process(action_f, (barrier.clone(),)),
            || action_f(barrier.clone()),
        );
        assert_eq!(shm.buf()[0], 1);
        shm.unlink().unwrap();
    });
}

#[mp::task]
fn abort_f(barrier: Barrier, r1: Value<i32>, r2: Value<i32>) {
    match barrier.wait() {
        Ok(i) if i == N / 2 => {
            barrier.abort();
            return;
        }
        Ok(_) => {}
        Err(Error::BrokenBarrier) => {
            append(&r2);
            return;
        }
        Err(e) => panic!("{e}"),
    }
    match barrier.wait() {
        Ok(_) => append(&r1),
        Err(Error::BrokenBarrier) => append(&r2),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn test_abort() {
    for_each_method(|ctx| {
        let barrier = Barrier::new(N, None, Some(LONG)).unwrap();
        let (r1, r2) = (count(), count());
        run_parties(
            &ctx,
            || ctx.process(abort_f, (barrier.clone(), r1.clone(), r2.clone())),
            || abort_f(barrier.clone(), r1.clone(), r2.clone()),
        );
        assert_eq!(r1.get(), 0);
        assert_eq!(r2.get() as usize, N - 1);
        assert!(barrier.broken());
    });
}

#[mp::task]
fn reset_f(barrier: Barrier, r1: Value<i32>, r2: Value<i32>, r3: Value<i32>) {
    let i = barrier.wait().unwrap();
    if i == N / 2 {
        let t = Instant::now();
        while barrier.n_waiting() < N - 1 {
            assert!(t.elapsed() < LONG);
            std::thread::sleep(Duration::from_millis(1));
        }
        barrier.reset();
    } else {
        match barrier.wait() {
            Ok(_) => append(&r1),
            Err(Error::BrokenBarrier) => append(&r2),
            Err(e) => panic!("{e}"),
        }
    }
    barrier.wait().unwrap();
    append(&r3);
}

#[test]
fn test_reset() {
    for_each_method(|ctx| {
        let barrier = Barrier::new(N, None, Some(LONG)).unwrap();
        let (r1, r2, r3) = (count(), count(), count());
        run_parties(
            &ctx,
            || {
                ctx.process(
                    reset_f,
                    (barrier.clone(), r1.clone(), r2.clone(), r3.clone()),
                )
            },
            || reset_f(barrier.clone(), r1.clone(), r2.clone(), r3.clone()),
        );
        assert_eq!(r1.get(), 0);
        assert_eq!(r2.get() as usize, N - 1);
        assert_eq!(r3.get() as usize, N);
    });
}

#[mp::task]
fn abort_and_reset_f(
    barrier: Barrier,
    barrier2: Barrier,
    r1: Value<i32>,
    r2: Value<i32>,
    r3: Value<i32>,
) {
    abort_f(barrier.clone(), r1, r2);
    if barrier2.wait().unwrap() == N / 2 {
        barrier.reset();
    }
    barrier2.wait().unwrap();
    barrier.wait().unwrap();
    append(&r3);
}

#[test]
fn test_abort_and_reset() {
    for_each_method(|ctx| {
        let barrier = Barrier::new(N, None, Some(LONG)).unwrap();
        let barrier2 = Barrier::new(N, None, Some(LONG)).unwrap();
        let (r1, r2, r3) = (count(), count(), count());
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
            &ctx,
            || ctx.process(abort_and_reset_f, args()),
            || {
                let (a, b, c, d, e) = args();
                abort_and_reset_f(a, b, c, d, e)
            },
        );
        assert_eq!(r1.get(), 0);
        assert_eq!(r2.get() as usize, N - 1);
        assert_eq!(r3.get() as usize, N);
    });
}

#[mp::task]
fn barrier_timeout_f(barrier: Barrier, results: Value<i32>) {
    let i = barrier.wait().unwrap();
    if i == N / 2 {
        // one party is late
        std::thread::sleep(Duration::from_millis(600));
    }
    if let Err(Error::BrokenBarrier) = barrier.wait_timeout(Duration::from_millis(300)) {
        append(&results);
    }
}

#[test]
fn test_barrier_timeout() {
    for_each_method(|ctx| {
        let barrier = Barrier::new(N, None, Some(LONG)).unwrap();
        let results = count();
        run_parties(
            &ctx,
            || ctx.process(barrier_timeout_f, (barrier.clone(), results.clone())),
            || barrier_timeout_f(barrier.clone(), results.clone()),
        );
        assert_eq!(results.get() as usize, barrier.parties());
        assert!(barrier.broken());
    });
}

#[mp::task]
fn default_timeout_f(barrier: Barrier, results: Value<i32>) {
    let i = barrier.wait_timeout(LONG).unwrap();
    if i == N / 2 {
        std::thread::sleep(Duration::from_millis(600));
    }
    if let Err(Error::BrokenBarrier) = barrier.wait() {
        append(&results);
    }
}

#[test]
fn test_default_timeout() {
    for_each_method(|ctx| {
        let barrier = Barrier::new(N, None, Some(Duration::from_millis(300))).unwrap();
        let results = count();
        run_parties(
            &ctx,
            || ctx.process(default_timeout_f, (barrier.clone(), results.clone())),
            || default_timeout_f(barrier.clone(), results.clone()),
        );
        assert_eq!(results.get() as usize, barrier.parties());
    });
}

#[test]
fn test_single_thread() {
    let b = Barrier::new(1, None, None).unwrap();
    b.wait().unwrap();
    b.wait().unwrap();
    assert!(Barrier::new(0, None, None).is_err());
}

#[mp::task]
fn thousand_f(barrier: Barrier, passes: usize, conn: Connection, lock: Lock) {
    for i in 0..passes {
        barrier.wait().unwrap();
        let _g = lock.lock();
        conn.send(&i).unwrap();
    }
}

#[test]
fn test_thousand() {
    for_each_method(|ctx| {
        let passes = 300;
        let barrier = ctx.barrier(N, None, Some(LONG)).unwrap();
        let lock = ctx.lock().unwrap();
        let (conn, child_conn) = ctx.pipe(false).unwrap();
        let ps: Vec<Process> = (0..N)
            .map(|_| {
                ctx.process(
                    thousand_f,
                    (barrier.clone(), passes, child_conn.clone(), lock.clone()),
                )
            })
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        for i in 0..passes {
            for _ in 0..N {
                assert!(conn.poll(Some(LONG)).unwrap());
                assert_eq!(conn.recv::<usize>().unwrap(), i);
            }
        }
        for p in &ps {
            join_ok(p);
        }
    });
}
