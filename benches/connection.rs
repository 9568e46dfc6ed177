//! Connection benchmarks beside CPython and the OS floor (`cargo bench --bench connection`).
//!
//! Rows: small-object round trip (parent sends `(u64, String)`, child echoes it; CPython
//! `(7, 'hello')` through `multiprocessing.Pipe`, fork context) with both processes on
//! CPU 0, parent on CPU 0 / child on CPU 1, and unpinned; floor: a 1-byte ping-pong over
//! two pipe(2)s. Then 1 MiB `send_bytes` throughput in the same placements; floor: a raw
//! socketpair. Medians of interleaved rounds.

use mp::reduction::SharedFd;
use mp::{Connection, Process};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

mod common;
use common::{interleave, med, pick, pin_arg, python_args, Placement, Report, Row};

fn rt_iters() -> u32 {
    pick(5_000, 500)
}

fn mib_iters() -> u32 {
    pick(300, 30)
}

#[mp::task]
fn echo_objects(conn: Connection, cpu: i64) {
    pin_arg(cpu);
    while let Ok(v) = conn.recv::<(u64, String)>() {
        if conn.send(&v).is_err() {
            break;
        }
    }
}

#[mp::task]
fn echo_raw_pipes(r: SharedFd, w: SharedFd, cpu: i64) {
    pin_arg(cpu);
    let (mut r, mut w) = (File::from(r.into_owned()), File::from(w.into_owned()));
    let mut b = [0u8; 1];
    while r.read(&mut b).unwrap_or(0) == 1 {
        if w.write(&b).is_err() {
            break;
        }
    }
}

#[mp::task]
fn sink_bytes(conn: Connection, cpu: i64) {
    pin_arg(cpu);
    let mut total = 0u64;
    while let Ok(m) = conn.recv_bytes() {
        if m.is_empty() {
            break;
        }
        total += m.len() as u64;
    }
    let _ = conn.send(&total);
}

#[mp::task]
fn sink_raw(fd: SharedFd, total: u64, cpu: i64) {
    pin_arg(cpu);
    let mut fd = File::from(fd.into_owned());
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    while got < total {
        match fd.read(&mut buf[..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n as u64,
        }
    }
    let _ = fd.write(&[1]);
}

/// The low-latency rows' spin bound (`Connection::set_spin`).
const SPIN: Duration = Duration::from_micros(50);

/// µs per round trip of a small object through an mp duplex pipe (`spin`: both ends in
/// the low-latency mode; the child's end takes it along).
fn mp_round_trip(child_cpu: i64, spin: Option<Duration>) -> f64 {
    let (a, b) = mp::Pipe().unwrap();
    a.set_spin(spin);
    b.set_spin(spin);
    let p = Process::new(echo_objects, (b, child_cpu));
    p.start().unwrap();
    let msg = (7u64, "hello".to_string());
    for _ in 0..200 {
        a.send(&msg).unwrap();
        let _: (u64, String) = a.recv().unwrap();
    }
    let t = Instant::now();
    for _ in 0..rt_iters() {
        a.send(&msg).unwrap();
        let _: (u64, String) = a.recv().unwrap();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / rt_iters() as f64;
    drop(a);
    p.join().unwrap();
    us
}

fn ping_pong(mut w: &File, mut r: &File) -> f64 {
    let mut b = [0u8; 1];
    for _ in 0..200 {
        w.write_all(&b).unwrap();
        r.read_exact(&mut b).unwrap();
    }
    let t = Instant::now();
    for _ in 0..rt_iters() {
        w.write_all(&b).unwrap();
        r.read_exact(&mut b).unwrap();
    }
    t.elapsed().as_secs_f64() * 1e6 / rt_iters() as f64
}

fn raw_pipe_round_trip(child_cpu: i64) -> f64 {
    let (r1, w1) = std::io::pipe().unwrap();
    let (r2, w2) = std::io::pipe().unwrap();
    let p = Process::new(
        echo_raw_pipes,
        (
            SharedFd::new(OwnedFd::from(r1)),
            SharedFd::new(OwnedFd::from(w2)),
            child_cpu,
        ),
    );
    p.start().unwrap();
    let (w1, r2) = (File::from(OwnedFd::from(w1)), File::from(OwnedFd::from(r2)));
    let us = ping_pong(&w1, &r2);
    drop(w1);
    p.join().unwrap();
    us
}

const PY_RT: &str = r#"
import os, sys, time
from multiprocessing import get_context
ctx = get_context('fork')
pc, cc, iters = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if pc < 0: pc = range(os.cpu_count())
else: pc = [pc]
def echo(c):
    if cc >= 0: os.sched_setaffinity(0, {cc})
    while True:
        m = c.recv()
        if m is None: break
        c.send(m)
if __name__ == '__main__':
    os.sched_setaffinity(0, pc)
    a, b = ctx.Pipe()
    p = ctx.Process(target=echo, args=(b,)); p.start(); b.close()
    msg = (7, 'hello')
    for _ in range(200):
        a.send(msg); a.recv()
    t = time.perf_counter()
    for _ in range(iters):
        a.send(msg); a.recv()
    print((time.perf_counter() - t) * 1e6 / iters)
    a.send(None); p.join()
"#;

const PY_MIB: &str = r#"
import os, sys, time
from multiprocessing import get_context
ctx = get_context('fork')
pc, cc, iters = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if pc < 0: pc = range(os.cpu_count())
else: pc = [pc]
def sink(c):
    if cc >= 0: os.sched_setaffinity(0, {cc})
    n = 0
    while True:
        m = c.recv_bytes()
        if not m: break
        n += len(m)
    c.send(n)
if __name__ == '__main__':
    os.sched_setaffinity(0, pc)
    a, b = ctx.Pipe()
    p = ctx.Process(target=sink, args=(b,)); p.start(); b.close()
    data = bytes(1 << 20)
    t = time.perf_counter()
    for _ in range(iters):
        a.send_bytes(data)
    a.send_bytes(b'')
    a.recv()
    print(iters * len(data) / (time.perf_counter() - t) / 1e9)
    p.join()
"#;

fn mp_mib(child_cpu: i64) -> f64 {
    let (a, b) = mp::Pipe().unwrap();
    let p = Process::new(sink_bytes, (b, child_cpu));
    p.start().unwrap();
    let data = vec![0u8; 1 << 20];
    let t = Instant::now();
    for _ in 0..mib_iters() {
        a.send_bytes(&data).unwrap();
    }
    a.send_bytes(b"").unwrap();
    let total: u64 = a.recv().unwrap();
    let gbs = total as f64 / t.elapsed().as_secs_f64() / 1e9;
    p.join().unwrap();
    gbs
}

fn raw_mib(child_cpu: i64) -> f64 {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let total = mib_iters() as u64 * (1 << 20);
    let p = Process::new(sink_raw, (SharedFd::new(b.into()), total, child_cpu));
    p.start().unwrap();
    let data = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut f = &a;
    for _ in 0..mib_iters() {
        f.write_all(&data).unwrap();
    }
    let mut b1 = [0u8; 1];
    f.read_exact(&mut b1).unwrap();
    let gbs = total as f64 / t.elapsed().as_secs_f64() / 1e9;
    let _ = a.as_raw_fd();
    p.join().unwrap();
    gbs
}

/// `MP_BENCH_CONN_ONLY=rt|spin|mib` with `MP_BENCH_CPU=0|1|-1` (the child's CPU; the parent
/// is on CPU 0 unless -1): only that mp workload, looped for ~2 s, no python3, no table
/// (to run under `perf record` or `strace -c -f`).
fn profile_only(which: &str) {
    let c: i64 = std::env::var("MP_BENCH_CPU")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    pin_arg(if c < 0 { -1 } else { 0 });
    let t = Instant::now();
    let mut v = Vec::new();
    while t.elapsed().as_secs() < 2 {
        v.push(if which == "mib" {
            mp_mib(c)
        } else {
            mp_round_trip(c, (which == "spin").then_some(SPIN))
        });
    }
    let runs = v.len();
    println!(
        "{which}: median {:.2} over {runs} runs of {} messages each way",
        common::median(v),
        if which == "mib" {
            mib_iters()
        } else {
            rt_iters() + 200
        }
    );
}

#[mp::main]
fn main() {
    if let Some(w) = std::env::var_os("MP_BENCH_CONN_ONLY") {
        return profile_only(&w.to_string_lossy());
    }
    let mut rep = Report::new("connection");
    let py_args = |pl: Placement, iters: u32| {
        vec![
            pl.parent_cpu().map_or(-1, |c| c as i64).to_string(),
            pl.child_arg().to_string(),
            iters.to_string(),
        ]
    };
    for pl in Placement::all() {
        let c = pl.child_arg();
        pl.enter_parent();
        let floor = med(|| raw_pipe_round_trip(c));
        let mut spun = Vec::new();
        let (m, p) = interleave(
            || {
                spun.push(mp_round_trip(c, Some(SPIN)));
                mp_round_trip(c, None)
            },
            || python_args(PY_RT, &py_args(pl, rt_iters())),
        );
        rep.add(Row {
            area: "connections",
            workload: format!("send/recv round trip of (7, \"hello\"), {}", pl.label()),
            unit: "µs",
            mp: m,
            cpython: p,
            floor: Some(floor),
            lower_is_better: true,
        });
        rep.add(Row {
            area: "connections",
            workload: format!("same, low-latency mode (set_spin 50 µs), {}", pl.label()),
            unit: "µs",
            mp: common::median(spun),
            cpython: p,
            floor: Some(floor),
            lower_is_better: true,
        });
    }
    for pl in Placement::all() {
        let c = pl.child_arg();
        pl.enter_parent();
        let floor = med(|| raw_mib(c));
        let (m, p) = interleave(
            || mp_mib(c),
            || python_args(PY_MIB, &py_args(pl, mib_iters())),
        );
        rep.add(Row {
            area: "connections",
            workload: format!("1 MiB send_bytes throughput, {}", pl.label()),
            unit: "GB/s",
            mp: m,
            cpython: p,
            floor: Some(floor),
            lower_is_better: false,
        });
    }
    common::unpin();
    rep.note(
        "connections",
        "Floors: round trip = a 1-byte ping-pong over two pipe(2)s between the same two \
         processes (the low-latency rows: both ends `set_spin(Some(50 µs))`, beside the same \
         CPython runs); 1 MiB = write(2)/read(2) of 1 MiB through a raw socketpair. mp's child \
         runs under the default start method (forkserver), CPython's under fork.",
    );
    rep.finish();
}
