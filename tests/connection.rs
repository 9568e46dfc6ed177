//! Pipes, connections, listeners, authentication and `wait`, across real processes
//! under every start method.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::connection::{answer_challenge, deliver_challenge, Sentinel};
use mp::{Address, Client, Connection, Error, Listener};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// recv with a bound: a bug fails instead of hanging.
fn recv_t<T: serde::de::DeserializeOwned>(c: &Connection) -> mp::Result<T> {
    assert!(c.poll(Some(T))?, "nothing arrived within {T:?}");
    c.recv()
}

fn join(p: &mp::Process) {
    p.join_timeout(T).unwrap();
    assert_eq!(p.exitcode(), Some(0), "{p:?}");
}

#[mp::task]
fn send_three_and_exit(conn: Connection) {
    conn.send(&1u32).unwrap();
    conn.send(&"two".to_string()).unwrap();
    conn.send_bytes(b"three").unwrap();
}

#[test]
fn data_before_close_then_eof_every_start_method() {
    for ctx in contexts() {
        let (r, w) = ctx.pipe(false).unwrap();
        let p = ctx.process(send_three_and_exit, (w,));
        p.start().unwrap();
        assert_eq!(recv_t::<u32>(&r).unwrap(), 1);
        assert_eq!(recv_t::<String>(&r).unwrap(), "two");
        assert!(r.poll(Some(T)).unwrap());
        assert_eq!(r.recv_bytes().unwrap(), b"three");
        join(&p);
        // the child exited and the parent's copy of `w` was dropped at start: EOF
        assert!(
            r.poll(Some(Duration::ZERO)).unwrap(),
            "closed peer is ready"
        );
        assert!(matches!(r.recv::<u32>(), Err(Error::Eof)));
        assert!(matches!(r.recv_bytes(), Err(Error::Eof)), "EOF again");
    }
}

#[mp::task]
fn echo_until_empty(conn: Connection) {
    loop {
        let m = conn.recv_bytes().unwrap();
        let done = m.is_empty();
        conn.send_bytes(&m).unwrap();
        if done {
            break;
        }
    }
}

#[test]
fn message_sizes_round_trip_through_a_child() {
    let (a, b) = mp::Pipe().unwrap();
    let p = mp::Process::new(echo_until_empty, (b,));
    p.start().unwrap();
    for size in [1usize, 2, 100, 64 << 10, (64 << 10) + 1, 16 << 20, 0] {
        let msg: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
        a.send_bytes(&msg).unwrap();
        assert!(a.poll(Some(T)).unwrap());
        let back = a.recv_bytes().unwrap();
        assert_eq!(back.len(), size);
        assert!(back == msg, "size {size} corrupted");
    }
    join(&p);
}

#[test]
fn recv_bytes_into_short_and_offset() {
    let (a, b) = mp::Pipe().unwrap();
    a.send_bytes(b"hello world").unwrap();
    let mut small = [0u8; 4];
    match b.recv_bytes_into(&mut small) {
        Err(Error::BufferTooShort { message }) => assert_eq!(message, b"hello world"),
        other => panic!("expected BufferTooShort, got {other:?}"),
    }
    assert_eq!(small, [0; 4], "short buffer untouched");
    // still usable afterwards: the whole message was consumed
    a.send_bytes(b"abc").unwrap();
    let mut buf = [9u8; 10];
    let n = b.recv_bytes_into(&mut buf[3..]).unwrap();
    assert_eq!(n, 3);
    assert_eq!(buf, [9, 9, 9, b'a', b'b', b'c', 9, 9, 9, 9]);
    // exact fit and empty message
    a.send_bytes(b"1234").unwrap();
    assert_eq!(b.recv_bytes_into(&mut small).unwrap(), 4);
    assert_eq!(&small, b"1234");
    a.send_bytes(b"").unwrap();
    assert_eq!(b.recv_bytes_into(&mut small).unwrap(), 0);
    // send_bytes with offset/size = slicing
    let data = b"0123456789";
    a.send_bytes(&data[2..2 + 5]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"23456");
    drop(a);
    assert!(matches!(b.recv_bytes_into(&mut buf), Err(Error::Eof)));
}

#[test]
fn recv_bytes_max_too_long_makes_connection_unusable() {
    let (a, b) = mp::Pipe().unwrap();
    a.send_bytes(b"short").unwrap();
    assert_eq!(b.recv_bytes_max(5).unwrap(), b"short");
    a.send_bytes(&[1u8; 6]).unwrap();
    a.send_bytes(b"x").unwrap();
    assert!(matches!(
        b.recv_bytes_max(5),
        Err(Error::MessageTooLarge { len: 6, max: 5 })
    ));
    assert!(b.recv_bytes().is_err());
    assert!(b.recv::<u8>().is_err());
    assert!(b.recv_bytes_into(&mut [0u8; 10]).is_err());
}

#[test]
fn large_header_form_is_read() {
    // CPython's large form: -1, then an 8-byte length (used above 2 GiB; readers accept
    // it for any length). Written by hand on one end of a socketpair.
    let (s, r) = std::os::unix::net::UnixStream::pair().unwrap();
    let b = Connection::from_unix_stream(r);
    let mut frame = (-1i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&5u64.to_be_bytes());
    frame.extend_from_slice(b"hello");
    // and a large-form header announcing more than 2 GiB, refused by maxlength
    frame.extend_from_slice(&(-1i32).to_be_bytes());
    frame.extend_from_slice(&0x8000_0000u64.to_be_bytes());
    std::io::Write::write_all(&mut &s, &frame).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"hello");
    assert!(matches!(
        b.recv_bytes_max(1 << 20),
        Err(Error::MessageTooLarge {
            len: 0x8000_0000,
            ..
        })
    ));
    let (h, n) = mp::reduction::frame_header(0x8000_0000);
    assert_eq!(n, 12);
    assert_eq!(&h[..4], &[0xff; 4]);
    let (h, n) = mp::reduction::frame_header(0x7fff_ffff);
    assert_eq!((n, &h[..4]), (4, &[0x7f, 0xff, 0xff, 0xff][..]));
}

#[mp::task]
fn sleep_then_send(conn: Connection, ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    conn.send(&"late".to_string()).unwrap();
}

#[test]
fn poll_zero_finite_none_and_closed_peer() {
    let (a, b) = mp::Pipe().unwrap();
    assert!(!a.poll(Some(Duration::ZERO)).unwrap());
    let t0 = Instant::now();
    assert!(!a.poll(Some(Duration::from_millis(100))).unwrap());
    assert!(t0.elapsed() >= Duration::from_millis(95));
    let p = mp::Process::new(sleep_then_send, (b, 200u64));
    p.start().unwrap();
    // None: blocks until the child's message arrives (bounded by the child's own sleep)
    assert!(a.poll(None).unwrap());
    assert_eq!(a.recv::<String>().unwrap(), "late");
    join(&p);
    // the child ended: EOF is ready
    assert!(a.poll(Some(Duration::ZERO)).unwrap());
    assert!(matches!(a.recv::<String>(), Err(Error::Eof)));
    // wrong direction for poll on a simplex writer
    let (_r, w) = mp::pipe(false).unwrap();
    assert!(w.poll(Some(Duration::ZERO)).is_err());
}

#[test]
fn simplex_refuses_wrong_direction_and_close_semantics() {
    let (r, w) = mp::pipe(false).unwrap();
    assert!((r.readable(), r.writable(), w.readable(), w.writable()) == (true, false, false, true));
    assert!(matches!(r.send(&1), Err(Error::InvalidState(_))));
    assert!(matches!(r.send_bytes(b"x"), Err(Error::InvalidState(_))));
    assert!(matches!(w.recv::<i32>(), Err(Error::InvalidState(_))));
    assert!(matches!(w.recv_bytes(), Err(Error::InvalidState(_))));
    assert!(r.fileno().unwrap() >= 0);
    assert!(!r.closed());
    r.close().unwrap();
    assert!(r.closed());
    r.close().unwrap();
    assert!(r.fileno().is_err());
    assert!(r.recv_bytes().is_err());
    // the reader is gone: sending fails with an I/O error, no SIGPIPE
    assert!(matches!(w.send_bytes(b"x"), Err(Error::Io(_))));
}

#[mp::task]
fn receive_a_connection_and_use_it(conn: Connection) {
    let passed: Connection = conn.recv().unwrap();
    let n: u32 = passed.recv().unwrap();
    passed.send(&(n * 2)).unwrap();
    conn.send(&"done".to_string()).unwrap();
}

#[test]
fn connection_sent_over_connection_to_child_every_start_method() {
    for ctx in contexts() {
        let (a, b) = ctx.pipe(true).unwrap();
        let p = ctx.process(receive_a_connection_and_use_it, (b,));
        p.start().unwrap();
        let (x, y) = ctx.pipe(true).unwrap();
        a.send(&x).unwrap();
        drop(x);
        y.send(&21u32).unwrap();
        assert_eq!(recv_t::<u32>(&y).unwrap(), 42, "{ctx:?}");
        assert_eq!(recv_t::<String>(&a).unwrap(), "done");
        join(&p);
        // the child was the last holder of x: y sees EOF
        assert!(y.poll(Some(T)).unwrap());
        assert!(matches!(y.recv::<u32>(), Err(Error::Eof)));
    }
}

#[test]
fn concurrent_senders_never_interleave_frames() {
    let (a, b) = mp::Pipe().unwrap();
    const SIZE: usize = 300_000; // larger than the socket buffer: writes are split
    const PER_THREAD: usize = 20;
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let a = a.clone();
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    a.send_bytes(&vec![t; SIZE]).unwrap();
                }
            })
        })
        .collect();
    let mut counts = [0usize; 4];
    for _ in 0..4 * PER_THREAD {
        assert!(b.poll(Some(T)).unwrap());
        let m = b.recv_bytes().unwrap();
        assert_eq!(m.len(), SIZE);
        assert!(m.iter().all(|&x| x == m[0]), "frames interleaved");
        counts[m[0] as usize] += 1;
    }
    assert_eq!(counts, [PER_THREAD; 4]);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn codec_error_on_wrong_type_keeps_connection() {
    let (a, b) = mp::Pipe().unwrap();
    a.send(&"not a number at all".to_string()).unwrap();
    assert!(matches!(
        b.recv::<(u64, u64, u64, u64)>(),
        Err(Error::Codec(_))
    ));
    a.send(&5u8).unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 5);
    // a connection cannot leak through a foreign serde format
    assert!(mp::codec::encode(&a).is_err());
}

// ---------- listeners and clients ----------

#[mp::task]
fn client_task(address: Address, key: Option<Vec<u8>>, msg: String) -> String {
    match Client::connect(&address, key.as_deref()) {
        Ok(conn) => {
            conn.send(&msg).unwrap();
            conn.recv::<String>().unwrap()
        }
        Err(e) => format!("client error: {}", e.variant_name()),
    }
}

fn serve_one(l: &Listener) -> mp::Result<()> {
    let c = l.accept()?;
    let m: String = recv_t(&c)?;
    c.send(&m.to_uppercase())
}

#[test]
fn listener_client_unix_default_address() {
    let l = Listener::bind(None, 5, None).unwrap();
    let Address::Unix(path) = l.address() else {
        panic!("default address should be a Unix path")
    };
    let dir = path.parent().unwrap().to_path_buf();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "private directory");
    }
    assert!(l.last_accepted().is_none());
    let h = mp::spawn(client_task, (l.address(), None, "hi".to_string())).unwrap();
    serve_one(&l).unwrap();
    assert_eq!(h.join_timeout(T).unwrap(), "HI");
    assert!(matches!(l.last_accepted(), Some(Address::Unix(_))));
    l.close().unwrap();
    assert!(
        !path.exists() && !dir.exists(),
        "socket and directory removed"
    );
    assert!(l.accept().is_err());
    l.close().unwrap();
}

#[test]
fn listener_client_tcp_with_authkey_and_wrong_key() {
    let key = b"secret password".to_vec();
    let l = Listener::bind(Some("127.0.0.1:0".parse().unwrap()), 2, Some(&key)).unwrap();
    let addr = l.address();
    let Address::Inet(host, port) = &addr else {
        panic!()
    };
    assert_eq!(host, "127.0.0.1");
    assert_ne!(*port, 0);

    // wrong key: both sides fail with Authentication
    let h = mp::spawn(
        client_task,
        (addr.clone(), Some(b"wrong".to_vec()), "x".into()),
    )
    .unwrap();
    assert!(matches!(l.accept(), Err(Error::Authentication(_))));
    assert_eq!(h.join_timeout(T).unwrap(), "client error: Authentication");

    // a raw peer that answers the challenge with a bogus digest is refused too
    let s = std::net::TcpStream::connect(addr.to_string().as_str()).unwrap();
    let raw = Connection::from_tcp_stream(s);
    let t = std::thread::spawn(move || {
        let challenge = raw.recv_bytes().unwrap();
        assert!(challenge.starts_with(b"#CHALLENGE#{sha256}"));
        assert_eq!(challenge.len(), 11 + 8 + 40);
        raw.send_bytes(b"{sha256}0123456789012345678901234567890Z")
            .unwrap();
        raw.recv_bytes().unwrap()
    });
    assert!(matches!(l.accept(), Err(Error::Authentication(_))));
    assert_eq!(t.join().unwrap(), b"#FAILURE#");

    // the listener keeps serving: right key works
    let h = mp::spawn(client_task, (addr.clone(), Some(key.clone()), "ok".into())).unwrap();
    serve_one(&l).unwrap();
    assert_eq!(h.join_timeout(T).unwrap(), "OK");
    assert!(matches!(l.last_accepted(), Some(Address::Inet(h, _)) if h == "127.0.0.1"));

    // empty key is a key like any other
    let l2 = Listener::bind(Some(Address::Inet("localhost".into(), 0)), 1, Some(b"")).unwrap();
    let h = mp::spawn(client_task, (l2.address(), Some(vec![]), "e".into())).unwrap();
    serve_one(&l2).unwrap();
    assert_eq!(h.join_timeout(T).unwrap(), "E");
    let h = mp::spawn(client_task, (l2.address(), Some(b"x".to_vec()), "e".into())).unwrap();
    assert!(matches!(l2.accept(), Err(Error::Authentication(_))));
    assert_eq!(h.join_timeout(T).unwrap(), "client error: Authentication");
}

#[test]
fn listener_explicit_unix_path_removed_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sock");
    let l = Listener::bind(Some(Address::Unix(path.clone())), 1, Some(b"k")).unwrap();
    assert_eq!(l.address(), Address::Unix(path.clone()));
    let p2 = path.clone();
    let t = std::thread::spawn(move || {
        let c = mp::client(p2.as_path(), Some(b"k")).unwrap();
        c.send(&7i64).unwrap();
    });
    let c = l.accept().unwrap();
    assert_eq!(recv_t::<i64>(&c).unwrap(), 7);
    t.join().unwrap();
    assert!(path.exists());
    drop(l);
    assert!(!path.exists());
    // connecting to nothing is an error, not a panic
    assert!(Client::connect(path.as_path(), None).is_err());
}

#[test]
fn address_parsing() {
    assert_eq!(
        "localhost:6000".parse::<Address>().unwrap(),
        Address::Inet("localhost".into(), 6000)
    );
    assert_eq!(
        "[::1]:80".parse::<Address>().unwrap(),
        Address::Inet("::1".into(), 80)
    );
    assert_eq!(
        "/tmp/x:1".parse::<Address>().unwrap(),
        Address::Unix("/tmp/x:1".into())
    );
    assert_eq!(
        "sock".parse::<Address>().unwrap(),
        Address::Unix("sock".into())
    );
    assert!("".parse::<Address>().is_err());
    assert_eq!(Address::Inet("h".into(), 1).to_string(), "h:1");
}

#[mp::task]
fn answer_in_child(conn: Connection, key: Vec<u8>) -> bool {
    answer_challenge(&conn, &key).is_ok()
}

#[test]
fn challenge_over_a_pipe_with_a_child() {
    let (a, b) = mp::Pipe().unwrap();
    let h = mp::spawn(answer_in_child, (b, b"abc".to_vec())).unwrap();
    deliver_challenge(&a, b"abc").unwrap();
    assert!(h.join_timeout(T).unwrap());
    let (a, b) = mp::Pipe().unwrap();
    let h = mp::spawn(answer_in_child, (b, b"abd".to_vec())).unwrap();
    assert!(matches!(
        deliver_challenge(&a, b"abc"),
        Err(Error::Authentication(_))
    ));
    assert!(!h.join_timeout(T).unwrap());
}

// ---------- wait ----------

#[mp::task]
fn producer(w: Connection, i: u32) {
    for j in 0..10u32 {
        w.send(&(i, j)).unwrap();
    }
    w.close().unwrap();
}

#[test]
fn wait_docs_example_four_producers_every_start_method() {
    for ctx in contexts() {
        let mut readers = Vec::new();
        let mut procs = Vec::new();
        for i in 0..4 {
            let (r, w) = ctx.pipe(false).unwrap();
            let p = ctx.process(producer, (w, i));
            p.start().unwrap();
            readers.push(r);
            procs.push(p);
        }
        let mut got = Vec::new();
        let deadline = Instant::now() + T;
        while !readers.is_empty() {
            let refs: Vec<&dyn mp::Waitable> = readers.iter().map(|r| r as _).collect();
            let ready = mp::wait(&refs, Some(deadline - Instant::now())).unwrap();
            assert!(!ready.is_empty(), "wait timed out");
            for &i in ready.iter().rev() {
                match readers[i].recv::<(u32, u32)>() {
                    Ok(m) => got.push(m),
                    Err(Error::Eof) => {
                        readers.remove(i);
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        got.sort();
        let want: Vec<(u32, u32)> = (0..4).flat_map(|i| (0..10).map(move |j| (i, j))).collect();
        assert_eq!(got, want, "{ctx:?}");
        for p in &procs {
            join(p);
        }
    }
}

#[mp::task]
fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn wait_on_sentinels_listeners_sockets() {
    let (a, b) = mp::Pipe().unwrap();
    let l = Listener::bind(Some(Address::Inet("127.0.0.1".into(), 0)), 1, None).unwrap();
    let (s1, s2) = std::os::unix::net::UnixStream::pair().unwrap();
    let p = mp::Process::new(sleep_ms, (150u64,));
    p.start().unwrap();
    let sentinel = p.sentinel().unwrap();
    let objs: [&dyn mp::Waitable; 5] = [&a, &l, &s1, &sentinel, &Sentinel(sentinel)];
    // zero timeout polls
    assert!(mp::wait(&objs, Some(Duration::ZERO)).unwrap().is_empty());
    // finite timeout elapses
    let t0 = Instant::now();
    assert!(mp::wait(&objs[..3], Some(Duration::from_millis(50)))
        .unwrap()
        .is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(45));
    // the sentinel becomes ready when the process ends
    assert_eq!(mp::wait(&objs, Some(T)).unwrap(), [3, 4]);
    join(&p);
    // a client waiting makes the listener ready; data makes sockets ready
    let _c = Client::connect(l.address(), None).unwrap();
    std::io::Write::write_all(&mut &s2, b"x").unwrap();
    b.send(&1).unwrap();
    assert_eq!(mp::wait(&objs[..3], Some(T)).unwrap(), [0, 1, 2]);
    // closed peer counts as ready
    let (c, d) = mp::Pipe().unwrap();
    drop(d);
    assert_eq!(mp::wait(&[&c], None).unwrap(), [0]);
    // a closed connection is an error, not a hang
    c.close().unwrap();
    assert!(mp::wait(&[&c], Some(Duration::ZERO)).is_err());
    let _ = s1.as_raw_fd();
}

#[test]
fn wait_retries_eintr() {
    // a signal delivered to the waiting thread interrupts poll(); wait must resume
    extern "C" fn noop(_: libc::c_int) {}
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = noop as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = 0; // no SA_RESTART: poll returns EINTR
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
    let (a, _b) = mp::Pipe().unwrap();
    let tid = unsafe { libc::pthread_self() };
    let t = std::thread::spawn(move || {
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(30));
            unsafe { libc::pthread_kill(tid, libc::SIGUSR1) };
        }
    });
    let t0 = Instant::now();
    let r = mp::wait(&[&a], Some(Duration::from_millis(300))).unwrap();
    assert!(r.is_empty());
    assert!(
        t0.elapsed() >= Duration::from_millis(290),
        "{:?}",
        t0.elapsed()
    );
    t.join().unwrap();
}

// ------------------------------------------------------------------------------------
// Issue 9 item 9: a client that connects and says nothing does not hold up `accept`.

/// `l.accept()` with a bound: a regression fails instead of hanging the test (the
/// stuck `accept` is left behind on its own thread).
fn accept_within(l: &Arc<Listener>, bound: Duration) -> mp::Result<Connection> {
    let (tx, rx) = std::sync::mpsc::channel();
    let l = l.clone();
    std::thread::spawn(move || {
        let _ = tx.send(l.accept());
    });
    rx.recv_timeout(bound)
        .unwrap_or_else(|_| panic!("accept did not return within {bound:?}"))
}

#[mp::task]
fn connect_and_send(address: Address, key: Vec<u8>, msg: String) {
    let c = Client::connect(&address, Some(&key)).unwrap();
    c.send(&msg).unwrap();
}

/// A raw socket connected to `address` that never sends a byte.
enum Raw {
    Unix(std::os::unix::net::UnixStream),
    Tcp(std::net::TcpStream),
}

fn raw_connect(address: &Address) -> Raw {
    match address {
        Address::Unix(p) => Raw::Unix(std::os::unix::net::UnixStream::connect(p).unwrap()),
        Address::Inet(h, port) => {
            Raw::Tcp(std::net::TcpStream::connect((h.as_str(), *port)).unwrap())
        }
    }
}

impl Raw {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        match self {
            Raw::Unix(s) => s.write_all(b),
            Raw::Tcp(s) => s.write_all(b),
        }
    }
}

#[test]
fn silent_client_does_not_block_accept_every_start_method() {
    let key = b"handshake deadline".to_vec();
    for_each_method(|ctx| {
        for addr in [None, Some(Address::Inet("127.0.0.1".into(), 0))] {
            let l = Arc::new(Listener::bind(addr, 4, Some(&key)).unwrap());
            l.set_handshake_timeout(Some(Duration::from_millis(300)));
            assert_eq!(l.handshake_timeout(), Some(Duration::from_millis(300)));
            // two clients that connect and never speak, queued before the real one
            let silent = [raw_connect(&l.address()), raw_connect(&l.address())];
            let p = ctx.process(
                connect_and_send,
                (l.address(), key.clone(), "hi".to_string()),
            );
            p.start().unwrap();
            let (conn, took) = timed(|| accept_within(&l, Duration::from_secs(10)));
            let conn = conn.unwrap();
            assert_eq!(recv_t::<String>(&conn).unwrap(), "hi");
            assert!(took < Duration::from_secs(5), "accepted after {took:?}");
            join(&p);
            drop(silent);
        }
    });
}

#[test]
fn slow_and_vanishing_clients_are_dropped_and_accept_goes_on() {
    let key = b"k".to_vec();
    let l = Arc::new(Listener::bind(None, 4, Some(&key)).unwrap());
    l.set_handshake_timeout(Some(Duration::from_millis(400)));
    // one that hangs up at once, one that drips a byte every 100 ms forever
    drop(raw_connect(&l.address()));
    let mut drip = raw_connect(&l.address());
    // a frame header announcing a 100-byte answer, whose bytes then trickle in
    drip.write_all(&100u32.to_be_bytes()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dripper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if drip.write_all(&[0]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let address = l.address();
    let k2 = key.clone();
    let client = std::thread::spawn(move || {
        let c = Client::connect(&address, Some(&k2)).unwrap();
        c.send(&7u32).unwrap();
    });
    let (conn, took) = timed(|| accept_within(&l, Duration::from_secs(10)));
    assert_eq!(recv_t::<u32>(&conn.unwrap()).unwrap(), 7);
    assert!(took < Duration::from_secs(4), "accepted after {took:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    client.join().unwrap();
    dripper.join().unwrap();
    // a wrong key still fails that accept (CPython's AuthenticationError)
    let address = l.address();
    let bad = std::thread::spawn(move || Client::connect(&address, Some(b"wrong")).is_err());
    assert!(matches!(
        accept_within(&l, T),
        Err(Error::Authentication(_))
    ));
    assert!(bad.join().unwrap());
}

#[test]
fn default_handshake_deadline_is_a_few_seconds() {
    let key = b"default".to_vec();
    let l = Arc::new(Listener::bind(None, 2, Some(&key)).unwrap());
    assert_eq!(l.handshake_timeout(), Some(Duration::from_secs(5)));
    let _silent = raw_connect(&l.address());
    let address = l.address();
    let k2 = key.clone();
    let client = std::thread::spawn(move || {
        let c = Client::connect(&address, Some(&k2)).unwrap();
        c.send(&1u8).unwrap();
    });
    let (conn, took) = timed(|| accept_within(&l, Duration::from_secs(12)));
    assert_eq!(recv_t::<u8>(&conn.unwrap()).unwrap(), 1);
    assert!(took < Duration::from_secs(9), "accepted after {took:?}");
    client.join().unwrap();
    // None: no deadline (CPython's behaviour), settable back
    let l = Listener::bind(None, 1, Some(&key))
        .unwrap()
        .with_handshake_timeout(None);
    assert_eq!(l.handshake_timeout(), None);
}

#[test]
fn many_silent_clients_are_handled_concurrently() {
    // ten silent clients before a good one: their deadlines run side by side, so the
    // good client is accepted at once, not after ten deadlines one after another
    let key = b"many".to_vec();
    let l = Arc::new(Listener::bind(None, 32, Some(&key)).unwrap());
    l.set_handshake_timeout(Some(Duration::from_secs(3)));
    let silent: Vec<_> = (0..10).map(|_| raw_connect(&l.address())).collect();
    let address = l.address();
    let k2 = key.clone();
    let client = std::thread::spawn(move || {
        let c = Client::connect(&address, Some(&k2)).unwrap();
        c.send(&5u16).unwrap();
    });
    let (conn, took) = timed(|| accept_within(&l, Duration::from_secs(40)));
    assert_eq!(recv_t::<u16>(&conn.unwrap()).unwrap(), 5);
    assert!(took < Duration::from_secs(3), "accepted after {took:?}");
    client.join().unwrap();
    drop(silent);
    // two good clients at once: whichever handshake accept does not return first
    // (finished on its own thread, or still in the backlog) makes wait() report the
    // listener, and the next accept returns it
    let spawn_client = |n: u16| {
        let address = l.address();
        let key = key.clone();
        std::thread::spawn(move || {
            let c = Client::connect(&address, Some(&key)).unwrap();
            c.send(&n).unwrap();
            c
        })
    };
    let (g1, g2) = (spawn_client(1), spawn_client(2));
    let first = recv_t::<u16>(&accept_within(&l, T).unwrap()).unwrap();
    assert_eq!(mp::wait(&[&*l], Some(T)).unwrap(), [0]);
    let second = recv_t::<u16>(&accept_within(&l, T).unwrap()).unwrap();
    let mut got = [first, second];
    got.sort();
    assert_eq!(got, [1, 2]);
    drop((g1.join().unwrap(), g2.join().unwrap()));
}

#[test]
fn close_wakes_an_accept_waiting_for_handshakes() {
    for key in [None, Some(b"k".to_vec())] {
        let l = Arc::new(Listener::bind(None, 4, key.as_deref()).unwrap());
        let _silent = raw_connect(&l.address()); // a handshake in flight (with a key)
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = l.clone();
        std::thread::spawn(move || {
            // without a key the silent client is accepted at once: accept again
            let r = l2.accept().and_then(|_| l2.accept());
            let _ = tx.send(r.is_err());
        });
        std::thread::sleep(Duration::from_millis(100)); // let it block in accept
        l.close().unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "{key:?}");
    }
}

#[mp::task]
fn burst_with_handles(conn: Connection) {
    // everything sent before the parent reads: small frames, frames carrying
    // descriptors, and frames longer than the read buffer, back to back
    for i in 0..6u32 {
        let (x, y) = mp::Pipe().unwrap();
        x.send(&format!("via {i}")).unwrap();
        conn.send(&(i, y)).unwrap();
        conn.send(&i).unwrap();
        conn.send_bytes(&vec![i as u8; 100_000 + i as usize])
            .unwrap();
    }
    conn.send_bytes(b"end").unwrap();
    let _ = conn.recv::<u8>();
}

#[test]
fn buffered_frames_keep_their_descriptors_and_order() {
    for ctx in contexts() {
        let (a, b) = ctx.pipe(true).unwrap();
        let p = ctx.process(burst_with_handles, (b,));
        p.start().unwrap();
        // let the child run ahead: several frames pile up in the socket
        assert!(a.poll(Some(T)).unwrap());
        for i in 0..6u32 {
            let (j, y): (u32, Connection) = recv_t(&a).unwrap();
            assert_eq!(j, i);
            assert_eq!(recv_t::<String>(&y).unwrap(), format!("via {i}"));
            assert_eq!(recv_t::<u32>(&a).unwrap(), i);
            assert!(a.poll(Some(T)).unwrap());
            assert_eq!(a.recv_bytes().unwrap(), vec![i as u8; 100_000 + i as usize]);
        }
        assert!(a.poll(Some(T)).unwrap());
        assert_eq!(a.recv_bytes().unwrap(), b"end");
        a.send(&0u8).unwrap();
        join(&p);
    }
}

#[test]
fn a_message_in_the_read_buffer_is_ready_for_poll_and_wait() {
    let (a, b) = mp::Pipe().unwrap();
    let (c, _d) = mp::Pipe().unwrap();
    for i in 0..3u32 {
        b.send(&i).unwrap();
    }
    // one read takes all three frames; the socket itself is then empty
    assert_eq!(a.recv::<u32>().unwrap(), 0);
    assert!(a.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(mp::wait(&[&c, &a], Some(Duration::ZERO)).unwrap(), [1]);
    assert_eq!(mp::wait(&[&c, &a], None).unwrap(), [1]);
    // bytes not yet taken: the connection cannot be handed to another process
    let (e, f) = mp::Pipe().unwrap();
    assert!(matches!(e.send(&a), Err(Error::Codec(_))));
    assert_eq!(a.recv::<u32>().unwrap(), 1);
    assert_eq!(a.recv::<u32>().unwrap(), 2);
    assert!(!a.poll(Some(Duration::ZERO)).unwrap());
    e.send(&a).unwrap();
    let a2: Connection = recv_t(&f).unwrap();
    b.send(&9u32).unwrap();
    assert_eq!(recv_t::<u32>(&a2).unwrap(), 9);
}

#[mp::task]
fn echo_spin(conn: Connection) {
    conn.send(&conn.spin()).unwrap();
    // until told to stop (under fork the child holds a copy of the parent's end too,
    // so the parent closing it is no end of file here)
    while let Ok(v) = conn.recv::<u64>() {
        if v == u64::MAX || conn.send(&v).is_err() {
            break;
        }
    }
}

#[test]
fn low_latency_mode_travels_with_the_connection_and_round_trips() {
    for ctx in contexts() {
        let (a, b) = ctx.pipe(true).unwrap();
        let bound = Some(Duration::from_micros(30));
        a.set_spin(bound);
        b.set_spin(bound);
        let p = ctx.process(echo_spin, (b,));
        p.start().unwrap();
        assert_eq!(recv_t::<Option<Duration>>(&a).unwrap(), bound);
        for i in 0..2000u64 {
            a.send(&i).unwrap();
            // no poll first: the spin, then the blocking read, must deliver it
            assert_eq!(a.recv::<u64>().unwrap(), i);
        }
        a.set_spin(None);
        assert_eq!(a.spin(), None);
        a.send(&7u64).unwrap();
        assert_eq!(recv_t::<u64>(&a).unwrap(), 7);
        a.send(&u64::MAX).unwrap();
        join(&p);
    }
}

#[test]
fn the_handshake_reads_nothing_past_itself() {
    // the managers' pattern: authenticate on a Connection over a duplicate of the
    // socket, then read the socket directly; a message sent right after the handshake
    // must still be in the socket, not in the dropped Connection's read buffer
    use std::io::Read;
    let (s1, s2) = std::os::unix::net::UnixStream::pair().unwrap();
    let peer = std::thread::spawn(move || {
        let c = Connection::from_unix_stream(s2);
        answer_challenge(&c, b"key").unwrap();
        deliver_challenge(&c, b"key").unwrap();
        c.send_bytes(b"right after").unwrap();
        c
    });
    let c = Connection::from_unix_stream(s1.try_clone().unwrap());
    deliver_challenge(&c, b"key").unwrap();
    answer_challenge(&c, b"key").unwrap();
    let _peer = peer.join().unwrap();
    drop(c);
    s1.set_read_timeout(Some(T)).unwrap();
    let mut frame = [0u8; 15];
    (&s1).read_exact(&mut frame).unwrap();
    assert_eq!(&frame[..4], &11u32.to_be_bytes());
    assert_eq!(&frame[4..], b"right after");
}

#[test]
fn a_forked_child_refuses_a_connection_its_parent_read_ahead_on() {
    // the parent's read buffer holds the second message (no longer in the socket): a
    // forked child can neither deliver it (it is the parent's) nor read on after it, so
    // its copy refuses to read, clearly; the parent keeps its message
    let ctx = mp::get_context(Some(mp::StartMethod::Fork)).unwrap();
    let (r, w) = mp::Pipe().unwrap();
    let (report_r, report_w) = mp::Pipe().unwrap();
    w.send(&"first".to_string()).unwrap();
    w.send(&"second".to_string()).unwrap();
    // one read takes both: the second waits in r's read buffer, the socket is empty
    assert_eq!(recv_t::<String>(&r).unwrap(), "first");
    assert!(r.poll(Some(Duration::ZERO)).unwrap());
    let theirs = r.clone();
    let p = mp::Process::from_closure(move || {
        let polled = theirs.poll(Some(Duration::from_millis(300)));
        let got = theirs.recv::<String>();
        report_w
            .send(&(format!("{polled:?}"), format!("{got:?}")))
            .unwrap();
    })
    .with_context(ctx);
    p.start().unwrap();
    let (polled, got): (String, String) = recv_t(&report_r).unwrap();
    assert!(
        polled.starts_with("Err(InvalidState"),
        "child's poll: {polled}"
    );
    assert!(got.starts_with("Err(InvalidState"), "child's recv: {got}");
    join(&p);
    // the parent still has its own, and reads on
    assert_eq!(r.recv::<String>().unwrap(), "second");
    w.send(&"third".to_string()).unwrap();
    assert_eq!(recv_t::<String>(&r).unwrap(), "third");
}

#[test]
fn a_forked_child_reads_a_connection_its_parent_left_empty() {
    // the common case: the parent read nothing ahead (or everything it read was taken)
    let ctx = mp::get_context(Some(mp::StartMethod::Fork)).unwrap();
    let (r, w) = mp::Pipe().unwrap();
    let (report_r, report_w) = mp::Pipe().unwrap();
    w.send(&1u32).unwrap();
    assert_eq!(recv_t::<u32>(&r).unwrap(), 1);
    let theirs = r.clone();
    let p = mp::Process::from_closure(move || {
        report_w.send(&theirs.recv::<u32>().unwrap()).unwrap();
    })
    .with_context(ctx);
    p.start().unwrap();
    w.send(&2u32).unwrap();
    assert_eq!(recv_t::<u32>(&report_r).unwrap(), 2);
    join(&p);
}
