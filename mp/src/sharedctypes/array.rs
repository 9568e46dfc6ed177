//! `RawArray` and `Array` (CPython's `sharedctypes.RawArray` / `Array`).

use super::*;

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
///
/// Borrows and type checks work as for [`RawValue`]: while a guard from
/// [`Array::lock`] is alive on this thread, `get`/`set` (and the byte-string setters)
/// return [`Error::InvalidState`] ("already borrowed") and `to_vec`/`value`/`raw` panic.
pub struct RawArray<T: ShmSafe> {
    pub(super) block: Block,
    pub(super) cell: Arc<BorrowCell>,
    pub(super) len: usize,
    pub(super) _t: PhantomData<T>,
}

impl<T: ShmSafe> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            block: self.block.clone(),
            cell: self.cell.clone(),
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
        let block = Block::new(bytes)?;
        Ok(RawArray {
            cell: cell_for(&block),
            block,
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
            // SAFETY: in bounds, T plain old data; the array is new, nothing borrows it.
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

    pub(super) fn try_enter(&self, what: &str) -> Result<Entered<'_>> {
        self.cell
            .enter()
            .map_err(|_| Error::InvalidState(borrowed_message::<T>(what)))
    }

    #[track_caller]
    fn enter(&self, what: &str) -> Entered<'_> {
        self.cell
            .enter()
            .unwrap_or_else(|_| borrowed_panic::<T>(what))
    }

    /// Reads element `i < len`; the caller has entered the borrow cell.
    pub(super) fn read(&self, i: usize) -> T {
        // SAFETY: i < len and the block holds len Ts (checked at creation/receipt);
        // copied as `MaybeUninit`, so invalid bits are not yet a `T`.
        let mut tmp: MaybeUninit<T> = unsafe { self.block.read(i) };
        // SAFETY: `tmp` is an aligned local of the right size.
        if !unsafe { T::__repair(tmp.as_mut_ptr()) } {
            invalid_bits_panic::<T>()
        }
        // SAFETY: repaired into a valid T just above.
        unsafe { tmp.assume_init() }
    }

    /// Element `i` (an `InvalidState` IndexError when out of range, or "already
    /// borrowed" while a guard of the array is alive on this thread).
    pub fn get(&self, i: usize) -> Result<T> {
        if i >= self.len {
            return Err(index_error(i, self.len));
        }
        let _e = self.try_enter("get")?;
        Ok(self.read(i))
    }
    /// Stores `v` at `i` (errors as [`get`](Self::get)).
    pub fn set(&self, i: usize, v: T) -> Result<()> {
        if i >= self.len {
            return Err(index_error(i, self.len));
        }
        let _e = self.try_enter("set")?;
        // SAFETY: in bounds, T plain old data; no reference to the memory is alive in
        // this process (the borrow cell is ours).
        unsafe { self.block.write(i, v) };
        Ok(())
    }
    /// A copy of every element (Python: `arr[:]`). Panics while a guard of the array
    /// is alive on this thread.
    #[track_caller]
    pub fn to_vec(&self) -> Vec<T> {
        let _e = self.enter("to_vec");
        (0..self.len).map(|i| self.read(i)).collect()
    }
}

impl RawArray<u8> {
    /// The bytes up to the first NUL (Python: `.value` of a `c_char` array).
    #[track_caller]
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
        let _e = self.try_enter("set_value")?;
        self.block.write_bytes(0, bytes);
        if bytes.len() < self.len {
            self.block.write_bytes(bytes.len(), &[0]);
        }
        Ok(())
    }
    /// Every byte (Python: `.raw`).
    #[track_caller]
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
        let _e = self.try_enter("set_raw")?;
        self.block.write_bytes(0, bytes);
        Ok(())
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cell.enter() {
            Ok(_e) => {
                let v: Vec<T> = (0..self.len).map(|i| self.read(i)).collect();
                write!(f, "RawArray({v:?})")
            }
            Err(Reentered) => f.write_str("RawArray(<borrowed>)"),
        }
    }
}

impl<T: ShmSafe> Serialize for RawArray<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.block, self.len as u64, TypeTag::of::<T>()).serialize(s)
    }
}

impl<'de, T: ShmSafe> Deserialize<'de> for RawArray<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (block, len, tag) = <(Block, u64, TypeTag)>::deserialize(d)?;
        tag.check::<T, D::Error>("array")?;
        let len = usize::try_from(len)
            .map_err(|_| serde::de::Error::custom("shared array length overflows"))?;
        if !block.fits::<T>(len) {
            return Err(serde::de::Error::custom("shared array block too small"));
        }
        Ok(RawArray {
            cell: cell_for(&block),
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
///
/// As with [`Value`], one guard at a time: while a guard is alive on a thread, that
/// thread's `lock()`, `to_vec()`, `value()` and `raw()` of the same array panic
/// ("already borrowed"), and `get`/`set`/`set_value`/`set_raw` return
/// [`Error::InvalidState`]; the lock alone (`get_lock()`) stays re-entrant.
pub struct Array<T: ShmSafe> {
    pub(super) raw: RawArray<T>,
    pub(super) lock: AnyLock,
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
    #[track_caller]
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
    /// Takes the lock and returns a guard that derefs to the elements. Panics
    /// ("already borrowed") if a guard of the same array is alive on this thread.
    #[track_caller]
    pub fn lock(&self) -> ArrayGuard<'_, T> {
        let guard = self.lock.lock();
        let entered = self.raw.enter("lock");
        if T::__CHECKED {
            let p = self.raw.block.as_ptr().cast::<T>();
            for i in 0..self.raw.len {
                // SAFETY: we hold the lock and the borrow cell; element i < len lies in
                // the block (checked at creation/receipt), aligned.
                if !unsafe { T::__repair(p.add(i)) } {
                    invalid_bits_panic::<T>()
                }
            }
        }
        ArrayGuard {
            _entered: entered,
            _guard: guard,
            raw: &self.raw,
        }
    }
}

impl Array<u8> {
    /// The bytes up to the first NUL, under the lock (Python: `.value`).
    #[track_caller]
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
    #[track_caller]
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
        let _g = self.lock.lock();
        match self.raw.cell.enter() {
            Ok(_e) => {
                let v: Vec<T> = (0..self.raw.len).map(|i| self.raw.read(i)).collect();
                write!(f, "<SynchronizedArray wrapper for {v:?}>")
            }
            Err(Reentered) => f.write_str("<SynchronizedArray wrapper for <borrowed>>"),
        }
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

/// The lock of an [`Array`], held; derefs to the elements. While it lives, the
/// array's other accessors on this thread refuse (see [`Array`]).
pub struct ArrayGuard<'a, T: ShmSafe> {
    // dropped first: the borrow ends before the lock is released
    _entered: Entered<'a>,
    _guard: Guard<'a, AnyLock>,
    raw: &'a RawArray<T>,
}

impl<T: ShmSafe> std::fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<ArrayGuard>")
    }
}

impl<T: ShmSafe> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the lock and the borrow cell are held for the guard's lifetime (no
        // other reference to the elements exists in this process); the elements were
        // made valid when the guard was taken; len Ts fit the aligned block.
        unsafe { std::slice::from_raw_parts(self.raw.block.as_ptr().cast::<T>(), self.raw.len) }
    }
}

impl<T: ShmSafe> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the guard's only reference.
        unsafe { self.raw.block.slice_mut(self.raw.len) }
    }
}
