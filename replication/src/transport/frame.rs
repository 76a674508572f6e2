//! The frame that carries one Raft message of one group after the handshake.
//!
//! ```text
//! +----------------+----------------+-------------+---------------------------+
//! | length: u32 BE | crc32: u32 BE  | group: u64  | raft-rs `Message`         |
//! | (of the rest)  | (over the rest)| BE          | (protobuf)                |
//! +----------------+----------------+-------------+---------------------------+
//! ```
//!
//! The checksum is `crc32fast` over the group and the message. A frame that fails its
//! checksum or does not decode closes the connection (the peer reconnects); Raft
//! tolerates the lost messages.

use bytes::{Buf, BufMut, BytesMut};
use protobuf::Message as _;
use raft::eraftpb::Message;

use super::Envelope;

/// Largest frame accepted (a Raft append carries at most ~1 MiB of entries).
pub const MAX_FRAME_BYTES: usize = 64 << 20;
/// Length, checksum and group.
pub(super) const HEADER_BYTES: usize = 4 + 4 + 8;
/// The smallest length field a frame can have (checksum and group, an empty message).
pub(super) const MIN_FRAME_BYTES: usize = HEADER_BYTES - 4;

/// Encodes one envelope as a frame.
pub fn encode_frame(e: &Envelope, out: &mut BytesMut) -> Result<(), String> {
    let body = e.message.write_to_bytes().map_err(|x| x.to_string())?;
    let len = 4 + 8 + body.len();
    if len > MAX_FRAME_BYTES {
        return Err(format!("message of {len} bytes exceeds the frame limit"));
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&e.group.to_be_bytes());
    hasher.update(&body);
    out.reserve(4 + len);
    out.put_u32(len as u32);
    out.put_u32(hasher.finalize());
    out.put_u64(e.group);
    out.put_slice(&body);
    Ok(())
}

/// Decodes one frame body (after the length): checksum, group, message.
pub fn decode_frame(mut body: &[u8]) -> Result<Envelope, String> {
    if body.len() < MIN_FRAME_BYTES {
        return Err("frame shorter than its header".into());
    }
    let crc = body.get_u32();
    if crc32fast::hash(body) != crc {
        return Err("frame checksum mismatch".into());
    }
    let group = body.get_u64();
    let message = Message::parse_from_bytes(body).map_err(|e| e.to_string())?;
    Ok(Envelope { group, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_detected() {
        let m = Message {
            to: 2,
            from: 1,
            term: 9,
            commit: 77,
            ..Default::default()
        };
        let e = Envelope {
            group: 42,
            message: m,
        };
        let mut buf = BytesMut::new();
        encode_frame(&e, &mut buf).unwrap();
        let body = &buf[4..];
        assert_eq!(decode_frame(body).unwrap(), e);
        for i in 0..body.len() * 8 {
            let mut b = body.to_vec();
            b[i / 8] ^= 1 << (i % 8);
            assert!(decode_frame(&b).is_err(), "bit {i}");
        }
        assert!(decode_frame(&body[..5]).is_err());
    }
}
