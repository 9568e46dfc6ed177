//! The fork server (CPython's `multiprocessing.forkserver`, server side).
//!
//! Spawned once per program on first use (the binary executed again with the
//! `MP_FORKSERVER` marker), it stays small and single-threaded and forks one child per
//! request. A request is a frame on the control socket carrying two descriptors: the
//! child's payload socket and a status socket. The server writes the child's pid
//! (4 bytes, big-endian) to the status socket at once, and its exit code when it ends;
//! the parent uses that socket as the child's sentinel. The server exits when the
//! control socket closes (its parent ended).

use crate::codec;
use crate::popen_fork::{decode_status, exit_now, fork, ignore_sigint, pidfd};
use crate::reduction::{read_frame, FdKind};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// What the parent tells a new fork server.
#[derive(Serialize, Deserialize)]
pub(crate) struct ServerInit {
    /// Registered zero-argument tasks to run once before serving.
    pub preload: Vec<String>,
    /// The logging level children start with.
    pub log_level: Option<usize>,
}

struct Child {
    pid: u32,
    pidfd: OwnedFd,
    status: OwnedFd,
}

fn write_i32(fd: &OwnedFd, v: i32) {
    let _ = crate::reduction::send_with_fds(
        fd.as_fd(),
        &[std::io::IoSlice::new(&v.to_be_bytes())],
        &[],
    );
}

/// The server's main loop; never returns.
pub(crate) fn serve(ctl: OwnedFd) -> ! {
    ignore_sigint();
    let init: ServerInit = match read_frame(ctl.as_fd(), FdKind::Socket, 1 << 20)
        .and_then(|(b, _)| codec::decode(&b))
    {
        Ok(i) => i,
        Err(_) => exit_now(1),
    };
    crate::util::set_inherited_log_level(init.log_level);
    for name in &init.preload {
        match crate::spawn::task_by_name(name) {
            Ok(entry) => {
                let args = codec::encode(&()).unwrap_or_default();
                if let Err(e) = (entry.call)(&args, Vec::new()) {
                    eprintln!("mp fork server: preload {name} failed: {e}");
                }
            }
            Err(e) => eprintln!("mp fork server: preload: {e}"),
        }
    }
    let mut children: Vec<Child> = Vec::new();
    loop {
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(children.len() + 1);
        pfds.push(libc::pollfd {
            fd: ctl.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        for c in &children {
            pfds.push(libc::pollfd {
                fd: c.pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: valid array of pollfds.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if r < 0 {
            continue; // EINTR
        }
        // reap ended children first (their pidfds are readable)
        let mut i = 0;
        let mut k = 1;
        while i < children.len() {
            if pfds[k].revents != 0 {
                let c = children.swap_remove(i);
                let mut status = 0;
                // SAFETY: waitpid on our own child.
                let r = unsafe { libc::waitpid(c.pid as libc::pid_t, &mut status, 0) };
                let code = if r == c.pid as libc::pid_t {
                    decode_status(status)
                } else {
                    255
                };
                write_i32(&c.status, code);
                // keep pfds aligned with the swapped vector: re-check the moved child next round
                pfds.swap_remove(k);
                continue;
            }
            i += 1;
            k += 1;
        }
        if pfds[0].revents == 0 {
            continue;
        }
        // a request: [has_result] + payload, with fds [status, result?, args…]
        let (body, mut fds) = match read_frame(ctl.as_fd(), FdKind::Socket, usize::MAX) {
            Ok(x) => x,
            Err(_) => exit_now(0), // the parent is gone
        };
        let has_result = body.first() == Some(&1);
        if body.is_empty() || fds.len() < 1 + has_result as usize {
            continue;
        }
        let status = fds.remove(0);
        let result = has_result.then(|| fds.remove(0));
        // the server is single-threaded, but every fork site takes the same guard
        let locks = crate::process::lock_for_fork();
        let forked = fork();
        if let Ok(None) = forked {
            locks.in_child(None);
        } else {
            drop(locks);
        }
        match forked {
            Ok(None) => {
                drop(children);
                drop(status);
                drop(ctl);
                crate::spawn::child_from_payload(&body[1..], fds, result)
            }
            Ok(Some(pid)) => {
                drop((result, fds, body));
                write_i32(&status, pid as i32);
                match pidfd(pid) {
                    Ok(pidfd) => children.push(Child { pid, pidfd, status }),
                    Err(_) => {
                        let mut st = 0;
                        // SAFETY: waitpid on our own child.
                        unsafe { libc::waitpid(pid as libc::pid_t, &mut st, 0) };
                        write_i32(&status, decode_status(st));
                    }
                }
            }
            Err(_) => drop(status), // the parent reads EOF: an error, not a hang
        }
    }
}
