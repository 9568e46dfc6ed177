//! Pools beside CPython (harness = false): the workloads of the pool issue, each the
//! median of several runs, mp and CPython interleaved, fork context for both.
//!
//! Rows: `Pool(2).map(square, range(100_000))` with default chunks and with chunksize
//! 10 000; `imap_unordered` with chunksize 1 (per item); `apply_async(..).get()` round
//! trip on `Pool(1)` (one CPU, CPU 0 / CPU 1, unpinned); a CPU-bound map's speedup over
//! serial on 2 workers; `Pool(2)` create + close + join; peak RSS (VmHWM) of the parent
//! and ru_maxrss of the largest worker for `Pool(2).map` of 1 M items, each in a fresh
//! process (this binary re-executed, and a fresh python3).

mod common;
use common::{
    children_maxrss_mib, interleave, median, pick, pin_arg, python, vm_hwm_mib, Placement, Report,
    Row,
};

use mp::{get_context, Context, StartMethod};
use std::time::Instant;

#[mp::task]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::task]
fn burn(n: u64) -> u64 {
    // ~2 ms of integer work (as CPython's `burn` below), not optimised away
    let mut h = n;
    for i in 0..12_000_000u64 {
        h = h.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    h
}

#[mp::task]
fn pin_worker(cpu: i64) {
    pin_arg(cpu);
}

fn secs(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

const PY_PRELUDE: &str = r#"
import multiprocessing as mp, time, statistics, os, resource
def square(x): return x * x
def burn(n):
    h = n
    for i in range(30000): h = (h * 6364136223846793005 + i) & 0xFFFFFFFFFFFFFFFF
    return h
def hwm():
    for l in open('/proc/self/status'):
        if l.startswith('VmHWM:'): return int(l.split()[1]) / 1024
ctx = mp.get_context('fork')
"#;

fn py(body: &str) -> Option<f64> {
    python(&format!("{PY_PRELUDE}\nif __name__ == '__main__':\n{body}"))
}

const RSS_CHILD: &str = "MP_BENCH_POOL_RSS";

/// In a fresh process (this binary re-executed): `Pool(2).map(square, 0..n)`, close,
/// join; prints the parent's VmHWM and the largest worker's ru_maxrss, MiB.
fn rss_child(n: u64) {
    let ctx = get_context(Some(StartMethod::Fork)).unwrap();
    let pool = ctx.pool(Some(2)).unwrap();
    let r = pool.map(square, 0..n).unwrap();
    assert_eq!(r.len() as u64, n);
    pool.close().unwrap();
    pool.join().unwrap();
    println!(
        "{} {}",
        vm_hwm_mib().unwrap_or(f64::NAN),
        children_maxrss_mib()
    );
}

fn mp_rss(n: u64) -> Option<(f64, f64)> {
    let out = std::process::Command::new(std::env::current_exe().ok()?)
        .env(RSS_CHILD, n.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (v.len() == 2).then(|| (v[0], v[1]))
}

fn py_rss(n: u64) -> Option<(f64, f64)> {
    let v = common::python_nums(
        &format!(
            "{PY_PRELUDE}\nif __name__ == '__main__':\n    p = ctx.Pool(2); r = p.map(square, range({n})); p.close(); p.join()\n    print(hwm(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
        ),
        &[],
    )?;
    (v.len() == 2).then(|| (v[0], v[1]))
}

fn row(rep: &mut Report, workload: String, unit: &'static str, mp_py: (f64, Option<f64>)) {
    rep.add(Row {
        area: "pools",
        workload,
        unit,
        mp: mp_py.0,
        cpython: mp_py.1,
        floor: None,
        lower_is_better: true,
    });
}

fn main_rows(ctx: Context, rep: &mut Report) {
    let pool = ctx.pool(Some(2)).unwrap();
    let n: u64 = pick(100_000, 10_000);
    pool.map(square, 0..n).unwrap(); // warm up

    // each side maps once untimed right before the timed map (CPython's pool is fresh
    // each round; ours sat idle while CPython ran)
    let r = interleave(
        || {
            drop(pool.map(square, 0..n).unwrap());
            secs(|| drop(pool.map(square, 0..n).unwrap())) * 1e3
        },
        || {
            py(&format!(
                "    with ctx.Pool(2) as p:\n        p.map(square, range({n}))\n        t = time.perf_counter(); p.map(square, range({n})); print((time.perf_counter() - t) * 1e3)"
            ))
        },
    );
    row(
        rep,
        format!("Pool(2).map(square, 0..{n}), default chunks"),
        "ms",
        r,
    );

    let r = interleave(
        || {
            drop(pool.map_chunked(square, 0..n, 10_000).unwrap());
            secs(|| drop(pool.map_chunked(square, 0..n, 10_000).unwrap())) * 1e3
        },
        || {
            py(&format!(
                "    with ctx.Pool(2) as p:\n        p.map(square, range({n}), 10000)\n        t = time.perf_counter(); p.map(square, range({n}), 10000); print((time.perf_counter() - t) * 1e3)"
            ))
        },
    );
    row(rep, "same, chunksize 10 000".into(), "ms", r);

    let k: u64 = pick(20_000, 2_000);
    let r = interleave(
        || {
            secs(|| {
                let s: u64 = pool.imap_unordered(square, 0..k).map(|r| r.unwrap()).sum();
                assert!(s > 0);
            }) * 1e6
                / k as f64
        },
        || {
            py(&format!(
                "    with ctx.Pool(2) as p:\n        t = time.perf_counter(); sum(p.imap_unordered(square, range({k}))); print((time.perf_counter() - t) * 1e6 / {k})"
            ))
        },
    );
    row(rep, "imap_unordered, chunksize 1, per item".into(), "µs", r);

    let k = pick(2000, 200);
    for pl in Placement::all() {
        // Pool(1): the parent's threads and the worker start where the parent is; the
        // worker then moves itself to the placement's child CPU.
        let r = interleave(
            || {
                pl.enter_parent();
                let p1 = ctx.pool(Some(1)).unwrap();
                p1.apply(pin_worker, (pl.child_arg(),)).unwrap();
                p1.apply(square, (1,)).unwrap();
                let t = Instant::now();
                for i in 0..k {
                    p1.apply_async(square, (i,)).get().unwrap();
                }
                let us = t.elapsed().as_secs_f64() * 1e6 / k as f64;
                drop(p1);
                common::unpin();
                us
            },
            || {
                let (pc, cc) = match (pl.parent_cpu(), pl.child_cpu()) {
                    (Some(p), Some(c)) => (format!("{{{p}}}"), format!("{{{c}}}")),
                    _ => (
                        "range(os.cpu_count())".into(),
                        "range(os.cpu_count())".into(),
                    ),
                };
                py(&format!(
                    "    os.sched_setaffinity(0, {pc})\n    with ctx.Pool(1) as p:\n        p.apply(os.sched_setaffinity, (0, {cc}))\n        p.apply(square, (1,))\n        t = time.perf_counter()\n        for i in range({k}): p.apply_async(square, (i,)).get()\n        print((time.perf_counter() - t) * 1e6 / {k})"
                ))
            },
        );
        row(
            rep,
            format!("apply_async(..).get() round trip, Pool(1), {}", pl.label()),
            "µs",
            r,
        );
    }

    // CPU-bound speedup: serial time / pool time for 16 tasks of ~2 ms on 2 workers (short,
    // so that a round fits between the bursts of other jobs on a shared machine: the row
    // measures whether both CPUs are free as much as the pool)
    let tasks: u64 = pick(16, 4);
    let r = interleave(
        || {
            let serial = secs(|| {
                for i in 0..tasks {
                    std::hint::black_box(burn(i));
                }
            });
            let par = secs(|| drop(pool.map_chunked(burn, 0..tasks, 1).unwrap()));
            serial / par
        },
        || {
            py(&format!(
                "    t = time.perf_counter(); [burn(i) for i in range({tasks})]; s = time.perf_counter() - t\n    with ctx.Pool(2) as p:\n        p.map(burn, [0, 1])\n        t = time.perf_counter(); p.map(burn, range({tasks}), 1); print(s / (time.perf_counter() - t))"
            ))
        },
    );
    rep.add(Row {
        area: "pools",
        workload: format!("CPU-bound map speedup over serial, {tasks} tasks, 2 workers"),
        unit: "x",
        mp: r.0,
        cpython: r.1,
        floor: Some(2.0),
        lower_is_better: false,
    });
    pool.close().unwrap();
    pool.join().unwrap();

    let r = interleave(
        || {
            secs(|| {
                let p = ctx.pool(Some(2)).unwrap();
                p.close().unwrap();
                p.join().unwrap();
            }) * 1e3
        },
        || {
            py("    t = time.perf_counter()\n    p = ctx.Pool(2); p.close(); p.join()\n    print((time.perf_counter() - t) * 1e3)")
        },
    );
    row(rep, "Pool(2) create + close + join".into(), "ms", r);

    // peak RSS of the parent and of the largest worker for Pool(2).map of 1 M items
    let m: u64 = pick(1_000_000, 100_000);
    let (mut mp_v, mut py_v) = (Vec::new(), Vec::new());
    for _ in 0..pick(3, 1) {
        mp_v.extend(mp_rss(m));
        py_v.extend(py_rss(m));
    }
    if !mp_v.is_empty() {
        for (i, who) in [(0, "parent"), (1, "a worker")] {
            let pick_i = |v: &Vec<(f64, f64)>| {
                (!v.is_empty())
                    .then(|| median(v.iter().map(|x| if i == 0 { x.0 } else { x.1 }).collect()))
            };
            rep.add(Row {
                area: "pool memory",
                workload: format!("peak RSS of {who}, Pool(2).map(square, 0..{m})"),
                unit: "MiB",
                mp: pick_i(&mp_v).unwrap_or(f64::NAN),
                cpython: pick_i(&py_v),
                floor: None,
                lower_is_better: true,
            });
        }
    }
}

/// `MP_BENCH_POOL_ONLY=imap|apply|create|map|cpu`: only that mp workload, looped for ~2 s, no
/// python3, no table (to run under `perf record` or `strace -c -f`).
fn profile_only(ctx: Context, which: &str) {
    // MP_BENCH_POOL_ITERS=k: exactly k loops (maps, imap runs, calls, pools) instead of
    // ~2 s, for instruction counts under `valgrind --tool=callgrind`
    let iters: Option<u64> = std::env::var("MP_BENCH_POOL_ITERS")
        .ok()
        .and_then(|s| s.parse().ok());
    let mut loops = 0u64;
    let t = Instant::now();
    let mut more = || {
        loops += 1;
        match iters {
            Some(k) => loops <= k,
            None => t.elapsed().as_secs() < 2,
        }
    };
    let mut n = 0u64;
    match which {
        "imap" => {
            let pool = ctx.pool(Some(2)).unwrap();
            while more() {
                n += pool.imap_unordered(square, 0..20_000u64).count() as u64;
            }
        }
        "map" => {
            let pool = ctx.pool(Some(2)).unwrap();
            while more() {
                n += pool.map(square, 0..100_000u64).unwrap().len() as u64 / 100_000;
            }
        }
        "cpu" => {
            let pool = ctx.pool(Some(2)).unwrap();
            for _ in 0..5 {
                let serial = secs(|| {
                    for i in 0..16 {
                        std::hint::black_box(burn(i));
                    }
                });
                let par = secs(|| drop(pool.map_chunked(burn, 0..16u64, 1).unwrap()));
                println!(
                    "serial {serial:.4} s, pool {par:.4} s: {:.2}x",
                    serial / par
                );
            }
            return;
        }
        "apply" => {
            common::pin(0);
            let pool = ctx.pool(Some(1)).unwrap();
            while more() {
                pool.apply_async(square, (n,)).get().unwrap();
                n += 1;
            }
        }
        _ => {
            while more() {
                let p = ctx.pool(Some(2)).unwrap();
                p.close().unwrap();
                p.join().unwrap();
                n += 1;
            }
        }
    }
    println!(
        "{which}: {:.2} µs each",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

#[mp::main]
fn main() {
    if let Some(w) = std::env::var_os("MP_BENCH_POOL_ONLY") {
        let ctx = get_context(Some(StartMethod::Fork)).unwrap();
        return profile_only(ctx, &w.to_string_lossy());
    }
    if let Some(n) = std::env::var_os(RSS_CHILD) {
        rss_child(n.to_string_lossy().parse().unwrap_or(1_000_000));
        return;
    }
    let ctx = get_context(Some(StartMethod::Fork)).unwrap();
    let mut rep = Report::new("pool");
    main_rows(ctx, &mut rep);
    rep.note(
        "pools",
        "Both libraries use the fork context. The CPU-bound row's floor is the ideal \
         speedup on 2 workers (2×); its tasks are ~2 ms each in both languages (CPython's \
         loop is shorter so that its serial time is comparable); it needs both CPUs free, so \
         on a shared machine it reads the machine's load as much as the pool.",
    );
    rep.note(
        "pool memory",
        "Each measured in a fresh process (this bench re-executed; a fresh python3): the \
         parent's VmHWM from /proc/self/status and getrusage(RUSAGE_CHILDREN).ru_maxrss \
         (the largest worker) after close + join.",
    );
    rep.finish();
}
