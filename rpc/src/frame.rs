//! Framing: a `u32` little-endian payload length, then the payload (one postcard-encoded
//! message). Readers refuse a length over their maximum before reading the payload.

use std::io::{ErrorKind, Read, Write};

use serde::Serialize;

use crate::error::{Result, RpcError};

/// Bytes of the length prefix.
pub const PREFIX: usize = 4;

/// Appends one frame holding `msg` to `buf` (which keeps its capacity between frames: encoding
/// into a reused buffer allocates nothing once it is large enough). Fails with
/// [`RpcError::FrameTooLarge`] (and leaves `buf` as it was) when the payload exceeds `max`.
pub fn encode_into<T: Serialize>(msg: &T, buf: &mut Vec<u8>, max: u32) -> Result<()> {
    let start = buf.len();
    buf.extend_from_slice(&[0; PREFIX]);
    let encoded = postcard::to_extend(msg, std::mem::take(buf));
    *buf = match encoded {
        Ok(b) => b,
        Err(e) => return Err(RpcError::Encode(e.to_string())),
    };
    let len = buf.len() - start - PREFIX;
    if len > max as usize {
        buf.truncate(start);
        return Err(RpcError::FrameTooLarge { len: len as u64, max });
    }
    buf[start..start + PREFIX].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Writes one frame holding `msg` (through a fresh buffer).
pub fn write_msg<T: Serialize>(w: &mut impl Write, msg: &T, max: u32) -> Result<()> {
    let mut buf = Vec::new();
    encode_into(msg, &mut buf, max)?;
    w.write_all(&buf)?;
    Ok(())
}

/// Reads one frame's payload into `buf` (cleared first). `Ok(false)`: the stream ended cleanly
/// before a frame began. A length over `max` is [`RpcError::FrameTooLarge`] (nothing more is
/// read); a stream that ends inside a frame is [`RpcError::Truncated`].
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>, max: u32) -> Result<bool> {
    let mut prefix = [0u8; PREFIX];
    let mut got = 0;
    while got < PREFIX {
        match r.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(RpcError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_le_bytes(prefix);
    if len > max {
        return Err(RpcError::FrameTooLarge { len: len.into(), max });
    }
    buf.clear();
    buf.resize(len as usize, 0);
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => return Err(RpcError::Truncated),
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Decodes a payload as one message; trailing bytes are an error.
pub fn decode<'a, T: serde::Deserialize<'a>>(payload: &'a [u8]) -> Result<T> {
    match postcard::take_from_bytes(payload) {
        Ok((msg, [])) => Ok(msg),
        Ok((_, rest)) => Err(RpcError::Decode(format!("{} bytes after the message", rest.len()))),
        Err(e) => Err(RpcError::Decode(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientMsg, ServerMsg};
    use std::borrow::Cow;

    #[test]
    fn frames_round_trip_and_refuse_what_they_must() {
        let msg = ClientMsg::Ping { id: 7 };
        let mut buf = Vec::new();
        encode_into(&msg, &mut buf, 1024).unwrap();
        assert_eq!(&buf[..4], &(buf.len() as u32 - 4).to_le_bytes());
        let mut payload = Vec::new();
        assert!(read_frame(&mut &buf[..], &mut payload, 1024).unwrap());
        assert_eq!(decode::<ClientMsg>(&payload).unwrap(), msg);
        // Clean end, truncated prefix, truncated payload, over the maximum.
        assert!(!read_frame(&mut &[][..], &mut payload, 1024).unwrap());
        assert!(matches!(
            read_frame(&mut &buf[..2], &mut payload, 1024),
            Err(RpcError::Truncated)
        ));
        assert!(matches!(
            read_frame(&mut &buf[..buf.len() - 1], &mut payload, 1024),
            Err(RpcError::Truncated)
        ));
        let huge = (2000u32).to_le_bytes();
        assert!(matches!(
            read_frame(&mut &huge[..], &mut payload, 1024),
            Err(RpcError::FrameTooLarge { len: 2000, max: 1024 })
        ));
        // Trailing bytes, an unknown variant, garbage.
        let mut extra = payload.clone();
        extra.push(0);
        assert!(matches!(decode::<ClientMsg>(&extra), Err(RpcError::Decode(_))));
        assert!(matches!(decode::<ClientMsg>(&[200]), Err(RpcError::Decode(_))));
        assert!(matches!(
            decode::<ClientMsg>(&[1, 0xff, 0xff]),
            Err(RpcError::Decode(_))
        ));
        // A message over the maximum is refused and leaves the buffer as it was.
        buf.clear();
        let big = ServerMsg::Text {
            id: 1,
            text: "x".repeat(100),
        };
        assert!(matches!(
            encode_into(&big, &mut buf, 50),
            Err(RpcError::FrameTooLarge { .. })
        ));
        assert!(buf.is_empty());
        // Borrowed token frames decode without copying and equal the owned form.
        let tok = ServerMsg::Token {
            id: 3,
            text: Cow::Borrowed("héllo"),
            tokens: Cow::Owned(vec![1, 2]),
        };
        encode_into(&tok, &mut buf, 1024).unwrap();
        assert_eq!(decode::<ServerMsg>(&buf[4..]).unwrap().into_owned(), tok.into_owned());
    }
}
