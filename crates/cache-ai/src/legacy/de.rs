//! [`PyValue`] as a serde `Deserializer`, so a decoded Python value becomes the caller's answer
//! type directly (a struct's fields read by name; map order kept for types that keep it).

use serde::de::value::{Error as DeError, MapDeserializer, SeqDeserializer};
use serde::de::{Error as _, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use super::PyValue;

impl<'de> IntoDeserializer<'de, DeError> for PyValue {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::Deserializer<'de> for PyValue {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Self::None => visitor.visit_unit(),
            Self::Bool(b) => visitor.visit_bool(b),
            Self::Int(digits) => {
                if let Ok(i) = digits.parse::<i64>() {
                    visitor.visit_i64(i)
                } else if let Ok(u) = digits.parse::<u64>() {
                    visitor.visit_u64(u)
                } else {
                    // Beyond 64 bits: the float serde_json itself makes of such a number (a
                    // documented loss; Python values are floats or small integers in practice).
                    let approx = digits.parse::<f64>().map_err(DeError::custom)?;
                    visitor.visit_f64(approx)
                }
            }
            Self::Float(f) => visitor.visit_f64(f),
            Self::Str(s) => visitor.visit_string(s),
            Self::List(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Self::Dict(entries) => {
                let mut map = MapDeserializer::new(entries.into_iter());
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self {
            // A unit variant is its name; any other variant a one-member dict, as serde_json
            // writes them.
            Self::Str(variant) => visitor.visit_enum(variant.into_deserializer()),
            Self::Dict(entries) if entries.len() == 1 => {
                visitor.visit_enum(serde::de::value::MapAccessDeserializer::new(
                    MapDeserializer::new(entries.into_iter()),
                ))
            }
            other => Err(DeError::custom(format!(
                "expected an enum variant, found {}",
                other.py_repr().chars().take(40).collect::<String>()
            ))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Self::None => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

impl PyValue {
    /// The value as `T` (for example the cache's answer type).
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`](cache_core::ErrorKind::Serialization) when the value does
    /// not have `T`'s shape.
    pub fn to_typed<T: serde::de::DeserializeOwned>(&self) -> cache_core::Result<T> {
        T::deserialize(self.clone()).map_err(|e| {
            cache_core::Error::new(
                cache_core::ErrorKind::Serialization,
                "the stored Python value does not have the answer's shape",
            )
            .with_source(e)
        })
    }
}
