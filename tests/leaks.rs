//! No leaks (issue 13, item 4): a long-running parent that starts many processes,
//! pools and queues keeps a flat descriptor count and a flat RSS; running out of
//! descriptors is a clear `Error::Io` (EMFILE), never a panic or a hang; and a program
//! that used every kind of resource leaves nothing behind: no named shared memory, no
//! socket file or directory, no zombie, no process. Each workload runs in a child
//! process of its own, so the measurements see only it. Every wait is bounded.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::Error;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Resident set size in KiB (`VmRSS`).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

// ------------------------------------------------------------ flat fds and RSS

#[mp::task]
fn sqr(x: u64) -> u64 {
    x * x
}

#[mp::task]
fn nothing() {}

/// Batches of the workload the issue names; counts per batch.
const BATCHES: usize = 10;
const PROCESSES_PER_BATCH: usize = 100; // 1 000 processes
const POOLS_PER_BATCH: usize = 100; // 1 000 pools, 2 workers each
const QUEUES_PER_BATCH: usize = 100; // 1 000 queues

/// One sample per batch: (descriptors open, RSS in KiB).
#[mp::task]
fn churn() -> Vec<(usize, u64)> {
    let mut samples = Vec::new();
    for _ in 0..BATCHES {
        for chunk in 0..PROCESSES_PER_BATCH / 10 {
            let ps: Vec<_> = (0..10)
                .map(|i| {
                    // daemonic and not, so both exit paths are exercised
                    let p = mp::Process::new(nothing, ()).with_daemon((chunk + i) % 2 == 0);
                    p.start().unwrap();
                    p
                })
                .collect();
            for p in &ps {
                join_ok(p);
            }
        }
        for k in 0..POOLS_PER_BATCH {
            let pool = mp::Pool::new(Some(2)).unwrap();
            assert_eq!(pool.map(sqr, 0..50).unwrap()[49], 49 * 49);
            if k % 2 == 0 {
                pool.close().unwrap();
                pool.join().unwrap();
            } // else: dropped, which terminates it
        }
        for k in 0..QUEUES_PER_BATCH as u64 {
            let q = mp::Queue::<u64>::new().unwrap();
            q.put(k).unwrap();
            assert_eq!(q.get_timeout(LONG).unwrap(), k);
            q.put(k + 1).unwrap(); // left in the queue when it is dropped
        }
        samples.push((open_fds(), rss_kib()));
    }
    samples
}

/// The counts, unscaled: 1 000 processes, 1 000 pools (create, map, close and
/// join or drop), 1 000 queues; the descriptor count and RSS are sampled per batch.
#[test]
fn a_long_running_parent_keeps_flat_fds_and_rss() {
    let h = mp::spawn(churn, ()).unwrap();
    let samples = within(Duration::from_secs(300), "churn", move || h.join().unwrap());
    eprintln!("(fds, rss KiB) per batch: {samples:?}");
    assert_eq!(samples.len(), BATCHES);
    // after the first batch (warm-up: lazily created arenas, the fork server, threads)
    let (fds0, rss0) = samples[1];
    for (i, &(fds, rss)) in samples.iter().enumerate().skip(2) {
        assert!(
            fds <= fds0 + 2,
            "batch {i}: {fds} fds, {fds0} after warm-up"
        );
        assert!(
            rss <= rss0 + 8 * 1024,
            "batch {i}: RSS {rss} KiB, {rss0} KiB after warm-up"
        );
    }
}

// ------------------------------------------------------------ descriptor exhaustion

fn is_emfile(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.raw_os_error() == Some(libc::EMFILE))
}

/// Creates with `make` until it fails, keeping what it made; the error it failed with.
fn exhaust<T>(what: &str, mut make: impl FnMut() -> mp::Result<T>) -> String {
    let mut kept = Vec::new();
    for _ in 0..10_000 {
        match make() {
            Ok(t) => kept.push(t),
            Err(e) => {
                assert!(is_emfile(&e), "{what}: {e:?} is not EMFILE");
                let made = kept.len();
                drop(kept);
                // and it recovers once descriptors are free again
                make().unwrap_or_else(|e| panic!("{what} after freeing: {e:?}"));
                return format!("{what}: {e} after {made} made");
            }
        }
    }
    panic!("{what}: never ran out of descriptors");
}

#[mp::task]
fn wait_for(e: mp::Event) {
    let _ = e.wait(Some(LONG));
}

/// With `RLIMIT_NOFILE` lowered just above what is open: each constructor that needs
/// descriptors fails with `Io(EMFILE)` and works again once some are freed.
#[mp::task]
fn under_a_low_fd_limit(method: mp::StartMethod) -> Vec<String> {
    let ctx = mp::get_context(Some(method)).unwrap();
    // create what is created lazily (the arena, the fork server) before the limit
    let ev = ctx.event().unwrap();
    let warm = ctx.process(wait_for, (ev.clone(),));
    ev.set();
    warm.start().unwrap();
    join_ok(&warm);
    ev.clear();
    let limit = (open_fds() + 24) as libc::rlim_t;
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: a valid rlimit for this process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0);
    let mut report = Vec::new();
    report.push(exhaust("pipe", || mp::connection::pipe(true)));
    report.push(exhaust("queue", mp::Queue::<u8>::new));
    report.push(exhaust("pool", || ctx.pool(Some(1))));
    // children hold descriptors (pidfd, sentinel) until joined: release them first
    let mut started = Vec::new();
    let e = loop {
        let p = ctx.process(wait_for, (ev.clone(),));
        match p.start() {
            Ok(()) => started.push(p),
            Err(e) => break e,
        }
        assert!(started.len() < 10_000, "never ran out of descriptors");
    };
    assert!(is_emfile(&e), "process start: {e:?} is not EMFILE");
    ev.set();
    for p in &started {
        join_ok(p);
    }
    let made = started.len();
    drop(started); // a handle keeps its sentinel open
    let p = ctx.process(wait_for, (ev.clone(),));
    p.start()
        .unwrap_or_else(|e| panic!("process start after freeing: {e:?}"));
    join_ok(&p);
    report.push(format!("process start: {e} after {made} made"));
    report
}

#[test]
fn running_out_of_descriptors_is_a_clear_io_error() {
    for_each_method(|ctx| {
        let method = ctx.get_start_method();
        let h = ctx.spawn(under_a_low_fd_limit, (method,)).unwrap();
        let report = within(Duration::from_secs(120), "under a low limit", move || {
            h.join()
        });
        match report {
            Ok(lines) => {
                assert_eq!(lines.len(), 4, "{lines:?}");
                eprintln!("{method}: {lines:?}");
            }
            Err(e) => panic!("{method}: {e}"),
        }
    });
}

// ------------------------------------------------------------ nothing left behind

#[mp::task]
fn child_sleeps() {
    std::thread::sleep(Duration::from_secs(120));
}

/// Uses every resource kind that leaves a trace outside the process, under every start
/// method, then ends normally; leaks a segment on purpose (the tracker's to clean).
/// Returns the names of the segments it made.
#[mp::task]
fn use_everything(tmp: PathBuf, out: mp::Queue<Vec<String>>) {
    // SAFETY-free in edition 2021; this process is single-threaded at this point (a
    // freshly started child), and TMPDIR makes mp's socket directories land in `tmp`.
    std::env::set_var("TMPDIR", &tmp);
    let mut shm_names = Vec::new();
    for method in mp::get_all_start_methods() {
        let ctx = mp::get_context(Some(method)).unwrap();
        let p = ctx.process(nothing, ());
        p.start().unwrap();
        join_ok(&p);
        // a daemonic child still running at exit: terminated by the exit handlers
        let d = ctx.process(child_sleeps, ()).with_daemon(true);
        d.start().unwrap();
        let pool = ctx.pool(Some(2)).unwrap();
        assert_eq!(pool.map(sqr, 0..10).unwrap()[3], 9);
        drop(pool);
        let kept = ctx.pool(Some(1)).unwrap(); // a pool never closed nor dropped
        assert_eq!(kept.apply(sqr, (3,)).unwrap(), 9);
        std::mem::forget(kept);
        let q = ctx.queue::<Vec<u8>>().unwrap();
        q.put(vec![7; 100_000]).unwrap(); // unread at exit
        let m = ctx.manager().unwrap();
        let l = m.list(vec![1, 2]).unwrap();
        l.append(3).unwrap();
        std::mem::forget(l); // a proxy never dropped
        std::mem::forget(m); // a manager never shut down: ended with its owner
    }
    // listeners: one closed, one left open at exit
    let listener = mp::connection::Listener::bind(None, 1, Some(b"k")).unwrap();
    let addr = listener.address();
    let t = std::thread::spawn(move || mp::connection::Client::connect(addr, Some(b"k")));
    let conn = listener.accept().unwrap();
    let client = t.join().unwrap().unwrap();
    client.send(&1u8).unwrap();
    assert_eq!(conn.recv::<u8>().unwrap(), 1);
    listener.close().unwrap();
    std::mem::forget(mp::connection::Listener::bind(None, 1, Some(b"k")).unwrap());
    // shared memory: one unlinked, one leaked (the tracker unlinks it), a list
    let a = mp::SharedMemory::create(None, 4096).unwrap();
    a.unlink().unwrap();
    let b = mp::SharedMemory::create(None, 4096).unwrap();
    let list = mp::ShareableList::new(&[1i64, 2, 3]).unwrap();
    shm_names.extend([
        a.name().to_string(),
        b.name().to_string(),
        list.shm().name().to_string(),
    ]);
    std::mem::forget(b);
    std::mem::forget(list);
    out.put(shm_names).unwrap();
}

/// Runs [`use_everything`] in a child of its own and waits for it: the resource tracker
/// waits for the parent of the process that started it too, so the program under test
/// is this process and its descendants, not the test process.
#[mp::task]
fn program(tmp: PathBuf, out: mp::Queue<Vec<String>>) {
    let p = mp::Process::new(use_everything, (tmp, out));
    p.start().unwrap();
    join_ok(&p);
}

/// The processes of this test binary's executable, other than this process and its
/// own children (its fork server and tracker live as long as it does).
fn strays() -> Vec<u32> {
    let me = std::process::id();
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me || std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_ref() != Some(&exe) {
            continue;
        }
        if ppid_of(pid) != Some(me) {
            found.push(pid);
        }
    }
    found
}

/// (state, ppid) of `pid` from `/proc/<pid>/stat`.
fn stat_of(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    Some((state, f.next()?.parse().ok()?))
}

fn ppid_of(pid: u32) -> Option<u32> {
    stat_of(pid).map(|s| s.1)
}

/// Waits through a pidfd until `pid` has ended; false if it still runs after `bound`.
fn ended_within(pid: u32, bound: Duration) -> bool {
    // SAFETY: pidfd_open(2) has no memory arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return true;
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, bound.as_millis() as i32) == 1 }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_finished_program_leaves_nothing_behind() {
    for_each_method(|ctx| {
        let tmp = tempfile::tempdir().unwrap();
        let before = strays();
        let out = ctx.queue().unwrap();
        let p = ctx.process(program, (tmp.path().to_path_buf(), out.clone()));
        p.start().unwrap();
        let names = out.get_timeout(LONG).unwrap();
        join_ok(&p);
        // whatever the workload started ends by itself within a bound (the tracker
        // last, once it cleaned up)
        for pid in strays().into_iter().filter(|p| !before.contains(p)) {
            let state = stat_of(pid);
            let markers: Vec<String> = std::fs::read(format!("/proc/{pid}/environ"))
                .unwrap_or_default()
                .split(|b| *b == 0)
                .filter(|kv| kv.starts_with(b"MP_"))
                .map(|kv| String::from_utf8_lossy(kv).into_owned())
                .collect();
            assert!(
                ended_within(pid, LONG),
                "process {pid} ({state:?}, {markers:?}) outlived the program that started it"
            );
        }
        for name in &names {
            assert!(
                !Path::new("/dev/shm").join(name).exists(),
                "shared memory {name} left behind"
            );
        }
        assert_eq!(entries(tmp.path()), Vec::<String>::new(), "left in TMPDIR");
        // no zombie among this process's children
        let me = std::process::id();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Some(('Z', ppid)) = stat_of(pid) {
                assert_ne!(ppid, me, "zombie child {pid}");
            }
        }
    });
}
