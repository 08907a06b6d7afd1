//! What an outbound frame carries, read from its encoded bytes with a few comparisons: its
//! channel (for the per-channel output counters) and its `recv_ts` (for latency samples).

/// What an outbound frame carries (the `channel` label of the per-channel output counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OutClass {
    Quote = 0,
    Trade = 1,
    Book = 2,
    /// Feed status (live/stale) messages.
    Status = 3,
    /// Replies to requests: acks, errors, pongs.
    Reply = 4,
    /// WebSocket control frames: ping, pong, close.
    Control = 5,
    /// Compressed (permessage-deflate) or MessagePack frames: their channel is not sniffed
    /// from the bytes, so they are counted here rather than guessed.
    Encoded = 6,
}

/// Number of [`OutClass`] values.
pub const OUT_CLASSES: usize = 7;

impl OutClass {
    pub const ALL: [OutClass; OUT_CLASSES] = [
        OutClass::Quote,
        OutClass::Trade,
        OutClass::Book,
        OutClass::Status,
        OutClass::Reply,
        OutClass::Control,
        OutClass::Encoded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OutClass::Quote => "quote",
            OutClass::Trade => "trade",
            OutClass::Book => "book",
            OutClass::Status => "status",
            OutClass::Reply => "reply",
            OutClass::Control => "control",
            OutClass::Encoded => "encoded",
        }
    }

    /// Classifies an encoded server frame by its opcode and the start of its JSON payload
    /// (`{"type":"quote",...`): a few byte comparisons, no parsing.
    #[inline]
    pub fn of_frame(frame: &[u8]) -> OutClass {
        let Some(&b0) = frame.first() else {
            return OutClass::Control;
        };
        if b0 & 0x08 != 0 {
            return OutClass::Control;
        }
        if b0 & 0x40 != 0 || b0 & 0x0f == 0x2 {
            return OutClass::Encoded;
        }
        let payload = payload_of(frame);
        let Some(rest) = payload.strip_prefix(b"{\"type\":\"") else {
            return OutClass::Reply;
        };
        match rest.first() {
            Some(b'q') if rest.starts_with(b"quote\"") => OutClass::Quote,
            Some(b't') if rest.starts_with(b"trade\"") => OutClass::Trade,
            Some(b'b') if rest.starts_with(b"book\"") => OutClass::Book,
            Some(b's') if rest.starts_with(b"status\"") => OutClass::Status,
            _ => OutClass::Reply,
        }
    }

    /// Whether frames of this class carry a `recv_ts` worth sampling for latency.
    pub const fn is_market_data(self) -> bool {
        matches!(self, OutClass::Quote | OutClass::Trade | OutClass::Book)
    }
}

/// The payload of an unmasked server frame.
fn payload_of(frame: &[u8]) -> &[u8] {
    let Some(&b1) = frame.get(1) else {
        return &[];
    };
    let start = match b1 & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    frame.get(start..).unwrap_or(&[])
}

/// Reads `"recv_ts":N` from the start of an encoded market-data frame (it is in the fixed
/// header every tick starts with, within the first ~100 bytes).
pub fn recv_ts_of_frame(frame: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"recv_ts\":";
    let payload = payload_of(frame);
    let head = &payload[..payload.len().min(160)];
    let at = head.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let mut v: i64 = 0;
    let mut any = false;
    for &b in &head[at..] {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as i64)?;
        any = true;
    }
    any.then_some(v)
}
