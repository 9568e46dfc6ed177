//! Behaviours of CPython's `Lib/test/_test_multiprocessing.py` process, connection,
//! queue, logging and start-method tests that the other `cpython_*.rs` ports did not
//! check: `_TestProcess.test_child_fd_inflation`, `test_forkserver_sigint/sigkill`,
//! `test_many_processes` at CPython's size, `test_error_on_stdio_flush_*`,
//! `_TestSubclassingProcess.test_stderr_flush`, `_close_stdin` (a child's standard input
//! is `/dev/null`), `TestIgnoreEINTR`, `_TestPollEintr`, `TestTimeouts`,
//! `TestStartMethod.test_nested_startmethod`, `_TestConnection.test_context`, listener
//! addresses and more. Every wait is bounded; processes run under every start method
//! where that makes sense.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::connection::{wait, Address, Client, Connection, Listener};
use mp::*;
use std::io::{Read, Seek};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Bound on every wait that should succeed.
const LONG: Duration = Duration::from_secs(30);

fn ready(c: &Connection) {
    assert!(c.poll(Some(LONG)).unwrap(), "nothing arrived in time");
}

fn recv_within<T: serde::de::DeserializeOwned>(c: &Connection) -> T {
    ready(c);
    c.recv().unwrap()
}

#[mp::task]
fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[mp::task]
fn noop() {}

// ------------------------------------------------------- _close_stdin (process.py)

#[mp::task]
fn read_stdin(w: Connection) {
    // CPython's children read end of file at once: their stdin is /dev/null
    let mut buf = [0u8; 16];
    // SAFETY: reads into a local buffer from fd 0
    let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
    w.send(&n).unwrap();
}

/// CPython's `BaseProcess._bootstrap` replaces a child's standard input with
/// `/dev/null` (`_close_stdin`), so a child never competes with its parent for the
/// terminal or a pipe: reading it gives end of file at once.
#[test]
fn child_stdin_is_dev_null() {
    for_each_method(|ctx| {
        // give the parent a stdin that would block forever: a pipe nobody writes to
        let mut fds = [0; 2];
        // SAFETY: pipe fills two descriptors; dup/dup2 save and replace fd 0
        let saved = unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let saved = libc::dup(0);
            libc::dup2(fds[0], 0);
            libc::close(fds[0]);
            saved
        };
        let (r, w) = mp::pipe(false).unwrap();
        // daemonic: should it block in read, it is not joined forever at exit
        let p = ctx.process(read_stdin, (w,)).with_daemon(true);
        let started = p.start();
        // SAFETY: restore the parent's stdin
        unsafe {
            libc::dup2(saved, 0);
            libc::close(saved);
        }
        started.unwrap();
        let got = r.poll(Some(Duration::from_secs(10))).unwrap();
        // SAFETY: closing the write end unblocks a child stuck in read
        unsafe { libc::close(fds[1]) };
        assert!(got, "{ctx:?}: the child blocked reading its stdin");
        assert_eq!(r.recv::<isize>().unwrap(), 0, "{ctx:?}");
        join_ok(&p);
    });
}

// --------------------------------------------------- test_child_fd_inflation

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[mp::task]
fn report_fd_count(q: Queue<usize>, evt: Event) {
    q.put(fd_count()).unwrap();
    assert!(evt.wait(Some(LONG)));
}

/// `_TestProcess.test_child_fd_inflation`: the number of descriptors a spawned (or
/// fork-server) child holds does not grow with the number of running children.
#[test]
fn child_fd_inflation() {
    for_each_method(|ctx| {
        if ctx.get_start_method() == StartMethod::Fork {
            return; // fork inherits every descriptor by design
        }
        const N: usize = 5;
        let evt = ctx.event().unwrap();
        let q = ctx.queue::<usize>().unwrap();
        let ps: Vec<Process> = (0..N)
            .map(|_| ctx.process(report_fd_count, (q.clone(), evt.clone())))
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        let counts: Vec<usize> = (0..N).map(|_| q.get_timeout(LONG).unwrap()).collect();
        evt.set();
        for p in &ps {
            join_ok(p);
        }
        assert!(
            counts.iter().all(|&c| c == counts[0]),
            "{ctx:?}: {counts:?}"
        );
    });
}

// --------------------------------------------- test_forkserver_sigint / sigkill

#[mp::task]
fn sleep_and_set(evt: Event, ms: u64, ppid: Connection) {
    // SAFETY: getppid has no preconditions
    ppid.send(&unsafe { libc::getppid() }).unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    evt.set();
}

fn forkserver_death(sig: i32) {
    let ctx = get_context(Some(StartMethod::ForkServer)).unwrap();
    let evt = ctx.event().unwrap();
    let (r, w) = mp::pipe(false).unwrap();
    let p = ctx.process(sleep_and_set, (evt.clone(), 500, w));
    p.start().unwrap();
    let server: i32 = recv_within(&r);
    assert_ne!(server as u32, std::process::id(), "not a fork-server child");
    // SAFETY: signals the fork server (a child of this process)
    assert_eq!(unsafe { libc::kill(server, sig) }, 0);
    std::thread::sleep(Duration::from_millis(1000));

    // the fork server is started again on demand
    let evt2 = ctx.event().unwrap();
    let (r2, w2) = mp::pipe(false).unwrap();
    let p2 = ctx.process(sleep_and_set, (evt2.clone(), 0, w2));
    p2.start().unwrap();
    join_ok(&p2);
    let _: i32 = recv_within(&r2);
    assert!(evt2.is_set());

    p.join_timeout(LONG).unwrap();
    assert!(!p.is_alive());
    assert!(evt.is_set(), "the first child did not finish its work");
    assert!(matches!(p.exitcode(), Some(0) | Some(255)), "{p:?}");
}

/// `_TestProcess.test_forkserver_sigint`.
#[test]
fn forkserver_sigint() {
    forkserver_death(libc::SIGINT);
}

/// `_TestProcess.test_forkserver_sigkill`.
#[test]
fn forkserver_sigkill() {
    forkserver_death(libc::SIGKILL);
}

// ------------------------------------------- test_many_processes at CPython's size

/// `_TestProcess.test_many_processes` with CPython's counts (100 children, 5 under
/// spawn), terminated right after they start.
#[test]
fn many_processes_cpython_size() {
    for_each_method(|ctx| {
        let n = if ctx.get_start_method() == StartMethod::Spawn {
            5
        } else {
            100
        };
        let procs: Vec<_> = (0..n).map(|_| ctx.process(sleep_ms, (10,))).collect();
        for p in &procs {
            p.start().unwrap();
        }
        for p in &procs {
            join_ok(p);
        }
        let procs: Vec<_> = (0..n).map(|_| ctx.process(sleep_ms, (100_000,))).collect();
        for p in &procs {
            p.start().unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
        for p in &procs {
            p.terminate().unwrap();
        }
        for p in &procs {
            p.join_timeout(LONG).unwrap();
            assert_eq!(p.exitcode(), Some(-libc::SIGTERM), "{ctx:?} {p:?}");
        }
    });
}

// ------------------------------------------------ test_error_on_stdio_flush_1/2

#[mp::task]
fn close_stdio_then(what: u8, evt: Event) {
    // SAFETY: closes this child's own standard streams
    unsafe {
        libc::close(1);
        libc::close(2);
    }
    evt.set();
    match what {
        0 => {}
        1 => println!("to a closed stdout"),
        _ => panic!("with stderr closed"),
    }
}

/// `test_error_on_stdio_flush_2`: a child that closed its standard streams still exits
/// with 0 (or 1 for a panic), whatever is written to them afterwards.
#[test]
fn broken_stdio_in_the_child() {
    for_each_method(|ctx| {
        for (what, code) in [(0u8, 0), (2, 1)] {
            let evt = ctx.event().unwrap();
            let p = ctx.process(close_stdio_then, (what, evt.clone()));
            p.start().unwrap();
            p.join_timeout(LONG).unwrap();
            assert!(evt.is_set());
            assert_eq!(p.exitcode(), Some(code), "{ctx:?} case {what}");
        }
    });
}

#[mp::task]
fn use_broken_stdio(evt: Event) {
    evt.set();
    // mp's own logging to a broken stderr must not panic the child
    log::warn!("to a broken stderr");
}

/// `test_error_on_stdio_flush_1`: the parent's standard output and error are broken
/// (pipes nobody reads: `EPIPE`) when it starts the child; the child still runs, logs
/// and exits with 0.
#[test]
fn broken_stdio_in_the_parent() {
    let old = get_logger();
    log_to_stderr(log::LevelFilter::Warn);
    for_each_method(|ctx| {
        let evt = ctx.event().unwrap();
        // SAFETY: saves fds 1 and 2, points them at a pipe without reader, restores
        // them below
        let (o, e) = unsafe {
            let o = libc::dup(1);
            let e = libc::dup(2);
            let mut fds = [0; 2];
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::close(fds[0]);
            libc::dup2(fds[1], 1);
            libc::dup2(fds[1], 2);
            libc::close(fds[1]);
            (o, e)
        };
        let p = ctx.process(use_broken_stdio, (evt.clone(),));
        let started = p.start();
        let joined = started.and_then(|()| p.join_timeout(LONG));
        // SAFETY: see above
        unsafe {
            libc::dup2(o, 1);
            libc::dup2(e, 2);
            libc::close(o);
            libc::close(e);
        }
        joined.unwrap();
        assert!(evt.is_set(), "{ctx:?}");
        assert_eq!(p.exitcode(), Some(0), "{ctx:?}");
    });
    log_to_stderr(old);
}

// -------------------------------------------------------------- test_stderr_flush

#[mp::task]
fn panic_into(file: reduction::SharedFd) {
    // SAFETY: points this child's fd 2 at the test's file
    unsafe { libc::dup2(file.as_raw_fd(), 2) };
    panic!("1/0 # MARKER");
}

/// `_TestSubclassingProcess.test_stderr_flush`: the whole panic report reaches the
/// child's standard error before it exits with 1.
#[test]
fn panic_report_reaches_stderr() {
    for_each_method(|ctx| {
        let mut file = tempfile::tempfile().unwrap();
        let fd = std::os::fd::OwnedFd::from(file.try_clone().unwrap());
        let p = ctx.process(panic_into, (reduction::SharedFd::from(fd),));
        p.start().unwrap();
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(1));
        file.rewind().unwrap();
        let mut err = String::new();
        file.read_to_string(&mut err).unwrap();
        assert!(err.contains("1/0 # MARKER"), "{ctx:?}: {err:?}");
        assert!(err.contains("panicked"), "{ctx:?}: {err:?}");
    });
}

#[mp::task]
fn abort_now() {
    std::process::abort();
}

/// Exit codes: a child ended by a signal it raised itself reports `-N` too.
#[test]
fn abort_gives_minus_sigabrt() {
    for_each_method(|ctx| {
        let p = ctx.process(abort_now, ());
        p.start().unwrap();
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(-libc::SIGABRT), "{ctx:?}");
        assert!(format!("{p:?}").contains("exitcode=-SIGABRT"), "{p:?}");
    });
}

// ------------------------------------------------------------- misuse of processes

/// `join`/`terminate`/`kill` of a process that never started, or of the current
/// process, are `InvalidState` (CPython: `AssertionError`), never a hang.
#[test]
fn joining_what_cannot_be_joined() {
    let p = Process::new(noop, ());
    assert!(matches!(p.join(), Err(Error::InvalidState(_))));
    assert!(matches!(
        p.join_timeout(Duration::ZERO),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(p.terminate(), Err(Error::InvalidState(_))));
    assert!(matches!(p.kill(), Err(Error::InvalidState(_))));
    assert!(!p.is_alive());
    let me = current_process();
    assert!(matches!(
        within(LONG, "join of the current process", move || me
            .join_timeout(Duration::from_millis(10))),
        Err(Error::InvalidState(_))
    ));
    // close of a process never started is fine; starting it afterwards is not
    let p = Process::new(noop, ());
    p.close().unwrap();
    assert!(matches!(p.start(), Err(Error::InvalidState(_))));
}

/// `test_active_children`: a child that ended is dropped from `active_children`
/// without being joined, and its exit code is there.
#[test]
fn ended_children_leave_active_children_unjoined() {
    for_each_method(|ctx| {
        let p = ctx.process(noop, ());
        p.start().unwrap();
        let s = p.sentinel().unwrap();
        assert_eq!(wait(&[&s], Some(LONG)).unwrap(), [0]);
        assert!(!active_children().contains(&p));
        assert_eq!(p.exitcode(), Some(0));
        assert!(!p.is_alive());
    });
}

/// A grandchild's name, authkey and `parent_process()` (pid, name).
type Grandchild = (String, Vec<u8>, Option<(u32, String)>);

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Family {
    me: String,
    daemon: bool,
    authkey: Vec<u8>,
    child_name: String,
    child_daemon: bool,
    child_authkey: Vec<u8>,
    grandchild: Option<Grandchild>,
}

#[mp::task]
fn grandchild_report(w: Connection) {
    let me = current_process();
    let parent = parent_process().map(|p| (p.pid().unwrap(), p.name()));
    w.send(&(me.name(), me.authkey(), parent)).unwrap();
}

#[mp::task]
fn family_report(w: Connection) {
    let me = current_process();
    let child = Process::new(noop, ());
    let mut f = Family {
        me: me.name(),
        daemon: me.daemon(),
        authkey: me.authkey(),
        child_name: child.name(),
        child_daemon: child.daemon(),
        child_authkey: child.authkey(),
        grandchild: None,
    };
    if !me.daemon() {
        let (r, w2) = mp::pipe(false).unwrap();
        let g = Process::new(grandchild_report, (w2,));
        g.start().unwrap();
        f.grandchild = Some(recv_within(&r));
        g.join_timeout(LONG).unwrap();
    }
    w.send(&f).unwrap();
}

/// Names (`Process-N:M`), the daemon flag and the authkey are inherited as in
/// CPython's `BaseProcess.__init__`; a grandchild's parent is the child.
#[test]
fn names_daemon_and_authkey_are_inherited() {
    for_each_method(|ctx| {
        for daemon in [false, true] {
            let (r, w) = mp::pipe(false).unwrap();
            let p = ctx.process(family_report, (w,)).with_daemon(daemon);
            p.set_authkey(b"family key".to_vec());
            let name = p.name();
            p.start().unwrap();
            let f: Family = recv_within(&r);
            join_ok(&p);
            assert_eq!(f.me, name);
            assert_eq!(f.daemon, daemon);
            assert_eq!(f.authkey, b"family key");
            assert_eq!(f.child_name, format!("{name}:1"), "{ctx:?}");
            assert_eq!(f.child_daemon, daemon);
            assert_eq!(f.child_authkey, b"family key");
            if !daemon {
                let (gname, gkey, gparent) = f.grandchild.unwrap();
                assert_eq!(gname, format!("{name}:2"));
                assert_eq!(gkey, b"family key");
                assert_eq!(gparent, Some((p.pid().unwrap(), name.clone())));
            }
        }
    });
}

// ------------------------------------------------------------- TestIgnoreEINTR

extern "C" fn on_usr1(_: libc::c_int) {}

/// Installs a SIGUSR1 handler without `SA_RESTART` (as Python's `signal.signal`), so
/// blocking calls fail with `EINTR`; returns the old action.
fn interrupting_usr1() -> libc::sigaction {
    // SAFETY: plain sigaction calls with initialised structs
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr1 as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGUSR1, &sa, &mut old);
        old
    }
}

const BIG: usize = 8 << 20;

#[mp::task]
fn ignore_child(conn: Connection) {
    interrupting_usr1();
    conn.send(&"ready".to_string()).unwrap();
    let x: i32 = conn.recv().unwrap();
    conn.send(&x).unwrap();
    conn.send_bytes(&vec![b'x'; BIG]).unwrap();
}

/// `TestIgnoreEINTR.test_ignore`: signals interrupting `recv` and a large `send_bytes`
/// in the child do not break the connection.
#[test]
fn ignore_eintr() {
    for_each_method(|ctx| {
        let (conn, child_conn) = mp::Pipe().unwrap();
        let p = ctx.process(ignore_child, (child_conn,)).with_daemon(true);
        p.start().unwrap();
        let pid = p.pid().unwrap() as i32;
        assert_eq!(recv_within::<String>(&conn), "ready");
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: signals our child
        unsafe { libc::kill(pid, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_millis(100));
        conn.send(&1234i32).unwrap();
        assert_eq!(recv_within::<i32>(&conn), 1234);
        std::thread::sleep(Duration::from_millis(100));
        // the child is now blocked writing the big message
        // SAFETY: as above
        unsafe { libc::kill(pid, libc::SIGUSR1) };
        ready(&conn);
        let got = conn.recv_bytes().unwrap();
        assert_eq!(got.len(), BIG, "{ctx:?}");
        assert!(got.iter().all(|&b| b == b'x'));
        join_ok(&p);
    });
}

#[mp::task]
fn ignore_listener_child(conn: Connection) {
    interrupting_usr1();
    let l = Listener::bind(None, 1, None).unwrap();
    conn.send(&l.address()).unwrap();
    let a = l.accept().unwrap();
    a.send(&"welcome".to_string()).unwrap();
}

/// `TestIgnoreEINTR.test_ignore_listener`: a signal interrupting `accept`.
#[test]
fn ignore_eintr_listener() {
    for_each_method(|ctx| {
        let (conn, child_conn) = mp::Pipe().unwrap();
        let p = ctx
            .process(ignore_listener_child, (child_conn,))
            .with_daemon(true);
        p.start().unwrap();
        let address: Address = recv_within(&conn);
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: signals our child
        unsafe { libc::kill(p.pid().unwrap() as i32, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_millis(100));
        let client = Client::connect(address, None).unwrap();
        assert_eq!(recv_within::<String>(&client), "welcome", "{ctx:?}");
        join_ok(&p);
    });
}

#[mp::task]
fn killer(pid: i32, tid: i32) {
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: signals one thread of the parent
    unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
}

/// `_TestPollEintr.test_poll_eintr`: a signal arriving while `join` waits does not end
/// the wait early nor lose the exit code.
#[test]
fn join_survives_eintr() {
    for_each_method(|ctx| {
        let old = interrupting_usr1();
        // SAFETY: gettid has no preconditions
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        let k = ctx.process(killer, (std::process::id() as i32, tid));
        k.start().unwrap();
        let p = ctx.process(sleep_ms, (1000,));
        p.start().unwrap();
        let t = Instant::now();
        let r = p.join();
        let dt = t.elapsed();
        k.join_timeout(LONG).unwrap();
        // and a timed join and a wait interrupted the same way
        let k2 = ctx.process(killer, (std::process::id() as i32, tid));
        k2.start().unwrap();
        let p2 = ctx.process(sleep_ms, (600,));
        p2.start().unwrap();
        let r2 = p2.join_timeout(LONG);
        let alive2 = p2.is_alive();
        k2.join_timeout(LONG).unwrap();
        // SAFETY: restores the old action
        unsafe { libc::sigaction(libc::SIGUSR1, &old, std::ptr::null_mut()) };
        r.unwrap();
        assert!(dt >= Duration::from_millis(900), "{ctx:?}: {dt:?}");
        assert_eq!(p.exitcode(), Some(0));
        r2.unwrap();
        assert!(!alive2, "{ctx:?}: join_timeout returned early");
        assert_eq!(p2.exitcode(), Some(0));
    });
}

#[mp::task]
fn usr1_then_send(pid: i32, tid: i32, w: Connection) {
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: signals one thread of the parent
    unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
    std::thread::sleep(Duration::from_millis(300));
    w.send(&7u8).unwrap();
}

/// A signal interrupting `poll`, `recv` and `wait` in the parent: each resumes.
#[test]
fn parent_waits_survive_eintr() {
    let ctx = get_context(Some(StartMethod::Fork)).unwrap();
    let old = interrupting_usr1();
    // SAFETY: gettid has no preconditions
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    let me = std::process::id() as i32;
    let mut results = Vec::new();
    for how in 0..3 {
        let (r, w) = mp::pipe(false).unwrap();
        let p = ctx.process(usr1_then_send, (me, tid, w));
        p.start().unwrap();
        let t = Instant::now();
        let ok = match how {
            0 => r.poll(None).map(|b| b.to_string()),
            1 => r.recv::<u8>().map(|v| v.to_string()),
            _ => wait(&[&r], None).map(|v| format!("{v:?}")),
        };
        results.push((how, ok, t.elapsed()));
        p.join_timeout(LONG).unwrap();
    }
    // SAFETY: restores the old action
    unsafe { libc::sigaction(libc::SIGUSR1, &old, std::ptr::null_mut()) };
    for (how, r, dt) in results {
        let v = r.unwrap_or_else(|e| panic!("case {how}: {e:?}"));
        assert!(
            dt >= Duration::from_millis(350),
            "case {how}: {v} after {dt:?}"
        );
        assert_eq!(v, ["true", "7", "[0]"][how]);
    }
}

// ---------------------------------------------------------------- TestTimeouts

#[mp::task]
fn timeouts_child(child: Connection, address: Address) {
    std::thread::sleep(Duration::from_secs(1));
    child.send(&123i32).unwrap();
    child.close().unwrap();
    let conn = Client::connect(address, None).unwrap();
    conn.send(&456i32).unwrap();
    conn.close().unwrap();
}

/// `TestTimeouts.test_timeout`: blocking `recv` and `accept` wait as long as it takes.
#[test]
fn blocking_calls_wait_as_long_as_it_takes() {
    for_each_method(|ctx| {
        let (parent, child) = mp::Pipe().unwrap();
        let l = Listener::bind(Some(Address::Inet("127.0.0.1".into(), 0)), 1, None).unwrap();
        let p = ctx.process(timeouts_child, (child, l.address()));
        p.start().unwrap();
        let (v, dt) = timed(|| parent.recv::<i32>().unwrap());
        assert_eq!(v, 123);
        assert!(dt >= Duration::from_millis(500), "{dt:?}");
        parent.close().unwrap();
        let conn = l.accept().unwrap();
        assert_eq!(conn.recv::<i32>().unwrap(), 456);
        conn.close().unwrap();
        l.close().unwrap();
        join_ok(&p);
    });
}

// --------------------------------------------------------- test_nested_startmethod

#[mp::task]
fn put_one(q: Queue<i32>) {
    q.put(1).unwrap();
}

#[mp::task]
fn put_two_and_nest(q: Queue<i32>) {
    q.put(2).unwrap();
    let p = Process::new(put_one, (q.clone(),));
    p.start().unwrap();
    p.join_timeout(LONG).unwrap();
}

/// `TestStartMethod.test_nested_startmethod`: a child passes its queue argument on to
/// a grandchild; once joined, both items are there (`empty()` is false at once).
#[test]
fn nested_start_method_queue() {
    for_each_method(|ctx| {
        let q = ctx.queue::<i32>().unwrap();
        let p = ctx.process(put_two_and_nest, (q.clone(),));
        p.start().unwrap();
        join_ok(&p);
        let mut got = Vec::new();
        while !q.empty() {
            got.push(q.get_timeout(LONG).unwrap());
            assert!(got.len() <= 2);
        }
        got.sort();
        assert_eq!(got, [1, 2], "{ctx:?}");
    });
}

#[mp::task]
fn report_start_method(w: Connection) {
    w.send(&(get_start_method(), start_method_if_set()))
        .unwrap();
}

/// `TestStartMethod`: `set_start_method` twice is `InvalidState` (CPython's
/// `RuntimeError`), `set_start_method_force` replaces it, and children see the method
/// their parent set.
#[test]
fn start_method_errors_and_inheritance() {
    let old = start_method_if_set();
    set_start_method_force(Some(StartMethod::Spawn));
    assert!(matches!(
        set_start_method(StartMethod::Fork),
        Err(Error::InvalidState(_))
    ));
    assert_eq!(get_start_method(), StartMethod::Spawn);
    let (r, w) = mp::pipe(false).unwrap();
    let p = Process::new(report_start_method, (w,));
    p.start().unwrap();
    assert_eq!(p.start_method(), StartMethod::Spawn);
    let got: (StartMethod, Option<StartMethod>) = recv_within(&r);
    join_ok(&p);
    set_start_method_force(old);
    assert_eq!(got, (StartMethod::Spawn, Some(StartMethod::Spawn)));
    assert!(get_all_start_methods().contains(&StartMethod::Fork));
    assert!(get_context(Some(StartMethod::Fork)).is_ok());
}

// ------------------------------------------------------ _TestConnection.test_context

/// `_TestConnection.test_context`: leaving the `with` block (Rust: `close`, or drop)
/// closes both ends; a closed end refuses `recv`, the peer of a dropped end sees EOF.
#[test]
fn connection_close_and_drop() {
    let (a, b) = mp::Pipe().unwrap();
    a.send(&1729i32).unwrap();
    assert_eq!(b.recv::<i32>().unwrap(), 1729);
    assert!(!a.closed() && !b.closed());
    a.close().unwrap();
    b.close().unwrap();
    assert!(a.closed() && b.closed());
    assert!(a.recv::<i32>().is_err());
    assert!(b.recv::<i32>().is_err());
    assert!(a.send(&1).is_err());

    // drop: the peer gets end of file, and sending to it fails without SIGPIPE
    let (a, b) = mp::Pipe().unwrap();
    a.send(&1i32).unwrap();
    drop(a);
    assert_eq!(b.recv::<i32>().unwrap(), 1);
    assert!(matches!(b.recv::<i32>(), Err(Error::Eof)));
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    assert!(b.send_bytes(&[0u8; 1 << 20]).is_err());
    let (r, w) = mp::pipe(false).unwrap();
    drop(r);
    assert!(w.send_bytes(&[0u8; 1 << 20]).is_err());
}

/// `Listener`: a port-0 bind reports the real port, `last_accepted` is `None` before
/// the first `accept` and the client's address after; a dropped listener is gone (its
/// Unix socket file removed, its port refusing connections).
#[test]
fn listener_addresses_and_drop() {
    let l = Listener::bind(Some(Address::Inet("127.0.0.1".into(), 0)), 5, None).unwrap();
    let Address::Inet(host, port) = l.address() else {
        panic!("{:?}", l.address())
    };
    assert_eq!(host, "127.0.0.1");
    assert_ne!(port, 0);
    assert_eq!(l.last_accepted(), None);
    let c = Client::connect(l.address(), None).unwrap();
    let a = l.accept().unwrap();
    match l.last_accepted() {
        Some(Address::Inet(h, p)) => {
            assert_eq!(h, "127.0.0.1");
            assert_ne!(p, 0);
            assert_ne!(p, port);
        }
        other => panic!("{other:?}"),
    }
    c.send(&5u8).unwrap();
    assert_eq!(a.recv::<u8>().unwrap(), 5);
    let addr = l.address();
    drop(l);
    assert!(Client::connect(addr, None).is_err());

    let l = Listener::bind(None, 5, None).unwrap();
    let Address::Unix(path) = l.address() else {
        panic!("the default family is AF_UNIX: {:?}", l.address())
    };
    assert!(path.exists());
    let _c = Client::connect(l.address(), None).unwrap();
    let _a = l.accept().unwrap();
    assert!(l.last_accepted().is_some());
    drop(l);
    assert!(!path.exists(), "{path:?} outlived its listener");
}

#[mp::task]
fn connect_later(address: Address, ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    let c = Client::connect(address, None).unwrap();
    c.send(&"late".to_string()).unwrap();
}

/// `TestWait`: `wait` with no timeout waits as long as it takes, a `Listener` is ready
/// once a client is waiting, an empty list is no error.
#[test]
fn wait_blocks_and_listeners() {
    for_each_method(|ctx| {
        let l = Listener::bind(None, 5, None).unwrap();
        let p = ctx.process(connect_later, (l.address(), 300));
        p.start().unwrap();
        let s = p.sentinel().unwrap();
        let (got, dt) = timed(|| wait(&[&l], None).unwrap());
        assert_eq!(got, [0]);
        assert!(dt >= Duration::from_millis(200), "{dt:?}");
        let c = l.accept().unwrap();
        assert_eq!(recv_within::<String>(&c), "late");
        join_ok(&p);
        assert_eq!(wait(&[&l, &s], None).unwrap(), [1]);
    });
    let (r, dt) = timed(|| wait(&[], Some(Duration::from_millis(50))));
    assert!(r.unwrap().is_empty());
    assert!(dt < Duration::from_secs(5));
}

// ------------------------------------------------------------------ queues

/// `Queue(maxsize=0)` is unbounded in CPython (`maxsize <= 0` means no limit).
#[test]
fn queue_maxsize_zero_is_unbounded() {
    let q: Queue<u32> = Queue::with_maxsize(0).unwrap();
    for i in 0..1000 {
        q.try_put(i).unwrap();
    }
    assert!(!q.full());
    for i in 0..1000 {
        assert_eq!(q.get_timeout(LONG).unwrap(), i);
    }
    let q: Queue<u32> = Queue::new().unwrap();
    assert!(!q.full());
}

#[mp::task]
fn put_lots_and_cancel(q: Queue<Vec<u8>>) {
    for _ in 0..64 {
        q.put(vec![1u8; 64 << 10]).unwrap();
    }
    q.cancel_join_thread();
}

/// `cancel_join_thread`: a child that calls it exits without waiting for its items to
/// be read (those it had not flushed may be lost).
#[test]
fn cancel_join_thread_lets_a_child_exit() {
    for_each_method(|ctx| {
        let q = ctx.queue::<Vec<u8>>().unwrap();
        let p = ctx.process(put_lots_and_cancel, (q.clone(),));
        p.start().unwrap();
        join_ok(&p);
        // whatever arrived is whole
        while let Ok(v) = q.get_timeout(Duration::from_millis(200)) {
            assert_eq!(v.len(), 64 << 10);
        }
    });
}

#[mp::task]
fn get_with_timeout_in_child(q: Queue<i32>, w: Connection) {
    let t = Instant::now();
    let r = q.get_timeout(Duration::from_millis(300));
    w.send(&(
        matches!(r, Err(Error::Empty)),
        t.elapsed().as_millis() as u64,
    ))
    .unwrap();
    let v = q.get_timeout(LONG).unwrap();
    w.send(&(v == 9, 0u64)).unwrap();
}

/// `_TestQueue.test_timeout` in a child: `get_timeout` there waits its full time, and
/// a later item still arrives.
#[test]
fn queue_get_timeout_in_a_child() {
    for_each_method(|ctx| {
        let q = ctx.queue::<i32>().unwrap();
        let (r, w) = mp::pipe(false).unwrap();
        let p = ctx.process(get_with_timeout_in_child, (q.clone(), w));
        p.start().unwrap();
        let (empty, ms): (bool, u64) = recv_within(&r);
        assert!(empty);
        assert!((250..5000).contains(&ms), "{ms}");
        q.put(9).unwrap();
        let (nine, _): (bool, u64) = recv_within(&r);
        assert!(nine);
        join_ok(&p);
    });
}

#[mp::task]
fn simple_get_put(q: SimpleQueue<String>, out: SimpleQueue<String>) {
    let s = q.get().unwrap();
    out.put(s.to_uppercase()).unwrap();
}

/// `TestSimpleQueue` with a child and a close afterwards.
#[test]
fn simple_queue_with_a_child_then_close() {
    for_each_method(|ctx| {
        let q = ctx.simple_queue::<String>().unwrap();
        let out = ctx.simple_queue::<String>().unwrap();
        let p = ctx.process(simple_get_put, (q.clone(), out.clone()));
        p.start().unwrap();
        q.put("hi".into()).unwrap();
        let got = within(LONG, "SimpleQueue::get", {
            let out = out.clone();
            move || out.get()
        });
        assert_eq!(got.unwrap(), "HI");
        join_ok(&p);
        assert!(out.empty());
        out.close().unwrap();
        assert!(out.get().is_err());
    });
}

// ------------------------------------------------------------------ _TestLogging

#[mp::task]
fn log_into(file: reduction::SharedFd) -> String {
    // SAFETY: points this child's fd 2 at the test's file
    unsafe { libc::dup2(file.as_raw_fd(), 2) };
    log::warn!("from the child");
    log::debug!("not shown");
    get_logger().to_string()
}

/// `_TestLogging`: a child logs at the level set with `log_to_stderr`, formatted
/// `[LEVEL/ProcessName] message` with Python's level names, and reports its end as
/// CPython's `_bootstrap` does at INFO.
#[test]
fn child_logs_with_its_name() {
    let old = get_logger();
    log_to_stderr(log::LevelFilter::Info);
    for_each_method(|ctx| {
        let mut file = tempfile::tempfile().unwrap();
        let fd = std::os::fd::OwnedFd::from(file.try_clone().unwrap());
        let h = ctx
            .spawn(log_into, (reduction::SharedFd::from(fd),))
            .unwrap();
        let name = h.process().name();
        assert_eq!(h.join_timeout(LONG).unwrap(), "INFO");
        file.rewind().unwrap();
        let mut err = String::new();
        file.read_to_string(&mut err).unwrap();
        for line in [
            format!("[WARNING/{name}] from the child\n"),
            format!("[INFO/{name}] process shutting down\n"),
            format!("[INFO/{name}] process exiting with exitcode 0\n"),
        ] {
            assert!(err.contains(&line), "{ctx:?}: {line:?} not in {err:?}");
        }
        assert!(!err.contains("not shown"), "{err:?}");
    });
    log_to_stderr(old);
}

// ------------------------------------------------------------------ JoinHandle

#[mp::task]
fn seven_after(ms: u64) -> i32 {
    std::thread::sleep(Duration::from_millis(ms));
    7
}

/// `mp::spawn`: a timed-out join is `Timeout`, within its bound.
#[test]
fn join_handle_timeout() {
    for_each_method(|ctx| {
        let h = ctx.spawn(seven_after, (5000,)).unwrap();
        let p = h.process().clone();
        let (r, dt) = timed(|| h.join_timeout(Duration::from_millis(100)));
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        assert!(dt < Duration::from_secs(3), "{dt:?}");
        p.kill().unwrap();
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(-libc::SIGKILL));
        let h = ctx.spawn(seven_after, (0,)).unwrap();
        assert_eq!(h.join_timeout(LONG).unwrap(), 7);
    });
}

// ------------------------------------------------------------------ threads and joins

/// Two threads joining the same child (CPython allows it: `Popen.wait` is guarded by
/// the `waitpid` result) both return once it ended, with its exit code.
#[test]
fn concurrent_joins_of_one_child() {
    for_each_method(|ctx| {
        let p = ctx.process(sleep_ms, (300,));
        p.start().unwrap();
        let joiners: Vec<_> = (0..3)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || {
                    if i == 0 {
                        p.join().map(|()| p.exitcode())
                    } else {
                        p.join_timeout(LONG).map(|()| p.exitcode())
                    }
                })
            })
            .collect();
        for j in joiners {
            let r = within(LONG, "a concurrent join", move || j.join().unwrap());
            assert_eq!(r.unwrap(), Some(0), "{ctx:?}");
        }
        assert!(!p.is_alive());
    });
}

/// A process started on one thread is joined, polled and signalled from another.
#[test]
fn start_on_one_thread_join_on_another() {
    for_each_method(|ctx| {
        let p = std::thread::spawn(move || {
            let p = ctx.process(sleep_ms, (60_000,));
            p.start().unwrap();
            p
        })
        .join()
        .unwrap();
        assert!(p.is_alive());
        let q = p.clone();
        std::thread::spawn(move || q.terminate().unwrap())
            .join()
            .unwrap();
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(-libc::SIGTERM));
    });
}

#[mp::task]
fn report_active_children(w: Connection) {
    let before: Vec<String> = active_children().iter().map(Process::name).collect();
    let p = Process::new(sleep_ms, (100,));
    p.start().unwrap();
    let during: Vec<String> = active_children().iter().map(Process::name).collect();
    p.join_timeout(LONG).unwrap();
    let after = active_children().len();
    w.send(&(before, during, after)).unwrap();
}

/// `active_children()` in a child lists only that child's own children (a forked
/// child does not inherit its parent's).
#[test]
fn active_children_in_a_child_are_its_own() {
    for_each_method(|ctx| {
        let other = ctx.process(sleep_ms, (60_000,));
        other.start().unwrap();
        let (r, w) = mp::pipe(false).unwrap();
        let p = ctx.process(report_active_children, (w,));
        let name = p.name();
        p.start().unwrap();
        let (before, during, after): (Vec<String>, Vec<String>, usize) = recv_within(&r);
        join_ok(&p);
        other.kill().unwrap();
        other.join_timeout(LONG).unwrap();
        assert!(before.is_empty(), "{ctx:?}: {before:?}");
        assert_eq!(during, [format!("{name}:1")], "{ctx:?}");
        assert_eq!(after, 0);
    });
}

/// `_TestQueue`: right after `put` returns in the same process, the queue is not empty
/// and `qsize` counts the item (CPython's feeder thread makes `empty()` briefly lie;
/// a porter's `put` then `assert not q.empty()` should hold here).
#[test]
fn queue_not_empty_right_after_put() {
    let q: Queue<i32> = Queue::new().unwrap();
    q.put(1).unwrap();
    assert!(!q.empty());
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.try_get().unwrap(), 1);
    assert!(q.empty());
    let q: JoinableQueue<i32> = JoinableQueue::new().unwrap();
    q.put(1).unwrap();
    assert!(!q.empty());
    let q: SimpleQueue<i32> = SimpleQueue::new().unwrap();
    q.put(1).unwrap();
    assert!(!q.empty());
}

/// `TestStartMethod.test_set_get`: `get_start_method()` fixes the default, so a later
/// `set_start_method` is refused (CPython: `RuntimeError('context has already been
/// set')`) until forced.
#[test]
fn get_start_method_fixes_the_default() {
    let old = start_method_if_set();
    set_start_method_force(None);
    assert_eq!(start_method_if_set(), None);
    assert_eq!(get_start_method(), StartMethod::ForkServer);
    assert_eq!(start_method_if_set(), Some(StartMethod::ForkServer));
    let refused = set_start_method(StartMethod::Spawn);
    set_start_method_force(old);
    assert!(
        matches!(refused, Err(Error::InvalidState(_))),
        "{refused:?}"
    );
}

/// Dropping the last handle of a running child neither kills nor forgets it: it is
/// still in `active_children()` (CPython's `_children` keeps the object alive).
#[test]
fn a_dropped_handle_stays_in_active_children() {
    for_each_method(|ctx| {
        let p = ctx.process(sleep_ms, (60_000,)).with_name("dropped-handle");
        p.start().unwrap();
        let pid = p.pid();
        drop(p);
        let found: Vec<Process> = active_children()
            .into_iter()
            .filter(|c| c.name() == "dropped-handle")
            .collect();
        assert_eq!(found.len(), 1, "{ctx:?}");
        let p = &found[0];
        assert_eq!(p.pid(), pid);
        assert!(p.is_alive());
        p.kill().unwrap();
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(-libc::SIGKILL));
    });
}

#[mp::task]
fn put_three(q: Queue<u8>) {
    for i in 0..3 {
        q.put(i).unwrap();
    }
}

/// `_TestQueue.test_qsize` across processes: items a joined child put are counted.
#[test]
fn qsize_counts_what_a_child_put() {
    for_each_method(|ctx| {
        let q = ctx.queue::<u8>().unwrap();
        let p = ctx.process(put_three, (q.clone(),));
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(q.qsize(), 3, "{ctx:?}");
        assert!(!q.empty());
        for i in 0..3 {
            assert_eq!(q.get_timeout(LONG).unwrap(), i);
        }
        assert_eq!(q.qsize(), 0);
    });
}

#[mp::task]
fn done_twice(q: JoinableQueue<u8>, w: Connection) {
    let v = q.get_timeout(LONG).unwrap();
    let first = q.task_done();
    let second = q.task_done();
    w.send(&(
        v,
        first.is_ok(),
        matches!(second, Err(Error::InvalidState(_))),
    ))
    .unwrap();
}

/// `JoinableQueue.task_done` in a child: once per item; the extra call is refused
/// there too (CPython: `ValueError('task_done() called too many times')`), and the
/// parent's `join` returns.
#[test]
fn joinable_queue_task_done_in_a_child() {
    for_each_method(|ctx| {
        let q = ctx.joinable_queue::<u8>().unwrap();
        let (r, w) = mp::pipe(false).unwrap();
        let p = ctx.process(done_twice, (q.clone(), w));
        p.start().unwrap();
        q.put(5).unwrap();
        let got: (u8, bool, bool) = recv_within(&r);
        assert_eq!(got, (5, true, true), "{ctx:?}");
        assert!(q.join_timeout(LONG));
        join_ok(&p);
    });
}

/// The docs' logging example: `logger.warning('doomed')` prints
/// `[WARNING/MainProcess] doomed` to standard error.
#[test]
fn docs_logging_example_format() {
    let old = get_logger();
    log_to_stderr(log::LevelFilter::Info);
    let mut file = tempfile::tempfile().unwrap();
    // SAFETY: points fd 2 at the file for the duration of one log call, then back
    let saved = unsafe {
        let saved = libc::dup(2);
        libc::dup2(file.as_raw_fd(), 2);
        saved
    };
    log::warn!("doomed");
    // SAFETY: see above
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    log_to_stderr(old);
    file.rewind().unwrap();
    let mut err = String::new();
    file.read_to_string(&mut err).unwrap();
    assert_eq!(err, "[WARNING/MainProcess] doomed\n");
}

/// The docs' `terminate` example: shortly after `terminate()`, without a `join`,
/// `is_alive()` is false and the exit code is `-SIGTERM`; `Debug` shows each state.
#[test]
fn docs_terminate_example() {
    for_each_method(|ctx| {
        let p = ctx.process(sleep_ms, (1_000_000,));
        assert!(format!("{p:?}").contains(" initial>"), "{p:?}");
        assert!(!p.is_alive());
        p.start().unwrap();
        assert!(format!("{p:?}").contains(" started>"), "{p:?}");
        assert!(p.is_alive());
        p.terminate().unwrap();
        let t = Instant::now();
        while p.is_alive() {
            assert!(t.elapsed() < LONG, "still alive after terminate");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            format!("{p:?}").contains(" stopped exitcode=-SIGTERM>"),
            "{p:?}"
        );
        assert_eq!(p.exitcode(), Some(-libc::SIGTERM));
    });
}

/// A huge timeout (`Duration::MAX`, a porter's "forever") behaves as no timeout: no
/// overflow panic, the call returns once ready.
#[test]
fn huge_timeouts_do_not_overflow() {
    for_each_method(|ctx| {
        let p = ctx.process(sleep_ms, (50,));
        p.start().unwrap();
        within(LONG, "join_timeout(MAX)", {
            let p = p.clone();
            move || p.join_timeout(Duration::MAX)
        })
        .unwrap();
        assert_eq!(p.exitcode(), Some(0));
    });
    let (a, b) = mp::Pipe().unwrap();
    b.send(&1u8).unwrap();
    let r = within(LONG, "poll(MAX)", move || {
        let polled = a.poll(Some(Duration::MAX));
        let waited = wait(&[&a], Some(Duration::MAX));
        (polled, waited)
    });
    assert!(r.0.unwrap());
    assert_eq!(r.1.unwrap(), [0]);
    let h = spawn(seven_after, (10,)).unwrap();
    let r = within(LONG, "JoinHandle::join_timeout(MAX)", move || {
        h.join_timeout(Duration::MAX)
    });
    assert_eq!(r.unwrap(), 7);
}

/// The same for the queue and synchronization types (reported separately: their code
/// belongs to other modules).
#[test]
fn huge_timeouts_queue_and_sync() {
    let q: Queue<u8> = Queue::new().unwrap();
    q.put(1).unwrap();
    let r = within(LONG, "Queue::get_timeout(MAX)", move || {
        let g = q.get_timeout(Duration::MAX);
        let p = q.put_timeout(2, Duration::MAX);
        (g, p)
    });
    assert_eq!(r.0.unwrap(), 1);
    r.1.unwrap();
    let e = Event::new().unwrap();
    e.set();
    assert!(within(LONG, "Event::wait(MAX)", move || e
        .wait(Some(Duration::MAX))));
    let l = Lock::new().unwrap();
    assert!(within(LONG, "Lock::acquire_timeout(MAX)", move || l
        .acquire_timeout(Duration::MAX)));
}

/// `Listener(('localhost', 0))` and a zero backlog (CPython passes it to `listen`); a
/// `"host:port"` string with a host name reaches it.
#[test]
fn listener_host_names_and_zero_backlog() {
    let l = Listener::bind(Some(Address::Inet("localhost".into(), 0)), 0, None).unwrap();
    let Address::Inet(_, port) = l.address() else {
        panic!("{:?}", l.address())
    };
    assert_ne!(port, 0);
    let addr: Address = format!("localhost:{port}").parse().unwrap();
    let c = within(LONG, "connect", move || Client::connect(addr, None)).unwrap();
    let a = l.accept().unwrap();
    c.send(&"hi".to_string()).unwrap();
    assert_eq!(recv_within::<String>(&a), "hi");
    let l = Listener::bind(None, 0, Some(b"")).unwrap();
    let addr = l.address();
    let t = std::thread::spawn(move || Client::connect(addr, Some(b"")));
    let a = l.accept().unwrap();
    let c = t.join().unwrap().unwrap();
    a.send(&1u8).unwrap();
    assert_eq!(recv_within::<u8>(&c), 1);
}

/// `Queue.join_thread()` before `close()` is misuse (CPython asserts `_closed`): an
/// error or an immediate return, never a hang; after `cancel_join_thread()` it
/// returns at once.
#[test]
fn join_thread_before_close_does_not_hang() {
    let q: Queue<u8> = Queue::new().unwrap();
    q.put(1).unwrap();
    let r = within(Duration::from_secs(10), "join_thread before close", {
        let q = q.clone();
        move || q.join_thread()
    });
    assert!(matches!(r, Ok(()) | Err(Error::InvalidState(_))), "{r:?}");
    assert_eq!(q.get_timeout(LONG).unwrap(), 1);
    let q: Queue<u8> = Queue::new().unwrap();
    q.put(1).unwrap();
    q.cancel_join_thread();
    q.close().unwrap();
    within(
        Duration::from_secs(10),
        "join_thread after cancel",
        move || q.join_thread(),
    )
    .unwrap();
}

#[mp::task]
fn echo_from(r: Connection, w: Connection) {
    let v: String = r.recv().unwrap();
    w.send(&v).unwrap();
}

/// A program that closed its stdin may see fd 0 reused by a pipe end; a child handed
/// that end keeps it (only a real stdin is replaced by `/dev/null`).
#[test]
fn a_connection_on_fd_0_survives_in_the_child() {
    for_each_method(|ctx| {
        // the fork server (started on first use) must not start with fd 0 closed
        let warm = ctx.process(noop, ());
        warm.start().unwrap();
        join_ok(&warm);
        // SAFETY: saves and closes fd 0; restored below
        let saved = unsafe {
            let saved = libc::dup(0);
            libc::close(0);
            saved
        };
        let made = mp::pipe(false);
        let (r2, w2) = mp::pipe(false).unwrap();
        let (r, w) = made.unwrap();
        let on_zero = r.fileno().unwrap() == 0;
        // under fork, a closure's captured end stays on fd 0 in the child
        let p = if ctx.get_start_method() == StartMethod::Fork {
            Process::from_closure(move || echo_from(r, w2)).with_context(ctx)
        } else {
            ctx.process(echo_from, (r, w2))
        };
        let started = p.start();
        let sent = w.send(&"through fd 0".to_string());
        let got = r2.poll(Some(LONG)).and_then(|_| r2.recv::<String>());
        let joined = p.join_timeout(LONG);
        let code = p.exitcode();
        drop(p);
        // SAFETY: puts the saved stdin back on fd 0 if nothing of mp's holds it now
        // (dup2 over a live descriptor of the library would break it)
        unsafe {
            if libc::fcntl(0, libc::F_GETFD) < 0 {
                libc::dup2(saved, 0);
            }
            libc::close(saved);
        }
        started.unwrap();
        sent.unwrap();
        assert_eq!(got.unwrap(), "through fd 0", "{ctx:?} (on fd 0: {on_zero})");
        joined.unwrap();
        assert_eq!(code, Some(0), "{ctx:?} (on fd 0: {on_zero})");
    });
}

/// The same for pools, `mp::dummy` and manager proxies.
#[test]
fn huge_timeouts_pool_dummy_and_managers() {
    let pool = mp::Pool::new(Some(1)).unwrap();
    let r = pool.apply_async(seven_after, (10,));
    let r = within(LONG, "AsyncResult::get_timeout(MAX)", move || {
        let waited = r.wait_timeout(Duration::MAX);
        (waited, r.get_timeout(Duration::MAX))
    });
    assert!(r.0);
    assert_eq!(r.1.unwrap(), 7);
    let mut it = pool.imap(seven_after, [1u64]);
    let got = within(LONG, "imap next_timeout(MAX)", move || {
        it.next_timeout(Duration::MAX)
    });
    assert_eq!(got.unwrap().unwrap(), 7);
    pool.terminate().unwrap();

    let q: mp::dummy::Queue<u8> = mp::dummy::Queue::new().unwrap();
    q.put(1).unwrap();
    let r = within(LONG, "dummy Queue get_timeout(MAX)", move || {
        (
            q.get_timeout(Duration::MAX),
            q.put_timeout(2, Duration::MAX),
        )
    });
    assert_eq!(r.0.unwrap(), 1);
    r.1.unwrap();

    let m = mp::Manager::new().unwrap();
    let c = m.condition(None).unwrap();
    let r = within(LONG, "ConditionProxy::wait_for(MAX)", move || {
        c.acquire().unwrap();
        let r = c.wait_for(|| true, Some(Duration::MAX));
        c.release().unwrap();
        r
    });
    assert!(r.unwrap());
    m.shutdown().unwrap();
}
