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
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// Plain old data that can live in shared memory: no pointers, no drop glue, the same
/// meaning in every process. Implemented for the integer and float types, `bool`,
/// arrays `[T; N]` of `ShmSafe` types and `#[derive(mp::Shared)]` structs (Python: a
/// ctypes type).
///
/// # Safety
/// The type must be `Sized`, contain no pointers or references (nor anything owning heap
/// memory or a resource), have no `Drop` impl, and be valid for the bytes another
/// process writes through the same type. Use `#[derive(mp::Shared)]` rather than
/// implementing it by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot live in shared memory: it is not `ShmSafe`",
    label = "not plain old data for shared memory",
    note = "use numbers, `bool`, arrays of them, or a `#[repr(C)]` struct with `#[derive(mp::Shared)]`"
)]
pub unsafe trait ShmSafe: Sized + Send + Sync + 'static {}

macro_rules! shm_safe {
    ($($t:ty),*) => { $(unsafe impl ShmSafe for $t {})* };
}
shm_safe!(u8, i8, u16, i16, u32, i32, u64, i64, u128, i128, usize, isize, f32, f64, bool);
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}

/// Compile-time check emitted by `#[derive(mp::Shared)]` for every field type.
#[doc(hidden)]
pub const fn __assert_shm_safe<T: ShmSafe>() {}

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
pub struct RawValue<T: ShmSafe> {
    block: Block,
    _t: PhantomData<T>,
}

impl<T: ShmSafe> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            block: self.block.clone(),
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
            block,
            _t: PhantomData,
        })
    }
    /// A copy of the value (Python: `.value`).
    pub fn get(&self) -> T {
        // SAFETY: the block holds a T (written by new/set, possibly in another process).
        unsafe { self.block.read(0) }
    }
    /// Stores `v` (Python: `.value = v`).
    pub fn set(&self, v: T) {
        // SAFETY: T is plain old data.
        unsafe { self.block.write(0, v) }
    }
    /// The value as `&mut T`, while the caller guarantees exclusive access.
    ///
    /// # Safety
    /// No other thread or process may access the value while the reference lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn as_mut(&self) -> &mut T {
        &mut self.block.slice_mut::<T>(1)[0]
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawValue({:?})", self.get())
    }
}

impl<T: ShmSafe> Serialize for RawValue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.block.serialize(s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for RawValue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let block = Block::deserialize(d)?;
        if !block.fits::<T>(1) {
            return Err(serde::de::Error::custom("shared value block too small"));
        }
        Ok(RawValue {
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
    /// A copy of the value, read under the lock.
    pub fn get(&self) -> T {
        let _g = self.lock.lock();
        self.raw.get()
    }
    /// Stores `v` under the lock.
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
    /// Takes the lock and returns a guard that derefs to the value.
    pub fn lock(&self) -> ValueGuard<'_, T> {
        let guard = self.lock.lock();
        ValueGuard {
            _guard: guard,
            raw: &self.raw,
        }
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Synchronized wrapper for {:?}>", self.get())
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

/// The lock of a [`Value`], held; derefs to the value.
pub struct ValueGuard<'a, T: ShmSafe> {
    _guard: Guard<'a, AnyLock>,
    raw: &'a RawValue<T>,
}

impl<T: ShmSafe> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the value's lock is held for the guard's lifetime.
        unsafe { self.raw.as_mut() }
    }
}

impl<T: ShmSafe> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the value's lock is held for the guard's lifetime.
        unsafe { self.raw.as_mut() }
    }
}

// ---------------------------------------------------------------------------------
// RawArray

/// A fixed-length array of `T` in shared memory without a lock (Python:
/// `sharedctypes.RawArray`).
///
/// ```
/// let a = mp::RawArray::from_slice(&[1u32, 2, 3])?;
/// a.set(0, 10)?;
/// assert_eq!(a.to_vec(), [10, 2, 3]);
/// assert!(a.get(3).is_err());
/// # Ok::<(), mp::Error>(())
/// ```
pub struct RawArray<T: ShmSafe> {
    block: Block,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: ShmSafe> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            block: self.block.clone(),
            len: self.len,
            _t: PhantomData,
        }
    }
}

impl<T: ShmSafe> RawArray<T> {
    /// `len` zeroed elements (Python: `RawArray(t, size)`).
    ///
    /// All-zero bytes must be a valid `T`: true for every `ShmSafe` type built from
    /// numbers and `bool`.
    pub fn new(len: usize) -> Result<Self> {
        check_layout::<T>()?;
        let bytes = std::mem::size_of::<T>()
            .checked_mul(len)
            .ok_or_else(|| Error::InvalidState("array too large".into()))?;
        Ok(RawArray {
            block: Block::new(bytes)?,
            len,
            _t: PhantomData,
        })
    }
    /// A copy of `items` (Python: `RawArray(t, sequence)`).
    pub fn from_slice(items: &[T]) -> Result<Self>
    where
        T: Copy,
    {
        let a = Self::new(items.len())?;
        for (i, v) in items.iter().enumerate() {
            // SAFETY: in bounds, T plain old data.
            unsafe { a.block.write(i, *v) };
        }
        Ok(a)
    }
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Element `i` (an `InvalidState` IndexError when out of range).
    pub fn get(&self, i: usize) -> Result<T> {
        if i >= self.len {
            return Err(index_error(i, self.len));
        }
        // SAFETY: in bounds; the block holds Ts.
        Ok(unsafe { self.block.read(i) })
    }
    /// Stores `v` at `i`.
    pub fn set(&self, i: usize, v: T) -> Result<()> {
        if i >= self.len {
            return Err(index_error(i, self.len));
        }
        // SAFETY: in bounds, T plain old data.
        unsafe { self.block.write(i, v) };
        Ok(())
    }
    /// A copy of every element (Python: `arr[:]`).
    pub fn to_vec(&self) -> Vec<T> {
        // SAFETY: in bounds; the block holds Ts.
        (0..self.len)
            .map(|i| unsafe { self.block.read(i) })
            .collect()
    }
    /// # Safety
    /// Exclusive access while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn as_mut(&self) -> &mut [T] {
        self.block.slice_mut(self.len)
    }
}

impl RawArray<u8> {
    /// The bytes up to the first NUL (Python: `.value` of a `c_char` array).
    pub fn value(&self) -> Vec<u8> {
        let mut v = self.to_vec();
        if let Some(n) = v.iter().position(|&b| b == 0) {
            v.truncate(n);
        }
        v
    }
    /// Stores `bytes` followed by a NUL if there is room (Python: `.value = b"…"`);
    /// `InvalidState` if longer than the array.
    pub fn set_value(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() > self.len {
            return Err(Error::InvalidState(
                "ValueError: byte string too long".into(),
            ));
        }
        for (i, b) in bytes.iter().enumerate() {
            self.set(i, *b)?;
        }
        if bytes.len() < self.len {
            self.set(bytes.len(), 0)?;
        }
        Ok(())
    }
    /// Every byte (Python: `.raw`).
    pub fn raw(&self) -> Vec<u8> {
        self.to_vec()
    }
    /// Overwrites the first `bytes.len()` bytes (Python: `.raw = b"…"`).
    pub fn set_raw(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() > self.len {
            return Err(Error::InvalidState(
                "ValueError: byte string too long".into(),
            ));
        }
        for (i, b) in bytes.iter().enumerate() {
            self.set(i, *b)?;
        }
        Ok(())
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawArray({:?})", self.to_vec())
    }
}

impl<T: ShmSafe> Serialize for RawArray<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.block, self.len as u64).serialize(s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for RawArray<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (block, len) = <(Block, u64)>::deserialize(d)?;
        let len = len as usize;
        if !block.fits::<T>(len) {
            return Err(serde::de::Error::custom("shared array block too small"));
        }
        Ok(RawArray {
            block,
            len,
            _t: PhantomData,
        })
    }
}

// ---------------------------------------------------------------------------------
// Array

/// A fixed-length array of `T` in shared memory with a lock (Python:
/// `multiprocessing.Array`). `lock()` returns a guard that derefs to `[T]`.
///
/// ```
/// let a = mp::Array::<f64>::new(3)?;
/// a.lock().copy_from_slice(&[1.0, 2.0, 3.0]);
/// assert_eq!(a.lock().iter().sum::<f64>(), 6.0);
/// let s = mp::Array::from_slice(b"hello world")?;
/// assert_eq!(s.value(), b"hello world");
/// # Ok::<(), mp::Error>(())
/// ```
pub struct Array<T: ShmSafe> {
    raw: RawArray<T>,
    lock: AnyLock,
}

impl<T: ShmSafe> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            raw: self.raw.clone(),
            lock: self.lock.clone(),
        }
    }
}

impl<T: ShmSafe> Array<T> {
    /// `len` zeroed elements with their own `RLock`.
    pub fn new(len: usize) -> Result<Self> {
        Ok(Array {
            raw: RawArray::new(len)?,
            lock: RLock::new()?.into(),
        })
    }
    /// A copy of `items` with its own `RLock`.
    pub fn from_slice(items: &[T]) -> Result<Self>
    where
        T: Copy,
    {
        Self::from_slice_with_lock(items, RLock::new()?)
    }
    /// A copy of `items` guarded by `lock` (Python: `Array(t, seq, lock=lock)`).
    pub fn from_slice_with_lock(items: &[T], lock: impl Into<AnyLock>) -> Result<Self>
    where
        T: Copy,
    {
        Ok(Array {
            raw: RawArray::from_slice(items)?,
            lock: lock.into(),
        })
    }
    /// `len` zeroed elements guarded by `lock`.
    pub fn with_lock(len: usize, lock: impl Into<AnyLock>) -> Result<Self> {
        Ok(Array {
            raw: RawArray::new(len)?,
            lock: lock.into(),
        })
    }
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.raw.len
    }
    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.len == 0
    }
    /// Element `i`, read under the lock.
    pub fn get(&self, i: usize) -> Result<T> {
        let _g = self.lock.lock();
        self.raw.get(i)
    }
    /// Stores `v` at `i` under the lock.
    pub fn set(&self, i: usize, v: T) -> Result<()> {
        let _g = self.lock.lock();
        self.raw.set(i, v)
    }
    /// A copy of every element, under the lock.
    pub fn to_vec(&self) -> Vec<T> {
        let _g = self.lock.lock();
        self.raw.to_vec()
    }
    /// The lock (Python: `get_lock()`).
    pub fn get_lock(&self) -> &AnyLock {
        &self.lock
    }
    /// The unsynchronized array (Python: `get_obj()`).
    pub fn get_obj(&self) -> &RawArray<T> {
        &self.raw
    }
    /// Takes the lock and returns a guard that derefs to the elements.
    pub fn lock(&self) -> ArrayGuard<'_, T> {
        let guard = self.lock.lock();
        ArrayGuard {
            _guard: guard,
            raw: &self.raw,
        }
    }
}

impl Array<u8> {
    /// The bytes up to the first NUL, under the lock (Python: `.value`).
    pub fn value(&self) -> Vec<u8> {
        let _g = self.lock.lock();
        self.raw.value()
    }
    /// Stores a C string under the lock (Python: `.value = b"…"`).
    pub fn set_value(&self, bytes: &[u8]) -> Result<()> {
        let _g = self.lock.lock();
        self.raw.set_value(bytes)
    }
    /// Every byte (Python: `.raw`).
    pub fn raw(&self) -> Vec<u8> {
        self.to_vec()
    }
    /// Overwrites the first bytes (Python: `.raw = b"…"`).
    pub fn set_raw(&self, bytes: &[u8]) -> Result<()> {
        let _g = self.lock.lock();
        self.raw.set_raw(bytes)
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<SynchronizedArray wrapper for {:?}>", self.to_vec())
    }
}

impl<T: ShmSafe> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.raw, &self.lock).serialize(s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (raw, lock) = <(RawArray<T>, AnyLock)>::deserialize(d)?;
        Ok(Array { raw, lock })
    }
}

/// The lock of an [`Array`], held; derefs to the elements.
pub struct ArrayGuard<'a, T: ShmSafe> {
    _guard: Guard<'a, AnyLock>,
    raw: &'a RawArray<T>,
}

impl<T: ShmSafe> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the array's lock is held for the guard's lifetime.
        unsafe { self.raw.as_mut() }
    }
}

impl<T: ShmSafe> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: the array's lock is held for the guard's lifetime.
        unsafe { self.raw.as_mut() }
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
/// memory is shared, not copied (Python: `sharedctypes.synchronized`).
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
        for i in 0..self.len {
            // SAFETY: both in bounds; plain old data.
            unsafe { a.block.write(i, self.block.read::<T>(i)) };
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
