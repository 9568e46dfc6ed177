//! `Listener`, `Client` and `Address` (CPython's `multiprocessing.connection.Listener`
//! and `Client`).

use super::{answer_challenge, deliver_challenge, lock, Connection};
use crate::error::{Error, Result};
use crate::reduction;
use std::collections::VecDeque;
use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long an accepted client has to complete the authentication handshake unless
/// [`Listener::set_handshake_timeout`] says otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a [`Listener`] listens (Python's address tuple `(host, port)` or a path).
///
/// Parsed from `"host:port"` (IPv6: `"[::1]:port"`) or a filesystem path:
/// ```
/// use mp::Address;
/// assert_eq!("localhost:6000".parse::<Address>()?, Address::Inet("localhost".into(), 6000));
/// assert_eq!("/tmp/sock".parse::<Address>()?, Address::Unix("/tmp/sock".into()));
/// assert_eq!(Address::Inet("::1".into(), 5).to_string(), "[::1]:5");
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Address {
    /// `AF_INET`/`AF_INET6`: host name or IP, and port (0 = any free port when binding).
    Inet(String, u16),
    /// `AF_UNIX`: a socket path.
    Unix(PathBuf),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(h, p) if h.contains(':') => write!(f, "[{h}]:{p}"),
            Address::Inet(h, p) => write!(f, "{h}:{p}"),
            Address::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

impl FromStr for Address {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(Error::invalid("empty address"));
        }
        if !s.contains('/') {
            if let Some((host, port)) = s.rsplit_once(':') {
                if let Ok(port) = port.parse::<u16>() {
                    let host = host
                        .strip_prefix('[')
                        .and_then(|h| h.strip_suffix(']'))
                        .unwrap_or(host);
                    if host.is_empty() {
                        return Err(Error::invalid(format!("address {s:?} has no host")));
                    }
                    return Ok(Address::Inet(host.to_string(), port));
                }
            }
        }
        Ok(Address::Unix(PathBuf::from(s)))
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Address::Inet(a.ip().to_string(), a.port())
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Self {
        Address::Unix(p)
    }
}

impl From<&Path> for Address {
    fn from(p: &Path) -> Self {
        Address::Unix(p.to_path_buf())
    }
}

/// Anything [`Client::connect`] accepts as an address: an [`Address`] (or a reference
/// to one), a `"host:port"` or path string, a `(host, port)` pair, a `SocketAddr`, a
/// `Path`.
pub trait IntoAddress {
    /// Converts (parsing strings).
    fn into_address(self) -> Result<Address>;
}

impl IntoAddress for Address {
    fn into_address(self) -> Result<Address> {
        Ok(self)
    }
}
impl IntoAddress for &Address {
    fn into_address(self) -> Result<Address> {
        Ok(self.clone())
    }
}
impl IntoAddress for &str {
    fn into_address(self) -> Result<Address> {
        self.parse()
    }
}
impl IntoAddress for String {
    fn into_address(self) -> Result<Address> {
        self.parse()
    }
}
impl IntoAddress for &String {
    fn into_address(self) -> Result<Address> {
        self.parse()
    }
}
impl IntoAddress for SocketAddr {
    fn into_address(self) -> Result<Address> {
        Ok(self.into())
    }
}
impl IntoAddress for PathBuf {
    fn into_address(self) -> Result<Address> {
        Ok(Address::Unix(self))
    }
}
impl IntoAddress for &Path {
    fn into_address(self) -> Result<Address> {
        Ok(Address::Unix(self.to_path_buf()))
    }
}
impl IntoAddress for (&str, u16) {
    fn into_address(self) -> Result<Address> {
        Ok(Address::Inet(self.0.to_string(), self.1))
    }
}
impl IntoAddress for (String, u16) {
    fn into_address(self) -> Result<Address> {
        Ok(Address::Inet(self.0, self.1))
    }
}

enum Sock {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl AsFd for Sock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Sock::Unix(l) => l.as_fd(),
            Sock::Tcp(l) => l.as_fd(),
        }
    }
}

/// A server socket that accepts [`Connection`]s (Python's
/// `multiprocessing.connection.Listener`).
///
/// With an `authkey`, every accepted connection has passed the CPython handshake
/// (both directions: [`deliver_challenge`] then [`answer_challenge`]); a peer with the
/// wrong key makes that `accept` fail with [`Error::Authentication`] and the listener
/// keeps serving. A Python `Client` with the same key can connect.
///
/// # Handshake deadline
/// Beyond CPython (whose `accept` waits for the handshake for ever, so one client
/// that connects and says nothing stops the server): a client has
/// [`handshake_timeout`](Self::handshake_timeout) to complete the handshake, by
/// default [`DEFAULT_HANDSHAKE_TIMEOUT`] (5 s). A client that does not (silent,
/// too slow, or gone before it finished) is dropped, logged at debug level, and the
/// same `accept` call goes on to the next connection: it never returns an error for
/// a client that never completed its part. Handshakes run concurrently, each on its
/// own thread (at most 16 at a time; while 16 are running, new clients wait in the
/// backlog), so silent clients delay a good one by nothing until they are more than
/// 16, and then by about one deadline per 16 of them. A handshake that finished while
/// no `accept` was running is returned by the next `accept`, and makes
/// [`wait`](super::wait) report the listener ready. `set_handshake_timeout(None)`
/// restores CPython's behaviour: one handshake at a time, run to the end, unbounded.
///
/// ```
/// use mp::{Client, Listener};
/// let listener = Listener::bind(None, 1, Some(b"secret password"))?;
/// let address = listener.address();
/// let t = std::thread::spawn(move || -> mp::Result<()> {
///     let conn = Client::connect(&address, Some(b"secret password"))?;
///     conn.send(&vec![1, 2, 3])?;
///     Ok(())
/// });
/// let conn = listener.accept()?;
/// assert_eq!(conn.recv::<Vec<i32>>()?, [1, 2, 3]);
/// t.join().unwrap()?;
/// listener.close()?;
/// # Ok::<(), mp::Error>(())
/// ```
pub struct Listener {
    sock: Mutex<Option<Arc<Sock>>>,
    address: Address,
    authkey: Option<Vec<u8>>,
    handshake_timeout: Mutex<Option<Duration>>,
    last_accepted: Mutex<Option<Address>>,
    /// Handshakes running on their own threads.
    hs: Arc<Handshakes>,
    /// An epoll set of the listening socket and `hs.event`: what [`wait`](super::wait)
    /// polls, readable while a client is waiting to be accepted or a finished
    /// handshake waits to be returned.
    ready: OwnedFd,
    /// Removed on close: the socket path we bound, and the private directory of an
    /// address we chose.
    cleanup: Mutex<Option<(Option<PathBuf>, Option<tempfile::TempDir>)>>,
    /// The process that bound it: only it removes the socket and directory on close (a
    /// forked child that closes its copy only closes its descriptor, as CPython's
    /// `Finalize` ignores calls from another pid).
    owner: crate::popen_fork::MadeHere,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Listener address={}>", self.address)
    }
}

impl Listener {
    /// `Listener(address, backlog=backlog, authkey=authkey)`.
    ///
    /// `address = None` picks a fresh Unix socket path in a private (0700) temporary
    /// directory, removed on close; an `Address::Inet` with port 0 picks a free port
    /// ([`address`](Self::address) tells which). A Unix socket path is unlinked on close.
    /// A Unix path starting with a NUL byte (`"\0name"`) is a Linux abstract socket,
    /// as in Python (no file is created).
    /// `authkey = Some(key)` requires the handshake from every client (an empty key is
    /// a key like any other); `None` accepts anyone.
    pub fn bind(address: Option<Address>, backlog: usize, authkey: Option<&[u8]>) -> Result<Self> {
        let backlog = backlog.clamp(1, i32::MAX as usize) as i32;
        let (sock, address, cleanup) = match address {
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("mp-")
                    .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
                    .tempdir()?;
                let mut rnd = [0u8; 6];
                getrandom::fill(&mut rnd)
                    .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
                let name: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
                let path = dir.path().join(format!("listener-{name}"));
                let l = UnixListener::bind(&path)?;
                (
                    Sock::Unix(l),
                    Address::Unix(path.clone()),
                    (Some(path), Some(dir)),
                )
            }
            Some(Address::Unix(path)) if abstract_name(&path).is_some() => {
                let name = abstract_name(&path).unwrap_or_default();
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                let l = UnixListener::bind_addr(&addr)?;
                // nothing on the filesystem to remove
                (Sock::Unix(l), Address::Unix(path), (None, None))
            }
            Some(Address::Unix(path)) => {
                let l = UnixListener::bind(&path)?;
                (
                    Sock::Unix(l),
                    Address::Unix(path.clone()),
                    (Some(path), None),
                )
            }
            Some(Address::Inet(host, port)) => {
                let l = TcpListener::bind((host.as_str(), port))?;
                let actual = l.local_addr()?;
                // like Python's getsockname(): the IP, not the name that was given
                (Sock::Tcp(l), Address::from(actual), (None, None))
            }
        };
        // std binds with its own backlog; listen() again applies the caller's.
        rustix::net::listen(sock.as_fd(), backlog)?;
        use rustix::event::{epoll, eventfd, EventfdFlags};
        let event = eventfd(
            0,
            EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK | EventfdFlags::SEMAPHORE,
        )?;
        let ready = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        for (i, fd) in [sock.as_fd(), event.as_fd()].into_iter().enumerate() {
            epoll::add(
                &ready,
                fd,
                epoll::EventData::new_u64(i as u64),
                epoll::EventFlags::IN,
            )?;
        }
        // registered once nothing can fail any more (a failed bind's directory is
        // removed by the TempDir's drop)
        if let (_, Some(dir)) = &cleanup {
            remove_at_exit(dir.path(), true);
        }
        Ok(Listener {
            owner: crate::popen_fork::MadeHere::new(),
            sock: Mutex::new(Some(Arc::new(sock))),
            address,
            authkey: authkey.map(<[u8]>::to_vec),
            handshake_timeout: Mutex::new(Some(DEFAULT_HANDSHAKE_TIMEOUT)),
            last_accepted: Mutex::new(None),
            hs: Arc::new(Handshakes {
                done: Mutex::new(VecDeque::new()),
                in_flight: AtomicUsize::new(0),
                event,
            }),
            ready,
            cleanup: Mutex::new(Some(cleanup)),
        })
    }

    fn sock(&self) -> Result<Arc<Sock>> {
        lock(&self.sock)
            .clone()
            .ok_or_else(|| Error::invalid("listener is closed"))
    }

    /// `accept()`: waits for a client and returns its connection, authenticated when the
    /// listener has an authkey (a wrong key or a garbled answer is
    /// [`Error::Authentication`]; the listener stays usable). A client that does not
    /// complete the handshake within the [deadline](Self#handshake-deadline) is dropped
    /// and the call waits for the next one.
    pub fn accept(&self) -> Result<Connection> {
        let limit = *lock(&self.handshake_timeout);
        let (Some(key), Some(limit)) = (&self.authkey, limit) else {
            return self.accept_inline();
        };
        loop {
            if let Some((r, peer)) = self.hs.pop() {
                *lock(&self.last_accepted) = Some(peer);
                return r;
            }
            let sock = self.sock()?;
            let full = self.hs.in_flight.load(Ordering::Acquire) >= MAX_HANDSHAKES;
            let (lfd, efd) = (sock.as_fd().as_raw_fd(), self.hs.event.as_raw_fd());
            let client_waiting = if full {
                // no new handshake until one ends: re-check the count now and then
                reduction::poll_fds(&[efd], Some(Duration::from_millis(50)))?;
                false
            } else {
                reduction::poll_fds(&[lfd, efd], None)?.contains(&0)
            };
            if client_waiting {
                let (conn, peer, watch) = self.accept_raw()?;
                self.hs
                    .start(conn, peer, watch, key.clone(), limit, &self.address)?;
            }
        }
    }

    /// `accept` with the handshake (if any) run here, to the end: without an authkey,
    /// or without a deadline (CPython's behaviour).
    fn accept_inline(&self) -> Result<Connection> {
        let (conn, peer, _watch) = self.accept_raw()?;
        *lock(&self.last_accepted) = Some(peer);
        if let Some(key) = &self.authkey {
            deliver_challenge(&conn, key)?;
            answer_challenge(&conn, key)?;
        }
        Ok(conn)
    }

    /// Accepts one connection; also returns a duplicate of its socket, for the
    /// handshake deadline to shut down.
    fn accept_raw(&self) -> Result<(Connection, Address, OwnedFd)> {
        let sock = self.sock()?;
        Ok(match &*sock {
            Sock::Unix(l) => {
                let (s, addr) = l.accept()?;
                let peer = Address::Unix(
                    addr.as_pathname()
                        .map(Path::to_path_buf)
                        .unwrap_or_default(),
                );
                let watch = OwnedFd::from(s.try_clone()?);
                (Connection::from_unix_stream(s), peer, watch)
            }
            Sock::Tcp(l) => {
                let (s, addr) = l.accept()?;
                let _ = s.set_nodelay(true);
                let watch = OwnedFd::from(s.try_clone()?);
                (Connection::from_tcp_stream(s), Address::from(addr), watch)
            }
        })
    }

    /// The deadline a client has to complete the authentication handshake (`None`: no
    /// deadline, as in CPython). See [Handshake deadline](Self#handshake-deadline).
    pub fn handshake_timeout(&self) -> Option<Duration> {
        *lock(&self.handshake_timeout)
    }

    /// Sets the handshake deadline for later `accept` calls (`None`: wait for ever, as
    /// CPython does). Default: [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn set_handshake_timeout(&self, timeout: Option<Duration>) {
        *lock(&self.handshake_timeout) = timeout;
    }

    /// Builder form of [`set_handshake_timeout`](Self::set_handshake_timeout):
    /// `Listener::bind(..)?.with_handshake_timeout(Some(d))`.
    pub fn with_handshake_timeout(self, timeout: Option<Duration>) -> Self {
        self.set_handshake_timeout(timeout);
        self
    }

    /// `address`: where clients connect (the real port when bound to port 0).
    pub fn address(&self) -> Address {
        self.address.clone()
    }

    /// `last_accepted`: the peer address of the last accepted connection (for a Unix
    /// socket usually an empty path: clients are unnamed).
    pub fn last_accepted(&self) -> Option<Address> {
        lock(&self.last_accepted).clone()
    }

    /// `close()`: stops listening and removes the socket path (and the private directory
    /// of an address chosen by `bind(None, ..)`). A thread blocked in `accept` wakes up
    /// with an error. Closing twice is fine.
    pub fn close(&self) -> Result<()> {
        if !self.owner.here() {
            // a forked child's copy: the socket (and its file) are the parent's; only
            // our descriptor closes (a shutdown would stop the parent's listening too)
            drop(lock(&self.sock).take());
            if let Some((_, dir)) = lock(&self.cleanup).take() {
                std::mem::forget(dir);
            }
            return Ok(());
        }
        if let Some(sock) = lock(&self.sock).take() {
            // wakes a thread blocked in accept(); the descriptor closes when it lets go
            let _ = rustix::net::shutdown(sock.as_fd(), rustix::net::Shutdown::Both);
        }
        if let Some((path, dir)) = lock(&self.cleanup).take() {
            if let Some(p) = path {
                let _ = std::fs::remove_file(p);
            }
            if let Some(d) = &dir {
                remove_at_exit(d.path(), false);
            }
            drop(dir);
        }
        Ok(())
    }

    /// Whether [`close`](Self::close) was called.
    pub fn closed(&self) -> bool {
        lock(&self.sock).is_none()
    }

    /// The listening descriptor (an error once closed).
    pub fn fileno(&self) -> Result<RawFd> {
        Ok(self.sock()?.as_fd().as_raw_fd())
    }

    /// What [`wait`](super::wait) polls: readable while a client waits to be accepted
    /// or a finished handshake waits to be returned (an error once closed).
    pub(super) fn ready_fd(&self) -> Result<RawFd> {
        self.sock()?;
        Ok(self.ready.as_raw_fd())
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// The private directories of this process's listeners bound by `bind(None, ..)` and
/// not closed yet: an exit hook removes them, so a listener that is never dropped
/// (leaked, in a static, `std::process::exit`) leaves no socket behind, as CPython's
/// `Finalize(self, os.unlink, exitpriority=0)` of a Unix listener. Per process: a
/// forked child leaves its parent's alone.
/// The hook's flag is per process too: a forked child starts with no exit hooks, so
/// its first listener installs its own.
#[derive(Default)]
struct OpenHere {
    hook: std::sync::atomic::AtomicBool,
    dirs: Mutex<Vec<PathBuf>>,
}
type OpenDirs = crate::popen_fork::ForkLocal<OpenHere>;
static OPEN_DIRS: std::sync::LazyLock<OpenDirs> = std::sync::LazyLock::new(OpenDirs::new);

/// Adds (`open`) or removes `dir` from [`OPEN_DIRS`].
fn remove_at_exit(dir: &std::path::Path, open: bool) {
    let here = OPEN_DIRS.get();
    if !here.hook.swap(true, Ordering::AcqRel) {
        crate::util::register_exit_hook(0, || {
            for dir in std::mem::take(&mut *lock(&OPEN_DIRS.get().dirs)) {
                let _ = std::fs::remove_dir_all(dir);
            }
        });
    }
    let mut dirs = lock(&here.dirs);
    dirs.retain(|d| d != dir);
    if open {
        dirs.push(dir.to_path_buf());
    }
}

/// At most this many handshakes run at once (see [`Listener`]'s Handshake deadline).
const MAX_HANDSHAKES: usize = 16;

/// The handshakes of a [`Listener`] that run on their own threads.
struct Handshakes {
    /// Finished handshakes `accept` has not returned yet: the connection, or the error
    /// of a client that answered wrongly, with its peer address.
    done: Mutex<VecDeque<(Result<Connection>, Address)>>,
    /// Handshake threads running.
    in_flight: AtomicUsize,
    /// A semaphore eventfd counting `done`: readable while `done` is not empty.
    event: OwnedFd,
}

impl Handshakes {
    // `done` and the eventfd's count change together, under the lock: readable ⇔
    // something to pop (else a stale count would make accept's poll spin).
    fn pop(&self) -> Option<(Result<Connection>, Address)> {
        let mut done = lock(&self.done);
        let r = done.pop_front()?;
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&self.event, &mut b);
        Some(r)
    }

    fn push(&self, r: Result<Connection>, peer: Address) {
        let mut done = lock(&self.done);
        done.push_back((r, peer));
        let _ = rustix::io::write(&self.event, &1u64.to_ne_bytes());
    }

    /// Runs the server's half of the handshake with `conn` on a new thread, within
    /// `limit`; the outcome goes to `done` (a client that timed out or hung up is
    /// dropped instead).
    fn start(
        self: &Arc<Self>,
        conn: Connection,
        peer: Address,
        watch: OwnedFd,
        key: Vec<u8>,
        limit: Duration,
        address: &Address,
    ) -> Result<()> {
        let hs = self.clone();
        let address = address.clone();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new()
            .name("mp-handshake".into())
            .spawn(move || {
                let r = with_deadline(&watch, Some(limit), || {
                    deliver_challenge(&conn, &key)?;
                    answer_challenge(&conn, &key)
                });
                match r {
                    Ok((Ok(()), _)) => hs.push(Ok(conn), peer),
                    Ok((Err(e), timed_out)) if timed_out || hung_up(&e) => {
                        log::debug!(
                            "Listener {address}: dropped a client that did not complete \
                             the handshake ({}): {e}",
                            if timed_out {
                                "deadline passed"
                            } else {
                                "it hung up"
                            }
                        );
                    }
                    Ok((Err(e), _)) | Err(e) => hs.push(Err(e), peer),
                }
                hs.in_flight.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(e.into());
        }
        Ok(())
    }
}

/// Whether `e` says the peer went away (closed or reset its end).
fn hung_up(e: &Error) -> bool {
    use std::io::ErrorKind::*;
    match e {
        Error::Eof => true,
        Error::Io(io) => matches!(
            io.kind(),
            BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
        ),
        _ => false,
    }
}

/// Runs `f` (a handshake on the socket `watch` duplicates); if it has not finished
/// after `limit`, a watchdog thread shuts the socket down, which makes `f`'s reads and
/// writes fail at once. Returns `f`'s result and whether the deadline passed.
fn with_deadline<R>(
    watch: &OwnedFd,
    limit: Option<Duration>,
    f: impl FnOnce() -> Result<R>,
) -> Result<(Result<R>, bool)> {
    let Some(limit) = limit else {
        return Ok((f(), false));
    };
    #[derive(PartialEq)]
    enum Phase {
        Running,
        Done,
        TimedOut,
    }
    let phase = (Mutex::new(Phase::Running), Condvar::new());
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("mp-handshake-deadline".into())
            .spawn_scoped(s, || {
                let g = lock(&phase.0);
                let (mut g, _) = phase
                    .1
                    .wait_timeout_while(g, limit, |p| *p == Phase::Running)
                    .unwrap_or_else(|e| e.into_inner());
                if *g == Phase::Running {
                    *g = Phase::TimedOut;
                    let _ = rustix::net::shutdown(watch, rustix::net::Shutdown::Both);
                }
            })?;
        let r = f();
        let mut g = lock(&phase.0);
        let timed_out = *g == Phase::TimedOut;
        *g = Phase::Done;
        phase.1.notify_all();
        Ok((r, timed_out))
    })
}

/// Linux's abstract socket namespace: a Unix address whose first byte is NUL (Python's
/// `Listener("\0name")`) names no file; returns the name after the NUL.
fn abstract_name(path: &Path) -> Option<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().strip_prefix(b"\0")
}

/// Python's `multiprocessing.connection.Client`.
///
/// `Client::connect(address, authkey)` (also the free function [`client`]) connects to
/// a [`Listener`] — ours or Python's — and, with an authkey, runs the handshake
/// ([`answer_challenge`] then [`deliver_challenge`]).
#[derive(Debug)]
pub struct Client;

impl Client {
    /// `Client(address, authkey=authkey)`: see [`Client`].
    pub fn connect(address: impl IntoAddress, authkey: Option<&[u8]>) -> Result<Connection> {
        client(address, authkey)
    }
}

/// `multiprocessing.connection.Client(address, authkey=authkey)`: see [`Client`].
pub fn client(address: impl IntoAddress, authkey: Option<&[u8]>) -> Result<Connection> {
    let conn = match address.into_address()? {
        Address::Unix(path) => match abstract_name(&path) {
            Some(name) => {
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                Connection::from_unix_stream(UnixStream::connect_addr(&addr)?)
            }
            None => Connection::from_unix_stream(UnixStream::connect(path)?),
        },
        Address::Inet(host, port) => Connection::from_tcp_stream(connect_tcp(&host, port)?),
    };
    if let Some(key) = authkey {
        answer_challenge(&conn, key)?;
        deliver_challenge(&conn, key)?;
    }
    Ok(conn)
}

/// Connects to the first address `host:port` resolves to that accepts, with Nagle off
/// (small request/response messages).
pub(crate) fn connect_tcp(host: &str, port: u16) -> Result<TcpStream> {
    let mut last = None;
    for a in (host, port).to_socket_addrs()? {
        match TcpStream::connect(a) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e.into()),
        None => Err(Error::invalid(format!(
            "{host}:{port} resolves to no address"
        ))),
    }
}
