//! Ports of CPython's `_TestQueue`, `TestSimpleQueue` and the JoinableQueue tests
//! (Lib/test/_test_multiprocessing.py), plus the docs' queue examples, written against
//! API.md's names and run under every start method with real processes.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::*;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

/// Polls until `f()` holds (items may be in flight), bounded.
fn eventually(f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < LONG, "condition never held");
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ------------------------------------------------------------------------- test_put

#[mp::task]
fn put_child(queue: Queue<i32>, child_can_start: Event, parent_can_continue: Event) {
    assert!(child_can_start.wait(Some(LONG)));
    for _ in 0..6 {
        queue.get_timeout(LONG).unwrap();
    }
    parent_can_continue.set();
}

#[test]
fn test_put() {
    for_each_method(|ctx| {
        const MAXSIZE: usize = 6;
        let queue = ctx.queue_with_maxsize::<i32>(MAXSIZE).unwrap();
        let child_can_start = ctx.event().unwrap();
        let parent_can_continue = ctx.event().unwrap();
        let proc = ctx
            .process(
                put_child,
                (
                    queue.clone(),
                    child_can_start.clone(),
                    parent_can_continue.clone(),
                ),
            )
            .with_daemon(true);
        proc.start().unwrap();

        assert!(queue.empty());
        assert!(!queue.full());

        queue.put(1).unwrap();
        queue.put(2).unwrap();
        queue.put_timeout(3, LONG).unwrap();
        queue.try_put(4).unwrap();
        queue.try_put(5).unwrap();
        queue.put_timeout(6, Duration::ZERO).unwrap();

        eventually(|| queue.full());
        assert!(!queue.empty());
        assert!(queue.full());
        assert_eq!(queue.qsize(), MAXSIZE);

        let (r, e) = timed(|| queue.try_put(7));
        assert!(matches!(r, Err(Error::Full)), "{r:?}");
        almost(e, Duration::ZERO);
        let (r, e) = timed(|| queue.put_timeout(7, Duration::ZERO));
        assert!(matches!(r, Err(Error::Full)), "{r:?}");
        almost(e, Duration::ZERO);
        let (r, e) = timed(|| queue.put_timeout(7, TIMEOUT1));
        assert!(matches!(r, Err(Error::Full)), "{r:?}");
        almost(e, TIMEOUT1);
        let (r, e) = timed(|| queue.put_timeout(7, TIMEOUT3));
        assert!(matches!(r, Err(Error::Full)), "{r:?}");
        almost(e, TIMEOUT3);

        child_can_start.set();
        assert!(parent_can_continue.wait(Some(LONG)));

        assert!(queue.empty());
        assert!(!queue.full());
        join_ok(&proc);
    });
}

// ------------------------------------------------------------------------- test_get

#[mp::task]
fn get_child(queue: Queue<i32>, child_can_start: Event, parent_can_continue: Event) {
    assert!(child_can_start.wait(Some(LONG)));
    for i in 2..=5 {
        queue.put(i).unwrap();
    }
    parent_can_continue.set();
}

#[test]
fn test_get() {
    for_each_method(|ctx| {
        let queue = ctx.queue::<i32>().unwrap();
        let child_can_start = ctx.event().unwrap();
        let parent_can_continue = ctx.event().unwrap();
        let proc = ctx.process(
            get_child,
            (
                queue.clone(),
                child_can_start.clone(),
                parent_can_continue.clone(),
            ),
        );
        proc.start().unwrap();
        assert!(queue.empty());
        child_can_start.set();
        assert!(parent_can_continue.wait(Some(LONG)));
        eventually(|| !queue.empty());

        assert_eq!(queue.get().unwrap(), 2);
        assert_eq!(queue.get_timeout(LONG).unwrap(), 3);
        assert_eq!(queue.get_timeout(Duration::from_secs(1)).unwrap(), 4);
        eventually(|| !queue.empty());
        assert_eq!(queue.try_get().unwrap(), 5);
        assert!(queue.empty());

        let (r, e) = timed(|| queue.try_get());
        assert!(matches!(r, Err(Error::Empty)), "{r:?}");
        almost(e, Duration::ZERO);
        let (r, e) = timed(|| queue.get_timeout(Duration::ZERO));
        assert!(matches!(r, Err(Error::Empty)), "{r:?}");
        almost(e, Duration::ZERO);
        let (r, e) = timed(|| queue.get_timeout(TIMEOUT1));
        assert!(matches!(r, Err(Error::Empty)), "{r:?}");
        almost(e, TIMEOUT1);
        let (r, e) = timed(|| queue.get_timeout(TIMEOUT2));
        assert!(matches!(r, Err(Error::Empty)), "{r:?}");
        almost(e, TIMEOUT2);
        join_ok(&proc);
    });
}

// ------------------------------------------------------------------------ test_fork

#[mp::task]
fn fork_child(queue: Queue<i32>) {
    for i in 10..20 {
        queue.put(i).unwrap();
    }
    // the items may still be buffered: exiting must flush them
}

#[test]
fn test_fork() {
    for_each_method(|ctx| {
        let queue = ctx.queue::<i32>().unwrap();
        for i in 0..10 {
            queue.put(i).unwrap();
        }
        let p = ctx.process(fork_child, (queue.clone(),)).with_daemon(true);
        p.start().unwrap();
        for i in 0..20 {
            assert_eq!(queue.get_timeout(LONG).unwrap(), i);
        }
        assert!(matches!(queue.try_get(), Err(Error::Empty)));
        join_ok(&p);
    });
}

// ----------------------------------------------------------------------- test_qsize

#[test]
fn test_qsize() {
    let q: Queue<i32> = Queue::new().unwrap();
    assert_eq!(q.qsize(), 0);
    q.put(1).unwrap();
    assert_eq!(q.qsize(), 1);
    q.put(5).unwrap();
    assert_eq!(q.qsize(), 2);
    q.get_timeout(LONG).unwrap();
    assert_eq!(q.qsize(), 1);
    q.get_timeout(LONG).unwrap();
    assert_eq!(q.qsize(), 0);
}

// ------------------------------------------------------------------- test_task_done

#[mp::task]
fn task_done_worker(q: JoinableQueue<Option<i32>>) {
    while let Some(_obj) = q.get_timeout(LONG).unwrap() {
        std::thread::sleep(Duration::from_millis(10));
        q.task_done().unwrap();
    }
}

#[test]
fn test_task_done() {
    for_each_method(|ctx| {
        let queue = ctx.joinable_queue::<Option<i32>>().unwrap();
        let workers: Vec<Process> = (0..4)
            .map(|_| {
                ctx.process(task_done_worker, (queue.clone(),))
                    .with_daemon(true)
            })
            .collect();
        for p in &workers {
            p.start().unwrap();
        }
        for i in 0..10 {
            queue.put(Some(i)).unwrap();
        }
        // join(), bounded
        assert!(queue.join_timeout(LONG));
        for _ in &workers {
            queue.put(None).unwrap();
        }
        for p in &workers {
            join_ok(p);
        }
    });
}

#[test]
fn joinable_queue_task_done_too_often() {
    let q: JoinableQueue<i32> = JoinableQueue::new().unwrap();
    assert!(matches!(q.task_done(), Err(Error::InvalidState(_))));
    q.put(1).unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), 1);
    q.task_done().unwrap();
    assert!(q.task_done().is_err());
    // nothing unfinished: join returns at once
    q.join().unwrap();
}

// ------------------------------------------------------------------------ test_timeout

#[test]
fn test_timeout() {
    let q: Queue<i32> = Queue::new().unwrap();
    let start = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(200)),
        Err(Error::Empty)
    ));
    assert!(start.elapsed() >= Duration::from_millis(100));
}

// ------------------------------------------------------ test_queue_feeder_donot_stop_onexc

/// An item whose serialization fails (CPython's `NotSerializable`).
#[derive(Debug, PartialEq, Deserialize)]
enum Msg {
    Good(bool),
    Bad,
}

impl Serialize for Msg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Msg::Good(b) => s.serialize_newtype_variant("Msg", 0, "Good", b),
            Msg::Bad => Err(serde::ser::Error::custom("cannot serialize Bad")),
        }
    }
}

#[test]
fn test_queue_feeder_donot_stop_onexc() {
    let q: Queue<Msg> = Queue::new().unwrap();
    // CPython's feeder logs the error; here put reports it (or drops the item)
    let _ = q.put(Msg::Bad);
    q.put(Msg::Good(true)).unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), Msg::Good(true));

    // bpo-33078: the size stays right on errors
    let q: Queue<Msg> = Queue::with_maxsize(1).unwrap();
    let _ = q.put(Msg::Bad);
    q.put_timeout(Msg::Good(true), LONG).unwrap();
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get_timeout(LONG).unwrap(), Msg::Good(true));
    assert!(q.empty());

    let jq: JoinableQueue<Msg> = JoinableQueue::new().unwrap();
    let _ = jq.put(Msg::Bad);
    jq.put(Msg::Good(false)).unwrap();
    assert_eq!(jq.get_timeout(LONG).unwrap(), Msg::Good(false));
    jq.task_done().unwrap();
    // the failed put left no unfinished task behind
    assert!(jq.join_timeout(Duration::from_secs(5)));
}

// ------------------------------------------------ test_closed_queue_put_get_exceptions

#[test]
fn test_closed_queue_put_get_exceptions() {
    let q: Queue<String> = Queue::new().unwrap();
    q.close().unwrap();
    assert!(matches!(q.put("foo".into()), Err(Error::InvalidState(_))));
    assert!(matches!(q.get(), Err(Error::InvalidState(_))));
    let q: JoinableQueue<String> = JoinableQueue::new().unwrap();
    q.close().unwrap();
    assert!(matches!(q.put("foo".into()), Err(Error::InvalidState(_))));
    assert!(matches!(q.get(), Err(Error::InvalidState(_))));
}

#[test]
fn test_closed_queue_empty_exceptions() {
    // 3.13: close and join_thread on an unused queue are no-ops; empty() still answers
    let q: Queue<String> = Queue::new().unwrap();
    q.close().unwrap();
    q.join_thread().unwrap();
    assert!(q.empty());
    let q: JoinableQueue<String> = JoinableQueue::new().unwrap();
    q.close().unwrap();
    q.join_thread().unwrap();
    assert!(q.empty());
    // a used one: close then join_thread flushes and returns
    let q: Queue<String> = Queue::new().unwrap();
    q.put("foo".into()).unwrap();
    q.close().unwrap();
    q.join_thread().unwrap();
}

// --------------------------------------------------------------------- TestSimpleQueue

#[mp::task]
fn simple_empty_child(
    queue: SimpleQueue<bool>,
    child_can_start: Event,
    parent_can_continue: Event,
) {
    assert!(child_can_start.wait(Some(LONG)));
    let a = queue.empty();
    queue.put(a).unwrap();
    let b = queue.empty();
    queue.put(b).unwrap();
    parent_can_continue.set();
}

#[test]
fn test_simple_queue_empty() {
    for_each_method(|ctx| {
        let queue = ctx.simple_queue::<bool>().unwrap();
        let child_can_start = ctx.event().unwrap();
        let parent_can_continue = ctx.event().unwrap();
        let proc = ctx.process(
            simple_empty_child,
            (
                queue.clone(),
                child_can_start.clone(),
                parent_can_continue.clone(),
            ),
        );
        proc.start().unwrap();
        assert!(queue.empty());
        child_can_start.set();
        assert!(parent_can_continue.wait(Some(LONG)));
        assert!(!queue.empty());
        assert!(queue.get().unwrap());
        assert!(!queue.get().unwrap());
        assert!(queue.empty());
        join_ok(&proc);
    });
}

#[test]
fn test_simple_queue_close() {
    let queue: SimpleQueue<i32> = SimpleQueue::new().unwrap();
    queue.close().unwrap();
    // closing twice does not fail
    queue.close().unwrap();
    assert!(queue.put(1).is_err());
    assert!(queue.get().is_err());
}

// ------------------------------------------------------------------ ordering and sizes

#[mp::task]
fn producer(q: Queue<(u32, u32)>, id: u32, n: u32) {
    for i in 0..n {
        q.put((id, i)).unwrap();
    }
}

#[test]
fn items_from_one_producer_arrive_in_order() {
    for_each_method(|ctx| {
        let q = ctx.queue::<(u32, u32)>().unwrap();
        let ps: Vec<Process> = (0..3)
            .map(|id| ctx.process(producer, (q.clone(), id, 500)))
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        let mut next = [0u32; 3];
        for _ in 0..1500 {
            let (id, i) = q.get_timeout(LONG).unwrap();
            assert_eq!(next[id as usize], i);
            next[id as usize] += 1;
        }
        for p in &ps {
            join_ok(p);
        }
    });
}

#[mp::task]
fn put_big(q: Queue<Vec<u8>>, n: usize) {
    q.put(vec![7u8; n]).unwrap();
}

#[test]
fn child_with_large_item_joins_before_read() {
    // CPython's docs warn this deadlocks; API.md promises it does not.
    for_each_method(|ctx| {
        let q = ctx.queue::<Vec<u8>>().unwrap();
        let p = ctx.process(put_big, (q.clone(), 4 << 20));
        p.start().unwrap();
        join_ok(&p);
        let v = q.get_timeout(LONG).unwrap();
        assert_eq!(v.len(), 4 << 20);
        assert!(v.iter().all(|&b| b == 7));
    });
}

#[mp::task]
fn bounded_producer(q: Queue<u32>, n: u32) {
    for i in 0..n {
        q.put(i).unwrap();
    }
}

#[test]
fn bounded_queue_blocks_producer_until_consumed() {
    for_each_method(|ctx| {
        let q = ctx.queue_with_maxsize::<u32>(2).unwrap();
        let p = ctx.process(bounded_producer, (q.clone(), 50));
        p.start().unwrap();
        eventually(|| q.full());
        assert!(q.qsize() <= 2);
        for i in 0..50 {
            assert_eq!(q.get_timeout(LONG).unwrap(), i);
            assert!(q.qsize() <= 2);
        }
        join_ok(&p);
    });
}

// ------------------------------------------------------------------------ the docs

#[mp::task]
fn docs_f(q: Queue<(i32, Option<i32>, String)>) {
    q.put((42, None, "hello".into())).unwrap();
}

/// "Exchanging objects between processes": queues.
#[test]
fn docs_exchanging_objects_queue() {
    for_each_method(|ctx| {
        let q = ctx.queue().unwrap();
        let p = ctx.process(docs_f, (q.clone(),));
        p.start().unwrap();
        assert_eq!(
            q.get_timeout(LONG).unwrap(),
            (42, None, "hello".to_string())
        );
        join_ok(&p);
    });
}

#[mp::task]
fn mul(a: i64, b: i64) -> i64 {
    a * b
}

#[mp::task]
fn plus(a: i64, b: i64) -> i64 {
    a + b
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Job {
    Mul(i64, i64),
    Plus(i64, i64),
    Stop,
}

#[mp::task]
fn docs_worker(input: Queue<Job>, output: Queue<String>) {
    loop {
        let job = input.get_timeout(LONG).unwrap();
        let (name, a, b, r) = match job {
            Job::Mul(a, b) => ("mul", a, b, mul(a, b)),
            Job::Plus(a, b) => ("plus", a, b, plus(a, b)),
            Job::Stop => break,
        };
        let pid = std::process::id();
        output
            .put(format!("Process-{pid} says that {name}({a}, {b}) = {r}"))
            .unwrap();
    }
}

/// The docs' "An example showing how to use queues to feed tasks to a collection of
/// worker processes and collect the results".
#[test]
fn docs_task_queue_example() {
    for_each_method(|ctx| {
        const NUMBER_OF_PROCESSES: usize = 4;
        let tasks1: Vec<Job> = (0..20).map(|i| Job::Mul(i, 7)).collect();
        let tasks2: Vec<Job> = (0..10).map(|i| Job::Plus(i, 8)).collect();
        let task_queue = ctx.queue::<Job>().unwrap();
        let done_queue = ctx.queue::<String>().unwrap();
        for t in &tasks1 {
            task_queue.put(t.clone()).unwrap();
        }
        let ps: Vec<Process> = (0..NUMBER_OF_PROCESSES)
            .map(|_| ctx.process(docs_worker, (task_queue.clone(), done_queue.clone())))
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        let mut got: Vec<String> = (0..tasks1.len())
            .map(|_| done_queue.get_timeout(LONG).unwrap())
            .collect();
        for t in &tasks2 {
            task_queue.put(t.clone()).unwrap();
        }
        got.extend((0..tasks2.len()).map(|_| done_queue.get_timeout(LONG).unwrap()));
        for _ in 0..NUMBER_OF_PROCESSES {
            task_queue.put(Job::Stop).unwrap();
        }
        for p in &ps {
            join_ok(p);
        }
        assert_eq!(got.len(), 30);
        for i in 0..20 {
            let want = format!(" says that mul({i}, 7) = {}", i * 7);
            assert!(got.iter().any(|s| s.ends_with(&want)), "{want} in {got:?}");
        }
        for i in 0..10 {
            let want = format!(" says that plus({i}, 8) = {}", i + 8);
            assert!(got.iter().any(|s| s.ends_with(&want)), "{want} in {got:?}");
        }
        assert!(done_queue.empty());
    });
}

/// The `queue` module docs' JoinableQueue pattern: workers call `task_done`, the
/// producer `join`s.
#[mp::task]
fn jq_worker(q: JoinableQueue<Option<u32>>, out: Value<u64>) {
    loop {
        let item = q.get_timeout(LONG).unwrap();
        match item {
            Some(x) => {
                *out.lock() += x as u64;
                q.task_done().unwrap();
            }
            None => {
                q.task_done().unwrap();
                break;
            }
        }
    }
}

#[test]
fn docs_joinable_queue_join() {
    for_each_method(|ctx| {
        let q = ctx.joinable_queue::<Option<u32>>().unwrap();
        let out = ctx.value(0u64).unwrap();
        let ps: Vec<Process> = (0..2)
            .map(|_| ctx.process(jq_worker, (q.clone(), out.clone())))
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        for i in 0..100 {
            q.put(Some(i)).unwrap();
        }
        assert!(q.join_timeout(LONG));
        assert_eq!(out.get(), (0..100).sum::<u32>() as u64);
        for _ in &ps {
            q.put(None).unwrap();
        }
        assert!(q.join_timeout(LONG));
        for p in &ps {
            join_ok(p);
        }
    });
}
