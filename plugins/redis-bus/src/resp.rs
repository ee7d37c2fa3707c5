//! The few RESP2 frames a pub/sub connection carries, read in place.
//!
//! A subscribed RESP2 connection only ever receives flat replies: simple
//! strings (`+OK` of AUTH, `+PONG` before any subscription), errors,
//! integers, bulk strings and arrays of at most four of those (`message`,
//! `pmessage`, `subscribe`/`unsubscribe` confirmations, `pong`). This
//! reader parses exactly that without allocating: a message's channel and
//! payload are slices of the read buffer, copied once when handed to the
//! handler. Anything else (nested arrays, RESP3 types) is a protocol error,
//! which the subscriber treats as a broken connection.

use std::fmt;

/// The most items an array frame may have here (`pmessage` has four).
const MAX_ITEMS: usize = 4;

/// One scalar RESP2 value, borrowed from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// `+text`
    Simple(&'a [u8]),
    /// `-text`
    Error(&'a [u8]),
    /// `:n`
    Integer(i64),
    /// `$n` and its bytes; `None` for the null bulk string `$-1`.
    Bulk(Option<&'a [u8]>),
}

/// One complete frame: a scalar, or a flat array of scalars (`None` for
/// the null array `*-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A scalar reply.
    Item(Item<'a>),
    /// An array of up to four scalars.
    Array(Items<'a>),
}

/// The items of an array frame.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Items<'a> {
    items: [Item<'a>; MAX_ITEMS],
    len: usize,
}

impl<'a> Items<'a> {
    /// The items, in order.
    pub fn as_slice(&self) -> &[Item<'a>] {
        &self.items[..self.len]
    }
}

impl fmt::Debug for Items<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Bytes a pub/sub connection cannot have sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected reply on the pub/sub connection: {}", self.0)
    }
}

/// Parse the frame at the start of `buffer`: `Ok(None)` when it is not
/// complete yet, else the frame and how many bytes it took.
pub fn parse(buffer: &[u8]) -> Result<Option<(Frame<'_>, usize)>, ProtocolError> {
    let Some((first, mut offset)) = line(buffer, 0)? else { return Ok(None) };
    if first.first() != Some(&b'*') {
        return Ok(item_from(buffer, first, offset)?.map(|(item, end)| (Frame::Item(item), end)));
    }
    let count = integer(&first[1..])?;
    let count = match usize::try_from(count) {
        Ok(count) if count <= MAX_ITEMS => count,
        // The null array: no reply of a pub/sub connection, but harmless.
        Err(_) if count == -1 => 0,
        _ => return Err(ProtocolError(format!("an array of {count} items"))),
    };
    let mut items = [Item::Bulk(None); MAX_ITEMS];
    for slot in items.iter_mut().take(count) {
        let Some((header, after_header)) = line(buffer, offset)? else { return Ok(None) };
        if header.first() == Some(&b'*') {
            return Err(ProtocolError("a nested array".to_string()));
        }
        let Some((item, end)) = item_from(buffer, header, after_header)? else { return Ok(None) };
        *slot = item;
        offset = end;
    }
    Ok(Some((Frame::Array(Items { items, len: count }), offset)))
}

/// The scalar whose header line is `header` (ending at `after_header`).
fn item_from<'a>(
    buffer: &'a [u8],
    header: &'a [u8],
    after_header: usize,
) -> Result<Option<(Item<'a>, usize)>, ProtocolError> {
    let (kind, rest) = header.split_first().ok_or_else(|| ProtocolError("an empty line".to_string()))?;
    let item = match kind {
        b'+' => Item::Simple(rest),
        b'-' => Item::Error(rest),
        b':' => Item::Integer(integer(rest)?),
        b'$' => {
            let length = integer(rest)?;
            if length == -1 {
                return Ok(Some((Item::Bulk(None), after_header)));
            }
            let length =
                usize::try_from(length).map_err(|_| ProtocolError(format!("a bulk string of length {length}")))?;
            let end = after_header.checked_add(length).and_then(|end| end.checked_add(2));
            let Some(end) = end else { return Err(ProtocolError("a bulk string too long".to_string())) };
            if buffer.len() < end {
                return Ok(None);
            }
            if &buffer[end - 2..end] != b"\r\n" {
                return Err(ProtocolError("a bulk string not ended by CRLF".to_string()));
            }
            return Ok(Some((Item::Bulk(Some(&buffer[after_header..end - 2])), end)));
        }
        other => return Err(ProtocolError(format!("a frame of type {:?}", char::from(*other)))),
    };
    Ok(Some((item, after_header)))
}

/// The line starting at `start` without its CRLF, and where the next one
/// starts; `None` until the CRLF has arrived.
fn line(buffer: &[u8], start: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = &buffer[start.min(buffer.len())..];
    match rest.iter().position(|&byte| byte == b'\n') {
        Some(newline) if newline > 0 && rest[newline - 1] == b'\r' => {
            Ok(Some((&rest[..newline - 1], start + newline + 1)))
        }
        Some(_) => Err(ProtocolError("a line not ended by CRLF".to_string())),
        None => Ok(None),
    }
}

fn integer(text: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| ProtocolError(format!("{:?} is not an integer", String::from_utf8_lossy(text))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(frame: Frame<'_>) -> Vec<Item<'_>> {
        match frame {
            Frame::Array(items) => items.as_slice().to_vec(),
            Frame::Item(item) => panic!("expected an array, got {item:?}"),
        }
    }

    #[test]
    fn a_message_is_three_bulk_strings() {
        let wire = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\na\r\nb\0\r\n";
        let (frame, used) = parse(wire).unwrap().unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(
            items(frame),
            [Item::Bulk(Some(b"message")), Item::Bulk(Some(b"ch")), Item::Bulk(Some(b"a\r\nb\0"))]
        );
    }

    #[test]
    fn confirmations_pongs_and_errors() {
        let (frame, _) = parse(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n").unwrap().unwrap();
        assert_eq!(items(frame)[2], Item::Integer(1));
        let (frame, _) = parse(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n").unwrap().unwrap();
        assert_eq!(items(frame), [Item::Bulk(Some(b"pong")), Item::Bulk(Some(b""))]);
        assert_eq!(parse(b"+PONG\r\n").unwrap(), Some((Frame::Item(Item::Simple(b"PONG")), 7)));
        assert_eq!(parse(b"-ERR no\r\n").unwrap(), Some((Frame::Item(Item::Error(b"ERR no")), 9)));
        let (frame, _) = parse(b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n").unwrap().unwrap();
        assert_eq!(items(frame)[1], Item::Bulk(None));
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete() {
        let wire = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nabc\r\n+OK\r\n";
        let first = wire.len() - 5;
        for cut in 0..first {
            assert_eq!(parse(&wire[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (_, used) = parse(wire).unwrap().unwrap();
        assert_eq!(used, first);
        assert_eq!(parse(&wire[used..]).unwrap(), Some((Frame::Item(Item::Simple(b"OK")), 5)));
    }

    #[test]
    fn what_pub_sub_never_sends_is_refused() {
        assert!(parse(b"*5\r\n").is_err());
        assert!(parse(b"*1\r\n*1\r\n:1\r\n").is_err());
        assert!(parse(b"%1\r\n").is_err());
        assert!(parse(b"$3\r\nabcd\r\n").is_err());
        assert!(parse(b":x\r\n").is_err());
        assert!(parse(b"+OK\n").is_err());
    }
}
