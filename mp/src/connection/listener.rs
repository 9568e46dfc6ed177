//! `Listener`, `Client` and `Address` (CPython's `multiprocessing.connection.Listener`
//! and `Client`).

use super::{answer_challenge, deliver_challenge, lock, Connection};
use crate::error::{Error, Result};
use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
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
/// a client that never completed its part. Handshakes run one after another, so `k`
/// silent clients queued before a good one delay it by at most `k` deadlines.
/// `set_handshake_timeout(None)` restores CPython's unbounded wait.
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
    /// Removed on close: the socket path we bound, and the private directory of an
    /// address we chose.
    cleanup: Mutex<Option<(Option<PathBuf>, Option<tempfile::TempDir>)>>,
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
        Ok(Listener {
            sock: Mutex::new(Some(Arc::new(sock))),
            address,
            authkey: authkey.map(<[u8]>::to_vec),
            handshake_timeout: Mutex::new(Some(DEFAULT_HANDSHAKE_TIMEOUT)),
            last_accepted: Mutex::new(None),
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
        loop {
            let (conn, peer, watch) = self.accept_raw()?;
            let Some(key) = &self.authkey else {
                *lock(&self.last_accepted) = Some(peer);
                return Ok(conn);
            };
            let limit = *lock(&self.handshake_timeout);
            let (r, timed_out) = with_deadline(&watch, limit, || {
                deliver_challenge(&conn, key)?;
                answer_challenge(&conn, key)
            })?;
            match r {
                Ok(()) => {
                    *lock(&self.last_accepted) = Some(peer);
                    return Ok(conn);
                }
                Err(e) if timed_out || hung_up(&e) => {
                    log::debug!(
                        "Listener {}: dropped a client that did not complete the handshake \
                         ({}): {e}",
                        self.address,
                        if timed_out {
                            "deadline passed"
                        } else {
                            "it hung up"
                        }
                    );
                }
                Err(e) => {
                    *lock(&self.last_accepted) = Some(peer);
                    return Err(e);
                }
            }
        }
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
        if let Some(sock) = lock(&self.sock).take() {
            // wakes a thread blocked in accept(); the descriptor closes when it lets go
            let _ = rustix::net::shutdown(sock.as_fd(), rustix::net::Shutdown::Both);
        }
        if let Some((path, dir)) = lock(&self.cleanup).take() {
            if let Some(p) = path {
                let _ = std::fs::remove_file(p);
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
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.close();
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
        Address::Inet(host, port) => {
            let mut last = None;
            let mut found = None;
            for a in (host.as_str(), port).to_socket_addrs()? {
                match TcpStream::connect(a) {
                    Ok(s) => {
                        found = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let s = match (found, last) {
                (Some(s), _) => s,
                (None, Some(e)) => return Err(e.into()),
                (None, None) => {
                    return Err(Error::invalid(format!(
                        "{host}:{port} resolves to no address"
                    )))
                }
            };
            let _ = s.set_nodelay(true);
            Connection::from_tcp_stream(s)
        }
    };
    if let Some(key) = authkey {
        answer_challenge(&conn, key)?;
        deliver_challenge(&conn, key)?;
    }
    Ok(conn)
}
