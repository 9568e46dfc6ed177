//! `ShareableList` (CPython's `shared_memory.ShareableList`) and its items, in
//! CPython's byte layout, every value another process wrote validated before use.

use super::*;
use crate::util::{py_bytes_repr, py_float_repr, py_str_repr};
use std::sync::Mutex;

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
