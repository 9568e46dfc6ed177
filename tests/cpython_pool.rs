//! CPython's `_TestPool`, `_TestPoolWorkerErrors` and `_TestPoolWorkerLifetime`
//! (`test/_test_multiprocessing.py`), ported case by case and run under every start
//! method. Where Python raises, the Rust call returns the matching `mp::Error`; every
//! wait is bounded so a regression fails instead of hanging.

mod common;

use common::{almost, for_each_method, timed, TIMEOUT1, TIMEOUT2};
use mp::{Error, Pool};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[mp::task]
fn sqr(x: i64) -> i64 {
    x * x
}

#[mp::task]
fn sqr_wait(x: i64, wait_ms: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(wait_ms));
    x * x
}

#[mp::task]
fn mul(x: i64, y: i64) -> i64 {
    x * y
}

#[mp::task]
fn parse_int(s: String) -> i64 {
    match s.parse() {
        Ok(v) => v,
        Err(e) => panic!("invalid literal for int() with base 10: {s:?} ({e})"),
    }
}

#[mp::task]
fn raise_large_valueerror(wait_ms: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(wait_ms));
    panic!("{}", "x".repeat(1 << 20));
}

#[mp::task]
fn raising() -> i64 {
    panic!("KeyError: 'key'");
}

#[mp::task]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[mp::task]
fn pid_after(x: i64) -> (i64, u32) {
    (x * x, std::process::id())
}

/// Serializing this always fails: CPython's `__reduce__` raising.
#[derive(Debug, Deserialize)]
struct Unpicklable;

impl Serialize for Unpicklable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot pickle"))
    }
}

#[mp::task]
fn takes_unpicklable(_x: Unpicklable) -> i64 {
    0
}

#[mp::task]
fn unpicklable_result() -> Unpicklable {
    Unpicklable
}

#[mp::task]
fn some_unpicklable(x: i64) -> Result<i64, Unpicklable> {
    if x % 3 == 0 {
        Err(Unpicklable)
    } else {
        Ok(x)
    }
}

fn squares(n: i64) -> Vec<i64> {
    (0..n).map(|x| x * x).collect()
}

#[test]
fn test_apply() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(4)).unwrap();
        assert_eq!(pool.apply(sqr, (5,)).unwrap(), 25);
        assert_eq!(pool.apply(mul, (3, 4)).unwrap(), 12);
    });
}

#[test]
fn test_map_and_starmap() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(4)).unwrap();
        assert_eq!(pool.map(sqr, 0..10).unwrap(), squares(10));
        assert_eq!(pool.map_chunked(sqr, 0..100, 20).unwrap(), squares(100));
        let tuples: Vec<(i64, i64)> = (0..10).zip((0..10).rev()).collect();
        let want: Vec<i64> = tuples.iter().map(|(a, b)| a * b).collect();
        assert_eq!(pool.starmap(mul, tuples.clone()).unwrap(), want);
        let tuples: Vec<(i64, i64)> = (0..100).zip((0..100).rev()).collect();
        let want: Vec<i64> = tuples.iter().map(|(a, b)| a * b).collect();
        assert_eq!(pool.starmap_chunked(mul, tuples.clone(), 20).unwrap(), want);
        assert_eq!(
            pool.starmap_async(mul, tuples).get_timeout(T).unwrap(),
            want
        );
        assert_eq!(
            pool.map_async(sqr, 0..10).get_timeout(T).unwrap(),
            squares(10)
        );
    });
}

#[test]
fn test_map_async_callbacks() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        type Calls = Vec<Result<Vec<i64>, String>>;
        let calls: Arc<Mutex<Calls>> = Arc::default();
        let (c1, c2) = (calls.clone(), calls.clone());
        let r = pool.map_async_with(
            parse_int,
            ["1".to_string()],
            move |v| c1.lock().unwrap().push(Ok(v.clone())),
            move |e| c2.lock().unwrap().push(Err(e.to_string())),
        );
        assert!(r.wait_timeout(T));
        assert_eq!(*calls.lock().unwrap(), [Ok(vec![1])]);
        let (c1, c2) = (calls.clone(), calls.clone());
        let r = pool.map_async_with(
            parse_int,
            ["a".to_string()],
            move |v| c1.lock().unwrap().push(Ok(v.clone())),
            move |e| c2.lock().unwrap().push(Err(e.to_string())),
        );
        assert!(r.wait_timeout(T));
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        assert!(
            matches!(&calls[1], Err(m) if m.contains("invalid literal")),
            "{calls:?}"
        );
    });
}

#[test]
fn test_map_unpicklable() {
    // Issue #19425: failing to encode an argument must not hang the pool
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let items: Vec<Unpicklable> = (0..10).map(|_| Unpicklable).collect();
        let err = pool.map(takes_unpicklable, items).unwrap_err();
        assert!(matches!(err, Error::Codec(_)), "{err:?}");
        assert_eq!(pool.apply(sqr, (3,)).unwrap(), 9);
    });
}

#[test]
fn test_map_chunksize_on_an_empty_list() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let r = pool.map_async_chunked(sqr, Vec::<i64>::new(), 1);
        assert_eq!(r.get_timeout(TIMEOUT1).unwrap(), Vec::<i64>::new());
    });
}

#[test]
fn test_async() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        // warm the workers up so that only the task's own wait is timed
        pool.apply(sqr, (1,)).unwrap();
        let res = pool.apply_async(sqr_wait, (7, TIMEOUT1.as_millis() as u64));
        let (v, elapsed) = timed(|| res.get_timeout(T));
        assert_eq!(v.unwrap(), 49);
        almost(elapsed, TIMEOUT1);
    });
}

#[test]
fn test_async_timeout() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(3)).unwrap();
        let res = pool.apply_async(sqr_wait, (6, 1_000));
        let (v, elapsed) = timed(|| res.get_timeout(TIMEOUT2));
        assert!(matches!(v, Err(Error::Timeout)), "{v:?}");
        almost(elapsed, TIMEOUT2);
        assert!(!res.ready());
        assert!(res.successful().is_err(), "successful() before ready");
        // the result is still obtainable later
        assert_eq!(res.get_timeout(T).unwrap(), 36);
        assert!(res.successful().unwrap());
        pool.terminate().unwrap();
        pool.join().unwrap();
    });
}

#[test]
fn test_imap() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(4)).unwrap();
        let all: Vec<i64> = pool.imap(sqr, 0..10).map(Result::unwrap).collect();
        assert_eq!(all, squares(10));

        let mut it = pool.imap(sqr, 0..10);
        for i in 0..10 {
            assert_eq!(it.next_timeout(T).unwrap().unwrap(), i * i);
        }
        assert!(it.next_timeout(T).is_none(), "StopIteration");
        assert!(it.next().is_none(), "still exhausted");

        let mut it = pool.imap_chunked(sqr, 0..1000, 100);
        for i in 0..1000 {
            assert_eq!(it.next_timeout(T).unwrap().unwrap(), i * i);
        }
        assert!(it.next_timeout(T).is_none());
    });
}

#[test]
fn test_imap_unordered() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(4)).unwrap();
        let mut got: Vec<i64> = pool
            .imap_unordered(sqr, 0..10)
            .map(Result::unwrap)
            .collect();
        got.sort();
        assert_eq!(got, squares(10));
        let mut got: Vec<i64> = pool
            .imap_unordered_chunked(sqr, 0..1000, 100)
            .map(Result::unwrap)
            .collect();
        got.sort();
        assert_eq!(got, squares(1000));
    });
}

#[test]
fn test_make_pool() {
    for_each_method(|ctx| {
        assert!(matches!(ctx.pool(Some(0)), Err(Error::InvalidState(_))));
        let pool = ctx.pool(Some(3)).unwrap();
        assert_eq!(pool.processes(), 3);
        // three distinct workers answer when three tasks overlap
        let rs: Vec<_> = (0..3)
            .map(|i| pool.apply_async(pid_after_wait, (i, 300)))
            .collect();
        let pids: HashSet<u32> = rs.iter().map(|r| r.get_timeout(T).unwrap().1).collect();
        assert_eq!(pids.len(), 3, "{pids:?}");
        pool.close().unwrap();
        pool.join().unwrap();
    });
}

#[mp::task]
fn pid_after_wait(x: i64, ms: u64) -> (i64, u32) {
    std::thread::sleep(Duration::from_millis(ms));
    (x, std::process::id())
}

#[test]
fn test_terminate() {
    // slow tasks that would take "forever": terminate must not wait for them
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(3)).unwrap();
        let items = vec![60_000u64; 10_000];
        let result = pool.map_async_chunked(sleep_ms, items, 1);
        let (r, elapsed) = timed(|| {
            pool.terminate()?;
            pool.join()
        });
        r.unwrap();
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
        assert!(result.get_timeout(T).is_err());
    });
}

#[test]
fn test_empty_iterable() {
    // Issue 12157
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(1)).unwrap();
        assert_eq!(pool.map(sqr, Vec::<i64>::new()).unwrap(), Vec::<i64>::new());
        assert_eq!(pool.imap(sqr, Vec::<i64>::new()).count(), 0);
        assert_eq!(pool.imap_unordered(sqr, Vec::<i64>::new()).count(), 0);
        assert_eq!(
            pool.map_async(sqr, Vec::<i64>::new())
                .get_timeout(T)
                .unwrap(),
            Vec::<i64>::new()
        );
        pool.close().unwrap();
        pool.join().unwrap();
    });
}

#[test]
fn test_context() {
    // `with Pool(2) as p:` then use after exit raises ValueError
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let r = pool.map_async(sqr, 0..10);
        assert_eq!(r.get_timeout(T).unwrap(), squares(10));
        pool.terminate().unwrap();
        pool.join().unwrap();
        let after = pool.map_async(sqr, 0..10).get_timeout(T);
        assert!(matches!(after, Err(Error::InvalidState(_))), "{after:?}");
        assert!(matches!(pool.apply(sqr, (1,)), Err(Error::InvalidState(_))));
        assert_eq!(pool.imap(sqr, 0..3).next().map(|r| r.is_err()), Some(true));
    });
}

#[mp::task]
fn raise_runtime_error() -> i64 {
    panic!("RuntimeError(123) # some comment");
}

#[test]
fn test_traceback_and_wrapped_exception() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(1)).unwrap();
        match pool.apply(raise_runtime_error, ()) {
            Err(Error::TaskPanicked { task, message, .. }) => {
                assert!(task.ends_with("raise_runtime_error"), "{task}");
                assert!(message.contains("RuntimeError(123)"), "{message}");
            }
            other => panic!("expected TaskPanicked, got {other:?}"),
        }
        // the pool survives its task's panic
        assert_eq!(pool.apply(sqr, (4,)).unwrap(), 16);
    });
}

#[test]
fn test_map_no_failfast() {
    // Issue #23992: an error during map() must not make close() + join() deadlock
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let (r, elapsed) = timed(|| {
            let r = pool.map(raise_large_valueerror, [0u64, 500]);
            pool.close().unwrap();
            pool.join().unwrap();
            r
        });
        match r {
            Err(Error::TaskPanicked { message, .. }) => assert_eq!(message.len(), 1 << 20),
            other => panic!("expected TaskPanicked, got {other:?}"),
        }
        // join waited for the slower failing task too
        assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    });
}

#[test]
fn test_async_error_callback() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let scratch: Arc<Mutex<Option<String>>> = Arc::default();
        let s = scratch.clone();
        let res = pool.apply_async_with(
            raising,
            (),
            |_| panic!("the callback must not run"),
            move |e| *s.lock().unwrap() = Some(e.to_string()),
        );
        assert!(matches!(
            res.get_timeout(T),
            Err(Error::TaskPanicked { .. })
        ));
        let got = scratch.lock().unwrap().clone();
        assert!(got.is_some_and(|m| m.contains("KeyError")));
        pool.close().unwrap();
        pool.join().unwrap();
    });
}

#[test]
fn test_unpickleable_result() {
    // encoding errors must not cost the pool its workers
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        for _ in 0..20 {
            let scratch: Arc<Mutex<Option<String>>> = Arc::default();
            let s = scratch.clone();
            let res = pool.apply_async_with(
                unpicklable_result,
                (),
                |_| panic!("the callback must not run"),
                move |e| *s.lock().unwrap() = Some(e.to_string()),
            );
            let err = res.get_timeout(T).unwrap_err();
            assert!(matches!(err, Error::Codec(_)), "{err:?}");
            assert!(scratch.lock().unwrap().is_some());
        }
        // only the unencodable items of a chunk fail; their neighbours arrive
        let got: Vec<_> = pool.imap_chunked(some_unpicklable, 0..9, 9).collect();
        for (i, r) in got.iter().enumerate() {
            match r {
                Ok(Ok(v)) => assert_eq!(*v, i as i64),
                Err(Error::Codec(_)) => assert_eq!(i % 3, 0),
                other => panic!("item {i}: {other:?}"),
            }
        }
        pool.close().unwrap();
        pool.join().unwrap();
    });
}

#[test]
fn test_pool_worker_lifetime() {
    for_each_method(|ctx| {
        let pool = ctx
            .pool_builder()
            .processes(3)
            .maxtasksperchild(10)
            .build()
            .unwrap();
        let first: HashSet<u32> = (0..3)
            .map(|i| pool.apply_async(pid_after_wait, (i, 200)))
            .collect::<Vec<_>>()
            .iter()
            .map(|r| r.get_timeout(T).unwrap().1)
            .collect();
        let results: Vec<_> = (0..100)
            .map(|i| pool.apply_async(pid_after, (i,)))
            .collect();
        let mut pids = HashSet::new();
        for (j, r) in results.iter().enumerate() {
            let (v, pid) = r.get_timeout(T).unwrap();
            assert_eq!(v, (j * j) as i64);
            pids.insert(pid);
        }
        // 103 tasks, at most 10 per worker: the workers were replaced
        assert!(pids.union(&first).count() >= 11, "{pids:?}");
        pool.close().unwrap();
        pool.join().unwrap();
    });
}

#[test]
fn test_pool_worker_lifetime_early_close() {
    // Issue #10332: closing a pool whose workers have limited lifetimes before all the
    // tasks completed would make join() hang
    for_each_method(|ctx| {
        let pool = ctx
            .pool_builder()
            .processes(3)
            .maxtasksperchild(1)
            .build()
            .unwrap();
        let results: Vec<_> = (0..6)
            .map(|i| pool.apply_async(sqr_wait, (i, 300)))
            .collect();
        pool.close().unwrap();
        pool.join().unwrap();
        for (j, r) in results.iter().enumerate() {
            assert_eq!(r.get_timeout(T).unwrap(), (j * j) as i64);
        }
    });
}

#[test]
fn test_pool_maxtasksperchild_invalid() {
    for_each_method(|ctx| {
        let r = ctx.pool_builder().processes(3).maxtasksperchild(0).build();
        assert!(matches!(r, Err(Error::InvalidState(_))));
        let pool = ctx.pool(Some(1)).unwrap();
        assert!(matches!(
            pool.map_chunked(sqr, 0..3, 0),
            Err(Error::InvalidState(_))
        ));
        assert!(pool.imap_chunked(sqr, 0..3, 0).next().unwrap().is_err());
    });
}

#[test]
fn join_before_close_is_an_error() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(1)).unwrap();
        assert!(matches!(pool.join(), Err(Error::InvalidState(_))));
        pool.close().unwrap();
        // closed: no new work, the queued work is finished
        assert!(pool.apply_async(sqr, (2,)).get_timeout(T).is_err());
        pool.join().unwrap();
    });
}

#[test]
fn the_docs_first_example() {
    // with Pool(5) as p: print(p.map(f, [1, 2, 3]))
    for_each_method(|ctx| {
        let p = ctx.pool(Some(5)).unwrap();
        assert_eq!(p.map(sqr, [1, 2, 3]).unwrap(), [1, 4, 9]);
    });
}

#[mp::task]
fn start_pool_in_child(n: i64) -> Vec<i64> {
    let pool = Pool::new(Some(2)).expect("a non-daemonic child may start a pool");
    pool.map(sqr, 0..n).expect("map in the child")
}

#[mp::task]
fn pool_in_worker() -> bool {
    matches!(Pool::new(Some(1)), Err(Error::InvalidState(_)))
}

#[test]
fn pools_nest_in_processes_but_not_in_daemonic_workers() {
    for_each_method(|ctx| {
        let h = mp::spawn(start_pool_in_child, (5,)).unwrap();
        assert_eq!(h.join().unwrap(), squares(5));
        let pool = ctx.pool(Some(1)).unwrap();
        assert!(pool.apply(pool_in_worker, ()).unwrap());
    });
}
