//! Process under every start method: lifecycle, exit codes, names, daemons, authkeys,
//! sentinels, handles in arguments, `mp::spawn`, `from_closure`, `from_run`.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::reduction::{read_frame, write_frame, FdKind, SharedFd};
use mp::{Error, Process, StartMethod};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

/// A one-way channel a child reports through: (the child's end, the parent's end).
fn channel() -> (SharedFd, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    b.set_read_timeout(Some(LONG)).unwrap();
    (SharedFd::from(std::os::fd::OwnedFd::from(a)), b)
}

fn send_back<T: Serialize>(fd: &SharedFd, v: &T) {
    let bytes = mp::codec::encode(v).unwrap();
    write_frame(fd.as_fd(), FdKind::Socket, &bytes, &[]).unwrap();
}

fn recv_back<T: DeserializeOwned>(r: &UnixStream) -> T {
    let (bytes, _) = read_frame(r.as_fd(), FdKind::Socket, 1 << 20).expect("child reported");
    mp::codec::decode(&bytes).unwrap()
}

fn run(p: &Process) -> Option<i32> {
    p.start().unwrap();
    p.join_timeout(LONG).unwrap();
    p.exitcode()
}

#[mp::task]
fn noop() {}

#[mp::task]
fn exit_with(code: i32) {
    std::process::exit(code)
}

#[mp::task]
fn panics() {
    panic!("this task panics on purpose")
}

#[mp::task]
fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms))
}

#[test]
fn exit_codes() {
    for ctx in contexts() {
        let m = ctx.get_start_method();
        assert_eq!(run(&ctx.process(noop, ())), Some(0), "{m}");
        assert_eq!(run(&ctx.process(exit_with, (7,))), Some(7), "{m}");
        assert_eq!(run(&ctx.process(panics, ())), Some(1), "{m}");

        let p = ctx.process(sleep_ms, (60_000,));
        p.start().unwrap();
        assert!(p.is_alive());
        assert_eq!(p.exitcode(), None);
        p.terminate().unwrap();
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(-libc::SIGTERM), "{m}");
        assert!(!p.is_alive());
        assert!(
            format!("{p:?}").contains("stopped exitcode=-SIGTERM"),
            "{p:?}"
        );

        let p = ctx.process(sleep_ms, (60_000,));
        p.start().unwrap();
        p.kill().unwrap();
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(-libc::SIGKILL), "{m}");
        // terminate/kill after the end do nothing
        p.terminate().unwrap();
        p.kill().unwrap();
    }
}

#[test]
fn lifecycle_errors_and_close() {
    for ctx in contexts() {
        let p = ctx.process(sleep_ms, (60_000,));
        assert!(p.join().is_err(), "join before start");
        assert!(p.sentinel().is_err(), "sentinel before start");
        assert!(p.terminate().is_err());
        assert_eq!(p.pid(), None);
        assert!(!p.is_alive());
        assert!(format!("{p:?}").contains(" initial"), "{p:?}");
        p.start().unwrap();
        assert!(
            matches!(p.start(), Err(Error::InvalidState(_))),
            "start twice"
        );
        assert!(p.pid().is_some());
        assert!(p.set_daemon(true).is_err(), "daemon after start");
        assert!(format!("{p:?}").contains(" started"), "{p:?}");
        assert!(
            matches!(p.close(), Err(Error::InvalidState(_))),
            "close while running"
        );
        p.kill().unwrap();
        p.join_timeout(LONG).unwrap();
        p.close().unwrap();
        p.close().unwrap(); // idempotent
        assert!(matches!(p.join(), Err(Error::InvalidState(_))));
        assert!(matches!(p.sentinel(), Err(Error::InvalidState(_))));
        assert!(matches!(p.terminate(), Err(Error::InvalidState(_))));
        assert!(matches!(p.start(), Err(Error::InvalidState(_))));
        assert_eq!(p.pid(), None);
        assert!(format!("{p:?}").contains(" closed"), "{p:?}");
    }
}

#[test]
fn join_timeout_returns_after_the_timeout() {
    for ctx in contexts() {
        let p = ctx.process(sleep_ms, (60_000,));
        p.start().unwrap();
        let t = Instant::now();
        p.join_timeout(Duration::from_millis(200)).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(190));
        assert!(p.is_alive());
        p.terminate().unwrap();
        p.join_timeout(LONG).unwrap();
    }
}

#[test]
fn sentinel_becomes_readable_at_exit() {
    for ctx in contexts() {
        let p = ctx.process(sleep_ms, (300,));
        p.start().unwrap();
        let fd = p.sentinel().unwrap();
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // not readable while the child runs
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0);
        let r = unsafe { libc::poll(&mut pfd, 1, LONG.as_millis() as i32) };
        assert_eq!(r, 1, "sentinel readable once the child ended");
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(0));
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Info {
    name: String,
    pid: u32,
    ppid: u32,
    parent_pid: Option<u32>,
    parent_name: Option<String>,
    authkey: Vec<u8>,
    daemon: bool,
    method: String,
}

#[mp::task]
fn report_info(out: SharedFd) {
    let me = mp::current_process();
    let parent = mp::parent_process();
    send_back(
        &out,
        &Info {
            name: me.name(),
            pid: me.pid().unwrap(),
            ppid: std::os::unix::process::parent_id(),
            parent_pid: parent.as_ref().and_then(|p| p.pid()),
            parent_name: parent.as_ref().map(|p| p.name()),
            authkey: me.authkey(),
            daemon: me.daemon(),
            method: mp::get_start_method().to_string(),
        },
    );
}

#[test]
fn children_know_who_they_are() {
    let main = mp::current_process();
    assert_eq!(main.name(), "MainProcess");
    assert!(mp::parent_process().is_none());
    assert_eq!(main.authkey().len(), 32);
    for ctx in contexts() {
        let m = ctx.get_start_method();
        let (w, r) = channel();
        let p = ctx.process(report_info, (w,)).with_daemon(true);
        p.start().unwrap();
        let info: Info = recv_back(&r);
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(0));
        assert!(info.name.starts_with("Process-"), "{info:?}");
        assert_eq!(info.name, p.name());
        assert_eq!(Some(info.pid), p.pid());
        assert_eq!(info.parent_pid, Some(std::process::id()));
        assert_eq!(info.parent_name.as_deref(), Some("MainProcess"));
        assert_eq!(info.authkey, main.authkey(), "authkey inherited");
        assert!(info.daemon);
        if m == StartMethod::ForkServer {
            assert_ne!(
                info.ppid,
                std::process::id(),
                "forkserver children are the server's"
            );
        } else {
            assert_eq!(info.ppid, std::process::id(), "{m}");
        }
    }
}

#[test]
fn names_and_authkeys() {
    let p = Process::new(noop, ()).with_name("worker");
    assert_eq!(p.name(), "worker");
    p.set_name("other");
    assert_eq!(p.name(), "other");
    p.set_authkey(b"secret".to_vec());
    assert_eq!(p.authkey(), b"secret");
    let a = Process::new(noop, ());
    let b = Process::new(noop, ());
    let na: u32 = a.name().strip_prefix("Process-").unwrap().parse().unwrap();
    let nb: u32 = b.name().strip_prefix("Process-").unwrap().parse().unwrap();
    assert!(nb > na, "names count up: {} {}", a.name(), b.name());
}

#[derive(Serialize, Deserialize, Debug)]
enum Nested {
    Name(String),
    Err(String),
}

/// Starts a grandchild under the same start method and reports its name and exit code.
#[mp::task]
fn start_grandchild(out: SharedFd) {
    let (w, r) = channel();
    let p = Process::new(report_info, (w,));
    match p.start() {
        Ok(()) => {
            let info: Info = recv_back(&r);
            p.join_timeout(LONG).unwrap();
            send_back(&out, &Nested::Name(info.name));
            send_back(&out, &p.exitcode());
            send_back(&out, &info.parent_name);
        }
        Err(e) => send_back(&out, &Nested::Err(e.to_string())),
    }
}

#[test]
fn children_start_children() {
    for ctx in contexts() {
        let (w, r) = channel();
        let p = ctx.process(start_grandchild, (w,));
        p.start().unwrap();
        let name: Nested = recv_back(&r);
        let code: Option<i32> = recv_back(&r);
        let parent_name: Option<String> = recv_back(&r);
        p.join_timeout(LONG).unwrap();
        let expected = format!("{}:1", p.name());
        assert!(
            matches!(&name, Nested::Name(n) if *n == expected),
            "{name:?} vs {expected}"
        );
        assert_eq!(code, Some(0));
        assert_eq!(parent_name, Some(p.name()));
        assert_eq!(p.exitcode(), Some(0));
    }
}

#[test]
fn daemonic_processes_cannot_have_children() {
    for ctx in contexts() {
        let (w, r) = channel();
        let p = ctx.process(start_grandchild, (w,)).with_daemon(true);
        p.start().unwrap();
        let res: Nested = recv_back(&r);
        p.join_timeout(LONG).unwrap();
        assert!(
            matches!(&res, Nested::Err(e) if e.contains("daemonic processes are not allowed to have children")),
            "{res:?}"
        );
    }
}

#[mp::task]
fn write_hello(fd: SharedFd) {
    use std::io::Write;
    let mut f = std::fs::File::from(fd.into_owned());
    f.write_all(b"hello from the child").unwrap();
}

#[test]
fn fds_travel_in_args_and_are_dropped_after_start() {
    for ctx in contexts() {
        let m = ctx.get_start_method();
        let (r, w) = std::io::pipe().unwrap();
        let w = SharedFd::from(std::os::fd::OwnedFd::from(w));
        let p = ctx.process(write_hello, (w,));
        p.start().unwrap();
        // the parent's write end went with the arguments: reading ends at EOF
        use std::io::Read;
        let mut r = std::fs::File::from(std::os::fd::OwnedFd::from(r));
        let mut buf = Vec::new();
        let reader = std::thread::spawn(move || {
            r.read_to_end(&mut buf).unwrap();
            buf
        });
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(0), "{m}");
        let start = Instant::now();
        while !reader.is_finished() {
            assert!(
                start.elapsed() < LONG,
                "{m}: the parent still holds the write end"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(reader.join().unwrap(), b"hello from the child", "{m}");
    }
}

#[mp::task]
#[allow(clippy::too_many_arguments)]
fn eight(a: u8, b: u16, c: u32, d: u64, e: i8, f: String, g: Vec<u32>, h: (bool, char)) -> String {
    format!("{a} {b} {c} {d} {e} {f} {g:?} {h:?}")
}

#[mp::task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[test]
fn spawn_returns_the_value() {
    for m in mp::get_all_start_methods() {
        mp::get_context(Some(m)).unwrap();
        let h = mp::spawn(add, (40, 2)).unwrap();
        assert_eq!(h.join().unwrap(), 42);
    }
    let h = mp::spawn(
        eight,
        (1, 2, 3, 4, -5, "six".to_string(), vec![7], (true, '8')),
    )
    .unwrap();
    assert_eq!(h.join().unwrap(), "1 2 3 4 -5 six [7] (true, '8')");
    let h = mp::spawn(panics, ()).unwrap();
    match h.join() {
        Err(Error::TaskPanicked { task, message, .. }) => {
            assert_eq!(task, "process::panics");
            assert_eq!(message, "this task panics on purpose");
        }
        other => panic!("{other:?}"),
    }
    let h = mp::spawn(exit_with, (3,)).unwrap();
    assert!(matches!(
        h.join(),
        Err(Error::WorkerDied { exitcode: 3, .. })
    ));
}

fn not_a_task() {}

#[test]
fn unregistered_functions_are_refused() {
    let p = Process::new(not_a_task, ());
    match p.start() {
        Err(Error::NotRegistered { name }) => assert!(name.ends_with("not_a_task"), "{name}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        mp::spawn(not_a_task, ()),
        Err(Error::NotRegistered { .. })
    ));
}

#[test]
fn closures_need_fork() {
    let (w, r) = channel();
    let ctx = mp::get_context(Some(StartMethod::Fork)).unwrap();
    let p = Process::from_closure(move || send_back(&w, &"from a closure".to_string()))
        .with_context(ctx);
    p.start().unwrap();
    assert_eq!(recv_back::<String>(&r), "from a closure");
    p.join_timeout(LONG).unwrap();
    assert_eq!(p.exitcode(), Some(0));

    let p = Process::from_closure(|| panic!("closure panics")).with_context(ctx);
    assert_eq!(run(&p), Some(1));

    for m in [StartMethod::Spawn, StartMethod::ForkServer] {
        let p = Process::from_closure(|| {}).with_context(mp::get_context(Some(m)).unwrap());
        match p.start() {
            Err(Error::InvalidState(msg)) => assert!(msg.contains("fork"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Worker {
    out: SharedFd,
    n: u32,
}

#[mp::task]
impl mp::Run for Worker {
    fn run(self) {
        send_back(&self.out, &(self.n * 2, mp::current_process().name()));
    }
}

#[test]
fn run_types_are_process_subclasses() {
    for ctx in contexts() {
        let (w, r) = channel();
        let p = Process::from_run(Worker { out: w, n: 21 })
            .with_context(ctx)
            .with_name("sub");
        p.start().unwrap();
        assert_eq!(recv_back::<(u32, String)>(&r), (42, "sub".to_string()));
        p.join_timeout(LONG).unwrap();
        assert_eq!(p.exitcode(), Some(0));
    }
}

#[test]
fn active_children_lists_live_ones() {
    for ctx in contexts() {
        let live = ctx.process(sleep_ms, (60_000,));
        live.start().unwrap();
        let done = ctx.process(noop, ());
        done.start().unwrap();
        let pid = done.pid();
        let t = Instant::now();
        while done.exitcode().is_none() {
            done.join_timeout(Duration::from_millis(100)).unwrap();
            assert!(t.elapsed() < LONG);
        }
        let kids = mp::active_children();
        assert!(kids.iter().any(|k| k.pid() == live.pid()));
        assert!(!kids.iter().any(|k| k.pid() == pid));
        live.terminate().unwrap();
        live.join_timeout(LONG).unwrap();
        assert!(!mp::active_children().iter().any(|k| k.pid() == live.pid()));
    }
}

#[test]
fn cpu_counts() {
    assert!(mp::cpu_count() >= 1);
    assert!(mp::process_cpu_count() >= 1);
    assert!(mp::process_cpu_count() <= mp::cpu_count());
}

#[test]
fn debug_format() {
    let p = Process::new(noop, ()).with_name("dbg").with_daemon(true);
    let s = format!("{p:?}");
    assert!(s.starts_with("<Process name='dbg' parent="), "{s}");
    assert!(s.ends_with(" initial daemon>"), "{s}");
    assert_eq!(run(&p), Some(0));
    let s = format!("{p:?}");
    assert!(
        s.contains(" pid=") && s.contains(" stopped exitcode=0 daemon>"),
        "{s}"
    );
    assert!(format!("{:?}", mp::current_process()).contains("started"));
}
