//! How entries become bytes for L2: a pluggable [`Serializer`] (JSON by
//! default, producing BentoCache's format). Only the L2 path serializes; L1
//! keeps values decoded.

use crate::entry::Entry;
use crate::error::BoxError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;

/// Turns whole entries into bytes and back. Object-safe through
/// `erased-serde`, so a store can hold any serializer.
///
/// The built-in [`JsonSerializer`] is recognised and called directly (no
/// `erased-serde` dispatch per token), which makes decoding an L2 entry
/// several times cheaper; any other serializer goes through the two
/// methods below.
pub trait Serializer: Any + Send + Sync + 'static {
    /// The bytes of `value` (an [`Entry`]).
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError>;

    /// Build a deserializer over `bytes` and hand it to `visit`, which reads
    /// the entry out of it. Trailing garbage must be an error.
    fn deserialize(
        &self,
        bytes: &[u8],
        visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error>,
    ) -> Result<(), BoxError>;
}

/// JSON, compatible with BentoCache's default serializer.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSerializer;

impl Serializer for JsonSerializer {
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError> {
        let mut bytes = Vec::with_capacity(128);
        let mut serializer = serde_json::Serializer::new(&mut bytes);
        erased_serde::serialize(value, &mut serializer)?;
        Ok(bytes)
    }

    fn deserialize(
        &self,
        bytes: &[u8],
        visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error>,
    ) -> Result<(), BoxError> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        visit(&mut <dyn erased_serde::Deserializer>::erase(&mut deserializer))?;
        deserializer.end()?;
        Ok(())
    }
}

/// True when `serializer` is the built-in JSON one: it is then called
/// monomorphically, with the same output (both go through serde_json).
fn is_json(serializer: &dyn Serializer) -> bool {
    (serializer as &dyn Any).is::<JsonSerializer>()
}

/// Encode `entry` with `serializer`.
pub(crate) fn encode<T: Serialize>(serializer: &dyn Serializer, entry: &Entry<T>) -> Result<Vec<u8>, BoxError> {
    encode_value(serializer, entry)
}

/// Decode an entry of `T` with `serializer`.
pub(crate) fn decode<T: DeserializeOwned>(serializer: &dyn Serializer, bytes: &[u8]) -> Result<Entry<T>, BoxError> {
    decode_value(serializer, bytes)
}

/// Encode a value with `serializer`: a whole entry ([`encode`]), or a bare
/// L1 value written to a local plugin or read as another type.
pub(crate) fn encode_value<T: Serialize>(serializer: &dyn Serializer, value: &T) -> Result<Vec<u8>, BoxError> {
    if is_json(serializer) {
        return Ok(serde_json::to_vec(value)?);
    }
    serializer.serialize(value)
}

/// Decode a `T` with `serializer`: a whole entry ([`decode`]), or a bare
/// L1 value stored as another type or as bytes by a local plugin.
pub(crate) fn decode_value<T: DeserializeOwned>(serializer: &dyn Serializer, bytes: &[u8]) -> Result<T, BoxError> {
    if is_json(serializer) {
        // Checked as UTF-8 once, a word at a time, a str is parsed without
        // validating each of its strings again (serde_json's `from_str`);
        // the result is the same as `from_slice`'s, which still reads
        // (and rejects, with its usual error) what is not UTF-8.
        return Ok(match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::from_str(text)?,
            Err(_) => serde_json::from_slice(bytes)?,
        });
    }
    let mut value = None;
    serializer.deserialize(bytes, &mut |deserializer| {
        value = Some(erased_serde::deserialize::<T>(deserializer)?);
        Ok(())
    })?;
    value.ok_or_else(|| "serializer produced no value".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str =
        r#"{"value":{"name":"Ada"},"logicalExpiration":1795546853391,"tags":["users"],"createdAt":1795546253391}"#;

    #[test]
    fn json_round_trip_is_byte_for_byte() {
        let entry: Entry<serde_json::Value> = decode(&JsonSerializer, SAMPLE.as_bytes()).unwrap();
        assert_eq!(entry.value["name"], "Ada");
        assert_eq!(entry.logical_expiration, Some(1795546853391));
        assert_eq!(encode(&JsonSerializer, &entry).unwrap(), SAMPLE.as_bytes());
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        assert!(decode::<serde_json::Value>(&JsonSerializer, format!("{SAMPLE}x").as_bytes()).is_err());
        assert!(decode::<serde_json::Value>(&Erased, format!("{SAMPLE}x").as_bytes()).is_err());
    }

    /// The JSON serializer seen as "some other serializer": the
    /// erased-serde path the fast path bypasses.
    struct Erased;

    impl Serializer for Erased {
        fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError> {
            JsonSerializer.serialize(value)
        }

        fn deserialize(
            &self,
            bytes: &[u8],
            visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error>,
        ) -> Result<(), BoxError> {
            JsonSerializer.deserialize(bytes, visit)
        }
    }

    #[test]
    fn the_json_fast_path_reads_and_writes_what_the_erased_path_does() {
        assert!(is_json(&JsonSerializer) && !is_json(&Erased));
        let fast: Entry<serde_json::Value> = decode(&JsonSerializer, SAMPLE.as_bytes()).unwrap();
        let erased: Entry<serde_json::Value> = decode(&Erased, SAMPLE.as_bytes()).unwrap();
        assert_eq!(encode(&JsonSerializer, &fast).unwrap(), encode(&Erased, &erased).unwrap());
        let value: u64 = decode_value(&JsonSerializer, b" 7 ").unwrap();
        assert_eq!(value, decode_value::<u64>(&Erased, b" 7 ").unwrap());
        assert!(decode_value::<String>(&JsonSerializer, b"7").is_err());
    }

    #[test]
    fn text_that_is_not_utf8_is_still_rejected() {
        let escaped: String = decode_value(&JsonSerializer, r#""d\u00e9j\u00e0 vu \u2603""#.as_bytes()).unwrap();
        assert_eq!(escaped, decode_value::<String>(&JsonSerializer, "\"déjà vu ☃\"".as_bytes()).unwrap());
        assert_eq!(escaped, "déjà vu ☃");
        assert!(decode_value::<String>(&JsonSerializer, b"\"\xff\"").is_err());
        assert!(decode_value::<String>(&JsonSerializer, br#""\ud800""#).is_err(), "a lone surrogate");
        assert!(decode_value::<serde_json::Value>(&JsonSerializer, b"\"ok\" \xff").is_err(), "trailing bytes");
    }
}
