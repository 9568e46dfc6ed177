//! Passing file descriptors between processes (CPython's `multiprocessing.reduction`).
//!
//! A handle that owns a descriptor (a [`Connection`](crate::connection::Connection),
//! a queue, a lock's shared arena, [`SharedFd`] …) serializes as an index into a list of
//! descriptors that travels beside the encoded bytes: `SCM_RIGHTS` on a Unix socket
//! (Process payloads, `Connection::send`, queue items), or inheritance under fork.
//! [`serialize_fd`] and [`deserialize_fd`] are the two halves a handle's serde impl
//! calls; outside `mp`'s own transports they fail with a serde error, so a handle can
//! never be silently copied by another serde format.
//!
//! This file also holds the socket primitives that move bytes and descriptors together
//! ([`send_with_fds`], [`recv_with_fds`]) and the CPython-compatible frame reader and
//! writer built on them ([`write_frame`], [`read_frame`]).

use crate::error::{Error, Result};
use serde::{de, ser, Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

thread_local! {
    static ENCODING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    static DECODING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
    static CUSTOM_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The message of the last custom serde error raised by a handle on this thread
/// (postcard drops custom messages; this keeps them for `Error::Codec`).
pub(crate) fn take_custom_error() -> Option<String> {
    CUSTOM_ERROR.with(|c| c.borrow_mut().take())
}

fn ser_error<E: ser::Error>(msg: String) -> E {
    CUSTOM_ERROR.with(|c| *c.borrow_mut() = Some(msg.clone()));
    E::custom(msg)
}

fn de_error<E: de::Error>(msg: String) -> E {
    CUSTOM_ERROR.with(|c| *c.borrow_mut() = Some(msg.clone()));
    E::custom(msg)
}

/// While alive, handles serialized on this thread append their descriptors to a list.
pub(crate) struct EncodeFds {
    saved: Option<Vec<OwnedFd>>,
}

impl EncodeFds {
    pub(crate) fn begin() -> Self {
        let saved = ENCODING.with(|e| e.borrow_mut().replace(Vec::new()));
        EncodeFds { saved }
    }
    pub(crate) fn finish(mut self) -> Vec<OwnedFd> {
        let saved = self.saved.take();
        ENCODING
            .with(|e| std::mem::replace(&mut *e.borrow_mut(), saved))
            .unwrap_or_default()
    }
}

impl Drop for EncodeFds {
    fn drop(&mut self) {
        // finish() was not called (an error unwound): restore the outer context.
        if let Some(saved) = self.saved.take() {
            ENCODING.with(|e| *e.borrow_mut() = Some(saved));
        }
    }
}

/// While alive, handles deserialized on this thread take their descriptors from a list.
pub(crate) struct DecodeFds {
    saved: Option<Vec<Option<OwnedFd>>>,
}

impl DecodeFds {
    pub(crate) fn begin(fds: Vec<OwnedFd>) -> Self {
        let list = fds.into_iter().map(Some).collect();
        let saved = DECODING.with(|d| d.borrow_mut().replace(list));
        DecodeFds { saved }
    }
}

impl Drop for DecodeFds {
    fn drop(&mut self) {
        let saved = self.saved.take();
        DECODING.with(|d| *d.borrow_mut() = saved);
    }
}

/// True while a value is being encoded by one of `mp`'s transports (so handles may
/// serialize their descriptors).
pub fn in_transport() -> bool {
    ENCODING.with(|e| e.borrow().is_some())
}

/// Serializes a descriptor as an index into the transport's descriptor list.
/// The descriptor is duplicated, so the handle keeps its own.
///
/// Call it from a handle's `Serialize` impl. Outside `mp`'s transports it fails.
pub fn serialize_fd<S: Serializer>(fd: BorrowedFd<'_>, serializer: S) -> Result<S::Ok, S::Error> {
    let index = ENCODING.with(|e| {
        let mut e = e.borrow_mut();
        let list = e.as_mut().ok_or_else(|| {
            "a handle owning a file descriptor can only be sent through mp's own transports \
             (Process args, Connection::send, queues, pools, managers)"
                .to_string()
        })?;
        let dup = fd
            .try_clone_to_owned()
            .map_err(|err| format!("cannot duplicate descriptor {}: {err}", fd.as_raw_fd()))?;
        list.push(dup);
        Ok::<u32, String>((list.len() - 1) as u32)
    });
    match index {
        Ok(i) => i.serialize(serializer),
        Err(msg) => Err(ser_error(msg)),
    }
}

/// Deserializes a descriptor written by [`serialize_fd`], taking it from the transport.
pub fn deserialize_fd<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OwnedFd, D::Error> {
    let index = u32::deserialize(deserializer)? as usize;
    let taken = DECODING.with(|d| {
        let mut d = d.borrow_mut();
        let list = d.as_mut().ok_or_else(|| {
            "a handle owning a file descriptor can only be received through mp's own transports"
                .to_string()
        })?;
        let n = list.len();
        list.get_mut(index).and_then(Option::take).ok_or_else(|| {
            format!("descriptor index {index} missing from the message ({n} received)")
        })
    });
    taken.map_err(de_error)
}

/// Like [`serialize_fd`], but a descriptor for an open file already carried by the same
/// message (same `st_dev`/`st_ino`) is not sent twice: both handles name one entry.
/// Read it back with [`deserialize_shared_fd`]. Used by the shared-memory arena, so that
/// ten thousand values living in one arena travel with one descriptor.
pub fn serialize_shared_fd<S: Serializer>(fd: BorrowedFd<'_>, s: S) -> Result<S::Ok, S::Error> {
    let key = |f: BorrowedFd<'_>| rustix::fs::fstat(f).ok().map(|st| (st.st_dev, st.st_ino));
    let me = key(fd);
    let found = ENCODING.with(|e| {
        let e = e.borrow();
        let list = e.as_ref()?;
        me.and_then(|k| list.iter().position(|f| key(f.as_fd()) == Some(k)))
    });
    match found {
        Some(i) => (i as u32).serialize(s),
        None => serialize_fd(fd, s),
    }
}

/// Reads a descriptor written by [`serialize_shared_fd`] (a duplicate: other handles of
/// the same message may name the same entry).
pub fn deserialize_shared_fd<'de, D: Deserializer<'de>>(d: D) -> Result<OwnedFd, D::Error> {
    let index = u32::deserialize(d)? as usize;
    let got = DECODING.with(|l| {
        let l = l.borrow();
        let list = l.as_ref().ok_or_else(|| {
            "a handle owning a file descriptor can only be received through mp's own transports"
                .to_string()
        })?;
        let fd = list
            .get(index)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("descriptor index {index} missing from the message"))?;
        fd.try_clone()
            .map_err(|e| format!("cannot duplicate a received descriptor: {e}"))
    });
    got.map_err(de_error)
}

/// An owned file descriptor that can be passed to a child (in `Process` args, through a
/// `Connection` or a queue) under every start method. The receiver gets its own
/// descriptor for the same open file (Python: `multiprocessing.reduction.DupFd`).
///
/// ```
/// # mp::test_support!();
/// use std::io::Write;
/// let file = tempfile::tempfile().unwrap();
/// let fd = mp::reduction::SharedFd::new(file.try_clone().unwrap().into());
/// let mut f: std::fs::File = fd.into_owned().into();
/// f.write_all(b"hi").unwrap();
/// ```
#[derive(Debug)]
pub struct SharedFd(OwnedFd);

impl SharedFd {
    /// Wraps an owned descriptor.
    pub fn new(fd: OwnedFd) -> Self {
        SharedFd(fd)
    }
    /// Gives the descriptor back.
    pub fn into_owned(self) -> OwnedFd {
        self.0
    }
    /// Duplicates it.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(SharedFd(self.0.try_clone()?))
    }
}

impl From<OwnedFd> for SharedFd {
    fn from(fd: OwnedFd) -> Self {
        SharedFd(fd)
    }
}

impl From<std::fs::File> for SharedFd {
    fn from(f: std::fs::File) -> Self {
        SharedFd(f.into())
    }
}

impl AsFd for SharedFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for SharedFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Serialize for SharedFd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_fd(self.0.as_fd(), s)
    }
}

impl<'de> Deserialize<'de> for SharedFd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_fd(d).map(SharedFd)
    }
}

/// The most descriptors one message may carry (Linux's `SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// One `sendmsg`: sends (a prefix of) `bufs` with `fds` attached. Returns the bytes sent.
/// Never raises `SIGPIPE`; retries `EINTR`.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    bufs: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message may carry at most {MAX_FDS} descriptors, not {}",
                fds.len()
            ),
        ));
    }
    // no allocation per message: a message without descriptors passes no control
    // buffer, one with descriptors a stack buffer sized for the most there may be
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let space = if fds.is_empty() {
        &mut space[..0]
    } else {
        &mut space[..]
    };
    loop {
        let mut cmsg = SendAncillaryBuffer::new(space);
        if !fds.is_empty() && !cmsg.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::other("ancillary buffer too small"));
        }
        match sendmsg(sock, bufs, &mut cmsg, SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One `recvmsg` into `buf`; received descriptors (close-on-exec) are appended to `fds`.
/// Returns the bytes read (0 = end of file). Retries `EINTR`.
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    recv_with_fds_flags(sock, buf, fds, false)
}

/// [`recv_with_fds`], with `nonblocking`: `MSG_DONTWAIT` (an empty socket is a
/// `WouldBlock` error instead of a wait).
pub(crate) fn recv_with_fds_flags(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> io::Result<usize> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let flags = if nonblocking {
        RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT
    } else {
        RecvFlags::CMSG_CLOEXEC
    };
    loop {
        let mut cmsg = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg(sock, &mut iov, &mut cmsg, flags) {
            Ok(r) => {
                for msg in cmsg.drain() {
                    if let RecvAncillaryMessage::ScmRights(received) = msg {
                        fds.extend(received);
                    }
                }
                return Ok(r.bytes);
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// How a descriptor moves bytes: a socket can carry descriptors, a pipe cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// A Unix (or TCP) socket: `sendmsg`/`recvmsg`.
    Socket,
    /// A pipe or anything else: `read`/`write`.
    Stream,
}

/// The length header of CPython's `multiprocessing.connection` frames: 4-byte
/// big-endian signed length, or `-1` followed by an 8-byte big-endian length for
/// messages over `0x7fffffff` bytes.
pub fn frame_header(len: usize) -> ([u8; 12], usize) {
    let mut h = [0u8; 12];
    if len > 0x7fff_ffff {
        h[..4].copy_from_slice(&(-1i32).to_be_bytes());
        h[4..].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 12)
    } else {
        h[..4].copy_from_slice(&(len as i32).to_be_bytes());
        (h, 4)
    }
}

fn write_some(
    fd: BorrowedFd<'_>,
    kind: FdKind,
    bufs: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    match kind {
        FdKind::Socket => send_with_fds(fd, bufs, fds),
        FdKind::Stream => {
            if !fds.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "file descriptors can only be sent over a socket, not a pipe",
                ));
            }
            loop {
                match rustix::io::writev(fd, bufs) {
                    Ok(n) => return Ok(n),
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Writes one CPython-compatible frame (header + `data`) with `fds` attached to its
/// first byte. Blocks until everything is written.
pub fn write_frame(
    fd: BorrowedFd<'_>,
    kind: FdKind,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let (header, hlen) = frame_header(data.len());
    let total = hlen + data.len();
    let mut done = 0usize;
    let mut first = true;
    while done < total {
        let n = if done < hlen {
            let bufs = [IoSlice::new(&header[done..hlen]), IoSlice::new(data)];
            write_some(fd, kind, &bufs, if first { fds } else { &[] })?
        } else {
            let bufs = [IoSlice::new(&data[done - hlen..])];
            write_some(fd, kind, &bufs, if first { fds } else { &[] })?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        first = false;
        done += n;
    }
    Ok(())
}

/// One read into `buf`: `recvmsg` on a socket (received descriptors, close-on-exec, are
/// appended to `fds`), `read(2)` on anything else. `nonblocking`: an empty descriptor is
/// a `WouldBlock` error instead of a wait. Returns the bytes read (0 = end of file).
/// Retries `EINTR`.
pub(crate) fn read_some(
    fd: BorrowedFd<'_>,
    kind: FdKind,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> io::Result<usize> {
    match kind {
        FdKind::Socket => recv_with_fds_flags(fd, buf, fds, nonblocking),
        FdKind::Stream => {
            if nonblocking
                && poll_fds(&[fd.as_raw_fd()], Some(Duration::ZERO))
                    .map_err(io::Error::other)?
                    .is_empty()
            {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            loop {
                match rustix::io::read(fd, &mut *buf) {
                    Ok(n) => return Ok(n),
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Reads exactly `buf.len()` bytes. `Ok(false)` if the peer closed before the first byte.
pub fn read_exact_fds(
    fd: BorrowedFd<'_>,
    kind: FdKind,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        let n = read_some(fd, kind, &mut buf[done..], fds, false)?;
        if n == 0 {
            if done == 0 {
                return Ok(false);
            }
            return Err(Error::Eof);
        }
        done += n;
    }
    Ok(true)
}

/// Parses a frame header (see [`frame_header`]) at the start of `b`: `(header length,
/// body length)`, `None` if `b` holds less than a whole header. A negative length other
/// than the long form's `-1`, or a length this platform cannot address, is an
/// [`Error::Codec`].
pub(crate) fn parse_frame_header(b: &[u8]) -> Result<Option<(usize, usize)>> {
    let Some(h) = b.first_chunk::<4>() else {
        return Ok(None);
    };
    match i32::from_be_bytes(*h) {
        -1 => {
            let Some(l) = b.get(4..12) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(l.try_into().expect("8 bytes"));
            usize::try_from(len)
                .map(|l| Some((12, l)))
                .map_err(|_| Error::Codec(format!("frame length {len} too large").into()))
        }
        n if n < 0 => Err(Error::Codec(
            format!("malformed frame header: length {n}").into(),
        )),
        n => Ok(Some((4, n as usize))),
    }
}

/// Reads the header of one frame: the message length. `Err(Eof)` if the peer closed.
pub fn read_frame_header(
    fd: BorrowedFd<'_>,
    kind: FdKind,
    fds: &mut Vec<OwnedFd>,
) -> Result<usize> {
    let mut h = [0u8; 12];
    if !read_exact_fds(fd, kind, &mut h[..4], fds)? {
        return Err(Error::Eof);
    }
    if let Some((_, len)) = parse_frame_header(&h[..4])? {
        return Ok(len);
    }
    // the long form: -1, then 8 bytes of length
    if !read_exact_fds(fd, kind, &mut h[4..], fds)? {
        return Err(Error::Eof);
    }
    Ok(parse_frame_header(&h)?.expect("a whole long header").1)
}

/// The most a frame body's buffer grows ahead of the bytes that really arrived (per
/// read), so a lying header cannot make a reader allocate much more than was sent.
pub(crate) const CHUNK: usize = 16 << 20;

/// The error for a peer that closed in the middle of a frame, `got` of the `of` bytes of
/// its header or body received (CPython's `OSError("got end of file during
/// message")`): an `UnexpectedEof` I/O error, never the clean [`Error::Eof`] of a peer
/// that closed between frames.
pub(crate) fn truncated(got: usize, of: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("got end of file during message ({got} of {of} bytes)"),
    )
}

/// Reads the rest of a frame body straight into `out` (appending, without zeroing it
/// first) until `out` holds `len` bytes. When `out` is full it is reserved exactly for
/// what is left of the body, but at most [`CHUNK`] or its own size (one reservation for
/// a body up to 16 MiB, none if `out` already has the capacity, doubling beyond). Bytes come by `read(2)` and never
/// past the body's end; a descriptor arriving within a body (mp attaches a frame's
/// descriptors to the sending call that starts with its header) is closed by the
/// kernel. A peer closing before the end is a [`truncated`] error.
pub(crate) fn read_body_into_vec(
    fd: BorrowedFd<'_>,
    out: &mut Vec<u8>,
    len: usize,
) -> io::Result<()> {
    while out.len() < len {
        if out.len() == out.capacity() {
            // exactly the body up to CHUNK; past it, doubling (what has arrived, at
            // most CHUNK more), never one reallocation per read
            let grow = (len - out.len()).min(out.capacity().max(CHUNK));
            out.reserve_exact(grow);
        }
        let want = (len - out.len()).min(out.capacity() - out.len());
        let spare = &mut out.spare_capacity_mut()[..want];
        let n = loop {
            match rustix::io::read(fd, &mut *spare) {
                Ok((filled, _)) => break filled.len(),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            return Err(truncated(out.len(), len));
        }
        // SAFETY: `read` initialized the first `n` bytes of the spare capacity.
        unsafe { out.set_len(out.len() + n) };
    }
    Ok(())
}

/// [`read_body_into_vec`] into a buffer that already has the room: `out` is the whole
/// body, its first `done` bytes already there; fills the rest by `read(2)` (as
/// [`FdKind::Stream`]: on a socket too). A peer closing before the end is a
/// [`truncated`] error.
pub(crate) fn read_body_into_slice(
    fd: BorrowedFd<'_>,
    out: &mut [u8],
    mut done: usize,
) -> io::Result<()> {
    while done < out.len() {
        let n = read_some(fd, FdKind::Stream, &mut out[done..], &mut Vec::new(), false)?;
        if n == 0 {
            return Err(truncated(done, out.len()));
        }
        done += n;
    }
    Ok(())
}

/// Reads a frame body of `len` bytes, growing the buffer as data arrives (a lying
/// header cannot make us allocate more than what was really sent, plus one chunk).
/// `Err(Eof)` if the peer closed before the end (the bootstrap readers, e.g. a
/// `Process`'s result, treat any end of file as the peer's death, unlike
/// [`Connection`](crate::connection::Connection), which tells a frame cut short apart).
/// The body is read with `read(2)` whatever the descriptor's kind: the descriptors of
/// a frame written by [`write_frame`] ride with its header, and any arriving within
/// the body are closed by the kernel.
fn read_frame_body(fd: BorrowedFd<'_>, len: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match read_body_into_vec(fd, &mut out, len) {
        Ok(()) => Ok(out),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Error::Eof),
        Err(e) => Err(e.into()),
    }
}

/// Reads one frame written by [`write_frame`] (or by CPython). A frame longer than
/// `max` is refused with [`Error::MessageTooLarge`] before its body is read.
pub fn read_frame(fd: BorrowedFd<'_>, kind: FdKind, max: usize) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut fds = Vec::new();
    let len = read_frame_header(fd, kind, &mut fds)?;
    if len > max {
        return Err(Error::MessageTooLarge { len, max });
    }
    let body = read_frame_body(fd, len)?;
    Ok((body, fds))
}

/// A function of this binary serialized as an offset from an anchor function: the
/// same executable (fork, spawn and forkserver children all run it) maps it at the
/// same offset, whatever the load address. (A `Barrier`'s action travels this way.)
#[inline(never)]
fn anchor() {}

/// `f` as (offset from the anchor, offset of a check function): see [`offset_to_fn`].
pub(crate) fn fn_to_offset(f: fn()) -> (i64, i64) {
    let a = anchor as fn() as usize as i64;
    // a second function checks that the receiver runs the same build
    let check = crate::spawn::freeze_support as fn() as usize as i64;
    ((f as usize as i64).wrapping_sub(a), check.wrapping_sub(a))
}

/// The function [`fn_to_offset`] encoded, or `None` if this process runs another
/// executable (the check offset differs).
pub(crate) fn offset_to_fn(off: i64, check: i64) -> Option<fn()> {
    let a = anchor as fn() as usize as i64;
    let mine = (crate::spawn::freeze_support as fn() as usize as i64).wrapping_sub(a);
    if mine != check {
        return None;
    }
    let p = a.wrapping_add(off) as usize;
    // SAFETY: the sender computed `off` from a `fn()` of the same executable (the
    // check offset matches, so the code layout is the same); the same offset from
    // the same anchor is that function here.
    Some(unsafe { std::mem::transmute::<usize, fn()>(p) })
}

/// Takes ownership of a raw descriptor number inherited across exec.
///
/// # Safety
/// `fd` must be open and owned by nobody else in this process.
pub(crate) unsafe fn owned_from_raw(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller guarantees `fd` is open and owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `poll(2)` on `fds` for readability; returns the indices of the ready ones (readable,
/// hung up or in error). EINTR is retried with the remaining time.
pub(crate) fn poll_fds(fds: &[RawFd], timeout: Option<Duration>) -> Result<Vec<usize>> {
    // a timeout too large for an Instant (`Duration::MAX`) waits forever, not panics
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        let ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // round up so a short timeout still waits
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
            }
        };
        // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs; poll only
        // writes their `revents`. Invalid descriptors are reported as POLLNVAL.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        if r > 0 {
            let mut ready = Vec::new();
            for (i, p) in pfds.iter().enumerate() {
                if p.revents & libc::POLLNVAL != 0 {
                    return Err(Error::invalid(format!(
                        "object {i} of wait() has an invalid descriptor {}",
                        p.fd
                    )));
                }
                if p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    ready.push(i);
                }
            }
            return Ok(ready);
        }
        match deadline {
            Some(d) if Instant::now() >= d => return Ok(Vec::new()),
            _ => {}
        }
    }
}

/// Waits until `fd` can take more data (`POLLOUT`, or an error/hang-up that the next
/// write reports), at most `timeout`. `Ok(false)` on timeout. EINTR counts as a
/// (spurious) return: callers re-check.
pub(crate) fn wait_writable(fd: BorrowedFd<'_>, timeout: Duration) -> Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd; poll only writes its `revents`.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e.into());
    }
    Ok(r > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_forms() {
        assert_eq!(frame_header(5), ([0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0], 4));
        let (h, n) = frame_header(0x8000_0000);
        assert_eq!(n, 12);
        assert_eq!(&h[..4], &[0xff; 4]);
        assert_eq!(&h[4..], &0x8000_0000u64.to_be_bytes());
    }

    #[test]
    fn headers_parse_and_refuse_garbage() {
        let parse = parse_frame_header;
        assert_eq!(parse(&[0, 0]).unwrap(), None);
        assert_eq!(parse(&[0, 0, 1, 0, 9]).unwrap(), Some((4, 256)));
        let mut big = (-1i32).to_be_bytes().to_vec();
        assert_eq!(parse(&big).unwrap(), None);
        big.extend_from_slice(&(1u64 << 33).to_be_bytes());
        assert_eq!(parse(&big).unwrap(), Some((12, 1 << 33)));
        assert!(parse(&(-2i32).to_be_bytes()).is_err());
        let mut huge = (-1i32).to_be_bytes().to_vec();
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(parse(&huge).unwrap(), Some((12, usize::MAX)));
    }

    // not under Miri (.ci/miri): sends over a socket (sendmsg), which Miri does not model
    #[cfg(not(miri))]
    #[test]
    fn frames_with_fds_over_a_socketpair() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let f = tempfile::tempfile().unwrap();
        write_frame(a.as_fd(), FdKind::Socket, b"hello", &[f.as_fd()]).unwrap();
        write_frame(a.as_fd(), FdKind::Socket, b"", &[]).unwrap();
        let (body, fds) = read_frame(b.as_fd(), FdKind::Socket, 100).unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(fds.len(), 1);
        let (body, fds) = read_frame(b.as_fd(), FdKind::Socket, 100).unwrap();
        assert!(body.is_empty() && fds.is_empty());
        drop(a);
        assert!(matches!(
            read_frame(b.as_fd(), FdKind::Socket, 100),
            Err(Error::Eof)
        ));
    }

    // not under Miri (.ci/miri): sends over a socket (sendmsg), which Miri does not model
    #[cfg(not(miri))]
    #[test]
    fn lying_header_is_bounded() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        // claims 1 GiB, sends 3 bytes, closes
        rustix::io::write(&a, &[0x40, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(a);
        assert!(matches!(
            read_frame(b.as_fd(), FdKind::Socket, usize::MAX),
            Err(Error::Eof)
        ));
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        rustix::io::write(&a, &[0x40, 0, 0, 0]).unwrap();
        assert!(matches!(
            read_frame(b.as_fd(), FdKind::Socket, 10),
            Err(Error::MessageTooLarge {
                len: 0x4000_0000,
                max: 10
            })
        ));
    }

    #[test]
    fn handles_refuse_foreign_serializers() {
        let fd = SharedFd::new(tempfile::tempfile().unwrap().into());
        assert!(crate::codec::encode(&fd).is_err());
        let (bytes, fds) = crate::codec::encode_with_fds(&fd).unwrap();
        assert_eq!(fds.len(), 1);
        let back: SharedFd = crate::codec::decode_with_fds(&bytes, fds).unwrap();
        assert_ne!(back.as_raw_fd(), fd.as_raw_fd());
    }
}
