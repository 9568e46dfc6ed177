//! [`Value`]: the self-describing values the builtin containers of a manager hold.
//!
//! A `ListProxy<T>` converts each `T` to a `Value` on the client (through serde, with
//! [`to_value`]) and back with [`from_value`], so the server can sort, count, index,
//! compare, print and nest items without knowing `T` (CPython's server holds pickled
//! Python objects for the same reason). Proxies inside values stay proxies
//! ([`Value::Proxy`]), so a list can hold dict proxies.
//!
//! On the wire a `Value` travels tagged (postcard); through [`to_value`] /
//! [`from_value`] it maps to the natural serde data model (a `Value::Int` is an integer,
//! a `Value::List` a sequence…), so a `Value` also nests inside a user's types.

use super::proxy::Token;
use crate::codec::ByteBuf;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};
use serde::{Deserialize, Deserializer, Serializer};
use std::any::Any;
use std::cmp::Ordering;
use std::fmt::{self, Write as _};

/// A dynamically typed value (a Python object as the manager's builtin containers see it).
///
/// ```
/// use mp::managers::Value;
/// let v = Value::from(vec![Value::from(1), Value::from("a"), Value::None]);
/// assert_eq!(v.to_string(), "[1, 'a', None]");
/// ```
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// `None` (also `()`, unit structs and `Option::None`).
    #[default]
    None,
    /// `bool`.
    Bool(bool),
    /// `int`: every Rust integer type.
    Int(i128),
    /// `float`.
    Float(f64),
    /// `str` (also `char`).
    Str(String),
    /// `bytes`.
    Bytes(ByteBuf),
    /// `list` (Rust sequences).
    List(Vec<Value>),
    /// `tuple` (Rust tuples and tuple structs).
    Tuple(Vec<Value>),
    /// `dict`, in insertion order (Rust maps and structs).
    Dict(Vec<(Value, Value)>),
    /// A Rust enum variant: its name and its content (`None` for a unit variant).
    /// Shown, compared and sorted as its content (a unit variant as its name), so an
    /// enum of mixed keys prints as Python's mixed dict would.
    Variant(String, Option<Box<Value>>),
    /// A proxy to another object of a manager.
    Proxy(Token),
}

// ---------------------------------------------------------------------------------
// conversions

macro_rules! from_int {
    ($($t:ty)*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Int(v as i128) }
        }
    )*};
}
from_int!(i8 i16 i32 i64 i128 isize u8 u16 u32 u64 usize);

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(v as f64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<()> for Value {
    fn from(_: ()) -> Self {
        Value::None
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::None, Into::into)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

fn downcast<A: 'static, B: 'static>(a: A) -> Result<B, A> {
    let mut slot = Some(a);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<B>>() {
        Some(b) => Ok(b.take().expect("just set")),
        None => Err(slot.expect("just set")),
    }
}

/// Converts any serializable value into a [`Value`] (`serde_json::to_value`'s analogue).
pub fn to_value<T: Serialize + ?Sized>(v: &T) -> crate::Result<Value> {
    v.serialize(ValueSerializer)
        .map_err(|e| crate::Error::Codec(e.0.into()))
}

/// Converts a [`Value`] back into a `T` (`serde_json::from_value`'s analogue); a value of
/// the wrong shape is an [`Error::Codec`](crate::Error::Codec).
pub fn from_value<T: DeserializeOwned + 'static>(v: Value) -> crate::Result<T> {
    match downcast::<Value, T>(v) {
        Ok(t) => Ok(t),
        Err(v) => T::deserialize(v).map_err(|e| crate::Error::Codec(e.0.into())),
    }
}

/// Converts any value to a `Value`, a `Value` itself without a round trip.
pub(crate) fn value_of<T: Serialize + 'static>(v: T) -> crate::Result<Value> {
    match downcast::<T, Value>(v) {
        Ok(v) => Ok(v),
        Err(t) => to_value(&t),
    }
}

// ---------------------------------------------------------------------------------
// repr, equality, ordering

impl Value {
    /// Python's `repr()` of the value.
    pub fn repr(&self) -> String {
        let mut s = String::new();
        self.write_repr(&mut s);
        s
    }

    /// The content that shows and compares (enum wrappers unwrapped).
    fn inner(&self) -> &Value {
        match self {
            Value::Variant(_, Some(v)) => v.inner(),
            other => other,
        }
    }

    fn write_repr(&self, out: &mut String) {
        match self {
            Value::None => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&crate::util::py_float_repr(*f)),
            Value::Str(s) => out.push_str(&crate::util::py_str_repr(s)),
            Value::Bytes(b) => {
                out.push_str("b'");
                for &c in b.iter() {
                    match c {
                        b'\\' => out.push_str("\\\\"),
                        b'\'' => out.push_str("\\'"),
                        b'\n' => out.push_str("\\n"),
                        b'\r' => out.push_str("\\r"),
                        b'\t' => out.push_str("\\t"),
                        0x20..=0x7e => out.push(c as char),
                        _ => {
                            let _ = write!(out, "\\x{c:02x}");
                        }
                    }
                }
                out.push('\'');
            }
            Value::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_repr(out);
                }
                out.push(']');
            }
            Value::Tuple(items) => {
                out.push('(');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_repr(out);
                }
                if items.len() == 1 {
                    out.push(',');
                }
                out.push(')');
            }
            Value::Dict(items) => {
                out.push('{');
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_repr(out);
                    out.push_str(": ");
                    v.write_repr(out);
                }
                out.push('}');
            }
            Value::Variant(name, None) => out.push_str(name),
            Value::Variant(_, Some(v)) => v.write_repr(out),
            Value::Proxy(t) => {
                let _ = write!(
                    out,
                    "<{} object, typeid '{}' at {:#x}>",
                    super::proxy::proxy_type_name(&t.typeid),
                    t.typeid,
                    t.id
                );
            }
        }
    }

    /// Python's `==` (numbers compare by value across int, float and bool).
    pub fn py_eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self.inner(), other.inner()) {
            (None, None) => true,
            (Str(a), Str(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (List(a), List(b)) | (Tuple(a), Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.py_eq(y))
            }
            (Dict(a), Dict(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.iter().any(|(k2, v2)| k.py_eq(k2) && v.py_eq(v2)))
            }
            (Variant(a, Option::None), Variant(b, Option::None)) => a == b,
            (Proxy(a), Proxy(b)) => a.id == b.id && a.address == b.address,
            (a, b) => match (a.number(), b.number()) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            },
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(*b as u8 as f64),
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => Option::None,
        }
    }

    /// Python's `<` as an ordering: comparing unorderable types is a `TypeError`
    /// (the `Err` carries the message).
    pub fn py_cmp(&self, other: &Value) -> Result<Ordering, String> {
        use Value::*;
        match (self.inner(), other.inner()) {
            (Int(a), Int(b)) => Ok(a.cmp(b)),
            (Str(a), Str(b)) => Ok(a.cmp(b)),
            (Bytes(a), Bytes(b)) => Ok(a.cmp(b)),
            (List(a), List(b)) | (Tuple(a), Tuple(b)) => {
                for (x, y) in a.iter().zip(b) {
                    match x.py_cmp(y)? {
                        Ordering::Equal => {}
                        o => return Ok(o),
                    }
                }
                Ok(a.len().cmp(&b.len()))
            }
            (Variant(a, Option::None), Variant(b, Option::None)) => Ok(a.cmp(b)),
            (a, b) => match (a.number(), b.number()) {
                (Some(x), Some(y)) => x
                    .partial_cmp(&y)
                    .ok_or_else(|| "cannot order NaN".to_string()),
                _ => Err(format!(
                    "'<' not supported between instances of '{}' and '{}'",
                    a.type_name(),
                    b.type_name()
                )),
            },
        }
    }

    /// Python's type name of the value (`int`, `str`, `list` …).
    pub fn type_name(&self) -> &'static str {
        match self.inner() {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Variant(..) => "enum",
            Value::Proxy(_) => "proxy",
        }
    }

    /// Visits every proxy token inside the value.
    pub(crate) fn for_each_token(&mut self, f: &mut dyn FnMut(&mut Token)) {
        match self {
            Value::Proxy(t) => f(t),
            Value::List(v) | Value::Tuple(v) => v.iter_mut().for_each(|x| x.for_each_token(f)),
            Value::Dict(v) => v.iter_mut().for_each(|(k, x)| {
                k.for_each_token(f);
                x.for_each_token(f)
            }),
            Value::Variant(_, Some(v)) => v.for_each_token(f),
            _ => {}
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.py_eq(other)
    }
}

impl fmt::Display for Value {
    /// Python's `repr()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr())
    }
}

// ---------------------------------------------------------------------------------
// wire form: tagged, for postcard (not self-describing)

#[derive(serde::Serialize)]
enum WireRef<'a> {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
    Bytes(&'a ByteBuf),
    List(&'a [Value]),
    Tuple(&'a [Value]),
    Dict(&'a [(Value, Value)]),
    Variant(&'a str, &'a Option<Box<Value>>),
    Proxy(&'a Token),
}

#[derive(serde::Deserialize)]
enum Wire {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(ByteBuf),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Variant(String, Option<Box<Value>>),
    Proxy(Token),
}

/// The name of the newtype struct a proxy serializes as, so that [`to_value`] keeps it a
/// [`Value::Proxy`].
pub(crate) const PROXY_MAGIC: &str = "$mp::managers::Proxy";

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            let w = match self {
                Value::None => WireRef::None,
                Value::Bool(b) => WireRef::Bool(*b),
                Value::Int(i) => WireRef::Int(*i),
                Value::Float(f) => WireRef::Float(*f),
                Value::Str(x) => WireRef::Str(x),
                Value::Bytes(b) => WireRef::Bytes(b),
                Value::List(v) => WireRef::List(v),
                Value::Tuple(v) => WireRef::Tuple(v),
                Value::Dict(v) => WireRef::Dict(v),
                Value::Variant(n, v) => WireRef::Variant(n, v),
                Value::Proxy(t) => WireRef::Proxy(t),
            };
            return w.serialize(s);
        }
        use ser::{SerializeMap, SerializeSeq, SerializeTuple};
        match self {
            Value::None => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i128(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(x) => s.serialize_str(x),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::List(v) => {
                let mut q = s.serialize_seq(Some(v.len()))?;
                for x in v {
                    q.serialize_element(x)?;
                }
                q.end()
            }
            Value::Tuple(v) => {
                let mut q = s.serialize_tuple(v.len())?;
                for x in v {
                    q.serialize_element(x)?;
                }
                q.end()
            }
            Value::Dict(v) => {
                let mut q = s.serialize_map(Some(v.len()))?;
                for (k, x) in v {
                    q.serialize_entry(k, x)?;
                }
                q.end()
            }
            Value::Variant(_, Some(v)) => v.serialize(s),
            Value::Variant(n, None) => s.serialize_str(n),
            Value::Proxy(t) => s.serialize_newtype_struct(PROXY_MAGIC, t),
        }
    }
}

/// How deeply values may nest on the wire: a peer cannot exhaust the stack with a
/// list of lists of lists ….
const MAX_DEPTH: u32 = 256;

thread_local! {
    static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Counts one level of nesting while it lives.
struct DepthGuard;

impl DepthGuard {
    fn enter<E: de::Error>() -> Result<DepthGuard, E> {
        let d = DEPTH.with(|c| {
            let d = c.get() + 1;
            c.set(d);
            d
        });
        let g = DepthGuard;
        if d > MAX_DEPTH {
            return Err(E::custom(format!(
                "values nest deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(g)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let _depth = DepthGuard::enter::<D::Error>()?;
        if !d.is_human_readable() {
            return Ok(match Wire::deserialize(d)? {
                Wire::None => Value::None,
                Wire::Bool(b) => Value::Bool(b),
                Wire::Int(i) => Value::Int(i),
                Wire::Float(f) => Value::Float(f),
                Wire::Str(x) => Value::Str(x),
                Wire::Bytes(b) => Value::Bytes(b),
                Wire::List(v) => Value::List(v),
                Wire::Tuple(v) => Value::Tuple(v),
                Wire::Dict(v) => Value::Dict(v),
                Wire::Variant(n, v) => Value::Variant(n, v),
                Wire::Proxy(t) => Value::Proxy(t),
            });
        }
        d.deserialize_any(NaturalVisitor)
    }
}

struct NaturalVisitor;

impl<'de> Visitor<'de> for NaturalVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v as i128))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v as i128))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(ByteBuf::from(v.to_vec())))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(ByteBuf::from(v)))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Token::deserialize(d).map(Value::Proxy)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = a.next_element()? {
            v.push(x);
        }
        Ok(Value::List(v))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(kv) = a.next_entry()? {
            v.push(kv);
        }
        Ok(Value::Dict(v))
    }
}

mod convert;
pub use convert::ValueError;
use convert::*;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    enum Key {
        I(i64),
        S(String),
        F(f64),
        Unit,
    }

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct P {
        x: i32,
        name: String,
        tags: Vec<u8>,
        o: Option<bool>,
    }

    #[test]
    fn round_trips() {
        let p = P {
            x: -3,
            name: "n".into(),
            tags: vec![1, 2],
            o: Some(true),
        };
        let v = to_value(&p).unwrap();
        assert_eq!(
            v.repr(),
            "{'x': -3, 'name': 'n', 'tags': [1, 2], 'o': True}"
        );
        assert_eq!(from_value::<P>(v).unwrap(), p);
        let keys = vec![Key::I(1), Key::S("2".into()), Key::F(0.25), Key::Unit];
        let v = to_value(&keys).unwrap();
        assert_eq!(v.repr(), "[1, '2', 0.25, Unit]");
        let wire = crate::codec::encode(&v).unwrap();
        let back: Value = crate::codec::decode(&wire).unwrap();
        assert_eq!(from_value::<Vec<Key>>(back).unwrap(), keys);
        let m: BTreeMap<String, (u8, f32)> = [("a".to_string(), (1, 2.5))].into();
        assert_eq!(to_value(&m).unwrap().repr(), "{'a': (1, 2.5)}");
        assert_eq!(
            from_value::<BTreeMap<String, (u8, f32)>>(to_value(&m).unwrap()).unwrap(),
            m
        );
        assert!(from_value::<u8>(Value::Int(300)).is_err());
        assert!(from_value::<String>(Value::Int(3)).is_err());
        assert_eq!(Value::from(1.0).repr(), "1.0");
        assert_eq!(Value::from("it's").repr(), "\"it's\"");
        assert!(Value::from(1).py_eq(&Value::from(1.0)));
        assert!(Value::from(1).py_cmp(&Value::from("a")).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut v = Value::None;
        for _ in 0..300 {
            v = Value::List(vec![v]);
        }
        let wire = crate::codec::encode(&v).unwrap();
        assert!(crate::codec::decode::<Value>(&wire).is_err());
        // the depth count is back to zero afterwards
        let ok = crate::codec::encode(&Value::List(vec![Value::None])).unwrap();
        assert!(crate::codec::decode::<Value>(&ok).is_ok());
    }
}
