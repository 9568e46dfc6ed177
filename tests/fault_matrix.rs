//! The fault matrix (issue 13, item 3): a real `SIGKILL` of each kind of process mp
//! runs — a pool worker mid-task, a queue producer inside `put`, a consumer inside
//! `get`, a manager's server inside a call, the fork server, the resource tracker, and
//! a parent with its children — and what the survivors see: an error or a recovery,
//! never a hang. Every wait is bounded.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::Error;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Bound on every wait that should succeed.
const LONG: Duration = Duration::from_secs(30);

fn sigkill(pid: u32) {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// Waits (through a pidfd, so no polling) until process `pid` has ended; false if it
/// still runs after `bound`. A process that no longer exists has ended.
fn ended_within(pid: u32, bound: Duration) -> bool {
    // SAFETY: pidfd_open(2) has no memory arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return true; // ESRCH: gone (and reaped)
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

/// The children of this process whose environment holds `marker` (the fork server's
/// and the resource tracker's markers: they are our own binary executed again).
fn children_with_marker(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) != Some(me) || fields[0] == "Z" {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if environ
            .split(|b| *b == 0)
            .any(|kv| kv.starts_with(marker.as_bytes()) && kv.get(marker.len()) == Some(&b'='))
        {
            found.push(pid);
        }
    }
    found
}

/// The pid of the process serving the Unix socket at `path` (`SO_PEERCRED`).
fn server_pid(addr: &mp::connection::Address) -> u32 {
    let mp::connection::Address::Unix(path) = addr else {
        panic!("expected a Unix address, got {addr}");
    };
    let s = std::os::unix::net::UnixStream::connect(path).unwrap();
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid out-parameters of the right size.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0);
    cred.pid as u32
}

// ------------------------------------------------------------------- pool workers

#[mp::task]
fn sqr(x: i64) -> i64 {
    x * x
}

/// Reports its worker's pid and its item, then works for `ms` (long enough to be
/// killed meanwhile).
#[mp::task]
fn report_then_sleep(q: mp::Queue<(u32, i64)>, x: i64, ms: u64) -> i64 {
    q.put((std::process::id(), x)).unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    x
}

#[mp::task]
fn report_then_sleep_triple(t: (mp::Queue<(u32, i64)>, i64, u64)) -> i64 {
    report_then_sleep(t.0, t.1, t.2)
}

fn died(r: &mp::Result<impl std::fmt::Debug>, victim: u32) {
    match r {
        Err(Error::WorkerDied { pid, exitcode }) => {
            assert_eq!(*pid, victim);
            assert_eq!(*exitcode, -libc::SIGKILL);
        }
        other => panic!("expected WorkerDied of {victim}, got {other:?}"),
    }
}

/// The pid of the worker that reported item `x`.
fn worker_of(q: &mp::Queue<(u32, i64)>, x: i64) -> u32 {
    loop {
        let (pid, item) = q.get_timeout(LONG).unwrap();
        if item == x {
            return pid;
        }
    }
}

#[test]
fn a_pool_worker_killed_mid_task_fails_that_task_and_the_pool_goes_on() {
    for_each_method(|ctx| {
        let pool = ctx.pool(Some(2)).unwrap();
        let q = ctx.queue::<(u32, i64)>().unwrap();
        // apply_async: its result is WorkerDied
        let r = pool.apply_async(report_then_sleep, (q.clone(), -1, 60_000));
        let victim = worker_of(&q, -1);
        sigkill(victim);
        died(&r.get_timeout(LONG), victim);

        // map: one long item (killed) among short ones: the map fails with WorkerDied
        // (items of their own: a late report of a short one must not be taken for imap's)
        let items = (100..106).map(|x| (q.clone(), x, if x == 100 { 60_000 } else { 1 }));
        let m = pool.starmap_async(report_then_sleep, items);
        let victim = worker_of(&q, 100);
        sigkill(victim);
        let got = m.get_timeout(LONG);
        assert!(matches!(got, Err(Error::WorkerDied { .. })), "{got:?}");

        // imap: only the killed item fails, the others arrive, in order
        let q2 = q.clone();
        let items = (0..6).map(move |x| (q2.clone(), x, if x == 2 { 60_000 } else { 1 }));
        let it = pool.imap_chunked(report_then_sleep_triple, items, 1);
        let drainer = std::thread::spawn(move || it.collect::<Vec<_>>());
        let victim = worker_of(&q, 2);
        sigkill(victim);
        let out = within(LONG, "imap", move || drainer.join().unwrap());
        assert_eq!(out.len(), 6, "{out:?}");
        for (x, r) in out.iter().enumerate() {
            if x == 2 {
                died(r, victim);
            } else {
                assert_eq!(*r.as_ref().unwrap(), x as i64);
            }
        }
        // the pool keeps working on replacement workers
        assert_eq!(pool.map(sqr, 0..20).unwrap()[19], 361);
        pool.close().unwrap();
        within(LONG, "pool join", move || pool.join().unwrap());
    });
}

// ------------------------------------------------------------------- queue producer

/// An item whose content checks itself: `seq` repeated.
fn item(seq: u64, big: bool) -> (u64, Vec<u64>) {
    (seq, vec![seq; if big { 40_000 } else { 3 }])
}

#[mp::task]
fn produce(q: mp::Queue<(u64, Vec<u64>)>, started: mp::Event, big: bool) {
    for seq in 0.. {
        q.put(item(seq, big)).unwrap();
        if seq == 0 {
            started.set();
        }
    }
}

/// Reads until the queue stays empty: every item intact, in order, no gaps.
fn drain_in_order(q: &mp::Queue<(u64, Vec<u64>)>, big: bool) -> u64 {
    let mut next = 0;
    loop {
        match q.get_timeout(Duration::from_millis(300)) {
            Ok((seq, body)) => {
                assert_eq!(seq, next, "items of one producer arrive in order");
                assert_eq!((seq, body), item(seq, big));
                next += 1;
            }
            Err(Error::Empty) => return next,
            // a torn item a kill left behind is reported, not delivered
            Err(Error::Codec(_)) => continue,
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[test]
fn a_producer_killed_inside_put_leaves_the_queue_usable() {
    for_each_method(|ctx| {
        for (round, big) in [(0u64, false), (1, true), (2, false), (3, true)] {
            let q = ctx.queue::<(u64, Vec<u64>)>().unwrap();
            let started = ctx.event().unwrap();
            let p = ctx.process(produce, (q.clone(), started.clone(), big));
            p.start().unwrap();
            assert!(started.wait(Some(LONG)));
            // it is inside put (or between two) nearly all the time
            std::thread::sleep(Duration::from_millis(round * 7));
            p.kill().unwrap();
            p.join_timeout(LONG).unwrap();
            assert_eq!(p.exitcode(), Some(-libc::SIGKILL));
            let q2 = q.clone();
            let n = within(LONG, "drain", move || drain_in_order(&q2, big));
            assert!(n >= 1, "the first item was flushed before `started`");
            // others put and get as before
            let q2 = q.clone();
            within(LONG, "put/get after the kill", move || {
                q2.put(item(0, big)).unwrap();
                q2.put(item(1, big)).unwrap();
                assert_eq!(drain_in_order(&q2, big), 2);
            });
        }
    });
}

// ------------------------------------------------------------------- queue consumer

#[mp::task]
fn consume(q: mp::Queue<(u64, Vec<u64>)>, started: mp::Event) {
    started.set();
    loop {
        let _ = q.get();
    }
}

#[test]
fn a_consumer_killed_inside_get_leaves_the_queue_usable() {
    for_each_method(|ctx| {
        for (round, big) in [(0u64, false), (1, true), (2, true)] {
            let q = ctx.queue::<(u64, Vec<u64>)>().unwrap();
            let started = ctx.event().unwrap();
            let p = ctx.process(consume, (q.clone(), started.clone()));
            p.start().unwrap();
            assert!(started.wait(Some(LONG)));
            // feed it while it reads, kill it mid-stream
            let feeder = {
                let q = q.clone();
                std::thread::spawn(move || {
                    for seq in 0..200 {
                        q.put(item(seq, big)).unwrap();
                    }
                })
            };
            std::thread::sleep(Duration::from_millis(2 + round * 5));
            p.kill().unwrap();
            p.join_timeout(LONG).unwrap();
            within(LONG, "feeder", move || feeder.join().unwrap());
            // what the dead consumer did not take is still there, intact, in order
            let q2 = q.clone();
            within(LONG, "drain after the kill", move || {
                let mut last = None;
                loop {
                    match q2.get_timeout(Duration::from_millis(300)) {
                        Ok((seq, body)) => {
                            assert_eq!((seq, body), item(seq, big));
                            assert!(last.is_none_or(|l| seq > l), "{seq} after {last:?}");
                            last = Some(seq);
                        }
                        Err(Error::Empty) => break,
                        Err(Error::Codec(_)) => continue,
                        Err(e) => panic!("{e:?}"),
                    }
                }
                q2.put(item(7, big)).unwrap();
                assert_eq!(q2.get_timeout(LONG).unwrap(), item(7, big));
            });
        }
    });
}

// ------------------------------------------------------------------- manager server

#[test]
fn a_manager_server_killed_mid_call_fails_the_calls_without_hanging() {
    for_each_method(|ctx| {
        let m = ctx.manager().unwrap();
        let q = m.queue::<i32>(0).unwrap();
        let l = m.list(vec![1, 2, 3]).unwrap();
        assert_eq!(l.len().unwrap(), 3);
        let pid = server_pid(&m.address());
        // one call blocked in the server (a get on an empty queue) ...
        let blocked = {
            let q = q.clone();
            std::thread::spawn(move || q.get())
        };
        // ... and one busy calling in a loop
        let busy = {
            let l = l.clone();
            std::thread::spawn(move || loop {
                if let Err(e) = l.append(4) {
                    return e;
                }
            })
        };
        sigkill(pid);
        assert!(ended_within(pid, LONG));
        let r = within(LONG, "blocked call", move || blocked.join().unwrap());
        assert!(r.is_err(), "{r:?}");
        let e = within(LONG, "busy calls", move || busy.join().unwrap());
        assert!(matches!(e, Error::Io(_) | Error::Eof), "{e:?}");
        // later calls, and new proxies, fail at once
        let l2 = l.clone();
        within(LONG, "later calls", move || {
            assert!(l2.len().is_err());
            assert!(l2.append(5).is_err());
        });
        within(LONG, "new proxy", move || {
            assert!(m.list(vec![0]).is_err());
            let _ = m.shutdown(); // whatever it says, it returns
        });
    });
}

// ------------------------------------------------------------------- fork server

#[mp::task]
fn wait_for(e: mp::Event) {
    let _ = e.wait(Some(LONG));
}

#[test]
fn a_killed_fork_server_is_replaced_and_its_children_joinable() {
    let ctx = mp::get_context(Some(mp::StartMethod::ForkServer)).unwrap();
    let ev = ctx.event().unwrap();
    let running = ctx.process(wait_for, (ev.clone(),));
    running.start().unwrap();
    let servers = children_with_marker("MP_FORKSERVER_FD");
    assert_eq!(servers.len(), 1, "{servers:?}");
    sigkill(servers[0]);
    assert!(ended_within(servers[0], LONG));
    // a child started before: it still runs (the server was not its reaper for
    // signals), and joining it returns — the server cannot report its exit code any
    // more, so that is 255 as in CPython — instead of hanging
    let r2 = running.clone();
    within(LONG, "join of an orphaned child", move || {
        r2.join_timeout(LONG).unwrap()
    });
    assert!(running.exitcode().is_some());
    ev.set();
    // the next start restarts the server and works
    let p = ctx.process(quick, ());
    within(LONG, "start after the kill", move || {
        p.start().unwrap();
        join_ok(&p);
    });
    let again = children_with_marker("MP_FORKSERVER_FD");
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(again[0], servers[0]);
}

#[mp::task]
fn quick() {}

// ------------------------------------------------------------------- resource tracker

fn shm_exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm")
        .join(name.trim_start_matches('/'))
        .exists()
}

/// Creates a segment (the tracker starts), kills the tracker, creates another one
/// (a new tracker), and ends without unlinking either: reports both names and the
/// second tracker's pid.
#[mp::task]
fn leak_across_a_tracker_kill(out: mp::Queue<(String, String, u32)>) {
    let a = mp::SharedMemory::create(None, 4096).unwrap();
    let first = children_with_marker("MP_RESOURCE_TRACKER_FD");
    assert_eq!(first.len(), 1, "{first:?}");
    sigkill(first[0]);
    assert!(ended_within(first[0], LONG));
    let b = mp::SharedMemory::create(None, 4096).unwrap();
    let second = children_with_marker("MP_RESOURCE_TRACKER_FD");
    assert_eq!(second.len(), 1, "{second:?}");
    out.put((a.name().to_string(), b.name().to_string(), second[0]))
        .unwrap();
    out.close().unwrap();
    out.join_thread().unwrap();
    std::process::exit(0); // leak both: no unlink
}

/// Runs [`leak_across_a_tracker_kill`] in a child and waits for it: the tracker
/// outlives the parent of the process that started it (`WATCH`), so this process is
/// that parent, and the test process is no part of the tracker's program.
#[mp::task]
fn leak_in_a_child(out: mp::Queue<(String, String, u32)>) {
    let p = mp::Process::new(leak_across_a_tracker_kill, (out,));
    p.start().unwrap();
    join_ok(&p);
}

#[test]
fn a_killed_resource_tracker_is_replaced_and_nothing_leaks() {
    for_each_method(|ctx| {
        let out = ctx.queue().unwrap();
        let p = ctx.process(leak_in_a_child, (out.clone(),));
        // a tracker of its own (the tracker is per authkey)
        p.set_authkey(b"fault-matrix-tracker".to_vec());
        p.start().unwrap();
        let (a, b, tracker) = out.get_timeout(LONG).unwrap();
        join_ok(&p);
        // the new tracker cleans up once its program ended, and exits
        assert!(ended_within(tracker, LONG), "tracker {tracker} still runs");
        assert!(!shm_exists(&b), "{b} left behind");
        assert!(
            !shm_exists(&a),
            "{a}, registered before the kill, left behind"
        );
    });
}

/// Creates a segment, kills the tracker it was registered with, and ends without a
/// word to the tracker since (no unlink, no second segment).
#[mp::task]
fn leak_then_lose_the_tracker(out: mp::Queue<String>) {
    let a = mp::SharedMemory::create(None, 4096).unwrap();
    let first = children_with_marker("MP_RESOURCE_TRACKER_FD");
    assert_eq!(first.len(), 1, "{first:?}");
    sigkill(first[0]);
    assert!(ended_within(first[0], LONG));
    out.put(a.name().to_string()).unwrap();
    out.close().unwrap();
    out.join_thread().unwrap();
    std::process::exit(0); // leak it: no unlink
}

#[mp::task]
fn leak_then_lose_in_a_child(out: mp::Queue<String>) {
    let p = mp::Process::new(leak_then_lose_the_tracker, (out,));
    p.start().unwrap();
    join_ok(&p);
}

#[test]
fn a_segment_whose_tracker_was_killed_is_still_cleaned_up_at_exit() {
    // the names are sent again at exit (a probe finds the tracker dead and starts
    // another), not only when the process happens to register something else later
    for_each_method(|ctx| {
        let out = ctx.queue().unwrap();
        let p = ctx.process(leak_then_lose_in_a_child, (out.clone(),));
        p.set_authkey(b"fault-matrix-tracker-2".to_vec());
        p.start().unwrap();
        let a: String = out.get_timeout(LONG).unwrap();
        join_ok(&p);
        let deadline = std::time::Instant::now() + LONG;
        while shm_exists(&a) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !shm_exists(&a),
            "{a}, registered before the kill, left behind"
        );
    });
}

// ------------------------------------------------------------------- the parent

#[mp::task]
fn sleep_long() {
    std::thread::sleep(Duration::from_secs(120));
}

#[mp::task]
fn pid_of(_x: u32) -> u32 {
    std::process::id()
}

/// An intermediate parent: starts a daemonic child, a `die_with_parent` one, a plain
/// one, a pool and a manager, all with start method `method`, reports their pids, then
/// waits to be killed.
#[mp::task]
fn intermediate(
    method: mp::context::StartMethod,
    out: mp::Queue<Vec<u32>>,
    plain_out: mp::Queue<u32>,
) {
    let ctx = mp::get_context(Some(method)).unwrap();
    let daemonic = ctx.process(sleep_long, ()).with_daemon(true);
    daemonic.start().unwrap();
    let bound = ctx.process(sleep_long, ()).with_die_with_parent(true);
    assert!(bound.die_with_parent() && !bound.daemon());
    bound.start().unwrap();
    let plain = ctx.process(sleep_long, ());
    plain.start().unwrap();
    let pool = ctx.pool(Some(2)).unwrap();
    let mut workers: Vec<u32> = pool.map_chunked(pid_of, 0..8, 1).unwrap();
    workers.sort_unstable();
    workers.dedup();
    // a manager server started by fork holds a copy of its owner's end of their
    // connection (and a sibling forked later holds one too): it must still end
    let m = ctx.manager().unwrap();
    let mut pids = vec![daemonic.pid().unwrap(), bound.pid().unwrap()];
    pids.extend(workers);
    pids.push(server_pid(&m.address()));
    plain_out.put(plain.pid().unwrap()).unwrap();
    out.put(pids).unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn the_children_of_a_killed_parent_do_not_linger() {
    for_each_method(|ctx| {
        let out = ctx.queue::<Vec<u32>>().unwrap();
        let plain_out = ctx.queue::<u32>().unwrap();
        let p = ctx.process(
            intermediate,
            (ctx.get_start_method(), out.clone(), plain_out.clone()),
        );
        p.start().unwrap();
        let pids = out.get_timeout(LONG).unwrap();
        let plain = plain_out.get_timeout(LONG).unwrap();
        assert!(pids.len() >= 4, "{pids:?}");
        p.kill().unwrap();
        p.join_timeout(LONG).unwrap();
        for pid in &pids {
            assert!(ended_within(*pid, LONG), "child {pid} outlived its parent");
        }
        // a plain child runs on, as in Python (it is nobody's to end but its own)
        assert!(
            !ended_within(plain, Duration::ZERO),
            "the plain child ended"
        );
        sigkill(plain);
        assert!(ended_within(plain, LONG));
    });
}

#[test]
fn a_child_whose_parent_is_already_gone_ends_at_once() {
    // the grandchild is started by a parent that is killed right after `start`
    // returned: whichever comes first, the watch or the death, the grandchild ends
    for_each_method(|ctx| {
        for _ in 0..3 {
            let out = ctx.queue::<Vec<u32>>().unwrap();
            let p = ctx.process(start_bound_and_die, (out.clone(),));
            p.start().unwrap();
            let pids = out.get_timeout(LONG).unwrap();
            p.join_timeout(LONG).unwrap();
            assert_eq!(p.exitcode(), Some(-libc::SIGKILL));
            for pid in &pids {
                assert!(ended_within(*pid, LONG), "child {pid} outlived its parent");
            }
        }
    });
}

#[mp::task]
fn start_bound_and_die(out: mp::Queue<Vec<u32>>) {
    let mut pids = Vec::new();
    for daemon in [true, false] {
        let c = mp::Process::new(sleep_long, ())
            .with_daemon(daemon)
            .with_die_with_parent(true);
        c.start().unwrap();
        pids.push(c.pid().unwrap());
    }
    out.put(pids).unwrap();
    out.close().unwrap();
    out.join_thread().unwrap();
    sigkill(std::process::id());
}

// ------------------------------------------------------------------- a hostile client

#[test]
fn a_manager_keeps_serving_while_clients_send_garbage() {
    use std::io::Write;
    let m = mp::Manager::new().unwrap();
    let l = m.list(vec![1]).unwrap();
    let mp::connection::Address::Unix(path) = m.address() else {
        panic!("expected a Unix address");
    };
    let lies: [&[u8]; 4] = [
        b"garbage that is no handshake at all",
        &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0], // a ~4 GiB length header
        &[0, 0, 0, 100, 1, 2],                             // a truncated frame
        b"",                                               // connect and hang up
    ];
    for bytes in lies {
        let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let _ = s.write_all(bytes);
        drop(s);
        // others are served meanwhile and afterwards
        let l2 = l.clone();
        within(LONG, "a call after a hostile client", move || {
            l2.append(2).unwrap();
        });
    }
    // a client that stays connected and silent does not block the others either
    let _silent = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let l2 = l.clone();
    within(LONG, "a call beside a silent client", move || {
        assert_eq!(l2.len().unwrap(), 5)
    });
    m.shutdown().unwrap();
}
