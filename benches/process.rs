//! Process start + join per start method: mp beside CPython's multiprocessing and the
//! OS floor (raw fork + _exit + waitpid; raw posix_spawn of this same binary).
//!
//! Each round is the median of many starts; mp and CPython rounds alternate.

mod common;
use common::{interleave, med, median, pick, python_args, Report, Row};
use std::process::Command;
use std::time::{Duration, Instant};

#[mp::task]
fn noop() {}

const RAW_EXIT: &str = "MP_BENCH_RAW_EXIT";

fn time(n: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..n.min(5) {
        f(); // warm-up
    }
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn raw_fork() {
    // SAFETY: the child only calls _exit.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(0);
        }
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
    }
}

fn raw_exec_self() {
    let st = Command::new(std::env::current_exe().unwrap())
        .env(RAW_EXIT, "1")
        .status()
        .unwrap();
    assert!(st.success());
}

const PY_START: &str = r#"
import multiprocessing as mp, sys, time, statistics
def f(): pass
if __name__ == '__main__':
    ctx = mp.get_context(sys.argv[1]); n = int(sys.argv[2])
    ts = []
    for i in range(n + 3):
        t = time.perf_counter(); p = ctx.Process(target=f); p.start(); p.join(); ts.append(time.perf_counter() - t)
    print(statistics.median(ts[3:]) * 1e3)
"#;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[mp::main]
fn main() {
    if std::env::var_os(RAW_EXIT).is_some() {
        std::process::exit(0);
    }
    let mut rep = Report::new("process");
    let n = pick(40, 5);
    let fork_floor = med(|| ms(time(n, raw_fork)));
    let exec_floor = med(|| ms(time(n / 2, raw_exec_self)));
    for method in mp::get_all_start_methods() {
        let ctx = mp::get_context(Some(method)).unwrap();
        let spawn = method == mp::StartMethod::Spawn;
        let runs = if spawn { n / 2 } else { n };
        let py_runs = if spawn { n / 4 } else { n / 2 };
        let (m, p) = interleave(
            || {
                ms(time(runs, || {
                    let p = ctx.process(noop, ());
                    p.start().unwrap();
                    p.join().unwrap();
                }))
            },
            || python_args(PY_START, &[method.to_string(), py_runs.max(1).to_string()]),
        );
        rep.add(Row {
            area: "processes",
            workload: format!("Process start + join, {method}"),
            unit: "ms",
            mp: m,
            cpython: p,
            floor: Some(if spawn { exec_floor } else { fork_floor }),
            lower_is_better: true,
        });
    }
    rep.note(
        "processes",
        "Floors: fork and forkserver = a raw fork + _exit + waitpid; spawn = fork + exec of \
         this binary (exiting at once) + wait.",
    );
    rep.finish();
}
