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
    if is_json(serializer) {
        if let Some(entry) = envelope::decode(bytes) {
            return Ok(entry);
        }
    }
    decode_value(serializer, bytes)
}

/// The JSON entry envelope as Bento and BentoCache write it
/// (`{"value":…,"logicalExpiration":…,"tags":[…],"createdAt":…}`, no
/// whitespace, keys in any order) read by hand: only the value (and
/// non-empty tags) go through serde_json. Anything else — whitespace,
/// escapes in a key, a number that is not plain digits, an unknown or
/// repeated key, a value that does not decode — answers `None`, and the
/// caller decodes the bytes with serde_json as a whole, which then also
/// produces the error.
mod envelope {
    use crate::entry::Entry;
    use serde::de::DeserializeOwned;

    pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<Entry<T>> {
        let mut reader = Reader { bytes, at: 0 };
        reader.expect(b'{')?;
        let (mut value, mut logical_expiration, mut tags, mut created_at) = (None, None, None, None);
        loop {
            reader.expect(b'"')?;
            let name = reader.name()?;
            reader.expect(b':')?;
            match name {
                Name::Value if value.is_none() => value = Some(reader.json::<T>()?),
                Name::LogicalExpiration if logical_expiration.is_none() => {
                    logical_expiration = Some(match reader.peek()? {
                        b'n' => reader.literal(b"null").map(|_| None)?,
                        _ => Some(reader.integer()?),
                    })
                }
                Name::Tags if tags.is_none() => {
                    tags = Some(match reader.literal(b"[]") {
                        Some(()) => Vec::new(),
                        None => reader.json::<Vec<String>>()?,
                    })
                }
                Name::CreatedAt if created_at.is_none() => created_at = Some(reader.integer()?),
                _ => return None,
            }
            match reader.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        // serde_json accepts trailing whitespace and nothing else.
        if !reader.rest().iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        Some(Entry {
            value: value?,
            logical_expiration: logical_expiration.flatten(),
            tags: tags.unwrap_or_default(),
            created_at: created_at.unwrap_or_default(),
        })
    }

    /// The envelope's keys.
    enum Name {
        Value,
        LogicalExpiration,
        Tags,
        CreatedAt,
    }

    struct Reader<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Reader<'a> {
        fn rest(&self) -> &'a [u8] {
            &self.bytes[self.at..]
        }

        fn peek(&self) -> Option<u8> {
            self.bytes.get(self.at).copied()
        }

        fn next(&mut self) -> Option<u8> {
            let byte = self.peek()?;
            self.at += 1;
            Some(byte)
        }

        fn expect(&mut self, byte: u8) -> Option<()> {
            (self.next()? == byte).then_some(())
        }

        fn literal(&mut self, literal: &[u8]) -> Option<()> {
            let found = self.rest().starts_with(literal);
            found.then(|| self.at += literal.len())
        }

        /// One of the envelope's keys after its opening quote, with its
        /// closing quote; `None` for any other key (or an escaped one).
        fn name(&mut self) -> Option<Name> {
            let rest = self.rest();
            let (name, length) = match rest.first()? {
                b'v' if rest.starts_with(b"value\"") => (Name::Value, 6),
                b'l' if rest.starts_with(b"logicalExpiration\"") => (Name::LogicalExpiration, 18),
                b't' if rest.starts_with(b"tags\"") => (Name::Tags, 5),
                b'c' if rest.starts_with(b"createdAt\"") => (Name::CreatedAt, 10),
                _ => return None,
            };
            self.at += length;
            Some(name)
        }

        /// A `u64` written as plain digits (no sign, fraction or exponent).
        fn integer(&mut self) -> Option<u64> {
            let rest = self.rest();
            let mut number = 0u64;
            let mut digits = 0;
            while let Some(digit) = rest.get(digits).map(|byte| byte.wrapping_sub(b'0')).filter(|digit| *digit <= 9) {
                number = number.checked_mul(10)?.checked_add(u64::from(digit))?;
                digits += 1;
            }
            // serde_json rejects a leading zero followed by more digits; a
            // fraction or an exponent makes it another number.
            if digits == 0 || (digits > 1 && rest[0] == b'0') || matches!(rest.get(digits), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            self.at += digits;
            Some(number)
        }

        /// One JSON value of type `V`, through serde_json.
        fn json<V: DeserializeOwned>(&mut self) -> Option<V> {
            let mut values = serde_json::Deserializer::from_slice(self.rest()).into_iter::<V>();
            let value = values.next()?.ok()?;
            self.at += values.byte_offset();
            Some(value)
        }
    }
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
        return Ok(serde_json::from_slice(bytes)?);
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

    /// The hand-read envelope and serde_json agree on `bytes`: the same
    /// entry, or (when the envelope declines) the same outcome anyway.
    fn agrees<T: DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &str) {
        let whole: Result<Entry<T>, _> = serde_json::from_slice(bytes.as_bytes());
        match envelope::decode::<T>(bytes.as_bytes()) {
            Some(fast) => assert_eq!(Some(&fast), whole.as_ref().ok(), "{bytes}"),
            None => assert_eq!(
                decode::<T>(&JsonSerializer, bytes.as_bytes()).ok(),
                whole.ok(),
                "{bytes}: the fallback is serde_json"
            ),
        }
    }

    #[test]
    fn the_envelope_reads_what_serde_json_reads() {
        assert!(
            envelope::decode::<serde_json::Value>(SAMPLE.as_bytes()).is_some(),
            "the canonical form is read by hand"
        );
        agrees::<serde_json::Value>(SAMPLE);
        for bytes in [
            r#"{"value":{"name":"Ada"},"tags":[],"createdAt":5}"#,
            r#"{"value":7,"logicalExpiration":null,"tags":[],"createdAt":5}"#,
            r#"{"createdAt":5,"tags":["a","b\"c"],"value":[1,2],"logicalExpiration":9}"#,
            r#"{"value":"x"}"#,
            r#"{"value":"x","createdAt":18446744073709551615}"#,
            r#"{"value":"x","createdAt":18446744073709551616}"#,
            r#"{"value":"x","createdAt":01}"#,
            r#"{"value":"x","createdAt":1.5}"#,
            r#"{"value":"x","createdAt":1e3}"#,
            r#"{"value":"x","createdAt":-1}"#,
            r#"{"value":"x","createdAt":0}"#,
            r#"{"value":"x","value":"y"}"#,
            r#"{"value":"x","other":1}"#,
            r#"{"val\u0075e":"x"}"#,
            r#"{ "value":"x"}"#,
            r#"{"value":"x"} "#,
            r#"{"value":"x"}x"#,
            r#"{"value":"x","tags":[ ]}"#,
            r#"{"value":"x","tags":null}"#,
            r#"{"tags":[]}"#,
            r#"{}"#,
            r#"{"value":1,}"#,
            r#"{"value":1"#,
            r#""#,
        ] {
            agrees::<serde_json::Value>(bytes);
            agrees::<String>(bytes);
            agrees::<u64>(bytes);
        }
    }

    #[test]
    fn the_envelope_reads_a_struct_value_and_declines_a_value_of_another_type() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct User {
            id: u64,
            name: String,
        }
        let bytes = r#"{"value":{"id":1,"name":"user \"1\""},"logicalExpiration":10,"tags":[],"createdAt":4}"#;
        let entry = envelope::decode::<User>(bytes.as_bytes()).expect("canonical");
        assert_eq!(entry.value, User { id: 1, name: "user \"1\"".into() });
        assert_eq!((entry.logical_expiration, entry.created_at), (Some(10), 4));
        agrees::<User>(bytes);
        assert!(envelope::decode::<u64>(bytes.as_bytes()).is_none());
        assert!(decode::<u64>(&JsonSerializer, bytes.as_bytes()).is_err());
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
}
