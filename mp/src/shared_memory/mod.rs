//! Named shared memory (CPython's `multiprocessing.shared_memory`): [`SharedMemory`]
//! and [`ShareableList`].
//!
//! A [`SharedMemory`] is a POSIX shared memory object (`shm_open`, visible as
//! `/dev/shm/<name>`) mapped into this process. Any process that knows the name can
//! attach to it, including a Python process (`SharedMemory(name)`); a
//! [`ShareableList`] uses CPython's byte layout, so Python's
//! `ShareableList(name=...)` reads and writes the lists made here, and the other way
//! round.
//!
//! ```
//! # mp::test_support!();
//! use mp::shared_memory::SharedMemory;
//!
//! # fn main() -> mp::Result<()> {
//! let mut shm_a = SharedMemory::create(None, 10)?;
//! shm_a.buf_mut()[..4].copy_from_slice(&[22, 33, 44, 55]);
//! shm_a.buf_mut()[4] = 100;
//! let mut shm_b = SharedMemory::attach(shm_a.name())?;   // another process could do this
//! assert_eq!(&shm_b.buf()[..5], &[22, 33, 44, 55, 100]);
//! shm_b.buf_mut()[..5].copy_from_slice(b"howdy");
//! assert_eq!(&shm_a.buf()[..5], b"howdy");
//! shm_b.close()?;
//! shm_a.close()?;
//! shm_a.unlink()?;   // once, by one process
//! # Ok(()) }
//! ```
//!
//! # Lifetime and the resource tracker
//! A segment lives until it is unlinked, whoever created it. [`SharedMemory::create`]
//! registers the name with the program's [resource tracker](crate::resource_tracker)
//! and [`SharedMemory::unlink`] unregisters it; whatever is still registered when the
//! program's last process ends (a child killed before it could unlink, a program that
//! forgot) is unlinked by the tracker, which warns about it. Attaching does not
//! register (CPython 3.11 does, which makes an attaching process's tracker unlink the
//! creator's segment: fixed in 3.13 with `track=False`).
//!
//! # Safety story: memory that other processes write
//! The bytes of a segment can be written at any time by any process that attached
//! it. [`SharedMemory::buf`] and [`buf_mut`](SharedMemory::buf_mut) give ordinary
//! slices, as CPython gives a `memoryview`: concurrent writers must be coordinated by
//! the program (a [`Lock`](crate::synchronize), an event, a pipe message), exactly as
//! in Python. Unsynchronized access gives torn or stale bytes, never a crash.
//!
//! Inside one process the borrow checker keeps its usual promises *per handle*: each
//! handle (each clone included) has its own mapping of the segment, so `buf_mut` on one
//! handle never aliases a live `buf` slice of another handle at the same address; a
//! write through another handle is, to this handle, like a write by another process.
//! A program that polls memory another process changes should read it with atomics
//! through [`as_ptr`](SharedMemory::as_ptr) rather than re-read a slice it holds (the
//! compiler may assume a borrowed slice does not change).
//! [`ShareableList`] reads and writes only through atomic (relaxed) loads and stores on
//! a private mapping, so its methods take `&self` and are sound under any concurrency.
//!
//! Every value a [`ShareableList`] reads from the segment (its length, slot offsets,
//! formats, type codes and the bytes of each item) is validated before use: a layout
//! or an item another process corrupted gives [`Error::Codec`], never a panic, an
//! out-of-bounds access or an allocation larger than the segment. One thing no check
//! can prevent: a process that shrinks the segment (`ftruncate`) under a mapping makes
//! the next access to the lost pages raise `SIGBUS`, as in any program (POSIX shared
//! memory objects, unlike memfds, cannot be sealed).

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// The resource type name shared memory is registered under (as CPython).
pub(crate) const RTYPE: &str = "shared_memory";

// ---------------------------------------------------------------------------------
// The system layer: one mapping of a segment

/// One `mmap` of a segment, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access that can race goes through
// atomics, and the slices handed out follow the borrow rules of the owning handle.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize) -> Result<Self> {
        use rustix::mm::{mmap, MapFlags, ProtFlags};
        // SAFETY: a fresh shared mapping of a descriptor we own; it aliases no Rust
        // allocation, and it is unmapped only in Drop.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| Error::invalid("mmap gave NULL"))?;
        Ok(Mapping { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes are mapped for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; `&mut self` makes this the only slice of this mapping.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    fn check(&self, off: usize, len: usize) -> Result<()> {
        match off.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::Codec(
                format!(
                    "corrupt shared list: {len} bytes at offset {off} lie outside the {} byte \
                     segment",
                    self.len
                )
                .into(),
            )),
        }
    }

    fn byte(&self, off: usize) -> &AtomicU8 {
        // SAFETY: callers checked `off < len`; AtomicU8 has alignment 1 and the same
        // layout as u8; the memory lives as long as `self`.
        unsafe { &*(self.ptr.as_ptr().add(off) as *const AtomicU8) }
    }

    fn load_u8(&self, off: usize) -> Result<u8> {
        self.check(off, 1)?;
        Ok(self.byte(off).load(Ordering::Relaxed))
    }

    fn store_u8(&self, off: usize, v: u8) -> Result<()> {
        self.check(off, 1)?;
        self.byte(off).store(v, Ordering::Relaxed);
        Ok(())
    }

    /// 8 bytes at `off`, as they lie in memory.
    fn load8(&self, off: usize) -> Result<[u8; 8]> {
        self.check(off, 8)?;
        if off & 7 == 0 {
            // SAFETY: in bounds (checked) and 8-aligned (the mapping is page-aligned).
            let a = unsafe { &*(self.ptr.as_ptr().add(off) as *const AtomicU64) };
            Ok(a.load(Ordering::Relaxed).to_ne_bytes())
        } else {
            let mut b = [0u8; 8];
            for (i, x) in b.iter_mut().enumerate() {
                *x = self.byte(off + i).load(Ordering::Relaxed);
            }
            Ok(b)
        }
    }

    fn store8(&self, off: usize, v: [u8; 8]) -> Result<()> {
        self.check(off, 8)?;
        if off & 7 == 0 {
            // SAFETY: in bounds and aligned, as in `load8`.
            let a = unsafe { &*(self.ptr.as_ptr().add(off) as *const AtomicU64) };
            a.store(u64::from_ne_bytes(v), Ordering::Relaxed);
        } else {
            for (i, x) in v.iter().enumerate() {
                self.byte(off + i).store(*x, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn load_bytes(&self, off: usize, len: usize) -> Result<Vec<u8>> {
        self.check(off, len)?;
        Ok((0..len)
            .map(|i| self.byte(off + i).load(Ordering::Relaxed))
            .collect())
    }

    /// Writes `data` at `off`, then zeros up to `fill` bytes in all (struct's `%ds`).
    fn store_bytes(&self, off: usize, data: &[u8], fill: usize) -> Result<()> {
        let n = fill.max(data.len());
        self.check(off, n)?;
        for i in 0..n {
            let v = data.get(i).copied().unwrap_or(0);
            self.byte(off + i).store(v, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range in `new`; no slice of it outlives
        // `self` (slices borrow the handle that owns the mapping).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Small unsafe helpers the resource tracker needs (kept in this system-layer file).
pub(crate) mod sys {
    use std::os::fd::{BorrowedFd, RawFd};

    /// Borrows a descriptor the caller keeps open for the rest of the process's life
    /// (the tracker connection is never closed once installed).
    pub(crate) fn borrow_forever(fd: RawFd) -> BorrowedFd<'static> {
        // SAFETY: see the doc comment: the caller guarantees `fd` is never closed.
        unsafe { BorrowedFd::borrow_raw(fd) }
    }

    /// Ignores SIGINT, SIGTERM and SIGPIPE (the tracker outlives a Ctrl-C or a
    /// terminate of its program's processes, as CPython's does).
    pub(crate) fn ignore_termination_signals() {
        // SAFETY: setting dispositions to SIG_IGN is always sound.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    }
}

// ---------------------------------------------------------------------------------
// SharedMemory

fn random_name() -> String {
    // CPython: '/psm_' + 4 random bytes in hex (names stay under FreeBSD's 14 characters)
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id().rotate_left(16);
        b = t.to_le_bytes();
    }
    format!("psm_{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

/// `O_NOFOLLOW`, which glibc's `shm_open` (so CPython's) always adds: a name that
/// another process sent must not open whatever a symlink planted in `/dev/shm`
/// points to. (Names with a `/` inside are refused by `shm::open` itself.)
fn no_follow() -> rustix::shm::OFlags {
    rustix::shm::OFlags::from_bits_retain(rustix::fs::OFlags::NOFOLLOW.bits())
}

/// The `shm_open` path of a reported name (CPython prepends the slash).
fn os_path(name: &str) -> String {
    format!("/{name}")
}

/// Python's `multiprocessing.shared_memory.SharedMemory`: a named block of memory
/// shared between processes.
///
/// Create one with [`create`](Self::create), attach to an existing one by name with
/// [`attach`](Self::attach). Cloning gives another handle (with its own mapping of the
/// same memory, see the [module docs](self) for why); serializing one sends its name,
/// as CPython pickles it, so it travels as a [`Process`](crate::Process) argument under
/// every start method and the child attaches by name.
///
/// ```
/// # mp::test_support!();
/// use mp::shared_memory::SharedMemory;
///
/// #[mp::task]
/// fn fill(mut shm: SharedMemory) {
///     shm.buf_mut()[..5].copy_from_slice(b"howdy");
/// }
///
/// # fn main() -> mp::Result<()> {
/// let shm = SharedMemory::create(None, 16)?;
/// let p = mp::Process::new(fill, (shm.clone(),));
/// p.start()?;
/// p.join()?;
/// assert_eq!(&shm.buf()[..5], b"howdy");
/// shm.unlink()?;
/// # Ok(()) }
/// ```
pub struct SharedMemory {
    name: String,
    size: usize,
    fd: Arc<OwnedFd>,
    map: Option<Mapping>,
    closed: AtomicBool,
}

impl SharedMemory {
    /// `SharedMemory(name, create=True, size=size)`: creates a new segment of `size`
    /// bytes (zero-filled) named `name`, or a fresh random name (`psm_xxxxxxxx`) when
    /// `None`. Opened `O_CREAT | O_EXCL` with mode 0600: an existing name gives
    /// [`Error::Io`] (`AlreadyExists`); `size` 0 gives [`Error::InvalidState`].
    /// The name is registered with the [resource tracker](crate::resource_tracker).
    pub fn create(name: Option<&str>, size: usize) -> Result<Self> {
        use rustix::shm::{self, Mode, OFlags};
        if size == 0 {
            return Err(Error::invalid(
                "'size' must be a positive number different from zero",
            ));
        }
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | no_follow();
        let mode = Mode::RUSR | Mode::WUSR;
        let (name, fd) = match name {
            Some(n) => (n.to_string(), shm::open(os_path(n).as_str(), flags, mode)?),
            None => loop {
                let n = random_name();
                match shm::open(os_path(&n).as_str(), flags, mode) {
                    Ok(fd) => break (n, fd),
                    Err(rustix::io::Errno::EXIST) => continue,
                    Err(e) => return Err(e.into()),
                }
            },
        };
        let path = os_path(&name);
        let made = rustix::fs::ftruncate(&fd, size as u64)
            .map_err(Error::from)
            .and_then(|()| Mapping::new(fd.as_fd(), size));
        let map = match made {
            Ok(m) => m,
            Err(e) => {
                let _ = rustix::shm::unlink(path.as_str());
                return Err(e);
            }
        };
        crate::resource_tracker::register(&path, RTYPE);
        Ok(SharedMemory {
            name,
            size,
            fd: Arc::new(fd),
            map: Some(map),
            closed: AtomicBool::new(false),
        })
    }

    /// `SharedMemory(name)`: attaches to the existing segment `name` (its whole size).
    /// A missing name gives [`Error::Io`] with kind `NotFound`.
    pub fn attach(name: &str) -> Result<Self> {
        use rustix::shm::{self, Mode, OFlags};
        let fd = shm::open(
            os_path(name).as_str(),
            OFlags::RDWR | no_follow(),
            Mode::empty(),
        )?;
        let size = rustix::fs::fstat(&fd)?.st_size as usize;
        if size == 0 {
            return Err(Error::invalid(format!(
                "cannot map the empty shared memory segment {name:?}"
            )));
        }
        let map = Mapping::new(fd.as_fd(), size)?;
        Ok(SharedMemory {
            name: name.to_string(),
            size,
            fd: Arc::new(fd),
            map: Some(map),
            closed: AtomicBool::new(false),
        })
    }

    /// Another handle to the same segment with its own mapping (what `clone` does,
    /// reporting a failed `mmap` instead of panicking).
    pub fn try_clone(&self) -> Result<Self> {
        let map = if self.closed.load(Ordering::Acquire) {
            None
        } else {
            Some(Mapping::new(self.fd.as_fd(), self.size)?)
        };
        Ok(SharedMemory {
            name: self.name.clone(),
            size: self.size,
            fd: self.fd.clone(),
            map,
            closed: AtomicBool::new(self.closed.load(Ordering::Acquire)),
        })
    }

    /// `name`: the unique name (without the leading slash `shm_open` uses).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `size`: the size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// `buf`: the segment's bytes (empty after [`close`](Self::close)). Other
    /// processes may change them: see the [module docs](self).
    pub fn buf(&self) -> &[u8] {
        match &self.map {
            Some(m) if !self.closed.load(Ordering::Acquire) => m.bytes(),
            _ => &[],
        }
    }

    /// `buf` for writing (empty after [`close`](Self::close)).
    pub fn buf_mut(&mut self) -> &mut [u8] {
        let closed = self.closed.load(Ordering::Acquire);
        match &mut self.map {
            Some(m) if !closed => m.bytes_mut(),
            _ => &mut [],
        }
    }

    /// The start of this handle's mapping, for atomic or volatile access to memory
    /// other processes change (null after [`close`](Self::close)). Using the pointer is
    /// `unsafe` and bounded by [`size`](Self::size).
    pub fn as_ptr(&self) -> *mut u8 {
        match &self.map {
            Some(m) if !self.closed.load(Ordering::Acquire) => m.ptr.as_ptr(),
            _ => std::ptr::null_mut(),
        }
    }

    /// `close()`: ends this handle's access ([`buf`](Self::buf) is empty afterwards);
    /// the segment itself stays until [`unlink`](Self::unlink). The mapping is released
    /// when the handle is dropped (slices borrowed before `close` stay valid until then).
    pub fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether [`close`](Self::close) was called on this handle.
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// `unlink()`: removes the name, so no one else can attach; the memory is freed once
    /// every process has closed it. Call it once, from one process; a second call
    /// gives [`Error::Io`] (`NotFound`). Unregisters the name from the resource tracker.
    pub fn unlink(&self) -> Result<()> {
        let path = os_path(&self.name);
        let r = rustix::shm::unlink(path.as_str());
        if matches!(r, Ok(()) | Err(rustix::io::Errno::NOENT)) {
            crate::resource_tracker::unregister(&path, RTYPE);
        }
        Ok(r?)
    }

    /// The segment's descriptor.
    pub fn fileno(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&*self.fd)
    }
}

impl Clone for SharedMemory {
    /// Another handle with its own mapping of the same memory. Panics only if the
    /// system cannot map it (address space exhausted), like an allocation failure;
    /// [`try_clone`](SharedMemory::try_clone) reports that as an error.
    fn clone(&self) -> Self {
        match self.try_clone() {
            Ok(s) => s,
            Err(e) => panic!("SharedMemory::clone: cannot map {:?}: {e}", self.name),
        }
    }
}

impl fmt::Debug for SharedMemory {
    /// `SharedMemory('psm_1a2b3c4d', size=10)`, as CPython's repr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SharedMemory({}, size={})",
            py_str_repr(&self.name),
            self.size
        )
    }
}

impl Serialize for SharedMemory {
    /// By name, as CPython pickles it.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    /// Attaches by name.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        SharedMemory::attach(&name).map_err(|e| {
            serde::de::Error::custom(format!("cannot attach shared memory {name:?}: {e}"))
        })
    }
}

mod list;
use crate::util::py_str_repr;
pub use list::{Item, ShareableItem, ShareableList};

#[doc(hidden)]
pub mod root_exports {
    pub use super::{ShareableList, SharedMemory};
}
