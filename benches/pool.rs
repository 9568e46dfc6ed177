//! Pools beside CPython (harness = false): the workloads of the pool issue, each the
//! median of several runs, mp and CPython interleaved, fork context for both.
//!
//! Rows: `Pool(2).map(square, range(100_000))` with default chunks and with chunksize
//! 10 000; `imap_unordered` with chunksize 1 (per item); `apply_async(..).get()` round
//! trip (unpinned, and with the parent and workers on one CPU); a CPU-bound map's speedup
//! over serial on 2 workers; `Pool(2)` create + close + join.

mod common;
use common::{pin, python, unpin};

use mp::{get_context, Context, StartMethod};
use std::time::Instant;

#[mp::task]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::task]
fn burn(n: u64) -> u64 {
    // ~10 ms of integer work, not optimised away
    let mut h = n;
    for i in 0..6_000_000u64 {
        h = h.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    h
}

const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn secs(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

const PY_PRELUDE: &str = r#"
import multiprocessing as mp, time, statistics
def square(x): return x * x
def burn(n):
    h = n
    for i in range(200000): h = (h * 6364136223846793005 + i) & 0xFFFFFFFFFFFFFFFF
    return h
ctx = mp.get_context('fork')
"#;

fn py(body: &str) -> Option<f64> {
    python(&format!("{PY_PRELUDE}\nif __name__ == '__main__':\n{body}"))
}

struct Row {
    name: &'static str,
    unit: &'static str,
    mp: f64,
    py: Option<f64>,
    lower_is_better: bool,
}

fn main_rows(ctx: Context) -> Vec<Row> {
    let mut rows = Vec::new();
    let pool = ctx.pool(Some(2)).unwrap();
    let items: Vec<u64> = (0..100_000).collect();
    pool.map(square, items.clone()).unwrap(); // warm up

    let mut mp_v = Vec::new();
    let mut py_v = Vec::new();
    for _ in 0..RUNS {
        mp_v.push(
            secs(|| {
                pool.map(square, items.clone()).unwrap();
            }) * 1e3,
        );
        if let Some(t) = py(
            "    with ctx.Pool(2) as p:\n        p.map(square, range(100000))\n        t = time.perf_counter(); p.map(square, range(100000)); print((time.perf_counter() - t) * 1e3)",
        ) {
            py_v.push(t);
        }
    }
    rows.push(Row {
        name: "Pool(2).map(square, 0..100_000), default chunks",
        unit: "ms",
        mp: median(mp_v),
        py: (!py_v.is_empty()).then(|| median(py_v)),
        lower_is_better: true,
    });

    let mut mp_v = Vec::new();
    let mut py_v = Vec::new();
    for _ in 0..RUNS {
        mp_v.push(
            secs(|| {
                pool.map_chunked(square, items.clone(), 10_000).unwrap();
            }) * 1e3,
        );
        if let Some(t) = py(
            "    with ctx.Pool(2) as p:\n        p.map(square, range(100000), 10000)\n        t = time.perf_counter(); p.map(square, range(100000), 10000); print((time.perf_counter() - t) * 1e3)",
        ) {
            py_v.push(t);
        }
    }
    rows.push(Row {
        name: "same, chunksize 10 000",
        unit: "ms",
        mp: median(mp_v),
        py: (!py_v.is_empty()).then(|| median(py_v)),
        lower_is_better: true,
    });

    let n = 20_000u64;
    let mut mp_v = Vec::new();
    let mut py_v = Vec::new();
    for _ in 0..RUNS {
        mp_v.push(
            secs(|| {
                let s: u64 = pool.imap_unordered(square, 0..n).map(|r| r.unwrap()).sum();
                assert!(s > 0);
            }) * 1e6
                / n as f64,
        );
        if let Some(t) = py(&format!(
            "    with ctx.Pool(2) as p:\n        t = time.perf_counter(); sum(p.imap_unordered(square, range({n}))); print((time.perf_counter() - t) * 1e6 / {n})"
        )) {
            py_v.push(t);
        }
    }
    rows.push(Row {
        name: "imap_unordered, chunksize 1, per item",
        unit: "µs",
        mp: median(mp_v),
        py: (!py_v.is_empty()).then(|| median(py_v)),
        lower_is_better: true,
    });

    for (pinned, name) in [
        (false, "apply_async(..).get() round trip, unpinned"),
        (true, "apply_async(..).get() round trip, all on one CPU"),
    ] {
        let mut mp_v = Vec::new();
        let mut py_v = Vec::new();
        for _ in 0..RUNS {
            if pinned {
                pin(0);
            }
            let p1 = ctx.pool(Some(1)).unwrap();
            p1.apply(square, (1,)).unwrap();
            let k = 2000;
            let t = Instant::now();
            for i in 0..k {
                p1.apply_async(square, (i,)).get().unwrap();
            }
            mp_v.push(t.elapsed().as_secs_f64() * 1e6 / k as f64);
            drop(p1);
            unpin();
            let taskset = if pinned {
                "    import os; os.sched_setaffinity(0, {0})\n"
            } else {
                ""
            };
            if let Some(t) = py(&format!(
                "{taskset}    with ctx.Pool(1) as p:\n        p.apply(square, (1,))\n        t = time.perf_counter()\n        for i in range(2000): p.apply_async(square, (i,)).get()\n        print((time.perf_counter() - t) * 1e6 / 2000)"
            )) {
                py_v.push(t);
            }
        }
        rows.push(Row {
            name,
            unit: "µs",
            mp: median(mp_v),
            py: (!py_v.is_empty()).then(|| median(py_v)),
            lower_is_better: true,
        });
    }

    // CPU-bound speedup: serial time / pool time for 16 tasks on 2 workers
    let mut mp_v = Vec::new();
    for _ in 0..RUNS {
        let serial = secs(|| {
            for i in 0..16 {
                std::hint::black_box(burn(i));
            }
        });
        let par = secs(|| {
            pool.map_chunked(burn, 0..16u64, 1).unwrap();
        });
        mp_v.push(serial / par);
    }
    let mut py_v = Vec::new();
    for _ in 0..3 {
        if let Some(t) = py(
            "    t = time.perf_counter(); [burn(i) for i in range(16)]; s = time.perf_counter() - t\n    with ctx.Pool(2) as p:\n        p.map(burn, [0, 1])\n        t = time.perf_counter(); p.map(burn, range(16), 1); print(s / (time.perf_counter() - t))",
        ) {
            py_v.push(t);
        }
    }
    rows.push(Row {
        name: "CPU-bound map speedup over serial, 2 workers",
        unit: "x",
        mp: median(mp_v),
        py: (!py_v.is_empty()).then(|| median(py_v)),
        lower_is_better: false,
    });
    pool.close().unwrap();
    pool.join().unwrap();

    let mut mp_v = Vec::new();
    let mut py_v = Vec::new();
    for _ in 0..RUNS {
        mp_v.push(
            secs(|| {
                let p = ctx.pool(Some(2)).unwrap();
                p.close().unwrap();
                p.join().unwrap();
            }) * 1e3,
        );
        if let Some(t) = py(
            "    t = time.perf_counter()\n    p = ctx.Pool(2); p.close(); p.join()\n    print((time.perf_counter() - t) * 1e3)",
        ) {
            py_v.push(t);
        }
    }
    rows.push(Row {
        name: "Pool(2) create + close + join",
        unit: "ms",
        mp: median(mp_v),
        py: (!py_v.is_empty()).then(|| median(py_v)),
        lower_is_better: true,
    });
    rows
}

#[mp::main]
fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let ctx = get_context(Some(StartMethod::Fork)).unwrap();
    if quick {
        let pool = ctx.pool(Some(2)).unwrap();
        assert_eq!(pool.map(square, 0..1000u64).unwrap().len(), 1000);
        println!("pool bench: quick run ok");
        return;
    }
    let rows = main_rows(ctx);
    println!(
        "{:<52} {:>12} {:>12} {:>14}",
        "workload (fork, medians of runs)", "mp", "CPython", "mp vs CPython"
    );
    for r in rows {
        let ratio = r.py.map(|p| {
            if r.lower_is_better {
                p / r.mp
            } else {
                r.mp / p
            }
        });
        println!(
            "{:<52} {:>9.3} {:<2} {:>9} {:<2} {:>13}",
            r.name,
            r.mp,
            r.unit,
            r.py.map_or("n/a".into(), |p| format!("{p:.3}")),
            r.unit,
            ratio.map_or("n/a".into(), |x| format!("{x:.1}x")),
        );
    }
}
