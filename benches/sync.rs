//! Synchronization benchmarks beside CPython and the OS floor (harness = false).
//!
//! Rows: uncontended lock acquire+release; two-process semaphore ping-pong (one way,
//! both processes on CPU 0, on CPUs 0 / 1, unpinned); locked value increment and a child
//! summing a shared `Array<f64>` of 1 M (area "shared memory"). Floors: a raw futex word, a
//! `pthread_mutex_t` with `PTHREAD_PROCESS_SHARED`, `sem_t` (pshared) ping-pong, a plain
//! slice sum. CPython is driven through `python3`.

mod common;
use common::{interleave, med, pick, pin_arg, python, Placement, Report, Row};

mp::test_support!();
use mp::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

fn ns_per(iters: u64, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / iters as f64
}

#[mp::task]
fn pong(ping: Semaphore, pongs: Semaphore, n: u64, cpu: i64) {
    pin_arg(cpu);
    for _ in 0..n {
        ping.acquire();
        pongs.release().unwrap();
    }
}

fn mp_pingpong(n: u64, child_cpu: i64) -> f64 {
    let ctx = get_context(Some(StartMethod::Fork)).unwrap();
    let (a, b) = (Semaphore::new(0).unwrap(), Semaphore::new(0).unwrap());
    let p = ctx.process(pong, (a.clone(), b.clone(), n, child_cpu));
    p.start().unwrap();
    // warm-up round
    let t = Instant::now();
    for _ in 0..n {
        a.release().unwrap();
        b.acquire();
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64 / 2.0;
    p.join().unwrap();
    ns
}

/// sem_t (pshared) ping-pong between fork()ed processes: the floor.
fn sem_pingpong(n: u64, child_cpu: i64) -> f64 {
    // SAFETY: a shared anonymous mapping holding two sem_t, initialised before fork;
    // the child only uses them and _exits.
    unsafe {
        let sz = 2 * std::mem::size_of::<libc::sem_t>();
        let m = common::shared_anon(sz) as *mut libc::sem_t;
        let (a, b) = (m, m.add(1));
        libc::sem_init(a, 1, 0);
        libc::sem_init(b, 1, 0);
        let pid = libc::fork();
        if pid == 0 {
            pin_arg(child_cpu);
            for _ in 0..n {
                libc::sem_wait(a);
                libc::sem_post(b);
            }
            libc::_exit(0);
        }
        let t = Instant::now();
        for _ in 0..n {
            libc::sem_post(a);
            libc::sem_wait(b);
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64 / 2.0;
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        libc::munmap(m.cast(), sz);
        ns
    }
}

/// Two forked processes (CPU 0 and CPU 1) bouncing one shared atomic word, spinning:
/// ns one way.
fn spin_pingpong(n: u64) -> f64 {
    // SAFETY: a shared anonymous mapping holding one zeroed AtomicU32 (a valid value);
    // the child only uses it and _exits.
    unsafe {
        let sz = 64;
        let m = common::shared_anon(sz);
        let w = &*(m as *const AtomicU32);
        let pid = libc::fork();
        if pid == 0 {
            common::pin(1);
            for i in 0..n as u32 {
                while w.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                w.store(2 * i + 2, Ordering::Release);
            }
            libc::_exit(0);
        }
        common::pin(0);
        let t = Instant::now();
        for i in 0..n as u32 {
            w.store(2 * i + 1, Ordering::Release);
            while w.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64 / 2.0;
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        libc::munmap(m, sz);
        ns
    }
}

fn pthread_mutex_ns(n: u64) -> f64 {
    // SAFETY: a process-shared mutex in a shared anonymous mapping, used by this thread.
    unsafe {
        let sz = std::mem::size_of::<libc::pthread_mutex_t>();
        let m = common::shared_anon(sz) as *mut libc::pthread_mutex_t;
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_mutex_init(m, &attr);
        let ns = ns_per(n, || {
            for _ in 0..n {
                libc::pthread_mutex_lock(m);
                libc::pthread_mutex_unlock(m);
            }
        });
        libc::munmap(m.cast(), sz);
        ns
    }
}

/// Receives the array over `conn` (the attach: mapping it, and populating a large
/// block's pages), then sums it twice. Returns (sum, first pass, second pass, attach) ns.
#[mp::task]
fn sum_child(conn: mp::Connection) -> (f64, u64, u64, u64) {
    assert!(conn.poll(None).unwrap()); // the parent's send is not the attach
    let t = Instant::now();
    let a: Array<f64> = conn.recv().unwrap();
    let attach = t.elapsed().as_nanos() as u64;
    let t = Instant::now();
    let s: f64 = a.lock().iter().sum();
    let first = t.elapsed().as_nanos() as u64;
    // a second pass: the pages are mapped in this child now
    let t = Instant::now();
    let s2: f64 = a.lock().iter().sum();
    assert_eq!(s, s2);
    (s, first, t.elapsed().as_nanos() as u64, attach)
}

fn lock_ns(lock: &Lock, n: u64) -> f64 {
    ns_per(n, || {
        for _ in 0..n {
            lock.acquire();
            lock.release().unwrap();
        }
    })
}

fn cas_ns(n: u64) -> f64 {
    let word = AtomicU32::new(0);
    ns_per(n, || {
        for _ in 0..n {
            let _ = std::hint::black_box(&word).compare_exchange(
                0,
                1,
                Ordering::Acquire,
                Ordering::Relaxed,
            );
            word.swap(0, Ordering::Release);
        }
    })
}

const PY_PP: &str = "import multiprocessing as m,time,os,sys
pc,cc,n=int(sys.argv[1]),int(sys.argv[2]),int(sys.argv[3])
def c(a,b,n,cc):
 if cc>=0: os.sched_setaffinity(0,[cc])
 for _ in range(n):
  a.acquire();b.release()
if __name__=='__main__':
 os.sched_setaffinity(0,[pc] if pc>=0 else range(os.cpu_count()))
 ctx=m.get_context('fork')
 a=ctx.Semaphore(0);b=ctx.Semaphore(0)
 p=ctx.Process(target=c,args=(a,b,n,cc));p.start()
 t=time.perf_counter()
 for _ in range(n):
  a.release();b.acquire()
 print((time.perf_counter()-t)/n/2*1e6)
 p.join()";

fn main() {
    let mut rep = Report::new("sync");
    let n: u64 = pick(5_000_000, 200_000);
    let lock = Lock::new().unwrap();
    let floor = med(|| cas_ns(n));
    let (m, p) = interleave(
        || lock_ns(&lock, n),
        || {
            python(&format!(
                "import multiprocessing as m,time\nl=m.Lock();n={}\nt=time.perf_counter()\nfor _ in range(n):\n l.acquire();l.release()\nprint((time.perf_counter()-t)/n*1e9)",
                n / 5
            ))
        },
    );
    rep.add(Row {
        area: "sync",
        workload: "Lock acquire + release, uncontended".into(),
        unit: "ns",
        mp: m,
        cpython: p,
        floor: Some(floor),
        lower_is_better: true,
    });

    for pl in Placement::all() {
        let k: u64 = match pl {
            Placement::OneCpu => pick(50_000, 5_000),
            _ => pick(20_000, 2_000),
        };
        pl.enter_parent();
        let c = pl.child_arg();
        let floor = if pl == Placement::TwoCpus {
            med(|| spin_pingpong(k * 10)) / 1000.0
        } else {
            med(|| sem_pingpong(k, c)) / 1000.0
        };
        let (m, p) = interleave(
            || mp_pingpong(k, c) / 1000.0,
            || {
                common::python_args(
                    PY_PP,
                    &[
                        pl.parent_cpu().map_or(-1, |c| c as i64).to_string(),
                        c.to_string(),
                        (k / 2).to_string(),
                    ],
                )
            },
        );
        rep.add(Row {
            area: "sync",
            workload: format!("Semaphore ping-pong, one way, {}", pl.label()),
            unit: "µs",
            mp: m,
            cpython: p,
            floor: Some(floor),
            lower_is_better: true,
        });
    }
    common::unpin();

    let v = Value::new(0u64).unwrap();
    let m2: u64 = pick(2_000_000, 100_000);
    let floor = med(|| pthread_mutex_ns(m2));
    let (m, p) = interleave(
        || {
            ns_per(m2, || {
                for _ in 0..m2 {
                    *v.lock() += 1;
                }
            })
        },
        || {
            python(&format!(
                "import multiprocessing as m,time\nv=m.Value('l',0);n={}\nt=time.perf_counter()\nfor _ in range(n):\n with v.get_lock(): v.value+=1\nprint((time.perf_counter()-t)/n*1e9)",
                m2 / 7
            ))
        },
    );
    rep.add(Row {
        area: "shared memory",
        workload: "Value<u64> locked increment".into(),
        unit: "ns",
        mp: m,
        cpython: p,
        floor: Some(floor),
        lower_is_better: true,
    });

    let len = pick(1_000_000, 100_000);
    let a = Array::<f64>::new(len).unwrap();
    for (i, x) in a.lock().iter_mut().enumerate() {
        *x = i as f64;
    }
    let expect = (0..len).map(|i| i as f64).sum::<f64>();
    let local: Vec<f64> = (0..len).map(|i| i as f64).collect();
    let floor = med(|| {
        ns_per(1, || {
            std::hint::black_box(std::hint::black_box(&local).iter().sum::<f64>());
        }) / 1e6
    });
    let (mut second, mut attach) = (Vec::new(), Vec::new());
    let (m, p) = interleave(
        || {
            let (ours, theirs) = mp::Pipe().unwrap();
            let h = mp::spawn(sum_child, (theirs,)).unwrap();
            ours.send(&a).unwrap();
            let (s, ns, ns2, at) = h.join().unwrap();
            assert_eq!(s, expect);
            second.push(ns2 as f64 / 1e6);
            attach.push((at + ns) as f64 / 1e6);
            ns as f64 / 1e6
        },
        || {
            python(&format!(
                "import multiprocessing as m,time\ndef c(a,q):\n t=time.perf_counter();s=sum(a);q.put((time.perf_counter()-t)*1e3)\nif __name__=='__main__':\n ctx=m.get_context('fork');a=ctx.Array('d',range({len}));q=ctx.SimpleQueue();p=ctx.Process(target=c,args=(a,q));p.start();print(q.get());p.join()"
            ))
        },
    );
    rep.add(Row {
        area: "shared memory",
        workload: format!("a child sums a shared Array<f64> of {len}"),
        unit: "ms",
        mp: m,
        cpython: p,
        floor: Some(floor),
        lower_is_better: true,
    });
    rep.add(Row {
        area: "shared memory",
        workload: "same, a second pass in the same child (pages mapped)".into(),
        unit: "ms",
        mp: common::median(second),
        cpython: None,
        floor: Some(floor),
        lower_is_better: true,
    });
    rep.add(Row {
        area: "shared memory",
        workload: "same, the first pass plus the attach (recv of the Array)".into(),
        unit: "ms",
        mp: common::median(attach),
        cpython: None,
        floor: Some(floor),
        lower_is_better: true,
    });
    rep.note(
        "sync",
        "Floors: Lock = an atomic CAS + store on a local word; ping-pong on one CPU and \
         unpinned = sem_t (pshared) between two forked processes; across CPUs = two \
         processes spinning on one shared atomic word (the cost of moving the cache line, \
         what an adaptive spin can reach). CPython: fork context.",
    );
    rep.note(
        "shared memory",
        "Floors: increment = lock + unlock of a pshared pthread mutex (without the add); \
         sum = the same sum over a local Vec<f64> in the parent. mp's child receives the \
         array over a Connection (the attach maps it and populates the pages of a block \
         of 256 KiB or more with MADV_POPULATE_READ) and times the sum after it; the \
         last row adds the attach.",
    );
    rep.finish();
}
