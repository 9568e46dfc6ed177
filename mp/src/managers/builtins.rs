//! The builtin objects of a [`SyncManager`](super::SyncManager), server side: `list`,
//! `dict`, `Namespace`, `Value`, `Array`, `Queue`, `JoinableQueue` and iterators as
//! referents holding [`Value`]s, and the registry of their typeids. Their typed
//! proxies are in `containers`.

use super::server::{lock, shut_down, stopping, Fail, Out, Referent, Registry};
use super::sync::{self, deadline, wait_until};
use super::value::{from_value, value_of, Value};
use crate::codec;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

type FResult<T> = std::result::Result<T, Fail>;

// ---------------------------------------------------------------------------------
// argument and result helpers (server side)

/// Decodes a builtin call's arguments; proxies inside take over their references.
pub(crate) fn args_of(bytes: &[u8]) -> FResult<Vec<Value>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut v: Vec<Value> = codec::decode(bytes).map_err(Fail::from)?;
    for x in &mut v {
        super::server::import(x);
    }
    Ok(v)
}

/// Takes argument `i` (missing → `TypeError`).
pub(crate) fn take(a: &mut [Value], i: usize) -> FResult<Value> {
    a.get_mut(i)
        .map(std::mem::take)
        .ok_or_else(|| Fail::new("TypeError", format!("missing argument {}", i + 1)))
}

/// Argument `i` as a `T`.
pub(crate) fn arg<T: DeserializeOwned + 'static>(a: &mut [Value], i: usize) -> FResult<T> {
    from_value(take(a, i)?).map_err(|e| Fail::new("TypeError", e.to_string()))
}

/// Optional argument `i` (missing or `None` → `None`).
pub(crate) fn opt_arg<T: DeserializeOwned + 'static>(
    a: &mut [Value],
    i: usize,
) -> FResult<Option<T>> {
    match a.get_mut(i).map(std::mem::take) {
        None | Some(Value::None) => Ok(None),
        Some(v) => from_value(v)
            .map(Some)
            .map_err(|e| Fail::new("TypeError", e.to_string())),
    }
}

/// Encodes a value for the client, taking references for the proxies inside.
pub(crate) fn encode_value(mut v: Value) -> FResult<Vec<u8>> {
    super::server::export(&mut v);
    codec::encode(&v).map_err(Fail::from)
}

/// A call's result.
pub(crate) fn ret(v: impl Serialize + 'static) -> FResult<Out> {
    let v = value_of(v).map_err(Fail::from)?;
    encode_value(v).map(Out::Data)
}

/// A call's result when there is none.
pub(crate) fn unit() -> FResult<Out> {
    encode_value(Value::None).map(Out::Data)
}

fn index_error(what: &str) -> Fail {
    Fail::new("IndexError", format!("{what} index out of range"))
}

/// Python's index normalisation: negative counts from the end.
fn norm(i: i64, len: usize, what: &str) -> FResult<usize> {
    let j = if i < 0 { i + len as i64 } else { i };
    if j < 0 || j as usize >= len {
        Err(index_error(what))
    } else {
        Ok(j as usize)
    }
}

fn list_repr(v: &[Value]) -> String {
    let mut s = String::from("[");
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&x.repr());
    }
    s.push(']');
    s
}

fn sort_values(v: &mut [Value], reverse: bool) -> FResult<()> {
    let mut err = None;
    v.sort_by(|a, b| match a.py_cmp(b) {
        Ok(o) => {
            if reverse {
                o.reverse()
            } else {
                o
            }
        }
        Err(e) => {
            err.get_or_insert(e);
            std::cmp::Ordering::Equal
        }
    });
    match err {
        Some(e) => Err(Fail::new("TypeError", e)),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------
// referents

pub(crate) struct ListRef(Mutex<Vec<Value>>);

const LIST_METHODS: &[&str] = &[
    "append",
    "extend",
    "__getitem__",
    "__setitem__",
    "__delitem__",
    "__len__",
    "__contains__",
    "insert",
    "pop",
    "remove",
    "index",
    "count",
    "reverse",
    "sort",
    "getslice",
    "clear",
];

impl Referent for ListRef {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        let mut a = args_of(args)?;
        let mut l = lock(&self.0);
        match method {
            "append" => {
                l.push(take(&mut a, 0)?);
                drop(l);
                unit()
            }
            "extend" => {
                match take(&mut a, 0)? {
                    Value::List(v) | Value::Tuple(v) => l.extend(v),
                    other => {
                        return Err(Fail::new(
                            "TypeError",
                            format!("'{}' object is not iterable", other.type_name()),
                        ))
                    }
                }
                drop(l);
                unit()
            }
            "__getitem__" => {
                let i = norm(arg(&mut a, 0)?, l.len(), "list")?;
                let v = l[i].clone();
                drop(l);
                ret(v)
            }
            "__setitem__" => {
                let i = norm(arg(&mut a, 0)?, l.len(), "list assignment")?;
                let old = std::mem::replace(&mut l[i], take(&mut a, 1)?);
                drop(l);
                drop(old);
                unit()
            }
            "__delitem__" => {
                let i = norm(arg(&mut a, 0)?, l.len(), "list assignment")?;
                let old = l.remove(i);
                drop(l);
                drop(old);
                unit()
            }
            "__len__" => ret(l.len() as u64),
            "__contains__" => {
                let x = take(&mut a, 0)?;
                ret(l.iter().any(|y| y.py_eq(&x)))
            }
            "insert" => {
                let i: i64 = arg(&mut a, 0)?;
                let len = l.len() as i64;
                let j = if i < 0 { (i + len).max(0) } else { i.min(len) };
                l.insert(j as usize, take(&mut a, 1)?);
                drop(l);
                unit()
            }
            "pop" => {
                if l.is_empty() {
                    return Err(Fail::new("IndexError", "pop from empty list"));
                }
                let i = match opt_arg::<i64>(&mut a, 0)? {
                    Some(i) => norm(i, l.len(), "pop")?,
                    None => l.len() - 1,
                };
                let v = l.remove(i);
                drop(l);
                ret(v)
            }
            "remove" => {
                let x = take(&mut a, 0)?;
                match l.iter().position(|y| y.py_eq(&x)) {
                    Some(i) => {
                        let old = l.remove(i);
                        drop(l);
                        drop(old);
                        unit()
                    }
                    None => Err(Fail::new("ValueError", "list.remove(x): x not in list")),
                }
            }
            "index" => {
                let x = take(&mut a, 0)?;
                match l.iter().position(|y| y.py_eq(&x)) {
                    Some(i) => ret(i as u64),
                    None => Err(Fail::new(
                        "ValueError",
                        format!("{} is not in list", x.repr()),
                    )),
                }
            }
            "count" => {
                let x = take(&mut a, 0)?;
                ret(l.iter().filter(|y| y.py_eq(&x)).count() as u64)
            }
            "reverse" => {
                l.reverse();
                drop(l);
                unit()
            }
            "sort" => {
                let reverse: bool = opt_arg(&mut a, 0)?.unwrap_or(false);
                sort_values(&mut l, reverse)?;
                drop(l);
                unit()
            }
            "getslice" => {
                let len = l.len();
                let start = opt_arg::<u64>(&mut a, 0)?.map_or(0, |s| (s as usize).min(len));
                let end = opt_arg::<u64>(&mut a, 1)?.map_or(len, |e| (e as usize).min(len));
                let v = l[start..end.max(start)].to_vec();
                drop(l);
                ret(Value::List(v))
            }
            "clear" => {
                let old = std::mem::take(&mut *l);
                drop(l);
                drop(old);
                unit()
            }
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        list_repr(&lock(&self.0))
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        let v = lock(&self.0).clone();
        encode_value(Value::List(v))
    }
    fn methods(&self) -> &'static [&'static str] {
        LIST_METHODS
    }
}

pub(crate) struct DictRef(Mutex<Vec<(Value, Value)>>);

fn find(d: &[(Value, Value)], k: &Value) -> Option<usize> {
    d.iter().position(|(x, _)| x.py_eq(k))
}

fn key_error(k: &Value) -> Fail {
    Fail::new("KeyError", k.repr())
}

impl Referent for DictRef {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        let mut a = args_of(args)?;
        let mut d = lock(&self.0);
        match method {
            "__getitem__" => {
                let k = take(&mut a, 0)?;
                match find(&d, &k) {
                    Some(i) => {
                        let v = d[i].1.clone();
                        drop(d);
                        ret(v)
                    }
                    None => Err(key_error(&k)),
                }
            }
            "get" => {
                let k = take(&mut a, 0)?;
                let v = find(&d, &k).map(|i| d[i].1.clone());
                drop(d);
                ret(Value::List(v.into_iter().collect()))
            }
            "__setitem__" => {
                let k = take(&mut a, 0)?;
                let v = take(&mut a, 1)?;
                let old = match find(&d, &k) {
                    Some(i) => Some(std::mem::replace(&mut d[i].1, v)),
                    None => {
                        d.push((k, v));
                        None
                    }
                };
                drop(d);
                drop(old);
                unit()
            }
            "pop" | "__delitem__" => {
                let k = take(&mut a, 0)?;
                match find(&d, &k) {
                    Some(i) => {
                        let (_, v) = d.remove(i);
                        drop(d);
                        if method == "pop" {
                            ret(v)
                        } else {
                            unit()
                        }
                    }
                    None => Err(key_error(&k)),
                }
            }
            "remove" => {
                let k = take(&mut a, 0)?;
                let v = find(&d, &k).map(|i| d.remove(i).1);
                drop(d);
                ret(Value::List(v.into_iter().collect()))
            }
            "__contains__" => {
                let k = take(&mut a, 0)?;
                ret(find(&d, &k).is_some())
            }
            "keys" => {
                let v = d.iter().map(|(k, _)| k.clone()).collect();
                drop(d);
                ret(Value::List(v))
            }
            "values" => {
                let v = d.iter().map(|(_, v)| v.clone()).collect();
                drop(d);
                ret(Value::List(v))
            }
            "items" => {
                let v = d
                    .iter()
                    .map(|(k, v)| Value::Tuple(vec![k.clone(), v.clone()]))
                    .collect();
                drop(d);
                ret(Value::List(v))
            }
            "__len__" => ret(d.len() as u64),
            "update" => {
                let items = match take(&mut a, 0)? {
                    Value::Dict(v) => v,
                    Value::List(v) | Value::Tuple(v) => {
                        let mut out = Vec::new();
                        for kv in v {
                            match kv {
                                Value::Tuple(mut p) | Value::List(mut p) if p.len() == 2 => {
                                    let v = p.pop().unwrap_or_default();
                                    let k = p.pop().unwrap_or_default();
                                    out.push((k, v));
                                }
                                _ => {
                                    return Err(Fail::new(
                                        "TypeError",
                                        "update needs (key, value) pairs",
                                    ))
                                }
                            }
                        }
                        out
                    }
                    other => {
                        return Err(Fail::new(
                            "TypeError",
                            format!("'{}' object is not iterable", other.type_name()),
                        ))
                    }
                };
                let mut old = Vec::new();
                for (k, v) in items {
                    match find(&d, &k) {
                        Some(i) => old.push(std::mem::replace(&mut d[i].1, v)),
                        None => d.push((k, v)),
                    }
                }
                drop(d);
                drop(old);
                unit()
            }
            "setdefault" => {
                let k = take(&mut a, 0)?;
                let v = take(&mut a, 1)?;
                let out = match find(&d, &k) {
                    Some(i) => d[i].1.clone(),
                    None => {
                        d.push((k, v.clone()));
                        v
                    }
                };
                drop(d);
                ret(out)
            }
            "clear" => {
                let old = std::mem::take(&mut *d);
                drop(d);
                drop(old);
                unit()
            }
            // the last inserted pair (LIFO), as Python 3.7+
            "popitem" => match d.pop() {
                Some((k, v)) => {
                    drop(d);
                    ret(Value::Tuple(vec![k, v]))
                }
                None => Err(Fail::new("KeyError", "'popitem(): dictionary is empty'")),
            },
            "copy" => {
                let v = d.clone();
                drop(d);
                ret(Value::Dict(v))
            }
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        Value::Dict(lock(&self.0).clone()).repr()
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        let v = lock(&self.0).clone();
        encode_value(Value::Dict(v))
    }
    fn methods(&self) -> &'static [&'static str] {
        &[
            "__getitem__",
            "get",
            "__setitem__",
            "__delitem__",
            "pop",
            "remove",
            "__contains__",
            "keys",
            "values",
            "items",
            "__len__",
            "update",
            "setdefault",
            "clear",
            "popitem",
            "copy",
        ]
    }
}

pub(crate) struct NamespaceRef(Mutex<Vec<(String, Value)>>);

impl NamespaceRef {
    fn repr_of(items: &[(String, Value)]) -> String {
        let mut parts: Vec<String> = items
            .iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .map(|(k, v)| format!("{k}={}", v.repr()))
            .collect();
        parts.sort();
        format!("Namespace({})", parts.join(", "))
    }
}

impl Referent for NamespaceRef {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        let mut a = args_of(args)?;
        let name: String = arg(&mut a, 0)?;
        let mut ns = lock(&self.0);
        let pos = ns.iter().position(|(k, _)| *k == name);
        let missing = || {
            Fail::new(
                "AttributeError",
                format!("'Namespace' object has no attribute '{name}'"),
            )
        };
        match method {
            "__getattribute__" => match pos {
                Some(i) => {
                    let v = ns[i].1.clone();
                    drop(ns);
                    ret(v)
                }
                None => Err(missing()),
            },
            "__setattr__" => {
                let v = take(&mut a, 1)?;
                let old = match pos {
                    Some(i) => Some(std::mem::replace(&mut ns[i].1, v)),
                    None => {
                        ns.push((name, v));
                        None
                    }
                };
                drop(ns);
                drop(old);
                unit()
            }
            "__delattr__" => match pos {
                Some(i) => {
                    let old = ns.remove(i);
                    drop(ns);
                    drop(old);
                    unit()
                }
                None => Err(missing()),
            },
            "__hasattr__" => ret(pos.is_some()),
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        Self::repr_of(&lock(&self.0))
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        let v = lock(&self.0)
            .iter()
            .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
            .collect();
        encode_value(Value::Dict(v))
    }
    fn methods(&self) -> &'static [&'static str] {
        &[
            "__getattribute__",
            "__setattr__",
            "__delattr__",
            "__hasattr__",
        ]
    }
}

pub(crate) struct ValueRef(Mutex<Value>);

impl Referent for ValueRef {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        let mut a = args_of(args)?;
        match method {
            "get" => {
                let v = lock(&self.0).clone();
                ret(v)
            }
            "set" => {
                let v = take(&mut a, 0)?;
                let old = std::mem::replace(&mut *lock(&self.0), v);
                drop(old);
                unit()
            }
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        format!("Value({})", lock(&self.0).repr())
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        let v = lock(&self.0).clone();
        encode_value(v)
    }
    fn methods(&self) -> &'static [&'static str] {
        &["get", "set"]
    }
}

pub(crate) struct ArrayRef(Mutex<Vec<Value>>);

impl Referent for ArrayRef {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        let mut a = args_of(args)?;
        let mut l = lock(&self.0);
        match method {
            "__len__" => ret(l.len() as u64),
            "__getitem__" => {
                let i = norm(arg(&mut a, 0)?, l.len(), "array")?;
                let v = l[i].clone();
                drop(l);
                ret(v)
            }
            "__setitem__" => {
                let i = norm(arg(&mut a, 0)?, l.len(), "array assignment")?;
                l[i] = take(&mut a, 1)?;
                drop(l);
                unit()
            }
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        format!("array({})", list_repr(&lock(&self.0)))
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        let v = lock(&self.0).clone();
        encode_value(Value::List(v))
    }
    fn methods(&self) -> &'static [&'static str] {
        &["__len__", "__getitem__", "__setitem__"]
    }
}

struct QueueSt {
    items: VecDeque<Value>,
    unfinished: u64,
}

pub(crate) struct QueueRef {
    st: Mutex<QueueSt>,
    not_empty: Condvar,
    not_full: Condvar,
    all_done: Condvar,
    maxsize: usize,
    joinable: bool,
}

impl QueueRef {
    pub(crate) fn new(maxsize: usize, joinable: bool) -> Self {
        QueueRef {
            st: Mutex::new(QueueSt {
                items: VecDeque::new(),
                unfinished: 0,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            all_done: Condvar::new(),
            maxsize,
            joinable,
        }
    }

    fn full(&self, s: &QueueSt) -> bool {
        self.maxsize > 0 && s.items.len() >= self.maxsize
    }
}

/// `(block, timeout)` → the wait's deadline (`Some(now)` for a non-blocking call).
fn block_timeout(a: &mut [Value], first: usize) -> FResult<Option<f64>> {
    let block: bool = opt_arg(a, first)?.unwrap_or(true);
    let timeout: Option<f64> = opt_arg(a, first + 1)?;
    Ok(if block { timeout } else { Some(0.0) })
}

impl Referent for QueueRef {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        let mut a = args_of(args)?;
        match method {
            "put" => {
                let item = take(&mut a, 0)?;
                let t = block_timeout(&mut a, 1)?;
                let g = lock(&self.st);
                let (mut g, ok) = wait_until(g, &self.not_full, deadline(t), |s| !self.full(s))?;
                if !ok {
                    return Err(Fail::new("Full", "queue is full"));
                }
                g.items.push_back(item);
                g.unfinished += 1;
                self.not_empty.notify_one();
                drop(g);
                unit()
            }
            "get" => {
                let t = block_timeout(&mut a, 0)?;
                let g = lock(&self.st);
                let (mut g, ok) =
                    wait_until(g, &self.not_empty, deadline(t), |s| !s.items.is_empty())?;
                if !ok {
                    return Err(Fail::new("Empty", "queue is empty"));
                }
                let v = g.items.pop_front().unwrap_or_default();
                self.not_full.notify_one();
                drop(g);
                ret(v)
            }
            "qsize" => ret(lock(&self.st).items.len() as u64),
            "empty" => ret(lock(&self.st).items.is_empty()),
            "full" => ret(self.full(&lock(&self.st))),
            "task_done" if self.joinable => {
                let mut g = lock(&self.st);
                if g.unfinished == 0 {
                    return Err(Fail::new(
                        "InvalidState",
                        "task_done() called too many times",
                    ));
                }
                g.unfinished -= 1;
                if g.unfinished == 0 {
                    self.all_done.notify_all();
                }
                unit()
            }
            "join" if self.joinable => {
                let t: Option<f64> = opt_arg(&mut a, 0)?;
                let (g, ok) = wait_until(lock(&self.st), &self.all_done, deadline(t), |s| {
                    s.unfinished == 0
                })?;
                drop(g);
                ret(ok)
            }
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        format!("<Queue qsize={}>", lock(&self.st).items.len())
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        let v = lock(&self.st).items.iter().cloned().collect();
        encode_value(Value::List(v))
    }
    fn methods(&self) -> &'static [&'static str] {
        if self.joinable {
            &["put", "get", "qsize", "empty", "full", "task_done", "join"]
        } else {
            &["put", "get", "qsize", "empty", "full"]
        }
    }
}

/// A shared-memory [`mp::Queue`](crate::Queue) served through a manager (a registered
/// callable may return one, as the docs' remote manager returns its `queue.Queue`).
pub(crate) struct MpQueueRef<T>(pub(crate) crate::Queue<T>);

impl<T: Serialize + DeserializeOwned + Send + 'static> Referent for MpQueueRef<T> {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        let mut a = args_of(args)?;
        let q = &self.0;
        let with_timeout = |t: Option<f64>, mut f: Box<dyn FnMut(Duration) -> Result<()> + '_>| {
            // blocking calls wait in slices so a shutdown is noticed
            let end = deadline(t);
            loop {
                let slice = match end {
                    Some(e) => e
                        .saturating_duration_since(std::time::Instant::now())
                        .min(super::server::SLICE),
                    None => super::server::SLICE,
                };
                match f(slice) {
                    Err(Error::Empty) | Err(Error::Full)
                        if end.is_none_or(|e| std::time::Instant::now() < e) =>
                    {
                        if stopping() {
                            return Err(shut_down());
                        }
                    }
                    other => return other.map_err(Fail::from),
                }
            }
        };
        match method {
            "put" => {
                let item: T = arg(&mut a, 0)?;
                let t = block_timeout(&mut a, 1)?;
                let mut item = Some(item);
                with_timeout(
                    t,
                    Box::new(|d| match item.take() {
                        Some(i) => q.put_timeout(i, d),
                        None => Ok(()),
                    }),
                )?;
                unit()
            }
            "get" => {
                let t = block_timeout(&mut a, 0)?;
                let mut out = None;
                with_timeout(
                    t,
                    Box::new(|d| {
                        out = Some(q.get_timeout(d)?);
                        Ok(())
                    }),
                )?;
                let v = super::value::to_value(&out).map_err(Fail::from)?;
                ret(v)
            }
            "qsize" => ret(q.qsize() as u64),
            "empty" => ret(q.empty()),
            "full" => ret(q.full()),
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        format!("<Queue qsize={}>", self.0.qsize())
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        Err(Fail::new("TypeError", "a queue has no value to copy"))
    }
    fn methods(&self) -> &'static [&'static str] {
        &["put", "get", "qsize", "empty", "full"]
    }
}

/// A Rust iterator served through a manager (the docs' generator behind
/// `GeneratorProxy`).
pub(crate) struct IterRef<T>(pub(crate) Mutex<Box<dyn Iterator<Item = T> + Send>>);

impl<T: Serialize + 'static> Referent for IterRef<T> {
    fn call(&self, method: &str, _args: &[u8]) -> FResult<Out> {
        match method {
            "__next__" => match lock(&self.0).next() {
                Some(v) => ret(super::value::to_value(&v).map_err(Fail::from)?),
                None => Err(Fail::new("StopIteration", "")),
            },
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        "<generator object>".into()
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        Err(Fail::new("TypeError", "an iterator has no value to copy"))
    }
    fn methods(&self) -> &'static [&'static str] {
        &["__next__"]
    }
}

// ---------------------------------------------------------------------------------
// the registry

/// Typeids whose proxies talk in [`Value`]s.
pub(crate) fn is_builtin(typeid: &str) -> bool {
    matches!(
        typeid,
        "list"
            | "dict"
            | "Namespace"
            | "Lock"
            | "RLock"
            | "Semaphore"
            | "BoundedSemaphore"
            | "Condition"
            | "Event"
            | "Barrier"
            | "Queue"
            | "JoinableQueue"
            | "Value"
            | "Array"
            | "Iterator"
    )
}

fn boxed<R: Referent>(r: R) -> Box<dyn Referent> {
    Box::new(r)
}

fn into_list(v: Value) -> FResult<Vec<Value>> {
    match v {
        Value::List(v) | Value::Tuple(v) => Ok(v),
        Value::None => Ok(Vec::new()),
        other => Err(Fail::new(
            "TypeError",
            format!("'{}' object is not iterable", other.type_name()),
        )),
    }
}

/// The registry of a [`SyncManager`](super::SyncManager) (CPython's
/// `SyncManager.register(...)` calls).
pub(crate) fn sync_registry() -> Registry {
    let mut r = Registry::new();
    let mut reg = |typeid: &str, f: fn(&mut [Value]) -> FResult<Box<dyn Referent>>| {
        r.register(
            typeid,
            Some(Arc::new(move |args: &[u8]| f(&mut args_of(args)?))),
            None,
        );
    };
    reg("list", |a| {
        Ok(boxed(ListRef(Mutex::new(into_list(
            a.first_mut().map(std::mem::take).unwrap_or_default(),
        )?))))
    });
    reg("dict", |a| {
        let items = match a.first_mut().map(std::mem::take) {
            Some(Value::Dict(d)) => d,
            _ => Vec::new(),
        };
        Ok(boxed(DictRef(Mutex::new(items))))
    });
    reg("Namespace", |_| {
        Ok(boxed(NamespaceRef(Mutex::new(Vec::new()))))
    });
    reg("Lock", |_| {
        Ok(boxed(sync::LockRef(sync::LockCore::new(false))))
    });
    reg("RLock", |_| {
        Ok(boxed(sync::LockRef(sync::LockCore::new(true))))
    });
    reg("Semaphore", |a| {
        Ok(boxed(sync::SemRef::new(opt_arg(a, 0)?.unwrap_or(1), false)))
    });
    reg("BoundedSemaphore", |a| {
        Ok(boxed(sync::SemRef::new(opt_arg(a, 0)?.unwrap_or(1), true)))
    });
    reg("Condition", |a| Ok(boxed(sync::new_condition(a)?)));
    reg("Event", |_| Ok(boxed(sync::EventRef::new())));
    reg("Barrier", |a| {
        let parties: u64 = arg(a, 0)?;
        if parties == 0 {
            return Err(Fail::new("ValueError", "parties must be > 0"));
        }
        Ok(boxed(sync::BarrierRef::new(
            parties as usize,
            opt_arg(a, 1)?,
        )))
    });
    reg("Queue", |a| {
        Ok(boxed(QueueRef::new(
            opt_arg::<u64>(a, 0)?.unwrap_or(0) as usize,
            false,
        )))
    });
    reg("JoinableQueue", |a| {
        Ok(boxed(QueueRef::new(
            opt_arg::<u64>(a, 0)?.unwrap_or(0) as usize,
            true,
        )))
    });
    reg("Value", |a| Ok(boxed(ValueRef(Mutex::new(take(a, 0)?)))));
    reg("Array", |a| {
        Ok(boxed(ArrayRef(Mutex::new(into_list(take(a, 0)?)?))))
    });
    r
}
