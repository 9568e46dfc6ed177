mp::test_support!();
use mp::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn for_each_method(f: impl Fn(Context)) {
    for m in get_all_start_methods() {
        eprintln!("start method {m}");
        f(get_context(Some(m)).unwrap());
    }
}

fn join_ok(p: &Process) {
    p.join_timeout(T).unwrap();
    assert_eq!(p.exitcode(), Some(0), "{p:?}");
}

#[mp::task]
fn add_many(v: Value<i64>, lock: Lock, n: u32) {
    for _ in 0..n {
        lock.acquire();
        // a non-atomic read-modify-write, only correct under the lock
        let x = v.get_obj().get();
        v.get_obj().set(x + 1);
        lock.release().unwrap();
    }
}

#[test]
fn lock_mutual_exclusion_across_processes() {
    for_each_method(|ctx| {
        let lock = ctx.lock().unwrap();
        let v = Value::new(0i64).unwrap();
        let ps: Vec<_> = (0..3)
            .map(|_| ctx.process(add_many, (v.clone(), lock.clone(), 5000)))
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        add_many(v.clone(), lock.clone(), 5000);
        for p in &ps {
            join_ok(p);
        }
        assert_eq!(v.get(), 20_000);
    });
}

#[mp::task]
fn release_it(lock: Lock) {
    lock.release().unwrap();
}

#[mp::task]
fn hold_then_signal(lock: Lock, ev: Event) {
    assert!(lock.acquire_timeout(T));
    ev.set();
    // killed by the parent while holding the lock
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn lock_semantics() {
    let lock = Lock::new().unwrap();
    assert!(lock.release().is_err());
    assert!(lock.try_acquire());
    assert!(!lock.try_acquire());
    assert!(!lock.acquire_timeout(Duration::ZERO));
    let t0 = Instant::now();
    assert!(!lock.acquire_timeout(Duration::from_millis(100)));
    assert!(t0.elapsed() >= Duration::from_millis(100));
    // released by a thread that did not acquire it
    let l2 = lock.clone();
    std::thread::spawn(move || l2.release().unwrap())
        .join()
        .unwrap();
    assert!(lock.try_acquire());
    // released by another process
    for_each_method(|ctx| {
        let p = ctx.process(release_it, (lock.clone(),));
        p.start().unwrap();
        join_ok(&p);
        assert!(lock.try_acquire());
    });
    lock.release().unwrap();
    // guard releases on drop and on panic
    {
        let _g = lock.lock();
        assert!(!lock.try_acquire());
    }
    let l3 = lock.clone();
    let r = std::thread::spawn(move || {
        let _g = l3.lock();
        panic!("boom");
    })
    .join();
    assert!(r.is_err());
    assert!(lock.try_acquire());
    lock.release().unwrap();
}

#[test]
fn killed_holder_leaves_lock_held_and_waiters_time_out() {
    let ctx = get_context(None).unwrap();
    let lock = Lock::new().unwrap();
    let ev = Event::new().unwrap();
    let p = ctx.process(hold_then_signal, (lock.clone(), ev.clone()));
    p.start().unwrap();
    assert!(ev.wait(Some(T)));
    p.kill().unwrap();
    p.join_timeout(T).unwrap();
    assert_eq!(p.exitcode(), Some(-9));
    let t0 = Instant::now();
    assert!(!lock.acquire_timeout(Duration::from_millis(200)));
    assert!(t0.elapsed() >= Duration::from_millis(200));
    // anyone may release it
    lock.release().unwrap();
}

#[mp::task]
fn rlock_child(r: RLock, out: Array<u8>, started: Event) {
    out.set(0, r.release().is_err() as u8).unwrap();
    out.set(1, !r.try_acquire() as u8).unwrap();
    started.set();
    out.set(2, r.acquire_timeout(T) as u8).unwrap();
    r.release().unwrap();
}

#[test]
fn rlock_semantics() {
    let r = RLock::new().unwrap();
    assert!(r.release().is_err());
    r.acquire();
    r.acquire();
    assert!(r.try_acquire());
    assert_eq!(r.recursion_count(), 3);
    // another thread cannot release it nor take it
    let r2 = r.clone();
    let (e, t) = std::thread::spawn(move || (r2.release().is_err(), r2.try_acquire()))
        .join()
        .unwrap();
    assert!(e && !t);
    for_each_method(|ctx| {
        let out = Array::<u8>::new(3).unwrap();
        let started = Event::new().unwrap();
        let p = ctx.process(rlock_child, (r.clone(), out.clone(), started.clone()));
        p.start().unwrap();
        assert!(started.wait(Some(T)));
        // three acquires need three releases before the child gets it
        r.release().unwrap();
        r.release().unwrap();
        assert!(!started.wait(Some(Duration::ZERO)) || out.get(2).unwrap() == 0);
        r.release().unwrap();
        join_ok(&p);
        assert_eq!(out.to_vec(), [1, 1, 1]);
        r.acquire();
        r.acquire();
        r.acquire();
    });
    r.release().unwrap();
    r.release().unwrap();
    r.release().unwrap();
    assert!(r.release().is_err());
}

#[mp::task]
fn sem_release(s: Semaphore, n: u32) {
    for _ in 0..n {
        s.release().unwrap();
    }
}

#[test]
fn semaphores() {
    let s = Semaphore::new(2).unwrap();
    assert_eq!(s.get_value(), 2);
    assert!(s.try_acquire() && s.try_acquire());
    assert!(!s.try_acquire());
    assert!(!s.acquire_timeout(Duration::from_millis(50)));
    assert_eq!(s.get_value(), 0);
    for_each_method(|ctx| {
        let p = ctx.process(sem_release, (s.clone(), 3));
        p.start().unwrap();
        for _ in 0..3 {
            assert!(s.acquire_timeout(T));
        }
        join_ok(&p);
        assert_eq!(s.get_value(), 0);
    });
    let b = BoundedSemaphore::new(2).unwrap();
    assert!(b.release().is_err());
    b.acquire();
    assert_eq!(b.get_value(), 1);
    b.release().unwrap();
    assert!(b.release().is_err());
    assert_eq!(b.get_value(), 2);
    let b2 = b.clone();
    let p = mp::spawn(
        sem_release,
        // a bounded semaphore is a Semaphore underneath
        ((*b2).clone(), 1),
    )
    .unwrap();
    assert!(matches!(p.join(), Err(Error::TaskPanicked { .. })));
}

#[mp::task]
fn cond_waiter(c: Condition, woke: Semaphore, started: Semaphore, timeout_ms: u64) -> bool {
    c.acquire();
    started.release().unwrap();
    let r = c.wait(Some(Duration::from_millis(timeout_ms)));
    if r {
        woke.release().unwrap();
    }
    c.release().unwrap();
    r
}

fn cond_case(ctx: Context, c: Condition) {
    let woke = Semaphore::new(0).unwrap();
    let started = Semaphore::new(0).unwrap();
    let ps: Vec<_> = (0..3)
        .map(|_| {
            ctx.process(
                cond_waiter,
                (c.clone(), woke.clone(), started.clone(), 20_000),
            )
        })
        .collect();
    for p in &ps {
        p.start().unwrap();
    }
    for _ in 0..3 {
        assert!(started.acquire_timeout(T));
    }
    // every waiter registered before we get the lock (they released it in wait)
    {
        let _g = c.lock();
        c.notify(1).unwrap();
    }
    assert!(woke.acquire_timeout(T));
    assert!(
        !woke.acquire_timeout(Duration::from_millis(200)),
        "notify(1) woke more than one"
    );
    {
        let _g = c.lock();
        c.notify_all().unwrap();
    }
    assert!(woke.acquire_timeout(T) && woke.acquire_timeout(T));
    for p in &ps {
        join_ok(p);
    }
}

#[test]
fn condition_notify_across_processes() {
    for_each_method(|ctx| {
        cond_case(ctx, Condition::new(None).unwrap());
        cond_case(
            ctx,
            Condition::new(Some(Lock::new().unwrap().into())).unwrap(),
        );
    });
}

#[test]
fn condition_timeouts_and_wait_for() {
    for lock in [
        AnyLock::from(Lock::new().unwrap()),
        RLock::new().unwrap().into(),
    ] {
        let c = Condition::new(Some(lock)).unwrap();
        assert!(c.notify(1).is_err() || matches!(c.get_lock(), AnyLock::Lock(_)));
        c.acquire();
        let t0 = Instant::now();
        assert!(!c.wait(Some(Duration::from_millis(100))));
        assert!(t0.elapsed() >= Duration::from_millis(100));
        // the lock is held again after wait
        assert!(c.release().is_ok());
        let flag = Value::new(0u32).unwrap();
        let (c2, f2) = (c.clone(), flag.clone());
        let th = std::thread::spawn(move || {
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(20));
                let _g = c2.lock();
                *f2.lock() += 1;
                c2.notify_all().unwrap();
            }
        });
        c.acquire();
        assert!(c.wait_for(|| flag.get() >= 3, Some(T)));
        let t0 = Instant::now();
        assert!(!c.wait_for(|| flag.get() >= 100, Some(Duration::from_millis(100))));
        assert!(t0.elapsed() >= Duration::from_millis(100));
        c.release().unwrap();
        th.join().unwrap();
    }
}

#[mp::task]
fn set_event(e: Event) {
    e.set();
}

#[test]
fn events() {
    let e = Event::new().unwrap();
    assert!(!e.is_set());
    let t0 = Instant::now();
    assert!(!e.wait(Some(Duration::from_millis(100))));
    assert!(t0.elapsed() >= Duration::from_millis(100));
    for_each_method(|ctx| {
        e.clear();
        let p = ctx.process(set_event, (e.clone(),));
        p.start().unwrap();
        assert!(e.wait(Some(T)));
        assert!(e.is_set());
        join_ok(&p);
    });
    e.clear();
    assert!(!e.is_set());
    e.set();
    assert!(e.wait(None) && e.wait(Some(Duration::ZERO)));
}

#[mp::task]
fn barrier_action() {
    // counts the rounds in a file-less way: a Value created by the test is not
    // reachable here, so the action bumps a named counter in the environment-free
    // shared arena through a global handle set by the caller (see ACTION_COUNTER)
    if let Some(v) = ACTION_COUNTER.get() {
        *v.lock() += 1;
    }
}

static ACTION_COUNTER: std::sync::OnceLock<Value<u32>> = std::sync::OnceLock::new();

#[mp::task]
fn barrier_party(b: Barrier, counter: Value<u32>, out: Array<u32>, slot: usize, rounds: usize) {
    let _ = ACTION_COUNTER.set(counter);
    for r in 0..rounds {
        let i = b.wait_timeout(T).unwrap();
        out.set(slot * rounds + r, i as u32).unwrap();
    }
}

#[test]
fn barrier_across_processes() {
    let counter = Value::new(0u32).unwrap();
    let _ = ACTION_COUNTER.set(counter.clone());
    let rounds = 4;
    for_each_method(|ctx| {
        counter.set(0);
        let b = ctx.barrier(3, Some(barrier_action), None).unwrap();
        assert_eq!(b.parties(), 3);
        let out = Array::<u32>::new(3 * rounds).unwrap();
        let ps: Vec<_> = (0..2)
            .map(|slot| {
                ctx.process(
                    barrier_party,
                    (b.clone(), counter.clone(), out.clone(), slot, rounds),
                )
            })
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        barrier_party(b.clone(), counter.clone(), out.clone(), 2, rounds);
        for p in &ps {
            join_ok(p);
        }
        let all = out.to_vec();
        for round in 0..rounds {
            let mut idx: Vec<u32> = (0..3).map(|s| all[s * rounds + round]).collect();
            idx.sort();
            assert_eq!(idx, [0, 1, 2]);
        }
        assert_eq!(
            counter.get(),
            rounds as u32,
            "the action runs once per round"
        );
    });
}

#[mp::task]
fn barrier_expect_broken(b: Barrier, started: Semaphore) -> bool {
    started.release().unwrap();
    matches!(b.wait_timeout(T), Err(Error::BrokenBarrier))
}

#[test]
fn barrier_timeout_abort_reset() {
    let b = Barrier::new(2, None, None).unwrap();
    let t0 = Instant::now();
    assert!(matches!(
        b.wait_timeout(Duration::from_millis(100)),
        Err(Error::BrokenBarrier)
    ));
    assert!(t0.elapsed() >= Duration::from_millis(100));
    assert!(b.broken());
    assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
    b.reset();
    assert!(!b.broken());
    for abort in [true, false] {
        let started = Semaphore::new(0).unwrap();
        let b = Barrier::new(3, None, None).unwrap();
        let h = mp::spawn(barrier_expect_broken, (b.clone(), started.clone())).unwrap();
        assert!(started.acquire_timeout(T));
        // wait until the child is inside wait()
        let t0 = Instant::now();
        while b.n_waiting() < 1 && t0.elapsed() < T {
            std::thread::yield_now();
        }
        assert_eq!(b.n_waiting(), 1);
        if abort {
            b.abort();
        } else {
            b.reset();
        }
        assert!(h.join().unwrap());
        assert_eq!(b.broken(), abort);
    }
    // the default timeout of the barrier applies to wait()
    let b = Barrier::new(2, None, Some(Duration::from_millis(50))).unwrap();
    assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
}

#[test]
fn threads_share_primitives() {
    let lock = Lock::new().unwrap();
    let v = Value::with_lock(0u64, lock.clone()).unwrap();
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let v = v.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    *v.lock() += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(v.get(), 40_000);
}
