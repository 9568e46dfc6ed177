//! The manager's own channel: CPython frames (4-byte big-endian length, then the body)
//! over a Unix or TCP stream, authenticated with CPython's handshake.
//!
//! A manager call is one request and one reply on a private stream, and its latency is
//! its system calls. The receiving side is a [`Connection`] over a duplicate of the
//! stream, which reads through its own buffer (a small frame's header and body in one
//! `recvmsg`) and decodes a small reply in place; the handshake runs on that same
//! `Connection`. The sending side writes each frame with one `write` from a buffer the
//! channel reuses (a `Connection`'s `send` would allocate one per message), so a round
//! trip is one `write` and (usually) one read on each side, as the OS floor. Manager
//! messages carry no file descriptors: a handle inside a proxied call's arguments is
//! refused by the codec.
//!
//! The server keeps a clone of every accepted stream, so a shutdown can close them all
//! and wake the threads blocked reading them.

use crate::connection::{answer_challenge, deliver_challenge, Address, Connection};
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The largest frame a manager accepts (a corrupt length cannot make it allocate more
/// than what really arrives, but a frame this large is refused outright).
const MAX_FRAME: usize = 1 << 31;

/// A connected stream.
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn try_clone(&self) -> Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    /// A `Connection` over a duplicate of the stream: the handshake, then the channel's
    /// receiving side.
    fn conn(&self) -> Result<Connection> {
        Ok(match self.try_clone()? {
            Stream::Unix(s) => Connection::from_unix_stream(s),
            Stream::Tcp(s) => Connection::from_tcp_stream(s),
        })
    }

    /// Closes both directions (wakes a thread blocked reading it).
    pub(crate) fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => (&*s).write(buf),
            Stream::Tcp(s) => (&*s).write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One end of an authenticated manager channel.
pub(crate) struct Channel {
    /// The sending side (and what a shutdown closes).
    stream: Stream,
    /// The receiving side, over a duplicate of `stream`.
    conn: Connection,
    out: Vec<u8>,
}

impl Channel {
    fn new(stream: Stream, conn: Connection) -> Channel {
        Channel {
            stream,
            conn,
            out: Vec::new(),
        }
    }

    /// A clone of the stream (for shutting it down from elsewhere).
    pub(crate) fn stream_clone(&self) -> Result<Stream> {
        self.stream.try_clone()
    }

    /// Sends `value` as one frame (one `write`).
    pub(crate) fn send<T: Serialize>(&mut self, value: &T) -> Result<()> {
        self.out.clear();
        self.out.extend_from_slice(&[0; 4]);
        crate::codec::encode_into(value, &mut self.out)?;
        let len = self.out.len() - 4;
        let len = u32::try_from(len)
            .ok()
            .filter(|&l| (l as usize) < MAX_FRAME)
            .ok_or(Error::MessageTooLarge {
                len,
                max: MAX_FRAME,
            })?;
        self.out[..4].copy_from_slice(&len.to_be_bytes());
        (&self.stream).write_all(&self.out)?;
        Ok(())
    }

    /// Receives one frame and decodes it; [`Error::Eof`] when the peer closed (between
    /// frames or within one: a manager's private stream is dead either way, and the
    /// proxies report both as the server gone), [`Error::Codec`] for bytes that do not
    /// decode (the frame is consumed).
    pub(crate) fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        match self
            .conn
            .recv_frame_with(MAX_FRAME - 1, crate::codec::decode)
        {
            Ok(r) => r,
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::Eof),
            Err(e) => Err(e),
        }
    }
}

fn abstract_name(path: &Path) -> Option<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().strip_prefix(b"\0")
}

/// Connects to a manager's server and authenticates (the client's side of the
/// handshake: answer, then deliver).
pub(crate) fn connect(address: &Address, authkey: &[u8]) -> Result<Channel> {
    let stream = match address {
        Address::Unix(path) => match abstract_name(path) {
            Some(name) => {
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                Stream::Unix(UnixStream::connect_addr(&addr)?)
            }
            None => Stream::Unix(UnixStream::connect(path)?),
        },
        Address::Inet(host, port) => Stream::Tcp(crate::connection::connect_tcp(host, *port)?),
    };
    let conn = stream.conn()?;
    answer_challenge(&conn, authkey)?;
    deliver_challenge(&conn, authkey)?;
    Ok(Channel::new(stream, conn))
}

enum Sock {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// A manager's listening socket.
pub(crate) struct ManagerListener {
    sock: Sock,
    address: Address,
    /// A socket file to remove on drop, and the private directory it lives in.
    cleanup: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl ManagerListener {
    /// Binds at `address` (`None`: a fresh Unix socket in a private 0700 directory).
    pub(crate) fn bind(address: Option<Address>) -> Result<ManagerListener> {
        Ok(match address {
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("mp-manager-")
                    .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
                    .tempdir()?;
                let path = dir.path().join("listener");
                let l = UnixListener::bind(&path)?;
                ManagerListener {
                    sock: Sock::Unix(l),
                    address: Address::Unix(path.clone()),
                    cleanup: Some(path),
                    _dir: Some(dir),
                }
            }
            Some(Address::Unix(path)) => match abstract_name(&path) {
                Some(name) => {
                    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                    ManagerListener {
                        sock: Sock::Unix(UnixListener::bind_addr(&addr)?),
                        address: Address::Unix(path),
                        cleanup: None,
                        _dir: None,
                    }
                }
                None => ManagerListener {
                    sock: Sock::Unix(UnixListener::bind(&path)?),
                    address: Address::Unix(path.clone()),
                    cleanup: Some(path),
                    _dir: None,
                },
            },
            Some(Address::Inet(host, port)) => {
                let l = TcpListener::bind((host.as_str(), port))?;
                let actual = l.local_addr()?;
                ManagerListener {
                    sock: Sock::Tcp(l),
                    address: Address::from(actual),
                    cleanup: None,
                    _dir: None,
                }
            }
        })
    }

    /// Where clients connect (the real port when bound to port 0).
    pub(crate) fn address(&self) -> Address {
        self.address.clone()
    }

    /// Waits for a client (not yet authenticated: see [`authenticate`]).
    pub(crate) fn accept(&self) -> Result<Stream> {
        Ok(match &self.sock {
            Sock::Unix(l) => Stream::Unix(l.accept()?.0),
            Sock::Tcp(l) => {
                let s = l.accept()?.0;
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }
        })
    }

    /// Wakes a thread blocked in [`accept`](Self::accept) (it then fails).
    pub(crate) fn wake(&self) {
        let _ = match &self.sock {
            Sock::Unix(l) => rustix::net::shutdown(l, rustix::net::Shutdown::Both),
            Sock::Tcp(l) => rustix::net::shutdown(l, rustix::net::Shutdown::Both),
        };
    }
}

impl ManagerListener {
    /// Removes the socket file (and the private directory made for it): for a process
    /// that exits without running destructors.
    pub(crate) fn remove_files(&self) {
        if let Some(p) = &self.cleanup {
            let _ = std::fs::remove_file(p);
        }
        if let Some(d) = &self._dir {
            let _ = std::fs::remove_dir_all(d.path());
        }
    }
}

impl Drop for ManagerListener {
    fn drop(&mut self) {
        if let Some(p) = &self.cleanup {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The server's side of the handshake (deliver, then answer) on an accepted stream.
pub(crate) fn authenticate(stream: Stream, authkey: &[u8]) -> Result<Channel> {
    let conn = stream.conn()?;
    deliver_challenge(&conn, authkey)?;
    answer_challenge(&conn, authkey)?;
    Ok(Channel::new(stream, conn))
}
