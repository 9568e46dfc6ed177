//! Process start + join per start method: mp beside CPython's multiprocessing and the
//! OS floor (raw fork + _exit + waitpid; raw posix_spawn of this same binary).
//!
//! `cargo bench --bench process` prints a table of medians and ratios.

mod common;
use common::median;
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

fn cpython(method: &str, n: usize) -> Option<f64> {
    let script = format!(
        r#"
import multiprocessing as mp, time, statistics
def f(): pass
if __name__ == '__main__':
    ctx = mp.get_context('{method}')
    ts = []
    for i in range({n} + 3):
        t = time.perf_counter(); p = ctx.Process(target=f); p.start(); p.join(); ts.append(time.perf_counter() - t)
    print(statistics.median(ts[3:]) * 1e3)
"#
    );
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("bench_start.py");
    std::fs::write(&path, script).ok()?;
    let out = Command::new("python3").arg(&path).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[mp::main]
fn main() {
    if std::env::var_os(RAW_EXIT).is_some() {
        std::process::exit(0);
    }
    let n = 200;
    let fork_floor = time(n, raw_fork);
    let exec_floor = time(n / 2, raw_exec_self);
    println!("process start + join, medians (ms); floor: raw fork+_exit+waitpid {:.3}, raw exec of this binary {:.3}", ms(fork_floor), ms(exec_floor));
    println!(
        "{:<11} {:>9} {:>9} {:>9} {:>13} {:>14}",
        "method", "mp", "CPython", "floor", "mp/floor", "CPython/mp"
    );
    for method in mp::get_all_start_methods() {
        let ctx = mp::get_context(Some(method)).unwrap();
        let runs = if method == mp::StartMethod::Spawn {
            n / 2
        } else {
            n
        };
        let t = time(runs, || {
            let p = ctx.process(noop, ());
            p.start().unwrap();
            p.join().unwrap();
        });
        let floor = if method == mp::StartMethod::Spawn {
            exec_floor
        } else {
            fork_floor
        };
        let py = cpython(
            &method.to_string(),
            if method == mp::StartMethod::Spawn {
                20
            } else {
                50
            },
        );
        println!(
            "{:<11} {:>9.3} {:>9} {:>9.3} {:>12.2}x {:>13}",
            method.to_string(),
            ms(t),
            py.map_or("n/a".into(), |p| format!("{p:.3}")),
            ms(floor),
            ms(t) / ms(floor),
            py.map_or("n/a".into(), |p| format!("{:.1}x", p / ms(t))),
        );
    }
}
