//! The on-disk format of one entry file.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "BNTO"
//!      4     1  format version (1)
//!      5     8  expires_at, ms since the Unix epoch, little endian; 0 = never
//!     13     4  key length in bytes, little endian
//!     17     8  value length in bytes, little endian
//!     25     k  the stored key (`prefix:key`, UTF-8)
//!   25+k     v  the value
//! ```
//!
//! The full stored key lives in the file, so the file name (a hash) never
//! has to be reversed, and a reader can check that the file really holds
//! the key it asked for. A file whose length disagrees with its header
//! (empty, truncated, padded) is corrupt and reads as missing.

use std::io::{self, Read};

const MAGIC: &[u8; 4] = b"BNTO";
const VERSION: u8 = 1;
/// Size of the fixed part of the header, before the key.
pub(crate) const HEADER_LEN: usize = 25;

/// The decoded head of an entry file: everything but the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryHead {
    /// The stored key this file belongs to.
    pub key: String,
    /// Expiry in ms since the Unix epoch; 0 = never.
    pub expires_at: u64,
    /// Length of the value that follows the key.
    pub value_len: u64,
}

impl EntryHead {
    /// True while the entry may be returned at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at == 0 || now_ms < self.expires_at
    }
}

/// The header and key bytes written before the value.
pub(crate) fn encode_head(key: &str, expires_at: u64, value_len: usize) -> Vec<u8> {
    let mut head = Vec::with_capacity(HEADER_LEN + key.len());
    head.extend_from_slice(MAGIC);
    head.push(VERSION);
    head.extend_from_slice(&expires_at.to_le_bytes());
    head.extend_from_slice(&(key.len() as u32).to_le_bytes());
    head.extend_from_slice(&(value_len as u64).to_le_bytes());
    head.extend_from_slice(key.as_bytes());
    head
}

/// Read the head of a file of `file_len` bytes. `Ok(None)` means the file
/// is not a valid entry (bad magic, unknown version, lengths that do not add
/// up to `file_len`, non-UTF-8 key).
pub(crate) fn read_head(reader: &mut impl Read, file_len: u64) -> io::Result<Option<EntryHead>> {
    if file_len < HEADER_LEN as u64 {
        return Ok(None);
    }
    let mut fixed = [0u8; HEADER_LEN];
    if !read_fully(reader, &mut fixed)? {
        return Ok(None);
    }
    if &fixed[0..4] != MAGIC || fixed[4] != VERSION {
        return Ok(None);
    }
    let expires_at = u64::from_le_bytes(fixed[5..13].try_into().expect("8-byte slice"));
    let key_len = u32::from_le_bytes(fixed[13..17].try_into().expect("4-byte slice"));
    let value_len = u64::from_le_bytes(fixed[17..25].try_into().expect("8-byte slice"));
    let expected_len = (HEADER_LEN as u64).checked_add(u64::from(key_len)).and_then(|n| n.checked_add(value_len));
    if expected_len != Some(file_len) {
        return Ok(None);
    }
    let mut key = vec![0u8; key_len as usize];
    if !read_fully(reader, &mut key)? {
        return Ok(None);
    }
    let Ok(key) = String::from_utf8(key) else {
        return Ok(None);
    };
    Ok(Some(EntryHead { key, expires_at, value_len }))
}

/// Read the value that follows a head; `Ok(None)` if the file is shorter
/// than its head claims (it changed under us: treat as corrupt).
pub(crate) fn read_value(reader: &mut impl Read, head: &EntryHead) -> io::Result<Option<Vec<u8>>> {
    let Ok(len) = usize::try_from(head.value_len) else {
        return Ok(None);
    };
    let mut value = vec![0u8; len];
    Ok(read_fully(reader, &mut value)?.then_some(value))
}

/// `read_exact`, reporting a short read as `false` instead of an error.
fn read_fully(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buffer) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(key: &str, expires_at: u64, value: &[u8]) -> Vec<u8> {
        let mut bytes = encode_head(key, expires_at, value.len());
        bytes.extend_from_slice(value);
        bytes
    }

    #[test]
    fn round_trip() {
        let bytes = encode("users:1", 42, b"\x00\xffvalue");
        let mut reader = bytes.as_slice();
        let head = read_head(&mut reader, bytes.len() as u64).unwrap().unwrap();
        assert_eq!(head, EntryHead { key: "users:1".into(), expires_at: 42, value_len: 7 });
        assert_eq!(read_value(&mut reader, &head).unwrap().unwrap(), b"\x00\xffvalue");
    }

    #[test]
    fn empty_value_is_a_value() {
        let bytes = encode("k", 0, b"");
        let mut reader = bytes.as_slice();
        let head = read_head(&mut reader, bytes.len() as u64).unwrap().unwrap();
        assert!(head.is_live(u64::MAX));
        assert_eq!(read_value(&mut reader, &head).unwrap().unwrap(), b"");
    }

    #[test]
    fn truncated_empty_and_garbage_are_corrupt() {
        let bytes = encode("k", 0, b"value");
        for cut in [0, 3, HEADER_LEN, bytes.len() - 1] {
            assert_eq!(read_head(&mut &bytes[..cut], cut as u64).unwrap(), None, "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert_eq!(read_head(&mut padded.as_slice(), padded.len() as u64).unwrap(), None);
        let garbage = vec![7u8; 100];
        assert_eq!(read_head(&mut garbage.as_slice(), 100).unwrap(), None);
    }

    #[test]
    fn expiry_is_exclusive() {
        let head = EntryHead { key: "k".into(), expires_at: 100, value_len: 0 };
        assert!(head.is_live(99));
        assert!(!head.is_live(100));
    }
}
