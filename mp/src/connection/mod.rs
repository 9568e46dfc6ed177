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
//! Receiving reads exactly one frame (header, then body) and never buffers ahead, so
//! [`wait`] and [`Connection::poll`] on the descriptor are always accurate and a
//! `Connection` handed to another process carries no data left behind here.
//!
//! Fork: a clone inherited by `Process::from_closure` under the fork start method shares
//! the locks' state at the time of the fork; don't fork while another thread is inside
//! `send`/`recv` on a connection the child will use (arguments passed to `Process::new`
//! are re-created in the child and are not affected).
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

use crate::error::{Error, Result};
use crate::reduction::{self, FdKind};
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
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
    recv_lock: Mutex<()>,
    /// Set when a read left the stream mid-message (`recv_bytes_max` refused a message,
    /// an I/O error): further reads are refused.
    broken: AtomicBool,
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
                recv_lock: Mutex::new(()),
                broken: AtomicBool::new(false),
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
        Ok(fd)
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
    /// middle of a frame. A clean end of file before a header leaves it usable (it
    /// keeps reporting `Eof`).
    fn after_read<T>(&self, r: Result<T>, clean_eof_possible: bool) -> Result<T> {
        match &r {
            Err(Error::Eof) if clean_eof_possible => {}
            Err(_) => self.inner.broken.store(true, Ordering::Release),
            Ok(_) => {}
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
    /// [`Error::Eof`] once the peer closed and nothing is left. A message that does not
    /// decode as `T` is an [`Error::Codec`] (the message is consumed; the connection
    /// stays usable).
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
        let (body, fds) = self.recv_frame(usize::MAX, true)?;
        crate::codec::decode_with_fds(&body, fds)
    }

    /// Reads one frame. With `want_fds` the header is read with `recvmsg` to collect
    /// the descriptors attached to it; without, with plain `read(2)` (the kernel closes
    /// any descriptors that came along, as we would).
    fn recv_frame(&self, max: usize, want_fds: bool) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        let fd = self.check_readable()?;
        let _g = lock(&self.inner.recv_lock);
        let mut fds = Vec::new();
        let len = if want_fds {
            reduction::read_frame_header(fd.as_fd(), self.inner.kind, &mut fds)
        } else {
            read_header(&fd)
        };
        let len = self.after_read(len, true)?;
        if len > max {
            self.inner.broken.store(true, Ordering::Release);
            return Err(Error::MessageTooLarge { len, max });
        }
        let body = read_body(&fd, len);
        let body = self.after_read(body, false)?;
        Ok((body, fds))
    }

    /// `recv_bytes()`: receives one message as bytes. [`Error::Eof`] once the peer
    /// closed and nothing is left.
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.recv_frame(usize::MAX, false)?.0)
    }

    /// `recv_bytes(maxlength)`: a message longer than `maxlength` is refused with
    /// [`Error::MessageTooLarge`] (Python: `OSError`), and the connection refuses every
    /// later read (its stream is left in the middle of that message).
    pub fn recv_bytes_max(&self, maxlength: usize) -> Result<Vec<u8>> {
        Ok(self.recv_frame(maxlength, false)?.0)
    }

    /// `recv_bytes_into(buf)`: receives one message into the start of `buf` and returns
    /// its length; the rest of `buf` is untouched (Python's `offset` is a slice:
    /// `conn.recv_bytes_into(&mut buf[off..])`). A message longer than `buf` is
    /// [`Error::BufferTooShort`] carrying the whole message.
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        let fd = self.check_readable()?;
        let _g = lock(&self.inner.recv_lock);
        let len = self.after_read(read_header(&fd), true)?;
        if len > buf.len() {
            let body = read_body(&fd, len);
            let message = self.after_read(body, false)?;
            return Err(Error::BufferTooShort { message });
        }
        let r = read_exact(&fd, &mut buf[..len]).map(|()| len);
        self.after_read(r, len == 0)
    }

    /// `poll(timeout)`: whether a message (or the end of file) is ready to read.
    /// `None` waits forever, `Some(Duration::ZERO)` only looks. A closed peer counts as
    /// ready (the next `recv` reports [`Error::Eof`]).
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        let fd = self.fd()?;
        if !self.inner.readable {
            return Err(Error::invalid("connection is write-only"));
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

/// Reads exactly `buf.len()` bytes. A frame's descriptors arrive with its header
/// (read by `recvmsg`), so the body is read with plain `read(2)`, which is cheaper.
fn read_exact(mut f: &File, buf: &mut [u8]) -> Result<()> {
    f.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Eof
        } else {
            Error::Io(e)
        }
    })
}

/// Reads a CPython frame header with `read(2)`: [`Error::Eof`] if the peer closed
/// before its first byte.
fn read_header(mut f: &File) -> Result<usize> {
    let mut h = [0u8; 4];
    let mut done = 0;
    while done < 4 {
        match f.read(&mut h[done..]) {
            Ok(0) => return Err(Error::Eof),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    match i32::from_be_bytes(h) {
        -1 => {
            let mut l = [0u8; 8];
            read_exact(f, &mut l)?;
            let len = u64::from_be_bytes(l);
            usize::try_from(len)
                .map_err(|_| Error::Codec(format!("frame length {len} too large").into()))
        }
        n if n < 0 => Err(Error::Codec(
            format!("malformed frame header: length {n}").into(),
        )),
        n => Ok(n as usize),
    }
}

/// Reads a body of `len` bytes, growing the buffer as data arrives (a lying header
/// cannot make us allocate much more than what was really sent).
fn read_body(f: &File, len: usize) -> Result<Vec<u8>> {
    const CHUNK: usize = 16 << 20;
    let mut out = Vec::with_capacity(len.min(CHUNK));
    while out.len() < len {
        let start = out.len();
        out.resize(start + (len - start).min(CHUNK), 0);
        read_exact(f, &mut out[start..])?;
    }
    Ok(out)
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
        (FdSer(fd.as_fd()), flags).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (FdDe(fd), flags) = <(FdDe, u8)>::deserialize(d)?;
        let kind = if flags & F_STREAM != 0 {
            FdKind::Stream
        } else {
            FdKind::Socket
        };
        Ok(Connection::from_fd(
            fd,
            kind,
            flags & F_READABLE != 0,
            flags & F_WRITABLE != 0,
        ))
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
    fn closed_connection_cannot_be_sent() {
        let (a, _b) = pipe(true).unwrap();
        let (x, _y) = pipe(true).unwrap();
        x.close().unwrap();
        assert!(matches!(a.send(&x), Err(Error::Codec(_))));
    }
}
