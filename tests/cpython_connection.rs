//! CPython's `_TestConnection`, `_TestListener`, `_TestListenerClient`, `_TestPoll`,
//! `_TestPicklingConnections`, `TestWait` and `OtherTest` (auth failures), ported against
//! API.md's names, under every start method.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::connection::{
    answer_challenge, deliver_challenge, wait, Address, Client, Connection, Listener,
};
use mp::reduction::SharedFd;
use mp::{Error, Process};
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

fn ready(c: &Connection) {
    assert!(c.poll(Some(LONG)).unwrap(), "nothing arrived in time");
}

fn join_ok(p: &Process) {
    p.join_timeout(LONG).unwrap();
    assert!(!p.is_alive(), "child did not end in time");
    assert_eq!(p.exitcode(), Some(0));
}

fn families() -> Vec<Option<Address>> {
    vec![None, Some(Address::Inet("127.0.0.1".into(), 0))]
}

/// `_echo`: echoes byte messages until an empty one, then closes.
#[mp::task]
fn echo(conn: Connection) {
    while let Ok(msg) = conn.recv_bytes() {
        if msg.is_empty() {
            break;
        }
        conn.send_bytes(&msg).unwrap();
    }
    conn.close().unwrap();
}

/// `test_connection`.
#[test]
fn connection() {
    for_each_method(|ctx| {
        let (conn, child_conn) = mp::Pipe().unwrap();
        let p = ctx.process(echo, (child_conn,)).with_daemon(true);
        p.start().unwrap();

        let msg = b"hello world".to_vec();
        let longmsg = msg.repeat(10);
        let arr: Vec<u8> = [0i32, 1, 2, 3]
            .iter()
            .flat_map(|i| i.to_ne_bytes())
            .collect();

        assert!(!conn.poll(Some(Duration::ZERO)).unwrap());
        let t = Instant::now();
        assert!(!conn.poll(Some(Duration::from_millis(100))).unwrap());
        assert!(t.elapsed() >= Duration::from_millis(90));

        // an encoded value travels as one byte message
        let seq = mp::codec::encode(&(1i32, 2.25f64, None::<u8>)).unwrap();
        conn.send_bytes(&seq).unwrap();
        ready(&conn);
        assert_eq!(conn.recv_bytes().unwrap(), seq);

        conn.send_bytes(&msg).unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), msg);

        conn.send_bytes(&arr).unwrap();
        let mut buf = [0u8; 40];
        assert_eq!(conn.recv_bytes_into(&mut buf).unwrap(), 16);
        assert_eq!(&buf[..16], &arr[..]);
        assert!(buf[16..].iter().all(|&b| b == 0));

        conn.send_bytes(&arr).unwrap();
        let mut buf = [0u8; 40];
        assert_eq!(conn.recv_bytes_into(&mut buf[12..]).unwrap(), 16);
        assert!(buf[..12].iter().all(|&b| b == 0));
        assert_eq!(&buf[12..28], &arr[..]);

        conn.send_bytes(&longmsg).unwrap();
        let mut small = [0u8; 10];
        match conn.recv_bytes_into(&mut small) {
            Err(Error::BufferTooShort { message }) => assert_eq!(message, longmsg),
            other => panic!("expected BufferTooShort, got {other:?}"),
        }
        // the connection is still usable after BufferTooShort
        conn.send_bytes(b"x").unwrap();
        ready(&conn);
        assert!(conn.poll(Some(Duration::ZERO)).unwrap());
        assert_eq!(conn.recv_bytes().unwrap(), b"x");

        let really_big = vec![b'X'; 16 << 20];
        conn.send_bytes(&really_big).unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), really_big);

        conn.send_bytes(b"").unwrap(); // tell the child to stop
        ready(&conn);
        assert!(matches!(conn.recv_bytes(), Err(Error::Eof)));
        assert!(matches!(conn.recv::<u8>(), Err(Error::Eof)));
        join_ok(&p);

        conn.close().unwrap();
        assert!(conn.closed());
        assert!(conn.fileno().is_err());
        assert!(conn.send(&1).is_err());
        assert!(conn.recv_bytes().is_err());
        assert!(conn.poll(Some(Duration::ZERO)).is_err());
        conn.close().unwrap();
    });
}

/// `test_duplex_false`.
#[test]
fn duplex_false() {
    let (reader, writer) = mp::pipe(false).unwrap();
    writer.send(&1i32).unwrap();
    assert_eq!(reader.recv::<i32>().unwrap(), 1);
    assert!(reader.readable() && !reader.writable());
    assert!(writer.writable() && !writer.readable());
    assert!(reader.send(&2i32).is_err());
    assert!(writer.recv::<i32>().is_err());
    assert!(writer.poll(Some(Duration::ZERO)).is_err());
    let ctx = mp::get_context(None).unwrap();
    let (a, b) = ctx.pipe(false).unwrap();
    assert!(a.readable() && !a.writable() && b.writable() && !b.readable());
}

/// `test_spawn_close`: the parent's copy of the child end is closed after start.
#[test]
fn spawn_close() {
    for_each_method(|ctx| {
        let (conn, child_conn) = mp::Pipe().unwrap();
        let p = ctx.process(echo, (child_conn,)).with_daemon(true);
        p.start().unwrap();
        conn.send_bytes(b"hello").unwrap();
        ready(&conn);
        assert_eq!(conn.recv_bytes().unwrap(), b"hello");
        conn.send_bytes(b"").unwrap();
        // only the child held the other end: its exit is our end of file
        ready(&conn);
        assert!(matches!(conn.recv_bytes(), Err(Error::Eof)));
        join_ok(&p);
    });
}

/// `test_sendbytes` (offset/size are slices).
#[test]
fn sendbytes_slices() {
    let (a, b) = mp::Pipe().unwrap();
    let msg: Vec<u8> = (0..=255u8).collect();
    a.send_bytes(&msg).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), msg);
    a.send_bytes(&msg[5..]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), &msg[5..]);
    a.send_bytes(&msg[7..7 + 8]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), &msg[7..15]);
    a.send_bytes(&msg[256..]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"");
    a.send_bytes(&msg[..0]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"");
}

#[mp::task]
fn write_to_received_fd(conn: Connection, data: Vec<u8>) {
    let fd: SharedFd = conn.recv().unwrap();
    let mut f = std::fs::File::from(fd.as_fd().try_clone_to_owned().unwrap());
    f.write_all(&data).unwrap();
}

fn fd_transfer(high: bool) {
    for_each_method(|ctx| {
        let (conn, child_conn) = mp::Pipe().unwrap();
        let p = ctx.process(write_to_received_fd, (child_conn, b"foo".to_vec()));
        p.start().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        let fd: OwnedFd = if high {
            // `test_large_fd_transfer`: a descriptor number above 256
            let raw = std::os::fd::AsRawFd::as_raw_fd(&file);
            // SAFETY: dup2 onto an unused high number; we own the result
            let r = unsafe { libc::dup2(raw, 300) };
            assert_eq!(r, 300);
            unsafe { OwnedFd::from_raw_fd(300) }
        } else {
            file.try_clone().unwrap().into()
        };
        conn.send(&SharedFd::from(fd)).unwrap();
        join_ok(&p);
        file.rewind().unwrap();
        let mut s = String::new();
        file.read_to_string(&mut s).unwrap();
        assert_eq!(s, "foo");
    });
}

/// `test_fd_transfer`.
#[test]
fn fd_transfer_to_child() {
    fd_transfer(false);
}

/// `test_large_fd_transfer`.
#[test]
fn large_fd_transfer_to_child() {
    fd_transfer(true);
}

/// `test_missing_fd_transfer`: expecting a descriptor where none came is an error.
#[test]
fn missing_fd_transfer() {
    let (a, b) = mp::Pipe().unwrap();
    a.send(&0u32).unwrap();
    assert!(b.recv::<SharedFd>().is_err());
    a.send_bytes(&[0]).unwrap();
    assert!(b.recv::<SharedFd>().is_err());
}

/// `_TestListener.test_multiple_bind`.
#[test]
fn multiple_bind() {
    let l = Listener::bind(Some(Address::Inet("127.0.0.1".into(), 0)), 1, None).unwrap();
    assert!(Listener::bind(Some(l.address()), 1, None).is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sock");
    let l2 = Listener::bind(Some(Address::Unix(path.clone())), 1, None).unwrap();
    assert!(Listener::bind(Some(Address::Unix(path)), 1, None).is_err());
    l.close().unwrap();
    l2.close().unwrap();
}

/// `_TestListener.test_abstract_socket` (Linux): a path starting with NUL.
#[test]
fn abstract_socket() {
    let name = format!("\0mp-test-abstract-{}", std::process::id());
    let l = Listener::bind(Some(Address::Unix(name.clone().into())), 1, None).unwrap();
    assert_eq!(l.address(), Address::Unix(name.into()));
    let client = Client::connect(l.address(), None).unwrap();
    let d = l.accept().unwrap();
    client.send(&1729i32).unwrap();
    assert_eq!(d.recv::<i32>().unwrap(), 1729);
}

#[mp::task]
fn client_says_hello(address: Address, key: Option<Vec<u8>>) {
    let conn = Client::connect(address, key.as_deref()).unwrap();
    conn.send(&"hello".to_string()).unwrap();
    conn.close().unwrap();
}

/// `_TestListenerClient.test_listener_client`.
#[test]
fn listener_client() {
    for_each_method(|ctx| {
        for fam in families() {
            let l = Listener::bind(fam, 5, None).unwrap();
            let p = ctx.process(client_says_hello, (l.address(), None::<Vec<u8>>));
            p.start().unwrap();
            let conn = l.accept().unwrap();
            assert!(l.last_accepted().is_some());
            ready(&conn);
            assert_eq!(conn.recv::<String>().unwrap(), "hello");
            join_ok(&p);
            l.close().unwrap();
        }
    });
}

/// Listener/Client with an authkey (including the empty key, a key like any other).
#[test]
fn listener_client_authkey() {
    for key in [b"abc".to_vec(), Vec::new()] {
        for fam in families() {
            let l = Listener::bind(fam, 5, Some(&key)).unwrap();
            let p = Process::new(client_says_hello, (l.address(), Some(key.clone())));
            p.start().unwrap();
            let conn = l.accept().unwrap();
            ready(&conn);
            assert_eq!(conn.recv::<String>().unwrap(), "hello");
            join_ok(&p);

            // a wrong key fails on both sides; the listener keeps serving
            let addr = l.address();
            let t = std::thread::spawn(move || Client::connect(addr, Some(b"wrong")));
            assert!(matches!(l.accept(), Err(Error::Authentication(_))));
            assert!(matches!(t.join().unwrap(), Err(Error::Authentication(_))));
        }
    }
}

/// `_TestListenerClient.test_issue14725`: the client sent and left before `accept`.
#[test]
fn accept_after_client_left() {
    for_each_method(|ctx| {
        let l = Listener::bind(None, 1, None).unwrap();
        let p = ctx.process(client_says_hello, (l.address(), None::<Vec<u8>>));
        p.start().unwrap();
        join_ok(&p);
        let conn = l.accept().unwrap();
        assert_eq!(conn.recv::<String>().unwrap(), "hello");
        assert!(matches!(conn.recv::<String>(), Err(Error::Eof)));
    });
}

/// `_TestListenerClient.test_issue16955`.
#[test]
fn client_poll_after_accept() {
    for fam in families() {
        let l = Listener::bind(fam, 1, None).unwrap();
        let c = Client::connect(l.address(), None).unwrap();
        let a = l.accept().unwrap();
        a.send_bytes(b"hello").unwrap();
        assert!(c.poll(Some(Duration::from_secs(1))).unwrap());
        // free function form
        let c2 = mp::connection::client(l.address(), None).unwrap();
        let a2 = l.accept().unwrap();
        c2.send_bytes(b"x").unwrap();
        assert!(a2.poll(Some(Duration::from_secs(1))).unwrap());
    }
}

/// `_TestPoll.test_empty_string`.
#[test]
fn poll_empty_string() {
    let (a, b) = mp::Pipe().unwrap();
    assert!(!a.poll(Some(Duration::ZERO)).unwrap());
    b.send_bytes(b"").unwrap();
    assert!(a.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(a.recv_bytes().unwrap(), b"");
    assert!(!a.poll(Some(Duration::ZERO)).unwrap());
}

#[mp::task]
fn child_strings(w: Connection, strings: Vec<Vec<u8>>) {
    for s in strings {
        std::thread::sleep(Duration::from_millis(5));
        w.send_bytes(&s).unwrap();
    }
}

/// `_TestPoll.test_strings`.
#[test]
fn poll_strings() {
    for_each_method(|ctx| {
        let strings: Vec<Vec<u8>> = vec![
            b"hello".to_vec(),
            b"".to_vec(),
            b"a".to_vec(),
            b"b".to_vec(),
            b"".to_vec(),
            b"bye".to_vec(),
            b"".to_vec(),
            b"lop".to_vec(),
        ];
        let (a, b) = mp::Pipe().unwrap();
        let p = ctx.process(child_strings, (b, strings.clone()));
        p.start().unwrap();
        for s in &strings {
            for _ in 0..200 {
                if a.poll(Some(Duration::from_millis(10))).unwrap() {
                    break;
                }
            }
            let x = a.recv_bytes().unwrap();
            assert_eq!(&x, s);
        }
        join_ok(&p);
    });
}

#[mp::task]
fn child_boundaries(r: Connection) {
    // wait until both messages are there, then read them separately
    let _ = r.poll(Some(LONG));
    std::thread::sleep(Duration::from_millis(50));
    let first = r.recv_bytes().unwrap();
    let second = r.recv_bytes().unwrap();
    assert_eq!(first, vec![b'a'; 100_000]);
    assert_eq!(second, b"b");
}

/// `_TestPoll.test_boundaries`: messages written back to back stay apart.
#[test]
fn poll_boundaries() {
    for_each_method(|ctx| {
        let (r, w) = mp::pipe(false).unwrap();
        let p = ctx.process(child_boundaries, (r,));
        p.start().unwrap();
        w.send_bytes(&vec![b'a'; 100_000]).unwrap();
        w.send_bytes(b"b").unwrap();
        join_ok(&p);
    });
}

#[mp::task]
fn child_dont_merge(b: Connection) {
    b.send_bytes(b"a").unwrap();
    b.send_bytes(b"b").unwrap();
    b.send_bytes(b"cd").unwrap();
}

/// `_TestPoll.test_dont_merge`.
#[test]
fn poll_dont_merge() {
    for_each_method(|ctx| {
        let (a, b) = mp::Pipe().unwrap();
        assert!(!a.poll(Some(Duration::ZERO)).unwrap());
        assert!(!b.poll(Some(Duration::ZERO)).unwrap());
        let p = ctx.process(child_dont_merge, (b,));
        p.start().unwrap();
        for want in [&b"a"[..], b"b", b"cd"] {
            ready(&a);
            assert_eq!(a.recv_bytes().unwrap(), want);
        }
        join_ok(&p);
        assert!(a.poll(Some(Duration::ZERO)).unwrap()); // end of file is ready
        assert!(matches!(a.recv_bytes(), Err(Error::Eof)));
    });
}

#[mp::task]
fn listener_child(conn: Connection, n: usize) {
    for fam in families().into_iter().take(n) {
        let l = Listener::bind(fam, 5, None).unwrap();
        conn.send(&l.address()).unwrap();
        let new_conn = l.accept().unwrap();
        conn.send(&new_conn).unwrap();
        new_conn.close().unwrap();
        l.close().unwrap();
    }
}

#[mp::task]
fn remote_child(conn: Connection) {
    while let Ok(Some((address, msg))) = conn.recv::<Option<(Address, String)>>() {
        let client = Client::connect(address, None).unwrap();
        client.send(&msg.to_uppercase()).unwrap();
        client.close().unwrap();
    }
}

/// `_TestPicklingConnections.test_pickling`: accepted connections travel between
/// processes over pipes.
#[test]
fn pickling_connections() {
    for_each_method(|ctx| {
        let n = families().len();
        let (lconn, lconn0) = mp::Pipe().unwrap();
        let lp = ctx.process(listener_child, (lconn0, n)).with_daemon(true);
        lp.start().unwrap();
        let (rconn, rconn0) = mp::Pipe().unwrap();
        let rp = ctx.process(remote_child, (rconn0,)).with_daemon(true);
        rp.start().unwrap();
        for i in 0..n {
            let msg = format!("This connection uses family {i}");
            ready(&lconn);
            let address: Address = lconn.recv().unwrap();
            rconn.send(&Some((address, msg.clone()))).unwrap();
            ready(&lconn);
            let new_conn: Connection = lconn.recv().unwrap();
            ready(&new_conn);
            assert_eq!(new_conn.recv::<String>().unwrap(), msg.to_uppercase());
        }
        rconn.send(&None::<(Address, String)>).unwrap();
        join_ok(&lp);
        join_ok(&rp);
    });
}

#[mp::task]
fn child_access(pipe: Connection) {
    // receive a connection, use it, send back a fresh one
    let conn: Connection = pipe.recv().unwrap();
    conn.send_bytes(b"all is well").unwrap();
    let (a, b) = mp::Pipe().unwrap();
    pipe.send(&a).unwrap();
    drop(a);
    let m: Vec<u8> = b.recv_bytes().unwrap();
    b.send_bytes(&m.to_ascii_uppercase()).unwrap();
}

/// `_TestPicklingConnections.test_access`.
#[test]
fn pickling_access() {
    for_each_method(|ctx| {
        let (pipe, child_pipe) = mp::Pipe().unwrap();
        let p = ctx.process(child_access, (child_pipe,));
        p.start().unwrap();
        let (r, w) = mp::Pipe().unwrap();
        pipe.send(&w).unwrap();
        drop(w);
        ready(&r);
        assert_eq!(r.recv_bytes().unwrap(), b"all is well");
        ready(&pipe);
        let a: Connection = pipe.recv().unwrap();
        a.send_bytes(b"foobar").unwrap();
        ready(&a);
        assert_eq!(a.recv_bytes().unwrap(), b"FOOBAR");
        join_ok(&p);
    });
}

#[mp::task]
fn wait_child(w: Connection, slow: bool) {
    for i in 0..10u32 {
        if slow {
            std::thread::sleep(Duration::from_millis(5 + (i as u64 % 3) * 5));
        }
        w.send(&(i, std::process::id())).unwrap();
    }
    w.close().unwrap();
}

fn wait_pipes(slow: bool) {
    for_each_method(|ctx| {
        let mut readers = Vec::new();
        let mut procs = Vec::new();
        for _ in 0..4 {
            let (r, w) = mp::pipe(false).unwrap();
            let p = ctx.process(wait_child, (w, slow)).with_daemon(true);
            p.start().unwrap();
            readers.push(r);
            procs.push(p);
        }
        let mut messages = Vec::new();
        let deadline = Instant::now() + LONG;
        while !readers.is_empty() {
            assert!(Instant::now() < deadline, "wait loop did not finish");
            let objs: Vec<&dyn mp::Waitable> = readers.iter().map(|r| r as _).collect();
            let ready = wait(&objs, Some(LONG)).unwrap();
            assert!(!ready.is_empty());
            let mut gone = Vec::new();
            for i in ready {
                match readers[i].recv::<(u32, u32)>() {
                    Ok(m) => messages.push(m),
                    Err(Error::Eof) => gone.push(i),
                    Err(e) => panic!("{e}"),
                }
            }
            for i in gone.into_iter().rev() {
                readers.remove(i);
            }
        }
        let mut expected: Vec<(u32, u32)> = procs
            .iter()
            .flat_map(|p| (0..10).map(move |i| (i, p.pid().unwrap())))
            .collect();
        expected.sort();
        messages.sort();
        assert_eq!(messages, expected);
        for p in &procs {
            join_ok(p);
        }
    });
}

/// `TestWait.test_wait`.
#[test]
fn wait_on_pipes() {
    wait_pipes(false);
}

/// `TestWait.test_wait_slow`.
#[test]
fn wait_on_pipes_slow() {
    wait_pipes(true);
}

#[mp::task]
fn socket_child(address: std::net::SocketAddr) {
    let mut s = std::net::TcpStream::connect(address).unwrap();
    for i in 0..10 {
        s.write_all(format!("{i}\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `TestWait.test_wait_socket`.
#[test]
fn wait_on_sockets() {
    let ctx = mp::get_context(None).unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let procs: Vec<_> = (0..4)
        .map(|_| {
            let p = ctx.process(socket_child, (addr,));
            p.start().unwrap();
            p
        })
        .collect();
    let mut socks: Vec<_> = (0..4).map(|_| l.accept().unwrap().0).collect();
    let mut data: Vec<String> = vec![String::new(); 4];
    let mut idx: Vec<usize> = (0..4).collect();
    let deadline = Instant::now() + LONG;
    while !socks.is_empty() {
        assert!(Instant::now() < deadline);
        let objs: Vec<&dyn mp::Waitable> = socks.iter().map(|s| s as _).collect();
        let ready = wait(&objs, Some(LONG)).unwrap();
        let mut gone = Vec::new();
        for i in ready {
            let mut buf = [0u8; 64];
            let n = socks[i].read(&mut buf).unwrap();
            if n == 0 {
                gone.push(i);
            } else {
                data[idx[i]].push_str(std::str::from_utf8(&buf[..n]).unwrap());
            }
        }
        for i in gone.into_iter().rev() {
            socks.remove(i);
            idx.remove(i);
        }
    }
    let expected: String = (0..10).map(|i| format!("{i}\n")).collect();
    for d in data {
        assert_eq!(d, expected);
    }
    for p in &procs {
        join_ok(p);
    }
}

/// `TestWait.test_wait_timeout`.
#[test]
fn wait_timeout() {
    let (a, b) = mp::Pipe().unwrap();
    let t = Instant::now();
    assert!(wait(&[&a], Some(Duration::from_millis(200)))
        .unwrap()
        .is_empty());
    let dt = t.elapsed();
    assert!(dt >= Duration::from_millis(190) && dt < Duration::from_secs(5));
    b.send(&()).unwrap();
    let t = Instant::now();
    assert_eq!(wait(&[&a], Some(Duration::from_secs(1))).unwrap(), [0]);
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[mp::task]
fn signal_and_sleep(w: Connection, ms: u64) {
    w.send(&()).unwrap();
    std::thread::sleep(Duration::from_millis(ms));
}

/// `TestWait.test_wait_integer`: process sentinels (and processes) mixed with
/// connections.
#[test]
fn wait_integer() {
    for_each_method(|ctx| {
        let (started, w) = mp::pipe(false).unwrap();
        let (a, b) = mp::Pipe().unwrap();
        let p = ctx.process(signal_and_sleep, (w, 300));
        p.start().unwrap();
        let s = p.sentinel().unwrap();
        ready(&started);
        started.recv::<()>().unwrap();
        assert!(wait(&[&s, &a, &p, &b], Some(Duration::ZERO))
            .unwrap()
            .is_empty());
        let t = Instant::now();
        let got = wait(&[&s, &a, &p, &b], Some(LONG)).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(200), "{ctx:?}");
        assert_eq!(got, [0, 2], "{ctx:?}");
        join_ok(&p);
        b.send(&()).unwrap();
        assert_eq!(wait(&[&s, &a, &p, &b], Some(LONG)).unwrap(), [0, 1, 2]);
    });
}

/// `TestWait.test_neg_timeout` (Python's negative timeout is `Duration::ZERO`).
#[test]
fn wait_zero_timeout() {
    let (a, _b) = mp::Pipe().unwrap();
    let t = Instant::now();
    assert!(wait(&[&a], Some(Duration::ZERO)).unwrap().is_empty());
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(!a.poll(Some(Duration::ZERO)).unwrap());
}

/// `OtherTest.test_deliver_challenge_auth_failure`: a peer answering nonsense.
#[test]
fn deliver_challenge_auth_failure() {
    let (a, b) = mp::Pipe().unwrap();
    let fake = std::thread::spawn(move || {
        let _challenge = b.recv_bytes().unwrap();
        b.send_bytes(b"something bogus").unwrap();
        b.recv_bytes()
    });
    assert!(matches!(
        deliver_challenge(&a, b"abc"),
        Err(Error::Authentication(_))
    ));
    assert_eq!(fake.join().unwrap().unwrap(), b"#FAILURE#");
}

/// `OtherTest.test_answer_challenge_auth_failure`: the peer rejects our answer.
#[test]
fn answer_challenge_auth_failure() {
    for challenge in [
        [&b"#CHALLENGE#"[..], &[7u8; 20]].concat(),
        [&b"#CHALLENGE#{sha256}"[..], &[7u8; 40]].concat(),
    ] {
        let (a, b) = mp::Pipe().unwrap();
        let fake = std::thread::spawn(move || {
            b.send_bytes(&challenge).unwrap();
            let _answer = b.recv_bytes().unwrap();
            b.send_bytes(b"something bogus").unwrap();
        });
        assert!(matches!(
            answer_challenge(&a, b"abc"),
            Err(Error::Authentication(_))
        ));
        fake.join().unwrap();
    }
    // and the matching pair succeeds
    let (a, b) = mp::Pipe().unwrap();
    let t = std::thread::spawn(move || answer_challenge(&b, b"key"));
    deliver_challenge(&a, b"key").unwrap();
    t.join().unwrap().unwrap();
}

/// A `Connection` travels through a `Queue` too.
#[mp::task]
fn connection_from_queue(q: mp::Queue<Connection>) {
    let c = q.get_timeout(LONG).unwrap();
    c.send(&"via queue".to_string()).unwrap();
}

#[test]
fn connection_through_queue() {
    for_each_method(|ctx| {
        let q: mp::Queue<Connection> = mp::Queue::new().unwrap();
        let p = ctx.process(connection_from_queue, (q.clone(),));
        p.start().unwrap();
        let (a, b) = mp::Pipe().unwrap();
        q.put(b).unwrap();
        ready(&a);
        assert_eq!(a.recv::<String>().unwrap(), "via queue");
        join_ok(&p);
    });
}

/// `MiscTestCase`: the connection API's names (compiles = passes).
#[test]
fn api_names() {
    let (a, b): (Connection, Connection) = mp::pipe(true).unwrap();
    let _: (Connection, Connection) = mp::Pipe().unwrap();
    let _: mp::Result<()> = a.send(&1u8);
    let _: mp::Result<u8> = b.recv::<u8>();
    let _: mp::Result<()> = a.send_bytes(b"x");
    let _: mp::Result<Vec<u8>> = b.recv_bytes();
    a.send_bytes(b"x").unwrap();
    let _: mp::Result<Vec<u8>> = b.recv_bytes_max(10);
    a.send_bytes(b"x").unwrap();
    let mut buf = [0u8; 4];
    let _: mp::Result<usize> = b.recv_bytes_into(&mut buf);
    let _: mp::Result<bool> = b.poll(None::<Duration>.or(Some(Duration::ZERO)));
    let _: mp::Result<std::os::fd::RawFd> = a.fileno();
    let _: bool = a.closed() || a.readable() || a.writable();
    let _: mp::Result<()> = a.close();
    let l: Listener = Listener::bind(None, 1, None).unwrap();
    let _: Address = l.address();
    let _: Option<Address> = l.last_accepted();
    let _ = Client::connect(l.address(), None).unwrap();
    let _: Connection = l.accept().unwrap();
    let _ = wait(&[&l, &b], Some(Duration::ZERO)).unwrap();
    let _: mp::Result<()> = l.close();
    let _: Address = "localhost:6000".parse().unwrap();
    assert_eq!(
        "/tmp/x".parse::<Address>().unwrap(),
        Address::Unix("/tmp/x".into())
    );
    let _ = mp::wait;
    assert!(mp::connection::client("/nonexistent/mp", None).is_err());
    assert!(mp::client("127.0.0.1:1", Some(b"k")).is_err());
    let _ = mp::connection::Client::connect(Address::Unix("/nonexistent/mp".into()), None);
}

#[mp::task]
fn send_to_closed_peer(conn: Connection, report: Connection) {
    // the parent closed its end: sending fails with an error (BrokenPipeError), the
    // child is not killed by SIGPIPE
    let _ = conn.poll(Some(LONG)); // end of file once the peer is gone
    let big = vec![0u8; 1 << 20];
    let r = conn.send_bytes(&big).and_then(|()| conn.send_bytes(&big));
    report.send(&r.is_err()).unwrap();
}

/// Sending to a closed peer is an error, in a child too. (Not under fork: a forked
/// child inherits the parent's end too, so the peer never closes, as in CPython.)
#[test]
fn send_to_closed_peer_is_an_error() {
    for_each_method(|ctx| {
        if ctx.get_start_method() == mp::StartMethod::Fork {
            return;
        }
        let (a, b) = mp::Pipe().unwrap();
        let (r, w) = mp::pipe(false).unwrap();
        let p = ctx.process(send_to_closed_peer, (b, w));
        p.start().unwrap();
        a.close().unwrap();
        ready(&r);
        assert!(r.recv::<bool>().unwrap());
        join_ok(&p);
    });
}

/// `_TestListener.test_context`: a closed listener refuses `accept`; closing wakes a
/// thread blocked in `accept`.
#[test]
fn listener_close() {
    let l = std::sync::Arc::new(Listener::bind(None, 1, None).unwrap());
    let l2 = l.clone();
    let t = std::thread::spawn(move || l2.accept());
    std::thread::sleep(Duration::from_millis(100));
    l.close().unwrap();
    assert!(t.join().unwrap().is_err());
    assert!(l.closed());
    assert!(l.accept().is_err());
    assert!(l.fileno().is_err());
    let addr = l.address();
    assert!(Client::connect(addr, None).is_err());
}
