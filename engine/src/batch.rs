//! Batching: several pending frames of one session sent as one message (a JSON array).
//!
//! A batch is built per session at send time from the frames already encoded for everyone,
//! so it costs a copy of bytes and no re-encoding. That includes compressed frames: each one
//! is an independent deflate stream ending on a sync flush (RFC 7692 with
//! `server_no_context_takeover`), so a batch is the concatenation of those streams with the
//! array punctuation (`[`, `,`, `]`) in *stored* (uncompressed) deflate blocks between them.
//! The result is one valid permessage-deflate message, without compressing anything again.

use bytes::Bytes;

use crate::wire::{frame_payload, FrameBuf, Opcode};

/// The 4 bytes a permessage-deflate sender strips from the end of every message.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Whether a frame built by this crate carries a compressed payload (RSV1).
pub fn is_deflated(frame: &[u8]) -> bool {
    frame[0] & 0x40 != 0
}

/// Combines complete text frames (all compressed, or all not) into one array frame.
pub fn json_array(frames: &[Bytes]) -> Bytes {
    let deflated = frames.first().is_some_and(|f| is_deflated(f));
    let payload_len: usize = frames.iter().map(|f| frame_payload(f).len()).sum();
    let mut out = FrameBuf::with_capacity(payload_len + frames.len() * 10 + 16);
    let v = out.vec();
    for (i, f) in frames.iter().enumerate() {
        let sep = if i == 0 { b'[' } else { b',' };
        if deflated {
            stored_block(v, sep);
            v.extend_from_slice(frame_payload(f));
            v.extend_from_slice(&SYNC_TAIL);
        } else {
            v.push(sep);
            v.extend_from_slice(frame_payload(f));
        }
    }
    if deflated {
        stored_block(v, b']');
        // An empty stored block ends the message; its last 4 bytes are stripped (RFC 7692).
        v.push(0x00);
        out.finish_with_rsv1(Opcode::Text)
    } else {
        v.push(b']');
        out.finish(Opcode::Text)
    }
}

/// Combines complete binary MessagePack frames (all compressed, or all not) into one frame
/// holding a MessagePack array of the messages.
pub fn msgpack_array(frames: &[Bytes]) -> Bytes {
    let deflated = frames.first().is_some_and(|f| is_deflated(f));
    let payload_len: usize = frames.iter().map(|f| frame_payload(f).len()).sum();
    let mut header = Vec::with_capacity(5);
    rmp::encode::write_array_len(&mut header, frames.len() as u32).expect("write to Vec");
    let mut out = FrameBuf::with_capacity(payload_len + frames.len() * 4 + 16);
    let v = out.vec();
    if deflated {
        stored_bytes(v, &header);
        for f in frames {
            v.extend_from_slice(frame_payload(f));
            v.extend_from_slice(&SYNC_TAIL);
        }
        // Drop the last sync tail, as RFC 7692 strips it from every message.
        v.truncate(v.len() - SYNC_TAIL.len());
        out.finish_with_rsv1(Opcode::Binary)
    } else {
        v.extend_from_slice(&header);
        for f in frames {
            v.extend_from_slice(frame_payload(f));
        }
        out.finish(Opcode::Binary)
    }
}

/// Appends a non-final stored deflate block holding one byte (we are byte-aligned after
/// every sync flush).
fn stored_block(v: &mut Vec<u8>, byte: u8) {
    stored_bytes(v, &[byte]);
}

/// Appends a non-final stored deflate block holding `bytes` (at most 65535).
fn stored_bytes(v: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len() as u16;
    v.push(0x00);
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&(!len).to_le_bytes());
    v.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::deflate_frame;
    use crate::wire::frame;
    use flate2::{Decompress, FlushDecompress};

    fn inflate(payload: &[u8]) -> Vec<u8> {
        let mut input = payload.to_vec();
        input.extend_from_slice(&SYNC_TAIL);
        let mut d = Decompress::new(false);
        let mut out = Vec::with_capacity(1 << 16);
        d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(d.total_in() as usize, input.len(), "whole message consumed");
        out
    }

    const MSGS: [&str; 3] = [
        r#"{"type":"quote","symbol":"SYM0001","bid":"1.25"}"#,
        r#"{"type":"trade","symbol":"SYM0001","price":"1.26"}"#,
        r#"{"type":"quote","symbol":"SYM0002","bid":"7.00"}"#,
    ];

    #[test]
    fn plain_batch_is_a_json_array() {
        let frames: Vec<Bytes> = MSGS
            .iter()
            .map(|m| frame(Opcode::Text, m.as_bytes()))
            .collect();
        let b = json_array(&frames);
        assert_eq!(b[0], 0x81);
        assert_eq!(
            frame_payload(&b),
            format!("[{}]", MSGS.join(",")).as_bytes()
        );
    }

    #[test]
    fn compressed_frames_splice_into_one_valid_message() {
        let frames: Vec<Bytes> = MSGS
            .iter()
            .map(|m| deflate_frame(Opcode::Text, m.as_bytes()))
            .collect();
        let b = json_array(&frames);
        assert_eq!(b[0], 0x80 | 0x40 | 0x1);
        assert_eq!(
            inflate(frame_payload(&b)),
            format!("[{}]", MSGS.join(",")).as_bytes()
        );
    }
}
