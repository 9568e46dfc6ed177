//! Synchronization benchmarks beside CPython and the OS floor (harness = false).
//!
//! Rows: uncontended lock acquire+release, locked value increment, two-process
//! semaphore ping-pong (one way, both processes pinned to CPU 0, and on CPUs 0 / 1),
//! a child summing a shared `Array<f64>` of 1 M. Floors: a raw futex word, a
//! `pthread_mutex_t` with `PTHREAD_PROCESS_SHARED`, `sem_t` (pshared) ping-pong, a plain
//! slice sum. CPython is driven through `python3`.

mod common;
use common::{pin, python, unpin};

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
    if cpu >= 0 {
        pin(cpu as usize);
    }
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
        let m = libc::mmap(
            std::ptr::null_mut(),
            sz,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        ) as *mut libc::sem_t;
        let (a, b) = (m, m.add(1));
        libc::sem_init(a, 1, 0);
        libc::sem_init(b, 1, 0);
        let pid = libc::fork();
        if pid == 0 {
            if child_cpu >= 0 {
                pin(child_cpu as usize);
            }
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

fn pthread_mutex_ns(n: u64) -> f64 {
    // SAFETY: a process-shared mutex in a shared anonymous mapping, used by this thread.
    unsafe {
        let sz = std::mem::size_of::<libc::pthread_mutex_t>();
        let m = libc::mmap(
            std::ptr::null_mut(),
            sz,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        ) as *mut libc::pthread_mutex_t;
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

#[mp::task]
fn sum_child(a: Array<f64>) -> (f64, u64) {
    let t = Instant::now();
    let s: f64 = a.lock().iter().sum();
    (s, t.elapsed().as_nanos() as u64)
}

fn row(name: &str, ours: f64, py: Option<f64>, floor: f64, unit: &str) {
    let py_s = py.map_or("n/a".to_string(), |p| format!("{p:.1}"));
    let ratio = py.map_or("n/a".to_string(), |p| format!("{:.1}x", p / ours));
    println!(
        "{name:<44} {ours:>10.2} {py_s:>10} {floor:>10.2} {unit:>4}  vs CPython {ratio:>7}  vs floor {:.2}x",
        ours / floor
    );
}

fn main() {
    let n = 5_000_000u64;
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>4}",
        "benchmark", "mp", "CPython", "floor", "unit"
    );

    let lock = Lock::new().unwrap();
    let ours = ns_per(n, || {
        for _ in 0..n {
            lock.acquire();
            lock.release().unwrap();
        }
    });
    let word = AtomicU32::new(0);
    let futex = ns_per(n, || {
        for _ in 0..n {
            let _ = std::hint::black_box(&word).compare_exchange(
                0,
                1,
                Ordering::Acquire,
                Ordering::Relaxed,
            );
            word.swap(0, Ordering::Release);
        }
    });
    let py = python(
        "import multiprocessing as m,time\nl=m.Lock();n=1000000\nt=time.perf_counter()\nfor _ in range(n):\n l.acquire();l.release()\nprint((time.perf_counter()-t)/n*1e9)",
    );
    row("lock acquire+release (uncontended)", ours, py, futex, "ns");
    println!(
        "{:<44} {:>10.2} ns (pthread pshared mutex)",
        "",
        pthread_mutex_ns(n)
    );

    let v = Value::new(0u64).unwrap();
    let m = 2_000_000u64;
    let ours = ns_per(m, || {
        for _ in 0..m {
            *v.lock() += 1;
        }
    });
    let py = python(
        "import multiprocessing as m,time\nv=m.Value('l',0);n=300000\nt=time.perf_counter()\nfor _ in range(n):\n with v.get_lock(): v.value+=1\nprint((time.perf_counter()-t)/n*1e9)",
    );
    row(
        "locked value increment",
        ours,
        py,
        pthread_mutex_ns(m),
        "ns",
    );

    let py_pp = |cpu: &str| {
        python(&format!(
            "import multiprocessing as m,time,os\ndef c(a,b,n,cpu):\n if cpu>=0: os.sched_setaffinity(0,[cpu])\n for _ in range(n):\n  a.acquire();b.release()\nif __name__=='__main__':\n os.sched_setaffinity(0,[0])\n m.set_start_method('fork')\n a=m.Semaphore(0);b=m.Semaphore(0);n=20000\n p=m.Process(target=c,args=(a,b,n,{cpu}));p.start()\n t=time.perf_counter()\n for _ in range(n):\n  a.release();b.acquire()\n print((time.perf_counter()-t)/n/2*1e9)\n p.join()"
        ))
    };
    pin(0);
    let k = 50_000;
    let ours = mp_pingpong(k, -1);
    let floor = sem_pingpong(k, -1);
    row(
        "ping-pong one way, 1 CPU (taskset -c 0)",
        ours / 1000.0,
        py_pp("-1").map(|x| x / 1000.0),
        floor / 1000.0,
        "us",
    );
    let k = 20_000;
    let ours = mp_pingpong(k, 1);
    let floor = sem_pingpong(k, 1);
    row(
        "ping-pong one way, CPU 0 <-> CPU 1",
        ours / 1000.0,
        py_pp("1").map(|x| x / 1000.0),
        floor / 1000.0,
        "us",
    );
    unpin();

    let len = 1_000_000;
    let a = Array::<f64>::new(len).unwrap();
    for (i, x) in a.lock().iter_mut().enumerate() {
        *x = i as f64;
    }
    let (s, ns) = mp::spawn(sum_child, (a.clone(),)).unwrap().join().unwrap();
    assert_eq!(s, (0..len).map(|i| i as f64).sum::<f64>());
    let local: Vec<f64> = (0..len).map(|i| i as f64).collect();
    let floor = ns_per(1, || {
        std::hint::black_box(std::hint::black_box(&local).iter().sum::<f64>());
    });
    let py = python(
        "import multiprocessing as m,time\ndef c(a,q):\n t=time.perf_counter();s=sum(a);q.put((time.perf_counter()-t)*1e3)\nif __name__=='__main__':\n a=m.Array('d',range(1000000));q=m.SimpleQueue();p=m.Process(target=c,args=(a,q));p.start();print(q.get());p.join()",
    );
    row(
        "child sums shared Array<f64> of 1M",
        ns as f64 / 1e6,
        py,
        floor / 1e6,
        "ms",
    );
}
