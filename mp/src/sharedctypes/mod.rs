//! Values and arrays in shared memory (CPython's `multiprocessing.sharedctypes`).
//!
//! [`Value<T>`] / [`Array<T>`] hold plain-old-data ([`ShmSafe`]) in a shared
//! [`heap`](crate::heap) arena, guarded by a lock (an [`RLock`] unless another is given);
//! [`RawValue<T>`] / [`RawArray<T>`] are the same memory without a lock. All are
//! `Clone + Send + Sync + Serialize + Deserialize`: pass them to a child and it writes
//! the very memory the parent reads. Ten thousand values share a handful of arenas and
//! file descriptors.
//!
//! Python typecodes and ctypes types map to Rust types:
//!
//! | typecode | ctypes | Rust |
//! |---|---|---|
//! | `'c'` | `c_char` | `u8` (an `Array<u8>` has the C-string view `value()`/`raw()`) |
//! | `'b'` / `'B'` | `c_byte` / `c_ubyte` | `i8` / `u8` |
//! | `'h'` / `'H'` | `c_short` / `c_ushort` | `i16` / `u16` |
//! | `'i'` / `'I'` | `c_int` / `c_uint` | `i32` / `u32` |
//! | `'l'` / `'L'` | `c_long` / `c_ulong` | `i64` / `u64` |
//! | `'q'` / `'Q'` | `c_longlong` / `c_ulonglong` | `i64` / `u64` |
//! | `'f'` | `c_float` | `f32` |
//! | `'d'` | `c_double` | `f64` |
//! | `'?'` | `c_bool` | `bool` |
//! | a `Structure` | | a `#[repr(C)]` struct with `#[derive(mp::Shared)]` |
//!
//! ```
//! # mp::test_support!();
//! #[mp::task]
//! fn f(n: mp::Value<f64>, a: mp::Array<i32>) {
//!     n.set(3.1415927);
//!     for i in 0..a.len() {
//!         a.set(i, -a.get(i).unwrap()).unwrap();
//!     }
//! }
//!
//! # fn main() -> mp::Result<()> {
//! let num = mp::Value::new(0.0f64)?;
//! let arr = mp::Array::from_slice(&(0..10).collect::<Vec<i32>>())?;
//! let mut p = mp::Process::new(f, (num.clone(), arr.clone()));
//! p.start()?;
//! p.join()?;
//! assert_eq!(num.get(), 3.1415927);
//! assert_eq!(arr.to_vec(), [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]);
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::heap::Block;
use crate::synchronize::{AnyLock, Guard, RLock};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Plain old data that can live in shared memory: no pointers, no drop glue, the same
/// meaning in every process. Implemented for the integer and float types, `bool`,
/// arrays `[T; N]` of `ShmSafe` types and `#[derive(mp::Shared)]` structs (Python: a
/// ctypes type).
///
/// Bytes another process wrote are checked before they are read as a `Self` where
/// `Self` has invalid bit patterns: a `bool` byte that is neither 0 nor 1 (a Python
/// ctypes writer can store one) reads as `true`, as C's `_Bool` conversion and ctypes'
/// `c_bool` do, never as an invalid `bool`. A received handle must name the type it was
/// created with (see [`RawValue`]'s "Type checks").
///
/// `#[derive(mp::Shared)]` types are checked the same way: a struct's `bool` fields
/// (and those of nested derived structs and arrays) are repaired, and a field-less
/// enum's bytes must hold one of its discriminants, or the read panics with "not a valid"
/// instead of producing an invalid enum. A struct of plain numbers has nothing to check
/// and costs nothing.
///
/// # Safety
/// The type must be `Sized`, contain no pointers or references (nor anything owning heap
/// memory or a resource), have no `Drop` impl, and be valid for the bytes another
/// process writes through the same type; a type with invalid bit patterns must override
/// the hidden checking hooks (as `bool` and arrays of it do). Use
/// `#[derive(mp::Shared)]` rather than implementing it by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot live in shared memory: it is not `ShmSafe`",
    label = "not plain old data for shared memory",
    note = "use numbers, `bool`, arrays of them, or a `#[repr(C)]` struct with `#[derive(mp::Shared)]`"
)]
pub unsafe trait ShmSafe: Sized + Send + Sync + 'static {
    /// Whether some bit patterns are not a valid `Self`, so that bytes from shared
    /// memory go through [`__repair`](ShmSafe::__repair) before they are read.
    #[doc(hidden)]
    const __CHECKED: bool = false;

    /// Makes the bytes at `p` a valid `Self` where a canonical form exists (a `bool`
    /// byte other than 0 becomes 1) and returns whether they now are one. The default
    /// (every bit pattern valid) does nothing.
    ///
    /// # Safety
    /// `p` is aligned and valid for reads and writes of `size_of::<Self>()` bytes, which
    /// nothing else accesses during the call (except other processes).
    #[doc(hidden)]
    #[inline]
    unsafe fn __repair(p: *mut Self) -> bool {
        let _ = p;
        true
    }
}

macro_rules! shm_safe {
    ($($t:ty),*) => { $(
        // SAFETY: every bit pattern of these types is a valid value; no pointers, no
        // drop glue.
        unsafe impl ShmSafe for $t {}
    )* };
}
shm_safe!(u8, i8, u16, i16, u32, i32, u64, i64, u128, i128, usize, isize, f32, f64);

// SAFETY: one byte, no pointers; the invalid patterns (2..=255) are repaired before a
// read (`__CHECKED`).
unsafe impl ShmSafe for bool {
    const __CHECKED: bool = true;
    #[inline]
    unsafe fn __repair(p: *mut bool) -> bool {
        let b = p.cast::<u8>();
        // SAFETY: the caller gives a valid, aligned pointer to one byte; it is read and
        // written as a `u8`, never as a `bool` before it is valid.
        unsafe {
            if std::ptr::read_volatile(b) > 1 {
                std::ptr::write_volatile(b, 1);
            }
        }
        true
    }
}

// SAFETY: an array of `ShmSafe` elements has no padding between them and no pointers;
// elements with invalid patterns are checked one by one.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {
    const __CHECKED: bool = T::__CHECKED;
    #[inline]
    unsafe fn __repair(p: *mut [T; N]) -> bool {
        if !T::__CHECKED {
            return true;
        }
        let e = p.cast::<T>();
        // SAFETY: `p` covers N consecutive, aligned `T`s (the caller's contract).
        (0..N).all(|i| unsafe { T::__repair(e.add(i)) })
    }
}

/// Compile-time check emitted by `#[derive(mp::Shared)]` for every field type; also
/// gives the field's [`ShmSafe::__CHECKED`] (one function, so that a field that is not
/// `ShmSafe` is reported once).
#[doc(hidden)]
pub const fn __assert_shm_safe<T: ShmSafe>() -> bool {
    T::__CHECKED
}

/// Repairs one field of a `#[derive(mp::Shared)]` struct (autoref specialisation: a
/// field type that is not `ShmSafe` is already a compile error at the field, reported
/// once by [`__assert_shm_safe`]; the fallback only keeps this from adding another).
#[doc(hidden)]
#[derive(Debug)]
pub struct __Field<T>(std::marker::PhantomData<T>);

impl<T> __Field<T> {
    #[doc(hidden)]
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        __Field(std::marker::PhantomData)
    }
}

#[doc(hidden)]
pub trait __RepairField<T> {
    /// # Safety
    /// As [`ShmSafe::__repair`].
    unsafe fn __repair_field(&self, p: *mut T) -> bool;
}

impl<T: ShmSafe> __RepairField<T> for __Field<T> {
    #[inline]
    unsafe fn __repair_field(&self, p: *mut T) -> bool {
        // SAFETY: the caller's contract is `__repair`'s.
        !T::__CHECKED || unsafe { T::__repair(p) }
    }
}

#[doc(hidden)]
pub trait __NoRepairField<T> {
    /// # Safety
    /// As [`ShmSafe::__repair`].
    unsafe fn __repair_field(&self, p: *mut T) -> bool;
}

impl<T> __NoRepairField<T> for &__Field<T> {
    #[inline]
    unsafe fn __repair_field(&self, _: *mut T) -> bool {
        true
    }
}

fn check_layout<T>() -> Result<()> {
    if std::mem::align_of::<T>() > 16 {
        return Err(Error::InvalidState(format!(
            "{} needs an alignment above 16, which shared memory does not provide",
            std::any::type_name::<T>()
        )));
    }
    Ok(())
}

fn index_error(i: usize, len: usize) -> Error {
    Error::InvalidState(format!(
        "IndexError: index {i} out of range for an array of {len}"
    ))
}

fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------
// Type tags: what a serialized handle says about its element type

/// The element type a serialized handle was created with: its size, alignment and a
/// fingerprint of its name (FNV-1a of `std::any::type_name`). A handle received as
/// another type is refused ([`Error::Codec`]): a block of shared memory carries no type
/// of its own, and reading a `u8` that holds 2 as a `bool` would be undefined behaviour.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct TypeTag {
    size: u32,
    align: u32,
    fingerprint: u64,
}

impl TypeTag {
    fn of<T>() -> TypeTag {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in std::any::type_name::<T>().bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        TypeTag {
            size: std::mem::size_of::<T>() as u32,
            align: std::mem::align_of::<T>() as u32,
            fingerprint: h,
        }
    }

    fn check<T, E: serde::de::Error>(self, what: &str) -> std::result::Result<(), E> {
        let want = TypeTag::of::<T>();
        if self == want {
            return Ok(());
        }
        Err(E::custom(format!(
            "a shared {what} of another element type (size {}, alignment {}, type \
             fingerprint {:016x}) cannot be received as one of `{}` (size {}, alignment {}, \
             fingerprint {:016x})",
            self.size,
            self.align,
            self.fingerprint,
            std::any::type_name::<T>(),
            want.size,
            want.align,
            want.fingerprint
        )))
    }
}

mod array;
mod borrow;
pub use array::{Array, ArrayGuard, RawArray};
use borrow::*;

// ---------------------------------------------------------------------------------
// RawValue

/// A `T` in shared memory without a lock (Python: `sharedctypes.RawValue`).
///
/// ```
/// let v = mp::RawValue::new(7i32)?;
/// v.set(v.get() * 2);
/// assert_eq!(v.get(), 14);
/// # Ok::<(), mp::Error>(())
/// ```
///
/// # Borrows
/// Within one process, every handle to the same memory (clones, a handle received
/// back, the `get_obj()` of a [`Value`]) shares one borrow state, like a `RefCell`'s:
/// while a guard from [`Value::lock`] is alive on a thread, `get`/`set` on that thread
/// panic ("already borrowed") instead of aliasing the guard's `&mut`; on another thread
/// they wait until the guard is dropped. Other processes are ordered by the lock (a raw
/// value has none: as in Python, its cross-process readers see whatever was last
/// written).
///
/// # Type checks
/// A handle serializes with its type's size, alignment and a fingerprint of its name
/// (`std::any::type_name`, the same in every process of one program); receiving it as
/// another type is an [`Error::Codec`]: a `RawValue<u8>` holding 2 never becomes a
/// `RawValue<bool>`. The same holds for [`Value`], [`RawArray`] and [`Array`].
pub struct RawValue<T: ShmSafe> {
    block: Block,
    cell: Arc<BorrowCell>,
    _t: PhantomData<T>,
}

impl<T: ShmSafe> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            block: self.block.clone(),
            cell: self.cell.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: ShmSafe> RawValue<T> {
    /// A new shared value holding `v`.
    pub fn new(v: T) -> Result<Self> {
        check_layout::<T>()?;
        let block = Block::new(std::mem::size_of::<T>())?;
        // SAFETY: T is plain old data; the block is fresh and big enough.
        unsafe { block.write(0, v) };
        Ok(RawValue {
            cell: cell_for(&block),
            block,
            _t: PhantomData,
        })
    }

    #[track_caller]
    fn enter(&self, what: &str) -> Entered<'_> {
        self.cell
            .enter()
            .unwrap_or_else(|_| borrowed_panic::<T>(what))
    }

    /// A copy of the value (Python: `.value`).
    ///
    /// Panics if a guard of this value is alive on the calling thread (see "Borrows").
    #[track_caller]
    pub fn get(&self) -> T {
        let _e = self.enter("get");
        self.read()
    }

    /// Reads the value; the caller has entered the borrow cell.
    fn read(&self) -> T {
        // SAFETY: the block holds size_of::<T>() bytes (checked at creation/receipt);
        // they are copied as `MaybeUninit`, so invalid bits are not yet a `T`.
        let mut tmp: MaybeUninit<T> = unsafe { self.block.read(0) };
        // SAFETY: `tmp` is an aligned local of the right size.
        if !unsafe { T::__repair(tmp.as_mut_ptr()) } {
            invalid_bits_panic::<T>()
        }
        // SAFETY: repaired into a valid T just above.
        unsafe { tmp.assume_init() }
    }

    /// Stores `v` (Python: `.value = v`).
    ///
    /// Panics if a guard of this value is alive on the calling thread (see "Borrows").
    #[track_caller]
    pub fn set(&self, v: T) {
        let _e = self.enter("set");
        // SAFETY: T is plain old data; no reference to the memory is alive in this
        // process (the borrow cell is ours).
        unsafe { self.block.write(0, v) }
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cell.enter() {
            Ok(_e) => write!(f, "RawValue({:?})", self.read()),
            Err(Reentered) => f.write_str("RawValue(<borrowed>)"),
        }
    }
}

impl<T: ShmSafe> Serialize for RawValue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.block, TypeTag::of::<T>()).serialize(s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for RawValue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (block, tag) = <(Block, TypeTag)>::deserialize(d)?;
        tag.check::<T, D::Error>("value")?;
        if !block.fits::<T>(1) {
            return Err(serde::de::Error::custom("shared value block too small"));
        }
        Ok(RawValue {
            cell: cell_for(&block),
            block,
            _t: PhantomData,
        })
    }
}

// ---------------------------------------------------------------------------------
// Value

/// A `T` in shared memory with a lock (Python: `multiprocessing.Value`, a
/// `Synchronized` wrapper). `get`/`set` take the lock; `lock()` returns a guard that
/// derefs to `T`, so `*v.lock() += 1` is atomic across processes.
///
/// ```
/// let v = mp::Value::new(0i64)?;
/// *v.lock() += 1;
/// assert_eq!(v.get(), 1);
/// # Ok::<(), mp::Error>(())
/// ```
///
/// # One `&mut` at a time
/// The default lock is an `RLock`, which the holding thread may take again; the guard,
/// though, hands out a `&mut T`, and Rust allows one at a time. So, as with a
/// `RefCell`, while a guard is alive on a thread, `lock()`, `get()` and `set()` of the
/// same value on that thread — through this handle, a clone, a handle received back or
/// [`get_obj`](Self::get_obj) — panic with "already borrowed" (CPython would let the
/// code write through both). Taking the lock alone stays re-entrant:
/// `v.get_lock().lock()` twice, then `*v.lock() += 1`, is fine.
///
/// ```
/// let v = mp::Value::new(0i32)?;
/// let g = v.get_lock().lock();   // the lock alone: re-entrant
/// *v.lock() += 1;                // one guard at a time: fine
/// drop(g);
/// let mut a = v.lock();
/// // let b = v.lock();           // would panic: two `&mut i32`
/// *a += 1;
/// # drop(a);
/// # assert_eq!(v.get(), 2);
/// # Ok::<(), mp::Error>(())
/// ```
///
/// With a plain [`Lock`](crate::Lock) a second `lock()` on the holding thread blocks
/// forever, as in Python. A process that dies while holding the lock leaves it
/// held, with the value as the process last wrote it (see [`Lock`](crate::Lock)).
pub struct Value<T: ShmSafe> {
    raw: RawValue<T>,
    lock: AnyLock,
}

impl<T: ShmSafe> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            raw: self.raw.clone(),
            lock: self.lock.clone(),
        }
    }
}

impl<T: ShmSafe> Value<T> {
    /// A new shared value with its own `RLock`.
    pub fn new(v: T) -> Result<Self> {
        Self::with_lock(v, RLock::new()?)
    }
    /// A new shared value guarded by `lock` (Python: `Value(t, v, lock=lock)`).
    pub fn with_lock(v: T, lock: impl Into<AnyLock>) -> Result<Self> {
        Ok(Value {
            raw: RawValue::new(v)?,
            lock: lock.into(),
        })
    }
    /// A copy of the value, read under the lock. Panics while a guard of the value is
    /// alive on this thread (see "One `&mut` at a time").
    #[track_caller]
    pub fn get(&self) -> T {
        let _g = self.lock.lock();
        self.raw.get()
    }
    /// Stores `v` under the lock. Panics while a guard of the value is alive on this
    /// thread.
    #[track_caller]
    pub fn set(&self, v: T) {
        let _g = self.lock.lock();
        self.raw.set(v)
    }
    /// The lock (Python: `get_lock()`).
    pub fn get_lock(&self) -> &AnyLock {
        &self.lock
    }
    /// The unsynchronized value (Python: `get_obj()`).
    pub fn get_obj(&self) -> &RawValue<T> {
        &self.raw
    }
    /// Takes the lock and returns a guard that derefs to the value. Panics ("already
    /// borrowed") if a guard of the same value is alive on this thread.
    #[track_caller]
    pub fn lock(&self) -> ValueGuard<'_, T> {
        let guard = self.lock.lock();
        let entered = self.raw.enter("lock");
        if T::__CHECKED {
            // SAFETY: we hold the lock and the borrow cell: nothing else in this
            // process touches the value; the block holds a T-sized, aligned range.
            if !unsafe { T::__repair(self.raw.block.as_ptr().cast::<T>()) } {
                invalid_bits_panic::<T>()
            }
        }
        ValueGuard {
            _entered: entered,
            _guard: guard,
            raw: &self.raw,
        }
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _g = self.lock.lock();
        match self.raw.cell.enter() {
            Ok(_e) => write!(f, "<Synchronized wrapper for {:?}>", self.raw.read()),
            Err(Reentered) => f.write_str("<Synchronized wrapper for <borrowed>>"),
        }
    }
}

impl<T: ShmSafe> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.raw, &self.lock).serialize(s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (raw, lock) = <(RawValue<T>, AnyLock)>::deserialize(d)?;
        Ok(Value { raw, lock })
    }
}

/// The lock of a [`Value`], held; derefs to the value. While it lives, the value's
/// other accessors on this thread panic (see [`Value`]).
pub struct ValueGuard<'a, T: ShmSafe> {
    // dropped first: the borrow ends before the lock is released
    _entered: Entered<'a>,
    _guard: Guard<'a, AnyLock>,
    raw: &'a RawValue<T>,
}

impl<T: ShmSafe> std::fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<ValueGuard>")
    }
}

impl<T: ShmSafe> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the lock and the borrow cell are held for the guard's lifetime (so no
        // other reference to the value exists in this process), the bytes were made a
        // valid T when the guard was taken, and the block is aligned and big enough.
        unsafe { &*self.raw.block.as_ptr().cast::<T>() }
    }
}

impl<T: ShmSafe> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the guard's only reference.
        unsafe { &mut self.raw.block.slice_mut::<T>(1)[0] }
    }
}

// ---------------------------------------------------------------------------------
// synchronized / copy

/// A raw shared object that [`synchronized`] can wrap with a lock.
pub trait Synchronize {
    /// The synchronized wrapper.
    type Output;
    /// Wraps `self` with `lock`.
    fn with_lock(self, lock: AnyLock) -> Self::Output;
}

impl<T: ShmSafe> Synchronize for RawValue<T> {
    type Output = Value<T>;
    fn with_lock(self, lock: AnyLock) -> Value<T> {
        Value { raw: self, lock }
    }
}

impl<T: ShmSafe> Synchronize for RawArray<T> {
    type Output = Array<T>;
    fn with_lock(self, lock: AnyLock) -> Array<T> {
        Array { raw: self, lock }
    }
}

/// Wraps a raw shared value or array with a lock (a new `RLock` when `None`); the
/// memory is shared, not copied (Python: `sharedctypes.synchronized`). Wrapping the
/// same raw object twice gives two locks over one memory: within a process their
/// guards still exclude each other (the second waits for the first).
///
/// ```
/// let raw = mp::RawValue::new(1u8)?;
/// let v = mp::synchronized(raw.clone(), None)?;
/// *v.lock() += 1;
/// assert_eq!(raw.get(), 2);
/// # Ok::<(), mp::Error>(())
/// ```
pub fn synchronized<R: Synchronize>(raw: R, lock: Option<AnyLock>) -> Result<R::Output> {
    let lock = match lock {
        Some(l) => l,
        None => RLock::new()?.into(),
    };
    Ok(raw.with_lock(lock))
}

/// A shared object [`copy`] can duplicate into new shared memory.
pub trait ShmCopy {
    /// The raw copy's type.
    type Output;
    /// Copies into new shared memory.
    fn shm_copy(&self) -> Result<Self::Output>;
}

impl<T: ShmSafe> ShmCopy for RawValue<T> {
    type Output = RawValue<T>;
    fn shm_copy(&self) -> Result<RawValue<T>> {
        RawValue::new(self.get())
    }
}
impl<T: ShmSafe> ShmCopy for Value<T> {
    type Output = RawValue<T>;
    fn shm_copy(&self) -> Result<RawValue<T>> {
        RawValue::new(self.get())
    }
}
impl<T: ShmSafe> ShmCopy for RawArray<T> {
    type Output = RawArray<T>;
    fn shm_copy(&self) -> Result<RawArray<T>> {
        let a = RawArray::new(self.len)?;
        let _e = self.try_enter("copy")?;
        for i in 0..self.len {
            // SAFETY: in bounds of both; plain old data; `a` is new.
            unsafe { a.block.write(i, self.read(i)) };
        }
        Ok(a)
    }
}
impl<T: ShmSafe> ShmCopy for Array<T> {
    type Output = RawArray<T>;
    fn shm_copy(&self) -> Result<RawArray<T>> {
        let _g = self.lock.lock();
        self.raw.shm_copy()
    }
}

/// A new raw shared object with a copy of `obj`'s contents (Python:
/// `sharedctypes.copy`).
///
/// ```
/// let a = mp::RawValue::new(5i32)?;
/// let b = mp::copy(&a)?;
/// b.set(6);
/// assert_eq!((a.get(), b.get()), (5, 6));
/// # Ok::<(), mp::Error>(())
/// ```
pub fn copy<C: ShmCopy>(obj: &C) -> Result<C::Output> {
    obj.shm_copy()
}

// ---------------------------------------------------------------------------------
// Context constructors

impl crate::Context {
    /// `ctx.Value(typecode, v)`.
    pub fn value<T: ShmSafe>(&self, v: T) -> Result<Value<T>> {
        Value::new(v)
    }
    /// `ctx.Array(typecode, size_or_initializer)`: a length (zeroed) or the items.
    ///
    /// ```
    /// let ctx = mp::get_context(None)?;
    /// assert_eq!(ctx.array::<i32>(3)?.to_vec(), [0, 0, 0]);
    /// assert_eq!(ctx.array(&[1.5f64, 2.5])?.to_vec(), [1.5, 2.5]);
    /// # Ok::<(), mp::Error>(())
    /// ```
    pub fn array<T: ShmSafe + Copy>(&self, init: impl ArrayInit<T>) -> Result<Array<T>> {
        match init.into_init() {
            Init::Len(n) => Array::new(n),
            Init::Items(items) => Array::from_slice(&items),
        }
    }
    /// `ctx.RawValue(typecode, v)`.
    pub fn raw_value<T: ShmSafe>(&self, v: T) -> Result<RawValue<T>> {
        RawValue::new(v)
    }
    /// `ctx.RawArray(typecode, size_or_initializer)`: a length (zeroed) or the items.
    pub fn raw_array<T: ShmSafe + Copy>(&self, init: impl ArrayInit<T>) -> Result<RawArray<T>> {
        match init.into_init() {
            Init::Len(n) => RawArray::new(n),
            Init::Items(items) => RawArray::from_slice(&items),
        }
    }
}

/// What Python's `size_or_initializer` is: a length (`usize`, zeroed items) or the
/// items themselves (a slice, array or `Vec`).
pub trait ArrayInit<T> {
    #[doc(hidden)]
    fn into_init(self) -> Init<T>;
}

#[doc(hidden)]
#[derive(Debug)]
pub enum Init<T> {
    Len(usize),
    Items(Vec<T>),
}

impl<T> ArrayInit<T> for usize {
    fn into_init(self) -> Init<T> {
        Init::Len(self)
    }
}

impl<T: Copy> ArrayInit<T> for &[T] {
    fn into_init(self) -> Init<T> {
        Init::Items(self.to_vec())
    }
}

impl<T: Copy, const N: usize> ArrayInit<T> for &[T; N] {
    fn into_init(self) -> Init<T> {
        Init::Items(self.to_vec())
    }
}

impl<T: Copy, const N: usize> ArrayInit<T> for [T; N] {
    fn into_init(self) -> Init<T> {
        Init::Items(self.to_vec())
    }
}

impl<T> ArrayInit<T> for Vec<T> {
    fn into_init(self) -> Init<T> {
        Init::Items(self)
    }
}

impl<T: Copy> ArrayInit<T> for &Vec<T> {
    fn into_init(self) -> Init<T> {
        Init::Items(self.clone())
    }
}

#[doc(hidden)]
pub mod root_exports {
    pub use super::{copy, synchronized, Array, ArrayInit, RawArray, RawValue, ShmSafe, Value};
}

// not under Miri (.ci/miri): the test here forks, which Miri does not model
#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_fork_never_copies_a_held_registry_lock() {
        let v = RawValue::new(1u32).unwrap(); // registers the fork handlers
        let block = Block::new(8).unwrap();
        let (inside, rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            with_cells(|_| {
                inside.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(300));
            })
        });
        rx.recv().unwrap(); // the holder is inside the registry: fork now
                            // SAFETY: the child only takes the registry (malloc is fork-safe in glibc) and
                            // leaves with _exit, running nothing else of the parent's.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let c = cell_for(&block);
            drop(c);
            // SAFETY: ends the forked child at once.
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0, "fork failed");
        holder.join().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child; `status` is a valid out-pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            if Instant::now() > deadline {
                // SAFETY: kills and reaps the child we forked.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                panic!("the forked child hung on a registry lock held at the fork");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(v.get(), 1);
    }
}
