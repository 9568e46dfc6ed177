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
use std::sync::{Arc, Mutex};

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

// ---------------------------------------------------------------------------------
// Items

/// A value of a [`ShareableList`] of mixed types: what CPython's `ShareableList`
/// holds (`int`, `float`, `bool`, `str`, `bytes`, `None`).
///
/// Equality follows Python's `==`: numbers compare by value across `Int`, `Float` and
/// `Bool` (`Int(1) == Bool(true) == Float(1.0)`), strings never equal bytes.
/// `Display` renders Python's `repr`.
#[derive(Clone, Debug)]
pub enum Item {
    /// `int` (a signed 64-bit slot, struct format `q`).
    Int(i64),
    /// `float` (`d`).
    Float(f64),
    /// `bool` (`xxxxxxx?`).
    Bool(bool),
    /// `str`, UTF-8 (`%ds`; trailing NUL bytes are not kept, as in CPython).
    Str(String),
    /// `bytes` (`%ds`; trailing NUL bytes are not kept, as in CPython).
    Bytes(Vec<u8>),
    /// `None` (`xxxxxx?x`).
    None,
}

impl Item {
    fn number(&self) -> Option<f64> {
        match self {
            Item::Int(i) => Some(*i as f64),
            Item::Float(f) => Some(*f),
            Item::Bool(b) => Some(*b as u8 as f64),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Item::Int(_) => "int",
            Item::Float(_) => "float",
            Item::Bool(_) => "bool",
            Item::Str(_) => "str",
            Item::Bytes(_) => "bytes",
            Item::None => "NoneType",
        }
    }
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Item::Str(a), Item::Str(b)) => a == b,
            (Item::Bytes(a), Item::Bytes(b)) => a == b,
            (Item::None, Item::None) => true,
            (Item::Int(a), Item::Int(b)) => a == b,
            (Item::Bool(a), Item::Bool(b)) => a == b,
            (Item::Int(a), Item::Bool(b)) | (Item::Bool(b), Item::Int(a)) => *a == *b as i64,
            (a, b) => match (a.number(), b.number()) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            },
        }
    }
}

fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let exp = if f == 0.0 {
        0
    } else {
        f.abs().log10().floor() as i32
    };
    if (-4..16).contains(&exp) {
        let s = format!("{f}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        // Rust: 1e20 / 1.5e-7; Python: 1e+20 / 1.5e-07
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

fn py_str_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

fn py_bytes_repr(b: &[u8]) -> String {
    let q = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::from("b");
    out.push(q as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(q as char);
    out
}

impl fmt::Display for Item {
    /// Python's `repr`: `42`, `-273.154`, `True`, `'howdy'`, `b'HoWdY'`, `None`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Int(i) => write!(f, "{i}"),
            Item::Float(x) => f.write_str(&py_float_repr(*x)),
            Item::Bool(true) => f.write_str("True"),
            Item::Bool(false) => f.write_str("False"),
            Item::Str(s) => f.write_str(&py_str_repr(s)),
            Item::Bytes(b) => f.write_str(&py_bytes_repr(b)),
            Item::None => f.write_str("None"),
        }
    }
}

macro_rules! item_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for Item {
            fn from(x: $t) -> Item { Item::$v(x.into()) }
        }
    )*};
}
item_from!(i64 => Int, f64 => Float, bool => Bool, String => Str, &str => Str, Vec<u8> => Bytes, &[u8] => Bytes);

impl From<()> for Item {
    fn from(_: ()) -> Item {
        Item::None
    }
}

/// A type a [`ShareableList`] can hold: converts to and from [`Item`]. Implemented
/// for `i64`, `f64`, `bool`, `String`, `Vec<u8>`, [`Item`] (mixed lists) and
/// `Option<T>` (`None` ↔ Python's `None`).
pub trait ShareableItem: Sized {
    /// This value as an [`Item`].
    fn to_item(&self) -> Item;
    /// Back from an [`Item`]; an item of another type is an [`Error::Codec`].
    fn from_item(item: Item) -> Result<Self>;
}

fn wrong_type<T>(want: &str, got: &Item) -> Result<T> {
    Err(Error::Codec(
        format!("shared list item is a {}, not a {want}: {got}", got.kind()).into(),
    ))
}

macro_rules! shareable {
    ($($t:ty => $v:ident, $want:literal);*) => {$(
        impl ShareableItem for $t {
            fn to_item(&self) -> Item { Item::$v(self.clone()) }
            fn from_item(item: Item) -> Result<Self> {
                match item {
                    Item::$v(x) => Ok(x),
                    other => wrong_type($want, &other),
                }
            }
        }
    )*};
}
shareable!(i64 => Int, "int"; f64 => Float, "float"; bool => Bool, "bool";
           String => Str, "str"; Vec<u8> => Bytes, "bytes");

impl ShareableItem for Item {
    fn to_item(&self) -> Item {
        self.clone()
    }
    fn from_item(item: Item) -> Result<Self> {
        Ok(item)
    }
}

impl<T: ShareableItem> ShareableItem for Option<T> {
    fn to_item(&self) -> Item {
        match self {
            Some(x) => x.to_item(),
            None => Item::None,
        }
    }
    fn from_item(item: Item) -> Result<Self> {
        match item {
            Item::None => Ok(None),
            other => T::from_item(other).map(Some),
        }
    }
}

// ---------------------------------------------------------------------------------
// ShareableList

const FMT_INT: &str = "q";
const FMT_FLOAT: &str = "d";
const FMT_BOOL: &str = "xxxxxxx?";
const FMT_NONE: &str = "xxxxxx?x";
const ALIGN: usize = 8;

/// CPython's back-transform codes.
const CODE_PLAIN: u8 = 0;
const CODE_STR: u8 = 1;
const CODE_BYTES: u8 = 2;
const CODE_NONE: u8 = 3;

/// How one item is stored: its struct format, back-transform code and encoded bytes.
struct Packed {
    format: String,
    code: u8,
    /// For `%ds` items: the encoded bytes; for the others: the 8-byte slot.
    data: Vec<u8>,
    is_bytes: bool,
}

fn pack(item: &Item) -> Packed {
    let (format, code, data, is_bytes) = match item {
        Item::Int(i) => (FMT_INT.into(), CODE_PLAIN, i.to_ne_bytes().to_vec(), false),
        Item::Float(f) => (
            FMT_FLOAT.into(),
            CODE_PLAIN,
            f.to_ne_bytes().to_vec(),
            false,
        ),
        Item::Bool(b) => (
            FMT_BOOL.into(),
            CODE_PLAIN,
            vec![0, 0, 0, 0, 0, 0, 0, *b as u8],
            false,
        ),
        Item::None => (FMT_NONE.into(), CODE_NONE, vec![0; 8], false),
        Item::Str(s) => (String::new(), CODE_STR, s.as_bytes().to_vec(), true),
        Item::Bytes(b) => (String::new(), CODE_BYTES, b.clone(), true),
    };
    Packed {
        format,
        code,
        data,
        is_bytes,
    }
}

/// The length in characters of a packed `str` (`None` for bytes).
fn value_chars(code: u8, data: &[u8]) -> Option<usize> {
    if code == CODE_STR {
        std::str::from_utf8(data).ok().map(|s| s.chars().count())
    } else {
        None
    }
}

/// Python's `multiprocessing.shared_memory.ShareableList`: a fixed-length list of
/// `int`, `float`, `bool`, `str`, `bytes` and `None` values stored in a
/// [`SharedMemory`] segment, with CPython's exact layout (a Python process can attach
/// to it by name, and we to one Python made).
///
/// `T` is one element type (`ShareableList<i64>`, `ShareableList<String>`, …) or
/// [`Item`] for a list of mixed types. Strings and bytes get a slot of their length
/// rounded up to the next multiple of 8 (at least one byte more); a later, longer
/// value that does not fit is refused ([`Error::InvalidState`], Python's
/// `ValueError`). Cloning or serializing refers to the same segment (by name).
///
/// ```
/// # mp::test_support!();
/// use mp::shared_memory::{Item, ShareableList};
///
/// # fn main() -> mp::Result<()> {
/// let a = ShareableList::new(&[
///     Item::from("howdy"), Item::from(b"HoWdY".to_vec()), Item::Float(-273.154),
///     Item::Int(100), Item::None, Item::Bool(true), Item::Int(42),
/// ])?;
/// assert_eq!(a.get(2)?, Item::Float(-273.154));
/// a.set(2, Item::from("dry ice"))?;
/// assert!(a.set(2, Item::from("larger than previously allocated storage space")).is_err());
/// assert_eq!(a.get(2)?.to_string(), "'dry ice'");
/// assert_eq!(a.len(), 7);
/// assert_eq!(a.index(&Item::Int(42))?, 6);
/// assert_eq!(a.count(&Item::from(b"HoWdY".to_vec()))?, 1);
/// a.shm().close()?;
/// a.shm().unlink()?;
/// # Ok(()) }
/// ```
pub struct ShareableList<T> {
    shm: SharedMemory,
    /// A private mapping every read and write goes through (atomics only), so that no
    /// slice handed out by `shm` ever aliases a write of ours.
    view: SharedMemory,
    len: usize,
    /// Offsets of each slot from the start of the data area (`len + 1` of them).
    offsets: Vec<usize>,
    /// `format()` results, kept so that `&str`s handed out stay valid.
    formats: Mutex<Vec<Box<str>>>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: ShareableItem> ShareableList<T> {
    /// `ShareableList(sequence)`: a new list in a new segment with a random name.
    pub fn new(items: &[T]) -> Result<Self> {
        Self::create(None, items)
    }

    /// `ShareableList(sequence, name=name)`: a new list in a new segment named `name`
    /// (`None` = random).
    pub fn create(name: Option<&str>, items: &[T]) -> Result<Self> {
        let packed: Vec<Packed> = items.iter().map(|x| pack(&x.to_item())).collect();
        let n = packed.len();
        let mut offsets = Vec::with_capacity(n + 1);
        let mut formats = Vec::with_capacity(n);
        let mut off = 0usize;
        offsets.push(0);
        for p in &packed {
            let slot = if p.is_bytes {
                // CPython sizes a str slot by its length in *characters*
                // (`8 * (len(item) // 8 + 1)`), so 'encodés' (7 chars, 8 bytes) gets
                // `8s`; that layout is kept. Where the UTF-8 bytes would not fit
                // (CPython silently truncates them), the slot grows to hold them.
                let units = match value_chars(p.code, &p.data) {
                    Some(chars) => chars,
                    None => p.data.len(),
                };
                (ALIGN * (units / ALIGN + 1)).max(p.data.len().div_ceil(ALIGN) * ALIGN)
            } else {
                ALIGN
            };
            let fmt = if p.is_bytes {
                format!("{slot}s")
            } else {
                p.format.clone()
            };
            if fmt.len() > 8 {
                return Err(Error::invalid(
                    "a str or bytes item of ShareableList needs less than 10 MB",
                ));
            }
            formats.push(fmt);
            off += slot;
            offsets.push(off);
        }
        let data_start = (n + 2) * 8;
        let size = data_start + off + 8 * n + n;
        let shm = SharedMemory::create(name, size)?;
        let list = Self::from_parts(shm, n, offsets)?;
        let view = &list.view.map.as_ref().expect("fresh mapping");
        view.store8(0, (n as i64).to_ne_bytes())?;
        for (i, o) in list.offsets.iter().enumerate() {
            view.store8(8 + 8 * i, (*o as i64).to_ne_bytes())?;
        }
        for (i, (p, fmt)) in packed.iter().zip(&formats).enumerate() {
            list.write_slot(i, fmt, p)?;
        }
        Ok(list)
    }

    /// `ShareableList(name=name)`: attaches to an existing list (made here or by Python).
    ///
    /// The segment's layout is whatever the last writer left, so it is validated, not
    /// trusted: a negative or oversized length, offsets that decrease or point past
    /// the segment, or formats and codes that would lie outside it give
    /// [`Error::Codec`]. (Items are validated when read: see [`get`](Self::get).)
    pub fn attach(name: &str) -> Result<Self> {
        let shm = SharedMemory::attach(name)?;
        let view = shm.try_clone()?;
        let m = view
            .map
            .as_ref()
            .ok_or_else(|| Error::invalid("the shared memory is closed"))?;
        let corrupt = |what: String| {
            Error::Codec(format!("{name:?} does not hold a valid ShareableList: {what}").into())
        };
        let n = i64::from_ne_bytes(m.load8(0)?);
        // each item takes at least an offset, a format and a code (17 bytes) beside
        // the length and the end offset: a larger count cannot be true
        let max = shm.size.saturating_sub(16) / 17;
        let n = match usize::try_from(n) {
            Ok(n) if n <= max => n,
            _ => return Err(corrupt(format!("length {n}"))),
        };
        let mut offsets = Vec::with_capacity(n + 1);
        for i in 0..=n {
            let o = i64::from_ne_bytes(m.load8(8 + 8 * i)?);
            let o = match usize::try_from(o) {
                Ok(o) if o <= shm.size => o,
                _ => return Err(corrupt(format!("offset {o} of item {i}"))),
            };
            if let Some(&prev) = offsets.last() {
                if o < prev {
                    return Err(corrupt(format!(
                        "offset {o} of item {i} is below the previous one ({prev})"
                    )));
                }
            }
            offsets.push(o);
        }
        // header, data, an 8-byte format and a 1-byte code per item, all in the segment
        let end = (n + 2)
            .checked_mul(8)
            .and_then(|d| d.checked_add(offsets[n]))
            .and_then(|f| f.checked_add(9 * n));
        if end.is_none_or(|e| e > shm.size) {
            return Err(corrupt(format!(
                "{n} items with {} bytes of data do not fit its {} bytes",
                offsets[n], shm.size
            )));
        }
        drop(view);
        Self::from_parts(shm, n, offsets)
    }

    fn from_parts(shm: SharedMemory, len: usize, offsets: Vec<usize>) -> Result<Self> {
        let view = shm.try_clone()?;
        Ok(ShareableList {
            shm,
            view,
            len,
            offsets,
            formats: Mutex::new(Vec::new()),
            _t: std::marker::PhantomData,
        })
    }

    fn map(&self) -> Result<&Mapping> {
        if self.shm.closed() {
            return Err(Error::invalid(
                "the ShareableList's shared memory is closed",
            ));
        }
        self.view
            .map
            .as_ref()
            .ok_or_else(|| Error::invalid("the ShareableList's shared memory is closed"))
    }

    fn data_start(&self) -> usize {
        (self.len + 2) * 8
    }

    fn formats_start(&self) -> usize {
        self.data_start() + self.offsets[self.len]
    }

    fn codes_start(&self) -> usize {
        self.formats_start() + 8 * self.len
    }

    fn check_index(&self, i: usize) -> Result<()> {
        if i < self.len {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "index {i} out of range for a ShareableList of length {}",
                self.len
            )))
        }
    }

    fn format_at(&self, i: usize) -> Result<String> {
        let raw = self.map()?.load8(self.formats_start() + 8 * i)?;
        let end = raw.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
        String::from_utf8(raw[..end].to_vec())
            .map_err(|_| Error::Codec(format!("corrupt format of shared list item {i}").into()))
    }

    /// The bytes of slot `i` (its data area), from the validated offsets.
    fn slot_len(&self, i: usize) -> usize {
        self.offsets[i + 1].saturating_sub(self.offsets[i])
    }

    fn write_slot(&self, i: usize, fmt: &str, p: &Packed) -> Result<()> {
        let m = self.map()?;
        if fmt.len() > 8 {
            // a slot of 100 MB or more has a format ("100000000s") that CPython's
            // 8-byte format field cannot hold
            return Err(Error::invalid(format!(
                "the format {fmt:?} of shared list item {i} does not fit its 8-byte field"
            )));
        }
        let slot = self.slot_len(i);
        let width = if p.is_bytes {
            fmt.strip_suffix('s')
                .and_then(|w| w.parse::<usize>().ok())
                .unwrap_or(p.data.len())
        } else {
            8
        };
        if width > slot || p.data.len() > slot {
            return Err(Error::invalid(format!(
                "shared list item {i} needs {} bytes; its slot has {slot}",
                width.max(p.data.len())
            )));
        }
        let mut f = [0u8; 8];
        f[..fmt.len()].copy_from_slice(fmt.as_bytes());
        m.store8(self.formats_start() + 8 * i, f)?;
        m.store_u8(self.codes_start() + i, p.code)?;
        let off = self.data_start() + self.offsets[i];
        if p.is_bytes {
            m.store_bytes(off, &p.data, width)
        } else {
            let mut slot = [0u8; 8];
            slot.copy_from_slice(p.data.get(..8).unwrap_or(&[0; 8]));
            m.store8(off, slot)
        }
    }

    /// `list[i]` as an [`Item`], whatever `T` is.
    ///
    /// The item's format, code and bytes come from shared memory another process may
    /// have written: an unknown format or code, a format that does not match its code,
    /// a `%ds` longer than the item's slot, or a str that is not UTF-8 gives
    /// [`Error::Codec`].
    pub fn get_item(&self, i: usize) -> Result<Item> {
        self.check_index(i)?;
        let m = self.map()?;
        let fmt = self.format_at(i)?;
        let code = m.load_u8(self.codes_start() + i)?;
        let off = self.data_start() + self.offsets[i];
        let slot = self.slot_len(i);
        let bad = |why: &str| {
            Error::Codec(
                format!("shared list item {i} is corrupt: format {fmt:?}, code {code}: {why}")
                    .into(),
            )
        };
        let fixed = matches!(fmt.as_str(), FMT_INT | FMT_FLOAT | FMT_BOOL | FMT_NONE);
        if fixed && slot < 8 {
            return Err(bad(&format!("its slot has {slot} bytes, not 8")));
        }
        let item = match (fmt.as_str(), code) {
            (_, CODE_NONE) => Item::None,
            (FMT_INT, CODE_PLAIN) => Item::Int(i64::from_ne_bytes(m.load8(off)?)),
            (FMT_FLOAT, CODE_PLAIN) => Item::Float(f64::from_ne_bytes(m.load8(off)?)),
            (FMT_BOOL, CODE_PLAIN) => Item::Bool(m.load_u8(off + 7)? != 0),
            (f, CODE_STR | CODE_BYTES) if f.ends_with('s') => {
                let n: usize = f[..f.len() - 1]
                    .parse()
                    .map_err(|_| bad("not a struct format"))?;
                if n > slot {
                    return Err(bad(&format!("{n} bytes in a slot of {slot}")));
                }
                let mut b = m.load_bytes(off, n)?;
                while b.last() == Some(&0) {
                    b.pop();
                }
                if code == CODE_STR {
                    Item::Str(String::from_utf8(b).map_err(|_| bad("not valid UTF-8"))?)
                } else {
                    Item::Bytes(b)
                }
            }
            (_, CODE_PLAIN | CODE_STR | CODE_BYTES) => {
                return Err(bad("the format does not match the code"))
            }
            _ => return Err(bad("unknown code")),
        };
        Ok(item)
    }

    /// `list[i]`. An index past the end is an [`Error::InvalidState`] (Python's
    /// `IndexError`); an item of another type than `T` is an [`Error::Codec`].
    pub fn get(&self, i: usize) -> Result<T> {
        T::from_item(self.get_item(i)?)
    }

    /// `list[i] = value`. The type may change (an int slot can take a str of up to 8
    /// bytes); a str or bytes longer than the slot gives [`Error::InvalidState`]
    /// ("exceeds available storage", Python's `ValueError`), leaving the item as it was.
    pub fn set(&self, i: usize, value: T) -> Result<()> {
        self.set_item(i, &value.to_item())
    }

    /// `list[i] = value` for any [`Item`].
    pub fn set_item(&self, i: usize, value: &Item) -> Result<()> {
        self.check_index(i)?;
        let p = pack(value);
        let fmt = if p.is_bytes {
            let allocated = self.slot_len(i);
            if p.data.len() > allocated {
                return Err(Error::invalid(format!(
                    "bytes/str item exceeds available storage ({} bytes > {allocated})",
                    p.data.len()
                )));
            }
            let current = self.format_at(i)?;
            match current
                .strip_suffix('s')
                .and_then(|w| w.parse::<usize>().ok())
            {
                Some(w) if w >= p.data.len() && w <= allocated => current,
                _ => format!("{allocated}s"),
            }
        } else {
            p.format.clone()
        };
        self.write_slot(i, &fmt, &p)
    }

    /// `len(list)`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `len(list) == 0`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All items, in order (`list(sl)`).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    /// All items as [`Item`]s.
    pub fn items(&self) -> Result<Vec<Item>> {
        (0..self.len).map(|i| self.get_item(i)).collect()
    }

    /// `list.count(value)`: how many items equal `value` (Python's `==`: `1`, `1.0`
    /// and `True` are equal).
    pub fn count(&self, value: &T) -> Result<usize> {
        let v = value.to_item();
        Ok(self.items()?.iter().filter(|x| **x == v).count())
    }

    /// `list.index(value)`: the first position of `value`; absent → [`Error::InvalidState`]
    /// (Python's `ValueError: ... not in this container`).
    pub fn index(&self, value: &T) -> Result<usize> {
        let v = value.to_item();
        for i in 0..self.len {
            if self.get_item(i)? == v {
                return Ok(i);
            }
        }
        Err(Error::invalid(format!("{v} not in this container")))
    }

    /// `list.shm`: the segment holding the list.
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// `list.format`: the struct format of all items as they are now
    /// (e.g. `"8s8sdqxxxxxx?xxxxxxxx?q"`).
    pub fn format(&self) -> &str {
        let f: String = (0..self.len)
            .map(|i| self.format_at(i).unwrap_or_default())
            .collect();
        let mut cache = self.formats.lock().unwrap_or_else(|p| p.into_inner());
        if cache.last().map(|s| &**s) != Some(f.as_str()) {
            cache.push(f.into_boxed_str());
        }
        let s: &str = cache.last().expect("just pushed");
        // SAFETY: the boxed strings are never removed or changed while `self` lives
        // (only pushed), and a Box's heap data does not move when the Vec grows.
        unsafe { &*(s as *const str) }
    }
}

impl<T: ShareableItem> Clone for ShareableList<T> {
    /// Another handle to the same list (new mappings of the same segment).
    fn clone(&self) -> Self {
        ShareableList {
            shm: self.shm.clone(),
            view: self.view.clone(),
            len: self.len,
            offsets: self.offsets.clone(),
            formats: Mutex::new(Vec::new()),
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: ShareableItem> fmt::Debug for ShareableList<T> {
    /// `ShareableList([1, 'a', None], name='psm_…')`, as CPython's repr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShareableList([")?;
        for i in 0..self.len {
            if i > 0 {
                write!(f, ", ")?;
            }
            match self.get_item(i) {
                Ok(x) => write!(f, "{x}")?,
                Err(_) => write!(f, "<unreadable>")?,
            }
        }
        write!(f, "], name={})", py_str_repr(self.shm.name()))
    }
}

impl<T: ShareableItem> Serialize for ShareableList<T> {
    /// By name, as CPython pickles it.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.shm.name())
    }
}

impl<'de, T: ShareableItem> Deserialize<'de> for ShareableList<T> {
    /// Attaches by name.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ShareableList::attach(&name).map_err(|e| {
            serde::de::Error::custom(format!("cannot attach ShareableList {name:?}: {e}"))
        })
    }
}

#[doc(hidden)]
pub mod root_exports {
    pub use super::{ShareableList, SharedMemory};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_like_python() {
        assert_eq!(py_float_repr(-273.154), "-273.154");
        assert_eq!(py_float_repr(2.0), "2.0");
        assert_eq!(py_float_repr(1e20), "1e+20");
        assert_eq!(py_float_repr(1.5e-7), "1.5e-07");
        assert_eq!(py_float_repr(0.0001), "0.0001");
    }

    #[test]
    fn python_equality() {
        assert_eq!(Item::Int(1), Item::Bool(true));
        assert_eq!(Item::Float(1.0), Item::Int(1));
        assert_ne!(Item::Str("a".into()), Item::Bytes(b"a".to_vec()));
        assert_ne!(Item::Float(f64::NAN), Item::Float(f64::NAN));
        assert_eq!(Item::from(b"x\n'".as_slice()).to_string(), "b\"x\\n'\"");
    }
}
