//! The forkserver start method, parent side: start the server on first use, send it a
//! request per child, read back the pid (see `forkserver` for the protocol).

use crate::codec;
use crate::error::{Error, Result};
use crate::popen_fork::{wait_readable, Popen};
use crate::reduction::{read_exact_fds, write_frame, FdKind};
use crate::spawn::Payload;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Duration;

struct Server {
    ctl: OwnedFd,
    pid: u32,
    pidfd: OwnedFd,
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

fn lock() -> std::sync::MutexGuard<'static, Option<Server>> {
    crate::util::lock(&SERVER)
}

fn start_server() -> Result<Server> {
    crate::spawn::keep_bootstrap_linked();
    let (ours, theirs) = UnixStream::pair()?;
    let exe = crate::context::executable()?;
    let theirs: OwnedFd = theirs.into();
    let pid = crate::popen_spawn::spawn_with_socket(&exe, &theirs, crate::spawn::ENV_FORKSERVER)?;
    let pidfd = crate::popen_fork::pidfd(pid)?;
    drop(theirs);
    let init = crate::forkserver::ServerInit {
        preload: crate::context::forkserver_preload(),
        log_level: crate::util::current_log_level(),
    };
    let ctl: OwnedFd = ours.into();
    write_frame(ctl.as_fd(), FdKind::Socket, &codec::encode(&init)?, &[])?;
    Ok(Server { ctl, pid, pidfd })
}

/// Asks the fork server (started if needed) for a child running `payload`, whose
/// argument descriptors are `fds` (CPython's `popen_forkserver.Popen._launch`).
pub(crate) fn launch(payload: &Payload, fds: Vec<OwnedFd>, want_result: bool) -> Result<Popen> {
    let bytes = codec::encode(payload)?;
    // the request carries the payload: the server's forked child has it in memory
    let (ours, theirs) = crate::popen_fork::result_pair(want_result)?;
    let popen = request(&bytes, fds, theirs)?;
    *crate::util::lock(&popen.result_sock) = ours;
    Ok(popen)
}

/// One request to the server; `result` is the child's end of the result socket.
fn request(payload: &[u8], fds: Vec<OwnedFd>, result: Option<OwnedFd>) -> Result<Popen> {
    let (st_ours, st_theirs) = UnixStream::pair()?;
    let mut body = Vec::with_capacity(payload.len() + 1);
    body.push(result.is_some() as u8);
    body.extend_from_slice(payload);
    let mut passed = vec![st_theirs.as_fd()];
    passed.extend(result.as_ref().map(|r| r.as_fd()));
    passed.extend(fds.iter().map(|f| f.as_fd()));
    {
        let mut guard = lock();
        let mut attempts = 0;
        loop {
            if guard.is_none() {
                *guard = Some(start_server()?);
            }
            let server = guard.as_ref().expect("started");
            match write_frame(server.ctl.as_fd(), FdKind::Socket, &body, &passed) {
                Ok(()) => break,
                Err(e) if attempts == 0 => {
                    // the server died: reap it and start a new one
                    log::debug!("fork server gone ({e}); starting a new one");
                    if let Some(old) = guard.take() {
                        reap(old);
                    }
                    attempts += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    drop(passed);
    drop((fds, result, st_theirs));
    let st: OwnedFd = st_ours.into();
    let mut buf = [0u8; 4];
    if !read_exact_fds(st.as_fd(), FdKind::Socket, &mut buf, &mut Vec::new())? {
        return Err(Error::Io(std::io::Error::other(
            "the fork server failed to start the child",
        )));
    }
    let pid = i32::from_be_bytes(buf);
    if pid <= 0 {
        return Err(Error::Io(std::io::Error::other(
            "the fork server sent a bad pid",
        )));
    }
    Ok(Popen::server(pid as u32, st))
}

fn reap(server: Server) {
    drop(server.ctl);
    let _ = wait_readable(server.pidfd.as_fd(), Some(Duration::from_secs(5)));
    let mut st = 0;
    // SAFETY: waitpid on our own child (the server), non-blocking.
    unsafe { libc::waitpid(server.pid as libc::pid_t, &mut st, libc::WNOHANG) };
}

/// Stops the fork server (exit handler): closing the control socket ends it.
pub(crate) fn stop() {
    if let Some(server) = lock().take() {
        reap(server);
    }
}

/// Locks the server state (held across fork so the child never sees it mid-update).
/// In the forked child, set the guarded value to `None`: the child starts its own
/// server if it needs one, and closing its copy of the control socket lets the
/// server see its real parent's exit.
pub(crate) struct ForkGuard(std::sync::MutexGuard<'static, Option<Server>>);

impl ForkGuard {
    pub(crate) fn in_child(mut self) {
        *self.0 = None;
    }
}

pub(crate) fn lock_for_fork() -> ForkGuard {
    ForkGuard(lock())
}
