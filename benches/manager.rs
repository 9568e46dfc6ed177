//! Manager benchmarks beside CPython and the OS floor (harness = false).
//!
//! Rows: `list.append` through a proxy with the client and the server on one CPU
//! (`taskset -c 0`, the latency that matters: one request, one reply) and unpinned;
//! manager start + shutdown. Floor: a socketpair round trip between two processes on
//! one CPU. CPython is driven through `python3`.
//!
//! Measured on this 2-vCPU VM (shared with other builds, so absolute numbers swing;
//! the ratios are steadier), release build:
//!
//! | benchmark | mp | CPython 3.11 | floor |
//! |---|---|---|---|
//! | proxy `list.append`, one CPU | 11.2–13.4 µs | 20.0–23.0 µs | 8.8–11.0 µs (socketpair round trip) |
//! | proxy `list.append`, unpinned | 11.0–12.4 µs | 19.2–23.1 µs | |
//! | manager start + shutdown | 1.8 ms | 9.1 ms | |
//!
//! (Ranges: two runs under different load; each row's mp and CPython numbers come from
//! the same run.) A call is one frame each way on the manager's buffered channel (one
//! `write` and usually one `read` per side, as the floor, about 1.2–1.3× it); start +
//! shutdown is starting the server process, one round trip, and reaping it (the server
//! process exits as soon as it has answered the shutdown).

mod common;
use common::{pick, pin, python, unpin, Report, Row};

mp::test_support!();
use mp::{get_context, StartMethod};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// `list.append` through a proxy, µs per call; the server starts under spawn, so it
/// inherits this thread's affinity at that moment.
fn mp_append(n: usize) -> f64 {
    let ctx = get_context(Some(StartMethod::Spawn)).unwrap();
    let m = ctx.manager().unwrap();
    let l = m.list(Vec::<i64>::new()).unwrap();
    for i in 0..1000 {
        l.append(i).unwrap();
    }
    let t = Instant::now();
    for i in 0..n as i64 {
        l.append(i).unwrap();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    assert_eq!(l.len().unwrap(), n + 1000);
    m.shutdown().unwrap();
    us
}

fn py_append(pinned: bool) -> Option<f64> {
    let pin = if pinned {
        "os.sched_setaffinity(0,[0])\n "
    } else {
        ""
    };
    python(&format!(
        "import multiprocessing as m,time,os\nif __name__=='__main__':\n {pin}mg=m.Manager();l=mg.list();n=20000\n for i in range(1000): l.append(i)\n t=time.perf_counter()\n for i in range(n): l.append(i)\n print((time.perf_counter()-t)/n*1e6)\n mg.shutdown()"
    ))
}

/// One-byte round trip over a socketpair between two processes: the floor of a call.
fn socketpair_rtt_us(n: usize) -> f64 {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    // SAFETY: the child only uses its socket end and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut buf = [0u8; 1];
        for _ in 0..n {
            if b.read_exact(&mut buf).is_err() || b.write_all(&buf).is_err() {
                break;
            }
        }
        // SAFETY: leave without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    drop(b);
    let mut buf = [7u8; 1];
    let t = Instant::now();
    for _ in 0..n {
        a.write_all(&buf).unwrap();
        a.read_exact(&mut buf).unwrap();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    us
}

fn mp_start_shutdown(n: usize) -> f64 {
    // the fork server is up before timing (it starts once per program)
    mp::Manager::new().unwrap().shutdown().unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let m = mp::Manager::new().unwrap();
        m.shutdown().unwrap();
    }
    t.elapsed().as_secs_f64() * 1e3 / n as f64
}

fn main() {
    let mut rep = Report::new("manager");
    let row = |workload: &str, unit: &'static str, mp: f64, cpython, floor| Row {
        area: "managers",
        workload: workload.into(),
        unit,
        mp,
        cpython,
        floor,
        lower_is_better: true,
    };
    pin(0);
    let n = pick(50_000, 2_000);
    let ours = mp_append(n);
    let floor = socketpair_rtt_us(n);
    rep.add(row(
        "proxy list.append, one CPU",
        "µs",
        ours,
        py_append(true),
        Some(floor),
    ));
    unpin();
    let ours = mp_append(pick(20_000, 2_000));
    rep.add(row(
        "proxy list.append, unpinned",
        "µs",
        ours,
        py_append(false),
        None,
    ));
    let ours = mp_start_shutdown(pick(20, 3));
    let py = python(
        "import multiprocessing as m,time\nif __name__=='__main__':\n m.Manager().shutdown()\n n=10;t=time.perf_counter()\n for _ in range(n):\n  mg=m.Manager();mg.shutdown()\n print((time.perf_counter()-t)/n*1e3)",
    );
    rep.add(row("manager start + shutdown", "ms", ours, py, None));
    rep.finish();
}
