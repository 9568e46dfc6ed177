//! Queue, SimpleQueue and JoinableQueue across real processes, under every start method.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::{Error, JoinableQueue, Queue, SimpleQueue};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

fn join(p: &mp::Process) {
    p.join_timeout(LONG).unwrap();
    assert_eq!(p.exitcode(), Some(0), "{p:?}");
}

#[mp::task]
fn put_hello(q: Queue<String>) {
    q.put("hello".to_string()).unwrap();
}

#[test]
fn a_child_puts_the_parent_gets() {
    for ctx in contexts() {
        let q = ctx.queue().unwrap();
        let p = ctx.process(put_hello, (q.clone(),));
        p.start().unwrap();
        assert_eq!(q.get_timeout(LONG).unwrap(), "hello");
        join(&p);
    }
}

#[mp::task]
fn produce(q: Queue<(u32, u32)>, id: u32, n: u32) {
    for i in 0..n {
        q.put((id, i)).unwrap();
    }
}

#[mp::task]
fn consume(q: Queue<(u32, u32)>, out: Queue<Vec<(u32, u32)>>) {
    let mut got = Vec::new();
    loop {
        let item = q.get_timeout(LONG).unwrap();
        if item.0 == u32::MAX {
            break;
        }
        got.push(item);
    }
    out.put(got).unwrap();
}

#[test]
fn many_producers_many_consumers_each_item_once_in_order() {
    const N: u32 = 10_000;
    for ctx in contexts() {
        let q: Queue<(u32, u32)> = ctx.queue().unwrap();
        let out: Queue<Vec<(u32, u32)>> = ctx.queue().unwrap();
        let producers: Vec<_> = (0..4)
            .map(|id| ctx.process(produce, (q.clone(), id, N)))
            .collect();
        let consumers: Vec<_> = (0..4)
            .map(|_| ctx.process(consume, (q.clone(), out.clone())))
            .collect();
        for p in producers.iter().chain(&consumers) {
            p.start().unwrap();
        }
        for p in &producers {
            join(p);
        }
        for _ in &consumers {
            q.put((u32::MAX, 0)).unwrap();
        }
        let mut seen: HashMap<u32, Vec<u32>> = HashMap::new();
        for _ in &consumers {
            let got = out.get_timeout(LONG).unwrap();
            // per consumer, each producer's items arrive in increasing order
            let mut last: HashMap<u32, u32> = HashMap::new();
            for (id, i) in got {
                if let Some(&prev) = last.get(&id) {
                    assert!(i > prev, "producer {id}: {i} after {prev}");
                }
                last.insert(id, i);
                seen.entry(id).or_default().push(i);
            }
        }
        for p in &consumers {
            join(p);
        }
        for id in 0..4 {
            let mut v = seen.remove(&id).unwrap();
            v.sort_unstable();
            assert_eq!(
                v,
                (0..N).collect::<Vec<_>>(),
                "producer {id}: every item exactly once"
            );
        }
    }
}

#[mp::task]
fn get_one_after(q: Queue<u32>, ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    q.get_timeout(LONG).unwrap();
}

#[test]
fn bounded_queue_blocks_on_maxsize() {
    let q: Queue<u32> = Queue::with_maxsize(2).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert!(q.full());
    assert_eq!(q.qsize(), 2);
    assert!(matches!(q.try_put(3), Err(Error::Full)));
    let t = Instant::now();
    assert!(matches!(
        q.put_timeout(3, Duration::from_millis(200)),
        Err(Error::Full)
    ));
    assert!(t.elapsed() >= Duration::from_millis(190));
    // put blocks until a consumer (another process) frees a slot
    let p = mp::Process::new(get_one_after, (q.clone(), 100));
    p.start().unwrap();
    q.put_timeout(3, LONG).unwrap();
    join(&p);
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.get().unwrap(), 3);
    assert!(q.empty());
}

#[test]
fn empty_queue_gets() {
    let q: Queue<u32> = Queue::new().unwrap();
    assert!(q.empty());
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    let t = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(200)),
        Err(Error::Empty)
    ));
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(190) && e < Duration::from_secs(10),
        "{e:?}"
    );
    assert!(matches!(q.get_timeout(Duration::ZERO), Err(Error::Empty)));
}

#[test]
fn close_then_put_is_an_error() {
    let q: Queue<u32> = Queue::new().unwrap();
    q.put(1).unwrap();
    let other = q.clone();
    q.close().unwrap();
    assert!(matches!(q.put(2), Err(Error::InvalidState(_))));
    assert!(
        matches!(other.put(2), Err(Error::InvalidState(_))),
        "close is per process"
    );
    q.join_thread().unwrap();
    // a fresh handle in another process still works
    let q2: Queue<u32> = Queue::new().unwrap();
    assert!(q2.join_thread().is_err(), "join_thread before close");
}

#[mp::task]
fn put_big_and_exit(q: Queue<Vec<u8>>, len: usize) {
    q.put(vec![7u8; len]).unwrap();
}

#[test]
fn joining_a_child_that_put_a_large_item_does_not_deadlock() {
    for ctx in contexts() {
        let q = ctx.queue().unwrap();
        let p = ctx.process(put_big_and_exit, (q.clone(), 1 << 20));
        p.start().unwrap();
        join(&p); // before get: Python's docs deadlock here
        let item = q.get_timeout(LONG).unwrap();
        assert_eq!(item.len(), 1 << 20);
        assert!(item.iter().all(|&b| b == 7));
    }
}

#[test]
fn large_and_tiny_items() {
    let q: Queue<Vec<u8>> = Queue::new().unwrap();
    let p = mp::Process::new(put_big_and_exit, (q.clone(), 16 << 20));
    p.start().unwrap();
    let big = q.get_timeout(LONG).unwrap();
    assert_eq!(big.len(), 16 << 20);
    join(&p);
    let tiny: Queue<u8> = Queue::new().unwrap();
    for i in 0..200_000u32 {
        tiny.put(i as u8).unwrap(); // more than the ring holds: the feeder buffers
    }
    for i in 0..200_000u32 {
        assert_eq!(tiny.get_timeout(LONG).unwrap(), i as u8);
    }
}

#[mp::task]
fn block_in_get(q: Queue<u32>, ready: Queue<u32>) {
    ready.put(1).unwrap();
    let _ = q.get();
}

#[test]
fn a_consumer_killed_in_get_leaves_the_queue_usable() {
    for ctx in contexts() {
        let q: Queue<u32> = ctx.queue().unwrap();
        let ready: Queue<u32> = ctx.queue().unwrap();
        let p = ctx.process(block_in_get, (q.clone(), ready.clone()));
        p.start().unwrap();
        ready.get_timeout(LONG).unwrap();
        std::thread::sleep(Duration::from_millis(50)); // let it reach the futex wait
        p.kill().unwrap();
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(-9));
        q.put(5).unwrap();
        assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 5);
        let c = ctx.process(get_one_after, (q.clone(), 0));
        c.start().unwrap();
        q.put(6).unwrap();
        join(&c);
    }
}

#[mp::task]
fn send_handles(q: Queue<(mp::reduction::SharedFd, Queue<String>)>) {
    use std::io::Write;
    let inner: Queue<String> = Queue::new().unwrap();
    let (r, w) = std::io::pipe().unwrap();
    let mut w = std::fs::File::from(std::os::fd::OwnedFd::from(w));
    w.write_all(b"through a queue").unwrap();
    drop(w);
    inner.put("inner".to_string()).unwrap();
    q.put((
        mp::reduction::SharedFd::from(std::os::fd::OwnedFd::from(r)),
        inner,
    ))
    .unwrap();
}

#[test]
fn items_carrying_handles_arrive_usable() {
    for ctx in contexts() {
        let q = ctx.queue().unwrap();
        let p = ctx.process(send_handles, (q.clone(),));
        p.start().unwrap();
        let (fd, inner) = q.get_timeout(LONG).unwrap();
        join(&p);
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(fd.into_owned()), &mut s).unwrap();
        assert_eq!(s, "through a queue");
        assert_eq!(inner.get_timeout(LONG).unwrap(), "inner");
    }
}

#[mp::task]
fn worker(tasks: JoinableQueue<u32>, results: Queue<u32>) {
    while let Ok(n) = tasks.get_timeout(Duration::from_secs(2)) {
        results.put(n * n).unwrap();
        tasks.task_done().unwrap();
    }
}

#[test]
fn joinable_queue_join_waits_for_task_done() {
    for ctx in contexts() {
        let tasks: JoinableQueue<u32> = ctx.joinable_queue().unwrap();
        let results: Queue<u32> = ctx.queue().unwrap();
        for i in 0..20 {
            tasks.put(i).unwrap();
        }
        let ps: Vec<_> = (0..2)
            .map(|_| ctx.process(worker, (tasks.clone(), results.clone())))
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        assert!(tasks.join_timeout(LONG), "all tasks done");
        let mut got: Vec<u32> = (0..20).map(|_| results.try_get().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..20).map(|i| i * i).collect::<Vec<_>>());
        assert!(
            matches!(tasks.task_done(), Err(Error::InvalidState(_))),
            "one too many"
        );
        for p in &ps {
            join(p);
        }
    }
}

#[mp::task]
fn simple_put(q: SimpleQueue<String>, n: u32) {
    for i in 0..n {
        q.put(format!("item {i}")).unwrap();
    }
}

#[test]
fn simple_queue() {
    for ctx in contexts() {
        let q: SimpleQueue<String> = ctx.simple_queue().unwrap();
        assert!(q.empty());
        let p = ctx.process(simple_put, (q.clone(), 100));
        p.start().unwrap();
        for i in 0..100 {
            assert_eq!(q.get_timeout(LONG).unwrap(), format!("item {i}"));
        }
        join(&p);
        assert!(q.empty());
        q.close().unwrap();
        assert!(q.get_timeout(Duration::ZERO).is_err());
    }
}

#[test]
fn queue_through_a_queue() {
    let outer: Queue<Queue<u32>> = Queue::new().unwrap();
    let inner: Queue<u32> = Queue::new().unwrap();
    outer.put(inner.clone()).unwrap();
    let got = outer.get().unwrap();
    got.put(9).unwrap();
    assert_eq!(inner.get().unwrap(), 9);
}

#[test]
fn malformed_handles_do_not_serialize_elsewhere() {
    let q: Queue<u32> = Queue::new().unwrap();
    assert!(
        mp::codec::encode(&q).is_err(),
        "a queue only travels through mp's transports"
    );
}

/// Bytes of a queue's shared ring (`mp::queues`' `RING`).
const RING_BYTES: usize = 1 << 20;

/// Item `i` of the full-ring tests: 200–2 000 bytes (so entries end at every offset and
/// the ring wraps with and without a marker), its index first, the rest its low byte.
fn ring_item(i: u32) -> Vec<u8> {
    let mut v = vec![i as u8; 200 + (i as usize * 37) % 1800];
    v[..4].copy_from_slice(&i.to_le_bytes());
    v
}

/// An upper bound of the ring bytes `item` takes (entry header 16, length prefix at
/// most 5, padding at most 7): the put that fills the ring comes at or after the sum
/// of these passes the ring's size.
fn ring_bytes(item: &[u8]) -> usize {
    item.len() + 28
}

/// Puts items `0..n`, setting `full` before the put that fills the ring (by then the
/// ring is all but full; that put, or the next, waits for a get).
#[mp::task]
fn fill_past_the_ring_simple(q: SimpleQueue<Vec<u8>>, full: mp::Event, n: u32) {
    fill_past(|item| q.put(item).unwrap(), &full, n);
}

/// [`fill_past_the_ring_simple`] through a `Queue` (its feeder buffers what does not fit).
#[mp::task]
fn fill_past_the_ring(q: Queue<Vec<u8>>, full: mp::Event, n: u32) {
    fill_past(|item| q.put(item).unwrap(), &full, n);
}

fn fill_past(put: impl Fn(Vec<u8>), full: &mp::Event, n: u32) {
    let mut sent = 0;
    for i in 0..n {
        let item = ring_item(i);
        sent += ring_bytes(&item);
        if sent > RING_BYTES - 4096 {
            full.set();
        }
        put(item);
    }
}

/// A put reads the consumers' head only when the ring looks full with the head its
/// process saw last: a producer in one process that filled the ring must see the room
/// gets in another process make, and never write over an entry not yet got. About
/// 4 MiB through the 1 MiB ring, from a producer that filled it before the first get;
/// every item must arrive whole and in order.
#[test]
fn a_producer_that_filled_the_ring_sees_the_room_another_process_makes() {
    const N: u32 = 4_000;
    for ctx in contexts() {
        let q: SimpleQueue<Vec<u8>> = ctx.simple_queue().unwrap();
        let full = ctx.event().unwrap();
        let p = ctx.process(fill_past_the_ring_simple, (q.clone(), full.clone(), N));
        p.start().unwrap();
        assert!(full.wait(Some(LONG)), "the producer filled the ring");
        for i in 0..N {
            let got = q.get_timeout(LONG).unwrap();
            assert!(
                got == ring_item(i),
                "SimpleQueue item {i} whole and in order"
            );
        }
        join(&p);
        assert!(q.empty());

        let q: Queue<Vec<u8>> = ctx.queue().unwrap();
        let full = ctx.event().unwrap();
        let p = ctx.process(fill_past_the_ring, (q.clone(), full.clone(), N));
        p.start().unwrap();
        assert!(full.wait(Some(LONG)), "the producer filled the ring");
        for i in 0..N {
            let got = q.get_timeout(LONG).unwrap();
            assert!(got == ring_item(i), "Queue item {i} whole and in order");
        }
        join(&p);
        assert!(q.empty());
    }
}
