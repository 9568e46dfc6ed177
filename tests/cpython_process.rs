//! CPython's `_TestProcess`, `_TestSubclassingProcess`, `TestStartMethod`, `_TestLogging`
//! and the process parts of `MiscTestCase`, ported against API.md's names, under every
//! start method.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::connection::{wait, Connection};
use mp::{Error, Process, StartMethod};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

fn recv_within<T: DeserializeOwned>(c: &Connection) -> T {
    assert!(c.poll(Some(LONG)).unwrap(), "child did not report in time");
    c.recv().unwrap()
}

fn join_ok(p: &Process) {
    p.join_timeout(LONG).unwrap();
    assert!(!p.is_alive(), "child did not end in time");
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Info {
    name: String,
    pid: u32,
    daemon: bool,
    authkey: Vec<u8>,
    args: (i32, i32, String),
    parent: Option<(u32, String)>,
}

#[mp::task]
fn report(conn: Connection, a: i32, b: i32, s: String) {
    let me = mp::current_process();
    let parent = mp::parent_process().map(|p| (p.pid().unwrap(), p.name()));
    conn.send(&Info {
        name: me.name(),
        pid: me.pid().unwrap(),
        daemon: me.daemon(),
        authkey: me.authkey(),
        args: (a, b, s),
        parent,
    })
    .unwrap();
}

#[mp::task]
fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[mp::task]
fn noop() {}

#[mp::task]
fn exit_with(code: i32) {
    std::process::exit(code)
}

#[mp::task]
fn panics() {
    panic!("on purpose")
}

/// `test_current`.
#[test]
fn current() {
    let me = mp::current_process();
    assert_eq!(me.name(), "MainProcess");
    assert!(me.is_alive());
    assert!(!me.daemon());
    assert_eq!(me.pid(), Some(std::process::id()));
    assert_eq!(me.ident(), Some(std::process::id()));
    assert_eq!(me.exitcode(), None);
    assert_eq!(me.authkey().len(), 32);
    assert!(mp::parent_process().is_none());
    assert!(format!("{me:?}").contains("name='MainProcess'"));
}

/// `test_process`, `test_args_argument`, `test_parent_process_attributes`.
#[test]
fn process_lifecycle() {
    for_each_method(|ctx| {
        let (r, w) = mp::pipe(false).unwrap();
        let p = ctx
            .process(report, (w, 1, 2, "hello".to_string()))
            .with_name("SomeProcess");
        p.set_daemon(true).unwrap();
        let current = mp::current_process();
        assert_eq!(p.authkey(), current.authkey());
        assert!(!p.is_alive());
        assert!(p.daemon());
        assert!(!mp::active_children().contains(&p));
        assert_eq!(p.exitcode(), None);
        assert_eq!(p.pid(), None);
        assert!(p.sentinel().is_err());

        p.start().unwrap();
        assert!(p.set_daemon(false).is_err(), "daemon is fixed after start");
        assert!(p.start().is_err(), "start twice");
        assert!(p.pid().is_some());
        let info: Info = recv_within(&r);
        assert_eq!(info.name, "SomeProcess");
        assert_eq!(Some(info.pid), p.pid());
        assert!(info.daemon);
        assert_eq!(info.authkey, current.authkey());
        assert_eq!(info.args, (1, 2, "hello".to_string()));
        assert_eq!(
            info.parent,
            Some((std::process::id(), "MainProcess".to_string()))
        );
        join_ok(&p);
        assert_eq!(p.exitcode(), Some(0), "{ctx:?}");
        assert!(!p.is_alive());
        assert!(!mp::active_children().contains(&p));
    });
}

/// `test_process` (the "alive and in active_children while running" half).
#[test]
fn running_process_is_alive_and_active() {
    for_each_method(|ctx| {
        let p = ctx.process(sleep_ms, (20_000,));
        p.start().unwrap();
        assert!(p.is_alive());
        assert_eq!(p.exitcode(), None);
        assert!(mp::active_children().contains(&p));
        p.terminate().unwrap();
        join_ok(&p);
        assert!(!mp::active_children().contains(&p));
    });
}

/// `test_daemon_argument`: the default comes from the current process.
#[test]
fn daemon_argument() {
    let p = Process::new(noop, ());
    assert!(!p.daemon());
    let p = Process::new(noop, ()).with_daemon(true);
    assert!(p.daemon());
}

/// `test_terminate` / `test_kill`.
#[test]
fn terminate_and_kill() {
    for_each_method(|ctx| {
        for (sig, kill) in [(libc::SIGTERM, false), (libc::SIGKILL, true)] {
            let p = ctx.process(sleep_ms, (60_000,)).with_daemon(true);
            p.start().unwrap();
            assert!(p.is_alive());
            assert!(mp::active_children().contains(&p));
            assert_eq!(p.exitcode(), None);

            let t = Instant::now();
            p.join_timeout(Duration::ZERO).unwrap();
            assert!(t.elapsed() < Duration::from_secs(1));
            assert!(p.is_alive());

            let t = Instant::now();
            p.join_timeout(Duration::from_millis(100)).unwrap();
            assert!(t.elapsed() >= Duration::from_millis(90));
            assert!(p.is_alive());

            if kill {
                p.kill().unwrap();
            } else {
                p.terminate().unwrap();
            }
            join_ok(&p);
            assert!(!mp::active_children().contains(&p));
            assert_eq!(p.exitcode(), Some(-sig), "{ctx:?}");
            // signalling an ended process is fine
            p.terminate().unwrap();
            p.kill().unwrap();
        }
    });
}

/// `test_cpu_count`.
#[test]
fn cpu_count() {
    assert!(mp::cpu_count() >= 1);
    assert!(mp::process_cpu_count() >= 1);
    assert!(mp::process_cpu_count() <= mp::cpu_count());
}

/// `test_active_children`.
#[test]
fn active_children() {
    for_each_method(|ctx| {
        let p = ctx.process(sleep_ms, (20_000,));
        assert!(!mp::active_children().contains(&p));
        p.start().unwrap();
        assert!(mp::active_children().contains(&p));
        p.kill().unwrap();
        join_ok(&p);
        assert!(!mp::active_children().contains(&p));
    });
}

#[mp::task]
fn recursion(w: Connection, id: Vec<u32>) {
    w.send(&id).unwrap();
    if id.len() < 2 {
        for i in 0..2 {
            let mut next = id.clone();
            next.push(i);
            let p = Process::new(recursion, (w.clone(), next));
            p.start().unwrap();
            p.join_timeout(LONG).unwrap();
        }
    }
}

/// `test_recursion`: children start children, in order.
#[test]
fn recursion_tree() {
    for_each_method(|ctx| {
        let (r, w) = mp::pipe(false).unwrap();
        let p = ctx.process(recursion, (w, Vec::new()));
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(p.exitcode(), Some(0));
        let mut got: Vec<Vec<u32>> = Vec::new();
        // every writer is gone once the tree ended: read up to the end of file
        loop {
            assert!(r.poll(Some(LONG)).unwrap());
            match r.recv() {
                Ok(id) => got.push(id),
                Err(Error::Eof) => break,
                Err(e) => panic!("{e}"),
            }
        }
        let want: Vec<Vec<u32>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![0, 1],
            vec![1],
            vec![1, 0],
            vec![1, 1],
        ];
        assert_eq!(got, want, "{ctx:?}");
    });
}

#[mp::task]
fn wait_for_event(r: Connection) {
    let _ = r.poll(Some(LONG));
}

/// `test_sentinel`.
#[test]
fn sentinel() {
    for_each_method(|ctx| {
        let (r, w) = mp::Pipe().unwrap();
        let p = ctx.process(wait_for_event, (r,));
        assert!(p.sentinel().is_err());
        p.start().unwrap();
        let s = p.sentinel().unwrap();
        assert!(wait(&[&s], Some(Duration::ZERO)).unwrap().is_empty());
        assert!(wait(&[&p], Some(Duration::ZERO)).unwrap().is_empty());
        w.send(&()).unwrap();
        join_ok(&p);
        assert_eq!(wait(&[&s], Some(Duration::from_secs(1))).unwrap(), [0]);
        assert_eq!(wait(&[&p], Some(Duration::from_secs(1))).unwrap(), [0]);
    });
}

/// `test_close`.
#[test]
fn close() {
    for_each_method(|ctx| {
        let (r, w) = mp::Pipe().unwrap();
        let p = ctx.process(wait_for_event, (r,));
        p.start().unwrap();
        assert!(p.is_alive());
        assert!(matches!(p.close(), Err(Error::InvalidState(_))));
        w.send(&()).unwrap();
        join_ok(&p);
        assert_eq!(p.exitcode(), Some(0));
        p.close().unwrap();
        assert!(p.join().is_err());
        assert!(p.join_timeout(Duration::ZERO).is_err());
        assert!(p.terminate().is_err());
        assert!(p.kill().is_err());
        assert!(p.sentinel().is_err());
        assert!(!p.is_alive());
        assert_eq!(p.pid(), None);
        assert_eq!(p.exitcode(), None);
        p.close().unwrap(); // twice is fine
        assert!(format!("{p:?}").contains("closed"));
    });
}

/// `test_many_processes`.
#[test]
fn many_processes() {
    for_each_method(|ctx| {
        let n = 12;
        let procs: Vec<_> = (0..n).map(|_| ctx.process(sleep_ms, (10,))).collect();
        for p in &procs {
            p.start().unwrap();
        }
        for p in &procs {
            join_ok(p);
            assert_eq!(p.exitcode(), Some(0));
        }
        let procs: Vec<_> = (0..n).map(|_| ctx.process(sleep_ms, (60_000,))).collect();
        for p in &procs {
            p.start().unwrap();
        }
        for p in &procs {
            p.terminate().unwrap();
        }
        for p in &procs {
            join_ok(p);
            // a child terminated before it ran Rust code still reports SIGTERM
            assert_eq!(p.exitcode(), Some(-libc::SIGTERM), "{ctx:?}");
        }
    });
}

/// `test_sys_exit` / exit codes.
#[test]
fn exit_codes() {
    for_each_method(|ctx| {
        for code in [0, 1, 8, 255] {
            let p = ctx.process(exit_with, (code,));
            p.start().unwrap();
            join_ok(&p);
            assert_eq!(p.exitcode(), Some(code));
        }
        let p = ctx.process(panics, ());
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(p.exitcode(), Some(1));
    });
}

/// `test_repr`-like: Debug follows CPython's `repr`.
#[test]
fn debug_repr() {
    let ctx = mp::get_context(Some(StartMethod::Fork)).unwrap();
    let p = ctx.process(sleep_ms, (60_000,)).with_name("worker");
    let s = format!("{p:?}");
    assert!(s.starts_with("<Process name='worker'"), "{s}");
    assert!(s.contains("initial"), "{s}");
    p.set_daemon(true).unwrap();
    p.start().unwrap();
    let s = format!("{p:?}");
    assert!(s.contains("started daemon"), "{s}");
    assert!(s.contains(&format!("pid={}", p.pid().unwrap())), "{s}");
    assert!(s.contains(&format!("parent={}", std::process::id())), "{s}");
    p.terminate().unwrap();
    join_ok(&p);
    let s = format!("{p:?}");
    assert!(s.contains("stopped exitcode=-SIGTERM daemon>"), "{s}");
}

#[mp::task]
fn create_grandchild(w: Connection) {
    let p = Process::new(report_parent_status, (w,));
    p.start().unwrap();
    std::thread::sleep(Duration::from_secs(300));
}

#[mp::task]
fn report_parent_status(w: Connection) {
    let parent = mp::parent_process().expect("a parent");
    let status = |alive: bool| if alive { "alive" } else { "not alive" }.to_string();
    w.send(&status(parent.is_alive())).unwrap();
    parent.join_timeout(LONG).unwrap();
    w.send(&status(parent.is_alive())).unwrap();
}

/// `test_parent_process`: a grandchild notices its parent's death.
#[test]
fn parent_process_death_is_seen() {
    for_each_method(|ctx| {
        let (r, w) = mp::pipe(false).unwrap();
        let p = ctx.process(create_grandchild, (w,));
        p.start().unwrap();
        assert_eq!(recv_within::<String>(&r), "alive");
        p.terminate().unwrap();
        join_ok(&p);
        assert_eq!(recv_within::<String>(&r), "not alive", "{ctx:?}");
    });
}

#[derive(Serialize, Deserialize)]
struct UpperCaser {
    child: Connection,
}

#[mp::task]
impl mp::Run for UpperCaser {
    fn run(self) {
        while let Ok(s) = self.child.recv::<Option<String>>() {
            match s {
                Some(s) => self.child.send(&s.to_uppercase()).unwrap(),
                None => break,
            }
        }
    }
}

/// `_TestSubclassingProcess.test_subclassing`.
#[test]
fn subclassing() {
    for_each_method(|ctx| {
        let (parent, child) = mp::Pipe().unwrap();
        let p = Process::from_run(UpperCaser { child })
            .with_context(ctx)
            .with_daemon(true);
        p.start().unwrap();
        parent.send(&Some("hello".to_string())).unwrap();
        assert_eq!(recv_within::<String>(&parent), "HELLO");
        parent.send(&None::<String>).unwrap();
        join_ok(&p);
        assert_eq!(p.exitcode(), Some(0));
    });
}

/// `TestStartMethod.test_context`, `test_get_all`, names.
#[test]
fn start_method_contexts() {
    let all = mp::get_all_start_methods();
    assert_eq!(all[0], StartMethod::ForkServer);
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        assert!(all.contains(&m));
        assert_eq!(m.to_string().parse::<StartMethod>().unwrap(), m);
        let ctx = mp::get_context(Some(m)).unwrap();
        assert_eq!(ctx.get_start_method(), m);
        let p = ctx.process(noop, ());
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(p.exitcode(), Some(0));
    }
    assert_eq!("fork".parse::<StartMethod>().unwrap(), StartMethod::Fork);
    assert_eq!("spawn".parse::<StartMethod>().unwrap(), StartMethod::Spawn);
    assert_eq!(
        "forkserver".parse::<StartMethod>().unwrap(),
        StartMethod::ForkServer
    );
    assert!("nonsense".parse::<StartMethod>().is_err());
}

/// `TestStartMethod.test_set_get` (the only test here touching the global method).
#[test]
fn set_get_start_method() {
    let old = mp::start_method_if_set();
    mp::set_start_method_force(None);
    assert_eq!(mp::start_method_if_set(), None);
    for m in mp::get_all_start_methods() {
        mp::set_start_method_force(None);
        mp::set_start_method(m).unwrap();
        assert_eq!(mp::get_start_method(), m);
        assert_eq!(mp::start_method_if_set(), Some(m));
        assert!(mp::set_start_method(m).is_err(), "already set");
        let ctx = mp::get_context(None).unwrap();
        assert_eq!(ctx.get_start_method(), m);
    }
    mp::set_start_method_force(None);
    assert_eq!(mp::get_start_method(), StartMethod::ForkServer);
    mp::set_start_method_force(old);
}

#[mp::task]
fn child_log_level() -> String {
    mp::get_logger().to_string()
}

/// `_TestLogging.test_level`: the level set with `log_to_stderr` reaches children.
#[test]
fn logging_level_is_inherited() {
    let _ = mp::log_to_stderr(log::LevelFilter::Warn);
    assert_eq!(mp::get_logger(), log::LevelFilter::Warn);
    for_each_method(|ctx| {
        let h = ctx.spawn(child_log_level, ()).unwrap();
        assert_eq!(h.join_timeout(LONG).unwrap(), "WARN");
    });
}

/// Context methods for the process functions (Python's context objects carry them).
#[test]
fn context_process_functions() {
    let ctx = mp::get_context(Some(StartMethod::Spawn)).unwrap();
    assert_eq!(ctx.current_process().name(), "MainProcess");
    assert!(ctx.parent_process().is_none());
    assert!(ctx.cpu_count() >= 1);
    let p = ctx.process(sleep_ms, (20_000,));
    p.start().unwrap();
    assert!(ctx.active_children().contains(&p));
    p.kill().unwrap();
    join_ok(&p);
    ctx.freeze_support();
}

/// `test_set_executable`.
#[test]
fn set_executable_to_own_binary() {
    mp::set_executable(std::env::current_exe().unwrap());
    let ctx = mp::get_context(Some(StartMethod::Spawn)).unwrap();
    let p = ctx.process(noop, ());
    p.start().unwrap();
    join_ok(&p);
    assert_eq!(p.exitcode(), Some(0));
}

#[mp::task]
fn start_in_daemon(w: Connection) {
    let p = Process::new(noop, ());
    w.send(&p.start().is_err()).unwrap();
}

/// `test_daemon`-like: a daemonic process cannot have children.
#[test]
fn daemons_cannot_have_children() {
    for_each_method(|ctx| {
        let (r, w) = mp::pipe(false).unwrap();
        let p = ctx.process(start_in_daemon, (w,)).with_daemon(true);
        p.start().unwrap();
        assert!(recv_within::<bool>(&r));
        join_ok(&p);
    });
}

/// `MiscTestCase`: the process API's names (compiles = passes).
#[test]
fn api_names() {
    let p: Process = Process::new(noop, ()).with_name("n").with_daemon(false);
    p.set_name("m");
    assert_eq!(p.name(), "m");
    p.set_authkey(b"abc".to_vec());
    assert_eq!(p.authkey(), b"abc");
    let _: mp::Result<()> = p.set_daemon(true);
    let _: fn() -> Process = mp::current_process;
    let _: fn() -> Option<Process> = mp::parent_process;
    let _: fn() -> Vec<Process> = mp::active_children;
    let _: fn() -> usize = mp::cpu_count;
    let _: fn() -> usize = mp::process_cpu_count;
    mp::freeze_support();
    let h: mp::JoinHandle<()> = mp::spawn(noop, ()).unwrap();
    h.join().unwrap();
    let _ = mp::process::Process::from_closure(|| {});
}
