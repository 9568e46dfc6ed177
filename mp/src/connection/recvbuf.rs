//! The receiving half of a [`Connection`](super::Connection): one read buffer per
//! connection, so that a small message costs one `recvmsg` (header and body together)
//! instead of a read for the header and another for the body.
//!
//! A read takes whatever the socket holds, up to [`BUF`] bytes: the frame asked for and
//! possibly the start of the next ones, which stay here for the next receive.
//!
//! # Descriptors
//! `SCM_RIGHTS` descriptors arrive with the bytes of the `sendmsg` that carried them.
//! The kernel ends a read right after the segment that carries descriptors, and `mp`
//! attaches a frame's descriptors to its first `sendmsg` (which starts with the frame's
//! header). So the descriptors a read returns belong to the **last frame that starts
//! within the bytes of that read**; each read's descriptors are recorded with the
//! stream range it covered and handed to that frame when it is taken. Descriptors no
//! frame can claim (a foreign sender's) are closed.

use crate::error::{Error, Result};
use crate::reduction::{self, parse_frame_header as parse, truncated, FdKind};
use crate::synchronize::futex;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

/// Bytes of a connection's read buffer (allocated at the first receive): a frame that
/// fits arrives whole in one read; a longer frame's body is then read straight into its
/// [`Dest`] (the caller's buffer, or one of its own).
pub(super) const BUF: usize = 64 * 1024;

/// Descriptors received by one read, and the stream range `[from, to)` it covered.
struct Pending {
    from: u64,
    to: u64,
    fds: Vec<OwnedFd>,
}

/// Where the body of a received frame is.
pub(super) enum Body {
    /// `buf[range]` of the [`RecvBuf`] (valid until its next read).
    InBuf(std::ops::Range<usize>),
    /// A frame longer than the buffer, in its own allocation.
    Owned(Vec<u8>),
    /// In the caller's [`Dest`] buffer: its length.
    Into(usize),
}

/// Where [`RecvBuf::next`] puts a body.
pub(super) enum Dest<'a> {
    /// Nowhere: a body that fits the read buffer stays there ([`Body::InBuf`]), a
    /// longer one gets an allocation of its own ([`Body::Owned`]).
    Own,
    /// The start of this slice, if the body fits ([`Body::Into`]; a long body is read
    /// from the socket straight into it); else as [`Dest::Own`].
    Slice(&'a mut [u8]),
    /// This vector, cleared, then holding exactly the body ([`Body::Into`]). A long
    /// body is read from the socket straight into it, reserved exactly and not zeroed
    /// first (no allocation if its capacity suffices).
    Vec(&'a mut Vec<u8>),
}

/// A connection's read buffer and its adaptive spin state.
#[derive(Default)]
pub(super) struct RecvBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`.
    pos: u64,
    pending: VecDeque<Pending>,
    /// The adaptive spin's current bound in ns (0: not started yet).
    spin_now: u64,
    /// The last frame was longer than the buffer: the next header is read on its own
    /// (at most 12 bytes), so that a long body after it goes from the socket straight
    /// to its destination instead of through the buffer (a pool's chunks and results
    /// come one long frame after another; copying the first 64 KiB of each out of the
    /// buffer cost more than the rest).
    long_last: bool,
}

impl RecvBuf {
    fn avail(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The bytes of `range` (a [`Body::InBuf`]).
    pub(super) fn bytes(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Whether bytes received but not yet taken wait here.
    pub(super) fn has_bytes(&self) -> bool {
        self.start < self.end
    }

    /// Whether a whole frame waits here (a receive would not read).
    pub(super) fn has_frame(&self) -> bool {
        matches!(parse(self.avail()), Ok(Some((h, l))) if l <= self.end - self.start - h)
    }

    /// One read of at most `limit` bytes into the free end of the buffer
    /// (`nonblocking`: `WouldBlock` rather than a wait). Received descriptors are
    /// recorded with the range they came with. `Ok(0)` at the end of file.
    fn fill(
        &mut self,
        fd: BorrowedFd<'_>,
        kind: FdKind,
        nonblocking: bool,
        limit: usize,
    ) -> io::Result<usize> {
        if self.buf.is_empty() {
            self.buf = vec![0; BUF];
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let from = self.pos + self.end as u64;
        let mut fds = Vec::new();
        let stop = self.end.saturating_add(limit).min(self.buf.len());
        let free = &mut self.buf[self.end..stop];
        let n = reduction::read_some(fd, kind, free, &mut fds, nonblocking)?;
        self.end += n;
        if !fds.is_empty() {
            self.pending.push_back(Pending {
                from,
                to: from + n as u64,
                fds,
            });
        }
        Ok(n)
    }

    /// [`fill`](Self::fill), blocking; with `spin_max` (ns, 0 = off) first a bounded
    /// adaptive spin of non-blocking reads under the futex module's spin policy. The
    /// bound halves after a spin that found nothing (down to an eighth of `spin_max`)
    /// and doubles after one that did (up to `spin_max`).
    fn fill_wait(
        &mut self,
        fd: BorrowedFd<'_>,
        kind: FdKind,
        spin_max: u64,
        limit: usize,
    ) -> io::Result<usize> {
        if spin_max > 0 {
            let bound = if self.spin_now == 0 {
                spin_max
            } else {
                self.spin_now.clamp(spin_max / 8, spin_max)
            };
            let mut got = None;
            let found = futex::spin_for(Duration::from_nanos(bound), || {
                match self.fill(fd, kind, true, limit) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                    r => {
                        got = Some(r);
                        true
                    }
                }
            });
            self.spin_now = if found {
                bound.saturating_mul(2).min(spin_max)
            } else {
                (bound / 2).max(spin_max / 8)
            };
            if let Some(r) = got {
                return r;
            }
        }
        self.fill(fd, kind, false, limit)
    }

    /// Waits for the next frame's header: `(header length, body length)`. `exact`:
    /// never reads past it. [`Error::Eof`] at an end of file between frames, a
    /// [`truncated`] error within a header.
    fn header(
        &mut self,
        fd: BorrowedFd<'_>,
        kind: FdKind,
        spin: u64,
        exact: bool,
    ) -> Result<(usize, usize)> {
        loop {
            if let Some(h) = parse(self.avail())? {
                return Ok(h);
            }
            let have = self.end - self.start;
            let limit = match (exact, have) {
                (false, 0) if self.long_last => 12,
                (false, _) => usize::MAX,
                (true, 0..4) => 4 - have,
                (true, _) => 12 - have, // the long form: -1, then 8 bytes of length
            };
            if self.fill_wait(fd, kind, spin, limit)? == 0 {
                return Err(match have {
                    0 => Error::Eof,
                    1..4 => truncated(have, 4).into(),
                    _ => truncated(have, 12).into(),
                });
            }
        }
    }

    /// The descriptors of the frame `[from, to)` of the stream (see the module docs);
    /// unclaimed descriptors of reads before it are closed.
    fn take_fds(&mut self, from: u64, to: u64) -> Vec<OwnedFd> {
        while let Some(p) = self.pending.front() {
            if p.to <= from {
                self.pending.pop_front(); // nobody's: closed
                continue;
            }
            if p.from <= from && to >= p.to {
                return self.pending.pop_front().map(|p| p.fds).unwrap_or_default();
            }
            break;
        }
        Vec::new()
    }

    /// Receives the next frame: its body and descriptors. A body longer than `max` is
    /// [`Error::MessageTooLarge`] (the stream is then left inside that frame). Only
    /// [`Error::Eof`] (the peer closed between frames) leaves the stream usable; a
    /// frame cut short by an end of file is a [`truncated`] error (`UnexpectedEof`), never
    /// `Eof`. `exact`: reads nothing past this frame (the authentication handshake,
    /// after which a caller may go on reading the socket itself). The body goes where
    /// `dest` says.
    pub(super) fn next(
        &mut self,
        fd: BorrowedFd<'_>,
        kind: FdKind,
        max: usize,
        spin: u64,
        exact: bool,
        dest: Dest<'_>,
    ) -> Result<(Body, Vec<OwnedFd>)> {
        let (h, len) = self.header(fd, kind, spin, exact)?;
        if len > max {
            return Err(Error::MessageTooLarge { len, max });
        }
        // a lying length near usize::MAX: read until the peer hangs up, as for any length
        let total = h.saturating_add(len);
        let from = self.pos;
        self.long_last = total > BUF;
        if total <= BUF {
            while self.end - self.start < total {
                let have = self.end - self.start;
                let limit = if exact { total - have } else { usize::MAX };
                if self.fill_wait(fd, kind, spin, limit)? == 0 {
                    return Err(truncated(have - h, len).into());
                }
            }
            let fds = self.take_fds(from, from + total as u64);
            let range = self.start + h..self.start + total;
            self.start += total;
            self.pos += total as u64;
            let body = match dest {
                Dest::Slice(out) if out.len() >= len => {
                    out[..len].copy_from_slice(&self.buf[range]);
                    Body::Into(len)
                }
                Dest::Vec(out) => {
                    out.clear();
                    out.extend_from_slice(&self.buf[range]);
                    Body::Into(len)
                }
                Dest::Own | Dest::Slice(_) => Body::InBuf(range),
            };
            return Ok((body, fds));
        }
        // a large frame: what is here (less than the frame), then the rest straight
        // into its destination, never reading past the frame's end
        let here = self.start + h..self.end;
        let fds = self.take_fds(from, from.saturating_add(total as u64));
        let body = match dest {
            Dest::Slice(out) if out.len() >= len => {
                let got = here.len();
                out[..got].copy_from_slice(&self.buf[here]);
                self.consume();
                reduction::read_body_into_slice(fd, &mut out[..len], got)?;
                Body::Into(len)
            }
            Dest::Vec(out) => {
                // a fresh allocation, not a realloc that would copy the stale contents
                let want = len.min(reduction::CHUNK);
                if out.capacity() < want {
                    *out = Vec::with_capacity(want);
                } else {
                    out.clear();
                }
                out.extend_from_slice(&self.buf[here]);
                self.consume();
                reduction::read_body_into_vec(fd, out, len)?;
                Body::Into(len)
            }
            Dest::Own | Dest::Slice(_) => {
                let mut out = Vec::with_capacity(len.min(reduction::CHUNK));
                out.extend_from_slice(&self.buf[here]);
                self.consume();
                reduction::read_body_into_vec(fd, &mut out, len)?;
                Body::Owned(out)
            }
        };
        self.pos = from + total as u64;
        Ok((body, fds))
    }

    /// Drops what the buffer holds (the start of a large frame, now copied out).
    fn consume(&mut self) {
        self.pos += (self.end - self.start) as u64;
        self.start = self.end;
    }
}
