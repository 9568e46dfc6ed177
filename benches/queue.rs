//! Queue throughput beside CPython and the raw pipe floor (harness = false).
//!
//! Rows: small items (`u64`) one producer process → one consumer, through `Queue` and
//! `SimpleQueue`; 1 MiB items. Floors: one 8-byte `write(2)` per item through a pipe,
//! and 1 MiB `write`s through a pipe. CPython's `Queue`/`SimpleQueue` driven via python3.

mod common;
use common::{pin, python, unpin};

use mp::{get_context, Queue, SimpleQueue, StartMethod};
use std::io::{Read, Write};
use std::time::Instant;

#[mp::task]
fn produce_pinned(q: Queue<u64>, n: u64) {
    pin(1);
    for i in 0..n {
        q.put(i).unwrap();
    }
}

#[mp::task]
fn produce(q: Queue<u64>, n: u64) {
    for i in 0..n {
        q.put(i).unwrap();
    }
}

#[mp::task]
fn produce_simple(q: SimpleQueue<u64>, n: u64) {
    for i in 0..n {
        q.put(i).unwrap();
    }
}

#[mp::task]
fn produce_big(q: Queue<mp::codec::ByteBuf>, n: u64) {
    let item = mp::codec::ByteBuf::from(vec![1u8; 1 << 20]);
    for _ in 0..n {
        q.put(item.clone()).unwrap();
    }
}

fn rate(n: u64, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    n as f64 / t.elapsed().as_secs_f64()
}

fn py_rate(kind: &str, n: u64, big: bool) -> Option<f64> {
    let item = if big { "b'x' * (1 << 20)" } else { "7" };
    python(&format!(
        r#"
import multiprocessing as mp, time
def prod(q, n):
    x = {item}
    for i in range(n): q.put(x)
if __name__ == '__main__':
    ctx = mp.get_context('fork')
    q = ctx.{kind}()
    p = ctx.Process(target=prod, args=(q, {n}))
    t = time.perf_counter(); p.start()
    for i in range({n}): q.get()
    print({n} / (time.perf_counter() - t)); p.join()
"#
    ))
}

fn pipe_floor(n: u64, chunk: usize) -> f64 {
    let (mut r, mut w) = std::io::pipe().unwrap();
    let t = Instant::now();
    let writer = std::thread::spawn(move || {
        let buf = vec![1u8; chunk];
        for _ in 0..n {
            w.write_all(&buf).unwrap();
        }
    });
    let mut buf = vec![0u8; chunk];
    for _ in 0..n {
        r.read_exact(&mut buf).unwrap();
    }
    writer.join().unwrap();
    n as f64 / t.elapsed().as_secs_f64()
}

#[mp::main]
fn main() {
    let ctx = get_context(Some(StartMethod::Fork)).unwrap();
    let n = 2_000_000u64;
    let q: Queue<u64> = Queue::new().unwrap();
    let mp_q = rate(n, || {
        let p = ctx.process(produce, (q.clone(), n));
        p.start().unwrap();
        for _ in 0..n {
            q.get().unwrap();
        }
        p.join().unwrap();
    });
    let mp_pinned = rate(n, || {
        pin(0);
        let p = ctx.process(produce_pinned, (q.clone(), n));
        p.start().unwrap();
        for _ in 0..n {
            q.get().unwrap();
        }
        p.join().unwrap();
        unpin();
    });
    let sq: SimpleQueue<u64> = SimpleQueue::new().unwrap();
    let mp_sq = rate(n, || {
        let p = ctx.process(produce_simple, (sq.clone(), n));
        p.start().unwrap();
        for _ in 0..n {
            sq.get().unwrap();
        }
        p.join().unwrap();
    });
    let nb = 200u64;
    let bq: Queue<mp::codec::ByteBuf> = Queue::new().unwrap();
    let mp_big = rate(nb, || {
        let p = ctx.process(produce_big, (bq.clone(), nb));
        p.start().unwrap();
        for _ in 0..nb {
            bq.get().unwrap();
        }
        p.join().unwrap();
    });
    let py_q = py_rate("Queue", 200_000, false);
    let py_sq = py_rate("SimpleQueue", 200_000, false);
    let py_big = py_rate("Queue", 200, true);
    let floor_small = pipe_floor(1_000_000, 8);
    let floor_big = pipe_floor(500, 1 << 20);
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{:.2}", v / 1e6));
    println!(
        "queue throughput, one producer process -> one consumer (M items/s; 1 MiB rows in GB/s)"
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>11} {:>11}",
        "workload", "mp", "CPython", "floor", "mp/CPython", "mp/floor"
    );
    let row = |name: &str, m: f64, p: Option<f64>, fl: f64| {
        println!(
            "{name:<22} {:>9.2} {:>9} {:>9.2} {:>10.1}x {:>10.2}x",
            m / 1e6,
            f(p),
            fl / 1e6,
            p.map_or(f64::NAN, |p| m / p),
            m / fl
        )
    };
    row("Queue small items", mp_q, py_q, floor_small);
    row("SimpleQueue small", mp_sq, py_sq, floor_small);
    row("Queue small, CPU 0<-1", mp_pinned, py_q, floor_small);
    let gb = |x: f64| x * (1 << 20) as f64 / 1e3; // items/s -> "M" units of GB/s after /1e6
    row(
        "Queue 1 MiB items",
        gb(mp_big),
        py_big.map(gb),
        gb(floor_big),
    );
}
