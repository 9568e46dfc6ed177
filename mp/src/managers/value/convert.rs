//! serde's data model into and out of [`Value`]: the serializer that turns a typed
//! value into a `Value`, and `Value` as a deserializer of typed values.

use super::*;

// ---------------------------------------------------------------------------------
// T -> Value

/// The error of [`to_value`] / [`from_value`].
#[derive(Debug)]
pub struct ValueError(pub(super) String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ValueError {}
impl ser::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}
impl de::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

pub(super) struct ValueSerializer;

type VResult = Result<Value, ValueError>;

pub(super) struct SeqSer {
    items: Vec<Value>,
    tuple: bool,
    variant: Option<&'static str>,
}

pub(super) struct MapSer {
    items: Vec<(Value, Value)>,
    key: Option<Value>,
    variant: Option<&'static str>,
}

pub(super) fn wrap(variant: Option<&'static str>, v: Value) -> Value {
    match variant {
        Some(n) => Value::Variant(n.to_string(), Some(Box::new(v))),
        None => v,
    }
}

impl Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = SeqSer;
    type SerializeTuple = SeqSer;
    type SerializeTupleStruct = SeqSer;
    type SerializeTupleVariant = SeqSer;
    type SerializeMap = MapSer;
    type SerializeStruct = MapSer;
    type SerializeStructVariant = MapSer;

    fn is_human_readable(&self) -> bool {
        true
    }
    fn serialize_bool(self, v: bool) -> VResult {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> VResult {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> VResult {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> VResult {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> VResult {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i128(self, v: i128) -> VResult {
        Ok(Value::Int(v))
    }
    fn serialize_u8(self, v: u8) -> VResult {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> VResult {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> VResult {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> VResult {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u128(self, v: u128) -> VResult {
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| ValueError(format!("{v} is too large")))
    }
    fn serialize_f32(self, v: f32) -> VResult {
        Ok(Value::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> VResult {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> VResult {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> VResult {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_bytes(self, v: &[u8]) -> VResult {
        Ok(Value::Bytes(ByteBuf::from(v.to_vec())))
    }
    fn serialize_none(self) -> VResult {
        Ok(Value::None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> VResult {
        v.serialize(self)
    }
    fn serialize_unit(self) -> VResult {
        Ok(Value::None)
    }
    fn serialize_unit_struct(self, _: &'static str) -> VResult {
        Ok(Value::None)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> VResult {
        Ok(Value::Variant(variant.to_string(), None))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, v: &T) -> VResult {
        if name == PROXY_MAGIC {
            let inner = v.serialize(ValueSerializer)?;
            return Token::deserialize(inner).map(Value::Proxy);
        }
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> VResult {
        Ok(wrap(Some(variant), v.serialize(ValueSerializer)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqSer, ValueError> {
        Ok(SeqSer {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            tuple: false,
            variant: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqSer, ValueError> {
        Ok(SeqSer {
            items: Vec::with_capacity(len.min(4096)),
            tuple: true,
            variant: None,
        })
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<SeqSer, ValueError> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqSer, ValueError> {
        Ok(SeqSer {
            items: Vec::with_capacity(len.min(4096)),
            tuple: true,
            variant: Some(variant),
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapSer, ValueError> {
        Ok(MapSer {
            items: Vec::new(),
            key: None,
            variant: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<MapSer, ValueError> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<MapSer, ValueError> {
        Ok(MapSer {
            items: Vec::new(),
            key: None,
            variant: Some(variant),
        })
    }
}

impl SeqSer {
    fn push<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        self.items.push(v.serialize(ValueSerializer)?);
        Ok(())
    }
    fn done(self) -> VResult {
        let v = if self.tuple {
            Value::Tuple(self.items)
        } else {
            Value::List(self.items)
        };
        Ok(wrap(self.variant, v))
    }
}

macro_rules! seq_impl {
    ($($tr:ident :: $m:ident),*) => {$(
        impl ser::$tr for SeqSer {
            type Ok = Value;
            type Error = ValueError;
            fn $m<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
                self.push(v)
            }
            fn end(self) -> VResult {
                self.done()
            }
        }
    )*};
}
seq_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for MapSer {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), ValueError> {
        self.key = Some(k.serialize(ValueSerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        let k = self
            .key
            .take()
            .ok_or_else(|| ValueError("map value without a key".into()))?;
        self.items.push((k, v.serialize(ValueSerializer)?));
        Ok(())
    }
    fn end(self) -> VResult {
        Ok(wrap(self.variant, Value::Dict(self.items)))
    }
}

impl MapSer {
    fn field<T: Serialize + ?Sized>(&mut self, k: &'static str, v: &T) -> Result<(), ValueError> {
        self.items
            .push((Value::Str(k.to_string()), v.serialize(ValueSerializer)?));
        Ok(())
    }
}

impl ser::SerializeStruct for MapSer {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        k: &'static str,
        v: &T,
    ) -> Result<(), ValueError> {
        self.field(k, v)
    }
    fn end(self) -> VResult {
        Ok(wrap(self.variant, Value::Dict(self.items)))
    }
}

impl ser::SerializeStructVariant for MapSer {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        k: &'static str,
        v: &T,
    ) -> Result<(), ValueError> {
        self.field(k, v)
    }
    fn end(self) -> VResult {
        Ok(wrap(self.variant, Value::Dict(self.items)))
    }
}

// ---------------------------------------------------------------------------------
// Value -> T

impl<'de> IntoDeserializer<'de, ValueError> for Value {
    type Deserializer = Value;
    fn into_deserializer(self) -> Value {
        self
    }
}

pub(super) struct SeqDe(std::vec::IntoIter<Value>);

impl<'de> de::SeqAccess<'de> for SeqDe {
    type Error = ValueError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        match self.0.next() {
            Some(v) => seed.deserialize(v).map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

pub(super) struct MapDe {
    it: std::vec::IntoIter<(Value, Value)>,
    value: Option<Value>,
}

impl<'de> de::MapAccess<'de> for MapDe {
    type Error = ValueError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ValueError> {
        match self.it.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ValueError> {
        seed.deserialize(self.value.take().unwrap_or_default())
    }
}

pub(super) struct EnumDe {
    name: String,
    content: Option<Value>,
}

impl<'de> de::EnumAccess<'de> for EnumDe {
    type Error = ValueError;
    type Variant = VariantDe;
    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantDe), ValueError> {
        let v = seed.deserialize(Value::Str(self.name))?;
        Ok((v, VariantDe(self.content)))
    }
}

pub(super) struct VariantDe(Option<Value>);

impl<'de> de::VariantAccess<'de> for VariantDe {
    type Error = ValueError;
    fn unit_variant(self) -> Result<(), ValueError> {
        Ok(())
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ValueError> {
        seed.deserialize(self.0.unwrap_or_default())
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, ValueError> {
        self.0.unwrap_or_default().deserialize_any(v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ValueError> {
        self.0.unwrap_or_default().deserialize_any(v)
    }
}

impl<'de> Deserializer<'de> for Value {
    type Error = ValueError;

    fn is_human_readable(&self) -> bool {
        true
    }

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        match self {
            Value::None => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(b),
            Value::Int(i) => {
                if let Ok(x) = i64::try_from(i) {
                    v.visit_i64(x)
                } else if let Ok(x) = u64::try_from(i) {
                    v.visit_u64(x)
                } else {
                    v.visit_i128(i)
                }
            }
            Value::Float(f) => v.visit_f64(f),
            Value::Str(s) => v.visit_string(s),
            Value::Bytes(b) => v.visit_byte_buf(b.into_vec()),
            Value::List(items) | Value::Tuple(items) => v.visit_seq(SeqDe(items.into_iter())),
            Value::Dict(items) => v.visit_map(MapDe {
                it: items.into_iter(),
                value: None,
            }),
            Value::Variant(_, Some(c)) => c.deserialize_any(v),
            Value::Variant(n, None) => v.visit_string(n),
            Value::Proxy(t) => v.visit_newtype_struct(token_value(&t)?),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        match self {
            Value::None => v.visit_none(),
            other => v.visit_some(other),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        v.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, ValueError> {
        v.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            Value::Proxy(t) if name == PROXY_MAGIC => v.visit_newtype_struct(token_value(&t)?),
            other if name == PROXY_MAGIC => Err(ValueError(format!(
                "expected a proxy, found {}",
                other.type_name()
            ))),
            other => v.visit_newtype_struct(other),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            Value::Variant(name, content) => v.visit_enum(EnumDe {
                name,
                content: content.map(|b| *b),
            }),
            Value::Str(name) => v.visit_enum(EnumDe {
                name,
                content: None,
            }),
            Value::Dict(mut items) if items.len() == 1 => {
                let (k, c) = items.remove(0);
                match k {
                    Value::Str(name) => v.visit_enum(EnumDe {
                        name,
                        content: Some(c),
                    }),
                    other => Err(ValueError(format!(
                        "expected an enum variant name, found {}",
                        other.type_name()
                    ))),
                }
            }
            other => Err(ValueError(format!(
                "expected an enum, found {}",
                other.type_name()
            ))),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// A token as the natural-form value its `Deserialize` reads.
pub(super) fn token_value(t: &Token) -> Result<Value, ValueError> {
    t.serialize(ValueSerializer)
}
