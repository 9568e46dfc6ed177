//! Issue 9's regression tests for processes, queues and the sync primitives: each one
//! failed (or hung, bounded here so that it fails instead) before its fix. Every wait is
//! bounded; the scenarios run under every start method where the start method matters.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use std::time::{Duration, Instant};

/// Bound on every wait that should succeed.
const LONG: Duration = Duration::from_secs(30);

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

/// This thread's kernel thread id.
fn gettid() -> u32 {
    // SAFETY: a plain syscall without arguments.
    unsafe { libc::gettid() as u32 }
}

/// The scheduler state of thread `tid` of process `pid` (`'S'` while it sleeps).
fn thread_state(pid: u32, tid: u32) -> Option<u8> {
    let stat = std::fs::read(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 2).copied()
}

/// Waits (bounded) until the main thread of `pid` sleeps in the kernel.
fn until_asleep(pid: u32) {
    let t = std::time::Instant::now();
    while thread_state(pid, pid) != Some(b'S') {
        assert!(t.elapsed() < LONG, "process {pid} never went to sleep");
        std::thread::yield_now();
    }
}

// ------------------------------------------------- item 6: qsize / room underflow

#[test]
fn bounded_queue_with_many_producers_never_underflows() {
    // a small maxsize keeps putters waiting for room (and computing it) while other
    // producers and consumers move the ring's head past the tail they loaded
    let q = mp::Queue::<u64>::with_maxsize(2).unwrap();
    let per = 3000u64;
    let producers: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    q.put_timeout(i, LONG).unwrap();
                    assert!(q.qsize() <= 2 + 3);
                    let _ = q.full();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while n < per * 3 / 2 {
                    q.get_timeout(LONG).unwrap();
                    n += 1;
                }
            })
        })
        .collect();
    for t in producers.into_iter().chain(consumers) {
        t.join().expect("no panic (no subtraction overflow)");
    }
    assert!(q.empty());
}

// ------------------------------------------------- smaller: Event set(); clear()

#[mp::task]
fn event_waiter(ready: mp::Event, e: mp::Event) {
    ready.set();
    let woken = e.wait(Some(Duration::from_secs(20)));
    std::process::exit(if woken { 0 } else { 3 });
}

#[test]
fn event_set_then_clear_releases_the_waiters() {
    for_each_method(|ctx| {
        // a waiter in another process and three threads here, several rounds: each
        // round every waiter is asleep in wait() when set() and clear() follow at once
        for _round in 0..5 {
            let (ready, e) = (ctx.event().unwrap(), ctx.event().unwrap());
            let p = ctx.process(event_waiter, (ready.clone(), e.clone()));
            p.start().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let (e, tx) = (e.clone(), tx.clone());
                    std::thread::spawn(move || {
                        tx.send(gettid()).unwrap();
                        e.wait(Some(Duration::from_secs(20)))
                    })
                })
                .collect();
            let me = std::process::id();
            for _ in 0..3 {
                let tid = rx.recv_timeout(LONG).unwrap();
                let t = std::time::Instant::now();
                while thread_state(me, tid) != Some(b'S') {
                    assert!(t.elapsed() < LONG, "waiter thread never slept");
                    std::thread::yield_now();
                }
            }
            assert!(ready.wait(Some(LONG)));
            until_asleep(p.pid().unwrap());
            e.set();
            e.clear();
            for t in threads {
                assert!(
                    t.join().unwrap(),
                    "a waiting thread returns true once woken"
                );
            }
            p.join_timeout(LONG).unwrap();
            assert_eq!(
                p.exitcode(),
                Some(0),
                "the waiting process returns true once woken"
            );
        }
    });
}

// ------------------------------------------------- smaller: Condition misuse

#[test]
fn condition_wait_for_without_the_lock_returns_at_once() {
    let cond = mp::Condition::new(None).unwrap();
    let c = cond.clone();
    let r = within(
        Duration::from_secs(10),
        "wait_for without the lock",
        move || c.wait_for(|| false, None),
    );
    assert!(!r);
    let c = cond.clone();
    assert!(!within(
        Duration::from_secs(10),
        "wait without the lock",
        move || c.wait(None)
    ));
}

#[test]
fn condition_on_a_plain_lock_checks_the_holder() {
    let lock = mp::Lock::new().unwrap();
    let cond = mp::Condition::new(Some(lock.clone().into())).unwrap();
    cond.acquire();
    let c = cond.clone();
    let (notified, waited, still_held) =
        within(Duration::from_secs(10), "other thread", move || {
            let n = c.notify(1);
            let w = c.wait(Some(Duration::from_millis(50)));
            (n, w, c.get_lock().try_acquire())
        });
    assert!(notified.is_err(), "only the holder may notify");
    assert!(!waited, "only the holder may wait");
    assert!(
        !still_held,
        "a non-holder's wait must not release the holder's lock"
    );
    cond.notify(1).unwrap();
    cond.release().unwrap();
}

// ------------------------------------------------- item 1: a dead queue-lock holder

/// Gets every item left (an entry a killed process left half-taken is an error, once).
fn drain(q: &mp::Queue<u64>) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        match q.get_timeout(Duration::from_millis(100)) {
            Ok(v) => got.push(v),
            Err(mp::Error::Empty) => return got,
            Err(mp::Error::Codec(_)) => continue,
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[mp::task]
fn churn(q: mp::Queue<u64>, bq: mp::Queue<u64>, started: mp::Event) {
    started.set();
    loop {
        let _ = q.put(1);
        let _ = q.try_get();
        let _ = bq.try_put(1);
        let _ = bq.try_get();
    }
}

#[test]
fn a_process_killed_holding_the_queue_lock_leaves_the_queue_usable() {
    for_each_method(|ctx| {
        for round in 0..8u64 {
            let q = ctx.queue::<u64>().unwrap();
            let bq = ctx.queue_with_maxsize::<u64>(4).unwrap();
            let started = ctx.event().unwrap();
            let p = ctx.process(churn, (q.clone(), bq.clone(), started.clone()));
            p.start().unwrap();
            assert!(started.wait(Some(LONG)));
            // let it churn a little (a different moment each round), then kill it:
            // it holds one of the ring locks a good part of the time
            std::thread::sleep(Duration::from_millis(1 + round * 3));
            p.kill().unwrap();
            p.join_timeout(LONG).unwrap();
            assert_eq!(p.exitcode(), Some(-9));
            let bound = Duration::from_secs(10);
            let step = |what: &'static str, f: Box<dyn FnOnce() + Send>| within(bound, what, f);
            let q2 = q.clone();
            step("put", Box::new(move || q2.put(7).unwrap()));
            let q2 = q.clone();
            step("try_put", Box::new(move || q2.try_put(8).unwrap()));
            let q2 = q.clone();
            step(
                "put_timeout",
                Box::new(move || q2.put_timeout(9, Duration::from_millis(100)).unwrap()),
            );
            let q2 = q.clone();
            step(
                "drain",
                Box::new(move || {
                    let got = drain(&q2);
                    assert!(got.ends_with(&[7, 8, 9]), "{got:?}");
                }),
            );
            let bq2 = bq.clone();
            step(
                "bounded",
                Box::new(move || {
                    drain(&bq2);
                    bq2.put_timeout(5, Duration::from_secs(1)).unwrap();
                    assert_eq!(bq2.get_timeout(Duration::from_secs(1)).unwrap(), 5);
                }),
            );
            // a timed call honours its deadline on every path
            let t = Instant::now();
            assert!(matches!(
                q.get_timeout(Duration::from_millis(200)),
                Err(mp::Error::Empty)
            ));
            assert!(t.elapsed() < Duration::from_secs(5));
        }
    });
}

// ------------------------------------------------- item 4: locks across fork, atfork

#[test]
fn a_foreign_fork_does_not_let_parent_and_child_carve_the_same_memory() {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering::SeqCst;
    let _warm = mp::heap::Block::new(16).unwrap(); // an arena is being carved
    let (mut r1, mut w1) = std::io::pipe().unwrap();
    let (mut r2, mut w2) = std::io::pipe().unwrap();
    // SAFETY: the child only allocates a block, talks through two pipes and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mine = mp::heap::Block::new(16).unwrap();
        mine.atomic_u32(0).store(0xC41D, SeqCst);
        let _ = w1.write_all(&[1]);
        let mut b = [0u8; 1];
        let _ = r2.read_exact(&mut b);
        let intact = mine.atomic_u32(0).load(SeqCst) == 0xC41D;
        // SAFETY: ends the forked child at once.
        unsafe { libc::_exit(if intact { 0 } else { 1 }) };
    }
    drop((w1, r2));
    let mut b = [0u8; 1];
    r1.read_exact(&mut b).unwrap();
    // allocated after the child's: must be other memory (a shared block is zeroed and
    // then written here: the child would see its marker gone)
    let ours = mp::heap::Block::new(16).unwrap();
    ours.atomic_u32(0).store(0xBA5E, SeqCst);
    w2.write_all(&[1]).unwrap();
    let mut status = 0;
    // SAFETY: waitpid on our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status));
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "parent and child carved the same memory"
    );
}

#[test]
fn forking_while_another_thread_allocates_does_not_deadlock_the_child() {
    let ctx = mp::get_context(Some(mp::StartMethod::Fork)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hammer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // allocate and free: the allocator's lock is held much of the time
                let v: Vec<_> = (0..64).map(|_| mp::Lock::new().unwrap()).collect();
                drop(v);
            }
        })
    };
    let mut stuck = 0;
    for _ in 0..40 {
        let p = mp::Process::from_closure(|| {
            let l = mp::Lock::new().unwrap();
            assert!(l.try_acquire());
        })
        .with_context(ctx);
        p.start().unwrap();
        p.join_timeout(Duration::from_secs(10)).unwrap();
        if p.exitcode() != Some(0) {
            stuck += 1;
            let _ = p.kill();
            let _ = p.join_timeout(LONG);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    hammer.join().unwrap();
    assert_eq!(
        stuck, 0,
        "children forked while the allocator was busy got stuck"
    );
}

// ------------------------------------------------- item 3: a forked child's queue state

type Big = (u32, u32, mp::codec::ByteBuf);

#[test]
fn a_forked_child_starts_with_its_own_queue_buffer() {
    let ctx = mp::get_context(Some(mp::StartMethod::Fork)).unwrap();
    let q: mp::Queue<Big> = ctx.queue().unwrap();
    let payload = mp::codec::ByteBuf::from(vec![7u8; 60 * 1024]);
    // more than the ring holds: the rest waits in this process's feeder buffer
    let ours = 40u32;
    for i in 0..ours {
        q.put((0, i, payload.clone())).unwrap();
    }
    assert!(q.qsize() > 20, "items are buffered: {}", q.qsize());
    let qc = q.clone();
    let pc = payload.clone();
    let p = mp::Process::from_closure(move || {
        for i in 0..3 {
            qc.put((1, i, pc.clone())).unwrap();
        }
        // exiting flushes the child's own buffer (the ring is full: this waits for
        // the parent to read)
    })
    .with_context(ctx);
    p.start().unwrap();
    let mut seen = std::collections::HashSet::new();
    let t = Instant::now();
    while seen.len() < ours as usize + 3 {
        match q.get_timeout(Duration::from_secs(5)) {
            Ok((who, i, _)) => assert!(seen.insert((who, i)), "item ({who}, {i}) delivered twice"),
            Err(mp::Error::Empty) => break,
            Err(e) => panic!("{e:?}"),
        }
        assert!(t.elapsed() < LONG);
    }
    p.join_timeout(LONG).unwrap();
    assert_eq!(p.exitcode(), Some(0));
    for i in 0..3 {
        assert!(seen.contains(&(1, i)), "the child's item {i} was lost");
    }
    assert_eq!(seen.len(), ours as usize + 3);
    assert!(q.try_get().is_err(), "nothing more (no duplicates)");
}

// ------------------------------------------------- item 2: the feeder

/// CPU time this process has used (user + system).
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[test]
fn a_full_side_channel_is_waited_out_asleep_and_loses_nothing() {
    // every item carries a handle, so every put sends a descriptor on the queue's side
    // channel; nobody reads for a while, so the channel's socket buffer fills while
    // the ring still has plenty of room
    let q: mp::Queue<(u32, mp::Event)> = mp::Queue::new().unwrap();
    let e = mp::Event::new().unwrap();
    let n = 3000u32;
    for i in 0..n {
        q.put((i, e.clone())).unwrap();
    }
    // the producer side (this process's feeder) must now sleep, not spin
    let before = cpu_time();
    std::thread::sleep(Duration::from_millis(600));
    let burnt = cpu_time() - before;
    assert!(
        burnt < Duration::from_millis(250),
        "the blocked feeder burnt {burnt:?} of CPU in 600 ms"
    );
    // and every item put is delivered, in order
    for i in 0..n {
        let (got, _) = q.get_timeout(LONG).unwrap();
        assert_eq!(got, i);
    }
    q.close().unwrap();
    within(LONG, "join_thread", move || q.join_thread().unwrap());
}

// ------------------------------------------------- smaller: blocked putters sleep

/// Voluntary context switches of the main thread of `pid` so far.
fn sleeps_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[mp::task]
fn put_into_full(q: mp::Queue<u32>, ready: mp::Event) {
    ready.set();
    q.put_timeout(2, Duration::from_secs(20)).unwrap();
}

#[test]
fn a_putter_blocked_on_a_full_bounded_queue_sleeps_until_woken() {
    for_each_method(|ctx| {
        let q = ctx.queue_with_maxsize::<u32>(1).unwrap();
        q.put(1).unwrap();
        let ready = ctx.event().unwrap();
        let p = ctx.process(put_into_full, (q.clone(), ready.clone()));
        p.start().unwrap();
        assert!(ready.wait(Some(LONG)));
        let pid = p.pid().unwrap();
        until_asleep(pid);
        let before = sleeps_of(pid);
        std::thread::sleep(Duration::from_millis(500));
        let woke = sleeps_of(pid) - before;
        assert!(woke < 20, "a blocked putter woke {woke} times in 500 ms");
        assert_eq!(q.get_timeout(LONG).unwrap(), 1);
        assert_eq!(
            q.get_timeout(LONG).unwrap(),
            2,
            "and the first get wakes it"
        );
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(0));
    });
}

// ------------------------------------------------- smaller: Barrier actions

static ABORTING: std::sync::OnceLock<mp::Barrier> = std::sync::OnceLock::new();
static RESETTING: std::sync::OnceLock<mp::Barrier> = std::sync::OnceLock::new();

fn abort_from_action() {
    ABORTING.get().unwrap().abort();
}

fn reset_from_action() {
    RESETTING.get().unwrap().reset();
}

fn two_parties(b: &'static mp::Barrier) -> Vec<mp::Result<usize>> {
    let threads: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || b.wait_timeout(Duration::from_secs(20))))
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Both parties of `b` (whose action aborts or resets it) get `BrokenBarrier`, within a
/// bound: before the fix the action deadlocked on the barrier's internal lock.
fn action_breaks_the_round(b: &'static mp::Barrier, what: &str) {
    let results = within(Duration::from_secs(10), what, move || two_parties(b));
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(mp::Error::BrokenBarrier))),
        "{what}: {results:?}"
    );
}

#[test]
fn a_barrier_action_may_abort_or_reset_the_barrier() {
    let b = ABORTING.get_or_init(|| mp::Barrier::new(2, Some(abort_from_action), None).unwrap());
    action_breaks_the_round(b, "barrier whose action aborts");
    assert!(b.broken());

    let b = RESETTING.get_or_init(|| mp::Barrier::new(2, Some(reset_from_action), None).unwrap());
    action_breaks_the_round(b, "barrier whose action resets");
    assert!(!b.broken(), "reset leaves it usable");
}

// ------------------------------------------------- smaller: RLock owner identity

#[test]
fn an_rlock_owner_is_not_whoever_reuses_its_thread_id() {
    let r = mp::RLock::new().unwrap();
    // a thread acquires the lock and ends without releasing it
    let r2 = r.clone();
    let dead = std::thread::spawn(move || {
        assert!(r2.try_acquire());
        gettid()
    })
    .join()
    .unwrap();
    // thread ids are handed out in increasing order and wrap at pid_max: start threads
    // until one gets the dead owner's id (bounded; other processes take ids too, so a
    // wrap may pass it by: try a few wraps)
    let t = Instant::now();
    let mut checked = None;
    while checked.is_none() && t.elapsed() < Duration::from_secs(60) {
        let r3 = r.clone();
        checked = std::thread::spawn(move || (gettid() == dead).then(|| r3.is_owned()))
            .join()
            .unwrap();
    }
    let owned = checked.expect("no thread reused the dead owner's id within 60 s");
    assert!(
        !owned,
        "a new thread with a dead owner's thread id owns its RLock"
    );
}

// ------------------------------------------------- smaller: sealed memfd sizes

/// Tries to truncate every shared-memory arena (`memfd:mp-heap`) this process holds
/// a descriptor of; exits 0 if none could be, 1 if one could, 2 if there was none.
#[mp::task]
fn shrink_arenas(lock: mp::Lock) {
    let mut seen = 0;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.to_string_lossy().starts_with("/memfd:mp-heap") {
            continue;
        }
        let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
        seen += 1;
        // SAFETY: ftruncate on a descriptor number we hold; an error is the point.
        if unsafe { libc::ftruncate(fd, 0) } == 0 {
            std::process::exit(1);
        }
    }
    drop(lock);
    std::process::exit(if seen > 0 { 0 } else { 2 });
}

#[test]
fn a_peer_cannot_resize_shared_memory_it_received() {
    for_each_method(|ctx| {
        let lock = ctx.lock().unwrap();
        let p = ctx.process(shrink_arenas, (lock.clone(),));
        p.start().unwrap();
        p.join_timeout(LONG).unwrap();
        assert_eq!(
            p.exitcode(),
            Some(0),
            "the child could shrink an arena (or saw none)"
        );
        // and the memory is still there
        assert!(lock.try_acquire());
        lock.release().unwrap();
    });
}

// ------------------------------------------------- smaller: a killed Condition waiter

#[mp::task]
fn wait_on(cond: mp::Condition, ready: mp::Event) {
    let _g = cond.lock();
    ready.set();
    cond.wait(None);
}

#[test]
fn a_killed_condition_waiter_neither_stalls_notify_nor_leaves_tokens() {
    for_each_method(|ctx| {
        let cond = ctx.condition(None).unwrap();
        let ready = ctx.event().unwrap();
        let p = ctx.process(wait_on, (cond.clone(), ready.clone()));
        p.start().unwrap();
        assert!(ready.wait(Some(LONG)));
        until_asleep(p.pid().unwrap());
        p.kill().unwrap();
        p.join_timeout(LONG).unwrap();
        cond.acquire();
        let t = Instant::now();
        cond.notify_all().unwrap();
        let stalled = t.elapsed();
        cond.release().unwrap();
        assert!(
            stalled < Duration::from_millis(500),
            "notify_all stalled {stalled:?}"
        );
        // no token is left over for a later waiter
        cond.acquire();
        let woken = cond.wait(Some(Duration::from_millis(300)));
        cond.release().unwrap();
        assert!(!woken, "a later waiter took the dead waiter's wake-up");
    });
}
