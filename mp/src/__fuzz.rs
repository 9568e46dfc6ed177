//! Fuzzing entry points (issue 13). Not a public API.
//!
//! Each function feeds arbitrary bytes to one of `mp`'s real decoders the way a hostile
//! or broken peer would deliver them: through a socketpair into a real [`Connection`],
//! a manager channel or a pool worker's loop, into a queue ring's shared memory, into a
//! shared-memory segment a `ShareableList` attaches to. None of them may panic, hang or
//! allocate without bound, whatever the bytes. The targets in `fuzz/` call them (one
//! each), and `tests/fuzz_regressions.rs` replays the inputs the fuzzer found with the
//! same functions, so a crasher stays a test of the normal suite.
//!
//! Inputs that carry several messages use [`messages`]: a `u16` big-endian length,
//! then that many bytes, repeated (a short last one takes what is left). The first
//! byte of most inputs picks a mode: its low bit chooses between that message list
//! framed as CPython frames (`1`) and the raw bytes written as they are (`0`).
//!
//! Deliberately not exercised: tasks other than this module's own [`fuzz_task`]
//! (a chunk or payload naming another registered task would really run it, e.g. a
//! manager server), and manager typeids that block by design (`Queue.get` waits
//! forever, as in Python).

use crate::codec::{self, ByteBuf};
use crate::connection::{answer_challenge, deliver_challenge, Connection};
use crate::error::Error;
use crate::reduction::FdKind;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;

/// The authkey every handshake target uses.
pub const KEY: &[u8] = b"fuzz-key";

/// A registered task whose arguments cover plain data and handles (a handle's bytes
/// name descriptors the message may or may not carry). It touches each handle once,
/// without waiting: a handle decoded from hostile bytes reads hostile shared memory.
#[crate::task]
pub fn fuzz_task(
    a: u64,
    s: String,
    b: ByteBuf,
    c: Option<Connection>,
    q: Option<crate::Queue<u8>>,
    l: Option<crate::Lock>,
) -> u64 {
    let zero = std::time::Duration::ZERO;
    if let Some(c) = &c {
        let _ = c.poll(Some(zero));
    }
    if let Some(q) = &q {
        let _ = (q.qsize(), q.empty(), q.get_timeout(zero));
    }
    if let Some(l) = &l {
        if l.try_acquire() {
            let _ = l.release();
        }
    }
    a.wrapping_add(s.len() as u64).wrapping_add(b.len() as u64)
}

/// The registered name of [`fuzz_task`] (what a payload or chunk must name to run it).
pub fn fuzz_task_name() -> &'static str {
    fn name_of<F: 'static>(_: F) -> &'static str {
        crate::spawn::task_name_of::<F>().expect("fuzz_task is registered")
    }
    name_of(fuzz_task)
}

fn ignore_sigpipe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions. A fuzz
    // binary's `main` is libFuzzer's, which (unlike Rust's) leaves SIGPIPE fatal; a
    // write to a peer that hung up must be an EPIPE error here, as in a Rust program.
    ONCE.call_once(|| unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    });
}

/// Splits `data` into messages: `[len: u16 BE][len bytes]`, repeated.
pub fn messages(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let len = (u16::from_be_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
        out.push(&data[2..2 + len]);
        data = &data[2 + len..];
    }
    out
}

/// Messages as CPython frames (a 4-byte big-endian length, then the bytes).
pub fn frames<'a>(msgs: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&(m.len() as u32).to_be_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// The bytes a peer sends for `data`: mode byte's low bit 1 = framed messages, 0 = raw.
fn stream_bytes(mode: u8, rest: &[u8]) -> Vec<u8> {
    if mode & 1 == 1 {
        frames(messages(rest))
    } else {
        rest.to_vec()
    }
}

/// A hostile peer on `stream`: writes `bytes` (then shuts its write side), and reads and
/// drops whatever the side under test sends until that side closes, so that side never
/// blocks on a full socket.
fn peer(stream: UnixStream, bytes: Vec<u8>) -> JoinHandle<()> {
    ignore_sigpipe();
    std::thread::spawn(move || {
        let _ = (&stream).write_all(&bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut sink = [0u8; 4096];
        while matches!((&stream).read(&mut sink), Ok(n) if n > 0) {}
    })
}

/// A `Connection` whose peer sends `bytes`, and the peer's thread.
fn hostile(bytes: Vec<u8>) -> (Connection, JoinHandle<()>) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    (Connection::from_unix_stream(a), peer(b, bytes))
}

/// The connection frame decoder: `Connection::recv_bytes`, `recv_bytes_max`,
/// `recv_bytes_into`, `recv::<T>` and `reduction::read_frame` (the spawned child's
/// payload read), on whatever the peer wrote. The reader is fixed per input: the raw
/// mode reads the descriptor itself and never follows a `Connection` receive, which
/// may have read ahead into its buffer (`poll` reads nothing). A peer sending whole
/// frames (the framed mode) never gets a frame reported cut short.
pub fn frame(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (conn, t) = hostile(stream_bytes(mode, rest));
    for _ in 0..16 {
        let r = match (mode >> 1) % 5 {
            0 => conn.recv_bytes().map(drop),
            1 => conn.recv_bytes_max(64).map(drop),
            2 => conn.recv_bytes_into(&mut [0u8; 64]).map(drop),
            3 => conn
                .recv::<(u32, String, Option<Vec<u8>>, ByteBuf, Option<Connection>)>()
                .map(drop),
            _ => {
                let fd = conn.fileno().and_then(|fd| {
                    // SAFETY: `conn` owns the descriptor and outlives this borrow.
                    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                    crate::reduction::read_frame(fd, FdKind::Socket, 1 << 16)
                });
                fd.map(drop)
            }
        };
        match r {
            Ok(()) | Err(Error::Codec(_)) => {}
            Err(Error::Io(e)) if mode & 1 == 1 && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                panic!("whole frames reported cut short: {e}")
            }
            Err(_) => break,
        }
        let _ = conn.poll(Some(std::time::Duration::ZERO));
    }
    drop(conn);
    t.join().expect("peer thread");
}

/// The serving side of the handshake (`deliver_challenge`) answering a hostile client.
pub fn handshake_server(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (conn, t) = hostile(stream_bytes(mode, rest));
    let _ = deliver_challenge(&conn, KEY);
    drop(conn);
    t.join().expect("peer thread");
}

/// The connecting side of the handshake (`answer_challenge`) answering a hostile
/// server: a `{sha256}` challenge, a legacy 20-byte one, or anything else.
pub fn handshake_client(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (conn, t) = hostile(stream_bytes(mode, rest));
    let r = answer_challenge(&conn, KEY);
    if r.is_ok() && mode & 2 == 2 {
        // the manager's order: then challenge the other side
        let _ = deliver_challenge(&conn, KEY);
    }
    drop(conn);
    t.join().expect("peer thread");
}

/// What a spawned child decodes from its payload (the `Payload`, then — for
/// [`fuzz_task`] only — the task's arguments, with three real descriptors beside them:
/// a size-sealed memfd holding the input, as a shared-memory arena, and a socketpair's
/// two ends), and what the parent decodes from a child's `Outcome`.
pub fn child_payload(data: &[u8]) {
    if let Ok(p) = codec::decode::<crate::spawn::Payload>(data) {
        if let Ok(entry) = crate::spawn::task_by_name(&p.task) {
            if entry.name == fuzz_task_name() {
                let _ = (entry.call)(&p.args, descriptors(data));
            }
        }
    }
    if let Ok(crate::spawn::Outcome::Ok(bytes)) = codec::decode::<crate::spawn::Outcome>(data) {
        let _ = codec::decode::<(u64, String, Vec<u8>)>(&bytes);
    }
}

/// A size-sealed memfd holding `data` (so a handle decoded from the input maps an
/// arena of bytes the input chose) and a socketpair's two ends.
fn descriptors(data: &[u8]) -> Vec<OwnedFd> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let memfd =
        rustix::fs::memfd_create("mp-fuzz", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .expect("memfd_create");
    let mut f = std::fs::File::from(memfd);
    // at least a page, size-sealed: what a shared-memory arena must be to be mapped
    let _ = f.write_all(data);
    let _ = f.set_len((data.len() as u64).max(4096));
    let _ = rustix::fs::fcntl_add_seals(&f, SealFlags::GROW | SealFlags::SHRINK);
    let (a, b) = UnixStream::pair().expect("socketpair");
    vec![f.into(), a.into(), b.into()]
}

/// A pool worker's loop (`pool_worker`) reading hostile task messages: each message of
/// the input is one frame, `ToWorker` encoded (a chunk naming any task other than
/// [`fuzz_task`] is left out). `data[0]` also picks `maxtasksperchild`.
pub fn pool_worker(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let ours = fuzz_task_name();
    let kept = messages(rest).into_iter().filter(|m| {
        match codec::decode::<crate::pool::worker::ToWorker>(m) {
            Ok(crate::pool::worker::ToWorker::Task(t)) => t.task == ours,
            _ => true,
        }
    });
    let (conn, t) = hostile(frames(kept));
    let maxtasks = (mode & 3 != 0).then_some(u64::from(mode & 3));
    crate::pool::worker::pool_worker(conn, None, maxtasks);
    t.join().expect("peer thread");
}

/// What a pool's parent decodes from a worker: a `FromWorker` message, then the
/// chunk's results checked against the chunk (of `data[0]` items).
pub fn pool_result(data: &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    if let Ok(crate::pool::worker::FromWorker::Done { results, .. }) =
        codec::decode_borrowed::<crate::pool::worker::FromWorker<&serde_bytes::Bytes>>(rest)
    {
        let decoded = results
            .map_err(|e| e.into_error("fuzz"))
            .and_then(|b| crate::pool::decode_chunk::<(u64, String)>(b, count as usize));
        if let Ok((_, errors)) = decoded {
            for (_, e) in errors {
                let _ = e.into_error("fuzz");
            }
        }
    }
}

/// Typeids [`manager_server`] lets a hostile client create: the others can block a
/// server thread forever by design (a `Queue.get`, an `Event.wait`).
const NON_BLOCKING: [&str; 5] = ["list", "dict", "Namespace", "Value", "Array"];

/// A manager's server (the builtin `SyncManager` registry, served in this process)
/// reading hostile requests from an authenticated client: each message of the input
/// is one manager frame.
pub fn manager_server(data: &[u8]) {
    use crate::managers::proxy::Request;
    ignore_sigpipe();
    let m = crate::managers::SyncManager::new(None::<crate::Address>, KEY);
    let server = m.get_server().expect("a manager server");
    let serving = {
        let s = server.clone();
        std::thread::spawn(move || s.serve_forever())
    };
    let crate::Address::Unix(path) = server.address() else {
        unreachable!("the default address is a Unix socket")
    };
    let stream = UnixStream::connect(&path).expect("connect to the manager");
    let conn = Connection::from_unix_stream(stream.try_clone().expect("dup"));
    answer_challenge(&conn, KEY).expect("handshake");
    deliver_challenge(&conn, KEY).expect("handshake");
    drop(conn);
    let kept = messages(data)
        .into_iter()
        .filter(|m| match codec::decode::<Request>(m) {
            Ok(Request::Create { typeid, .. }) => NON_BLOCKING.contains(&typeid.as_str()),
            _ => true,
        });
    let _ = (&stream).write_all(&frames(kept));
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    while matches!((&stream).read(&mut sink), Ok(n) if n > 0) {}
    server.shutdown();
    let _ = serving.join().expect("serve_forever");
}

/// The abstract socket name [`manager_client`]'s hostile server listens on (fixed, so
/// that a token in a seed can name it; a pid-suffixed one when it is taken).
pub const CLIENT_ADDRESS: &str = "\0mp-fuzz-manager-client";

fn client_listener() -> (std::os::unix::net::UnixListener, String) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    let fixed = CLIENT_ADDRESS.to_string();
    let other = format!("{fixed}-{}", std::process::id());
    for name in [fixed, other] {
        let addr = SocketAddr::from_abstract_name(&name.as_bytes()[1..]).expect("abstract name");
        if let Ok(l) = UnixListener::bind_addr(&addr) {
            return (l, name);
        }
    }
    panic!("cannot bind the fuzz manager's abstract socket");
}

/// One connection of [`manager_client`]'s server: the handshake (the server's order),
/// then `replies`, then EOF; reads until the client closes.
fn serve_replies(stream: UnixStream, replies: Vec<u8>) {
    let conn = Connection::from_unix_stream(stream.try_clone().expect("dup"));
    let ok = deliver_challenge(&conn, KEY).and_then(|()| answer_challenge(&conn, KEY));
    drop(conn);
    if ok.is_ok() {
        let _ = (&stream).write_all(&replies);
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    while matches!((&stream).read(&mut sink), Ok(n) if n > 0) {}
}

/// A manager client (`connect`, then list and dict proxies and their calls) reading
/// hostile replies from a server that passes the handshake: the input's first message
/// is the reply `connect()` reads on its own channel, the others (one frame each) go
/// to the next connection, the thread's cached channel the proxies use.
pub fn manager_client(data: &[u8]) {
    use std::sync::atomic::{AtomicBool, Ordering};
    ignore_sigpipe();
    let (listener, address) = client_listener();
    let msgs = messages(data);
    let first = frames(msgs.first().copied());
    let rest = frames(msgs.iter().skip(1).copied());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut handlers = Vec::new();
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { break };
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let replies = match n {
                    0 => first.clone(),
                    1 => rest.clone(),
                    _ => Vec::new(),
                };
                handlers.push(std::thread::spawn(move || serve_replies(stream, replies)));
            }
            for h in handlers {
                h.join().expect("connection thread");
            }
        })
    };
    // a thread of its own: the channel cache is per thread, and goes with it
    let client = {
        let address = address.clone();
        std::thread::spawn(move || {
            let m = crate::managers::SyncManager::new(address.as_str(), KEY);
            if m.connect().is_err() {
                return;
            }
            if let Ok(l) = m.list::<u64>(vec![1]) {
                let _ = l.len();
                let _ = l.get(0usize);
                let _ = l.to_vec();
                let _ = l.pop();
            }
            if let Ok(d) = m.dict::<String, Vec<u8>>() {
                let _ = d.get("k".to_string());
                let _ = d.items();
            }
            let _ = m.number_of_objects();
        })
    };
    client.join().expect("client thread");
    stop.store(true, Ordering::Release);
    {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&address.as_bytes()[1..])
            .expect("abstract name");
        let _ = UnixStream::connect_addr(&addr); // wakes the accept loop
    }
    server.join().expect("server thread");
}

/// A queue ring whose counters and entries are the input (as another process could
/// leave them), then pops, pushes and a repair (see `queues::ring::fuzz_entries`).
pub fn queue_ring(data: &[u8]) {
    crate::queues::fuzz_entries(data);
}

/// `ShareableList::attach` on a segment holding the input, then every read (and a
/// write) of the list.
pub fn shareable_list(data: &[u8]) {
    use crate::shared_memory::{Item, ShareableList, SharedMemory};
    let Ok(mut shm) = SharedMemory::create(None, data.len().max(1)) else {
        return;
    };
    shm.buf_mut()[..data.len()].copy_from_slice(data);
    if let Ok(list) = ShareableList::<Item>::attach(shm.name()) {
        let n = list.len().min(64);
        for i in 0..n {
            if let Ok(item) = list.get_item(i) {
                let _ = item.to_string();
            }
        }
        let _ = list.format();
        let _ = list.items();
        let _ = list.count(&Item::Int(0));
        let _ = list.index(&Item::None);
        if n > 0 {
            let _ = list.set_item(0, &Item::Str("x".into()));
            let _ = list.get_item(0);
        }
    }
    let _ = shm.unlink();
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every entry point by its fuzz target's name (`fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: [(&str, Target); 10] = [
    ("frame", frame),
    ("handshake_server", handshake_server),
    ("handshake_client", handshake_client),
    ("child_payload", child_payload),
    ("pool_worker", pool_worker),
    ("pool_result", pool_result),
    ("manager_server", manager_server),
    ("manager_client", manager_client),
    ("queue_ring", queue_ring),
    ("shareable_list", shareable_list),
];

/// Well-formed inputs for `target`, made with the real encoders: the fuzzer's starting
/// corpus (`.ci/fuzz` writes them out) and the replayed "interesting" inputs of
/// `tests/fuzz_regressions.rs`.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    use crate::managers::proxy::{Reply, Request, Token};
    use crate::managers::Value;
    use crate::pool::worker::{FromWorker, ItemError, TaskMsg, ToWorker};
    let enc = |v: &dyn erased::Enc| v.enc();
    let msgs = |mode: Option<u8>, ms: &[&[u8]]| {
        let mut out: Vec<u8> = mode.into_iter().collect();
        for m in ms {
            out.extend_from_slice(&(m.len() as u16).to_be_bytes());
            out.extend_from_slice(m);
        }
        out
    };
    let challenge = |prefix: &[u8], n: usize| [b"#CHALLENGE#", prefix, &vec![7u8; n]].concat();
    let args = enc(&(
        7u64,
        "s".to_string(),
        ByteBuf::from(vec![1, 2]),
        None::<Connection>,
        None::<crate::Queue<u8>>,
        None::<crate::Lock>,
    ));
    match target {
        "frame" => vec![
            msgs(Some(1), &[b"hello", b""]),
            msgs(Some(3), &[&[0u8; 80]]),
            msgs(
                Some(7),
                &[&enc(&(
                    5u32,
                    "s".to_string(),
                    Some(vec![1u8]),
                    ByteBuf::from(vec![2]),
                    0u8,
                ))],
            ),
            msgs(Some(9), &[b"payload"]),
            vec![0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3],
        ],
        "handshake_client" => vec![
            msgs(Some(1), &[&challenge(b"{sha256}", 40), b"#WELCOME#"]),
            msgs(Some(1), &[&challenge(b"", 20), b"#WELCOME#"]),
            msgs(
                Some(3),
                &[&challenge(b"{sha256}", 40), b"#WELCOME#", &[0u8; 40]],
            ),
            msgs(Some(1), &[&challenge(b"{md5}", 40), b"#FAILURE#"]),
        ],
        "handshake_server" => vec![
            msgs(Some(1), &[&[b"{sha256}".as_slice(), &[0u8; 32]].concat()]),
            msgs(Some(1), &[&[0u8; 16]]),
            msgs(Some(1), &[&[b"{md5}".as_slice(), &[0u8; 16]].concat()]),
            msgs(Some(1), &[&[b"{sha384}".as_slice(), &[0u8; 48]].concat()]),
        ],
        "child_payload" => {
            let meta = crate::process::Meta {
                name: "Process-1".into(),
                identity: vec![1],
                authkey: KEY.to_vec(),
                daemon: false,
                parent: Some((1, "MainProcess".into())),
                start_method: None,
                log_level: None,
                tracker: false,
                die_with_parent: false,
                parent_start: 0,
            };
            let payload = |args: Vec<u8>| {
                enc(&crate::spawn::Payload {
                    meta: meta.clone(),
                    task: fuzz_task_name().into(),
                    args,
                })
            };
            let mut out = vec![payload(args.clone())];
            // handles: their descriptor indices name the memfd (0) and the sockets (1, 2)
            if let Ok((conn, _)) = crate::pipe(true) {
                if let Ok((b, _)) = codec::encode_with_fds(&(
                    1u64,
                    String::new(),
                    ByteBuf::new(),
                    Some(conn),
                    None::<crate::Queue<u8>>,
                    None::<crate::Lock>,
                )) {
                    out.push(payload(b));
                }
            }
            if let Ok(q) = crate::Queue::<u8>::new() {
                if let Ok((b, _)) = codec::encode_with_fds(&(
                    1u64,
                    String::new(),
                    ByteBuf::new(),
                    None::<Connection>,
                    Some(q),
                    None::<crate::Lock>,
                )) {
                    out.push(payload(b));
                }
            }
            let outcome = crate::spawn::Outcome::Ok(enc(&(1u64, "x".to_string(), vec![1u8])));
            out.push(enc(&outcome));
            out
        }
        "pool_worker" => {
            let task = |count: u32, data: Vec<u8>| {
                enc(&ToWorker::Task(TaskMsg {
                    job: 1,
                    start: 0,
                    task: fuzz_task_name().into(),
                    count,
                    data: ByteBuf::from(data),
                    fds: Vec::new(),
                }))
            };
            let one = [args.clone()].concat();
            let mut chunk = vec![2u8]; // a sequence of two argument tuples
            chunk.extend_from_slice(&args);
            chunk.extend_from_slice(&args);
            vec![
                msgs(
                    Some(0),
                    &[&task(1, [vec![1u8], one].concat()), &enc(&ToWorker::Exit)],
                ),
                msgs(Some(1), &[&task(2, chunk.clone()), &task(2, chunk)]),
            ]
        }
        "pool_result" => {
            let results: crate::pool::worker::ChunkResults<(u64, String)> = (
                vec![(1, "a".into())],
                vec![(
                    1,
                    ItemError::Panicked {
                        message: "boom".into(),
                        backtrace: String::new(),
                    },
                )],
            );
            let done = |r| {
                enc(&FromWorker::Done {
                    job: 1,
                    start: 0,
                    results: r,
                    retiring: false,
                })
            };
            vec![
                [vec![2u8], done(Ok(ByteBuf::from(enc(&results))))].concat(),
                [
                    vec![1u8],
                    done(Err(ItemError::Failed {
                        kind: "Codec".into(),
                        message: "m".into(),
                    })),
                ]
                .concat(),
                [
                    vec![0u8],
                    enc(&FromWorker::<ByteBuf>::InitFailed {
                        message: "m".into(),
                    }),
                ]
                .concat(),
            ]
        }
        "manager_server" => {
            let values = |v: Vec<Value>| ByteBuf::from(enc(&v));
            let call = |id: u64, method: &str, args: Vec<Value>| {
                enc(&Request::Call {
                    id,
                    method: method.into(),
                    args: values(args),
                })
            };
            vec![
                msgs(
                    None,
                    &[
                        &enc(&Request::Create {
                            typeid: "list".into(),
                            args: values(vec![Value::List(vec![Value::from(1u32)])]),
                        }),
                        &call(1, "append", vec![Value::from(2u32)]),
                        &call(1, "__getitem__", vec![Value::from(0u32)]),
                        &call(1, "__len__", vec![]),
                        &call(1, "#GETVALUE", vec![]),
                        &enc(&Request::Incref(1)),
                        &enc(&Request::Decref(1)),
                        &enc(&Request::NumObjects),
                    ],
                ),
                msgs(
                    None,
                    &[
                        &enc(&Request::Create {
                            typeid: "dict".into(),
                            args: values(vec![]),
                        }),
                        &call(1, "__setitem__", vec![Value::from(1u32), Value::from(2u32)]),
                        &call(1, "items", vec![]),
                        &enc(&Request::Dummy),
                        &enc(&Request::Shutdown),
                    ],
                ),
            ]
        }
        "manager_client" => {
            let token = |typeid: &str, id: u64| Token {
                typeid: typeid.into(),
                address: CLIENT_ADDRESS.into(),
                id,
                authkey: ByteBuf::from(KEY.to_vec()),
                guard: None,
            };
            let ok = |b: Vec<u8>| enc(&Reply::Ok(ByteBuf::from(b)));
            let value = |v: Value| ok(enc(&v));
            vec![msgs(
                None,
                &[
                    &ok(Vec::new()),
                    &ok(enc(&token("list", 1))),
                    &value(Value::from(1u32)),
                    &value(Value::from(1u32)),
                    &value(Value::List(vec![Value::from(1u32)])),
                    &enc(&Reply::Err {
                        kind: "IndexError".into(),
                        message: "pop from empty list".into(),
                        traceback: String::new(),
                    }),
                    &ok(enc(&token("dict", 2))),
                    &value(Value::None),
                    &value(Value::List(vec![])),
                    &value(Value::from(1u32)),
                ],
            )]
        }
        "queue_ring" => {
            // one inline entry holding a 3-byte ByteBuf, committed
            let mut ring = vec![0u8];
            for w in [0u64, 24, 1, 1] {
                ring.extend_from_slice(&w.to_le_bytes());
            }
            ring.extend_from_slice(&4u32.to_le_bytes()); // len
            ring.extend_from_slice(&0u32.to_le_bytes()); // kind: inline
            ring.extend_from_slice(&0u64.to_le_bytes()); // seq
            ring.extend_from_slice(&[3, b'a', b'b', b'c', 0, 0, 0, 0]);
            let mut wrapped = ring.clone();
            wrapped[0] = 2 | (0b10101 << 2); // repair first, then pops and pushes
            vec![ring, wrapped]
        }
        "shareable_list" => {
            use crate::shared_memory::{Item, ShareableList};
            let items = [
                Item::Int(-3),
                Item::Float(1.5),
                Item::Bool(true),
                Item::Str("encodés".into()),
                Item::Bytes(b"HoWdY".to_vec()),
                Item::None,
            ];
            let mut out = Vec::new();
            if let Ok(l) = ShareableList::new(&items) {
                out.push(l.shm().buf().to_vec());
                let _ = l.shm().unlink();
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Type-erased encoding for [`seeds`] (a closure cannot be generic).
mod erased {
    pub trait Enc {
        fn enc(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Enc for T {
        fn enc(&self) -> Vec<u8> {
            crate::codec::encode(self).expect("a seed encodes")
        }
    }
}

#[cfg(test)]
mod tests {
    /// The pure-memory targets' seeds and kept inputs (`tests/fuzz/<target>/`, also
    /// replayed by `tests/fuzz_regressions.rs`), here so that `.ci/miri` runs them too.
    #[test]
    fn ring_and_pool_result_inputs() {
        for target in ["queue_ring", "pool_result"] {
            let f = super::TARGETS.iter().find(|(n, _)| *n == target).unwrap().1;
            let mut inputs = super::seeds(target);
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fuzz")
                .join(target);
            if let Ok(entries) = std::fs::read_dir(dir) {
                inputs.extend(entries.map(|e| std::fs::read(e.unwrap().path()).unwrap()));
            }
            for s in inputs {
                f(&s);
            }
        }
    }
}
