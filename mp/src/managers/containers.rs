//! The typed proxies of a [`SyncManager`](super::SyncManager)'s containers
//! (`ListProxy<T>`, `DictProxy<K, V>`, `NamespaceProxy`, `ValueProxy<T>`,
//! `ArrayProxy<T>`, `QueueProxy<T>`, `JoinableQueueProxy<T>`, `IteratorProxy<T>`): each
//! converts `T` to and from [`Value`]s, the server side (in `builtins`) holds them.

use super::builtins::{IterRef, MpQueueRef, QueueRef};
use super::proxy::{BaseProxy, Encoding, Proxy};
use super::server::{Fail, Out, Referent};
use super::sync::secs;
use super::value::{from_value, value_of, Value};
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type FResult<T> = std::result::Result<T, Fail>;

fn to_v<T: Serialize + 'static>(v: T) -> Result<Value> {
    value_of(v)
}

fn to_vr<T: Serialize>(v: &T) -> Result<Value> {
    super::value::to_value(v)
}

fn call<R: DeserializeOwned + 'static>(b: &BaseProxy, m: &str, args: Vec<Value>) -> Result<R> {
    from_value(b.call_values(m, args)?)
}

macro_rules! value_proxy {
    ($(#[$doc:meta])* $name:ident [$($g:ident),+] $py:literal) => {
        $(#[$doc])*
        pub struct $name<$($g),+> {
            base: BaseProxy,
            _t: PhantomData<fn() -> ($($g,)+)>,
        }
        impl<$($g),+> Clone for $name<$($g),+> {
            fn clone(&self) -> Self {
                $name { base: self.base.clone(), _t: PhantomData }
            }
        }
        impl<$($g),+> Serialize for $name<$($g),+> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.base.serialize(s)
            }
        }
        impl<'de, $($g),+> Deserialize<'de> for $name<$($g),+> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                Ok($name { base: BaseProxy::deserialize_as(d, Encoding::Dynamic)?, _t: PhantomData })
            }
        }
        impl<$($g),+> fmt::Debug for $name<$($g),+> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.base.fmt_debug($py, f)
            }
        }
        impl<$($g),+> fmt::Display for $name<$($g),+> {
            /// The referent's Python `repr()`.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.base.fmt_display(f)
            }
        }
        impl<$($g: 'static),+> Proxy for $name<$($g),+> {
            const ENCODING: Encoding = Encoding::Dynamic;
            fn from_base(base: BaseProxy) -> Self {
                $name { base, _t: PhantomData }
            }
            fn base(&self) -> &BaseProxy {
                &self.base
            }
        }
        impl<$($g),+> $name<$($g),+> {
            /// Python's `_callmethod(name, args)`: `args` is the argument tuple.
            pub fn call_method<R: DeserializeOwned + 'static>(
                &self,
                name: &str,
                args: impl Serialize,
            ) -> Result<R> {
                self.base.call_method(name, args)
            }
        }
    };
}

/// A position in a list or array: any integer; negative counts from the end, as in
/// Python.
pub trait Index: Copy {
    /// The position as `i64`.
    fn to_i64(self) -> i64;
}

macro_rules! index_impl {
    ($($t:ty)*) => {$(
        impl Index for $t {
            fn to_i64(self) -> i64 { self as i64 }
        }
    )*};
}
index_impl!(i8 i16 i32 i64 isize u8 u16 u32 u64 usize);

fn range_args(r: impl RangeBounds<usize>) -> Vec<Value> {
    let start = match r.start_bound() {
        Bound::Included(&s) => Value::from(s),
        Bound::Excluded(&s) => Value::from(s + 1),
        Bound::Unbounded => Value::None,
    };
    let end = match r.end_bound() {
        Bound::Included(&e) => Value::from(e + 1),
        Bound::Excluded(&e) => Value::from(e),
        Bound::Unbounded => Value::None,
    };
    vec![start, end]
}

value_proxy!(
    /// A proxy to a `list` in a manager (Python's `ListProxy`), made by
    /// [`SyncManager::list`](super::SyncManager::list). Items are converted to
    /// [`Value`]s, so the server sorts, counts and compares them; an item may itself be
    /// a proxy (a list of dict proxies). `Display` is the list's Python `repr`.
    ///
    /// ```
    /// # mp::test_support!();
    /// # fn main() -> mp::Result<()> {
    /// let m = mp::Manager::new()?;
    /// let l = m.list(vec![3, 1, 2])?;
    /// l.append(0)?;
    /// l.sort()?;
    /// assert_eq!(l.to_vec()?, vec![0, 1, 2, 3]);
    /// assert_eq!(l.to_string(), "[0, 1, 2, 3]");
    /// assert!(matches!(l.get(10), Err(mp::Error::Remote { kind, .. }) if kind == "IndexError"));
    /// # Ok(()) }
    /// ```
    ListProxy [T] "ListProxy"
);

impl<T: Serialize + DeserializeOwned + 'static> ListProxy<T> {
    /// `l.append(x)`.
    pub fn append(&self, x: T) -> Result<()> {
        call(&self.base, "append", vec![to_v(x)?])
    }
    /// `l.extend(items)`.
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<()> {
        let v = items.into_iter().map(to_v).collect::<Result<Vec<_>>>()?;
        call(&self.base, "extend", vec![Value::List(v)])
    }
    /// `l[i]` (negative counts from the end; out of range → `Remote { kind: "IndexError" }`).
    pub fn get(&self, i: impl Index) -> Result<T> {
        call(&self.base, "__getitem__", vec![Value::from(i.to_i64())])
    }
    /// `l[i] = x`.
    pub fn set(&self, i: impl Index, x: T) -> Result<()> {
        call(
            &self.base,
            "__setitem__",
            vec![Value::from(i.to_i64()), to_v(x)?],
        )
    }
    /// `del l[i]`.
    pub fn delete(&self, i: impl Index) -> Result<()> {
        call(&self.base, "__delitem__", vec![Value::from(i.to_i64())])
    }
    /// `len(l)`.
    pub fn len(&self) -> Result<usize> {
        call(&self.base, "__len__", Vec::new())
    }
    /// `len(l) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// `l.insert(i, x)`.
    pub fn insert(&self, i: impl Index, x: T) -> Result<()> {
        call(
            &self.base,
            "insert",
            vec![Value::from(i.to_i64()), to_v(x)?],
        )
    }
    /// `l.pop()`: the last item (`IndexError` when empty).
    pub fn pop(&self) -> Result<T> {
        call(&self.base, "pop", Vec::new())
    }
    /// `l.pop(i)`.
    pub fn pop_at(&self, i: impl Index) -> Result<T> {
        call(&self.base, "pop", vec![Value::from(i.to_i64())])
    }
    /// `l.remove(x)`: the first equal item (`ValueError` when absent).
    pub fn remove(&self, x: impl Borrow<T>) -> Result<()> {
        call(&self.base, "remove", vec![to_vr(x.borrow())?])
    }
    /// `l.index(x)` (`ValueError` when absent).
    pub fn index(&self, x: impl Borrow<T>) -> Result<usize> {
        call(&self.base, "index", vec![to_vr(x.borrow())?])
    }
    /// `l.count(x)`.
    pub fn count(&self, x: impl Borrow<T>) -> Result<usize> {
        call(&self.base, "count", vec![to_vr(x.borrow())?])
    }
    /// `x in l`.
    pub fn contains(&self, x: impl Borrow<T>) -> Result<bool> {
        call(&self.base, "__contains__", vec![to_vr(x.borrow())?])
    }
    /// `l.reverse()`.
    pub fn reverse(&self) -> Result<()> {
        call(&self.base, "reverse", Vec::new())
    }
    /// `l.sort()` (items of types Python cannot order → `TypeError`).
    pub fn sort(&self) -> Result<()> {
        call(&self.base, "sort", Vec::new())
    }
    /// `l.sort(reverse=True)`.
    pub fn sort_reverse(&self) -> Result<()> {
        call(&self.base, "sort", vec![Value::Bool(true)])
    }
    /// `l[a:b]` as a `Vec`.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>> {
        call(&self.base, "getslice", range_args(range))
    }
    /// `l.clear()`.
    pub fn clear(&self) -> Result<()> {
        call(&self.base, "clear", Vec::new())
    }
    /// `l[:]`: a copy of the whole list.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.base.get_value()
    }
    /// Python's `_getvalue()`: a copy of the list.
    pub fn get_value(&self) -> Result<Vec<T>> {
        self.base.get_value()
    }
}

value_proxy!(
    /// A proxy to a `dict` in a manager (Python's `DictProxy`), made by
    /// [`SyncManager::dict`](super::SyncManager::dict). Keeps insertion order; keys of
    /// mixed types work through an enum or [`Value`]. `Display` is Python's `repr`.
    ///
    /// ```
    /// # mp::test_support!();
    /// # fn main() -> mp::Result<()> {
    /// use mp::managers::Value;
    /// let m = mp::Manager::new()?;
    /// let d = m.dict::<Value, Value>()?;
    /// d.insert(1.into(), "1".into())?;
    /// d.insert("2".into(), 2.into())?;
    /// d.insert(0.25.into(), Value::None)?;
    /// assert_eq!(d.to_string(), "{1: '1', '2': 2, 0.25: None}");
    /// # Ok(()) }
    /// ```
    DictProxy [K, V] "DictProxy"
);

impl<K, V> DictProxy<K, V>
where
    K: Serialize + DeserializeOwned + 'static,
    V: Serialize + DeserializeOwned + 'static,
{
    /// `d.get(k)`: `None` when absent.
    pub fn get(&self, k: impl Borrow<K>) -> Result<Option<V>> {
        let v: Vec<V> = call(&self.base, "get", vec![to_vr(k.borrow())?])?;
        Ok(v.into_iter().next())
    }
    /// `d[k]`: absent → `Remote { kind: "KeyError" }`.
    pub fn get_item(&self, k: impl Borrow<K>) -> Result<V> {
        call(&self.base, "__getitem__", vec![to_vr(k.borrow())?])
    }
    /// `d[k] = v`.
    pub fn insert(&self, k: K, v: V) -> Result<()> {
        call(&self.base, "__setitem__", vec![to_v(k)?, to_v(v)?])
    }
    /// `d.pop(k, None)`: the removed value, `None` when absent.
    pub fn remove(&self, k: impl Borrow<K>) -> Result<Option<V>> {
        let v: Vec<V> = call(&self.base, "remove", vec![to_vr(k.borrow())?])?;
        Ok(v.into_iter().next())
    }
    /// `d.pop(k)`: absent → `KeyError`.
    pub fn pop(&self, k: impl Borrow<K>) -> Result<V> {
        call(&self.base, "pop", vec![to_vr(k.borrow())?])
    }
    /// `k in d`.
    pub fn contains_key(&self, k: impl Borrow<K>) -> Result<bool> {
        call(&self.base, "__contains__", vec![to_vr(k.borrow())?])
    }
    /// `list(d.keys())`, in insertion order.
    pub fn keys(&self) -> Result<Vec<K>> {
        call(&self.base, "keys", Vec::new())
    }
    /// `list(d.values())`.
    pub fn values(&self) -> Result<Vec<V>> {
        call(&self.base, "values", Vec::new())
    }
    /// `list(d.items())`.
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        call(&self.base, "items", Vec::new())
    }
    /// `len(d)`.
    pub fn len(&self) -> Result<usize> {
        call(&self.base, "__len__", Vec::new())
    }
    /// `len(d) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// `d.update(pairs)`.
    pub fn update(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        let v = pairs
            .into_iter()
            .map(|(k, v)| Ok(Value::Tuple(vec![to_v(k)?, to_v(v)?])))
            .collect::<Result<Vec<_>>>()?;
        call(&self.base, "update", vec![Value::List(v)])
    }
    /// `d.setdefault(k, v)`: the value now under `k`.
    pub fn setdefault(&self, k: K, v: V) -> Result<V> {
        call(&self.base, "setdefault", vec![to_v(k)?, to_v(v)?])
    }
    /// `d.clear()`.
    pub fn clear(&self) -> Result<()> {
        call(&self.base, "clear", Vec::new())
    }
    /// `d.popitem()`: removes and returns the last inserted pair; an empty dict is
    /// `Remote { kind: "KeyError" }`.
    pub fn popitem(&self) -> Result<(K, V)> {
        call(&self.base, "popitem", Vec::new())
    }
    /// `dict(d)`: a copy as a `HashMap`.
    pub fn to_map(&self) -> Result<HashMap<K, V>>
    where
        K: Hash + Eq,
    {
        Ok(self.items()?.into_iter().collect())
    }
    /// Python's `_getvalue()`: a copy of the items, in insertion order.
    pub fn get_value(&self) -> Result<Vec<(K, V)>> {
        self.items()
    }
}

/// A proxy to a manager's `Namespace` (Python's `NamespaceProxy`): attributes by name.
/// `Display` is `Namespace(x=10, y='hello')`.
///
/// ```
/// # mp::test_support!();
/// # fn main() -> mp::Result<()> {
/// let m = mp::Manager::new()?;
/// let ns = m.namespace()?;
/// ns.set("x", 10)?;
/// ns.set("y", "hello")?;
/// assert_eq!(ns.get::<i32>("x")?, 10);
/// assert_eq!(ns.to_string(), "Namespace(x=10, y='hello')");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NamespaceProxy {
    base: BaseProxy,
}

impl Serialize for NamespaceProxy {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.base.serialize(s)
    }
}
impl<'de> Deserialize<'de> for NamespaceProxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(NamespaceProxy {
            base: BaseProxy::deserialize_as(d, Encoding::Dynamic)?,
        })
    }
}
impl fmt::Debug for NamespaceProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.base.fmt_debug("NamespaceProxy", f)
    }
}
impl fmt::Display for NamespaceProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.base.fmt_display(f)
    }
}
impl Proxy for NamespaceProxy {
    const ENCODING: Encoding = Encoding::Dynamic;
    fn from_base(base: BaseProxy) -> Self {
        NamespaceProxy { base }
    }
    fn base(&self) -> &BaseProxy {
        &self.base
    }
}

impl NamespaceProxy {
    /// `ns.name = v`.
    pub fn set<T: Serialize + 'static>(&self, name: &str, v: T) -> Result<()> {
        call(&self.base, "__setattr__", vec![Value::from(name), to_v(v)?])
    }
    /// `ns.name` (absent → `Remote { kind: "AttributeError" }`).
    pub fn get<T: DeserializeOwned + 'static>(&self, name: &str) -> Result<T> {
        call(&self.base, "__getattribute__", vec![Value::from(name)])
    }
    /// `del ns.name`.
    pub fn remove(&self, name: &str) -> Result<()> {
        call(&self.base, "__delattr__", vec![Value::from(name)])
    }
    /// `hasattr(ns, name)`.
    pub fn contains(&self, name: &str) -> Result<bool> {
        call(&self.base, "__hasattr__", vec![Value::from(name)])
    }
    /// Python's `_callmethod(name, args)`.
    pub fn call_method<R: DeserializeOwned + 'static>(
        &self,
        name: &str,
        args: impl Serialize,
    ) -> Result<R> {
        self.base.call_method(name, args)
    }
    /// Python's `_getvalue()`: the attributes as a dict [`Value`].
    pub fn get_value(&self) -> Result<Value> {
        self.base.get_value()
    }
}

value_proxy!(
    /// A proxy to a manager's `Value` (Python's `ValueProxy`): `get`, `set`.
    ValueProxy [T] "ValueProxy"
);

impl<T: Serialize + DeserializeOwned + 'static> ValueProxy<T> {
    /// `v.value` / `v.get()`.
    pub fn get(&self) -> Result<T> {
        call(&self.base, "get", Vec::new())
    }
    /// `v.value = x` / `v.set(x)`.
    pub fn set(&self, x: T) -> Result<()> {
        call(&self.base, "set", vec![to_v(x)?])
    }
    /// Python's `_getvalue()`.
    pub fn get_value(&self) -> Result<T> {
        self.base.get_value()
    }
}

value_proxy!(
    /// A proxy to a manager's `Array` (Python's `ArrayProxy`): `len`, `get`, `set`,
    /// `to_vec`.
    ArrayProxy [T] "ArrayProxy"
);

impl<T: Serialize + DeserializeOwned + 'static> ArrayProxy<T> {
    /// `len(a)`.
    pub fn len(&self) -> Result<usize> {
        call(&self.base, "__len__", Vec::new())
    }
    /// `len(a) == 0`.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// `a[i]`.
    pub fn get(&self, i: impl Index) -> Result<T> {
        call(&self.base, "__getitem__", vec![Value::from(i.to_i64())])
    }
    /// `a[i] = x`.
    pub fn set(&self, i: impl Index, x: T) -> Result<()> {
        call(
            &self.base,
            "__setitem__",
            vec![Value::from(i.to_i64()), to_v(x)?],
        )
    }
    /// `a[:]`.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.base.get_value()
    }
    /// Python's `_getvalue()`.
    pub fn get_value(&self) -> Result<Vec<T>> {
        self.base.get_value()
    }
}

macro_rules! queue_methods {
    () => {
        /// `q.put(x)`: blocks while a bounded queue is full.
        pub fn put(&self, x: T) -> Result<()> {
            call(&self.base, "put", vec![to_v(x)?])
        }
        /// `q.put(x, block=False)`: [`Error::Full`] when full.
        pub fn try_put(&self, x: T) -> Result<()> {
            call(&self.base, "put", vec![to_v(x)?, Value::Bool(false)])
        }
        /// `q.put(x, timeout=t)`: [`Error::Full`] after the timeout.
        pub fn put_timeout(&self, x: T, timeout: Duration) -> Result<()> {
            call(
                &self.base,
                "put",
                vec![to_v(x)?, Value::Bool(true), secs(Some(timeout))],
            )
        }
        /// `q.get()`: blocks until an item arrives (or the manager shuts down: an error).
        pub fn get(&self) -> Result<T> {
            call(&self.base, "get", Vec::new())
        }
        /// `q.get(block=False)`: [`Error::Empty`] when empty.
        pub fn try_get(&self) -> Result<T> {
            call(&self.base, "get", vec![Value::Bool(false)])
        }
        /// `q.get(timeout=t)`: [`Error::Empty`] after the timeout.
        pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
            call(
                &self.base,
                "get",
                vec![Value::Bool(true), secs(Some(timeout))],
            )
        }
        /// `q.qsize()`.
        pub fn qsize(&self) -> Result<usize> {
            call(&self.base, "qsize", Vec::new())
        }
        /// `q.empty()`.
        pub fn empty(&self) -> Result<bool> {
            call(&self.base, "empty", Vec::new())
        }
        /// `q.full()`.
        pub fn full(&self) -> Result<bool> {
            call(&self.base, "full", Vec::new())
        }
        /// Python's `_getvalue()`: a copy of the items waiting in the queue, oldest first
        /// (a shared-memory `mp::Queue` behind the proxy cannot be copied: an error).
        pub fn get_value(&self) -> Result<Vec<T>> {
            self.base.get_value()
        }
    };
}

value_proxy!(
    /// A proxy to a manager's `queue.Queue` (Python's `AutoProxy[Queue]`), made by
    /// [`SyncManager::queue`](super::SyncManager::queue) or returned by a registered
    /// callable (the docs' remote `get_queue`).
    ///
    /// ```
    /// # mp::test_support!();
    /// # fn main() -> mp::Result<()> {
    /// let m = mp::Manager::new()?;
    /// let q = m.queue::<String>(0)?;
    /// q.put("a".into())?;
    /// assert_eq!(q.get()?, "a");
    /// assert!(matches!(q.try_get(), Err(mp::Error::Empty)));
    /// # Ok(()) }
    /// ```
    QueueProxy [T] "QueueProxy"
);

impl<T: Serialize + DeserializeOwned + 'static> QueueProxy<T> {
    queue_methods!();
}

value_proxy!(
    /// A proxy to a manager's `queue.Queue` with `task_done`/`join` (Python's
    /// `JoinableQueue` through a manager).
    JoinableQueueProxy [T] "JoinableQueueProxy"
);

impl<T: Serialize + DeserializeOwned + 'static> JoinableQueueProxy<T> {
    queue_methods!();
    /// `q.task_done()`: an error when called more times than items were put.
    pub fn task_done(&self) -> Result<()> {
        call(&self.base, "task_done", Vec::new())
    }
    /// `q.join()`: waits until every item was marked done.
    pub fn join(&self) -> Result<()> {
        let _: bool = call(&self.base, "join", Vec::new())?;
        Ok(())
    }
    /// `q.join()` for at most `timeout`: `Ok(false)` when items are still pending.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        call(&self.base, "join", vec![secs(Some(timeout))])
    }
}

value_proxy!(
    /// A proxy to an iterator in a manager (the docs' `GeneratorProxy`): register a
    /// callable returning an `Iterator` with `proxytype = IteratorProxy<T>`. Each `next()`
    /// is one call; it yields `Result<T>`.
    IteratorProxy [T] "IteratorProxy"
);

impl<T: DeserializeOwned + 'static> IteratorProxy<T> {
    /// Python's `_getvalue()`: an iterator cannot be copied (`Remote { kind: "TypeError" }`).
    pub fn get_value(&self) -> Result<Vec<T>> {
        self.base.get_value()
    }
}

impl<T: DeserializeOwned + 'static> Iterator for IteratorProxy<T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        match self.base.call_values("__next__", Vec::new()) {
            Ok(v) => Some(from_value(v)),
            Err(Error::Remote { kind, .. }) if kind == "StopIteration" => None,
            Err(e) => Some(Err(e)),
        }
    }
}

// ---------------------------------------------------------------------------------
// what a registered callable may return for the builtin proxy types

/// Makes the server-side object a registered callable's result stands for, as seen
/// through proxy type `Self` (the derive of [`Manager`](macro@crate::Manager) calls it; a
/// callable whose result does not fit the registration's proxy type is a compile
/// error).
#[diagnostic::on_unimplemented(
    message = "a callable returning `{R}` cannot be registered with proxy type `{Self}`",
    label = "the callable's return type is not this registration's referent",
    note = "register a callable that returns the referent of the proxy type (the `#[mp::shared]` type, an `Iterator` for `IteratorProxy<T>`, an `mp::Queue<T>` for `QueueProxy<T>`)"
)]
pub trait MakeReferent<R>: Proxy {
    /// Wraps the callable's result.
    fn make_referent(r: R) -> Box<dyn Referent>;
}

impl<T, I> MakeReferent<I> for IteratorProxy<T>
where
    T: Serialize + DeserializeOwned + 'static,
    I: Iterator<Item = T> + Send + 'static,
{
    fn make_referent(r: I) -> Box<dyn Referent> {
        Box::new(IterRef(Mutex::new(Box::new(r))))
    }
}

impl<T> MakeReferent<crate::Queue<T>> for QueueProxy<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn make_referent(q: crate::Queue<T>) -> Box<dyn Referent> {
        Box::new(MpQueueRef(q))
    }
}

/// A queue held by a manager's server, shared by every call of the callable that
/// returns it (Python's `queue.Queue()` behind the docs' `get_queue`).
///
/// ```
/// static Q: std::sync::LazyLock<mp::managers::SharedQueue> =
///     std::sync::LazyLock::new(|| mp::managers::SharedQueue::new(0));
/// fn get_queue() -> mp::managers::SharedQueue { Q.clone() }
/// # let _ = get_queue();
/// ```
#[derive(Clone)]
pub struct SharedQueue(Arc<QueueRef>);

impl SharedQueue {
    /// A queue of at most `maxsize` items (0 = unbounded).
    pub fn new(maxsize: usize) -> Self {
        SharedQueue(Arc::new(QueueRef::new(maxsize, false)))
    }
}

impl fmt::Debug for SharedQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.repr())
    }
}

struct SharedQueueRef(Arc<QueueRef>);

impl Referent for SharedQueueRef {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        self.0.call(method, args)
    }
    fn repr(&self) -> String {
        self.0.repr()
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        self.0.get_value()
    }
    fn methods(&self) -> &'static [&'static str] {
        self.0.methods()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> MakeReferent<SharedQueue> for QueueProxy<T> {
    fn make_referent(q: SharedQueue) -> Box<dyn Referent> {
        Box::new(SharedQueueRef(q.0))
    }
}
