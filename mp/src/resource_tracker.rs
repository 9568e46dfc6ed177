//! The resource tracker (CPython's `multiprocessing.resource_tracker`): a small
//! process that unlinks the named shared memory segments a program left behind.
//!
//! # How it works
//! - One tracker per program tree, started on first use of a named resource
//!   ([`SharedMemory::create`](crate::shared_memory::SharedMemory::create)): the binary
//!   is executed again with a marker (like the fork server), so it carries nothing of
//!   the program's state.
//! - Processes talk to it over a `SOCK_SEQPACKET` Unix socket at an abstract address
//!   derived from the program's authkey (which every process of the tree inherits) and
//!   the user id, so any process of the tree finds it whatever its start method: a
//!   forked child keeps using its parent's connection (messages are atomic packets), a
//!   spawned or forkserver child connects as it starts if the tracker is running, and
//!   any process connects on first use otherwise. Connections from another user are
//!   refused (`SO_PEERCRED`).
//! - Messages are CPython's lines: `REGISTER:/psm_1a2b3c4d:shared_memory`,
//!   `UNREGISTER:…`. `create` registers, `unlink` unregisters.
//! - A process that connects by itself (not a forked child) asks the tracker to wait
//!   for its parent as well (`WATCH:<pid>:process`, through a pidfd), so a segment a
//!   child created and left to its parent survives the child.
//! - When every connection has closed — every process that held one has ended — and
//!   the watched processes have ended, the
//!   tracker unlinks whatever is still registered, warns like CPython
//!   (`resource_tracker: There appear to be 2 leaked shared_memory objects to clean up
//!   at shutdown`), and exits. It ignores SIGINT and SIGTERM so a Ctrl-C or a
//!   `terminate` of the program does not stop the clean-up.
//!
//! # Differences from CPython
//! - Attaching to a segment does not register it (CPython 3.11 does; 3.13 added
//!   `track=False` because of the trouble it causes).
//! - A process of the tree started before the tracker existed, and that never uses a
//!   named resource, holds no connection; the tracker waits for it only if one of its
//!   children connected (the `WATCH` of its parent). If every process it knows of ends
//!   first, it cleans up then (CPython's spawned children always inherit the tracker's
//!   pipe, at the price of a tracker process for every program that starts children).
//! - A child whose authkey was changed (`Process::set_authkey`) finds no tracker and
//!   starts its own.

use crate::error::{Error, Result};
use crate::shared_memory::sys;
use rustix::net::{
    self, AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// Environment marker of the tracker process: its listening socket's descriptor.
pub(crate) const ENV_TRACKER: &str = "MP_RESOURCE_TRACKER_FD";

/// This process's connection to the tracker (-1 = none). Never closed once set, so a
/// borrowed descriptor stays valid; a forked child keeps using its parent's.
static CONN: AtomicI32 = AtomicI32::new(-1);

const MAX_MSG: usize = 4096;

/// What this process registered and has not unregistered, `(rtype, name)`: sent again
/// to a new tracker when the old one went away (was killed), so what was registered
/// before is still cleaned up. Per process: a forked child starts with an empty set
/// (never with a lock another parent thread held at the fork); its parent's entries
/// are the parent's to send again.
type Registered = crate::popen_fork::ForkLocal<std::sync::Mutex<BTreeSet<(String, String)>>>;
static REGISTERED: std::sync::LazyLock<Registered> = std::sync::LazyLock::new(Registered::new);

fn address() -> Result<SocketAddrUnix> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"mp-resource-tracker\0");
    h.update(crate::process::current_authkey());
    let digest = h.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let uid = rustix::process::getuid().as_raw();
    let name = format!("mp-resource-tracker-{uid}-{hex}");
    Ok(SocketAddrUnix::new_abstract_name(name.as_bytes())?)
}

fn new_socket() -> Result<OwnedFd> {
    Ok(net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

fn connect() -> Result<OwnedFd> {
    let s = new_socket()?;
    net::connect(&s, &address()?)?;
    Ok(s)
}

fn install(fd: OwnedFd) -> i32 {
    let raw = fd.as_raw_fd();
    match CONN.compare_exchange(-1, raw, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            let raw = fd.into_raw_fd(); // kept open for the rest of the process's life
                                        // ask the tracker to wait for our parent too, which may hold no connection
            if let Some((ppid, _)) = crate::process::current_meta().parent {
                let msg = format!("WATCH:{ppid}:process\n");
                let _ = net::send(
                    sys::borrow_forever(raw),
                    msg.as_bytes(),
                    SendFlags::NOSIGNAL,
                );
            }
            raw
        }
        Err(existing) => existing, // another thread connected first: keep theirs
    }
}

/// Starts a tracker (bind, connect, spawn), or connects to one another process just
/// started. Returns the connection.
fn start() -> Result<OwnedFd> {
    let addr = address()?;
    let listener = new_socket()?;
    match net::bind(&listener, &addr) {
        Ok(()) => {}
        Err(rustix::io::Errno::ADDRINUSE) => {
            // someone else is starting it: wait for its listen()
            for _ in 0..200 {
                if let Ok(s) = connect() {
                    return Ok(s);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            return Err(Error::Io(std::io::Error::other(
                "the resource tracker's address is taken but nobody answers",
            )));
        }
        Err(e) => return Err(e.into()),
    }
    net::listen(&listener, 128)?;
    // Our connection waits in the backlog: the tracker's first accept takes it, and
    // if we die before it runs, it reads EOF and exits.
    let conn = new_socket()?;
    net::connect(&conn, &addr)?;
    let exe = crate::context::executable()?;
    let _pid = crate::popen_spawn::spawn_with_socket(&exe, &listener, ENV_TRACKER)?;
    Ok(conn)
}

/// The connection, made (and the tracker started) if needed.
fn ensure_connected() -> Result<i32> {
    let fd = CONN.load(Ordering::Acquire);
    if fd >= 0 {
        return Ok(fd);
    }
    let conn = match connect() {
        Ok(c) => c,
        Err(_) => start()?,
    };
    Ok(install(conn))
}

/// `resource_tracker.ensure_running()`: makes sure this process is connected to its
/// program's tracker, starting the tracker if needed.
pub fn ensure_running() -> Result<()> {
    ensure_connected().map(|_| ())
}

fn send(cmd: &str, name: &str, rtype: &str) -> Result<()> {
    if name.contains('\n') || rtype.contains(':') || rtype.contains('\n') {
        return Err(Error::invalid("resource names cannot contain newlines"));
    }
    let msg = format!("{cmd}:{name}:{rtype}\n");
    if msg.len() > MAX_MSG {
        return Err(Error::invalid("resource name too long"));
    }
    for attempt in 0..2 {
        let fd = ensure_connected()?;
        if attempt == 1 {
            // a new tracker: tell it what the lost one knew
            let known: Vec<_> = crate::util::lock(REGISTERED.get())
                .iter()
                .cloned()
                .collect();
            for (rtype, name) in known {
                let again = format!("REGISTER:{name}:{rtype}\n");
                let _ = net::send(
                    sys::borrow_forever(fd),
                    again.as_bytes(),
                    SendFlags::NOSIGNAL,
                );
            }
        }
        match net::send(sys::borrow_forever(fd), msg.as_bytes(), SendFlags::NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(e) if attempt == 0 => {
                // the tracker went away (it was ending as we connected, or was killed):
                // forget the dead connection (left open: see CONN) and start another
                log::debug!("resource tracker connection lost ({e}); reconnecting");
                let _ = CONN.compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Acquire);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `resource_tracker.register(name, rtype)`: the tracker unlinks `name` at the end of
/// the program unless it is unregistered first. Failures are logged, not returned
/// (the resource works without a tracker).
pub fn register(name: &str, rtype: &str) {
    crate::util::lock(REGISTERED.get()).insert((rtype.to_string(), name.to_string()));
    probe_at_exit();
    if let Err(e) = send("REGISTER", name, rtype) {
        log::warn!("resource_tracker: cannot register {name:?}: {e}");
    }
}

/// Whether this process installed [`probe_at_exit`]'s hook (per process: a forked
/// child starts with no exit hooks).
static PROBE_HOOK: std::sync::LazyLock<
    crate::popen_fork::ForkLocal<std::sync::atomic::AtomicBool>,
> = std::sync::LazyLock::new(crate::popen_fork::ForkLocal::new);

/// At exit, a process that still has names registered makes sure a live tracker knows
/// them: if the tracker it registered them with was killed, the probe fails, a new
/// tracker starts and learns them all (see [`send`]), and it unlinks them when the
/// program ends. Without it, a process whose last word to the tracker came before the
/// tracker died left its names to nobody.
fn probe_at_exit() {
    if PROBE_HOOK.get().swap(true, Ordering::AcqRel) {
        return;
    }
    crate::util::register_exit_hook(0, || {
        let any = !crate::util::lock(REGISTERED.get()).is_empty();
        if any && CONN.load(Ordering::Acquire) >= 0 {
            let _ = send("PROBE", "0", "noop");
        }
    });
}

/// `resource_tracker.unregister(name, rtype)`.
pub fn unregister(name: &str, rtype: &str) {
    crate::util::lock(REGISTERED.get()).remove(&(rtype.to_string(), name.to_string()));
    if CONN.load(Ordering::Acquire) < 0 && connect().is_err() {
        return; // no tracker: nothing registered
    }
    if let Err(e) = send("UNREGISTER", name, rtype) {
        log::warn!("resource_tracker: cannot unregister {name:?}: {e}");
    }
}

/// Whether this process holds a connection to its program's tracker (its children
/// then join the tracker too: see [`join_parents_tracker`]).
pub(crate) fn is_connected() -> bool {
    CONN.load(Ordering::Acquire) >= 0
}

/// In a child started by spawn or the fork server whose parent was connected: connect,
/// so the tracker waits for this child too (a forked child inherits the parent's
/// connection instead). A child whose parent had no tracker connects only when it
/// first registers a resource: trying on every start cost ~30 µs per child.
pub(crate) fn join_parents_tracker() {
    if CONN.load(Ordering::Acquire) < 0 {
        if let Ok(c) = connect() {
            install(c);
        }
    }
}

// ---------------------------------------------------------------------------------
// The tracker process

fn cleanup(rtype: &str, name: &str) -> std::result::Result<(), String> {
    match rtype {
        crate::shared_memory::RTYPE => match rustix::shm::unlink(name) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.to_string()),
        },
        other => Err(format!("unknown resource type {other}")),
    }
}

/// Whether the resource still exists (so is really leaked).
fn exists(rtype: &str, name: &str) -> bool {
    match rtype {
        crate::shared_memory::RTYPE => {
            rustix::shm::open(name, rustix::shm::OFlags::RDONLY, rustix::fs::Mode::empty()).is_ok()
        }
        _ => true,
    }
}

/// The tracker's main loop: never returns.
pub(crate) fn serve(listener: OwnedFd) -> ! {
    use rustix::event::{poll, PollFd, PollFlags};
    sys::ignore_termination_signals();
    let my_uid = rustix::process::getuid();
    let mut conns: Vec<OwnedFd> = Vec::new();
    let mut watched: Vec<(u32, OwnedFd)> = Vec::new(); // pidfds of processes to outlive
    let mut cache: BTreeSet<(String, String)> = BTreeSet::new(); // (rtype, name)
    let mut buf = vec![0u8; MAX_MSG];
    // the creator's connection is already in the backlog
    let accept_one = |conns: &mut Vec<OwnedFd>| {
        if let Ok(c) = net::accept_with(&listener, SocketFlags::CLOEXEC) {
            match net::sockopt::socket_peercred(&c) {
                Ok(cred) if cred.uid == my_uid => conns.push(c),
                _ => {} // another user: refused
            }
        }
    };
    accept_one(&mut conns);
    loop {
        if conns.is_empty() && watched.is_empty() {
            // anyone still waiting in the backlog?
            let mut p = [PollFd::new(&listener, PollFlags::IN)];
            if matches!(poll(&mut p, Some(&rustix::event::Timespec::default())), Ok(n) if n > 0) {
                accept_one(&mut conns);
                continue;
            }
            break;
        }
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(conns.len() + 1);
        fds.push(PollFd::new(&listener, PollFlags::IN));
        for c in &conns {
            fds.push(PollFd::new(c, PollFlags::IN));
        }
        for (_, w) in &watched {
            fds.push(PollFd::new(w, PollFlags::IN));
        }
        if poll(&mut fds, None).is_err() {
            continue; // EINTR
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        let mut gone: Vec<usize> = (0..watched.len())
            .filter(|i| ready[1 + conns.len() + i])
            .collect();
        while let Some(i) = gone.pop() {
            watched.swap_remove(i);
        }
        let mut closed = Vec::new();
        for (i, c) in conns.iter().enumerate() {
            if !ready[i + 1] {
                continue;
            }
            match net::recv(c.as_fd(), &mut buf[..], RecvFlags::DONTWAIT) {
                Ok((0, _)) => closed.push(i),
                Ok((n, _)) => {
                    let n = n.min(buf.len());
                    for line in String::from_utf8_lossy(&buf[..n]).lines() {
                        let mut parts = line.splitn(2, ':');
                        let cmd = parts.next().unwrap_or("");
                        let rest = parts.next().unwrap_or("");
                        let Some((name, rtype)) = rest.rsplit_once(':') else {
                            continue;
                        };
                        let key = (rtype.to_string(), name.to_string());
                        match cmd {
                            "REGISTER" => {
                                cache.insert(key);
                            }
                            "UNREGISTER" => {
                                cache.remove(&key);
                            }
                            "WATCH" => {
                                let pid = name.parse::<u32>().unwrap_or(0);
                                if pid > 0 && !watched.iter().any(|(p, _)| *p == pid) {
                                    if let Ok(fd) = crate::popen_fork::pidfd(pid) {
                                        watched.push((pid, fd));
                                    }
                                }
                            }
                            "PROBE" => {}
                            other => eprintln!("resource_tracker: unknown command {other:?}"),
                        }
                    }
                }
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => closed.push(i),
            }
        }
        for i in closed.into_iter().rev() {
            conns.swap_remove(i);
        }
        if ready[0] {
            accept_one(&mut conns);
        }
    }
    drop(listener);
    // Registrations and unregistrations come on different connections, so an unlink by
    // one process can overtake the registration by another: count only what is still there.
    cache.retain(|(t, n)| exists(t, n));
    let rtypes: BTreeSet<String> = cache.iter().map(|(t, _)| t.clone()).collect();
    for rtype in rtypes {
        let names: Vec<&String> = cache
            .iter()
            .filter(|(t, _)| *t == rtype)
            .map(|(_, n)| n)
            .collect();
        eprintln!(
            "UserWarning: resource_tracker: There appear to be {} leaked {rtype} objects to clean up at shutdown",
            names.len()
        );
        for name in names {
            if let Err(e) = cleanup(&rtype, name) {
                eprintln!("UserWarning: resource_tracker: {name:?}: {e}");
            }
        }
    }
    crate::popen_fork::exit_now(0)
}

#[doc(hidden)]
pub mod root_exports {}
