//! `wait()` over connections, listeners, process sentinels and sockets (CPython's
//! `multiprocessing.connection.wait`).

use super::{Connection, Listener};
use crate::error::Result;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

/// Something [`wait`] can wait on: it names a descriptor that becomes readable.
///
/// Implemented for [`Connection`], [`Listener`], a raw descriptor (`RawFd`, e.g. a
/// `Process::sentinel()`), [`Sentinel`], std sockets and owned/borrowed descriptors.
pub trait Waitable {
    /// The descriptor to poll for readability.
    fn wait_fd(&self) -> Result<RawFd>;

    /// Ready without looking at the descriptor (a [`Connection`] with a whole message
    /// in its read buffer). `false` unless overridden.
    fn ready_now(&self) -> bool {
        false
    }
}

/// A process sentinel (or any descriptor) for [`wait`]; a bare `RawFd` works as well.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sentinel(pub RawFd);

impl Waitable for Sentinel {
    fn wait_fd(&self) -> Result<RawFd> {
        Ok(self.0)
    }
}

impl Waitable for RawFd {
    fn wait_fd(&self) -> Result<RawFd> {
        Ok(*self)
    }
}

impl Waitable for Connection {
    fn wait_fd(&self) -> Result<RawFd> {
        self.fileno()
    }

    fn ready_now(&self) -> bool {
        self.buffered_message()
    }
}

impl Waitable for Listener {
    /// Ready when a client waits to be accepted, or a handshake that finished on its
    /// own thread waits to be returned by `accept`.
    fn wait_fd(&self) -> Result<RawFd> {
        self.ready_fd()
    }
}

impl<T: Waitable + ?Sized> Waitable for &T {
    fn wait_fd(&self) -> Result<RawFd> {
        (**self).wait_fd()
    }

    fn ready_now(&self) -> bool {
        (**self).ready_now()
    }
}

macro_rules! waitable_as_raw_fd {
    ($($t:ty),*) => {$(
        impl Waitable for $t {
            fn wait_fd(&self) -> Result<RawFd> {
                Ok(self.as_raw_fd())
            }
        }
    )*};
}
waitable_as_raw_fd!(
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixListener,
    std::net::TcpStream,
    std::net::TcpListener,
    std::process::ChildStdout,
    std::process::ChildStderr,
    std::fs::File,
    OwnedFd,
    BorrowedFd<'_>
);

/// Python's `multiprocessing.connection.wait(object_list, timeout)`: waits until at
/// least one object is ready and returns the indices of all ready ones, or an empty
/// list after `timeout`. A connection is ready when a message or the end of file is
/// there (a closed peer counts as ready), a listener when a client is waiting, a
/// process sentinel when the process ended. `None` waits forever;
/// `Some(Duration::ZERO)` only looks. Interrupted waits resume with the time left.
///
/// ```
/// use std::time::Duration;
/// let (a, b) = mp::pipe(true)?;
/// let (c, d) = mp::pipe(true)?;
/// assert!(mp::wait(&[&a, &c], Some(Duration::ZERO))?.is_empty());
/// d.send(&1)?;
/// assert_eq!(mp::wait(&[&a, &c], None)?, [1]);
/// drop(b); // a closed peer: ready too
/// assert_eq!(mp::wait(&[&a, &c], None)?, [0, 1]);
/// # Ok::<(), mp::Error>(())
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let fds = objects
        .iter()
        .map(|o| o.wait_fd())
        .collect::<Result<Vec<_>>>()?;
    let now: Vec<usize> = (0..objects.len())
        .filter(|&i| objects[i].ready_now())
        .collect();
    if now.is_empty() {
        return crate::reduction::poll_fds(&fds, timeout);
    }
    let mut ready = crate::reduction::poll_fds(&fds, Some(Duration::ZERO))?;
    ready.extend(now);
    ready.sort_unstable();
    ready.dedup();
    Ok(ready)
}
