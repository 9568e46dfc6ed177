//! Process pools across real worker processes, under every start method: CPython's
//! `_TestPool`, `_TestPoolWorkerLifetime`, `_TestPoolWorkerErrors`, the docs' pool
//! examples, and what Python's pool cannot do (a dead worker, a task timeout).

mod common;

use common::for_each_method;
use mp::{Error, Pool};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

#[mp::task]
fn sqr(x: i64) -> i64 {
    x * x
}

#[mp::task]
fn mul(a: i64, b: i64) -> i64 {
    a * b
}

#[mp::task]
fn pow3(x: i64) -> i64 {
    x * x * x
}

#[mp::task]
fn slow_sqr(x: i64, ms: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(ms));
    x * x
}

#[mp::task]
fn inverse_shifted(x: i64) -> i64 {
    if x == 5 {
        panic!("division by zero at {x}");
    }
    100 / (x - 5)
}

#[mp::task]
fn my_pid() -> u32 {
    std::process::id()
}

#[mp::task]
fn pid_of(_x: i64) -> u32 {
    std::process::id()
}

#[mp::task]
fn die_if(x: i64, victim: i64) -> i64 {
    if x == victim {
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    x
}

#[mp::task]
fn abort_now() {
    std::process::abort();
}

#[mp::task]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

static INIT_COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static INIT_VALUE: Mutex<String> = Mutex::new(String::new());

#[mp::task]
fn init_worker(v: String) {
    INIT_COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    *INIT_VALUE.lock().unwrap() = v;
}

#[mp::task]
fn read_init() -> (u32, String) {
    (
        INIT_COUNT.load(std::sync::atomic::Ordering::SeqCst),
        INIT_VALUE.lock().unwrap().clone(),
    )
}

#[mp::task]
fn bad_init() {
    panic!("initializer refuses");
}

#[mp::task]
fn put_into(q: mp::Queue<i64>, x: i64) {
    q.put(x * 10).unwrap();
}

#[mp::task]
fn init_with_lock(l: mp::Lock) {
    assert!(l.acquire_timeout(Duration::from_secs(10)));
    l.release().unwrap();
}

#[test]
fn map_keeps_order_for_every_chunksize() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let want: Vec<i64> = (0..10).map(|x| x * x).collect();
        assert_eq!(pool.map(sqr, 0..10).unwrap(), want);
        assert_eq!(pool.map_chunked(sqr, 0..10, 1).unwrap(), want);
        assert_eq!(pool.map_chunked(sqr, 0..10, 100).unwrap(), want);
        let big: Vec<i64> = (0..1000).collect();
        let r = pool.map(sqr, big.clone()).unwrap();
        assert_eq!(r, big.iter().map(|x| x * x).collect::<Vec<_>>());
        assert_eq!(pool.map(sqr, Vec::<i64>::new()).unwrap(), Vec::<i64>::new());
        assert_eq!(pool.map_async(sqr, 0..10).get_timeout(T).unwrap(), want);
        pool.close().unwrap();
        pool.join().unwrap();
    });
}

#[test]
fn apply_starmap_and_async_results() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        assert_eq!(pool.apply(sqr, (5,)).unwrap(), 25);
        assert_eq!(pool.apply(mul, (7, 8)).unwrap(), 56);
        let pairs: Vec<(i64, i64)> = (0..10).map(|i| (i, i + 1)).collect();
        let want: Vec<i64> = pairs.iter().map(|(a, b)| a * b).collect();
        assert_eq!(pool.starmap(mul, pairs.clone()).unwrap(), want);
        assert_eq!(pool.starmap_async(mul, pairs).get_timeout(T).unwrap(), want);
        let r = pool.apply_async(sqr, (7,));
        assert!(r.wait_timeout(T));
        assert!(r.ready());
        assert!(r.successful().unwrap());
        assert_eq!(r.get().unwrap(), 49);
        // the value moved out; the result still says it succeeded
        assert!(matches!(r.get(), Err(Error::InvalidState(_))));
        assert!(r.successful().unwrap());
    });
}

#[test]
fn async_timeout_then_value() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let r = pool.apply_async(slow_sqr, (6, 600));
        assert!(matches!(r.successful(), Err(Error::InvalidState(_))));
        let t = Instant::now();
        assert!(matches!(
            r.get_timeout(Duration::from_millis(100)),
            Err(Error::Timeout)
        ));
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert!(!r.ready());
        assert!(!r.wait_timeout(Duration::from_millis(10)));
        assert_eq!(r.get_timeout(T).unwrap(), 36);

        let mut it = pool.imap(slow_sqr_pair, vec![(1i64, 0u64), (2, 600), (3, 0)]);
        assert_eq!(it.next_timeout(T).unwrap().unwrap(), 1);
        assert!(matches!(
            it.next_timeout(Duration::from_millis(100)),
            Some(Err(Error::Timeout))
        ));
        assert_eq!(it.next_timeout(T).unwrap().unwrap(), 4);
        assert_eq!(it.next_timeout(T).unwrap().unwrap(), 9);
        assert!(it.next_timeout(T).is_none());
    });
}

#[mp::task]
fn slow_sqr_pair(p: (i64, u64)) -> i64 {
    std::thread::sleep(Duration::from_millis(p.1));
    p.0 * p.0
}

#[test]
fn imap_orders_and_unordered_gives_each_once() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let got: Vec<i64> = pool.imap(sqr, 0..50).map(|r| r.unwrap()).collect();
        assert_eq!(got, (0..50).map(|x| x * x).collect::<Vec<_>>());
        let got: Vec<i64> = pool
            .imap_chunked(sqr, 0..50, 7)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(got, (0..50).map(|x| x * x).collect::<Vec<_>>());
        for cs in [1, 3, 100] {
            let mut got: Vec<i64> = pool
                .imap_unordered_chunked(sqr, 0..50, cs)
                .map(|r| r.unwrap())
                .collect();
            got.sort();
            assert_eq!(got, (0..50).map(|x| x * x).collect::<Vec<_>>());
        }
        assert_eq!(pool.imap(sqr, Vec::<i64>::new()).count(), 0);
        assert_eq!(pool.imap_unordered(sqr, Vec::<i64>::new()).count(), 0);
    });
}

#[test]
fn imap_over_an_endless_iterator_is_lazy() {
    let pool = Pool::new(Some(2)).unwrap();
    let pulled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let p = pulled.clone();
    let endless = (0i64..).inspect(move |_| {
        p.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let got: Vec<i64> = pool
        .imap(sqr, endless)
        .take(20)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(got, (0..20).map(|x| x * x).collect::<Vec<_>>());
    // the feeder stays a bounded distance ahead of the consumer
    let n = pulled.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n < 1000, "pulled {n} items for 20 results");
    pool.close().unwrap();
    pool.join().unwrap();
}

#[test]
fn panics_fail_their_task_and_the_pool_goes_on() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        match pool.apply(inverse_shifted, (5,)) {
            Err(Error::TaskPanicked { task, message, .. }) => {
                assert!(task.ends_with("inverse_shifted"), "{task}");
                assert!(message.contains("division by zero"), "{message}");
            }
            other => panic!("expected TaskPanicked, got {other:?}"),
        }
        assert!(matches!(
            pool.map(inverse_shifted, 0..10),
            Err(Error::TaskPanicked { .. })
        ));
        // the docs' loop: the error at its position, the rest still comes
        let out: Vec<Result<i64, Error>> = pool.imap(inverse_shifted, 0..10).collect();
        assert_eq!(out.len(), 10);
        for (x, r) in out.iter().enumerate() {
            if x == 5 {
                assert!(matches!(r, Err(Error::TaskPanicked { .. })));
            } else {
                assert_eq!(*r.as_ref().unwrap(), 100 / (x as i64 - 5));
            }
        }
        assert_eq!(pool.apply(sqr, (3,)).unwrap(), 9);
    });
}

#[test]
fn callbacks_run_once_before_the_result_is_ready() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let a = Arc::new(Mutex::new(Vec::<i64>::new()));
        let (a1, a2) = (a.clone(), a.clone());
        let r = pool.apply_async_with(mul, (7, 8), move |x| a1.lock().unwrap().push(*x), |_| {});
        r.wait();
        let r = pool.map_async_with(
            pow3,
            0..10,
            move |v| a2.lock().unwrap().extend_from_slice(v),
            |_| {},
        );
        r.wait();
        assert_eq!(
            *a.lock().unwrap(),
            [56, 0, 1, 8, 27, 64, 125, 216, 343, 512, 729]
        );
        let errs = Arc::new(Mutex::new(Vec::new()));
        let e2 = errs.clone();
        let r = pool.apply_async_with(
            inverse_shifted,
            (5,),
            |_| panic!("no success callback for a failure"),
            move |e| e2.lock().unwrap().push(e.to_string()),
        );
        assert!(r.get_timeout(T).is_err());
        assert_eq!(errs.lock().unwrap().len(), 1);
        assert!(!r.successful().unwrap());
    });
}

#[test]
fn initializer_runs_once_per_worker_first() {
    for_each_method(|ctx| {
        let pool = ctx
            .pool_builder()
            .processes(2)
            .initializer(init_with_lock, (mp::Lock::new().unwrap(),))
            .build()
            .unwrap();
        assert_eq!(pool.apply(sqr, (2,)).unwrap(), 4);
        drop(pool);
        let pool = ctx
            .pool_builder()
            .processes(2)
            .initializer(init_worker, ("hello".to_string(),))
            .build()
            .unwrap();
        for (count, v) in pool.map(read_init_any, 0..20).unwrap() {
            assert_eq!(count, 1);
            assert_eq!(v, "hello");
        }
    });
}

#[mp::task]
fn read_init_any(_x: i64) -> (u32, String) {
    read_init()
}

#[test]
fn maxtasksperchild_replaces_workers() {
    for_each_method(|ctx| {
        let pool = ctx
            .pool_builder()
            .processes(2)
            .maxtasksperchild(3)
            .build()
            .unwrap();
        let pids: HashSet<u32> = pool
            .map_chunked(pid_of, 0..30, 1)
            .unwrap()
            .into_iter()
            .collect();
        // 30 tasks, at most 3 per worker: at least 10 distinct workers
        assert!(pids.len() >= 10, "{} distinct workers", pids.len());
        pool.close().unwrap();
        pool.join().unwrap();
    });
}

#[test]
fn close_join_finishes_work_and_terminate_stops_at_once() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        assert!(matches!(pool.join(), Err(Error::InvalidState(_))));
        let r = pool.map_async(sleep_ms, vec![50u64; 6]);
        pool.close().unwrap();
        assert!(matches!(pool.apply(sqr, (1,)), Err(Error::InvalidState(_))));
        let ap = pool.apply_async(sqr, (1,));
        assert!(matches!(ap.get_timeout(T), Err(Error::InvalidState(_))));
        pool.join().unwrap();
        assert_eq!(r.get_timeout(Duration::ZERO).unwrap(), vec![50u64; 6]);

        let pool = ctx.pool(Some(2)).unwrap();
        let r = pool.map_async(sleep_ms, vec![10_000u64; 4]);
        let t = Instant::now();
        pool.terminate().unwrap();
        pool.join().unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // outstanding work fails instead of hanging
        assert!(r.get_timeout(T).is_err());
    });
}

#[test]
fn invalid_arguments_are_refused() {
    assert!(matches!(Pool::new(Some(0)), Err(Error::InvalidState(_))));
    assert!(matches!(
        Pool::builder().processes(1).maxtasksperchild(0).build(),
        Err(Error::InvalidState(_))
    ));
    let pool = Pool::new(Some(1)).unwrap();
    assert!(matches!(
        pool.map_chunked(sqr, 0..10, 0),
        Err(Error::InvalidState(_))
    ));
    let mut it = pool.imap_chunked(sqr, 0..10, 0);
    assert!(matches!(it.next(), Some(Err(Error::InvalidState(_)))));
}

#[test]
fn drop_terminates_the_workers() {
    let pool = Pool::new(Some(2)).unwrap();
    let pids: HashSet<u32> = pool
        .map_chunked(pid_of, 0..20, 1)
        .unwrap()
        .into_iter()
        .collect();
    drop(pool);
    for pid in pids {
        // SAFETY: kill with signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid as i32, 0) } == 0;
        assert!(!alive, "worker {pid} outlived its pool");
    }
}

#[test]
fn a_killed_worker_fails_its_task_and_is_replaced() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let before: HashSet<u32> = pool
            .map_chunked(pid_of, 0..8, 1)
            .unwrap()
            .into_iter()
            .collect();
        match pool.apply(die_if, (3, 3)) {
            Err(Error::WorkerDied { pid, exitcode }) => {
                assert!(before.contains(&pid), "{pid} not one of {before:?}");
                assert_eq!(exitcode, -libc::SIGKILL);
            }
            other => panic!("expected WorkerDied, got {other:?}"),
        }
        // the rest of an imap completes around the dead worker
        let out: Vec<_> = pool.imap(die_if_pair, (0..10).map(|x| (x, 4))).collect();
        for (x, r) in out.iter().enumerate() {
            if x == 4 {
                assert!(matches!(r, Err(Error::WorkerDied { .. })), "{r:?}");
            } else {
                assert_eq!(*r.as_ref().unwrap(), x as i64);
            }
        }
        assert!(matches!(
            pool.apply(abort_now, ()),
            Err(Error::WorkerDied { .. })
        ));
        // later work runs on replacement workers
        assert_eq!(pool.map(sqr, 0..10).unwrap()[9], 81);
        let after: HashSet<u32> = pool
            .map_chunked(pid_of, 0..8, 1)
            .unwrap()
            .into_iter()
            .collect();
        assert!(after.iter().any(|p| !before.contains(p)));
        pool.close().unwrap();
        pool.join().unwrap();
    });
}

#[mp::task]
fn die_if_pair(p: (i64, i64)) -> i64 {
    die_if(p.0, p.1)
}

#[test]
fn task_timeout_kills_and_replaces_the_worker() {
    for_each_method(|ctx| {
        let pool = ctx
            .pool_builder()
            .processes(2)
            .task_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let t = Instant::now();
        assert!(matches!(
            pool.apply(sleep_ms, (60_000,)),
            Err(Error::Timeout)
        ));
        assert!(t.elapsed() < Duration::from_secs(10));
        assert_eq!(pool.apply(sleep_ms, (10,)).unwrap(), 10);
        assert_eq!(pool.map(sqr, 0..4).unwrap(), [0, 1, 4, 9]);
    });
}

#[test]
fn with_one_worker_only_the_task_that_killed_it_fails() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(1)).unwrap();
        let out: Vec<_> = pool.imap(die_if_pair, (0..6).map(|x| (x, 2))).collect();
        assert_eq!(out.len(), 6);
        for (x, r) in out.iter().enumerate() {
            if x == 2 {
                assert!(matches!(r, Err(Error::WorkerDied { .. })), "{r:?}");
            } else {
                assert_eq!(*r.as_ref().unwrap(), x as i64, "item {x}");
            }
        }
    });
}

#[test]
fn short_tasks_do_not_wait_behind_a_long_one() {
    // a worker takes a task only when it is free: none queues behind the long task
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        pool.map(sqr, 0..4).unwrap(); // both workers up
        let long = pool.apply_async(sleep_ms, (3_000,));
        let t = Instant::now();
        let short: Vec<_> = (0..4).map(|_| pool.apply_async(sleep_ms, (10,))).collect();
        for r in &short {
            assert_eq!(r.get_timeout(T).unwrap(), 10);
        }
        assert!(
            t.elapsed() < Duration::from_millis(2_000),
            "{:?}",
            t.elapsed()
        );
        assert!(!long.ready());
        pool.terminate().unwrap();
    });
}

#[test]
fn task_timeout_applies_to_each_task_not_to_a_chunk() {
    for_each_method(|ctx| {
        let pool = ctx
            .pool_builder()
            .processes(1)
            .task_timeout(Duration::from_millis(400))
            .build()
            .unwrap();
        // eight tasks of 100 ms each: together far over the limit, each well under it
        let items = vec![100u64; 8];
        assert_eq!(
            pool.map_chunked(sleep_ms, items, 8).unwrap(),
            vec![100u64; 8]
        );
        // only the task that overruns fails; its neighbours arrive
        let got: Vec<_> = pool
            .imap_chunked(sleep_ms, [10u64, 60_000, 20], 3)
            .collect();
        assert_eq!(got.len(), 3);
        assert_eq!(*got[0].as_ref().unwrap(), 10);
        assert!(matches!(got[1], Err(Error::Timeout)), "{:?}", got[1]);
        assert_eq!(*got[2].as_ref().unwrap(), 20);
    });
}

#[test]
fn a_failing_initializer_is_an_error_not_a_respawn_loop() {
    for_each_method(|ctx| {
        let pool = ctx
            .pool_builder()
            .processes(2)
            .initializer(bad_init, ())
            .build()
            .unwrap();
        let t = Instant::now();
        match pool.apply_async(sqr, (2,)).get_timeout(T) {
            Err(Error::TaskPanicked { message, .. }) => {
                assert!(message.contains("initializer refuses"), "{message}")
            }
            other => panic!("expected the initializer's error, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(20));
        assert!(pool.map(sqr, 0..4).is_err());
        pool.terminate().unwrap();
    });
}

#[test]
fn handles_travel_in_task_arguments() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let q = mp::Queue::<i64>::new().unwrap();
        let pairs: Vec<(mp::Queue<i64>, i64)> = (0..5).map(|i| (q.clone(), i)).collect();
        pool.starmap(put_into, pairs).unwrap();
        let mut got: Vec<i64> = (0..5).map(|_| q.get_timeout(T).unwrap()).collect();
        got.sort();
        assert_eq!(got, [0, 10, 20, 30, 40]);
    });
}

#[test]
fn unregistered_functions_are_refused() {
    fn plain(x: i64) -> i64 {
        x
    }
    let pool = Pool::new(Some(1)).unwrap();
    assert!(matches!(
        pool.apply(plain, (1,)),
        Err(Error::NotRegistered { .. })
    ));
    assert!(matches!(
        pool.map(plain, 0..3),
        Err(Error::NotRegistered { .. })
    ));
}

#[test]
fn apply_async_of_pids_shows_the_workers() {
    let pool = Pool::new(Some(2)).unwrap();
    let rs: Vec<_> = (0..4).map(|_| pool.apply_async(my_pid, ())).collect();
    let pids: HashSet<u32> = rs.iter().map(|r| r.get_timeout(T).unwrap()).collect();
    assert!(!pids.contains(&std::process::id()));
    assert!(!pids.is_empty() && pids.len() <= 2);
}

#[test]
fn thread_pool_has_the_same_api_and_takes_closures() {
    let pool = mp::ThreadPool::new(Some(3)).unwrap();
    let k = 3;
    assert_eq!(
        pool.map(move |x: i64| x * k, 0..5).unwrap(),
        [0, 3, 6, 9, 12]
    );
    assert_eq!(pool.apply(|a: i64, b: i64| a + b, (2, 3)).unwrap(), 5);
    assert_eq!(
        pool.starmap(|a: i64, b: i64| a * b, vec![(1, 2), (3, 4)])
            .unwrap(),
        [2, 12]
    );
    let mut got: Vec<i64> = pool
        .imap_unordered(|x: i64| x + 1, 0..100)
        .map(|r| r.unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (1..101).collect::<Vec<_>>());
    let out: Vec<_> = pool
        .imap(
            |x: i64| {
                if x == 2 {
                    panic!("two")
                }
                x
            },
            0..4,
        )
        .collect();
    assert!(matches!(out[2], Err(Error::TaskPanicked { .. })));
    assert_eq!(*out[3].as_ref().unwrap(), 3);
    // values need not be serializable
    let rc = std::sync::Arc::new(5);
    let r = pool.apply_async(move || *rc + 1, ());
    assert_eq!(r.get_timeout(T).unwrap(), 6);
    let endless: Vec<i64> = pool
        .imap(|x: i64| x, 0..)
        .take(10)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(endless, (0..10).collect::<Vec<_>>());
    pool.close().unwrap();
    pool.join().unwrap();
    assert!(matches!(pool.apply(|| 1, ()), Err(Error::InvalidState(_))));
}

/// An argument whose encoding fails for one value (`Serialize` erring, as a Python
/// object whose `__reduce__` raises).
#[derive(Debug, serde::Deserialize)]
struct FailsAt(i64);

impl serde::Serialize for FailsAt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 55 {
            return Err(serde::ser::Error::custom("item 55 cannot be encoded"));
        }
        s.serialize_i64(self.0)
    }
}

#[mp::task]
fn unwrap_fails_at(x: FailsAt) -> i64 {
    x.0
}

#[test]
fn a_map_whose_later_chunk_cannot_be_encoded_fails_and_the_pool_goes_on() {
    // map hands each chunk to the workers as soon as it is encoded: the first chunks
    // are running when the sixth fails to encode, and the map still fails as a whole
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let items: Vec<FailsAt> = (0..100).map(FailsAt).collect();
        let r = pool.map_async_chunked(unwrap_fails_at, items, 10);
        let err = r.get_timeout(T).unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "{err:?}");
        let ok: Vec<FailsAt> = (0..50).map(FailsAt).collect();
        assert_eq!(
            pool.map_chunked(unwrap_fails_at, ok, 10).unwrap(),
            (0..50).collect::<Vec<_>>()
        );
        pool.close().unwrap();
        pool.join().unwrap();
    });
}

#[mp::task]
fn bytes_of_len(n: usize) -> Vec<u8> {
    vec![(n % 251) as u8; n]
}

#[test]
fn results_of_every_size_arrive_whole() {
    // the parent reads workers' messages into one buffer it reuses: results far smaller
    // and far larger than the one before (past the size it keeps, 16 MiB) arrive whole
    let pool = Pool::new(Some(1)).unwrap();
    let sizes = [1usize, 100_000, 0, 10, 17 << 20, 3, 200_000, 5];
    let got = pool.map_chunked(bytes_of_len, sizes, 1).unwrap();
    for (n, v) in sizes.iter().zip(&got) {
        assert_eq!(v.len(), *n);
        assert!(v.iter().all(|&b| b == (n % 251) as u8), "result of {n}");
    }
    let unordered: usize = pool
        .imap_unordered(bytes_of_len, sizes.into_iter().rev())
        .map(|r| r.unwrap().len())
        .sum();
    assert_eq!(unordered, sizes.iter().sum::<usize>());
}
