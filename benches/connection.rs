//! Connection benchmarks beside CPython and the OS floor (`cargo bench --bench connection`).
//!
//! Rows: small-object round trip (parent sends `(u64, String)`, child echoes it) with
//! both processes pinned to CPU 0, and parent on CPU 0 / child on CPU 1; the same
//! through CPython's `multiprocessing.Pipe`; the raw floor (1-byte ping-pong over a
//! socketpair and over two pipe(2)s). Then 1 MiB `send_bytes` throughput, mp vs
//! CPython vs a raw socketpair. Medians of 5 runs.

use mp::reduction::SharedFd;
use mp::{Connection, Process};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::time::Instant;

const RT_ITERS: u32 = 5_000;
const MIB_ITERS: u32 = 300;
const RUNS: usize = 5;

mod common;
use common::{median, pin};

fn ncpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[mp::task]
fn echo_objects(conn: Connection, cpu: usize) {
    pin(cpu);
    while let Ok(v) = conn.recv::<(u64, String)>() {
        if conn.send(&v).is_err() {
            break;
        }
    }
}

#[mp::task]
fn echo_raw_socket(fd: SharedFd, cpu: usize) {
    pin(cpu);
    let mut fd = File::from(fd.into_owned());
    let mut b = [0u8; 1];
    while fd.read(&mut b).unwrap_or(0) == 1 {
        if fd.write(&b).is_err() {
            break;
        }
    }
}

#[mp::task]
fn echo_raw_pipes(r: SharedFd, w: SharedFd, cpu: usize) {
    pin(cpu);
    let (mut r, mut w) = (File::from(r.into_owned()), File::from(w.into_owned()));
    let mut b = [0u8; 1];
    while r.read(&mut b).unwrap_or(0) == 1 {
        if w.write(&b).is_err() {
            break;
        }
    }
}

#[mp::task]
fn sink_bytes(conn: Connection, cpu: usize) {
    pin(cpu);
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
fn sink_raw(fd: SharedFd, total: u64, cpu: usize) {
    pin(cpu);
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

/// µs per round trip of a small object through an mp duplex pipe.
fn mp_round_trip(child_cpu: usize) -> f64 {
    let (a, b) = mp::Pipe().unwrap();
    let p = Process::new(echo_objects, (b, child_cpu));
    p.start().unwrap();
    let msg = (7u64, "hello".to_string());
    for _ in 0..200 {
        a.send(&msg).unwrap();
        let _: (u64, String) = a.recv().unwrap();
    }
    let t = Instant::now();
    for _ in 0..RT_ITERS {
        a.send(&msg).unwrap();
        let _: (u64, String) = a.recv().unwrap();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / RT_ITERS as f64;
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
    for _ in 0..RT_ITERS {
        w.write_all(&b).unwrap();
        r.read_exact(&mut b).unwrap();
    }
    t.elapsed().as_secs_f64() * 1e6 / RT_ITERS as f64
}

fn raw_socket_round_trip(child_cpu: usize) -> f64 {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let p = Process::new(echo_raw_socket, (SharedFd::new(b.into()), child_cpu));
    p.start().unwrap();
    let a = File::from(OwnedFd::from(a));
    let us = ping_pong(&a, &a);
    drop(a);
    p.join().unwrap();
    us
}

fn raw_pipe_round_trip(child_cpu: usize) -> f64 {
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
def echo(c):
    os.sched_setaffinity(0, {cc})
    while True:
        m = c.recv()
        if m is None: break
        c.send(m)
if __name__ == '__main__':
    os.sched_setaffinity(0, {pc})
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
def sink(c):
    os.sched_setaffinity(0, {cc})
    n = 0
    while True:
        m = c.recv_bytes()
        if not m: break
        n += len(m)
    c.send(n)
if __name__ == '__main__':
    os.sched_setaffinity(0, {pc})
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

fn python(script: &str, args: &[String]) -> Option<f64> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn mp_mib(child_cpu: usize) -> f64 {
    let (a, b) = mp::Pipe().unwrap();
    let p = Process::new(sink_bytes, (b, child_cpu));
    p.start().unwrap();
    let data = vec![0u8; 1 << 20];
    let t = Instant::now();
    for _ in 0..MIB_ITERS {
        a.send_bytes(&data).unwrap();
    }
    a.send_bytes(b"").unwrap();
    let total: u64 = a.recv().unwrap();
    let gbs = total as f64 / t.elapsed().as_secs_f64() / 1e9;
    p.join().unwrap();
    gbs
}

fn raw_mib(child_cpu: usize) -> f64 {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let total = MIB_ITERS as u64 * (1 << 20);
    let p = Process::new(sink_raw, (SharedFd::new(b.into()), total, child_cpu));
    p.start().unwrap();
    let data = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut f = &a;
    for _ in 0..MIB_ITERS {
        f.write_all(&data).unwrap();
    }
    let mut b1 = [0u8; 1];
    f.read_exact(&mut b1).unwrap();
    let gbs = total as f64 / t.elapsed().as_secs_f64() / 1e9;
    let _ = a.as_raw_fd();
    p.join().unwrap();
    gbs
}

fn row(name: &str, f: impl Fn() -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = (0..RUNS).filter_map(|_| f()).collect();
    if v.is_empty() {
        println!("| {name:<44} | {:>10} |", "n/a");
        return None;
    }
    let m = median(v);
    println!("| {name:<44} | {m:>10.2} |");
    Some(m)
}

#[mp::main]
fn main() {
    let t0 = Instant::now();
    let placements: Vec<(&str, usize)> = if ncpus() > 1 {
        vec![("pinned, one CPU", 0), ("CPU 0 <-> CPU 1", 1)]
    } else {
        vec![("pinned, one CPU", 0)]
    };
    for (label, child_cpu) in &placements {
        let c = *child_cpu;
        pin(0);
        println!("\nsmall-object round trip, {label} (µs, median of {RUNS})");
        println!("| {:<44} | {:>10} |", "", "µs");
        println!("|{:-<46}|{:->12}|", "", "");
        let m = row("mp Connection send/recv (u64, String)", || {
            Some(mp_round_trip(c))
        });
        let py = row("CPython Pipe send/recv (7, 'hello')", || {
            python(PY_RT, &["0".into(), c.to_string(), RT_ITERS.to_string()])
        });
        let s = row("raw socketpair 1-byte ping-pong (floor)", || {
            Some(raw_socket_round_trip(c))
        });
        let _ = row("raw pipe(2) 1-byte ping-pong", || {
            Some(raw_pipe_round_trip(c))
        });
        if let (Some(m), Some(s)) = (m, s) {
            println!("  mp / socketpair floor = {:.2}x", m / s);
        }
        if let (Some(m), Some(py)) = (m, py) {
            println!("  mp / CPython = {:.2}x", m / py);
        }
    }
    for (label, child_cpu) in &placements {
        let c = *child_cpu;
        pin(0);
        println!("\n1 MiB send_bytes throughput, {label} (GB/s, median of {RUNS})");
        println!("| {:<44} | {:>10} |", "", "GB/s");
        println!("|{:-<46}|{:->12}|", "", "");
        let m = row("mp send_bytes / recv_bytes", || Some(mp_mib(c)));
        let _ = row("CPython send_bytes / recv_bytes", || {
            python(PY_MIB, &["0".into(), c.to_string(), MIB_ITERS.to_string()])
        });
        let s = row("raw socketpair write/read (floor)", || Some(raw_mib(c)));
        if let (Some(m), Some(s)) = (m, s) {
            println!("  mp / floor = {:.2}x", m / s);
        }
    }
    eprintln!("\n(bench took {:.1} s)", t0.elapsed().as_secs_f64());
}
