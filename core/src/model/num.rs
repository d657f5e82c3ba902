//! Numbers and enums as Istio's wire format accepts them: proto3 JSON takes integers and
//! floats either as numbers or as numeric strings, and enums by name or by number.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// An integer type a proto field can have.
pub trait ProtoInt: Sized + Copy {
    const NAME: &'static str;
    fn from_i128(v: i128) -> Option<Self>;
}

macro_rules! proto_int {
    ($($t:ty => $name:literal),*) => {$(
        impl ProtoInt for $t {
            const NAME: &'static str = $name;
            fn from_i128(v: i128) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
        }
    )*};
}
proto_int!(u32 => "uint32", i32 => "int32", u64 => "uint64", i64 => "int64");

struct IntVisitor<T>(PhantomData<T>);

impl<T: ProtoInt> IntVisitor<T> {
    fn check<E: de::Error>(v: i128) -> Result<T, E> {
        T::from_i128(v).ok_or_else(|| E::custom(format!("{v} is out of range for {}", T::NAME)))
    }
}

impl<'de, T: ProtoInt> Visitor<'de> for IntVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer ({})", T::NAME)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Self::check(i128::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Self::check(i128::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        if v.fract() == 0.0 && v.abs() < 1e19 {
            #[allow(clippy::cast_possible_truncation)]
            Self::check(v as i128)
        } else {
            Err(E::custom(format!("{v} is not an integer ({})", T::NAME)))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        match v.trim().parse::<i128>() {
            Ok(n) => Self::check(n),
            Err(_) => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

/// An integer written as a number or a numeric string.
pub fn int<'de, D: Deserializer<'de>, T: ProtoInt>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(IntVisitor(PhantomData))
}

/// An optional integer (a proto wrapper type such as `UInt32Value`); `null` is absent.
pub fn opt_int<'de, D: Deserializer<'de>, T: ProtoInt>(d: D) -> Result<Option<T>, D::Error> {
    #[derive(Deserialize)]
    struct W<T: ProtoInt>(#[serde(deserialize_with = "int")] T);
    Ok(Option::<W<T>>::deserialize(d)?.map(|w| w.0))
}

/// A map of strings to integers (`ports: {http: 80}`).
pub fn map_int<'de, D: Deserializer<'de>, T: ProtoInt>(
    d: D,
) -> Result<BTreeMap<String, T>, D::Error> {
    #[derive(Deserialize)]
    struct W<T: ProtoInt>(#[serde(deserialize_with = "int")] T);
    let m = Option::<BTreeMap<String, W<T>>>::deserialize(d)?.unwrap_or_default();
    Ok(m.into_iter().map(|(k, v)| (k, v.0)).collect())
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        #[allow(clippy::cast_precision_loss)]
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        #[allow(clippy::cast_precision_loss)]
        Ok(v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// A float written as a number or a numeric string.
pub fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(FloatVisitor)
}

/// An optional float (`DoubleValue`).
pub fn opt_float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "float")] f64);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

struct EnumVisitor {
    names: &'static [&'static str],
    type_name: &'static str,
}

impl Visitor<'_> for EnumVisitor {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {}", self.names.join(", "))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        self.names.iter().position(|n| *n == v).ok_or_else(|| {
            E::custom(format!(
                "unknown {} {v:?}, expected one of {}",
                self.type_name,
                self.names.join(", ")
            ))
        })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        usize::try_from(v)
            .ok()
            .filter(|i| *i < self.names.len())
            .ok_or_else(|| E::custom(format!("{v} is not a valid {}", self.type_name)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
        match u64::try_from(v) {
            Ok(u) => self.visit_u64(u),
            Err(_) => Err(E::custom(format!("{v} is not a valid {}", self.type_name))),
        }
    }
}

/// Reads an enum by proto name or number, returning its index in `names`.
pub fn deserialize_enum<'de, D: Deserializer<'de>>(
    d: D,
    names: &'static [&'static str],
    type_name: &'static str,
) -> Result<usize, D::Error> {
    d.deserialize_any(EnumVisitor { names, type_name })
}
