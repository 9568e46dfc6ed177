//! Pipes, connections, listeners, clients, authentication and `wait`
//! (CPython's `multiprocessing.connection`).
//!
//! A [`Connection`] is one end of a message channel between processes. [`pipe`] makes a
//! connected pair; [`Listener`] and [`Client`] connect processes that were not started
//! together, over TCP or Unix sockets, optionally authenticated with a shared key.
//!
//! ```
//! # mp::test_support!();
//! #[mp::task]
//! fn f(conn: mp::Connection) {
//!     conn.send(&(42, None::<u8>, "hello".to_string())).unwrap();
//!     conn.close().unwrap();
//! }
//!
//! # fn main() -> mp::Result<()> {
//! let (parent_conn, child_conn) = mp::Pipe()?;
//! let p = mp::Process::new(f, (child_conn,));
//! p.start()?;
//! let got: (i32, Option<u8>, String) = parent_conn.recv()?;
//! assert_eq!(got, (42, None, "hello".to_string()));
//! p.join()?;
//! # Ok(()) }
//! ```
//!
//! # Wire format
//! Every message is a CPython frame (see [`crate::reduction::write_frame`]): a 4-byte
//! big-endian length (or `-1` and an 8-byte length above 2 GiB) followed by the bytes,
//! so `send_bytes`/`recv_bytes` interoperate with a Python peer. [`Connection::send`]
//! encodes values with [`crate::codec`] (not pickle: use `send_pickle` behind the
//! `pickle` feature to talk to Python's `send`/`recv`); the file descriptors of the
//! handles inside the value ride along with `SCM_RIGHTS`, so a `Connection`, a queue or
//! a lock can be sent through a `Connection`.
//!
//! # Design
//! Both duplex and simplex pipes are Unix socketpairs, so a handle can be passed over
//! either; a simplex end refuses the wrong direction with [`Error::InvalidState`].
//! (`pipe(2)` is somewhat faster for tiny messages but cannot carry descriptors; the
//! benchmark in `benches/connection.rs` shows the difference.)
//!
//! A `Connection` is `Clone`: clones share one descriptor, one send lock and one
//! receive lock, so two threads sending on the same end never interleave their frames
//! (CPython documents corruption here; we prevent it), and two threads receiving each get
//! whole messages. [`Connection::close`] closes the shared descriptor for every clone
//! (an operation already running on another thread finishes first). Dropping the last
//! clone closes it too.
//!
//! Receiving goes through a read buffer per connection (64 KiB): one `recvmsg` takes the
//! header and body of a small message together, and whatever followed it in the socket
//! (the next messages, already sent) stays in the buffer for the next receive. A longer
//! message's body is read from the socket straight into its destination (for
//! `recv_bytes_into`, the caller's buffer), never past its end.
//! [`Connection::poll`] and [`wait`] count a whole message waiting there as ready; code
//! that polls [`fileno`](Connection::fileno) itself must drain with `conn.poll(Some(
//! Duration::ZERO))` after each wake-up, as the pool does. A `Connection` with received
//! bytes not yet taken cannot be sent to another process (an error, rather than losing
//! them). A child forked while bytes wait here refuses to read that connection
//! ([`Error::InvalidState`]): the bytes were read by the parent and only the parent
//! delivers them, and the child could not make sense of what follows them (the
//! parent's buffer may hold the start of a message whose rest is in the socket). A
//! child forked while the buffer is empty reads normally; still, two processes must not
//! both read one connection (CPython's corrupt each other's messages too).
//!
//! A peer that closes between messages is a clean [`Error::Eof`] (and stays one); a
//! peer that closes in the middle of a message, its header or its body, whatever its
//! size, is an [`Error::Io`] of kind `UnexpectedEof` (CPython: `OSError("got end of
//! file during message")`), after which the connection refuses reads.
//!
//! # Low-latency mode
//! [`Connection::set_spin`] (off by default) makes a receive that finds nothing spin on
//! non-blocking reads for a bounded, adaptive time before it blocks. Between processes
//! on two CPUs this replaces two cross-CPU wake-ups per round trip (20–25 µs each on a
//! VM) with a few microseconds of spinning, at the price of burning CPU while waiting.
//!
//! Fork: a clone inherited by `Process::from_closure` under the fork start method shares
//! the send lock's state at the time of the fork; don't fork while another thread is
//! inside `send` on a connection the child will use (the receiving side, its lock and
//! read buffer, is fresh in the child; arguments passed to `Process::new` are
//! re-created in the child and are not affected).
//!
//! Layering note: `wait` polls through `reduction::poll_fds` (the system layer's one
//! `poll(2)` loop, shared with process sentinels), and `Listener` applies the caller's
//! backlog with `rustix::net::listen` and wakes a blocked `accept` with
//! `rustix::net::shutdown`.

mod auth;
mod listener;
mod wait;

pub use auth::{answer_challenge, deliver_challenge};
pub(crate) use listener::connect_tcp;
pub use listener::{client, Address, Client, IntoAddress, Listener, DEFAULT_HANDSHAKE_TIMEOUT};
pub use wait::{wait, Sentinel, Waitable};

mod recvbuf;

use crate::error::{Error, Result};
use crate::popen_fork::ForkLocal;
use crate::reduction::{self, FdKind};
use recvbuf::{Body, Dest, RecvBuf};
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::lock;
#[cfg(feature = "pickle")]
pub use serde_pickle;

struct Inner {
    /// `None` once closed. Operations hold their own `Arc` while they run, so closing
    /// never pulls a descriptor from under a thread that is using it.
    fd: Mutex<Option<Arc<File>>>,
    kind: FdKind,
    readable: bool,
    writable: bool,
    send_lock: Mutex<()>,
    /// The receiving side: this process's own (see [`Recv`]).
    recv: ForkLocal<Recv>,
    /// The low-latency spin bound in ns (0 = off).
    spin_ns: AtomicU64,
    /// Set when a read left the stream mid-message (`recv_bytes_max` refused a message,
    /// an I/O error): further reads are refused.
    broken: AtomicBool,
    /// 1 + the fork generation of the process whose read buffer last kept bytes after a
    /// receive (0: none did). A forked child whose copy of the connection inherits a
    /// parent's unread bytes (read ahead, so no longer in the socket, and perhaps only
    /// the start of a message) refuses to read: it could neither deliver them (they
    /// are the parent's) nor make sense of what follows them.
    left_in: AtomicU64,
}

/// The receiving side of a connection in one process. A forked child gets a fresh one
/// (a [`ForkLocal`]): the bytes in the parent's read buffer are the parent's to deliver
/// (the child refuses to read when there were any: `Inner::left_in`), and a parent
/// thread may have held the lock at the fork.
#[derive(Default)]
struct Recv {
    /// The read buffer; held for the whole of a receive.
    lock: Mutex<RecvBuf>,
    /// After each receive: a whole message waits in the read buffer (read by `poll`
    /// and `wait` without the receive lock, which a blocked `recv` holds).
    has_frame: AtomicBool,
    /// After each receive: received bytes wait in the read buffer.
    has_bytes: AtomicBool,
}

/// A received body, as [`RecvBuf::next`] left it for [`Connection::recv_into`]'s caller.
enum Received<'a> {
    /// The bytes (borrowed from the read buffer, or a buffer of their own).
    Bytes(Cow<'a, [u8]>),
    /// In the caller's [`Dest`] buffer: their length.
    Placed(usize),
}

impl<'a> Received<'a> {
    /// The bytes: with [`Dest::Own`], a body is never placed in a caller's buffer.
    fn bytes(self) -> Cow<'a, [u8]> {
        match self {
            Received::Bytes(b) => b,
            Received::Placed(_) => unreachable!("Dest::Own never fills a caller's buffer"),
        }
    }

    /// The length: with [`Dest::Vec`], every body is placed in the caller's vector.
    fn placed(self) -> usize {
        match self {
            Received::Placed(n) => n,
            Received::Bytes(_) => unreachable!("Dest::Vec takes every body"),
        }
    }
}

/// One end of a pipe or socket connection (Python's `multiprocessing.connection.Connection`).
///
/// Made by [`pipe`], [`Listener::accept`] or [`Client::connect`]. It is `Clone + Send +
/// Sync` (clones share the descriptor; see the [module docs](self)) and serializable
/// through `mp`'s transports, so it can be passed as a `Process` argument, sent over
/// another `Connection` or put in a queue.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*lock(&self.inner.fd) {
            Some(fd) => write!(
                f,
                "<Connection fd={}{}{}>",
                fd.as_raw_fd(),
                if self.inner.readable { " readable" } else { "" },
                if self.inner.writable { " writable" } else { "" }
            ),
            None => f.write_str("<Connection closed>"),
        }
    }
}

impl Connection {
    /// Wraps a connected descriptor. `kind` says whether it is a socket (which can carry
    /// descriptors) or a pipe; `readable`/`writable` restrict the directions.
    pub fn from_fd(fd: OwnedFd, kind: FdKind, readable: bool, writable: bool) -> Self {
        Connection {
            inner: Arc::new(Inner {
                fd: Mutex::new(Some(Arc::new(File::from(fd)))),
                kind,
                readable,
                writable,
                send_lock: Mutex::new(()),
                recv: ForkLocal::new(),
                spin_ns: AtomicU64::new(0),
                broken: AtomicBool::new(false),
                left_in: AtomicU64::new(0),
            }),
        }
    }

    /// Wraps a connected Unix stream socket (duplex).
    pub fn from_unix_stream(s: UnixStream) -> Self {
        Self::from_fd(s.into(), FdKind::Socket, true, true)
    }

    /// Wraps a connected TCP stream (duplex; descriptors cannot be sent over it).
    pub fn from_tcp_stream(s: std::net::TcpStream) -> Self {
        Self::from_fd(s.into(), FdKind::Socket, true, true)
    }

    fn fd(&self) -> Result<Arc<File>> {
        lock(&self.inner.fd)
            .clone()
            .ok_or_else(|| Error::invalid("handle is closed"))
    }

    fn check_readable(&self) -> Result<Arc<File>> {
        let fd = self.fd()?;
        if !self.inner.readable {
            return Err(Error::invalid(
                "connection is write-only (the second end of pipe(false))",
            ));
        }
        if self.inner.broken.load(Ordering::Acquire) {
            return Err(Error::invalid(
                "connection is unusable: an earlier read stopped in the middle of a message",
            ));
        }
        self.check_not_read_ahead_elsewhere()?;
        Ok(fd)
    }

    /// Refuses a connection whose reading a parent process left mid-buffer (see
    /// `Inner::left_in`).
    fn check_not_read_ahead_elsewhere(&self) -> Result<()> {
        let left = self.inner.left_in.load(Ordering::Relaxed);
        if left != 0 && left != crate::popen_fork::fork_generation() + 1 {
            return Err(Error::invalid(
                "connection cannot be read in this process: the parent it was forked from \
                 had already read ahead on it (read it in one process only)",
            ));
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<Arc<File>> {
        let fd = self.fd()?;
        if !self.inner.writable {
            return Err(Error::invalid(
                "connection is read-only (the first end of pipe(false))",
            ));
        }
        Ok(fd)
    }

    /// Marks the stream unusable for reads after an error that may have left it in the
    /// middle of a frame. A clean end of file between frames (the only [`Error::Eof`]
    /// a read returns: a frame cut short is an `UnexpectedEof` I/O error) leaves it
    /// usable: it keeps reporting `Eof`.
    fn after_read<T>(&self, r: Result<T>) -> Result<T> {
        match &r {
            Err(Error::Eof) | Ok(_) => {}
            Err(_) => self.inner.broken.store(true, Ordering::Release),
        }
        r
    }

    /// `send_bytes(buf)`: sends `buf` as one message (Python's `offset`/`size` are a
    /// slice: `conn.send_bytes(&buf[off..off + size])`).
    pub fn send_bytes(&self, buf: &[u8]) -> Result<()> {
        let fd = self.check_writable()?;
        let _g = lock(&self.inner.send_lock);
        reduction::write_frame(fd.as_fd(), self.inner.kind, buf, &[])?;
        Ok(())
    }

    /// `send(obj)`: encodes `value` with [`crate::codec`] and sends it as one message;
    /// the descriptors of the handles inside it (connections, queues, locks …) are
    /// attached.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let fd = self.check_writable()?;
        let (bytes, fds) = crate::codec::encode_with_fds(value)?;
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let _g = lock(&self.inner.send_lock);
        reduction::write_frame(fd.as_fd(), self.inner.kind, &bytes, &borrowed)?;
        Ok(())
    }

    /// `recv()`: receives one message sent with [`send`](Self::send) and decodes it.
    /// The codec is not self-describing: `T` must be the type that was sent (an array
    /// `[i32; 3]` is not a `Vec<i32>`).
    /// [`Error::Eof`] once the peer closed and nothing is left; a peer that closed in
    /// the middle of a message is an [`Error::Io`] of kind `UnexpectedEof` (Python:
    /// `OSError`), after which the connection refuses reads. A message that does not
    /// decode as `T` is an [`Error::Codec`] (the message is consumed; the connection
    /// stays usable).
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
        self.recv_with(usize::MAX, |body, fds| {
            crate::codec::decode_with_fds(&body, fds)
        })?
    }

    /// Receives one frame (of at most `max` bytes) and hands its body and descriptors
    /// to `f`: a small body borrowed from the read buffer (decoded in place, without a
    /// copy), a large one in its own buffer (handed over, without a copy).
    fn recv_with<R>(
        &self,
        max: usize,
        f: impl FnOnce(Cow<'_, [u8]>, Vec<OwnedFd>) -> R,
    ) -> Result<R> {
        self.recv_into(max, false, Dest::Own, |body, fds| f(body.bytes(), fds))
    }

    /// The one receive: the next frame (of at most `max` bytes; `exact`: reading nothing
    /// past it), its body going where `dest` says; `f` gets the body and descriptors.
    fn recv_into<R>(
        &self,
        max: usize,
        exact: bool,
        dest: Dest<'_>,
        f: impl FnOnce(Received<'_>, Vec<OwnedFd>) -> R,
    ) -> Result<R> {
        let fd = self.check_readable()?;
        let st = self.inner.recv.get();
        let mut rb = lock(&st.lock);
        let spin = self.inner.spin_ns.load(Ordering::Relaxed);
        let got = rb.next(fd.as_fd(), self.inner.kind, max, spin, exact, dest);
        st.has_frame.store(rb.has_frame(), Ordering::Release);
        st.has_bytes.store(rb.has_bytes(), Ordering::Release);
        let left = if rb.has_bytes() {
            crate::popen_fork::fork_generation() + 1
        } else {
            0
        };
        if self.inner.left_in.load(Ordering::Relaxed) != left {
            self.inner.left_in.store(left, Ordering::Relaxed);
        }
        let (body, fds) = self.after_read(got)?;
        Ok(match body {
            Body::InBuf(range) => f(Received::Bytes(Cow::Borrowed(rb.bytes(range))), fds),
            Body::Owned(v) => f(Received::Bytes(Cow::Owned(v)), fds),
            Body::Into(len) => f(Received::Placed(len), fds),
        })
    }

    /// Receives one message (of at most `max` bytes: longer is
    /// [`Error::MessageTooLarge`]) and hands its body to `f` (a small one borrowed from
    /// the read buffer, decoded in place); its descriptors, if any, are closed. For
    /// the managers' channel.
    pub(crate) fn recv_frame_with<R>(&self, max: usize, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.recv_with(max, |body, _| f(&body))
    }

    /// `recv_bytes()`: receives one message as bytes. [`Error::Eof`] once the peer
    /// closed and nothing is left (a peer that closed in the middle of a message: an
    /// `UnexpectedEof` [`Error::Io`], as for [`recv`](Self::recv)).
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.recv_bytes_max(usize::MAX)
    }

    /// `recv_bytes(maxlength)`: a message longer than `maxlength` is refused with
    /// [`Error::MessageTooLarge`] (Python: `OSError`), and the connection refuses every
    /// later read (its stream is left in the middle of that message).
    pub fn recv_bytes_max(&self, maxlength: usize) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.recv_bytes_into_vec(&mut v, maxlength)?;
        Ok(v)
    }

    /// [`recv_bytes_max`](Self::recv_bytes_max) that reads nothing past the message:
    /// the authentication handshake, after which the managers read the socket
    /// themselves (a message sent right after the handshake must still be there).
    pub(crate) fn recv_bytes_exact(&self, maxlength: usize) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.recv_into(maxlength, true, Dest::Vec(&mut v), |body, _| body.placed())?;
        Ok(v)
    }

    /// `recv_bytes_into(buf)`: receives one message into the start of `buf` and returns
    /// its length; the rest of `buf` is untouched (Python's `offset` is a slice:
    /// `conn.recv_bytes_into(&mut buf[off..])`). A message longer than `buf` is
    /// [`Error::BufferTooShort`] carrying the whole message. A long message that fits
    /// is read from the socket straight into `buf`.
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into(usize::MAX, false, Dest::Slice(buf), |body, _| match body {
            Received::Placed(len) => Ok(len),
            Received::Bytes(b) => Err(Error::BufferTooShort {
                message: b.into_owned(),
            }),
        })?
    }

    /// [`recv_bytes_max`](Self::recv_bytes_max) into `buf` (cleared first, then
    /// holding exactly the message); returns the message's length. For a reader that
    /// reuses one buffer from message to message (the pool's supervisor): `buf` grows
    /// only if its capacity is short (exactly: one reservation for a message up to
    /// 16 MiB), and a long message is read from the socket straight into it, never
    /// through a buffer of its own.
    pub(crate) fn recv_bytes_into_vec(&self, buf: &mut Vec<u8>, maxlength: usize) -> Result<usize> {
        self.recv_into(maxlength, false, Dest::Vec(buf), |body, _| body.placed())
    }

    /// [`recv`](Self::recv) through a buffer the caller reuses from message to message
    /// (a pool worker's tasks): the message is read into `buf` as by
    /// [`recv_bytes_into_vec`](Self::recv_bytes_into_vec), then decoded from it.
    pub(crate) fn recv_via<T: DeserializeOwned>(&self, buf: &mut Vec<u8>) -> Result<T> {
        let fds = self.recv_into(usize::MAX, false, Dest::Vec(buf), |_, fds| fds)?;
        crate::codec::decode_with_fds(buf, fds)
    }

    /// Turns the low-latency mode on (`Some(bound)`) or off (`None`, the default) for
    /// this connection and its clones: a receive that finds no message spins on
    /// non-blocking reads (the spin policy of the locks: a few busy rounds, then
    /// `sched_yield`s) for at most `bound` before it blocks. The bound adapts: it halves
    /// after each spin that found nothing (down to an eighth of `bound`) and doubles
    /// back after one that found its message. Tens of microseconds suit a peer that
    /// answers at once (a round trip between two CPUs then costs a few microseconds
    /// instead of two wake-ups); it only burns CPU otherwise. Set it on both ends; it
    /// travels with a `Connection` sent to another process. No Python counterpart.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, b) = mp::Pipe()?;
    /// a.set_spin(Some(Duration::from_micros(50)));
    /// assert_eq!(a.spin(), Some(Duration::from_micros(50)));
    /// b.send(&1)?;
    /// assert_eq!(a.recv::<i32>()?, 1);
    /// # Ok::<(), mp::Error>(())
    /// ```
    pub fn set_spin(&self, bound: Option<Duration>) {
        let ns = bound.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.inner.spin_ns.store(ns, Ordering::Relaxed);
    }

    /// The low-latency spin bound set by [`set_spin`](Self::set_spin) (`None`: off).
    pub fn spin(&self) -> Option<Duration> {
        match self.inner.spin_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Whether a whole message waits in the read buffer (a receive returns it without
    /// reading the descriptor).
    pub(crate) fn buffered_message(&self) -> bool {
        self.inner.recv.get().has_frame.load(Ordering::Acquire)
    }

    /// `poll(timeout)`: whether a message (or the end of file) is ready to read.
    /// `None` waits forever, `Some(Duration::ZERO)` only looks. A closed peer counts as
    /// ready (the next `recv` reports [`Error::Eof`]).
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        let fd = self.fd()?;
        if !self.inner.readable {
            return Err(Error::invalid("connection is write-only"));
        }
        self.check_not_read_ahead_elsewhere()?;
        if self.buffered_message() {
            return Ok(true);
        }
        let ready = crate::reduction::poll_fds(&[fd.as_raw_fd()], timeout)?;
        Ok(!ready.is_empty())
    }

    /// `fileno()`: the descriptor (an error once closed).
    pub fn fileno(&self) -> Result<RawFd> {
        Ok(self.fd()?.as_raw_fd())
    }

    /// `close()`: closes the descriptor (for every clone of this handle). Closing twice
    /// is fine.
    pub fn close(&self) -> Result<()> {
        lock(&self.inner.fd).take();
        Ok(())
    }

    /// `closed`.
    pub fn closed(&self) -> bool {
        lock(&self.inner.fd).is_none()
    }

    /// `readable`: false for the sending end of a simplex pipe.
    pub fn readable(&self) -> bool {
        self.inner.readable
    }

    /// `writable`: false for the receiving end of a simplex pipe.
    pub fn writable(&self) -> bool {
        self.inner.writable
    }

    /// Sends `value` pickled (protocol 3), to be read by Python's `conn.recv()`.
    /// Basic data only: integers, floats, `bool`, `String` (str), byte strings
    /// serialized with `serialize_bytes` (bytes), `Vec` (list), tuples, maps (dict),
    /// `Option` (None). For dynamic values use
    /// [`send_pickle_value`](Self::send_pickle_value).
    #[cfg(feature = "pickle")]
    pub fn send_pickle<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let bytes = serde_pickle::to_vec(&value, serde_pickle::SerOptions::new())
            .map_err(|e| Error::Codec(crate::error::CodecError::from_error(e)))?;
        self.send_bytes(&bytes)
    }

    /// Sends a dynamic [`serde_pickle::Value`] pickled (e.g. Python `bytes`, tuples and
    /// sets built at run time), to be read by Python's `conn.recv()`.
    #[cfg(feature = "pickle")]
    pub fn send_pickle_value(&self, value: &serde_pickle::Value) -> Result<()> {
        let bytes = serde_pickle::value_to_vec(value, serde_pickle::SerOptions::new())
            .map_err(|e| Error::Codec(crate::error::CodecError::from_error(e)))?;
        self.send_bytes(&bytes)
    }

    /// Receives a message pickled by Python's `conn.send(obj)` into a dynamic
    /// [`serde_pickle::Value`], keeping Python's types apart (tuple vs list, bytes vs
    /// str), which decoding through serde (`recv_pickle::<Value>()`) merges.
    #[cfg(feature = "pickle")]
    pub fn recv_pickle_value(&self) -> Result<serde_pickle::Value> {
        let bytes = self.recv_bytes()?;
        serde_pickle::value_from_slice(&bytes, serde_pickle::DeOptions::new())
            .map_err(|e| Error::Codec(crate::error::CodecError::from_error(e)))
    }

    /// Receives a message pickled by Python's `conn.send(obj)` as a `T` (basic data
    /// only: see [`send_pickle`](Self::send_pickle); tuples and lists both decode as
    /// sequences).
    #[cfg(feature = "pickle")]
    pub fn recv_pickle<T: DeserializeOwned>(&self) -> Result<T> {
        let bytes = self.recv_bytes()?;
        serde_pickle::from_slice(&bytes, serde_pickle::DeOptions::new())
            .map_err(|e| Error::Codec(crate::error::CodecError::from_error(e)))
    }
}

impl AsRawFd for Connection {
    /// The descriptor, or `-1` once closed.
    fn as_raw_fd(&self) -> RawFd {
        self.fileno().unwrap_or(-1)
    }
}

struct FdSer<'a>(BorrowedFd<'a>);

impl Serialize for FdSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        reduction::serialize_fd(self.0, s)
    }
}

struct FdDe(OwnedFd);

impl<'de> Deserialize<'de> for FdDe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        reduction::deserialize_fd(d).map(FdDe)
    }
}

const F_READABLE: u8 = 1;
const F_WRITABLE: u8 = 2;
const F_STREAM: u8 = 4;

impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let fd = self
            .fd()
            .map_err(|_| serde::ser::Error::custom("cannot send a closed Connection"))?;
        if self.inner.recv.get().has_bytes.load(Ordering::Acquire) {
            return Err(serde::ser::Error::custom(
                "cannot send a Connection holding received data not yet read",
            ));
        }
        let mut flags = 0u8;
        if self.inner.readable {
            flags |= F_READABLE;
        }
        if self.inner.writable {
            flags |= F_WRITABLE;
        }
        if self.inner.kind == FdKind::Stream {
            flags |= F_STREAM;
        }
        let spin = self.inner.spin_ns.load(Ordering::Relaxed);
        (FdSer(fd.as_fd()), flags, spin).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (FdDe(fd), flags, spin) = <(FdDe, u8, u64)>::deserialize(d)?;
        let kind = if flags & F_STREAM != 0 {
            FdKind::Stream
        } else {
            FdKind::Socket
        };
        let conn = Connection::from_fd(fd, kind, flags & F_READABLE != 0, flags & F_WRITABLE != 0);
        conn.inner.spin_ns.store(spin, Ordering::Relaxed);
        Ok(conn)
    }
}

/// Python's `multiprocessing.Pipe(duplex)`: a connected pair of [`Connection`]s.
///
/// `duplex = true`: both ends send and receive. `duplex = false`: the first end only
/// receives, the second only sends (the wrong direction is an
/// [`Error::InvalidState`]). Both are Unix socketpairs, so handles (connections,
/// queues, locks) can be sent through either.
///
/// ```
/// let (r, w) = mp::pipe(false)?;
/// w.send(&[1, 2, 3])?;
/// assert_eq!(r.recv::<[i32; 3]>()?, [1, 2, 3]);
/// assert!(r.send(&1).is_err());
/// # Ok::<(), mp::Error>(())
/// ```
pub fn pipe(duplex: bool) -> Result<(Connection, Connection)> {
    let (a, b) = UnixStream::pair()?;
    if duplex {
        Ok((
            Connection::from_unix_stream(a),
            Connection::from_unix_stream(b),
        ))
    } else {
        // The OS enforces the direction too: the reader cannot write, the writer
        // cannot read.
        let _ = a.shutdown(std::net::Shutdown::Write);
        let _ = b.shutdown(std::net::Shutdown::Read);
        Ok((
            Connection::from_fd(a.into(), FdKind::Socket, true, false),
            Connection::from_fd(b.into(), FdKind::Socket, false, true),
        ))
    }
}

/// Python's `multiprocessing.Pipe()`: a duplex pipe, same as `pipe(true)`.
#[allow(non_snake_case)]
pub fn Pipe() -> Result<(Connection, Connection)> {
    pipe(true)
}

impl crate::Context {
    /// `ctx.Pipe(duplex)`: see [`pipe`].
    pub fn pipe(&self, duplex: bool) -> Result<(Connection, Connection)> {
        pipe(duplex)
    }
}

#[doc(hidden)]
pub mod root_exports {
    pub use super::{client, pipe, wait, Address, Client, Connection, Listener, Pipe, Waitable};
}

// not under Miri (.ci/miri): every test here sends over a socket (sendmsg), which Miri does not model
#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn simplex_directions() {
        let (r, w) = pipe(false).unwrap();
        assert!(r.readable() && !r.writable());
        assert!(!w.readable() && w.writable());
        assert!(matches!(r.send_bytes(b"x"), Err(Error::InvalidState(_))));
        assert!(matches!(w.recv_bytes(), Err(Error::InvalidState(_))));
        w.send_bytes(b"abc").unwrap();
        assert_eq!(r.recv_bytes().unwrap(), b"abc");
    }

    #[test]
    fn max_length_breaks_reads() {
        let (a, b) = pipe(true).unwrap();
        a.send_bytes(&[7; 100]).unwrap();
        a.send_bytes(b"next").unwrap();
        assert!(matches!(
            b.recv_bytes_max(10),
            Err(Error::MessageTooLarge { len: 100, max: 10 })
        ));
        assert!(b.recv_bytes().is_err());
        // writing still works
        b.send_bytes(b"ok").unwrap();
        assert_eq!(a.recv_bytes().unwrap(), b"ok");
    }

    #[test]
    fn send_connection_through_connection() {
        let (a, b) = pipe(true).unwrap();
        let (x, y) = pipe(true).unwrap();
        a.send(&x).unwrap();
        drop(x);
        let x2: Connection = b.recv().unwrap();
        x2.send(&"hi".to_string()).unwrap();
        assert_eq!(y.recv::<String>().unwrap(), "hi");
    }

    #[test]
    fn exact_reads_leave_the_next_frame_in_the_socket() {
        use std::io::Read;
        let (s1, s2) = UnixStream::pair().unwrap();
        let a = Connection::from_unix_stream(s1.try_clone().unwrap());
        let b = Connection::from_unix_stream(s2);
        b.send_bytes(b"first").unwrap();
        b.send_bytes(b"second").unwrap();
        b.send_bytes(&[9; 300]).unwrap(); // past the long form's 12 header bytes
        assert_eq!(a.recv_bytes_exact(16).unwrap(), b"first");
        assert!(!a.inner.recv.get().has_bytes.load(Ordering::Acquire));
        drop(a);
        let mut frame = [0u8; 10];
        (&s1).read_exact(&mut frame).unwrap();
        assert_eq!(&frame[..4], &6u32.to_be_bytes());
        assert_eq!(&frame[4..], b"second");
        // and a buffered read of the same stream takes several frames at once
        let c = Connection::from_unix_stream(s1);
        b.send_bytes(b"x").unwrap();
        assert_eq!(c.recv_bytes().unwrap(), vec![9; 300]);
        assert!(c.inner.recv.get().has_frame.load(Ordering::Acquire));
        assert_eq!(c.recv_bytes().unwrap(), b"x");
    }

    #[test]
    fn long_and_short_frames_alternate_with_their_descriptors() {
        // after a long frame the next header is read on its own: every mix of long and
        // short frames (some carrying descriptors) still arrives whole and in order
        use crate::reduction::SharedFd;
        let (a, b) = pipe(true).unwrap();
        let long = |k: u8| -> Vec<u8> { (0..100_000u32).map(|i| (i as u8) ^ k).collect() };
        let sender = {
            let a = a.clone();
            std::thread::spawn(move || {
                for k in 0..6u8 {
                    a.send_bytes(&long(k)).unwrap();
                    let (r, w) = std::io::pipe().unwrap();
                    a.send(&(k, SharedFd::new(OwnedFd::from(r)))).unwrap();
                    (&w).write_all(&[k]).unwrap();
                    if k % 2 == 0 {
                        a.send_bytes(&[k; 3]).unwrap();
                    }
                }
            })
        };
        let mut v = Vec::new();
        for k in 0..6u8 {
            if k % 3 == 0 {
                assert_eq!(b.recv_bytes_into_vec(&mut v, usize::MAX).unwrap(), 100_000);
                assert!(v == long(k), "long frame {k}");
            } else {
                assert!(b.recv_bytes().unwrap() == long(k), "long frame {k}");
            }
            let (got, fd): (u8, SharedFd) = b.recv().unwrap();
            assert_eq!(got, k);
            let mut byte = [0u8];
            std::fs::File::from(fd.into_owned())
                .read_exact(&mut byte)
                .unwrap();
            assert_eq!(byte, [k], "the descriptor of frame {k}");
            if k % 2 == 0 {
                assert_eq!(b.recv_bytes().unwrap(), [k; 3]);
            }
        }
        sender.join().unwrap();
    }

    #[test]
    fn into_vec_reserves_once_exactly_and_reuses_the_buffer() {
        let (a, b) = pipe(true).unwrap();
        let big: Vec<u8> = (0..5 << 20).map(|i| (i % 253) as u8).collect();
        let send = |data: &[u8]| {
            let (a, data) = (a.clone(), data.to_vec());
            std::thread::spawn(move || a.send_bytes(&data))
        };
        let mut v = Vec::new();
        let t = send(&big);
        assert_eq!(
            b.recv_bytes_into_vec(&mut v, usize::MAX).unwrap(),
            big.len()
        );
        t.join().unwrap().unwrap();
        assert!(v == big);
        // one exact reservation: no doubling
        assert_eq!(v.capacity(), big.len());
        let at = v.as_ptr();
        a.send_bytes(b"small").unwrap();
        assert_eq!(b.recv_bytes_into_vec(&mut v, usize::MAX).unwrap(), 5);
        assert_eq!(v, b"small");
        let t = send(&big[1..]);
        assert_eq!(
            b.recv_bytes_into_vec(&mut v, usize::MAX).unwrap(),
            big.len() - 1
        );
        t.join().unwrap().unwrap();
        assert!(v[..] == big[1..]);
        // the same allocation throughout
        assert_eq!((v.as_ptr(), v.capacity()), (at, big.len()));
        // too long for the maximum: refused, as recv_bytes_max
        let t = send(&big);
        assert!(matches!(
            b.recv_bytes_into_vec(&mut v, 1 << 20),
            Err(Error::MessageTooLarge { .. })
        ));
        drop(b);
        let _ = t.join().unwrap();
    }

    #[test]
    fn closed_connection_cannot_be_sent() {
        let (a, _b) = pipe(true).unwrap();
        let (x, _y) = pipe(true).unwrap();
        x.close().unwrap();
        assert!(matches!(a.send(&x), Err(Error::Codec(_))));
    }
}
