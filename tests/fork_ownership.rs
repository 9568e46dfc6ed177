//! What a forked child does with its copies of the parent's objects, and with the
//! signals it is sent: a forked child that closes an inherited `Listener` or shuts
//! down an inherited manager handle leaves the parent's socket and server alone (as
//! CPython's `Finalize` ignores calls from another pid); objects a forked child makes
//! itself are still cleaned up at its exit; mp's helper threads never take a signal
//! meant for the task.
mod common;
use common::*;
use mp::connection::{client, Listener};
use std::time::Duration;

mp::test_support!();

fn fork() -> mp::Context {
    mp::get_context(Some(mp::StartMethod::Fork)).unwrap()
}

#[test]
fn a_forked_child_closing_an_inherited_listener_leaves_the_parents_socket() {
    let l = std::sync::Arc::new(Listener::bind(None, 4, Some(b"key")).unwrap());
    let addr = l.address().clone();
    let mp::connection::Address::Unix(path) = &addr else {
        panic!("a Unix address: {addr}")
    };
    let theirs = l.clone();
    let p = mp::Process::from_closure(move || {
        theirs.close().unwrap();
        drop(theirs);
    })
    .with_context(fork());
    p.start().unwrap();
    join_ok(&p);
    assert!(
        path.exists(),
        "the child removed the parent's socket {path:?}"
    );
    // the parent still listens and accepts
    let a = addr.clone();
    let client = std::thread::spawn(move || {
        let c = client(a, Some(b"key")).unwrap();
        c.send(&7u32).unwrap();
    });
    let c = within(Duration::from_secs(10), "accept", move || {
        let c = l.accept().unwrap();
        (c.recv::<u32>().unwrap(), l)
    });
    assert_eq!(c.0, 7);
    client.join().unwrap();
    c.1.close().unwrap();
    assert!(!path.exists(), "the parent's close removes its socket");
}

#[test]
fn a_forked_child_shutting_down_an_inherited_manager_leaves_the_server_running() {
    let m = std::sync::Arc::new(fork().manager().unwrap());
    let list = m.list::<u32>(Vec::new()).unwrap();
    let theirs = m.clone();
    let p = mp::Process::from_closure(move || {
        theirs.shutdown().unwrap();
    })
    .with_context(fork());
    p.start().unwrap();
    join_ok(&p);
    list.append(1).unwrap();
    assert_eq!(list.len().unwrap(), 1, "the parent's server stopped");
    m.shutdown().unwrap();
}

/// Binds a listener of its own and exits without closing it (`process::exit`), after
/// reporting the socket's path.
fn leak_a_listener(out: mp::Connection) {
    let l = Listener::bind(None, 1, None).unwrap();
    let mp::connection::Address::Unix(path) = l.address().clone() else {
        unreachable!("bind(None) is a Unix socket")
    };
    out.send(&path).unwrap();
    std::mem::forget(l);
    std::process::exit(0);
}

#[test]
fn a_forked_child_cleans_up_what_it_made_itself() {
    // the exit hook that removes a leaked listener's directory is installed per
    // process: a child forked after the parent installed its own still installs one
    let _parents = Listener::bind(None, 1, None).unwrap();
    let (r, w) = mp::Pipe().unwrap();
    let p = mp::Process::from_closure(move || leak_a_listener(w)).with_context(fork());
    p.start().unwrap();
    let path: std::path::PathBuf = within(Duration::from_secs(10), "the path", move || {
        r.recv().unwrap()
    });
    join_ok(&p);
    assert!(!path.exists(), "{path:?} left behind by the child");
    assert!(
        !path.parent().unwrap().exists(),
        "the child's private directory left behind"
    );
}

/// Blocks SIGTERM, reports readiness through `ready`, and takes the SIGTERM once it is
/// pending (a thread inside `sigwait` has the signal unblocked while it waits, so the
/// task only looks with `sigpending` until it is there): exits 7.
#[mp::task]
fn wait_for_sigterm(ready: mp::Connection) -> i32 {
    // SAFETY: plain signal-mask calls on zeroed sigset_t values.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        ready.send(&true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            if libc::sigismember(&pending, libc::SIGTERM) == 1
                || std::time::Instant::now() > deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
        if sig == libc::SIGTERM {
            std::process::exit(7);
        }
    }
    0
}

#[test]
fn a_daemonic_child_waiting_for_sigterm_gets_it() {
    // a daemonic child has a thread watching its parent: that thread must not be where
    // the kernel delivers a SIGTERM the task blocked (the default action would kill
    // the whole child instead of the task's sigwait taking it)
    for_each_method(|ctx| {
        let (r, w) = mp::Pipe().unwrap();
        let p = ctx.process(wait_for_sigterm, (w,)).with_daemon(true);
        p.start().unwrap();
        assert!(r.poll(Some(Duration::from_secs(10))).unwrap());
        assert!(r.recv::<bool>().unwrap());
        p.terminate().unwrap();
        p.join_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(p.exitcode(), Some(7), "{p:?}");
    });
}
