//! The bus message and its binary form, byte-compatible with BentoCache 1.x
//! (SPEC §6/§7):
//!
//! ```text
//! sender id      24 bytes
//! kind           1 byte     Set 1, Clear 2, Delete 3, Expire 4
//! namespace      u32 BE length + UTF-8 bytes   e.g. "bentocache" or "bentocache:posts"
//! keys           (u32 BE length + UTF-8 bytes)*   until the end of the payload
//! ```
//!
//! The decoder treats every payload as hostile: it never panics, never
//! allocates more than the bytes actually present, and reports what was
//! wrong with a [`DecodeError`].

use rand::RngExt as _;
use std::fmt;

/// Length of a sender id in bytes.
pub const SENDER_ID_LEN: usize = 24;

/// Prefix of every bus channel; the store name follows.
pub const CHANNEL_PREFIX: &str = "bentocache.notifications:";

/// The channel a store's notifications travel on:
/// `bentocache.notifications:<store name>`.
pub fn channel_name(store: &str) -> String {
    format!("{CHANNEL_PREFIX}{store}")
}

/// Identifies the node that published a message, so a node can ignore its
/// own messages when the bus echoes them back.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SenderId([u8; SENDER_ID_LEN]);

impl SenderId {
    /// A fresh id: 24 random ASCII alphanumerics (BentoCache uses a random
    /// id string of the same length).
    pub fn random() -> Self {
        let mut bytes = [0u8; SENDER_ID_LEN];
        for (byte, random) in bytes.iter_mut().zip(rand::rng().sample_iter(rand::distr::Alphanumeric)) {
            *byte = random;
        }
        SenderId(bytes)
    }

    /// An id made of exactly these bytes.
    pub const fn from_bytes(bytes: [u8; SENDER_ID_LEN]) -> Self {
        SenderId(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; SENDER_ID_LEN] {
        &self.0
    }
}

impl fmt::Debug for SenderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SenderId({})", String::from_utf8_lossy(&self.0))
    }
}

/// What happened to the keys of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Keys were written elsewhere: the local copy is stale.
    Set,
    /// The whole namespace was cleared.
    Clear,
    /// Keys were deleted.
    Delete,
    /// Keys were logically expired.
    Expire,
}

impl MessageKind {
    /// The type byte on the wire.
    pub const fn to_byte(self) -> u8 {
        match self {
            MessageKind::Set => 1,
            MessageKind::Clear => 2,
            MessageKind::Delete => 3,
            MessageKind::Expire => 4,
        }
    }

    /// The kind of a type byte, if it is one.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(MessageKind::Set),
            2 => Some(MessageKind::Clear),
            3 => Some(MessageKind::Delete),
            4 => Some(MessageKind::Expire),
            _ => None,
        }
    }
}

/// One notification: which keys of which namespace changed, and how.
/// Values never travel on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BusMessage {
    /// What happened.
    pub kind: MessageKind,
    /// The full key prefix of the cache handle, e.g. `bentocache` or
    /// `bentocache:posts`.
    pub namespace: String,
    /// The keys, relative to `namespace`; empty for [`MessageKind::Clear`].
    pub keys: Vec<String>,
}

impl BusMessage {
    /// A message of `kind` about `keys` in `namespace`.
    pub fn new(kind: MessageKind, namespace: impl Into<String>, keys: Vec<String>) -> Self {
        BusMessage { kind, namespace: namespace.into(), keys }
    }

    /// `keys` were set in `namespace`.
    pub fn set(namespace: impl Into<String>, keys: Vec<String>) -> Self {
        Self::new(MessageKind::Set, namespace, keys)
    }

    /// `keys` were deleted in `namespace`.
    pub fn delete(namespace: impl Into<String>, keys: Vec<String>) -> Self {
        Self::new(MessageKind::Delete, namespace, keys)
    }

    /// `keys` were logically expired in `namespace`.
    pub fn expire(namespace: impl Into<String>, keys: Vec<String>) -> Self {
        Self::new(MessageKind::Expire, namespace, keys)
    }

    /// `namespace` was cleared.
    pub fn clear(namespace: impl Into<String>) -> Self {
        Self::new(MessageKind::Clear, namespace, Vec::new())
    }
}

/// Why a payload is not a valid bus message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload ended inside a field.
    #[error("bus message truncated in the {field}: needs {needed} more bytes at offset {offset}, {available} left")]
    Truncated {
        /// Which field was being read.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// The type byte is not 1–4.
    #[error("unknown bus message type byte {0}")]
    UnknownKind(u8),
    /// A string field is not UTF-8.
    #[error("bus message {field} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which field.
        field: &'static str,
        /// Where it starts.
        offset: usize,
    },
}

/// The binary form of `message` sent by `sender`.
///
/// Panics only if a namespace or key is 4 GiB or longer, which no backend
/// accepts as a key anyway.
pub fn encode(sender: &SenderId, message: &BusMessage) -> Vec<u8> {
    let size =
        SENDER_ID_LEN + 1 + 4 + message.namespace.len() + message.keys.iter().map(|key| 4 + key.len()).sum::<usize>();
    let mut payload = Vec::with_capacity(size);
    payload.extend_from_slice(sender.as_bytes());
    payload.push(message.kind.to_byte());
    push_string(&mut payload, &message.namespace);
    for key in &message.keys {
        push_string(&mut payload, key);
    }
    payload
}

fn push_string(payload: &mut Vec<u8>, value: &str) {
    let length = u32::try_from(value.len()).expect("bus keys and namespaces are shorter than 4 GiB");
    payload.extend_from_slice(&length.to_be_bytes());
    payload.extend_from_slice(value.as_bytes());
}

/// Parse a payload into its sender and message.
pub fn decode(payload: &[u8]) -> Result<(SenderId, BusMessage), DecodeError> {
    let mut reader = Reader { payload, offset: 0 };
    let sender: [u8; SENDER_ID_LEN] =
        reader.take("sender id", SENDER_ID_LEN)?.try_into().expect("took exactly 24 bytes");
    let kind_byte = reader.take("type byte", 1)?[0];
    let kind = MessageKind::from_byte(kind_byte).ok_or(DecodeError::UnknownKind(kind_byte))?;
    let namespace = reader.string("namespace")?;
    // Each key needs at least its 4-byte length, so this bound comes from
    // bytes actually present, not from anything the payload claims.
    let mut keys = Vec::with_capacity(reader.remaining() / 4);
    while reader.remaining() > 0 {
        keys.push(reader.string("key")?);
    }
    Ok((SenderId(sender), BusMessage { kind, namespace, keys }))
}

struct Reader<'a> {
    payload: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.payload.len() - self.offset
    }

    fn take(&mut self, field: &'static str, needed: usize) -> Result<&'a [u8], DecodeError> {
        let available = self.remaining();
        if needed > available {
            return Err(DecodeError::Truncated { field, offset: self.offset, needed, available });
        }
        let bytes = &self.payload[self.offset..self.offset + needed];
        self.offset += needed;
        Ok(bytes)
    }

    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let length: [u8; 4] = self.take(field, 4)?.try_into().expect("took exactly 4 bytes");
        // A length that does not fit in usize cannot fit in the payload
        // either; `take` rejects it before anything is allocated.
        let length = usize::try_from(u32::from_be_bytes(length)).unwrap_or(usize::MAX);
        let offset = self.offset;
        let bytes = self.take(field, length)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(DecodeError::InvalidUtf8 { field, offset }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: SenderId = SenderId::from_bytes(*b"abcdefghijklmnopqrstuvwx");

    fn with_id(rest: &[u8]) -> Vec<u8> {
        let mut payload = ID.as_bytes().to_vec();
        payload.extend_from_slice(rest);
        payload
    }

    #[test]
    fn set_matches_the_bentocache_sample() {
        let message = BusMessage::set("bentocache", vec!["user:1".into()]);
        let expected = with_id(b"\x01\x00\x00\x00\x0abentocache\x00\x00\x00\x06user:1");
        assert_eq!(encode(&ID, &message), expected);
        assert_eq!(decode(&expected), Ok((ID, message)));
    }

    #[test]
    fn namespace_clear_matches_the_bentocache_sample_and_has_no_keys() {
        let message = BusMessage::clear("bentocache:posts");
        let expected = with_id(b"\x02\x00\x00\x00\x10bentocache:posts");
        assert_eq!(encode(&ID, &message), expected);
        let (_, decoded) = decode(&expected).expect("valid");
        assert_eq!(decoded, message);
        assert!(decoded.keys.is_empty());
    }

    #[test]
    fn delete_and_expire_type_bytes() {
        let delete = encode(&ID, &BusMessage::delete("bentocache", vec!["k".into()]));
        let expire = encode(&ID, &BusMessage::expire("bentocache", vec!["k".into()]));
        assert_eq!(delete[SENDER_ID_LEN], 3);
        assert_eq!(expire[SENDER_ID_LEN], 4);
    }

    #[test]
    fn utf8_and_emoji_keys_are_length_prefixed_in_bytes() {
        let message = BusMessage::delete("bentocache", vec!["café".into(), "🍱".into()]);
        let expected =
            with_id(b"\x03\x00\x00\x00\x0abentocache\x00\x00\x00\x05caf\xc3\xa9\x00\x00\x00\x04\xf0\x9f\x8d\xb1");
        assert_eq!(encode(&ID, &message), expected);
        assert_eq!(decode(&expected).expect("valid").1, message);
    }

    #[test]
    fn double_colons_in_keys_survive() {
        let message = BusMessage::set("bentocache:posts", vec!["a::b".into(), "::".into(), "".into()]);
        let payload = encode(&ID, &message);
        assert_eq!(&payload[SENDER_ID_LEN + 1 + 4 + 16..][..8], b"\x00\x00\x00\x04a::b");
        assert_eq!(decode(&payload).expect("valid").1, message);
    }

    #[test]
    fn several_keys_in_order() {
        let message = BusMessage::expire("bentocache", vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(decode(&encode(&ID, &message)).expect("valid").1.keys, ["a", "b", "c"]);
    }

    #[test]
    fn random_sender_ids_are_24_alphanumerics_and_differ() {
        let (a, b) = (SenderId::random(), SenderId::random());
        assert!(a.as_bytes().iter().all(u8::is_ascii_alphanumeric));
        assert_ne!(a, b);
    }

    #[test]
    fn channel_name_is_bentocache_compatible() {
        assert_eq!(channel_name("default"), "bentocache.notifications:default");
    }

    #[test]
    fn truncated_sender_id_is_an_error() {
        assert!(matches!(decode(b"short"), Err(DecodeError::Truncated { field: "sender id", .. })));
        assert!(matches!(decode(b""), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn missing_type_byte_is_an_error() {
        assert!(matches!(decode(&with_id(b"")), Err(DecodeError::Truncated { field: "type byte", .. })));
    }

    #[test]
    fn unknown_type_byte_is_an_error() {
        assert_eq!(decode(&with_id(b"\x05\x00\x00\x00\x00")), Err(DecodeError::UnknownKind(5)));
        assert_eq!(decode(&with_id(b"\x00\x00\x00\x00\x00")), Err(DecodeError::UnknownKind(0)));
    }

    #[test]
    fn huge_declared_length_is_rejected_without_allocating() {
        let error = decode(&with_id(b"\x01\xff\xff\xff\xffbentocache")).unwrap_err();
        assert_eq!(
            error,
            DecodeError::Truncated {
                field: "namespace",
                offset: SENDER_ID_LEN + 5,
                needed: 0xffff_ffff,
                available: 10
            }
        );
        let error = decode(&with_id(b"\x01\x00\x00\x00\x01n\x7f\xff\xff\xffk")).unwrap_err();
        assert!(matches!(error, DecodeError::Truncated { field: "key", needed: 0x7fff_ffff, .. }));
    }

    #[test]
    fn partial_key_length_is_an_error() {
        let error = decode(&with_id(b"\x01\x00\x00\x00\x01n\x00\x00")).unwrap_err();
        assert!(matches!(error, DecodeError::Truncated { field: "key", needed: 4, available: 2, .. }));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let error = decode(&with_id(b"\x01\x00\x00\x00\x01\xff")).unwrap_err();
        assert_eq!(error, DecodeError::InvalidUtf8 { field: "namespace", offset: SENDER_ID_LEN + 5 });
        let error = decode(&with_id(b"\x01\x00\x00\x00\x01n\x00\x00\x00\x02\xc3\x28")).unwrap_err();
        assert!(matches!(error, DecodeError::InvalidUtf8 { field: "key", .. }));
    }

    fn kinds() -> impl Strategy<Value = MessageKind> {
        prop_oneof![
            Just(MessageKind::Set),
            Just(MessageKind::Clear),
            Just(MessageKind::Delete),
            Just(MessageKind::Expire)
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn arbitrary_tails_after_a_valid_header_never_panic(
            kind in 0u8..6,
            tail in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut payload = with_id(&[kind]);
            payload.extend_from_slice(&tail);
            let _ = decode(&payload);
        }

        #[test]
        fn encode_then_decode_round_trips(
            id in proptest::array::uniform24(any::<u8>()),
            kind in kinds(),
            namespace in "\\PC{0,40}",
            keys in proptest::collection::vec("\\PC{0,40}", 0..8),
        ) {
            let sender = SenderId::from_bytes(id);
            let message = BusMessage::new(kind, namespace, keys);
            prop_assert_eq!(decode(&encode(&sender, &message)), Ok((sender, message)));
        }

        #[test]
        fn every_strict_prefix_of_a_valid_payload_is_rejected_or_drops_keys(
            keys in proptest::collection::vec("[a-z:]{0,6}", 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let message = BusMessage::set("bentocache", keys);
            let payload = encode(&ID, &message);
            let cut = cut.index(payload.len());
            if let Ok((_, decoded)) = decode(&payload[..cut]) {
                // A cut exactly between two keys is a valid, shorter message.
                prop_assert!(decoded.keys.len() < message.keys.len());
            }
        }
    }
}
