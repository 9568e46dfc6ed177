//! The spawn start method: execute the program's binary again (`posix_spawn`), with
//! the payload socket as descriptor 3 and the child marker in the environment.

use crate::codec;
use crate::error::{Error, Result};
use crate::popen_fork::{dup_above, Popen};
use crate::reduction::{read_exact_fds, write_frame, FdKind};
use crate::spawn::Payload;
use crate::util::lock;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The descriptor number the payload socket has in a spawned child.
pub(crate) const CHILD_FD: i32 = 3;

fn cstring(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| Error::invalid("NUL byte in a path or environment entry"))
}

/// Starts `exe` with `sock` as descriptor 3 and `marker=3` added to the environment.
/// Returns the pid.
pub(crate) fn spawn_with_socket(exe: &Path, sock: &OwnedFd, marker: &str) -> Result<u32> {
    // keep the socket clear of descriptor 3 so dup2 really clears close-on-exec
    let high = dup_above(std::os::fd::AsFd::as_fd(sock), 10)?;
    let path = cstring(exe.as_os_str())?;
    let argv_owned = [path.clone()];
    let mut argv: Vec<*mut libc::c_char> =
        argv_owned.iter().map(|s| s.as_ptr() as *mut _).collect();
    argv.push(std::ptr::null_mut());
    let mut env_owned = Vec::new();
    for (k, v) in std::env::vars_os() {
        if k.as_bytes() == marker.as_bytes() {
            continue;
        }
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env_owned
            .push(CString::new(kv).map_err(|_| Error::invalid("NUL byte in the environment"))?);
    }
    env_owned.push(CString::new(format!("{marker}={CHILD_FD}")).expect("no NUL"));
    let mut envp: Vec<*mut libc::c_char> = env_owned.iter().map(|s| s.as_ptr() as *mut _).collect();
    envp.push(std::ptr::null_mut());

    let mut pid: libc::pid_t = 0;
    // SAFETY: the file actions and attributes are initialised, used and destroyed here;
    // argv and envp are NUL-terminated arrays of valid C strings that outlive the call.
    let rc = unsafe {
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut fa);
        libc::posix_spawnattr_init(&mut attr);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::posix_spawnattr_setsigmask(&mut attr, &empty);
        let mut defaults: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut defaults);
        libc::sigaddset(&mut defaults, libc::SIGPIPE);
        libc::posix_spawnattr_setsigdefault(&mut attr, &defaults);
        libc::posix_spawnattr_setflags(
            &mut attr,
            (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short,
        );
        libc::posix_spawn_file_actions_adddup2(&mut fa, high.as_raw_fd(), CHILD_FD);
        let rc = libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            &fa,
            &attr,
            argv.as_ptr(),
            envp.as_ptr(),
        );
        libc::posix_spawn_file_actions_destroy(&mut fa);
        libc::posix_spawnattr_destroy(&mut attr);
        rc
    };
    drop(high);
    if rc != 0 {
        return Err(Error::Io(std::io::Error::from_raw_os_error(rc)));
    }
    Ok(pid as u32)
}

/// Spawns a child and hands it `payload` with the descriptors `fds` on its socket
/// (CPython's `popen_spawn_posix.Popen._launch`).
pub(crate) fn launch(payload: &Payload, fds: Vec<OwnedFd>, want_result: bool) -> Result<Popen> {
    let bytes = codec::encode(payload)?;
    let (ours, theirs) = UnixStream::pair()?;
    let (ours, theirs): (OwnedFd, OwnedFd) = (ours.into(), theirs.into());
    crate::spawn::keep_bootstrap_linked();
    let exe = crate::context::executable()?;
    let pid = spawn_with_socket(&exe, &theirs, crate::spawn::ENV_CHILD)?;
    drop(theirs);
    let popen = Popen::direct(pid)?;
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    // The child acknowledges its payload with one byte; end of file instead means it
    // died (or was not an mp program) before reading it: an error, never a hang.
    let sent = write_frame(ours.as_fd(), FdKind::Socket, &bytes, &borrowed)
        .map_err(Error::from)
        .and_then(|()| {
            let mut ack = [0u8; 1];
            match read_exact_fds(ours.as_fd(), FdKind::Socket, &mut ack, &mut Vec::new())? {
                true => Ok(()),
                false => Err(Error::Eof),
            }
        });
    if let Err(e) = sent {
        let code = popen.wait(Some(Duration::from_secs(10)))?;
        return Err(Error::Io(std::io::Error::other(format!(
            "child process {} exited (exit code {}) before reading its payload: {e}",
            popen.pid,
            code.map_or("unknown".to_string(), |c| c.to_string())
        ))));
    }
    drop(fds);
    if want_result {
        *lock(&popen.result_sock) = Some(ours);
    }
    Ok(popen)
}
